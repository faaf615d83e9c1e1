/**
 * Reading golden files and their manifest (spec/golden.md#format), with a
 * VdspecError naming the file and the place in it for anything malformed:
 * a wrong schema tag, a number that is not a number, a missing or extra
 * input or output, a tensor whose data does not fill its shape, a scale
 * that does not match its output.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VdspecError } from '../errors.js';
import { getOp, resolveNames, type InputKind, type OpSpec } from '../ops.js';
import { isProfileName, type Profile } from '../profiles.js';
import type { Tensor } from '../tensor.js';
import { decodeNumber, decodeTensor } from './encoding.js';
import { GOLDEN_SCHEMA, MANIFEST_NAME, MANIFEST_SCHEMA, sha256 } from './generate.js';
import type { Tolerance } from './scale.js';

export interface GoldenCase {
  readonly id: number;
  readonly comment: string;
  readonly flags: readonly string[];
  /** Decoded: tensors as Tensor, numbers as numbers (specials restored), the rest as written. */
  readonly inputs: Record<string, unknown>;
  readonly outputs: Record<string, Tensor>;
  /** Per output; an output without one has scale 0. */
  readonly scale: Record<string, Tensor>;
}

export interface GoldenGenerator {
  readonly name: string;
  readonly version: string;
  readonly seed: number;
}

export interface GoldenFile {
  readonly schema: typeof GOLDEN_SCHEMA;
  readonly generator: GoldenGenerator;
  readonly op: string;
  readonly section: string;
  /** The profile as written in the file (the conventions the outputs follow). */
  readonly profile: Profile;
  readonly tolerance: { readonly float64: Tolerance; readonly float32: Tolerance };
  readonly cases: readonly GoldenCase[];
}

export interface GoldenManifestEntry {
  readonly path: string;
  readonly sha256: string;
  readonly cases: number;
}

export interface GoldenManifest {
  readonly schema: typeof MANIFEST_SCHEMA;
  readonly generator: GoldenGenerator;
  readonly files: readonly GoldenManifestEntry[];
}

/** Every error of this module: code, the place in the file as the argument, the file in the message. */
class Reader {
  constructor(readonly source: string) {}

  fail(
    at: string,
    message: string,
    code: 'invalid_argument' | 'shape_mismatch' = 'invalid_argument',
  ): never {
    throw new VdspecError(code, `${message} (in ${this.source})`, at);
  }

  /** Re-throw a decoding error with the file named. */
  wrap<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof VdspecError && e.argument !== undefined) {
        const message = e.message.slice(e.argument.length + 2);
        this.fail(
          e.argument,
          message,
          e.code === 'shape_mismatch' ? 'shape_mismatch' : 'invalid_argument',
        );
      }
      throw e;
    }
  }

  object(value: unknown, at: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(at, 'expected an object');
    }
    return value as Record<string, unknown>;
  }

  keys(
    value: Record<string, unknown>,
    at: string,
    required: readonly string[],
    optional: readonly string[] = [],
  ) {
    for (const k of required) if (!(k in value)) this.fail(at === '' ? k : `${at}.${k}`, 'missing');
    for (const k of Object.keys(value)) {
      if (!required.includes(k) && !optional.includes(k)) {
        this.fail(at === '' ? k : `${at}.${k}`, 'unexpected key');
      }
    }
  }

  string(value: unknown, at: string): string {
    if (typeof value !== 'string') this.fail(at, 'expected a string');
    return value;
  }

  integer(value: unknown, at: string, min = 0): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      this.fail(at, `expected an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  generator(value: unknown, at: string): GoldenGenerator {
    const g = this.object(value, at);
    this.keys(g, at, ['name', 'version', 'seed']);
    const seed = this.integer(g['seed'], `${at}.seed`);
    if (seed > 0xffffffff) this.fail(`${at}.seed`, 'expected a uint32');
    return {
      name: this.string(g['name'], `${at}.name`),
      version: this.string(g['version'], `${at}.version`),
      seed,
    };
  }

  schema(value: Record<string, unknown>, expected: string): void {
    if (value['schema'] !== expected) {
      this.fail('schema', `expected "${expected}", got ${JSON.stringify(value['schema'])}`);
    }
  }
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new VdspecError(
      'invalid_argument',
      `not JSON: ${e instanceof Error ? e.message : String(e)} (in ${source})`,
      'file',
    );
  }
}

function tolerance(r: Reader, value: unknown, at: string): Tolerance {
  const t = r.object(value, at);
  r.keys(t, at, ['abs', 'rel', 'scaled']);
  const read = (k: string) => {
    const v = t[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      r.fail(`${at}.${k}`, `expected a finite number >= 0, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  return { abs: read('abs'), rel: read('rel'), scaled: read('scaled') };
}

