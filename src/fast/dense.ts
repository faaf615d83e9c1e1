/**
 * Fast (float32) dense layer of VD and Sparse VD: training forward with the
 * local reparameterization trick, eval forward, and their vector-Jacobian
 * products by tfjs autodiff (spec/dense.md, spec/fast.md#numerics).
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { checkNumber, checkTensor, sizeOf, type Tensor } from '../tensor.js';
import {
  checkInputsObject,
  checkNoise,
  checkProfile,
  checkTrainClip,
  finiteFromTf,
  scoped,
  toTf,
  zerosOf,
} from './io.js';
import { keepMaskTf, logAlphaTf, weightVarianceTf } from './weights.js';

export interface FastDenseEvalInputs {
  /** [batch, in] */
  readonly x: Tensor;
  /** [in, out] */
  readonly theta: Tensor;
  /** The profile's noise parameter: theta's shape, or broadcastable to it for VD. */
  readonly noise: Tensor;
  /** [out] */
  readonly bias: Tensor;
}

export interface FastDenseTrainInputs extends FastDenseEvalInputs {
  /** Standard-normal draws, [batch, out]. */
  readonly eps: Tensor;
}

export interface FastDenseOptions {
  /** Apply the keep mask in the training forward; default profile.trainClipDefault. Eval ignores it. */
  readonly trainClip?: boolean;
}

export interface FastTrainResult {
  /** x @ theta_m + bias (conv: conv(x, theta_m) + bias). */
  readonly mean: Tensor;
  /** (x*x) @ s2_m; no sqrtEps, no bias. */
  readonly variance: Tensor;
  /** mean + sqrt(variance + sqrtEps) * eps */
  readonly output: Tensor;
}

export interface FastCotangent {
  /** d loss / d output, the output's shape. */
  readonly output: Tensor;
}

/** Cotangents of the training results: `output` is required, `mean` and `variance` add to it. */
export interface FastTrainCotangent extends FastCotangent {
  readonly mean?: Tensor;
  readonly variance?: Tensor;
}

export interface FastLayerGradients {
  readonly x: Tensor;
  readonly theta: Tensor;
  /** The noise parameter's own shape (summed over broadcast axes). */
  readonly noise: Tensor;
  readonly bias: Tensor;
}

/** A layer's tensors as float32 tf.Tensors. */
export interface LayerTf {
  readonly x: tf.Tensor;
  readonly theta: tf.Tensor;
  readonly noise: tf.Tensor;
  readonly bias: tf.Tensor;
}

export interface TrainTf {
  readonly mean: tf.Tensor;
  readonly variance: tf.Tensor;
  readonly output: tf.Tensor;
}

/**
 * The two weight tensors the training forward multiplies by: theta_m and
 * s2_m (spec/dense.md). `keep` is the keep mask computed from the same
 * theta and noise outside any gradient closure (null: the profile does not
 * prune). Shared by the dense and conv2d layers.
 */
export function trainWeightsTf(
  theta: tf.Tensor,
  noise: tf.Tensor,
  keep: tf.Tensor | null,
  profile: Profile,
  layer: 'dense' | 'conv2d',
  trainClip: boolean,
): { thetaMasked: tf.Tensor; varianceMasked: tf.Tensor } {
  const conventions = profile[layer];
  const la = logAlphaTf(theta, noise, conventions, profile.noiseParameter);
  const variance = weightVarianceTf(theta, la, conventions);
  if (!trainClip || keep === null) return { thetaMasked: theta, varianceMasked: variance };
  return {
    thetaMasked: tf.mul(theta, keep),
    varianceMasked:
      conventions.trainMask === 'mean_and_variance' ? tf.mul(variance, keep) : variance,
  };
}

/** The keep mask from values, for use as a constant inside a gradient closure. */
export function keepMaskFromValues(
  theta: tf.Tensor,
  noise: tf.Tensor,
  profile: Profile,
  layer: 'dense' | 'conv2d',
): tf.Tensor | null {
  return keepMaskTf(logAlphaTf(theta, noise, profile[layer], profile.noiseParameter), profile);
}

