/**
 * Reference: VD variant A, Gaussian dropout on the input units, in float64
 * (spec/dense-a.md; Kingma et al. 2015, sec. 3.2, "correlated weight noise").
 *
 * One multiplicative noise xi = 1 + sqrt(alpha) * eps per (example, input
 * unit) scales x before the product, so every output of an example shares
 * the same noise; the KL has one term per input unit. Plain loops: each
 * function reads like the equations of its spec section.
 */
import { VdspecError } from '../errors.js';
import { getProfile, type Profile, type ProfileName } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, type Tensor } from '../tensor.js';
import { klApprox, klApproxDerivative } from './kl.js';
import { clipGradient, clipValue, noiseName } from './logAlpha.js';
import { compensatedSum } from './objective.js';

export interface DenseATrainInputs {
  /** [batch, in] */
  readonly x: Tensor;
  /** [in, out] */
  readonly theta: Tensor;
  /** log_alpha: [] (one per layer) or [in] (one per input unit). */
  readonly noise: Tensor;
  /** [out] */
  readonly bias: Tensor;
  /** Standard-normal draws, one per example and INPUT unit: [batch, in]. */
  readonly eps: Tensor;
}

export interface DenseATrainResult {
  /** x @ theta + b, [batch, out]. */
  readonly mean: Tensor;
  /** (x^2 * alpha) @ theta^2, [batch, out]: the marginal variance of each output. */
  readonly variance: Tensor;
  /** (x * xi) @ theta + b with xi = 1 + sqrt(alpha) * eps, [batch, out]. */
  readonly output: Tensor;
}

export interface DenseAGradients {
  readonly x: Tensor;
  readonly theta: Tensor;
  /** log_alpha's own shape ([] or [in]): summed over the examples (and the units for []). */
  readonly noise: Tensor;
  readonly bias: Tensor;
}

export interface DenseAKlInputs {
  /** [in, out]: only its number of rows (input units) enters the KL. */
  readonly theta: Tensor;
  /** log_alpha: [] or [in]. */
  readonly noise: Tensor;
}

// ---------------------------------------------------------------------------
// Validation

/** Variant A belongs to VD: log_alpha is the learned parameter. */
function checkProfileA(profileIn: Profile | ProfileName): Profile {
  const profile = getProfile(profileIn);
  if (profile.algorithm !== 'vd' || profile.dense.logAlpha.form !== 'learned') {
    throw new VdspecError(
      'invalid_argument',
      `VD variant A needs a VD profile (log_alpha learned); "${profile.name}" is ${profile.algorithm.toUpperCase()}`,
      'profile',
    );
  }
  return profile;
}

function checkInputs(inputs: unknown, names: string): Record<string, unknown> {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new VdspecError('invalid_argument', `expected an object {${names}}`, 'inputs');
  }
  return inputs as Record<string, unknown>;
}

/**
 * log_alpha of shape [] or [in]; the clipped value and the clip's gradient
 * for each input unit (index i reads entry 0 of a scalar).
 */
interface UnitLogAlpha {
  readonly noise: Tensor;
  /** Raw log_alpha per input unit. */
  readonly raw: number[];
  /** Clipped log_alpha per input unit. */
  readonly la: number[];
  /** d la / d raw per input unit: 1 on the closed clip interval, 0 strictly outside. */
  readonly clipGrad: number[];
}

function unitLogAlpha(noiseIn: unknown, inSize: number, profile: Profile): UnitLogAlpha {
  const name = noiseName(profile);
  const noise = checkTensor(name, noiseIn);
  const scalar = noise.shape.length === 0;
  const perUnit = noise.shape.length === 1 && noise.shape[0] === inSize;
  if (!scalar && !perUnit) {
    throw new VdspecError(
      'shape_mismatch',
      `variant A takes one log_alpha per layer ([]) or one per input unit ([${inSize}]), got ` +
        `${shapeToString(noise.shape)}` +
        (noise.shape.length === 2
          ? ' (a rank-2 log_alpha such as [in, 1] is variant B with tied alphas: vd.dense.*)'
          : ''),
      name,
    );
  }
  const clip = profile.dense.logAlpha.clip;
  const raw = Array.from({ length: inSize }, (_, i) => noise.data[scalar ? 0 : i]!);
  return {
    noise,
    raw,
    la: raw.map((v) => clipValue(v, clip)),
    clipGrad: raw.map((v) => clipGradient(v, clip)),
  };
}

interface ValidatedA {
  readonly batch: number;
  readonly inSize: number;
  readonly outSize: number;
  readonly x: readonly number[];
  readonly theta: readonly number[];
  readonly bias: readonly number[];
  readonly eps: readonly number[];
  readonly units: UnitLogAlpha;
  /** alpha_i = exp(la_i) and sqrt(alpha_i), per input unit. */
  readonly alpha: number[];
  readonly sqrtAlpha: number[];
}

