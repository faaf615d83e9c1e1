/**
 * Building blocks of the fast training step (spec/fast.md#training): the
 * per-weight quantities of one step computed once with their derivatives
 * ("fused weights"), the local-reparameterization layer and the KL as
 * tf.customGrad ops with hand-written backward passes (a convolution's as
 * forward convolutions, with no patch matrix), matrix products without
 * tfjs's transposed kernels, and a 2x2 max-pool with a correct gradient on
 * every backend.
 *
 * Why hand-written backward passes: autodiff through log_alpha, the clip,
 * the variance and the KL records some sixty elementwise kernels per layer
 * and differentiates each; the derivatives below need about a third of
 * that, and the matrix products of the backward pass avoid
 * `matMul(..., transposeA | transposeB)`, which tfjs-backend-wasm 4.22 runs
 * about ten times slower than a plain product after an explicit transpose.
 * `test/properties/fast-train.test.ts` holds the fused gradients (and tfjs
 * autodiff of the spec's own forward, `denseTrainTf`, `conv2dTrainTf`,
 * `layerKlTf`) to a float64 chain of the reference's VJPs.
 */
import * as tf from '@tensorflow/tfjs';

import { SVD_KL_K1, SVD_KL_K2, SVD_KL_K3, VD_KL_C1, VD_KL_C2, VD_KL_C3 } from '../constants.js';
import type { LayerConventions, LayerKind, Profile } from '../profiles.js';
import { sizeOf } from '../tensor.js';
import {
  convFilterGradientTf,
  convInputGradientTf,
  nativeConv,
  patchesTf,
  unitStride,
  type ConvGeometry,
} from './conv2d.js';
import { klForm } from './kl.js';

/** The largest finite float32: the bound that keeps 0 * (an overflowed 1/theta) at 0. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * tfjs-backend-wasm 4.22 runs matMul with transposeA or transposeB through a
 * slow generic loop (measured here: 17 ms for a 784x100 by 100x300 product
 * against 1.5 ms for the same product after tf.transpose). Elsewhere the
 * flags are at least as fast as an explicit transpose.
 */
function explicitTransposes(): boolean {
  return tf.getBackend() === 'wasm';
}

/** a^T @ b for 2-D a [k, m], b [k, n]. */
export function matMulTN(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  return explicitTransposes()
    ? tf.matMul(tf.transpose(a as tf.Tensor2D), b as tf.Tensor2D)
    : tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, true, false);
}

/** a @ b^T for 2-D a [m, k], b [n, k]. */
export function matMulNT(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  return explicitTransposes()
    ? tf.matMul(a as tf.Tensor2D, tf.transpose(b as tf.Tensor2D))
    : tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, false, true);
}

/**
 * Sum a tensor of theta's shape down to the noise parameter's shape (NumPy
 * broadcasting undone), for a learned log_alpha shared across weights.
 */
export function sumToShape(t: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const lead = t.shape.length - shape.length;
  const axes: number[] = [];
  t.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return tf.reshape(axes.length === 0 ? t : tf.sum(t, axes), [...shape]);
}

/**
 * Whether the fused step covers a layer's conventions. Not covered (the
 * step falls back to autodiff): a log_alpha from theta with no eps and no
 * clip max under the `alpha_theta2` variance, where log_alpha = +inf at
 * theta = 0 and the variance is the limit inf * 0 (no built-in profile);
 * a learned log_alpha with the `sigma2` variance (no log_sigma2 exists); a
 * KL with its own log_alpha (bayesgroup-theano's conv layer), a clip whose
 * gradient is 0 at the bounds (bayesgroup-theano) and the `sigma2_rebuilt`
 * variance (state-of-sparsity).
 */
export function fusable(conventions: LayerConventions): boolean {
  const { form, thetaEps, clip } = conventions.logAlpha;
  // The fused step reads one log_alpha for the forward and the KL, passes the clip's
  // gradient on the closed interval, and knows the alpha_theta2 and sigma2 variances.
  if (conventions.klLogAlpha !== null || (clip?.gradientAtBound ?? 1) === 0) return false;
  if (conventions.variance === 'sigma2_rebuilt') return false;
  if (form === 'learned') return conventions.variance === 'alpha_theta2';
  const infiniteAtZero = Math.fround(thetaEps) === 0 && (clip === null || clip.max === null);
  return !(infiniteAtZero && conventions.variance === 'alpha_theta2');
}

