/**
 * Fast (float32) conv2d layer of VD and Sparse VD (spec/conv2d.md,
 * spec/fast.md#kernel-paths): NHWC input, HWIO filter, stride, TensorFlow's
 * 'valid' / 'same' padding.
 *
 * Two kernel paths compute the same convolution:
 * - `native`: tf.conv2d. Its filter gradient needs the Conv2DBackpropFilter
 *   kernel, which the wasm backend lacks.
 * - `patches`: im2col (patchesTf), then one matMul per term. The patches are
 *   built once and serve the mean (P @ theta_m) and, squared, the variance
 *   ((P*P) @ s2_m), since patches of x*x are the squares of the patches of x.
 * `auto` (the default) runs forwards on `native` everywhere, and VJPs on
 * `native` with tfjs-node, on `patches` with wasm and cpu (see resolvePath).
 *
 * The training step's fused layer (fusedConv2dTf in fused-kernels.ts) needs neither
 * path's gradient: for stride 1 it writes the filter and input gradients as
 * forward convolutions (convFilterGradientTf, convInputGradientTf), which
 * every backend has.
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
 * One axis (spec/conv2d.md#padding). 'valid': out = floor((in - k) / s) + 1,
 * no padding. 'same' by TensorFlow's rule: out = ceil(in / s), total =
 * max((out - 1) s + k - in, 0), floor(total / 2) before, the rest after; by
 * Lasagne's: floor(k / 2) before and after (k odd).
 */
