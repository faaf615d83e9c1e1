/**
 * Shared by the fast-vs-reference properties (fast-agreement.test.ts,
 * fast-run.test.ts): float32-exact input generators and the tolerance model
 * of spec/fast.md#tolerance, evaluated in float64 from the reference, plus
 * the comparison and leak helpers. Not a test file itself.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { expect } from 'vitest';

import {
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../../src/constants.js';
import type { FastConv2dOptions, FastConv2dPath } from '../../src/fast/index.js';
import { PROFILE_NAMES, PROFILES, type LayerKind, type Profile } from '../../src/profiles.js';
import {
  conv2d as refConv,
  conv2dBackpropFilter as refConvFilterT,
  conv2dBackpropInput as refConvInputT,
  conv2dGeometry,
} from '../../src/reference/conv2d.js';
import {
  broadcastIndex,
  weightStatistics,
  type WeightStatistics,
} from '../../src/reference/logAlpha.js';
import { sizeOf, type Tensor } from '../../src/tensor.js';

/** float32 unit roundoff (spec/fast.md#tolerance). */
export const U = 2 ** -24;
/** Absolute floor for values that underflow float32's normal range (smallest normal ~1.2e-38). */
export const TINY = 1e-37;

/** VDSPEC_FAST_RUNS=k multiplies every numRuns by k (a longer soak run; default 1). */
export function runs(n: number): number {
  return n * Math.max(1, Number(process.env.VDSPEC_FAST_RUNS ?? 1));
}
export const LAYERS: readonly LayerKind[] = ['dense', 'conv2d'];

export function convOptions(
  c: {
    trainClip: boolean | undefined;
    stride: number | [number, number];
    padding: 'valid' | 'same';
  },
  path?: FastConv2dPath,
): FastConv2dOptions {
  return {
    stride: c.stride,
    padding: c.padding,
    ...(c.trainClip === undefined ? {} : { trainClip: c.trainClip }),
    ...(path === undefined ? {} : { path }),
  };
}

// ---------------------------------------------------------------------------
// Reporting and comparison
// ---------------------------------------------------------------------------

/** Largest |fast - ref| / tolerance seen per "backend op", for spec/fast.md's table. */
export const worst = new Map<string, number>();

export function record(key: string, ratio: number): void {
  worst.set(key, Math.max(worst.get(key) ?? 0, ratio));
}

/**
 * Assert |fast_i - ref_i| <= tol_i for every i (an infinite ref must be matched
 * exactly), naming the op and the first failing index.
 */
export function expectWithin(
  key: string,
  fast: readonly number[],
  ref: readonly number[],
  tol: readonly number[],
): void {
  expect(fast.length, `${key}: length`).toBe(ref.length);
  let ratio = 0;
  for (let i = 0; i < ref.length; i++) {
    const f = fast[i]!;
    const r = ref[i]!;
    const t = tol[i]!;
    if (!Number.isFinite(r)) {
      if (f !== r) throw new Error(`${key}[${i}]: fast ${f}, reference ${r}`);
      continue;
    }
    const err = Math.abs(f - r);
    if (!(err <= t)) {
      throw new Error(`${key}[${i}]: fast ${f}, reference ${r}, |diff| ${err} > tolerance ${t}`);
    }
    if (t > 0) ratio = Math.max(ratio, err / t);
  }
  record(key, ratio);
}

/** Run `fn` and check that it leaves tf.memory().numTensors unchanged. */
export function noLeak<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const result = fn();
  expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
  return result;
}

// ---------------------------------------------------------------------------
// Generators: float32-exact inputs
// ---------------------------------------------------------------------------

export const f32 = Math.fround;

/**
 * A float32 in [min, max], with magnitudes below 1e-6 replaced by 0. The
 * tolerance model does not cover underflow (spec/fast.md#tolerance): with
 * every input 0 or at least 1e-6 in magnitude, no product or quotient formed
 * by the operations under test comes near float32's smallest normal (~1.2e-38).
 */
