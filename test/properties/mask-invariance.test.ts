/**
 * spec/dense.md#mask-invariance: a pruned weight is gone.
 *
 * - The eval forward does not change when the values of pruned weights
 *   change, as long as they stay pruned.
 * - It equals the product computed with the pruned weights removed (a sparse
 *   sum over the kept (i, j) only, written here).
 * - The mask is idempotent: zeroing the pruned thetas and recomputing the mask
 *   gives the same mask (every SVD profile).
 * - With trainClip on, the training mean is invariant too (and, where the
 *   profile masks the variance as well, the variance).
 *
 * Keeping a weight pruned while changing it: every log_alpha form is
 * non-increasing in |theta| and increasing in the noise parameter, and the
 * clip and the comparison are monotone, so theta -> u * theta with |u| <= 1
 * and noise -> noise + d with d >= 0 can only raise log_alpha. The test
 * checks that the mask is indeed unchanged before using it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import { denseEval, denseTrain, type DenseTrainInputs } from '../../src/reference/dense.js';
import { keepMask } from '../../src/reference/logAlpha.js';
import type { Tensor } from '../../src/tensor.js';
import { buildDenseCase, caseParameters, mulberry32, noiseForLogSigma2 } from './dense-cases.js';

const ALL = PROFILE_NAMES.map((name) => PROFILES[name]);
const SVD = ALL.filter((p) => p.algorithm === 'svd');
const ULP = Number.EPSILON;

const MASKS_VARIANCE: Profile = {
  ...PROFILES['bayesgroup-theano'],
  dense: { ...PROFILES['bayesgroup-theano'].dense, trainMask: 'mean_and_variance' },
};

/** Equal as numbers (+0 and -0 alike), entry by entry. */
function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, k) => v === b[k]);
}

/**
 * Move every pruned weight: theta times u in [-1, 1] (u = 0 a quarter of the
 * time), the noise parameter up by d in [0, 5]. Kept weights are untouched.
 */
function disturbPruned(
  inputs: DenseTrainInputs,
  mask: readonly number[],
  seed: number,
): DenseTrainInputs {
  const uniform = mulberry32(seed);
  const theta = inputs.theta.data.map((t, k) => {
    if (mask[k] === 1) return t;
    return uniform() < 0.25 ? 0 : t * (2 * uniform() - 1);
  });
  const noise = inputs.noise.data.map((v, k) => (mask[k] === 1 ? v : v + 5 * uniform()));
  return {
    ...inputs,
    theta: { shape: inputs.theta.shape, data: theta },
    noise: { shape: inputs.noise.shape, data: noise },
  };
}

/** out[b][j] = bias[j] + sum over kept i of x[b][i] * theta[i][j]; pruned weights never read. */
function sparseEval(
  inputs: DenseTrainInputs,
  mask: readonly number[],
): { out: number[]; scale: number[] } {
  const [batch, inSize] = inputs.x.shape as [number, number];
  const outSize = inputs.theta.shape[1]!;
  const kept: [number, number][] = [];
  for (let i = 0; i < inSize; i++) {
    for (let j = 0; j < outSize; j++) if (mask[i * outSize + j] === 1) kept.push([i, j]);
  }
  const out = new Array<number>(batch * outSize).fill(0);
  const scale = new Array<number>(batch * outSize).fill(0);
  for (let b = 0; b < batch; b++) {
    for (const [i, j] of kept) {
      const term = inputs.x.data[b * inSize + i]! * inputs.theta.data[i * outSize + j]!;
      out[b * outSize + j]! += term;
      scale[b * outSize + j]! += Math.abs(term);
    }
    for (let j = 0; j < outSize; j++) {
      out[b * outSize + j]! += inputs.bias.data[j]!;
      scale[b * outSize + j]! += Math.abs(inputs.bias.data[j]!);
    }
  }
  return { out, scale };
}

const params = caseParameters({ maxBatch: 3, maxIn: 6, maxOut: 4 }).map((p) => ({
  ...p,
  layout: 'per-weight' as const,
}));

