/**
 * Properties of spec/objective.md: the layer KL and its gradient, the
 * cross-entropy data term, the SGVB loss and the two schedules.
 *
 * The expected values come from formulas written again here, independently
 * of src/reference (log_alpha, the clip and both KL approximations), so a
 * mistake in the reference cannot hide behind the same mistake in the test.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  KL_WARMUP_END_EPOCH,
  KL_WARMUP_START_EPOCH,
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import {
  PROFILE_NAMES,
  PROFILES,
  type LayerKind,
  type Profile,
  type ProfileName,
} from '../../src/profiles.js';
import {
  compensatedSum,
  crossEntropy,
  crossEntropyVjp,
  klWeightSchedule,
  layerKl,
  layerKlVjp,
  learningRateSchedule,
  sgvbObjective,
  sgvbObjectiveVjp,
  type LearningRateScheduleKind,
} from '../../src/reference/objective.js';
import type { Tensor } from '../../src/tensor.js';
import { expectRefusal, untyped } from './refusals.js';

// ---------------------------------------------------------------- independent formulas

function sizeOfShape(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Flat index into a broadcast operand of `noiseShape` for flat index `flat` of `shape` (same rank or scalar). */
function broadcastSource(
  flat: number,
  shape: readonly number[],
  noiseShape: readonly number[],
): number {
  if (noiseShape.length === 0) return 0;
  let rest = flat;
  const index = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    index[a] = rest % shape[a]!;
    rest = Math.floor(rest / shape[a]!);
  }
  let source = 0;
  for (let a = 0; a < shape.length; a++) {
    source = source * noiseShape[a]! + (noiseShape[a] === 1 ? 0 : index[a]!);
  }
  return source;
}

/**
 * The log_alpha convention the KL reads (spec/objective.md#kllayer): the
 * layer's klLogAlpha where the profile sets one (bayesgroup-theano's conv KL
 * drops the forward's eps), its forward logAlpha otherwise.
 */
function klConvention(profile: Profile, layer: LayerKind) {
  return profile[layer].klLogAlpha ?? profile[layer].logAlpha;
}

/** log_alpha before the clip, straight from the conventions table of spec/profiles.md. */
function rawLogAlpha(t: number, v: number, profile: Profile, layer: LayerKind): number {
  const { form, thetaEps } = klConvention(profile, layer);
  if (form === 'learned') return v;
  const logSigma2 = profile.noiseParameter === 'log_sigma' ? 2 * v : v;
  if (form === 'log_theta2') return logSigma2 - Math.log(t * t + thetaEps);
  return logSigma2 - 2 * Math.log(Math.abs(t) + thetaEps);
}

function clipOf(profile: Profile, layer: LayerKind): { min: number; max: number } {
  const clip = klConvention(profile, layer).clip;
  return { min: clip?.min ?? -Infinity, max: clip?.max ?? Infinity };
}

function clipped(x: number, profile: Profile, layer: LayerKind): number {
  const { min, max } = clipOf(profile, layer);
  return Math.min(Math.max(x, min), max);
}

/** KL per weight, positive, naive evaluation of the published formulas (fine on the clip ranges used here). */
function expectedKl(la: number, profile: Profile): number {
  if (profile.kl.approximation === 'vd_cubic') {
    const a = Math.exp(la);
    return -(0.5 * la + VD_KL_C1 * a + VD_KL_C2 * a * a + VD_KL_C3 * a * a * a);
  }
  const c = profile.kl.constant === 'minus_k1' ? -SVD_KL_K1 : 0;
  const sig = 1 / (1 + Math.exp(-(SVD_KL_K2 + SVD_KL_K3 * la)));
  return -(SVD_KL_K1 * sig - 0.5 * Math.log1p(Math.exp(-la)) + c);
}

/** dKL/dlog_alpha of expectedKl, differentiated by hand. */
function expectedKlSlope(la: number, profile: Profile): number {
  if (profile.kl.approximation === 'vd_cubic') {
    const a = Math.exp(la);
    return -(0.5 + VD_KL_C1 * a + 2 * VD_KL_C2 * a * a + 3 * VD_KL_C3 * a * a * a);
  }
  // sigma(z) (1 - sigma(z)) as sigma(z) sigma(-z): 1 - sigma(z) cancels catastrophically for
  // large z (seen: a relative error of 1e-12 in the slope at log_alpha = 10).
  const z = SVD_KL_K2 + SVD_KL_K3 * la;
  const sigmoidZ = 1 / (1 + Math.exp(-z));
  const sigmoidMinusZ = 1 / (1 + Math.exp(z));
  return -(
    SVD_KL_K1 * SVD_KL_K3 * sigmoidZ * sigmoidMinusZ +
    (0.5 * Math.exp(-la)) / (1 + Math.exp(-la))
  );
}

function naiveSum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function expectVdspecError(run: () => unknown, argument: string): void {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(isVdspecError(caught), `expected a VdspecError naming ${argument}`).toBe(true);
  if (isVdspecError(caught)) expect(caught.argument).toBe(argument);
}

// ---------------------------------------------------------------- arbitraries

interface LayerCase {
  readonly profile: Profile;
  readonly layer: LayerKind;
  readonly theta: Tensor;
  readonly noise: Tensor;
}

const profileArb = fc.constantFrom(...PROFILE_NAMES).map((name) => PROFILES[name]);
const layerArb = fc.constantFrom<LayerKind>('dense', 'conv2d');

function shapeArb(layer: LayerKind): fc.Arbitrary<number[]> {
  const dim = (max: number) => fc.integer({ min: 1, max });
  return layer === 'dense' ? fc.tuple(dim(4), dim(4)) : fc.tuple(dim(3), dim(3), dim(2), dim(3));
}