export function float(min: number, max: number): fc.Arbitrary<number> {
  return fc
    .float({ min: f32(min), max: f32(max), noNaN: true, noDefaultInfinity: true })
    .map((v) => (Math.abs(v) < 1e-6 ? 0 : v));
}

/**
 * theta: 0 (the guarded log) and +-1 (log(theta^2) = 0 exactly, so log_alpha
 * equals log_sigma2 and can sit exactly on a bound or the threshold) about one
 * time in eight each, else sign * 10^e with e in [-4, 0.3], log-uniform so
 * that log(theta^2) spans ~[-18, 1.2].
 */
export const thetaValue: fc.Arbitrary<number> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constantFrom(1, -1) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(float(-4, 0.3), fc.boolean())
      .map(([e, neg]) => f32((neg ? -1 : 1) * 10 ** e)),
  },
);

/**
 * The noise parameter, ranged so that log_alpha = log_sigma2 - log(theta^2)
 * falls on both sides of every clip bound and of the threshold (about
 * [-24, 25]); one time in six exactly at a clip bound or the threshold (for
 * theta = +-1 that is log_alpha itself: the inclusive clip gradient and the
 * '>' / '>=' mask are then compared exactly).
 */
export function noiseValue(profile: Profile): fc.Arbitrary<number> {
  const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const clip = profile.dense.logAlpha.clip;
  const edges = [clip?.min, clip?.max, profile.prune?.threshold]
    .filter((e): e is number => typeof e === 'number')
    .map((e) => f32(e / scale));
  const range =
    profile.noiseParameter === 'log_sigma2'
      ? float(-22, 6)
      : profile.noiseParameter === 'log_sigma'
        ? float(-11, 3)
        : float(-6, 1.5); // VD: around its clip max 0
  return fc.oneof(
    { weight: 5, arbitrary: range },
    { weight: 1, arbitrary: fc.constantFrom(...edges) },
  );
}

export function values(arb: fc.Arbitrary<number>, n: number): fc.Arbitrary<number[]> {
  return fc.array(arb, { minLength: n, maxLength: n });
}

export function tensorOf(
  shape: readonly number[],
  arb: fc.Arbitrary<number>,
): fc.Arbitrary<Tensor> {
  return values(arb, sizeOf(shape)).map((data) => ({ shape: [...shape], data }));
}

/** The noise shape: theta's, or for a learned log_alpha also a scalar or one per input unit. */
export function noiseShape(
  profile: Profile,
  layer: LayerKind,
  thetaShape: readonly number[],
): fc.Arbitrary<number[]> {
  if (profile[layer].logAlpha.form !== 'learned') return fc.constant([...thetaShape]);
  const perInput = thetaShape.map((d, i) => (i === thetaShape.length - 1 ? 1 : d));
  return fc.constantFrom([...thetaShape], [], perInput);
}

export interface Weights {
  readonly profile: Profile;
  readonly layer: LayerKind;
  readonly theta: Tensor;
  readonly noise: Tensor;
}

export function weightsFor(
  profile: Profile,
  layer: LayerKind,
  thetaShape: readonly number[],
): fc.Arbitrary<Weights> {
  return noiseShape(profile, layer, thetaShape).chain((nShape) =>
    fc.record({
      profile: fc.constant(profile),
      layer: fc.constant(layer),
      theta: tensorOf(thetaShape, thetaValue),
      noise: tensorOf(nShape, noiseValue(profile)),
    }),
  );
}

export const profileArb: fc.Arbitrary<Profile> = fc
  .constantFrom(...PROFILE_NAMES)
  .map((n) => PROFILES[n]);

export const anyWeights: fc.Arbitrary<Weights> = fc
  .record({
    profile: profileArb,
    layer: fc.constantFrom(...LAYERS),
    dims: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 4, maxLength: 4 }),
  })
  .chain(({ profile, layer, dims }) =>
    weightsFor(profile, layer, layer === 'dense' ? dims.slice(0, 2) : dims),
  );

