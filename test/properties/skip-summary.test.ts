/**
 * test/reporters/skip-summary.ts: the end of `npm test` repeats the tests
 * skipped for a reason (a missing python3 with numpy), counted per reason.
 */
import { describe, expect, it } from 'vitest';
import type { TestModule } from 'vitest/node';
import config from '../../vitest.config.js';
import SkipSummaryReporter, { skipSummary } from '../reporters/skip-summary.js';

const NUMPY = 'the NumPy port tests: python3 with numpy is not available';

/** Just what the reporter reads of a TestModule: its path and each test's result. */
function fakeModule(
  relativeModuleId: string,
  results: ({ state: 'passed' } | { state: 'skipped'; note: string | undefined })[],
): TestModule {
  return {
    relativeModuleId,
    children: { allTests: () => results.map((r) => ({ result: () => r }))[Symbol.iterator]() },
  } as unknown as TestModule;
}

describe('the skip summary at the end of the test run', () => {
  it('counts the skipped tests per reason, with their files; skips without a reason are left out', () => {
    const written: string[] = [];
    const reporter = new SkipSummaryReporter({ write: (s) => written.push(s) });
    reporter.onTestRunEnd([
      fakeModule('test/properties/check.test.ts', [
        { state: 'skipped', note: NUMPY },
        { state: 'passed' },
        { state: 'skipped', note: NUMPY },
        // Left out by a -t filter or it.skip: no reason, not listed.
        { state: 'skipped', note: undefined },
      ]),
      fakeModule('test/properties/golden.test.ts', [
        { state: 'skipped', note: 'no dist/: run npm run build' },
      ]),
    ]);
    expect(written.join('')).toBe(
      [
        '',
        '3 tests skipped, not run:',
        `  2 tests (test/properties/check.test.ts): ${NUMPY}`,
        '  1 test (test/properties/golden.test.ts): no dist/: run npm run build',
        '',
      ].join('\n'),
    );
  });

  it('says nothing when nothing was skipped for a reason', () => {
    expect(skipSummary([])).toEqual([]);
    const written: string[] = [];
    new SkipSummaryReporter({ write: (s) => written.push(s) }).onTestRunEnd([
      fakeModule('a.test.ts', [{ state: 'passed' }, { state: 'skipped', note: undefined }]),
    ]);
    expect(written).toEqual([]);
  });

  it('is one of the reporters of npm test', () => {
    expect(config.test?.reporters).toContain('./test/reporters/skip-summary.ts');
  });
});
