/**
 * Fast (float32, TensorFlow.js) versions of the small operations of the
 * objective (spec/objective.md, spec/kl.md#klsum): the per-weight KL with its
 * derivative, softmax cross-entropy from logits, the SGVB loss and the
 * KL-weight schedule. Same inputs, checks and argument names as the
 * reference functions; results are float32 values.
 */
import * as tf from '@tensorflow/tfjs';

import { KL_WARMUP_END_EPOCH, KL_WARMUP_START_EPOCH, SVD_KL_K1 } from '../constants.js';
import { VdspecError } from '../errors.js';
import type { Profile } from '../profiles.js';
import { checkClassification, checkNumber, checkTensor, type Tensor } from '../tensor.js';
import { checkProfile, finiteFromTf, fromTf, scoped, toTf, zerosOf } from './io.js';
import { klForm, klPerWeightTf } from './kl.js';

export interface FastKlApprox {
  /** KL per weight, log_alpha's shape. */
  readonly kl: Tensor;
  /** dKL/dlog_alpha per weight, log_alpha's shape. */
  readonly derivative: Tensor;
}

/**
 * The profile's per-weight KL and its derivative (op `kl.approx`) at an
 * already-clipped log_alpha, which may hold +-Infinity (spec/kl.md#klsum):
 * `-inf` gives KL `+inf` and derivative `-1/2` (the limits of both forms);
 * `+inf` gives the sigmoid form's limit `-(k1 + C)` and derivative 0, and is
 * rejected for the cubic, which has no finite value there. A value beyond
 * float32's range counts as the infinity it rounds to. Finite entries go
 * through tfjs (the derivative by autodiff); the limits are set directly, so
 * no kernel ever sees an infinity. A finite input whose KL or derivative
 * overflows float32 (the cubic's derivative from log_alpha ~ 29.4, its value
 * from ~ 29.8, as alpha^3 passes 3.4e38) is `VdspecError('non_finite')` with
 * no argument, as for every fast result.
 */
export function fastKlApprox(logAlphaIn: Tensor, profileIn: Profile | string): FastKlApprox {
  const profile = checkProfile(profileIn);
  const form = klForm(profile.kl);
  const la = checkTensor('log_alpha', logAlphaIn, { allow: 'infinity' });
  const rounded = la.data.map(Math.fround);
  const plusInf = rounded.indexOf(Infinity);
  if (plusInf >= 0 && form.kind === 'vd_cubic') {
    throw new VdspecError(
      'non_finite',
      `element ${plusInf} is +Infinity in float32: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)`,
      'log_alpha',
    );
  }
  if (la.data.length === 0) return { kl: zerosOf(la.shape), derivative: zerosOf(la.shape) };
  const plusInfKl = form.kind === 'svd_sigmoid' && form.constant === 'omitted' ? -SVD_KL_K1 : 0;
  const [kl, derivative] = scoped(() => {
    const x = tf.tensor(
      rounded.map((v) => (Number.isFinite(v) ? v : 0)),
      [...la.shape],
      'float32',
    );
    const f = (t: tf.Tensor) => klPerWeightTf(t, profile.kl);
    return [fromTf(f(x)), fromTf(tf.grad(f)(x))];
  });
  const limit = (values: readonly number[], atPlus: number, atMinus: number) =>
    values.map((v, i) =>
      rounded[i] === Infinity ? atPlus : rounded[i] === -Infinity ? atMinus : v,
    );
  const out = {
    kl: { shape: kl.shape, data: limit(kl.data, Math.fround(plusInfKl), Infinity) },
    derivative: { shape: derivative.shape, data: limit(derivative.data, 0, -0.5) },
  };
  for (const [what, t] of [
    ['the KL', out.kl],
    ['its derivative', out.derivative],
  ] as const) {
    const bad = t.data.findIndex((v, i) => !Number.isFinite(v) && Number.isFinite(rounded[i]));
    if (bad >= 0) {
      throw new VdspecError(
        'non_finite',
        `${what} is ${t.data[bad]} at index ${bad} (log_alpha ${la.data[bad]}): too large for float32`,
      );
    }
  }
  return out;
}

export interface FastCrossEntropy {
  /** -log softmax(logits_b)[labels_b], one per example, each >= 0. */
  readonly perExample: number[];
  /** The mean of perExample over the batch, in float32. */
  readonly mean: number;
}

/**
 * CE_b = logsumexp(z_b) - z_b[y_b] and its mean, as a tfjs graph (usable
 * inside tf.grad). tf.logSumExp subtracts the row maximum first, so no exp
 * overflows, and its shifted sum is >= 1, so CE >= 0 in float32 too. The
 * label's logit is picked by a one-hot product, which adds only exact zeros.
 */
