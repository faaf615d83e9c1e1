/**
 * The golden files as the checker needs them. Reading and validating a file
 * is src/golden/load.ts's job (the format of spec/golden.md); this module
 * selects the files of one profile and a set of ops, verifies them against
 * the manifest's sha256, checks that each file's profile is this vdspec's
 * definition, and keeps every case in both forms: decoded (for in-process
 * ports and the fingerprint, which re-runs the reference) and encoded (sent
 * verbatim to a port process).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isVdspecError } from '../errors.js';
import { encodeNumber, encodeTensor } from '../golden/encoding.js';
import { globToRegExp, MANIFEST_NAME, sha256 } from '../golden/generate.js';
import { parseGoldenFile, readManifest, type GoldenManifest } from '../golden/load.js';
import { getOp, resolveNames, type OpSpec } from '../ops.js';
import { isProfileName, PROFILE_NAMES, PROFILES, type Profile } from '../profiles.js';
import type { Tensor } from '../tensor.js';
import { CheckInfrastructureError, messageOf } from './errors.js';

export type Dtype = 'float64' | 'float32';

/** A port's element `a` passes against `e` when |a - e| <= abs + rel*|e| + scaled*s. */
export interface Tolerance {
  readonly abs: number;
  readonly rel: number;
  readonly scaled: number;
}

export interface GoldenCase {
  readonly id: number;
  readonly comment: string;
  readonly flags: readonly string[];
  /** Encoded as in the file: what a port process is sent. */
  readonly rawInputs: Readonly<Record<string, unknown>>;
  /** Decoded: tensors and numbers as JavaScript numbers. */
  readonly inputs: Readonly<Record<string, unknown>>;
  readonly outputs: Readonly<Record<string, Tensor>>;
  readonly scale: Readonly<Record<string, Tensor>>;
}

export interface GeneratorInfo {
  readonly name: string;
  readonly version: string;
  readonly seed: number | null;
}

export interface GoldenFile {
  readonly path: string;
  readonly op: OpSpec;
  readonly section: string;
  readonly profile: Profile;
  readonly tolerance: Readonly<Record<Dtype, Tolerance>>;
  readonly generator: GeneratorInfo;
  readonly cases: readonly GoldenCase[];
}

export interface GoldenSet {
  readonly dir: string;
  readonly profile: Profile;
  readonly files: readonly GoldenFile[];
  /** Every op with a golden file for the profile, selected by --op or not. */
  readonly available: readonly string[];
  /** Problems that do not stop the check (e.g. no manifest). */
  readonly warnings: readonly string[];
}

function fail(message: string): never {
  throw new CheckInfrastructureError('golden', message);
}

/** Run a src/golden reader, turning its VdspecError into the checker's golden error. */
function reading<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isVdspecError(e) || e instanceof Error) fail(messageOf(e));
    throw e;
  }
}

/** Structural equality of JSON values (key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) &&
      deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** The inputs as a port process receives them: tensors and numbers encoded, the rest as is. */
export function encodeInputs(
  op: OpSpec,
  profile: Profile,
  inputs: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const kinds = new Map(resolveNames(op, profile).inputs.map((i) => [i.name, i.kind]));
  const raw: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inputs)) {
    const kind = kinds.get(name);
    raw[name] =
      kind === 'tensor'
        ? encodeTensor(value as Tensor)
        : kind === 'number'
          ? encodeNumber(value as number)
          : value;
  }
  return raw;
}

