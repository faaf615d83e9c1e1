// Mutation testing with Stryker (spec/mutation.md): slow, so run by hand, never in CI.
//
//   npm run mutate -- --mutate src/check/compare.ts
//   VDSPEC_MUTATE_TESTS=test/properties/check.test.ts npm run mutate -- --mutate src/check/compare.ts
//   npm run mutate            (the src/ files that differ from the main branch)
//
// VDSPEC_MUTATE_TESTS (comma-separated test files) narrows the tests Vitest
// may run (vitest.mutate.config.ts); without it, Stryker runs the test files
// that import the mutated module, and per mutant only the tests that cover it.
import { execFileSync } from 'node:child_process';

const asked = process.argv.some((a) => a === '--mutate' || a === '-m' || a.startsWith('--mutate='));

/** The TypeScript files under src/ that differ from the main branch (committed or not). */
function changedSources() {
  try {
    const out = execFileSync('git', ['diff', '--name-only', 'main', '--', 'src'], {
      encoding: 'utf8',
    });
    return out.split('\n').filter((f) => f.endsWith('.ts'));
  } catch {
    return [];
  }
}

const mutate = asked ? [] : changedSources();
if (!asked && mutate.length === 0) {
  // Stryker's default would mutate every file in src/: hours on this code base.
  throw new Error(
    'nothing under src/ differs from main: name a module, npm run mutate -- --mutate src/<file>.ts',
  );
}

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutate.config.ts', related: true },
  coverageAnalysis: 'perTest',
  ...(asked ? {} : { mutate }),
  // Type-invalid mutants are killed by the compiler in any real change; they are not counted.
  ignoreStatic: true,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  // Two cores shared with other work: one mutant at a time.
  concurrency: 1,
  timeoutMS: 60_000,
};