/**
 * Noise ranges per parameter: they cover both sides of every profile's clip
 * for |theta| up to 2 (log_sigma2 - log theta^2 spans about [-26, +inf)).
 * Half the draws are uniform over the range: fast-check's doubles crowd
 * around 0, which for VD is the clip max, where the gradient checks skip
 * nine log_alphas in ten.
 */
function noiseValueArb(profile: Profile): fc.Arbitrary<number> {
  const range =
    profile.noiseParameter === 'log_sigma2'
      ? { min: -25, max: 15 }
      : profile.noiseParameter === 'log_sigma'
        ? { min: -12, max: 8 }
        : { min: -6, max: 2 };
  const steps = 1_000_000;
  const uniform = fc
    .integer({ min: 0, max: steps })
    .map((k) => range.min + ((range.max - range.min) * k) / steps);
  return fc.oneof(fc.double({ ...range, noNaN: true }), uniform);
}

const anyThetaArb = fc.oneof(
  { arbitrary: fc.constant(0), weight: 1 },
  { arbitrary: fc.double({ min: -2, max: 2, noNaN: true }), weight: 6 },
);

/**
 * A cotangent of size 0.1 to 3, of either sign. `fc.double({ min: -3, max: 3 })` draws nine in ten
 * below 1e-3 (it favours small exponents), and there every gradient check passes on its absolute
 * tolerance whatever the gradient: a VD noise gradient set to 0 passed the central differences.
 */
const cotangentArb = fc
  .tuple(fc.double({ min: 0.1, max: 3, noNaN: true }), fc.boolean())
  .map(([size, negative]) => (negative ? -size : size));

/** |theta| in [0.05, 2]: a step of 1e-6 then moves log_alpha by at most 4e-5. */
const smoothThetaArb = fc
  .tuple(fc.double({ min: 0.05, max: 2, noNaN: true }), fc.boolean())
  .map(([m, negative]) => (negative ? -m : m));

function layerCaseArb(
  thetaArb: fc.Arbitrary<number> = anyThetaArb,
  profiles: fc.Arbitrary<Profile> = profileArb,
): fc.Arbitrary<LayerCase> {
  return fc.tuple(profiles, layerArb).chain(([profile, layer]) =>
    shapeArb(layer).chain((shape) => {
      const noiseShapeArb: fc.Arbitrary<number[]> =
        profile[layer].logAlpha.form === 'learned'
          ? fc.oneof(
              fc.constant<number[]>([]),
              fc
                .array(fc.boolean(), { minLength: shape.length, maxLength: shape.length })
                .map((ones) => shape.map((d, i) => (ones[i] ? 1 : d))),
            )
          : fc.constant(shape);
      return noiseShapeArb.chain((noiseShape) => {
        const n = sizeOfShape(shape);
        const m = sizeOfShape(noiseShape);
        return fc
          .tuple(
            fc.array(thetaArb, { minLength: n, maxLength: n }),
            fc.array(noiseValueArb(profile), { minLength: m, maxLength: m }),
          )
          .map(([theta, noise]) => ({
            profile,
            layer,
            theta: { shape, data: theta },
            noise: { shape: noiseShape, data: noise },
          }));
      });
    }),
  );
}

/** Per-weight raw log_alpha of a case, by the independent formula. */
function rawOfCase(c: LayerCase): number[] {
  return c.theta.data.map((t, i) =>
    rawLogAlpha(
      t,
      c.noise.data[broadcastSource(i, c.theta.shape, c.noise.shape)]!,
      c.profile,
      c.layer,
    ),
  );
}

function withData(t: Tensor, i: number, value: number): Tensor {
  const data = [...t.data];
  data[i] = value;
  return { shape: t.shape, data };
}

// ---------------------------------------------------------------- kl.layer