/** The checks on a profile a reader needs: its name, algorithm and noise parameter. */
function profile(r: Reader, value: unknown, op: OpSpec): Profile {
  const p = r.object(value, 'profile');
  if (!isProfileName(p['name']))
    r.fail('profile.name', `unknown profile ${JSON.stringify(p['name'])}`);
  if (p['algorithm'] !== 'svd' && p['algorithm'] !== 'vd') {
    r.fail('profile.algorithm', 'expected "svd" or "vd"');
  }
  if (op.algorithm !== null && p['algorithm'] !== op.algorithm) {
    r.fail('profile.algorithm', `${op.name} needs a ${op.algorithm} profile`);
  }
  if (!['log_sigma2', 'log_sigma', 'log_alpha'].includes(p['noiseParameter'] as string)) {
    r.fail('profile.noiseParameter', 'expected "log_sigma2", "log_sigma" or "log_alpha"');
  }
  return p as unknown as Profile;
}

function input(r: Reader, kind: InputKind, value: unknown, at: string): unknown {
  switch (kind) {
    case 'tensor':
      return r.wrap(() => decodeTensor(value, at));
    case 'number':
      return r.wrap(() => decodeNumber(value, at));
    case 'boolean':
      if (typeof value !== 'boolean') r.fail(at, 'expected true or false');
      return value;
    case 'labels':
      if (!Array.isArray(value)) r.fail(at, 'expected an array of class indices');
      return value.map((v, i) => r.integer(v, `${at}[${i}]`));
    case 'stride':
      if (typeof value === 'number') return r.integer(value, at, 1);
      if (!Array.isArray(value) || value.length !== 2) {
        r.fail(at, 'expected a positive integer or [sh, sw]');
      }
      return [r.integer(value[0], `${at}[0]`, 1), r.integer(value[1], `${at}[1]`, 1)];
    case 'padding':
      if (value !== 'valid' && value !== 'same') r.fail(at, 'expected "valid" or "same"');
      return value;
    case 'layer':
      if (value !== 'dense' && value !== 'conv2d') r.fail(at, 'expected "dense" or "conv2d"');
      return value;
  }
}

function goldenCase(r: Reader, value: unknown, at: string, op: OpSpec, p: Profile): GoldenCase {
  const c = r.object(value, at);
  r.keys(c, at, ['id', 'comment', 'flags', 'inputs', 'outputs'], ['scale']);
  const id = r.integer(c['id'], `${at}.id`);
  const comment = r.string(c['comment'], `${at}.comment`);
  const flagsIn = c['flags'];
  if (!Array.isArray(flagsIn)) r.fail(`${at}.flags`, 'expected an array of strings');
  const flags = flagsIn.map((f, i) => {
    const flag = r.string(f, `${at}.flags[${i}]`);
    if (!/^[a-z0-9_]+$/.test(flag))
      r.fail(`${at}.flags[${i}]`, `not a flag name: ${JSON.stringify(flag)}`);
    return flag;
  });
  const names = resolveNames(op, p);

  const given = r.object(c['inputs'], `${at}.inputs`);
  r.keys(
    given,
    `${at}.inputs`,
    names.inputs.filter((i) => !i.optional).map((i) => i.name),
    names.inputs.filter((i) => i.optional).map((i) => i.name),
  );
  const inputs: Record<string, unknown> = {};
  for (const spec of names.inputs) {
    if (!(spec.name in given)) continue;
    inputs[spec.name] = input(r, spec.kind, given[spec.name], `${at}.inputs.${spec.name}`);
  }

  const out = r.object(c['outputs'], `${at}.outputs`);
  r.keys(out, `${at}.outputs`, names.outputs);
  const outputs: Record<string, Tensor> = {};
  for (const name of names.outputs) {
    outputs[name] = r.wrap(() => decodeTensor(out[name], `${at}.outputs.${name}`));
  }

  const scale: Record<string, Tensor> = {};
  if (c['scale'] !== undefined) {
    const s = r.object(c['scale'], `${at}.scale`);
    r.keys(s, `${at}.scale`, [], names.outputs);
    for (const [name, v] of Object.entries(s)) {
      const where = `${at}.scale.${name}`;
      const t = r.wrap(() => decodeTensor(v, where));
      const shape = outputs[name]!.shape;
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        r.fail(
          where,
          `shape [${t.shape.join(', ')}] differs from the output's [${shape.join(', ')}]`,
          'shape_mismatch',
        );
      }
      t.data.forEach((x, i) => {
        if (!Number.isFinite(x) || x < 0)
          r.fail(`${where}.data[${i}]`, `expected a finite number >= 0, got ${x}`);
      });
      scale[name] = t;
    }
  }
  return { id, comment, flags, inputs, outputs, scale };
}

