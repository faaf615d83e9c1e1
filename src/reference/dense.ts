/**
 * Reference: the dense layer of SVD and VD, in float64.
 *
 * spec/dense.md. The training forward is the local reparameterization trick
 * (Kingma et al. 2015, eq. 10); the eval forward is the deterministic product
 * with the pruned weights zeroed. Every per-weight quantity (log_alpha, the
 * mask, the variance, their partials) comes from `weightStatistics`; this
 * module only adds the linear algebra and its hand-derived VJPs, so that the
 * two algorithms differ only through the profile.
 */
import { createRequire } from 'node:module';

import type * as MathJs from 'mathjs';
import { VdspecError } from '../errors.js';
import { getProfile, type Profile, type ProfileName } from '../profiles.js';
import { checkNumber, checkTensor, type Tensor } from '../tensor.js';
import { noiseName, sumToShape, weightStatistics, type WeightStatistics } from './logAlpha.js';

// mathjs takes most of a second to load, and only the dense products use it: loaded on the
// first product, so that `vdspec eval` of an op without one (kl.approx, log_alpha) starts fast.
let mathjs: typeof MathJs | null = null;
function math(): typeof MathJs {
  mathjs ??= createRequire(import.meta.url)('mathjs') as typeof MathJs;
  return mathjs;
}

export interface DenseEvalInputs {
  /** [batch, in] */
  readonly x: Tensor;
  /** [in, out] */
  readonly theta: Tensor;
  /**
   * The profile's learned noise parameter (`profile.noiseParameter`):
   * log_sigma2 or log_sigma of theta's shape, or log_alpha of any shape that
   * broadcasts to theta's.
   */
  readonly noise: Tensor;
  /** [out] */
  readonly bias: Tensor;
}

export interface DenseTrainInputs extends DenseEvalInputs {
  /** Standard-normal draws, [batch, out]. */
  readonly eps: Tensor;
}

export interface DenseTrainOptions {
  /** Apply the mask in the training forward; defaults to `profile.trainClipDefault`. */
  readonly trainClip?: boolean;
}

export interface DenseTrainResult {
  /** x @ theta_m + b, [batch, out]. */
  readonly mean: Tensor;
  /** (x*x) @ s2_m, [batch, out], WITHOUT profile.sqrtEps. */
  readonly variance: Tensor;
  /** mean + sqrt(variance + sqrtEps) * eps, [batch, out]. */
  readonly output: Tensor;
}

/** Cotangents of a loss w.r.t. the training results; `output` is required, the others add to it. */
export interface DenseTrainCotangent {
  readonly output: Tensor;
  readonly mean?: Tensor;
  readonly variance?: Tensor;
}

export interface DenseGradients {
  readonly x: Tensor;
  readonly theta: Tensor;
  /** Gradient w.r.t. the noise parameter, in that parameter's own shape. */
  readonly noise: Tensor;
  readonly bias: Tensor;
}

// ---------------------------------------------------------------------------
// Matrices. The products go through mathjs. mathjs cannot hold a matrix with
// a zero dimension ([] is a vector to it, and it rejects a zero inner size),
// so each matrix carries its sizes and the empty cases are answered here: an
// empty sum is 0. Elementwise operations are plain loops: mathjs' dotMultiply
// and add are about 30 times slower, which matters for the sampling tests.

interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly values: number[][];
}

function zeros(rows: number, cols: number): Matrix {
  const values = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  return { rows, cols, values };
}

function fromFlat(data: readonly number[], rows: number, cols: number): Matrix {
  const values = Array.from({ length: rows }, (_, r) => data.slice(r * cols, (r + 1) * cols));
  return { rows, cols, values };
}

function toTensor(m: Matrix): Tensor {
  return { shape: [m.rows, m.cols], data: m.values.flat() };
}

function isEmpty(m: Matrix): boolean {
  return m.rows === 0 || m.cols === 0;
}

/** a @ b */
function matmul(a: Matrix, b: Matrix): Matrix {
  if (a.rows === 0 || a.cols === 0 || b.cols === 0) return zeros(a.rows, b.cols);
  return { rows: a.rows, cols: b.cols, values: math().multiply(a.values, b.values) };
}

/** a^T */
function transposeOf(a: Matrix): Matrix {
  if (isEmpty(a)) return zeros(a.cols, a.rows);
  return { rows: a.cols, cols: a.rows, values: math().transpose(a.values) };
}

