/**
 * The rounding-error model of spec/fast.md#tolerance-model, evaluated in float64
 * from the reference: one implementation for its two users.
 *
 * - The golden `scale` tensors (spec/golden.md#tolerance, ./scale.ts) take it
 *   in units of the port's unit roundoff (`u = 1`): every term is linear in
 *   `u` (a first-order rounding analysis), so one scale serves both dtypes.
 * - The fast-vs-reference properties (test/properties/fast-bounds.ts) take it
 *   as an absolute float32 bound (`u = 2^-24`).
 *
 * Where the two differ on purpose, `ErrorModelOptions` says how, and each
 * user's preset says why. Multiplying by `u = 1` or adding `floor = 0` is
 * exact, and `u = 2^-24` is a power of two, so the order of the products
 * below does not move a bit of either user's numbers.
 *
 * The magnitude sums (|x| (*) |theta| and its transposes) come from the
 * reference's plain convolution helpers, the per-weight values from
 * `weightStatistics`: both documented reference API.
 */
import { SVD_KL_K1, SVD_KL_K2, SVD_KL_K3, VD_KL_C1, VD_KL_C2, VD_KL_C3 } from '../constants.js';
import type { LayerKind, Profile } from '../profiles.js';
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dGeometry,
  type Conv2dPaddingMode,
  type Conv2dStride,
} from '../reference/conv2d.js';
import { denseTrain } from '../reference/dense.js';
import { klApprox, klApproxDerivative } from '../reference/kl.js';
import {
  broadcastIndex,
  klProfile,
  clipGradient,
  clipValue,
  weightStatistics,
  type WeightStatistics,
} from '../reference/logAlpha.js';
import type { Tensor } from '../tensor.js';

/** float32's unit roundoff (spec/fast.md#tolerance-model). */
export const FLOAT32_UNIT_ROUNDOFF = 2 ** -24;
/**
 * A few times float32's smallest normal (2^-126 = 1.2e-38): below it the
 * relative rounding model stops holding (spec/fast.md: it does not cover underflow).
 */
export const FLOAT32_NORMAL_FLOOR = 1e-37;

export interface ErrorModelOptions {
  /** The unit roundoff the bounds are multiplied by: 1 for bounds in units of u. */
  readonly u: number;
  /** Added to every bound of a layer or layer-KL output, where sums can underflow. */
  readonly floor: number;
  /**
   * Give log_alpha a bound of 0 where its raw value lies beyond a clip bound
   * by more than its own float32 error bound: both sides then return the
   * (float32-exact) clip bound. spec/golden.md adopts this refinement;
   * spec/fast.md's model keeps `tol_la` there.
   */
  readonly exactBeyondClip: boolean;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const absAll = (v: readonly number[]) => v.map(Math.abs);
const times = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v * b[i]!);
const plus = (a: readonly number[], b: readonly number[]) => a.map((v, i) => v + b[i]!);
const scaleBy = (a: readonly number[], k: number) => a.map((v) => v * k);

// ---------------------------------------------------------------------------
// Per weight (spec/fast.md#per-weight)

export interface WeightError {
  readonly stats: WeightStatistics;
  /** The bound on the error of the clipped log_alpha, per weight. */
  readonly logAlpha: number[];
  /** The relative bound on the per-weight variance. */
  readonly varianceRel: number[];
  /**
   * Some weight's raw log_alpha lies within its float32 error bound of a clip
   * bound or of the threshold without being on it: float32 may land on the
   * other side, flipping the mask or the clip gradient (spec/fast.md,
   * "Edges"). Always judged at float32's u, whatever `u` the bounds use.
   */
  readonly nearEdge: boolean;
}

/**
 * log_alpha: |d la| <= 4u (3 + |log_sigma2| + 3 |L|), L = log(theta^2 + thetaEps)
 * or 2 log(|theta| + thetaEps): the log's argument carries 3u, the log 2u |L|,
 * the subtraction u (|log_sigma2| + |L|); the factor 4 covers library ulps.
 * 0 for a learned log_alpha (the parameter itself) and where L is infinite
 * (theta = 0 without eps: the clip bound, exact). The clip is 1-Lipschitz with
 * float32-exact bounds, so the bound carries through it.
 * Variance: 2 (|d la| + 4u) relative for `alpha_theta2` (exp, square,
 * product), 2 * 4u for `sigma2` (exp of an exact log_sigma2).
 */