/** output = mean + sqrt(variance + sqrtEps) * eps */
export function reparameterizeTf(
  mean: tf.Tensor,
  variance: tf.Tensor,
  eps: tf.Tensor,
  sqrtEps: number,
): TrainTf {
  const output = tf.add(mean, tf.mul(tf.sqrt(tf.add(variance, sqrtEps)), eps));
  return { mean, variance, output };
}

export function denseTrainTf(
  layer: LayerTf,
  eps: tf.Tensor,
  keep: tf.Tensor | null,
  profile: Profile,
  trainClip: boolean,
): TrainTf {
  const w = trainWeightsTf(layer.theta, layer.noise, keep, profile, 'dense', trainClip);
  const mean = tf.add(tf.matMul(layer.x as tf.Tensor2D, w.thetaMasked as tf.Tensor2D), layer.bias);
  const variance = tf.matMul(tf.square(layer.x) as tf.Tensor2D, w.varianceMasked as tf.Tensor2D);
  return reparameterizeTf(mean, variance, eps, profile.sqrtEps);
}

export function denseEvalTf(
  x: tf.Tensor,
  theta: tf.Tensor,
  bias: tf.Tensor,
  keep: tf.Tensor | null,
): tf.Tensor {
  const thetaMasked = keep === null ? theta : tf.mul(theta, keep);
  return tf.add(tf.matMul(x as tf.Tensor2D, thetaMasked as tf.Tensor2D), bias);
}

interface CheckedDense {
  readonly profile: Profile;
  readonly x: Tensor;
  readonly theta: Tensor;
  readonly noise: Tensor;
  readonly bias: Tensor;
  readonly batch: number;
  readonly inSize: number;
  readonly out: number;
}

function checkDense(inputsIn: unknown, profileIn: unknown): CheckedDense {
  const profile = checkProfile(profileIn);
  checkNumber('profile.sqrtEps', profile.sqrtEps, { min: 0 });
  const inputs = checkInputsObject(inputsIn, 'x, theta, noise, bias, ...');
  const x = checkTensor('x', inputs.x, { rank: 2 });
  const [batch, inSize] = x.shape as [number, number];
  const theta = checkTensor('theta', inputs.theta, { shape: [inSize, null] });
  const out = theta.shape[1]!;
  const noise = checkNoise(inputs.noise, theta, profile, 'dense');
  const bias = checkTensor('bias', inputs.bias, { shape: [out] });
  return { profile, x, theta, noise, bias, batch, inSize, out };
}

function checkEps(inputsIn: unknown, d: CheckedDense): Tensor {
  return checkTensor('eps', (inputsIn as Record<string, unknown>).eps, { shape: [d.batch, d.out] });
}

/** The checked cotangents of a training forward, as plain tensors. */
export interface TrainCotangent {
  readonly output: Tensor;
  readonly mean: Tensor | null;
  readonly variance: Tensor | null;
}

export function checkTrainCotangent(cotangent: unknown, shape: readonly number[]): TrainCotangent {
  if (typeof cotangent !== 'object' || cotangent === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {output, mean?, variance?}',
      'cotangent',
    );
  }
  const c = cotangent as Record<string, unknown>;
  const optional = (name: 'mean' | 'variance') =>
    c[name] === undefined ? null : checkTensor(`cotangent.${name}`, c[name], { shape });
  return {
    output: checkTensor('cotangent.output', c.output, { shape }),
    mean: optional('mean'),
    variance: optional('variance'),
  };
}

/** An eval VJP's cotangent: the output's cotangent, bare (as the reference takes it) or as {output}. */
export function checkEvalCotangent(cotangent: unknown, shape: readonly number[]): Tensor {
  if (typeof cotangent === 'object' && cotangent !== null && 'output' in cotangent) {
    return checkTensor('cotangent.output', (cotangent as { output: unknown }).output, { shape });
  }
  return checkTensor('cotangent', cotangent, { shape });
}

/**
 * Gradients of a training forward with respect to [x, theta, noise, bias]
 * for the given cotangents: with the output's alone, tf.grads with it as dy;
 * with mean or variance cotangents too, the gradient of the scalar
 * sum(<cotangent, result>), whose partials are exactly those cotangents.
 */
