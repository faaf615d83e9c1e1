/**
 * Golden cases: seeded random cases and hand-picked edge cases, per op and
 * profile (spec/golden.md#cases). A case is only its inputs plus why it
 * exists (comment, flags); the outputs come from the reference later.
 *
 * Every input value is exactly representable in float32 (random values lie
 * on power-of-two grids, edge values are small integers or halves), so a
 * float32 port starts from the same numbers and the tolerance model only has
 * to cover arithmetic. Random cases keep every raw log_alpha at least
 * EDGE_MARGIN away from every clip bound and from the threshold, where a
 * float32 port may land on the other side; the edge cases sit exactly on
 * them instead, where both dtypes compute them exactly.
 */
import { SVD_LOG_ALPHA_MAX, SVD_PRUNE_THRESHOLD, WIDE_LOG_ALPHA_MAX } from '../constants.js';
import { VdspecError } from '../errors.js';
import { NOISE, resolveNames, type OpSpec } from '../ops.js';
import type { LayerKind, Profile } from '../profiles.js';
import { conv2dGeometry, type Conv2dStride } from '../reference/conv2d.js';
import { broadcastIndex, weightStatistics } from '../reference/logAlpha.js';
import { sizeOf, type Tensor } from '../tensor.js';
import { fnv1a32, Xorshift32 } from './prng.js';

export interface CaseSpec {
  /** Unique in its file; edge cases 1..999 (fixed in this file), random cases RANDOM_ID_BASE + k. */
  readonly id: number;
  readonly comment: string;
  readonly flags: string[];
  /** Decoded inputs, in the op's catalogue order. */
  readonly inputs: Record<string, unknown>;
}

/** Random cases per file. */
export const RANDOM_CASES = 4;
export const RANDOM_ID_BASE = 1000;

/** Random raw log_alpha values stay this far from every value in LOG_ALPHA_EDGES. */
export const EDGE_MARGIN = 1e-3;

/** Every clip bound and threshold of the built-in profiles (0 is VD_LOG_ALPHA_MAX). */
export const LOG_ALPHA_EDGES: readonly number[] = [
  -WIDE_LOG_ALPHA_MAX,
  -SVD_LOG_ALPHA_MAX,
  0,
  SVD_PRUNE_THRESHOLD,
  SVD_LOG_ALPHA_MAX,
  WIDE_LOG_ALPHA_MAX,
];

/** |raw log_alpha| from which a case is flagged alpha_huge / alpha_tiny. */
export const EXTREME_LOG_ALPHA = 15;

/**
 * Raw log_alpha of random weights is drawn on [-RANDOM_SPREAD, RANDOM_SPREAD]
 * (every clip and beyond); the filler weights of an edge case on
 * [-FILLER_SPREAD, FILLER_SPREAD], inside every clip, so that an edge case's
 * flags are about its edge.
 */
export const RANDOM_SPREAD = 12;
export const FILLER_SPREAD = 7.5;

/** Step of the noise grid and of the nudge away from an edge. */
const NOISE_STEP = 1 / 64;
const NUDGE = 1 / 16;

/** The stream of case `id` of the file with seed `fileSeed` (spec/golden.md#seeds-and-prng). */
export function caseSeed(fileSeed: number, id: number): number {
  return fnv1a32(`${fileSeed}/${id}`) || 1;
}

// ---------------------------------------------------------------------------
// Values

const quantize = (v: number, step: number) => Math.round(v / step) * step + 0;

function fill(rng: Xorshift32, shape: readonly number[], lo: number, hi: number, step: number) {
  return {
    shape: [...shape],
    data: Array.from({ length: sizeOf(shape) }, () => rng.grid(lo, hi, step)),
  };
}

const zeros = (shape: readonly number[]): Tensor => ({
  shape: [...shape],
  data: new Array<number>(sizeOf(shape)).fill(0),
});

/** The grids of the realistic-size layer cases (spec/golden.md#cases): shorter numbers. */
const COARSE_THETA_STEP = 1 / 16;
const COARSE_STEP = 1 / 4;

/** theta in [-2, 2] on a 1/256 grid. */
const thetaValue = (rng: Xorshift32) => rng.grid(-2, 2, 1 / 256);

/** log(theta^2 + eps) or 2 log(|theta| + eps): what the noise parameter must exceed log_alpha by. */
export function logThetaTerm(t: number, profile: Profile, layer: LayerKind): number {
  const { form, thetaEps } = profile[layer].logAlpha;
  if (form === 'learned') return 0;
  return form === 'log_theta2' ? Math.log(t * t + thetaEps) : 2 * Math.log(Math.abs(t) + thetaEps);
}

/** The noise parameter value giving the raw log_alpha `target` at theta = t, on the noise grid. */
export function noiseFor(
  target: number,
  t: number,
  profile: Profile,
  layer: LayerKind,
  step = NOISE_STEP,
): number {
  const L = logThetaTerm(t, profile, layer);
  const logSigma2 = target + (Number.isFinite(L) ? L : 0);
  const noise = profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2;
  return quantize(noise, step);
}

/**
 * Whether theta = +-1 can put the raw log_alpha exactly on a target in both
 * dtypes: always without an eps; with one, when float32 rounds 1 + eps to 1
 * (so a float32 port's raw log_alpha is its float32 noise parameter itself,
 * and a noise parameter within half a float32 ulp of the target lands on it)
 * while `exactNoiseFor` finds the float64 noise that lands on it under the
 * profile's own formula. True for every built-in profile.
 */
export function exactAtUnitTheta(profile: Profile, layer: LayerKind): boolean {
  const { form, thetaEps } = profile[layer].logAlpha;
  if (form === 'learned' || thetaEps === 0) return true;
  return Math.fround(1 + Math.fround(thetaEps)) === 1;
}

/** The float64 neighbour of x towards +inf (up) or -inf. */
function nextFloat(x: number, up: boolean): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigInt64(0);
  view.setBigInt64(
    0,
    x === 0 ? (up ? 1n : -9223372036854775807n) : x > 0 === up ? bits + 1n : bits - 1n,
  );
  return view.getFloat64(0);
}

/**
 * The noise parameter putting theta = t's raw log_alpha exactly on `target`
 * under the profile's own float64 formula (the reference's), and whose
 * float32 rounding does so in float32 too: the float64 values nearest to
 * target + log(...) are tried outwards. Null when none of them does.
 */
export function exactNoiseFor(
  target: number,
  t: number,
  profile: Profile,
  layer: LayerKind,
): number | null {
  const noiseScale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const start = (target + logThetaTerm(t, profile, layer)) / noiseScale;
  const rawAt = (v: number) =>
    weightStatistics({ shape: [1], data: [t] }, { shape: [1], data: [v] }, profile, layer)
      .logAlphaRaw[0];
  const float32Lands = (v: number) => Math.fround(noiseScale * Math.fround(v)) === target;
  let below = start;
  let above = start;
  for (let step = 0; step < 64; step++) {
    for (const v of step === 0 ? [start] : [below, above]) {
      if (rawAt(v) === target && float32Lands(v)) return v;
    }
    below = nextFloat(below, false);
    above = nextFloat(above, true);
  }
  return null;
}

export interface Weights {
  theta: Tensor;
  noise: Tensor;
}

interface WeightOptions {
  /** Raw log_alpha targets of the first weights (theta = +1, -1, ...). */
  readonly targets?: readonly number[];
  /** The noise parameter's shape (VD broadcasts); theta's by default. */
  readonly noiseShape?: readonly number[];
  /** Raw log_alpha range of the other weights. */
  readonly spread?: number;
  /** Weights set to theta = 0, -0, 0, ... before the noise is drawn. */
  readonly zeroAt?: readonly number[];
  /** The grid of random theta values (1/256 by default). */
  readonly thetaStep?: number;
  /** The grid of random noise parameters (NOISE_STEP by default). */
  readonly noiseStep?: number;
}