// ---------------------------------------------------------------------------
// The tolerance model (spec/fast.md#tolerance), evaluated in float64
// ---------------------------------------------------------------------------

export interface WeightTolerance {
  readonly stats: WeightStatistics;
  /** |log_sigma2| per weight. */
  readonly logSigma2: number[];
  /** Bound on |fast log_alpha - ref log_alpha| per weight (0 for a learned log_alpha). */
  readonly logAlpha: number[];
  /** Bound on the relative error of the per-weight variance. */
  readonly varianceRel: number[];
  /**
   * True when some weight's unclipped log_alpha lies within its tolerance of a
   * clip bound or of the threshold without being on it: float32 may then land
   * on the other side, flipping the mask or the clip gradient. Such cases are
   * discarded (fc.pre); with continuous inputs they are rare (the band is ~1e-5 wide).
   */
  readonly nearEdge: boolean;
}

/**
 * log_alpha: fl(theta^2) and the added eps give the log's argument a relative
 * error <= 2u (plus u for thetaEps itself rounded to float32), the log adds
 * <= 2u |L| (library ulps), the subtraction u |raw| <= u (|ls2| + |L|): in all
 * |d raw| <= u (3 + |ls2| + 3 |L|), L = log(theta^2 + eps) or 2 log(|theta| + eps).
 * A factor 4 covers math-library error beyond one ulp. A learned log_alpha is
 * the parameter itself: exact. The clip is 1-Lipschitz and its bounds are
 * float32-exact, so the bound carries through it.
 * Variance: alpha_theta2 = exp(la) theta^2 has relative error <= |d la| + 4u
 * (exp, square, product); sigma2 = exp(ls2) with ls2 exact: 4u; times 2 for margin.
 */
export function weightTolerance(w: Weights): WeightTolerance {
  const conventions = w.profile[w.layer];
  const { form, thetaEps, clip } = conventions.logAlpha;
  const stats = weightStatistics(w.theta, w.noise, w.profile, w.layer);
  const scale = w.profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const n = stats.logAlpha.length;
  const logSigma2: number[] = [];
  const logAlpha: number[] = [];
  const varianceRel: number[] = [];
  let nearEdge = false;
  const edges = [clip?.min, clip?.max, w.profile.prune?.threshold].filter(
    (e): e is number => typeof e === 'number',
  );
  for (let i = 0; i < n; i++) {
    const t = w.theta.data[i]!;
    let tolLa = 0;
    let ls2Abs = 0;
    if (form !== 'learned') {
      const raw = stats.logAlphaRaw[i]!;
      const L =
        form === 'log_theta2' ? Math.log(t * t + thetaEps) : 2 * Math.log(Math.abs(t) + thetaEps);
      ls2Abs = Math.abs(raw + L);
      tolLa = Number.isFinite(L) ? 4 * U * (3 + ls2Abs + 3 * Math.abs(L)) : 0;
      for (const e of edges) {
        const d = Math.abs(raw - e);
        if (d > 0 && d <= tolLa) nearEdge = true;
      }
    } else {
      ls2Abs = Math.abs(stats.logAlphaRaw[i]!) * scale;
    }
    logSigma2.push(ls2Abs);
    logAlpha.push(tolLa);
    varianceRel.push(2 * ((conventions.variance === 'sigma2' ? 0 : tolLa) + 4 * U));
  }
  return { stats, logSigma2, logAlpha, varianceRel, nearEdge };
}

export const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
export const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/**
 * Evaluation error of the per-weight KL at a float32 log_alpha (spec/fast.md#tolerance):
 * 8u times the sum of the magnitudes of the terms the formula adds, where the
 * sigmoid term also carries the rounding of z = k2 + k3 la through its slope
 * (k1 s(-z) s(z) |dz|, |dz| <= 2u (k3 |la| + k2)).
 */
