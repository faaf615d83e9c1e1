/**
 * The example ports beside the NumPy one (spec/check.md#port-kit): the port kit
 * (examples/ports/kit, Python and Node), a Node port on it, and the PyTorch port
 * (examples/ports/torch), each run by `vdspec check` against the shipped golden files.
 *
 * The kits validate their messages against spec/schemas/port-message.schema.json; the Python
 * kit's validation is tested with an interpreter that can `import jsonschema` (VDSPEC_PYTHON or
 * /usr/bin/python3), skipped with that reason otherwise (VDSPEC_REQUIRE_JSONSCHEMA=1, set by
 * .ci/run, makes the skip a failure).
 *
 * The PyTorch tests run when some interpreter can `import torch` (VDSPEC_TORCH_PYTHON,
 * VDSPEC_PYTHON, python3, /usr/bin/python3, first that can); otherwise they are skipped with
 * that reason. VDSPEC_REQUIRE_TORCH=1 (set by .ci/run once it installed python3-torch) turns
 * the skip into a failure.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const JSONSCHEMA_PYTHON = [PYTHON, '/usr/bin/python3'].find((py) => works(py, 'import jsonschema'));
const JSONSCHEMA_SKIP_REASON = `no python with jsonschema (tried ${PYTHON}, /usr/bin/python3; Debian: apt-get install python3-jsonschema)`;
if (JSONSCHEMA_PYTHON === undefined && process.env['VDSPEC_REQUIRE_JSONSCHEMA'] === '1') {
  throw new Error(`VDSPEC_REQUIRE_JSONSCHEMA=1 but ${JSONSCHEMA_SKIP_REASON}`);
}
function needsJsonschema(ctx: TestContext): string {
  if (JSONSCHEMA_PYTHON === undefined)
    ctx.skip(`the Python kit's validation: ${JSONSCHEMA_SKIP_REASON}`);
  return JSONSCHEMA_PYTHON!;
}

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

/** One protocol session with a kit-based port: its exit code, answers and stderr. */
function run(
  command: string[],
  messages: object[],
  env: Record<string, string> = {},
): { status: number | null; answers: Record<string, unknown>[]; stderr: string } {
  const r = spawnSync(command[0]!, command.slice(1), {
    input: messages.map((m) => `${JSON.stringify(m)}\n`).join(''),
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  const answers = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, answers, stderr: r.stderr };
}

/** As run, for a session that must end with exit code 0: the answers. */
function session(
  command: string[],
  messages: object[],
  env: Record<string, string> = {},
): Record<string, unknown>[] {
  const r = run(command, messages, env);
  expect(r.status, r.stderr).toBe(0);
  return r.answers;
}

// A port whose 'bad' op returns an output that is no encoded tensor, sent to a kit that must
// validate (VDSPEC_KIT_VALIDATE=1): the kit answers the case with its own error, naming the place.
const MALFORMED_MESSAGES = [
  { type: 'hello', protocol: 'vdspec-port/1' },
  { type: 'case', id: 'bad#1', op: 'bad', inputs: {} },
  { type: 'case', id: 'good#1', op: 'good', inputs: {} },
  { type: 'bye' },
];
const VALIDATE = { VDSPEC_KIT_VALIDATE: '1' };

function expectMalformedCaught(answers: Record<string, unknown>[], place: string): void {
  expect(answers.map((a) => a['type'])).toEqual(['hello', 'error', 'result']);
  expect(answers[1]!['id']).toBe('bad#1');
  expect(answers[1]!['message']).toMatch(
    new RegExp(
      `^vdspec_kit: protocol error: this port's result does not match port-message\\.schema\\.json at ${place}: `,
    ),
  );
  expect(answers[2]).toEqual({
    type: 'result',
    id: 'good#1',
    outputs: { t: { shape: [1], data: [0.5] } },
  });
}

/**
 * A kit's port started by `command(dtype)`: a hello with a dtype the schema
 * refuses (float16), and a runner message it refuses (a case without inputs),
 * each end the port with exit code 2 and the kit's one protocol-error line.
 */
function expectSchemaRefusalsEndThePort(command: (dtype: string) => string[]): void {
  const hello = run(command('float16'), MALFORMED_MESSAGES, VALIDATE);
  expect(hello.status).toBe(2);
  expect(hello.answers).toEqual([]);
  expect(hello.stderr).toMatch(
    /vdspec_kit: protocol error: this port's hello does not match port-message\.schema\.json at \/dtype: /,
  );
  const incoming = run(
    command('float64'),
    [MALFORMED_MESSAGES[0]!, { type: 'case', id: 'good#1', op: 'good' }],
    VALIDATE,
  );
  expect(incoming.status).toBe(2);
  expect(incoming.answers.map((a) => a['type'])).toEqual(['hello']);
  expect(incoming.stderr).toMatch(
    /vdspec_kit: protocol error: the runner's case message does not match port-message\.schema\.json at \/: .*inputs/,
  );
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

describe('spec/check.md#port-kit: the Python kit validates its messages against spec/schemas/port-message.schema.json', () => {
  const port = (dtype: string, bad: string) =>
    [
      'import sys',
      `sys.path.insert(0, ${JSON.stringify(KIT_DIR)})`,
      'from vdspec_kit import Tensor, serve',
      `sys.exit(serve({"bad": lambda i: {"t": ${bad}}, "good": lambda i: {"t": Tensor((1,), [0.5])}},`,
      `                name="kit-test", profile="molchanov2017", dtype=${JSON.stringify(dtype)}))`,
    ].join('\n');

  it("an output that is no encoded tensor (a shape of -1) is answered with the kit's error naming the place", (ctx) => {
    const python = needsJsonschema(ctx);
    const answers = session(
      [python, '-c', port('float64', 'Tensor((-1,), [1.0, 2.0])')],
      MALFORMED_MESSAGES,
      VALIDATE,
    );
    expectMalformedCaught(answers, '/outputs/t/shape/0');
  });

  it('a hello the schema refuses, or a runner message it refuses, ends the port with exit code 2 and one line', (ctx) => {
    const python = needsJsonschema(ctx);
    expectSchemaRefusalsEndThePort((dtype) => [python, '-c', port(dtype, '0.5')]);
  });

  it.skipIf(!HAS_PYTHON)(
    'without jsonschema: one line on stderr and no validation; VDSPEC_KIT_VALIDATE=1 makes it exit 2; =0 is silent',
    () => {
      // A module that fails to import stands in for a missing jsonschema on any interpreter.
      const dir = mkdtempSync(join(tmpdir(), 'vdspec-kit-nojsonschema-'));
      try {
        writeFileSync(join(dir, 'jsonschema.py'), 'raise ImportError("hidden by the test")\n');
        const hidden = { PYTHONPATH: dir };
        const command = [PYTHON, '-c', port('float64', 'Tensor((-1,), [1.0, 2.0])')];
        const lenient = run(command, MALFORMED_MESSAGES, hidden);
        expect(lenient.status).toBe(0);
        expect(lenient.answers.map((a) => a['type'])).toEqual(['hello', 'result', 'result']);
        const notes = lenient.stderr.split('\n').filter((l) => l.startsWith('vdspec_kit:'));
        expect(notes).toEqual([
          expect.stringMatching(
            /^vdspec_kit: messages are not validated: the jsonschema module cannot be imported .*hidden by the test/,
          ) as unknown,
        ]);
        const strict = run(command, MALFORMED_MESSAGES, { ...hidden, ...VALIDATE });
        expect(strict.status).toBe(2);
        expect(strict.answers).toEqual([]);
        expect(strict.stderr).toMatch(
          /^vdspec_kit: protocol error: VDSPEC_KIT_VALIDATE=1, but the jsonschema module cannot be imported/m,
        );
        const off = run(command, MALFORMED_MESSAGES, { ...hidden, VDSPEC_KIT_VALIDATE: '0' });
        expect(off.status).toBe(0);
        expect(off.stderr).toBe('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("vdspec check: a copied kit, with no schema beside it, validates against the schema the runner names; the malformed case fails with the kit's message", async (ctx) => {
    const python = needsJsonschema(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'vdspec-kit-copied-'));
    try {
      copyFileSync(join(KIT_DIR, 'vdspec_kit.py'), join(dir, 'vdspec_kit.py'));
      const file = join(dir, 'port.py');
      writeFileSync(
        file,
        [
          'import sys',
          'sys.path.insert(0, sys.argv[1])',
          'from vdspec_kit import Tensor, serve',
          'def kl(i):',
          '    n = len(i["log_alpha"].data)',
          '    return {"kl": Tensor((-1,), [0.0] * n), "dkl_dlog_alpha": Tensor((-1,), [0.0] * n)}',
          'sys.exit(serve({"kl.approx": kl}, name="malformed", profile="molchanov2017"))',
        ].join('\n'),
      );
      const report = await checkJson([
        '--port',
        `VDSPEC_KIT_VALIDATE=1 "${python}" "${file}" "${dir}"`,
        '--op',
        'kl.approx',
      ]);
      expect(report.infrastructureError).toBeNull();
      expect(report.exitCode).toBe(1);
      const failed = report.cases.filter((c) => c.status === 'failed');
      expect(failed.length).toBe(report.ops.find((o) => o.op === 'kl.approx')!.cases);
      for (const c of failed) {
        expect(c.portError).toMatch(
          /^vdspec_kit: protocol error: this port's result does not match port-message\.schema\.json at \/outputs\/(kl|dkl_dlog_alpha)\/shape\/0: /,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
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

  const nodePort = (dtype: string, bad: string) => [
    process.execPath,
    '--input-type=module',
    '-e',
    [
      `import { serve } from ${JSON.stringify(`${KIT_DIR}/vdspec_kit.mjs`)};`,
      `await serve({ name: "kit-test", profile: "molchanov2017", dtype: ${JSON.stringify(dtype)}, ops: {`,
      `  bad: () => ({ t: ${bad} }),`,
      '  good: () => ({ t: { shape: [1], data: [0.5] } }),',
      '} });',
    ].join('\n'),
  ];

  it("validates its messages (ajv): an output that is no encoded tensor (a number as a string) is answered with the kit's error naming the place", () => {
    const answers = session(
      nodePort('float64', '{ shape: [2], data: [1, "2"] }'),
      MALFORMED_MESSAGES,
      VALIDATE,
    );
    expectMalformedCaught(answers, '/outputs/t/data/1');
  });

  it('a hello the schema refuses, or a runner message it refuses, ends serve() with exit code 2 and one line', () => {
    expectSchemaRefusalsEndThePort((dtype) => nodePort(dtype, '0.5'));
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
