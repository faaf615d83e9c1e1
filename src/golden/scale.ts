/**
 * Tolerances of the golden files (spec/golden.md#tolerance).
 *
 * A port's value `a` for an expected `e` passes when
 *
 *     |a - e| <= abs + rel * |e| + scaled * s
 *
 * with `s` the element of the case's `scale` tensor for that output (0 when
 * there is none). `s` is an error bound in units of the port's unit roundoff
 * `u`: the tolerance model of spec/fast.md evaluated in float64 at the
 * case's inputs with `u = 1`. Every term of that model is linear in `u` (a
 * first-order rounding analysis), so one `s` serves both dtypes: `scaled`
 * is `u` itself for float32 (the reference is 5e8 times more accurate, so
 * its own error does not count) and `2u` for float64 (the port's float64
 * error and the reference's are of the same size and add up).
 *
 * The magnitude sums the model needs (|x| (*) |theta| and its transposes)
 * come from the reference's plain convolution helpers, the per-weight
 * values from `weightStatistics`: both documented reference API.
 */
import {
  KL_WARMUP_END_EPOCH,
  KL_WARMUP_START_EPOCH,
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../constants.js';
import type { LayerKind, Profile } from '../profiles.js';
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dGeometry,
  type Conv2dPaddingMode,
  type Conv2dStride,
} from '../reference/conv2d.js';
import { EXACT_KL_ASYMPTOTIC_BELOW, klApprox, klApproxDerivative } from '../reference/kl.js';
import { broadcastIndex, weightStatistics, type WeightStatistics } from '../reference/logAlpha.js';
import type { Tensor } from '../tensor.js';

export interface Tolerance {
  readonly abs: number;
  readonly rel: number;
  readonly scaled: number;
}

/**
 * The tolerance of every golden file (spec/golden.md#tolerance):
 * - `abs`: a floor a few times the dtype's smallest normal (2^-1022 = 2.2e-308,
 *   2^-126 = 1.2e-38), where the relative rounding model stops holding
 *   (float32: spec/fast.md's 1e-37);
 * - `rel`: four units in the last place of the result (the final rounding and
 *   a library function's ulps, for results no model term covers);
 * - `scaled`: the unit of `s`, above.
 */
export const GOLDEN_TOLERANCE: { readonly float64: Tolerance; readonly float32: Tolerance } = {
  float64: { abs: 1e-307, rel: 2 ** -51, scaled: 2 ** -52 },
  float32: { abs: 1e-37, rel: 2 ** -22, scaled: 2 ** -24 },
};

/**
 * Round a scale element up to two significant digits: a tolerance needs no
 * more, and the files get shorter. Never below the model's value.
 */
export function roundScaleUp(value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`a scale must be finite and >= 0, got ${value}`);
  }
  if (value === 0) return 0;
  const [mantissa, exponent] = value.toExponential(1).split('e') as [string, string];
  let rounded = Number(`${mantissa}e${exponent}`);
  if (rounded < value) rounded = Number(`${(Number(mantissa) + 0.1).toFixed(1)}e${exponent}`);
  return rounded;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const absAll = (v: readonly number[]) => v.map(Math.abs);
const times = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v * b[i]!);
const plus = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v + b[i]!);
const scaleBy = (a: readonly number[], k: number) => a.map((v) => v * k);

// ---------------------------------------------------------------------------
// Per weight (spec/fast.md#per-weight)

/**
 * The largest unit roundoff a scale is used with (float32's 2^-24): "beyond
 * the clip by more than the error bound" must hold for the coarsest dtype.
 */
const UNIT_ROUNDOFF_BOUND = 2 ** -24;

export interface WeightModel {
  readonly stats: WeightStatistics;
  /** The bound on the error of the clipped log_alpha, per weight. */
  readonly logAlpha: number[];
  /** The relative bound on the per-weight variance. */
  readonly varianceRel: number[];
}

/**
 * log_alpha: |d la| <= 4 (3 + |log_sigma2| + 3 |L|), L = log(theta^2 + thetaEps)
 * or 2 log(|theta| + thetaEps); 0 for a learned log_alpha (the parameter
 * itself), where L is infinite (theta = 0 without eps: the clip bound,
 * exact) and where the raw log_alpha lies beyond a clip bound by more than
 * its own error bound in float32 (both sides return the bound, exactly).
 * Variance: 2 (|d la| + 4) relative for `alpha_theta2`, 2 * 4 for `sigma2`.
 */
