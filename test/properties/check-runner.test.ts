/**
 * spec/check.md#report, #exit-codes, #what-ends-a-run, #fingerprint and
 * #in-process-ports: the runner (`runCheck`, src/check/runner.ts) on its own.
 * Golden sets are built here by hand (a few cases per op, values chosen so
 * that every error and every error / tolerance ratio is exact in binary), and
 * the ports are scripted objects that record what they were asked and how
 * they were closed. Each report is compared field by field with values
 * written out here: statuses, counts, totals, worst ratios, the order of ops
 * and cases, the notes. check.test.ts runs the same rules end to end through
 * `vdspec check` and real ports; this file runs in seconds and is what
 * `npm run mutate` runs against `runner.ts` (spec/mutation.md).
 */
import { describe, expect, it } from 'vitest';

import { CheckInfrastructureError } from '../../src/check/errors.js';
import {
  encodeInputs,
  type GoldenFile,
  type GoldenSet,
  type Tolerance,
} from '../../src/check/golden.js';
import type { Port, PortAnswer, PortCase, PortInfo } from '../../src/check/port.js';
import {
  DEFAULT_FINGERPRINT_CASES,
  NOTHING_CHECKED,
  REPORT_SCHEMA,
  runCheck,
  summarizeInputs,
  unknownOpsProblem,
  type CaseResult,
  type OpResult,
} from '../../src/check/runner.js';
import { getOp } from '../../src/ops.js';
import { PROFILES } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { FIXTURE_TOLERANCE } from './check-fixtures.js';

const MOLCHANOV = PROFILES.molchanov2017;
const t = (shape: number[], data: number[]): Tensor => ({ shape, data });
const scalar = (v: number): Tensor => t([], [v]);

/**
 * Powers of two: a value off by 2^-8 is 4 allowed errors away under float64
 * (abs 2^-10) and 2 under float32 (abs 2^-9), both exactly.
 */
const DYADIC: Readonly<Record<'float64' | 'float32', Tolerance>> = {
  float64: { abs: 2 ** -10, rel: 0, scaled: 0 },
  float32: { abs: 2 ** -9, rel: 0, scaled: 0 },
};

interface HandCase {
  readonly id: number;
  readonly comment?: string;
  readonly flags?: readonly string[];
  readonly inputs: Record<string, unknown>;
  /** Omitted: the reference's answer (for the fingerprint tests). */
  readonly outputs?: Record<string, Tensor>;
}

function goldenFile(
  opName: string,
  cases: readonly HandCase[],
  tolerance: Readonly<Record<'float64' | 'float32', Tolerance>> = DYADIC,
  generator = { name: 'by hand', version: '1', seed: null as number | null },
): GoldenFile {
  const op = getOp(opName);
  return {
    path: `/hand/molchanov2017/${opName}.json`,
    op,
    section: op.section,
    profile: MOLCHANOV,
    tolerance,
    generator,
    cases: cases.map((c) => ({
      id: c.id,
      comment: c.comment ?? `case ${c.id}`,
      flags: c.flags ?? [],
      rawInputs: encodeInputs(op, MOLCHANOV, c.inputs),
      inputs: c.inputs,
      outputs: c.outputs ?? run(opName, c.inputs, MOLCHANOV),
      scale: {},
    })),
  };
}

function goldenSet(
  files: readonly GoldenFile[],
  over: Partial<Pick<GoldenSet, 'available' | 'warnings' | 'profile'>> = {},
): GoldenSet {
  return {
    dir: '/hand',
    profile: MOLCHANOV,
    files,
    available: files.map((f) => f.op.name),
    warnings: [],
    ...over,
  };
}

/** kl.approx with made-up dyadic values: the runner compares whatever the file holds. */
const KL_APPROX = goldenFile('kl.approx', [
  {
    id: 0,
    comment: 'two values',
    flags: ['grid'],
    inputs: { log_alpha: t([2], [0, 3]) },
    outputs: { kl: t([2], [0.5, 0.25]), dkl_dlog_alpha: t([2], [-0.375, -0.125]) },
  },
  {
    id: 1,
    comment: 'one value',
    inputs: { log_alpha: t([1], [-2]) },
    outputs: { kl: t([1], [1.5]), dkl_dlog_alpha: t([1], [-0.75]) },
  },
]);

/** schedule.kl_weight, (epoch - 5) / 15 clipped to [0, 1] (spec/objective.md#schedulekl_weight), ids from 10. */
const SCHEDULE = goldenFile('schedule.kl_weight', [
  { id: 10, comment: 'before the ramp', inputs: { epoch: 0 }, outputs: { kl_weight: scalar(0) } },
  {
    id: 11,
    comment: 'half way',
    flags: ['mid'],
    inputs: { epoch: 12.5 },
    outputs: { kl_weight: scalar(0.5) },
  },
  {
    id: 12,
    comment: 'ramp done',
    flags: ['end', 'mid'],
    inputs: { epoch: 20 },
    outputs: { kl_weight: scalar(1) },
  },
]);

/** kl.exact, never declared by the ports below: its cases are skipped, never compared. */
const KL_EXACT = goldenFile('kl.exact', [
  {
    id: 0,
    inputs: { log_alpha: t([1], [0]) },
    outputs: { kl: t([1], [0]), dkl_dlog_alpha: t([1], [0]) },
  },
]);

/** The golden outputs of a case of these files: what a right port answers. */
function goldenOutputs(file: GoldenFile, id: number): Record<string, Tensor> {
  return { ...file.cases.find((c) => c.id === id)!.outputs };
}

const outputs = (o: unknown): PortAnswer => ({ kind: 'outputs', outputs: o });

interface ScriptedPort extends Port {
  /** `op#id` of every case asked, in order. */
  readonly asked: string[];
  readonly received: PortCase[];
  /** The `graceful` argument of each close. */
  readonly closed: (boolean | undefined)[];
}

function scriptedPort(o: {
  ops: readonly string[];
  answer: (c: PortCase) => PortAnswer | Promise<PortAnswer>;
  profile?: string | null;
  dtype?: 'float64' | 'float32';
  name?: string;
  kind?: PortInfo['kind'];
  source?: string;
  notes?: string[];
  stderr?: string[];
  caseIds?: Record<string, string[]>;
}): ScriptedPort {
  const asked: string[] = [];
  const received: PortCase[] = [];
  const closed: (boolean | undefined)[] = [];
  const port: ScriptedPort = {
    info: {
      name: o.name ?? 'scripted',
      source: o.source ?? 'in-process',
      kind: o.kind ?? 'function',
      ops: o.ops,
      profile: o.profile === undefined ? 'molchanov2017' : o.profile,
      dtype: o.dtype ?? 'float64',
    },
    notes: o.notes ?? [],
    asked,
    received,
    closed,
    answer(c) {
      asked.push(`${c.op}#${c.caseId}`);
      received.push(c);
      return Promise.resolve(o.answer(c));
    },
    close(graceful?: boolean) {
      closed.push(graceful);
      return Promise.resolve();
    },
    stderrTail: () => o.stderr ?? [],
  };
  if (o.caseIds !== undefined) {
    const ids = o.caseIds;
    return { ...port, caseIds: (op: string) => ids[op] ?? [] };
  }
  return port;
}