export function crossEntropyTf(
  logits: tf.Tensor,
  labels: readonly number[],
  classes: number,
): { perExample: tf.Tensor; mean: tf.Tensor } {
  // The one-hot matrix is data (labels are not differentiated); tf.oneHot rejects one class.
  const oneHot = new Float32Array(labels.length * classes);
  labels.forEach((label, b) => (oneHot[b * classes + label] = 1));
  const perExample = crossEntropyOneHotTf(logits, tf.tensor2d(oneHot, [labels.length, classes]));
  return { perExample, mean: tf.mean(perExample) };
}

/** CE_b = logsumexp(z_b) - z_b . onehot_b, per example; tf.logSumExp shifts by the row maximum. */
export function crossEntropyOneHotTf(logits: tf.Tensor, oneHot: tf.Tensor): tf.Tensor {
  return tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, oneHot), 1));
}

/** objective.cross_entropy in float32 (spec/objective.md#objectivecross_entropy). */
export function fastCrossEntropy(logits: Tensor, labels: readonly number[]): FastCrossEntropy {
  const c = checkClassification(logits, labels);
  return scoped(() => {
    const r = crossEntropyTf(toTf(c.logits), c.labels, c.classes);
    return {
      perExample: finiteFromTf(r.perExample, 'the cross-entropy').data as number[],
      mean: finiteFromTf(r.mean, 'the mean cross-entropy').data[0]!,
    };
  });
}

export interface FastSgvbInputs {
  /** Network outputs before the softmax, [batch, classes]. */
  readonly logits: Tensor;
  /** One class index per example. */
  readonly labels: readonly number[];
  /** N, the size of the training set (not of the batch). */
  readonly trainSize: number;
  /** beta, the KL weight. */
  readonly klWeight: number;
  /** The KL summed over every layer. */
  readonly kl: number;
}

export interface FastSgvbObjective {
  /** dataTerm + klTerm. */
  readonly loss: number;
  /** N * mean CE over the batch. */
  readonly dataTerm: number;
  /** beta * KL. */
  readonly klTerm: number;
}

/**
 * objective.sgvb in float32 (spec/objective.md#objectivesgvb):
 * loss = N * mean_batch CE + beta * KL, each product and the sum one float32
 * operation (N, beta and KL are rounded to float32 first).
 */
export function fastSgvbObjective(inputs: FastSgvbInputs): FastSgvbObjective {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {logits, labels, trainSize, klWeight, kl}',
      'inputs',
    );
  }
  const trainSize = checkNumber('trainSize', inputs.trainSize, { integer: true, min: 1 });
  const klWeight = checkNumber('klWeight', inputs.klWeight, { min: 0 });
  const kl = checkNumber('kl', inputs.kl);
  const c = checkClassification(inputs.logits, inputs.labels);
  return scoped(() => {
    const { mean } = crossEntropyTf(toTf(c.logits), c.labels, c.classes);
    const dataTerm = tf.mul(tf.scalar(trainSize, 'float32'), mean);
    const klTerm = tf.mul(tf.scalar(klWeight, 'float32'), tf.scalar(kl, 'float32'));
    const loss = tf.add(dataTerm, klTerm);
    return {
      loss: finiteFromTf(loss, 'the loss').data[0]!,
      dataTerm: finiteFromTf(dataTerm, 'the data term').data[0]!,
      klTerm: finiteFromTf(klTerm, 'the KL term').data[0]!,
    };
  });
}

export interface FastKlWeightScheduleOptions {
  /** beta = 0 for epoch < start. Default KL_WARMUP_START_EPOCH. */
  readonly start?: number;
  /** beta = 1 for epoch >= end. Default KL_WARMUP_END_EPOCH. */
  readonly end?: number;
}

/**
 * The KL weight beta (spec/objective.md#schedulekl_weight) in float32:
 * clip((epoch - start) / (end - start), 0, 1), which is 0 before `start`
 * and 1 from `end` on; with start = end, the step epoch >= end.
 */
export function fastKlWeightSchedule(
  epoch: number,
  options: FastKlWeightScheduleOptions = {},
): number {
  const e = checkNumber('epoch', epoch, { min: 0 });
  if (typeof options !== 'object' || options === null) {
    throw new VdspecError('invalid_argument', 'expected an object {start?, end?}', 'options');
  }
  const start = checkNumber('options.start', options.start ?? KL_WARMUP_START_EPOCH, { min: 0 });
  const end = checkNumber('options.end', options.end ?? KL_WARMUP_END_EPOCH, { min: start });
  return scoped(() => {
    const t = tf.scalar(e, 'float32');
    const beta =
      end === start
        ? tf.cast(tf.greaterEqual(t, end), 'float32')
        : tf.clipByValue(tf.div(tf.sub(t, start), end - start), 0, 1);
    return beta.dataSync()[0]!;
  });
}
