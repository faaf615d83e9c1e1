/**
 * Properties of spec/dense.md: the dense training forward (local
 * reparameterization) and eval forward of both algorithms, their hand-derived
 * VJPs against finite differences, the exact conventions at theta = 0, beyond
 * the clip, at a clip bound and at the threshold, input validation and the
 * degenerate sizes. Every profile.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SVD_PRUNE_THRESHOLD } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import {
  denseEval,
  denseEvalUnmasked,
  denseEvalVjp,
  denseTrain,
  denseTrainVjp,
  type DenseGradients,
  type DenseTrainCotangent,
  type DenseTrainInputs,
} from '../../src/reference/dense.js';
import { weightStatistics } from '../../src/reference/logAlpha.js';
import type { Tensor } from '../../src/tensor.js';
import {
  absDot,
  buildDenseCase,
  caseParameters,
  dot,
  fivePointDerivative,
  noiseForLogAlpha,
  withEntry,
  type DenseCase,
} from './dense-cases.js';
import { expectSpecBlock } from './spec-blocks.js';
import { expectRefusal, untyped } from './refusals.js';

const ALL = PROFILE_NAMES.map((name) => PROFILES[name]);
const SVD = ALL.filter((p) => p.algorithm === 'svd');
const ULP = Number.EPSILON;

/**
 * A dense profile whose training forward masks the variance too (no built-in
 * profile does so for dense layers; bayesgroup-theano does it for conv2d), so
 * that the 'mean_and_variance' branch is exercised.
 */
const MASKS_VARIANCE: Profile = {
  ...PROFILES['bayesgroup-theano'],
  dense: { ...PROFILES['bayesgroup-theano'].dense, trainMask: 'mean_and_variance' },
};
const WITH_CUSTOM = [...ALL, MASKS_VARIANCE];

type Argument = 'x' | 'theta' | 'noise' | 'bias';
const ARGUMENTS: readonly Argument[] = ['x', 'theta', 'noise', 'bias'];

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

/** L = <g, output> + <g_mean, mean> + <g_var, variance>, and the size of its terms. */
function trainLoss(
  inputs: DenseTrainInputs,
  cot: DenseTrainCotangent,
  profile: Profile,
  trainClip: boolean,
): { value: number; scale: number } {
  const r = denseTrain(inputs, profile, { trainClip });
  let value = dot(cot.output.data, r.output.data);
  let scale = absDot(cot.output.data, r.output.data);
  if (cot.mean) {
    value += dot(cot.mean.data, r.mean.data);
    scale += absDot(cot.mean.data, r.mean.data);
  }
  if (cot.variance) {
    value += dot(cot.variance.data, r.variance.data);
    scale += absDot(cot.variance.data, r.variance.data);
  }
  return { value, scale };
}

/**
 * Finite-difference step and tolerance.
 *
 * Step h = 1e-4 on every input. The cases keep |theta| >= 0.2, |x| >= 0.3 and
 * every raw log_alpha at least 0.05 from the clip bounds and the threshold;
 * moving one input by 2h moves log_alpha by at most 2 * 2h / 0.2 = 2e-3 (4h for
 * log_sigma), so all five points lie on the same smooth piece.
 *
 * Error of the five-point formula: rounding, about 18/12 * ULP * scale / h
 * (scale = the sum of |terms| of L): 1.5 * 2.2e-16 / 1e-4 = 3.3e-12 * scale;
 * plus truncation h^4/30 * |L'''''| = 3.3e-18 * |L'''''|, negligible here
 * (the fifth derivatives are at most a few thousand times the terms: 1/theta^5
 * = 3125 from log(theta^2), the rest exponentials and square roots of
 * variances >= 1e-6). The worst ratio |numeric - analytic| / (scale +
 * |analytic|) measured over every profile is about 3e-12 (the 'measured' case
 * below prints it and fails above FD_TOLERANCE / 10); FD_TOLERANCE = 1e-9
 * leaves a factor of about 300, while a wrong term of a VJP shows up as a ratio
 * of order 1e-3 or more.
 */
const FD_STEP = 1e-4;
const FD_TOLERANCE = 1e-9;

function tensorOf(inputs: DenseTrainInputs, arg: Argument): Tensor {
  return inputs[arg];
}

function replaced(inputs: DenseTrainInputs, arg: Argument, t: Tensor): DenseTrainInputs {
  return { ...inputs, [arg]: t };
}

interface Mismatch {
  arg: Argument;
  k: number;
  analytic: number;
  numeric: number;
  ratio: number;
}

/** Compare every entry of a VJP with the five-point difference of `loss`. */
function worstMismatch(
  inputs: DenseTrainInputs,
  grads: DenseGradients,
  loss: (inputs: DenseTrainInputs) => { value: number; scale: number },
): Mismatch | null {
  let worst: Mismatch | null = null;
  const scale = loss(inputs).scale;
  for (const arg of ARGUMENTS) {
    const base = tensorOf(inputs, arg);
    const analyticAll = grads[arg];
    expect(analyticAll.shape).toEqual(base.shape);
    for (let k = 0; k < base.data.length; k++) {
      const numeric = fivePointDerivative(
        (delta) => loss(replaced(inputs, arg, withEntry(base, k, delta))).value,
        FD_STEP,
      );
      const analytic = analyticAll.data[k]!;
      const ratio = Math.abs(numeric - analytic) / (scale + Math.abs(analytic));
      if (worst === null || ratio > worst.ratio) worst = { arg, k, analytic, numeric, ratio };
    }
  }
  return worst;
}

