/**
 * Reference: the training objective of VD and Sparse VD (spec/objective.md).
 *
 * The KL of a layer and its gradient, the cross-entropy data term and its
 * gradient, the SGVB loss that combines them, and the official KL-weight and
 * learning-rate schedules. Everything in float64; every bad input throws a
 * VdspecError naming the argument.
 */
import { KL_WARMUP_END_EPOCH, KL_WARMUP_START_EPOCH } from '../constants.js';
import { VdspecError } from '../errors.js';
import { getProfile, type LayerKind, type Profile, type ProfileName } from '../profiles.js';
import { checkClassification, checkNumber, checkTensor, type Tensor } from '../tensor.js';
import { klApprox, klApproxDerivative } from './kl.js';
import { klProfile, noiseName, sumToShape, weightStatistics } from './logAlpha.js';

/** A layer's parameters as far as the KL is concerned (the bias never enters it). */
export interface LayerKlInputs {
  /** Dense [in, out] or conv2d HWIO [kh, kw, cin, cout]. */
  readonly theta: Tensor;
  /**
   * The learned noise parameter named by `profile.noiseParameter`: theta's
   * shape, or for `learned` log_alpha (VD) any shape that broadcasts to it.
   */
  readonly noise: Tensor;
}

export interface LayerKlGradient {
  /** dKL/dtheta, theta's shape. */
  readonly theta: Tensor;
  /** dKL/d(noise parameter), the noise parameter's own shape (summed over broadcast axes). */
  readonly noise: Tensor;
}

const LAYER_RANK: Record<LayerKind, number> = { dense: 2, conv2d: 4 };

/**
 * Neumaier-compensated sum. A layer has up to millions of KL terms and a
 * batch thousands of losses; the reference should be the exact sum to within
 * about one rounding, so that goldens do not depend on summation order.
 */
export function compensatedSum(values: readonly number[]): number {
  let sum = 0;
  let compensation = 0;
  for (const x of values) {
    const t = sum + x;
    compensation += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
    sum = t;
  }
  // An infinite term makes the compensation NaN (inf - inf); the sum itself is then the answer.
  return Number.isFinite(sum) ? sum + compensation : sum;
}

function checkLayer(layer: unknown): LayerKind {
  if (layer !== 'dense' && layer !== 'conv2d') {
    throw new VdspecError(
      'invalid_argument',
      `expected 'dense' or 'conv2d', got ${String(layer)}`,
      'layer',
    );
  }
  return layer;
}

function checkLayerInputs(inputs: unknown, layer: LayerKind): { theta: Tensor; noise: unknown } {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError('invalid_argument', 'expected an object {theta, noise}', 'inputs');
  }
  const { theta, noise } = inputs as { theta?: unknown; noise?: unknown };
  return { theta: checkTensor('theta', theta, { rank: LAYER_RANK[layer] }), noise };
}

/**
 * The layer's KL (spec/objective.md#kllayer): the per-weight approximation
 * of `profile.kl` at the CLIPPED log_alpha, summed over theta's weights.
 * A broadcast VD log_alpha counts once per weight it covers, not once per
 * parameter entry.
 */
export function layerKl(
  inputs: LayerKlInputs,
  profileIn: Profile | ProfileName,
  layerIn: LayerKind,
): number {
  const profile = getProfile(profileIn);
  const layer = checkLayer(layerIn);
  const { theta, noise } = checkLayerInputs(inputs, layer);
  const stats = weightStatistics(theta, noise, klProfile(profile), layer);
  return compensatedSum(stats.logAlpha.map((la) => klApprox(la, profile)));
}

/**
 * Vector-Jacobian product of layerKl (spec/objective.md#kllayer, "Gradient"):
 *
 *   dKL/dtheta_i = g * KL'(la_i) * dla_i/dtheta_i
 *   dKL/dnoise   = sum over the weights each noise entry covers of g * KL'(la_i) * dla_i/dnoise_i
 *
 * where la_i is the clipped log_alpha and its partials come from
 * weightStatistics. Where those partials are 0 (outside the clip, at
 * theta = 0, log_alpha infinite) the product is written as a branch, so a
 * finite or infinite KL' there can never turn it into NaN.
 */
