/**
 * spec/dense.md#the-local-reparameterization-trick: the training forward's
 * mean and variance are those of x @ W + b with every weight drawn
 * independently from its posterior q(w_ij) = N(theta_ij, alpha_ij * theta_ij^2).
 *
 * The test samples W directly (its own seeded PRNG: mulberry32 + Box-Muller),
 * computes x @ W + b for many draws, and compares the sample mean and variance
 * of each output with the LRT mean and variance returned by denseTrain. It
 * also samples the LRT output itself (independent eps per row) and compares
 * the two samplers. Negative controls show that the bounds are tight enough
 * to reject the known bugs (bias inside the variance, std from sigma^4).
 *
 * Bounds. Every output of x @ W + b is an exact Gaussian (a linear map of
 * Gaussians), mean mu and variance v. With n independent draws:
 * - the sample mean has standard error sqrt(v / n);
 * - the unbiased sample variance has standard error v * sqrt(2 / (n - 1))
 *   (it is v / (n - 1) times a chi-square with n - 1 degrees of freedom; with
 *   n = 40000 its skewness sqrt(8 / (n - 1)) = 0.014, so the normal tail is a
 *   fair approximation).
 * We allow 6 standard errors: a two-sided normal tail of 2e-9 per comparison,
 * about 3e-7 over the 128 comparisons of this file; the seeds are fixed, so
 * the outcome is reproducible anyway. For the difference of two independent
 * samplers the standard errors add in quadrature (sqrt(2) times the above).
 */
import { describe, expect, it } from 'vitest';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import { denseTrain, type DenseTrainInputs } from '../../src/reference/dense.js';
import type { Tensor } from '../../src/tensor.js';
import {
  mulberry32,
  noiseForLogAlpha,
  noiseShapeOf,
  standardNormal,
  type NoiseLayout,
} from './dense-cases.js';

const SAMPLES = 40_000;
/** Draws for the LRT-output comparison: one denseTrain call of batch 2 * LRT_SAMPLES. */
const LRT_SAMPLES = 20_000;
const STANDARD_ERRORS = 6;

const X = [
  [0.9, -1.4, 0.6],
  [-0.3, 0.8, 1.7],
];
const THETA = [
  [0.8, -1.2],
  [-0.5, 1.5],
  [1.1, 0.6],
];
const BIAS = [0.7, -1.1];
/** Inside every SVD clip and, for the variance's sake, spread over [-2, 2]. */
const SVD_LOG_ALPHA = [
  [-1.5, 0.5],
  [1.0, -2.0],
  [-0.5, 2.0],
];
/** VD: alpha <= 1 (log_alpha <= VD_LOG_ALPHA_MAX = 0), strictly inside. */
const VD_LOG_ALPHA: Record<'per-weight' | 'scalar' | 'per-input', number[]> = {
  'per-weight': [-1.5, -0.3, -1.0, -2.0, -0.5, -0.8],
  scalar: [-1.6],
  'per-input': [-1.5, -0.3, -1.0],
};

interface Layer {
  readonly name: string;
  readonly profile: Profile;
  readonly inputs: Omit<DenseTrainInputs, 'eps'>;
  /** alpha_ij as the test understands it: exp(target log_alpha). */
  readonly alpha: number[][];
}

function svdLayer(profile: Profile): Layer {
  const noise = THETA.flatMap((row, i) =>
    row.map((theta, j) => noiseForLogAlpha(theta, SVD_LOG_ALPHA[i]![j]!, profile)),
  );
  return {
    name: profile.name,
    profile,
    inputs: {
      x: { shape: [2, 3], data: X.flat() },
      theta: { shape: [3, 2], data: THETA.flat() },
      noise: { shape: [3, 2], data: noise },
      bias: { shape: [2], data: BIAS },
    },
    alpha: SVD_LOG_ALPHA.map((row) => row.map(Math.exp)),
  };
}