export function weightError(
  theta: Tensor,
  noise: Tensor,
  profile: Profile,
  layer: LayerKind,
  model: ErrorModelOptions,
): WeightError {
  const conventions = profile[layer];
  const { form, thetaEps, clip } = conventions.logAlpha;
  const stats = weightStatistics(theta, noise, profile, layer);
  const index = broadcastIndex(noise.shape, theta.shape)!;
  const noiseScale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const edges = [clip?.min, clip?.max, profile.prune?.threshold].filter(
    (e): e is number => typeof e === 'number',
  );
  let nearEdge = false;
  const logAlpha = theta.data.map((t, i) => {
    if (form === 'learned') return 0;
    const logSigma2 = noiseScale * noise.data[index[i]!]!;
    const L =
      form === 'log_theta2' ? Math.log(t * t + thetaEps) : 2 * Math.log(Math.abs(t) + thetaEps);
    if (!Number.isFinite(L)) return 0;
    const bound = 4 * (3 + Math.abs(logSigma2) + 3 * Math.abs(L));
    const float32Bound = bound * FLOAT32_UNIT_ROUNDOFF;
    const raw = stats.logAlphaRaw[i]!;
    for (const e of edges) {
      const d = Math.abs(raw - e);
      if (d > 0 && d <= float32Bound) nearEdge = true;
    }
    if (model.exactBeyondClip && Math.abs(raw - stats.logAlpha[i]!) > float32Bound) return 0;
    return bound * model.u;
  });
  const varianceRel = logAlpha.map(
    (la) => 2 * ((conventions.variance === 'sigma2' ? 0 : la) + 4 * model.u),
  );
  return { stats, logAlpha, varianceRel, nearEdge };
}

// ---------------------------------------------------------------------------
// KL per weight (spec/fast.md#per-weight)

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/**
 * The evaluation error of the per-weight KL at a float32 log_alpha: 8u times
 * the magnitudes of the terms the formula adds; for the sigmoid, the rounding
 * of z = k2 + k3 la (|dz| <= 2u (k3 |la| + k2)) reaches the value through the
 * slope k1 s(-z) s(z) <= k1 s(-z). 0 at an infinite log_alpha (both sides
 * return the limit; its rounding is the caller's).
 *
 * spec/kl.md lets a port evaluate either form: the reference's
 * k1 s(-z) + softplus(-la)/2 - (k1 + C), whose terms vanish with the KL, or
 * the printed k1 s(z) - log1p(exp(-la))/2 + C, whose terms k1 s(z) and C
 * stay near k1 in size while the KL goes to 0. The terms of both are counted
 * (k1 s(z) + k1 s(-z) = k1, plus |C| or the omitted constant's k1), so the
 * bound covers the printed form's cancellation as well.
 */
export function klValueError(la: number, profile: Profile, u: number): number {
  if (!Number.isFinite(la)) return 0;
  if (profile.kl.approximation === 'svd_sigmoid') {
    const z = SVD_KL_K2 + SVD_KL_K3 * la;
    const terms =
      2 * SVD_KL_K1 +
      2 * SVD_KL_K1 * sigmoid(-z) * (SVD_KL_K3 * Math.abs(la) + SVD_KL_K2) +
      0.5 * softplus(-la);
    return 8 * u * terms;
  }
  const a = Math.exp(la);
  return (
    8 *
    u *
    (0.5 * Math.abs(la) +
      a * (Math.abs(VD_KL_C1) + a * (Math.abs(VD_KL_C2) + a * Math.abs(VD_KL_C3))))
  );
}

/**
 * The evaluation error of dKL/dlog_alpha by autodiff: 16u times the
 * magnitudes of its terms (for the sigmoid: k1 k3 s (1 - s), whose 1 - s is
 * formed with an absolute error u, hence k1 k3 itself; and 0.5 s(-la)).
 * 0 at an infinite log_alpha, like `klValueError`.
 */
