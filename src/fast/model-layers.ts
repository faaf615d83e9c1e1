/**
 * A fast model's layers as it holds them (src/fast/fast-model.ts): the
 * dense / conv2d layers with their parameters as tf.Variables, built from a
 * layer list (src/fast/networks.ts) with the seeded initialisation of
 * spec/fast.md#training, and the fixed layers between them; the order in
 * which the trained tensors are named, updated and saved.
 */
import * as tf from '@tensorflow/tfjs';

import { DENSE_INIT_THETA_STD, SVD_INIT_LOG_SIGMA2 } from '../constants.js';
import { VdspecError } from '../errors.js';
import type { LayerKind, Profile } from '../profiles.js';
import { checkNumber, shapeToString, sizeOf } from '../tensor.js';
import { convGeometry, type FastConv2dPadding } from './conv2d.js';
import type { VdLogAlphaShape } from './model-types.js';
import type { FastLayerSpec } from './networks.js';

export interface ParamLayer {
  readonly kind: LayerKind;
  readonly name: string;
  /** Position among the dense and conv2d layers. */
  readonly index: number;
  readonly theta: tf.Variable;
  readonly noise: tf.Variable;
  readonly bias: tf.Variable;
  readonly stride: [number, number];
  readonly padding: FastConv2dPadding;
  /** One example's output shape. */
  readonly outputShape: readonly number[];
}

export type ModelLayer =
  | { readonly kind: 'param'; readonly layer: ParamLayer }
  | { readonly kind: 'relu' | 'maxPool2x2' | 'flatten' };

function pair(value: unknown, name: string): [number, number] {
  if (typeof value === 'number') {
    const v = checkNumber(name, value, { integer: true, min: 1 });
    return [v, v];
  }
  if (Array.isArray(value) && value.length === 2) {
    return [
      checkNumber(name, value[0], { integer: true, min: 1 }),
      checkNumber(name, value[1], { integer: true, min: 1 }),
    ];
  }
  throw new VdspecError('invalid_argument', 'expected a positive integer or a pair', name);
}

/** The learned log_alpha's shape for theta's shape (VD): per weight, per input unit, or one. */
function vdNoiseShape(kind: LayerKind, thetaShape: number[], share: VdLogAlphaShape): number[] {
  if (share === 'weight') return thetaShape;
  if (share === 'scalar') return thetaShape.map(() => 1);
  // Per input unit: a dense layer's rows; a convolution's input channels.
  return kind === 'dense' ? [thetaShape[0]!, 1] : [1, 1, thetaShape[2]!, 1];
}

/**
 * Initial parameters (spec/fast.md#training): dense theta ~ N(0, 0.01^2),
 * conv2d theta ~ U(-a, a) with a = sqrt(6 / ((cin + cout) kh kw)) (Glorot),
 * bias 0; SVD: log_sigma2 = SVD_INIT_LOG_SIGMA2 (log_sigma = half of it);
 * VD: log_alpha = 0. Layer p's theta is drawn with seed `seed + p`.
 */
function initialParameters(
  kind: LayerKind,
  thetaShape: number[],
  profile: Profile,
  vdShare: VdLogAlphaShape,
  seed: number,
): { theta: tf.Tensor; noise: tf.Tensor; bias: tf.Tensor } {
  return tf.tidy(() => {
    let theta: tf.Tensor;
    if (kind === 'dense') {
      theta = tf.randomNormal(thetaShape, 0, DENSE_INIT_THETA_STD, 'float32', seed);
    } else {
      const [kh, kw, cin, cout] = thetaShape as [number, number, number, number];
      const limit = Math.sqrt(6 / ((cin + cout) * kh * kw));
      theta = tf.randomUniform(thetaShape, -limit, limit, 'float32', seed);
    }
    let noise: tf.Tensor;
    if (profile.noiseParameter === 'log_alpha') {
      noise = tf.zeros(vdNoiseShape(kind, thetaShape, vdShare));
    } else {
      const logSigma2 = SVD_INIT_LOG_SIGMA2;
      noise = tf.fill(
        thetaShape,
        profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2,
      );
    }
    return { theta, noise, bias: tf.zeros([thetaShape[thetaShape.length - 1]!]) };
  });
}

/**
 * Builds the layers of `specs` for one example of `inputShape`, appending
 * them to `layers` and the dense / conv2d ones to `params` (layer p's theta
 * drawn with seed `seed + p`); returns the last layer's output shape. A bad
 * spec throws with the variables made so far already in `params`: the
 * caller disposes them.
 */
