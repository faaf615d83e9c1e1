/**
 * Issue 14: `vdspec fuzz` (spec/fuzz.md). The NumPy example port passes a
 * small budget; planted bugs are found, shrunk to a handful of elements and
 * diagnosed; the fast implementation (in-process, float32) passes a short
 * budget; runs are deterministic for a seed; --save-failures writes golden
 * files `vdspec check` reads; bad calls exit 2 with one line.
 *
 * The NumPy tests need python3 with numpy (VDSPEC_PYTHON, as check.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { functionPort } from '../../src/check/port.js';
import { runCheckCommand } from '../../src/cli/check.js';
import { runFuzzCommand, timeLimitSummary } from '../../src/cli/fuzz.js';
import { initBackend } from '../../src/fast/backend.js';
import { FAST_UNSUPPORTED_OPS, fastRun } from '../../src/fast/run.js';
import { NO_CASE_IN_TIME, NOTHING_FUZZED, runFuzz } from '../../src/fuzz/runner.js';
import { getOp, OPS } from '../../src/ops.js';
import { PROFILES } from '../../src/profiles.js';
import { run as reference } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';

const NUMPY_PORT = fileURLToPath(
  new URL('../../examples/ports/numpy/vdspec_port.py', import.meta.url),
);
const PYTHON = process.env['VDSPEC_PYTHON'] ?? 'python3';
const HAS_NUMPY = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
if (!HAS_NUMPY && process.env['VDSPEC_REQUIRE_NUMPY'] === '1') {
  throw new Error(`VDSPEC_REQUIRE_NUMPY=1 but ${PYTHON} has no numpy`);
}
/** spec/schemas/fuzz-report.schema.json (with the check report it refers to): real reports must match it. */
const reportSchemas = new Ajv2020({ strict: true, allErrors: true });
for (const name of ['check-report', 'fuzz-report']) {
  const url = new URL(`../../spec/schemas/${name}.schema.json`, import.meta.url);
  reportSchemas.addSchema(JSON.parse(readFileSync(url, 'utf8')) as object, name);
}
function expectReportSchema(report: unknown): void {
  const validate = reportSchemas.getSchema('fuzz-report')!;
  expect(validate(report) ? '' : reportSchemas.errorsText(validate.errors)).toBe('');
}
const numpy = (...args: string[]) => `"${PYTHON}" "${NUMPY_PORT}" ${args.join(' ')}`;

const STACK_FRAME = /\n\s+at .+:\d+:\d+\)?/;
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function fuzz(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runFuzzCommand(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
  );
  const r = { code, out: out.join('\n'), err: err.join('\n') };
  expect(r.out + r.err).not.toMatch(STACK_FRAME);
  return r;
}

interface JsonReport {
  exitCode: number;
  seed: number;
  ops: {
    op: string;
    status: string;
    runs: number;
    path: string | null;
    minimal: Record<string, unknown> | null;
    replay: string | null;
  }[];
  check: {
    cases: { op: string; fingerprint: { id: string; text: string }[] | null }[];
  } | null;
}

/** Elements of every tensor input of a case (encoded form). */
function elements(inputs: Record<string, unknown>): number {
  return Object.values(inputs)
    .filter((v): v is Tensor => typeof v === 'object' && v !== null && 'data' in v)
    .reduce((a, t) => a + t.data.length, 0);
}