describe('spec/dense.md#svddensetrain and #vddensetrain: forward', () => {
  it.each(
    WITH_CUSTOM.map(
      (p) => [p.name + (p === MASKS_VARIANCE ? ' (mask on variance)' : ''), p] as const,
    ),
  )(
    'spec/dense.md#shapes: %s: shapes, bias never in the variance, eps = 0 gives the mean',
    (_name, profile) => {
      fc.assert(
        fc.property(caseParameters(), fc.boolean(), (params, trainClip) => {
          const c = buildDenseCase(params, profile, ['inside', 'outside', 'zero']);
          const r = denseTrain(c.inputs, profile, { trainClip });
          const outShape = [params.batch, params.outSize];
          expect(r.mean.shape).toEqual(outShape);
          expect(r.variance.shape).toEqual(outShape);
          expect(r.output.shape).toEqual(outShape);
          // A bias inside the variance (a known bug) would move it: it must not.
          const otherBias = { ...c.inputs.bias, data: c.inputs.bias.data.map((b) => b + 3) };
          const r2 = denseTrain({ ...c.inputs, bias: otherBias }, profile, { trainClip });
          expect(r2.variance.data).toEqual(r.variance.data);
          r2.mean.data.forEach((m, k) => {
            // mean' - mean = 3 up to one rounding of each sum (|mean| + 3 in ulps).
            expect(Math.abs(m - r.mean.data[k]! - 3)).toBeLessThanOrEqual(
              4 * ULP * (Math.abs(m) + 3),
            );
          });
          // The variance never includes sqrtEps and is never negative.
          for (const v of r.variance.data) expect(v).toBeGreaterThanOrEqual(0);
          const zeroEps = { ...c.inputs.eps, data: c.inputs.eps.data.map(() => 0) };
          const r0 = denseTrain({ ...c.inputs, eps: zeroEps }, profile, { trainClip });
          expect(r0.output.data).toEqual(r0.mean.data);
          // output = mean + sqrt(variance + sqrtEps) * eps, entry by entry.
          r.output.data.forEach((o, k) => {
            const expected =
              r.mean.data[k]! +
              Math.sqrt(r.variance.data[k]! + profile.sqrtEps) * c.inputs.eps.data[k]!;
            expect(o).toBe(expected);
          });
        }),
        { numRuns: 25, seed: 11 },
      );
    },
  );

  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#svddenseeval: %s: eval equals the training mean with trainClip on',
    (_name, profile) => {
      fc.assert(
        fc.property(caseParameters(), (params) => {
          const c = buildDenseCase(params, profile, ['inside', 'outside', 'zero']);
          const evalOut = denseEval(c.inputs, profile);
          const train = denseTrain(c.inputs, profile, { trainClip: true });
          expect(evalOut.shape).toEqual(train.mean.shape);
          expect(evalOut.data).toEqual(train.mean.data);
          if (profile.prune === null) {
            // VD has no mask: the training mean never depends on trainClip.
            const off = denseTrain(c.inputs, profile, { trainClip: false });
            expect(off.mean.data).toEqual(evalOut.data);
          }
        }),
        { numRuns: 20, seed: 12 },
      );
    },
  );

  it('spec/dense.md#train-clip: trainClip defaults to profile.trainClipDefault', () => {
    for (const profile of ALL) {
      const c = buildDenseCase(
        { seed: 5, batch: 2, inSize: 4, outSize: 3, layout: 'per-weight' },
        profile,
        ['inside', 'zero'],
      );
      const byDefault = denseTrain(c.inputs, profile);
      const explicit = denseTrain(c.inputs, profile, { trainClip: profile.trainClipDefault });
      expect(byDefault).toEqual(explicit);
      expect(denseTrain(c.inputs, profile, {})).toEqual(explicit);
    }
    // A pruned weight with theta != 0 (raw log_alpha 5 > 3): the two settings must differ for SVD.
    for (const profile of SVD) {
      const theta = [1.5, -0.5];
      const inputs: DenseTrainInputs = {
        x: { shape: [1, 2], data: [1, 1] },
        theta: { shape: [2, 1], data: theta },
        noise: {
          shape: [2, 1],
          data: [noiseForLogAlpha(theta[0]!, 5, profile), noiseForLogAlpha(theta[1]!, -2, profile)],
        },
        bias: { shape: [1], data: [0] },
        eps: { shape: [1, 1], data: [0] },
      };
      expect(denseTrain(inputs, profile, { trainClip: true }).mean.data[0]).toBeCloseTo(-0.5, 15);
      expect(denseTrain(inputs, profile, { trainClip: false }).mean.data[0]).toBeCloseTo(1, 15);
    }
  });

  it('spec/dense.md#what-the-properties-check: the test layers have the raw log_alpha they were built for', () => {
    for (const profile of ALL) {
      fc.assert(
        fc.property(caseParameters(), (params) => {
          const c = buildDenseCase(params, profile, ['inside', 'outside']);
          const s = weightStatistics(c.inputs.theta, c.inputs.noise, profile, 'dense');
          // noise = target + log(theta^2 + eps), then raw = noise - log(...): two roundings of
          // numbers below 30 in size, so 4 ulps of 32 is ample.
          s.logAlphaRaw.forEach((raw, k) => {
            expect(Math.abs(raw - c.targetLogAlpha[k]!)).toBeLessThanOrEqual(32 * 4 * ULP);
          });
        }),
        { numRuns: 10, seed: 13 },
      );
    }
  });
});

