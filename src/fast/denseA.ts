/**
 * Fast (float32) VD variant A: Gaussian dropout on the input units
 * (spec/dense-a.md). The training forward multiplies x by one noise per
 * example and input unit before the product; its VJP is tfjs autodiff; the
 * KL has one term per input unit.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';
import type { FastLayerGradients, FastTrainResult } from './dense.js';
import { degenerateGradients, gradientsFromTf, trainFromTf } from './dense.js';
import {
  checkInputsObject,
  checkProfile,
  finiteFromTf,
  fromTf,
  scoped,
  toTf,
  zerosOf,
} from './io.js';
import { klForm, klPerWeightTf } from './kl.js';

export interface FastDenseAInputs {
  /** [batch, in] */
  readonly x: Tensor;
  /** [in, out] */
  readonly theta: Tensor;
  /** log_alpha: [] or [in]. */
  readonly noise: Tensor;
  /** [out] */
  readonly bias: Tensor;
  /** [batch, in]: one draw per example and input unit. */
  readonly eps: Tensor;
}

export interface FastDenseAKlInputs {
  /** [in, out] */
  readonly theta: Tensor;
  /** log_alpha: [] or [in]. */
  readonly noise: Tensor;
}

function checkProfileA(profileIn: unknown): Profile {
  const profile = checkProfile(profileIn);
  if (profile.algorithm !== 'vd' || profile.dense.logAlpha.form !== 'learned') {
    throw new VdspecError(
      'invalid_argument',
      `VD variant A needs a VD profile (log_alpha learned); "${profile.name}" is ${profile.algorithm.toUpperCase()}`,
      'profile',
    );
  }
  return profile;
}

function checkLogAlphaA(noiseIn: unknown, inSize: number, profile: Profile): Tensor {
  const name = profile.noiseParameter;
  const noise = checkTensor(name, noiseIn);
  const ok = noise.shape.length === 0 || (noise.shape.length === 1 && noise.shape[0] === inSize);
  if (!ok) {
    throw new VdspecError(
      'shape_mismatch',
      `variant A takes one log_alpha per layer ([]) or one per input unit ([${inSize}]), got ${shapeToString(noise.shape)}`,
      name,
    );
  }
  return noise;
}

interface CheckedA {
  readonly profile: Profile;
  readonly x: Tensor;
  readonly theta: Tensor;
  readonly noise: Tensor;
  readonly bias: Tensor;
  readonly eps: Tensor;
  readonly batch: number;
  readonly inSize: number;
  readonly out: number;
}

function checkA(inputsIn: unknown, profileIn: unknown): CheckedA {
  const profile = checkProfileA(profileIn);
  const inputs = checkInputsObject(inputsIn, 'x, theta, noise, bias, eps');
  const x = checkTensor('x', inputs.x, { rank: 2 });
  const [batch, inSize] = x.shape as [number, number];
  const theta = checkTensor('theta', inputs.theta, { rank: 2, shape: [inSize, null] });
  const out = theta.shape[1]!;
  const noise = checkLogAlphaA(inputs.noise, inSize, profile);
  const bias = checkTensor('bias', inputs.bias, { rank: 1, shape: [out] });
  if (inputs.eps === undefined) {
    throw new VdspecError('invalid_argument', 'missing: the noise is an input', 'eps');
  }
  const eps = checkTensor('eps', inputs.eps);
  if (eps.shape.length !== 2 || eps.shape[0] !== batch || eps.shape[1] !== inSize) {
    throw new VdspecError(
      'shape_mismatch',
      `variant A draws one eps per example and input unit: expected [${batch}, ${inSize}], got ${shapeToString(eps.shape)}`,
      'eps',
    );
  }
  return { profile, x, theta, noise, bias, eps, batch, inSize, out };
}

/** clip(log_alpha) with the profile's clip; tf.clipByValue passes the gradient on the closed interval. */
function clippedTf(noise: tf.Tensor, profile: Profile): tf.Tensor {
  const clip = profile.dense.logAlpha.clip;
  if (clip === null || (clip.min === null && clip.max === null)) return noise;
  return tf.clipByValue(noise, clip.min ?? -Infinity, clip.max ?? Infinity);
}

interface TrainATf {
  readonly mean: tf.Tensor;
  readonly variance: tf.Tensor;
  readonly output: tf.Tensor;
}

