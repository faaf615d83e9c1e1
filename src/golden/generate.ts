/**
 * Building golden files from the float64 reference and writing them
 * atomically (spec/golden.md). Every case is one call of `run(op, inputs,
 * profile)`; cases the reference rejects are left out and reported.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { isVdspecError, VdspecError } from '../errors.js';
import { makeDirectories, plainFileError, writeFlushed } from '../files.js';
import { closeOperationNames, OPS, resolveNames, type OpSpec } from '../ops.js';
import { getProfile, PROFILE_NAMES, type LayerKind, type Profile } from '../profiles.js';
import { run, type Outputs } from '../reference/run.js';
import { sizeOf, type Tensor } from '../tensor.js';
import { family } from './cases/draft.js';
import { draftCases } from './cases/index.js';
import type { CaseSpec } from './cases/values.js';
import { encodeNumber, encodeTensor, stringifyGolden, type Json } from './encoding.js';
import { GOLDEN_BASE_SEED, goldenSeed } from './prng.js';
import {
  crossEntropyScale,
  denseAKlScale,
  denseAScale,
  GOLDEN_TOLERANCE,
  klExactScale,
  klSlopeScale,
  klValueScale,
  klWeightScale,
  layerKlScale,
  layerScale,
  predictMcScale,
  roundScaleUp,
  sgvbScale,
  weightModel,
} from './scale.js';

export const GOLDEN_SCHEMA = 'vdspec-golden/1';
export const MANIFEST_SCHEMA = 'vdspec-golden-manifest/1';
export const MANIFEST_NAME = 'manifest.json';
export const GENERATOR_NAME = 'vdspec';

/** The package version, recorded as the generator version. */
export function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

// ---------------------------------------------------------------------------
// Which files

export interface GoldenSelection {
  /** Profile names; all when absent. */
  readonly profiles?: readonly string[];
  /** Glob patterns over op names (`*` any run of characters, `?` one); all when absent. */
  readonly ops?: readonly string[];
}

export interface PlannedFile {
  readonly op: OpSpec;
  readonly profile: Profile;
  /** `<profile>/<op>.json`, relative to the output directory. */
  readonly path: string;
}

/** A glob over op names: `*` matches any run of characters (dots included), `?` one character. */
export function globToRegExp(pattern: string): RegExp {
  const body = [...pattern]
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.+()[\]{}|]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}

/**
 * The ops the globs select (`--op` of golden, check and fuzz). A glob that
 * matches no operation at all is refused: a misspelt name would otherwise
 * select nothing, silently.
 */
export function matchOps(patterns: readonly string[]): OpSpec[] {
  const ops = new Set<OpSpec>();
  for (const pattern of patterns) {
    const re = globToRegExp(pattern);
    const matched = OPS.filter((op) => re.test(op.name));
    if (matched.length === 0) {
      // A glob's near names would be guesses; a plain name's are likely the one meant.
      const close = /[*?]/.test(pattern) ? [] : closeOperationNames(pattern);
      throw new VdspecError(
        'unknown_op',
        `pattern "${pattern}" matches no operation` +
          (close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : '') +
          `; operations: ${OPS.map((o) => o.name).join(', ')}`,
        'op',
      );
    }
    for (const op of matched) ops.add(op);
  }
  return OPS.filter((op) => ops.has(op));
}