export function layerKlVjp(
  inputs: LayerKlInputs,
  cotangentIn: number,
  profileIn: Profile | ProfileName,
  layerIn: LayerKind,
): LayerKlGradient {
  const profile = getProfile(profileIn);
  const layer = checkLayer(layerIn);
  const cotangent = checkNumber('cotangent', cotangentIn);
  const { theta, noise: noiseIn } = checkLayerInputs(inputs, layer);
  const stats = weightStatistics(theta, noiseIn, klProfile(profile), layer);
  const noise = checkTensor(noiseName(profile), noiseIn);

  const n = stats.logAlpha.length;
  const dTheta = new Array<number>(n);
  const dNoise = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const laTheta = stats.dLogAlphaDTheta[i]!;
    const laNoise = stats.dLogAlphaDNoise[i]!;
    if (laTheta === 0 && laNoise === 0) {
      dTheta[i] = 0;
      dNoise[i] = 0;
      continue;
    }
    const slope = cotangent * klApproxDerivative(stats.logAlpha[i]!, profile);
    dTheta[i] = laTheta === 0 ? 0 : slope * laTheta;
    dNoise[i] = laNoise === 0 ? 0 : slope * laNoise;
  }
  return {
    theta: { shape: [...theta.shape], data: dTheta },
    noise: sumToShape(dNoise, theta.shape, noise.shape),
  };
}

// ---------------------------------------------------------------- data term

export interface CrossEntropy {
  /** -log softmax(logits_b)[labels_b], one per example, each >= 0. */
  readonly perExample: number[];
  /** The mean of perExample over the batch. */
  readonly mean: number;
}

/**
 * log sum_c exp(row_c), shifted by the row's maximum so that no exp overflows;
 * the shifted sum is >= 1 (the maximum contributes exp(0)), so the result is
 * >= the row's maximum and CE >= 0 holds in floating point too.
 */
function logSumExp(row: readonly number[]): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  return max + Math.log(compensatedSum(row.map((v) => Math.exp(v - max))));
}

function rowOf(logits: Tensor, b: number, classes: number): number[] {
  return logits.data.slice(b * classes, (b + 1) * classes);
}

/**
 * Softmax cross-entropy from logits (spec/objective.md#objectivecross_entropy):
 * CE_b = logsumexp(logits_b) - logits_b[labels_b], in float64.
 */
export function crossEntropy(logits: Tensor, labels: readonly number[]): CrossEntropy {
  const checked = checkClassification(logits, labels);
  const perExample = checked.labels.map((label, b) => {
    const row = rowOf(checked.logits, b, checked.classes);
    return logSumExp(row) - row[label]!;
  });
  return { perExample, mean: compensatedSum(perExample) / checked.batch };
}

/**
 * Vector-Jacobian product of crossEntropy(...).mean:
 * d/dlogits[b, c] = g * (softmax(logits_b)_c - [c = labels_b]) / batch.
 */
export function crossEntropyVjp(
  logits: Tensor,
  labels: readonly number[],
  cotangentMean: number,
): Tensor {
  const checked = checkClassification(logits, labels);
  const g = checkNumber('cotangentMean', cotangentMean);
  const { batch, classes } = checked;
  const data = new Array<number>(batch * classes);
  for (let b = 0; b < batch; b++) {
    const row = rowOf(checked.logits, b, classes);
    const lse = logSumExp(row);
    for (let c = 0; c < classes; c++) {
      const softmax = Math.exp(row[c]! - lse);
      const onehot = c === checked.labels[b] ? 1 : 0;
      data[b * classes + c] = (g * (softmax - onehot)) / batch;
    }
  }
  return { shape: [batch, classes], data };
}

// ---------------------------------------------------------------- SGVB

export interface SgvbInputs {
  /** Network outputs before the softmax, [batch, classes]. */
  readonly logits: Tensor;
  /** One class index per example. */
  readonly labels: readonly number[];
  /** N, the size of the training set (not of the batch). */
  readonly trainSize: number;
  /** beta, the KL weight (see klWeightSchedule). */
  readonly klWeight: number;
  /** The KL summed over every layer (sum of layerKl). */
  readonly kl: number;
}

export interface SgvbObjective {
  /** dataTerm + klTerm: the quantity minimised. */
  readonly loss: number;
  /** N * mean CE over the batch = (N / M) * sum CE. */
  readonly dataTerm: number;
  /** beta * KL. */
  readonly klTerm: number;
}

