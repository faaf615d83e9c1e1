/**
 * Fast (float32, TensorFlow.js) per-weight quantities: log_alpha with the
 * profile's clip, the keep mask, the per-weight variance (spec/log-alpha.md,
 * spec/fast.md#numerics).
 *
 * The `...Tf` functions work on tf.Tensors and are safe inside tf.grad: no
 * op on their gradient path lacks a gradient on cpu or wasm, and no
 * `inf * 0` appears in their backward pass. The keep mask is the exception
 * on purpose: it is piecewise constant, so it is computed once from the
 * values, outside any gradient closure, and passed in as data.
 */
import * as tf from '@tensorflow/tfjs';

import type { LayerConventions, LayerKind, Profile } from '../profiles.js';
import { checkTensor, type Tensor } from '../tensor.js';
import { checkLayer, checkNoise, checkProfile, fromTf, scoped, toTf } from './io.js';

export interface LogAlphaTf {
  /** log_sigma2 (2 * log_sigma for profiles that learn log_sigma), the noise parameter's shape. */
  readonly logSigma2: tf.Tensor;
  /** log_alpha before the clip, theta's shape; +Infinity where the log's argument is 0. */
  readonly raw: tf.Tensor;
  /** log_alpha after the profile's clip, theta's shape. */
  readonly clipped: tf.Tensor;
}

/**
 * The identity with a zero gradient. TensorFlow.js has no stopGradient op;
 * a custom gradient gives one.
 */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args) => {
  const x = args[0] as tf.Tensor;
  return { value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
});

/** 2^64: from here on theta^2 overflows float32 (its maximum is just below 2^128). */
const SQUARE_OVERFLOWS_FROM = 2 ** 64;

/**
 * `a <= 0` as a bool tensor that may sit on a gradient path: `greater`,
 * `less`, `lessEqual` and `equal` have no gradient in tfjs 4.22, while
 * `greaterEqual` has one (zero everywhere).
 */
function notPositive(a: tf.Tensor): tf.Tensor {
  return tf.greaterEqual(tf.zerosLike(a), a);
}

/**
 * log(arg) where arg > 0, and `fallback` where arg == 0 (arg is never
 * negative here). The log is taken of a safe argument (1 where arg == 0) and
 * the result selected afterwards, so the backward pass never divides by 0:
 * a gradient reaching the unselected branch is multiplied by 0 first.
 */
function guardedLog(arg: tf.Tensor, fallback: number): tf.Tensor {
  const zero = notPositive(arg);
  const safe = tf.where(zero, tf.onesLike(arg), arg);
  return tf.where(zero, tf.fill(arg.shape, fallback), tf.log(safe));
}

/**
 * log(|theta| + eps) with the spec's derivative at theta = 0, which is 0: tfjs's Abs
 * gradient there is -1 (the sign convention of its step), so |theta| is taken of a theta
 * whose zero entries are replaced, which also cuts them from the gradient. With eps = 0
 * the value at theta = 0 is -inf (log_alpha = +inf), through guardedLog.
 */
function logAbsTheta(theta: tf.Tensor, eps: number): tf.Tensor {
  const zero = notPositive(tf.abs(theta));
  const absTheta = tf.where(
    zero,
    tf.zerosLike(theta),
    tf.abs(tf.where(zero, tf.onesLike(theta), theta)),
  );
  return guardedLog(eps === 0 ? absTheta : tf.add(absTheta, eps), -Infinity);
}

/**
 * log_alpha before and after the clip (spec/log-alpha.md), for one layer
 * kind's conventions. Inside the clip the gradient is the analytic one; at
 * and beyond an infinite log_alpha it is 0; at a clip bound it passes
 * (tf.clipByValue's gradient is 1 on the closed interval).
 */