/** Every (op, profile) pair of the selection, the op accepting the profile, sorted by path. */
export function planGolden(selection: GoldenSelection = {}): PlannedFile[] {
  const profiles = (selection.profiles ?? PROFILE_NAMES).map((name) => getProfile(name));
  const patterns = selection.ops ?? ['*'];
  const ops = new Set(matchOps(patterns));
  const planned: PlannedFile[] = [];
  for (const profile of profiles) {
    for (const op of OPS) {
      if (!ops.has(op)) continue;
      if (op.algorithm !== null && op.algorithm !== profile.algorithm) continue;
      planned.push({ op, profile, path: `${profile.name}/${op.name}.json` });
    }
  }
  if (planned.length === 0) {
    throw new VdspecError(
      'invalid_argument',
      `no operation matching ${patterns.map((p) => `"${p}"`).join(', ')} accepts the profile(s) ` +
        `${profiles.map((p) => p.name).join(', ')}`,
      'op',
    );
  }
  return planned.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

// ---------------------------------------------------------------------------
// Scale tensors (spec/golden.md#tolerance, per op)

function tensorOf(shape: readonly number[], data: readonly number[]): Tensor {
  return { shape: [...shape], data: [...data] };
}

function layerScaleFor(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  outputs: Outputs,
): Record<string, Tensor> {
  const layer = op.layer as LayerKind;
  const kind = op.name.split('.').slice(2).join('.');
  const train = kind === 'train' || kind === 'train_vjp' || kind === 'predict_mc';
  const vjp = kind.endsWith('_vjp');
  const outShape = vjp
    ? (inputs['cotangent'] as Tensor).shape
    : (outputs['output'] ?? outputs['mean_output']!).shape;
  const zero = tensorOf(outShape, new Array<number>(sizeOf(outShape)).fill(0));
  const unmasked = kind === 'eval_unmasked';
  // The unmasked eval is the training mean with the mask off (and no eps).
  const trainClip = train
    ? ((inputs['train_clip'] as boolean | undefined) ?? profile.trainClipDefault)
    : !unmasked;
  if (kind === 'predict_mc') {
    const mc = predictMcScale({
      profile,
      layer,
      x: inputs['x'] as Tensor,
      theta: inputs['theta'] as Tensor,
      noise: inputs[profile.noiseParameter] as Tensor,
      bias: inputs['bias'] as Tensor,
      eps: inputs['eps'] as Tensor,
      cotangent: zero,
      trainClip,
      stride: 1,
      padding: 'valid',
    });
    return {
      mean_output: tensorOf(outShape, mc.meanOutput),
      mean_softmax: tensorOf(outShape, mc.meanSoftmax),
    };
  }
  const s = layerScale({
    profile,
    layer,
    x: inputs['x'] as Tensor,
    theta: inputs['theta'] as Tensor,
    noise: inputs[profile.noiseParameter] as Tensor,
    bias: inputs['bias'] as Tensor,
    eps: train ? (inputs['eps'] as Tensor) : zero,
    cotangent: vjp ? (inputs['cotangent'] as Tensor) : zero,
    trainClip,
    stride: (inputs['stride'] as number | [number, number] | undefined) ?? 1,
    padding: (inputs['padding'] as 'valid' | 'same' | undefined) ?? 'valid',
  });
  const like = (name: string, data: number[]) => tensorOf(outputs[name]!.shape, data);
  if (vjp) {
    return {
      grad_x: like('grad_x', s.gradX),
      grad_theta: like('grad_theta', s.gradTheta),
      [`grad_${profile.noiseParameter}`]: like(`grad_${profile.noiseParameter}`, s.gradNoise),
      grad_bias: like('grad_bias', s.gradBias),
    };
  }
  if (train) {
    return {
      mean: like('mean', s.mean),
      variance: like('variance', s.variance),
      output: like('output', s.output),
    };
  }
  return { output: like('output', unmasked ? s.mean : s.eval) };
}

/** The unrounded scale of each output of a case (before the zero and non-finite rules). */
function rawScale(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  outputs: Outputs,
): Record<string, Tensor> {
  const fam = family(op);
  switch (fam) {
    case 'kl_exact': {
      const la = inputs['log_alpha'] as Tensor;
      const kl = outputs['kl']!;
      const d = outputs['dkl_dlog_alpha']!;
      return {
        kl: tensorOf(
          kl.shape,
          la.data.map((v, i) => klExactScale(v, kl.data[i]!)),
        ),
        dkl_dlog_alpha: tensorOf(
          d.shape,
          la.data.map((v, i) => klExactScale(v, d.data[i]!)),
        ),
      };
    }
    case 'kl_approx': {
      const la = inputs['log_alpha'] as Tensor;
      return {
        kl: tensorOf(
          la.shape,
          la.data.map((v) => klValueScale(v, profile)),
        ),
        dkl_dlog_alpha: tensorOf(
          la.shape,
          la.data.map((v) => klSlopeScale(v, profile)),
        ),
      };
    }
    case 'weights': {
      const theta = inputs['theta'] as Tensor;
      const noise = inputs[profile.noiseParameter] as Tensor;
      const layer = ((inputs['layer'] as LayerKind | undefined) ?? 'dense') as LayerKind;
      if (op.name === 'svd.mask') return {};
      if (op.name === 'kl.layer') {
        const s = layerKlScale(theta, noise, profile, layer);
        return {
          kl: tensorOf([], [s.kl]),
          grad_theta: tensorOf(theta.shape, s.theta),
          [`grad_${profile.noiseParameter}`]: tensorOf(noise.shape, s.noise),
        };
      }
      return {
        log_alpha: tensorOf(theta.shape, weightModel(theta, noise, profile, layer).logAlpha),
      };
    }
    case 'layer':
      return layerScaleFor(op, profile, inputs, outputs);
    case 'dense_a': {
      const like = (name: string, data: number[]) => tensorOf(outputs[name]!.shape, data);
      const noiseName = profile.noiseParameter;
      const x = inputs['x'] as Tensor;
      const outShape = [x.shape[0]!, (inputs['theta'] as Tensor).shape[1]!];
      const s = denseAScale({
        profile,
        x,
        theta: inputs['theta'] as Tensor,
        noise: inputs[noiseName] as Tensor,
        bias: inputs['bias'] as Tensor,
        eps: inputs['eps'] as Tensor,
        cotangent:
          (inputs['cotangent'] as Tensor | undefined) ??
          tensorOf(outShape, new Array<number>(sizeOf(outShape)).fill(0)),
      });
      if (op.name === 'vd.dense_a.train') {
        return {
          mean: like('mean', s.mean),
          variance: like('variance', s.variance),
          output: like('output', s.output),
        };
      }
      return {
        grad_x: like('grad_x', s.gradX),
        grad_theta: like('grad_theta', s.gradTheta),
        [`grad_${noiseName}`]: like(`grad_${noiseName}`, s.gradNoise),
        grad_bias: like('grad_bias', s.gradBias),
      };
    }
    case 'dense_a_kl': {
      const noise = inputs[profile.noiseParameter] as Tensor;
      const s = denseAKlScale(inputs['theta'] as Tensor, noise, profile);
      return {
        kl: tensorOf([], [s.kl]),
        [`grad_${profile.noiseParameter}`]: tensorOf(noise.shape, s.noise),
      };
    }
    case 'cross_entropy': {
      const s = crossEntropyScale(inputs['logits'] as Tensor, outputs['per_example']!.data);
      return {
        per_example: tensorOf(outputs['per_example']!.shape, s.perExample),
        mean: tensorOf([], [s.mean]),
      };
    }
    case 'sgvb': {
      const logits = inputs['logits'] as Tensor;
      const ce = run('objective.cross_entropy', { logits, labels: inputs['labels'] }, profile);
      const ceScale = crossEntropyScale(logits, ce['per_example']!.data);
      const s = sgvbScale(
        ceScale.mean,
        inputs['train_size'] as number,
        outputs['data_term']!.data[0]!,
        outputs['kl_term']!.data[0]!,
      );
      return {
        loss: tensorOf([], [s.loss]),
        data_term: tensorOf([], [s.dataTerm]),
        kl_term: tensorOf([], [s.klTerm]),
      };
    }
    case 'schedule':
      return { kl_weight: tensorOf([], [klWeightScale(inputs['epoch'] as number)]) };
  }
}

/**
 * The case's `scale`: each element rounded up to two significant digits, 0
 * where the expected value is not finite (those must match exactly), and
 * outputs whose scale is all 0 left out.
 */
export function caseScale(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  outputs: Outputs,
): Record<string, Tensor> {
  const raw = rawScale(op, profile, inputs, outputs);
  const scale: Record<string, Tensor> = {};
  for (const name of resolveNames(op, profile).outputs) {
    const s = raw[name];
    if (s === undefined) continue;
    const expected = outputs[name]!;
    const data = s.data.map((v, i) => {
      if (!Number.isFinite(expected.data[i]!)) return 0;
      if (!Number.isFinite(v) || v < 0) {
        throw new Error(`${op.name}/${profile.name}: scale of ${name}[${i}] is ${v}`);
      }
      return roundScaleUp(v);
    });
    if (data.some((v) => v !== 0)) scale[name] = tensorOf(expected.shape, data);
  }
  return scale;
}

// ---------------------------------------------------------------------------
// One file

export interface DroppedCase {
  readonly path: string;
  readonly id: number;
  readonly comment: string;
  /** The reference's error message. */
  readonly reason: string;
}

export interface BuiltFile {
  readonly path: string;
  readonly text: string;
  readonly cases: number;
  readonly dropped: DroppedCase[];
}

function encodeInput(value: unknown): Json {
  if (typeof value === 'number') return encodeNumber(value);
  if (typeof value === 'object' && value !== null && 'shape' in value && 'data' in value) {
    const t = encodeTensor(value as Tensor);
    return { shape: t.shape, data: t.data };
  }
  return value as Json;
}

function encodeTensors(tensors: Record<string, Tensor>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const e = encodeTensor(t);
    out[name] = { shape: e.shape, data: e.data };
  }
  return out;
}

