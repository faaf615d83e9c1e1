/**
 * FastModel, a sequential VD / Sparse VD network trained with the fast
 * implementation (spec/fast.md#training): dense and conv2d layers with
 * relu, 2x2 max-pool and flatten; seeded initialisation; the SGVB training
 * step with Adam; the eval forward with the keep masks; the sparsity report.
 * Its parts live beside it: the layer lists (networks.ts), its layers and
 * initialisation (model-layers.ts), the forwards (forward.ts), the step's
 * loss and gradient (sgvb-step.ts), Adam (adam.ts), evaluation
 * (evaluation.ts) and its state (model-state.ts). The command's training
 * loop is src/train/.
 *
 * Parameters are tf.Variables owned by the model: call dispose() when done.
 * Every step runs inside tf.tidy and leaves the number of live tensors
 * unchanged.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, type Tensor } from '../tensor.js';
import { adamUpdateTf, createAdamSlots, type AdamSlot } from './adam.js';
import { requireBackend } from './backend.js';
import { keepMaskFromValues } from './dense.js';
import { evaluateInChunks, sparsityReport } from './evaluation.js';
import { inferenceLogits } from './forward.js';
import { checkProfile, fromTf, scoped } from './io.js';
import {
  buildLayers,
  trainableNames,
  trainableVariables,
  type ModelLayer,
  type ParamLayer,
} from './model-layers.js';
import { checkBatchX, checkLabels, checkStepOptions } from './model-inputs.js';
import { readState, restoreState, stateLayout, type StateEntry } from './model-state.js';
import type {
  FastLayerGradientValues,
  FastLayerParameters,
  FastModelOptions,
  FastModelState,
  FastNetworkLayer,
  FastShard,
  FastSparsityReport,
  FastTrainBatch,
  FastTrainStepOptions,
  FastTrainStepResult,
} from './model-types.js';
import { fusable } from './fused-kernels.js';
import { lossAndGradients, noiseShapes, type StepModel } from './sgvb-step.js';
import { logAlphaTf } from './weights.js';

/**
 * A sequential VD / Sparse VD model with its Adam state. Create with
 * createFastModel (after `await initBackend()`).
 */
export class FastModel {
  readonly profile: Profile;
  readonly trainClip: boolean;
  readonly gradients: 'fused' | 'autodiff';
  readonly deterministic: boolean;
  readonly inputShape: readonly number[];
  readonly classes: number;
  readonly noiseSeed: number;
  private readonly layers: ModelLayer[];
  private readonly params: ParamLayer[];
  private readonly adam: AdamSlot[];
  private stepCount = 0;
  private disposed = false;

  /** @internal use createFastModel */
  constructor(options: FastModelOptions) {
    requireBackend();
    if (typeof options !== 'object' || options === null) {
      throw new VdspecError('invalid_argument', 'expected a model options object', 'options');
    }
    this.profile = checkProfile(options.profile);
    const profile = this.profile;
    const seed = checkNumber('options.seed', options.seed, { integer: true });
    this.trainClip = options.trainClip ?? profile.trainClipDefault;
    this.deterministic = options.deterministic ?? false;
    if (typeof this.deterministic !== 'boolean') {
      throw new VdspecError('invalid_argument', 'expected a boolean', 'options.deterministic');
    }
    if (typeof this.trainClip !== 'boolean') {
      throw new VdspecError('invalid_argument', 'expected a boolean', 'options.trainClip');
    }
    const vdShare = options.vdLogAlpha ?? 'weight';
    if (!['weight', 'input', 'scalar'].includes(vdShare)) {
      throw new VdspecError(
        'invalid_argument',
        `expected 'weight', 'input' or 'scalar', got ${String(vdShare)}`,
        'options.vdLogAlpha',
      );
    }
    if (!Array.isArray(options.inputShape) || options.inputShape.length === 0) {
      throw new VdspecError('invalid_argument', 'expected a non-empty shape', 'options.inputShape');
    }
    options.inputShape.forEach((d, i) =>
      checkNumber(`options.inputShape[${i}]`, d, { integer: true, min: 1 }),
    );
    this.inputShape = [...options.inputShape];
    if (!Array.isArray(options.layers) || options.layers.length === 0) {
      throw new VdspecError('invalid_argument', 'expected a non-empty list', 'options.layers');
    }

    this.layers = [];
    this.params = [];
    let shape: number[];
    const paramCount = options.layers.filter(
      (l) => l?.kind === 'dense' || l?.kind === 'conv2d',
    ).length;
    // A bad spec after some layers were made must not leak their variables.
    try {
      shape = buildLayers(
        options.layers,
        this.inputShape,
        profile,
        vdShare,
        seed,
        this.layers,
        this.params,
      );
    } catch (error) {
      this.dispose();
      throw error;
    }
    if (shape.length !== 1 || this.params.length === 0) {
      this.dispose();
      throw new VdspecError(
        'shape_mismatch',
        `the last layer must give [classes] and the model needs a dense or conv2d layer; got ${shapeToString(shape)}`,
        'options.layers',
      );
    }
    this.classes = shape[0]!;
    this.noiseSeed =
      options.noiseSeed === undefined
        ? seed + paramCount
        : checkNumber('options.noiseSeed', options.noiseSeed, { integer: true });
    const wanted = options.gradients;
    if (wanted !== undefined && wanted !== 'fused' && wanted !== 'autodiff') {
      this.dispose();
      throw new VdspecError(
        'invalid_argument',
        `expected 'fused' or 'autodiff', got ${String(wanted)}`,
        'options.gradients',
      );
    }
    const canFuse = this.params.every((p) => fusable(profile[p.kind]));
    if (wanted === 'fused' && !canFuse) {
      this.dispose();
      throw new VdspecError(
        'unsupported',
        "this profile's conventions are not covered by the fused step (spec/fast.md#training); use gradients: 'autodiff'",
        'options.gradients',
      );
    }
    this.gradients = wanted ?? (canFuse ? 'fused' : 'autodiff');
    this.adam = createAdamSlots(this.trainables());
  }