export function buildLayers(
  specs: readonly FastLayerSpec[],
  inputShape: readonly number[],
  profile: Profile,
  vdShare: VdLogAlphaShape,
  seed: number,
  layers: ModelLayer[],
  params: ParamLayer[],
): number[] {
  let shape = [...inputShape];
  specs.forEach((spec, i) => {
    const where = `options.layers[${i}]`;
    if (typeof spec !== 'object' || spec === null) {
      throw new VdspecError('invalid_argument', 'expected a layer object {kind, ...}', where);
    }
    if (spec.kind === 'relu' || spec.kind === 'flatten' || spec.kind === 'maxPool2x2') {
      if (spec.kind === 'flatten') shape = [sizeOf(shape)];
      if (spec.kind === 'maxPool2x2') {
        if (shape.length !== 3 || shape[0]! < 2 || shape[1]! < 2) {
          throw new VdspecError(
            'shape_mismatch',
            `maxPool2x2 needs [height >= 2, width >= 2, channels], got ${shapeToString(shape)}`,
            where,
          );
        }
        shape = [Math.floor(shape[0]! / 2), Math.floor(shape[1]! / 2), shape[2]!];
      }
      layers.push({ kind: spec.kind });
      return;
    }
    const index = params.length;
    let thetaShape: number[];
    let outputShape: number[];
    let stride: [number, number] = [1, 1];
    let padding: FastConv2dPadding = 'valid';
    if (spec.kind === 'dense') {
      const units = checkNumber(`${where}.units`, spec.units, { integer: true, min: 1 });
      if (shape.length !== 1) {
        throw new VdspecError(
          'shape_mismatch',
          `a dense layer needs a flat input (add a flatten layer), got ${shapeToString(shape)}`,
          where,
        );
      }
      thetaShape = [shape[0]!, units];
      outputShape = [units];
    } else if (spec.kind === 'conv2d') {
      const filters = checkNumber(`${where}.filters`, spec.filters, { integer: true, min: 1 });
      const [kh, kw] = pair(spec.kernelSize, `${where}.kernelSize`);
      stride = spec.stride === undefined ? [1, 1] : pair(spec.stride, `${where}.stride`);
      padding = spec.padding ?? 'valid';
      if (padding !== 'valid' && padding !== 'same') {
        throw new VdspecError('invalid_argument', "expected 'valid' or 'same'", `${where}.padding`);
      }
      if (shape.length !== 3) {
        throw new VdspecError(
          'shape_mismatch',
          `a conv2d layer needs [height, width, channels], got ${shapeToString(shape)}`,
          where,
        );
      }
      thetaShape = [kh, kw, shape[2]!, filters];
      const g = convGeometry([1, ...shape], thetaShape, stride, padding, profile.samePadding);
      outputShape = [g.outHeight, g.outWidth, filters];
    } else {
      throw new VdspecError(
        'invalid_argument',
        `unknown layer kind ${String((spec as { kind?: unknown }).kind)}`,
        `${where}.kind`,
      );
    }
    const init = initialParameters(spec.kind, thetaShape, profile, vdShare, seed + index);
    const layer: ParamLayer = {
      kind: spec.kind,
      name: `${spec.kind}${index}`,
      index,
      theta: tf.variable(init.theta),
      noise: tf.variable(init.noise),
      bias: tf.variable(init.bias),
      stride,
      padding,
      outputShape,
    };
    tf.dispose([init.theta, init.noise, init.bias]);
    params.push(layer);
    layers.push({ kind: 'param', layer });
    shape = outputShape;
  });
  return shape;
}

/** The variables Adam updates, in order: theta, noise (unless deterministic), bias per layer. */
export function trainableVariables(
  params: readonly ParamLayer[],
  deterministic: boolean,
): tf.Variable[] {
  return params.flatMap((p) => (deterministic ? [p.theta, p.bias] : [p.theta, p.noise, p.bias]));
}

/** The names of trainableVariables(params, deterministic), in its order ('dense0.theta', ...). */
export function trainableNames(params: readonly ParamLayer[], deterministic: boolean): string[] {
  return params.flatMap((p) =>
    deterministic
      ? [`${p.name}.theta`, `${p.name}.bias`]
      : [`${p.name}.theta`, `${p.name}.noise`, `${p.name}.bias`],
  );
}