function caseJson(
  op: OpSpec,
  profile: Profile,
  spec: CaseSpec,
  outputs: Outputs,
): Record<string, Json> {
  const inputs: Record<string, Json> = {};
  for (const [name, v] of Object.entries(spec.inputs)) inputs[name] = encodeInput(v);
  const ordered: Record<string, Tensor> = {};
  for (const name of resolveNames(op, profile).outputs) ordered[name] = outputs[name]!;
  const scale = caseScale(op, profile, spec.inputs, outputs);
  return {
    id: spec.id,
    comment: spec.comment,
    flags: spec.flags,
    inputs,
    outputs: encodeTensors(ordered),
    ...(Object.keys(scale).length > 0 ? { scale: encodeTensors(scale) } : {}),
  };
}

export interface BuildOptions {
  readonly version?: string;
  readonly baseSeed?: number;
}

/** The golden file of `op` under `profile`: its text and which drafted cases the reference rejected. */
export function buildGoldenFile(
  op: OpSpec,
  profile: Profile,
  options: BuildOptions = {},
): BuiltFile {
  const seed = goldenSeed(profile.name, op.name, options.baseSeed ?? GOLDEN_BASE_SEED);
  return goldenFileOf(op, profile, draftCases(op, profile, seed), seed, options.version);
}