/** `1 - step(x)`: 1 where x <= 0 (and at -inf), 0 where x > 0. */
function notPositive(x: tf.Tensor): tf.Tensor {
  return tf.sub(1, tf.step(x));
}

/**
 * The per-weight quantities of one training step, from the current theta
 * and noise parameter, computed once outside any gradient tape, and the
 * partial derivatives the backward passes multiply by.
 */
export interface FusedWeightsTf {
  /** theta_m: theta times the keep mask where the training forward masks the mean, else theta. */
  readonly thetaMasked: tf.Tensor;
  /** s2_m: the per-weight variance, masked where the training forward masks it. */
  readonly varianceMasked: tf.Tensor;
  /** The layer's KL: the per-weight KL at the clipped log_alpha, summed (a scalar). */
  readonly klSum: tf.Tensor;
  /** d theta_m / d theta per weight: the mask, or null for 1. */
  readonly meanMask: tf.Tensor | null;
  /** d s2_m / d theta per weight, or null where it is 0 (the `sigma2` variance). */
  readonly varianceThetaCoef: tf.Tensor | null;
  /** d s2_m / d noise per weight, theta's shape (summed to the noise shape by the caller). */
  readonly varianceNoiseCoef: tf.Tensor;
  /** dKL / d theta per weight, or null where it is 0 (a learned log_alpha). */
  readonly klThetaCoef: tf.Tensor | null;
  /** dKL / d noise per weight, theta's shape. */
  readonly klNoiseCoef: tf.Tensor;
}

/**
 * log_alpha (raw and clipped) and its derivatives, for a log_alpha computed
 * from theta: L = log(theta^2 + eps) or 2 log(|theta| + eps), raw =
 * log_sigma2 - L, with dL/dtheta finite everywhere (the spec's derivative
 * at theta = 0 is 0; where 2/theta overflows, raw is far beyond every clip
 * and the derivative is multiplied by 0).
 */
function logAlphaFromTheta(
  theta: tf.Tensor,
  logSigma2: tf.Tensor,
  conventions: LayerConventions,
): { raw: tf.Tensor; dL: tf.Tensor } {
  const { form, thetaEps } = conventions.logAlpha;
  const eps = Math.fround(thetaEps);
  let L: tf.Tensor;
  let dL: tf.Tensor;
  if (eps === 0) {
    // log(theta^2) and 2 log|theta| are the same function; the latter has no theta^2 to
    // underflow (|theta| < 1e-19) or overflow (|theta| >= 2^64).
    L = tf.mul(tf.log(tf.abs(theta)), 2);
    dL = tf.clipByValue(tf.div(2, theta), -FLOAT32_MAX, FLOAT32_MAX);
  } else if (form === 'log_theta2') {
    const q = tf.add(tf.square(theta), eps);
    L = tf.log(q);
    dL = tf.div(tf.mul(theta, 2), q);
  } else {
    const q = tf.add(tf.abs(theta), eps);
    L = tf.mul(tf.log(q), 2);
    // sign(theta) with sign(0) = 0 from two cheap steps (tf.sign is slow on wasm).
    const sign = tf.sub(tf.step(theta), tf.step(tf.neg(theta)));
    dL = tf.div(tf.mul(sign, 2), q);
  }
  return { raw: tf.sub(logSigma2, L), dL };
}

/**
 * 1 where the clip passes the gradient (min <= raw <= max, closed) and 0
 * outside it and wherever raw is infinite (every gradient through an
 * infinite log_alpha is 0), with its complement. A missing bound is
 * float32's largest finite value.
 */
function clipIndicators(
  raw: tf.Tensor,
  conventions: LayerConventions,
): { inside: tf.Tensor; outside: tf.Tensor } {
  const clip = conventions.logAlpha.clip;
  const min = clip?.min ?? -FLOAT32_MAX;
  const max = clip?.max ?? FLOAT32_MAX;
  // For floats, a - b > 0 exactly when a > b (no rounding changes a sign), so the steps
  // below are exact comparisons with closed bounds.
  const outside =
    min === -max
      ? tf.step(tf.sub(tf.abs(raw), max))
      : tf.add(tf.step(tf.sub(raw, max)), tf.step(tf.sub(min, raw)));
  return { inside: tf.sub(1, outside), outside };
}

/**
 * The keep mask as 0/1 floats from steps (exact comparisons, see clipIndicators):
 * keep = NOT(log_alpha <comparison> threshold).
 */