/**
 * theta of `shape` and the noise parameter of `noiseShape`: the first
 * `targets.length` weights at theta = +1, -1, +1, ... with the noise
 * putting their raw log_alpha on the target (exactly where
 * exactAtUnitTheta holds), the others random with raw log_alpha uniform on
 * [-12, 12] (VD: the parameter on [-6, 1]) and kept away from the edges.
 */
function weights(
  rng: Xorshift32,
  profile: Profile,
  layer: LayerKind,
  shape: readonly number[],
  options: WeightOptions = {},
): Weights {
  const targets = options.targets ?? [];
  const noiseShape = options.noiseShape ?? shape;
  const spread = options.spread ?? FILLER_SPREAD;
  const zeroAt = options.zeroAt ?? [];
  const learned = profile[layer].logAlpha.form === 'learned';
  const n = sizeOf(shape);
  const theta = Array.from({ length: n }, (_, i) =>
    i < targets.length
      ? i % 2 === 0
        ? 1
        : -1
      : options.thetaStep === undefined
        ? thetaValue(rng)
        : rng.grid(-2, 2, options.thetaStep),
  );
  // theta = 0 first, then -0, alternating: both signs of zero.
  zeroAt.forEach((i, k) => {
    if (i < n) theta[i] = k % 2 === 0 ? 0 : -0;
  });
  const index = broadcastIndex(noiseShape, shape);
  if (index === null) {
    throw new Error(`noise shape [${noiseShape.join(', ')}] does not broadcast to theta's`);
  }
  const noise = new Array<number>(sizeOf(noiseShape)).fill(0);
  const fixed = new Set<number>();
  const drawn = new Set<number>();
  for (let i = 0; i < n; i++) {
    const j = index[i]!;
    if (drawn.has(j)) continue;
    drawn.add(j);
    const t = theta[i]!;
    if (i < targets.length) {
      const target = targets[i]!;
      // Only an edge needs an exact landing; elsewhere the noise stays on the float32 grid.
      const clip = profile[layer].logAlpha.clip;
      const edge =
        target === profile.prune?.threshold || target === clip?.min || target === clip?.max;
      noise[j] =
        edge && exactAtUnitTheta(profile, layer)
          ? (exactNoiseFor(target, t, profile, layer) ?? noiseFor(target, t, profile, layer))
          : noiseFor(target, t, profile, layer);
      fixed.add(j);
    } else if (learned) {
      noise[j] = rng.grid(-6, 1, options.noiseStep ?? 1 / 32);
    } else if (Number.isFinite(logThetaTerm(t, profile, layer))) {
      noise[j] = noiseFor(rng.grid(-spread, spread, 1 / 16), t, profile, layer, options.noiseStep);
    } else {
      noise[j] = rng.grid(-12, 4, NOISE_STEP);
    }
  }
  const w = {
    theta: { shape: [...shape], data: theta },
    noise: { shape: [...noiseShape], data: noise },
  };
  avoidEdges(w, profile, layer, fixed);
  return w;
}

/** Nudge the noise of every non-fixed weight whose raw log_alpha is within EDGE_MARGIN of an edge. */
export function avoidEdges(
  w: Weights,
  profile: Profile,
  layer: LayerKind,
  fixed: ReadonlySet<number>,
) {
  const index = broadcastIndex(w.noise.shape, w.theta.shape)!;
  const noise = w.noise.data as number[];
  for (let round = 0; round < 64; round++) {
    const raw = weightStatistics(w.theta, w.noise, profile, layer).logAlphaRaw;
    let moved = false;
    raw.forEach((r, i) => {
      const j = index[i]!;
      if (fixed.has(j)) return;
      if (LOG_ALPHA_EDGES.some((e) => Math.abs(r - e) < EDGE_MARGIN)) {
        noise[j] = noise[j]! + NUDGE;
        moved = true;
      }
    });
    if (!moved) return;
  }
  throw new Error('could not move the random log_alpha values away from the edges');
}

// ---------------------------------------------------------------------------
// Flags that follow from the inputs (spec/golden.md#flags)

function weightFlags(theta: Tensor, noise: Tensor, profile: Profile, layer: LayerKind): string[] {
  const flags = new Set<string>();
  const stats = weightStatistics(theta, noise, profile, layer);
  const { clip, form } = profile[layer].logAlpha;
  if (theta.data.some((t) => t === 0)) flags.add('theta_zero');
  stats.logAlphaRaw.forEach((raw, i) => {
    if (profile.prune !== null) {
      const compared = profile.prune.from === 'clipped' ? stats.logAlpha[i]! : raw;
      if (compared === profile.prune.threshold) flags.add('threshold_exact');
    }
    if (clip?.min != null && raw === clip.min) flags.add('clip_min');
    if (clip?.max != null && raw === clip.max) flags.add('clip_max');
    if ((clip?.min != null && raw < clip.min) || (clip?.max != null && raw > clip.max)) {
      flags.add('beyond_clip');
    }
    const a = Math.abs(raw);
    if (Number.isFinite(raw) && a > SVD_LOG_ALPHA_MAX && a <= WIDE_LOG_ALPHA_MAX) {
      flags.add('between_clips');
    }
    if (Number.isFinite(raw) && a > WIDE_LOG_ALPHA_MAX) flags.add('beyond_wide_clip');
    if (Number.isFinite(raw) && raw >= EXTREME_LOG_ALPHA) flags.add('alpha_huge');
    if (Number.isFinite(raw) && raw <= -EXTREME_LOG_ALPHA) flags.add('alpha_tiny');
  });
  if (stats.mask.some((m) => m === 0)) flags.add('pruned');
  if (form === 'learned') {
    if (noise.shape.length === 0) flags.add('noise_scalar');
    else if (noise.data.length === theta.data.length) flags.add('noise_per_weight');
    else flags.add('noise_per_input');
  }
  return [...flags];
}

/** VD variant A: log_alpha [] or [in], one per input unit (spec/dense-a.md). */
function denseAFlags(op: OpSpec, theta: Tensor, noise: Tensor, profile: Profile): string[] {
  const flags = new Set<string>();
  const clip = profile.dense.logAlpha.clip;
  flags.add(noise.shape.length === 0 ? 'noise_scalar' : 'noise_per_input');
  for (const raw of noise.data) {
    if (clip?.max != null && raw === clip.max) flags.add('clip_max');
    if ((clip?.max != null && raw > clip.max) || (clip?.min != null && raw < clip.min)) {
      flags.add('beyond_clip');
    }
    if (raw >= EXTREME_LOG_ALPHA) flags.add('alpha_huge');
    if (raw <= -EXTREME_LOG_ALPHA) flags.add('alpha_tiny');
  }
  const [inSize, out] = theta.shape as [number, number];
  if (family(op) === 'dense_a' && inSize === out && inSize > 1) flags.add('square_layer');
  return [...flags];
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v;
}