/**
 * A golden file of the given cases (their outputs and scales from the
 * reference; a case it rejects is dropped and listed), with `seed` as the
 * file's generator seed. `vdspec fuzz --save-failures` writes its minimal
 * failing cases with it.
 */
export function goldenFileOf(
  op: OpSpec,
  profile: Profile,
  specs: readonly CaseSpec[],
  seed: number,
  version = packageVersion(),
): BuiltFile {
  const path = `${profile.name}/${op.name}.json`;
  const cases: Json[] = [];
  const dropped: DroppedCase[] = [];
  for (const spec of specs) {
    let outputs: Outputs;
    try {
      outputs = run(op.name, spec.inputs, profile);
    } catch (e) {
      if (!isVdspecError(e)) throw e;
      dropped.push({ path, id: spec.id, comment: spec.comment, reason: e.message });
      continue;
    }
    cases.push(caseJson(op, profile, spec, outputs));
  }
  const file: Json = {
    schema: GOLDEN_SCHEMA,
    generator: { name: GENERATOR_NAME, version, seed },
    op: op.name,
    section: op.section,
    profile: profile as unknown as Json,
    tolerance: {
      float64: { ...GOLDEN_TOLERANCE.float64 },
      float32: { ...GOLDEN_TOLERANCE.float32 },
    },
    cases,
  };
  return { path, text: stringifyGolden(file), cases: cases.length, dropped };
}

// ---------------------------------------------------------------------------
// Manifest