describe('spec/dense.md#dense-vjps: hand-derived VJPs against finite differences', () => {
  it.each(
    WITH_CUSTOM.map(
      (p) => [p.name + (p === MASKS_VARIANCE ? ' (mask on variance)' : ''), p] as const,
    ),
  )(
    'spec/dense.md#vjp-train: %s: denseTrainVjp matches five-point differences (inside, beyond the clip, theta = 0)',
    (_name, profile) => {
      fc.assert(
        fc.property(
          caseParameters(),
          fc.boolean(),
          fc.boolean(),
          (params, trainClip, allCotangents) => {
            const c = buildDenseCase(params, profile, ['inside', 'outside', 'zero']);
            const cot: DenseTrainCotangent = allCotangents
              ? c.cotangent
              : { output: c.cotangent.output };
            const grads = denseTrainVjp(c.inputs, cot, profile, { trainClip });
            for (const arg of ARGUMENTS) {
              for (const v of grads[arg].data) expect(Number.isFinite(v)).toBe(true);
            }
            const worst = worstMismatch(c.inputs, grads, (inputs) =>
              trainLoss(inputs, cot, profile, trainClip),
            );
            expect(worst === null || worst.ratio <= FD_TOLERANCE, JSON.stringify(worst)).toBe(true);
          },
        ),
        { numRuns: 15, seed: 21 },
      );
    },
  );

  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#vjp-eval: %s: denseEvalVjp matches five-point differences; noise gradient 0',
    (_name, profile) => {
      fc.assert(
        fc.property(caseParameters(), (params) => {
          const c = buildDenseCase(params, profile, ['inside', 'outside', 'zero']);
          const g = c.cotangent.output;
          const grads = denseEvalVjp(c.inputs, g, profile);
          for (const v of grads.noise.data) expect(v).toBe(0);
          expect(grads.noise.shape).toEqual(c.inputs.noise.shape);
          const loss = (inputs: DenseTrainInputs) => {
            const out = denseEval(inputs, profile);
            return { value: dot(g.data, out.data), scale: absDot(g.data, out.data) };
          };
          const worst = worstMismatch(c.inputs, grads, loss);
          expect(worst === null || worst.ratio <= FD_TOLERANCE, JSON.stringify(worst)).toBe(true);
        }),
        { numRuns: 15, seed: 21 },
      );
    },
  );

  it('spec/dense.md#vjp-train: measured finite-difference agreement (worst ratio, for the tolerance comment)', () => {
    let worst = 0;
    for (const profile of WITH_CUSTOM) {
      for (let seed = 0; seed < 4; seed++) {
        const c = buildDenseCase(
          { seed: 1000 + seed, batch: 3, inSize: 4, outSize: 3, layout: 'per-weight' },
          profile,
          ['inside', 'outside', 'zero'],
        );
        const grads = denseTrainVjp(c.inputs, c.cotangent, profile, { trainClip: seed % 2 === 0 });
        const m = worstMismatch(c.inputs, grads, (inputs) =>
          trainLoss(inputs, c.cotangent, profile, seed % 2 === 0),
        );
        worst = Math.max(worst, m?.ratio ?? 0);
      }
    }
    console.log(`dense VJP vs five-point differences: worst ratio ${worst.toExponential(2)}`);
    // A wrong VJP is off by O(1) relative; this pins that the agreement is far below the tolerance.
    expect(worst).toBeLessThanOrEqual(FD_TOLERANCE / 10);
  });
});

/** x^T g for one weight (i, j), summed in a plain loop. */
function xTg(x: Tensor, g: Tensor, i: number, j: number): { value: number; scale: number } {
  const [batch, inSize] = x.shape as [number, number];
  const outSize = g.shape[1]!;
  let value = 0;
  let scale = 0;
  for (let b = 0; b < batch; b++) {
    value += x.data[b * inSize + i]! * g.data[b * outSize + j]!;
    scale += Math.abs(x.data[b * inSize + i]! * g.data[b * outSize + j]!);
  }
  return { value, scale };
}

/** d L / d s2_m(i, j) = sum_b x_bi^2 * g_bj * eps_bj / (2 sqrt(variance_bj + sqrtEps)). */
function varianceCotangent(
  c: DenseCase,
  profile: Profile,
  trainClip: boolean,
  i: number,
  j: number,
) {
  const { x, eps } = c.inputs;
  const g = c.cotangent.output;
  const r = denseTrain(c.inputs, profile, { trainClip });
  const [batch, inSize] = x.shape as [number, number];
  const outSize = g.shape[1]!;
  let value = 0;
  for (let b = 0; b < batch; b++) {
    const k = b * outSize + j;
    const xi = x.data[b * inSize + i]!;
    value +=
      (xi * xi * g.data[k]! * eps.data[k]!) /
      (2 * Math.sqrt(r.variance.data[k]! + profile.sqrtEps));
  }
  return value;
}