/** f applied entry by entry (with the entry's row and column). */
function elementwise(a: Matrix, f: (value: number, row: number, col: number) => number): Matrix {
  const values = a.values.map((row, r) => row.map((v, c) => f(v, r, c)));
  return { rows: a.rows, cols: a.cols, values };
}

/** a * b, elementwise */
function hadamard(a: Matrix, b: Matrix): Matrix {
  return elementwise(a, (value, r, c) => value * b.values[r]![c]!);
}

/** a + b, elementwise */
function plus(a: Matrix, b: Matrix): Matrix {
  return elementwise(a, (value, r, c) => value + b.values[r]![c]!);
}

/**
 * a * b, elementwise, where a zero factor gives an exact 0 even against an
 * infinite one (spec/log-alpha.md: a zero partial, or a pruned weight, is a
 * hard zero; IEEE's inf * 0 = NaN is not the answer).
 */
function hardZeroProduct(a: Matrix, b: Matrix): Matrix {
  return elementwise(a, (value, r, c) => {
    const other = b.values[r]![c]!;
    return value === 0 || other === 0 ? 0 : value * other;
  });
}

/** The bias as a [batch, out] matrix: every row is b (1 b^T). */
function rowsOf(bias: Matrix, batch: number): Matrix {
  return matmul(fromFlat(new Array<number>(batch).fill(1), batch, 1), bias);
}

/** 1^T a: the sum over rows, as a [1, cols] matrix. */
function sumRows(a: Matrix): Matrix {
  return matmul(fromFlat(new Array<number>(a.rows).fill(1), 1, a.rows), a);
}

// ---------------------------------------------------------------------------
// Validation.

interface Validated {
  readonly profile: Profile;
  readonly batch: number;
  readonly inSize: number;
  readonly outSize: number;
  readonly x: Matrix;
  readonly theta: Matrix;
  readonly thetaShape: readonly number[];
  readonly noiseShape: readonly number[];
  readonly bias: Matrix;
  readonly stats: WeightStatistics;
}

function checkInputs(inputs: unknown): Record<string, unknown> {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {x, theta, noise, bias, ...}',
      'inputs',
    );
  }
  return inputs as Record<string, unknown>;
}

/**
 * Sizes come from x ([batch, in]) and theta's second axis (out); every other
 * argument is checked against them and named in the error.
 */
function validateLayer(inputsIn: unknown, profileIn: Profile | ProfileName): Validated {
  const profile = getProfile(profileIn);
  checkNumber('profile.sqrtEps', profile.sqrtEps, { min: 0 });
  const inputs = checkInputs(inputsIn);
  const x = checkTensor('x', inputs['x'], { rank: 2 });
  const [batch, inSize] = x.shape as [number, number];
  const theta = checkTensor('theta', inputs['theta'], { rank: 2, shape: [inSize, null] });
  const outSize = theta.shape[1]!;
  const bias = checkTensor('bias', inputs['bias'], { rank: 1, shape: [outSize] });
  // Names the noise argument after the profile (log_sigma2, log_sigma or log_alpha).
  const stats = weightStatistics(theta, inputs['noise'], profile, 'dense');
  const noiseShape = (inputs['noise'] as Tensor).shape;
  return {
    profile,
    batch,
    inSize,
    outSize,
    x: fromFlat(x.data, batch, inSize),
    theta: fromFlat(theta.data, inSize, outSize),
    thetaShape: theta.shape,
    noiseShape: [...noiseShape],
    bias: fromFlat(bias.data, 1, outSize),
    stats,
  };
}

function checkOutputShaped(name: string, value: unknown, batch: number, outSize: number): Matrix {
  const checked = checkTensor(name, value, { rank: 2, shape: [batch, outSize] });
  return fromFlat(checked.data, batch, outSize);
}

