/**
 * spec/fast.md: the float32 TensorFlow.js implementation agrees with the
 * float64 reference within the tolerance model of spec/fast.md#tolerance, on
 * every backend that loads here; plus properties of the fast implementation
 * on its own (the clip holds, KL -> 0 as alpha grows, the eval forward
 * ignores pruned weights, gradients are finite at theta = 0 and at the clip
 * bounds, no tensor leaks).
 *
 * Every generated input is a float32 value, so both implementations see the
 * same numbers and the tolerances bound arithmetic error only. Set
 * VDSPEC_FAST_REPORT=1 to print the largest |fast - ref| / tolerance per
 * operation (the table in spec/fast.md comes from that output).
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../../src/constants.js';
import { availableBackends, initBackend } from '../../src/fast/backend.js';
import {
  fastConv2dEval,
  fastConv2dEvalVjp,
  fastConv2dTrain,
  fastConv2dTrainVjp,
  fastDenseEval,
  fastDenseEvalVjp,
  fastDenseTrain,
  fastDenseTrainVjp,
  fastKeepMask,
  fastKlPerWeight,
  fastLayerKl,
  fastLayerKlVjp,
  fastLogAlpha,
  fastWeightVariance,
  type FastConv2dOptions,
  type FastConv2dPath,
} from '../../src/fast/index.js';
import { PROFILE_NAMES, PROFILES, type LayerKind, type Profile } from '../../src/profiles.js';
import {
  conv2d as refConv,
  conv2dBackpropFilter as refConvFilterT,
  conv2dBackpropInput as refConvInputT,
  conv2dEval,
  conv2dEvalVjp,
  conv2dGeometry,
  conv2dTrain,
  conv2dTrainVjp,
} from '../../src/reference/conv2d.js';
import { denseEval, denseEvalVjp, denseTrain, denseTrainVjp } from '../../src/reference/dense.js';
import { klApproxDerivative, klPerWeight } from '../../src/reference/kl.js';
import {
  broadcastIndex,
  weightStatistics,
  type WeightStatistics,
} from '../../src/reference/logAlpha.js';
import { layerKl, layerKlVjp } from '../../src/reference/objective.js';
import { sizeOf, type Tensor } from '../../src/tensor.js';

/** float32 unit roundoff (spec/fast.md#tolerance). */
const U = 2 ** -24;
/** Absolute floor for values that underflow float32's normal range (smallest normal ~1.2e-38). */
const TINY = 1e-37;

const BACKENDS = await availableBackends();

/** VDSPEC_FAST_RUNS=k multiplies every numRuns by k (a longer soak run; default 1). */
function runs(n: number): number {
  return n * Math.max(1, Number(process.env.VDSPEC_FAST_RUNS ?? 1));
}
const LAYERS: readonly LayerKind[] = ['dense', 'conv2d'];