function keepFrom(compared: tf.Tensor, prune: NonNullable<Profile['prune']>): tf.Tensor {
  return prune.comparison === '>'
    ? notPositive(tf.sub(compared, prune.threshold))
    : tf.step(tf.sub(prune.threshold, compared));
}

/** Entries per block of blockSum and sumOfLogs. */
const BLOCK = 8;

/** The tensor flattened and padded with `fill` to a whole number of rows of BLOCK. */
function blocks(t: tf.Tensor, fill: number): tf.Tensor2D {
  const flat = tf.reshape(t, [-1]);
  const extra = (BLOCK - (t.size % BLOCK)) % BLOCK;
  const padded = extra === 0 ? flat : tf.pad(flat, [[0, extra]], fill);
  return tf.reshape(padded, [-1, BLOCK]);
}

/**
 * The sum of every entry, in two levels (rows of BLOCK, then the rows): a
 * float32 sum of n terms in one running total errs by up to about n u times
 * the sum of magnitudes; in two levels by about (BLOCK + n / BLOCK) u.
 */
function blockSum(t: tf.Tensor): tf.Tensor {
  return tf.sum(tf.sum(blocks(t, 0), 1));
}

/**
 * sum(log(p)) for p in (0, 1] as the sum of the logs of products of BLOCK
 * entries: one log per BLOCK entries (log is a scalar loop on wasm, about 1 ms
 * per 235,200 entries; the product is cheap) and a shorter float32 sum. Each
 * product of BLOCK values errs by about BLOCK u relatively, i.e. its log by
 * BLOCK u absolutely, the same as BLOCK separate logs. Used where p =
 * sigmoid(log_alpha) with log_alpha >= clipMin >= PRODUCT_SAFE_MIN, so that a
 * product stays a normal float32 (sigmoid(x) >= e^x / 2 for x <= 0, so the
 * product is >= e^(BLOCK x) / 2^BLOCK >= 2^-126); without such a bound, one
 * log per entry.
 */
const PRODUCT_SAFE_MIN = (Math.log(2 ** -126) + BLOCK * Math.LN2) / BLOCK;

function sumOfLogs(p: tf.Tensor, clipMin: number | null): tf.Tensor {
  if (clipMin === null || clipMin < PRODUCT_SAFE_MIN) return blockSum(tf.log(p));
  return tf.sum(tf.log(tf.prod(blocks(p, 1), 1)));
}

/**
 * The per-weight quantities of a layer for one training step (see
 * FusedWeightsTf), outside any gradient tape. Needs fusable(conventions).
 *
 * On wasm exp(log_alpha) is formed as sigmoid(la) / sigmoid(-la) (the same
 * function; there the sigmoid is vectorised and exp is not: 0.6 ms against
 * 1.7 ms per 235,200 weights; the variance stays within 3.4 ulps of exp's),
 * and the KL's softplus(-la) as -log(sigmoid(la)) (the same function; its
 * absolute error per weight is a few float32 ulps of 1, below the error of
 * the float32 sum it enters), summed by sumOfLogs. sigmoid(-la) serves the
 * KL derivative too.
 */