/** A port that answers every case with its golden outputs. */
const rightAnswer = (files: readonly GoldenFile[]) => (c: PortCase) =>
  outputs(
    goldenOutputs(
      files.find((f) => f.op.name === c.op)!,
      c.caseId,
    ),
  );

function exactOutput(name: string, size: number) {
  return {
    name,
    ok: true,
    problem: null,
    ratio: 0,
    maxAbsError: 0,
    mismatches: 0,
    size,
    firstMismatch: null,
  };
}

function structural(name: string, problem: string) {
  return {
    name,
    ok: false,
    problem,
    ratio: Infinity,
    maxAbsError: Infinity,
    mismatches: 0,
    size: 0,
    firstMismatch: null,
  };
}

function caseOf(
  over: Partial<CaseResult> & Pick<CaseResult, 'op' | 'caseId' | 'status' | 'comment'>,
): CaseResult {
  return {
    flags: [],
    comparison: null,
    portError: null,
    noAnswer: null,
    fingerprint: null,
    inputs: null,
    translated: null,
    ...over,
  };
}

function opOf(over: Partial<OpResult> & Pick<OpResult, 'op' | 'section' | 'status'>): OpResult {
  return {
    cases: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    notRun: 0,
    worstRatio: null,
    worstAbsError: null,
    tolerance: DYADIC.float64,
    fingerprint: [],
    fingerprintChecked: 0,
    ...over,
  };
}

const KL_SECTION = 'spec/kl.md#klsum';
const SCHEDULE_SECTION = 'spec/objective.md#schedulekl_weight';
const KL_EXACT_SECTION = 'spec/kl.md#klexact';

describe('spec/check.md#report: the constants of a report', () => {
  it('the schema, the error of a check of nothing and the fingerprinted cases per op', () => {
    expect(REPORT_SCHEMA).toBe('vdspec-check-report/1');
    expect(NOTHING_CHECKED).toBe(
      'no case was checked: the port declares none of the selected ops (see --op, --profile and the ops it declares)',
    );
    expect(DEFAULT_FINGERPRINT_CASES).toBe(10);
  });
});

describe('spec/check.md#report: every input of a failed case on one line', () => {
  it('a tensor of at most six values in full, shape and all', () => {
    expect(
      summarizeInputs({
        x: t([2, 2], [1, -2, 0.5, 1.5]),
        six: t([2, 3], [1, 2, 3, 4, 5, 6]),
        s: scalar(2.5),
        specials: t([3], [NaN, -Infinity, -0]),
      }),
    ).toEqual([
      'x [2, 2] = [1, -2, 0.5, 1.5]',
      'six [2, 3] = [1, 2, 3, 4, 5, 6]',
      's [] = [2.5]',
      'specials [3] = [NaN, -inf, -0]',
    ]);
  });

  it('a larger tensor: its first six values, its size, and the min and max of its finite values', () => {
    expect(
      summarizeInputs({
        seven: t([7], [3, 1, 4, 1, 5, 9, 2]),
        mixed: t([2, 4], [NaN, -Infinity, 3, -0, 2, Infinity, 5, -1]),
        none: t([7], [NaN, NaN, Infinity, -Infinity, NaN, NaN, NaN]),
      }),
    ).toEqual([
      'seven [7] = [3, 1, 4, 1, 5, 9, ...] (7 values, min 1, max 9)',
      'mixed [2, 4] = [NaN, -inf, 3, -0, 2, inf, ...] (8 values, min -1, max 5)',
      'none [7] = [NaN, NaN, inf, -inf, NaN, NaN, ...] (7 values)',
    ]);
  });

  it('a list: up to twelve entries as JSON, then "..."', () => {
    const twelve = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    expect(
      summarizeInputs({
        labels: [0, 1, 2],
        twelve,
        thirteen: [...twelve, 12],
        words: ['a', 'b'],
        empty: [],
      }),
    ).toEqual([
      'labels = [0, 1, 2]',
      'twelve = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]',
      'thirteen = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...]',
      'words = ["a", "b"]',
      'empty = []',
    ]);
  });

  it('a number in its shortest form, anything else as JSON', () => {
    expect(
      summarizeInputs({
        epoch: 12.5,
        zero: -0,
        big: Infinity,
        layer: 'dense',
        train_clip: true,
        nothing: null,
        other: { a: 1 },
      }),
    ).toEqual([
      'epoch = 12.5',
      'zero = -0',
      'big = inf',
      'layer = "dense"',
      'train_clip = true',
      'nothing = null',
      'other = {"a":1}',
    ]);
  });
});

describe('spec/check.md#report: a port that answers every case right', () => {
  it('every case passed with err/tol 0, ops and cases in the order of the golden files, exit 0', async () => {
    const files = [KL_APPROX, SCHEDULE];
    const port = scriptedPort({
      ops: ['schedule.kl_weight', 'kl.approx'],
      answer: rightAnswer(files),
      notes: ['a note of the port'],
      stderr: ['the last line on stderr'],
    });
    const golden = goldenSet(files, { warnings: ['golden files not verified'] });
    const report = await runCheck(port, golden);
    expect(port.asked).toEqual([
      'kl.approx#0',
      'kl.approx#1',
      'schedule.kl_weight#10',
      'schedule.kl_weight#11',
      'schedule.kl_weight#12',
    ]);
    // The case as stored, both forms, untranslated.
    expect(port.received[0]).toEqual({
      op: 'kl.approx',
      caseId: 0,
      rawInputs: { log_alpha: { shape: [2], data: [0, 3] } },
      inputs: { log_alpha: t([2], [0, 3]) },
    });
    expect(port.received[2]).toEqual({
      op: 'schedule.kl_weight',
      caseId: 10,
      rawInputs: { epoch: 0 },
      inputs: { epoch: 0 },
    });
    expect(port.closed).toEqual([true]);
    const klPassed = {
      ok: true,
      ratio: 0,
      maxAbsError: 0,
    };
    expect(report).toEqual({
      schema: 'vdspec-check-report/1',
      port: {
        name: 'scripted',
        source: 'in-process',
        kind: 'function',
        ops: ['schedule.kl_weight', 'kl.approx'],
        profile: 'molchanov2017',
        dtype: 'float64',
      },
      profile: 'molchanov2017',
      translation: null,
      golden: { dir: '/hand', generator: { name: 'by hand', version: '1', seed: null } },
      ops: [
        opOf({
          op: 'kl.approx',
          section: KL_SECTION,
          status: 'passed',
          cases: 2,
          passed: 2,
          worstRatio: 0,
          worstAbsError: 0,
        }),
        opOf({
          op: 'schedule.kl_weight',
          section: SCHEDULE_SECTION,
          status: 'passed',
          cases: 3,
          passed: 3,
          worstRatio: 0,
          worstAbsError: 0,
        }),
      ],
      cases: [
        caseOf({
          op: 'kl.approx',
          caseId: 0,
          status: 'passed',
          comment: 'two values',
          flags: ['grid'],
          comparison: {
            ...klPassed,
            outputs: [exactOutput('kl', 2), exactOutput('dkl_dlog_alpha', 2)],
          },
        }),
        caseOf({
          op: 'kl.approx',
          caseId: 1,
          status: 'passed',
          comment: 'one value',
          comparison: {
            ...klPassed,
            outputs: [exactOutput('kl', 1), exactOutput('dkl_dlog_alpha', 1)],
          },
        }),
        ...[
          [10, 'before the ramp', []],
          [11, 'half way', ['mid']],
          [12, 'ramp done', ['end', 'mid']],
        ].map(([caseId, comment, flags]) =>
          caseOf({
            op: 'schedule.kl_weight',
            caseId: caseId as number,
            status: 'passed',
            comment: comment as string,
            flags: flags as string[],
            comparison: { ...klPassed, outputs: [exactOutput('kl_weight', 1)] },
          }),
        ),
      ],
      unknownResults: [],
      totals: { ops: 2, cases: 5, passed: 5, failed: 0, skipped: 0, notRun: 0, unknown: 0 },
      infrastructureError: null,
      notes: ['golden files not verified', 'a note of the port'],
      stderr: ['the last line on stderr'],
      exitCode: 0,
    });
  });
});