export function klSlopeError(la: number, profile: Profile, u: number): number {
  if (!Number.isFinite(la)) return 0;
  if (profile.kl.approximation === 'svd_sigmoid') {
    return 16 * u * (SVD_KL_K1 * SVD_KL_K3 + 0.5 * sigmoid(-la));
  }
  const a = Math.exp(la);
  return (
    16 *
    u *
    (0.5 + a * (Math.abs(VD_KL_C1) + a * (2 * Math.abs(VD_KL_C2) + a * 3 * Math.abs(VD_KL_C3))))
  );
}

/** |d^2 KL / d la^2| <= 1 on both clipped ranges (sigmoid: <= 0.35; cubic, la <= 0: < 1). */
export const KL_CURVATURE_BOUND = 1;

/**
 * kl.layer: the layer KL (each term adds |KL'| tol_la to its evaluation
 * error, the sum of n terms n u sum |KL_i|), and its theta and noise
 * gradients under a scalar `cotangent` g (the slope error plus curvature
 * times tol_la plus 8u |KL'| for the products, times |g dla/dparam|, summed
 * per noise entry with covered * u * sum |terms| for the sum). The golden
 * scales take g = 1, which multiplies exactly.
 */
export function layerKlError(
  theta: Tensor,
  noise: Tensor,
  profile: Profile,
  layer: LayerKind,
  model: ErrorModelOptions,
  cotangent = 1,
): { kl: number; theta: number[]; noise: number[] } {
  const { u, floor } = model;
  const w = weightError(theta, noise, klProfile(profile), layer, model);
  const la = w.stats.logAlpha;
  const slope = la.map((v) => klApproxDerivative(v, profile));
  const n = la.length;
  const kl =
    sum(la.map((v, i) => Math.abs(slope[i]!) * w.logAlpha[i]! + klValueError(v, profile, u))) +
    n * u * sum(la.map((v) => Math.abs(klApprox(v, profile))));
  const slopeBound = la.map(
    (v, i) =>
      klSlopeError(v, profile, u) +
      KL_CURVATURE_BOUND * w.logAlpha[i]! +
      8 * u * Math.abs(slope[i]!),
  );
  const g = Math.abs(cotangent);
  const thetaBound = slopeBound.map(
    (s, i) => g * Math.abs(w.stats.dLogAlphaDTheta[i]!) * s + floor,
  );
  const index = broadcastIndex(noise.shape, theta.shape)!;
  const m = noise.data.length;
  const bound = new Array<number>(m).fill(0);
  const magnitude = new Array<number>(m).fill(0);
  const covered = new Array<number>(m).fill(0);
  la.forEach((_, i) => {
    const j = index[i]!;
    const d = Math.abs(cotangent * w.stats.dLogAlphaDNoise[i]!);
    bound[j]! += d * slopeBound[i]!;
    magnitude[j]! += d * Math.abs(slope[i]!);
    covered[j]! += 1;
  });
  return {
    kl: kl + floor,
    theta: thetaBound,
    noise: bound.map((b, j) => b + covered[j]! * u * magnitude[j]! + floor),
  };
}

// ---------------------------------------------------------------------------
// Layers (spec/fast.md#layers): one model for dense and conv2d, a dense layer
// being the 1x1 convolution of x [batch, 1, 1, in] with theta [1, 1, in, out].

export interface LayerErrorInputs {
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
  /** Extra cotangents of the training mean and variance (the ops take only `cotangent`). */
  readonly meanCotangent?: Tensor | undefined;
  readonly varianceCotangent?: Tensor | undefined;
  /** The resolved train clip; the eval forward masks as if it were on. */
  readonly trainClip: boolean;
  readonly stride: Conv2dStride;
  readonly padding: Conv2dPaddingMode;
}

