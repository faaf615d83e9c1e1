/**
 * The fused training step's loss and gradient (spec/fast.md#training): the
 * SGVB loss N * mean CE + beta * KL of one batch with its noise, and the
 * gradient of every trained tensor, for FastModel.trainStep and the
 * data-parallel trainer's shards (src/fast/parallel.ts). Nothing is updated.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { keepMaskFromValues } from './dense.js';
import { plainLogits, trainLogits } from './forward.js';
import { layerKlTf } from './kl.js';
import { trainableVariables, type ModelLayer, type ParamLayer } from './model-layers.js';
import { checkBatchX, checkEps, checkLabels, checkStepOptions } from './model-inputs.js';
import type {
  FastShard,
  FastTrainBatch,
  FastTrainStepOptions,
  FastTrainStepResult,
} from './model-types.js';
import { fusedKlTf, fusedWeightsTf } from './fused-kernels.js';
import { seededNormals } from './normals.js';
import { crossEntropyOneHotTf } from './objective.js';

/** What a step reads of a model (src/fast/fast-model.ts). */
export interface StepModel {
  readonly profile: Profile;
  readonly trainClip: boolean;
  readonly gradients: 'fused' | 'autodiff';
  readonly deterministic: boolean;
  readonly inputShape: readonly number[];
  readonly classes: number;
  readonly layers: readonly ModelLayer[];
  readonly params: readonly ParamLayer[];
  /** The number of steps taken: the default noise's step. */
  readonly step: number;
  /** FastModel.noiseSeedFor. */
  readonly noiseSeedFor: (step: number, layerIndex: number) => number;
}

/**
 * The default noise of layer `p` at step `t`: rows `firstRow ..` of the
 * batch's standard normals, drawn with `seededNormals` (src/fast/normals.ts)
 * at seed `noiseSeedFor(t, p)`; a slice of rows is the same numbers the
 * whole batch would hold there.
 */
function defaultNoise(shape: readonly number[], seed: number, firstRow = 0): tf.Tensor {
  const rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
  const values = seededNormals(shape[0]! * rowSize, seed, firstRow * rowSize);
  return tf.tensor(values, [...shape], 'float32');
}

/** Each dense / conv2d layer's output shape for a batch of `batch` examples. */
export function noiseShapes(params: readonly ParamLayer[], batch: number): number[][] {
  return params.map((p) => [batch, ...p.outputShape]);
}

/**
 * Loss, its parts and the gradients of one step, without updating; every
 * tensor is tracked by the caller's tf.tidy except those in `kept`.
 */
export function lossAndGradients(
  model: StepModel,
  batch: FastTrainBatch,
  options: FastTrainStepOptions,
  shard?: FastShard,
): {
  values: Omit<FastTrainStepResult, 'step'>;
  grads: tf.Tensor[];
  correct: number;
} {
  const { trainSize, klWeight } = checkStepOptions(options);
  if (typeof batch !== 'object' || batch === null) {
    throw new VdspecError('invalid_argument', 'expected {x, labels}', 'batch');
  }
  const { x, batch: size } = checkBatchX(model.inputShape, batch.x, 'batch.x');
  const labels = checkLabels(model.classes, batch.labels, size, 'batch.labels');
  const given = checkEps(noiseShapes(model.params, size), options.eps);
  const step = shard?.step ?? model.step;
  const firstRow = shard?.firstRow ?? 0;
  const eps =
    given ??
    noiseShapes(model.params, size).map((shape, p) =>
      defaultNoise(shape, model.noiseSeedFor(step, p), firstRow),
    );
  // A shard's data term is its share of N * mean_batch CE: N * (rows / batch) * mean_rows CE.
  const dataScale = shard === undefined ? trainSize : (trainSize * size) / shard.batchSize;
  const labelTensor = tf.tensor1d(labels, 'int32');
  const oneHot = tf.cast(tf.oneHot(labelTensor, model.classes), 'float32');

  const profile = model.profile;
  const plain = model.deterministic;
  const fused =
    !plain && model.gradients === 'fused'
      ? model.params.map((p) => fusedWeightsTf(p.theta, p.noise, profile, p.kind, model.trainClip))
      : null;
  const keeps =
    !plain && fused === null
      ? model.params.map((p) => keepMaskFromValues(p.theta, p.noise, profile, p.kind))
      : null;

  const kept: tf.Tensor[] = [];
  try {
    const f = (): tf.Scalar => {
      const logits = plain
        ? plainLogits(model.layers, profile, x, 'train')
        : trainLogits(model.layers, profile, model.trainClip, x, eps, fused, keeps);
      const ce = tf.mean(crossEntropyOneHotTf(logits, oneHot));
      const dataTerm = tf.mul(ce, dataScale);
      kept.push(tf.keep(logits), tf.keep(dataTerm));
      let kl: tf.Tensor | null = null;
      if (plain) {
        kept.push(tf.keep(tf.scalar(0)));
      } else if (fused === null) {
        kl = tf.addN(model.params.map((p) => layerKlTf(p.theta, p.noise, profile, p.kind)));
        kept.push(tf.keep(kl));
      } else if (klWeight > 0) {
        kl = tf.addN(model.params.map((p, i) => fusedKlTf(p.theta, p.noise, fused[i]!)));
      }
      return (kl === null ? dataTerm : tf.add(dataTerm, tf.mul(kl, klWeight))) as tf.Scalar;
    };
    const vars = trainableVariables(model.params, model.deterministic);
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