describe('spec/check.md#tolerance: a wrong, a missing or a misshaped output fails its case', () => {
  it('a value off by 2^-8 fails at err/tol 4; the worst ratio and |err| are over every answered case', async () => {
    const right = goldenOutputs(KL_APPROX, 0);
    const file = goldenFile('kl.approx', [
      ...KL_APPROX.cases.map((c) => ({ ...c, flags: [...c.flags] })),
      {
        id: 2,
        comment: 'another',
        inputs: { log_alpha: t([1], [1]) },
        outputs: { kl: t([1], [0.75]), dkl_dlog_alpha: t([1], [-0.5]) },
      },
    ]);
    const port = scriptedPort({
      ops: ['kl.approx'],
      answer: (c) =>
        c.caseId === 0
          ? // kl off by 3 * 2^-10 in its second value: err/tol 3 (1.5 under float32: no float32 match).
            outputs({ ...right, kl: t([2], [0.5, 0.25 + 3 * 2 ** -10]) })
          : c.caseId === 1
            ? // dkl off by 2^-8: err/tol 4, the worst.
              outputs({ kl: t([1], [1.5]), dkl_dlog_alpha: t([1], [-0.75 + 2 ** -8]) })
            : // off by 2^-11: err/tol 0.5, a pass.
              outputs({ kl: t([1], [0.75 - 2 ** -11]), dkl_dlog_alpha: t([1], [-0.5]) }),
    });
    const report = await runCheck(port, goldenSet([file]));
    expect(report.ops).toEqual([
      opOf({
        op: 'kl.approx',
        section: KL_SECTION,
        status: 'failed',
        cases: 3,
        passed: 1,
        failed: 2,
        worstRatio: 4,
        worstAbsError: 2 ** -8,
        fingerprintChecked: 2,
      }),
    ]);
    const [first, second, third] = report.cases;
    expect(first).toEqual(
      caseOf({
        op: 'kl.approx',
        caseId: 0,
        status: 'failed',
        comment: 'two values',
        flags: ['grid'],
        comparison: {
          ok: false,
          ratio: 3,
          maxAbsError: 3 * 2 ** -10,
          outputs: [
            {
              name: 'kl',
              ok: false,
              problem: null,
              ratio: 3,
              maxAbsError: 3 * 2 ** -10,
              mismatches: 1,
              size: 2,
              firstMismatch: {
                index: 1,
                position: [1],
                expected: 0.25,
                actual: 0.25 + 3 * 2 ** -10,
                error: 3 * 2 ** -10,
                allowed: 2 ** -10,
              },
            },
            exactOutput('dkl_dlog_alpha', 2),
          ],
        },
        // Fingerprinted: nothing known gives these made-up values.
        fingerprint: [],
        inputs: ['log_alpha [2] = [0, 3]'],
      }),
    );
    expect(second!.status).toBe('failed');
    expect(second!.comparison!.ratio).toBe(4);
    expect(second!.inputs).toEqual(['log_alpha [1] = [-2]']);
    expect(second!.fingerprint).toEqual([]);
    expect(third!.status).toBe('passed');
    expect(third!.comparison!.ratio).toBe(0.5);
    expect(third!.inputs).toBeNull();
    expect(third!.fingerprint).toBeNull();
    expect(report.totals).toEqual({
      ops: 1,
      cases: 3,
      passed: 1,
      failed: 2,
      skipped: 0,
      notRun: 0,
      unknown: 0,
    });
    expect(report.infrastructureError).toBeNull();
    expect(report.exitCode).toBe(1);
  });

  it('a missing output, a wrong shape and no outputs object fail at err/tol inf', async () => {
    const right0 = goldenOutputs(KL_APPROX, 0);
    const file = goldenFile('kl.approx', [
      ...KL_APPROX.cases.map((c) => ({ ...c })),
      {
        id: 2,
        inputs: { log_alpha: t([1], [1]) },
        outputs: { kl: t([1], [0.75]), dkl_dlog_alpha: t([1], [-0.5]) },
      },
    ]);
    const port = scriptedPort({
      ops: ['kl.approx'],
      answer: (c) =>
        c.caseId === 0
          ? outputs({ kl: right0['kl'] })
          : c.caseId === 1
            ? outputs({ kl: t([1], [1.5]), dkl_dlog_alpha: t([2], [-0.75, 0]) })
            : outputs([0.75, -0.5]),
    });
    const report = await runCheck(port, goldenSet([file]));
    expect(report.cases.map((c) => c.comparison)).toEqual([
      {
        ok: false,
        ratio: Infinity,
        maxAbsError: Infinity,
        outputs: [exactOutput('kl', 2), structural('dkl_dlog_alpha', 'missing from the answer')],
      },
      {
        ok: false,
        ratio: Infinity,
        maxAbsError: Infinity,
        outputs: [exactOutput('kl', 1), structural('dkl_dlog_alpha', 'shape [2], expected [1]')],
      },
      {
        ok: false,
        ratio: Infinity,
        maxAbsError: Infinity,
        outputs: [
          structural('kl', 'the answer has no outputs object'),
          structural('dkl_dlog_alpha', 'the answer has no outputs object'),
        ],
      },
    ]);
    expect(report.cases.map((c) => c.status)).toEqual(['failed', 'failed', 'failed']);
    expect(report.cases.map((c) => c.fingerprint)).toEqual([[], [], []]);
    expect(report.ops[0]).toEqual(
      opOf({
        op: 'kl.approx',
        section: KL_SECTION,
        status: 'failed',
        cases: 3,
        failed: 3,
        worstRatio: Infinity,
        worstAbsError: Infinity,
        fingerprintChecked: 3,
      }),
    );
    expect(report.exitCode).toBe(1);
  });

  it("the declared dtype picks the golden file's float32 or float64 tolerance", async () => {
    // 1 + 2^-10: 1 allowed error under float64 (abs 2^-10), 0.5 under float32 (abs 2^-9).
    // 0.5 + 2^-8: 4 and 2, a failure under both.
    const answer = (c: PortCase) =>
      outputs({
        kl_weight: scalar(c.caseId === 10 ? 0 : c.caseId === 11 ? 0.5 + 2 ** -8 : 1 + 2 ** -10),
      });
    const files = [SCHEDULE];
    const as32 = await runCheck(
      scriptedPort({ ops: ['schedule.kl_weight'], dtype: 'float32', answer }),
      goldenSet(files),
    );
    expect(as32.ops[0]).toEqual(
      opOf({
        op: 'schedule.kl_weight',
        section: SCHEDULE_SECTION,
        status: 'failed',
        cases: 3,
        passed: 2,
        failed: 1,
        worstRatio: 2,
        worstAbsError: 2 ** -8,
        tolerance: DYADIC.float32,
        fingerprintChecked: 1,
      }),
    );
    expect(as32.cases.map((c) => c.comparison!.ratio)).toEqual([0, 2, 0.5]);
    const as64 = await runCheck(
      scriptedPort({ ops: ['schedule.kl_weight'], dtype: 'float64', answer }),
      goldenSet(files),
    );
    expect(as64.cases.map((c) => c.comparison!.ratio)).toEqual([0, 4, 1]);
    expect(as64.cases.map((c) => c.status)).toEqual(['passed', 'failed', 'passed']);
    expect(as64.ops[0]!.tolerance).toEqual(DYADIC.float64);
  });
});