export function weightModel(
  theta: Tensor,
  noise: Tensor,
  profile: Profile,
  layer: LayerKind,
): WeightModel {
  const conventions = profile[layer];
  const { form, thetaEps } = conventions.logAlpha;
  const stats = weightStatistics(theta, noise, profile, layer);
  const index = broadcastIndex(noise.shape, theta.shape)!;
  const noiseScale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const logAlpha = theta.data.map((t, i) => {
    if (form === 'learned') return 0;
    const logSigma2 = noiseScale * noise.data[index[i]!]!;
    const L =
      form === 'log_theta2' ? Math.log(t * t + thetaEps) : 2 * Math.log(Math.abs(t) + thetaEps);
    if (!Number.isFinite(L)) return 0;
    const bound = 4 * (3 + Math.abs(logSigma2) + 3 * Math.abs(L));
    // Clipped with room to spare: both sides land on the (exact) bound.
    const raw = stats.logAlphaRaw[i]!;
    return Math.abs(raw - stats.logAlpha[i]!) > bound * UNIT_ROUNDOFF_BOUND ? 0 : bound;
  });
  const varianceRel = logAlpha.map((la) => 2 * ((conventions.variance === 'sigma2' ? 0 : la) + 4));
  return { stats, logAlpha, varianceRel };
}

// ---------------------------------------------------------------------------
// KL per weight (spec/fast.md#per-weight)

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/**
 * The evaluation bound of the per-weight KL: 8 times the magnitudes of the
 * terms the formula adds; for the sigmoid, the rounding of z = k2 + k3 la
 * reaches the value through the slope k1 s(-z) s(z).
 */
export function klValueScale(la: number, profile: Profile): number {
  if (!Number.isFinite(la)) return 0;
  if (profile.kl.approximation === 'svd_sigmoid') {
    const z = SVD_KL_K2 + SVD_KL_K3 * la;
    const offset = profile.kl.constant === 'minus_k1' ? 0 : SVD_KL_K1;
    return (
      8 *
      (SVD_KL_K1 * sigmoid(-z) * (1 + 2 * (SVD_KL_K3 * Math.abs(la) + SVD_KL_K2)) +
        0.5 * softplus(-la) +
        offset)
    );
  }
  const a = Math.exp(la);
  return (
    8 *
    (0.5 * Math.abs(la) +
      a * (Math.abs(VD_KL_C1) + a * (Math.abs(VD_KL_C2) + a * Math.abs(VD_KL_C3))))
  );
}

/** The bound of dKL/dlog_alpha: 16 times the magnitudes of its terms. */
export function klSlopeScale(la: number, profile: Profile): number {
  if (!Number.isFinite(la)) return 0;
  if (profile.kl.approximation === 'svd_sigmoid') {
    return 16 * (SVD_KL_K1 * SVD_KL_K3 + 0.5 * sigmoid(-la));
  }
  const a = Math.exp(la);
  return (
    16 *
    (0.5 + a * (Math.abs(VD_KL_C1) + a * (2 * Math.abs(VD_KL_C2) + a * 3 * Math.abs(VD_KL_C3))))
  );
}

/** |d^2 KL / d la^2| <= 1 on both clipped ranges (spec/fast.md: sigmoid <= 0.35, cubic < 1 for la <= 0). */
const KL_CURVATURE_BOUND = 1;

/**
 * kl.exact: no fast implementation to follow, so the rule is the plain
 * series' own: a sum of T terms of total size |value| loses at most 2 T u
 * |value|, plus 8u for the constants that cancel in some evaluations.
 * T = mu + 20 sqrt(mu) + 50 (mu = exp(-la) / 2) terms where spec/kl.md sums
 * the series (la >= EXACT_KL_ASYMPTOTIC_BELOW), 50 where it uses the
 * small-alpha expansion (at most ~20 terms).
 */
export function klExactScale(la: number, value: number): number {
  if (!Number.isFinite(value)) return 0;
  let terms = 50;
  if (la >= EXACT_KL_ASYMPTOTIC_BELOW && Number.isFinite(la)) {
    const mu = Math.exp(-la) / 2;
    terms = mu + 20 * Math.sqrt(mu) + 50;
  }
  return 2 * terms * Math.abs(value) + 8;
}