export function fusedWeightsTf(
  theta: tf.Tensor,
  noise: tf.Tensor,
  profile: Profile,
  layer: LayerKind,
  trainClip: boolean,
): FusedWeightsTf {
  const conventions = profile[layer];
  const kl = klForm(profile.kl);
  const learned = conventions.logAlpha.form === 'learned';
  // d log_sigma2 / d noise.
  const noiseScale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
  const logSigma2 = noiseScale === 2 ? tf.mul(noise, 2) : noise;

  let raw: tf.Tensor;
  let dL: tf.Tensor | null = null;
  if (learned) {
    raw = tf.broadcastTo(noise, theta.shape);
  } else {
    const r = logAlphaFromTheta(theta, logSigma2, conventions);
    raw = r.raw;
    dL = r.dL;
  }
  const clip = conventions.logAlpha.clip;
  const la =
    clip === null || (clip.min === null && clip.max === null)
      ? raw
      : tf.clipByValue(raw, clip.min ?? -Infinity, clip.max ?? Infinity);
  const { inside: inClip, outside: outClip } = clipIndicators(raw, conventions);

  // The training forward applies the keep mask only with trainClip (the eval forward and
  // the sparsity report compute it from the values: keepMaskTf).
  const prune = profile.prune;
  const keep =
    prune === null || !trainClip ? null : keepFrom(prune.from === 'clipped' ? la : raw, prune);
  const meanMask = keep;
  const varianceMask = conventions.trainMask === 'mean_and_variance' ? keep : null;

  const sigmoidPos = tf.sigmoid(la);
  const sigmoidNeg = tf.sigmoid(tf.neg(la));
  // exp(la) = sigmoid(la) / sigmoid(-la) where the sigmoid is the cheaper kernel (wasm);
  // the cpu backend's sigmoid is slower than its exp.
  const needAlpha = conventions.variance === 'alpha_theta2' || kl.kind === 'vd_cubic';
  const alpha = !needAlpha
    ? null
    : tf.getBackend() === 'wasm'
      ? tf.div(sigmoidPos, sigmoidNeg)
      : tf.exp(la);

  // KL per weight and -dKL/dla (the derivative with its sign flipped, so that both of the
  // SVD form's terms are positive).
  let klSum: tf.Tensor;
  let negKlSlope: tf.Tensor;
  const n = la.size;
  if (kl.kind === 'svd_sigmoid') {
    // KL = k1 sigmoid(-(k2 + k3 la)) + 0.5 softplus(-la) - (k1 + C).
    const s = tf.sigmoid(tf.sub(tf.mul(la, -SVD_KL_K3), SVD_KL_K2));
    const offset = kl.constant === 'minus_k1' ? 0 : SVD_KL_K1;
    klSum = tf.sub(
      tf.add(
        tf.mul(blockSum(s), SVD_KL_K1),
        tf.mul(sumOfLogs(sigmoidPos, conventions.logAlpha.clip?.min ?? null), -0.5),
      ),
      n * offset,
    );
    // -KL' = k1 k3 s (1 - s) + 0.5 sigmoid(-la).
    negKlSlope = tf.add(
      tf.mul(tf.mul(s, tf.sub(1, s)), SVD_KL_K1 * SVD_KL_K3),
      tf.mul(sigmoidNeg, 0.5),
    );
  } else {
    // KL = -(0.5 la + a (c1 + a (c2 + a c3))), a = exp(la).
    const a = alpha!;
    const cubic = tf.mul(a, tf.add(tf.mul(a, tf.add(tf.mul(a, VD_KL_C3), VD_KL_C2)), VD_KL_C1));
    klSum = tf.neg(tf.add(tf.mul(blockSum(la), 0.5), blockSum(cubic)));
    // -KL' = 0.5 + a (c1 + a (2 c2 + 3 c3 a)).
    negKlSlope = tf.add(
      tf.mul(a, tf.add(tf.mul(a, tf.add(tf.mul(a, 3 * VD_KL_C3), 2 * VD_KL_C2)), VD_KL_C1)),
      0.5,
    );
  }
  // dKL/dla through the clip: dKL/dnoise = inClip KL' dla/dnoise, dKL/dtheta = -inClip KL' dL.
  const negKlClipped = tf.mul(negKlSlope, inClip);
  const klNoiseCoef = tf.mul(negKlClipped, -noiseScale);
  const klThetaCoef = dL === null ? null : tf.mul(negKlClipped, dL);

  // The variance and its partials.
  let variance: tf.Tensor;
  let varianceThetaCoef: tf.Tensor | null;
  let varianceNoiseCoef: tf.Tensor;
  if (conventions.variance === 'alpha_theta2') {
    // s2 = exp(la) theta^2: ds2/dtheta = 2 theta exp(la) + s2 dla/dtheta, ds2/dla = s2.
    const thetaAlpha = tf.mul(theta, alpha!);
    variance = tf.mul(thetaAlpha, theta);
    const throughLa = tf.mul(variance, inClip);
    if (dL === null) {
      varianceThetaCoef = tf.mul(thetaAlpha, 2);
    } else if (Math.fround(conventions.logAlpha.thetaEps) === 0) {
      // L = 2 log|theta|: s2 dL = 2 theta exp(la) exactly, so inside the clip the two terms
      // cancel (the additive reparameterization: ds2/dtheta = 0) and outside only the
      // direct one is left. Written so, the cancellation is exact rather than a rounding
      // residue of autodiff's two products.
      varianceThetaCoef = tf.mul(tf.mul(thetaAlpha, outClip), 2);
    } else {
      varianceThetaCoef = tf.sub(tf.mul(thetaAlpha, 2), tf.mul(throughLa, dL));
    }
    varianceNoiseCoef = noiseScale === 1 ? throughLa : tf.mul(throughLa, noiseScale);
  } else {
    // s2 = exp(log_sigma2), unclipped: it does not depend on theta.
    variance = tf.exp(logSigma2);
    varianceThetaCoef = null;
    varianceNoiseCoef = noiseScale === 1 ? variance : tf.mul(variance, noiseScale);
  }
  if (varianceMask !== null) {
    if (varianceThetaCoef !== null) varianceThetaCoef = tf.mul(varianceThetaCoef, varianceMask);
    varianceNoiseCoef = tf.mul(varianceNoiseCoef, varianceMask);
  }
  return {
    thetaMasked: meanMask === null ? theta : tf.mul(theta, meanMask),
    varianceMasked: varianceMask === null ? variance : tf.mul(variance, varianceMask),
    klSum,
    meanMask,
    varianceThetaCoef,
    varianceNoiseCoef,
    klThetaCoef,
    klNoiseCoef,
  };
}