describe('spec/check.md#protocol: an error answer or no answer fails the case, and is not fingerprinted', () => {
  it('the message is kept as portError or noAnswer, with no comparison', async () => {
    const files = [KL_APPROX, SCHEDULE];
    const port = scriptedPort({
      ops: ['kl.approx', 'schedule.kl_weight'],
      answer: (c) =>
        c.op === 'kl.approx'
          ? { kind: 'error', message: 'not written yet' }
          : c.caseId === 10
            ? { kind: 'none', message: 'the results file has no entry for this case' }
            : c.caseId === 11
              ? { kind: 'error', message: 'refused' }
              : outputs({ kl_weight: scalar(1) }),
    });
    const report = await runCheck(port, goldenSet(files));
    expect(report.cases).toEqual([
      caseOf({
        op: 'kl.approx',
        caseId: 0,
        status: 'failed',
        comment: 'two values',
        flags: ['grid'],
        portError: 'not written yet',
        inputs: ['log_alpha [2] = [0, 3]'],
      }),
      caseOf({
        op: 'kl.approx',
        caseId: 1,
        status: 'failed',
        comment: 'one value',
        portError: 'not written yet',
        inputs: ['log_alpha [1] = [-2]'],
      }),
      caseOf({
        op: 'schedule.kl_weight',
        caseId: 10,
        status: 'failed',
        comment: 'before the ramp',
        noAnswer: 'the results file has no entry for this case',
        inputs: ['epoch = 0'],
      }),
      caseOf({
        op: 'schedule.kl_weight',
        caseId: 11,
        status: 'failed',
        comment: 'half way',
        flags: ['mid'],
        portError: 'refused',
        inputs: ['epoch = 12.5'],
      }),
      caseOf({
        op: 'schedule.kl_weight',
        caseId: 12,
        status: 'passed',
        comment: 'ramp done',
        flags: ['end', 'mid'],
        comparison: { ok: true, ratio: 0, maxAbsError: 0, outputs: [exactOutput('kl_weight', 1)] },
      }),
    ]);
    expect(report.ops).toEqual([
      // No answer with outputs: no worst ratio at all.
      opOf({ op: 'kl.approx', section: KL_SECTION, status: 'failed', cases: 2, failed: 2 }),
      opOf({
        op: 'schedule.kl_weight',
        section: SCHEDULE_SECTION,
        status: 'failed',
        cases: 3,
        passed: 1,
        failed: 2,
        worstRatio: 0,
        worstAbsError: 0,
      }),
    ]);
    expect(report.totals).toEqual({
      ops: 2,
      cases: 5,
      passed: 1,
      failed: 4,
      skipped: 0,
      notRun: 0,
      unknown: 0,
    });
    expect(report.exitCode).toBe(1);
    expect(port.closed).toEqual([true]);
  });

  it('a run whose only answers are errors has checked something: exit 1, not 2', async () => {
    const port = scriptedPort({
      ops: ['kl.approx'],
      answer: () => ({ kind: 'error', message: 'no' }),
    });
    const report = await runCheck(port, goldenSet([KL_APPROX]));
    expect(report.infrastructureError).toBeNull();
    expect(report.exitCode).toBe(1);
  });

  it('one pass and one failure: checked, exit 1', async () => {
    const port = scriptedPort({
      ops: ['kl.approx'],
      answer: (c) =>
        c.caseId === 0 ? outputs(goldenOutputs(KL_APPROX, 0)) : { kind: 'error', message: 'no' },
    });
    const report = await runCheck(port, goldenSet([KL_APPROX]));
    expect(report.totals).toEqual({
      ops: 1,
      cases: 2,
      passed: 1,
      failed: 1,
      skipped: 0,
      notRun: 0,
      unknown: 0,
    });
    expect(report.infrastructureError).toBeNull();
    expect(report.exitCode).toBe(1);
  });
});