/** kl.layer: the layer KL, its theta and noise gradients (cotangent 1). */
export function layerKlScale(
  theta: Tensor,
  noise: Tensor,
  profile: Profile,
  layer: LayerKind,
): { kl: number; theta: number[]; noise: number[] } {
  const w = weightModel(theta, noise, profile, layer);
  const la = w.stats.logAlpha;
  const slope = la.map((v) => klApproxDerivative(v, profile));
  const n = la.length;
  const kl =
    sum(la.map((v, i) => Math.abs(slope[i]!) * w.logAlpha[i]! + klValueScale(v, profile))) +
    n * sum(la.map((v) => Math.abs(klApprox(v, profile))));
  const slopeBound = la.map(
    (v, i) =>
      klSlopeScale(v, profile) + KL_CURVATURE_BOUND * w.logAlpha[i]! + 8 * Math.abs(slope[i]!),
  );
  const thetaScale = slopeBound.map((s, i) => Math.abs(w.stats.dLogAlphaDTheta[i]!) * s);
  const index = broadcastIndex(noise.shape, theta.shape)!;
  const m = noise.data.length;
  const bound = new Array<number>(m).fill(0);
  const magnitude = new Array<number>(m).fill(0);
  const covered = new Array<number>(m).fill(0);
  la.forEach((_, i) => {
    const j = index[i]!;
    const d = Math.abs(w.stats.dLogAlphaDNoise[i]!);
    bound[j]! += d * slopeBound[i]!;
    magnitude[j]! += d * Math.abs(slope[i]!);
    covered[j]! += 1;
  });
  return { kl, theta: thetaScale, noise: bound.map((b, j) => b + covered[j]! * magnitude[j]!) };
}

// ---------------------------------------------------------------------------
// Layers (spec/fast.md#layers): one model for dense and conv2d, a dense layer
// being the 1x1 convolution of x [batch, 1, 1, in] with theta [1, 1, in, out].

export interface LayerScaleInputs {
  readonly profile: Profile;
  readonly layer: LayerKind;
  readonly x: Tensor;
  readonly theta: Tensor;
  readonly noise: Tensor;
  readonly bias: Tensor;
  /** The noise draws; zeros for the eval forward. */
  readonly eps: Tensor;
  /** The output cotangent (VJPs); zeros otherwise. */
  readonly cotangent: Tensor;
  /** The resolved train clip; the eval forward masks as if it were on. */
  readonly trainClip: boolean;
  readonly stride: Conv2dStride;
  readonly padding: Conv2dPaddingMode;
}

export interface LayerScale {
  readonly mean: number[];
  readonly variance: number[];
  readonly output: number[];
  readonly eval: number[];
  readonly gradX: number[];
  readonly gradTheta: number[];
  readonly gradNoise: number[];
  readonly gradBias: number[];
}

interface Linear {
  /** Terms of one output's sum (in, or kh * kw * cin). */
  readonly k: number;
  /** Terms of one input element's gradient sum (out, or kh * kw * cout at most). */
  readonly kx: number;
  /** Terms of one weight's gradient sum (batch, or n * oh * ow). */
  readonly kTheta: number;
  readonly forward: (a: readonly number[], f: readonly number[]) => number[];
  readonly transposeInput: (g: readonly number[], f: readonly number[]) => number[];
  readonly transposeFilter: (a: readonly number[], g: readonly number[]) => number[];
}

function linear(c: LayerScaleInputs): Linear {
  const dense = c.layer === 'dense';
  const xShape = dense ? [c.x.shape[0]!, 1, 1, c.x.shape[1]!] : [...c.x.shape];
  const fShape = dense ? [1, 1, ...c.theta.shape] : [...c.theta.shape];
  const stride = dense ? 1 : c.stride;
  const padding = dense ? 'valid' : c.padding;
  const g = conv2dGeometry(xShape, fShape, { stride, padding });
  const outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels];
  const t = (shape: readonly number[], data: readonly number[]): Tensor => ({
    shape: [...shape],
    data: [...data],
  });
  return {
    k: g.kernelHeight * g.kernelWidth * g.inChannels,
    kx: g.kernelHeight * g.kernelWidth * g.outChannels,
    kTheta: g.batch * g.outHeight * g.outWidth,
    forward: (a, f) => [...conv2d(t(xShape, a), t(fShape, f), stride, padding).data],
    transposeInput: (gy, f) => [
      ...conv2dBackpropInput(t(outShape, gy), t(fShape, f), xShape, stride, padding).data,
    ],
    transposeFilter: (a, gy) => [
      ...conv2dBackpropFilter(t(xShape, a), t(outShape, gy), fShape, stride, padding).data,
    ],
  };
}

