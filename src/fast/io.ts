/**
 * The boundary of the fast implementation: plain `Tensor`s in and out,
 * float32 tf.Tensors inside, every bad argument rejected before any tensor
 * is allocated, and every allocation released before a function returns.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import { getProfile, type LayerKind, type Profile, type ProfileName } from '../profiles.js';
import { checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';
import { requireBackend } from './backend.js';

/** A plain tensor as a float32 tf.Tensor (every value rounded to the nearest float32). */
export function toTf(t: Tensor): tf.Tensor {
  return tf.tensor(t.data as number[], [...t.shape], 'float32');
}

/** A tf.Tensor read back as a plain tensor (float32 values, exactly, as JavaScript numbers). */
export function fromTf(t: tf.Tensor): Tensor {
  return { shape: [...t.shape], data: Array.from(t.dataSync()) };
}

/**
 * A layer result read back, rejected if any value is not finite: with finite
 * inputs that means float32 overflow (above ~3.4e38), and the spec answers
 * such a case with an error (code non_finite, no argument: no single input is
 * at fault), never with inf or NaN.
 */
export function finiteFromTf(t: tf.Tensor, what: string): Tensor {
  const out = fromTf(t);
  const bad = out.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new VdspecError(
      'non_finite',
      `${what} is ${out.data[bad]} at index ${bad}: the inputs are too large for float32`,
    );
  }
  return out;
}

/**
 * Run `fn` inside a tf.tidy scope and return its plain (non-tensor) result:
 * every tensor `fn` creates is disposed when it returns or throws. Checks
 * that a backend is active first.
 */
export function scoped<T>(fn: () => T): T {
  requireBackend();
  let result: { value: T } | null = null;
  tf.tidy(() => {
    result = { value: fn() };
  });
  // tf.tidy either ran fn to completion or rethrew, so result is set here.
  return (result as unknown as { value: T }).value;
}

export function checkProfile(profile: unknown): Profile {
  if (typeof profile !== 'string' && (typeof profile !== 'object' || profile === null)) {
    throw new VdspecError('unknown_profile', 'expected a profile name or object', 'profile');
  }
  return getProfile(profile as ProfileName | Profile);
}

export function checkLayer(layer: unknown): LayerKind {
  if (layer !== 'dense' && layer !== 'conv2d') {
    throw new VdspecError(
      'invalid_argument',
      `expected 'dense' or 'conv2d', got ${String(layer)}`,
      'layer',
    );
  }
  return layer;
}

export function checkInputsObject(inputs: unknown, names: string): Record<string, unknown> {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError('invalid_argument', `expected an object {${names}}`, 'inputs');
  }
  return inputs as Record<string, unknown>;
}

/** NumPy broadcasting of `from` onto `to`, without expanding `to`. */
function broadcastsTo(from: readonly number[], to: readonly number[]): boolean {
  if (from.length > to.length) return false;
  const lead = to.length - from.length;
  return from.every((d, i) => d === 1 || d === to[lead + i]);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The noise parameter has theta's shape, except that a learned log_alpha (VD)
 * may be anything that broadcasts to it: one scalar, one per input unit, one
 * per weight (spec/log-alpha.md).
 */
export function checkNoise(
  noiseIn: unknown,
  theta: Tensor,
  profile: Profile,
  layer: LayerKind,
): Tensor {
  const name = profile.noiseParameter;
  const noise = checkTensor(name, noiseIn);
  const learned = profile[layer].logAlpha.form === 'learned';
  const ok = learned ? broadcastsTo(noise.shape, theta.shape) : sameShape(noise.shape, theta.shape);
  if (!ok) {
    throw new VdspecError(
      'shape_mismatch',
      learned
        ? `shape ${shapeToString(noise.shape)} does not broadcast to theta's ${shapeToString(theta.shape)}`
        : `expected theta's shape ${shapeToString(theta.shape)}, got ${shapeToString(noise.shape)}`,
      name,
    );
  }
  return noise;
}

export function checkTrainClip(options: unknown, profile: Profile): boolean {
  if (options === undefined) return profile.trainClipDefault;
  if (typeof options !== 'object' || options === null) {
    throw new VdspecError('invalid_argument', 'expected an object', 'options');
  }
  const trainClip = (options as { trainClip?: unknown }).trainClip;
  if (trainClip === undefined) return profile.trainClipDefault;
  if (typeof trainClip !== 'boolean') {
    throw new VdspecError(
      'invalid_argument',
      `expected a boolean, got ${String(trainClip)}`,
      'options.trainClip',
    );
  }
  return trainClip;
}

/** A tensor of zeros of the given shape. */
export function zerosOf(shape: readonly number[]): Tensor {
  return { shape: [...shape], data: new Array<number>(sizeOf(shape)).fill(0) };
}