describe('spec/dense.md#edge-cases: exact conventions', () => {
  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#theta--0: %s: at theta = 0 every gradient is finite and equals the spec value',
    (_name, profile) => {
      fc.assert(
        fc.property(caseParameters(), fc.boolean(), (params, trainClip) => {
          const c = buildDenseCase({ ...params, layout: 'per-weight' }, profile, [
            'zero',
            'inside',
          ]);
          const cot = { output: c.cotangent.output };
          const grads = denseTrainVjp(c.inputs, cot, profile, { trainClip });
          const s = weightStatistics(c.inputs.theta, c.inputs.noise, profile, 'dense');
          const outSize = params.outSize;
          c.regions.forEach((region, k) => {
            if (region !== 'zero') return;
            const i = Math.floor(k / outSize);
            const j = k % outSize;
            const m = trainClip ? s.mask[k]! : 1;
            // d variance / d theta = 2 * alpha * theta = 0 at theta = 0: theta's gradient is the mean path only.
            const mean = xTg(c.inputs.x, c.cotangent.output, i, j);
            expect(Math.abs(grads.theta.data[k]! - m * mean.value)).toBeLessThanOrEqual(
              4 * ULP * mean.scale,
            );
            if (profile.algorithm === 'svd') {
              // Raw log_alpha >= 12 > every clip max: pruned.
              expect(s.mask[k]).toBe(0);
            }
            if (profile.dense.variance !== 'sigma2') {
              // s2 = exp(log_alpha) * 0, or exp(clip max) * eps (sigma2_rebuilt): no dependence on
              // the noise parameter (SVD: clip active too).
              expect(grads.noise.data[k]).toBe(0);
            } else {
              // sigma2: s2 = exp(log_sigma2) whatever theta is; d s2 / d noise = (1 or 2) * s2.
              const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
              const expected =
                varianceCotangent(c, profile, trainClip, i, j) * scale * s.variance[k]!;
              expect(Math.abs(grads.noise.data[k]! - expected)).toBeLessThanOrEqual(
                1e-12 * Math.abs(expected) + 1e-300,
              );
            }
          });
        }),
        { numRuns: 20, seed: 31 },
      );
    },
  );

  it('spec/dense.md#theta--0: subnormal theta, theta^2 underflowing: finite gradients, zero noise gradient', () => {
    for (const profile of SVD.filter((p) => p.dense.variance === 'alpha_theta2')) {
      for (const theta of [0, -0, 5e-324, -1e-310, 1e-160]) {
        const inputs: DenseTrainInputs = {
          x: { shape: [2, 1], data: [0.7, -1.3] },
          theta: { shape: [1, 1], data: [theta] },
          noise: { shape: [1, 1], data: [-10] },
          bias: { shape: [1], data: [0.1] },
          eps: { shape: [2, 1], data: [0.4, -2] },
        };
        const cot = { output: { shape: [2, 1], data: [1, 1] } };
        for (const trainClip of [false, true]) {
          const grads = denseTrainVjp(inputs, cot, profile, { trainClip });
          for (const arg of ARGUMENTS) {
            for (const v of grads[arg].data) expect(Number.isFinite(v)).toBe(true);
          }
          expect(grads.noise.data[0]).toBe(0);
          // Mean path: 0.7 - 1.3 unmasked, 0 when the (pruned) weight is masked.
          const meanPath = trainClip ? 0 : 0.7 - 1.3;
          expect(Math.abs(grads.theta.data[0]! - meanPath)).toBeLessThanOrEqual(1e-12);
        }
      }
    }
  });

  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#beyond-the-clip: %s: beyond the clip the noise gradient is exactly 0 (alpha_theta2, sigma2_rebuilt)',
    (_name, profile) => {
      fc.assert(
        fc.property(caseParameters(), fc.boolean(), (params, trainClip) => {
          const c = buildDenseCase({ ...params, layout: 'per-weight' }, profile, ['outside']);
          const grads = denseTrainVjp(c.inputs, { output: c.cotangent.output }, profile, {
            trainClip,
          });
          if (profile.dense.variance !== 'sigma2') {
            for (const v of grads.noise.data) expect(v).toBe(0);
          } else {
            // sigma2 = exp(log_sigma2) is never clipped: the noise keeps its gradient.
            expect(grads.noise.data.some((v) => v !== 0)).toBe(true);
          }
        }),
        { numRuns: 10, seed: 32 },
      );
    },
  );

  it('spec/dense.md#at-a-clip-bound: at exactly a bound the gradient passes (inclusive clip)', () => {
    const cases: [Profile, number, number][] = [
      // molchanov2017: theta = 1, log_sigma2 = 8 gives log_alpha = 8 - log(1) = 8 exactly.
      [PROFILES.molchanov2017, 1, 8],
      [PROFILES.molchanov2017, -1, -8],
      // kingma2015: log_alpha = 0 = VD_LOG_ALPHA_MAX exactly.
      [PROFILES.kingma2015, 0.6, 0],
    ];
    for (const [profile, theta, noise] of cases) {
      const c: DenseCase = {
        inputs: {
          x: { shape: [2, 1], data: [0.8, -1.1] },
          theta: { shape: [1, 1], data: [theta] },
          noise: { shape: [1, 1], data: [noise] },
          bias: { shape: [1], data: [0] },
          eps: { shape: [2, 1], data: [1.3, 0.4] },
        },
        cotangent: {
          output: { shape: [2, 1], data: [0.9, -0.5] },
          mean: { shape: [2, 1], data: [0, 0] },
          variance: { shape: [2, 1], data: [0, 0] },
        },
        targetLogAlpha: [noise],
        regions: ['inside'],
      };
      const s = weightStatistics(c.inputs.theta, c.inputs.noise, profile, 'dense');
      expect(s.logAlphaRaw[0]).toBe(s.logAlpha[0]); // exactly on the bound
      const grads = denseTrainVjp(c.inputs, { output: c.cotangent.output }, profile, {
        trainClip: false,
      });
      // d s2 / d noise = s2 * 1 on the closed interval; an exclusive clip would give 0.
      const expected = varianceCotangent(c, profile, false, 0, 0) * s.variance[0]!;
      expect(expected).not.toBe(0);
      expect(Math.abs(grads.noise.data[0]! - expected)).toBeLessThanOrEqual(
        1e-12 * Math.abs(expected),
      );
    }
  });

  it('spec/dense.md#at-the-threshold: log_alpha exactly 3 is kept by ">" profiles, pruned by ">=" ones', () => {
    // theta = 1 and log_sigma2 = 3: log_alpha = 3 - log(1) = 3 exactly where thetaEps = 0.
    for (const profile of SVD.filter(
      (p) => p.dense.logAlpha.thetaEps === 0 && p.noiseParameter === 'log_sigma2',
    )) {
      const inputs = {
        x: { shape: [1, 1], data: [2] },
        theta: { shape: [1, 1], data: [1] },
        noise: { shape: [1, 1], data: [SVD_PRUNE_THRESHOLD] },
        bias: { shape: [1], data: [0.5] },
      };
      const kept = profile.prune!.comparison === '>';
      expect(denseEval(inputs, profile).data).toEqual([kept ? 2.5 : 0.5]);
      const grads = denseEvalVjp(inputs, { shape: [1, 1], data: [1] }, profile);
      expect(grads.theta.data).toEqual([kept ? 2 : 0]);
      expect(grads.x.data).toEqual([kept ? 1 : 0]);
      expect(grads.noise.data).toEqual([0]);
    }
  });
});