describe('spec/check.md#what-ends-a-run: a port that can no longer be talked to', () => {
  it('the case it failed on and every later one not run, skipped cases still skipped, the port killed, exit 2 over 1', async () => {
    const message =
      'the port exited with code 1 while the runner waited for its answer to case kl.approx#1';
    const files = [KL_APPROX, KL_EXACT, SCHEDULE];
    const port = scriptedPort({
      ops: ['kl.approx', 'schedule.kl_weight'],
      answer: (c) => {
        if (c.caseId === 1) throw new CheckInfrastructureError('port', message);
        return outputs({ kl: goldenOutputs(KL_APPROX, 0)['kl'] });
      },
    });
    const report = await runCheck(port, goldenSet(files), { skipFlags: ['end'] });
    expect(port.asked).toEqual(['kl.approx#0', 'kl.approx#1']);
    expect(port.closed).toEqual([false]);
    expect(report.cases.map((c) => [c.op, c.caseId, c.status])).toEqual([
      ['kl.approx', 0, 'failed'],
      ['kl.approx', 1, 'not_run'],
      ['kl.exact', 0, 'skipped'],
      ['schedule.kl_weight', 10, 'not_run'],
      ['schedule.kl_weight', 11, 'not_run'],
      ['schedule.kl_weight', 12, 'skipped'],
    ]);
    expect(report.cases[1]).toEqual(
      caseOf({ op: 'kl.approx', caseId: 1, status: 'not_run', comment: 'one value' }),
    );
    expect(report.ops).toEqual([
      opOf({
        op: 'kl.approx',
        section: KL_SECTION,
        status: 'failed',
        cases: 2,
        failed: 1,
        notRun: 1,
        worstRatio: Infinity,
        worstAbsError: Infinity,
        fingerprintChecked: 1,
      }),
      opOf({ op: 'kl.exact', section: KL_EXACT_SECTION, status: 'skipped', cases: 1, skipped: 1 }),
      opOf({
        op: 'schedule.kl_weight',
        section: SCHEDULE_SECTION,
        status: 'not_run',
        cases: 3,
        skipped: 1,
        notRun: 2,
      }),
    ]);
    expect(report.totals).toEqual({
      ops: 3,
      cases: 6,
      passed: 0,
      failed: 1,
      skipped: 2,
      notRun: 3,
      unknown: 0,
    });
    expect(report.infrastructureError).toBe(message);
    expect(report.notes).toEqual(['1 case flagged end skipped (--skip-flag)']);
    expect(report.exitCode).toBe(2);
  });

  it('lost at the first case: its message, not "no case was checked"', async () => {
    const port = scriptedPort({
      ops: ['schedule.kl_weight'],
      answer: () => {
        throw new CheckInfrastructureError('port', 'hung');
      },
    });
    const report = await runCheck(port, goldenSet([SCHEDULE]));
    expect(report.infrastructureError).toBe('hung');
    expect(report.cases.map((c) => c.status)).toEqual(['not_run', 'not_run', 'not_run']);
    expect(report.ops[0]!.status).toBe('not_run');
    expect(port.asked).toEqual(['schedule.kl_weight#10']);
    expect(report.exitCode).toBe(2);
  });

  it('any other exception is an internal error: the run stops there, the port is killed, the rest is not run', async () => {
    for (const thrown of [new Error('boom'), 'boom']) {
      const port = scriptedPort({
        ops: ['kl.approx', 'schedule.kl_weight'],
        answer: (c) => {
          if (c.caseId === 11) throw thrown;
          return rightAnswer([KL_APPROX, SCHEDULE])(c);
        },
      });
      const report = await runCheck(port, goldenSet([KL_APPROX, SCHEDULE]));
      expect(report.infrastructureError).toBe('internal error while checking: boom');
      expect(port.closed).toEqual([false]);
      // The case that threw and the ones after it are listed as not run, so the op cut short
      // does not read as passed.
      expect(report.cases.map((c) => `${c.op}#${c.caseId}:${c.status}`)).toEqual([
        'kl.approx#0:passed',
        'kl.approx#1:passed',
        'schedule.kl_weight#10:passed',
        'schedule.kl_weight#11:not_run',
        'schedule.kl_weight#12:not_run',
      ]);
      expect(report.ops.map((o) => `${o.op}:${o.status}`)).toEqual([
        'kl.approx:passed',
        'schedule.kl_weight:not_run',
      ]);
      expect(report.totals.notRun).toBe(2);
      expect(report.exitCode).toBe(2);
    }
  });
});