/**
 * spec/fast.md#layers with u = 1. K the terms of one output sum:
 *   mean:     2 (K + 1) (|x| (*) |theta_m| + |b|)
 *   variance: 2 (K + 2) var + (x*x) (*) (s2_m rel_s2)
 *   output:   s_mean + |eps| ((s_var + sqrtEps) / (2 sd) + 3 sd) + 2 (|mean| + sd |eps|)
 * and the VJP bounds of the same page (K' the terms of each contraction).
 */
export function layerScale(c: LayerScaleInputs): LayerScale {
  const p = c.profile;
  const conventions = p[c.layer];
  const w = weightModel(c.theta, c.noise, p, c.layer);
  const s = w.stats;
  const lin = linear(c);
  const ones = s.mask.map(() => 1);
  const meanMask = c.trainClip ? s.mask : ones;
  const varMask = c.trainClip && conventions.trainMask === 'mean_and_variance' ? s.mask : ones;
  const theta = c.theta.data;
  const x = c.x.data;
  const x2 = x.map((v) => v * v);
  const channels = c.bias.data.length;
  const biasAt = (o: number) => Math.abs(c.bias.data[o % channels]!);
  const e = p.sqrtEps;

  const s2m = times(s.variance, varMask);
  const s2mErr = times(s2m, w.varianceRel);
  const aMean = lin.forward(absAll(x), times(absAll(theta), meanMask)).map((v, o) => v + biasAt(o));
  const mean = scaleBy(aMean, 2 * (lin.k + 1));
  const meanAbs = lin.forward(x, times(theta, meanMask)).map((v, o) => Math.abs(v) + biasAt(o));
  const variance = lin.forward(x2, s2m);
  const varianceScale = plus(scaleBy(variance, 2 * (lin.k + 2)), lin.forward(x2, s2mErr));
  const sd = variance.map((v) => Math.sqrt(v + e));
  const eps = c.eps.data;
  const output = mean.map(
    (m, o) =>
      m +
      Math.abs(eps[o]!) * ((varianceScale[o]! + e) / (2 * sd[o]!) + 3 * sd[o]!) +
      2 * (meanAbs[o]! + sd[o]! * Math.abs(eps[o]!)),
  );
  const aEval = lin.forward(absAll(x), times(absAll(theta), s.mask)).map((v, o) => v + biasAt(o));
  const evalScale = scaleBy(aEval, 2 * (lin.k + 1));

  // VJP: h = g eps / (2 sd) carries the relative error of sd plus 5 roundings.
  const gOut = c.cotangent.data;
  const gy = absAll(gOut);
  const hSigned = gOut.map((g, o) => (g * eps[o]!) / (2 * sd[o]!));
  const h = absAll(hSigned);
  const hErr = h.map(
    (v, o) => v * ((0.5 * (varianceScale[o]! + e)) / (variance[o]! + e) + 5) + 2 * v,
  );
  const thetaMeanAbs = times(absAll(theta), meanMask);
  const gxMean = lin.transposeInput(gy, thetaMeanAbs);
  const gxVar = times(scaleBy(absAll(x), 2), lin.transposeInput(h, s2m));
  const gxVarErr = times(
    scaleBy(absAll(x), 2),
    plus(lin.transposeInput(hErr, s2m), lin.transposeInput(h, s2mErr)),
  );
  const gradX = plus(scaleBy(plus(gxMean, gxVar), 2 * (lin.kx + 2)), gxVarErr);

  const alpha = s.logAlpha.map((la) => (Number.isFinite(la) ? Math.exp(la) : 0));
  // Both terms autodiff adds, in magnitude: inside the clip they cancel exactly
  // and a rounding residue of their size remains (spec/fast.md#layers).
  const dS2dTheta =
    conventions.variance === 'sigma2'
      ? theta.map(() => 0)
      : theta.map(
          (t, i) => s.variance[i]! * Math.abs(s.dLogAlphaDTheta[i]!) + 2 * alpha[i]! * Math.abs(t),
        );
  const dS2dNoise = absAll(s.dVarianceDNoise);
  const gA = times(lin.transposeFilter(absAll(x), gy), meanMask);
  const gG = times(lin.transposeFilter(x2, h), varMask);
  const kT = 2 * (lin.kTheta + 2);
  const gGErr = plus(times(lin.transposeFilter(x2, hErr), varMask), scaleBy(gG, kT));
  const dRel = w.varianceRel.map((r) => r + 8);
  const gradTheta = theta.map(
    (_, i) =>
      kT * gA[i]! +
      gGErr[i]! * dS2dTheta[i]! +
      gG[i]! * dS2dTheta[i]! * dRel[i]! +
      (gA[i]! + gG[i]! * dS2dTheta[i]!),
  );
  const index = broadcastIndex(c.noise.shape, c.theta.shape)!;
  const m = c.noise.data.length;
  const noiseBound = new Array<number>(m).fill(0);
  const covered = new Array<number>(m).fill(0);
  const coveredAbs = new Array<number>(m).fill(0);
  theta.forEach((_, i) => {
    const j = index[i]!;
    noiseBound[j]! += gGErr[i]! * dS2dNoise[i]! + gG[i]! * dS2dNoise[i]! * dRel[i]!;
    covered[j]! += 1;
    coveredAbs[j]! += gG[i]! * dS2dNoise[i]!;
  });
  const gradNoise = noiseBound.map((b, j) => b + 2 * covered[j]! * coveredAbs[j]!);
  const biasSums = new Array<number>(channels).fill(0);
  gy.forEach((g, o) => (biasSums[o % channels]! += g));
  const gradBias = biasSums.map((v) => 2 * (lin.kTheta + 1) * v);
  return {
    mean,
    variance: varianceScale,
    output,
    eval: evalScale,
    gradX,
    gradTheta,
    gradNoise,
    gradBias,
  };
}