describe('spec/dense.md#errors: bad inputs name the argument', () => {
  const good = (profile: Profile) =>
    buildDenseCase({ seed: 3, batch: 2, inSize: 3, outSize: 2, layout: 'per-weight' }, profile);

  it.each(ALL.map((p) => [p.name, p] as const))('spec/dense.md#errors: %s', (_name, profile) => {
    const c = good(profile);
    const noiseName = profile.noiseParameter;
    const nan = (t: Tensor, k = 0) => ({
      shape: t.shape,
      data: t.data.map((v, i) => (i === k ? NaN : v)),
    });
    const inf = (t: Tensor, k = 0) => ({
      shape: t.shape,
      data: t.data.map((v, i) => (i === k ? Infinity : v)),
    });
    const bad: [string, DenseTrainInputs | Record<string, unknown>][] = [
      ['x', { ...c.inputs, x: { shape: [6], data: c.inputs.x.data } }],
      ['x', { ...c.inputs, x: nan(c.inputs.x, 4) }],
      ['x', { ...c.inputs, x: inf(c.inputs.x) }],
      ['x', { ...c.inputs, x: undefined }],
      ['theta', { ...c.inputs, theta: { shape: [2, 3], data: c.inputs.theta.data } }],
      ['theta', { ...c.inputs, theta: nan(c.inputs.theta, 5) }],
      ['theta', { ...c.inputs, theta: { shape: [3, 2], data: [1, 2, 3] } }],
      [noiseName, { ...c.inputs, noise: nan(c.inputs.noise) }],
      [noiseName, { ...c.inputs, noise: inf(c.inputs.noise) }],
      [noiseName, { ...c.inputs, noise: { shape: [2, 3], data: c.inputs.noise.data } }],
      ['bias', { ...c.inputs, bias: { shape: [3], data: [0, 0, 0] } }],
      ['bias', { ...c.inputs, bias: { shape: [1, 2], data: [0, 0] } }],
      ['bias', { ...c.inputs, bias: nan(c.inputs.bias) }],
      ['eps', { ...c.inputs, eps: { shape: [2, 3], data: [0, 0, 0, 0, 0, 0] } }],
      ['eps', { ...c.inputs, eps: nan(c.inputs.eps, 3) }],
      ['eps', { ...c.inputs, eps: undefined }],
    ];
    for (const [argument, inputs] of bad) {
      const e = thrown(() => denseTrain(inputs as DenseTrainInputs, profile));
      expect(isVdspecError(e), String(e)).toBe(true);
      expect((e as { argument?: string }).argument).toBe(argument);
      const ev = thrown(() => denseTrainVjp(inputs as DenseTrainInputs, c.cotangent, profile));
      expect((ev as { argument?: string }).argument).toBe(argument);
      if (argument !== 'eps') {
        const e2 = thrown(() => denseEval(inputs as DenseTrainInputs, profile));
        expect((e2 as { argument?: string }).argument).toBe(argument);
      }
    }
    const argumentOf = (f: () => unknown) => (thrown(f) as { argument?: string }).argument;
    expect(argumentOf(() => denseTrain(null as unknown as DenseTrainInputs, profile))).toBe(
      'inputs',
    );
    expect(
      argumentOf(() =>
        denseTrain(c.inputs, profile, { trainClip: 'yes' } as unknown as { trainClip: boolean }),
      ),
    ).toBe('options.trainClip');
    expect(argumentOf(() => denseTrain(c.inputs, 'no-such-profile' as 'molchanov2017'))).toBe(
      'profile',
    );
    const badCot = { output: { shape: [2, 3], data: [0, 0, 0, 0, 0, 0] } };
    expect(argumentOf(() => denseTrainVjp(c.inputs, badCot, profile))).toBe('cotangent.output');
    expect(
      argumentOf(() =>
        denseTrainVjp(c.inputs, { ...c.cotangent, mean: nan(c.cotangent.mean) }, profile),
      ),
    ).toBe('cotangent.mean');
    expect(
      argumentOf(() =>
        denseTrainVjp(c.inputs, { ...c.cotangent, variance: inf(c.cotangent.variance) }, profile),
      ),
    ).toBe('cotangent.variance');
    expect(argumentOf(() => denseEvalVjp(c.inputs, nan(c.cotangent.output), profile))).toBe(
      'cotangent',
    );
  });

  it('spec/dense.md#errors: a per-weight variance beyond float64 is rejected, naming the parameter', () => {
    // sigma2 profiles: exp(log_sigma2) overflows for log_sigma2 > 709.78.
    const profile = PROFILES['state-of-sparsity-nn'];
    const inputs = {
      x: { shape: [1, 1], data: [1] },
      theta: { shape: [1, 1], data: [1] },
      noise: { shape: [1, 1], data: [800] },
      bias: { shape: [1], data: [0] },
      eps: { shape: [1, 1], data: [0] },
    };
    const e = thrown(() => denseTrain(inputs, profile));
    expect((e as { code?: string }).code).toBe('non_finite');
    expect((e as { argument?: string }).argument).toBe('log_sigma2');
    // The eval forward does not use the variance: it still answers (the weight is pruned).
    expect(denseEval(inputs, profile).data).toEqual([0]);
    // theta^2 overflows: named theta.
    const huge = {
      ...inputs,
      theta: { shape: [1, 1], data: [1e300] },
      noise: { shape: [1, 1], data: [-1] },
    };
    expect(
      (thrown(() => denseTrain(huge, PROFILES.kingma2015)) as { argument?: string }).argument,
    ).toBe('theta');
  });
});