export interface LayerError {
  /** From the weight model: see `WeightError.nearEdge`. */
  readonly nearEdge: boolean;
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

function linear(c: LayerErrorInputs): Linear {
  const dense = c.layer === 'dense';
  const xShape = dense ? [c.x.shape[0]!, 1, 1, c.x.shape[1]!] : [...c.x.shape];
  const fShape = dense ? [1, 1, ...c.theta.shape] : [...c.theta.shape];
  const stride = dense ? 1 : c.stride;
  const padding = dense ? 'valid' : c.padding;
  const rule = c.profile.samePadding;
  const g = conv2dGeometry(xShape, fShape, { stride, padding, samePadding: rule });
  const outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels];
  const t = (shape: readonly number[], data: readonly number[]): Tensor => ({
    shape: [...shape],
    data: [...data],
  });
  return {
    k: g.kernelHeight * g.kernelWidth * g.inChannels,
    kx: g.kernelHeight * g.kernelWidth * g.outChannels,
    kTheta: g.batch * g.outHeight * g.outWidth,
    forward: (a, f) => [...conv2d(t(xShape, a), t(fShape, f), stride, padding, rule).data],
    transposeInput: (gy, f) => [
      ...conv2dBackpropInput(t(outShape, gy), t(fShape, f), xShape, stride, padding, rule).data,
    ],
    transposeFilter: (a, gy) => [
      ...conv2dBackpropFilter(t(xShape, a), t(outShape, gy), fShape, stride, padding, rule).data,
    ],
  };
}

/**
 * spec/fast.md#layers. K the terms of one output sum:
 *   mean:     2 (K + 1) u (|x| (*) |theta_m| + |b|)
 *   variance: 2 (K + 2) u var + (x*x) (*) (s2_m rel_s2)
 *   output:   tol_mean + |eps| (tol_var + u sqrtEps) / (2 sd) + 3u sd |eps| + 2u (|mean| + sd |eps|)
 * and for the VJPs each gradient is bounded by 2 (K' + 2) u times the
 * magnitudes of the terms autodiff adds (K' the terms of its contraction),
 * plus the propagated relative errors of the variance path (rel_s2, and of
 * h = g eps / (2 sd): rel_sd + 5u).
 */
