/**
 * spec/check.md#report: the renderers of a check report on their own. A
 * report is built here by hand (a failed op with a mismatch, a missing
 * output, a port error and a fingerprint; a passed op; a skipped op; answers
 * for unknown case ids; a note and the port's stderr), and its table, its
 * JUnit XML and its JSON are compared with the whole text written out here
 * (the table's padding worked out by hand). check.test.ts renders reports of
 * real runs; this file pins every line, and is what `npm run mutate` runs
 * against `report.ts` (spec/mutation.md).
 */
import { describe, expect, it } from 'vitest';

import {
  DEFAULT_MAX_FAILURES,
  escapeXml,
  renderErrorJunit,
  renderJson,
  renderJunit,
  renderText,
} from '../../src/check/report.js';
import type { CaseResult, CheckReport, OpResult } from '../../src/check/runner.js';

const tolerance = { abs: 1e-12, rel: 1e-9, scaled: 0 };

function op(over: Partial<OpResult> & Pick<OpResult, 'op' | 'section' | 'status'>): OpResult {
  return {
    cases: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    notRun: 0,
    worstRatio: null,
    worstAbsError: null,
    tolerance,
    fingerprint: [],
    fingerprintChecked: 0,
    ...over,
  };
}

function caseResult(over: Partial<CaseResult> & Pick<CaseResult, 'op' | 'caseId' | 'status'>) {
  const base: CaseResult = {
    op: over.op,
    caseId: over.caseId,
    status: over.status,
    comment: '',
    flags: [],
    comparison: null,
    portError: null,
    noAnswer: null,
    fingerprint: null,
    inputs: null,
    translated: null,
  };
  return { ...base, ...over };
}

const dropsK1 = { kind: 'bug' as const, id: 'bug:k1', text: 'drops the constant k1' };

const mismatch = caseResult({
  op: 'kl.approx',
  caseId: 1,
  status: 'failed',
  comment: 'large alpha',
  flags: ['edge', 'clip'],
  comparison: {
    ok: false,
    ratio: 12.5,
    maxAbsError: 0.25,
    outputs: [
      {
        name: 'kl',
        ok: false,
        problem: null,
        ratio: 12.5,
        maxAbsError: 0.25,
        mismatches: 1,
        size: 3,
        firstMismatch: {
          index: 2,
          position: [0, 2],
          expected: 1.5,
          actual: 1.25,
          error: 0.25,
          allowed: 0.02,
        },
      },
      {
        name: 'ok_output',
        ok: true,
        problem: null,
        ratio: 0,
        maxAbsError: 0,
        mismatches: 0,
        size: 1,
        firstMismatch: null,
      },
      {
        name: 'grad',
        ok: false,
        problem: 'missing from the answer',
        ratio: Infinity,
        maxAbsError: Infinity,
        mismatches: 0,
        size: 0,
        firstMismatch: null,
      },
    ],
  },
  fingerprint: [dropsK1],
  inputs: ['log_alpha [1, 3] = [-8, 0, 8]'],
});

const portError = caseResult({
  op: 'kl.approx',
  caseId: 2,
  status: 'failed',
  portError: 'not implemented',
  fingerprint: [],
  inputs: ['log_alpha [1] = [3]'],
});