export function logAlphaTf(
  theta: tf.Tensor,
  noise: tf.Tensor,
  conventions: LayerConventions,
  noiseParameter: Profile['noiseParameter'],
): LogAlphaTf {
  const logSigma2 = noiseParameter === 'log_sigma' ? tf.mul(noise, 2) : noise;
  const { form, thetaEps, clip } = conventions.logAlpha;
  let raw: tf.Tensor;
  if (form === 'learned') {
    raw = tf.broadcastTo(noise, theta.shape);
  } else if (form === 'log_theta2' && Math.fround(thetaEps) === 0) {
    // log(theta^2) evaluated as 2 log|theta|: the same function, but its backward forms
    // 1/theta instead of 1/theta^2, which overflows float32 for |theta| < ~1e-19 where the
    // derivative itself (2/theta) is finite; theta^2 itself would overflow from 2^64.
    raw = tf.sub(logSigma2, tf.mul(logAbsTheta(theta, 0), 2));
  } else if (form === 'log_theta2') {
    // theta^2 + thetaEps >= thetaEps > 0, so the log and 1/(theta^2 + eps) are finite;
    // only theta^2 can overflow (|theta| >= 2^64, where 2 theta may be infinite too):
    // there log(theta^2 + eps) is taken as 2 log|theta| (eps is far below rounding).
    const big = tf.greaterEqual(tf.abs(theta), SQUARE_OVERFLOWS_FROM);
    const small = tf.where(big, tf.zerosLike(theta), theta);
    const large = tf.where(big, theta, tf.onesLike(theta));
    const logSmall = tf.log(tf.add(tf.square(small), thetaEps));
    const logLarge = tf.mul(tf.log(tf.abs(large)), 2);
    raw = tf.sub(logSigma2, tf.where(big, logLarge, logSmall));
  } else {
    raw = tf.sub(logSigma2, tf.mul(logAbsTheta(theta, Math.fround(thetaEps)), 2));
  }
  return { logSigma2, raw, clipped: clipTf(raw, clip) };
}

/**
 * The profile's clip of log_alpha. tf.clipByValue passes the gradient on the
 * closed interval (gradientAtBound 1); with gradientAtBound 0 the bound itself
 * is selected as a constant, as a switch on `<=` / `>=` does. greaterEqual has
 * a gradient function in tfjs (lessEqual has none), hence the argument order.
 */
function clipTf(raw: tf.Tensor, clip: LayerConventions['logAlpha']['clip']): tf.Tensor {
  if (clip === null || (clip.min === null && clip.max === null)) return raw;
  if ((clip.gradientAtBound ?? 1) === 1) {
    return tf.clipByValue(raw, clip.min ?? -Infinity, clip.max ?? Infinity);
  }
  let y = raw;
  if (clip.min !== null) {
    y = tf.where(tf.greaterEqual(clip.min, y), tf.fill(y.shape, clip.min), y);
  }
  if (clip.max !== null) {
    y = tf.where(tf.greaterEqual(y, clip.max), tf.fill(y.shape, clip.max), y);
  }
  return y;
}

/**
 * The keep mask (1 kept, 0 pruned), float32, theta's shape; null when the
 * profile does not prune. Uses `lessEqual`/`less`, which have no gradient:
 * call it outside any gradient closure.
 */
export function keepMaskTf(la: LogAlphaTf, profile: Profile): tf.Tensor | null {
  const prune = profile.prune;
  if (prune === null) return null;
  const compared = prune.from === 'clipped' ? la.clipped : la.raw;
  // keep = NOT(log_alpha <comparison> threshold).
  const keep =
    prune.comparison === '>'
      ? tf.lessEqual(compared, prune.threshold)
      : tf.less(compared, prune.threshold);
  return tf.cast(keep, 'float32');
}

/**
 * The per-weight variance of the local reparameterization
 * (`profile.<layer>.variance`): exp(clipped log_alpha) * theta^2 with theta
 * unmasked, or exp(log_sigma2) unclipped.
 */