/** Read and validate one golden file (its bytes already read). */
export function goldenFileFromText(text: string, path: string): GoldenFile {
  const file = reading(() => parseGoldenFile(text, path));
  const op = getOp(file.op);
  const name = file.profile.name;
  if (!isProfileName(name)) fail(`golden file ${path}: unknown profile "${String(name)}"`);
  // Verdicts and fingerprints use this vdspec's profile; a file made from another definition is stale.
  const profile = PROFILES[name];
  if (!deepEqual(file.profile, profile)) {
    fail(
      `golden file ${path}: its profile "${name}" differs from this vdspec's definition (regenerate the golden files)`,
    );
  }
  return {
    path,
    op,
    section: file.section,
    profile,
    tolerance: file.tolerance,
    generator: file.generator,
    cases: file.cases.map((c) => ({
      id: c.id,
      comment: c.comment,
      flags: c.flags,
      rawInputs: encodeInputs(op, profile, c.inputs),
      inputs: c.inputs,
      outputs: c.outputs,
      scale: c.scale,
    })),
  };
}

export function loadGoldenFile(path: string): GoldenFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`cannot read golden file ${path}: ${messageOf(e)}`);
  }
  return goldenFileFromText(text, path);
}

/**
 * `--op` patterns: a comma-separated list of globs over op names (`*` any run
 * of characters, `?` one): `svd.dense.*`, `kl.*,objective.sgvb`.
 */
export function opMatcher(pattern: string | undefined): (op: string) => boolean {
  if (pattern === undefined) return () => true;
  const regexes = pattern
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map(globToRegExp);
  return (op) => regexes.some((r) => r.test(op));
}

/**
 * The golden files of `profileName` under `dir` whose op matches `pattern`,
 * sorted by op name. With a manifest (the shipped set has one) the files it
 * lists are read and checked against their sha256; without one, the
 * profile's directory is listed and a warning says the files are unverified.
 */
export function loadGoldenSet(dir: string, profileName: string, pattern?: string): GoldenSet {
  if (!isProfileName(profileName)) {
    fail(`unknown profile "${profileName}"; known profiles: ${PROFILE_NAMES.join(', ')}`);
  }
  if (!existsSync(dir)) fail(`golden directory ${dir} does not exist`);
  const warnings: string[] = [];
  let manifest: GoldenManifest | null = null;
  if (existsSync(join(dir, MANIFEST_NAME))) {
    manifest = reading(() => readManifest(dir));
  } else {
    warnings.push(`no ${MANIFEST_NAME} in ${dir}: golden files not verified against their sha256`);
  }
  const prefix = `${profileName}/`;
  let names: string[];
  if (manifest !== null) {
    names = manifest.files
      .filter((e) => e.path.startsWith(prefix))
      .map((e) => e.path.slice(prefix.length, -'.json'.length));
  } else {
    const profileDir = join(dir, profileName);
    if (!existsSync(profileDir)) fail(`no golden files for profile "${profileName}" in ${dir}`);
    names = readdirSync(profileDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }
  if (names.length === 0) fail(`no golden files for profile "${profileName}" in ${dir}`);
  const matches = opMatcher(pattern);
  const selected = names.filter(matches).sort();
  if (selected.length === 0) {
    fail(
      `--op ${pattern} matches none of the golden ops of "${profileName}": ${names.sort().join(', ')}`,
    );
  }
  const files = selected.map((name) => {
    const relative = `${profileName}/${name}.json`;
    const path = join(dir, relative);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      fail(`cannot read golden file ${path}: ${messageOf(e)}`);
    }
    const entry = manifest?.files.find((e) => e.path === relative);
    if (entry !== undefined && sha256(bytes) !== entry.sha256) {
      fail(`golden file ${path} does not match its sha256 in ${join(dir, MANIFEST_NAME)}`);
    }
    const file = goldenFileFromText(bytes.toString('utf8'), path);
    if (entry !== undefined && file.cases.length !== entry.cases) {
      fail(`golden file ${path} has ${file.cases.length} cases; the manifest says ${entry.cases}`);
    }
    if (file.op.name !== name) fail(`golden file ${path} holds op "${file.op.name}"`);
    if (file.profile.name !== profileName)
      fail(`golden file ${path} holds profile "${file.profile.name}"`);
    return file;
  });
  return { dir, profile: PROFILES[profileName], files, available: names.sort(), warnings };
}