function convOptions(
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
const worst = new Map<string, number>();

function record(key: string, ratio: number): void {
  worst.set(key, Math.max(worst.get(key) ?? 0, ratio));
}

/**
 * Assert |fast_i - ref_i| <= tol_i for every i (an infinite ref must be matched
 * exactly), naming the op and the first failing index.
 */
function expectWithin(
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
function noLeak<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const result = fn();
  expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
  return result;
}

afterAll(() => {
  if (process.env.VDSPEC_FAST_REPORT) {
    const rows = [...worst.entries()].sort(([a], [b]) => a.localeCompare(b));
    console.log(rows.map(([k, v]) => `${k.padEnd(40)} ${v.toFixed(4)}`).join('\n'));
  }
});

// ---------------------------------------------------------------------------
// Generators: float32-exact inputs
// ---------------------------------------------------------------------------

const f32 = Math.fround;

/**
 * A float32 in [min, max], with magnitudes below 1e-6 replaced by 0. The
 * tolerance model does not cover underflow (spec/fast.md#tolerance): with
 * every input 0 or at least 1e-6 in magnitude, no product or quotient formed
 * by the operations under test comes near float32's smallest normal (~1.2e-38).
 */
function float(min: number, max: number): fc.Arbitrary<number> {
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
const thetaValue: fc.Arbitrary<number> = fc.oneof(
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
function noiseValue(profile: Profile): fc.Arbitrary<number> {
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

function values(arb: fc.Arbitrary<number>, n: number): fc.Arbitrary<number[]> {
  return fc.array(arb, { minLength: n, maxLength: n });
}

function tensorOf(shape: readonly number[], arb: fc.Arbitrary<number>): fc.Arbitrary<Tensor> {
  return values(arb, sizeOf(shape)).map((data) => ({ shape: [...shape], data }));
}

/** The noise shape: theta's, or for a learned log_alpha also a scalar or one per input unit. */
function noiseShape(
  profile: Profile,
  layer: LayerKind,
  thetaShape: readonly number[],
): fc.Arbitrary<number[]> {
  if (profile[layer].logAlpha.form !== 'learned') return fc.constant([...thetaShape]);
  const perInput = thetaShape.map((d, i) => (i === thetaShape.length - 1 ? 1 : d));
  return fc.constantFrom([...thetaShape], [], perInput);
}

interface Weights {
  readonly profile: Profile;
  readonly layer: LayerKind;
  readonly theta: Tensor;
  readonly noise: Tensor;
}

function weightsFor(
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

const profileArb: fc.Arbitrary<Profile> = fc.constantFrom(...PROFILE_NAMES).map((n) => PROFILES[n]);

const anyWeights: fc.Arbitrary<Weights> = fc
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

interface WeightTolerance {
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
function weightTolerance(w: Weights): WeightTolerance {
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

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/**
 * Evaluation error of the per-weight KL at a float32 log_alpha (spec/fast.md#tolerance):
 * 8u times the sum of the magnitudes of the terms the formula adds, where the
 * sigmoid term also carries the rounding of z = k2 + k3 la through its slope
 * (k1 s(-z) s(z) |dz|, |dz| <= 2u (k3 |la| + k2)).
 */
function klEvalTolerance(la: number, profile: Profile): number {
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
function klSlopeTolerance(la: number, profile: Profile): number {
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
const KL_CURVATURE_BOUND = 1;

// ---------------------------------------------------------------------------
// Layer tolerances: one model for dense and conv2d. A dense layer is the
// 1x1 convolution of x [batch, 1, 1, in] with theta [1, 1, in, out], so the
// float64 magnitude sums below (|x| conv |theta| and the two transposes)
// come from the reference's plain convolution helpers for both.
// ---------------------------------------------------------------------------

interface LayerCase {
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

interface LinearGeometry {
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

function linearGeometry(c: LayerCase): LinearGeometry {
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

const abs = (v: readonly number[]) => v.map(Math.abs);
const mulv = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v * b[i]!);
const addv = (...vs: (readonly number[])[]) =>
  vs[0]!.map((_, i) => vs.reduce((s, v) => s + v[i]!, 0));
const scalev = (a: readonly number[], k: number) => a.map((v) => v * k);

interface LayerTolerance {
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
function layerTolerance(c: LayerCase): LayerTolerance {
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
function denseCaseWith(minSize: number): fc.Arbitrary<LayerCase> {
  return fc
    .record({
      profile: profileArb,
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
const denseCase = denseCaseWith(1);

/** A conv2d case: small shapes, every stride 1..3, both paddings, every profile. */
function convCaseWith(minSize: number): fc.Arbitrary<LayerCase> {
  return fc
    .record({
      profile: profileArb,
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
const convCase = convCaseWith(1);

// ---------------------------------------------------------------------------
// Per-weight operations
// ---------------------------------------------------------------------------

describe.each(BACKENDS)('fast on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  it('spec/log-alpha.md#log-alpha: fast log_alpha (clipped) agrees within u (3 + |ls2| + 3|L|) * 4; exactly for a learned log_alpha', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastLogAlpha(w.theta, w.noise, w.profile, w.layer));
        expect(fast.shape).toEqual(w.theta.shape);
        expectWithin(`${backend} log_alpha`, fast.data, tol.stats.logAlpha, tol.logAlpha);
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/log-alpha.md#mask: fast keep mask equals the reference except within delta = tol(log_alpha) of the threshold', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastKeepMask(w.theta, w.noise, w.profile, w.layer));
        const prune = w.profile.prune;
        fast.data.forEach((m, i) => {
          if (m === tol.stats.mask[i]) return;
          // Only allowed where the compared log_alpha is within its tolerance of the threshold.
          const compared =
            prune?.from === 'unclipped' ? tol.stats.logAlphaRaw[i]! : tol.stats.logAlpha[i]!;
          const near = prune !== null && Math.abs(compared - prune.threshold) <= tol.logAlpha[i]!;
          expect(
            near,
            `mask[${i}]: fast ${m}, reference ${tol.stats.mask[i]}, log_alpha ${compared}`,
          ).toBe(true);
        });
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/log-alpha.md#variance: fast per-weight variance agrees within the relative bound 2 (tol(log_alpha) + 4u)', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastWeightVariance(w.theta, w.noise, w.profile, w.layer));
        const ref = tol.stats.variance;
        expectWithin(
          `${backend} weight variance`,
          fast.data,
          ref,
          ref.map((v, i) => tol.varianceRel[i]! * v + TINY),
        );
      }),
      { numRuns: runs(180) },
    );
  });

  // -------------------------------------------------------------------------
  // KL
  // -------------------------------------------------------------------------

  it('spec/kl.md#kl.sum: fast KL per weight agrees at the same float32 log_alpha within 8u * (sum of |terms|)', () => {
    const arb = fc.record({
      profile: profileArb,
      la: fc.array(float(-12, 12), { minLength: 1, maxLength: 24 }),
    });
    fc.assert(
      fc.property(arb, ({ profile, la }) => {
        // The cubic is only used where VD's clip holds it (la <= 0); above, it has no meaning.
        const input = profile.kl.approximation === 'vd_cubic' ? la.map((v) => Math.min(v, 0)) : la;
        const t: Tensor = { shape: [input.length], data: input };
        const fast = noLeak(() => fastKlPerWeight(t, profile));
        const ref = klPerWeight(t, profile);
        expectWithin(
          `${backend} kl per weight`,
          fast.data,
          ref.data,
          input.map((v) => klEvalTolerance(v, profile)),
        );
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/objective.md#kl.layer: fast layer KL agrees within sum_i tol_i + n u sum_i |KL_i|, and its VJP within the slope model', () => {
    fc.assert(
      fc.property(anyWeights, float(-2, 2), (w, g) => {
        const tol = weightTolerance(w);
        fc.pre(!tol.nearEdge);
        const inputs = { theta: w.theta, noise: w.noise };
        const fast = noLeak(() => fastLayerKl(inputs, w.profile, w.layer));
        const ref = layerKl(inputs, w.profile, w.layer);
        const la = tol.stats.logAlpha;
        const perWeight = la.map(
          (v, i) =>
            Math.abs(klApproxDerivative(v, w.profile)) * tol.logAlpha[i]! +
            klEvalTolerance(v, w.profile),
        );
        const n = la.length;
        const sumAbs = klPerWeight({ shape: [n], data: la }, w.profile).data.reduce(
          (s, v) => s + Math.abs(v),
          0,
        );
        const sumTol = perWeight.reduce((s, v) => s + v, 0) + n * U * sumAbs;
        expectWithin(`${backend} layer kl`, [fast], [ref], [sumTol]);

        // VJP: g KL'(la) dla/dparam; KL' has the slope tolerance plus curvature * tol(la),
        // dla/dtheta carries ~4u relative (log and square gradients), summed per noise entry.
        const fastGrad = noLeak(() => fastLayerKlVjp(inputs, g, w.profile, w.layer));
        const refGrad = layerKlVjp(inputs, g, w.profile, w.layer);
        const slopeTol = la.map(
          (v, i) =>
            klSlopeTolerance(v, w.profile) +
            KL_CURVATURE_BOUND * tol.logAlpha[i]! +
            8 * U * Math.abs(klApproxDerivative(v, w.profile)),
        );
        expectWithin(
          `${backend} layer kl vjp theta`,
          fastGrad.theta.data,
          refGrad.theta.data,
          slopeTol.map((s, i) => Math.abs(g) * Math.abs(tol.stats.dLogAlphaDTheta[i]!) * s + TINY),
        );
        // Noise: per-weight terms summed onto the entry that covers them (VD broadcast),
        // plus the summation error (entries covered) * u * sum |terms|.
        const index = broadcastIndex(w.noise.shape, w.theta.shape)!;
        const m = refGrad.noise.data.length;
        const termTol = new Array<number>(m).fill(0);
        const termAbs = new Array<number>(m).fill(0);
        const covered = new Array<number>(m).fill(0);
        la.forEach((v, i) => {
          const j = index[i]!;
          const d = Math.abs(g * tol.stats.dLogAlphaDNoise[i]!);
          termTol[j]! += d * slopeTol[i]!;
          termAbs[j]! += d * Math.abs(klApproxDerivative(v, w.profile));
          covered[j]! += 1;
        });
        expectWithin(
          `${backend} layer kl vjp noise`,
          fastGrad.noise.data,
          refGrad.noise.data,
          termTol.map((t, j) => t + covered[j]! * U * termAbs[j]! + TINY),
        );
      }),
      { numRuns: runs(120) },
    );
  });
  // -------------------------------------------------------------------------
  // dense
  // -------------------------------------------------------------------------

  it('spec/dense.md: fast dense train and eval forwards agree with the reference within the layer model', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance(c);
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const options = c.trainClip === undefined ? undefined : { trainClip: c.trainClip };
        const fast = noLeak(() => fastDenseTrain(inputs, c.w.profile, options));
        const ref = denseTrain(inputs, c.w.profile, options);
        expectWithin(`${backend} dense.train mean`, fast.mean.data, ref.mean.data, tol.mean);
        expectWithin(
          `${backend} dense.train variance`,
          fast.variance.data,
          ref.variance.data,
          tol.variance,
        );
        expectWithin(
          `${backend} dense.train output`,
          fast.output.data,
          ref.output.data,
          tol.output,
        );
        const fastEval = noLeak(() => fastDenseEval(inputs, c.w.profile));
        expectWithin(
          `${backend} dense.eval`,
          fastEval.data,
          denseEval(inputs, c.w.profile).data,
          tol.eval,
        );
      }),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#dense-vjps: fast dense train VJP (output, mean and variance cotangents) agrees within the layer model', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance(c);
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const options = c.trainClip === undefined ? undefined : { trainClip: c.trainClip };
        const cot = {
          output: c.gy,
          ...(c.gMean === undefined ? {} : { mean: c.gMean }),
          ...(c.gVariance === undefined ? {} : { variance: c.gVariance }),
        };
        const fast = noLeak(() => fastDenseTrainVjp(inputs, cot, c.w.profile, options));
        const ref = denseTrainVjp(inputs, cot, c.w.profile, options);
        expectWithin(`${backend} dense.train vjp x`, fast.x.data, ref.x.data, tol.gx);
        expectWithin(
          `${backend} dense.train vjp theta`,
          fast.theta.data,
          ref.theta.data,
          tol.gTheta,
        );
        expectWithin(
          `${backend} dense.train vjp noise`,
          fast.noise.data,
          ref.noise.data,
          tol.gNoise,
        );
        expectWithin(`${backend} dense.train vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
      }),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#dense-vjps: fast dense eval VJP agrees within the layer model (noise gradient exactly 0)', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance({
          ...c,
          trainClip: true,
          gMean: undefined,
          gVariance: undefined,
          eps: { ...c.eps, data: c.eps.data.map(() => 0) },
        });
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
        const fast = noLeak(() => fastDenseEvalVjp(inputs, c.gy, c.w.profile));
        const ref = denseEvalVjp(inputs, c.gy, c.w.profile);
        expectWithin(`${backend} dense.eval vjp x`, fast.x.data, ref.x.data, tol.gx);
        expectWithin(
          `${backend} dense.eval vjp theta`,
          fast.theta.data,
          ref.theta.data,
          tol.gTheta,
        );
        expect(fast.noise.data.every((v) => v === 0)).toBe(true);
        expectWithin(`${backend} dense.eval vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
      }),
      { numRuns: runs(90) },
    );
  });

  // -------------------------------------------------------------------------
  // conv2d
  // -------------------------------------------------------------------------

  // Forwards run on every path everywhere; a filter gradient on 'native' needs a kernel wasm lacks.
  const forwardPaths: FastConv2dPath[] = ['auto', 'native', 'patches'];
  const vjpPaths: FastConv2dPath[] =
    backend === 'wasm' ? ['auto', 'patches'] : ['auto', 'native', 'patches'];

  it.each(forwardPaths)(
    'spec/conv2d.md: fast conv2d train forward (path %s) agrees with the reference within the layer model',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          const tol = layerTolerance(c);
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
          const options = convOptions(c, path);
          const fast = noLeak(() => fastConv2dTrain(inputs, c.w.profile, options));
          const ref = conv2dTrain(inputs, c.w.profile, convOptions(c));
          expect(fast.output.shape).toEqual(ref.output.shape);
          expectWithin(`${backend} conv2d.train mean`, fast.mean.data, ref.mean.data, tol.mean);
          expectWithin(
            `${backend} conv2d.train variance`,
            fast.variance.data,
            ref.variance.data,
            tol.variance,
          );
          expectWithin(
            `${backend} conv2d.train output`,
            fast.output.data,
            ref.output.data,
            tol.output,
          );
          const fastEval = noLeak(() => fastConv2dEval(inputs, c.w.profile, options));
          const refEval = conv2dEval(inputs, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.eval`, fastEval.data, refEval.data, tol.eval);
        }),
        { numRuns: runs(90) },
      );
    },
  );

  it.each(vjpPaths)(
    'spec/conv2d.md#vjp-train: fast conv2d train VJP (path %s) agrees with the reference within the layer model',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          const tol = layerTolerance(c);
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
          const cot = {
            output: c.gy,
            ...(c.gMean === undefined ? {} : { mean: c.gMean }),
            ...(c.gVariance === undefined ? {} : { variance: c.gVariance }),
          };
          const fast = noLeak(() =>
            fastConv2dTrainVjp(inputs, cot, c.w.profile, convOptions(c, path)),
          );
          const ref = conv2dTrainVjp(inputs, cot, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.train vjp x`, fast.x.data, ref.x.data, tol.gx);
          expectWithin(
            `${backend} conv2d.train vjp theta`,
            fast.theta.data,
            ref.theta.data,
            tol.gTheta,
          );
          expectWithin(
            `${backend} conv2d.train vjp noise`,
            fast.noise.data,
            ref.noise.data,
            tol.gNoise,
          );
          expectWithin(
            `${backend} conv2d.train vjp bias`,
            fast.bias.data,
            ref.bias.data,
            tol.gBias,
          );
        }),
        { numRuns: runs(90) },
      );
    },
  );
  it.each(vjpPaths)(
    'spec/conv2d.md: fast conv2d eval VJP (path %s) agrees with the reference (noise gradient exactly 0)',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          // The eval VJP is the train VJP's mean path with the mask on: the same bounds, eps = 0.
          const tol = layerTolerance({
            ...c,
            trainClip: true,
            eps: { ...c.eps, data: c.eps.data.map(() => 0) },
          });
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
          // The fast eval VJP also takes the cotangent as {output}; the reference takes it bare.
          const fast = noLeak(() =>
            fastConv2dEvalVjp(inputs, { output: c.gy }, c.w.profile, convOptions(c, path)),
          );
          const ref = conv2dEvalVjp(inputs, c.gy, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.eval vjp x`, fast.x.data, ref.x.data, tol.gx);
          expectWithin(
            `${backend} conv2d.eval vjp theta`,
            fast.theta.data,
            ref.theta.data,
            tol.gTheta,
          );
          expect(fast.noise.data.every((v) => v === 0)).toBe(true);
          expectWithin(`${backend} conv2d.eval vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
        }),
        { numRuns: runs(60) },
      );
    },
  );

  it('spec/dense.md#degenerate-sizes, spec/conv2d.md#edge-cases: empty batch, in, out, channels and images agree with the reference (an empty sum is 0)', () => {
    const empty = fc.oneof(
      denseCaseWith(0).filter(
        (c) => c.x.data.length === 0 || c.bias.data.length === 0 || c.w.theta.data.length === 0,
      ),
      convCaseWith(0).filter((c) => c.x.data.length === 0 || c.bias.data.length === 0),
    );
    fc.assert(
      fc.property(empty, (c) => {
        const tol = layerTolerance(c);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const dense = c.w.layer === 'dense';
        const options = convOptions(c);
        const opts = dense
          ? c.trainClip === undefined
            ? undefined
            : { trainClip: c.trainClip }
          : options;
        const fast = noLeak(() =>
          dense
            ? fastDenseTrain(inputs, c.w.profile, opts)
            : fastConv2dTrain(inputs, c.w.profile, opts),
        );
        const ref = dense
          ? denseTrain(inputs, c.w.profile, opts)
          : conv2dTrain(inputs, c.w.profile, opts);
        expect(fast.output.shape).toEqual(ref.output.shape);
        expectWithin(
          `${backend} empty train output`,
          fast.output.data,
          ref.output.data,
          tol.output,
        );
        expectWithin(`${backend} empty train mean`, fast.mean.data, ref.mean.data, tol.mean);
        const cot = { output: c.gy };
        const gf = noLeak(() =>
          dense
            ? fastDenseTrainVjp(inputs, cot, c.w.profile, opts)
            : fastConv2dTrainVjp(inputs, cot, c.w.profile, opts),
        );
        const gr = dense
          ? denseTrainVjp(inputs, cot, c.w.profile, opts)
          : conv2dTrainVjp(inputs, cot, c.w.profile, opts);
        for (const k of ['x', 'theta', 'noise', 'bias'] as const)
          expect(gf[k].shape).toEqual(gr[k].shape);
        expectWithin(`${backend} empty vjp x`, gf.x.data, gr.x.data, tol.gx);
        expectWithin(`${backend} empty vjp theta`, gf.theta.data, gr.theta.data, tol.gTheta);
        expectWithin(`${backend} empty vjp noise`, gf.noise.data, gr.noise.data, tol.gNoise);
        expectWithin(`${backend} empty vjp bias`, gf.bias.data, gr.bias.data, tol.gBias);
        const ev = noLeak(() =>
          dense ? fastDenseEval(inputs, c.w.profile) : fastConv2dEval(inputs, c.w.profile, options),
        );
        const er = dense
          ? denseEval(inputs, c.w.profile)
          : conv2dEval(inputs, c.w.profile, options);
        expectWithin(`${backend} empty eval`, ev.data, er.data, tol.eval);
        if (c.w.theta.data.length === 0) {
          const kl = noLeak(() =>
            fastLayerKl({ theta: c.w.theta, noise: c.w.noise }, c.w.profile, c.w.layer),
          );
          expect(kl).toBe(0);
        }
      }),
      { numRuns: runs(90) },
    );
  });

  // -------------------------------------------------------------------------
  // Properties of the fast implementation on its own
  // -------------------------------------------------------------------------

  it('spec/log-alpha.md#clip: fast log_alpha stays within the clip for extreme inputs (theta 0, 1e-30, 1e30; noise up to 1e30), never NaN, and the KL gradient stays finite', () => {
    const extremeTheta = fc.oneof(
      fc.constantFrom(0, -0, 1e-30, -1e-30, 1e-20, 1e30, -1e30, 3e38).map(f32),
      thetaValue,
    );
    const extremeNoise = fc.oneof(
      fc.constantFrom(-1e30, -1e4, 0, 1e4, 1e30).map(f32),
      float(-100, 100),
    );
    const arb = fc
      .record({
        profile: profileArb,
        layer: fc.constantFrom(...LAYERS),
        n: fc.integer({ min: 1, max: 12 }),
      })
      .chain(({ profile, layer, n }) => {
        const shape = layer === 'dense' ? [n, 1] : [1, 1, n, 1];
        return fc.record({
          profile: fc.constant(profile),
          layer: fc.constant(layer),
          theta: tensorOf(shape, extremeTheta),
          noise: tensorOf(shape, extremeNoise),
        });
      });
    fc.assert(
      fc.property(arb, (w) => {
        const clip = w.profile[w.layer].logAlpha.clip;
        const la = noLeak(() => fastLogAlpha(w.theta, w.noise, w.profile, w.layer));
        for (const v of la.data) {
          expect(Number.isNaN(v)).toBe(false);
          if (clip?.min != null) expect(v).toBeGreaterThanOrEqual(clip.min);
          if (clip?.max != null) expect(v).toBeLessThanOrEqual(clip.max);
        }
        // The KL needs a finite log_alpha (VD's learned parameter is unbounded below).
        if (
          la.data.every(Number.isFinite) &&
          (clip?.min != null || la.data.every((v) => v > -80))
        ) {
          const g = noLeak(() =>
            fastLayerKlVjp({ theta: w.theta, noise: w.noise }, 1, w.profile, w.layer),
          );
          expect(g.theta.data.every(Number.isFinite), 'dKL/dtheta finite').toBe(true);
          expect(g.noise.data.every(Number.isFinite), 'dKL/dnoise finite').toBe(true);
        }
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/log-alpha.md#clip-gradient: at theta = 0 the KL gradient is exactly 0 in theta (and in the noise where log_alpha is +inf); at log_alpha exactly on a clip bound it passes (closed interval)', () => {
    fc.assert(
      fc.property(
        profileArb,
        fc.constantFrom(...LAYERS),
        fc.constantFrom(1, -1),
        float(-2, 2),
        (profile, layer, sign, g) => {
          const conventions = profile[layer].logAlpha;
          const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
          const bounds = [conventions.clip?.min, conventions.clip?.max].filter(
            (b): b is number => typeof b === 'number',
          );
          // theta = +-1: log(theta^2 + eps) and 2 log(|theta| + eps) are exactly 0 in float32 for every
          // profile's eps (1 + eps rounds to 1 below 6e-8), so log_alpha = noise * scale = the bound exactly.
          const thetaData = [0, ...bounds.map(() => sign)];
          const noiseData = [-3, ...bounds.map((b) => b / scale)];
          const shape = layer === 'dense' ? [thetaData.length, 1] : [1, 1, thetaData.length, 1];
          const theta = { shape, data: thetaData };
          const noise = { shape, data: noiseData };
          if (conventions.form === 'learned') return; // theta does not enter; the bound case is in the agreement test
          const la = fastLogAlpha(theta, noise, profile, layer);
          bounds.forEach((b, k) => expect(la.data[k + 1]).toBe(b));
          const grad = noLeak(() => fastLayerKlVjp({ theta, noise }, g, profile, layer));
          expect(
            grad.theta.data.every(Number.isFinite) && grad.noise.data.every(Number.isFinite),
          ).toBe(true);
          expect(grad.theta.data[0]).toBe(0);
          if (conventions.thetaEps === 0) expect(grad.noise.data[0]).toBe(0);
          bounds.forEach((b, k) => {
            const expected = g * klApproxDerivative(b, profile) * scale;
            // One KL-slope evaluation in float32 (klSlopeTolerance), scaled by |g| and the exact factor 2 or 1.
            expect(Math.abs(grad.noise.data[k + 1]! - expected)).toBeLessThanOrEqual(
              Math.abs(g) * scale * klSlopeTolerance(b, profile) +
                8 * U * Math.abs(expected) +
                TINY,
            );
          });
          // The dense training VJP is finite there too.
          if (layer === 'dense') {
            const n = thetaData.length;
            const inputs = {
              x: { shape: [2, n], data: Array.from({ length: 2 * n }, (_, i) => (i % 3) - 1) },
              theta,
              noise,
              bias: { shape: [1], data: [0.5] },
              eps: { shape: [2, 1], data: [0.7, -1.3] },
            };
            const v = noLeak(() =>
              fastDenseTrainVjp(inputs, { output: { shape: [2, 1], data: [1, -2] } }, profile),
            );
            for (const t of [v.x, v.theta, v.noise, v.bias])
              expect(t.data.every(Number.isFinite)).toBe(true);
          }
        },
      ),
      { numRuns: runs(120) },
    );
  });

  it('spec/kl.md#kl.svd: fast SVD KL tends to its limit as alpha grows: 0 <= KL - limit <= 0.5 e^-la + k1 e^-(k2 + k3 la), and it never increases', () => {
    const svd = PROFILE_NAMES.map((n) => PROFILES[n]).filter(
      (p) => p.kl.approximation === 'svd_sigmoid',
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...svd),
        fc.array(float(0, 80), { minLength: 2, maxLength: 16 }),
        (profile, las) => {
          const sorted = [...las].sort((a, b) => a - b);
          const kl = noLeak(() =>
            fastKlPerWeight({ shape: [sorted.length], data: sorted }, profile),
          ).data;
          // KL -> 0 with C = -k1, -> -k1 with C omitted.
          const limit = profile.kl.constant === 'minus_k1' ? 0 : -SVD_KL_K1;
          // softplus(-la) <= e^-la and sigmoid(-z) <= e^-z; slack: the float32 evaluation error.
          sorted.forEach((la, i) => {
            const bound = 0.5 * Math.exp(-la) + SVD_KL_K1 * Math.exp(-(SVD_KL_K2 + SVD_KL_K3 * la));
            const slack = klEvalTolerance(la, profile) + TINY;
            expect(kl[i]! - limit).toBeGreaterThanOrEqual(-slack);
            expect(kl[i]! - limit).toBeLessThanOrEqual(bound * (1 + 16 * U) + slack);
            if (i > 0)
              expect(kl[i]!).toBeLessThanOrEqual(
                kl[i - 1]! + slack + klEvalTolerance(sorted[i - 1]!, profile),
              );
          });
          // At la = 80 the bound is below 1e-34: the value is the limit itself in float32.
          const far = fastKlPerWeight({ shape: [1], data: [80] }, profile).data[0]!;
          expect(Math.abs(far - limit)).toBeLessThanOrEqual(8 * U * SVD_KL_K1 + 1e-30);
        },
      ),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#eval, spec/conv2d.md: the fast eval forward ignores the values of pruned weights (bit for bit)', () => {
    const prunes = PROFILE_NAMES.map((n) => PROFILES[n]).filter((p) => p.prune !== null);
    const arb = fc.oneof(
      denseCase.filter((c) => c.w.profile.prune !== null),
      convCase.filter((c) => c.w.profile.prune !== null),
    );
    fc.assert(
      fc.property(arb, fc.array(thetaValue, { minLength: 64, maxLength: 64 }), (c, fresh) => {
        expect(prunes).toContain(c.w.profile);
        const { profile, layer } = c.w;
        const mask = fastKeepMask(c.w.theta, c.w.noise, profile, layer).data;
        fc.pre(mask.some((m) => m === 0));
        // Replace each pruned weight by another pruned one: a new theta, and a noise value that
        // puts log_alpha at the clip max (or 20 without one), far above the threshold.
        const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
        const { thetaEps, form } = profile[layer].logAlpha;
        const top = profile[layer].logAlpha.clip?.max ?? 20;
        const theta = c.w.theta.data.map((t, i) =>
          mask[i] === 0 ? fresh[i % fresh.length]! || 0.5 : t,
        );
        const noise = c.w.noise.data.map((v, i) => {
          if (mask[i] === 0) {
            const t = theta[i]!;
            const L =
              form === 'log_theta2'
                ? Math.log(t * t + thetaEps)
                : 2 * Math.log(Math.abs(t) + thetaEps);
            return f32((top + 1 + L) / scale);
          }
          return v;
        });
        const moved = {
          ...c.w,
          theta: { ...c.w.theta, data: theta },
          noise: { ...c.w.noise, data: noise },
        };
        expect(fastKeepMask(moved.theta, moved.noise, profile, layer).data).toEqual(mask);
        const before = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
        const after = { x: c.x, theta: moved.theta, noise: moved.noise, bias: c.bias };
        const run = (i: typeof before) =>
          layer === 'dense'
            ? fastDenseEval(i, profile).data
            : fastConv2dEval(i, profile, convOptions(c)).data;
        expect(noLeak(() => run(after))).toEqual(run(before));
      }),
      { numRuns: runs(90) },
    );
  });

  it('spec/fast.md#backends: an error inside a fast op (native conv filter gradient on wasm) or a rejected input leaks no tensor', () => {
    const x = { shape: [1, 3, 3, 1], data: Array.from({ length: 9 }, (_, i) => i / 9) };
    const theta = { shape: [2, 2, 1, 1], data: [0.5, -0.5, 0.25, 1] };
    const inputs = {
      x,
      theta,
      noise: { shape: [2, 2, 1, 1], data: [-6, -6, -6, -6] },
      bias: { shape: [1], data: [0] },
    };
    const eps = { shape: [1, 2, 2, 1], data: [0, 1, -1, 0.5] };
    const before = tf.memory().numTensors;
    if (backend === 'wasm') {
      expect(() =>
        fastConv2dTrainVjp({ ...inputs, eps }, { output: eps }, 'molchanov2017', {
          path: 'native',
        }),
      ).toThrow(expect.objectContaining({ code: 'unsupported', argument: 'options.path' }));
    }
    expect(() =>
      fastConv2dTrain({ ...inputs, eps: { shape: [1, 3, 3, 1], data: x.data } }, 'molchanov2017'),
    ).toThrow(expect.objectContaining({ code: 'shape_mismatch', argument: 'eps' }));
    expect(tf.memory().numTensors).toBe(before);
  });
});