function vdLayer(profile: Profile, layout: 'per-weight' | 'scalar' | 'per-input'): Layer {
  const values = VD_LOG_ALPHA[layout];
  const shape = noiseShapeOf(layout as NoiseLayout, 3, 2);
  const logAlphaOf = (i: number, j: number) =>
    layout === 'scalar' ? values[0]! : layout === 'per-input' ? values[i]! : values[i * 2 + j]!;
  return {
    name: `${profile.name} (${layout} log_alpha)`,
    profile,
    inputs: {
      x: { shape: [2, 3], data: X.flat() },
      theta: { shape: [3, 2], data: THETA.flat() },
      noise: { shape, data: values },
      bias: { shape: [2], data: BIAS },
    },
    alpha: THETA.map((row, i) => row.map((_, j) => Math.exp(logAlphaOf(i, j)))),
  };
}

const LAYERS: Layer[] = PROFILE_NAMES.flatMap((name) => {
  const profile = PROFILES[name];
  if (profile.algorithm === 'svd') return [svdLayer(profile)];
  return (['per-weight', 'scalar', 'per-input'] as const).map((l) => vdLayer(profile, l));
});

interface Moments {
  mean: number[];
  variance: number[];
}

/** Per-output sample mean and unbiased variance, two-pass. */
function moments(samples: number[][]): Moments {
  const width = samples[0]!.length;
  const n = samples.length;
  const mean = new Array<number>(width).fill(0);
  for (const s of samples) s.forEach((v, k) => (mean[k]! += v / n));
  const variance = new Array<number>(width).fill(0);
  for (const s of samples) s.forEach((v, k) => (variance[k]! += (v - mean[k]!) ** 2 / (n - 1)));
  return { mean, variance };
}

/** n draws of x @ W + b, W_ij ~ N(theta_ij, alpha_ij * theta_ij^2) drawn afresh each time. */
function directSamples(layer: Layer, n: number, seed: number): number[][] {
  const normal = standardNormal(mulberry32(seed));
  const out: number[][] = [];
  for (let s = 0; s < n; s++) {
    const w = THETA.map((row, i) =>
      row.map((theta, j) => theta + Math.sqrt(layer.alpha[i]![j]!) * Math.abs(theta) * normal()),
    );
    const y: number[] = [];
    X.forEach((xRow) => {
      BIAS.forEach((b, j) => {
        let acc = b;
        xRow.forEach((xi, i) => (acc += xi * w[i]![j]!));
        y.push(acc);
      });
    });
    out.push(y);
  }
  return out;
}

/** The test's own exact moments: mu = x @ theta + b, v = (x*x) @ (alpha * theta^2). */
function exactMoments(layer: Layer): Moments {
  const mean: number[] = [];
  const variance: number[] = [];
  X.forEach((xRow) => {
    BIAS.forEach((b, j) => {
      let m = b;
      let v = 0;
      xRow.forEach((xi, i) => {
        m += xi * THETA[i]![j]!;
        v += xi * xi * layer.alpha[i]![j]! * THETA[i]![j]! ** 2;
      });
      mean.push(m);
      variance.push(v);
    });
  });
  return { mean, variance };
}

function within(actual: number, expected: number, bound: number): boolean {
  return Math.abs(actual - expected) <= bound;
}