const report: CheckReport = {
  schema: 'vdspec-check-report/1',
  port: {
    name: 'my-port',
    source: 'python3 port.py',
    kind: 'process',
    ops: ['kl.approx', 'svd.mask'],
    profile: 'molchanov2017',
    dtype: 'float64',
  },
  profile: 'molchanov2017',
  translation: null,
  golden: { dir: 'test/golden', generator: { name: 'vdspec', version: '0.1.0', seed: 7 } },
  ops: [
    op({
      op: 'kl.approx',
      section: 'kl.md#approx',
      status: 'failed',
      cases: 3,
      passed: 1,
      failed: 2,
      worstRatio: 12.5,
      worstAbsError: 0.000125,
      fingerprint: [
        { ...dropsK1, matched: 2, checked: 2, contradicted: 1, contradictedIn: ['svd.mask'] },
      ],
      fingerprintChecked: 2,
    }),
    op({
      op: 'svd.mask',
      section: 'sparsity.md#mask',
      status: 'passed',
      cases: 1,
      passed: 1,
      worstRatio: 0,
      worstAbsError: 0,
    }),
    op({ op: 'kl.exact', section: 'kl.md#exact', status: 'skipped', cases: 2, skipped: 2 }),
  ],
  cases: [
    caseResult({ op: 'kl.approx', caseId: 0, status: 'passed', comment: 'zero' }),
    mismatch,
    portError,
    caseResult({ op: 'svd.mask', caseId: 0, status: 'passed' }),
    caseResult({ op: 'kl.exact', caseId: 0, status: 'skipped' }),
    caseResult({ op: 'kl.exact', caseId: 1, status: 'skipped' }),
  ],
  unknownResults: [
    { op: 'kl.approx', caseId: '9' },
    { op: 'svd.mask', caseId: '4' },
    { op: 'kl.approx', caseId: '10' },
  ],
  totals: { ops: 3, cases: 6, passed: 2, failed: 2, skipped: 2, notRun: 0, unknown: 3 },
  infrastructureError: null,
  notes: ['first note', 'second note'],
  stderr: ['warning: one', 'warning: two'],
  exitCode: 1,
};

const TABLE = [
  'op         status   cases  passed  failed  skipped  not run  worst err/tol  worst |err|',
  'kl.approx  FAIL         3       1       2        0        0           12.5      1.25e-4',
  'svd.mask   pass         1       1       0        0        0              0            0',
  'kl.exact   skipped      2       0       0        2        0              -            -',
  'total                   6       2       2        2        0',
  '(skipped: ops the port does not declare; err/tol: worst error as a fraction of the allowed error, <= 1 passes)',
];

const FIRST_FAILURE = [
  '1) kl.approx case 1 (kl.md#approx)',
  '   comment: large alpha',
  '   flags: edge, clip',
  '   input log_alpha [1, 3] = [-8, 0, 8]',
  '   output "kl": 1 of 3 elements differ; first at index 2 [0, 2]: expected 1.5, got 1.25 (|error| 0.25 > allowed 0.02)',
  '   output "grad": missing from the answer',
  '   matches: drops the constant k1',
];

const SECOND_FAILURE = [
  '2) kl.approx case 2 (kl.md#approx)',
  '   input log_alpha [1] = [3]',
  '   the port answered with an error: not implemented',
  '   matches: no known convention or bug',
];

const AFTER_FAILURES = [
  'The results file has 3 answers for cases the golden set does not have (each fails the check; were the results written for other golden files?):',
  '  kl.approx: case 9, 10',
  '  svd.mask: case 4',
  '',
  'Fingerprint (what the failed answers match instead of the golden values):',
  '  kl.approx: 2 of 2 failed cases: drops the constant k1 [contradicted by 1 passed case of svd.mask]',
  '',
  'Note: first note',
  'Note: second note',
  '',
  'Port stderr (last 2 lines):',
  '  warning: one',
  '  warning: two',
  '',
  'Result: FAIL: 2 of 4 checked cases failed, in 1 op; 3 answers for cases the golden set does not have (exit 1)',
];