/** Parse and check the text of a golden file. `source` names it in error messages. */
export function parseGoldenFile(text: string, source = 'golden file'): GoldenFile {
  const r: Reader = new Reader(source);
  const root = r.object(parseJson(text, source), '');
  r.keys(root, '', ['schema', 'generator', 'op', 'section', 'profile', 'tolerance', 'cases']);
  r.schema(root, GOLDEN_SCHEMA);
  const generator = r.generator(root['generator'], 'generator');
  const opName = r.string(root['op'], 'op');
  let op: OpSpec;
  try {
    op = getOp(opName);
  } catch {
    r.fail('op', `unknown operation ${JSON.stringify(opName)}`);
  }
  const section = r.string(root['section'], 'section');
  const p = profile(r, root['profile'], op);
  const tol = r.object(root['tolerance'], 'tolerance');
  r.keys(tol, 'tolerance', ['float64', 'float32']);
  const casesIn = root['cases'];
  if (!Array.isArray(casesIn)) r.fail('cases', 'expected an array');
  const cases = casesIn.map((c, i) => goldenCase(r, c, `cases[${i}]`, op, p));
  const ids = new Set<number>();
  cases.forEach((c, i) => {
    if (ids.has(c.id)) r.fail(`cases[${i}].id`, `duplicate case id ${c.id}`);
    ids.add(c.id);
  });
  return {
    schema: GOLDEN_SCHEMA,
    generator,
    op: op.name,
    section,
    profile: p,
    tolerance: {
      float64: tolerance(r, tol['float64'], 'tolerance.float64'),
      float32: tolerance(r, tol['float32'], 'tolerance.float32'),
    },
    cases,
  };
}

export function readGoldenFile(path: string): GoldenFile {
  return parseGoldenFile(readFileSync(path, 'utf8'), path);
}

/** Parse and check the text of a manifest (paths sorted and unique, hashes well-formed). */
export function parseManifest(text: string, source = MANIFEST_NAME): GoldenManifest {
  const r: Reader = new Reader(source);
  const root = r.object(parseJson(text, source), '');
  r.keys(root, '', ['schema', 'generator', 'files']);
  r.schema(root, MANIFEST_SCHEMA);
  const generator = r.generator(root['generator'], 'generator');
  const filesIn = root['files'];
  if (!Array.isArray(filesIn)) r.fail('files', 'expected an array');
  let previous = '';
  const files = filesIn.map((value, i) => {
    const at = `files[${i}]`;
    const f = r.object(value, at);
    r.keys(f, at, ['path', 'sha256', 'cases']);
    const path = r.string(f['path'], `${at}.path`);
    if (!/^[a-z0-9-]+\/[a-z0-9_.]+\.json$/.test(path))
      r.fail(`${at}.path`, `not <profile>/<op>.json: ${path}`);
    if (path <= previous) r.fail(`${at}.path`, 'paths must be sorted and unique');
    previous = path;
    const hash = r.string(f['sha256'], `${at}.sha256`);
    if (!/^[0-9a-f]{64}$/.test(hash)) r.fail(`${at}.sha256`, 'expected 64 lowercase hex digits');
    return { path, sha256: hash, cases: r.integer(f['cases'], `${at}.cases`) };
  });
  return { schema: MANIFEST_SCHEMA, generator, files };
}

export function readManifest(dir: string): GoldenManifest {
  const path = join(dir, MANIFEST_NAME);
  return parseManifest(readFileSync(path, 'utf8'), path);
}

/**
 * Read the manifest of `dir` and every file it lists, checking each file's
 * sha256 and case count against it. Returns the files by path.
 */
export function readGoldenSet(dir: string): Map<string, GoldenFile> {
  const manifest = readManifest(dir);
  const files = new Map<string, GoldenFile>();
  manifest.files.forEach((entry, i) => {
    const path = join(dir, entry.path);
    const bytes = readFileSync(path);
    if (sha256(bytes) !== entry.sha256) {
      throw new VdspecError(
        'invalid_argument',
        `${entry.path} does not match its sha256 in the manifest (in ${join(dir, MANIFEST_NAME)})`,
        `files[${i}].sha256`,
      );
    }
    const file = parseGoldenFile(bytes.toString('utf8'), path);
    if (file.cases.length !== entry.cases) {
      throw new VdspecError(
        'invalid_argument',
        `${entry.path} has ${file.cases.length} cases, the manifest says ${entry.cases}`,
        `files[${i}].cases`,
      );
    }
    files.set(entry.path, file);
  });
  return files;
}
