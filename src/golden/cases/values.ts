/**
 * The values of golden cases (spec/golden.md#cases): case ids and seeds, values
 * on float32-exact grids, the weights (theta and the noise parameter) of the
 * per-weight ops and layers, and the margins that keep random cases away from
 * the clip bounds and the threshold.
 */
import { SVD_LOG_ALPHA_MAX, SVD_PRUNE_THRESHOLD, WIDE_LOG_ALPHA_MAX } from '../../constants.js';
import type { LayerKind, Profile } from '../../profiles.js';
import { broadcastIndex, weightStatistics } from '../../reference/logAlpha.js';
import { sizeOf, type Tensor } from '../../tensor.js';
import { fnv1a32, Xorshift32 } from '../prng.js';

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
export const NUDGE = 1 / 16;

/** The stream of case `id` of the file with seed `fileSeed` (spec/golden.md#seeds-and-prng). */
export function caseSeed(fileSeed: number, id: number): number {
  return fnv1a32(`${fileSeed}/${id}`) || 1;
}

const quantize = (v: number, step: number) => Math.round(v / step) * step + 0;

export function fill(
  rng: Xorshift32,
  shape: readonly number[],
  lo: number,
  hi: number,
  step: number,
) {
  return {
    shape: [...shape],
    data: Array.from({ length: sizeOf(shape) }, () => rng.grid(lo, hi, step)),
  };
}

export const zeros = (shape: readonly number[]): Tensor => ({
  shape: [...shape],
  data: new Array<number>(sizeOf(shape)).fill(0),
});

/** The grids of the realistic-size layer cases (spec/golden.md#cases): shorter numbers. */
export const COARSE_THETA_STEP = 1 / 16;
export const COARSE_STEP = 1 / 4;

/** theta in [-2, 2] on a 1/256 grid. */
export const thetaValue = (rng: Xorshift32) => rng.grid(-2, 2, 1 / 256);

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
export function weights(
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