describe('spec/dense.md#the-local-reparameterization-trick', () => {
  it.each(LAYERS.map((l, k) => [l.name, l, k] as const))(
    'spec/dense.md#the-local-reparameterization-trick: %s: LRT moments equal the exact moments of x @ W + b',
    (_name, layer) => {
      const eps: Tensor = { shape: [2, 2], data: [0, 0, 0, 0] };
      const lrt = denseTrain({ ...layer.inputs, eps }, layer.profile, { trainClip: false });
      const exact = exactMoments(layer);
      // The reference and the test evaluate the same sums; they differ by the rounding of
      // exp(log_alpha) and log(theta^2 + thetaEps): a few ulps of numbers below 30, plus the
      // thetaEps shift of the sigma2 profiles: there s2 = exp(log_sigma2) = alpha * (theta^2 + eps),
      // relative (theta^2 + eps)/theta^2 - 1 <= 1e-8 / 0.25 (|theta| >= 0.5 here).
      const relative = 4e-8 + 1e-13;
      // The means are the same sums of the same products: 4 ulps of sum |terms| (<= 6 here).
      lrt.mean.data.forEach((m, k) => {
        expect(within(m, exact.mean[k]!, 4 * Number.EPSILON * 6)).toBe(true);
      });
      lrt.variance.data.forEach((v, k) => {
        expect(within(v, exact.variance[k]!, relative * exact.variance[k]!)).toBe(true);
      });
    },
  );

  it.each(LAYERS.map((l, k) => [l.name, l, k] as const))(
    'spec/dense.md#the-local-reparameterization-trick: %s: sampled weights reproduce the LRT mean and variance',
    (_name, layer, index) => {
      const eps: Tensor = { shape: [2, 2], data: [0, 0, 0, 0] };
      const lrt = denseTrain({ ...layer.inputs, eps }, layer.profile, { trainClip: false });
      const sampled = moments(directSamples(layer, SAMPLES, 20240 + index));
      const exact = exactMoments(layer);
      lrt.mean.data.forEach((mu, k) => {
        const v = exact.variance[k]!;
        const seMean = Math.sqrt(v / SAMPLES);
        const seVariance = v * Math.sqrt(2 / (SAMPLES - 1));
        expect(within(sampled.mean[k]!, mu, STANDARD_ERRORS * seMean), `mean ${k}`).toBe(true);
        const lrtVariance = lrt.variance.data[k]!;
        expect(
          within(sampled.variance[k]!, lrtVariance, STANDARD_ERRORS * seVariance),
          `variance ${k}: sampled ${sampled.variance[k]}, LRT ${lrtVariance}`,
        ).toBe(true);

        // Negative controls: the same bound rejects the known bugs.
        const b = BIAS[k % 2]!;
        // A bias added inside the variance ("conv(x*x, s2) + b", a deepbayes issue).
        const biasInside = lrtVariance + b;
        expect(within(sampled.variance[k]!, biasInside, STANDARD_ERRORS * seVariance)).toBe(false);
      });
      // std from sigma^4 (pytorch_ard's former bug): variance (x*x) @ (s2^2) instead of @ s2.
      const sigma4 = X.flatMap((xRow) =>
        BIAS.map((_, j) =>
          xRow.reduce((acc, xi, i) => {
            const s2 = layer.alpha[i]![j]! * THETA[i]![j]! ** 2;
            return acc + xi * xi * s2 * s2;
          }, 0),
        ),
      );
      const rejected = sigma4.filter(
        (v, k) =>
          !within(
            sampled.variance[k]!,
            v,
            STANDARD_ERRORS * exact.variance[k]! * Math.sqrt(2 / (SAMPLES - 1)),
          ),
      );
      expect(rejected.length).toBe(sigma4.length);
    },
  );

  it.each(LAYERS.map((l, k) => [l.name, l, k] as const))(
    'spec/dense.md#the-local-reparameterization-trick: %s: the LRT output (eps ~ N(0, 1)) and sampled weights agree in distribution moments',
    (_name, layer, index) => {
      // One denseTrain call with the two input rows repeated LRT_SAMPLES times: every row gets its
      // own eps, so each output is an independent LRT draw.
      const normal = standardNormal(mulberry32(777 + index));
      const x: Tensor = {
        shape: [2 * LRT_SAMPLES, 3],
        data: Array.from({ length: LRT_SAMPLES }, () => X.flat()).flat(),
      };
      const eps: Tensor = {
        shape: [2 * LRT_SAMPLES, 2],
        data: Array.from({ length: 4 * LRT_SAMPLES }, normal),
      };
      const out = denseTrain({ ...layer.inputs, x, eps }, layer.profile, { trainClip: false });
      const lrtSamples: number[][] = [];
      for (let s = 0; s < LRT_SAMPLES; s++)
        lrtSamples.push(out.output.data.slice(4 * s, 4 * s + 4));
      const lrt = moments(lrtSamples);
      const direct = moments(directSamples(layer, LRT_SAMPLES, 99 + index));
      const exact = exactMoments(layer);
      lrt.mean.forEach((m, k) => {
        // The LRT output's variance is v + sqrtEps; sqrtEps <= 1e-8 is far below the bound.
        const v = exact.variance[k]!;
        const seMean = Math.sqrt((2 * v) / LRT_SAMPLES);
        const seVariance = v * Math.sqrt(4 / (LRT_SAMPLES - 1));
        expect(within(m, direct.mean[k]!, STANDARD_ERRORS * seMean)).toBe(true);
        expect(within(lrt.variance[k]!, direct.variance[k]!, STANDARD_ERRORS * seVariance)).toBe(
          true,
        );
      });
    },
  );
});