export function layerError(c: LayerErrorInputs, model: ErrorModelOptions): LayerError {
  const { u, floor } = model;
  const p = c.profile;
  const conventions = p[c.layer];
  const w = weightError(c.theta, c.noise, p, c.layer, model);
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
  const withFloor = (v: number[]) => v.map((b) => b + floor);

  const s2m = times(s.variance, varMask);
  const s2mErr = times(s2m, w.varianceRel);
  const aMean = lin.forward(absAll(x), times(absAll(theta), meanMask)).map((v, o) => v + biasAt(o));
  const mean = withFloor(scaleBy(aMean, 2 * (lin.k + 1) * u));
  const meanAbs = lin.forward(x, times(theta, meanMask)).map((v, o) => Math.abs(v) + biasAt(o));
  const variance = lin.forward(x2, s2m);
  const varianceBound = withFloor(
    plus(scaleBy(variance, 2 * (lin.k + 2) * u), lin.forward(x2, s2mErr)),
  );
  const sd = variance.map((v) => Math.sqrt(v + e));
  const eps = c.eps.data;
  const output = mean.map(
    (m, o) =>
      m +
      Math.abs(eps[o]!) * ((varianceBound[o]! + u * e) / (2 * sd[o]!) + 3 * u * sd[o]!) +
      2 * u * (meanAbs[o]! + sd[o]! * Math.abs(eps[o]!)),
  );
  const aEval = lin.forward(absAll(x), times(absAll(theta), s.mask)).map((v, o) => v + biasAt(o));
  const evalBound = withFloor(scaleBy(aEval, 2 * (lin.k + 1) * u));

  // The extra mean and variance cotangents add to the two paths' magnitudes.
  const gOut = c.cotangent.data;
  const gy = gOut.map((g, o) => Math.abs(g) + Math.abs(c.meanCotangent?.data[o] ?? 0));
  const hOut = absAll(gOut.map((g, o) => (g * eps[o]!) / (2 * sd[o]!)));
  const h = hOut.map((v, o) => v + Math.abs(c.varianceCotangent?.data[o] ?? 0));
  const hErr = hOut.map(
    (v, o) =>
      v * ((0.5 * (varianceBound[o]! + u * e)) / (variance[o]! + e) + 5 * u) + 2 * u * h[o]!,
  );
  const thetaMeanAbs = times(absAll(theta), meanMask);
  const gxMean = lin.transposeInput(gy, thetaMeanAbs);
  const gxVar = times(scaleBy(absAll(x), 2), lin.transposeInput(h, s2m));
  const gxVarErr = times(
    scaleBy(absAll(x), 2),
    plus(lin.transposeInput(hErr, s2m), lin.transposeInput(h, s2mErr)),
  );
  const gradX = withFloor(plus(scaleBy(plus(gxMean, gxVar), 2 * (lin.kx + 2) * u), gxVarErr));

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
  const kT = 2 * (lin.kTheta + 2) * u;
  const gGErr = plus(times(lin.transposeFilter(x2, hErr), varMask), scaleBy(gG, kT));
  const dRel = w.varianceRel.map((r) => r + 8 * u);
  const gradTheta = theta.map(
    (_, i) =>
      kT * gA[i]! +
      gGErr[i]! * dS2dTheta[i]! +
      gG[i]! * dS2dTheta[i]! * dRel[i]! +
      u * (gA[i]! + gG[i]! * dS2dTheta[i]!) +
      floor,
  );
  const index = broadcastIndex(c.noise.shape, c.theta.shape)!;
  const m = c.noise.data.length;
  const noiseBound = new Array<number>(m).fill(floor);
  const covered = new Array<number>(m).fill(0);
  const coveredAbs = new Array<number>(m).fill(0);
  theta.forEach((_, i) => {
    const j = index[i]!;
    noiseBound[j]! += gGErr[i]! * dS2dNoise[i]! + gG[i]! * dS2dNoise[i]! * dRel[i]!;
    covered[j]! += 1;
    coveredAbs[j]! += gG[i]! * dS2dNoise[i]!;
  });
  const gradNoise = noiseBound.map((b, j) => b + 2 * covered[j]! * u * coveredAbs[j]!);
  const biasSums = new Array<number>(channels).fill(0);
  gy.forEach((g, o) => (biasSums[o % channels]! += g));
  const gradBias = withFloor(biasSums.map((v) => 2 * (lin.kTheta + 1) * u * v));
  return {
    nearEdge: w.nearEdge,
    mean,
    variance: varianceBound,
    output,
    eval: evalBound,
    gradX,
    gradTheta,
    gradNoise,
    gradBias,
  };
}

// ---------------------------------------------------------------------------
// VD variant A (spec/fast.md#variant-a, spec/dense-a.md)

export interface DenseAErrorInputs {
  readonly profile: Profile;
  /** [batch, in] */
  readonly x: Tensor;
  /** [in, out] */
  readonly theta: Tensor;
  /** log_alpha, [] or [in]. */
  readonly noise: Tensor;
  /** [out] */
  readonly bias: Tensor;
  /** [batch, in] */
  readonly eps: Tensor;
  /** The output cotangent, [batch, out] (VJP); zeros otherwise. */
  readonly cotangent: Tensor;
}

export interface DenseAError {
  readonly mean: number[];
  readonly variance: number[];
  readonly output: number[];
  readonly gradX: number[];
  readonly gradTheta: number[];
  readonly gradNoise: number[];
  readonly gradBias: number[];
}

/**
 * spec/fast.md#variant-a. K = in, s_i = sqrt(alpha_i), A = |x| (1 + s |eps|)
 * (a bound on |x|, |x * xi| and on the error's lever of xi = 1 + s eps):
 *   mean:     2 (K + 1) u (|x| @ |theta| + |b|)
 *   variance: 2 (K + 8) u var (K positive terms of five roundings and an exp each)
 *   output:   2 (K + 5) u (A @ |theta| + |b|) (xi carries u |xi| + 5u s |eps|)
 *   grad_x:   2 (out + 5) u (|g| @ |theta|^T) (1 + s |eps|)
 *   grad_theta: 2 (batch + 5) u A^T @ |g|;  grad_bias: 2 (batch + 1) u sum |g|
 *   grad_log_alpha: for each entry, over the N terms m = |dz| |x| |eps| s / 2 it
 *     sums (zero beyond the clip), 2 (out + 6) u sum m + 2 N u sum m.
 * The learned log_alpha and its clip are exact in float32 (no tol_la).
 */