function validateA(inputsIn: unknown, profileIn: Profile | ProfileName): ValidatedA {
  const profile = checkProfileA(profileIn);
  const inputs = checkInputs(inputsIn, 'x, theta, noise, bias, eps');
  const x = checkTensor('x', inputs['x'], { rank: 2 });
  const [batch, inSize] = x.shape as [number, number];
  const theta = checkTensor('theta', inputs['theta'], { rank: 2, shape: [inSize, null] });
  const outSize = theta.shape[1]!;
  const units = unitLogAlpha(inputs['noise'], inSize, profile);
  const bias = checkTensor('bias', inputs['bias'], { rank: 1, shape: [outSize] });
  if (inputs['eps'] === undefined) {
    throw new VdspecError('invalid_argument', 'missing: the noise is an input', 'eps');
  }
  const eps = checkTensor('eps', inputs['eps']);
  if (eps.shape.length !== 2 || eps.shape[0] !== batch || eps.shape[1] !== inSize) {
    throw new VdspecError(
      'shape_mismatch',
      `variant A draws one eps per example and input unit: expected [${batch}, ${inSize}] ` +
        `([batch, in]), got ${shapeToString(eps.shape)}`,
      'eps',
    );
  }
  const alpha = units.la.map((la) => Math.exp(la));
  alpha.forEach((a, i) => {
    if (!Number.isFinite(a)) {
      throw new VdspecError(
        'non_finite',
        `alpha = exp(log_alpha) of input unit ${i} overflows float64 (${a})`,
        noiseName(profile),
      );
    }
  });
  return {
    batch,
    inSize,
    outSize,
    x: x.data,
    theta: theta.data,
    bias: bias.data,
    eps: eps.data,
    units,
    alpha,
    sqrtAlpha: alpha.map(Math.sqrt),
  };
}

function requireFinite(values: readonly number[], what: string): number[] {
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) {
    throw new VdspecError('non_finite', `${what} is ${bad}: the inputs are too large for float64`);
  }
  return [...values];
}

// ---------------------------------------------------------------------------
// Training forward

/** z = x * xi, xi = 1 + sqrt(alpha) * eps: the input after the dropout noise, [batch, in]. */
function noisyInput(v: ValidatedA): { xi: number[]; z: number[] } {
  const xi = new Array<number>(v.batch * v.inSize);
  const z = new Array<number>(v.batch * v.inSize);
  for (let b = 0; b < v.batch; b++) {
    for (let i = 0; i < v.inSize; i++) {
      const k = b * v.inSize + i;
      xi[k] = 1 + v.sqrtAlpha[i]! * v.eps[k]!;
      z[k] = v.x[k]! * xi[k]!;
    }
  }
  return { xi, z };
}

/** rows [batch, in] @ w [in, out] (+ bias), the sum over i in increasing order. */
function product(
  v: ValidatedA,
  rows: readonly number[],
  weight: (i: number, j: number) => number,
  withBias: boolean,
): number[] {
  const out = new Array<number>(v.batch * v.outSize);
  for (let b = 0; b < v.batch; b++) {
    for (let j = 0; j < v.outSize; j++) {
      let s = 0;
      for (let i = 0; i < v.inSize; i++) s += rows[b * v.inSize + i]! * weight(i, j);
      out[b * v.outSize + j] = withBias ? s + v.bias[j]! : s;
    }
  }
  return out;
}

/**
 * Training forward of VD variant A (op `vd.dense_a.train`):
 *
 *     la       = clip(log_alpha)                 per input unit
 *     xi       = 1 + sqrt(exp(la)) * eps         [batch, in]
 *     mean     = x @ theta + b
 *     variance = (x^2 * exp(la)) @ theta^2
 *     output   = (x * xi) @ theta + b
 */
export function denseATrain(
  inputs: DenseATrainInputs,
  profile: Profile | ProfileName,
): DenseATrainResult {
  const v = validateA(inputs, profile);
  const theta = (i: number, j: number) => v.theta[i * v.outSize + j]!;
  const { z } = noisyInput(v);
  const x2Alpha = v.x.map((xv, k) => xv * xv * v.alpha[k % v.inSize]!);
  const shape = [v.batch, v.outSize];
  return {
    mean: { shape, data: requireFinite(product(v, v.x, theta, true), 'the mean') },
    variance: {
      shape,
      data: requireFinite(
        product(v, x2Alpha, (i, j) => theta(i, j) * theta(i, j), false),
        'the variance',
      ),
    },
    output: { shape, data: requireFinite(product(v, z, theta, true), 'the output') },
  };
}