export function klEvalTolerance(la: number, profile: Profile): number {
  if (!Number.isFinite(la)) return 0;
  if (profile.kl.approximation === 'svd_sigmoid') {
    const z = SVD_KL_K2 + SVD_KL_K3 * la;
    const offset = profile.kl.constant === 'minus_k1' ? 0 : SVD_KL_K1;
    const terms =
      SVD_KL_K1 * sigmoid(-z) * (1 + 2 * (SVD_KL_K3 * Math.abs(la) + SVD_KL_K2)) +
      0.5 * softplus(-la) +
      offset;
    return 8 * U * terms;
  }
  const a = Math.exp(la);
  return (
    8 *
    U *
    (0.5 * Math.abs(la) +
      a * (Math.abs(VD_KL_C1) + a * (Math.abs(VD_KL_C2) + a * Math.abs(VD_KL_C3))))
  );
}

/**
 * Evaluation error of dKL/dlog_alpha by autodiff: 16u times the magnitudes of
 * its terms (for the sigmoid: k1 k3 s (1 - s), whose 1 - s is formed with an
 * absolute error u, hence k1 k3 itself; and 0.5 s(-la)).
 */
export function klSlopeTolerance(la: number, profile: Profile): number {
  if (profile.kl.approximation === 'svd_sigmoid') {
    return 16 * U * (SVD_KL_K1 * SVD_KL_K3 + 0.5 * sigmoid(-la));
  }
  const a = Math.exp(la);
  return (
    16 *
    U *
    (0.5 + a * (Math.abs(VD_KL_C1) + a * (2 * Math.abs(VD_KL_C2) + a * 3 * Math.abs(VD_KL_C3))))
  );
}

/** |d^2 KL / d la^2| <= 1 on the clipped range for both approximations (sigmoid: <= 0.35; cubic, la <= 0: < 1). */
export const KL_CURVATURE_BOUND = 1;

// ---------------------------------------------------------------------------
// Layer tolerances: one model for dense and conv2d. A dense layer is the
// 1x1 convolution of x [batch, 1, 1, in] with theta [1, 1, in, out], so the
// float64 magnitude sums below (|x| conv |theta| and the two transposes)
// come from the reference's plain convolution helpers for both.
// ---------------------------------------------------------------------------

export interface LayerCase {
  readonly w: Weights;
  readonly x: Tensor;
  readonly bias: Tensor;
  readonly eps: Tensor;
  readonly gy: Tensor;
  /** Extra cotangents of the training mean and variance. */
  readonly gMean?: Tensor | undefined;
  readonly gVariance?: Tensor | undefined;
  readonly trainClip: boolean | undefined;
  readonly stride: number | [number, number];
  readonly padding: 'valid' | 'same';
}

export interface LinearGeometry {
  /** Terms in one output's sum (in, or kh * kw * cin). */
  readonly k: number;
  /** Terms in one input pixel's gradient sum (out, or kh * kw * cout at most). */
  readonly kx: number;
  /** Terms in one weight's gradient sum (batch, or n * oh * ow). */
  readonly kTheta: number;
  readonly fwd: (a: readonly number[], f: readonly number[]) => number[];
  readonly tin: (g: readonly number[], f: readonly number[]) => number[];
  readonly tfil: (a: readonly number[], g: readonly number[]) => number[];
}

export function linearGeometry(c: LayerCase): LinearGeometry {
  const dense = c.w.layer === 'dense';
  const xShape = dense ? [c.x.shape[0]!, 1, 1, c.x.shape[1]!] : [...c.x.shape];
  const fShape = dense ? [1, 1, ...c.w.theta.shape] : [...c.w.theta.shape];
  const stride = dense ? 1 : c.stride;
  const padding = dense ? 'valid' : c.padding;
  const g = conv2dGeometry(xShape, fShape, { stride, padding });
  const t = (shape: readonly number[], data: readonly number[]): Tensor => ({
    shape: [...shape],
    data: [...data],
  });
  const outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels];
  return {
    k: g.kernelHeight * g.kernelWidth * g.inChannels,
    kx: g.kernelHeight * g.kernelWidth * g.outChannels,
    kTheta: g.batch * g.outHeight * g.outWidth,
    fwd: (a, f) => [...refConv(t(xShape, a), t(fShape, f), stride, padding).data],
    tin: (gy, f) => [...refConvInputT(t(outShape, gy), t(fShape, f), xShape, stride, padding).data],
    tfil: (a, gy) => [
      ...refConvFilterT(t(xShape, a), t(outShape, gy), fShape, stride, padding).data,
    ],
  };
}