function checkSgvb(inputs: unknown): { trainSize: number; klWeight: number; kl: number } {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {logits, labels, trainSize, klWeight, kl}',
      'inputs',
    );
  }
  const { trainSize, klWeight, kl } = inputs as Record<string, unknown>;
  return {
    trainSize: checkNumber('trainSize', trainSize, { integer: true, min: 1 }),
    klWeight: checkNumber('klWeight', klWeight, { min: 0 }),
    kl: checkNumber('kl', kl),
  };
}

/**
 * The negative SGVB lower bound (spec/objective.md#objectivesgvb), per step:
 * loss = N * mean_batch CE + beta * KL.
 */
export function sgvbObjective(inputs: SgvbInputs): SgvbObjective {
  const { trainSize, klWeight, kl } = checkSgvb(inputs);
  const dataTerm = trainSize * crossEntropy(inputs.logits, inputs.labels).mean;
  const klTerm = klWeight * kl;
  return { loss: dataTerm + klTerm, dataTerm, klTerm };
}

/**
 * Vector-Jacobian product of sgvbObjective(...).loss with respect to the
 * logits and to the summed KL. The KL's own gradient with respect to each
 * layer's parameters is then layerKlVjp with cotangent `kl`.
 */
export function sgvbObjectiveVjp(
  inputs: SgvbInputs,
  cotangent = 1,
): { logits: Tensor; kl: number } {
  const { trainSize, klWeight } = checkSgvb(inputs);
  const g = checkNumber('cotangent', cotangent);
  return {
    logits: crossEntropyVjp(inputs.logits, inputs.labels, g * trainSize),
    kl: g * klWeight,
  };
}

// ---------------------------------------------------------------- schedules

export interface KlWeightScheduleOptions {
  /** beta = 0 for epoch < start. Default KL_WARMUP_START_EPOCH. */
  readonly start?: number;
  /** beta = 1 for epoch >= end. Default KL_WARMUP_END_EPOCH. */
  readonly end?: number;
}

/**
 * The KL weight beta (spec/objective.md#schedulekl_weight). Epochs count
 * from 0 and may be fractional (epoch = step / steps_per_epoch):
 * 0 before `start`, (epoch - start) / (end - start) up to `end`, 1 from `end`.
 */
export function klWeightSchedule(epoch: number, options: KlWeightScheduleOptions = {}): number {
  const e = checkNumber('epoch', epoch, { min: 0 });
  if (typeof options !== 'object' || options === null) {
    throw new VdspecError('invalid_argument', 'expected an object {start?, end?}', 'options');
  }
  const start = checkNumber('options.start', options.start ?? KL_WARMUP_START_EPOCH, { min: 0 });
  const end = checkNumber('options.end', options.end ?? KL_WARMUP_END_EPOCH, { min: start });
  // Tested first so that start = end is a step from 0 to 1 with no 0/0.
  if (e >= end) return 1;
  if (e < start) return 0;
  return (e - start) / (end - start);
}

export type LearningRateScheduleKind = 'lenet300' | 'lenet5';

/**
 * The official learning-rate schedules (spec/objective.md#schedulelearning_rate),
 * for 0 <= epoch <= totalEpochs:
 * - `lenet300`: baseLr until totalEpochs / 2, then linear to 0 at totalEpochs;
 * - `lenet5`: baseLr * (totalEpochs - epoch) / totalEpochs.
 */
export function learningRateSchedule(
  epoch: number,
  totalEpochs: number,
  baseLr: number,
  kind: LearningRateScheduleKind,
): number {
  const total = checkNumber('totalEpochs', totalEpochs);
  if (!(total > 0)) {
    throw new VdspecError('invalid_argument', `must be > 0, got ${total}`, 'totalEpochs');
  }
  const e = checkNumber('epoch', epoch, { min: 0, max: total });
  const lr = checkNumber('baseLr', baseLr);
  if (!(lr > 0)) {
    throw new VdspecError('invalid_argument', `must be > 0, got ${lr}`, 'baseLr');
  }
  // The factor is formed first and then scales baseLr, so that it is exactly 1 (lr = baseLr) at the
  // start and the schedule is monotone in floating point too.
  if (kind === 'lenet300') return lr * Math.min(1, (2 * (total - e)) / total);
  if (kind === 'lenet5') return lr * ((total - e) / total);
  throw new VdspecError(
    'invalid_argument',
    `expected 'lenet300' or 'lenet5', got ${String(kind)}`,
    'kind',
  );
}