/**
 * VJP of the training output (op `vd.dense_a.train_vjp`), for g = dL/d output:
 *
 *     dz          = g @ theta^T                           [batch, in]
 *     dx          = dz * xi
 *     dtheta      = (x * xi)^T @ g
 *     dbias       = sum over the batch of g
 *     dlog_alpha  = sum of dz * x * eps * sqrt(alpha) / 2 * clip'(log_alpha)
 *                   over the examples (and the units, for a scalar log_alpha)
 */
export function denseATrainVjp(
  inputs: DenseATrainInputs,
  cotangent: Tensor,
  profile: Profile | ProfileName,
): DenseAGradients {
  const v = validateA(inputs, profile);
  const g = checkTensor('cotangent', cotangent, { rank: 2, shape: [v.batch, v.outSize] }).data;
  const { xi, z } = noisyInput(v);
  const dz = new Array<number>(v.batch * v.inSize).fill(0);
  for (let b = 0; b < v.batch; b++) {
    for (let i = 0; i < v.inSize; i++) {
      let s = 0;
      for (let j = 0; j < v.outSize; j++) s += g[b * v.outSize + j]! * v.theta[i * v.outSize + j]!;
      dz[b * v.inSize + i] = s;
    }
  }
  const dx = dz.map((d, k) => d * xi[k]!);
  const dTheta = new Array<number>(v.inSize * v.outSize).fill(0);
  for (let i = 0; i < v.inSize; i++) {
    for (let j = 0; j < v.outSize; j++) {
      let s = 0;
      for (let b = 0; b < v.batch; b++) s += z[b * v.inSize + i]! * g[b * v.outSize + j]!;
      dTheta[i * v.outSize + j] = s;
    }
  }
  const dBias = new Array<number>(v.outSize).fill(0);
  for (let j = 0; j < v.outSize; j++) {
    for (let b = 0; b < v.batch; b++) dBias[j] = dBias[j]! + g[b * v.outSize + j]!;
  }
  // d xi / d la = eps * d sqrt(exp(la)) / d la = eps * sqrt(alpha) / 2; 0 beyond the clip.
  const scalar = v.units.noise.shape.length === 0;
  const dNoise = new Array<number>(scalar ? 1 : v.inSize).fill(0);
  for (let b = 0; b < v.batch; b++) {
    for (let i = 0; i < v.inSize; i++) {
      if (v.units.clipGrad[i] === 0) continue;
      const k = b * v.inSize + i;
      const term = (dz[k]! * v.x[k]! * v.eps[k]! * v.sqrtAlpha[i]!) / 2;
      const j = scalar ? 0 : i;
      dNoise[j] = dNoise[j]! + term;
    }
  }
  return {
    x: { shape: [v.batch, v.inSize], data: requireFinite(dx, 'the gradient w.r.t. x') },
    theta: {
      shape: [v.inSize, v.outSize],
      data: requireFinite(dTheta, 'the gradient w.r.t. theta'),
    },
    noise: {
      shape: [...v.units.noise.shape],
      data: requireFinite(dNoise, 'the gradient w.r.t. log_alpha'),
    },
    bias: { shape: [v.outSize], data: requireFinite(dBias, 'the gradient w.r.t. bias') },
  };
}

// ---------------------------------------------------------------------------
// KL

function validateKl(inputsIn: unknown, profileIn: Profile | ProfileName) {
  const profile = checkProfileA(profileIn);
  const inputs = checkInputs(inputsIn, 'theta, noise');
  const theta = checkTensor('theta', inputs['theta'], { rank: 2 });
  const units = unitLogAlpha(inputs['noise'], theta.shape[0]!, profile);
  return { profile, units };
}

/**
 * The KL of a variant-A layer (op `vd.dense_a.kl`): one term per input unit,
 *
 *     KL_A = sum over the in input units i of KL(clip(log_alpha_i))
 *
 * with the profile's per-noise-variable KL; a scalar log_alpha counts once
 * per input unit (in * KL(la)), never once per weight.
 */
export function denseAKl(inputs: DenseAKlInputs, profile: Profile | ProfileName): number {
  const { profile: p, units } = validateKl(inputs, profile);
  return compensatedSum(units.la.map((la) => klApprox(la, p)));
}

/** g * dKL_A / dlog_alpha, log_alpha's shape: KL'(la_i) * clip'(raw_i), summed per entry. */
export function denseAKlVjp(
  inputs: DenseAKlInputs,
  cotangentIn: number,
  profile: Profile | ProfileName,
): Tensor {
  const { profile: p, units } = validateKl(inputs, profile);
  const g = checkNumber('cotangent', cotangentIn);
  const scalar = units.noise.shape.length === 0;
  const terms = units.la.map((la, i) =>
    units.clipGrad[i] === 0 ? 0 : g * klApproxDerivative(la, p),
  );
  const data = scalar ? [compensatedSum(terms)] : terms;
  return { shape: [...units.noise.shape], data };
}