export function denseAError(c: DenseAErrorInputs, model: ErrorModelOptions): DenseAError {
  const { u, floor } = model;
  const [batch, inSize] = c.x.shape as [number, number];
  const out = c.theta.shape[1]!;
  const clip = c.profile.dense.logAlpha.clip;
  const scalarNoise = c.noise.shape.length === 0;
  const raw = Array.from({ length: inSize }, (_, i) => c.noise.data[scalarNoise ? 0 : i]!);
  const alpha = raw.map((v) => Math.exp(clipValue(v, clip)));
  const s = alpha.map(Math.sqrt);
  const passes = raw.map((v) => clipGradient(v, clip));
  const x = c.x.data;
  const theta = c.theta.data;
  const eps = c.eps.data;
  const g = c.cotangent.data;
  const lever = x.map((_, k) => 1 + s[k % inSize]! * Math.abs(eps[k]!));
  const A = x.map((v, k) => Math.abs(v) * lever[k]!);
  const at = (b: number, j: number) => b * out + j;
  const mean: number[] = [];
  const variance: number[] = [];
  const output: number[] = [];
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < out; j++) {
      let m = 0;
      let v = 0;
      let o = 0;
      for (let i = 0; i < inSize; i++) {
        const k = b * inSize + i;
        const t = theta[i * out + j]!;
        m += Math.abs(x[k]!) * Math.abs(t);
        v += x[k]! * x[k]! * alpha[i]! * t * t;
        o += A[k]! * Math.abs(t);
      }
      const bias = Math.abs(c.bias.data[j]!);
      mean.push(2 * (inSize + 1) * u * (m + bias) + floor);
      variance.push(2 * (inSize + 8) * u * v + floor);
      output.push(2 * (inSize + 5) * u * (o + bias) + floor);
    }
  }
  const dz = x.map((_, k) => {
    const b = Math.floor(k / inSize);
    const i = k % inSize;
    let sum = 0;
    for (let j = 0; j < out; j++) sum += Math.abs(g[at(b, j)]!) * Math.abs(theta[i * out + j]!);
    return sum;
  });
  const gradX = dz.map((d, k) => 2 * (out + 5) * u * d * lever[k]! + floor);
  const gradTheta = theta.map((_, ij) => {
    const i = Math.floor(ij / out);
    const j = ij % out;
    let sum = 0;
    for (let b = 0; b < batch; b++) sum += A[b * inSize + i]! * Math.abs(g[at(b, j)]!);
    return 2 * (batch + 5) * u * sum + floor;
  });
  const gradBias = Array.from({ length: out }, (_, j) => {
    let sum = 0;
    for (let b = 0; b < batch; b++) sum += Math.abs(g[at(b, j)]!);
    return 2 * (batch + 1) * u * sum + floor;
  });
  const m = new Array<number>(c.noise.data.length).fill(0);
  const terms = new Array<number>(c.noise.data.length).fill(0);
  x.forEach((xv, k) => {
    const i = k % inSize;
    const e = scalarNoise ? 0 : i;
    terms[e]! += 1;
    if (passes[i] === 0) return;
    m[e]! += (dz[k]! * Math.abs(xv) * Math.abs(eps[k]!) * s[i]!) / 2;
  });
  const gradNoise = m.map((v, e) => 2 * (out + 6) * u * v + 2 * terms[e]! * u * v + floor);
  return { mean, variance, output, gradX, gradTheta, gradNoise, gradBias };
}

/**
 * vd.dense_a.kl under the scalar `cotangent` g: the KL, a sum of `in` per-unit
 * terms (sum of their evaluation errors plus in u sum |KL_i|), and its
 * log_alpha gradient (each term g (slope error + 8u |KL'|), zero beyond the
 * clip, summed per entry with N u sum |g KL'| for N terms).
 */