describe('spec/check.md#protocol: ops the port does not declare, and a check of nothing', () => {
  it('every case skipped is no check: "no case was checked", exit 2', async () => {
    const port = scriptedPort({ ops: ['kl.exact'], answer: () => outputs({}) });
    const report = await runCheck(port, goldenSet([KL_APPROX, SCHEDULE]));
    expect(port.asked).toEqual([]);
    expect(port.closed).toEqual([true]);
    expect(report.cases.map((c) => c.status)).toEqual([
      'skipped',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(report.ops).toEqual([
      opOf({ op: 'kl.approx', section: KL_SECTION, status: 'skipped', cases: 2, skipped: 2 }),
      opOf({
        op: 'schedule.kl_weight',
        section: SCHEDULE_SECTION,
        status: 'skipped',
        cases: 3,
        skipped: 3,
      }),
    ]);
    expect(report.notes).toEqual([
      'declared by the port but without golden files for molchanov2017: kl.exact',
    ]);
    expect(report.infrastructureError).toBe(
      'no case was checked: the port declares none of the selected ops (see --op, --profile and the ops it declares)',
    );
    expect(report.exitCode).toBe(2);
  });

  it('ops without a golden file are noted; ops with one that --op left out are not', async () => {
    const port = scriptedPort({
      ops: ['kl.approx', 'svd.mask', 'schedule.kl_weight', 'kl.layer'],
      answer: rightAnswer([SCHEDULE]),
    });
    const golden = goldenSet([SCHEDULE], {
      available: ['kl.approx', 'kl.exact', 'schedule.kl_weight'],
    });
    const report = await runCheck(port, golden);
    expect(report.notes).toEqual([
      'declared by the port but without golden files for molchanov2017: svd.mask, kl.layer',
    ]);
    expect(report.ops.map((o) => o.op)).toEqual(['schedule.kl_weight']);
    expect(report.exitCode).toBe(0);
  });

  it("a golden file without cases is an empty op; the generator is the first file's", async () => {
    const empty = goldenFile('kl.exact', [], DYADIC, { name: 'first', version: '2', seed: 7 });
    const port = scriptedPort({
      ops: ['kl.exact', 'schedule.kl_weight'],
      answer: rightAnswer([SCHEDULE]),
    });
    const report = await runCheck(port, goldenSet([empty, SCHEDULE]));
    expect(report.ops[0]).toEqual(
      opOf({ op: 'kl.exact', section: KL_EXACT_SECTION, status: 'empty' }),
    );
    expect(report.ops[1]!.status).toBe('passed');
    expect(report.golden).toEqual({
      dir: '/hand',
      generator: { name: 'first', version: '2', seed: 7 },
    });
    expect(report.exitCode).toBe(0);
  });

  it('no golden file at all: no generator, nothing checked', async () => {
    const port = scriptedPort({ ops: ['kl.approx'], answer: () => outputs({}) });
    const report = await runCheck(port, goldenSet([]));
    expect(report.golden).toEqual({ dir: '/hand', generator: null });
    expect(report.ops).toEqual([]);
    expect(report.totals).toEqual({
      ops: 0,
      cases: 0,
      passed: 0,
      failed: 0,
      skipped: 0,
      notRun: 0,
      unknown: 0,
    });
    expect(report.infrastructureError).toBe(NOTHING_CHECKED);
    expect(report.exitCode).toBe(2);
  });
});

describe('spec/check.md#usage: --skip-flag', () => {
  it('a case is skipped under the first of its flags named; a note per flag, in order, singular or plural', async () => {
    const port = scriptedPort({
      ops: ['kl.approx', 'schedule.kl_weight'],
      answer: rightAnswer([KL_APPROX, SCHEDULE]),
      notes: ['the port says hello'],
    });
    const report = await runCheck(port, goldenSet([KL_APPROX, SCHEDULE], { warnings: ['w'] }), {
      skipFlags: ['mid', 'grid', 'end'],
    });
    expect(port.asked).toEqual(['kl.approx#1', 'schedule.kl_weight#10']);
    expect(report.cases.map((c) => c.status)).toEqual([
      'skipped',
      'passed',
      'passed',
      'skipped',
      'skipped',
    ]);
    expect(report.cases[0]).toEqual(
      caseOf({
        op: 'kl.approx',
        caseId: 0,
        status: 'skipped',
        comment: 'two values',
        flags: ['grid'],
      }),
    );
    expect(report.ops.map((o) => [o.status, o.passed, o.skipped])).toEqual([
      ['passed', 1, 1],
      ['passed', 1, 2],
    ]);
    // In the order first met; case 12 carries end and mid: counted under end, the first of its
    // own flags named (not the first of --skip-flag's).
    expect(report.notes).toEqual([
      'w',
      'the port says hello',
      '1 case flagged grid skipped (--skip-flag)',
      '1 case flagged mid skipped (--skip-flag)',
      '1 case flagged end skipped (--skip-flag)',
    ]);
    expect(report.exitCode).toBe(0);
  });

  it('two cases of one flag: "2 cases"', async () => {
    const port = scriptedPort({
      ops: ['kl.approx', 'schedule.kl_weight'],
      answer: rightAnswer([KL_APPROX, SCHEDULE]),
    });
    const report = await runCheck(port, goldenSet([KL_APPROX, SCHEDULE]), { skipFlags: ['mid'] });
    expect(report.notes).toEqual(['2 cases flagged mid skipped (--skip-flag)']);
    expect(report.totals.skipped).toBe(2);
  });
});

describe('spec/check.md#results-file: answers for case ids the golden set does not have', () => {
  it('listed by op and id, counted, and exit 1 though every case passed', async () => {
    const port = scriptedPort({
      ops: ['kl.approx', 'schedule.kl_weight'],
      kind: 'results',
      source: 'r.json',
      answer: rightAnswer([KL_APPROX, SCHEDULE]),
      // kl.exact is not declared: its ids are not looked at.
      caseIds: { 'schedule.kl_weight': ['10', '13', '11', '12', 'x'], 'kl.exact': ['5'] },
    });
    const report = await runCheck(port, goldenSet([KL_APPROX, KL_EXACT, SCHEDULE]));
    expect(report.unknownResults).toEqual([
      { op: 'schedule.kl_weight', caseId: '13' },
      { op: 'schedule.kl_weight', caseId: 'x' },
    ]);
    expect(report.totals).toEqual({
      ops: 3,
      cases: 6,
      passed: 5,
      failed: 0,
      skipped: 1,
      notRun: 0,
      unknown: 2,
    });
    expect(report.infrastructureError).toBeNull();
    expect(report.exitCode).toBe(1);
  });
});

describe('spec/check.md#protocol: an op name vdspec does not know is refused', () => {
  const info = (over: Partial<PortInfo>): PortInfo => ({
    name: 'my port',
    source: 'in-process',
    kind: 'function',
    ops: [],
    profile: 'molchanov2017',
    dtype: 'float64',
    ...over,
  });

  it('the message names the names, the near ones, and where they were declared', () => {
    expect(unknownOpsProblem(info({ ops: ['kl.approx', 'schedule.kl_weight'] }))).toBeNull();
    expect(unknownOpsProblem(info({ ops: ['kl_approx', 'kl.approx'] }))).toBe(
      'the port "my port" declares an op name vdspec does not know: "kl_approx" (did you mean kl.approx?); the operations are listed in spec/ops.md (vdspec eval --list)',
    );
    expect(unknownOpsProblem(info({ kind: 'process', ops: ['kl_approx', 'zzzz'] }))).toBe(
      'the port\'s hello: /ops holds op names vdspec does not know: "kl_approx" (did you mean kl.approx?), "zzzz"; the operations are listed in spec/ops.md (vdspec eval --list)',
    );
    expect(unknownOpsProblem(info({ kind: 'results', source: 'r.json', ops: ['svd.mask2'] }))).toBe(
      'results file r.json: /results holds an op name vdspec does not know: "svd.mask2" (did you mean svd.mask, svd.log_alpha, svd.dense.train?); the operations are listed in spec/ops.md (vdspec eval --list)',
    );
  });

  it('runCheck refuses it before asking anything, and closes the port at once', async () => {
    const port = scriptedPort({
      name: 'my port',
      ops: ['kl_approx', 'schedule.kl_weight'],
      answer: rightAnswer([SCHEDULE]),
    });
    const caught = await runCheck(port, goldenSet([SCHEDULE])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(caught).toBeInstanceOf(CheckInfrastructureError);
    expect((caught as CheckInfrastructureError).kind).toBe('usage');
    expect((caught as CheckInfrastructureError).message).toBe(
      'the port "my port" declares an op name vdspec does not know: "kl_approx" (did you mean kl.approx?); the operations are listed in spec/ops.md (vdspec eval --list)',
    );
    expect(port.asked).toEqual([]);
    expect(port.closed).toEqual([false]);
  });
});

describe('spec/check.md#cross-profile-runs: the profile the port declares', () => {
  const golden = () => goldenSet([SCHEDULE], { warnings: ['w'] });
  const port = (profile: string | null) =>
    scriptedPort({
      ops: ['schedule.kl_weight', 'svd.mask'],
      profile,
      answer: rightAnswer([SCHEDULE]),
      notes: ['port note'],
    });
  const extra = 'declared by the port but without golden files for molchanov2017: svd.mask';

  it('none, or the golden one: no note, nothing translated', async () => {
    for (const profile of [null, 'molchanov2017']) {
      const report = await runCheck(port(profile), golden());
      expect(report.translation).toBeNull();
      expect(report.notes).toEqual(['w', extra, 'port note']);
      expect(report.port.profile).toBe(profile);
      expect(report.profile).toBe('molchanov2017');
    }
  });

  it('one vdspec does not know: said so, inputs untranslated', async () => {
    const report = await runCheck(port('my-lab'), golden());
    expect(report.translation).toBeNull();
    expect(report.notes).toEqual([
      'w',
      'the port declares profile "my-lab"; it is checked against the "molchanov2017" golden files',
      'the port declares profile "my-lab", which vdspec does not know: its inputs are sent as the molchanov2017 golden files name them (log_sigma2), untranslated',
      extra,
      'port note',
    ]);
    expect(report.exitCode).toBe(0);
  });

  it("another algorithm's profile: refused, the port closed, nothing asked", async () => {
    const p = port('kingma2015');
    const caught = await runCheck(p, golden()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(caught).toBeInstanceOf(CheckInfrastructureError);
    expect((caught as CheckInfrastructureError).kind).toBe('usage');
    expect((caught as CheckInfrastructureError).message).toBe(
      'the port implements kingma2015 (VD, learns log_alpha) and cannot be checked against molchanov2017 (SVD, learns log_sigma2): no translation between the two exists; check it against a profile of its own algorithm',
    );
    expect(p.asked).toEqual([]);
    expect(p.closed).toEqual([undefined]);
  });

  it('a port learning log_sigma: sent log_sigma = log_sigma2 / 2, its gradient read back; failed cases say what was translated', async () => {
    // kl.layer's golden values are the reference's; the port answers them in its own names.
    const klLayer = goldenFile(
      'kl.layer',
      [
        { id: 0, inputs: { theta: t([1, 2], [1, -0.5]), log_sigma2: t([1, 2], [0, -1]) } },
        { id: 1, inputs: { theta: t([1, 1], [2]), log_sigma2: t([1, 1], [1]) } },
        { id: 2, inputs: { theta: t([1, 1], [2]), log_sigma2: t([1, 1], [3]) } },
      ],
      FIXTURE_TOLERANCE,
    );
    const p = scriptedPort({
      ops: ['kl.layer', 'schedule.kl_weight'],
      profile: 'deepbayes-pytorch',
      answer: (c) => {
        if (c.op === 'schedule.kl_weight') {
          return c.caseId === 10
            ? { kind: 'error', message: 'no' }
            : c.caseId === 11
              ? { kind: 'none', message: 'no entry' }
              : outputs({ kl_weight: scalar(0.5) });
        }
        if (c.caseId === 2) return { kind: 'error', message: 'refused' };
        const g = goldenOutputs(klLayer, c.caseId);
        const twice = (x: Tensor) =>
          t(
            x.shape as number[],
            x.data.map((v) => 2 * v),
          );
        return outputs({
          kl: c.caseId === 0 ? g['kl'] : scalar(g['kl']!.data[0]! + 1),
          grad_theta: g['grad_theta'],
          grad_log_sigma: twice(g['grad_log_sigma2']!),
        });
      },
    });
    const report = await runCheck(p, goldenSet([klLayer, SCHEDULE]), { fingerprintCases: 0 });
    expect(p.received[0]).toEqual({
      op: 'kl.layer',
      caseId: 0,
      rawInputs: {
        theta: { shape: [1, 2], data: [1, -0.5] },
        log_sigma: { shape: [1, 2], data: [0, -0.5] },
      },
      inputs: { theta: t([1, 2], [1, -0.5]), log_sigma: t([1, 2], [0, -0.5]) },
    });
    expect(report.translation).toEqual({
      golden: 'log_sigma2',
      port: 'log_sigma',
      factor: 0.5,
      input: 'log_sigma = log_sigma2 / 2',
      output: 'grad_log_sigma2 = grad_log_sigma / 2',
    });
    const sent = 'input log_sigma2 sent as log_sigma = log_sigma2 / 2';
    const read = 'output grad_log_sigma read as grad_log_sigma2 = grad_log_sigma / 2';
    expect(report.cases.map((c) => [c.op, c.caseId, c.status, c.translated])).toEqual([
      ['kl.layer', 0, 'passed', null],
      ['kl.layer', 1, 'failed', [sent, read]],
      ['kl.layer', 2, 'failed', [sent]],
      ['schedule.kl_weight', 10, 'failed', []],
      ['schedule.kl_weight', 11, 'failed', []],
      ['schedule.kl_weight', 12, 'failed', []],
    ]);
    expect(report.cases[0]!.comparison!.ratio).toBe(0);
    expect(report.cases[1]!.comparison!.outputs.map((o) => o.ok)).toEqual([false, true, true]);
    expect(report.cases[4]!.noAnswer).toBe('no entry');
    // fingerprintCases 0: nothing fingerprinted.
    expect(report.cases.map((c) => c.fingerprint)).toEqual([null, null, null, null, null, null]);
    expect(report.ops.map((o) => [o.fingerprintChecked, o.fingerprint])).toEqual([
      [0, []],
      [0, []],
    ]);
    expect(report.notes).toEqual([
      'the port declares profile "deepbayes-pytorch"; it is checked against the "molchanov2017" golden files',
      "the port learns log_sigma (deepbayes-pytorch), the molchanov2017 golden files log_sigma2: every log_sigma2 input is sent as log_sigma = log_sigma2 / 2, and the port's grad_log_sigma is read back as grad_log_sigma2 = grad_log_sigma / 2",
    ]);
    expect(report.exitCode).toBe(1);
  });
});

/** The float32 fallback of the fingerprint (spec/check.md#fingerprint). */
const FLOAT32_ARITHMETIC = {
  kind: 'bug',
  id: 'bug:float32_arithmetic',
  text: 'common mistake: the answer is within the float32 tolerance, not the float64 one: computed in float32 while declaring float64? (declare "dtype": "float32"; it is PyTorch\'s default)',
};

describe('spec/check.md#fingerprint: which failed cases are fingerprinted', () => {
  /** Thirteen cases at epoch 0 (kl_weight 0): 0 passes, 1 an error, 2-12 wrong (kl_weight 1). */
  const many = goldenFile(
    'schedule.kl_weight',
    Array.from({ length: 13 }, (_, id) => ({
      id,
      inputs: { epoch: 0 },
      outputs: { kl_weight: scalar(0) },
    })),
  );
  const port = () =>
    scriptedPort({
      ops: ['schedule.kl_weight'],
      answer: (c) =>
        c.caseId === 0
          ? outputs({ kl_weight: scalar(0) })
          : c.caseId === 1
            ? { kind: 'error', message: 'no' }
            : outputs({ kl_weight: scalar(1) }),
    });
  const fingerprinted = (cases: readonly CaseResult[]) =>
    cases.filter((c) => c.fingerprint !== null).map((c) => c.caseId);

  it('by default the first 10 answered with outputs; passes and error answers never', async () => {
    const report = await runCheck(port(), goldenSet([many]));
    expect(fingerprinted(report.cases)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // Nothing known answers 1 where 0 is expected.
    expect(report.cases[2]!.fingerprint).toEqual([]);
    expect(report.ops[0]!.fingerprintChecked).toBe(10);
    expect(report.ops[0]!.fingerprint).toEqual([]);
    expect(report.ops[0]!.failed).toBe(12);
  });

  it('the option fingerprintCases: 3, the first three', async () => {
    const report = await runCheck(port(), goldenSet([many]), { fingerprintCases: 3 });
    expect(fingerprinted(report.cases)).toEqual([2, 3, 4]);
    expect(report.ops[0]!.fingerprintChecked).toBe(3);
  });

  it('within the float32 tolerance and nothing else matching: float32 arithmetic, for a float64 port', async () => {
    // 0.5 + 1.5 * 2^-10: err/tol 1.5 under float64, inside float32's abs 2^-9. 1 + 2^-7: outside both.
    const p = scriptedPort({
      ops: ['schedule.kl_weight'],
      answer: (c) =>
        outputs({
          kl_weight: scalar(
            c.caseId === 10 ? 0 : c.caseId === 11 ? 0.5 + 1.5 * 2 ** -10 : 1 + 2 ** -7,
          ),
        }),
    });
    const report = await runCheck(p, goldenSet([SCHEDULE]));
    expect(report.cases.map((c) => c.fingerprint)).toEqual([null, [FLOAT32_ARITHMETIC], []]);
    expect(report.ops[0]!.fingerprint).toEqual([
      { ...FLOAT32_ARITHMETIC, matched: 1, checked: 2, contradicted: 0, contradictedIn: [] },
    ]);
    expect(report.ops[0]!.fingerprintChecked).toBe(2);
  });

  it('not offered when a known convention matches, even inside the float32 tolerance', async () => {
    // state-of-sparsity's log(theta^2 + 1e-8): at theta = 1 about 1e-8 below the golden 0, outside
    // the fixture's float64 tolerance (abs 1e-11), inside its float32 one (abs 1e-5).
    const file = goldenFile(
      'svd.log_alpha',
      [{ id: 0, inputs: { theta: t([1, 1], [1]), log_sigma2: t([1, 1], [0]) } }],
      FIXTURE_TOLERANCE,
    );
    const p = scriptedPort({
      ops: ['svd.log_alpha'],
      answer: (c) =>
        outputs(run('svd.log_alpha', c.inputs as Record<string, unknown>, 'state-of-sparsity')),
    });
    const report = await runCheck(p, goldenSet([file]));
    expect(report.cases[0]!.status).toBe('failed');
    const ids = report.cases[0]!.fingerprint!.map((d) => d.id);
    expect(ids).toContain('profile:state-of-sparsity');
    expect(ids).not.toContain('bug:float32_arithmetic');
  });
});

describe('spec/check.md#fingerprint: the tally per op, contradicted by passes, ranked', () => {
  // A port with deepbayes-pytorch's KL (constant omitted, log_alpha clipped to [-10, 10]):
  // on kl.approx both "the constant omitted" and the whole profile explain every failure;
  // on kl.layer at log_alpha = 9 only the profile (the golden clips to 8).
  const klApprox = goldenFile(
    'kl.approx',
    [
      { id: 0, inputs: { log_alpha: t([2], [0, 3]) } },
      { id: 1, inputs: { log_alpha: t([1], [-2]) } },
    ],
    FIXTURE_TOLERANCE,
  );
  const klLayer = goldenFile(
    'kl.layer',
    [
      { id: 0, inputs: { theta: t([1, 1], [1]), log_sigma2: t([1, 1], [9]) } },
      { id: 1, inputs: { theta: t([1, 2], [1, -0.5]), log_sigma2: t([1, 2], [0, -1]) } },
    ],
    FIXTURE_TOLERANCE,
  );
  // Passed by the port (the golden convention): a log_alpha of 9 or 9.5 (clipped to 8) contradicts
  // deepbayes-pytorch's clip. By input size (theta and log_sigma2 elements): 8, 4, 6, 2; the
  // smallest, 2, contradicts nothing. The three smallest (2, 4, 6) are sampled: 2 contradict.
  const logAlpha = goldenFile(
    'svd.log_alpha',
    [
      { id: 0, inputs: { theta: t([2, 2], [1, 1, 1, 1]), log_sigma2: t([2, 2], [9, 0, 0, 0]) } },
      {
        id: 1,
        inputs: { theta: t([1, 2], [1, 1]), log_sigma2: t([1, 2], [9.5, 0]), layer: 'dense' },
      },
      { id: 2, inputs: { theta: t([1, 3], [1, 1, 1]), log_sigma2: t([1, 3], [0, 9, 1]) } },
      { id: 3, inputs: { theta: t([1, 1], [2]), log_sigma2: t([1, 1], [1]) } },
    ],
    FIXTURE_TOLERANCE,
  );
  const half = (x: Tensor) =>
    t(
      x.shape as number[],
      x.data.map((v) => v / 2),
    );
  const port = () =>
    scriptedPort({
      ops: ['kl.approx', 'kl.layer', 'svd.log_alpha'],
      answer: (c) => {
        const inputs = c.inputs as Record<string, unknown>;
        if (c.op === 'svd.log_alpha') return outputs(run(c.op, inputs, 'molchanov2017'));
        if (c.op === 'kl.approx') return outputs(run(c.op, inputs, 'deepbayes-pytorch'));
        const { log_sigma2, ...rest } = inputs as { log_sigma2: Tensor };
        const out = run(c.op, { ...rest, log_sigma: half(log_sigma2) }, 'deepbayes-pytorch');
        return outputs({
          kl: out['kl'],
          grad_theta: out['grad_theta'],
          grad_log_sigma2: half(out['grad_log_sigma']!),
        });
      },
    });
  const constant = {
    kind: 'convention',
    id: 'convention:kl.constant="omitted"',
    text: expect.stringMatching(/^convention: your KL omits the constant/),
  };
  const deepbayes = {
    kind: 'profile',
    id: 'profile:deepbayes-pytorch',
    text: expect.stringMatching(/^your answer matches the deepbayes-pytorch profile/),
  };
  const entry = (
    d: typeof constant,
    matched: number,
    contradicted = 0,
    contradictedIn: string[] = [],
  ) => ({ ...d, matched, checked: 2, contradicted, contradictedIn });

  it('one op: tied on everything, a convention before a whole profile', async () => {
    const report = await runCheck(port(), goldenSet([klApprox]));
    expect(report.ops[0]!.fingerprint).toEqual([entry(constant, 2), entry(deepbayes, 2)]);
    expect(report.cases.map((c) => c.fingerprint!.map((d) => d.id))).toEqual([
      [constant.id, deepbayes.id],
      [constant.id, deepbayes.id],
    ]);
  });

  it('more failed cases explained first; on a tie, more explained over every op', async () => {
    const report = await runCheck(port(), goldenSet([klApprox, klLayer]));
    // The profile explains 4 failures over both ops, the constant 3.
    expect(report.ops.map((o) => o.fingerprint)).toEqual([
      [entry(deepbayes, 2), entry(constant, 2)],
      [entry(deepbayes, 2), entry(constant, 1)],
    ]);
    expect(report.cases.map((c) => c.fingerprint!.map((d) => d.id))).toEqual([
      [constant.id, deepbayes.id],
      [constant.id, deepbayes.id],
      [deepbayes.id],
      [constant.id, deepbayes.id],
    ]);
    expect(report.ops.map((o) => o.fingerprintChecked)).toEqual([2, 2]);
  });

  it("a diagnosis the port's passes contradict ranks last, whatever it explains", async () => {
    const report = await runCheck(port(), goldenSet([klApprox, klLayer, logAlpha]));
    expect(report.cases.slice(4).map((c) => c.status)).toEqual([
      'passed',
      'passed',
      'passed',
      'passed',
    ]);
    const against = ['svd.log_alpha'];
    expect(report.ops.map((o) => o.fingerprint)).toEqual([
      [entry(constant, 2), entry(deepbayes, 2, 2, against)],
      [entry(constant, 1), entry(deepbayes, 2, 2, against)],
      [],
    ]);
    expect(report.ops[2]!.fingerprintChecked).toBe(0);
  });

  it('tied on everything else: a convention before a whole profile, though the profile matched first', async () => {
    // Case 0 (log_alpha 9) is answered as deepbayes-pytorch: only the profile matches. Case 1
    // (log_alpha 9.5) as the golden profile with the constant omitted, clip kept: only the
    // convention. One failure each, over every op too.
    const klLayerTwo = goldenFile(
      'kl.layer',
      [
        { id: 0, inputs: { theta: t([1, 1], [1]), log_sigma2: t([1, 1], [9]) } },
        { id: 1, inputs: { theta: t([1, 1], [1]), log_sigma2: t([1, 1], [9.5]) } },
      ],
      FIXTURE_TOLERANCE,
    );
    const omitted = { ...MOLCHANOV, kl: { ...MOLCHANOV.kl, constant: 'omitted' as const } };
    const p = scriptedPort({
      ops: ['kl.layer'],
      answer: (c) => {
        const inputs = c.inputs as Record<string, unknown>;
        if (c.caseId === 1) return outputs(run(c.op, inputs, omitted));
        const { log_sigma2, ...rest } = inputs as { log_sigma2: Tensor };
        const out = run(c.op, { ...rest, log_sigma: half(log_sigma2) }, 'deepbayes-pytorch');
        return outputs({
          kl: out['kl'],
          grad_theta: out['grad_theta'],
          grad_log_sigma2: half(out['grad_log_sigma']!),
        });
      },
    });
    const report = await runCheck(p, goldenSet([klLayerTwo]));
    expect(report.cases.map((c) => c.fingerprint!.map((d) => d.id))).toEqual([
      [deepbayes.id],
      [constant.id],
    ]);
    expect(report.ops[0]!.fingerprint).toEqual([entry(constant, 1), entry(deepbayes, 1)]);
  });
});