/** Flags that any reader can check from the inputs alone. */
export function inputFlags(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
): string[] {
  const flags: string[] = [];
  const tensors = Object.values(inputs).filter(isTensor);
  const numbers = [
    ...tensors.flatMap((t) => t.data),
    ...Object.values(inputs).filter((v): v is number => typeof v === 'number'),
  ];
  if (numbers.some((v) => Object.is(v, -0))) flags.push('negative_zero');
  if (numbers.some((v) => Number.isFinite(v) && Math.fround(v) !== v)) flags.push('float64_input');
  if (tensors.some((t) => t.data.length === 0)) flags.push('empty');
  const theta = inputs['theta'];
  const noise = inputs[profile.noiseParameter];
  const variantA = family(op) === 'dense_a' || family(op) === 'dense_a_kl';
  if (variantA && isTensor(theta) && isTensor(noise)) {
    flags.push(...denseAFlags(op, theta, noise, profile));
  } else if (
    isTensor(theta) &&
    isTensor(noise) &&
    op.name !== 'kl.exact' &&
    op.name !== 'kl.approx'
  ) {
    const layer = (op.layer ?? inputs['layer'] ?? 'dense') as LayerKind;
    flags.push(...weightFlags(theta, noise, profile, layer));
    if (op.layer === null && layer === 'conv2d') flags.push('layer_conv2d');
  }
  const logAlpha = inputs['log_alpha'];
  if ((op.name === 'kl.exact' || op.name === 'kl.approx') && isTensor(logAlpha)) {
    if (logAlpha.data.some((v) => !Number.isFinite(v))) flags.push('infinite_log_alpha');
  }
  const bias = inputs['bias'];
  if (isTensor(bias) && op.layer !== null) {
    if (bias.data.length > 1) flags.push('bias_multi_element');
    if (bias.data.some((b) => b !== 0)) flags.push('bias_nonzero');
  }
  if (op.inputs.some((i) => i.name === 'train_clip')) {
    const tc = inputs['train_clip'];
    flags.push(tc === undefined ? 'train_clip_default' : tc ? 'train_clip_on' : 'train_clip_off');
  }
  if (op.layer === 'conv2d') {
    flags.push(inputs['padding'] === 'same' ? 'padding_same' : 'padding_valid');
    const s = inputs['stride'] as Conv2dStride | undefined;
    if (s !== undefined && (typeof s === 'number' ? s !== 1 : s[0] !== 1 || s[1] !== 1)) {
      flags.push('strided');
    }
  }
  return flags;
}

// ---------------------------------------------------------------------------
// Op families

export type Family =
  | 'kl_exact'
  | 'kl_approx'
  | 'weights'
  | 'layer'
  | 'dense_a'
  | 'dense_a_kl'
  | 'cross_entropy'
  | 'sgvb'
  | 'schedule';

/** Which generator (and which scale rule) serves an op; unknown ops are 'unsupported'. */
export function family(op: OpSpec): Family {
  if (op.layer !== null) return 'layer';
  switch (op.name) {
    case 'kl.exact':
      return 'kl_exact';
    case 'kl.approx':
      return 'kl_approx';
    case 'svd.log_alpha':
    case 'vd.log_alpha':
    case 'svd.mask':
    case 'kl.layer':
      return 'weights';
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp':
      return 'dense_a';
    case 'vd.dense_a.kl':
      return 'dense_a_kl';
    case 'objective.cross_entropy':
      return 'cross_entropy';
    case 'objective.sgvb':
      return 'sgvb';
    case 'schedule.kl_weight':
      return 'schedule';
  }
  throw new VdspecError('unsupported', `no golden case generator for ${op.name}`, 'op');
}

/** A case before its id: `null` where the edge does not apply to the profile. */
interface Draft {
  readonly comment: string;
  readonly flags: readonly string[];
  readonly values: Record<string, unknown>;
}

interface Edge {
  readonly id: number;
  readonly build: (rng: Xorshift32) => Draft | null;
}

/** Inputs in the op's catalogue order, optional ones left out when undefined. */
export function orderedInputs(op: OpSpec, profile: Profile, values: Record<string, unknown>) {
  const inputs: Record<string, unknown> = {};
  const resolved = resolveNames(op, profile).inputs;
  for (const [k, input] of resolved.entries()) {
    const v = op.inputs[k]!.name === NOISE ? values[NOISE] : values[input.name];
    if (v === undefined) {
      if (!input.optional) throw new Error(`case for ${op.name} lacks input ${input.name}`);
      continue;
    }
    inputs[input.name] = v;
  }
  return inputs;
}

// ---------------------------------------------------------------------------
// KL ops

function klEdges(op: OpSpec, profile: Profile): Edge[] {
  const la = (data: number[], shape: number[] = [data.length]) => ({ log_alpha: { shape, data } });
  const edges: Edge[] = [
    {
      id: 1,
      build: () => ({
        comment:
          'log_alpha on the clip bounds of every profile (-10, -8, 0, 8, 10) and the threshold 3',
        flags: ['clip_bounds'],
        values: la([-10, -8, 0, 3, 8, 10]),
      }),
    },
    {
      id: 2,
      build: () => ({
        comment:
          'log_alpha = +inf (theta = 0 without a clip): KL and its derivative take their limits',
        flags: [],
        values: la([Infinity]),
      }),
    },
    {
      id: 3,
      build: () => ({
        comment: 'log_alpha = -inf: KL = +inf, derivative -1/2',
        flags: [],
        values: la([-Infinity]),
      }),
    },
    {
      id: 4,
      build: () => ({
        comment:
          'tiny and huge alpha: overflow and cancellation in exp(-log_alpha) and the sigmoid',
        flags: ['alpha_tiny', 'alpha_huge'],
        values: la([-30, -20, 15, 20]),
      }),
    },
    {
      id: 5,
      build: () => ({
        comment: 'one element, not at any edge',
        flags: ['one_element'],
        values: la([0.5]),
      }),
    },
    {
      id: 6,
      build: () => ({
        comment: 'log_alpha = 0 and -0: alpha = 1 from either sign of zero',
        flags: ['zero_input'],
        values: la([0, -0]),
      }),
    },
    {
      id: 7,
      build: () => ({
        comment: 'an empty tensor: empty outputs',
        flags: [],
        values: la([], [0]),
      }),
    },
    {
      id: 8,
      build: () => ({
        comment: 'a rank-2 log_alpha: the outputs keep its shape',
        flags: [],
        values: la([-2, -1, 0.25, 1, 2, 4], [2, 3]),
      }),
    },
  ];
  if (op.name === 'kl.exact') {
    edges.push({
      id: 9,
      build: () => ({
        comment:
          'around the switch between the small-alpha expansion and the Poisson series (-8) and the ends of their overlap (-12, -5)',
        flags: ['series_switch'],
        values: la([-12, -8.0625, -8, -7.9375, -5]),
      }),
    });
  }
  // The cubic is fitted for alpha <= 1 and VD clips log_alpha <= 0 before the KL.
  const hi = profile.kl.approximation === 'vd_cubic' && op.name === 'kl.approx' ? 0 : 12;
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const shape = rng.coin() ? [rng.int(1, 8)] : [rng.int(1, 3), rng.int(1, 3)];
        return {
          comment: `random log_alpha on [-12, ${hi}] (grid 1/32)`,
          flags: ['random'],
          values: { log_alpha: fill(rng, shape, -12, hi, 1 / 32) },
        };
      },
    });
  }
  return edges;
}

// ---------------------------------------------------------------------------
// Per-weight ops: log_alpha, mask, kl.layer

