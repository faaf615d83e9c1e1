/**
 * spec/schemas/: every schema compiles under Ajv's strict mode, and real
 * files of each format validate against it: a results file written from the
 * shipped golden files, both sides of a real port session (the NumPy
 * example port run by `vdspec check` behind `tee`), and the committed
 * training runs' model.sparse.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { runCheckCommand } from '../../src/cli/check.js';
import { DATA_SET_NAMES } from '../../src/data/mnist.js';
import { PROFILE_NAMES } from '../../src/profiles.js';
import { readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { NETWORK_NAMES } from '../../src/train/recipe.js';
import {
  checkRecord,
  NOISE_GENERATOR,
  OLD_NOISE_GENERATOR,
  VD_LOG_ALPHA_SHAPES,
} from '../../src/train/trainer.js';

type Json = Record<string, unknown>;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const SCHEMAS = here('../../spec/schemas');
const GOLDEN = here('../golden');
const RESULTS = here('../../results');
const runFiles = (name: string) =>
  readdirSync(RESULTS)
    .map((run) => join(RESULTS, run, name))
    .filter((path) => existsSync(path));
const NUMPY_PORT = here('../../examples/ports/numpy/vdspec_port.py');
const PYTHON = process.env['VDSPEC_PYTHON'] ?? 'python3';
const HAS_NUMPY =
  spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore', timeout: 60_000 }).status === 0;

const ajv = new Ajv2020({ strict: true, allErrors: true, discriminator: true });
ajv.addKeyword({ keyword: 'x-messages', schemaType: 'object' });
for (const file of readdirSync(SCHEMAS)) {
  ajv.addSchema(
    JSON.parse(readFileSync(join(SCHEMAS, file), 'utf8')) as object,
    file.replace(/\.schema\.json$/, ''),
  );
}
function schema(key: string): ValidateFunction {
  const v = ajv.getSchema(key);
  if (v === undefined) throw new Error(`no schema ${key}`);
  return v;
}
function expectValid(key: string, value: unknown, what: string): void {
  const v = schema(key);
  const ok = v(value);
  expect(ok ? '' : `${what}: ${ajv.errorsText(v.errors)}`).toBe('');
}

const dir = mkdtempSync(join(tmpdir(), 'vdspec-schemas-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('spec/schemas', () => {
  it('every schema compiles in strict mode and names its format', () => {
    const files = readdirSync(SCHEMAS);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect(file).toMatch(/\.schema\.json$/);
      const s = schema(file.replace(/\.schema\.json$/, '')).schema as Record<string, unknown>;
      expect(s['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(typeof s['title']).toBe('string');
      expect(String(s['description'])).toMatch(/spec\/[a-z-]+\.md/);
    }
  });

  it('spec/check.md#results-file: a results file answering every shipped molchanov2017 case validates, entries too', () => {
    const results: Record<string, Record<string, unknown>> = {};
    for (const file of readdirSync(join(GOLDEN, 'molchanov2017'))) {
      const golden = JSON.parse(readFileSync(join(GOLDEN, 'molchanov2017', file), 'utf8')) as {
        op: string;
        cases: { id: number; outputs: unknown }[];
      };
      results[golden.op] = Object.fromEntries(
        golden.cases.map((c, i) => [
          String(c.id),
          i === 0 ? { error: 'not implemented' } : { outputs: c.outputs },
        ]),
      );
    }
    const file = {
      schema: 'vdspec-results/1',
      dtype: 'float64',
      profile: 'molchanov2017',
      results,
    };
    expectValid('results', file, 'results file');
    for (const [op, cases] of Object.entries(results)) {
      for (const [id, entry] of Object.entries(cases)) {
        expectValid('results#/$defs/entry', entry, `${op} case ${id}`);
      }
    }
    expect(schema('results')({ ...file, results: {} })).toBe(false);
    expect(schema('results#/$defs/entry')({ error: 3 })).toBe(false);
  });

  it('spec/check.md#protocol: every message of a real port session validates, in both directions', async (ctx: TestContext) => {
    if (!HAS_NUMPY) ctx.skip(`${PYTHON} cannot import numpy`);
    const toPort = join(dir, 'to-port.jsonl');
    const fromPort = join(dir, 'from-port.jsonl');
    const command = `tee "${toPort}" | "${PYTHON}" "${NUMPY_PORT}" | tee "${fromPort}"`;
    const out: string[] = [];
    const code = await runCheckCommand(
      ['--port', command, '--golden', GOLDEN, '--op', 'kl.*,svd.mask', '--timeout', '60'],
      (s) => out.push(s),
      () => undefined,
    );
    expect(code, out.join('')).toBe(0);
    const lines = (path: string) =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const sent = lines(toPort);
    const answered = lines(fromPort);
    expect(sent.map((m) => m['type'])).toEqual([
      'hello',
      ...Array<string>(sent.length - 2).fill('case'),
      'bye',
    ]);
    expect(answered.length).toBe(sent.length - 1);
    expectValid('port-message#/$defs/portHello', answered[0], 'the port hello');
    for (const [i, m] of [...sent, ...answered].entries()) {
      expectValid('port-message', m, `message ${i}`);
    }
    // What the kits hold their ports to: every output an encoded tensor.
    for (const m of answered.slice(1)) {
      expectValid('port-message#/$defs/portResult', m, `the answer to ${String(m['id'])}`);
    }
    const tensor = { shape: [1], data: ['NaN'] };
    const result = (t: unknown) => ({ type: 'result', id: 'kl.approx#0', outputs: { kl: t } });
    expect(schema('port-message#/$defs/portResult')(result(tensor))).toBe(true);
    expect(schema('port-message#/$defs/portResult')(result([1, 2]))).toBe(false);
    expect(schema('port-message#/$defs/portResult')(result({ ...tensor, data: ['nan'] }))).toBe(
      false,
    );
  });

  it('spec/export.md#the-file: every committed model.sparse.json validates', () => {
    const files = runFiles('model.sparse.json');
    expect(files.length).toBeGreaterThan(0);
    for (const path of files) {
      expectValid('sparse-model', JSON.parse(readFileSync(path, 'utf8')), path);
    }
  });

  it("spec/train.md#results: every committed results.json validates; its enums are the code's", () => {
    const files = runFiles('results.json');
    expect(files.length).toBeGreaterThan(0);
    for (const path of files) {
      expectValid('train-record', JSON.parse(readFileSync(path, 'utf8')), path);
    }
    const config = (schema('train-record').schema as { $defs: Record<string, Json> }).$defs[
      'config'
    ]!['properties'] as Record<string, { enum: unknown[] }>;
    expect(config['network']!.enum).toEqual([...NETWORK_NAMES]);
    expect(config['profile']!.enum).toEqual([...PROFILE_NAMES]);
    expect(config['data']!.enum).toEqual([...DATA_SET_NAMES]);
    expect(config['vdLogAlpha']!.enum).toEqual([...VD_LOG_ALPHA_SHAPES, null]);
    expect(config['noise']!.enum).toEqual([NOISE_GENERATOR, OLD_NOISE_GENERATOR]);
  });

  it('spec/train.md#results: a malformed record is one line naming the file and the JSON path', () => {
    const path = runFiles('results.json')[0]!;
    const record = JSON.parse(readFileSync(path, 'utf8')) as Json;
    (record['config'] as Json)['network'] = 'lenet7';
    expect(() => checkRecord(record, path)).toThrow(
      `record: ${path}: /config/network: "lenet7", expected "lenet300" or "lenet5"`,
    );
    const tooMany = JSON.parse(readFileSync(path, 'utf8')) as Json;
    (tooMany['config'] as Json)['epochs'] = 1;
    expect(() => checkRecord(tooMany, path)).toThrow(
      /: \/epochs: \d+ epochs recorded, 1 configured$/,
    );
  });

  it('spec/train.md#checkpoints: a checkpoint header validates, its record too; a bad one names the JSON path', () => {
    const record = JSON.parse(readFileSync(runFiles('results.json')[0]!, 'utf8')) as Json;
    const path = join(dir, 'checkpoint.bin');
    const tensors = [{ name: 'dense0.theta', shape: [2, 3], data: new Float32Array(6) }];
    writeCheckpoint(path, record, { step: 12, tensors });
    const bytes = readFileSync(path);
    const header = JSON.parse(bytes.toString('utf8', 12, 12 + bytes.readUInt32LE(8))) as Json;
    expectValid('checkpoint-header', header, 'header');
    expectValid('train-record', header['record'], 'header record');
    expect(readCheckpoint(path, (r) => r).state.step).toBe(12);
    const text = JSON.stringify({ ...header, step: -1 });
    const bad = Buffer.alloc(12 + text.length);
    bad.write('VDSPECK1', 0, 'ascii');
    bad.writeUInt32LE(text.length, 8);
    bad.write(text, 12, 'utf8');
    writeFileSync(path, bad);
    expect(() => readCheckpoint(path, (r) => r)).toThrow(
      `${path} is not a usable vdspec checkpoint: its header: /step: must be >= 0`,
    );
  });

  it('spec/check.md#report: real --json reports validate (a failing results file, a check that cannot start)', async () => {
    const results: Record<string, Record<string, unknown>> = {};
    for (const file of readdirSync(join(GOLDEN, 'molchanov2017'))) {
      const golden = JSON.parse(readFileSync(join(GOLDEN, 'molchanov2017', file), 'utf8')) as {
        op: string;
        cases: { id: number; outputs: Record<string, { shape: number[]; data: unknown[] }> }[];
      };
      if (!golden.op.startsWith('kl.') && golden.op !== 'svd.mask') continue;
      results[golden.op] = Object.fromEntries(golden.cases.map((c) => [String(c.id), c]));
    }
    // One wrong value (compared, fingerprinted), one error answer, one missing entry, one unknown id.
    const mask = Object.values(results['svd.mask']!)[0] as {
      outputs: Record<string, { data: unknown[] }>;
    };
    const first = Object.values(mask.outputs)[0]!;
    first.data[0] = first.data[0] === 1 ? 0 : 1;
    results['kl.approx']![Object.keys(results['kl.approx']!)[0]!] = { error: 'diverged' };
    const [, ...rest] = Object.entries(results['kl.layer']!);
    results['kl.layer'] = Object.fromEntries(rest);
    results['kl.approx']!['9999'] = { error: 'no such case' };
    const path = join(dir, 'failing.json');
    const file = {
      schema: 'vdspec-results/1',
      dtype: 'float64',
      profile: 'molchanov2017',
      results,
    };
    writeFileSync(path, JSON.stringify(file));
    const json = async (argv: string[]) => {
      const out: string[] = [];
      const code = await runCheckCommand(
        [...argv, '--golden', GOLDEN, '--json'],
        (s) => out.push(s),
        () => undefined,
      );
      return { code, report: JSON.parse(out.join('')) as Json };
    };
    const failing = await json(['--results', path]);
    expect(failing.code).toBe(1);
    expectValid('check-report', failing.report, 'failing report');
    const cases = failing.report['cases'] as Json[];
    expect(cases.some((c) => c['comparison'] !== null && c['status'] === 'failed')).toBe(true);
    const broken = await json(['--results', join(dir, 'absent.json')]);
    expect(broken.code).toBe(2);
    expectValid('check-report', broken.report, 'report of a check that could not start');
  });
});