export function denseAKlError(
  theta: Tensor,
  noise: Tensor,
  profile: Profile,
  model: ErrorModelOptions,
  cotangent = 1,
): { kl: number; noise: number[] } {
  const { u, floor } = model;
  const inSize = theta.shape[0]!;
  const clip = profile.dense.logAlpha.clip;
  const scalarNoise = noise.shape.length === 0;
  const raw = Array.from({ length: inSize }, (_, i) => noise.data[scalarNoise ? 0 : i]!);
  const la = raw.map((v) => clipValue(v, clip));
  const kl =
    sum(la.map((v) => klValueError(v, profile, u))) +
    inSize * u * sum(la.map((v) => Math.abs(klApprox(v, profile)))) +
    floor;
  const g = Math.abs(cotangent);
  const bound = new Array<number>(noise.data.length).fill(0);
  const magnitude = new Array<number>(noise.data.length).fill(0);
  const terms = new Array<number>(noise.data.length).fill(0);
  la.forEach((v, i) => {
    const e = scalarNoise ? 0 : i;
    terms[e]! += 1;
    if (clipGradient(raw[i]!, clip) === 0) return;
    const slope = Math.abs(klApproxDerivative(v, profile));
    bound[e]! += g * (klSlopeError(v, profile, u) + 8 * u * slope);
    magnitude[e]! += g * slope;
  });
  return { kl, noise: bound.map((b, e) => b + terms[e]! * u * magnitude[e]! + floor) };
}

// ---------------------------------------------------------------------------
// The Monte Carlo predictive of a dense layer (spec/fast.md#monte-carlo-predictive)

/**
 * `svd.dense.predict_mc` / `vd.dense.predict_mc`, with `c.eps` the draws
 * [S, batch, out]. Per draw s the output's bound t_s is the training
 * forward's (layerError); then, with o_s the reference outputs and
 * p_s = softmax(o_s):
 *   mean_output:  mean_s t_s + 2 (S + 1) u mean_s |o_s|
 *   mean_softmax: mean_s p_s (2 D_s + 2 u R_s + 2 (C + 3) u) + 2 (S + 1) u mean_s p_s
 * D_s the largest t_s of the row (a shift of the logits by at most D moves
 * each probability by a factor within e^{+-2D}), R_s the row's range
 * max - min (the rounding of z - max), C the classes (the sum and the division).
 */
export function predictMcError(
  c: LayerErrorInputs,
  model: ErrorModelOptions,
): { nearEdge: boolean; meanOutput: number[]; meanSoftmax: number[] } {
  const { u, floor } = model;
  const [draws, batch, out] = c.eps.shape as [number, number, number];
  const size = batch * out;
  const meanOutput = new Array<number>(size).fill(0);
  const meanSoftmax = new Array<number>(size).fill(0);
  let nearEdge = false;
  for (let d = 0; d < draws; d++) {
    const eps: Tensor = { shape: [batch, out], data: c.eps.data.slice(d * size, (d + 1) * size) };
    const t = layerError({ ...c, eps }, model);
    nearEdge ||= t.nearEdge;
    const o = denseTrain({ x: c.x, theta: c.theta, noise: c.noise, bias: c.bias, eps }, c.profile, {
      trainClip: c.trainClip,
    }).output.data;
    for (let b = 0; b < batch; b++) {
      const row = o.slice(b * out, (b + 1) * out);
      const max = Math.max(...row);
      const min = Math.min(...row);
      const e = row.map((z) => Math.exp(z - max));
      const total = sum(e);
      const D = Math.max(...t.output.slice(b * out, (b + 1) * out));
      for (let j = 0; j < out; j++) {
        const k = b * out + j;
        const p = e[j]! / total;
        meanOutput[k]! += t.output[k]! + 2 * (draws + 1) * u * Math.abs(row[j]!);
        meanSoftmax[k]! +=
          p * (2 * D + 2 * u * (max - min) + 2 * (out + 3) * u) + 2 * (draws + 1) * u * p;
      }
    }
  }
  return {
    nearEdge,
    meanOutput: meanOutput.map((v) => v / draws + floor),
    meanSoftmax: meanSoftmax.map((v) => v / draws + floor),
  };
}