describe('spec/check.md#report: the table for people', () => {
  it('every line of a report with each kind of failure', () => {
    expect(DEFAULT_MAX_FAILURES).toBe(5);
    expect(renderText(report).split('\n')).toEqual([
      'vdspec check: port "my-port" (command: python3 port.py), dtype float64',
      'profile molchanov2017; golden files test/golden (vdspec 0.1.0, seed 7)',
      '',
      ...TABLE,
      '',
      'Failures (2):',
      '',
      ...FIRST_FAILURE,
      '',
      ...SECOND_FAILURE,
      '',
      ...AFTER_FAILURES,
    ]);
  });

  it('--max-failures shows the first N failed cases and says how many there are', () => {
    const lines = renderText(report, 1).split('\n');
    expect(lines.slice(TABLE.length + 4)).toEqual([
      'Failures (first 1 of 2; --max-failures N shows more):',
      '',
      ...FIRST_FAILURE,
      '',
      ...AFTER_FAILURES,
    ]);
    expect(renderText(report, -3).split('\n')).toContain(
      'Failures (first 0 of 2; --max-failures N shows more):',
    );
    expect(renderText(report, -3)).not.toContain('1) kl.approx');
  });

  it('the header of a results file without a generator seed, and of golden files without a generator', () => {
    const results: CheckReport = {
      ...report,
      port: { ...report.port, kind: 'results', source: 'answers.json', dtype: 'float32' },
      golden: { dir: 'g', generator: { name: 'vdspec', version: '2', seed: null } },
    };
    expect(renderText(results).split('\n').slice(0, 2)).toEqual([
      'vdspec check: port "my-port" (answers.json), dtype float32',
      'profile molchanov2017; golden files g (vdspec 2)',
    ]);
    const bare = { ...report, golden: { dir: 'g', generator: null } };
    expect(renderText(bare).split('\n')[1]).toBe('profile molchanov2017; golden files g');
  });

  it('a case with no answer, a translated case, and an op no fingerprint explains', () => {
    const noAnswer = caseResult({
      op: 'svd.mask',
      caseId: 3,
      status: 'failed',
      noAnswer: 'the results file has no entry for this case',
      translated: ['input log_sigma2 sent as log_sigma = log_sigma2 / 2', 'output read back'],
    });
    const r: CheckReport = {
      ...report,
      ops: [
        op({
          op: 'svd.mask',
          section: 's',
          status: 'failed',
          cases: 1,
          failed: 1,
          fingerprintChecked: 1,
        }),
      ],
      cases: [noAnswer],
      unknownResults: [{ op: 'svd.mask', caseId: '8' }],
      totals: { ops: 1, cases: 1, passed: 0, failed: 1, skipped: 0, notRun: 0, unknown: 1 },
      notes: [],
      stderr: [],
    };
    const text = renderText(r).split('\n');
    expect(text.slice(text.indexOf('Failures (1):') - 1)).toEqual([
      '',
      'Failures (1):',
      '',
      '1) svd.mask case 3 (s)',
      '   translated: input log_sigma2 sent as log_sigma = log_sigma2 / 2; output read back',
      '   no answer: the results file has no entry for this case',
      '',
      'The results file has 1 answer for a case the golden set does not have (each fails the check; were the results written for other golden files?):',
      '  svd.mask: case 8',
      '',
      'Fingerprint (what the failed answers match instead of the golden values):',
      '  svd.mask: no known convention or bug matches (1 failed case checked)',
      '',
      'Result: FAIL: 1 of 1 checked cases failed, in 1 op; 1 answer for a case the golden set does not have (exit 1)',
    ]);
  });

  it('the result line of each outcome', () => {
    const last = (r: CheckReport) => renderText(r).split('\n').at(-1);
    const clean: CheckReport = { ...report, cases: [], unknownResults: [], notes: [], stderr: [] };
    const totals = (t: Partial<CheckReport['totals']>) => ({ ...report.totals, ...t });
    expect(last({ ...clean, totals: totals({ failed: 0, unknown: 0 }) })).toBe(
      'Result: PASS: 2 cases passed, 2 skipped (exit 0)',
    );
    expect(last({ ...clean, totals: totals({ failed: 0, unknown: 1 }) })).toBe(
      'Result: FAIL: 2 cases passed, but the results file has 1 answer for a case the golden set does not have (exit 1)',
    );
    const twoFailedOps = clean.ops.map((o) => ({ ...o, status: 'failed' as const }));
    expect(last({ ...clean, ops: twoFailedOps, totals: totals({ unknown: 0 }) })).toBe(
      'Result: FAIL: 2 of 4 checked cases failed, in 3 ops (exit 1)',
    );
    const broken = { ...clean, infrastructureError: 'the port crashed' };
    expect(last({ ...broken, totals: totals({ notRun: 3 }) })).toBe(
      'Result: ERROR: the check could not be completed (3 cases not run) (exit 2)',
    );
    expect(
      last({ ...broken, totals: totals({ passed: 0, failed: 0, notRun: 0, skipped: 4 }) }),
    ).toBe('Result: ERROR: no case was checked (4 skipped) (exit 2)');
    // Cases failed before the port stopped: it was checked in part.
    expect(last({ ...broken, totals: totals({ passed: 0, failed: 3, notRun: 3 }) })).toBe(
      'Result: ERROR: the check could not be completed (3 cases not run) (exit 2)',
    );
    // Every op skipped without an error: nothing failed.
    expect(
      last({
        ...clean,
        totals: totals({ passed: 0, failed: 0, notRun: 0, unknown: 0, skipped: 6 }),
      }),
    ).toBe('Result: PASS: 0 cases passed, 6 skipped (exit 0)');
    expect(renderText(broken).split('\n').slice(-4)).toEqual([
      '',
      'Error: the port crashed',
      '',
      'Result: ERROR: the check could not be completed (0 cases not run) (exit 2)',
    ]);
  });
});