/** mean = x @ theta + b; variance = (x^2 * alpha) @ theta^2; output = (x * (1 + sqrt(alpha) eps)) @ theta + b. */
function denseATrainTf(
  x: tf.Tensor,
  theta: tf.Tensor,
  noise: tf.Tensor,
  bias: tf.Tensor,
  eps: tf.Tensor,
  profile: Profile,
): TrainATf {
  const la = clippedTf(noise, profile);
  // log_alpha [] or [in] broadcasts against [batch, in] along the last axis.
  const alpha = tf.exp(la);
  const xi = tf.add(tf.mul(tf.sqrt(alpha), eps), 1);
  const th = theta as tf.Tensor2D;
  const mean = tf.add(tf.matMul(x as tf.Tensor2D, th), bias);
  const variance = tf.matMul(tf.mul(tf.square(x), alpha) as tf.Tensor2D, tf.square(th));
  const output = tf.add(tf.matMul(tf.mul(x, xi) as tf.Tensor2D, th), bias);
  return { mean, variance, output };
}

/**
 * An empty output or an empty inner sum (in = 0) is answered here, not by
 * tfjs (whose wasm backend returns uninitialised memory for an empty
 * matMul, spec/fast.md): mean = output = b in float32, variance = 0.
 */
function degenerate(d: CheckedA): boolean {
  return d.batch * d.out === 0 || d.inSize === 0;
}

/** vd.dense_a.train, in float32. */
export function fastDenseATrain(
  inputs: FastDenseAInputs,
  profile: Profile | string,
): FastTrainResult {
  const d = checkA(inputs, profile);
  const shape = [d.batch, d.out];
  if (degenerate(d)) {
    const b = Array.from({ length: sizeOf(shape) }, (_, k) => Math.fround(d.bias.data[k % d.out]!));
    return { mean: { shape, data: b }, variance: zerosOf(shape), output: { shape, data: [...b] } };
  }
  return scoped(() =>
    trainFromTf(
      denseATrainTf(toTf(d.x), toTf(d.theta), toTf(d.noise), toTf(d.bias), toTf(d.eps), d.profile),
    ),
  );
}

/** vd.dense_a.train_vjp: the gradients of sum(cotangent * output) by tfjs autodiff. */
export function fastDenseATrainVjp(
  inputs: FastDenseAInputs,
  cotangent: Tensor,
  profile: Profile | string,
): FastLayerGradients {
  const d = checkA(inputs, profile);
  const gy = checkTensor('cotangent', cotangent, { rank: 2, shape: [d.batch, d.out] });
  if (degenerate(d)) {
    return degenerateGradients(
      { x: d.x.shape, theta: d.theta.shape, noise: d.noise.shape },
      d.out,
      [gy],
    );
  }
  return scoped(() => {
    const eps = toTf(d.eps);
    const f = (x: tf.Tensor, theta: tf.Tensor, noise: tf.Tensor, bias: tf.Tensor) =>
      denseATrainTf(x, theta, noise, bias, eps, d.profile).output;
    const [x, theta, noise, bias] = tf.grads(f)(
      [toTf(d.x), toTf(d.theta), toTf(d.noise), toTf(d.bias)],
      toTf(gy),
    ) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    return gradientsFromTf({ x, theta, noise, bias });
  });
}

function checkKlA(inputsIn: unknown, profileIn: unknown) {
  const profile = checkProfileA(profileIn);
  klForm(profile.kl);
  const inputs = checkInputsObject(inputsIn, 'theta, noise');
  const theta = checkTensor('theta', inputs.theta, { rank: 2 });
  const inSize = theta.shape[0]!;
  return { profile, inSize, noise: checkLogAlphaA(inputs.noise, inSize, profile) };
}

/** KL_A in float32: the per-unit KL at the clipped log_alpha, one term per input unit. */
function klATf(noise: tf.Tensor, inSize: number, profile: Profile): tf.Tensor {
  const perUnit = klPerWeightTf(clippedTf(noise, profile), profile.kl);
  // A scalar log_alpha: the same KL for each of the in input units.
  return noise.rank === 0 ? tf.mul(perUnit, inSize) : tf.sum(perUnit);
}

/** vd.dense_a.kl's kl, a float32 number. */
export function fastDenseAKl(inputs: FastDenseAKlInputs, profile: Profile | string): number {
  const k = checkKlA(inputs, profile);
  if (k.inSize === 0) return 0;
  return scoped(() => {
    const kl = finiteFromTf(klATf(toTf(k.noise), k.inSize, k.profile), 'the KL');
    return kl.data[0]!;
  });
}

/** g * dKL_A/dlog_alpha by tfjs autodiff, log_alpha's shape. */
export function fastDenseAKlVjp(
  inputs: FastDenseAKlInputs,
  cotangent: number,
  profile: Profile | string,
): Tensor {
  const k = checkKlA(inputs, profile);
  const g = checkNumber('cotangent', cotangent);
  if (k.inSize === 0) return zerosOf(k.noise.shape);
  return scoped(() => {
    const [d] = tf.grads((n: tf.Tensor) => klATf(n, k.inSize, k.profile))(
      [toTf(k.noise)],
      tf.scalar(g, 'float32'),
    );
    return fromTf(d!);
  });
}