describe('spec/dense.md#degenerate-sizes: empty batch, in or out', () => {
  it.each(ALL.map((p) => [p.name, p] as const))(
    'spec/dense.md#degenerate-sizes: %s',
    (_name, profile) => {
      for (const [batch, inSize, outSize] of [
        [0, 3, 2],
        [2, 0, 2],
        [2, 3, 0],
        [0, 0, 0],
      ] as const) {
        const sized = (shape: number[], value: number): Tensor => ({
          shape,
          data: new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(value),
        });
        const inputs: DenseTrainInputs = {
          x: sized([batch, inSize], 0.5),
          theta: sized([inSize, outSize], 0.7),
          noise: sized([inSize, outSize], profile.algorithm === 'vd' ? -1 : -2),
          bias: { shape: [outSize], data: Array.from({ length: outSize }, (_, j) => j + 1) },
          eps: sized([batch, outSize], 2),
        };
        const r = denseTrain(inputs, profile);
        expect(r.output.shape).toEqual([batch, outSize]);
        // in = 0: an empty sum is 0, so mean = b, variance = 0, output = b + sqrt(sqrtEps) * eps.
        for (let k = 0; k < batch * outSize; k++) {
          const j = k % outSize;
          if (inSize === 0) {
            expect(r.mean.data[k]).toBe(j + 1);
            expect(r.variance.data[k]).toBe(0);
            expect(r.output.data[k]).toBe(j + 1 + Math.sqrt(profile.sqrtEps) * 2);
          }
        }
        const cot = { output: sized([batch, outSize], 1) };
        const g = denseTrainVjp(inputs, cot, profile);
        expect(g.x.shape).toEqual([batch, inSize]);
        expect(g.theta.shape).toEqual([inSize, outSize]);
        expect(g.noise.shape).toEqual([inSize, outSize]);
        expect(g.bias.shape).toEqual([outSize]);
        // d/d bias = sum over the batch of the cotangent: batch, or 0 for an empty batch.
        for (const v of g.bias.data) expect(v).toBe(batch);
        if (batch === 0) for (const v of [...g.theta.data, ...g.noise.data]) expect(v).toBe(0);
        const ge = denseEvalVjp(inputs, cot.output, profile);
        expect(ge.x.shape).toEqual([batch, inSize]);
        expect(denseEval(inputs, profile).shape).toEqual([batch, outSize]);
      }
    },
  );
});

// ---------------------------------------------------------------------------
// The worked example of spec/dense.md, regenerated from the reference.

/** A [rows, cols] tensor as nested JSON (numbers in JavaScript's shortest round-trip form). */
function nested(t: Tensor): string {
  if (t.shape.length === 0) return String(t.data[0]);
  if (t.shape.length === 1) return JSON.stringify(t.data);
  const cols = t.shape[1]!;
  const rows = Array.from({ length: t.shape[0]! }, (_, r) =>
    t.data.slice(r * cols, (r + 1) * cols),
  );
  return JSON.stringify(rows);
}

function workedExample(profile: Profile, inputs: DenseTrainInputs, cotangent: Tensor): string {
  const name = profile.noiseParameter;
  const s = weightStatistics(inputs.theta, inputs.noise, profile, 'dense');
  const weights = (data: number[]) => nested({ shape: inputs.theta.shape, data });
  const lines = [
    `profile = ${profile.name}`,
    `x = ${nested(inputs.x)}`,
    `theta = ${nested(inputs.theta)}`,
    `${name} = ${nested(inputs.noise)}   (shape [${inputs.noise.shape.join(', ')}])`,
    `bias = ${nested(inputs.bias)}`,
    `eps = ${nested(inputs.eps)}`,
    '',
    `log_alpha (clipped, per weight) = ${weights(s.logAlpha)}`,
    `mask = ${weights(s.mask)}`,
    `s2 = ${weights(s.variance)}`,
  ];
  for (const trainClip of [false, true]) {
    const r = denseTrain(inputs, profile, { trainClip });
    const tag = `trainClip ${trainClip ? 'on' : 'off'}`;
    lines.push(
      '',
      `${tag}: mean = ${nested(r.mean)}`,
      `${tag}: variance = ${nested(r.variance)}`,
      `${tag}: output = ${nested(r.output)}`,
    );
  }
  lines.push('', `eval: output = ${nested(denseEval(inputs, profile))}`);
  lines.push('', `cotangent (d L / d output) = ${nested(cotangent)}`);
  for (const trainClip of [false, true]) {
    const g = denseTrainVjp(inputs, { output: cotangent }, profile, { trainClip });
    const tag = `train VJP, trainClip ${trainClip ? 'on' : 'off'}`;
    lines.push(
      '',
      `${tag}: d x = ${nested(g.x)}`,
      `${tag}: d theta = ${nested(g.theta)}`,
      `${tag}: d ${name} = ${nested(g.noise)}`,
      `${tag}: d bias = ${nested(g.bias)}`,
    );
  }
  const e = denseEvalVjp(inputs, cotangent, profile);
  lines.push(
    '',
    `eval VJP: d x = ${nested(e.x)}`,
    `eval VJP: d theta = ${nested(e.theta)}`,
    `eval VJP: d ${name} = ${nested(e.noise)}`,
    `eval VJP: d bias = ${nested(e.bias)}`,
  );
  return lines.join('\n');
}

export function workedExamplesText(): string {
  const common = {
    x: { shape: [1, 2], data: [1, -2] },
    theta: { shape: [2, 3], data: [0.5, 0.2, 0, -1, 2, 1] },
    bias: { shape: [3], data: [0.1, -0.2, 0.3] },
    eps: { shape: [1, 3], data: [0.5, -1, 2] },
  };
  const cotangent = { shape: [1, 3], data: [1, 1, 1] };
  const svd = workedExample(
    PROFILES.molchanov2017,
    { ...common, noise: { shape: [2, 3], data: [-3, 1, -10, 3, 1, 9] } },
    cotangent,
  );
  const vd = workedExample(
    PROFILES.kingma2015,
    { ...common, noise: { shape: [2, 1], data: [-1, 0.5] } },
    cotangent,
  );
  return ['```text', svd, '```', '', '```text', vd, '```'].join('\n');
}

describe('spec/dense.md#worked-example', () => {
  it('spec/dense.md#worked-example: the page shows what the reference computes', () => {
    expectSpecBlock('dense.md', 'dense-worked-example', workedExamplesText());
  });
});

// ---------------------------------------------------------------------------
// Written for the survivors of a Stryker run on src/reference/dense.ts (spec/mutation.md).

/** One input, one output: x [1, 1], theta [1, 1], noise [1, 1], bias [1], eps [1, 1]. */
function oneWeight(x: number, theta: number, noise: number, eps = 0): DenseTrainInputs {
  return {
    x: { shape: [1, 1], data: [x] },
    theta: { shape: [1, 1], data: [theta] },
    noise: { shape: [1, 1], data: [noise] },
    bias: { shape: [1], data: [0] },
    eps: { shape: [1, 1], data: [eps] },
  };
}

