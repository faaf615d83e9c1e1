/**
 * Fast (float32) conv2d layer of VD and Sparse VD (spec/conv2d.md,
 * spec/fast.md#kernel-paths): NHWC input, HWIO filter, stride, TensorFlow's
 * 'valid' / 'same' padding.
 *
 * Two kernel paths compute the same convolution:
 * - `native`: tf.conv2d. Its filter gradient needs the Conv2DBackpropFilter
 *   kernel, which the wasm backend lacks.
 * - `patches`: im2col from pad, slice, reshape and concat (every one has a
 *   gradient on wasm), then one matMul per term. The patches are built once
 *   and serve the mean (P @ theta_m) and, squared, the variance
 *   ((P*P) @ s2_m), since patches of x*x are the squares of the patches of x.
 * `auto` (the default) runs forwards on `native` everywhere, and VJPs on
 * `native` with tfjs-node, on `patches` with wasm and cpu (see resolvePath).
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, type Tensor } from '../tensor.js';
import { requireBackend } from './backend.js';
import {
  checkEvalCotangent,
  checkTrainCotangent,
  degenerateEval,
  degenerateGradients,
  degenerateTrain,
  gradientsFromTf,
  isDegenerate,
  keepMaskFromValues,
  meanCotangents,
  reparameterizeTf,
  shapesOf,
  trainFromTf,
  trainWeightsTf,
  type FastCotangent,
  type FastLayerGradients,
  type FastTrainCotangent,
  type FastTrainResult,
  type LayerTf,
  trainGradsTf,
  type TrainTf,
} from './dense.js';
import {
  checkInputsObject,
  checkNoise,
  checkProfile,
  checkTrainClip,
  finiteFromTf,
  scoped,
  toTf,
} from './io.js';

export type FastConv2dPadding = 'valid' | 'same';
export type FastConv2dStride = number | readonly [number, number];
export type FastConv2dPath = 'auto' | 'native' | 'patches';

export interface FastConv2dOptions {
  /** One stride for both axes or [strideHeight, strideWidth]; default 1. */
  readonly stride?: FastConv2dStride;
  /** Default 'valid'. */
  readonly padding?: FastConv2dPadding;
  /** Apply the keep mask in the training forward; default profile.trainClipDefault. Eval ignores it. */
  readonly trainClip?: boolean;
  /** Kernel path (see the module comment); default 'auto'. Results agree to float32 rounding. */
  readonly path?: FastConv2dPath;
}

export interface FastConv2dEvalInputs {
  /** [n, h, w, cin] */
  readonly x: Tensor;
  /** [kh, kw, cin, cout] */
  readonly theta: Tensor;
  /** The profile's noise parameter: theta's shape, or broadcastable to it for VD. */
  readonly noise: Tensor;
  /** [cout] */
  readonly bias: Tensor;
}

export interface FastConv2dTrainInputs extends FastConv2dEvalInputs {
  /** Standard-normal draws, the output's shape [n, oh, ow, cout]. */
  readonly eps: Tensor;
}

/** Sizes and zero padding of a conv2d, resolved once. */
export interface ConvGeometry {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly inChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly outChannels: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly padTop: number;
  readonly padBottom: number;
  readonly padLeft: number;
  readonly padRight: number;
}

/**
 * TensorFlow's rule for one axis (spec/conv2d.md). 'same': out = ceil(in / s),
 * total = max((out - 1) s + k - in, 0), floor(total / 2) before, the rest
 * after. 'valid': out = floor((in - k) / s) + 1, no padding.
 */
function axis(size: number, kernel: number, stride: number, padding: FastConv2dPadding) {
  if (padding === 'valid') {
    return { out: Math.floor((size - kernel) / stride) + 1, before: 0, after: 0 };
  }
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}

