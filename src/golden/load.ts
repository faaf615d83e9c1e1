/**
 * Reading golden files and their manifest (spec/golden.md#format). Their
 * structure is checked against spec/schemas/golden.schema.json
 * (src/schema.ts); this module adds what a schema cannot say: the op exists
 * and takes the profile's algorithm, a case has exactly the op's inputs, each
 * of its kind, and outputs, data fills its shape, a scale has its output's
 * shape, case ids are unique, the manifest's paths are sorted. Every error is
 * a VdspecError whose argument is the JSON pointer of the place and whose
 * message is `<file>: <pointer>: <problem>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VdspecError } from '../errors.js';
import { getOp, resolveNames, type InputKind, type OpSpec } from '../ops.js';
import type { Profile } from '../profiles.js';
import { schemaViolation } from '../schema.js';
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

/** Runs `read`, naming `source` in the message of any VdspecError it throws. */
function inFile<T>(source: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof VdspecError) e.message = `${source}: ${e.message}`;
    throw e;
  }
}

/** The text as JSON that conforms to `$defs/<def>` of the golden schema. */
function parse(text: string, def: 'goldenFile' | 'manifest'): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (e) {
    const error = new VdspecError('invalid_argument', 'not JSON', '/');
    error.message = `not JSON: ${e instanceof Error ? e.message : String(e)}`;
    throw error;
  }
  const v = schemaViolation('golden', json, def);
  if (v !== null) throw new VdspecError('invalid_argument', v.problem, v.path);
  return json;
}

// The shapes the schema guarantees.
interface RawCase {
  id: number;
  comment: string;
  flags: string[];
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  scale?: Record<string, unknown>;
}
interface RawFile extends Omit<GoldenFile, 'cases'> {
  cases: RawCase[];
}

/** The names of `given` against the op's: every one of `required`, none outside `allowed`. */
function checkNames(
  given: object,
  at: string,
  what: string,
  required: readonly string[],
  allowed: readonly string[],
): void {
  for (const k of required) {
    if (!(k in given)) throw new VdspecError('invalid_argument', `missing ${what}`, `${at}/${k}`);
  }
  for (const k of Object.keys(given)) {
    if (!allowed.includes(k)) {
      const expected = allowed.length === 0 ? 'none' : allowed.join(', ');
      throw new VdspecError(
        'invalid_argument',
        `unknown ${what} (expected: ${expected})`,
        `${at}/${k}`,
      );
    }
  }
}

function input(kind: InputKind, value: unknown, at: string): unknown {
  const v = schemaViolation('golden', value, kind);
  if (v !== null) {
    throw new VdspecError('invalid_argument', v.problem, v.path === '/' ? at : `${at}${v.path}`);
  }
  if (kind === 'tensor') return decodeTensor(value, at);
  return kind === 'number' ? decodeNumber(value, at) : value;
}

function goldenCase(c: RawCase, at: string, op: OpSpec, p: Profile): GoldenCase {
  const names = resolveNames(op, p);
  const required = names.inputs.filter((i) => !i.optional).map((i) => i.name);
  checkNames(
    c.inputs,
    `${at}/inputs`,
    'input',
    required,
    names.inputs.map((i) => i.name),
  );
  const inputs: Record<string, unknown> = {};
  for (const spec of names.inputs) {
    if (!(spec.name in c.inputs)) continue;
    inputs[spec.name] = input(spec.kind, c.inputs[spec.name], `${at}/inputs/${spec.name}`);
  }

  checkNames(c.outputs, `${at}/outputs`, 'output', names.outputs, names.outputs);
  const outputs: Record<string, Tensor> = {};
  for (const name of names.outputs) {
    outputs[name] = decodeTensor(c.outputs[name], `${at}/outputs/${name}`);
  }

  const scale: Record<string, Tensor> = {};
  checkNames(c.scale ?? {}, `${at}/scale`, 'output', [], names.outputs);
  for (const [name, value] of Object.entries(c.scale ?? {})) {
    const where = `${at}/scale/${name}`;
    const t = decodeTensor(value, where);
    const shape = outputs[name]!.shape;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new VdspecError(
        'shape_mismatch',
        `shape [${t.shape.join(', ')}] differs from the output's [${shape.join(', ')}]`,
        where,
      );
    }
    scale[name] = t;
  }
  return { id: c.id, comment: c.comment, flags: c.flags, inputs, outputs, scale };
}

/** Parse and check the text of a golden file. `source` names it in error messages. */
export function parseGoldenFile(text: string, source = 'golden file'): GoldenFile {
  return inFile(source, () => {
    const raw = parse(text, 'goldenFile') as RawFile;
    let op: OpSpec;
    try {
      op = getOp(raw.op);
    } catch {
      throw new VdspecError(
        'invalid_argument',
        `unknown operation ${JSON.stringify(raw.op)}`,
        '/op',
      );
    }
    if (op.algorithm !== null && raw.profile.algorithm !== op.algorithm) {
      throw new VdspecError(
        'invalid_argument',
        `${op.name} needs a ${op.algorithm} profile`,
        '/profile/algorithm',
      );
    }
    const ids = new Set<number>();
    const cases = raw.cases.map((c, i) => {
      if (ids.has(c.id))
        throw new VdspecError('invalid_argument', `duplicate case id ${c.id}`, `/cases/${i}/id`);
      ids.add(c.id);
      return goldenCase(c, `/cases/${i}`, op, raw.profile);
    });
    return { ...raw, op: op.name, cases };
  });
}

export function readGoldenFile(path: string): GoldenFile {
  return parseGoldenFile(readFileSync(path, 'utf8'), path);
}

/** Parse and check the text of a manifest (paths sorted and unique, hashes well-formed). */
export function parseManifest(text: string, source = MANIFEST_NAME): GoldenManifest {
  return inFile(source, () => {
    const manifest = parse(text, 'manifest') as GoldenManifest;
    manifest.files.forEach((f, i) => {
      if (i > 0 && f.path <= manifest.files[i - 1]!.path) {
        throw new VdspecError(
          'invalid_argument',
          'paths must be sorted and unique',
          `/files/${i}/path`,
        );
      }
    });
    return manifest;
  });
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
  const mismatch = (problem: string, at: string) =>
    inFile(join(dir, MANIFEST_NAME), () => {
      throw new VdspecError('invalid_argument', problem, at);
    });
  manifest.files.forEach((entry, i) => {
    const path = join(dir, entry.path);
    const bytes = readFileSync(path);
    if (sha256(bytes) !== entry.sha256) {
      mismatch(`${entry.path} does not match its sha256 in the manifest`, `/files/${i}/sha256`);
    }
    const file = parseGoldenFile(bytes.toString('utf8'), path);
    if (file.cases.length !== entry.cases) {
      mismatch(
        `${entry.path} has ${file.cases.length} cases, the manifest says ${entry.cases}`,
        `/files/${i}/cases`,
      );
    }
    files.set(entry.path, file);
  });
  return files;
}