describe('spec/objective.md#kllayer', () => {
  test('kl.layer: layerKl = sum over theta of KL(clip(log_alpha)) (independent formulas)', () => {
    fc.assert(
      fc.property(layerCaseArb(), (c) => {
        const terms = rawOfCase(c).map((raw) =>
          expectedKl(clipped(raw, c.profile, c.layer), c.profile),
        );
        const expected = naiveSum(terms);
        const got = layerKl({ theta: c.theta, noise: c.noise }, c.profile, c.layer);
        // The naive evaluation and the sum each round ~1e-16 per term; 1e-12 of the absolute sum is far above that.
        const scale = 1 + naiveSum(terms.map(Math.abs));
        expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-12 * scale);
      }),
      { numRuns: 200 },
    );
  });

  test('kl.layer: a broadcast VD log_alpha counts once per weight of theta', () => {
    const profile = PROFILES.kingma2015;
    fc.assert(
      fc.property(shapeArb('dense'), fc.double({ min: -6, max: 2, noNaN: true }), (shape, la) => {
        const n = sizeOfShape(shape);
        const theta = { shape, data: new Array<number>(n).fill(0.3) };
        const scalar = layerKl({ theta, noise: { shape: [], data: [la] } }, profile, 'dense');
        const full = layerKl(
          { theta, noise: { shape, data: new Array<number>(n).fill(la) } },
          profile,
          'dense',
        );
        expect(scalar).toBe(full);
        const perWeight = expectedKl(clipped(la, profile, 'dense'), profile);
        expect(Math.abs(scalar - n * perWeight)).toBeLessThanOrEqual(
          1e-12 * n * (1 + Math.abs(perWeight)),
        );
      }),
      { numRuns: 100 },
    );
  });

  test('kl.layer: layerKlVjp matches central differences of layerKl away from the clip bounds', () => {
    const h = 1e-6;
    // Skip coordinates whose log_alpha lies within this of a clip bound: a step moves it by <= 4e-5 (see smoothThetaArb).
    const margin = 1e-3;
    fc.assert(
      fc.property(layerCaseArb(smoothThetaArb), cotangentArb, (c, g) => {
        const { min, max } = clipOf(c.profile, c.layer);
        const raw = rawOfCase(c);
        const nearBound = raw.map((r) => Math.abs(r - min) < margin || Math.abs(r - max) < margin);
        const grad = layerKlVjp({ theta: c.theta, noise: c.noise }, g, c.profile, c.layer);
        const f = (theta: Tensor, noise: Tensor) =>
          g * layerKl({ theta, noise }, c.profile, c.layer);
        // Central differences: truncation ~h^2 |f'''| <= 1e-8 here, rounding ~1e-16 |f| / h <= 1e-7.
        const close = (analytic: number, numeric: number) =>
          expect(Math.abs(analytic - numeric)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(analytic)));
        c.theta.data.forEach((t, i) => {
          if (nearBound[i]) return;
          const numeric =
            (f(withData(c.theta, i, t + h), c.noise) - f(withData(c.theta, i, t - h), c.noise)) /
            (2 * h);
          close(grad.theta.data[i]!, numeric);
        });
        c.noise.data.forEach((v, j) => {
          const covers = c.theta.data.map(
            (_, i) => broadcastSource(i, c.theta.shape, c.noise.shape) === j,
          );
          if (covers.some((covered, i) => covered && nearBound[i])) return;
          const numeric =
            (f(c.theta, withData(c.noise, j, v + h)) - f(c.theta, withData(c.noise, j, v - h))) /
            (2 * h);
          close(grad.noise.data[j]!, numeric);
        });
        expect(grad.theta.shape).toEqual(c.theta.shape);
        expect(grad.noise.shape).toEqual(c.noise.shape);
      }),
      { numRuns: 60 },
    );
  });

  test('kl.layer: the gradient is exactly 0 at theta = 0 and wherever log_alpha is outside the clip', () => {
    fc.assert(
      fc.property(layerCaseArb(), cotangentArb, (c, g) => {
        const { min, max } = clipOf(c.profile, c.layer);
        const raw = rawOfCase(c);
        const grad = layerKlVjp({ theta: c.theta, noise: c.noise }, g, c.profile, c.layer);
        const sameShape = c.noise.data.length === c.theta.data.length && c.noise.shape.length > 0;
        c.theta.data.forEach((t, i) => {
          const outside = !(raw[i]! >= min && raw[i]! <= max);
          if (t === 0 || outside) expect(grad.theta.data[i]).toBe(0);
          if (outside && sameShape) expect(grad.noise.data[i]).toBe(0);
        });
      }),
      { numRuns: 200 },
    );
  });

  test('kl.layer: KL and its gradient stay finite (never NaN) for subnormal and huge theta', () => {
    const extremeThetaArb = fc.oneof(
      fc.constantFrom(
        0,
        5e-324,
        -5e-324,
        1e-310,
        1e-160,
        1e-150,
        1e150,
        1e154,
        1e155,
        1e200,
        -1e300,
        1.7e308,
      ),
      fc.double({ min: -2, max: 2, noNaN: true }),
    );
    fc.assert(
      fc.property(layerCaseArb(extremeThetaArb), cotangentArb, (c, g) => {
        const kl = layerKl({ theta: c.theta, noise: c.noise }, c.profile, c.layer);
        // Without a lower clip (state-of-sparsity-nn) a theta whose square overflows has
        // log_alpha = -inf: alpha -> 0, where the KL's limit is +inf (spec/kl.md). Never NaN.
        const { form, clip } = c.profile[c.layer].logAlpha;
        const unboundedBelow = form !== 'learned' && (clip?.min ?? null) === null;
        const squareOverflows = c.theta.data.some((t) => !Number.isFinite(t * t));
        if (unboundedBelow && squareOverflows) expect(kl).toBe(Infinity);
        else expect(Number.isFinite(kl)).toBe(true);
        const grad = layerKlVjp({ theta: c.theta, noise: c.noise }, g, c.profile, c.layer);
        for (const v of [...grad.theta.data, ...grad.noise.data])
          expect(Number.isFinite(v)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  test("kl.layer: additive reparameterization: dKL/dlog_sigma2 = KL'(la), dKL/dtheta = KL'(la) dla/dtheta inside the clip", () => {
    const additive = fc
      .constantFrom(...PROFILE_NAMES)
      .map((name) => PROFILES[name])
      .filter((p) => p.noiseParameter !== 'log_alpha');
    fc.assert(
      fc.property(layerCaseArb(anyThetaArb, additive), cotangentArb, (c, g) => {
        const { min, max } = clipOf(c.profile, c.layer);
        const { form, thetaEps, clip } = klConvention(c.profile, c.layer);
        const dLogSigma2 = c.profile.noiseParameter === 'log_sigma' ? 2 : 1;
        const grad = layerKlVjp({ theta: c.theta, noise: c.noise }, g, c.profile, c.layer);
        rawOfCase(c).forEach((raw, i) => {
          const t = c.theta.data[i]!;
          if (!(raw >= min && raw <= max) || t === 0) return;
          // A switch clip passes nothing exactly on its bounds.
          if ((raw === min || raw === max) && clip?.gradientAtBound === 0) return;
          const slope = g * expectedKlSlope(raw, c.profile);
          const dTheta =
            form === 'log_theta2'
              ? (-2 * t) / (t * t + thetaEps)
              : (-2 * Math.sign(t)) / (Math.abs(t) + thetaEps);
          const tol = (x: number) => 1e-12 * (1 + Math.abs(x));
          expect(Math.abs(grad.noise.data[i]! - dLogSigma2 * slope)).toBeLessThanOrEqual(
            tol(slope),
          );
          expect(Math.abs(grad.theta.data[i]! - slope * dTheta)).toBeLessThanOrEqual(
            tol(slope * dTheta),
          );
          // KL' < 0 for the sigmoid KL, so the KL pushes every theta towards 0 and every sigma up.
          expect(grad.theta.data[i]! * Math.sign(t) * Math.sign(g)).toBeGreaterThanOrEqual(0);
        });
      }),
      { numRuns: 200 },
    );
  });

  test('kl.layer: molchanov2017: KL decreases to n * KL(clip max) <= 1.7e-4 n as log_sigma2 grows, and to 0 without a clip', () => {
    const profile = PROFILES.molchanov2017;
    // KL(8) = k1 * sigmoid(-(k2 + 8 k3)) + 0.5 log1p(e^-8) = 6.6e-7 + 1.677e-4 < 1.7e-4.
    const klAtClipMax = expectedKl(8, profile);
    expect(klAtClipMax).toBeLessThan(1.7e-4);
    const noClip: Profile = {
      ...profile,
      dense: { ...profile.dense, logAlpha: { ...profile.dense.logAlpha, clip: null } },
    };
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.01, max: 1, noNaN: true }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.double({ min: -20, max: 40, noNaN: true }), { minLength: 2, maxLength: 8 }),
        (weights, levels) => {
          const theta = { shape: [weights.length, 1], data: weights };
          const n = weights.length;
          const at = (s: number, p: Profile) =>
            layerKl(
              { theta, noise: { shape: theta.shape, data: new Array<number>(n).fill(s) } },
              p,
              'dense',
            );
          const sorted = [...levels].sort((a, b) => a - b);
          const values = sorted.map((s) => at(s, profile));
          for (let k = 1; k < values.length; k++) {
            // Non-increasing up to the rounding of a sum of n terms.
            expect(values[k]!).toBeLessThanOrEqual(
              values[k - 1]! + 1e-12 * (1 + Math.abs(values[k - 1]!)),
            );
          }
          // log_sigma2 = 60 puts every log_alpha above 60 - log(1e-4) > 8: all clipped.
          expect(Math.abs(at(60, profile) - n * klAtClipMax)).toBeLessThanOrEqual(1e-15 * n);
          // Without the clip the KL itself goes to 0 (log_alpha >= 1000 - log(1) here).
          expect(Math.abs(at(1000, noClip))).toBeLessThanOrEqual(1e-12);
        },
      ),
      { numRuns: 100 },
    );
    // theta = 0 with no clip max: log_alpha = +inf, where the sigmoid KL's limit is 0 (not NaN) and so is its gradient.
    const zero = {
      theta: { shape: [1, 2], data: [0, 0] },
      noise: { shape: [1, 2], data: [-10, 5] },
    };
    expect(layerKl(zero, noClip, 'dense')).toBe(0);
    const grad = layerKlVjp(zero, 1, noClip, 'dense');
    expect([...grad.theta.data, ...grad.noise.data]).toEqual([0, 0, 0, 0]);
  });

  test('kl.layer: worked example (the numbers printed in spec/objective.md)', () => {
    const profile = PROFILES.molchanov2017;
    const inputs = {
      theta: { shape: [1, 3], data: [0.1, 0, -0.01] },
      noise: { shape: [1, 3], data: [-10, -10, -10] },
    };
    const close = (got: number, want: number) =>
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-13 * (1 + Math.abs(want)));
    // The printed values, 16 significant digits.
    close(layerKl(inputs, profile, 'dense'), 4.127333287628591);
    const grad = layerKlVjp(inputs, 1, profile, 'dense');
    [9.995025482094574, 0, -110.70865502724413].forEach((v, i) => close(grad.theta.data[i]!, v));
    [-0.4997512741047288, 0, -0.5535432751362207].forEach((v, i) => close(grad.noise.data[i]!, v));
    expect(grad.theta.data[1]).toBe(0);
    expect(grad.noise.data[1]).toBe(0);
    // The same numbers from the independent formulas: la = -10 - log(theta^2), clipped; theta = 0 sits at the clip max 8.
    const la = [-10 - Math.log(0.01), 8, -10 - Math.log(1e-4)];
    close(layerKl(inputs, profile, 'dense'), naiveSum(la.map((x) => expectedKl(x, profile))));
    close(grad.theta.data[0]!, expectedKlSlope(la[0]!, profile) * (-2 / 0.1));
    close(grad.theta.data[2]!, expectedKlSlope(la[2]!, profile) * (-2 / -0.01));
    // Per-weight KL at the clip max: molchanov2017 at 8, deepbayes-pytorch (C omitted) at 10.
    close(expectedKl(8, profile), 1.6836934695539895e-4);
    close(expectedKl(10, PROFILES['deepbayes-pytorch']), -0.6357372665071462);
  });

  test('kl.layer: deepbayes-pytorch (constant omitted): KL -> -k1 * n_weights as log_sigma grows', () => {
    const profile = PROFILES['deepbayes-pytorch'];
    // At the clip max 10: KL + k1 = k1 * sigmoid(-(k2 + 10 k3)) + 0.5 log1p(e^-10) = 3.4e-8 + 2.27e-5 < 3e-5.
    fc.assert(
      fc.property(
        layerArb,
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 1, maxLength: 12 }),
        (layer, weights) => {
          const n = weights.length;
          const shape = layer === 'dense' ? [n, 1] : [1, 1, n, 1];
          const kl = layerKl(
            {
              theta: { shape, data: weights },
              noise: { shape, data: new Array<number>(n).fill(30) },
            },
            profile,
            layer,
          );
          expect(Math.abs(kl / n + SVD_KL_K1)).toBeLessThan(3e-5);
        },
      ),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------- objective.cross_entropy

function logitsArb(range: number): fc.Arbitrary<{ logits: Tensor; labels: number[] }> {
  return fc
    .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }))
    .chain(([batch, classes]) =>
      fc
        .tuple(
          fc.array(fc.double({ min: -range, max: range, noNaN: true }), {
            minLength: batch * classes,
            maxLength: batch * classes,
          }),
          fc.array(fc.integer({ min: 0, max: classes - 1 }), {
            minLength: batch,
            maxLength: batch,
          }),
        )
        .map(([data, labels]) => ({ logits: { shape: [batch, classes], data }, labels })),
    );
}