function weightEdges(profile: Profile): Edge[] {
  const vd = profile.dense.logAlpha.form === 'learned';
  const denseShape = [2, 3];
  const convShape = [1, 2, 2, 2];
  const build =
    (
      comment: string,
      flags: string[],
      layer: LayerKind,
      shape: number[],
      targets: number[],
      exact: boolean,
      noiseShape?: number[],
    ) =>
    (rng: Xorshift32): Draft | null => {
      if (exact && !exactAtUnitTheta(profile, layer)) return null;
      const w = weights(rng, profile, layer, shape, {
        targets,
        ...(noiseShape === undefined ? {} : { noiseShape }),
      });
      return {
        comment,
        flags,
        values: {
          theta: w.theta,
          [NOISE]: w.noise,
          ...(layer === 'conv2d' ? { layer } : {}),
        },
      };
    };
  const edges: Edge[] = [
    {
      id: 1,
      build: (rng) => {
        const w = weights(rng, profile, 'dense', denseShape, { zeroAt: [0, 1] });
        return {
          comment: 'theta = 0 and -0: log(0) = -inf before the clip; no NaN anywhere',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise },
        };
      },
    },
    ...(profile.prune === null
      ? []
      : [
          {
            id: 2,
            build: build(
              'raw log_alpha exactly at the threshold 3 (theta = +-1): kept by ">", pruned by ">="',
              [],
              'dense',
              denseShape,
              [SVD_PRUNE_THRESHOLD, SVD_PRUNE_THRESHOLD],
              true,
            ),
          },
        ]),
    ...clipEdges(profile, 'dense', denseShape, build),
    {
      id: 5,
      build: build(
        'raw log_alpha 9 and -9: beyond [-8, 8], inside [-10, 10], where profiles disagree',
        [],
        'dense',
        denseShape,
        [9, -9],
        false,
      ),
    },
    {
      id: 6,
      build: build(
        'raw log_alpha 11 and -11: beyond every clip',
        [],
        'dense',
        denseShape,
        [11, -11],
        false,
      ),
    },
    {
      id: 7,
      build: build(
        'huge and tiny alpha: raw log_alpha 20 and -20',
        [],
        'dense',
        denseShape,
        [20, -20],
        false,
      ),
    },
    {
      id: 8,
      build: build('one weight', ['one_element'], 'dense', [1, 1], [], false),
    },
    {
      id: 9,
      build: (rng) => {
        const w = weights(rng, profile, 'conv2d', convShape, { targets: [9, -9], zeroAt: [2] });
        return {
          comment:
            'conv2d conventions (rank-4 theta): theta = 0 and raw log_alpha +-9, where some profiles clip conv2d differently from dense',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise, layer: 'conv2d' },
        };
      },
    },
    ...(profile.prune === null
      ? []
      : [
          {
            id: 10,
            build: build(
              'conv2d conventions: raw log_alpha exactly at the threshold',
              [],
              'conv2d',
              convShape,
              [SVD_PRUNE_THRESHOLD, SVD_PRUNE_THRESHOLD],
              true,
            ),
          },
        ]),
    {
      id: 11,
      build: (rng) => {
        const w = weights(rng, profile, 'dense', [0, 2], { noiseShape: vd ? [] : [0, 2] });
        return {
          comment: 'no weights: empty outputs (the layer KL is 0)',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise },
        };
      },
    },
    ...(vd ? vdNoiseEdges(profile, denseShape) : []),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const layer: LayerKind = rng.coin() ? 'dense' : 'conv2d';
        const shape =
          layer === 'dense'
            ? [rng.int(1, 4), rng.int(1, 4)]
            : [rng.int(1, 3), rng.int(1, 3), rng.int(1, 2), rng.int(1, 2)];
        const noiseShape = vd ? vdNoiseShape(rng, shape) : shape;
        const w = weights(rng, profile, layer, shape, { noiseShape, spread: RANDOM_SPREAD });
        return {
          comment: `random ${layer} weights`,
          flags: ['random'],
          values: { theta: w.theta, [NOISE]: w.noise, ...(layer === 'conv2d' ? { layer } : {}) },
        };
      },
    });
  }
  return edges;
}

type WeightBuild = (
  comment: string,
  flags: string[],
  layer: LayerKind,
  shape: number[],
  targets: number[],
  exact: boolean,
) => (rng: Xorshift32) => Draft | null;

/** Cases 3 and 4: raw log_alpha exactly on the clip max and min (the clip gradient passes). */
function clipEdges(
  profile: Profile,
  layer: LayerKind,
  shape: number[],
  build: WeightBuild,
): Edge[] {
  const clip = profile[layer].logAlpha.clip;
  const edges: Edge[] = [];
  if (clip?.max != null) {
    edges.push({
      id: 3,
      build: build(
        `raw log_alpha exactly at the clip max ${clip.max}: the clip gradient is 1 there`,
        [],
        layer,
        shape,
        [clip.max, clip.max],
        true,
      ),
    });
  }
  if (clip?.min != null) {
    edges.push({
      id: 4,
      build: build(
        `raw log_alpha exactly at the clip min ${clip.min}: the clip gradient is 1 there`,
        [],
        layer,
        shape,
        [clip.min, clip.min],
        true,
      ),
    });
  }
  return edges;
}

/** VD's log_alpha broadcasts: a scalar, one per input unit, one per weight. */
function vdNoiseShape(rng: Xorshift32, shape: readonly number[]): number[] {
  const kind = rng.below(3);
  if (kind === 0) return [];
  if (kind === 2) return [...shape];
  // One per input unit: dense [in, 1], conv2d [1, 1, cin, 1] (dropout on input channels).
  return shape.length === 2 ? [shape[0]!, 1] : [1, 1, shape[2]!, 1];
}

function vdNoiseEdges(profile: Profile, shape: number[]): Edge[] {
  const make = (id: number, noiseShape: number[], what: string): Edge => ({
    id,
    build: (rng) => {
      const w = weights(rng, profile, 'dense', shape, { noiseShape });
      return {
        comment: `VD log_alpha ${what}, broadcast to theta's shape`,
        flags: [],
        values: { theta: w.theta, [NOISE]: w.noise },
      };
    },
  });
  return [
    make(12, [], 'a scalar (one per layer)'),
    make(13, [shape[0]!, 1], 'one per input unit ([in, 1])'),
    make(14, [...shape], 'one per weight'),
  ];
}

// ---------------------------------------------------------------------------
// Layers

/**
 * Whether the layer files of `profile` get the realistic-size cases: those
 * of the canonical profiles (molchanov2017, kingma2015). Size exercises the
 * kernels (matmul, convolution and their transposes), which the other
 * profiles do not change (bayesgroup-theano's 'same' padding has its own
 * small case, 21); in every profile the set would pass 4 MB.
 */
export function realisticSizes(profile: Profile): boolean {
  return profile.canonical;
}

interface DenseDims {
  readonly kind: 'dense';
  readonly batch: number;
  readonly in: number;
  readonly out: number;
}
interface ConvDims {
  readonly kind: 'conv2d';
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly kh: number;
  readonly kw: number;
  readonly cout: number;
  readonly stride?: Conv2dStride;
  readonly padding?: 'valid' | 'same';
}
type Dims = DenseDims | ConvDims;

function shapes(d: Dims) {
  if (d.kind === 'dense') {
    return { x: [d.batch, d.in], theta: [d.in, d.out], bias: [d.out], out: [d.batch, d.out] };
  }
  const theta = [d.kh, d.kw, d.cin, d.cout];
  const x = [d.n, d.h, d.w, d.cin];
  const g = conv2dGeometry(x, theta, {
    ...(d.stride === undefined ? {} : { stride: d.stride }),
    ...(d.padding === undefined ? {} : { padding: d.padding }),
  });
  return { x, theta, bias: [d.cout], out: [g.batch, g.outHeight, g.outWidth, g.outChannels] };
}

interface LayerDraftOptions {
  readonly targets?: number[];
  readonly noiseShape?: number[];
  readonly thetaZeros?: number;
  readonly zeroX?: boolean;
  readonly zeroEps?: boolean;
  readonly trainClip?: boolean;
  /** Raw log_alpha range of the weights without a target. */
  readonly spread?: number;
  /** Monte Carlo draws: eps is [samples, ...output shape] (predict_mc). */
  readonly samples?: number;
  /**
   * Coarser grids for the realistic-size cases, so their files stay small:
   * x integers in [-2, 2], theta and the noise parameter on 1/16, bias, eps
   * and cotangents on 1/4.
   */
  readonly coarse?: boolean;
}