function checkStride(stride: unknown): [number, number] {
  const name = 'options.stride';
  if (stride === undefined) return [1, 1];
  if (typeof stride === 'number') {
    const s = checkNumber(name, stride, { integer: true, min: 1 });
    return [s, s];
  }
  if (Array.isArray(stride) && stride.length === 2) {
    return [
      checkNumber(name, stride[0], { integer: true, min: 1 }),
      checkNumber(name, stride[1], { integer: true, min: 1 }),
    ];
  }
  throw new VdspecError(
    'invalid_argument',
    `expected a positive integer or [strideHeight, strideWidth], got ${JSON.stringify(stride)}`,
    name,
  );
}

interface CheckedOptions {
  readonly stride: [number, number];
  readonly padding: FastConv2dPadding;
  readonly path: FastConv2dPath;
  readonly rest: unknown;
}

function checkOptions(options: unknown): CheckedOptions {
  if (options === undefined)
    return { stride: [1, 1], padding: 'valid', path: 'auto', rest: undefined };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new VdspecError('invalid_argument', 'expected an options object', 'options');
  }
  const { stride, padding, path } = options as Record<string, unknown>;
  if (padding !== undefined && padding !== 'valid' && padding !== 'same') {
    throw new VdspecError(
      'invalid_argument',
      `expected 'valid' or 'same', got ${JSON.stringify(padding)}`,
      'options.padding',
    );
  }
  if (path !== undefined && path !== 'auto' && path !== 'native' && path !== 'patches') {
    throw new VdspecError(
      'invalid_argument',
      `expected 'auto', 'native' or 'patches', got ${JSON.stringify(path)}`,
      'options.path',
    );
  }
  return {
    stride: checkStride(stride),
    padding: padding ?? 'valid',
    path: path ?? 'auto',
    rest: options,
  };
}

export function convGeometry(
  xShape: readonly number[],
  thetaShape: readonly number[],
  stride: [number, number],
  padding: FastConv2dPadding,
): ConvGeometry {
  const [batch, height, width, inChannels] = xShape as [number, number, number, number];
  const [kernelHeight, kernelWidth, filterIn, outChannels] = thetaShape as [
    number,
    number,
    number,
    number,
  ];
  if (kernelHeight < 1 || kernelWidth < 1) {
    throw new VdspecError(
      'shape_mismatch',
      `the kernel needs at least one row and one column, got shape ${shapeToString(thetaShape)}`,
      'theta',
    );
  }
  if (filterIn !== inChannels) {
    throw new VdspecError(
      'shape_mismatch',
      `HWIO filter has ${filterIn} input channels (dimension 2) but x ${shapeToString(xShape)} has ${inChannels} (dimension 3)`,
      'theta',
    );
  }
  if (padding === 'valid' && (height < kernelHeight || width < kernelWidth)) {
    throw new VdspecError(
      'shape_mismatch',
      `'valid' padding needs the input at least as large as the kernel: input ${height}x${width}, kernel ${kernelHeight}x${kernelWidth}`,
      'x',
    );
  }
  const [strideHeight, strideWidth] = stride;
  const rows = axis(height, kernelHeight, strideHeight, padding);
  const cols = axis(width, kernelWidth, strideWidth, padding);
  return {
    batch,
    height,
    width,
    inChannels,
    kernelHeight,
    kernelWidth,
    outChannels,
    strideHeight,
    strideWidth,
    outHeight: rows.out,
    outWidth: cols.out,
    padTop: rows.before,
    padBottom: rows.after,
    padLeft: cols.before,
    padRight: cols.after,
  };
}

function outputShape(g: ConvGeometry): [number, number, number, number] {
  return [g.batch, g.outHeight, g.outWidth, g.outChannels];
}

/** tf.conv2d with the padding resolved by our own rule (explicit, so no backend reinterprets 'same'). */
function nativeConv(x: tf.Tensor, filter: tf.Tensor, g: ConvGeometry): tf.Tensor4D {
  return tf.conv2d(
    x as tf.Tensor4D,
    filter as tf.Tensor4D,
    [g.strideHeight, g.strideWidth],
    [
      [0, 0],
      [g.padTop, g.padBottom],
      [g.padLeft, g.padRight],
      [0, 0],
    ],
  );
}