function resolveTrainClip(options: unknown, profile: Profile): boolean {
  if (options === undefined) return profile.trainClipDefault;
  if (typeof options !== 'object' || options === null) {
    throw new VdspecError('invalid_argument', 'expected an object {trainClip?}', 'options');
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

/** Overflow of a result is not an input's fault alone; the message says which result. */
function requireFinite(m: Matrix, what: string): Matrix {
  for (const row of m.values) {
    for (const v of row) {
      if (!Number.isFinite(v)) {
        throw new VdspecError(
          'non_finite',
          `${what} is ${v}: the inputs are too large for float64`,
        );
      }
    }
  }
  return m;
}

// ---------------------------------------------------------------------------
// Training forward (local reparameterization).

interface TrainMasks {
  /** Multiplies theta in the mean. */
  readonly mean: Matrix;
  /** Multiplies the per-weight variance. */
  readonly variance: Matrix;
}

/** spec/dense.md#train-clip: where the keep mask enters the training forward. */
function trainMasks(v: Validated, trainClip: boolean): TrainMasks {
  const mask = fromFlat(v.stats.mask, v.inSize, v.outSize);
  const ones = elementwise(mask, () => 1);
  if (!trainClip) return { mean: ones, variance: ones };
  const maskVariance = v.profile.dense.trainMask === 'mean_and_variance';
  return { mean: mask, variance: maskVariance ? mask : ones };
}

interface TrainIntermediates {
  readonly masks: TrainMasks;
  readonly thetaM: Matrix;
  readonly s2M: Matrix;
  readonly xSquared: Matrix;
  readonly eps: Matrix;
  /** sqrt(variance + sqrtEps) */
  readonly std: Matrix;
  readonly mean: Matrix;
  readonly variance: Matrix;
  readonly output: Matrix;
}

/** theta^2 or exp(log_sigma2) beyond float64 leaves no finite training forward. */
function requireFiniteWeightVariance(s2M: Matrix, v: Validated): Matrix {
  s2M.values.forEach((row, i) =>
    row.forEach((value, j) => {
      if (Number.isFinite(value)) return;
      const theta = v.theta.values[i]![j]!;
      const culprit = Number.isFinite(theta * theta) ? noiseName(v.profile) : 'theta';
      throw new VdspecError(
        'non_finite',
        `the variance of weight [${i}, ${j}] overflows float64 (${value})`,
        culprit,
      );
    }),
  );
  return s2M;
}

function trainForward(v: Validated, epsIn: unknown, trainClip: boolean): TrainIntermediates {
  const eps = checkOutputShaped('eps', epsIn, v.batch, v.outSize);
  const masks = trainMasks(v, trainClip);
  const s2 = fromFlat(v.stats.variance, v.inSize, v.outSize);

  const thetaM = hadamard(v.theta, masks.mean);
  const s2M = requireFiniteWeightVariance(hardZeroProduct(s2, masks.variance), v);
  const xSquared = hadamard(v.x, v.x);

  // mean = x @ theta_m + b;  variance = (x*x) @ s2_m  (the bias never enters the variance)
  const mean = requireFinite(plus(matmul(v.x, thetaM), rowsOf(v.bias, v.batch)), 'the mean');
  const variance = requireFinite(matmul(xSquared, s2M), 'the variance');
  const std = elementwise(variance, (value) => Math.sqrt(value + v.profile.sqrtEps));
  const output = requireFinite(plus(mean, hadamard(std, eps)), 'the output');
  return { masks, thetaM, s2M, xSquared, eps, std, mean, variance, output };
}

/**
 * Training forward of the dense layer (ops `svd.dense.train`, `vd.dense.train`).
 *
 *     mean     = x @ (theta * m_mean) + b
 *     variance = (x*x) @ (s2 * m_var)
 *     output   = mean + sqrt(variance + profile.sqrtEps) * eps
 */
export function denseTrain(
  inputs: DenseTrainInputs,
  profile: Profile | ProfileName,
  options?: DenseTrainOptions,
): DenseTrainResult {
  const v = validateLayer(inputs, profile);
  const trainClip = resolveTrainClip(options, v.profile);
  const f = trainForward(v, checkInputs(inputs)['eps'], trainClip);
  return { mean: toTensor(f.mean), variance: toTensor(f.variance), output: toTensor(f.output) };
}

/**
 * Eval forward (ops `svd.dense.eval`, `vd.dense.eval`): x @ (theta * mask) + b,
 * the mask all ones when the profile does not prune.
 */
export function denseEval(inputs: DenseEvalInputs, profile: Profile | ProfileName): Tensor {
  const v = validateLayer(inputs, profile);
  const mask = fromFlat(v.stats.mask, v.inSize, v.outSize);
  const out = plus(matmul(v.x, hadamard(v.theta, mask)), rowsOf(v.bias, v.batch));
  return toTensor(requireFinite(out, 'the output'));
}

/**
 * Unmasked eval forward (op `svd.dense.eval_unmasked`): x @ theta + b, the
 * posterior mean of every weight, pruned or not. The noise parameter is
 * validated as for the eval forward and does not enter the result.
 */
export function denseEvalUnmasked(inputs: DenseEvalInputs, profile: Profile | ProfileName): Tensor {
  const v = validateLayer(inputs, profile);
  const out = plus(matmul(v.x, v.theta), rowsOf(v.bias, v.batch));
  return toTensor(requireFinite(out, 'the output'));
}

export interface DensePredictMcResult {
  /** (1/S) sum_s output_s, [batch, out]. */
  readonly meanOutput: Tensor;
  /** (1/S) sum_s softmax(output_s) over the out axis, [batch, out]. */
  readonly meanSoftmax: Tensor;
}

/** softmax over each row of m: exp(z - max) / sum exp(z - max). */
function softmaxRows(m: Matrix): Matrix {
  return {
    rows: m.rows,
    cols: m.cols,
    values: m.values.map((row) => {
      const max = Math.max(...row);
      const e = row.map((z) => Math.exp(z - max));
      let sum = 0;
      for (const v of e) sum += v;
      return e.map((v) => v / sum);
    }),
  };
}

/**
 * Monte Carlo predictive (ops `svd.dense.predict_mc`, `vd.dense.predict_mc`):
 * the training forward run once per draw eps[s] of `eps` ([S, batch, out],
 * S >= 1), with the same trainClip, and averaged:
 *
 *     mean_output  = (1/S) sum_s output_s
 *     mean_softmax = (1/S) sum_s softmax(output_s)      (over the out axis)
 */
export function densePredictMc(
  inputs: DenseTrainInputs,
  profile: Profile | ProfileName,
  options?: DenseTrainOptions,
): DensePredictMcResult {
  const v = validateLayer(inputs, profile);
  const trainClip = resolveTrainClip(options, v.profile);
  const eps = checkTensor('eps', checkInputs(inputs)['eps'], {
    rank: 3,
    shape: [null, v.batch, v.outSize],
  });
  const draws = eps.shape[0]!;
  if (draws < 1) {
    throw new VdspecError(
      'shape_mismatch',
      'expected S >= 1 draws [S, batch, out], got S = 0',
      'eps',
    );
  }
  const size = v.batch * v.outSize;
  let outputSum = zeros(v.batch, v.outSize);
  let softmaxSum = zeros(v.batch, v.outSize);
  for (let d = 0; d < draws; d++) {
    const epsD = { shape: [v.batch, v.outSize], data: eps.data.slice(d * size, (d + 1) * size) };
    const output = trainForward(v, epsD, trainClip).output;
    outputSum = plus(outputSum, output);
    softmaxSum = plus(softmaxSum, softmaxRows(output));
  }
  const average = (m: Matrix) => toTensor(elementwise(m, (value) => value / draws));
  return { meanOutput: average(outputSum), meanSoftmax: average(softmaxSum) };
}

// ---------------------------------------------------------------------------
// VJPs (spec/dense.md#dense-vjps).

function gradientsOf(
  v: Validated,
  dx: Matrix,
  dTheta: Matrix,
  dNoiseFull: Matrix,
  dBias: Matrix,
): DenseGradients {
  requireFinite(dx, 'the gradient w.r.t. x');
  requireFinite(dTheta, 'the gradient w.r.t. theta');
  requireFinite(dNoiseFull, `the gradient w.r.t. ${noiseName(v.profile)}`);
  requireFinite(dBias, 'the gradient w.r.t. bias');
  return {
    x: toTensor(dx),
    theta: { shape: [...v.thetaShape], data: dTheta.values.flat() },
    // VD's log_alpha may be broadcast: the gradient sums over the broadcast axes.
    noise: sumToShape(dNoiseFull.values.flat(), v.thetaShape, v.noiseShape),
    bias: { shape: [v.outSize], data: dBias.values.flat() },
  };
}

/**
 * VJP of the training forward: the gradient of a loss L w.r.t. x, theta, the
 * noise parameter and the bias, given dL/d output (and optionally dL/d mean,
 * dL/d variance, which add to the paths below).
 */
export function denseTrainVjp(
  inputs: DenseTrainInputs,
  cotangent: DenseTrainCotangent,
  profile: Profile | ProfileName,
  options?: DenseTrainOptions,
): DenseGradients {
  const v = validateLayer(inputs, profile);
  const trainClip = resolveTrainClip(options, v.profile);
  const f = trainForward(v, checkInputs(inputs)['eps'], trainClip);
  if (typeof cotangent !== 'object' || cotangent === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {output, mean?, variance?}',
      'cotangent',
    );
  }
  const g = checkOutputShaped('cotangent.output', cotangent.output, v.batch, v.outSize);
  const extraMean =
    cotangent.mean === undefined
      ? zeros(v.batch, v.outSize)
      : checkOutputShaped('cotangent.mean', cotangent.mean, v.batch, v.outSize);
  const extraVariance =
    cotangent.variance === undefined
      ? zeros(v.batch, v.outSize)
      : checkOutputShaped('cotangent.variance', cotangent.variance, v.batch, v.outSize);

  // output = mean + s * eps, s = sqrt(variance + sqrtEps):
  //   dL/dmean = g;  dL/dvariance = g * eps / (2 s)  (0 where s = 0, only possible when sqrtEps = 0)
  const gMean = plus(g, extraMean);
  const gEpsOver2s = elementwise(hadamard(g, f.eps), (value, r, c) => {
    if (value === 0) return 0;
    const s = f.std.values[r]![c]!;
    if (s === 0) {
      throw new VdspecError(
        'non_finite',
        'the variance is 0 and profile.sqrtEps is 0: d sqrt(v)/dv is infinite there (every built-in profile has sqrtEps > 0)',
        'profile',
      );
    }
    return value / (2 * s);
  });
  const gVariance = plus(gEpsOver2s, extraVariance);

  // mean = x @ theta_m + 1 b^T
  const dxFromMean = matmul(gMean, transposeOf(f.thetaM));
  const dThetaM = matmul(transposeOf(v.x), gMean);
  const dBias = sumRows(gMean);

  // variance = (x*x) @ s2_m
  const dxFromVariance = elementwise(matmul(gVariance, transposeOf(f.s2M)), (value, r, c) => {
    return 2 * v.x.values[r]![c]! * value;
  });
  const dS2M = matmul(transposeOf(f.xSquared), gVariance);

  // theta_m = theta * m_mean, s2_m = s2 * m_var: the masks are piecewise constant (derivative 0).
  const dThetaDirect = hardZeroProduct(dThetaM, f.masks.mean);
  const dS2 = hardZeroProduct(dS2M, f.masks.variance);

  // s2 = s2(theta, noise): weightStatistics' partials (zero through an inactive clip).
  const dVarianceDTheta = fromFlat(v.stats.dVarianceDTheta, v.inSize, v.outSize);
  const dVarianceDNoise = fromFlat(v.stats.dVarianceDNoise, v.inSize, v.outSize);
  const dTheta = plus(dThetaDirect, hardZeroProduct(dS2, dVarianceDTheta));
  const dNoiseFull = hardZeroProduct(dS2, dVarianceDNoise);

  return gradientsOf(v, plus(dxFromMean, dxFromVariance), dTheta, dNoiseFull, dBias);
}

/**
 * VJP of the eval forward. The mask is piecewise constant, so the gradient
 * w.r.t. the noise parameter is 0 everywhere (by convention also at the
 * threshold), and pruned weights get a zero theta gradient.
 */
export function denseEvalVjp(
  inputs: DenseEvalInputs,
  cotangent: Tensor,
  profile: Profile | ProfileName,
): DenseGradients {
  const v = validateLayer(inputs, profile);
  const g = checkOutputShaped('cotangent', cotangent, v.batch, v.outSize);
  const mask = fromFlat(v.stats.mask, v.inSize, v.outSize);

  // out = x @ (theta * mask) + 1 b^T
  const dx = matmul(g, transposeOf(hadamard(v.theta, mask)));
  const dTheta = hardZeroProduct(matmul(transposeOf(v.x), g), mask);
  const dNoiseFull = zeros(v.inSize, v.outSize);
  return gradientsOf(v, dx, dTheta, dNoiseFull, sumRows(g));
}