  /** The variables Adam updates, in order: theta, noise (unless deterministic), bias per layer. */
  private trainables(): tf.Variable[] {
    return trainableVariables(this.params, this.deterministic);
  }

  /** The number of training steps taken. */
  get step(): number {
    return this.stepCount;
  }

  /** The dense and conv2d layers' names, in order ('dense0', 'conv2d1', ...). */
  get layerNames(): string[] {
    return this.params.map((p) => p.name);
  }

  /**
   * The seed of the standard-normal draws of dense / conv2d layer `p` at step
   * `t`: `noiseSeed + t * P + p`, P the number of such layers, passed to
   * `seededNormals` (spec/fast.md#noise; the same on every run and backend).
   */
  noiseSeedFor(step: number, layerIndex: number): number {
    return this.noiseSeed + step * this.params.length + layerIndex;
  }

  /** Each dense / conv2d layer's output shape for a batch of `batch` examples. */
  noiseShapes(batch: number): number[][] {
    return noiseShapes(this.params, batch);
  }

  private alive(): void {
    if (this.disposed) {
      throw new VdspecError('invalid_argument', 'the model has been disposed', 'model');
    }
    requireBackend();
  }

  /** What the training step (sgvb-step.ts) reads of this model. */
  private stepModel(): StepModel {
    return {
      profile: this.profile,
      trainClip: this.trainClip,
      gradients: this.gradients,
      deterministic: this.deterministic,
      inputShape: this.inputShape,
      classes: this.classes,
      layers: this.layers,
      params: this.params,
      step: this.stepCount,
      noiseSeedFor: (step, layerIndex) => this.noiseSeedFor(step, layerIndex),
    };
  }

  /**
   * One training step: the SGVB loss N * mean CE + beta * KL on the batch
   * with fresh noise, its gradient, and an Adam update of every parameter.
   * Returns the loss and its parts before the update. A non-finite loss
   * throws VdspecError('non_finite') and leaves the model unchanged.
   */
  trainStep(batch: FastTrainBatch, options: FastTrainStepOptions): FastTrainStepResult {
    this.alive();
    const { learningRate } = checkStepOptions(options);
    const step = this.stepCount;
    const values = scoped(() => {
      const r = lossAndGradients(this.stepModel(), batch, options);
      adamUpdateTf(this.adam, r.grads, learningRate, step + 1);
      return r.values;
    });
    this.stepCount = step + 1;
    return { step, ...values };
  }