describe('spec/check.md#report: what a report without failures leaves out', () => {
  it('a passing report is the header, the table and the result line, nothing between', () => {
    const passing: CheckReport = {
      ...report,
      ops: [op({ op: 'svd.mask', section: 's', status: 'passed', cases: 1, passed: 1 })],
      cases: [caseResult({ op: 'svd.mask', caseId: 0, status: 'passed' })],
      unknownResults: [],
      totals: { ops: 1, cases: 1, passed: 1, failed: 0, skipped: 0, notRun: 0, unknown: 0 },
      notes: [],
      stderr: [],
    };
    expect(renderText(passing).split('\n')).toEqual([
      'vdspec check: port "my-port" (command: python3 port.py), dtype float64',
      'profile molchanov2017; golden files test/golden (vdspec 0.1.0, seed 7)',
      '',
      'op        status  cases  passed  failed  skipped  not run  worst err/tol  worst |err|',
      'svd.mask  pass        1       1       0        0        0              -            -',
      'total                 1       1       0        0        0',
      TABLE.at(-1),
      '',
      'Result: PASS: 1 cases passed, 0 skipped (exit 0)',
    ]);
  });

  it('a fingerprint no passed case contradicts, and one contradicted in two ops; an empty translation', () => {
    const tally = { ...dropsK1, matched: 1, checked: 2 };
    const r: CheckReport = {
      ...report,
      ops: [
        op({
          ...report.ops[0]!,
          fingerprint: [
            { ...tally, contradicted: 0, contradictedIn: [] },
            {
              ...tally,
              text: 'another',
              contradicted: 3,
              contradictedIn: ['svd.mask', 'kl.exact'],
            },
          ],
        }),
      ],
      cases: [{ ...portError, translated: [] }],
      unknownResults: [],
      notes: [],
      stderr: [],
    };
    const text = renderText(r).split('\n');
    expect(text).toContain('  kl.approx: 1 of 2 failed cases: drops the constant k1');
    expect(text).toContain(
      '  kl.approx: 1 of 2 failed cases: another [contradicted by 3 passed cases of svd.mask, kl.exact]',
    );
    expect(text.filter((l) => l.includes('translated'))).toEqual([]);
  });
});