const TOO_LARGE = 'the inputs are too large for float64';

describe('spec/dense.md#errors: checks and messages', () => {
  const profile = PROFILES.molchanov2017;
  const inputs = oneWeight(0.5, 0.3, -4);
  const cotangent = { output: { shape: [1, 1], data: [1] } };

  it('the inputs, options and cotangent objects', () => {
    // A number or a string, not only null: `typeof` alone must refuse what is not an object.
    for (const notObject of [7, null, 'x']) {
      const message = 'expected an object {x, theta, noise, bias, ...}';
      expectRefusal(
        () => denseTrain(untyped(notObject), profile),
        'invalid_argument',
        'inputs',
        message,
      );
      expectRefusal(
        () => denseEval(untyped(notObject), profile),
        'invalid_argument',
        'inputs',
        message,
      );
    }
    // 7 would otherwise read as {} (7.trainClip is undefined) and take the default; null would be
    // dereferenced (a TypeError).
    for (const options of [7, null, 'trainClip']) {
      const message = 'expected an object {trainClip?}';
      expectRefusal(
        () => denseTrain(inputs, profile, untyped(options)),
        'invalid_argument',
        'options',
        message,
      );
      expectRefusal(
        () => denseTrainVjp(inputs, cotangent, profile, untyped(options)),
        'invalid_argument',
        'options',
        message,
      );
    }
    expectRefusal(
      () => denseTrain(inputs, profile, untyped({ trainClip: 'yes' })),
      'invalid_argument',
      'options.trainClip',
      'expected a boolean, got yes',
    );
    // 7 would otherwise be refused as a missing cotangent.output; null would be dereferenced.
    for (const notObject of [7, null]) {
      expectRefusal(
        () => denseTrainVjp(inputs, untyped(notObject), profile),
        'invalid_argument',
        'cotangent',
        'expected an object {output, mean?, variance?}',
      );
    }
  });

  it('a negative profile.sqrtEps, even where the forward never reads it', () => {
    const negative: Profile = { ...PROFILES.kingma2015, sqrtEps: -1e-8 };
    const vdInputs = oneWeight(0.5, 0.3, -1);
    for (const run of [
      () => denseEval(vdInputs, negative),
      () => denseTrain(vdInputs, negative),
      () => denseTrainVjp(vdInputs, cotangent, negative),
    ]) {
      expectRefusal(run, 'invalid_argument', 'profile.sqrtEps', 'must be >= 0, got -1e-8');
    }
  });

  it('spec/dense.md#overflow: a per-weight variance beyond float64 names the weight', () => {
    // Weight [0, 1]: exp(800) overflows; theta^2 = 1 does not, so log_sigma2 is at fault.
    const overflowing: DenseTrainInputs = {
      x: { shape: [1, 1], data: [1] },
      theta: { shape: [1, 2], data: [1, 1] },
      noise: { shape: [1, 2], data: [0, 800] },
      bias: { shape: [2], data: [0, 0] },
      eps: { shape: [1, 2], data: [0, 0] },
    };
    expectRefusal(
      () => denseTrain(overflowing, PROFILES['state-of-sparsity-nn']),
      'non_finite',
      'log_sigma2',
      'the variance of weight [0, 1] overflows float64 (Infinity)',
    );
  });
});

describe('spec/dense.md#overflow: a result beyond float64 is non_finite and names no argument', () => {
  const vd = PROFILES.kingma2015;

  it('the training forward: the mean, then the variance, then the output', () => {
    // x theta = 1e310; s2 = e^-1 * 1e20 is finite.
    expectRefusal(
      () => denseTrain(oneWeight(1e300, 1e10, -1), vd),
      'non_finite',
      undefined,
      `the mean is Infinity: ${TOO_LARGE}`,
    );
    // mean = 1e200 is finite; x^2 = 1e400 is not.
    expectRefusal(
      () => denseTrain(oneWeight(1e200, 1, -1), vd),
      'non_finite',
      undefined,
      `the variance is Infinity: ${TOO_LARGE}`,
    );
    // alpha = 1: mean 1e150 and variance 1e300 are finite; sqrt(1e300) * 1e300 is not.
    expectRefusal(
      () => denseTrain(oneWeight(1e150, 1, 0, 1e300), vd),
      'non_finite',
      undefined,
      `the output is Infinity: ${TOO_LARGE}`,
    );
  });

  it('the eval forwards', () => {
    const message = `the output is Infinity: ${TOO_LARGE}`;
    expectRefusal(
      () => denseEval(oneWeight(1e300, 1e10, -1), vd),
      'non_finite',
      undefined,
      message,
    );
    // molchanov2017: log_alpha = 0 - log(1e20), kept; the unmasked forward ignores the mask anyway.
    expectRefusal(
      () => denseEvalUnmasked(oneWeight(1e300, 1e10, 0), PROFILES.molchanov2017),
      'non_finite',
      undefined,
      message,
    );
  });

  it('the gradients, each alone beyond float64', () => {
    const big = (g: number[]) => ({ output: { shape: [g.length, 1], data: g } });
    // With oneWeight's eps = 0 the variance path carries no gradient, so only the mean path's
    // products can overflow: here dx = g theta = 1e310.
    expectRefusal(
      () => denseTrainVjp(oneWeight(1, 1e10, -1), big([1e300]), vd),
      'non_finite',
      undefined,
      `the gradient w.r.t. x is Infinity: ${TOO_LARGE}`,
    );
    expectRefusal(
      () => denseEvalVjp(oneWeight(1, 1e10, -1), big([1e300]).output, vd),
      'non_finite',
      undefined,
      `the gradient w.r.t. x is Infinity: ${TOO_LARGE}`,
    );
    // dx = g theta = 1e300 is finite; dtheta = x g = 1e310 is not.
    expectRefusal(
      () => denseTrainVjp(oneWeight(1e10, 1, -1), big([1e300]), vd),
      'non_finite',
      undefined,
      `the gradient w.r.t. theta is Infinity: ${TOO_LARGE}`,
    );
    // sigma2 = 1, std = x = 1e150, g eps / (2 std) = 5e9: dx = 1e10 + 2 x 5e9 = 1e160 and
    // dtheta = x g = 1e160 are finite, d log_sigma2 = x^2 5e9 sigma2 = 5e309 is not.
    expectRefusal(
      () =>
        denseTrainVjp(oneWeight(1e150, 1, 0, 1e150), big([1e10]), PROFILES['state-of-sparsity-nn']),
      'non_finite',
      undefined,
      `the gradient w.r.t. log_sigma2 is Infinity: ${TOO_LARGE}`,
    );
    // Two rows: dx = 1e307 each, dtheta = 2 * 0.25e308 = 5e307; d bias = 2e308 is beyond float64.
    const twoRows: DenseTrainInputs = {
      ...oneWeight(0.25, 0.1, -1),
      x: { shape: [2, 1], data: [0.25, 0.25] },
      eps: { shape: [2, 1], data: [0, 0] },
    };
    expectRefusal(
      () => denseTrainVjp(twoRows, big([1e308, 1e308]), vd),
      'non_finite',
      undefined,
      `the gradient w.r.t. bias is Infinity: ${TOO_LARGE}`,
    );
  });
});