export function trainGradsTf(
  forward: (x: tf.Tensor, theta: tf.Tensor, noise: tf.Tensor, bias: tf.Tensor) => TrainTf,
  layer: LayerTf,
  cotangent: TrainCotangent,
): { x: tf.Tensor; theta: tf.Tensor; noise: tf.Tensor; bias: tf.Tensor } {
  const xs = [layer.x, layer.theta, layer.noise, layer.bias];
  const gOutput = toTf(cotangent.output);
  const gMean = cotangent.mean === null ? null : toTf(cotangent.mean);
  const gVariance = cotangent.variance === null ? null : toTf(cotangent.variance);
  let grads: tf.Tensor[];
  if (gMean === null && gVariance === null) {
    grads = tf.grads((x, theta, noise, bias) => forward(x!, theta!, noise!, bias!).output)(
      xs,
      gOutput,
    );
  } else {
    grads = tf.grads((x, theta, noise, bias) => {
      const r = forward(x!, theta!, noise!, bias!);
      let loss = tf.sum(tf.mul(r.output, gOutput));
      if (gMean !== null) loss = tf.add(loss, tf.sum(tf.mul(r.mean, gMean)));
      if (gVariance !== null) loss = tf.add(loss, tf.sum(tf.mul(r.variance, gVariance)));
      return loss;
    })(xs);
  }
  const [x, theta, noise, bias] = grads as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  return { x, theta, noise, bias };
}

export function gradientsFromTf(g: {
  x: tf.Tensor;
  theta: tf.Tensor;
  noise: tf.Tensor;
  bias: tf.Tensor;
}): FastLayerGradients {
  return {
    x: finiteFromTf(g.x, 'the gradient w.r.t. x'),
    theta: finiteFromTf(g.theta, 'the gradient w.r.t. theta'),
    noise: finiteFromTf(g.noise, 'the gradient w.r.t. the noise parameter'),
    bias: finiteFromTf(g.bias, 'the gradient w.r.t. bias'),
  };
}

/** The training results read back, each checked finite. */
export function trainFromTf(r: TrainTf): FastTrainResult {
  return {
    mean: finiteFromTf(r.mean, 'the mean'),
    variance: finiteFromTf(r.variance, 'the variance'),
    output: finiteFromTf(r.output, 'the output'),
  };
}

/**
 * True when a layer's output is empty or its sums have no terms (dense
 * in = 0, conv cin = 0). Such a layer is answered by the `degenerate...`
 * functions below, not by tfjs: the wasm backend (4.22) returns
 * uninitialised memory for a matMul with inner size 0 and for a sum over an
 * empty axis (seen: 3.6e-41 and NaN). Every value follows from "an empty sum
 * is 0" (spec/dense.md#degenerate-sizes), rounded to float32 as tfjs would.
 */
export function isDegenerate(outputShape: readonly number[], terms: number): boolean {
  return sizeOf(outputShape) === 0 || terms === 0;
}

const f32 = Math.fround;

/** mean = b, variance = 0, output = b + sqrt(0 + sqrtEps) * eps, each op rounded to float32. */
export function degenerateTrain(bias: Tensor, eps: Tensor, sqrtEps: number): FastTrainResult {
  const channels = bias.data.length;
  const std = f32(Math.sqrt(f32(sqrtEps)));
  const mean = eps.data.map((_, k) => f32(bias.data[k % channels]!));
  return {
    mean: { shape: [...eps.shape], data: mean },
    variance: zerosOf(eps.shape),
    output: {
      shape: [...eps.shape],
      data: eps.data.map((e, k) => f32(mean[k]! + f32(std * f32(e)))),
    },
  };
}

export function degenerateEval(bias: Tensor, outputShape: readonly number[]): Tensor {
  const channels = bias.data.length;
  const data = new Array<number>(sizeOf(outputShape))
    .fill(0)
    .map((_, k) => f32(bias.data[k % channels]!));
  return { shape: [...outputShape], data };
}

