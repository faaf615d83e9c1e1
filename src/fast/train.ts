/**
 * Training with the fast implementation (spec/fast.md#training): a small
 * sequential model of VD / Sparse VD layers (dense, conv2d) with relu,
 * 2x2 max-pool and flatten; seeded initialisation; the SGVB training step
 * with Adam; the eval forward with the keep masks; the sparsity report.
 *
 * Parameters are tf.Variables owned by the model: call dispose() when done.
 * Every step runs inside tf.tidy and leaves the number of live tensors
 * unchanged.
 */
import * as tf from '@tensorflow/tfjs';

import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_EPSILON,
  DENSE_INIT_THETA_STD,
  SVD_INIT_LOG_SIGMA2,
} from '../constants.js';
import { VdspecError } from '../errors.js';
import type { LayerKind, Profile, ProfileName } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';
import { requireBackend } from './backend.js';
import {
  conv2dEvalTf,
  conv2dTrainTf,
  convGeometry,
  resolvePath,
  type FastConv2dPadding,
} from './conv2d.js';
import { denseEvalTf, denseTrainTf, keepMaskFromValues } from './dense.js';
import { checkProfile, fromTf, scoped } from './io.js';
import { layerKlTf } from './kl.js';
import {
  fusable,
  fusedConv2dTf,
  fusedKlTf,
  fusedLinearTf,
  fusedWeightsTf,
  maxPool2x2Tf,
  maxPoolImplementation,
  plainConv2dTf,
  plainLinearTf,
  type FusedWeightsTf,
} from './model.js';
import { seededNormals } from './normals.js';
import { crossEntropyOneHotTf } from './objective.js';
import { logAlphaTf } from './weights.js';

export type FastLayerSpec =
  | { readonly kind: 'dense'; readonly units: number }
  | {
      readonly kind: 'conv2d';
      readonly filters: number;
      /** One size for both axes or [height, width]. */
      readonly kernelSize: number | readonly [number, number];
      /** Default 1. */
      readonly stride?: number | readonly [number, number];
      /** Default 'valid'. */
      readonly padding?: FastConv2dPadding;
    }
  | { readonly kind: 'relu' }
  /** 2x2 windows, stride 2, 'valid' (an odd last row or column is dropped). */
  | { readonly kind: 'maxPool2x2' }
  | { readonly kind: 'flatten' };

/** LeNet-300-100 (the SVD paper's fully connected net) for 784 inputs and 10 classes. */
export const LENET_300_100: readonly FastLayerSpec[] = [
  { kind: 'dense', units: 300 },
  { kind: 'relu' },
  { kind: 'dense', units: 100 },
  { kind: 'relu' },
  { kind: 'dense', units: 10 },
];

/**
 * LeNet-5-Caffe as the SVD paper trains it, for 28x28x1 inputs and 10
 * classes: conv 20@5x5, max-pool, conv 50@5x5, max-pool, dense 800-500,
 * dense 500-10, 'valid' convolutions and a ReLU after every layer but the
 * last (spec/train.md#networks).
 */
export const LENET_5_CAFFE: readonly FastLayerSpec[] = [
  { kind: 'conv2d', filters: 20, kernelSize: 5 },
  { kind: 'relu' },
  { kind: 'maxPool2x2' },
  { kind: 'conv2d', filters: 50, kernelSize: 5 },
  { kind: 'relu' },
  { kind: 'maxPool2x2' },
  { kind: 'flatten' },
  { kind: 'dense', units: 500 },
  { kind: 'relu' },
  { kind: 'dense', units: 10 },
];

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