// Skipped without numpy (CI sets VDSPEC_REQUIRE_NUMPY=1, which makes that an error above).
describe.skipIf(!HAS_NUMPY)('vdspec fuzz: the NumPy example port (spec/fuzz.md)', () => {
  it('passes a small budget on every op of molchanov2017 and kingma2015', async () => {
    for (const profile of ['molchanov2017', 'kingma2015']) {
      const r = await fuzz(['--port', numpy('--profile', profile), '--runs', '15', '--json']);
      const report = JSON.parse(r.out) as JsonReport;
      expect(r.code, r.out).toBe(0);
      expectReportSchema(report);
      expect(report.ops.length).toBeGreaterThan(10);
      for (const o of report.ops) {
        expect(o.status, o.op).toBe('passed');
        expect(o.runs, o.op).toBe(15);
      }
    }
  });

  // A few representative planted bugs: found, shrunk to a handful of elements, diagnosed.
  const planted = [
    { bug: 'std-from-sigma4', op: 'svd.dense.train', id: 'bug:std_from_sigma4', max: 8 },
    { bug: 'bias-in-variance', op: 'svd.conv2d.train', id: 'bug:bias_in_variance', max: 8 },
    { bug: 'kl-constant-dropped', op: 'kl.approx', id: 'convention:kl.constant="omitted"', max: 2 },
    { bug: 'mask-ge-threshold', op: 'svd.mask', id: 'convention:prune.comparison=">="', max: 10 },
    { bug: 'tail-from-4th-unit', op: 'svd.dense.eval', id: null, max: 16 },
  ];
  it.each(planted)(
    'planted $bug is found on $op, shrunk to at most $max elements, and diagnosed',
    async ({ bug, op, id, max }) => {
      const r = await fuzz(['--port', numpy('--bug', bug), '--op', op, '--json']);
      expect(r.code, r.out).toBe(1);
      const report = JSON.parse(r.out) as JsonReport;
      expectReportSchema(report);
      const o = report.ops.find((x) => x.op === op)!;
      expect(o.status).toBe('failed');
      expect(elements(o.minimal!), JSON.stringify(o.minimal)).toBeLessThanOrEqual(max);
      const diagnoses = report.check!.cases.find((c) => c.op === op)!.fingerprint!;
      if (id === null) expect(diagnoses).toEqual([]);
      else expect(diagnoses.map((d) => d.id)).toContain(id);
      expect(o.replay).toContain(`--seed ${report.seed} --path ${o.path}`);
    },
  );

  it('the remainder bug of a tiled kernel is shrunk to 4 output units: theta [1, 4]', async () => {
    const r = await fuzz([
      '--port',
      numpy('--bug', 'tail-from-4th-unit'),
      '--op',
      'svd.dense.eval',
      '--json',
    ]);
    const o = (JSON.parse(r.out) as JsonReport).ops[0]!;
    expect((o.minimal!['theta'] as Tensor).shape).toEqual([1, 4]);
  });

  it('is deterministic for a seed; --path replays the minimal case; the table shows it', async () => {
    const argv = [
      '--port',
      numpy('--bug', 'std-from-sigma4'),
      '--op',
      'svd.dense.train',
      '--seed',
      '7',
    ];
    const a = JSON.parse((await fuzz([...argv, '--json'])).out) as JsonReport;
    const b = JSON.parse((await fuzz([...argv, '--json'])).out) as JsonReport;
    expect(a.ops[0]!.minimal).toEqual(b.ops[0]!.minimal);
    expect(a.ops[0]!.path).toBe(b.ops[0]!.path);
    const replay = JSON.parse(
      (await fuzz([...argv, '--path', a.ops[0]!.path!, '--json'])).out,
    ) as JsonReport;
    expect(replay.ops[0]!.minimal).toEqual(a.ops[0]!.minimal);
    expect(replay.ops[0]!.runs).toBe(1);
    const table = await fuzz(argv);
    expect(table.code).toBe(1);
    expect(table.out).toMatch(/^svd\.dense\.train\s+FAIL\s+\d+\s+\d+/m);
    expect(table.out).toMatch(/matches: known bug: your standard deviation comes from sigma\^4/);
    expect(table.out).toMatch(
      /^ {2}vdspec fuzz --port .* --op svd\.dense\.train --seed 7 --path [\d:]+$/m,
    );
    expect(table.out).toMatch(/Result: FAIL: 1 of 1 ops failed \(exit 1\)$/);
  });

  it('--save-failures writes golden files that vdspec check reads: the bug fails them, the port passes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vdspec-fuzz-'));
    temps.push(dir);
    const junit = join(dir, 'fuzz.xml');
    const r = await fuzz([
      '--port',
      numpy('--bug', 'bias-in-variance'),
      '--op',
      'svd.dense.train,svd.dense.eval',
      '--save-failures',
      join(dir, 'saved'),
      '--junit',
      junit,
    ]);
    expect(r.code).toBe(1);
    expect(existsSync(join(dir, 'saved', 'molchanov2017', 'svd.dense.train.json'))).toBe(true);
    expect(existsSync(join(dir, 'saved', 'molchanov2017', 'svd.dense.eval.json'))).toBe(false);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuites name="vdspec fuzz" tests="2" failures="1"/);
    const check = async (port: string) => {
      const out: string[] = [];
      const code = await runCheckCommand(
        ['--port', port, '--golden', join(dir, 'saved')],
        (s) => out.push(s),
        () => {},
      );
      return { code, out: out.join('\n') };
    };
    expect((await check(numpy('--bug', 'bias-in-variance'))).code).toBe(1);
    expect((await check(numpy())).code).toBe(0);
  });
});