describe('spec/check.md#report: JUnit XML and JSON', () => {
  it('one testsuite per op and one testcase per case, failures with their details', () => {
    expect(renderJunit(report).split('\n')).toEqual([
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<testsuites name="vdspec check my-port" tests="9" failures="5" errors="0" skipped="2">',
      '  <testsuite name="molchanov2017/kl.approx" tests="3" failures="2" errors="0" skipped="0">',
      '    <testcase classname="vdspec.molchanov2017.kl.approx" name="case 0: zero"/>',
      '    <testcase classname="vdspec.molchanov2017.kl.approx" name="case 1: large alpha">',
      '      <failure message="output &quot;kl&quot;: 1 of 3 elements differ; first at index 2 [0, 2]: expected 1.5, got 1.25 (|error| 0.25 &gt; allowed 0.02)">output &quot;kl&quot;: 1 of 3 elements differ; first at index 2 [0, 2]: expected 1.5, got 1.25 (|error| 0.25 &gt; allowed 0.02)',
      'output &quot;grad&quot;: missing from the answer',
      'input log_alpha [1, 3] = [-8, 0, 8]',
      'matches: drops the constant k1</failure>',
      '    </testcase>',
      '    <testcase classname="vdspec.molchanov2017.kl.approx" name="case 2">',
      '      <failure message="the port answered with an error: not implemented">the port answered with an error: not implemented',
      'input log_alpha [1] = [3]</failure>',
      '    </testcase>',
      '  </testsuite>',
      '  <testsuite name="molchanov2017/svd.mask" tests="1" failures="0" errors="0" skipped="0">',
      '    <testcase classname="vdspec.molchanov2017.svd.mask" name="case 0"/>',
      '  </testsuite>',
      '  <testsuite name="molchanov2017/kl.exact" tests="2" failures="0" errors="0" skipped="2">',
      '    <testcase classname="vdspec.molchanov2017.kl.exact" name="case 0">',
      '      <skipped message="op not declared by the port"/>',
      '    </testcase>',
      '    <testcase classname="vdspec.molchanov2017.kl.exact" name="case 1">',
      '      <skipped message="op not declared by the port"/>',
      '    </testcase>',
      '  </testsuite>',
      '  <testsuite name="molchanov2017/unknown case ids" tests="3" failures="3" errors="0" skipped="0">',
      '    <testcase classname="vdspec.molchanov2017.kl.approx" name="case 9: not in the golden set">',
      '      <failure message="the results file has an answer for a case the golden set does not have"/>',
      '    </testcase>',
      '    <testcase classname="vdspec.molchanov2017.svd.mask" name="case 4: not in the golden set">',
      '      <failure message="the results file has an answer for a case the golden set does not have"/>',
      '    </testcase>',
      '    <testcase classname="vdspec.molchanov2017.kl.approx" name="case 10: not in the golden set">',
      '      <failure message="the results file has an answer for a case the golden set does not have"/>',
      '    </testcase>',
      '  </testsuite>',
      '</testsuites>',
      '',
    ]);
  });

  it('a translated failure lists what was translated; a failure with no detail says failed', () => {
    const r: CheckReport = {
      ...report,
      ops: [op({ op: 'svd.mask', section: 's', status: 'failed', cases: 2, failed: 2 })],
      cases: [
        caseResult({
          op: 'svd.mask',
          caseId: 0,
          status: 'failed',
          portError: 'boom',
          translated: ['input a', 'output b'],
        }),
        caseResult({ op: 'svd.mask', caseId: 1, status: 'failed' }),
      ],
      unknownResults: [],
      totals: { ops: 1, cases: 2, passed: 0, failed: 2, skipped: 0, notRun: 0, unknown: 0 },
    };
    const xml = renderJunit(r);
    expect(xml).toContain(
      '      <failure message="the port answered with an error: boom">the port answered with an error: boom\ntranslated: input a; output b</failure>\n',
    );
    expect(xml).toContain('      <failure message="failed"></failure>\n');
    expect(xml).not.toContain('unknown case ids');
  });

  it('a run stopped early: its unrun cases are errors, and an error no case carries gets a testcase', () => {
    const stopped: CheckReport = {
      ...report,
      ops: [op({ op: 'svd.mask', section: 's', status: 'not_run', cases: 1, notRun: 1 })],
      cases: [caseResult({ op: 'svd.mask', caseId: 0, status: 'not_run' })],
      unknownResults: [],
      totals: { ops: 1, cases: 1, passed: 0, failed: 0, skipped: 0, notRun: 1, unknown: 0 },
      infrastructureError: 'the port crashed <signal 9>',
    };
    expect(renderJunit(stopped).split('\n').slice(1, 6)).toEqual([
      '<testsuites name="vdspec check my-port" tests="1" failures="0" errors="1" skipped="0">',
      '  <testsuite name="molchanov2017/svd.mask" tests="1" failures="0" errors="1" skipped="0">',
      '    <testcase classname="vdspec.molchanov2017.svd.mask" name="case 0">',
      '      <error message="not run: the port crashed &lt;signal 9&gt;"/>',
      '    </testcase>',
    ]);
    const noError = { ...stopped, infrastructureError: null };
    expect(renderJunit(noError)).toContain('<error message="not run: the check stopped"/>');

    const nothingRun: CheckReport = {
      ...stopped,
      ops: [],
      cases: [],
      totals: { ops: 0, cases: 0, passed: 0, failed: 0, skipped: 0, notRun: 0, unknown: 0 },
      infrastructureError: 'the handshake failed\nstderr: traceback',
    };
    expect(renderJunit(nothingRun).split('\n')).toEqual([
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<testsuites name="vdspec check my-port" tests="1" failures="0" errors="1" skipped="0">',
      '  <testsuite name="molchanov2017/check" tests="1" failures="0" errors="1" skipped="0">',
      '    <testcase classname="vdspec.check" name="vdspec check">',
      '      <error message="the handshake failed">the handshake failed',
      'stderr: traceback</error>',
      '    </testcase>',
      '  </testsuite>',
      '</testsuites>',
      '',
    ]);
  });

  it('a run that ended without a report is one error, for check and for fuzz', () => {
    expect(renderErrorJunit('fuzz', 'no port: "x" & y')).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="vdspec fuzz" tests="1" failures="0" errors="1" skipped="0">',
        '  <testsuite name="vdspec fuzz" tests="1" failures="0" errors="1" skipped="0">',
        '    <testcase classname="vdspec.fuzz" name="vdspec fuzz">',
        '      <error message="no port: &quot;x&quot; &amp; y"/>',
        '    </testcase>',
        '  </testsuite>',
        '</testsuites>',
        '',
      ].join('\n'),
    );
    expect(renderErrorJunit('check', 'a\nb')).toContain(
      '<testcase classname="vdspec.check" name="vdspec check">\n      <error message="a">a\nb</error>',
    );
  });

  it('escapes the five XML characters and replaces the ones XML forbids', () => {
    expect(escapeXml(`a&b<c>"d'e`)).toBe('a&amp;b&lt;c&gt;&quot;d&apos;e');
    expect(escapeXml('tab\tnl\ncr\r')).toBe('tab\tnl\ncr\r');
    expect(escapeXml('\u0000\u0008\u000b\u001f\uFFFE\uFFFF')).toBe('??????');
    expect(escapeXml('\uD7FF\uE000\uFFFD \u{10000}\u{10FFFF}')).toBe(
      '\uD7FF\uE000\uFFFD \u{10000}\u{10FFFF}',
    );
    expect(escapeXml('lone \uD800 surrogate \uDC00')).toBe('lone ? surrogate ?');
  });

  it('JSON: the report itself, two-space indented, with non-finite numbers and -0 encoded', () => {
    const text = renderJson(report);
    expect(
      text.startsWith('{\n  "schema": "vdspec-check-report/1",\n  "port": {\n    "name"'),
    ).toBe(true);
    const parsed = JSON.parse(text) as { cases: { comparison: { outputs: object[] } | null }[] };
    expect(parsed.cases[1]!.comparison!.outputs[2]).toMatchObject({
      ratio: 'Infinity',
      maxAbsError: 'Infinity',
    });
    expect(
      JSON.parse(renderJson({ ...report, ops: [op({ ...report.ops[0]!, worstRatio: -0 })] })),
    ).toMatchObject({ ops: [{ worstRatio: '-0', worstAbsError: 0.000125 }] });
    expect(JSON.parse(renderJson(report))).toEqual(
      JSON.parse(JSON.stringify(report, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v))),
    );
  });
});