function layerValues(
  rng: Xorshift32,
  profile: Profile,
  d: Dims,
  o: LayerDraftOptions,
): Record<string, unknown> {
  const s = shapes(d);
  const w = weights(rng, profile, d.kind, s.theta, {
    ...(o.targets === undefined ? {} : { targets: o.targets }),
    ...(o.noiseShape === undefined ? {} : { noiseShape: o.noiseShape }),
    ...(o.spread === undefined ? {} : { spread: o.spread }),
    ...(o.coarse ? { thetaStep: COARSE_THETA_STEP, noiseStep: NUDGE } : {}),
    zeroAt: Array.from({ length: o.thetaZeros ?? 0 }, (_, i) => i),
  });
  const step = o.coarse ? COARSE_STEP : 1 / 64;
  const x = o.zeroX ? zeros(s.x) : fill(rng, s.x, -2, 2, o.coarse ? 1 : step);
  const bias = fill(rng, s.bias, -1, 1, step);
  const epsShape = o.samples === undefined ? s.out : [o.samples, ...s.out];
  const eps = o.zeroEps ? zeros(epsShape) : fill(rng, epsShape, -3, 3, step);
  const cotangent = fill(rng, s.out, -2, 2, step);
  return {
    x,
    theta: w.theta,
    [NOISE]: w.noise,
    bias,
    ...(d.kind === 'conv2d' && d.stride !== undefined ? { stride: d.stride } : {}),
    ...(d.kind === 'conv2d' && d.padding !== undefined ? { padding: d.padding } : {}),
    eps,
    ...(o.trainClip === undefined ? {} : { train_clip: o.trainClip }),
    cotangent,
  };
}

function layerEdges(op: OpSpec, profile: Profile): Edge[] {
  const layer = op.layer!;
  const conv = layer === 'conv2d';
  const mc = op.name.endsWith('.predict_mc');
  const train = op.name.endsWith('.train') || op.name.endsWith('.train_vjp') || mc;
  const vd = profile[layer].logAlpha.form === 'learned';
  const base: Dims = conv
    ? { kind: 'conv2d', n: 1, h: 3, w: 3, cin: 2, kh: 2, kw: 2, cout: 2 }
    : { kind: 'dense', batch: 2, in: 3, out: 2 };
  const exactOk = exactAtUnitTheta(profile, layer);
  const clip = profile[layer].logAlpha.clip;
  const edge = (
    id: number,
    comment: string,
    flags: string[],
    options: LayerDraftOptions & { dims?: Dims; exact?: boolean; when?: boolean },
  ): Edge[] => {
    if (options.when === false || (options.exact && !exactOk)) return [];
    return [
      {
        id,
        build: (rng) => ({
          comment,
          flags,
          // The Monte Carlo predictive averages 3 draws unless the case says otherwise.
          values: layerValues(
            rng,
            profile,
            options.dims ?? base,
            mc ? { samples: 3, ...options } : options,
          ),
        }),
      },
    ];
  };
  const edges: Edge[] = [
    ...edge(1, 'theta = 0 and -0 in two weights: no NaN in any output or gradient', [], {
      thetaZeros: 2,
    }),
    ...edge(
      2,
      'raw log_alpha exactly 3 in two weights (theta = +-1): kept by ">", pruned by ">="',
      [],
      { targets: [3, 3], exact: true, when: profile.prune !== null },
    ),
    ...edge(3, `raw log_alpha exactly at the clip max ${clip?.max}: the clip gradient passes`, [], {
      targets: [clip?.max ?? 0, clip?.max ?? 0],
      exact: true,
      when: clip?.max != null,
    }),
    ...edge(4, `raw log_alpha exactly at the clip min ${clip?.min}: the clip gradient passes`, [], {
      targets: [clip?.min ?? 0, clip?.min ?? 0],
      exact: true,
      when: clip?.min != null,
    }),
    ...edge(5, 'raw log_alpha 9 and -9: beyond [-8, 8], inside [-10, 10]', [], {
      targets: [9, -9],
    }),
    ...edge(6, 'raw log_alpha 11 and -11: beyond every clip', [], { targets: [11, -11] }),
    ...edge(7, 'huge and tiny alpha: raw log_alpha 20 and -20', [], { targets: [20, -20] }),
    ...edge(8, 'x = 0: variance 0, the output is mean + sqrt(sqrtEps) * eps', ['zero_input'], {
      zeroX: true,
    }),
    ...edge(9, 'every size 1', ['one_element'], {
      dims: conv
        ? { kind: 'conv2d', n: 1, h: 1, w: 1, cin: 1, kh: 1, kw: 1, cout: 1 }
        : { kind: 'dense', batch: 1, in: 1, out: 1 },
    }),
    ...edge(
      10,
      conv
        ? 'cin = 0: empty sums, mean = bias, variance = 0'
        : 'in = 0: empty sums, mean = bias, variance = 0',
      ['empty_sum'],
      {
        dims: { ...base, ...(conv ? { cin: 0 } : { in: 0 }) },
        ...(vd ? { noiseShape: [] } : {}),
      },
    ),
    ...edge(
      11,
      'train_clip on, with pruned weights (raw log_alpha 5): the mask enters the training forward',
      [],
      { targets: [5, 5, -1], trainClip: true, when: train },
    ),
    ...edge(12, 'train_clip off, the same kind of weights: no mask in training', [], {
      targets: [5, 5, -1],
      trainClip: false,
      when: train,
    }),
    ...edge(13, 'eps = 0: the output is the mean', ['eps_zero'], { zeroEps: true, when: train }),
    ...edge(21, 'one draw (S = 1): the predictive is the training forward of that draw', [], {
      samples: 1,
      when: mc,
    }),
    ...edge(
      22,
      'eight draws of one example with three outputs: the average of softmaxes is not the softmax of the mean',
      [],
      { samples: 8, dims: { kind: 'dense', batch: 1, in: 3, out: 3 }, when: mc },
    ),
  ];
  if (vd) {
    const thetaShape = shapes(base).theta;
    const perInput = conv ? [1, 1, thetaShape[2]!, 1] : [thetaShape[0]!, 1];
    edges.push(
      ...edge(14, 'VD log_alpha a scalar (one per layer)', [], { noiseShape: [] }),
      ...edge(15, `VD log_alpha one per input unit ([${perInput.join(', ')}])`, [], {
        noiseShape: perInput,
      }),
      ...edge(16, 'VD log_alpha one per weight', [], { noiseShape: thetaShape }),
    );
  }
  if (conv) {
    const c = (over: Partial<ConvDims>): ConvDims => ({ ...(base as ConvDims), ...over });
    edges.push(
      ...edge(
        17,
        "padding 'same', stride 1, kernel 2x3 on 4x5: the extra row and column go at the bottom and right",
        [],
        { dims: c({ h: 4, w: 5, kh: 2, kw: 3, padding: 'same', stride: 1 }) },
      ),
      ...edge(
        18,
        "padding 'valid', stride 2 on 5x5, kernel 2x2: the last row and column are never read",
        [],
        {
          dims: c({ h: 5, w: 5, padding: 'valid', stride: 2 }),
        },
      ),
      ...edge(
        19,
        "padding 'same', stride 2, kernel 3x3 on 6x5: asymmetric padding on one axis only",
        [],
        {
          dims: c({ h: 6, w: 5, kh: 3, kw: 3, padding: 'same', stride: 2 }),
        },
      ),
      ...edge(20, "stride [1, 2] (a pair), padding 'same', batch 2", [], {
        dims: c({ n: 2, h: 3, w: 4, stride: [1, 2], padding: 'same' }),
      }),
      ...edge(
        21,
        "padding 'same', stride 2, kernel 3x3 on 8x8: TensorFlow pads 0 before and 1 after, Lasagne 1 and 1 (the profile's samePadding)",
        [],
        { dims: c({ h: 8, w: 8, cin: 1, cout: 1, kh: 3, kw: 3, padding: 'same', stride: 2 }) },
      ),
    );
  }
  if (realisticSizes(profile)) {
    // Realistic sizes (spec/golden.md#cases): dimensions past 4, 8, 16 and 32, where a
    // vectorised or tiled kernel's remainder loop starts; raw log_alpha over every clip.
    const big = { coarse: true, spread: RANDOM_SPREAD, ...(mc ? { samples: 2 } : {}) };
    const evalOnly = op.name.endsWith('.eval');
    if (conv) {
      edges.push(
        ...edge(
          30,
          "realistic size: 16x16 input, 8 channels in, 4 out, kernel 3x3, stride 2, padding 'same' (even input: TensorFlow pads 0 before, 1 after)",
          ['realistic_size'],
          {
            ...big,
            dims: {
              kind: 'conv2d',
              n: 1,
              h: 16,
              w: 16,
              cin: 8,
              kh: 3,
              kw: 3,
              cout: 4,
              stride: 2,
              padding: 'same',
            },
          },
        ),
        ...edge(
          31,
          "realistic size: 17x17 input (odd), 8 channels in, 1 out, kernel 3x3, stride 1, padding 'valid'",
          ['realistic_size'],
          {
            ...big,
            // Only in svd.conv2d.eval, whose outputs are short decimals (budget: spec/golden.md#cases).
            when: evalOnly && profile.algorithm === 'svd',
            dims: {
              kind: 'conv2d',
              n: 1,
              h: 17,
              w: 17,
              cin: 8,
              kh: 3,
              kw: 3,
              cout: 1,
              stride: 1,
              padding: 'valid',
            },
          },
        ),
      );
    } else {
      edges.push(
        ...edge(30, 'realistic size: batch 5, in 9, out 33', ['realistic_size'], {
          ...big,
          dims: { kind: 'dense', batch: 5, in: 9, out: 33 },
        }),
        ...edge(31, 'realistic size: batch 2, in 33, out 5', ['realistic_size'], {
          ...big,
          // Only in svd.dense.eval, whose outputs are short decimals (budget: spec/golden.md#cases).
          when: evalOnly && profile.algorithm === 'svd',
          dims: { kind: 'dense', batch: 2, in: 33, out: 5 },
        }),
      );
    }
  }
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        let d: Dims;
        if (conv) {
          const kh = rng.int(1, 3);
          const kw = rng.int(1, 3);
          const padding = rng.pick([undefined, 'valid', 'same'] as const);
          const stride = rng.pick([undefined, 1, 2, [1, 2], [2, 1]] as const);
          const lo = padding === 'same' ? 1 : 0;
          d = {
            kind: 'conv2d',
            n: rng.int(1, 2),
            h: lo === 1 ? rng.int(1, 5) : rng.int(kh, kh + 2),
            w: lo === 1 ? rng.int(1, 5) : rng.int(kw, kw + 2),
            cin: rng.int(1, 2),
            kh,
            kw,
            cout: rng.int(1, 2),
            ...(stride === undefined
              ? {}
              : { stride: Array.isArray(stride) ? ([...stride] as [number, number]) : stride }),
            ...(padding === undefined ? {} : { padding }),
          };
        } else {
          d = { kind: 'dense', batch: rng.int(1, 3), in: rng.int(1, 4), out: rng.int(1, 3) };
        }
        const thetaShape = shapes(d).theta;
        const trainClip = train ? rng.pick([undefined, true, false] as const) : undefined;
        return {
          comment: 'random shapes and values',
          flags: ['random'],
          values: layerValues(rng, profile, d, {
            ...(vd ? { noiseShape: vdNoiseShape(rng, thetaShape) } : {}),
            ...(trainClip === undefined ? {} : { trainClip }),
            ...(mc ? { samples: rng.int(1, 4) } : {}),
            spread: RANDOM_SPREAD,
          }),
        };
      },
    });
  }
  return edges;
}