/**
 * The layers' KL as an op with the fused derivatives: its value is
 * `w.klSum`, its VJP `dy * dKL/dtheta`, `dy * dKL/dnoise` (summed to the
 * noise shape).
 */
export function fusedKlTf(theta: tf.Tensor, noise: tf.Tensor, w: FusedWeightsTf): tf.Tensor {
  const op = tf.customGrad((...args) => {
    const [t, n] = args as [tf.Tensor, tf.Tensor];
    return {
      value: w.klSum.clone(),
      gradFunc: (dy: tf.Tensor) => [
        w.klThetaCoef === null ? tf.zerosLike(t) : tf.mul(w.klThetaCoef, dy),
        sumToShape(tf.mul(w.klNoiseCoef, dy), n.shape),
      ],
    };
  });
  return op(theta, noise);
}

/**
 * dtheta and dnoise from the gradients reaching theta_m (`gMean`) and s2_m
 * (`gVariance`), both of theta's shape.
 */
function parameterGradients(
  gMean: tf.Tensor,
  gVariance: tf.Tensor,
  noiseShape: readonly number[],
  w: FusedWeightsTf,
): [tf.Tensor, tf.Tensor] {
  let dTheta = w.meanMask === null ? gMean : tf.mul(gMean, w.meanMask);
  if (w.varianceThetaCoef !== null) {
    dTheta = tf.add(dTheta, tf.mul(gVariance, w.varianceThetaCoef));
  }
  return [dTheta, sumToShape(tf.mul(gVariance, w.varianceNoiseCoef), noiseShape)];
}