describe('spec/dense.md#mask-invariance', () => {
  it.each(SVD.map((p) => [p.name, p] as const))(
    'spec/dense.md#mask-invariance: %s: eval ignores the values of pruned weights',
    (_name, profile) => {
      fc.assert(
        fc.property(params, fc.integer({ min: 0, max: 1e9 }), (p, seed) => {
          const c = buildDenseCase(p, profile, ['inside', 'outside', 'zero']);
          const mask = keepMask(c.inputs.theta, c.inputs.noise, profile, 'dense').data;
          const moved = disturbPruned(c.inputs, mask, seed);
          const movedMask = keepMask(moved.theta, moved.noise, profile, 'dense').data;
          expect(movedMask).toEqual(mask);
          // Exact: the kept terms are the same numbers in the same order, the pruned ones are
          // exact zeros (x * 0 = +-0) in both, and adding +-0 changes no sum.
          expect(
            sameNumbers(denseEval(moved, profile).data, denseEval(c.inputs, profile).data),
          ).toBe(true);
        }),
        { numRuns: 40, seed: 41 },
      );
    },
  );

  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#mask-invariance: %s: eval equals the sum over the kept weights only',
    (_name, profile) => {
      fc.assert(
        fc.property(params, (p) => {
          const c = buildDenseCase(p, profile, ['inside', 'outside', 'zero']);
          const mask = keepMask(c.inputs.theta, c.inputs.noise, profile, 'dense').data;
          if (profile.prune === null) expect(mask.every((m) => m === 1)).toBe(true);
          const dense = denseEval(c.inputs, profile).data;
          const sparse = sparseEval(c.inputs, mask);
          // Two float64 sums of the same terms: each within in * ULP * sum|terms| of the exact
          // value (the standard bound for recursive summation, in <= 6 terms plus the bias).
          const inSize = p.inSize + 1;
          dense.forEach((v, k) => {
            expect(Math.abs(v - sparse.out[k]!)).toBeLessThanOrEqual(
              2 * inSize * ULP * sparse.scale[k]!,
            );
          });
        }),
        { numRuns: 30, seed: 42 },
      );
    },
  );

  it.each(SVD.map((p) => [p.name, p] as const))(
    'spec/dense.md#mask-idempotence: %s: keepMask(theta * mask) = keepMask(theta), down to log_sigma2 = -30',
    (_name, profile) => {
      // Wide inputs: |theta| log-uniform over [1e-6, 2] and log_sigma2 in [-30, 5], so that the
      // thetaEps profiles meet weights whose theta = 0 value log_sigma2 - log(thetaEps) is near 3.
      const wide = fc.record({
        seed: fc.integer({ min: 0, max: 1e9 }),
        inSize: fc.integer({ min: 1, max: 6 }),
        outSize: fc.integer({ min: 1, max: 6 }),
      });
      fc.assert(
        fc.property(wide, ({ seed, inSize, outSize }) => {
          const uniform = mulberry32(seed);
          const n = inSize * outSize;
          const theta: Tensor = {
            shape: [inSize, outSize],
            data: Array.from(
              { length: n },
              () => (uniform() < 0.5 ? -1 : 1) * 2 * Math.pow(1e-6 / 2, uniform()),
            ),
          };
          const noise: Tensor = {
            shape: [inSize, outSize],
            data: Array.from({ length: n }, () => noiseForLogSigma2(-30 + 35 * uniform(), profile)),
          };
          const mask = keepMask(theta, noise, profile, 'dense');
          const zeroed: Tensor = {
            shape: theta.shape,
            data: theta.data.map((t, k) => t * mask.data[k]!),
          };
          const again = keepMask(zeroed, noise, profile, 'dense');
          expect(again.data).toEqual(mask.data);
          // A fixed point: applying it twice changes nothing more.
          const twice: Tensor = {
            shape: theta.shape,
            data: zeroed.data.map((t, k) => t * again.data[k]!),
          };
          expect(sameNumbers(twice.data, zeroed.data)).toBe(true);
        }),
        { numRuns: 60, seed: 43 },
      );
    },
  );

  it.each(
    [...SVD, MASKS_VARIANCE].map(
      (p) => [p === MASKS_VARIANCE ? `${p.name} (mask on variance)` : p.name, p] as const,
    ),
  )(
    'spec/dense.md#mask-invariance: %s: with trainClip on, the training mean ignores pruned weights',
    (_name, profile) => {
      let varianceMoved = 0;
      fc.assert(
        fc.property(params, fc.integer({ min: 0, max: 1e9 }), (p, seed) => {
          const c = buildDenseCase(p, profile, ['inside', 'outside', 'zero']);
          const mask = keepMask(c.inputs.theta, c.inputs.noise, profile, 'dense').data;
          const moved = disturbPruned(c.inputs, mask, seed);
          const before = denseTrain(c.inputs, profile, { trainClip: true });
          const after = denseTrain(moved, profile, { trainClip: true });
          expect(sameNumbers(after.mean.data, before.mean.data)).toBe(true);
          if (profile.dense.trainMask === 'mean_and_variance') {
            expect(sameNumbers(after.variance.data, before.variance.data)).toBe(true);
            expect(sameNumbers(after.output.data, before.output.data)).toBe(true);
          } else if (!sameNumbers(after.variance.data, before.variance.data)) {
            varianceMoved++;
          }
        }),
        { numRuns: 40, seed: 44 },
      );
      // trainMask 'mean' leaves the pruned weights' noise in the variance (the official
      // Theano dense layer): moving them must move the variance in some run.
      if (profile.dense.trainMask === 'mean') expect(varianceMoved).toBeGreaterThan(0);
    },
  );
});