// ---------------------------------------------------------------------------
// VD variant A (spec/dense-a.md)

interface DenseADraft {
  readonly batch?: number;
  readonly in?: number;
  readonly out?: number;
  /** log_alpha [] instead of [in]. */
  readonly scalar?: boolean;
  /** log_alpha of the first input units, exactly (the others random). */
  readonly targets?: readonly number[];
  readonly zeroX?: boolean;
  readonly zeroEps?: boolean;
  /** The coarse grids of the realistic-size cases (LayerDraftOptions.coarse). */
  readonly coarse?: boolean;
}

/**
 * log_alpha of a variant-A layer: targets first, the others on [-6, 1]
 * (grid 1/32), nudged by 1/16 until at least EDGE_MARGIN from every edge.
 */
function denseALogAlpha(rng: Xorshift32, n: number, targets: readonly number[]): Tensor {
  const data = Array.from({ length: n }, (_, i) => {
    if (i < targets.length) return targets[i]!;
    let v = rng.grid(-6, 1, 1 / 32);
    while (LOG_ALPHA_EDGES.some((e) => Math.abs(v - e) < EDGE_MARGIN)) v += NUDGE;
    return v;
  });
  return { shape: [n], data };
}

function denseAValues(rng: Xorshift32, d: DenseADraft): Record<string, unknown> {
  const batch = d.batch ?? 2;
  const inSize = d.in ?? 3;
  const out = d.out ?? 2;
  const la = denseALogAlpha(rng, d.scalar ? 1 : inSize, d.targets ?? []);
  const step = d.coarse ? COARSE_STEP : 1 / 64;
  return {
    x: d.zeroX ? zeros([batch, inSize]) : fill(rng, [batch, inSize], -2, 2, d.coarse ? 1 : step),
    theta: {
      shape: [inSize, out],
      data: Array.from({ length: inSize * out }, () =>
        d.coarse ? rng.grid(-2, 2, COARSE_THETA_STEP) : thetaValue(rng),
      ),
    },
    [NOISE]: d.scalar ? { shape: [], data: la.data } : la,
    bias: fill(rng, [out], -1, 1, step),
    eps: d.zeroEps ? zeros([batch, inSize]) : fill(rng, [batch, inSize], -3, 3, step),
    cotangent: fill(rng, [batch, out], -2, 2, step),
  };
}