describe('vdspec fuzz: bad calls exit 2 with one line (and the --help hint after a usage error)', () => {
  it.each([
    [['--runs', '10'], /--port "COMMAND" is required/],
    [['--port', 'x', '--runs', '0'], /--runs must be in/],
    [['--port', 'x', '--profile', 'nope'], /unknown profile "nope"/],
    [['--port', 'x', '--op', 'nothing.*'], /pattern "nothing\.\*" matches no operation/],
    [['--port', 'x', '--op', 'kl.approx,nope'], /pattern "nope" matches no operation/],
    [['--port', 'x', '--path', '1:2'], /--path replays one op/],
    [['--port', 'x', '--time-limit', '-1'], /--time-limit must be in/],
    [['--port', 'exit 3'], /the port exited with code 3/],
  ])('%j', async (argv, message) => {
    const r = await fuzz(argv);
    expect(r.code).toBe(2);
    const lines = r.err.split('\n');
    expect(lines[0]).toMatch(message);
    expect(lines.slice(1)).toEqual(
      lines.length > 1 ? ['Run "vdspec fuzz --help" for the options.'] : [],
    );
  });
});

describe('vdspec fuzz: a run without a report leaves no earlier --junit verdict (spec/fuzz.md)', () => {
  it('a port that dies at start, a usage error: the file holds one error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vdspec-fuzz-junit-'));
    temps.push(dir);
    const junit = join(dir, 'fuzz.xml');
    for (const [argv, message] of [
      [['--port', 'exit 3'], 'the port exited with code 3'],
      [['--port', 'x', '--op', 'nope'], '--op: pattern &quot;nope&quot; matches no operation'],
    ] as const) {
      writeFileSync(junit, '<testsuites name="an earlier green run"/>\n');
      const r = await fuzz([...argv, '--junit', junit]);
      expect(r.code).toBe(2);
      const xml = readFileSync(junit, 'utf8');
      expect(xml).toMatch(/<testsuites name="vdspec fuzz" tests="1" failures="0" errors="1"/);
      expect(xml).toContain(message);
    }
  });
});

describe('vdspec fuzz: the fast implementation, in-process, float32 (a short budget)', () => {
  it.each(['molchanov2017', 'kingma2015', 'pytorch-ard'] as const)('%s passes', async (name) => {
    await initBackend({ backend: 'cpu' });
    const profile = PROFILES[name];
    const ops = OPS.filter(
      (o) =>
        !(o.name in FAST_UNSUPPORTED_OPS) &&
        (o.algorithm === null || o.algorithm === profile.algorithm),
    );
    const port = functionPort({
      name: 'fast (cpu)',
      ops: ops.map((o) => o.name),
      profile: name,
      dtype: 'float32',
      run: (op, inputs) => fastRun(op, inputs, name),
    });
    const report = await runFuzz(port, { profile, ops, runs: 10, seed: 1, timeLimitMs: null });
    const failed = report.ops.filter((o) => o.status !== 'passed');
    expect(
      failed.map((o) => `${o.op}: ${JSON.stringify(o.minimal)}`),
      JSON.stringify(report.check?.cases.map((c) => c.comparison)),
    ).toEqual([]);
    expect(report.exitCode).toBe(0);
  });
});

