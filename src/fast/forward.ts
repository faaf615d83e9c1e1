/**
 * The forwards of a fast model (src/fast/fast-model.ts) from its input to
 * its logits: the training forward with noise (fused or through the spec's
 * own layers), the eval forward with the keep masks, and the plain forward
 * of a deterministic network. Call inside tf.tidy (or a gradient tape).
 */
import * as tf from '@tensorflow/tfjs';

import type { Profile } from '../profiles.js';
import { conv2dEvalTf, conv2dTrainTf, convGeometry, resolvePath } from './conv2d.js';
import { denseEvalTf, denseTrainTf, keepMaskFromValues } from './dense.js';
import type { ModelLayer } from './model-layers.js';
import {
  fusedConv2dTf,
  fusedLinearTf,
  maxPool2x2Tf,
  maxPoolImplementation,
  plainConv2dTf,
  plainLinearTf,
  type FusedWeightsTf,
} from './fused-kernels.js';

/** relu, flatten, or the 2x2 max-pool (whose gradient needs care on wasm: fused-kernels.ts). */
export function fixedLayer(
  kind: 'relu' | 'maxPool2x2' | 'flatten',
  h: tf.Tensor,
  mode: 'train' | 'eval',
): tf.Tensor {
  if (kind === 'relu') return tf.relu(h);
  if (kind === 'flatten') return tf.reshape(h, [h.shape[0]!, -1]);
  return maxPool2x2Tf(h as tf.Tensor4D, mode === 'eval' ? 'native' : maxPoolImplementation());
}

/** The training forward to the logits, inside a gradient tape. */
export function trainLogits(
  layers: readonly ModelLayer[],
  profile: Profile,
  trainClip: boolean,
  x: tf.Tensor,
  eps: readonly tf.Tensor[],
  fused: readonly FusedWeightsTf[] | null,
  keeps: readonly (tf.Tensor | null)[] | null,
): tf.Tensor {
  let h = x;
  let needsGradient = false;
  for (const entry of layers) {
    if (entry.kind !== 'param') {
      h = fixedLayer(entry.kind, h, 'train');
    } else {
      const p = entry.layer;
      const e = eps[p.index]!;
      if (p.kind === 'dense') {
        h =
          fused === null
            ? denseTrainTf(
                { x: h, theta: p.theta, noise: p.noise, bias: p.bias },
                e,
                keeps![p.index]!,
                profile,
                trainClip,
              ).output
            : fusedLinearTf(
                h as tf.Tensor2D,
                p.theta,
                p.noise,
                p.bias,
                fused[p.index]!,
                e as tf.Tensor2D,
                profile.sqrtEps,
                needsGradient,
              );
      } else {
        const g = convGeometry(h.shape, p.theta.shape, p.stride, p.padding, profile.samePadding);
        if (fused === null) {
          h = conv2dTrainTf(
            { x: h, theta: p.theta, noise: p.noise, bias: p.bias },
            e,
            keeps![p.index]!,
            profile,
            trainClip,
            g,
            resolvePath('auto', true),
          ).output;
        } else {
          h = fusedConv2dTf(
            h as tf.Tensor4D,
            p.theta,
            p.noise,
            p.bias,
            fused[p.index]!,
            e as tf.Tensor4D,
            profile.sqrtEps,
            needsGradient,
            g,
          );
        }
      }
      needsGradient = true;
    }
  }
  return h;
}

/** The eval forward (spec/dense.md, spec/conv2d.md): x @ (theta * mask) + b, no noise. */
export function evalLogits(
  layers: readonly ModelLayer[],
  profile: Profile,
  x: tf.Tensor,
): tf.Tensor {
  let h = x;
  for (const entry of layers) {
    if (entry.kind !== 'param') {
      h = fixedLayer(entry.kind, h, 'eval');
    } else {
      const p = entry.layer;
      const keep = keepMaskFromValues(p.theta, p.noise, profile, p.kind);
      if (p.kind === 'dense') h = denseEvalTf(h, p.theta, p.bias, keep);
      else {
        const g = convGeometry(h.shape, p.theta.shape, p.stride, p.padding, profile.samePadding);
        h = conv2dEvalTf(h, p.theta, p.bias, keep, g, resolvePath('auto', false));
      }
    }
  }
  return h;
}

/**
 * The forward of a deterministic network (x @ theta + b, convolution
 * alike, no mask), with the hand-written backward of fused-kernels.ts (wasm has
 * no conv filter gradient, and its transposed matMul is slow).
 */
export function plainLogits(
  layers: readonly ModelLayer[],
  profile: Profile,
  x: tf.Tensor,
  mode: 'train' | 'eval',
): tf.Tensor {
  let h = x;
  // The first layer's input is data: its gradient is never needed.
  let needsGradient = false;
  for (const entry of layers) {
    if (entry.kind !== 'param') {
      h = fixedLayer(entry.kind, h, mode);
      continue;
    }
    const p = entry.layer;
    if (p.kind === 'dense') {
      h = plainLinearTf(h as tf.Tensor2D, p.theta as tf.Tensor2D, p.bias, needsGradient);
    } else {
      const g = convGeometry(h.shape, p.theta.shape, p.stride, p.padding, profile.samePadding);
      h = plainConv2dTf(h as tf.Tensor4D, p.theta, p.bias, needsGradient, g);
    }
    needsGradient = true;
  }
  return h;
}

/** The eval forward of a model: pruned for SVD, plain for a deterministic network. */
export function inferenceLogits(
  layers: readonly ModelLayer[],
  profile: Profile,
  deterministic: boolean,
  x: tf.Tensor,
): tf.Tensor {
  return deterministic ? plainLogits(layers, profile, x, 'eval') : evalLogits(layers, profile, x);
}