/**
 * im2col: the [n * oh * ow, kh * kw * cin] matrix whose row (b, i, j) holds
 * the window of output pixel (i, j), in HWI order (so that it multiplies the
 * HWIO filter reshaped to [kh * kw * cin, cout]). Built from pad, slice,
 * reshape and concat, whose gradients (slice, pad, reshape, split) all run on
 * wasm.
 */
export function patchesTf(x: tf.Tensor, g: ConvGeometry): tf.Tensor2D {
  const { batch: n, inChannels: c, outHeight: oh, outWidth: ow } = g;
  const sh = g.strideHeight;
  const sw = g.strideWidth;
  // Tap (p, q) reads rows p, p + sh, ..., p + (oh - 1) sh: one slice of oh * sh rows,
  // then every sh-th row. The last tap's slice may reach up to sh - 1 rows past the
  // spec's padding; those extra zero rows are never selected.
  const extraRows = Math.max(0, g.kernelHeight - 1 + oh * sh - (g.height + g.padTop + g.padBottom));
  const extraCols = Math.max(0, g.kernelWidth - 1 + ow * sw - (g.width + g.padLeft + g.padRight));
  const padded = tf.pad(x, [
    [0, 0],
    [g.padTop, g.padBottom + extraRows],
    [g.padLeft, g.padRight + extraCols],
    [0, 0],
  ]);
  const taps: tf.Tensor[] = [];
  for (let p = 0; p < g.kernelHeight; p++) {
    for (let q = 0; q < g.kernelWidth; q++) {
      let tap: tf.Tensor = tf.slice(padded, [0, p, q, 0], [n, oh * sh, ow * sw, c]);
      if (sh > 1) {
        // [n, oh, sh, ow * sw * c] and keep the first row of each group of sh.
        tap = tf.slice(
          tf.reshape(tap, [n, oh, sh, ow * sw * c]),
          [0, 0, 0, 0],
          [n, oh, 1, ow * sw * c],
        );
      }
      tap = tf.reshape(tap, [n, oh, ow, sw * c]);
      if (sw > 1) tap = tf.slice(tap, [0, 0, 0, 0], [n, oh, ow, c]);
      taps.push(tap);
    }
  }
  const windows = taps.length === 1 ? taps[0]! : tf.concat(taps, 3);
  return tf.reshape(windows, [n * oh * ow, g.kernelHeight * g.kernelWidth * c]);
}

function filterMatrix(filter: tf.Tensor, g: ConvGeometry): tf.Tensor2D {
  return tf.reshape(filter, [g.kernelHeight * g.kernelWidth * g.inChannels, g.outChannels]);
}

type ResolvedPath = 'native' | 'patches';

/**
 * The kernel path on the active backend, for a computation that needs the
 * filter gradient (`gradients`) or not. `auto`: tf.conv2d for forwards
 * everywhere and for gradients on `tensorflow`; patches for gradients on
 * `wasm` (no Conv2DBackpropFilter kernel) and on `cpu` (whose native conv
 * backward is several times slower than patches + matMul: spec/fast.md#kernel-paths).
 */
export function resolvePath(path: FastConv2dPath, gradients: boolean): ResolvedPath {
  const backend = requireBackend();
  if (path === 'native' && gradients && backend === 'wasm') {
    throw new VdspecError(
      'unsupported',
      "the 'native' path needs the Conv2DBackpropFilter kernel, which the wasm backend lacks; use 'auto' or 'patches'",
      'options.path',
    );
  }
  if (path !== 'auto') return path;
  return gradients && backend !== 'tensorflow' ? 'patches' : 'native';
}