// ---------------------------------------------------------------------------
// Objective

/**
 * Cross-entropy per example: CE = m + log(sum_c exp(z_c - m)) - z_y. The
 * shifted sum of C terms in [1, C] has a relative error <= (C + 2) u, which
 * is the absolute error of its log; m + log(...) and the subtraction add
 * u (|m| + log C) and u |CE|. Times 2: s = 2 (C + 3 + |m| + log C + |CE|).
 * The mean of M values adds M u mean: s_mean = mean(s_b) + 2 (M + 1) mean(CE).
 */
export function crossEntropyScale(
  logits: Tensor,
  perExample: readonly number[],
): { perExample: number[]; mean: number } {
  const [batch, classes] = logits.shape as [number, number];
  const rows = perExample.map((ce, b) => {
    const row = logits.data.slice(b * classes, (b + 1) * classes);
    const m = Math.max(...row);
    return 2 * (classes + 3 + Math.abs(m) + Math.log(classes) + Math.abs(ce));
  });
  const meanCe = sum(perExample.map(Math.abs)) / batch;
  return { perExample: rows, mean: sum(rows) / batch + 2 * (batch + 1) * meanCe };
}

/**
 * SGVB: dataTerm = N * mean CE (s = N s_mean + 2 |dataTerm|), klTerm = beta * KL
 * (one product: 2 |klTerm|), loss = their sum (their bounds plus 2 (|data| + |kl|)).
 */
export function sgvbScale(
  meanScale: number,
  trainSize: number,
  dataTerm: number,
  klTerm: number,
): { loss: number; dataTerm: number; klTerm: number } {
  const data = trainSize * meanScale + 2 * Math.abs(dataTerm);
  const kl = 2 * Math.abs(klTerm);
  return {
    loss: data + kl + 2 * (Math.abs(dataTerm) + Math.abs(klTerm)),
    dataTerm: data,
    klTerm: kl,
  };
}

/**
 * schedule.kl_weight: 0 and 1 are exact; on the ramp (epoch - start) / (end - start)
 * is a subtraction and a division: 4 (|epoch| + start) / (end - start).
 */
export function klWeightScale(epoch: number): number {
  if (epoch < KL_WARMUP_START_EPOCH || epoch >= KL_WARMUP_END_EPOCH) return 0;
  return (
    (4 * (Math.abs(epoch) + KL_WARMUP_START_EPOCH)) / (KL_WARMUP_END_EPOCH - KL_WARMUP_START_EPOCH)
  );
}