function axis(
  size: number,
  kernel: number,
  stride: number,
  padding: FastConv2dPadding,
  samePadding: Profile['samePadding'],
) {
  if (padding === 'valid') {
    return { out: Math.floor((size - kernel) / stride) + 1, before: 0, after: 0 };
  }
  if (samePadding === 'lasagne') {
    const half = Math.floor(kernel / 2);
    return { out: Math.floor((size + 2 * half - kernel) / stride) + 1, before: half, after: half };
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
  samePadding: Profile['samePadding'] = 'tensorflow',
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
  if (
    samePadding === 'lasagne' &&
    padding === 'same' &&
    (kernelHeight % 2 === 0 || kernelWidth % 2 === 0)
  ) {
    throw new VdspecError(
      'shape_mismatch',
      `Lasagne's 'same' padding (floor(k / 2) on each side) needs an odd kernel, got ${kernelHeight}x${kernelWidth}`,
      'theta',
    );
  }
  const rows = axis(height, kernelHeight, strideHeight, padding, samePadding);
  const cols = axis(width, kernelWidth, strideWidth, padding, samePadding);
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
export function nativeConv(x: tf.Tensor, filter: tf.Tensor, g: ConvGeometry): tf.Tensor4D {
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
 * HWIO filter reshaped to [kh * kw * cin, cout]). Stride 1 on wasm:
 * patchesByConvTf; otherwise patchesBySlicesTf (the two agree exactly on
 * finite inputs).
 */
export function patchesTf(x: tf.Tensor, g: ConvGeometry): tf.Tensor2D {
  if (unitStride(g) && tf.getBackend() === 'wasm') return patchesByConvTf(x, g);
  return patchesBySlicesTf(x, g);
}

/**
 * patchesTf from pad, slice, reshape and concat, whose gradients (slice, pad,
 * reshape, split) all run on every backend.
 */
export function patchesBySlicesTf(x: tf.Tensor, g: ConvGeometry): tf.Tensor2D {
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

/**
 * Whether convFilterGradientTf and convInputGradientTf cover a convolution:
 * stride 1 (any padding). Strided convolutions go through patches.
 */
export function unitStride(g: ConvGeometry): boolean {
  return g.strideHeight === 1 && g.strideWidth === 1;
}

/**
 * The filter gradient of a stride-1 convolution, sum over b, i, j of
 * x_padded[b, i + p, j + q, ci] * dy[b, i, j, co], as one tf.conv2d (no
 * patch matrix, and a kernel every backend has): the input is x with its
 * channels as the batch and its batch as the channels, `[cin, h, w, n]`
 * (the caller transposes x once for both terms of a layer), the filter is
 * dy as `[oh, ow, n, cout]`, and the output `[cin, kh, kw, cout]` is
 * transposed to HWIO.
 */
export function convFilterGradientTf(
  xChannelsFirst: tf.Tensor,
  dy: tf.Tensor,
  g: ConvGeometry,
): tf.Tensor4D {
  const dyFilter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  const byChannel = tf.conv2d(xChannelsFirst as tf.Tensor4D, dyFilter, 1, [
    [0, 0],
    [g.padTop, g.padBottom],
    [g.padLeft, g.padRight],
    [0, 0],
  ]);
  return tf.transpose(byChannel, [1, 2, 0, 3]);
}

/**
 * The input gradient of a stride-1 convolution, sum over p, q, co of
 * dy[b, y + padTop - p, x + padLeft - q, co] * filter[p, q, ci, co]: the
 * full correlation of dy with the filter flipped in both spatial axes and
 * its channel axes swapped, as one tf.conv2d (tfjs-backend-wasm 4.22's
 * Conv2DBackpropInput is a plain loop, about 4x slower at LeNet-5 sizes).
 * The padding `k - 1 - pad` is never negative: a stride-1 convolution pads
 * at most k - 1 on a side.
 */
export function convInputGradientTf(
  dy: tf.Tensor,
  filter: tf.Tensor,
  g: ConvGeometry,
): tf.Tensor4D {
  const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  return tf.conv2d(dy as tf.Tensor4D, flipped, 1, [
    [0, 0],
    [g.kernelHeight - 1 - g.padTop, g.kernelHeight - 1 - g.padBottom],
    [g.kernelWidth - 1 - g.padLeft, g.kernelWidth - 1 - g.padRight],
    [0, 0],
  ]);
}

/**
 * The depthwise filter `[kh, kw, cin, kh * kw]` whose output channel
 * (ci, p kw + q) reads input channel ci at tap (p, q) with weight 1, and
 * 0 elsewhere (`flipped`: `[kh, kw, cin * kh * kw, 1]`, input channel
 * (ci, p kw + q) read at tap (kh - 1 - p, kw - 1 - q)).
 */
function tapSelector(g: ConvGeometry, flipped: boolean): tf.Tensor4D {
  const { kernelHeight: kh, kernelWidth: kw, inChannels: c } = g;
  const taps = kh * kw;
  const values = new Float32Array(kh * kw * c * taps);
  for (let p = 0; p < kh; p++) {
    for (let q = 0; q < kw; q++) {
      const t = p * kw + q;
      for (let ci = 0; ci < c; ci++) {
        // [kh, kw, c, taps] and [kh, kw, c * taps, 1] have the same row-major layout.
        const at = flipped ? (kh - 1 - p) * kw + (kw - 1 - q) : t;
        values[(at * c + ci) * taps + t] = 1;
      }
    }
  }
  return flipped
    ? tf.tensor4d(values, [kh, kw, c * taps, 1])
    : tf.tensor4d(values, [kh, kw, c, taps]);
}

/**
 * patchesTf for stride 1 on wasm, from depthwise convolutions with 0/1
 * filters (XNNPACK kernels; tfjs-backend-wasm 4.22 runs tf.slice and
 * tf.concat in JavaScript, and the gradient of the slice path copies its
 * whole input out of the wasm heap once per tap: about 0.7 s per step at
 * LeNet-5's second layer).
 *
 * Forward: the depthwise convolution with tapSelector gives every window
 * as channels (ci, tap); a 3-D transpose puts them in HWI order. Each output
 * is 1 * x plus products 0 * (finite x), so for finite x it is x exactly
 * (test/properties/fast-speed-paths.test.ts holds it equal to
 * patchesBySlicesTf); a non-finite x would spread NaN through its
 * windows, and every caller checks its inputs finite first.
 * Backward (im2col's adjoint, the scatter-add of each window back to its
 * pixels): the cotangent's taps as channels, zero-padded by k - 1 - pad on
 * each side, through the flipped selector (channel (ci, (p, q)) moved by
 * (p, q)), then summed over the taps.
 */
function patchesByConvTf(x: tf.Tensor, g: ConvGeometry): tf.Tensor2D {
  const { batch: n, height: h, width: w, inChannels: c, outHeight: oh, outWidth: ow } = g;
  const taps = g.kernelHeight * g.kernelWidth;
  const rows = n * oh * ow;
  const op = tf.customGrad((...args) => {
    const input = args[0] as tf.Tensor4D;
    const windows = tf.depthwiseConv2d(input, tapSelector(g, false), 1, [
      [0, 0],
      [g.padTop, g.padBottom],
      [g.padLeft, g.padRight],
      [0, 0],
    ]);
    const value = tf.reshape(tf.transpose(tf.reshape(windows, [rows, c, taps]), [0, 2, 1]), [
      rows,
      taps * c,
    ]) as tf.Tensor2D;
    return {
      value,
      gradFunc: (dy: tf.Tensor2D) => {
        const byChannel = tf.reshape(tf.transpose(tf.reshape(dy, [rows, taps, c]), [0, 2, 1]), [
          n,
          oh,
          ow,
          c * taps,
        ]) as tf.Tensor4D;
        const moved = tf.depthwiseConv2d(byChannel, tapSelector(g, true), 1, [
          [0, 0],
          [g.kernelHeight - 1 - g.padTop, g.kernelHeight - 1 - g.padBottom],
          [g.kernelWidth - 1 - g.padLeft, g.kernelWidth - 1 - g.padRight],
          [0, 0],
        ]);
        return tf.reshape(tf.sum(tf.reshape(moved, [n * h * w, c, taps]), 2), [n, h, w, c]);
      },
    };
  });
  return op(x) as tf.Tensor2D;
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
  const geometry = convGeometry(
    x.shape,
    theta.shape,
    options.stride,
    options.padding,
    profile.samePadding,
  );
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

/** svd.conv2d.eval_unmasked: conv(x, theta) + bias, no mask, in float32. */
export function fastConv2dEvalUnmasked(
  inputs: FastConv2dEvalInputs,
  profile: Profile | string,
  options?: FastConv2dOptions,
): Tensor {
  const c = checkConv(inputs, profile, options);
  if (degenerate(c)) return degenerateEval(c.bias, outputShape(c.geometry));
  return scoped(() => {
    const path = resolvePath(c.options.path, false);
    const layer = layerTf(c);
    return finiteFromTf(
      conv2dEvalTf(layer.x, layer.theta, layer.bias, null, c.geometry, path),
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
