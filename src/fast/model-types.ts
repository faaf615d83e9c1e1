/**
 * The public types of a fast model (src/fast/fast-model.ts): its options,
 * a training batch and step, what a step returns, and the plain-data views
 * of its parameters, state and sparsity.
 */
import type * as tf from '@tensorflow/tfjs';

import type { LayerKind, Profile, ProfileName } from '../profiles.js';
import type { Tensor } from '../tensor.js';
import type { FastConv2dPadding } from './conv2d.js';
import type { FastLayerSpec } from './networks.js';

/** Where a learned (VD) log_alpha is shared: one per weight, per input unit, or one per layer. */
export type VdLogAlphaShape = 'weight' | 'input' | 'scalar';

export interface FastModelOptions {
  /** One example's shape: [features] for a dense first layer, [height, width, channels] for conv2d. */
  readonly inputShape: readonly number[];
  readonly layers: readonly FastLayerSpec[];
  readonly profile: Profile | ProfileName;
  /** Seeds the initialisation (and, by default, the noise). */
  readonly seed: number;
  /** Seeds the training noise; default seed + the number of dense and conv2d layers. */
  readonly noiseSeed?: number;
  /** Apply the keep mask in the training forward; default profile.trainClipDefault. */
  readonly trainClip?: boolean;
  /** VD only: the learned log_alpha's shape (default 'weight'). */
  readonly vdLogAlpha?: VdLogAlphaShape;
  /**
   * `fused` (default where the profile allows it, see spec/fast.md#training):
   * hand-written derivatives of the per-weight quantities; `autodiff`: tfjs
   * autodiff through the spec's own forward (denseTrainTf, conv2dTrainTf,
   * layerKlTf). Both compute the same gradient.
   */
  readonly gradients?: 'fused' | 'autodiff';
  /**
   * A plain network of the same architecture (the dense baseline): the
   * training and eval forwards are x @ theta + b (convolution alike), with
   * no noise, no KL and no mask; the noise parameters are not trained.
   * Default false.
   */
  readonly deterministic?: boolean;
}

export interface FastTrainBatch {
  /** [batch, ...inputShape]; a tf.Tensor is read, never disposed. */
  readonly x: tf.Tensor | Tensor;
  /** One class index per example, in [0, classes). */
  readonly labels: readonly number[] | Int32Array;
}

export interface FastTrainStepOptions {
  /** N, the size of the training set. */
  readonly trainSize: number;
  /** beta, the KL weight (>= 0). */
  readonly klWeight: number;
  /** Adam's learning rate for this step (>= 0). */
  readonly learningRate: number;
  /**
   * Standard-normal draws, one tensor per dense / conv2d layer, each of its
   * output's shape; default drawn (see FastModel.noiseSeedFor).
   */
  readonly eps?: readonly (tf.Tensor | Tensor)[];
}

/** Where a shard of a batch sits (the data-parallel trainer's workers). */
export interface FastShard {
  /** The step whose noise the shard draws. */
  readonly step: number;
  /** The shard's first row in the batch. */
  readonly firstRow: number;
  /** The whole batch's size. */
  readonly batchSize: number;
}

export interface FastTrainStepResult {
  /** The step's index (0 for the first step). */
  readonly step: number;
  /** dataTerm + klTerm: the minimised quantity, before the update. */
  readonly loss: number;
  /** N * mean cross-entropy over the batch. */
  readonly dataTerm: number;
  /** beta * kl. */
  readonly klTerm: number;
  /** The KL summed over every layer. */
  readonly kl: number;
  /** Fraction of the batch whose training-forward logits pick the label. */
  readonly accuracy: number;
}

export interface FastLayerParameters {
  readonly name: string;
  readonly kind: LayerKind;
  readonly theta: Tensor;
  /** The profile's noise parameter (log_sigma2, log_sigma or log_alpha). */
  readonly noise: Tensor;
  readonly bias: Tensor;
}

/** One layer of a trained network as plain data (FastModel.networkLayers). */
export type FastNetworkLayer =
  | { kind: 'dense'; theta: Tensor; bias: Tensor; keep: Tensor | null }
  | {
      kind: 'conv2d';
      theta: Tensor;
      bias: Tensor;
      keep: Tensor | null;
      stride: [number, number];
      padding: FastConv2dPadding;
    }
  | { kind: 'relu' }
  | { kind: 'maxPool2x2' }
  | { kind: 'flatten' };

/** A named float32 tensor of a FastModelState. */
export interface FastStateTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** A model's parameters, Adam's moments and step count (FastModel.exportState). */
export interface FastModelState {
  readonly step: number;
  readonly tensors: readonly FastStateTensor[];
}

export interface FastLayerGradientValues {
  readonly theta: Tensor;
  readonly noise: Tensor;
  readonly bias: Tensor;
}

export interface FastLayerSparsity {
  readonly name: string;
  readonly kept: number;
  readonly total: number;
  /** (total - kept) / total. */
  readonly fractionPruned: number;
  /** |W| / |W != 0| = total / kept; Infinity when nothing is kept. */
  readonly compression: number;
}

export interface FastSparsityReport {
  readonly layers: FastLayerSparsity[];
  readonly overall: FastLayerSparsity;
}
