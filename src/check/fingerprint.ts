/**
 * The convention fingerprint (spec/check.md#fingerprint): for a failed case,
 * which other answer the port's answer matches. Candidates, each evaluated on
 * the case's own inputs with its own error scale (the golden generator's
 * model, src/golden/scale.ts, under the candidate's conventions) and compared
 * with the port's answer under the golden file's tolerance for the port's dtype:
 *
 * - known bugs, computed here: true defects no published profile has on
 *   purpose (the standard deviation from sigma^4, the bias inside the variance),
 *   and common mistakes of a first port (the KL's sign, the eval forward
 *   without its mask, no eps in the square root, ...);
 * - one convention changed: the profile with a single field (clip, eps in the
 *   log, variance form, `>` or `>=` at the threshold, the KL constant, ...) set
 *   to the value another published profile of the same algorithm uses. A
 *   deliberate choice of upstream code is a convention of that code, and is
 *   labelled so ("convention: ... like <profiles>"), never "known bug";
 * - every other profile of the same algorithm as a whole, the noise
 *   parameter mapped when the names differ (log_sigma = log_sigma2 / 2).
 *
 * Everything is computed with the float64 reference (`run`, `weightStatistics`,
 * `conv2d`): the fingerprint never trusts the port's own numbers.
 */
import { SVD_KL_K1 } from '../constants.js';
import { getOp, type OpSpec } from '../ops.js';
import { PROFILE_NAMES, PROFILES, type LayerKind, type Profile } from '../profiles.js';
import { conv2d, type Conv2dPaddingMode, type Conv2dStride } from '../reference/conv2d.js';
import { weightStatistics } from '../reference/logAlpha.js';
import { run } from '../reference/run.js';
import type { Tensor } from '../tensor.js';
import { caseScale } from '../golden/generate.js';
import { compareOutputs } from './compare.js';
import type { Tolerance } from './golden.js';

export interface Diagnosis {
  readonly kind: 'bug' | 'convention' | 'profile';
  /** Stable identifier, e.g. `bug:std_from_sigma4`, `convention:prune.comparison=">="`, `profile:pytorch-ard`. */
  readonly id: string;
  readonly text: string;
}

type Outputs = Record<string, Tensor>;
type Inputs = Readonly<Record<string, unknown>>;

/** A candidate's answer and the scale its golden file would carry (spec/golden.md#tolerance). */
interface Evaluation {
  readonly outputs: Outputs;
  readonly scale: Outputs;
}

interface Candidate extends Diagnosis {
  /** Only candidates that can change this op's answer for this layer kind are evaluated. */
  applies(op: OpSpec, layer: LayerKind): boolean;
  evaluate(op: OpSpec, inputs: Inputs): Evaluation;
}

/**
 * The scale the golden generator would give `outputs` under `profile`. Where
 * the model cannot give one (a non-finite bound on a finite value) the
 * candidate is held to the plain tolerance: a stricter match, never a looser one.
 */
function scaleUnder(op: OpSpec, profile: Profile, inputs: Inputs, outputs: Outputs): Outputs {
  try {
    return caseScale(op, profile, { ...inputs }, outputs);
  } catch {
    return {};
  }
}

/** The reference's answer under `profile`, with that profile's own scale. */
function evaluateUnder(op: OpSpec, profile: Profile, inputs: Inputs): Evaluation {
  const outputs = run(op.name, inputs, profile);
  return { outputs, scale: scaleUnder(op, profile, inputs, outputs) };
}

// ---------------------------------------------------------------------------
// Convention fields and how to say them

const CONVENTION_PATHS = [
  'dense.logAlpha.form',
  'dense.logAlpha.thetaEps',
  'dense.logAlpha.clip',
  'dense.klLogAlpha',
  'dense.variance',
  'dense.trainMask',
  'conv2d.logAlpha.form',
  'conv2d.logAlpha.thetaEps',
  'conv2d.logAlpha.clip',
  'conv2d.klLogAlpha',
  'conv2d.variance',
  'conv2d.trainMask',
  'sqrtEps',
  'samePadding',
  'prune.comparison',
  'prune.from',
  'trainClipDefault',
  'kl.constant',
] as const;
type ConventionPath = (typeof CONVENTION_PATHS)[number];

