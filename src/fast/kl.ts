/**
 * Fast (float32) KL approximations, per weight and summed per layer, and the
 * layer KL's gradient (spec/kl.md, spec/objective.md#kllayer,
 * spec/fast.md#numerics).
 */
import * as tf from '@tensorflow/tfjs';

import { SVD_KL_K1, SVD_KL_K2, SVD_KL_K3, VD_KL_C1, VD_KL_C2, VD_KL_C3 } from '../constants.js';
import { VdspecError } from '../errors.js';
import {
  klLayerConventions,
  type KlConvention,
  type LayerKind,
  type Profile,
} from '../profiles.js';
import { checkNumber, checkTensor, type Tensor } from '../tensor.js';
import { checkInputsObject, checkProfile, fromTf, scoped, toTf, zerosOf } from './io.js';
import { checkWeightInputs, logAlphaTf } from './weights.js';

type KlForm = { kind: 'svd_sigmoid'; constant: 'minus_k1' | 'omitted' } | { kind: 'vd_cubic' };

/** The profile's KL, checked: a profile object may come from user data. */
export function klForm(kl: KlConvention): KlForm {
  const { approximation, constant } = kl;
  if (approximation === 'svd_sigmoid' && (constant === 'minus_k1' || constant === 'omitted')) {
    return { kind: 'svd_sigmoid', constant };
  }
  if (approximation === 'vd_cubic' && constant === 'dropped') return { kind: 'vd_cubic' };
  throw new VdspecError(
    'invalid_argument',
    `kl = {approximation: ${String(approximation)}, constant: ${String(constant)}} is not a ` +
      `supported pair (svd_sigmoid with minus_k1 or omitted; vd_cubic with dropped)`,
    'profile',
  );
}

/**
 * KL per weight from the clipped log_alpha, in float32.
 *
 * SVD (Molchanov eq. 14), KL = -(k1 sigmoid(k2 + k3 la) - 0.5 log1p(exp(-la)) + C),
 * is evaluated as k1 sigmoid(-(k2 + k3 la)) + 0.5 softplus(-la) - (k1 + C):
 * the same function, whose two terms are both positive, so with C = -k1 the
 * value keeps its relative accuracy as it tends to 0 (no k1 - k1 cancellation),
 * and la = +inf gives a finite value and a zero gradient.
 *
 * VD (Kingma eq. 16), KL = -(0.5 la + c1 a + c2 a^2 + c3 a^3), a = exp(la), in Horner form.
 */
export function klPerWeightTf(logAlpha: tf.Tensor, kl: KlConvention): tf.Tensor {
  const form = klForm(kl);
  if (form.kind === 'svd_sigmoid') {
    const z = tf.add(tf.mul(logAlpha, SVD_KL_K3), SVD_KL_K2);
    const value = tf.add(
      tf.mul(tf.sigmoid(tf.neg(z)), SVD_KL_K1),
      tf.mul(tf.softplus(tf.neg(logAlpha)), 0.5),
    );
    const offset = form.constant === 'minus_k1' ? 0 : SVD_KL_K1;
    return offset === 0 ? value : tf.sub(value, offset);
  }
  const alpha = tf.exp(logAlpha);
  const cubic = tf.mul(
    alpha,
    tf.add(tf.mul(alpha, tf.add(tf.mul(alpha, VD_KL_C3), VD_KL_C2)), VD_KL_C1),
  );
  return tf.neg(tf.add(tf.mul(logAlpha, 0.5), cubic));
}

/** The layer's KL: the per-weight KL at the clipped log_alpha, summed over theta's weights. */
export function layerKlTf(
  theta: tf.Tensor,
  noise: tf.Tensor,
  profile: Profile,
  layer: LayerKind,
): tf.Tensor {
  const la = logAlphaTf(theta, noise, klLayerConventions(profile[layer]), profile.noiseParameter);
  return tf.sum(klPerWeightTf(la.clipped, profile.kl));
}

function checkLogAlphaForKl(logAlphaIn: unknown, form: KlForm): Tensor {
  const la = checkTensor('log_alpha', logAlphaIn, { allow: 'infinity' });
  la.data.forEach((v, i) => {
    if (v === -Infinity) {
      throw new VdspecError(
        'non_finite',
        `element ${i} is -Infinity: the KL is +Infinity there (the layer's clip or a finite learned log_alpha prevents it)`,
        'log_alpha',
      );
    }
    if (v === Infinity && form.kind === 'vd_cubic') {
      throw new VdspecError(
        'non_finite',
        `element ${i} is +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)`,
        'log_alpha',
      );
    }
  });
  return la;
}