type CustomForward<T extends tf.Tensor> = (
  x: T,
  save: tf.GradSaveFunc,
) => { value: T; gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * tf.customGrad over (x, ...params) when x needs a gradient, else over the
 * params alone: the first layer's input is data, and leaving it out of the
 * op spares its backward. `forward` reads the params from its closure (they
 * are the op's inputs only so that their gradients reach them); its gradFunc
 * returns [dx, ...dparams], or [...dparams] without x.
 */
function customGradOptionalX<T extends tf.Tensor>(
  x: T,
  params: readonly tf.Tensor[],
  xNeedsGradient: boolean,
  forward: CustomForward<T>,
): T {
  const op = tf.customGrad((...args) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    return forward(xNeedsGradient ? (args[0] as T) : x, save);
  });
  return (xNeedsGradient ? op(x, ...params) : op(...params)) as T;
}

/**
 * The training forward of the local reparameterization on a matrix input
 * (a dense layer's x, or a convolution's patch matrix), with its backward
 * pass written out:
 *
 *   mean = x @ theta_m + b,  variance = (x*x) @ s2_m,  out = mean + sqrt(variance + sqrtEps) * eps
 *   h = g * eps / (2 sd)
 *   dtheta = (x^T g) * dtheta_m/dtheta + ((x*x)^T h) * ds2_m/dtheta
 *   dnoise = sum_to_noise_shape(((x*x)^T h) * ds2_m/dnoise)
 *   db = sum_rows(g),   dx = g theta_m^T + 2 x (h s2_m^T)
 *
 * `x` is differentiated only when `xNeedsGradient` (the data of the first
 * layer is not); then it is the op's first input.
 */
export function fusedLinearTf(
  x: tf.Tensor2D,
  theta: tf.Tensor,
  noise: tf.Tensor,
  bias: tf.Tensor,
  w: FusedWeightsTf,
  eps: tf.Tensor2D,
  sqrtEps: number,
  xNeedsGradient: boolean,
): tf.Tensor2D {
  const rows = sizeOf(w.thetaMasked.shape.slice(0, -1));
  const cols = w.thetaMasked.shape[w.thetaMasked.shape.length - 1]!;
  const thetaMatrix = tf.reshape(w.thetaMasked, [rows, cols]);
  const varianceMatrix = tf.reshape(w.varianceMasked, [rows, cols]);
  const forward = (
    xIn: tf.Tensor2D,
    save: tf.GradSaveFunc,
  ): { value: tf.Tensor2D; gradFunc: (g: tf.Tensor2D, saved: tf.Tensor[]) => tf.Tensor[] } => {
    const mean = tf.add(tf.matMul(xIn, thetaMatrix), bias);
    const variance = tf.matMul(tf.square(xIn), varianceMatrix);
    const sd = tf.sqrt(tf.add(variance, sqrtEps));
    // eps / (2 sd): what the output's cotangent is multiplied by to reach the variance.
    const halfEpsOverSd = tf.div(tf.mul(eps, 0.5), sd);
    const value = tf.add(mean, tf.mul(sd, eps)) as tf.Tensor2D;
    // Everything the backward reads that was made inside the taped function must be saved:
    // tf.grads disposes the forward's intermediates before it runs the backward.
    save([xIn, halfEpsOverSd, thetaMatrix, varianceMatrix]);
    return {
      value,
      gradFunc: (g, saved) => {
        const [xs, r, thetaM, varianceM] = saved as [
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
        ];
        const h = tf.mul(g, r);
        let gMean: tf.Tensor;
        let gVariance: tf.Tensor;
        if (explicitTransposes()) {
          // One transpose: the transpose of x*x is the square of x's.
          const xT = tf.transpose(xs);
          gMean = tf.matMul(xT, g);
          gVariance = tf.matMul(tf.square(xT), h);
        } else {
          gMean = tf.matMul(xs, g, true, false);
          gVariance = tf.matMul(tf.square(xs), h, true, false);
        }
        const [dTheta, dNoise] = parameterGradients(
          tf.reshape(gMean, theta.shape),
          tf.reshape(gVariance, theta.shape),
          noise.shape,
          w,
        );
        const dBias = tf.reshape(tf.sum(g, 0), bias.shape);
        if (!xNeedsGradient) return [dTheta, dNoise, dBias];
        const dx = tf.add(matMulNT(g, thetaM), tf.mul(tf.mul(xs, 2), matMulNT(h, varianceM)));
        return [dx, dTheta, dNoise, dBias];
      },
    };
  };
  return customGradOptionalX(x, [theta, noise, bias], xNeedsGradient, forward);
}

/**
 * A conv2d layer's training forward with fusedLinearTf's backward (x its
 * NHWC input, eps of the output's shape). Stride 1 runs on convolution
 * kernels alone, with no patch matrix:
 *
 *   mean = conv(x, theta_m) + b,  variance = conv(x*x, s2_m)
 *   dtheta_m = corr(x, g),  ds2_m = corr(x*x, h)     (convFilterGradientTf)
 *   dx = conv^T(g, theta_m) + 2 x conv^T(h, s2_m)    (convInputGradientTf)
 *
 * which are fusedLinearTf's products on the patch matrix P summed without
 * forming it (the patch of x*x is P*P, and the scatter-add of 2 P (h s2_m^T)
 * back to the input is 2 x times the scatter-add of h s2_m^T). On wasm it
 * is about 5x faster than the patch matrix built from slices, whose
 * concat's gradient is one tf.slice per tap, each copying its whole input
 * out of the wasm heap (measured: spec/fast.md#speed). Strided convolutions build the patch matrix (patchesTf) and call
 * fusedLinearTf.
 */
export function fusedConv2dTf(
  x: tf.Tensor4D,
  theta: tf.Tensor,
  noise: tf.Tensor,
  bias: tf.Tensor,
  w: FusedWeightsTf,
  eps: tf.Tensor4D,
  sqrtEps: number,
  xNeedsGradient: boolean,
  geometry: ConvGeometry,
): tf.Tensor4D {
  const g = geometry;
  const outShape: [number, number, number, number] = [
    g.batch,
    g.outHeight,
    g.outWidth,
    g.outChannels,
  ];
  if (!unitStride(g)) {
    const rows = g.batch * g.outHeight * g.outWidth;
    const out = fusedLinearTf(
      patchesTf(x, g),
      theta,
      noise,
      bias,
      w,
      tf.reshape(eps, [rows, g.outChannels]),
      sqrtEps,
      xNeedsGradient,
    );
    return tf.reshape(out, outShape);
  }
  const forward = (
    xIn: tf.Tensor4D,
    save: tf.GradSaveFunc,
  ): { value: tf.Tensor4D; gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => tf.Tensor[] } => {
    const mean = tf.add(nativeConv(xIn, w.thetaMasked, g), bias);
    const variance = nativeConv(tf.square(xIn), w.varianceMasked, g);
    const sd = tf.sqrt(tf.add(variance, sqrtEps));
    const halfEpsOverSd = tf.div(tf.mul(eps, 0.5), sd);
    const value = tf.add(mean, tf.mul(sd, eps)) as tf.Tensor4D;
    // The backward reads only saved tensors (see fusedLinearTf).
    save([xIn, halfEpsOverSd, w.thetaMasked, w.varianceMasked]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [xs, r, thetaM, varianceM] = saved as [tf.Tensor4D, tf.Tensor, tf.Tensor, tf.Tensor];
        const h = tf.mul(dy, r);
        // One transpose for both terms: the transpose of x*x is the square of x's.
        const xChannelsFirst = tf.transpose(xs, [3, 1, 2, 0]);
        const [dTheta, dNoise] = parameterGradients(
          convFilterGradientTf(xChannelsFirst, dy, g),
          convFilterGradientTf(tf.square(xChannelsFirst), h, g),
          noise.shape,
          w,
        );
        const dBias = tf.reshape(tf.sum(tf.reshape(dy, [-1, g.outChannels]), 0), bias.shape);
        if (!xNeedsGradient) return [dTheta, dNoise, dBias];
        const dx = tf.add(
          convInputGradientTf(dy, thetaM, g),
          tf.mul(tf.mul(xs, 2), convInputGradientTf(h, varianceM, g)),
        );
        return [dx, dTheta, dNoise, dBias];
      },
    };
  };
  return customGradOptionalX(x, [theta, noise, bias], xNeedsGradient, forward);
}

