/**
 * spec/fast.md: the float32 TensorFlow.js implementation agrees with the
 * float64 reference within the tolerance model of spec/fast.md#tolerance-model, on
 * every backend that loads here; plus properties of the fast implementation
 * on its own (the clip holds, KL -> 0 as alpha grows, the eval forward
 * ignores pruned weights, gradients are finite at theta = 0 and at the clip
 * bounds, no tensor leaks).
 *
 * Every generated input is a float32 value, so both implementations see the
 * same numbers and the tolerances bound arithmetic error only. Set
 * VDSPEC_FAST_REPORT=1 to print the largest |fast - ref| / tolerance per
 * operation (the table in spec/fast.md comes from that output).
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SVD_KL_K1, SVD_KL_K2, SVD_KL_K3 } from '../../src/constants.js';
import { availableBackends, initBackend } from '../../src/fast/backend.js';
import {
  fastConv2dEval,
  fastConv2dEvalVjp,
  fastConv2dTrain,
  fastConv2dTrainVjp,
  fastDenseEval,
  fastDenseEvalVjp,
  fastDenseTrain,
  fastDenseTrainVjp,
  fastKeepMask,
  fastKlPerWeight,
  fastLayerKl,
  fastLayerKlVjp,
  fastLogAlpha,
  fastWeightVariance,
  type FastConv2dPath,
} from '../../src/fast/index.js';
import { PROFILE_NAMES, PROFILES } from '../../src/profiles.js';
import {
  conv2dEval,
  conv2dEvalVjp,
  conv2dTrain,
  conv2dTrainVjp,
} from '../../src/reference/conv2d.js';
import { denseEval, denseEvalVjp, denseTrain, denseTrainVjp } from '../../src/reference/dense.js';
import { klApproxDerivative, klPerWeight } from '../../src/reference/kl.js';
import { layerKl, layerKlVjp } from '../../src/reference/objective.js';
import type { Tensor } from '../../src/tensor.js';
import {
  anyWeights,
  convCase,
  convCaseWith,
  convOptions,
  denseCase,
  denseCaseWith,
  expectWithin,
  f32,
  float,
  klEvalTolerance,
  klSlopeTolerance,
  LAYERS,
  layerKlTolerance,
  layerTolerance,
  noLeak,
  profileArb,
  runs,
  tensorOf,
  thetaValue,
  TINY,
  U,
  weightTolerance,
  worst,
} from './fast-bounds.js';

const BACKENDS = await availableBackends();

afterAll(() => {
  if (process.env.VDSPEC_FAST_REPORT) {
    const rows = [...worst.entries()].sort(([a], [b]) => a.localeCompare(b));
    console.log(rows.map(([k, v]) => `${k.padEnd(40)} ${v.toFixed(4)}`).join('\n'));
  }
});

// ---------------------------------------------------------------------------
// Per-weight operations
// ---------------------------------------------------------------------------

describe.each(BACKENDS)('fast on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  it('spec/log-alpha.md#svdlog_alpha: fast log_alpha (clipped) agrees within u (3 + |ls2| + 3|L|) * 4; exactly for a learned log_alpha', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastLogAlpha(w.theta, w.noise, w.profile, w.layer));
        expect(fast.shape).toEqual(w.theta.shape);
        expectWithin(`${backend} log_alpha`, fast.data, tol.stats.logAlpha, tol.logAlpha);
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/log-alpha.md#svdmask: fast keep mask equals the reference except within delta = tol(log_alpha) of the threshold', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastKeepMask(w.theta, w.noise, w.profile, w.layer));
        const prune = w.profile.prune;
        fast.data.forEach((m, i) => {
          if (m === tol.stats.mask[i]) return;
          // Only allowed where the compared log_alpha is within its tolerance of the threshold.
          const compared =
            prune?.from === 'unclipped' ? tol.stats.logAlphaRaw[i]! : tol.stats.logAlpha[i]!;
          const near = prune !== null && Math.abs(compared - prune.threshold) <= tol.logAlpha[i]!;
          expect(
            near,
            `mask[${i}]: fast ${m}, reference ${tol.stats.mask[i]}, log_alpha ${compared}`,
          ).toBe(true);
        });
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/log-alpha.md#the-per-weight-variance: fast per-weight variance agrees within the relative bound 2 (tol(log_alpha) + 4u)', () => {
    fc.assert(
      fc.property(anyWeights, (w) => {
        const tol = weightTolerance(w);
        const fast = noLeak(() => fastWeightVariance(w.theta, w.noise, w.profile, w.layer));
        const ref = tol.stats.variance;
        expectWithin(
          `${backend} weight variance`,
          fast.data,
          ref,
          ref.map((v, i) => tol.varianceRel[i]! * v + TINY),
        );
      }),
      { numRuns: runs(180) },
    );
  });

  // -------------------------------------------------------------------------
  // KL
  // -------------------------------------------------------------------------

  it('spec/kl.md#klsum: fast KL per weight agrees at the same float32 log_alpha within 8u * (sum of |terms|)', () => {
    const arb = fc.record({
      profile: profileArb,
      la: fc.array(float(-12, 12), { minLength: 1, maxLength: 24 }),
    });
    fc.assert(
      fc.property(arb, ({ profile, la }) => {
        // The cubic is only used where VD's clip holds it (la <= 0); above, it has no meaning.
        const input = profile.kl.approximation === 'vd_cubic' ? la.map((v) => Math.min(v, 0)) : la;
        const t: Tensor = { shape: [input.length], data: input };
        const fast = noLeak(() => fastKlPerWeight(t, profile));
        const ref = klPerWeight(t, profile);
        expectWithin(
          `${backend} kl per weight`,
          fast.data,
          ref.data,
          input.map((v) => klEvalTolerance(v, profile)),
        );
      }),
      { numRuns: runs(180) },
    );
  });

  it('spec/objective.md#kllayer: fast layer KL agrees within sum_i tol_i + n u sum_i |KL_i|, and its VJP within the slope model', () => {
    fc.assert(
      fc.property(anyWeights, float(-2, 2), (w, g) => {
        // Cotangent g: |g| scales the gradients' bounds. No TINY on the KL's
        // bound: this property was calibrated without it.
        const tol = layerKlTolerance(w, g, { klFloor: false });
        fc.pre(!tol.nearEdge);
        const inputs = { theta: w.theta, noise: w.noise };
        const fast = noLeak(() => fastLayerKl(inputs, w.profile, w.layer));
        const ref = layerKl(inputs, w.profile, w.layer);
        expectWithin(`${backend} layer kl`, [fast], [ref], [tol.kl]);

        const fastGrad = noLeak(() => fastLayerKlVjp(inputs, g, w.profile, w.layer));
        const refGrad = layerKlVjp(inputs, g, w.profile, w.layer);
        expectWithin(
          `${backend} layer kl vjp theta`,
          fastGrad.theta.data,
          refGrad.theta.data,
          tol.theta,
        );
        expectWithin(
          `${backend} layer kl vjp noise`,
          fastGrad.noise.data,
          refGrad.noise.data,
          tol.noise,
        );
      }),
      { numRuns: runs(120) },
    );
  });
  // -------------------------------------------------------------------------
  // dense
  // -------------------------------------------------------------------------

  it('spec/dense.md: fast dense train and eval forwards agree with the reference within the layer model', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance(c);
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const options = c.trainClip === undefined ? undefined : { trainClip: c.trainClip };
        const fast = noLeak(() => fastDenseTrain(inputs, c.w.profile, options));
        const ref = denseTrain(inputs, c.w.profile, options);
        expectWithin(`${backend} dense.train mean`, fast.mean.data, ref.mean.data, tol.mean);
        expectWithin(
          `${backend} dense.train variance`,
          fast.variance.data,
          ref.variance.data,
          tol.variance,
        );
        expectWithin(
          `${backend} dense.train output`,
          fast.output.data,
          ref.output.data,
          tol.output,
        );
        const fastEval = noLeak(() => fastDenseEval(inputs, c.w.profile));
        expectWithin(
          `${backend} dense.eval`,
          fastEval.data,
          denseEval(inputs, c.w.profile).data,
          tol.eval,
        );
      }),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#dense-vjps: fast dense train VJP (output, mean and variance cotangents) agrees within the layer model', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance(c);
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const options = c.trainClip === undefined ? undefined : { trainClip: c.trainClip };
        const cot = {
          output: c.gy,
          ...(c.gMean === undefined ? {} : { mean: c.gMean }),
          ...(c.gVariance === undefined ? {} : { variance: c.gVariance }),
        };
        const fast = noLeak(() => fastDenseTrainVjp(inputs, cot, c.w.profile, options));
        const ref = denseTrainVjp(inputs, cot, c.w.profile, options);
        expectWithin(`${backend} dense.train vjp x`, fast.x.data, ref.x.data, tol.gx);
        expectWithin(
          `${backend} dense.train vjp theta`,
          fast.theta.data,
          ref.theta.data,
          tol.gTheta,
        );
        expectWithin(
          `${backend} dense.train vjp noise`,
          fast.noise.data,
          ref.noise.data,
          tol.gNoise,
        );
        expectWithin(`${backend} dense.train vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
      }),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#dense-vjps: fast dense eval VJP agrees within the layer model (noise gradient exactly 0)', () => {
    fc.assert(
      fc.property(denseCase, (c) => {
        const tol = layerTolerance({
          ...c,
          trainClip: true,
          gMean: undefined,
          gVariance: undefined,
          eps: { ...c.eps, data: c.eps.data.map(() => 0) },
        });
        fc.pre(!tol.nearEdge);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
        const fast = noLeak(() => fastDenseEvalVjp(inputs, c.gy, c.w.profile));
        const ref = denseEvalVjp(inputs, c.gy, c.w.profile);
        expectWithin(`${backend} dense.eval vjp x`, fast.x.data, ref.x.data, tol.gx);
        expectWithin(
          `${backend} dense.eval vjp theta`,
          fast.theta.data,
          ref.theta.data,
          tol.gTheta,
        );
        expect(fast.noise.data.every((v) => v === 0)).toBe(true);
        expectWithin(`${backend} dense.eval vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
      }),
      { numRuns: runs(90) },
    );
  });

  // -------------------------------------------------------------------------
  // conv2d
  // -------------------------------------------------------------------------

  // Forwards run on every path everywhere; a filter gradient on 'native' needs a kernel wasm lacks.
  const forwardPaths: FastConv2dPath[] = ['auto', 'native', 'patches'];
  const vjpPaths: FastConv2dPath[] =
    backend === 'wasm' ? ['auto', 'patches'] : ['auto', 'native', 'patches'];

  it.each(forwardPaths)(
    'spec/conv2d.md: fast conv2d train forward (path %s) agrees with the reference within the layer model',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          const tol = layerTolerance(c);
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
          const options = convOptions(c, path);
          const fast = noLeak(() => fastConv2dTrain(inputs, c.w.profile, options));
          const ref = conv2dTrain(inputs, c.w.profile, convOptions(c));
          expect(fast.output.shape).toEqual(ref.output.shape);
          expectWithin(`${backend} conv2d.train mean`, fast.mean.data, ref.mean.data, tol.mean);
          expectWithin(
            `${backend} conv2d.train variance`,
            fast.variance.data,
            ref.variance.data,
            tol.variance,
          );
          expectWithin(
            `${backend} conv2d.train output`,
            fast.output.data,
            ref.output.data,
            tol.output,
          );
          const fastEval = noLeak(() => fastConv2dEval(inputs, c.w.profile, options));
          const refEval = conv2dEval(inputs, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.eval`, fastEval.data, refEval.data, tol.eval);
        }),
        { numRuns: runs(90) },
      );
    },
  );

  it.each(vjpPaths)(
    'spec/conv2d.md#vjp-train: fast conv2d train VJP (path %s) agrees with the reference within the layer model',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          const tol = layerTolerance(c);
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
          const cot = {
            output: c.gy,
            ...(c.gMean === undefined ? {} : { mean: c.gMean }),
            ...(c.gVariance === undefined ? {} : { variance: c.gVariance }),
          };
          const fast = noLeak(() =>
            fastConv2dTrainVjp(inputs, cot, c.w.profile, convOptions(c, path)),
          );
          const ref = conv2dTrainVjp(inputs, cot, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.train vjp x`, fast.x.data, ref.x.data, tol.gx);
          expectWithin(
            `${backend} conv2d.train vjp theta`,
            fast.theta.data,
            ref.theta.data,
            tol.gTheta,
          );
          expectWithin(
            `${backend} conv2d.train vjp noise`,
            fast.noise.data,
            ref.noise.data,
            tol.gNoise,
          );
          expectWithin(
            `${backend} conv2d.train vjp bias`,
            fast.bias.data,
            ref.bias.data,
            tol.gBias,
          );
        }),
        { numRuns: runs(90) },
      );
    },
  );
  it.each(vjpPaths)(
    'spec/conv2d.md: fast conv2d eval VJP (path %s) agrees with the reference (noise gradient exactly 0)',
    (path) => {
      fc.assert(
        fc.property(convCase, (c) => {
          // The eval VJP is the train VJP's mean path with the mask on: the same bounds, eps = 0.
          const tol = layerTolerance({
            ...c,
            trainClip: true,
            eps: { ...c.eps, data: c.eps.data.map(() => 0) },
          });
          fc.pre(!tol.nearEdge);
          const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
          // The fast eval VJP also takes the cotangent as {output}; the reference takes it bare.
          const fast = noLeak(() =>
            fastConv2dEvalVjp(inputs, { output: c.gy }, c.w.profile, convOptions(c, path)),
          );
          const ref = conv2dEvalVjp(inputs, c.gy, c.w.profile, convOptions(c));
          expectWithin(`${backend} conv2d.eval vjp x`, fast.x.data, ref.x.data, tol.gx);
          expectWithin(
            `${backend} conv2d.eval vjp theta`,
            fast.theta.data,
            ref.theta.data,
            tol.gTheta,
          );
          expect(fast.noise.data.every((v) => v === 0)).toBe(true);
          expectWithin(`${backend} conv2d.eval vjp bias`, fast.bias.data, ref.bias.data, tol.gBias);
        }),
        { numRuns: runs(60) },
      );
    },
  );

  it('spec/dense.md#degenerate-sizes, spec/conv2d.md#edge-cases: empty batch, in, out, channels and images agree with the reference (an empty sum is 0)', () => {
    const empty = fc.oneof(
      denseCaseWith(0).filter(
        (c) => c.x.data.length === 0 || c.bias.data.length === 0 || c.w.theta.data.length === 0,
      ),
      convCaseWith(0).filter((c) => c.x.data.length === 0 || c.bias.data.length === 0),
    );
    fc.assert(
      fc.property(empty, (c) => {
        const tol = layerTolerance(c);
        const inputs = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias, eps: c.eps };
        const dense = c.w.layer === 'dense';
        const options = convOptions(c);
        const opts = dense
          ? c.trainClip === undefined
            ? undefined
            : { trainClip: c.trainClip }
          : options;
        const fast = noLeak(() =>
          dense
            ? fastDenseTrain(inputs, c.w.profile, opts)
            : fastConv2dTrain(inputs, c.w.profile, opts),
        );
        const ref = dense
          ? denseTrain(inputs, c.w.profile, opts)
          : conv2dTrain(inputs, c.w.profile, opts);
        expect(fast.output.shape).toEqual(ref.output.shape);
        expectWithin(
          `${backend} empty train output`,
          fast.output.data,
          ref.output.data,
          tol.output,
        );
        expectWithin(`${backend} empty train mean`, fast.mean.data, ref.mean.data, tol.mean);
        const cot = { output: c.gy };
        const gf = noLeak(() =>
          dense
            ? fastDenseTrainVjp(inputs, cot, c.w.profile, opts)
            : fastConv2dTrainVjp(inputs, cot, c.w.profile, opts),
        );
        const gr = dense
          ? denseTrainVjp(inputs, cot, c.w.profile, opts)
          : conv2dTrainVjp(inputs, cot, c.w.profile, opts);
        for (const k of ['x', 'theta', 'noise', 'bias'] as const)
          expect(gf[k].shape).toEqual(gr[k].shape);
        expectWithin(`${backend} empty vjp x`, gf.x.data, gr.x.data, tol.gx);
        expectWithin(`${backend} empty vjp theta`, gf.theta.data, gr.theta.data, tol.gTheta);
        expectWithin(`${backend} empty vjp noise`, gf.noise.data, gr.noise.data, tol.gNoise);
        expectWithin(`${backend} empty vjp bias`, gf.bias.data, gr.bias.data, tol.gBias);
        const ev = noLeak(() =>
          dense ? fastDenseEval(inputs, c.w.profile) : fastConv2dEval(inputs, c.w.profile, options),
        );
        const er = dense
          ? denseEval(inputs, c.w.profile)
          : conv2dEval(inputs, c.w.profile, options);
        expectWithin(`${backend} empty eval`, ev.data, er.data, tol.eval);
        if (c.w.theta.data.length === 0) {
          const kl = noLeak(() =>
            fastLayerKl({ theta: c.w.theta, noise: c.w.noise }, c.w.profile, c.w.layer),
          );
          expect(kl).toBe(0);
        }
      }),
      { numRuns: runs(90) },
    );
  });

  // -------------------------------------------------------------------------
  // Properties of the fast implementation on its own
  // -------------------------------------------------------------------------

  it('spec/log-alpha.md#the-clip-and-its-gradient: fast log_alpha stays within the clip for extreme inputs (theta 0, 1e-30, 1e30; noise up to 1e30), never NaN, and the KL gradient stays finite', () => {
    const extremeTheta = fc.oneof(
      fc.constantFrom(0, -0, 1e-30, -1e-30, 1e-20, 1e30, -1e30, 3e38).map(f32),
      thetaValue,
    );
    const extremeNoise = fc.oneof(
      fc.constantFrom(-1e30, -1e4, 0, 1e4, 1e30).map(f32),
      float(-100, 100),
    );
    const arb = fc
      .record({
        profile: profileArb,
        layer: fc.constantFrom(...LAYERS),
        n: fc.integer({ min: 1, max: 12 }),
      })
      .chain(({ profile, layer, n }) => {
        const shape = layer === 'dense' ? [n, 1] : [1, 1, n, 1];
        return fc.record({
          profile: fc.constant(profile),
          layer: fc.constant(layer),
          theta: tensorOf(shape, extremeTheta),
          noise: tensorOf(shape, extremeNoise),
        });
      });
    fc.assert(
      fc.property(arb, (w) => {
        const clip = w.profile[w.layer].logAlpha.clip;
        const la = noLeak(() => fastLogAlpha(w.theta, w.noise, w.profile, w.layer));
        for (const v of la.data) {
          expect(Number.isNaN(v)).toBe(false);
          if (clip?.min != null) expect(v).toBeGreaterThanOrEqual(clip.min);
          if (clip?.max != null) expect(v).toBeLessThanOrEqual(clip.max);
        }
        // The KL needs a finite log_alpha (VD's learned parameter is unbounded below).
        if (
          la.data.every(Number.isFinite) &&
          (clip?.min != null || la.data.every((v) => v > -80))
        ) {
          const g = noLeak(() =>
            fastLayerKlVjp({ theta: w.theta, noise: w.noise }, 1, w.profile, w.layer),
          );
          expect(g.theta.data.every(Number.isFinite), 'dKL/dtheta finite').toBe(true);
          expect(g.noise.data.every(Number.isFinite), 'dKL/dnoise finite').toBe(true);
        }
      }),
      { numRuns: runs(180) },
    );
  });

  it("spec/log-alpha.md#the-clip-and-its-gradient: at theta = 0 the KL gradient is exactly 0 in theta (and in the noise where log_alpha is +inf); at log_alpha exactly on a clip bound it is the clip's gradientAtBound", () => {
    fc.assert(
      fc.property(
        profileArb,
        fc.constantFrom(...LAYERS),
        fc.constantFrom(1, -1),
        float(-2, 2),
        (profile, layer, sign, g) => {
          // The KL reads the layer's klLogAlpha where the profile sets one (spec/objective.md#kllayer).
          const conventions = profile[layer].klLogAlpha ?? profile[layer].logAlpha;
          const atBound = conventions.clip?.gradientAtBound ?? 1;
          const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
          const bounds = [conventions.clip?.min, conventions.clip?.max].filter(
            (b): b is number => typeof b === 'number',
          );
          // theta = +-1: log(theta^2 + eps) and 2 log(|theta| + eps) are exactly 0 in float32 for every
          // profile's eps (1 + eps rounds to 1 below 6e-8), so log_alpha = noise * scale = the bound exactly.
          const thetaData = [0, ...bounds.map(() => sign)];
          const noiseData = [-3, ...bounds.map((b) => b / scale)];
          const shape = layer === 'dense' ? [thetaData.length, 1] : [1, 1, thetaData.length, 1];
          const theta = { shape, data: thetaData };
          const noise = { shape, data: noiseData };
          if (conventions.form === 'learned') return; // theta does not enter; the bound case is in the agreement test
          const la = fastLogAlpha(theta, noise, profile, layer);
          // The forward's log_alpha lands on the bounds too (eps rounds away at theta = +-1).
          bounds.forEach((b, k) => expect(la.data[k + 1]).toBe(b));
          const grad = noLeak(() => fastLayerKlVjp({ theta, noise }, g, profile, layer));
          expect(
            grad.theta.data.every(Number.isFinite) && grad.noise.data.every(Number.isFinite),
          ).toBe(true);
          expect(grad.theta.data[0]).toBe(0);
          if (conventions.thetaEps === 0) expect(grad.noise.data[0]).toBe(0);
          bounds.forEach((b, k) => {
            const expected = atBound * g * klApproxDerivative(b, profile) * scale;
            // One KL-slope evaluation in float32 (klSlopeTolerance), scaled by |g| and the exact factor 2 or 1.
            expect(Math.abs(grad.noise.data[k + 1]! - expected)).toBeLessThanOrEqual(
              Math.abs(g) * scale * klSlopeTolerance(b, profile) +
                8 * U * Math.abs(expected) +
                TINY,
            );
          });
          // The dense training VJP is finite there too.
          if (layer === 'dense') {
            const n = thetaData.length;
            const inputs = {
              x: { shape: [2, n], data: Array.from({ length: 2 * n }, (_, i) => (i % 3) - 1) },
              theta,
              noise,
              bias: { shape: [1], data: [0.5] },
              eps: { shape: [2, 1], data: [0.7, -1.3] },
            };
            const v = noLeak(() =>
              fastDenseTrainVjp(inputs, { output: { shape: [2, 1], data: [1, -2] } }, profile),
            );
            for (const t of [v.x, v.theta, v.noise, v.bias])
              expect(t.data.every(Number.isFinite)).toBe(true);
          }
        },
      ),
      { numRuns: runs(120) },
    );
  });

  it('spec/kl.md#klsvd: fast SVD KL tends to its limit as alpha grows: 0 <= KL - limit <= 0.5 e^-la + k1 e^-(k2 + k3 la), and it never increases', () => {
    const svd = PROFILE_NAMES.map((n) => PROFILES[n]).filter(
      (p) => p.kl.approximation === 'svd_sigmoid',
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...svd),
        fc.array(float(0, 80), { minLength: 2, maxLength: 16 }),
        (profile, las) => {
          const sorted = [...las].sort((a, b) => a - b);
          const kl = noLeak(() =>
            fastKlPerWeight({ shape: [sorted.length], data: sorted }, profile),
          ).data;
          // KL -> 0 with C = -k1, -> -k1 with C omitted.
          const limit = profile.kl.constant === 'minus_k1' ? 0 : -SVD_KL_K1;
          // softplus(-la) <= e^-la and sigmoid(-z) <= e^-z; slack: the float32 evaluation error.
          sorted.forEach((la, i) => {
            const bound = 0.5 * Math.exp(-la) + SVD_KL_K1 * Math.exp(-(SVD_KL_K2 + SVD_KL_K3 * la));
            const slack = klEvalTolerance(la, profile) + TINY;
            expect(kl[i]! - limit).toBeGreaterThanOrEqual(-slack);
            expect(kl[i]! - limit).toBeLessThanOrEqual(bound * (1 + 16 * U) + slack);
            if (i > 0)
              expect(kl[i]!).toBeLessThanOrEqual(
                kl[i - 1]! + slack + klEvalTolerance(sorted[i - 1]!, profile),
              );
          });
          // At la = 80 the bound is below 1e-34: the value is the limit itself in float32.
          const far = fastKlPerWeight({ shape: [1], data: [80] }, profile).data[0]!;
          expect(Math.abs(far - limit)).toBeLessThanOrEqual(8 * U * SVD_KL_K1 + 1e-30);
        },
      ),
      { numRuns: runs(120) },
    );
  });

  it('spec/dense.md#svddenseeval, spec/conv2d.md: the fast eval forward ignores the values of pruned weights (bit for bit)', () => {
    const prunes = PROFILE_NAMES.map((n) => PROFILES[n]).filter((p) => p.prune !== null);
    const arb = fc.oneof(
      denseCase.filter((c) => c.w.profile.prune !== null),
      convCase.filter((c) => c.w.profile.prune !== null),
    );
    fc.assert(
      fc.property(arb, fc.array(thetaValue, { minLength: 64, maxLength: 64 }), (c, fresh) => {
        expect(prunes).toContain(c.w.profile);
        const { profile, layer } = c.w;
        const mask = fastKeepMask(c.w.theta, c.w.noise, profile, layer).data;
        fc.pre(mask.some((m) => m === 0));
        // Replace each pruned weight by another pruned one: a new theta, and a noise value that
        // puts log_alpha at the clip max (or 20 without one), far above the threshold.
        const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
        const { thetaEps, form } = profile[layer].logAlpha;
        const top = profile[layer].logAlpha.clip?.max ?? 20;
        const theta = c.w.theta.data.map((t, i) =>
          mask[i] === 0 ? fresh[i % fresh.length]! || 0.5 : t,
        );
        const noise = c.w.noise.data.map((v, i) => {
          if (mask[i] === 0) {
            const t = theta[i]!;
            const L =
              form === 'log_theta2'
                ? Math.log(t * t + thetaEps)
                : 2 * Math.log(Math.abs(t) + thetaEps);
            return f32((top + 1 + L) / scale);
          }
          return v;
        });
        const moved = {
          ...c.w,
          theta: { ...c.w.theta, data: theta },
          noise: { ...c.w.noise, data: noise },
        };
        expect(fastKeepMask(moved.theta, moved.noise, profile, layer).data).toEqual(mask);
        const before = { x: c.x, theta: c.w.theta, noise: c.w.noise, bias: c.bias };
        const after = { x: c.x, theta: moved.theta, noise: moved.noise, bias: c.bias };
        const run = (i: typeof before) =>
          layer === 'dense'
            ? fastDenseEval(i, profile).data
            : fastConv2dEval(i, profile, convOptions(c)).data;
        expect(noLeak(() => run(after))).toEqual(run(before));
      }),
      { numRuns: runs(90) },
    );
  });

  it('spec/fast.md#backends: an error inside a fast op (native conv filter gradient on wasm) or a rejected input leaks no tensor', () => {
    const x = { shape: [1, 3, 3, 1], data: Array.from({ length: 9 }, (_, i) => i / 9) };
    const theta = { shape: [2, 2, 1, 1], data: [0.5, -0.5, 0.25, 1] };
    const inputs = {
      x,
      theta,
      noise: { shape: [2, 2, 1, 1], data: [-6, -6, -6, -6] },
      bias: { shape: [1], data: [0] },
    };
    const eps = { shape: [1, 2, 2, 1], data: [0, 1, -1, 0.5] };
    const before = tf.memory().numTensors;
    if (backend === 'wasm') {
      expect(() =>
        fastConv2dTrainVjp({ ...inputs, eps }, { output: eps }, 'molchanov2017', {
          path: 'native',
        }),
      ).toThrow(expect.objectContaining({ code: 'unsupported', argument: 'options.path' }));
    }
    expect(() =>
      fastConv2dTrain({ ...inputs, eps: { shape: [1, 3, 3, 1], data: x.data } }, 'molchanov2017'),
    ).toThrow(expect.objectContaining({ code: 'shape_mismatch', argument: 'eps' }));
    expect(tf.memory().numTensors).toBe(before);
  });
});