function denseAEdges(op: OpSpec): Edge[] {
  const kl = op.name === 'vd.dense_a.kl';
  const edge = (id: number, comment: string, flags: string[], d: DenseADraft): Edge => ({
    id,
    build: (rng) => ({ comment, flags, values: denseAValues(rng, d) }),
  });
  const edges: Edge[] = [
    edge(1, 'log_alpha one per input unit ([in])', [], {}),
    edge(
      2,
      kl
        ? 'log_alpha a scalar, in = 4, out = 3: the KL counts it once per input unit (4 times), not per weight (12)'
        : 'log_alpha a scalar: one alpha for the layer, still one noise per example and input unit',
      [],
      { scalar: true, in: 4, out: 3 },
    ),
    edge(
      3,
      'log_alpha exactly 0 = VD_LOG_ALPHA_MAX in two units: the clip gradient passes (closed interval)',
      [],
      { targets: [0, 0] },
    ),
    edge(
      4,
      'log_alpha 0.5 and 2, beyond the clip max: clipped to 0 (alpha = 1), gradient exactly 0',
      [],
      { targets: [0.5, 2] },
    ),
    edge(5, 'alpha tiny: log_alpha -20 (sqrt(alpha) = e^-10)', [], { targets: [-20] }),
    edge(6, 'every size 1', ['one_element'], { batch: 1, in: 1, out: 1 }),
    edge(
      7,
      kl ? 'in = 0: no input unit, KL 0' : 'in = 0: empty sums, mean = output = bias, variance = 0',
      kl ? [] : ['empty_sum'],
      { in: 0 },
    ),
  ];
  if (!kl) {
    edges.push(
      edge(8, 'x = 0: variance 0, output = mean = bias (no sqrtEps in variant A)', ['zero_input'], {
        zeroX: true,
      }),
      edge(9, 'eps = 0: xi = 1, the output is the mean', ['eps_zero'], { zeroEps: true }),
      edge(10, 'batch = 0: empty results, zero gradients', [], { batch: 0 }),
      edge(
        11,
        'one input unit, out 3: the outputs of an example share one eps (correlation +-1)',
        [],
        { batch: 2, in: 1, out: 3 },
      ),
      edge(
        12,
        'in = out = 3: eps [batch, in] has the shape variant B would draw per output; the noise is per input unit',
        [],
        { batch: 2, in: 3, out: 3 },
      ),
      edge(13, 'realistic size: batch 5, in 9, out 33', ['realistic_size'], {
        batch: 5,
        in: 9,
        out: 33,
        coarse: true,
      }),
    );
  }
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const d: DenseADraft = {
          batch: rng.int(1, 3),
          in: rng.int(1, 4),
          out: rng.int(1, 3),
          scalar: rng.coin(),
        };
        return {
          comment: 'random shapes and values, log_alpha [] or [in] on [-6, 1]',
          flags: ['random'],
          values: denseAValues(rng, d),
        };
      },
    });
  }
  return edges;
}

// ---------------------------------------------------------------------------
// Objective and schedule

function logits(rng: Xorshift32, batch: number, classes: number) {
  return {
    logits: fill(rng, [batch, classes], -8, 8, 1 / 32),
    labels: Array.from({ length: batch }, () => rng.below(classes)),
  };
}

function crossEntropyEdges(): Edge[] {
  const fixed = (
    id: number,
    comment: string,
    flags: string[],
    values: Record<string, unknown>,
  ): Edge => ({
    id,
    build: () => ({ comment, flags, values }),
  });
  const edges: Edge[] = [
    fixed(1, 'one example, one class: CE = 0', ['one_element'], {
      logits: { shape: [1, 1], data: [0.5] },
      labels: [0],
    }),
    fixed(
      2,
      'logits of size 1e4: a logsumexp without the max shift overflows (spec/objective.md)',
      ['large_logits'],
      {
        logits: { shape: [3, 3], data: [1e4, 0, -1e4, 1e4, 0, -1e4, 1e4, 0, -1e4] },
        labels: [0, 1, 2],
      },
    ),
    fixed(3, 'zero logits: CE = log(classes)', ['zero_input'], {
      logits: { shape: [2, 4], data: new Array<number>(8).fill(0) },
      labels: [0, 3],
    }),
    fixed(4, 'a tie for the maximum', [], {
      logits: { shape: [1, 3], data: [1, 1, 0] },
      labels: [1],
    }),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random logits on [-8, 8] (grid 1/32) and labels',
        flags: ['random'],
        values: logits(rng, rng.int(1, 4), rng.int(2, 6)),
      }),
    });
  }
  return edges;
}

function sgvbEdges(): Edge[] {
  const base = (rng: Xorshift32) => logits(rng, 2, 3);
  const edge = (
    id: number,
    comment: string,
    flags: string[],
    extra: Record<string, number>,
  ): Edge => ({
    id,
    build: (rng) => ({ comment, flags, values: { ...base(rng), ...extra } }),
  });
  const edges: Edge[] = [
    edge(1, 'kl_weight = 0 (the warm-up): the loss is the data term', ['kl_weight_zero'], {
      train_size: 60000,
      kl_weight: 0,
      kl: 1234.5,
    }),
    edge(
      2,
      'train_size 60000 (MNIST), kl_weight 1: the data term is N * mean CE, not the batch sum',
      [],
      {
        train_size: 60000,
        kl_weight: 1,
        kl: 1234.5,
      },
    ),
    edge(3, 'a negative KL (the constant omitted or dropped)', [], {
      train_size: 100,
      kl_weight: 0.5,
      kl: -12.5,
    }),
    edge(4, 'train_size 1, kl 0', [], { train_size: 1, kl_weight: 1, kl: 0 }),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random logits, labels, train size, KL weight and KL',
        flags: ['random'],
        values: {
          ...logits(rng, rng.int(1, 4), rng.int(2, 6)),
          train_size: rng.int(1, 60000),
          kl_weight: rng.grid(0, 1, 1 / 64),
          kl: rng.grid(0, 2000, 1 / 8),
        },
      }),
    });
  }
  return edges;
}

function scheduleEdges(): Edge[] {
  const at = (id: number, epoch: number, comment: string): Edge => ({
    id,
    build: () => ({ comment, flags: [], values: { epoch } }),
  });
  const edges: Edge[] = [
    at(1, 0, 'epoch 0: beta = 0'),
    at(2, 4.9921875, 'just before the warm-up starts: beta = 0'),
    at(3, 5, 'epoch 5, the start of the warm-up: beta = 0'),
    at(4, 6, 'epoch 6: beta = 1/15'),
    at(5, 12.5, 'a fractional epoch half-way: beta = 0.5'),
    at(6, 19.9921875, 'just before the end of the warm-up'),
    at(7, 20, 'epoch 20, the end of the warm-up: beta = 1'),
    at(8, 1000, 'long after: beta = 1'),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random epoch on [0, 30] (grid 1/8)',
        flags: ['random'],
        values: { epoch: rng.grid(0, 30, 1 / 8) },
      }),
    });
  }
  return edges;
}

// ---------------------------------------------------------------------------

/**
 * The cases of `op` under `profile`, before the reference runs: every edge
 * case that applies to the profile, then RANDOM_CASES random ones, each
 * drawn from its own stream (caseSeed(fileSeed, id)), so adding or removing
 * a case changes no other case.
 */
export function draftCases(op: OpSpec, profile: Profile, fileSeed: number): CaseSpec[] {
  let edges: Edge[];
  switch (family(op)) {
    case 'kl_exact':
    case 'kl_approx':
      edges = klEdges(op, profile);
      break;
    case 'weights':
      edges = weightEdges(profile);
      break;
    case 'layer':
      edges = layerEdges(op, profile);
      break;
    case 'dense_a':
    case 'dense_a_kl':
      edges = denseAEdges(op);
      break;
    case 'cross_entropy':
      edges = crossEntropyEdges();
      break;
    case 'sgvb':
      edges = sgvbEdges();
      break;
    case 'schedule':
      edges = scheduleEdges();
      break;
  }
  const cases: CaseSpec[] = [];
  const seen = new Set<number>();
  for (const e of edges) {
    if (seen.has(e.id)) throw new Error(`duplicate case id ${e.id} for ${op.name}`);
    seen.add(e.id);
    const draft = e.build(new Xorshift32(caseSeed(fileSeed, e.id)));
    if (draft === null) continue;
    const inputs = orderedInputs(op, profile, draft.values);
    const flags = [...new Set([...draft.flags, ...inputFlags(op, profile, inputs)])].sort();
    const unknown = flags.find((f) => !Object.hasOwn(GOLDEN_FLAGS, f));
    if (unknown !== undefined) throw new Error(`flag ${unknown} is not in GOLDEN_FLAGS`);
    cases.push({ id: e.id, comment: draft.comment, flags, inputs });
  }
  return cases.sort((a, b) => a.id - b.id);
}