/**
 * A deterministic dense layer x @ w + b with the same transpose-free
 * backward as fusedLinearTf: the plain baseline of the benchmark.
 */
export function plainLinearTf(
  x: tf.Tensor2D,
  weights: tf.Tensor2D,
  bias: tf.Tensor,
  xNeedsGradient: boolean,
): tf.Tensor2D {
  return customGradOptionalX(x, [weights, bias], xNeedsGradient, (xIn, save) => {
    save([xIn, weights]);
    return {
      value: tf.add(tf.matMul(xIn, weights), bias) as tf.Tensor2D,
      gradFunc: (g, saved) => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const grads = [matMulTN(xs, g), tf.sum(g, 0)];
        return xNeedsGradient ? [matMulNT(g, ws), ...grads] : grads;
      },
    };
  });
}

/**
 * A deterministic conv2d layer conv(x, weights) + b (NHWC, HWIO) with the
 * backward of fusedConv2dTf's mean term: the baseline network's convolution.
 * Strided convolutions go through patchesTf and plainLinearTf.
 */
export function plainConv2dTf(
  x: tf.Tensor4D,
  weights: tf.Tensor,
  bias: tf.Tensor,
  xNeedsGradient: boolean,
  geometry: ConvGeometry,
): tf.Tensor4D {
  const g = geometry;
  const outShape: [number, number, number, number] = [
    g.batch,
    g.outHeight,
    g.outWidth,
    g.outChannels,
  ];
  if (!unitStride(g)) {
    const matrix = tf.reshape(weights, [-1, g.outChannels]) as tf.Tensor2D;
    return tf.reshape(plainLinearTf(patchesTf(x, g), matrix, bias, xNeedsGradient), outShape);
  }
  return customGradOptionalX(x, [weights, bias], xNeedsGradient, (xIn, save) => {
    save([xIn, weights]);
    return {
      value: tf.add(nativeConv(xIn, weights, g), bias) as tf.Tensor4D,
      gradFunc: (dy, saved) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor];
        const grads = [
          convFilterGradientTf(tf.transpose(xs, [3, 1, 2, 0]), dy, g),
          tf.reshape(tf.sum(tf.reshape(dy, [-1, g.outChannels]), 0), bias.shape),
        ];
        return xNeedsGradient ? [convInputGradientTf(dy, ws, g), ...grads] : grads;
      },
    };
  });
}