function getPath(profile: Profile, path: string): unknown {
  let v: unknown = profile;
  for (const key of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function withPath(profile: Profile, path: string, value: unknown): Profile {
  const copy = structuredClone(profile) as unknown as Record<string, unknown>;
  const keys = path.split('.');
  let node = copy;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[keys[keys.length - 1]!] = value;
  return copy as unknown as Profile;
}

function shown(value: unknown): string {
  if (value === null) return 'none';
  if (typeof value === 'object' && 'form' in value) {
    const la = value as { form: string; thetaEps: number; clip: unknown };
    return `${la.form}, eps ${la.thetaEps}, clip ${shown(la.clip)}`;
  }
  if (typeof value === 'object') {
    const clip = value as { min: number | null; max: number | null; gradientAtBound?: 0 | 1 };
    const atBound = clip.gradientAtBound === 0 ? ', gradient 0 on a bound' : '';
    return `[${clip.min ?? 'none'}, ${clip.max ?? 'none'}${atBound}]`;
  }
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/**
 * What a port with `value` at `path` does, in the words of the spec; `layers`
 * names the layer kinds when one diagnosis stands for both.
 */
function describe(path: ConventionPath, value: unknown, profile: Profile, layers?: string): string {
  const [first] = path.split('.');
  const layer = layers ?? (first === 'dense' || first === 'conv2d' ? first : '');
  switch (path) {
    case 'dense.logAlpha.form':
    case 'conv2d.logAlpha.form':
      return value === 'log_abs_theta'
        ? `your ${layer} log_alpha is log_sigma2 - 2*log(|theta| + eps)`
        : value === 'log_theta2'
          ? `your ${layer} log_alpha is log_sigma2 - log(theta^2 + eps)`
          : `your ${layer} log_alpha is the learned parameter itself`;
    case 'dense.logAlpha.thetaEps':
    case 'conv2d.logAlpha.thetaEps':
      return value === 0
        ? `your ${layer} log_alpha has no eps inside the log`
        : `your ${layer} log_alpha adds eps ${String(value)} inside the log`;
    case 'dense.logAlpha.clip':
    case 'conv2d.logAlpha.clip': {
      if (value === null) return `your ${layer} log_alpha is not clipped`;
      const atBound = (value as { gradientAtBound?: 0 | 1 }).gradientAtBound;
      return `your ${layer} log_alpha is clipped to ${shown(value)}${
        atBound === 0
          ? ' with no gradient exactly on a bound (a switch that selects the constant there)'
          : ''
      }`;
    }
    case 'dense.klLogAlpha':
    case 'conv2d.klLogAlpha':
      return value === null
        ? `your ${layer} KL reads the forward's log_alpha`
        : `your ${layer} KL reads its own log_alpha (${shown(value)}), not the forward's`;
    case 'dense.variance':
    case 'conv2d.variance':
      return value === 'sigma2'
        ? `your ${layer} variance is exp(log_sigma2), ignoring the clip`
        : value === 'sigma2_rebuilt'
          ? `your ${layer} variance is exp(clipped log_alpha) * (theta^2 + eps): log_sigma2 rebuilt from the clipped log_alpha`
          : `your ${layer} variance is exp(clipped log_alpha) * theta^2`;
    case 'samePadding':
      return value === 'lasagne'
        ? "your 'same' padding puts floor(k / 2) on each side (Lasagne)"
        : "your 'same' padding puts the odd row and column after (TensorFlow)";
    case 'dense.trainMask':
    case 'conv2d.trainMask':
      return value === 'mean_and_variance'
        ? `your ${layer} training forward masks the variance as well as the mean`
        : `your ${layer} training forward masks the mean only`;
    case 'sqrtEps':
      // An eps far below the variances cannot be told from none: say so rather than claim the value.
      return (value as number) < profile.sqrtEps
        ? `your training forward adds ${String(value)} or less (none at all included) inside the square root, not the profile's ${profile.sqrtEps}`
        : `your training forward adds ${String(value)} inside the square root, not the profile's ${profile.sqrtEps}`;
    case 'prune.comparison': {
      const threshold = profile.prune?.threshold ?? 'the threshold';
      return `your mask uses ${String(value)} at the threshold: a weight at exactly log_alpha = ${threshold} is ${value === '>=' ? 'pruned' : 'kept'}`;
    }
    case 'prune.from':
      return `your mask reads the ${String(value)} log_alpha`;
    case 'trainClipDefault':
      return value === true
        ? 'your training forward applies the mask by default (train_clip on)'
        : 'your training forward does not apply the mask by default (train_clip off)';
    case 'kl.constant':
      return value === 'omitted'
        ? `your KL omits the constant C = -k1: lower by SVD_KL_K1 = ${SVD_KL_K1} per weight, -> -k1 instead of 0 as alpha -> inf`
        : value === 'minus_k1'
          ? `your KL includes the constant C = -k1: higher by SVD_KL_K1 = ${SVD_KL_K1} per weight, -> 0 instead of -k1 as alpha -> inf`
          : `your KL uses the constant ${shown(value)}`;
  }
}

function profilesWith(path: string, value: unknown, algorithm: Profile['algorithm']): string[] {
  return PROFILE_NAMES.filter(
    (name) =>
      PROFILES[name].algorithm === algorithm &&
      JSON.stringify(getPath(PROFILES[name], path)) === JSON.stringify(value),
  );
}

/**
 * `convention: <what the port does> (<field> = <its value>; <profile> has <ours>), like <profiles>`:
 * a value some published profile uses on purpose, so never labelled a bug.
 */
function conventionText(profile: Profile, path: ConventionPath, value: unknown): string {
  const like = profilesWith(path, value, profile.algorithm);
  return `convention: ${describe(path, value, profile)} (${path} = ${shown(value)}; ${profile.name} has ${shown(
    getPath(profile, path),
  )})${like.length > 0 ? `, like ${like.join(', ')}` : ''}`;
}

/** The same field at the same value for both layer kinds, e.g. both log_alphas clipped to [-10, 10]. */
function bothLayersText(profile: Profile, field: string, value: unknown): string {
  const paths = (['dense', 'conv2d'] as const).map((l) => `${l}.${field}` as ConventionPath);
  const like = PROFILE_NAMES.filter((name) =>
    paths.every((p) => profilesWith(p, value, profile.algorithm).includes(name)),
  );
  const ours = paths.map(
    (p) => `${profile.name} has ${shown(getPath(profile, p))} for ${p.split('.')[0]}`,
  );
  return `convention: ${describe(paths[0]!, value, profile, 'dense and conv2d')} (${paths.join(' and ')} = ${shown(
    value,
  )}; ${ours.join(', ')})${like.length > 0 ? `, like ${like.join(', ')}` : ''}`;
}

/** `convention:<layer>.<field>=<value>` of a per-layer candidate, split; null for any other id. */
function perLayerId(id: string): { layer: LayerKind; field: string; value: string } | null {
  const m = /^convention:(dense|conv2d)\.([^=]+)=(.*)$/s.exec(id);
  return m === null ? null : { layer: m[1] as LayerKind, field: m[2]!, value: m[3]! };
}

/** A diagnosis counted over an op's fingerprinted failed cases. */
export interface TallyEntry extends Diagnosis {
  /** Failed cases it matched, of `checked` fingerprinted ones. */
  readonly matched: number;
  readonly checked: number;
}

/**
 * Per-op tally entries of one convention at one value for each layer kind (a
 * case has one layer kind, so it matches at most one of them) become one
 * entry for both, their counts added: a port that clips both log_alphas to
 * [-10, 10] has one cause, not a dense half and a conv2d half that a whole
 * other profile outranks.
 */
export function mergeLayerHalves(profile: Profile, tally: readonly TallyEntry[]): TallyEntry[] {
  const out: TallyEntry[] = [];
  const merged = new Set<string>();
  for (const entry of tally) {
    if (merged.has(entry.id)) continue;
    const mine = perLayerId(entry.id);
    const twin =
      mine === null
        ? undefined
        : tally.find((t) => {
            const other = perLayerId(t.id);
            return (
              other !== null &&
              other.layer !== mine.layer &&
              other.field === mine.field &&
              other.value === mine.value
            );
          });
    if (mine === null || twin === undefined) {
      out.push(entry);
      continue;
    }
    merged.add(twin.id);
    out.push({
      kind: 'convention',
      id: `convention:dense+conv2d.${mine.field}=${mine.value}`,
      text: bothLayersText(profile, mine.field, JSON.parse(mine.value) as unknown),
      matched: entry.matched + twin.matched,
      checked: entry.checked,
    });
  }
  return out;
}

/** The candidate ids a (possibly merged) diagnosis id stands for. */
export function candidateIds(id: string): string[] {
  const m = /^convention:dense\+conv2d\.(.*)$/s.exec(id);
  return m === null ? [id] : [`convention:dense.${m[1]!}`, `convention:conv2d.${m[1]!}`];
}

// ---------------------------------------------------------------------------
// Helpers over op inputs

function layerOf(op: OpSpec, inputs: Inputs): LayerKind {
  if (op.layer !== null) return op.layer;
  return inputs['layer'] === 'conv2d' ? 'conv2d' : 'dense';
}

function isTrainForward(op: OpSpec): boolean {
  return op.layer !== null && op.name.endsWith('.train');
}

/** (x*x) linear map with per-weight w: a dense product, or the layer's convolution. */
function linearOfSquares(
  op: OpSpec,
  inputs: Inputs,
  weights: readonly number[],
  samePadding: Profile['samePadding'],
): Tensor {
  const x = inputs['x'] as Tensor;
  const theta = inputs['theta'] as Tensor;
  const x2 = x.data.map((v) => v * v);
  if (op.layer === 'dense') {
    // A dense product is a 1x1 convolution over a 1x1 image.
    const [batch, inSize] = x.shape as [number, number];
    const out = theta.shape[1]!;
    const y = conv2d(
      { shape: [batch, 1, 1, inSize], data: x2 },
      { shape: [1, 1, inSize, out], data: [...weights] },
    );
    return { shape: [batch, out], data: y.data };
  }
  return conv2d(
    { shape: x.shape, data: x2 },
    { shape: theta.shape, data: [...weights] },
    (inputs['stride'] as Conv2dStride | undefined) ?? 1,
    (inputs['padding'] as Conv2dPaddingMode | undefined) ?? 'valid',
    samePadding,
  );
}

/** The training forward with the variance replaced, mean and eps kept. */
function withVariance(
  profile: Profile,
  correct: Outputs,
  inputs: Inputs,
  variance: Tensor,
): Outputs {
  const mean = correct['mean']!;
  const eps = inputs['eps'] as Tensor;
  return {
    mean,
    variance,
    output: {
      shape: mean.shape,
      data: mean.data.map(
        (m, i) => m + Math.sqrt(variance.data[i]! + profile.sqrtEps) * eps.data[i]!,
      ),
    },
  };
}

// ---------------------------------------------------------------------------
// Candidates

/** The profile with one convention field changed: the reference under that variant. */
function variantCandidate(
  id: string,
  text: string,
  variant: Profile,
  relevant: (layer: LayerKind) => boolean,
): Candidate {
  return {
    kind: 'convention',
    id,
    text,
    applies: (_op, layer) => relevant(layer),
    evaluate: (op, inputs) => evaluateUnder(op, variant, inputs),
  };
}

/** True defects (spec/profiles.md#known-bugs-and-what-catches-them), computed from the reference. */
function knownBugs(profile: Profile): Candidate[] {
  const bugs: Candidate[] = [];
  bugs.push({
    kind: 'bug',
    id: 'bug:std_from_sigma4',
    text: 'known bug: your standard deviation comes from sigma^4 instead of sigma^2 (variance = (x*x) @ s2^2; pytorch_ard, since fixed)',
    applies: (op) => isTrainForward(op),
    evaluate(op, inputs) {
      const correct = run(op.name, inputs, profile);
      const layer = op.layer!;
      const stats = weightStatistics(
        inputs['theta'],
        inputs[profile.noiseParameter],
        profile,
        layer,
      );
      const trainClip = (inputs['train_clip'] as boolean | undefined) ?? profile.trainClipDefault;
      const maskVariance = trainClip && profile[layer].trainMask === 'mean_and_variance';
      const squared = stats.variance.map((s2, i) => {
        const masked = maskVariance && stats.mask[i] === 0 ? 0 : s2;
        return masked * masked;
      });
      const outputs = withVariance(
        profile,
        correct,
        inputs,
        linearOfSquares(op, inputs, squared, profile.samePadding),
      );
      // The bug keeps every convention of the profile: its model's scale.
      return { outputs, scale: scaleUnder(op, profile, inputs, outputs) };
    },
  });
  bugs.push({
    kind: 'bug',
    id: 'bug:bias_in_variance',
    text: 'known bug: your variance includes the bias (variance = (x*x) @ s2 + b; deepbayes-2019 issue #7, pytorch_ard Conv2dARD)',
    applies: (op) => isTrainForward(op),
    evaluate(op, inputs) {
      const correct = run(op.name, inputs, profile);
      const bias = inputs['bias'] as Tensor;
      const variance = correct['variance']!;
      const channels = bias.data.length;
      const outputs = withVariance(profile, correct, inputs, {
        shape: variance.shape,
        data: variance.data.map((v, i) => v + bias.data[i % channels]!),
      });
      return { outputs, scale: scaleUnder(op, profile, inputs, outputs) };
    },
  });
  bugs.push(...commonMistakes(profile));
  return bugs;
}

/**
 * Float32 arithmetic under a float64 declaration: not a candidate answer but
 * the golden answer under the float32 tolerance (runner.ts), offered only when
 * nothing else matched, since any small defect passes that wider tolerance too.
 */
export const FLOAT32_ARITHMETIC: Diagnosis = {
  kind: 'bug',
  id: 'bug:float32_arithmetic',
  text: 'common mistake: the answer is within the float32 tolerance, not the float64 one: computed in float32 while declaring float64? (declare "dtype": "float32"; it is PyTorch\'s default)',
};

function negated(outputs: Outputs): Outputs {
  return Object.fromEntries(
    Object.entries(outputs).map(([name, t]) => [
      name,
      { shape: t.shape, data: t.data.map((v) => -v) },
    ]),
  );
}

/**
 * Mistakes a first port makes that no upstream code ships: labelled
 * `common mistake: ...` (kind `bug`), computed from the reference.
 */
function commonMistakes(profile: Profile): Candidate[] {
  return [
    ...([true, false] as const).map((withGradient): Candidate => ({
      kind: 'bug',
      id: withGradient ? 'bug:kl_sign' : 'bug:kl_sign_value_only',
      text: `common mistake: your KL has the opposite sign (-KL, the term as it appears in the lower bound; the ops return the KL itself)${
        withGradient ? ', and so has its gradient' : '; its gradient has the right sign'
      }`,
      applies: (op) => op.name.startsWith('kl.') || op.name.endsWith('.kl'),
      evaluate(op, inputs) {
        const correct = run(op.name, inputs, profile);
        const outputs = withGradient
          ? negated(correct)
          : { ...correct, ...negated({ kl: correct['kl']! }) };
        return { outputs, scale: scaleUnder(op, profile, inputs, outputs) };
      },
    })),
    {
      kind: 'bug',
      id: 'bug:no_sqrt_eps',
      text: `common mistake: your training forward has no eps inside the square root (the profile's is ${profile.sqrtEps}; without it the gradient is infinite where the variance is 0)`,
      applies: (op) => op.layer !== null,
      evaluate: (op, inputs) => evaluateUnder(op, withPath(profile, 'sqrtEps', 0), inputs),
    },
    {
      kind: 'bug',
      id: 'bug:eval_without_mask',
      text: 'common mistake: your eval forward does not apply the keep mask (its answer is the unmasked eval forward, every weight at its mean)',
      applies: (op) => op.algorithm === 'svd' && op.layer !== null && op.name.endsWith('.eval'),
      evaluate: (op, inputs) =>
        evaluateUnder(getOp(`svd.${op.layer!}.eval_unmasked`), profile, inputs),
    },
    {
      kind: 'bug',
      id: 'bug:sqrt_eps_in_variance',
      text: `common mistake: your variance output includes the square root's eps (${profile.sqrtEps}), which belongs inside the square root only`,
      applies: (op) => isTrainForward(op),
      evaluate(op, inputs) {
        const correct = run(op.name, inputs, profile);
        const variance = correct['variance']!;
        const outputs = {
          ...correct,
          variance: { shape: variance.shape, data: variance.data.map((v) => v + profile.sqrtEps) },
        };
        return { outputs, scale: scaleUnder(op, profile, inputs, outputs) };
      },
    },
  ];
}

function conventionCandidates(profile: Profile): Candidate[] {
  const candidates: Candidate[] = [];
  for (const path of CONVENTION_PATHS) {
    const own = JSON.stringify(getPath(profile, path));
    if (own === undefined) continue;
    const seen = new Set<string>();
    for (const name of PROFILE_NAMES) {
      const other = PROFILES[name];
      if (other.algorithm !== profile.algorithm) continue;
      const value = getPath(other, path);
      const key = JSON.stringify(value);
      if (key === own || seen.has(key)) continue;
      seen.add(key);
      const [first] = path.split('.');
      const onlyLayer = first === 'dense' || first === 'conv2d' ? first : null;
      candidates.push(
        variantCandidate(
          `convention:${path}=${key}`,
          conventionText(profile, path, value),
          withPath(profile, path, value),
          (layer) => onlyLayer === null || onlyLayer === layer,
        ),
      );
    }
  }
  return candidates;
}

/** Rename (and rescale) the noise parameter between two profiles' parameterizations. */
function noiseScale(from: Profile['noiseParameter'], to: Profile['noiseParameter']): number | null {
  if (from === to) return 1;
  if (from === 'log_sigma2' && to === 'log_sigma') return 0.5;
  if (from === 'log_sigma' && to === 'log_sigma2') return 2;
  return null;
}

function scaleTensor(t: Tensor, k: number): Tensor {
  return k === 1 ? t : { shape: t.shape, data: t.data.map((v) => v * k) };
}

/** Outputs (or scales) of `theirs`'s gradient renamed to `mine`'s: d/d(mine) = k * d/d(theirs). */
function gradientBack(outputs: Outputs, theirs: string, mine: string, k: number): Outputs {
  return Object.fromEntries(
    Object.entries(outputs).map(([name, value]) =>
      name === `grad_${theirs}` ? [`grad_${mine}`, scaleTensor(value, k)] : [name, value],
    ),
  );
}

function profileCandidates(profile: Profile): Candidate[] {
  const candidates: Candidate[] = [];
  for (const name of PROFILE_NAMES) {
    const other = PROFILES[name];
    if (name === profile.name || other.algorithm !== profile.algorithm) continue;
    const k = noiseScale(profile.noiseParameter, other.noiseParameter);
    if (k === null) continue;
    const mine = profile.noiseParameter;
    const theirs = other.noiseParameter;
    candidates.push({
      kind: 'profile',
      id: `profile:${name}`,
      text: `your answer matches the ${name} profile (${other.source.project})`,
      applies: () => true,
      evaluate(op, inputs) {
        const mapped = Object.fromEntries(
          Object.entries(inputs).map(([name, value]) =>
            name === mine ? [theirs, scaleTensor(value as Tensor, k)] : [name, value],
          ),
        );
        const { outputs, scale } = evaluateUnder(op, other, mapped);
        // theirs = k * mine, so d/d(mine) = k * d/d(theirs); k > 0 scales the bound alike.
        return {
          outputs: gradientBack(outputs, theirs, mine, k),
          scale: gradientBack(scale, theirs, mine, k),
        };
      },
    });
  }
  return candidates;
}

/** Every candidate for ops under `profile`, bugs first, whole profiles last. */
export function fingerprintCandidates(profile: Profile): readonly Candidate[] {
  return [...knownBugs(profile), ...conventionCandidates(profile), ...profileCandidates(profile)];
}

/** A case the port passed: its inputs, the port's answer and the tolerance it passed under. */
export interface PassedCase {
  readonly op: string;
  readonly caseId: number;
  readonly inputs: Inputs;
  readonly answer: unknown;
  readonly tolerance: Tolerance;
}

/**
 * The passed cases that contradict a diagnosis of op `opName`'s failures:
 * under the candidate's conventions the reference answers differently from
 * the port on a case the port got right. A diagnosis that explains every failure but contradicts the
 * passes (the whole other profile, when only its clip differs) is the less
 * likely cause. `cache` keeps each (candidate, case) evaluation for the other ops.
 */
export function contradictingCases(
  id: string,
  opName: string,
  passed: readonly PassedCase[],
  candidates: readonly Candidate[],
  cache: Map<string, boolean> = new Map(),
): PassedCase[] {
  const parts = candidateIds(id)
    .map((part) => candidates.find((c) => c.id === part))
    .filter((c): c is Candidate => c !== undefined);
  // A convention or another profile is a setting of the whole port, which every op shows; a
  // bug or a mistake sits in one op's code, so only that op's passes speak against it.
  const own = parts.every((c) => c.kind === 'bug') ? opName : null;
  return passed.filter((p) => {
    if (own !== null && p.op !== own) return false;
    const op = getOp(p.op);
    const layer = layerOf(op, p.inputs);
    return parts.some((c) => {
      if (!c.applies(op, layer)) return false;
      const key = `${c.id}\u0000${p.op}#${p.caseId}`;
      let contradicts = cache.get(key);
      if (contradicts === undefined) {
        try {
          const e = c.evaluate(op, p.inputs);
          contradicts = !compareOutputs(e.outputs, e.scale, p.answer, p.tolerance).ok;
        } catch {
          contradicts = false;
        }
        cache.set(key, contradicts);
      }
      return contradicts;
    });
  });
}

/**
 * The candidates whose answer on this case matches the port's answer within
 * `tolerance` (the golden file's, for the port's dtype) and the candidate's
 * own scale: the bound the golden generator would give that answer under the
 * candidate's conventions. The golden case's scale belongs to the golden
 * answer (0 where the golden value is exact, e.g. on a clip bound) and would
 * hold another convention's rounding to a few ulps. A candidate the reference
 * rejects on these inputs is left out.
 */
export function fingerprintCase(
  opName: string,
  profile: Profile,
  inputs: Inputs,
  actualOutputs: unknown,
  tolerance: Tolerance,
  candidates: readonly Candidate[] = fingerprintCandidates(profile),
): Diagnosis[] {
  const op = getOp(opName);
  const layer = layerOf(op, inputs);
  const matches: Diagnosis[] = [];
  for (const c of candidates) {
    if (!c.applies(op, layer)) continue;
    let expected: Evaluation;
    try {
      expected = c.evaluate(op, inputs);
    } catch {
      continue;
    }
    if (compareOutputs(expected.outputs, expected.scale, actualOutputs, tolerance).ok) {
      matches.push({ kind: c.kind, id: c.id, text: c.text });
    }
  }
  return matches;
}