export function conv2dTrainTf(
  layer: LayerTf,
  eps: tf.Tensor,
  keep: tf.Tensor | null,
  profile: Profile,
  trainClip: boolean,
  g: ConvGeometry,
  path: ResolvedPath,
): TrainTf {
  const w = trainWeightsTf(layer.theta, layer.noise, keep, profile, 'conv2d', trainClip);
  let mean: tf.Tensor;
  let variance: tf.Tensor;
  if (path === 'native') {
    mean = tf.add(nativeConv(layer.x, w.thetaMasked, g), layer.bias);
    variance = nativeConv(tf.square(layer.x), w.varianceMasked, g);
  } else {
    const shape = outputShape(g);
    const patches = patchesTf(layer.x, g);
    mean = tf.add(
      tf.reshape(tf.matMul(patches, filterMatrix(w.thetaMasked, g)), shape),
      layer.bias,
    );
    variance = tf.reshape(tf.matMul(tf.square(patches), filterMatrix(w.varianceMasked, g)), shape);
  }
  return reparameterizeTf(mean, variance, eps, profile.sqrtEps);
}

export function conv2dEvalTf(
  x: tf.Tensor,
  theta: tf.Tensor,
  bias: tf.Tensor,
  keep: tf.Tensor | null,
  g: ConvGeometry,
  path: ResolvedPath,
): tf.Tensor {
  const thetaMasked = keep === null ? theta : tf.mul(theta, keep);
  const conv =
    path === 'native'
      ? nativeConv(x, thetaMasked, g)
      : tf.reshape(tf.matMul(patchesTf(x, g), filterMatrix(thetaMasked, g)), outputShape(g));
  return tf.add(conv, bias);
}

interface CheckedConv {
  readonly profile: Profile;
  readonly x: Tensor;
  readonly theta: Tensor;
  readonly noise: Tensor;
  readonly bias: Tensor;
  readonly geometry: ConvGeometry;
  readonly options: CheckedOptions;
}

function checkConv(inputsIn: unknown, profileIn: unknown, optionsIn: unknown): CheckedConv {
  const profile = checkProfile(profileIn);
  checkNumber('profile.sqrtEps', profile.sqrtEps, { min: 0 });
  const inputs = checkInputsObject(inputsIn, 'x, theta, noise, bias, ...');
  const options = checkOptions(optionsIn);
  const x = checkTensor('x', inputs.x, { rank: 4 });
  const theta = checkTensor('theta', inputs.theta, { rank: 4 });
  const geometry = convGeometry(x.shape, theta.shape, options.stride, options.padding);
  const noise = checkNoise(inputs.noise, theta, profile, 'conv2d');
  const bias = checkTensor('bias', inputs.bias, { shape: [geometry.outChannels] });
  return { profile, x, theta, noise, bias, geometry, options };
}

/** An empty output, or no terms in a sum (cin = 0): see isDegenerate. */
function degenerate(c: CheckedConv): boolean {
  const g = c.geometry;
  return isDegenerate(outputShape(g), g.kernelHeight * g.kernelWidth * g.inChannels);
}

function layerTf(c: CheckedConv): LayerTf {
  return { x: toTf(c.x), theta: toTf(c.theta), noise: toTf(c.noise), bias: toTf(c.bias) };
}

function checkEps(inputsIn: unknown, c: CheckedConv): Tensor {
  return checkTensor('eps', (inputsIn as Record<string, unknown>).eps, {
    shape: outputShape(c.geometry),
  });
}

/** svd.conv2d.train / vd.conv2d.train, in float32. */
export function fastConv2dTrain(
  inputs: FastConv2dTrainInputs,
  profile: Profile | string,
  options?: FastConv2dOptions,
): FastTrainResult {
  const c = checkConv(inputs, profile, options);
  const eps = checkEps(inputs, c);
  const trainClip = checkTrainClip(c.options.rest, c.profile);
  if (degenerate(c)) return degenerateTrain(c.bias, eps, c.profile.sqrtEps);
  return scoped(() => {
    const path = resolvePath(c.options.path, false);
    const layer = layerTf(c);
    const keep = keepMaskFromValues(layer.theta, layer.noise, c.profile, 'conv2d');
    const r = conv2dTrainTf(layer, toTf(eps), keep, c.profile, trainClip, c.geometry, path);
    return trainFromTf(r);
  });
}