// ---------------------------------------------------------------------------
// The flag vocabulary (spec/golden.md#flags)

/** Every flag a case may carry: when it is set, and what a port that fails such a case likely got wrong. */
export const GOLDEN_FLAGS: Readonly<
  Record<string, { readonly when: string; readonly catches: string }>
> = {
  realistic_size: {
    when: 'a layer case of realistic size (dense dimensions past 4, 8, 16 and 32; conv2d inputs of 16x16 and more with 8 channels)',
    catches:
      'a vectorised or tiled loop with a remainder bug: wrong only from the 4th, 9th, 17th or 33rd unit on',
  },
  random: {
    when: 'a seeded random case (shapes and values)',
    catches: 'general disagreement; layouts (NHWC/HWIO, [in, out]) and shapes',
  },
  theta_zero: {
    when: 'some theta is exactly 0 (or -0)',
    catches: 'NaN gradients from log(0) = -inf (inf * 0); a missing clip of log_alpha = +inf',
  },
  negative_zero: {
    when: 'some input number is -0 (written "-0")',
    catches: 'a reader that rejects or mangles "-0"; sign(-0) and abs at zero',
  },
  threshold_exact: {
    when: 'the log_alpha the mask compares is exactly the threshold 3',
    catches: '">" against ">=" (molchanov2017 keeps the weight, the other SVD profiles prune it)',
  },
  clip_min: {
    when: 'a raw log_alpha is exactly the clip min',
    catches:
      "a clip gradient at the bound other than the profile's gradientAtBound (1 for a closed interval, 0 for bayesgroup-theano's switch)",
  },
  clip_max: {
    when: 'a raw log_alpha is exactly the clip max',
    catches:
      "a clip gradient at the bound other than the profile's gradientAtBound (1 for a closed interval, 0 for bayesgroup-theano's switch)",
  },
  float64_input: {
    when: 'an input is not a float32 value: a noise putting raw log_alpha exactly on an edge under a profile with an eps in the log (spec/golden.md#cases)',
    catches: '">" against ">=" and the clip gradient at a bound under profiles with an eps',
  },
  bias_multi_element: {
    when: 'a layer case whose bias has more than one element',
    catches:
      "pytorch_ard HEAD's `if self.bias:` (LinearARD's training forward raises on a multi-element tensor)",
  },
  bias_nonzero: {
    when: 'a layer case with a nonzero bias',
    catches:
      'a bias inside the variance convolution; a port of Conv2dARD, which forces bias=False, cannot run these',
  },
  beyond_clip: {
    when: "a raw log_alpha lies strictly outside the layer's clip (+inf included)",
    catches:
      'a variance or gradient taken from the unclipped log_alpha; a clip gradient of 1 outside',
  },
  between_clips: {
    when: 'a raw log_alpha has 8 < |log_alpha| <= 10',
    catches: 'the clip range: [-8, 8] and [-10, 10] profiles disagree here',
  },
  beyond_wide_clip: {
    when: 'a finite raw log_alpha has |log_alpha| > 10',
    catches: 'a missing clip (every clipping profile clips here)',
  },
  alpha_huge: {
    when: 'a raw log_alpha >= 15',
    catches: 'overflow or cancellation in exp(log_alpha), the sigmoid and log1p(exp(-log_alpha))',
  },
  alpha_tiny: {
    when: 'a raw log_alpha <= -15',
    catches: 'overflow of exp(-log_alpha); a variance that should nearly vanish',
  },
  pruned: {
    when: 'some weight has mask 0',
    catches: 'a mask missing from the eval forward, or applied where the profile does not',
  },
  noise_scalar: {
    when: 'VD log_alpha is a scalar',
    catches: 'broadcasting of log_alpha; its gradient summed over every weight',
  },
  noise_per_input: {
    when: 'VD log_alpha has one entry per input unit ([in, 1], or [1, 1, cin, 1]; [in] for vd.dense_a)',
    catches: 'broadcasting along the output axis; the gradient summed over it',
  },
  square_layer: {
    when: 'a vd.dense_a train op with in = out > 1',
    catches:
      "variant B's independent per-output noise for variant A's shared per-input noise (eps has the same shape here)",
  },
  noise_per_weight: {
    when: "VD log_alpha has theta's shape",
    catches: 'plain elementwise log_alpha',
  },
  layer_conv2d: {
    when: 'a per-weight op asked for the conv2d conventions (`layer: "conv2d"`)',
    catches:
      "ignoring a profile's conv2d conventions (bayesgroup-theano's eps, pytorch-ard's clip)",
  },
  infinite_log_alpha: {
    when: 'a KL input log_alpha is +inf or -inf',
    catches: 'inf - inf = NaN where the KL has a limit',
  },
  clip_bounds: {
    when: 'KL inputs at -10, -8, 0, 3, 8 and 10',
    catches: 'the KL constants and form at the values every profile meets',
  },
  series_switch: {
    when: 'kl.exact around log_alpha = -8 and at -12 and -5',
    catches: 'a jump between the series and the small-alpha expansion',
  },
  zero_input: {
    when: 'x = 0 (layers), log_alpha = 0 and -0 (KL), logits = 0 (cross-entropy)',
    catches: 'the bias inside the variance (the variance must be 0); sqrtEps in the output',
  },
  one_element: {
    when: 'every size is 1',
    catches: 'squeezed axes and broadcasting mistakes',
  },
  empty: {
    when: 'some input tensor has no elements',
    catches: 'crashes and wrong shapes on empty tensors (results are empty, sums 0)',
  },
  empty_sum: {
    when: 'the layer sums over nothing (dense in = 0, conv2d cin = 0)',
    catches:
      'uninitialised memory from an empty matmul (seen in tfjs-wasm); mean must equal the bias',
  },
  eps_zero: {
    when: 'eps = 0 in a training forward',
    catches: 'noise added outside the sqrt(variance + sqrtEps) * eps term',
  },
  train_clip_on: {
    when: 'train_clip = true given',
    catches:
      "the mask in the training forward (mean, or also variance per the profile's trainMask)",
  },
  train_clip_off: {
    when: 'train_clip = false given',
    catches: 'a mask applied in training when it is off',
  },
  train_clip_default: {
    when: "train_clip omitted: the profile's trainClipDefault applies",
    catches: 'a wrong default (bayesgroup-theano trains with the mask on)',
  },
  padding_same: {
    when: "conv2d padding 'same'",
    catches: "TensorFlow's rule: the extra row and column at the bottom and right, not the top",
  },
  padding_valid: {
    when: "conv2d padding 'valid' (given or by default)",
    catches: 'output size without padding; rows the stride never reaches',
  },
  strided: {
    when: 'a conv2d stride other than 1 (a number or a pair)',
    catches: 'output size and input offsets under stride',
  },
  large_logits: {
    when: 'logits of size 1e4',
    catches: 'a log-sum-exp without the max shift (overflow to inf)',
  },
  kl_weight_zero: {
    when: 'kl_weight = 0',
    catches: 'a KL term that does not vanish during the warm-up',
  },
};

/** The flags table of spec/golden.md (between its `golden-flags` markers). */
export function goldenFlagsTableMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const rows = Object.entries(GOLDEN_FLAGS).map(
    ([flag, f]) => `| \`${flag}\` | ${cell(f.when)} | ${cell(f.catches)} |`,
  );
  return [
    '| flag | set when | a port failing such a case likely has |',
    '| --- | --- | --- |',
    ...rows,
  ].join('\n');
}
