/**
 * The example ports beside the NumPy one (spec/check.md#port-kit): the port kit
 * (examples/ports/kit, Python and Node), a Node port on it, and the PyTorch port
 * (examples/ports/torch), each run by `vdspec check` against the shipped golden files.
 *
 * The PyTorch tests run when some interpreter can `import torch` (VDSPEC_TORCH_PYTHON,
 * VDSPEC_PYTHON, python3, /usr/bin/python3, first that can); otherwise they are skipped with
 * that reason. VDSPEC_REQUIRE_TORCH=1 (set by .ci/run once it installed python3-torch) turns
 * the skip into a failure.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, type TestContext } from 'vitest';
import type { CheckReport } from '../../src/check/runner.js';
import { runCheckCommand } from '../../src/cli/check.js';
import { PROFILE_NAMES } from '../../src/profiles.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const KIT_DIR = here('../../examples/ports/kit');
const NODE_PORT = here('../../examples/ports/node/example_port.mjs');
const TORCH_PORT = here('../../examples/ports/torch/vdspec_torch.py');
const SHIPPED_GOLDEN = here('../golden');

const PYTHON = process.env['VDSPEC_PYTHON'] ?? 'python3';
const works = (py: string, code: string) =>
  spawnSync(py, ['-c', code], { stdio: 'ignore', timeout: 60_000 }).status === 0;
const HAS_PYTHON = works(PYTHON, 'import json');

const torchCandidates = [
  process.env['VDSPEC_TORCH_PYTHON'],
  process.env['VDSPEC_PYTHON'],
  'python3',
  '/usr/bin/python3',
].filter((p): p is string => p !== undefined && p !== '');
const TORCH_PYTHON = [...new Set(torchCandidates)].find((py) => works(py, 'import torch'));
const TORCH_SKIP_REASON = `no python with torch (tried ${[...new Set(torchCandidates)].join(', ')}: "import torch" failed; Debian: apt-get install python3-torch)`;
if (TORCH_PYTHON === undefined && process.env['VDSPEC_REQUIRE_TORCH'] === '1') {
  throw new Error(`VDSPEC_REQUIRE_TORCH=1 but ${TORCH_SKIP_REASON}`);
}
if (TORCH_PYTHON === undefined) {
  console.warn(`check-ports.test.ts: skipping the PyTorch port tests: ${TORCH_SKIP_REASON}`);
}
function needsTorch(ctx: TestContext): void {
  if (TORCH_PYTHON === undefined) ctx.skip(`the PyTorch port tests: ${TORCH_SKIP_REASON}`);
}
const torchPort = (...args: string[]) => `"${TORCH_PYTHON}" "${TORCH_PORT}" ${args.join(' ')}`;

async function checkJson(argv: string[]): Promise<CheckReport> {
  const out: string[] = [];
  await runCheckCommand(
    ['--golden', SHIPPED_GOLDEN, '--timeout', '60', ...argv, '--json'],
    (s) => out.push(s),
    () => undefined,
  );
  return JSON.parse(out.join('')) as CheckReport;
}

/** One protocol session with a kit-based port: the lines it answers to `messages`. */
function session(command: string[], messages: object[]): Record<string, unknown>[] {
  const r = spawnSync(command[0]!, command.slice(1), {
    input: messages.map((m) => `${JSON.stringify(m)}\n`).join(''),
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// A case of every kind the kits must handle: special numbers in and out, a PortError, a missing
// input, an exception, an op not in the table.
const KIT_MESSAGES = [
  { type: 'hello', protocol: 'vdspec-port/1' },
  {
    type: 'case',
    id: 'echo#1',
    op: 'echo',
    inputs: { t: { shape: [2, 2], data: ['NaN', 'Infinity', '-Infinity', '-0'] }, n: '-0' },
  },
  { type: 'case', id: 'echo#2', op: 'echo', inputs: { t: { shape: [], data: [1.5] }, n: 2 } },
  { type: 'case', id: 'refuse#1', op: 'refuse', inputs: {} },
  { type: 'case', id: 'echo#3', op: 'echo', inputs: {} },
  { type: 'case', id: 'crash#1', op: 'crash', inputs: {} },
  { type: 'case', id: 'other#1', op: 'other', inputs: {} },
  { type: 'bye' },
];

function expectKitAnswers(answers: Record<string, unknown>[], missingInput: RegExp): void {
  expect(answers).toHaveLength(7);
  expect(answers[0]).toEqual({
    type: 'hello',
    protocol: 'vdspec-port/1',
    name: 'kit-test',
    ops: ['crash', 'echo', 'refuse'],
    profile: 'molchanov2017',
    dtype: 'float32',
  });
  // The tensor comes back bit for bit (negated data would differ), the number as a tensor [].
  expect(answers[1]).toEqual({
    type: 'result',
    id: 'echo#1',
    outputs: {
      t: { shape: [2, 2], data: ['NaN', 'Infinity', '-Infinity', '-0'] },
      n: { shape: [], data: ['-0'] },
    },
  });
  expect(answers[2]).toEqual({
    type: 'result',
    id: 'echo#2',
    outputs: { t: { shape: [], data: [1.5] }, n: { shape: [], data: [2] } },
  });
  expect(answers[3]).toEqual({ type: 'error', id: 'refuse#1', message: 'no, politely' });
  expect(answers[4]).toMatchObject({ type: 'error', id: 'echo#3' });
  expect(answers[4]!['message']).toMatch(missingInput);
  expect(answers[5]).toMatchObject({ type: 'error', id: 'crash#1' });
  expect(answers[5]!['message']).toMatch(/^internal error: .*boom/);
  expect(answers[6]).toMatchObject({ type: 'error', id: 'other#1' });
  expect(answers[6]!['message']).toMatch(/not implemented/);
}

describe('spec/check.md#port-kit: the Python kit', () => {
  it.skipIf(!HAS_PYTHON)(
    'decodes and encodes special numbers, answers PortError, a missing input, an exception and an unknown op as errors',
    () => {
      const script = [
        'import sys',
        `sys.path.insert(0, ${JSON.stringify(KIT_DIR)})`,
        'from vdspec_kit import PortError, serve',
        'def refuse(i): raise PortError("no, politely")',
        'def crash(i): raise ValueError("boom")',
        'serve({"echo": lambda i: {"t": i["t"], "n": i["n"]}, "refuse": refuse, "crash": crash},',
        '      name="kit-test", profile="molchanov2017", dtype="float32")',
      ].join('\n');
      expectKitAnswers(session([PYTHON, '-c', script], KIT_MESSAGES), /missing input 't'/);
    },
  );
});

const NUMPY_PYTHON = [PYTHON, '/usr/bin/python3'].find((py) => works(py, 'import numpy'));

describe("spec/check.md#port-kit: the page's example port", () => {
  it.skipIf(NUMPY_PYTHON === undefined)(
    'the Python block of spec/check.md#port-kit, run from the repository root, passes its two ops',
    async () => {
      const page = readFileSync(here('../../spec/check.md'), 'utf8');
      const section = page.slice(page.indexOf('## Port kit'));
      const block = /```python\n([\s\S]*?)```/.exec(section)![1]!;
      const dir = mkdtempSync(join(tmpdir(), 'vdspec-kit-example-'));
      try {
        const file = join(dir, 'my_port.py');
        writeFileSync(file, block);
        const root = here('../..');
        const report = await checkJson(['--port', `cd "${root}" && "${NUMPY_PYTHON}" "${file}"`]);
        expect(report.exitCode).toBe(0);
        const checked = report.ops.filter((o) => o.status !== 'skipped');
        expect(checked.map((o) => [o.op, o.passed === o.cases && o.cases > 0])).toEqual([
          ['kl.approx', true],
          ['schedule.kl_weight', true],
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('spec/check.md#port-kit: the Node kit and its example port', () => {
  it('decodes and encodes special numbers, answers PortError, a missing input, an exception and an unknown op as errors', () => {
    const script = [
      `import { PortError, serve } from ${JSON.stringify(`${KIT_DIR}/vdspec_kit.mjs`)};`,
      'const need = (i, k) => { if (!(k in i)) throw new PortError(`missing input ${k}`); return i[k]; };',
      'await serve({ name: "kit-test", profile: "molchanov2017", dtype: "float32", ops: {',
      '  echo: (i) => ({ t: need(i, "t"), n: need(i, "n") }),',
      '  refuse: () => { throw new PortError("no, politely"); },',
      '  crash: () => { throw new Error("boom"); },',
      '} });',
    ].join('\n');
    expectKitAnswers(
      session([process.execPath, '--input-type=module', '-e', script], KIT_MESSAGES),
      /missing input t/,
    );
  });

  it('spec/check.md#port-kit: the Node example port passes its two ops of molchanov2017 and declares no other', async () => {
    const report = await checkJson(['--port', `"${process.execPath}" "${NODE_PORT}"`]);
    expect(report.infrastructureError).toBeNull();
    expect(report.exitCode).toBe(0);
    const checked = report.ops.filter((o) => o.status !== 'skipped').map((o) => o.op);
    expect(checked).toEqual(['kl.approx', 'schedule.kl_weight']);
    expect(report.totals.failed).toBe(0);
    for (const op of report.ops.filter((o) => o.status !== 'skipped')) {
      expect(op.passed, op.op).toBeGreaterThan(0);
      expect(op.passed, op.op).toBe(op.cases);
    }
  });
});

describe('vdspec check --port: the PyTorch example port (examples/ports/torch)', () => {
  const runs = PROFILE_NAMES.flatMap((profile) =>
    (['float64', 'float32'] as const).map((dtype) => ({ profile, dtype })),
  );
  it.for(runs)(
    'spec/check.md#the-pytorch-example-port: the PyTorch port passes every declared op of $profile in $dtype',
    { timeout: 120_000 },
    async ({ profile, dtype }, ctx) => {
      needsTorch(ctx);
      const report = await checkJson(['--port', torchPort('--profile', profile, '--dtype', dtype)]);
      expect(report.infrastructureError).toBeNull();
      expect(report.port.dtype).toBe(dtype);
      expect(report.port.profile).toBe(profile);
      expect(report.totals.failed).toBe(0);
      expect(report.exitCode).toBe(0);
      // Every op of the catalogue but the exact KL is declared and passes every case.
      const skipped = report.ops.filter((o) => o.status === 'skipped').map((o) => o.op);
      expect(skipped).toEqual(['kl.exact']);
      expect(report.totals.passed).toBe(report.totals.cases - report.totals.skipped);
      expect(report.totals.passed).toBeGreaterThan(200);
    },
  );

  it('spec/check.md#the-pytorch-example-port: a planted KL without its constant fails kl.approx and kl.layer, diagnosed as that convention', async (ctx) => {
    needsTorch(ctx);
    const report = await checkJson([
      '--port',
      torchPort('--bug', 'kl-constant-dropped'),
      '--op',
      'kl.*,svd.dense.train',
    ]);
    expect(report.exitCode).toBe(1);
    for (const name of ['kl.approx', 'kl.layer']) {
      const op = report.ops.find((o) => o.op === name)!;
      expect(op.status, name).toBe('failed');
      expect(op.fingerprint[0]?.id, name).toBe('convention:kl.constant="omitted"');
      expect(op.fingerprint[0]!.matched, name).toBe(op.fingerprintChecked);
    }
    expect(report.ops.find((o) => o.op === 'svd.dense.train')!.status).toBe('passed');
  }, 120_000);
});