export const abs = (v: readonly number[]) => v.map(Math.abs);
export const mulv = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v * b[i]!);
export const addv = (...vs: (readonly number[])[]) =>
  vs[0]!.map((_, i) => vs.reduce((s, v) => s + v[i]!, 0));
export const scalev = (a: readonly number[], k: number) => a.map((v) => v * k);

export interface LayerTolerance {
  readonly nearEdge: boolean;
  readonly mean: number[];
  readonly variance: number[];
  readonly output: number[];
  readonly eval: number[];
  readonly gx: number[];
  readonly gTheta: number[];
  readonly gNoise: number[];
  readonly gBias: number[];
}

/**
 * spec/fast.md#tolerance, for a layer. With K the terms of one output sum:
 *   mean:     2 (K + 1) u (|x| (*) |theta_m| + |b|)
 *   variance: 2 (K + 2) u var + (x*x) (*) (s2_m * rel_s2)
 *   output:   tol_mean + |eps| (tol_var + u sqrtEps) / (2 sd) + 3u sd |eps| + 2u (|mean| + sd |eps|)
 * and for the VJP, each gradient is bounded by 2 (K' + 2) u times the sum of
 * the magnitudes of the terms autodiff adds (K' the terms of its contraction),
 * plus the propagated relative error of the variance path (rel_s2 and the
 * error of h = gy eps / (2 sd)). (*) is the matmul or the convolution.
 */