/**
 * Gradients of a degenerate layer: x, theta and the noise parameter reach no
 * output term (0); the bias gradient is the per-channel sum of the mean's
 * cotangents (output plus mean), accumulated in float32.
 */
export function degenerateGradients(
  shapes: { x: readonly number[]; theta: readonly number[]; noise: readonly number[] },
  biasLength: number,
  gMean: readonly Tensor[],
): FastLayerGradients {
  const bias = new Array<number>(biasLength).fill(0);
  const n = gMean[0]?.data.length ?? 0;
  for (let k = 0; k < n; k++) {
    const g = gMean.reduce((sum, t) => f32(sum + f32(t.data[k]!)), 0);
    bias[k % biasLength] = f32(bias[k % biasLength]! + g);
  }
  return {
    x: zerosOf(shapes.x),
    theta: zerosOf(shapes.theta),
    noise: zerosOf(shapes.noise),
    bias: { shape: [biasLength], data: bias },
  };
}

/** The cotangents that reach the mean: the output's, plus the mean's own if given. */
export function meanCotangents(c: TrainCotangent): Tensor[] {
  return c.mean === null ? [c.output] : [c.output, c.mean];
}

export function shapesOf(d: { x: Tensor; theta: Tensor; noise: Tensor }) {
  return { x: d.x.shape, theta: d.theta.shape, noise: d.noise.shape };
}

function layerTf(d: { x: Tensor; theta: Tensor; noise: Tensor; bias: Tensor }): LayerTf {
  return { x: toTf(d.x), theta: toTf(d.theta), noise: toTf(d.noise), bias: toTf(d.bias) };
}

/** svd.dense.train / vd.dense.train, in float32. */
export function fastDenseTrain(
  inputs: FastDenseTrainInputs,
  profile: Profile | string,
  options?: FastDenseOptions,
): FastTrainResult {
  const d = checkDense(inputs, profile);
  const eps = checkEps(inputs, d);
  const trainClip = checkTrainClip(options, d.profile);
  if (isDegenerate(eps.shape, d.inSize)) return degenerateTrain(d.bias, eps, d.profile.sqrtEps);
  return scoped(() => {
    const layer = layerTf(d);
    const keep = keepMaskFromValues(layer.theta, layer.noise, d.profile, 'dense');
    const r = denseTrainTf(layer, toTf(eps), keep, d.profile, trainClip);
    return trainFromTf(r);
  });
}

/** svd.dense.eval / vd.dense.eval: x @ (theta * mask) + bias, in float32. */
export function fastDenseEval(inputs: FastDenseEvalInputs, profile: Profile | string): Tensor {
  const d = checkDense(inputs, profile);
  if (isDegenerate([d.batch, d.out], d.inSize)) return degenerateEval(d.bias, [d.batch, d.out]);
  return scoped(() => {
    const layer = layerTf(d);
    const keep = keepMaskFromValues(layer.theta, layer.noise, d.profile, 'dense');
    return finiteFromTf(denseEvalTf(layer.x, layer.theta, layer.bias, keep), 'the output');
  });
}

/** svd.dense.eval_unmasked: x @ theta + bias, no mask, in float32. */
export function fastDenseEvalUnmasked(
  inputs: FastDenseEvalInputs,
  profile: Profile | string,
): Tensor {
  const d = checkDense(inputs, profile);
  if (isDegenerate([d.batch, d.out], d.inSize)) return degenerateEval(d.bias, [d.batch, d.out]);
  return scoped(() => {
    const layer = layerTf(d);
    return finiteFromTf(denseEvalTf(layer.x, layer.theta, layer.bias, null), 'the output');
  });
}

export interface FastPredictMcResult {
  readonly meanOutput: Tensor;
  readonly meanSoftmax: Tensor;
}

/**
 * svd.dense.predict_mc / vd.dense.predict_mc in float32: the training forward
 * for every draw of eps [S, batch, out] at once (mean and variance broadcast
 * against the draws), then the mean over the draws of the outputs and of
 * their softmax over the out axis.
 */