export interface ManifestEntry {
  readonly path: string;
  readonly sha256: string;
  readonly cases: number;
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

export function manifestText(
  entries: readonly ManifestEntry[],
  version: string,
  baseSeed = GOLDEN_BASE_SEED,
): string {
  const files = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return stringifyGolden({
    schema: MANIFEST_SCHEMA,
    generator: { name: GENERATOR_NAME, version, seed: baseSeed },
    files: files.map((f) => ({ path: f.path, sha256: f.sha256, cases: f.cases })),
  });
}

/**
 * Entries of an earlier manifest in `dir` worth keeping in a partial run:
 * files this run does not write, still on disk with the recorded hash.
 */
function keptEntries(dir: string, written: ReadonlySet<string>): ManifestEntry[] {
  const path = join(dir, MANIFEST_NAME);
  if (!existsSync(path)) return [];
  let files: unknown;
  try {
    files = (JSON.parse(readFileSync(path, 'utf8')) as { files?: unknown }).files;
  } catch {
    return [];
  }
  if (!Array.isArray(files)) return [];
  const kept: ManifestEntry[] = [];
  for (const f of files as Partial<ManifestEntry>[]) {
    if (typeof f.path !== 'string' || typeof f.sha256 !== 'string' || typeof f.cases !== 'number') {
      continue;
    }
    if (written.has(f.path)) continue;
    const file = join(dir, f.path);
    if (!existsSync(file) || sha256(readFileSync(file)) !== f.sha256) continue;
    kept.push({ path: f.path, sha256: f.sha256, cases: f.cases });
  }
  return kept;
}

// ---------------------------------------------------------------------------
// Writing

function syncDirectory(path: string): void {
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every platform can fsync a directory; the renames are atomic regardless.
  }
}

export interface GenerateHooks {
  /** Called after each file is staged (tests inject failures here). */
  readonly onStaged?: (path: string) => void;
}

export interface GenerateSummary {
  readonly outDir: string;
  readonly files: { readonly path: string; readonly cases: number; readonly bytes: number }[];
  readonly cases: number;
  readonly bytes: number;
  readonly dropped: DroppedCase[];
  /** Whether entries of an earlier manifest were kept (a partial run). */
  readonly merged: boolean;
}

const STAGING_PREFIX = '.vdspec-golden-staging-';

/** Whether process `pid` still runs (signal 0 tests for it without sending anything). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Create `outDir` and a fresh staging directory in it, named after this
 * process; remove the staging directories of runs that were killed (their
 * process is gone, or an older vdspec named them without a pid). Failures
 * are the user's --out: a VdspecError in plain words.
 */
function openStaging(outDir: string): string {
  try {
    makeDirectories(outDir);
    for (const name of readdirSync(outDir)) {
      if (!name.startsWith(STAGING_PREFIX)) continue;
      const pid = /^p(\d+)-/.exec(name.slice(STAGING_PREFIX.length))?.[1];
      if (pid === undefined || !processRuns(Number(pid))) {
        rmSync(join(outDir, name), { recursive: true, force: true });
      }
    }
    return mkdtempSync(join(outDir, `${STAGING_PREFIX}p${process.pid}-`));
  } catch (error) {
    throw new VdspecError(
      'io_error',
      `cannot write to ${outDir}: ${plainFileError(error)}`,
      '--out',
    );
  }
}

/**
 * Generate the selected golden files into `outDir` (spec/golden.md#writing):
 * every file is built in memory, then staged in a temporary directory
 * inside `outDir` (written and fsynced), then every target directory is
 * created, and only then is each file renamed into place, the manifest last.
 * Any failure before the renames leaves the previous set untouched; the
 * staging directory is always removed. A partial run (--profile or --op)
 * keeps the earlier manifest's entries for files it does not write.
 */
export function generateGolden(
  outDir: string,
  selection: GoldenSelection = {},
  options: BuildOptions & { hooks?: GenerateHooks } = {},
): GenerateSummary {
  const steps = goldenSteps(outDir, selection, options);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Thrown by generateGoldenInterruptible when asked to stop before the commit point. */
export class GoldenInterrupted extends Error {}

/**
 * generateGolden, stoppable: between building or staging one file and the
 * next it lets the event loop run (signal listeners) and asks `shouldStop`.
 * A stop before the commit point (the first rename) removes the staging
 * directory and throws GoldenInterrupted, with `outDir`'s files as they were;
 * from the commit point on nothing is asked any more: the renames finish.
 */
export async function generateGoldenInterruptible(
  outDir: string,
  selection: GoldenSelection,
  options: BuildOptions & { hooks?: GenerateHooks; shouldStop: () => boolean },
): Promise<GenerateSummary> {
  const steps = goldenSteps(outDir, selection, options);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise((resolve) => setImmediate(resolve));
    if (options.shouldStop()) {
      // Runs the generator's finally: the staging directory is removed.
      steps.return(undefined as never);
      throw new GoldenInterrupted('interrupted before the files were put in place');
    }
  }
}