describe('spec/objective.md#objectivecross_entropy', () => {
  test('objective.cross_entropy: matches -log(softmax[label]) on moderate logits', () => {
    fc.assert(
      fc.property(logitsArb(20), ({ logits, labels }) => {
        const [batch, classes] = logits.shape as [number, number];
        const naive = labels.map((y, b) => {
          const row = logits.data.slice(b * classes, (b + 1) * classes);
          const z = naiveSum(row.map(Math.exp));
          return -Math.log(Math.exp(row[y]!) / z);
        });
        const got = crossEntropy(logits, labels);
        // exp/log of |x| <= 20 in float64: both sides are within a few 1e-16 relative of the truth.
        naive.forEach((v, b) =>
          expect(Math.abs(got.perExample[b]! - v)).toBeLessThanOrEqual(1e-13 * (1 + v)),
        );
        expect(Math.abs(got.mean - naiveSum(naive) / batch)).toBeLessThanOrEqual(
          1e-13 * (1 + got.mean),
        );
      }),
      { numRuns: 200 },
    );
  });

  test('objective.cross_entropy: finite, >= 0 and shift-invariant on logits of size 1e4', () => {
    fc.assert(
      fc.property(
        logitsArb(1e4),
        fc.double({ min: -1e4, max: 1e4, noNaN: true }),
        ({ logits, labels }, shift) => {
          const a = crossEntropy(logits, labels);
          const shifted = { shape: logits.shape, data: logits.data.map((v) => v + shift) };
          const b = crossEntropy(shifted, labels);
          for (const v of a.perExample) {
            expect(Number.isFinite(v)).toBe(true);
            expect(v).toBeGreaterThanOrEqual(0);
          }
          // Adding the shift rounds each logit by <= ulp(2e4)/2 = 1.8e-12; the CE moves by at most twice that.
          a.perExample.forEach((v, i) =>
            expect(Math.abs(v - b.perExample[i]!)).toBeLessThanOrEqual(1e-10),
          );
        },
      ),
      { numRuns: 200 },
    );
    const huge = { shape: [3, 3], data: [1e4, 0, -1e4, 1e4, 0, -1e4, 1e4, 0, -1e4] };
    // exp(-1e4) underflows to 0 in every term: the CE is the logit gap, exactly.
    expect(crossEntropy(huge, [0, 1, 2]).perExample).toEqual([0, 1e4, 2e4]);
  });

  test('objective.cross_entropy: crossEntropyVjp matches central differences; rows sum to 0', () => {
    const h = 1e-6;
    fc.assert(
      fc.property(logitsArb(10), cotangentArb, ({ logits, labels }, g) => {
        const grad = crossEntropyVjp(logits, labels, g);
        const [batch, classes] = logits.shape as [number, number];
        expect(grad.shape).toEqual([batch, classes]);
        logits.data.forEach((v, i) => {
          const numeric =
            (g *
              (crossEntropy(withData(logits, i, v + h), labels).mean -
                crossEntropy(withData(logits, i, v - h), labels).mean)) /
            (2 * h);
          // CE'' <= 1/4 per logit: truncation ~h^2, rounding ~1e-16 * 30 / h = 3e-9.
          expect(Math.abs(grad.data[i]! - numeric)).toBeLessThanOrEqual(1e-7 * (1 + Math.abs(g)));
        });
        for (let b = 0; b < batch; b++) {
          const row = grad.data.slice(b * classes, (b + 1) * classes);
          expect(Math.abs(naiveSum(row))).toBeLessThanOrEqual(1e-15 * classes * (1 + Math.abs(g)));
        }
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------- objective.sgvb

describe('spec/objective.md#objectivesgvb', () => {
  const sgvbArb = fc.record({
    case: logitsArb(10),
    trainSize: fc.integer({ min: 1, max: 60000 }),
    klWeight: fc.double({ min: 0, max: 1, noNaN: true }),
    kl: fc.double({ min: -1e5, max: 1e5, noNaN: true }),
  });

  test('objective.sgvb: loss = N * mean CE + beta * KL, split into dataTerm and klTerm', () => {
    fc.assert(
      fc.property(sgvbArb, ({ case: { logits, labels }, trainSize, klWeight, kl }) => {
        const out = sgvbObjective({ logits, labels, trainSize, klWeight, kl });
        const ce = crossEntropy(logits, labels);
        const naiveMean = naiveSum(ce.perExample) / labels.length;
        const expected = trainSize * naiveMean + klWeight * kl;
        const scale = 1 + Math.abs(trainSize * naiveMean) + Math.abs(klWeight * kl);
        expect(Math.abs(out.loss - expected)).toBeLessThanOrEqual(1e-12 * scale);
        expect(out.loss).toBe(out.dataTerm + out.klTerm);
        expect(out.klTerm).toBe(klWeight * kl);
        // (N / M) * sum CE is the same number as N * mean CE.
        const perBatchForm = (trainSize / labels.length) * naiveSum(ce.perExample);
        expect(Math.abs(out.dataTerm - perBatchForm)).toBeLessThanOrEqual(
          1e-12 * (1 + perBatchForm),
        );
      }),
      { numRuns: 200 },
    );
  });

  test('objective.sgvb: sgvbObjectiveVjp matches central differences in the logits and the KL', () => {
    const h = 1e-6;
    fc.assert(
      fc.property(sgvbArb, ({ case: { logits, labels }, trainSize, klWeight, kl }) => {
        const inputs = { logits, labels, trainSize, klWeight, kl };
        const grad = sgvbObjectiveVjp(inputs);
        expect(grad.kl).toBe(klWeight);
        logits.data.forEach((v, i) => {
          const loss = (x: number) =>
            sgvbObjective({ ...inputs, logits: withData(logits, i, x) }).dataTerm;
          const numeric = (loss(v + h) - loss(v - h)) / (2 * h);
          // The data term is N times the mean CE, so both errors of the CE check scale by N.
          expect(Math.abs(grad.logits.data[i]! - numeric)).toBeLessThanOrEqual(1e-7 * trainSize);
        });
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------- schedules

describe('spec/objective.md#schedulekl_weight', () => {
  test('schedule.kl_weight: values at the documented epochs', () => {
    expect(KL_WARMUP_START_EPOCH).toBe(5);
    expect(KL_WARMUP_END_EPOCH).toBe(20);
    const table: [number, number][] = [
      [0, 0],
      [4.99, 0],
      [5, 0],
      [12.5, 0.5],
      [20, 1],
      [100, 1],
    ];
    for (const [epoch, beta] of table) expect(klWeightSchedule(epoch)).toBe(beta);
    expect(klWeightSchedule(6)).toBeCloseTo(1 / 15, 15);
    expect(klWeightSchedule(10, { start: 0, end: 40 })).toBe(0.25);
    // start = end: a step from 0 to 1, no 0/0.
    expect(klWeightSchedule(2.9, { start: 3, end: 3 })).toBe(0);
    expect(klWeightSchedule(3, { start: 3, end: 3 })).toBe(1);
  });

  test('schedule.kl_weight: monotone non-decreasing and within [0, 1]', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 300, noNaN: true }),
        fc.double({ min: 0, max: 300, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        (a, b, start, width) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          for (const options of [{}, { start, end: start + width }]) {
            const x = klWeightSchedule(lo, options);
            const y = klWeightSchedule(hi, options);
            expect(x).toBeLessThanOrEqual(y);
            expect(x).toBeGreaterThanOrEqual(0);
            expect(y).toBeLessThanOrEqual(1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('spec/objective.md#schedulelearning_rate', () => {
  test('schedule.learning_rate: values at the documented epochs (200 epochs, base 1e-3)', () => {
    const lr = (epoch: number, kind: LearningRateScheduleKind) =>
      learningRateSchedule(epoch, 200, 1e-3, kind);
    expect(lr(0, 'lenet300')).toBe(1e-3);
    expect(lr(100, 'lenet300')).toBe(1e-3);
    expect(lr(150, 'lenet300')).toBeCloseTo(5e-4, 18);
    expect(lr(200, 'lenet300')).toBe(0);
    expect(lr(0, 'lenet5')).toBe(1e-3);
    expect(lr(100, 'lenet5')).toBeCloseTo(5e-4, 18);
    expect(lr(150, 'lenet5')).toBeCloseTo(2.5e-4, 18);
    expect(lr(200, 'lenet5')).toBe(0);
    // Scaled to a shorter run: flat for the first half, then linear to 0.
    expect(learningRateSchedule(25, 50, 1e-3, 'lenet300')).toBe(1e-3);
    expect(learningRateSchedule(37.5, 50, 1e-3, 'lenet300')).toBeCloseTo(5e-4, 18);
  });

  test('schedule.learning_rate: monotone non-increasing, within [0, baseLr]', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 500, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 1e-6, max: 1, noNaN: true }),
        fc.constantFrom<LearningRateScheduleKind>('lenet300', 'lenet5'),
        (total, u, v, base, kind) => {
          const [lo, hi] = u <= v ? [u * total, v * total] : [v * total, u * total];
          const x = learningRateSchedule(lo, total, base, kind);
          const y = learningRateSchedule(hi, total, base, kind);
          expect(y).toBeLessThanOrEqual(x);
          expect(y).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThanOrEqual(base);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------- errors

describe('spec/objective.md: errors name the argument', () => {
  const theta = { shape: [2, 2], data: [0.1, -0.2, 0.3, 0.4] };
  const noise = { shape: [2, 2], data: [-10, -10, -10, -10] };
  const profile: ProfileName = 'molchanov2017';

  test('kl.layer errors', () => {
    expectVdspecError(
      () => layerKl({ theta, noise }, profile, untyped<LayerKind>('dense3')),
      'layer',
    );
    expectVdspecError(() => layerKl(untyped(null), profile, 'dense'), 'inputs');
    expectVdspecError(() => layerKl({ theta, noise }, profile, 'conv2d'), 'theta');
    expectVdspecError(
      () => layerKl({ theta: { shape: [2, 2], data: [0, NaN, 0, 0] }, noise }, profile, 'dense'),
      'theta',
    );
    expectVdspecError(
      () => layerKl({ theta, noise: { shape: [2, 1], data: [0, 0] } }, profile, 'dense'),
      'log_sigma2',
    );
    expectVdspecError(
      () =>
        layerKl({ theta, noise: { shape: [2, 2], data: [0, 0, Infinity, 0] } }, profile, 'dense'),
      'log_sigma2',
    );
    expectVdspecError(
      () =>
        layerKl({ theta, noise: { shape: [3], data: [0, 0, 0] } }, 'deepbayes-pytorch', 'dense'),
      'log_sigma',
    );
    expectVdspecError(
      () => layerKl({ theta, noise: { shape: [3], data: [0, 0, 0] } }, 'kingma2015', 'dense'),
      'log_alpha',
    );
    expectVdspecError(
      () => layerKl({ theta, noise }, untyped<ProfileName>('nope'), 'dense'),
      'profile',
    );
    expectVdspecError(() => layerKlVjp({ theta, noise }, NaN, profile, 'dense'), 'cotangent');
    expectVdspecError(() => layerKlVjp({ theta, noise }, Infinity, profile, 'dense'), 'cotangent');
  });

  test('objective.cross_entropy and objective.sgvb errors', () => {
    const logits = { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] };
    expectVdspecError(() => crossEntropy({ shape: [3], data: [1, 2, 3] }, [0]), 'logits');
    expectVdspecError(() => crossEntropy({ shape: [0, 3], data: [] }, []), 'logits');
    expectVdspecError(() => crossEntropy({ shape: [1, 2], data: [1, Infinity] }, [0]), 'logits');
    expectVdspecError(() => crossEntropy(logits, [0]), 'labels');
    expectVdspecError(() => crossEntropy(logits, [0, 3]), 'labels');
    expectVdspecError(() => crossEntropy(logits, [-1, 0]), 'labels');
    expectVdspecError(() => crossEntropy(logits, [0.5, 0]), 'labels');
    expectVdspecError(() => crossEntropy(logits, untyped('01')), 'labels');
    expectVdspecError(() => crossEntropyVjp(logits, [0, 1], NaN), 'cotangentMean');
    const ok = { logits, labels: [0, 1], trainSize: 100, klWeight: 1, kl: 3 };
    expectVdspecError(() => sgvbObjective({ ...ok, trainSize: 0 }), 'trainSize');
    expectVdspecError(() => sgvbObjective({ ...ok, trainSize: 10.5 }), 'trainSize');
    expectVdspecError(() => sgvbObjective({ ...ok, klWeight: -0.1 }), 'klWeight');
    expectVdspecError(() => sgvbObjective({ ...ok, klWeight: NaN }), 'klWeight');
    expectVdspecError(() => sgvbObjective({ ...ok, kl: Infinity }), 'kl');
    expectVdspecError(() => sgvbObjective({ ...ok, labels: [0, 7] }), 'labels');
    expectVdspecError(() => sgvbObjective(untyped(undefined)), 'inputs');
    expectVdspecError(() => sgvbObjectiveVjp(ok, NaN), 'cotangent');
  });

  test('schedule errors', () => {
    expectVdspecError(() => klWeightSchedule(-1), 'epoch');
    expectVdspecError(() => klWeightSchedule(NaN), 'epoch');
    expectVdspecError(() => klWeightSchedule(Infinity), 'epoch');
    expectVdspecError(() => klWeightSchedule(1, { start: -1 }), 'options.start');
    expectVdspecError(() => klWeightSchedule(1, { start: 10, end: 5 }), 'options.end');
    expectVdspecError(() => klWeightSchedule(1, untyped(null)), 'options');
    expectVdspecError(() => learningRateSchedule(201, 200, 1e-3, 'lenet300'), 'epoch');
    expectVdspecError(() => learningRateSchedule(-1, 200, 1e-3, 'lenet5'), 'epoch');
    expectVdspecError(() => learningRateSchedule(0, 0, 1e-3, 'lenet5'), 'totalEpochs');
    expectVdspecError(() => learningRateSchedule(0, Infinity, 1e-3, 'lenet5'), 'totalEpochs');
    expectVdspecError(() => learningRateSchedule(0, 200, 0, 'lenet5'), 'baseLr');
    expectVdspecError(() => learningRateSchedule(0, 200, NaN, 'lenet5'), 'baseLr');
    expectVdspecError(
      () => learningRateSchedule(0, 200, 1e-3, untyped<LearningRateScheduleKind>('vgg')),
      'kind',
    );
  });
});

// ---------------------------------------------------------------- edges found by mutation testing

describe('spec/objective.md: checks and messages', () => {
  const theta = { shape: [1, 2], data: [0.3, -0.2] };
  const noise = { shape: [1, 2], data: [-3, -3] };

  test('kl.layer: the layer kind and the inputs object', () => {
    const layerMessage = "expected 'dense' or 'conv2d', got dense3";
    expectRefusal(
      () => layerKl({ theta, noise }, 'molchanov2017', untyped<LayerKind>('dense3')),
      'invalid_argument',
      'layer',
      layerMessage,
    );
    expectRefusal(
      () => layerKlVjp({ theta, noise }, 1, 'molchanov2017', untyped<LayerKind>('dense3')),
      'invalid_argument',
      'layer',
      layerMessage,
    );
    // A number, not only null: `typeof` alone must refuse what is not an object.
    for (const inputs of [7, null, 'theta']) {
      expectRefusal(
        () => layerKl(untyped(inputs), 'molchanov2017', 'dense'),
        'invalid_argument',
        'inputs',
        'expected an object {theta, noise}',
      );
    }
  });

  test('objective.sgvb: the inputs object', () => {
    // null passes `typeof === 'object'`; only its own test keeps it from being destructured.
    for (const inputs of [null, undefined, 7]) {
      const message = 'expected an object {logits, labels, trainSize, klWeight, kl}';
      expectRefusal(() => sgvbObjective(untyped(inputs)), 'invalid_argument', 'inputs', message);
      expectRefusal(() => sgvbObjectiveVjp(untyped(inputs)), 'invalid_argument', 'inputs', message);
    }
  });

  test('schedules: the options object, the positive arguments and the kind', () => {
    // A number as options would otherwise read as {} (7.start is undefined) and give the defaults.
    for (const options of [7, null, 'start']) {
      expectRefusal(
        () => klWeightSchedule(1, untyped(options)),
        'invalid_argument',
        'options',
        'expected an object {start?, end?}',
      );
    }
    expectRefusal(
      () => learningRateSchedule(0, 0, 1e-3, 'lenet5'),
      'invalid_argument',
      'totalEpochs',
      'must be > 0, got 0',
    );
    expectRefusal(
      () => learningRateSchedule(0, -5, 1e-3, 'lenet300'),
      'invalid_argument',
      'totalEpochs',
      'must be > 0, got -5',
    );
    expectRefusal(
      () => learningRateSchedule(0, 200, 0, 'lenet5'),
      'invalid_argument',
      'baseLr',
      'must be > 0, got 0',
    );
    expectRefusal(
      () => learningRateSchedule(0, 200, -0.001, 'lenet300'),
      'invalid_argument',
      'baseLr',
      'must be > 0, got -0.001',
    );
    expectRefusal(
      () => learningRateSchedule(0, 200, 1e-3, untyped<LearningRateScheduleKind>('vgg')),
      'invalid_argument',
      'kind',
      "expected 'lenet300' or 'lenet5', got vgg",
    );
  });
});

describe('spec/objective.md: the branches at their edges', () => {
  test('the compensated sum keeps what a plain sum loses, on either side of the larger term', () => {
    // 1 is below half an ulp of 1e100: a plain sum gives 0. The first 1 is lost while the sum is
    // smaller than the term added (1 + 1e100), the second while it is larger (1e100 + 1).
    const values = [1, 1e100, 1, -1e100];
    expect(naiveSum(values)).toBe(0);
    expect(compensatedSum(values)).toBe(2);
    expect(compensatedSum([-1, -1e100, -1, 1e100])).toBe(-2);
    // An infinite term: inf - inf makes the compensation NaN, the sum is the answer.
    expect(compensatedSum([1, Infinity, 1])).toBe(Infinity);
  });

  test('kl.layer: a VD log_alpha inside the clip gets its gradient although dla/dtheta is 0', () => {
    // log_alpha is the learned parameter: dla/dtheta = 0 and dla/dnoise = 1 for every weight.
    const profile = PROFILES.kingma2015;
    const g = 1.5;
    const theta = { shape: [1, 2], data: [0.3, -0.2] };
    const close = (got: number, want: number) =>
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-14 * Math.abs(want));
    const perWeight = layerKlVjp(
      { theta, noise: { shape: [1, 2], data: [-1, -2] } },
      g,
      profile,
      'dense',
    );
    expect(perWeight.theta.data).toEqual([0, 0]);
    close(perWeight.noise.data[0]!, g * expectedKlSlope(-1, profile));
    close(perWeight.noise.data[1]!, g * expectedKlSlope(-2, profile));
    expect(g * expectedKlSlope(-1, profile)).toBeLessThan(-0.1);
    // A scalar log_alpha covers both weights: its gradient is the sum of theirs.
    const scalar = layerKlVjp({ theta, noise: { shape: [], data: [-1] } }, g, profile, 'dense');
    close(scalar.noise.data[0]!, 2 * g * expectedKlSlope(-1, profile));
  });

  test("kl.layer: where both partials are 0, KL' is never evaluated (a custom cubic-KL profile with no clip)", () => {
    // theta = 0 without eps or clip: log_alpha = +inf, where the cubic KL (and its slope) has no
    // value and klApprox refuses (spec/objective.md#kllayer, "Edge cases"). Every partial is 0
    // there, so the gradient is 0, and the other weight's gradient is the chain rule's.
    const base = PROFILES.molchanov2017;
    const cubicNoClip: Profile = {
      ...base,
      kl: { approximation: 'vd_cubic', constant: 'dropped' },
      dense: { ...base.dense, logAlpha: { ...base.dense.logAlpha, clip: null } },
    };
    const inputs = {
      theta: { shape: [1, 2], data: [0, 0.5] },
      noise: { shape: [1, 2], data: [-3, -3] },
    };
    const g = 1.5;
    const grad = layerKlVjp(inputs, g, cubicNoClip, 'dense');
    expect(grad.theta.data[0]).toBe(0);
    expect(grad.noise.data[0]).toBe(0);
    const la = -3 - Math.log(0.25);
    const slope = g * expectedKlSlope(la, cubicNoClip);
    const close = (got: number, want: number) =>
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-14 * Math.abs(want));
    close(grad.theta.data[1]!, slope * (-2 / 0.5));
    close(grad.noise.data[1]!, slope);
    expectRefusal(
      () => layerKl(inputs, cubicNoClip, 'dense'),
      'non_finite',
      'log_alpha',
      'log_alpha = +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)',
    );
  });

  test('objective.cross_entropy: crossEntropyVjp is exactly [batch, classes], values by hand', () => {
    // Row 0: softmax of [0, 0, 0] is 1/3 each, label 1. Row 1: softmax of [ln 2, 0, 0] is
    // [1/2, 1/4, 1/4], label 0. With g = 3 and batch 2: g (softmax - onehot) / 2.
    const logits = { shape: [2, 3], data: [0, 0, 0, Math.LN2, 0, 0] };
    const grad = crossEntropyVjp(logits, [1, 0], 3);
    expect(grad.shape).toEqual([2, 3]);
    expect(grad.data).toHaveLength(6);
    const expected = [0.5, -1, 0.5, -0.75, 0.375, 0.375];
    expected.forEach((want, i) =>
      expect(Math.abs(grad.data[i]! - want)).toBeLessThanOrEqual(1e-15),
    );
  });
});