export function layerTolerance(c: LayerCase): LayerTolerance {
  const p = c.w.profile;
  const conventions = p[c.w.layer];
  const tol = weightTolerance(c.w);
  const s = tol.stats;
  const lin = linearGeometry(c);
  const trainClip = c.trainClip ?? p.trainClipDefault;
  const ones = s.mask.map(() => 1);
  const meanMask = trainClip ? s.mask : ones;
  const varMask = trainClip && conventions.trainMask === 'mean_and_variance' ? s.mask : ones;
  const theta = c.w.theta.data;
  const x = c.x.data;
  const x2 = x.map((v) => v * v);
  const outChannels = c.bias.data.length;
  const biasAt = (o: number) => Math.abs(c.bias.data[o % outChannels]!);
  const e = p.sqrtEps;

  const s2m = mulv(s.variance, varMask);
  const s2mErr = mulv(s2m, tol.varianceRel);
  const aMean = lin.fwd(abs(x), mulv(abs(theta), meanMask)).map((v, o) => v + biasAt(o));
  const meanTol = scalev(aMean, 2 * (lin.k + 1) * U).map((v) => v + TINY);
  const meanAbs = lin.fwd(x, mulv(theta, meanMask)).map((v, o) => Math.abs(v) + biasAt(o));
  const variance = lin.fwd(x2, s2m);
  const varTol = addv(scalev(variance, 2 * (lin.k + 2) * U), lin.fwd(x2, s2mErr)).map(
    (v) => v + TINY,
  );
  const sd = variance.map((v) => Math.sqrt(v + e));
  const eps = c.eps.data;
  const outTol = meanTol.map(
    (mt, o) =>
      mt +
      Math.abs(eps[o]!) * ((varTol[o]! + U * e) / (2 * sd[o]!) + 3 * U * sd[o]!) +
      2 * U * (meanAbs[o]! + sd[o]! * Math.abs(eps[o]!)),
  );
  const aEval = lin.fwd(abs(x), mulv(abs(theta), s.mask)).map((v, o) => v + biasAt(o));
  const evalTol = scalev(aEval, 2 * (lin.k + 1) * U).map((v) => v + TINY);

  // VJP. h = gy eps / (2 sd), with relative error rel_sd + 3u.
  // Extra mean / variance cotangents add to the two paths (one more rounding each).
  const gyOut = c.gy.data;
  const gy = gyOut.map((g, o) => Math.abs(g) + Math.abs(c.gMean?.data[o] ?? 0));
  const hOut = gyOut.map((g, o) => (g * eps[o]!) / (2 * sd[o]!));
  const h = hOut.map((v, o) => Math.abs(v) + Math.abs(c.gVariance?.data[o] ?? 0));
  const hErr = hOut.map(
    (v, o) =>
      Math.abs(v) * ((0.5 * (varTol[o]! + U * e)) / (variance[o]! + e) + 5 * U) + 2 * U * h[o]!,
  );
  const thetaMAbs = mulv(abs(theta), meanMask);
  const gxMean = lin.tin(abs(gy), thetaMAbs);
  const gxVar = mulv(scalev(abs(x), 2), lin.tin(abs(h), s2m));
  const gxVarErr = mulv(scalev(abs(x), 2), addv(lin.tin(hErr, s2m), lin.tin(abs(h), s2mErr)));
  const gxTol = addv(scalev(addv(gxMean, gxVar), 2 * (lin.kx + 2) * U), gxVarErr).map(
    (v) => v + TINY,
  );

  const alpha = s.logAlpha.map((la) => (Number.isFinite(la) ? Math.exp(la) : 0));
  const dSdThetaAbs =
    conventions.variance === 'sigma2'
      ? theta.map(() => 0)
      : theta.map(
          (t, i) => s.variance[i]! * Math.abs(s.dLogAlphaDTheta[i]!) + 2 * alpha[i]! * Math.abs(t),
        );
  const dSdNoiseAbs = abs(s.dVarianceDNoise);
  const gA = mulv(lin.tfil(abs(x), abs(gy)), meanMask);
  const gG = mulv(lin.tfil(x2, abs(h)), varMask);
  const kT = 2 * (lin.kTheta + 2) * U;
  const gGErr = addv(mulv(lin.tfil(x2, hErr), varMask), scalev(gG, kT));
  const dRel = tol.varianceRel.map((r) => r + 8 * U);
  const gThetaTol = theta.map(
    (_, i) =>
      kT * gA[i]! +
      gGErr[i]! * dSdThetaAbs[i]! +
      gG[i]! * dSdThetaAbs[i]! * dRel[i]! +
      U * (gA[i]! + gG[i]! * dSdThetaAbs[i]!) +
      TINY,
  );
  const index = broadcastIndex(c.w.noise.shape, c.w.theta.shape)!;
  const gNoiseTol = new Array<number>(c.w.noise.data.length).fill(TINY);
  const covered = new Array<number>(c.w.noise.data.length).fill(0);
  const coveredAbs = new Array<number>(c.w.noise.data.length).fill(0);
  theta.forEach((_, i) => {
    const j = index[i]!;
    gNoiseTol[j]! += gGErr[i]! * dSdNoiseAbs[i]! + gG[i]! * dSdNoiseAbs[i]! * dRel[i]!;
    covered[j]! += 1;
    coveredAbs[j]! += gG[i]! * dSdNoiseAbs[i]!;
  });
  const gNoise = gNoiseTol.map((t, j) => t + 2 * covered[j]! * U * coveredAbs[j]!);
  const biasAbs = new Array<number>(outChannels).fill(0);
  gy.forEach((g, o) => (biasAbs[o % outChannels]! += Math.abs(g)));
  const gBias = biasAbs.map((v) => 2 * (lin.kTheta + 1) * U * v + TINY);
  return {
    nearEdge: tol.nearEdge,
    mean: meanTol,
    variance: varTol,
    output: outTol,
    eval: evalTol,
    gx: gxTol,
    gTheta: gThetaTol,
    gNoise,
    gBias,
  };
}