/** KL per weight, log_alpha's shape (log_alpha already clipped per the profile). */
export function fastKlPerWeight(logAlpha: Tensor, profile: Profile | string): Tensor {
  const p = checkProfile(profile);
  const la = checkLogAlphaForKl(logAlpha, klForm(p.kl));
  return scoped(() => fromTf(klPerWeightTf(toTf(la), p.kl)));
}

/** The sum of fastKlPerWeight over every entry, accumulated in float32 by tf.sum. */
export function fastKlSum(logAlpha: Tensor, profile: Profile | string): number {
  const p = checkProfile(profile);
  const la = checkLogAlphaForKl(logAlpha, klForm(p.kl));
  // An empty sum is 0 (and tf.sum over nothing returns uninitialised memory on wasm 4.22).
  if (la.data.length === 0) return 0;
  return scoped(() => tf.sum(klPerWeightTf(toTf(la), p.kl)).dataSync()[0]!);
}

export interface FastLayerKlInputs {
  /** Dense [in, out] or conv2d HWIO [kh, kw, cin, cout]. */
  readonly theta: Tensor;
  /** The noise parameter named by profile.noiseParameter (theta's shape, or broadcastable for VD). */
  readonly noise: Tensor;
}

export interface FastLayerKlGradient {
  /** dKL/dtheta, theta's shape. */
  readonly theta: Tensor;
  /** dKL/dnoise, the noise parameter's own shape. */
  readonly noise: Tensor;
}

const LAYER_RANK: Record<LayerKind, number> = { dense: 2, conv2d: 4 };

function checkLayerKlInputs(inputsIn: unknown, profileIn: unknown, layerIn: unknown) {
  const inputs = checkInputsObject(inputsIn, 'theta, noise');
  const w = checkWeightInputs(inputs.theta, inputs.noise, profileIn, layerIn);
  checkTensor('theta', w.theta, { rank: LAYER_RANK[w.layer] });
  klForm(w.profile.kl);
  return w;
}

/** The layer's KL (op `kl.layer`), a float32 sum returned as a number. */
export function fastLayerKl(
  inputs: FastLayerKlInputs,
  profile: Profile | string,
  layer: LayerKind,
): number {
  const w = checkLayerKlInputs(inputs, profile, layer);
  // An empty sum is 0 (and tf.sum over nothing returns uninitialised memory on wasm 4.22).
  if (w.theta.data.length === 0) return 0;
  return scoped(() => layerKlTf(toTf(w.theta), toTf(w.noise), w.profile, w.layer).dataSync()[0]!);
}

/**
 * Vector-Jacobian product of fastLayerKl by tfjs autodiff: cotangent *
 * dKL/dtheta and cotangent * dKL/dnoise (summed over broadcast axes).
 * Finite everywhere, 0 wherever log_alpha is clipped or infinite.
 */
export function fastLayerKlVjp(
  inputs: FastLayerKlInputs,
  cotangent: number,
  profile: Profile | string,
  layer: LayerKind,
): FastLayerKlGradient {
  const w = checkLayerKlInputs(inputs, profile, layer);
  const g = checkNumber('cotangent', cotangent);
  // No weight: nothing depends on the parameters (a broadcast VD log_alpha covers no weight).
  if (w.theta.data.length === 0)
    return { theta: zerosOf(w.theta.shape), noise: zerosOf(w.noise.shape) };
  return scoped(() => {
    const theta = toTf(w.theta);
    const noise = toTf(w.noise);
    const dy = tf.scalar(g, 'float32');
    if (w.profile[w.layer].logAlpha.form === 'learned') {
      // log_alpha is the parameter itself: theta does not enter the KL (and tf.grads
      // rejects an input that is not on the path to the output).
      const [dNoise] = tf.grads((n: tf.Tensor) => layerKlTf(theta, n, w.profile, w.layer))(
        [noise],
        dy,
      );
      return { theta: fromTf(tf.zerosLike(theta)), noise: fromTf(dNoise!) };
    }
    const f = (t: tf.Tensor, n: tf.Tensor) => layerKlTf(t, n, w.profile, w.layer);
    const [dTheta, dNoise] = tf.grads(f)([theta, noise], dy);
    return { theta: fromTf(dTheta!), noise: fromTf(dNoise!) };
  });
}