export function fastDensePredictMc(
  inputs: FastDenseTrainInputs,
  profile: Profile | string,
  options?: FastDenseOptions,
): FastPredictMcResult {
  const d = checkDense(inputs, profile);
  const eps = checkTensor('eps', (inputs as unknown as Record<string, unknown>).eps, {
    rank: 3,
    shape: [null, d.batch, d.out],
  });
  if (eps.shape[0] === 0) {
    throw new VdspecError(
      'shape_mismatch',
      'expected S >= 1 draws [S, batch, out], got S = 0',
      'eps',
    );
  }
  const trainClip = checkTrainClip(options, d.profile);
  const shape = [d.batch, d.out];
  if (sizeOf(shape) === 0) return { meanOutput: zerosOf(shape), meanSoftmax: zerosOf(shape) };
  return scoped(() => {
    const layer = layerTf(d);
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    if (d.inSize === 0) {
      // An empty sum (spec/dense.md#degenerate-sizes), kept away from tfjs' empty matMul.
      mean = tf.add(tf.zeros(shape), layer.bias);
      variance = tf.zeros(shape);
    } else {
      const keep = keepMaskFromValues(layer.theta, layer.noise, d.profile, 'dense');
      const r = denseTrainTf(layer, tf.zeros(shape), keep, d.profile, trainClip);
      mean = r.mean;
      variance = r.variance;
    }
    const outputs = reparameterizeTf(mean, variance, toTf(eps), d.profile.sqrtEps).output;
    return {
      meanOutput: finiteFromTf(tf.mean(outputs, 0), 'the mean output'),
      meanSoftmax: finiteFromTf(tf.mean(tf.softmax(outputs), 0), 'the mean softmax'),
    };
  });
}

/**
 * VJP of fastDenseTrain's output by tfjs autodiff: the gradients of
 * sum(cotangent.output * output) with respect to x, theta, noise, bias. The
 * keep mask is a constant (computed from the values before differentiating).
 */
export function fastDenseTrainVjp(
  inputs: FastDenseTrainInputs,
  cotangent: FastTrainCotangent,
  profile: Profile | string,
  options?: FastDenseOptions,
): FastLayerGradients {
  const d = checkDense(inputs, profile);
  const eps = checkEps(inputs, d);
  const cot = checkTrainCotangent(cotangent, [d.batch, d.out]);
  const trainClip = checkTrainClip(options, d.profile);
  if (isDegenerate(eps.shape, d.inSize)) {
    return degenerateGradients(shapesOf(d), d.out, meanCotangents(cot));
  }
  return scoped(() => {
    const layer = layerTf(d);
    const keep = keepMaskFromValues(layer.theta, layer.noise, d.profile, 'dense');
    const epsTf = toTf(eps);
    const forward = (x: tf.Tensor, theta: tf.Tensor, noise: tf.Tensor, bias: tf.Tensor) =>
      denseTrainTf({ x, theta, noise, bias }, epsTf, keep, d.profile, trainClip);
    return gradientsFromTf(trainGradsTf(forward, layer, cot));
  });
}

/**
 * VJP of fastDenseEval. The noise parameter only moves the (piecewise
 * constant) mask, so its gradient is 0.
 */
export function fastDenseEvalVjp(
  inputs: FastDenseEvalInputs,
  cotangent: Tensor | FastCotangent,
  profile: Profile | string,
): FastLayerGradients {
  const d = checkDense(inputs, profile);
  const gy = checkEvalCotangent(cotangent, [d.batch, d.out]);
  if (isDegenerate(gy.shape, d.inSize)) return degenerateGradients(shapesOf(d), d.out, [gy]);
  return scoped(() => {
    const layer = layerTf(d);
    const keep = keepMaskFromValues(layer.theta, layer.noise, d.profile, 'dense');
    const f = (x: tf.Tensor, theta: tf.Tensor, bias: tf.Tensor) =>
      denseEvalTf(x, theta, bias, keep);
    const [gx, gTheta, gBias] = tf.grads(f)([layer.x, layer.theta, layer.bias], toTf(gy));
    return gradientsFromTf({
      x: gx!,
      theta: gTheta!,
      noise: tf.zerosLike(layer.noise),
      bias: gBias!,
    });
  });
}