/**
 * The work of generateGolden, one file at a time: it yields after building
 * each file and after staging each one (the manifest last), and never once
 * the renames have begun.
 */
function* goldenSteps(
  outDir: string,
  selection: GoldenSelection,
  options: BuildOptions & { hooks?: GenerateHooks },
): Generator<void, GenerateSummary, void> {
  const version = options.version ?? packageVersion();
  const baseSeed = options.baseSeed ?? GOLDEN_BASE_SEED;
  const planned = planGolden(selection);
  const built: ReturnType<typeof buildGoldenFile>[] = [];
  for (const p of planned) {
    built.push(buildGoldenFile(p.op, p.profile, { version, baseSeed }));
    yield;
  }
  const partial = selection.profiles !== undefined || selection.ops !== undefined;

  const staging = openStaging(outDir);
  try {
    for (const file of built) {
      makeDirectories(dirname(join(staging, file.path)));
      writeFlushed(join(staging, file.path), file.text);
      options.hooks?.onStaged?.(file.path);
      yield;
    }
    const entries: ManifestEntry[] = built.map((f) => ({
      path: f.path,
      sha256: sha256(f.text),
      cases: f.cases,
    }));
    const written = new Set(built.map((f) => f.path));
    const kept = partial ? keptEntries(outDir, written) : [];
    writeFlushed(
      join(staging, MANIFEST_NAME),
      manifestText([...entries, ...kept], version, baseSeed),
    );
    options.hooks?.onStaged?.(MANIFEST_NAME);
    yield;

    // The commit point: no yield from here on, so a stop can no longer come between the renames.
    const targetDirs = [...new Set(built.map((f) => dirname(join(outDir, f.path))))];
    for (const d of targetDirs) makeDirectories(d);
    for (const file of built) renameSync(join(staging, file.path), join(outDir, file.path));
    for (const d of targetDirs) syncDirectory(d);
    renameSync(join(staging, MANIFEST_NAME), join(outDir, MANIFEST_NAME));
    syncDirectory(outDir);
    const files = built.map((f) => ({
      path: f.path,
      cases: f.cases,
      bytes: Buffer.byteLength(f.text),
    }));
    return {
      outDir,
      files,
      cases: files.reduce((a, f) => a + f.cases, 0),
      bytes: files.reduce((a, f) => a + f.bytes, 0),
      dropped: built.flatMap((f) => f.dropped),
      merged: kept.length > 0,
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Tables of spec/golden.md

/** The tolerance table of spec/golden.md (between its `golden-tolerance` markers). */
export function goldenToleranceTableMarkdown(): string {
  const rows = (['float64', 'float32'] as const).map((dtype) => {
    const t = GOLDEN_TOLERANCE[dtype];
    return `| ${dtype} | \`${t.abs}\` | \`${t.rel}\` | \`${t.scaled}\` |`;
  });
  return ['| dtype | `abs` | `rel` | `scaled` |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/**
 * The set table of spec/golden.md (between its `golden-set` markers): cases
 * per op and profile, and the totals, from a manifest and the files' sizes.
 */
export function goldenSetTableMarkdown(
  entries: readonly ManifestEntry[],
  totalBytes: number,
): string {
  const byPath = new Map(entries.map((e) => [e.path, e.cases]));
  const header = `| operation | ${PROFILE_NAMES.map((p) => `\`${p}\``).join(' | ')} |`;
  const rule = `| --- | ${PROFILE_NAMES.map(() => '---:').join(' | ')} |`;
  const rows = OPS.map((op) => {
    const cells = PROFILE_NAMES.map((p) => String(byPath.get(`${p}/${op.name}.json`) ?? '—'));
    return `| \`${op.name}\` | ${cells.join(' | ')} |`;
  });
  const cases = entries.reduce((a, e) => a + e.cases, 0);
  const mib = (totalBytes / 2 ** 20).toFixed(2);
  return [
    header,
    rule,
    ...rows,
    '',
    `${entries.length} files, ${cases} cases, ${totalBytes} bytes (${mib} MiB) plus the manifest.`,
  ].join('\n');
}