/** A dense case: batch 1..4, in 1..5, out 1..4, every profile, optional extra cotangents. */
export function denseCaseWith(
  minSize: number,
  profiles: fc.Arbitrary<Profile> = profileArb,
): fc.Arbitrary<LayerCase> {
  return fc
    .record({
      profile: profiles,
      batch: fc.integer({ min: minSize, max: 4 }),
      inSize: fc.integer({ min: minSize, max: 5 }),
      outSize: fc.integer({ min: minSize, max: 4 }),
      trainClip: fc.option(fc.boolean(), { nil: undefined }),
      extras: fc.boolean(),
    })
    .chain((d) => {
      const out = [d.batch, d.outSize];
      return fc.record({
        w: weightsFor(d.profile, 'dense', [d.inSize, d.outSize]),
        x: tensorOf([d.batch, d.inSize], float(-2, 2)),
        bias: tensorOf([d.outSize], float(-1, 1)),
        eps: tensorOf(out, float(-3, 3)),
        gy: tensorOf(out, float(-1, 1)),
        gMean: d.extras ? tensorOf(out, float(-1, 1)) : fc.constant(undefined),
        gVariance: d.extras ? tensorOf(out, float(-1, 1)) : fc.constant(undefined),
        trainClip: fc.constant(d.trainClip),
        stride: fc.constant(1),
        padding: fc.constant('valid' as const),
      });
    });
}
export const denseCase = denseCaseWith(1);

/** A conv2d case: small shapes, every stride 1..3, both paddings, every profile. */
export function convCaseWith(
  minSize: number,
  profiles: fc.Arbitrary<Profile> = profileArb,
): fc.Arbitrary<LayerCase> {
  return fc
    .record({
      profile: profiles,
      n: fc.integer({ min: minSize, max: 2 }),
      h: fc.integer({ min: minSize, max: 6 }),
      wd: fc.integer({ min: minSize, max: 6 }),
      cin: fc.integer({ min: minSize, max: 3 }),
      kh: fc.integer({ min: 1, max: 3 }),
      kw: fc.integer({ min: 1, max: 3 }),
      cout: fc.integer({ min: minSize, max: 3 }),
      sh: fc.integer({ min: 1, max: 3 }),
      sw: fc.integer({ min: 1, max: 3 }),
      padding: fc.constantFrom('valid' as const, 'same' as const),
      trainClip: fc.option(fc.boolean(), { nil: undefined }),
      extras: fc.boolean(),
    })
    .chain((d) => {
      // 'valid' needs the image at least as large as the kernel.
      const h = d.padding === 'valid' ? Math.max(d.h, d.kh) : d.h;
      const wd = d.padding === 'valid' ? Math.max(d.wd, d.kw) : d.wd;
      const g = conv2dGeometry([d.n, h, wd, d.cin], [d.kh, d.kw, d.cin, d.cout], {
        stride: [d.sh, d.sw],
        padding: d.padding,
      });
      const out = [g.batch, g.outHeight, g.outWidth, g.outChannels];
      return fc.record({
        w: weightsFor(d.profile, 'conv2d', [d.kh, d.kw, d.cin, d.cout]),
        x: tensorOf([d.n, h, wd, d.cin], float(-2, 2)),
        bias: tensorOf([d.cout], float(-1, 1)),
        eps: tensorOf(out, float(-3, 3)),
        gy: tensorOf(out, float(-1, 1)),
        gMean: d.extras ? tensorOf(out, float(-1, 1)) : fc.constant(undefined),
        gVariance: d.extras ? tensorOf(out, float(-1, 1)) : fc.constant(undefined),
        trainClip: fc.constant(d.trainClip),
        stride: fc.constant<[number, number]>([d.sh, d.sw]),
        padding: fc.constant(d.padding),
      });
    });
}
export const convCase = convCaseWith(1);