describe('spec/dense.md: the branches at their edges', () => {
  it('spec/dense.md#overflow: a weight masked out of the variance contributes 0, even where its variance overflows', () => {
    // state-of-sparsity-nn (s2 = exp(log_sigma2)) with the mask on the variance too, trainClip on.
    const profile: Profile = {
      ...PROFILES['state-of-sparsity-nn'],
      dense: { ...PROFILES['state-of-sparsity-nn'].dense, trainMask: 'mean_and_variance' },
    };
    // Weight 0: log_alpha ~ 800 - log 2.25, pruned, s2 = exp(800) = inf. Weight 1: log_alpha =
    // -2 - log(0.25 + 1e-8) ~ -0.61, kept, s2 = e^-2.
    const inputs: DenseTrainInputs = {
      x: { shape: [1, 2], data: [2, 3] },
      theta: { shape: [2, 1], data: [1.5, 0.5] },
      noise: { shape: [2, 1], data: [800, -2] },
      bias: { shape: [1], data: [0.25] },
      eps: { shape: [1, 1], data: [0.5] },
    };
    const s2 = Math.exp(-2);
    const variance = 9 * s2;
    const std = Math.sqrt(variance + 1e-8); // the profile's sqrtEps
    const r = denseTrain(inputs, profile, { trainClip: true });
    expect(r.mean.data).toEqual([1.75]);
    expect(r.variance.data[0]).toBeCloseTo(variance, 15);
    expect(r.output.data[0]).toBeCloseTo(1.75 + std * 0.5, 15);

    // g = 1: d variance = g eps / (2 std); the pruned weight's gradients are hard zeros, not inf * 0.
    const dVariance = 0.5 / (2 * std);
    const grads = denseTrainVjp(inputs, { output: { shape: [1, 1], data: [1] } }, profile, {
      trainClip: true,
    });
    expect(grads.x.data[0]).toBe(0);
    expect(grads.x.data[1]).toBeCloseTo(0.5 + 2 * 3 * dVariance * s2, 14);
    expect(grads.theta.data).toEqual([0, 3]);
    expect(grads.noise.data[0]).toBe(0);
    expect(grads.noise.data[1]).toBeCloseTo(9 * dVariance * s2, 14);
    expect(grads.bias.data).toEqual([1]);
  });

  it('spec/dense.md#vjp-train: sqrtEps = 0: a zero variance is a zero std, harmless where g eps = 0, refused where not', () => {
    const profile: Profile = { ...PROFILES.kingma2015, sqrtEps: 0 };
    // Row 0 has x = 0: variance 0, std 0. Row 1: x = 2, theta = 0.5, alpha = e^-1: variance alpha.
    const inputs: DenseTrainInputs = {
      x: { shape: [2, 1], data: [0, 2] },
      theta: { shape: [1, 1], data: [0.5] },
      noise: { shape: [1, 1], data: [-1] },
      bias: { shape: [1], data: [0] },
      eps: { shape: [2, 1], data: [0, 1] },
    };
    const cotangent = { output: { shape: [2, 1], data: [1, 1] } };
    const rootAlpha = Math.exp(-0.5);
    // Row 0's g eps is 0, so its 0 / (2 std) = 0 / 0 is never formed: the gradients are finite.
    // By hand: g_var = [0, 1 / (2 sqrt(alpha))], d s2 = 4 g_var[1] = 2 / sqrt(alpha),
    // d s2 / d theta = 2 alpha theta = alpha, d s2 / d log_alpha = s2 = alpha / 4.
    const grads = denseTrainVjp(inputs, cotangent, profile);
    expect(grads.x.data[0]).toBe(0.5);
    expect(grads.x.data[1]).toBeCloseTo(0.5 + 0.5 * rootAlpha, 15);
    expect(grads.theta.data[0]).toBeCloseTo(2 + 2 * rootAlpha, 14);
    expect(grads.noise.data[0]).toBeCloseTo(0.5 * rootAlpha, 15);
    expect(grads.bias.data).toEqual([2]);

    // eps = 1 on row 0: d sqrt(v)/dv at v = 0 is infinite.
    const onZero = { ...inputs, eps: { shape: [2, 1], data: [1, 1] } };
    expectRefusal(
      () => denseTrainVjp(onZero, cotangent, profile),
      'non_finite',
      'profile',
      'the variance is 0 and profile.sqrtEps is 0: d sqrt(v)/dv is infinite there (every built-in profile has sqrtEps > 0)',
    );
  });
});