/** svd.conv2d.eval / vd.conv2d.eval: conv(x, theta * mask) + bias, in float32. */
export function fastConv2dEval(
  inputs: FastConv2dEvalInputs,
  profile: Profile | string,
  options?: FastConv2dOptions,
): Tensor {
  const c = checkConv(inputs, profile, options);
  if (degenerate(c)) return degenerateEval(c.bias, outputShape(c.geometry));
  return scoped(() => {
    const path = resolvePath(c.options.path, false);
    const layer = layerTf(c);
    const keep = keepMaskFromValues(layer.theta, layer.noise, c.profile, 'conv2d');
    return finiteFromTf(
      conv2dEvalTf(layer.x, layer.theta, layer.bias, keep, c.geometry, path),
      'the output',
    );
  });
}

/**
 * VJP of fastConv2dTrain's output by tfjs autodiff: the gradients of
 * sum(cotangent.output * output) with respect to x, theta, noise, bias.
 */
export function fastConv2dTrainVjp(
  inputs: FastConv2dTrainInputs,
  cotangent: FastTrainCotangent,
  profile: Profile | string,
  options?: FastConv2dOptions,
): FastLayerGradients {
  const c = checkConv(inputs, profile, options);
  const eps = checkEps(inputs, c);
  const cot = checkTrainCotangent(cotangent, outputShape(c.geometry));
  const trainClip = checkTrainClip(c.options.rest, c.profile);
  if (degenerate(c)) {
    return degenerateGradients(shapesOf(c), c.geometry.outChannels, meanCotangents(cot));
  }
  return scoped(() => {
    const path = resolvePath(c.options.path, true);
    const layer = layerTf(c);
    const keep = keepMaskFromValues(layer.theta, layer.noise, c.profile, 'conv2d');
    const epsTf = toTf(eps);
    const forward = (x: tf.Tensor, theta: tf.Tensor, noise: tf.Tensor, bias: tf.Tensor) =>
      conv2dTrainTf({ x, theta, noise, bias }, epsTf, keep, c.profile, trainClip, c.geometry, path);
    return gradientsFromTf(trainGradsTf(forward, layer, cot));
  });
}

/**
 * VJP of fastConv2dEval; the noise gradient is 0 (it only moves the mask).
 * The cotangent is the output's, bare (as the reference takes it) or as {output}.
 */
export function fastConv2dEvalVjp(
  inputs: FastConv2dEvalInputs,
  cotangent: Tensor | FastCotangent,
  profile: Profile | string,
  options?: FastConv2dOptions,
): FastLayerGradients {
  const c = checkConv(inputs, profile, options);
  const gy = checkEvalCotangent(cotangent, outputShape(c.geometry));
  if (degenerate(c)) return degenerateGradients(shapesOf(c), c.geometry.outChannels, [gy]);
  return scoped(() => {
    const path = resolvePath(c.options.path, true);
    const layer = layerTf(c);
    const keep = keepMaskFromValues(layer.theta, layer.noise, c.profile, 'conv2d');
    const f = (x: tf.Tensor, theta: tf.Tensor, bias: tf.Tensor) =>
      conv2dEvalTf(x, theta, bias, keep, c.geometry, path);
    const [gx, gTheta, gBias] = tf.grads(f)([layer.x, layer.theta, layer.bias], toTf(gy));
    return gradientsFromTf({
      x: gx!,
      theta: gTheta!,
      noise: tf.zerosLike(layer.noise),
      bias: gBias!,
    });
  });
}