  /**
   * For the data-parallel trainer (parallel.ts): rows `shard.firstRow ..` of
   * a batch of `shard.batchSize` at step `shard.step`: their noise rows, their
   * share of the data term, and (with `klWeight > 0`) the KL; the gradient of
   * every trained tensor (trainableShapes() order) as tensors the caller
   * disposes. Nothing is updated.
   */
  shardGradients(
    batch: FastTrainBatch,
    options: FastTrainStepOptions,
    shard: FastShard,
  ): { dataTerm: number; kl: number; correct: number; grads: tf.Tensor[] } {
    this.alive();
    let grads: tf.Tensor[] = [];
    const values = scoped(() => {
      const r = lossAndGradients(this.stepModel(), batch, options, shard);
      grads = r.grads.map((g) => tf.keep(g));
      return { dataTerm: r.values.dataTerm, kl: r.values.kl, correct: r.correct };
    });
    return { ...values, grads };
  }

  /** One Adam update with the given gradients (trainableShapes() order); the step count advances. */
  applyGradients(grads: readonly tf.Tensor[], learningRate: number): void {
    this.alive();
    checkNumber('learningRate', learningRate, { min: 0 });
    const step = this.stepCount;
    scoped(() => adamUpdateTf(this.adam, grads, learningRate, step + 1));
    this.stepCount = step + 1;
  }

  /** The trained tensors' names and shapes, in the order of shardGradients and readTrainables. */
  trainableShapes(): { name: string; shape: number[] }[] {
    const names = trainableNames(this.params, this.deterministic);
    return this.trainables().map((v, i) => ({ name: names[i]!, shape: [...v.shape] }));
  }

  /** Copies every trained tensor's values into `target` (their sizes summed), in trainableShapes() order. */
  readTrainables(target: Float32Array): void {
    this.alive();
    let offset = 0;
    for (const v of this.trainables()) {
      const values = v.dataSync() as Float32Array;
      target.set(values, offset);
      offset += values.length;
    }
  }

  /** Sets every trained tensor from `source`, laid out as readTrainables writes it. */
  writeTrainables(source: Float32Array): void {
    this.alive();
    let offset = 0;
    for (const v of this.trainables()) {
      const size = v.size;
      tf.tidy(() =>
        v.assign(tf.tensor(source.subarray(offset, offset + size), v.shape, 'float32')),
      );
      offset += size;
    }
  }

  /**
   * The loss of one step and its gradient with respect to every parameter,
   * without updating (the step counter, and so the default noise, does not
   * advance either).
   */

  lossAndGradientValues(
    batch: FastTrainBatch,
    options: FastTrainStepOptions,
  ): { result: FastTrainStepResult; gradients: FastLayerGradientValues[] } {
    this.alive();
    return scoped(() => {
      const r = lossAndGradients(this.stepModel(), batch, options);
      const perLayer = this.deterministic ? 2 : 3;
      const gradients = this.params.map((p, i) => ({
        theta: fromTf(r.grads[perLayer * i]!),
        // A deterministic network does not train its noise parameters: their gradient is 0.
        noise: this.deterministic ? fromTf(tf.zerosLike(p.noise)) : fromTf(r.grads[3 * i + 1]!),
        bias: fromTf(r.grads[perLayer * i + perLayer - 1]!),
      }));
      return { result: { step: this.stepCount, ...r.values }, gradients };
    });
  }

  /** The eval forward of this model: pruned for SVD, plain for a deterministic network. */
  private inferenceLogits(x: tf.Tensor): tf.Tensor {
    return inferenceLogits(this.layers, this.profile, this.deterministic, x);
  }

  /** Eval-forward logits [batch, classes]; the caller disposes the result. */
  predict(xIn: tf.Tensor | Tensor): tf.Tensor2D {
    this.alive();
    return tf.tidy(() =>
      this.inferenceLogits(checkBatchX(this.inputShape, xIn, 'x').x),
    ) as tf.Tensor2D;
  }

  /**
   * Accuracy and mean cross-entropy of the eval forward, in chunks of
   * `chunk` examples (default 1000).
   */
  evaluate(batch: FastTrainBatch, chunk = 1000): { accuracy: number; crossEntropy: number } {
    this.alive();
    const size = checkNumber('chunk', chunk, { integer: true, min: 1 });
    const { x, owned, batch: n } = checkBatchX(this.inputShape, batch.x, 'batch.x');
    try {
      const labels = checkLabels(this.classes, batch.labels, n, 'batch.labels');
      return evaluateInChunks((xs) => this.inferenceLogits(xs), x, labels, this.classes, size);
    } finally {
      if (owned) x.dispose();
    }
  }