describe('vdspec fuzz: nothing fuzzed is no pass (spec/fuzz.md)', () => {
  const port = (ops: string[]) =>
    functionPort({
      name: 'kl only',
      ops,
      profile: 'molchanov2017',
      dtype: 'float64',
      run: () => {
        throw new Error('not called');
      },
    });
  const profile = PROFILES.molchanov2017;

  it('op names vdspec does not know are refused, with the near names', async () => {
    await expect(
      runFuzz(port(['kl_approx']), {
        profile,
        ops: [getOp('kl.approx')],
        runs: 1,
        seed: 1,
        timeLimitMs: null,
      }),
    ).rejects.toThrow(/op name vdspec does not know: "kl_approx" \(did you mean kl\.approx\?\)/);
  });

  it('a port declaring none of the selected ops: exit 2, not a pass', async () => {
    const report = await runFuzz(port(['kl.approx']), {
      profile,
      ops: [getOp('svd.mask')],
      runs: 1,
      seed: 1,
      timeLimitMs: null,
    });
    expect(report.ops.map((o) => o.status)).toEqual(['skipped']);
    expect(report.infrastructureError).toBe(NOTHING_FUZZED);
    expect(report.exitCode).toBe(2);
  });
});

describe('vdspec fuzz --time-limit: every op gets its share (spec/fuzz.md)', () => {
  const profile = PROFILES.molchanov2017;
  const names = ['kl.approx', 'kl.exact', 'schedule.kl_weight'];
  /** A correct in-process port on a fake clock: each answer takes `cost(call)` ms. */
  function timed(cost: (call: number) => number) {
    let t = 0;
    let calls = 0;
    const port = functionPort({
      name: 'timed',
      ops: names,
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => {
        t += cost(calls++);
        return reference(op, inputs, profile);
      },
    });
    return { port, now: () => t };
  }

  it('the budget left is divided by the ops left: 1000 ms over 3 ops at 100 ms a case', async () => {
    const { port, now } = timed(() => 100);
    const report = await runFuzz(port, {
      profile,
      ops: names.map(getOp),
      runs: 100,
      seed: 1,
      timeLimitMs: 1000,
      now,
    });
    // kl.approx until 333 ms (cases at 0..300), kl.exact until 400 + 600/2, schedule until 700 + 300.
    expect(report.ops.map((o) => [o.op, o.status, o.runs])).toEqual([
      ['kl.approx', 'passed', 4],
      ['kl.exact', 'passed', 3],
      ['schedule.kl_weight', 'passed', 3],
    ]);
    expect(report.exitCode).toBe(0);
    expect(timeLimitSummary(report)).toBe('; the time limit left 3 stopped before 100 runs');
  });

  it('a limit that ends before the first answer fuzzed nothing: exit 2, not a pass', async () => {
    const { port } = timed(() => 1);
    let t = 0;
    const report = await runFuzz(port, {
      profile,
      ops: names.map(getOp),
      runs: 100,
      seed: 1,
      timeLimitMs: 1,
      now: () => (t += 10),
    });
    expect(report.ops.map((o) => o.runs)).toEqual([0, 0, 0]);
    expect(report.infrastructureError).toBe(NO_CASE_IN_TIME);
    expect(report.exitCode).toBe(2);
  });

  it('ops the limit left unfuzzed are in the result line', async () => {
    const { port, now } = timed((call) => (call === 0 ? 1000 : 1));
    const report = await runFuzz(port, {
      profile,
      ops: names.map(getOp),
      runs: 100,
      seed: 1,
      timeLimitMs: 1000,
      now,
    });
    expect(report.ops.map((o) => o.status)).toEqual(['passed', 'not_run', 'not_run']);
    expect(report.exitCode).toBe(0);
    expect(timeLimitSummary(report)).toBe(
      '; the time limit left 2 of 3 ops not run, 1 stopped before 100 runs',
    );
  });
});