export function weightVarianceTf(
  theta: tf.Tensor,
  la: LogAlphaTf,
  conventions: LayerConventions,
): tf.Tensor {
  if (conventions.variance === 'sigma2') {
    return tf.broadcastTo(tf.exp(la.logSigma2), theta.shape);
  }
  if (conventions.variance === 'sigma2_rebuilt') {
    // log_sigma2 rebuilt from the clipped log_alpha: clipped + log(theta^2 + eps) =
    // clipped - raw + log_sigma2. Inside the clip clipped - raw is 0 and so is its
    // gradient (1 - 1, exactly); beyond it, it carries log(theta^2 + eps).
    return tf.exp(tf.add(tf.sub(la.clipped, la.raw), la.logSigma2));
  }
  if (conventions.logAlpha.form === 'learned' || conventions.logAlpha.clip?.max != null) {
    // log_alpha is finite here: a finite parameter, or a clip with a finite max.
    return tf.mul(tf.exp(la.clipped), tf.square(theta));
  }
  // No clip max: log_alpha is +inf where theta^2 + thetaEps == 0, and exp(inf) * 0
  // is taken as its limit along theta -> 0 at fixed sigma2, i.e. sigma2, with no
  // gradient (every gradient through an infinite log_alpha is 0: spec/log-alpha.md).
  const infinite = tf.greaterEqual(la.clipped, Infinity);
  const finiteLa = tf.where(infinite, tf.zerosLike(la.clipped), la.clipped);
  const sigma2 = stopGradient(tf.broadcastTo(tf.exp(la.logSigma2), theta.shape));
  return tf.where(infinite, sigma2, tf.mul(tf.exp(finiteLa), tf.square(theta)));
}

/** Validated theta and noise as float32 tf.Tensors, plus the profile and layer they belong to. */
export interface WeightInputs {
  readonly profile: Profile;
  readonly layer: LayerKind;
  readonly theta: Tensor;
  readonly noise: Tensor;
}

export function checkWeightInputs(
  thetaIn: unknown,
  noiseIn: unknown,
  profileIn: unknown,
  layerIn: unknown,
): WeightInputs {
  const profile = checkProfile(profileIn);
  const layer = checkLayer(layerIn);
  const theta = checkTensor('theta', thetaIn);
  const noise = checkNoise(noiseIn, theta, profile, layer);
  return { profile, layer, theta, noise };
}

/** Clipped log_alpha, theta's shape (op `<alg>.log_alpha`). */
export function fastLogAlpha(
  theta: Tensor,
  noise: Tensor,
  profile: Profile | string,
  layer: LayerKind,
): Tensor {
  const w = checkWeightInputs(theta, noise, profile, layer);
  return scoped(() =>
    fromTf(
      logAlphaTf(toTf(w.theta), toTf(w.noise), w.profile[w.layer], w.profile.noiseParameter)
        .clipped,
    ),
  );
}

/** The keep mask (1 kept, 0 pruned), theta's shape; all ones when the profile does not prune (op `<alg>.mask`). */
export function fastKeepMask(
  theta: Tensor,
  noise: Tensor,
  profile: Profile | string,
  layer: LayerKind,
): Tensor {
  const w = checkWeightInputs(theta, noise, profile, layer);
  return scoped(() => {
    const thetaTf = toTf(w.theta);
    const la = logAlphaTf(thetaTf, toTf(w.noise), w.profile[w.layer], w.profile.noiseParameter);
    return fromTf(keepMaskTf(la, w.profile) ?? tf.onesLike(thetaTf));
  });
}

/** The per-weight variance that enters the local reparameterization, theta's shape. */
export function fastWeightVariance(
  theta: Tensor,
  noise: Tensor,
  profile: Profile | string,
  layer: LayerKind,
): Tensor {
  const w = checkWeightInputs(theta, noise, profile, layer);
  return scoped(() => {
    const thetaTf = toTf(w.theta);
    const conventions = w.profile[w.layer];
    const la = logAlphaTf(thetaTf, toTf(w.noise), conventions, w.profile.noiseParameter);
    return fromTf(weightVarianceTf(thetaTf, la, conventions));
  });
}