  /**
   * Kept weights per dense / conv2d layer and overall, from the forward keep
   * mask (spec/log-alpha.md#sparsity); VD keeps every weight.
   */
  sparsity(): FastSparsityReport {
    this.alive();
    return sparsityReport(this.params, this.profile, this.deterministic);
  }

  /** Every dense / conv2d layer's parameters as plain tensors. */
  parameters(): FastLayerParameters[] {
    this.alive();
    return this.params.map((p) => ({
      name: p.name,
      kind: p.kind,
      theta: fromTf(p.theta),
      noise: fromTf(p.noise),
      bias: fromTf(p.bias),
    }));
  }

  /** Replace parameters (same shapes as parameters() returns); Adam's state is kept. */
  setParameters(values: readonly { theta: Tensor; noise: Tensor; bias: Tensor }[]): void {
    this.alive();
    if (!Array.isArray(values) || values.length !== this.params.length) {
      throw new VdspecError(
        'invalid_argument',
        `expected ${this.params.length} layers of {theta, noise, bias}`,
        'values',
      );
    }
    const checked = this.params.map((p, i) =>
      (['theta', 'noise', 'bias'] as const).map((key) =>
        checkTensor(`values[${i}].${key}`, values[i]?.[key], { shape: p[key].shape }),
      ),
    );
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        (['theta', 'noise', 'bias'] as const).forEach((key, k) => {
          const t = checked[i]![k]!;
          p[key].assign(tf.tensor(t.data as number[], [...t.shape], 'float32'));
        });
      });
    });
  }

  /**
   * Each dense / conv2d layer's forward keep mask (1 kept, 0 pruned) as a
   * plain tensor of theta's shape; null where nothing is pruned (VD, or a
   * deterministic network).
   */
  keepMasks(): (Tensor | null)[] {
    this.alive();
    return this.params.map((p) => {
      if (this.deterministic) return null;
      return scoped(() => {
        const keep = keepMaskFromValues(p.theta, p.noise, this.profile, p.kind);
        return keep === null ? null : fromTf(keep);
      });
    });
  }

  /**
   * Each dense / conv2d layer's log_alpha as the forward uses it (clipped
   * where the profile clips), flattened in theta's row-major order; empty
   * for a deterministic network, which has none.
   */
  logAlphaValues(): Float32Array[] {
    this.alive();
    if (this.deterministic) return [];
    return this.params.map((p) =>
      tf.tidy(() => {
        const la = logAlphaTf(p.theta, p.noise, this.profile[p.kind], this.profile.noiseParameter);
        return new Float32Array(la.clipped.dataSync());
      }),
    );
  }

  /**
   * The whole network as plain data, in order: the dense / conv2d layers
   * with their trained theta, bias and keep mask, and the fixed layers
   * between them (the input of a sparse export, src/export/sparse.ts).
   */
  networkLayers(): FastNetworkLayer[] {
    this.alive();
    const keeps = this.keepMasks();
    return this.layers.map((entry): FastNetworkLayer => {
      if (entry.kind !== 'param') return { kind: entry.kind };
      const p = entry.layer;
      const common = { theta: fromTf(p.theta), bias: fromTf(p.bias), keep: keeps[p.index]! };
      return p.kind === 'dense'
        ? { kind: 'dense', ...common }
        : { kind: 'conv2d', ...common, stride: [...p.stride], padding: p.padding };
    });
  }

  /**
   * Everything a later step depends on (spec/train.md#checkpoints): the step
   * count, every parameter and Adam's moments, in a fixed order with names.
   */
  exportState(): FastModelState {
    this.alive();
    return readState(this.exportStateLayout(), this.stepCount);
  }

  /**
   * Restore a state from exportState() of a model built with the same
   * options: every name and shape must match, or nothing changes.
   */
  importState(state: FastModelState): void {
    this.alive();
    this.stepCount = restoreState(this.exportStateLayout(), state);
  }

  private exportStateLayout(): StateEntry[] {
    return stateLayout(this.params, this.adam, this.deterministic);
  }

  /** Release every tensor the model holds. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.params.flatMap((p) => [p.theta, p.noise, p.bias]));
    tf.dispose((this.adam ?? []).flatMap((s) => [s.m, s.v]));
  }
}

/** A model with freshly initialised parameters (see FastModelOptions). */
export function createFastModel(options: FastModelOptions): FastModel {
  return new FastModel(options);
}