/**
 * 2x2 max-pool, stride 2, 'valid' (an odd last row or column is dropped),
 * NHWC, with the gradient of the first maximum of each window in row-major
 * order (TensorFlow's and PyTorch's rule) on every backend.
 *
 * `native` is tf.maxPool. Its gradient kernel on wasm (4.22) starts each
 * window's running maximum at FLT_MIN (the smallest positive float32), so a
 * window whose maximum is below that (negative, zero, or a positive
 * subnormal) sends its gradient to the window's first entry (seen:
 * [-3, -1, -2, -4] gives [1, 0, 0, 0]). `ops` keeps tf.maxPool's forward
 * (correct on every backend) and writes the backward from elementwise ops
 * (see maxPoolBackward). Neither handles NaN; a window of -inf only
 * (never reached by finite training) is not covered either.
 */
export function maxPool2x2Tf(x: tf.Tensor4D, implementation: 'native' | 'ops'): tf.Tensor4D {
  if (implementation === 'native') return tf.maxPool(x, 2, 2, 'valid');
  const op = tf.customGrad((...args) => {
    const [input, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
    const value = tf.maxPool(input, 2, 2, 'valid');
    save([input, value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, ys] = saved as [tf.Tensor4D, tf.Tensor4D];
        return maxPoolBackward(xs, ys, dy);
      },
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * The backward pass of the 2x2 max-pool, from 4-D transposes, reshapes,
 * same-shape arithmetic and one small matMul (on wasm, 4.22, tf.slice copies
 * its whole input out of the heap on every call and 6-D equal, tile and
 * transpose take generic slow paths, 50 to 150 ms at LeNet-5 sizes).
 *
 * The input is rearranged to [4, M]: row k holds window position (k >> 1,
 * k & 1) of every window, M = n * oh * ow * c. eq = 1 where an entry equals
 * its window's maximum, as 1 - step(y - x) (x <= y, and y - x > 0 exactly
 * when y > x). The running count of maxima in row-major order is the
 * product of the lower-triangular 4x4 matrix of ones with eq (integers <= 4:
 * exact in float32), and the first maximum is where that count is 1.
 */
function maxPoolBackward(x: tf.Tensor4D, y: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [, oh, ow] = y.shape;
  const windows = n * oh * ow;
  const m = windows * c;
  const even = h === 2 * oh && w === 2 * ow;
  const cropped = even ? x : tf.slice(x, [0, 0, 0, 0], [n, 2 * oh, 2 * ow, c]);
  // [n * oh, 2, ow, 2c] -> [2 (row), n * oh, ow, 2c] -> [2 (row), windows, 2 (column), c]
  // -> [2 (row), 2 (column), windows, c] -> [4, m].
  const byRow = tf.transpose(tf.reshape(cropped, [n * oh, 2, ow, 2 * c]), [1, 0, 2, 3]);
  const taps = tf.reshape(tf.transpose(tf.reshape(byRow, [2, windows, 2, c]), [0, 2, 1, 3]), [
    4,
    m,
  ]);
  const isMax = tf.sub(1, tf.step(tf.sub(tf.reshape(y, [1, m]), taps)));
  const lowerOnes = tf.tensor2d([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], [4, 4]);
  const count = tf.matMul(lowerOnes, isMax as tf.Tensor2D);
  const first = tf.mul(isMax, tf.sub(1, tf.step(tf.sub(count, 1))));
  const dTaps = tf.mul(first, tf.reshape(dy, [1, m]));
  const dByRow = tf.transpose(tf.reshape(dTaps, [2, 2, windows, c]), [0, 2, 1, 3]);
  const dCropped = tf.reshape(
    tf.transpose(tf.reshape(dByRow, [2, n * oh, ow, 2 * c]), [1, 0, 2, 3]),
    [n, 2 * oh, 2 * ow, c],
  ) as tf.Tensor4D;
  if (even) return dCropped;
  return tf.pad(dCropped, [
    [0, 0],
    [0, h - 2 * oh],
    [0, w - 2 * ow],
    [0, 0],
  ]);
}

/** The max-pool implementation the training step uses on the active backend. */
export function maxPoolImplementation(): 'native' | 'ops' {
  return tf.getBackend() === 'wasm' ? 'ops' : 'native';
}