interface ParamLayer {
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

type ModelLayer =
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

/** A trainable tensor and its two Adam moments. */
export interface AdamSlot {
  readonly variable: tf.Variable;
  readonly m: tf.Variable;
  readonly v: tf.Variable;
}

/** Zero moments for each variable (the caller disposes slot.m and slot.v). */
export function createAdamSlots(variables: readonly tf.Variable[]): AdamSlot[] {
  // tf.variable keeps its initial value's data but not the tensor object: dispose that.
  const zeros = (like: tf.Tensor) => {
    const initial = tf.zerosLike(like);
    const variable = tf.variable(initial, false);
    initial.dispose();
    return variable;
  };
  return variables.map((variable) => ({ variable, m: zeros(variable), v: zeros(variable) }));
}

/**
 * Adam step t >= 1 (Kingma and Ba 2015, in PyTorch's form):
 * m <- m + (1 - b1)(g - m), v <- v + (1 - b2)(g^2 - v),
 * p <- p - lr m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t),
 * evaluated as p - (lr sqrt(1 - b2^t) / (1 - b1^t)) m / (sqrt(v) + eps sqrt(1 - b2^t))
 * (the same number in exact arithmetic, two elementwise passes fewer). Call inside tf.tidy.
 */
export function adamUpdateTf(
  slots: readonly AdamSlot[],
  grads: readonly tf.Tensor[],
  learningRate: number,
  t: number,
): void {
  const correction1 = 1 - ADAM_BETA1 ** t;
  const root2 = Math.sqrt(1 - ADAM_BETA2 ** t);
  const stepSize = (learningRate * root2) / correction1;
  const epsilon = ADAM_EPSILON * root2;
  slots.forEach((slot, i) => {
    const g = grads[i]!;
    const m = tf.add(slot.m, tf.mul(tf.sub(g, slot.m), 1 - ADAM_BETA1));
    const v = tf.add(slot.v, tf.mul(tf.sub(tf.square(g), slot.v), 1 - ADAM_BETA2));
    slot.m.assign(m);
    slot.v.assign(v);
    slot.variable.assign(
      tf.sub(slot.variable, tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), stepSize)),
    );
  });
}

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
    let shape = [...this.inputShape];
    const paramCount = options.layers.filter(
      (l) => l?.kind === 'dense' || l?.kind === 'conv2d',
    ).length;
    // A bad spec after some layers were made must not leak their variables.
    try {
      options.layers.forEach((spec, i) => {
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
          this.layers.push({ kind: spec.kind });
          return;
        }
        const index = this.params.length;
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
            throw new VdspecError(
              'invalid_argument',
              "expected 'valid' or 'same'",
              `${where}.padding`,
            );
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
        this.params.push(layer);
        this.layers.push({ kind: 'param', layer });
        shape = outputShape;
      });
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
    return this.params.flatMap((p) =>
      this.deterministic ? [p.theta, p.bias] : [p.theta, p.noise, p.bias],
    );
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

  /**
   * The default noise of layer `p` at step `t`: rows `firstRow ..` of the
   * batch's standard normals, drawn with `seededNormals` (src/fast/normals.ts)
   * at seed `noiseSeedFor(t, p)`; a slice of rows is the same numbers the
   * whole batch would hold there.
   */
  private defaultNoise(
    shape: readonly number[],
    step: number,
    layerIndex: number,
    firstRow = 0,
  ): tf.Tensor {
    const rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
    const values = seededNormals(
      shape[0]! * rowSize,
      this.noiseSeedFor(step, layerIndex),
      firstRow * rowSize,
    );
    return tf.tensor(values, [...shape], 'float32');
  }

  /** Each dense / conv2d layer's output shape for a batch of `batch` examples. */
  noiseShapes(batch: number): number[][] {
    return this.params.map((p) => [batch, ...p.outputShape]);
  }

  private alive(): void {
    if (this.disposed) {
      throw new VdspecError('invalid_argument', 'the model has been disposed', 'model');
    }
    requireBackend();
  }

  private checkX(xIn: unknown, name: string): { x: tf.Tensor; owned: boolean; batch: number } {
    const want = this.inputShape;
    const ok = (shape: readonly number[]) =>
      shape.length === want.length + 1 && want.every((d, i) => shape[i + 1] === d);
    if (xIn instanceof tf.Tensor) {
      if (!ok(xIn.shape) || xIn.shape[0] === 0) {
        throw new VdspecError(
          'shape_mismatch',
          `expected [batch >= 1, ${want.join(', ')}], got ${shapeToString(xIn.shape)}`,
          name,
        );
      }
      const x = xIn.dtype === 'float32' ? xIn : tf.cast(xIn, 'float32');
      return { x, owned: x !== xIn, batch: xIn.shape[0]! };
    }
    const t = checkTensor(name, xIn, { rank: want.length + 1 });
    if (!ok(t.shape) || t.shape[0] === 0) {
      throw new VdspecError(
        'shape_mismatch',
        `expected [batch >= 1, ${want.join(', ')}], got ${shapeToString(t.shape)}`,
        name,
      );
    }
    return {
      x: tf.tensor(t.data as number[], [...t.shape], 'float32'),
      owned: true,
      batch: t.shape[0]!,
    };
  }

  private checkLabels(labelsIn: unknown, batch: number, name: string): Int32Array {
    if (!Array.isArray(labelsIn) && !(labelsIn instanceof Int32Array)) {
      throw new VdspecError('invalid_argument', 'expected an array of class indices', name);
    }
    if (labelsIn.length !== batch) {
      throw new VdspecError(
        'shape_mismatch',
        `expected ${batch} labels (x's batch), got ${labelsIn.length}`,
        name,
      );
    }
    if (Array.isArray(labelsIn)) {
      labelsIn.forEach((label: unknown, i) => {
        if (typeof label !== 'number' || !Number.isInteger(label)) {
          throw new VdspecError('invalid_argument', `label ${i} is not an integer`, name);
        }
      });
    }
    const labels = Int32Array.from(labelsIn as ArrayLike<number>);
    labels.forEach((label, i) => {
      if (label < 0 || label >= this.classes) {
        throw new VdspecError(
          'invalid_argument',
          `label ${i} must be in [0, ${this.classes - 1}], got ${label}`,
          name,
        );
      }
    });
    return labels;
  }

  private checkEps(epsIn: unknown, batch: number): tf.Tensor[] | null {
    if (epsIn === undefined) return null;
    if (!Array.isArray(epsIn) || epsIn.length !== this.params.length) {
      throw new VdspecError(
        'invalid_argument',
        `expected one tensor per dense / conv2d layer (${this.params.length})`,
        'options.eps',
      );
    }
    const shapes = this.noiseShapes(batch);
    return epsIn.map((e: unknown, p) => {
      const name = `options.eps[${p}]`;
      const want = shapes[p]!;
      if (e instanceof tf.Tensor) {
        const shape: readonly number[] = e.shape;
        if (shape.length !== want.length || !shape.every((d, i) => d === want[i])) {
          throw new VdspecError(
            'shape_mismatch',
            `expected ${shapeToString(want)}, got ${shapeToString(e.shape)}`,
            name,
          );
        }
        return tf.cast(e, 'float32');
      }
      const t = checkTensor(name, e, { shape: want });
      return tf.tensor(t.data as number[], want, 'float32');
    });
  }

  private checkStepOptions(options: unknown): {
    trainSize: number;
    klWeight: number;
    learningRate: number;
  } {
    if (typeof options !== 'object' || options === null) {
      throw new VdspecError(
        'invalid_argument',
        'expected {trainSize, klWeight, learningRate, eps?}',
        'options',
      );
    }
    const o = options as Record<string, unknown>;
    return {
      trainSize: checkNumber('options.trainSize', o.trainSize, { integer: true, min: 1 }),
      klWeight: checkNumber('options.klWeight', o.klWeight, { min: 0 }),
      learningRate: checkNumber('options.learningRate', o.learningRate, { min: 0 }),
    };
  }

  /** relu, flatten, or the 2x2 max-pool (whose gradient needs care on wasm: model.ts). */
  private fixedLayer(
    kind: 'relu' | 'maxPool2x2' | 'flatten',
    h: tf.Tensor,
    mode: 'train' | 'eval',
  ): tf.Tensor {
    if (kind === 'relu') return tf.relu(h);
    if (kind === 'flatten') return tf.reshape(h, [h.shape[0]!, -1]);
    return maxPool2x2Tf(h as tf.Tensor4D, mode === 'eval' ? 'native' : maxPoolImplementation());
  }

  /** The training forward to the logits, inside a gradient tape. */
  private trainLogits(
    x: tf.Tensor,
    eps: readonly tf.Tensor[],
    fused: readonly FusedWeightsTf[] | null,
    keeps: readonly (tf.Tensor | null)[] | null,
  ): tf.Tensor {
    const profile = this.profile;
    let h = x;
    let needsGradient = false;
    for (const entry of this.layers) {
      if (entry.kind !== 'param') {
        h = this.fixedLayer(entry.kind, h, 'train');
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
                  this.trainClip,
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
          const g = convGeometry(
            h.shape,
            p.theta.shape,
            p.stride,
            p.padding,
            this.profile.samePadding,
          );
          if (fused === null) {
            h = conv2dTrainTf(
              { x: h, theta: p.theta, noise: p.noise, bias: p.bias },
              e,
              keeps![p.index]!,
              profile,
              this.trainClip,
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

  /**
   * Loss, its parts and the gradients of one step, without updating; every
   * tensor is tracked by the caller's tf.tidy except those in `kept`.
   */
  private lossAndGradients(
    batch: FastTrainBatch,
    options: FastTrainStepOptions,
    shard?: FastShard,
  ): {
    values: Omit<FastTrainStepResult, 'step'>;
    grads: tf.Tensor[];
    correct: number;
  } {
    const { trainSize, klWeight } = this.checkStepOptions(options);
    if (typeof batch !== 'object' || batch === null) {
      throw new VdspecError('invalid_argument', 'expected {x, labels}', 'batch');
    }
    const { x, batch: size } = this.checkX(batch.x, 'batch.x');
    const labels = this.checkLabels(batch.labels, size, 'batch.labels');
    const given = this.checkEps(options.eps, size);
    const step = shard?.step ?? this.stepCount;
    const firstRow = shard?.firstRow ?? 0;
    const eps =
      given ??
      this.noiseShapes(size).map((shape, p) => this.defaultNoise(shape, step, p, firstRow));
    // A shard's data term is its share of N * mean_batch CE: N * (rows / batch) * mean_rows CE.
    const dataScale = shard === undefined ? trainSize : (trainSize * size) / shard.batchSize;
    const labelTensor = tf.tensor1d(labels, 'int32');
    const oneHot = tf.cast(tf.oneHot(labelTensor, this.classes), 'float32');

    const profile = this.profile;
    const plain = this.deterministic;
    const fused =
      !plain && this.gradients === 'fused'
        ? this.params.map((p) => fusedWeightsTf(p.theta, p.noise, profile, p.kind, this.trainClip))
        : null;
    const keeps =
      !plain && fused === null
        ? this.params.map((p) => keepMaskFromValues(p.theta, p.noise, profile, p.kind))
        : null;

    const kept: tf.Tensor[] = [];
    try {
      const f = (): tf.Scalar => {
        const logits = plain
          ? this.plainLogits(x, 'train')
          : this.trainLogits(x, eps, fused, keeps);
        const ce = tf.mean(crossEntropyOneHotTf(logits, oneHot));
        const dataTerm = tf.mul(ce, dataScale);
        kept.push(tf.keep(logits), tf.keep(dataTerm));
        let kl: tf.Tensor | null = null;
        if (plain) {
          kept.push(tf.keep(tf.scalar(0)));
        } else if (fused === null) {
          kl = tf.addN(this.params.map((p) => layerKlTf(p.theta, p.noise, profile, p.kind)));
          kept.push(tf.keep(kl));
        } else if (klWeight > 0) {
          kl = tf.addN(this.params.map((p, i) => fusedKlTf(p.theta, p.noise, fused[i]!)));
        }
        return (kl === null ? dataTerm : tf.add(dataTerm, tf.mul(kl, klWeight))) as tf.Scalar;
      };
      const vars = this.trainables();
      const { grads } = tf.variableGrads(f, vars);
      const [logits, dataTerm, autodiffKl] = kept as [tf.Tensor, tf.Tensor, tf.Tensor?];
      const kl = autodiffKl ?? tf.addN(fused!.map((w) => w.klSum));
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labelTensor), 'float32'));
      const [dataValue, klValue, correctValue] = Array.from(
        tf.stack([dataTerm, kl, correct]).dataSync(),
      ) as [number, number, number];
      const klTerm = Math.fround(Math.fround(klWeight) * klValue);
      const loss = Math.fround(dataValue + klTerm);
      if (!Number.isFinite(loss)) {
        throw new VdspecError(
          'non_finite',
          `the loss is ${loss} (data term ${dataValue}, KL ${klValue}) at step ${step}: nothing was updated`,
        );
      }
      return {
        values: {
          loss,
          dataTerm: dataValue,
          klTerm,
          kl: klValue,
          accuracy: correctValue / size,
        },
        grads: vars.map((v) => grads[v.name]!),
        correct: correctValue,
      };
    } finally {
      tf.dispose(kept);
    }
  }

  /**
   * One training step: the SGVB loss N * mean CE + beta * KL on the batch
   * with fresh noise, its gradient, and an Adam update of every parameter.
   * Returns the loss and its parts before the update. A non-finite loss
   * throws VdspecError('non_finite') and leaves the model unchanged.
   */
  trainStep(batch: FastTrainBatch, options: FastTrainStepOptions): FastTrainStepResult {
    this.alive();
    const { learningRate } = this.checkStepOptions(options);
    const step = this.stepCount;
    const values = scoped(() => {
      const r = this.lossAndGradients(batch, options);
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
      const r = this.lossAndGradients(batch, options, shard);
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
    const names = this.params.flatMap((p) =>
      this.deterministic
        ? [`${p.name}.theta`, `${p.name}.bias`]
        : [`${p.name}.theta`, `${p.name}.noise`, `${p.name}.bias`],
    );
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
      const r = this.lossAndGradients(batch, options);
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

  /** The eval forward (spec/dense.md, spec/conv2d.md): x @ (theta * mask) + b, no noise. */
  private evalLogits(x: tf.Tensor): tf.Tensor {
    const profile = this.profile;
    let h = x;
    for (const entry of this.layers) {
      if (entry.kind !== 'param') {
        h = this.fixedLayer(entry.kind, h, 'eval');
      } else {
        const p = entry.layer;
        const keep = keepMaskFromValues(p.theta, p.noise, profile, p.kind);
        if (p.kind === 'dense') h = denseEvalTf(h, p.theta, p.bias, keep);
        else {
          const g = convGeometry(
            h.shape,
            p.theta.shape,
            p.stride,
            p.padding,
            this.profile.samePadding,
          );
          h = conv2dEvalTf(h, p.theta, p.bias, keep, g, resolvePath('auto', false));
        }
      }
    }
    return h;
  }

  /**
   * The forward of a deterministic network (x @ theta + b, convolution
   * alike, no mask), with the hand-written backward of model.ts (wasm has
   * no conv filter gradient, and its transposed matMul is slow).
   */
  private plainLogits(x: tf.Tensor, mode: 'train' | 'eval'): tf.Tensor {
    let h = x;
    // The first layer's input is data: its gradient is never needed.
    let needsGradient = false;
    for (const entry of this.layers) {
      if (entry.kind !== 'param') {
        h = this.fixedLayer(entry.kind, h, mode);
        continue;
      }
      const p = entry.layer;
      if (p.kind === 'dense') {
        h = plainLinearTf(h as tf.Tensor2D, p.theta as tf.Tensor2D, p.bias, needsGradient);
      } else {
        const g = convGeometry(
          h.shape,
          p.theta.shape,
          p.stride,
          p.padding,
          this.profile.samePadding,
        );
        h = plainConv2dTf(h as tf.Tensor4D, p.theta, p.bias, needsGradient, g);
      }
      needsGradient = true;
    }
    return h;
  }

  /** The eval forward of this model: pruned for SVD, plain for a deterministic network. */
  private inferenceLogits(x: tf.Tensor): tf.Tensor {
    return this.deterministic ? this.plainLogits(x, 'eval') : this.evalLogits(x);
  }

  /** Eval-forward logits [batch, classes]; the caller disposes the result. */
  predict(xIn: tf.Tensor | Tensor): tf.Tensor2D {
    this.alive();
    return tf.tidy(() => this.inferenceLogits(this.checkX(xIn, 'x').x)) as tf.Tensor2D;
  }

  /**
   * Accuracy and mean cross-entropy of the eval forward, in chunks of
   * `chunk` examples (default 1000).
   */
  evaluate(batch: FastTrainBatch, chunk = 1000): { accuracy: number; crossEntropy: number } {
    this.alive();
    const size = checkNumber('chunk', chunk, { integer: true, min: 1 });
    const { x, owned, batch: n } = this.checkX(batch.x, 'batch.x');
    try {
      const labels = this.checkLabels(batch.labels, n, 'batch.labels');
      let correct = 0;
      let ceSum = 0;
      for (let start = 0; start < n; start += size) {
        const count = Math.min(size, n - start);
        const [c, s] = tf.tidy(() => {
          const xs = tf.slice(x, start, count);
          const logits = this.inferenceLogits(xs);
          const ys = tf.tensor1d(labels.subarray(start, start + count), 'int32');
          const oneHot = tf.cast(tf.oneHot(ys, this.classes), 'float32');
          const ce = tf.sum(crossEntropyOneHotTf(logits, oneHot));
          const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), ys), 'float32'));
          return Array.from(tf.stack([hits, ce]).dataSync()) as [number, number];
        });
        correct += c;
        ceSum += s;
      }
      return { accuracy: correct / n, crossEntropy: ceSum / n };
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
    const counts = tf.tidy(() => {
      const kept = this.params.map((p) => {
        const keep = this.deterministic
          ? null
          : keepMaskFromValues(p.theta, p.noise, this.profile, p.kind);
        return keep === null ? tf.scalar(p.theta.size) : tf.sum(keep);
      });
      return Array.from(tf.stack(kept).dataSync());
    });
    const row = (name: string, kept: number, total: number): FastLayerSparsity => ({
      name,
      kept,
      total,
      fractionPruned: total === 0 ? 0 : (total - kept) / total,
      compression: kept === 0 ? Infinity : total / kept,
    });
    const layers = this.params.map((p, i) => row(p.name, counts[i]!, p.theta.size));
    const kept = layers.reduce((a, l) => a + l.kept, 0);
    const total = layers.reduce((a, l) => a + l.total, 0);
    return { layers, overall: row('overall', kept, total) };
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
    const tensors = this.exportStateLayout().map(({ name, variable }) => ({
      name,
      shape: [...variable.shape],
      data: new Float32Array(variable.dataSync()),
    }));
    return { step: this.stepCount, tensors };
  }

  /**
   * Restore a state from exportState() of a model built with the same
   * options: every name and shape must match, or nothing changes.
   */
  importState(state: FastModelState): void {
    this.alive();
    const expected = this.exportStateLayout();
    if (typeof state !== 'object' || state === null || !Array.isArray(state.tensors)) {
      throw new VdspecError('invalid_argument', 'expected {step, tensors}', 'state');
    }
    const step = checkNumber('state.step', state.step, { integer: true, min: 0 });
    if (state.tensors.length !== expected.length) {
      throw new VdspecError(
        'shape_mismatch',
        `expected ${expected.length} tensors, got ${state.tensors.length}: the state is from another model`,
        'state.tensors',
      );
    }
    expected.forEach((want, i) => {
      const got = state.tensors[i]!;
      const where = `state.tensors[${i}]`;
      if (got?.name !== want.name) {
        throw new VdspecError(
          'shape_mismatch',
          `expected ${want.name}, got ${String(got?.name)}: the state is from another model`,
          where,
        );
      }
      const shape = got.shape;
      if (
        !Array.isArray(shape) ||
        shape.length !== want.variable.shape.length ||
        !shape.every((d, k) => d === want.variable.shape[k])
      ) {
        throw new VdspecError(
          'shape_mismatch',
          `${want.name}: expected ${shapeToString(want.variable.shape)}, got ${shapeToString(shape ?? [])}`,
          where,
        );
      }
      if (!(got.data instanceof Float32Array) || got.data.length !== want.variable.size) {
        throw new VdspecError(
          'invalid_argument',
          `${want.name}: expected a Float32Array of ${want.variable.size} values`,
          where,
        );
      }
      if (!got.data.every(Number.isFinite)) {
        throw new VdspecError('non_finite', `${want.name} holds a non-finite value`, where);
      }
    });
    tf.tidy(() => {
      expected.forEach((want, i) => {
        want.variable.assign(tf.tensor(state.tensors[i]!.data, want.variable.shape, 'float32'));
      });
    });
    this.stepCount = step;
  }

  private exportStateLayout(): { name: string; variable: tf.Variable }[] {
    const layout: { name: string; variable: tf.Variable }[] = [];
    this.params.forEach((p) => {
      layout.push({ name: `${p.name}.theta`, variable: p.theta });
      layout.push({ name: `${p.name}.noise`, variable: p.noise });
      layout.push({ name: `${p.name}.bias`, variable: p.bias });
    });
    const names = this.params.flatMap((p) =>
      this.deterministic
        ? [`${p.name}.theta`, `${p.name}.bias`]
        : [`${p.name}.theta`, `${p.name}.noise`, `${p.name}.bias`],
    );
    this.adam.forEach((slot, i) => {
      layout.push({ name: `${names[i]!}.adam_m`, variable: slot.m });
      layout.push({ name: `${names[i]!}.adam_v`, variable: slot.v });
    });
    return layout;
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
