/**
 * Inputs for the dense-layer properties (dense, lrt, mask-invariance and
 * additive tests): a seeded PRNG, dense layers built so that every weight's
 * raw log_alpha lands where a test wants it (inside the clip, beyond it, or
 * theta = 0), and a finite-difference helper.
 *
 * Not a test file: it registers no tests, so importing it from several test
 * files runs nothing twice.
 */
import fc from 'fast-check';
import type { Profile } from '../../src/profiles.js';
import type { DenseTrainCotangent, DenseTrainInputs } from '../../src/reference/dense.js';
import { sizeOf, type Tensor } from '../../src/tensor.js';

/** mulberry32: a 32-bit seeded PRNG, uniform on [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Box-Muller on a uniform source: standard-normal draws. */
export function standardNormal(uniform: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    // 1 - u lies in (0, 1]: log never sees 0.
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/**
 * The noise parameter that gives a weight the raw log_alpha `target`, by
 * inverting the profile's form (spec/log-alpha.md#svdlog_alpha). In float64
 * the reference then reproduces `target` to a few ulps.
 */
export function noiseForLogAlpha(theta: number, target: number, profile: Profile): number {
  const { form, thetaEps } = profile.dense.logAlpha;
  let logSigma2: number;
  if (form === 'learned') return target;
  if (form === 'log_theta2') logSigma2 = target + Math.log(theta * theta + thetaEps);
  else logSigma2 = target + 2 * Math.log(Math.abs(theta) + thetaEps);
  return profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2;
}

/** The noise parameter for a weight with theta = 0 and the given log_sigma2. */
export function noiseForLogSigma2(logSigma2: number, profile: Profile): number {
  return profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2;
}

export interface Interval {
  readonly lo: number;
  readonly hi: number;
}

/**
 * Raw log_alpha values strictly inside the clip, at least `margin` from both
 * bounds and from the pruning threshold: the layer is smooth there. A missing
 * lower bound (VD) is replaced by `upper - 8`, a missing upper one by
 * `lower + 16`, so that alpha stays within float64's comfortable range.
 */
export function insideIntervals(profile: Profile, margin: number): Interval[] {
  const clip = profile.dense.logAlpha.clip;
  const hi = clip?.max ?? (clip?.min ?? -8) + 16;
  const lo = clip?.min ?? hi - 8;
  const cuts = profile.prune === null ? [] : [profile.prune.threshold];
  const edges = [lo, ...cuts.filter((c) => c > lo && c < hi), hi];
  const out: Interval[] = [];
  for (let k = 0; k + 1 < edges.length; k++) {
    const a = edges[k]! + margin;
    const b = edges[k + 1]! - margin;
    if (b > a) out.push({ lo: a, hi: b });
  }
  return out;
}

/** Raw log_alpha values beyond the clip by at least `margin` (and at most 4). */
export function outsideIntervals(profile: Profile, margin: number): Interval[] {
  const clip = profile.dense.logAlpha.clip;
  const out: Interval[] = [];
  if (clip?.max != null) out.push({ lo: clip.max + margin, hi: clip.max + 4 });
  if (clip?.min != null) out.push({ lo: clip.min - 4, hi: clip.min - margin });
  return out;
}

export function pickFrom(intervals: readonly Interval[], uniform: () => number): number {
  const total = intervals.reduce((s, i) => s + (i.hi - i.lo), 0);
  let u = uniform() * total;
  for (const i of intervals) {
    const width = i.hi - i.lo;
    if (u <= width) return i.lo + u;
    u -= width;
  }
  const last = intervals[intervals.length - 1]!;
  return last.hi;
}

/**
 * - `inside`: raw log_alpha inside the clip (away from bounds and threshold);
 * - `outside`: beyond a clip bound (SVD) or above the VD cap;
 * - `zero`: theta = 0; SVD weights get log_sigma2 in [-5, 0], so that even at
 *   theta = +-2e-4 the raw log_alpha (>= 12) stays beyond every clip max and
 *   the layer is smooth around theta = 0 (spec/dense.md#theta--0).
 */
export type Region = 'inside' | 'outside' | 'zero';

/** VD's log_alpha may broadcast (spec/log-alpha.md#vdlog_alpha). */
export type NoiseLayout = 'per-weight' | 'scalar' | 'per-input' | 'per-output' | 'row';

export function noiseShapeOf(layout: NoiseLayout, inSize: number, outSize: number): number[] {
  switch (layout) {
    case 'per-weight':
      return [inSize, outSize];
    case 'scalar':
      return [];
    case 'per-input':
      return [inSize, 1];
    case 'per-output':
      return [outSize];
    case 'row':
      return [1, outSize];
  }
}

export interface CaseParameters {
  readonly seed: number;
  readonly batch: number;
  readonly inSize: number;
  readonly outSize: number;
  readonly layout: NoiseLayout;
}

export const caseParameters = (
  sizes: { maxBatch?: number; maxIn?: number; maxOut?: number } = {},
): fc.Arbitrary<CaseParameters> =>
  fc.record({
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
    batch: fc.integer({ min: 1, max: sizes.maxBatch ?? 3 }),
    inSize: fc.integer({ min: 1, max: sizes.maxIn ?? 4 }),
    outSize: fc.integer({ min: 1, max: sizes.maxOut ?? 3 }),
    layout: fc.constantFrom<NoiseLayout>('per-weight', 'scalar', 'per-input', 'per-output', 'row'),
  });

export interface DenseCase {
  readonly inputs: DenseTrainInputs;
  readonly cotangent: Required<DenseTrainCotangent>;
  /** The raw log_alpha each weight was built to have (NaN where theta = 0 under SVD). */
  readonly targetLogAlpha: number[];
  /** The region each weight was drawn in. */
  readonly regions: Region[];
}

function signed(uniform: () => number, lo: number, hi: number): number {
  const magnitude = lo + (hi - lo) * uniform();
  return uniform() < 0.5 ? -magnitude : magnitude;
}

function filled(shape: number[], f: () => number): Tensor {
  return { shape, data: Array.from({ length: sizeOf(shape) }, f) };
}

/**
 * A dense layer whose weights fall in the given regions (drawn uniformly per
 * weight, or per noise element for a broadcast VD log_alpha). |theta| in
 * [0.2, 2], |x| in [0.3, 2]: far enough from 0 that the variance is bounded
 * below and log(theta^2) is smooth at the finite-difference steps.
 */
export function buildDenseCase(
  params: CaseParameters,
  profile: Profile,
  regions: readonly Region[] = ['inside'],
  margin = 0.05,
): DenseCase {
  const uniform = mulberry32(params.seed);
  const normal = standardNormal(uniform);
  const { batch, inSize, outSize } = params;
  const learned = profile.dense.logAlpha.form === 'learned';
  const inside = insideIntervals(profile, margin);
  const outside = outsideIntervals(profile, margin);
  const allowed = regions.filter((r) => r !== 'outside' || outside.length > 0);
  const drawRegion = () => allowed[Math.floor(uniform() * allowed.length)]!;
  const drawLogAlpha = (region: Region) =>
    pickFrom(region === 'outside' ? outside : inside, uniform);

  const weightRegions: Region[] = [];
  const thetaData: number[] = [];
  const target: number[] = [];
  for (let k = 0; k < inSize * outSize; k++) {
    const region = drawRegion();
    weightRegions.push(region);
    thetaData.push(region === 'zero' ? 0 : signed(uniform, 0.2, 2));
  }

  let noise: Tensor;
  if (learned) {
    const shape = noiseShapeOf(params.layout, inSize, outSize);
    // One region per noise element; a weight reads the element it broadcasts from.
    const values = Array.from({ length: sizeOf(shape) }, () => {
      const region = drawRegion();
      return drawLogAlpha(region === 'zero' ? 'inside' : region);
    });
    noise = { shape, data: values };
    for (let k = 0; k < inSize * outSize; k++) {
      const i = Math.floor(k / outSize);
      const j = k % outSize;
      const element =
        shape.length === 0
          ? 0
          : shape.length === 1
            ? j
            : (shape[0] === 1 ? 0 : i) * shape[1]! + (shape[1] === 1 ? 0 : j);
      target.push(values[element]!);
    }
  } else {
    const data = thetaData.map((theta, k) => {
      if (weightRegions[k] === 'zero') {
        target.push(NaN);
        return noiseForLogSigma2(-5 + 5 * uniform(), profile);
      }
      const la = drawLogAlpha(weightRegions[k]!);
      target.push(la);
      return noiseForLogAlpha(theta, la, profile);
    });
    noise = { shape: [inSize, outSize], data };
  }

  const out: [number, number] = [batch, outSize];
  return {
    inputs: {
      x: filled([batch, inSize], () => signed(uniform, 0.3, 2)),
      theta: { shape: [inSize, outSize], data: thetaData },
      noise,
      bias: filled([outSize], () => 2 * uniform() - 1),
      eps: filled(out, normal),
    },
    cotangent: {
      output: filled(out, () => 2 * uniform() - 1),
      mean: filled(out, () => 2 * uniform() - 1),
      variance: filled(out, () => 2 * uniform() - 1),
    },
    targetLogAlpha: target,
    regions: weightRegions,
  };
}

/** A copy of `t` with entry k moved by delta. */
export function withEntry(t: Tensor, k: number, delta: number): Tensor {
  const data = [...t.data];
  data[k] = data[k]! + delta;
  return { shape: [...t.shape], data };
}

/**
 * Five-point central difference, f'(0) = (f(-2h) - 8f(-h) + 8f(h) - f(2h)) / 12h,
 * truncation error h^4/30 * |f^(5)|.
 */
export function fivePointDerivative(f: (delta: number) => number, h: number): number {
  return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h);
}

export function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}

export function absDot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += Math.abs(a[k]! * b[k]!);
  return s;
}
