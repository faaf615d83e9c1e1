/**
 * Properties of spec/log-alpha.md: log_alpha from the parameters, the clip and
 * its gradient, the per-weight variance and its partials, the mask, VD's
 * broadcasting, and the edge-case table of the page.
 *
 * The expected values come from `specWeight` below, an independent transcription
 * of the page's equations (it shares no code with src/reference/logAlpha.ts).
 */
import fc from 'fast-check';
import { bignumber, exp as bigExp } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { SVD_LOG_ALPHA_MAX, SVD_LOG_ALPHA_MIN, SVD_PRUNE_THRESHOLD } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import {
  PROFILE_NAMES,
  PROFILES,
  type LayerKind,
  type Profile,
  type ProfileName,
} from '../../src/profiles.js';
import {
  broadcastIndex,
  clipGradient,
  keepMask,
  klProfile,
  logAlpha,
  maskFromLogAlpha,
  sumToShape,
  weightStatistics,
  type WeightStatistics,
} from '../../src/reference/logAlpha.js';
import { sizeOf } from '../../src/tensor.js';
import { expectSpecBlock } from './spec-blocks.js';

const LAYERS: readonly LayerKind[] = ['dense', 'conv2d'];
const EPS = Number.EPSILON;
const CASES = PROFILE_NAMES.flatMap((name) => LAYERS.map((layer) => [name, layer] as const));
const SVD_CASES = CASES.filter(([name]) => PROFILES[name].algorithm === 'svd');
/** The profiles and layer kinds that clip log_alpha at all (state-of-sparsity does not, by default). */
const CLIPPED_CASES = CASES.filter(([name, layer]) => PROFILES[name][layer].logAlpha.clip !== null);

// ---------------------------------------------------------------------------
// The page's equations, transcribed independently of the reference.
// ---------------------------------------------------------------------------

interface SpecWeight {
  raw: number;
  logAlpha: number;
  mask: number;
  variance: number;
  dLogAlphaDTheta: number;
  dLogAlphaDNoise: number;
  dVarianceDTheta: number;
  dVarianceDNoise: number;
  /** Size of the terms summed into dVarianceDTheta, for a cancellation-aware tolerance. */
  dVarianceDThetaScale: number;
}

/** spec/log-alpha.md#partial-derivatives: a partial that is exactly 0 stays 0, whatever it multiplies. */
function hardZeroProduct(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : a * b;
}

function noiseScale(profile: Profile): number {
  return profile.noiseParameter === 'log_sigma' ? 2 : 1;
}

function specWeight(profile: Profile, layer: LayerKind, theta: number, noise: number): SpecWeight {
  const { logAlpha: convention, variance: varianceKind } = profile[layer];
  const scale = noiseScale(profile);
  const logSigma2 = scale * noise;
  const eps = convention.thetaEps;

  let raw: number;
  let dRawDTheta: number;
  let dRawDNoise: number;
  switch (convention.form) {
    case 'learned':
      raw = noise;
      dRawDTheta = 0;
      dRawDNoise = 1;
      break;
    case 'log_theta2':
      raw = logSigma2 - Math.log(theta * theta + eps);
      // At theta = 0 the derivative 2 theta / (theta^2 + eps) is 0 (or 0/0 with eps = 0, where the clip zeroes it).
      dRawDTheta = theta === 0 ? 0 : (-2 * theta) / (theta * theta + eps);
      dRawDNoise = scale;
      break;
    case 'log_abs_theta':
      raw = logSigma2 - 2 * Math.log(Math.abs(theta) + eps);
      // sign(0) = 0, as torch.abs and tf.abs differentiate |theta| at 0.
      dRawDTheta = theta === 0 ? 0 : (-2 * Math.sign(theta)) / (Math.abs(theta) + eps);
      dRawDNoise = scale;
      break;
  }

  const min = convention.clip?.min ?? -Infinity;
  const max = convention.clip?.max ?? Infinity;
  const insideClip = Number.isFinite(raw) && raw >= min && raw <= max;
  // Exactly on a bound the clip's derivative is its gradientAtBound (1 when absent).
  const onBound = raw === min || raw === max;
  const passes = insideClip && !(onBound && convention.clip?.gradientAtBound === 0);
  const logAlphaValue = Math.min(Math.max(raw, min), max);
  const dLogAlphaDTheta = passes ? dRawDTheta : 0;
  const dLogAlphaDNoise = passes ? dRawDNoise : 0;

  let mask = 1;
  if (profile.prune !== null) {
    const compared = profile.prune.from === 'clipped' ? logAlphaValue : raw;
    const pruned =
      profile.prune.comparison === '>'
        ? compared > profile.prune.threshold
        : compared >= profile.prune.threshold;
    mask = pruned ? 0 : 1;
  }

  if (varianceKind === 'sigma2') {
    const sigma2 = Math.exp(logSigma2);
    return {
      raw,
      logAlpha: logAlphaValue,
      mask,
      variance: sigma2,
      dLogAlphaDTheta,
      dLogAlphaDNoise,
      dVarianceDTheta: 0,
      dVarianceDNoise: scale * sigma2,
      dVarianceDThetaScale: 0,
    };
  }
  if (varianceKind === 'sigma2_rebuilt') {
    // log_sigma2 rebuilt from the clipped log_alpha: exp(log_sigma2) where the clip passes
    // (the theta partials cancel), exp(bound) * (theta^2 + eps) beyond it.
    const bound = Math.exp(logAlphaValue);
    const variance = passes ? Math.exp(logSigma2) : bound * (theta * theta + eps);
    return {
      raw,
      logAlpha: logAlphaValue,
      mask,
      variance,
      dLogAlphaDTheta,
      dLogAlphaDNoise,
      dVarianceDTheta: passes ? 0 : hardZeroProduct(2 * bound, theta),
      dVarianceDNoise: passes ? scale * variance : 0,
      dVarianceDThetaScale: 0,
    };
  }
  if (logAlphaValue === Infinity) {
    // No clip max: the limit of alpha * theta^2 at fixed log_sigma2 is sigma2 itself.
    return {
      raw,
      logAlpha: logAlphaValue,
      mask,
      variance: Math.exp(logSigma2),
      dLogAlphaDTheta,
      dLogAlphaDNoise,
      dVarianceDTheta: 0,
      dVarianceDNoise: 0,
      dVarianceDThetaScale: 0,
    };
  }
  const alpha = Math.exp(logAlphaValue);
  const variance = alpha * theta * theta;
  // The page's second form: 2 alpha theta * share, the cancellation done algebraically.
  const share =
    dLogAlphaDTheta === 0 || convention.form === 'learned'
      ? 1
      : convention.form === 'log_theta2'
        ? eps / (theta * theta + eps)
        : eps / (Math.abs(theta) + eps);
  const direct = 2 * alpha * theta;
  return {
    raw,
    logAlpha: logAlphaValue,
    mask,
    variance,
    dLogAlphaDTheta,
    dLogAlphaDNoise,
    dVarianceDTheta: hardZeroProduct(direct, share),
    dVarianceDNoise: hardZeroProduct(variance, dLogAlphaDNoise),
    dVarianceDThetaScale: Math.abs(direct),
  };
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

/** Theta-shaped tensors for a layer kind: [k, 1] dense, [1, 1, k, 1] conv2d (HWIO). */
function shapeFor(layer: LayerKind, k: number): number[] {
  return layer === 'dense' ? [k, 1] : [1, 1, k, 1];
}

function stats(
  profile: Profile,
  layer: LayerKind,
  thetas: readonly number[],
  noises: readonly number[],
): WeightStatistics {
  const shape = shapeFor(layer, thetas.length);
  return weightStatistics(
    { shape, data: [...thetas] },
    { shape, data: [...noises] },
    profile,
    layer,
  );
}

function one(profile: Profile, layer: LayerKind, theta: number, noise: number) {
  const s = stats(profile, layer, [theta], [noise]);
  return {
    raw: s.logAlphaRaw[0]!,
    logAlpha: s.logAlpha[0]!,
    mask: s.mask[0]!,
    variance: s.variance[0]!,
    dLogAlphaDTheta: s.dLogAlphaDTheta[0]!,
    dLogAlphaDNoise: s.dLogAlphaDNoise[0]!,
    dVarianceDTheta: s.dVarianceDTheta[0]!,
    dVarianceDNoise: s.dVarianceDNoise[0]!,
  };
}

/**
 * Equal up to float64 rounding: identical (infinities, zeros), or within
 * `ulps` units of the larger magnitude (or of `scale`, where the value is a
 * difference of larger terms). Both sides evaluate the same equations, so a
 * few ulps cover a different order of operations.
 */
function close(actual: number, expected: number, ulps = 8, scale = 0): boolean {
  if (actual === expected) return true;
  if (Number.isNaN(actual) || Number.isNaN(expected)) return false;
  if (!Number.isFinite(actual) || !Number.isFinite(expected)) return false;
  const size = Math.max(Math.abs(actual), Math.abs(expected), scale);
  return Math.abs(actual - expected) <= ulps * EPS * size;
}

const QUANTITIES = [
  'raw',
  'logAlpha',
  'mask',
  'variance',
  'dLogAlphaDTheta',
  'dLogAlphaDNoise',
  'dVarianceDTheta',
  'dVarianceDNoise',
] as const;

function describeMismatch(
  name: string,
  layer: LayerKind,
  theta: number,
  noise: number,
  got: Record<(typeof QUANTITIES)[number], number>,
  want: SpecWeight,
): string | null {
  const bad = QUANTITIES.filter((q) =>
    q === 'dVarianceDTheta'
      ? !close(got[q], want[q], 8, want.dVarianceDThetaScale)
      : !close(got[q], want[q]),
  );
  if (bad.length === 0) return null;
  return `${name} ${layer} theta=${theta} noise=${noise}: ${bad
    .map((q) => `${q} got ${got[q]} want ${want[q]}`)
    .join('; ')}`;
}

/** Thetas the page names as edge cases, then everything else fast-check likes to try. */
const SPECIAL_THETAS = [
  0,
  -0,
  // Subnormal: theta^2 underflows to 0 (below about 1.57e-162).
  5e-324,
  -5e-324,
  1e-310,
  // theta^2 is subnormal (1e-320): raw finite but far above any clip.
  1e-160,
  -1e-160,
  // The size of the profiles' eps.
  1e-8,
  1,
  -1,
  // exp(8) * theta^2 overflows from about 2.46e152 on, theta^2 itself from about 1.34e154.
  2.5e152,
  1e154,
  -1e154,
  1e300,
  -1e300,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
];
const anyFiniteTheta = fc.oneof(
  fc.constantFrom(...SPECIAL_THETAS),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: -20, max: 20, noNaN: true }),
);
const anyFiniteNoise = fc.oneof(
  fc.constantFrom(0, 3, 8, -8, 10, -10, 1382, -1382, 1e300, -1e300, Number.MAX_VALUE),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: -40, max: 40, noNaN: true }),
);

/** The log term of the page's formula for a profile (what raw subtracts from log_sigma2). */
function logTerm(profile: Profile, layer: LayerKind, theta: number): number {
  const { form, thetaEps } = profile[layer].logAlpha;
  if (form === 'log_theta2') return Math.log(theta * theta + thetaEps);
  if (form === 'log_abs_theta') return 2 * Math.log(Math.abs(theta) + thetaEps);
  return 0;
}

/**
 * Inputs (theta, noise) for which the reference's raw log_alpha is exactly
 * `target`. Tries thetas whose log term subtracts back exactly; the eps of
 * some profiles spoils theta = 1 (log(1 + 1e-8) != 0), so larger powers of two
 * absorb it.
 */
function exactInput(
  profile: Profile,
  layer: LayerKind,
  target: number,
): { theta: number; noise: number } {
  for (const theta of [1, 2, 4, 8, 16, 32, 64, 1024, 65536]) {
    const noise = (target + logTerm(profile, layer, theta)) / noiseScale(profile);
    if (one(profile, layer, theta, noise).raw === target) return { theta, noise };
  }
  throw new Error(`no input found giving raw log_alpha exactly ${target} for ${profile.name}`);
}

function clipOf(profile: Profile, layer: LayerKind): { min: number; max: number } {
  const clip = profile[layer].logAlpha.clip;
  return { min: clip?.min ?? -Infinity, max: clip?.max ?? Infinity };
}

function vdspecErrorOf(f: () => unknown): { code: string; argument: string | undefined } {
  try {
    f();
  } catch (e) {
    if (isVdspecError(e)) return { code: e.code, argument: e.argument };
    throw new Error(`expected a VdspecError, got ${String(e)}`);
  }
  throw new Error('expected a VdspecError, nothing was thrown');
}

// ---------------------------------------------------------------------------

describe('spec/log-alpha.md#the-clip-and-its-gradient: the clip holds for any finite input', () => {
  it.each(CASES)(
    '%s %s: clipped log_alpha inside the clip, nothing NaN, for any finite theta and noise',
    (name, layer) => {
      const profile = PROFILES[name];
      const { min, max } = clipOf(profile, layer);
      fc.assert(
        fc.property(
          fc.array(fc.tuple(anyFiniteTheta, anyFiniteNoise), { minLength: 1, maxLength: 8 }),
          (pairs) => {
            const s = stats(
              profile,
              layer,
              pairs.map((p) => p[0]),
              pairs.map((p) => p[1]),
            );
            for (let i = 0; i < pairs.length; i++) {
              const at = `theta=${pairs[i]![0]} noise=${pairs[i]![1]}`;
              expect(s.logAlpha[i]! >= min && s.logAlpha[i]! <= max, at).toBe(true);
              for (const q of QUANTITIES) {
                const values = q === 'raw' ? s.logAlphaRaw : s[q];
                expect(Number.isNaN(values[i]), `${q} is NaN at ${at}`).toBe(false);
              }
            }
          },
        ),
        { numRuns: 150 },
      );
    },
  );

  it.each(CASES)(
    '%s %s: every per-weight value equals the page equations (incl. subnormal, huge theta)',
    (name, layer) => {
      const profile = PROFILES[name];
      // The named edge cases first, each against every special noise, then random pairs.
      const failures: string[] = [];
      for (const theta of SPECIAL_THETAS) {
        for (const noise of [0, -10, 3, 1382, 1e300, -1e300]) {
          const m = describeMismatch(
            name,
            layer,
            theta,
            noise,
            one(profile, layer, theta, noise),
            specWeight(profile, layer, theta, noise),
          );
          if (m !== null) failures.push(m);
        }
      }
      expect(failures, failures.slice(0, 6).join('\n')).toEqual([]);
      fc.assert(
        fc.property(anyFiniteTheta, anyFiniteNoise, (theta, noise) => {
          const m = describeMismatch(
            name,
            layer,
            theta,
            noise,
            one(profile, layer, theta, noise),
            specWeight(profile, layer, theta, noise),
          );
          expect(m).toBeNull();
        }),
        { numRuns: 300 },
      );
    },
  );
});

describe('spec/log-alpha.md#theta--0: theta = 0', () => {
  it.each(SVD_CASES.filter(([n, l]) => PROFILES[n][l].logAlpha.thetaEps === 0))(
    '%s %s (no eps): raw +inf, log_alpha = clip max, pruned, variance 0, every gradient 0',
    (name, layer) => {
      const profile = PROFILES[name];
      fc.assert(
        fc.property(fc.constantFrom(0, -0), anyFiniteNoise, (theta, noise) => {
          const s = one(profile, layer, theta, noise);
          // Independent of the noise: log(0) = -inf dominates any finite log_sigma2.
          expect(s.raw).toBe(Infinity);
          expect(s.logAlpha).toBe(clipOf(profile, layer).max);
          expect(s.mask).toBe(0);
          expect(s.variance).toBe(0);
          for (const g of [s.dLogAlphaDTheta, s.dLogAlphaDNoise, s.dVarianceDTheta]) {
            expect(g === 0).toBe(true);
          }
          expect(s.dVarianceDNoise === 0).toBe(true);
        }),
        { numRuns: 100 },
      );
    },
  );

  it.each(SVD_CASES.filter(([n, l]) => PROFILES[n][l].logAlpha.thetaEps > 0))(
    '%s %s (with eps): the finite values log_sigma2 - log(eps) (or - 2 log(eps)) gives',
    (name, layer) => {
      const profile = PROFILES[name];
      const { form, thetaEps } = profile[layer].logAlpha;
      const scale = noiseScale(profile);
      const { min, max } = clipOf(profile, layer);
      fc.assert(
        // Wide enough that raw = log_sigma2 + 18..74 lands below, inside and above every clip.
        fc.property(fc.double({ min: -120, max: 40, noNaN: true }), (noise) => {
          const s = one(profile, layer, 0, noise);
          const logSigma2 = scale * noise;
          const raw =
            form === 'log_theta2'
              ? logSigma2 - Math.log(thetaEps)
              : logSigma2 - 2 * Math.log(thetaEps);
          const inside = raw >= min && raw <= max;
          expect(s.raw).toBe(raw);
          expect(s.logAlpha).toBe(Math.min(Math.max(raw, min), max));
          expect(s.dLogAlphaDTheta === 0).toBe(true);
          expect(s.dLogAlphaDNoise).toBe(inside ? scale : 0);
          if (profile[layer].variance === 'sigma2') {
            // The variance is sigma2 itself: nonzero at theta = 0, unlike the canonical profile.
            expect(s.variance).toBe(Math.exp(logSigma2));
            expect(s.dVarianceDNoise).toBe(scale * Math.exp(logSigma2));
          } else if (profile[layer].variance === 'sigma2_rebuilt') {
            // sigma2 where the clip passes; exp(bound) * eps beyond it (theta^2 = 0).
            const passes = raw > min && raw < max;
            expect(s.variance).toBe(
              passes ? Math.exp(logSigma2) : Math.exp(Math.min(Math.max(raw, min), max)) * thetaEps,
            );
          } else {
            expect(s.variance).toBe(0);
            expect(s.dVarianceDNoise === 0).toBe(true);
          }
          expect(s.dVarianceDTheta === 0).toBe(true);
        }),
        { numRuns: 200 },
      );
    },
  );

  it('kingma2015: theta = 0 leaves log_alpha alone; variance and its partials are 0', () => {
    const profile = PROFILES.kingma2015;
    fc.assert(
      fc.property(fc.double({ min: -30, max: 30, noNaN: true }), (noise) => {
        for (const layer of LAYERS) {
          const s = one(profile, layer, 0, noise);
          expect(s.logAlpha).toBe(Math.min(noise, 0));
          expect(s.variance).toBe(0);
          expect(s.dVarianceDTheta === 0 && s.dVarianceDNoise === 0).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });
});

/**
 * The page's statement of the clip's derivative exactly at a bound, per
 * profile: Theano's switch selects the constant there (0); clamp,
 * clip_by_value and the papers' closed interval pass it (1).
 */
const GRADIENT_AT_BOUND: Readonly<Record<string, 0 | 1>> = {
  'bayesgroup-theano': 0,
};

describe("spec/log-alpha.md#the-clip-and-its-gradient: 1 inside, 0 strictly outside, the profile's gradientAtBound on a bound", () => {
  it.each(CLIPPED_CASES)(
    '%s %s: at exactly a bound the gradient is gradientAtBound',
    (name, layer) => {
      const profile = PROFILES[name];
      const clip = profile[layer].logAlpha.clip;
      const bounds = [clip?.min, clip?.max].filter((b): b is number => typeof b === 'number');
      expect(bounds.length).toBeGreaterThan(0);
      const atBound = GRADIENT_AT_BOUND[name] ?? 1;
      expect(clip?.gradientAtBound ?? 1).toBe(atBound);
      const dRawDNoise = profile[layer].logAlpha.form === 'learned' ? 1 : noiseScale(profile);
      for (const bound of bounds) {
        const { theta, noise } = exactInput(profile, layer, bound);
        const s = one(profile, layer, theta, noise);
        expect(s.logAlpha).toBe(bound);
        expect(s.dLogAlphaDNoise).toBe(atBound * dRawDNoise);
        expect(s.dLogAlphaDTheta).toBe(specWeight(profile, layer, theta, noise).dLogAlphaDTheta);
        if (atBound === 0) expect(s.dLogAlphaDTheta === 0).toBe(true);
      }
    },
  );

  it('molchanov2017 and kingma2015: one ulp outside a bound the gradient is 0', () => {
    // theta = 1 makes log(theta^2) exactly 0, so raw is the noise itself.
    const svd = PROFILES.molchanov2017;
    const up = (x: number) => x + Math.abs(x) * EPS; // next double above x (|x| a power of 2).
    expect(one(svd, 'dense', 1, SVD_LOG_ALPHA_MAX).dLogAlphaDNoise).toBe(1);
    expect(one(svd, 'dense', 1, up(SVD_LOG_ALPHA_MAX)).dLogAlphaDNoise).toBe(0);
    expect(one(svd, 'dense', 1, SVD_LOG_ALPHA_MIN).dLogAlphaDNoise).toBe(1);
    expect(one(svd, 'dense', 1, -up(-SVD_LOG_ALPHA_MIN)).dLogAlphaDNoise).toBe(0);
    const vd = PROFILES.kingma2015;
    expect(one(vd, 'dense', 1, 0).dLogAlphaDNoise).toBe(1);
    expect(one(vd, 'dense', 1, Number.MIN_VALUE).dLogAlphaDNoise).toBe(0);
    expect(one(vd, 'dense', 1, Number.MIN_VALUE).logAlpha).toBe(0);
  });

  it.each(CLIPPED_CASES)(
    '%s %s: strictly outside the clip both log_alpha partials are 0',
    (name, layer) => {
      const profile = PROFILES[name];
      const { min, max } = clipOf(profile, layer);
      const bounds = [
        ...(Number.isFinite(min) ? [{ bound: min, dir: -1 }] : []),
        ...(Number.isFinite(max) ? [{ bound: max, dir: 1 }] : []),
      ];
      fc.assert(
        fc.property(
          fc.constantFrom(...bounds),
          fc.double({ min: 1e-6, max: 1e3, noNaN: true }),
          fc.double({ min: 0.05, max: 20, noNaN: true }),
          fc.boolean(),
          ({ bound, dir }, beyond, magnitude, negative) => {
            const theta = negative ? -magnitude : magnitude;
            const target = bound + dir * beyond;
            const noise = (target + logTerm(profile, layer, theta)) / noiseScale(profile);
            const s = one(profile, layer, theta, noise);
            fc.pre(dir > 0 ? s.raw > bound : s.raw < bound);
            expect(s.logAlpha).toBe(bound);
            expect(s.dLogAlphaDNoise === 0 && s.dLogAlphaDTheta === 0).toBe(true);
          },
        ),
        { numRuns: 200 },
      );
    },
  );

  it.each(CASES)(
    '%s %s: inside the clip dLogAlphaDNoise is 1 (2 for log_sigma); all partials match finite differences',
    (name, layer) => {
      const profile = PROFILES[name];
      const { min, max } = clipOf(profile, layer);
      const form = profile[layer].logAlpha.form;
      const expectedDNoise = form === 'learned' ? 1 : noiseScale(profile);
      // Central differences need raw at x +- h on the same side of a bound: keep 1e-3 away from each.
      const margin = 1e-3;
      fc.assert(
        fc.property(
          fc.double({ min: 0.05, max: 20, noNaN: true }),
          fc.boolean(),
          fc.double({ min: -12, max: 12, noNaN: true }),
          (magnitude, negative, target) => {
            const theta = negative ? -magnitude : magnitude;
            fc.pre(Math.abs(target - min) > margin && Math.abs(target - max) > margin);
            const noise = (target + logTerm(profile, layer, theta)) / noiseScale(profile);
            const s = one(profile, layer, theta, noise);
            const inside = target > min && target < max;
            expect(s.dLogAlphaDNoise).toBe(inside ? expectedDNoise : 0);

            const hNoise = 1e-6;
            const hTheta = 1e-6 * magnitude;
            const checks: [keyof typeof s, number, (t: number, v: number) => number, number][] = [
              ['dLogAlphaDNoise', hNoise, (t, v) => one(profile, layer, t, v).logAlpha, 0],
              ['dLogAlphaDTheta', hTheta, (t, v) => one(profile, layer, t, v).logAlpha, 1],
              ['dVarianceDNoise', hNoise, (t, v) => one(profile, layer, t, v).variance, 0],
              ['dVarianceDTheta', hTheta, (t, v) => one(profile, layer, t, v).variance, 1],
            ];
            for (const [quantity, h, f, wrtTheta] of checks) {
              const plus = wrtTheta ? f(theta + h, noise) : f(theta, noise + h);
              const minus = wrtTheta ? f(theta - h, noise) : f(theta, noise - h);
              const fd = (plus - minus) / (2 * h);
              // Rounding of f at x +- h, amplified by 1/h, plus the O(h^2) truncation
              // (|f'''| h^2 / 6 <= 1e-9 relative here: f is a log or an exp of a log).
              const tol =
                (8 * EPS * Math.max(Math.abs(plus), Math.abs(minus))) / h +
                1e-7 * (1 + Math.abs(s[quantity]));
              expect(
                Math.abs(fd - s[quantity]),
                `${quantity}: analytic ${s[quantity]} vs finite difference ${fd}`,
              ).toBeLessThanOrEqual(tol);
            }
          },
        ),
        { numRuns: 150 },
      );
    },
  );
});

describe('spec/log-alpha.md#svdlog_alpha: molchanov2017 is log_sigma2 - log(theta^2)', () => {
  it('agrees with a 64-digit evaluation inside the clip', () => {
    const profile = PROFILES.molchanov2017;
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        fc.boolean(),
        fc.double({ min: -30, max: 30, noNaN: true }),
        (magnitude, negative, logSigma2) => {
          const theta = negative ? -magnitude : magnitude;
          // mathjs BigNumbers carry 64 significant digits: this is exact to far below float64's ulp.
          const exact = bignumber(logSigma2)
            .minus(bignumber(theta).times(bignumber(theta)).ln())
            .toNumber();
          fc.pre(exact > SVD_LOG_ALPHA_MIN + 1e-9 && exact < SVD_LOG_ALPHA_MAX - 1e-9);
          for (const layer of LAYERS) {
            const got = logAlpha(
              { shape: [1, 1], data: [theta] },
              { shape: [1, 1], data: [logSigma2] },
              profile,
              layer,
            ).data[0]!;
            // Rounding theta^2 (relative 2^-53) moves its log by at most 2^-53 absolute; log
            // itself is within 1 ulp and the subtraction within half an ulp of the result.
            const size = Math.abs(logSigma2) + Math.abs(Math.log(theta * theta));
            expect(Math.abs(got - exact)).toBeLessThanOrEqual(EPS + 4 * EPS * size);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('spec/log-alpha.md#svdmask: the mask at exactly the threshold', () => {
  it('molchanov2017 keeps log_alpha = 3 (theta = 1, log_sigma2 = 3); bayesgroup-theano prunes it', () => {
    const canonical = one(PROFILES.molchanov2017, 'dense', 1, 3);
    expect(canonical.logAlpha).toBe(SVD_PRUNE_THRESHOLD);
    expect(canonical.mask).toBe(1);
    const theano = one(PROFILES['bayesgroup-theano'], 'dense', 1, 3);
    expect(theano.logAlpha).toBe(SVD_PRUNE_THRESHOLD);
    expect(theano.mask).toBe(0);
  });

  it.each(SVD_CASES)(
    '%s %s: log_alpha exactly 3 is kept under ">" and pruned under ">="',
    (name, layer) => {
      const profile = PROFILES[name];
      const { theta, noise } = exactInput(profile, layer, SVD_PRUNE_THRESHOLD);
      const shape = shapeFor(layer, 1);
      const mask = keepMask({ shape, data: [theta] }, { shape, data: [noise] }, profile, layer)
        .data[0];
      expect(mask).toBe(profile.prune?.comparison === '>' ? 1 : 0);
    },
  );

  it.each(PROFILE_NAMES)('%s: the mask is NOT(log_alpha <comparison> threshold)', (name) => {
    const profile = PROFILES[name];
    fc.assert(
      fc.property(
        fc.constantFrom(...LAYERS),
        fc.array(fc.tuple(anyFiniteTheta, anyFiniteNoise), { minLength: 1, maxLength: 8 }),
        (layer, pairs) => {
          const s = stats(
            profile,
            layer,
            pairs.map((p) => p[0]),
            pairs.map((p) => p[1]),
          );
          const source = profile.prune?.from === 'unclipped' ? s.logAlphaRaw : s.logAlpha;
          const fromLogAlpha = maskFromLogAlpha(
            { shape: s.shape, data: source },
            profile,
            'forward',
          );
          expect(fromLogAlpha.data).toEqual(s.mask);
          if (profile.prune === null) expect(s.mask.every((m) => m === 1)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('maskFromLogAlpha: just above 3 is pruned and just below kept, under both comparisons', () => {
    const above = SVD_PRUNE_THRESHOLD + 2 * SVD_PRUNE_THRESHOLD * EPS;
    const below = SVD_PRUNE_THRESHOLD - SVD_PRUNE_THRESHOLD * EPS;
    for (const name of PROFILE_NAMES) {
      const profile = PROFILES[name];
      if (profile.prune === null) continue;
      const m = maskFromLogAlpha({ shape: [3], data: [below, above, Infinity] }, profile);
      expect(m.data).toEqual([1, 0, 0]);
    }
  });
});

// ---------------------------------------------------------------------------
// VD broadcasting.
// ---------------------------------------------------------------------------

/** The flat index of `shape` that target's flat index `flat` reads under NumPy broadcasting. */
function broadcastSource(
  shape: readonly number[],
  target: readonly number[],
  flat: number,
): number {
  const coordinates: number[] = [];
  let rest = flat;
  for (let a = target.length - 1; a >= 0; a--) {
    coordinates.unshift(rest % target[a]!);
    rest = Math.floor(rest / target[a]!);
  }
  const lead = target.length - shape.length;
  let source = 0;
  for (let a = 0; a < shape.length; a++) {
    source = source * shape[a]! + (shape[a] === 1 ? 0 : coordinates[lead + a]!);
  }
  return source;
}

/** A target shape and a shape that broadcasts to it (dims set to 1, leading dims dropped). */
const broadcastPair = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
  .chain((target) =>
    fc
      .tuple(
        fc.integer({ min: 0, max: target.length }),
        fc.array(fc.boolean(), { minLength: target.length, maxLength: target.length }),
      )
      .map(([drop, ones]) => ({
        target,
        shape: target.slice(drop).map((d, i) => (ones[drop + i] ? 1 : d)),
      })),
  );

describe('spec/log-alpha.md#vdlog_alpha: one broadcasting rule for scalar, per-unit, per-weight', () => {
  const vd = PROFILES.kingma2015;
  const theta = { shape: [3, 2], data: [0.5, -1, 2, 0.25, -3, 1.5] };

  it('scalar [], per input unit [in, 1], per weight [in, out]', () => {
    const scalarLa = logAlpha(theta, { shape: [], data: [-0.7] }, vd, 'dense');
    expect(scalarLa.data).toEqual([-0.7, -0.7, -0.7, -0.7, -0.7, -0.7]);
    // The per-unit value above the VD clip max (alpha <= 1) is clipped to it.
    const perUnit = logAlpha(theta, { shape: [3, 1], data: [-1, 0.5, -2] }, vd, 'dense');
    expect(perUnit.data).toEqual([-1, -1, 0, 0, -2, -2]);
    const perWeight = logAlpha(
      theta,
      { shape: [3, 2], data: [-1, -2, -3, -4, -5, 6] },
      vd,
      'dense',
    );
    expect(perWeight.data).toEqual([-1, -2, -3, -4, -5, 0]);
    expect(perWeight.shape).toEqual([3, 2]);
  });

  it('any shape that broadcasts to theta: each weight reads its NumPy-broadcast element', () => {
    fc.assert(
      fc.property(
        broadcastPair,
        fc.constantFrom(...LAYERS),
        fc.double({ min: -5, max: 5, noNaN: true }),
        ({ target, shape }, layer, offset) => {
          const thetaT = {
            shape: target,
            data: Array.from({ length: sizeOf(target) }, (_, i) => i + 1),
          };
          const noise = {
            shape,
            data: Array.from({ length: sizeOf(shape) }, (_, i) => offset - i),
          };
          const s = weightStatistics(thetaT, noise, vd, layer);
          for (let i = 0; i < thetaT.data.length; i++) {
            const v = noise.data[broadcastSource(shape, target, i)]!;
            expect(s.logAlphaRaw[i]).toBe(v);
            expect(s.logAlpha[i]).toBe(Math.min(v, 0));
          }
          // The gradient w.r.t. the parameter sums the per-weight partials onto its shape:
          // each element collects 1 from every weight it feeds that lies inside the clip.
          const reduced = sumToShape(s.dLogAlphaDNoise, target, shape);
          const counts = new Array<number>(sizeOf(shape)).fill(0);
          for (let i = 0; i < thetaT.data.length; i++) {
            const j = broadcastSource(shape, target, i);
            if (noise.data[j]! <= 0) counts[j]! += 1;
          }
          expect(reduced.shape).toEqual(shape);
          expect(reduced.data).toEqual(counts);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('shapes that do not broadcast are rejected, naming log_alpha', () => {
    for (const shape of [[4, 1], [2, 3], [3], [1, 3, 2], [3, 2, 1]]) {
      const data = new Array<number>(sizeOf(shape)).fill(-1);
      const err = vdspecErrorOf(() => weightStatistics(theta, { shape, data }, vd, 'dense'));
      expect(err).toEqual({ code: 'shape_mismatch', argument: 'log_alpha' });
    }
  });

  it.each(PROFILE_NAMES.filter((n) => PROFILES[n].algorithm === 'svd'))(
    "%s: the SVD noise parameter must have theta's shape exactly (even a broadcastable one is rejected)",
    (name) => {
      const profile = PROFILES[name];
      for (const shape of [[], [3, 1], [1, 2], [2, 3], [6]]) {
        const data = new Array<number>(sizeOf(shape)).fill(-1);
        const err = vdspecErrorOf(() => weightStatistics(theta, { shape, data }, profile, 'dense'));
        expect(err).toEqual({ code: 'shape_mismatch', argument: profile.noiseParameter });
      }
    },
  );
});

describe('spec/log-alpha.md#errors: bad inputs are rejected naming the argument', () => {
  it.each(PROFILE_NAMES)('%s: NaN or an infinity in theta or the noise', (name) => {
    const profile = PROFILES[name];
    const ok = { shape: [2], data: [0.5, -0.5] };
    for (const bad of [NaN, Infinity, -Infinity]) {
      const badTensor = { shape: [2], data: [0.5, bad] };
      expect(vdspecErrorOf(() => weightStatistics(badTensor, ok, profile, 'dense')).argument).toBe(
        'theta',
      );
      expect(vdspecErrorOf(() => weightStatistics(ok, badTensor, profile, 'dense')).argument).toBe(
        profile.noiseParameter,
      );
    }
    expect(
      vdspecErrorOf(() => weightStatistics(ok, { shape: [3], data: [1, 2] }, profile, 'dense')),
    ).toEqual({ code: 'shape_mismatch', argument: profile.noiseParameter });
  });

  it('an unknown layer kind is a VdspecError naming layer (not a TypeError)', () => {
    const t = { shape: [1], data: [1] };
    const err = vdspecErrorOf(() =>
      weightStatistics(t, t, PROFILES.molchanov2017, 'conv3d' as LayerKind),
    );
    expect(err).toEqual({ code: 'invalid_argument', argument: 'layer' });
  });

  it('the shape messages say which rule failed: broadcasting (learned log_alpha) or the same shape', () => {
    const theta = { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] };
    expect(() =>
      weightStatistics(theta, { shape: [2, 2], data: [0, 0, 0, 0] }, PROFILES.kingma2015, 'dense'),
    ).toThrow("log_alpha: shape [2, 2] does not broadcast to theta's [2, 3]");
    expect(() =>
      weightStatistics(theta, { shape: [3], data: [0, 0, 0] }, PROFILES.molchanov2017, 'dense'),
    ).toThrow("log_sigma2: expected theta's shape [2, 3], got [3]");
    expect(() =>
      weightStatistics(theta, theta, PROFILES.molchanov2017, 'conv3d' as LayerKind),
    ).toThrow('layer: unknown layer kind conv3d');
    expect(() =>
      maskFromLogAlpha({ shape: [1], data: [3] }, PROFILES.molchanov2017, 'reprot' as 'report'),
    ).toThrow('which: expected forward, report or compression');
  });

  it('maskFromLogAlpha: NaN rejected naming log_alpha; +-inf allowed; unknown `which` rejected', () => {
    const profile = PROFILES.molchanov2017;
    expect(vdspecErrorOf(() => maskFromLogAlpha({ shape: [1], data: [NaN] }, profile))).toEqual({
      code: 'non_finite',
      argument: 'log_alpha',
    });
    expect(maskFromLogAlpha({ shape: [2], data: [Infinity, -Infinity] }, profile).data).toEqual([
      0, 1,
    ]);
    const err = vdspecErrorOf(() =>
      maskFromLogAlpha({ shape: [1], data: [3] }, profile, 'reprot' as 'report'),
    );
    expect(err).toEqual({ code: 'invalid_argument', argument: 'which' });
  });
});

describe('spec/log-alpha.md#vdlog_alpha: sumToShape is the adjoint of broadcasting', () => {
  it('<broadcast(a), b> = <a, sumToShape(b)>, exactly on integers', () => {
    fc.assert(
      fc.property(
        broadcastPair.chain(({ target, shape }) =>
          fc.record({
            target: fc.constant(target),
            shape: fc.constant(shape),
            a: fc.array(fc.integer({ min: -50, max: 50 }), {
              minLength: sizeOf(shape),
              maxLength: sizeOf(shape),
            }),
            b: fc.array(fc.integer({ min: -50, max: 50 }), {
              minLength: sizeOf(target),
              maxLength: sizeOf(target),
            }),
          }),
        ),
        ({ target, shape, a, b }) => {
          const index = broadcastIndex(shape, target);
          expect(index).not.toBeNull();
          // The index map itself is NumPy's rule.
          expect(index).toEqual(b.map((_, i) => broadcastSource(shape, target, i)));
          const left = b.reduce((acc, bi, i) => acc + a[index![i]!]! * bi, 0);
          const reduced = sumToShape(b, target, shape);
          const right = a.reduce((acc, ai, j) => acc + ai * reduced.data[j]!, 0);
          // Integers below 2^53 throughout: both sides are exact.
          expect(left).toBe(right);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('shapes that do not broadcast give null from broadcastIndex', () => {
    expect(broadcastIndex([2], [3])).toBeNull();
    expect(broadcastIndex([3, 2], [2, 3])).toBeNull();
    expect(broadcastIndex([1, 1, 1], [1, 1])).toBeNull();
    expect(broadcastIndex([], [2, 3])).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('sumToShape rejects bad arguments naming them (shape that does not broadcast; values of the wrong length)', () => {
    expect(vdspecErrorOf(() => sumToShape([1, 2, 3], [3], [2]))).toEqual({
      code: 'shape_mismatch',
      argument: 'shape',
    });
    expect(vdspecErrorOf(() => sumToShape([1, 2], [3], [1]))).toEqual({
      code: 'shape_mismatch',
      argument: 'values',
    });
    expect(() => sumToShape([1, 2, 3], [3], [2])).toThrow('shape: [2] does not broadcast to [3]');
    expect(() => sumToShape([1, 2], [3], [1])).toThrow('values: expected 3 values');
  });
});

/**
 * Custom profiles: any combination of the fields' values (with a clip max, so that
 * exp(log_alpha) cannot overflow; the no-clip-max case has its own tests below).
 * Built-in profiles leave some branches equivalent (log_sigma only with log_abs_theta,
 * thresholds inside the clip); these combinations tell them apart.
 */
const customProfile: fc.Arbitrary<Profile> = fc
  .record({
    noiseParameter: fc.constantFrom('log_sigma2', 'log_sigma', 'log_alpha'),
    form: fc.constantFrom('log_theta2', 'log_abs_theta'),
    thetaEps: fc.constantFrom(0, 1e-8, 1e-15, 1e-3),
    min: fc.constantFrom(null, -10, -8, -3),
    max: fc.constantFrom(0, 2, 8, 10),
    gradientAtBound: fc.constantFrom(0, 1),
    sigma2: fc.boolean(),
    prune: fc.option(
      fc.record({
        threshold: fc.constantFrom(-1, 3, 9),
        comparison: fc.constantFrom('>', '>='),
        reportComparison: fc.constantFrom('>', '>='),
        compressionComparison: fc.constantFrom('>', '>='),
        reportLogAlpha: fc.constant('clipped'),
        from: fc.constantFrom('clipped', 'unclipped'),
      }),
    ),
  })
  .map((r) => {
    const base = PROFILES.molchanov2017;
    const learned = r.noiseParameter === 'log_alpha';
    const layerConventions = {
      logAlpha: {
        form: learned ? 'learned' : r.form,
        thetaEps: r.thetaEps,
        clip: { min: r.min, max: r.max, gradientAtBound: r.gradientAtBound },
      },
      klLogAlpha: null,
      variance: r.sigma2 && !learned ? 'sigma2' : 'alpha_theta2',
      trainMask: 'mean',
    } as const;
    return {
      ...base,
      noiseParameter: r.noiseParameter,
      dense: layerConventions,
      conv2d: layerConventions,
      prune: r.prune,
    };
  });

describe('spec/log-alpha.md#svdlog_alpha: custom profiles follow the same equations', () => {
  it('every per-weight value equals the page equations for any combination of conventions', () => {
    fc.assert(
      fc.property(
        customProfile,
        fc.constantFrom(...LAYERS),
        anyFiniteTheta,
        anyFiniteNoise,
        (profile, layer, theta, noise) => {
          // 2 * log_sigma overflows beyond MAX_VALUE / 2; with log_theta2 and theta^2 = inf that
          // is inf - inf (spec/log-alpha.md#svdlog_alpha, "log_sigma2 overflow"). Not a built-in case.
          fc.pre(profile.noiseParameter !== 'log_sigma' || Math.abs(noise) <= Number.MAX_VALUE / 2);
          const m = describeMismatch(
            'custom',
            layer,
            theta,
            noise,
            one(profile, layer, theta, noise),
            specWeight(profile, layer, theta, noise),
          );
          expect(m, JSON.stringify({ ...profile, source: undefined })).toBeNull();
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('spec/log-alpha.md#the-per-weight-variance: a custom profile without a clip max', () => {
  // Profiles are data; a port may pass its own. Without a clip max log_alpha can stay +inf.
  const base = PROFILES.molchanov2017;
  const noClipMax: Profile = {
    ...base,
    dense: { ...base.dense, logAlpha: { ...base.dense.logAlpha, clip: { min: -8, max: null } } },
  };

  it('variance and every partial stay defined (never NaN) for any finite theta', () => {
    fc.assert(
      fc.property(anyFiniteTheta, fc.double({ min: -30, max: 10, noNaN: true }), (theta, noise) => {
        const s = one(noClipMax, 'dense', theta, noise);
        for (const q of QUANTITIES)
          expect(Number.isNaN(s[q]), `${q} at theta=${theta}`).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('log_alpha, the mask and the log_alpha partials follow the page (+inf stays +inf, gradient 0)', () => {
    fc.assert(
      fc.property(anyFiniteTheta, anyFiniteNoise, (theta, noise) => {
        const got = one(noClipMax, 'dense', theta, noise);
        const want = specWeight(noClipMax, 'dense', theta, noise);
        for (const q of [
          'raw',
          'logAlpha',
          'mask',
          'dLogAlphaDTheta',
          'dLogAlphaDNoise',
        ] as const) {
          expect(close(got[q], want[q]), `${q} at theta=${theta} noise=${noise}`).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('where log_alpha is +inf (theta^2 underflows to 0) the variance is sigma2, as at theta = 0', () => {
    for (const theta of [0, 5e-324, 1e-200]) {
      const s = one(noClipMax, 'dense', theta, -5);
      expect(s.logAlpha).toBe(Infinity);
      expect(s.variance).toBe(Math.exp(-5));
    }
  });
});

describe('spec/log-alpha.md#the-per-weight-variance: alpha overflows where alpha theta^2 does not (no clip max)', () => {
  // log_alpha above ~709.8 makes exp(log_alpha) infinite while alpha * theta^2 is an ordinary
  // number: the variance and its partials must come from the product, not from inf * theta^2.
  const molchanov = PROFILES.molchanov2017;
  const sigma2Profile: Profile = {
    ...molchanov,
    dense: {
      ...molchanov.dense,
      logAlpha: { ...molchanov.dense.logAlpha, clip: { min: -8, max: null } },
    },
  };
  const kingma = PROFILES.kingma2015;
  const learnedProfile: Profile = {
    ...kingma,
    dense: { ...kingma.dense, logAlpha: { ...kingma.dense.logAlpha, clip: null } },
  };
  const relative = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

  it('molchanov2017 form, theta^2 subnormal: log_alpha ~ 737 and the variance is sigma2 (= alpha theta^2 exactly)', () => {
    for (const theta of [1e-160, -3e-159]) {
      for (const logSigma2 of [0, -5, 3]) {
        const s = one(sigma2Profile, 'dense', theta, logSigma2);
        expect(s.logAlpha).toBeGreaterThan(709.8);
        // exp of a sum of size ~737 rounded: ~737 ulps of 1 relative.
        expect(relative(s.variance, Math.exp(logSigma2))).toBeLessThan(1e-12);
        expect(relative(s.dVarianceDNoise, Math.exp(logSigma2))).toBeLessThan(1e-12);
      }
    }
  });

  it('learned log_alpha = 710, theta = 1e-150: variance, d/dtheta and d/dlog_alpha against 64-digit values; theta = 0 gives zeros', () => {
    const la = 710;
    // theta^2 = 1e-300 is a normal number (a subnormal one would carry few digits).
    const theta = 1e-150;
    const alpha = bigExp(bignumber(la));
    const variance = alpha.times(bignumber(theta)).times(bignumber(theta)).toNumber();
    const dTheta = alpha.times(2).times(bignumber(theta)).toNumber();
    const s = one(learnedProfile, 'dense', theta, la);
    expect(s.logAlpha).toBe(la);
    expect(relative(s.variance, variance)).toBeLessThan(1e-12);
    expect(relative(s.dVarianceDTheta, dTheta)).toBeLessThan(1e-12);
    expect(relative(s.dVarianceDNoise, variance)).toBeLessThan(1e-12);
    const zero = one(learnedProfile, 'dense', 0, la);
    expect([zero.variance, zero.dVarianceDTheta, zero.dVarianceDNoise]).toEqual([0, 0, 0]);
  });
});

describe('spec/log-alpha.md#the-per-weight-variance: log_abs_theta with theta near its eps', () => {
  it('pytorch-ard dense: d(alpha theta^2)/dtheta = 2 sigma2 theta eps / (|theta| + eps)^3 (the closed form)', () => {
    // alpha theta^2 = sigma2 theta^2 / (|theta| + eps)^2; where |theta| ~ eps the eps share of the
    // derivative is of order 1, not a rounding residue.
    const profile = PROFILES['pytorch-ard'];
    const eps = profile.dense.logAlpha.thetaEps;
    for (const theta of [2e-15, -5e-16, 1e-14]) {
      const logSigma2 = 2 * Math.log(Math.abs(theta) + eps) + 1; // log_alpha = 1, inside the clip
      const s = one(profile, 'dense', theta, logSigma2);
      expect(s.logAlpha).toBeCloseTo(1, 12);
      const sigma2 = Math.exp(logSigma2);
      const want = (2 * sigma2 * theta * eps) / (Math.abs(theta) + eps) ** 3;
      expect(Math.abs(s.dVarianceDTheta - want) / Math.abs(want), `theta=${theta}`).toBeLessThan(
        1e-12,
      );
    }
  });
});

describe('spec/log-alpha.md#the-clip-and-its-gradient: defaults', () => {
  it('a clip without gradientAtBound has gradient 1 on its bounds', () => {
    const clip = { min: -8, max: 8 };
    expect([clipGradient(-8, clip), clipGradient(8, clip), clipGradient(0, clip)]).toEqual([
      1, 1, 1,
    ]);
    expect([clipGradient(-8.5, clip), clipGradient(8.5, clip)]).toEqual([0, 0]);
  });
});

describe('spec/objective.md#kllayer: klProfile', () => {
  it("is the profile itself where no layer kind has a klLogAlpha; else each kind's klLogAlpha replaces its logAlpha", () => {
    for (const name of PROFILE_NAMES) {
      const profile = PROFILES[name];
      const kl = klProfile(profile);
      if (profile.dense.klLogAlpha === null && profile.conv2d.klLogAlpha === null) {
        expect(kl, name).toBe(profile);
        continue;
      }
      for (const layer of LAYERS) {
        const own = profile[layer];
        expect(kl[layer].logAlpha, `${name} ${layer}`).toEqual(own.klLogAlpha ?? own.logAlpha);
        expect(kl[layer].variance).toBe(own.variance);
      }
    }
    // bayesgroup-theano is the profile with one: conv2d's KL reads log_alpha without the eps.
    const theano = PROFILES['bayesgroup-theano'];
    expect(theano.conv2d.klLogAlpha).not.toBeNull();
    expect(klProfile(theano).conv2d.logAlpha.thetaEps).toBe(0);
    expect(theano.conv2d.logAlpha.thetaEps).toBeGreaterThan(0);
    // No built-in profile sets a dense klLogAlpha: a custom one must be honoured too.
    const base = PROFILES.molchanov2017;
    const denseOnly: Profile = {
      ...base,
      dense: { ...base.dense, klLogAlpha: { ...base.dense.logAlpha, thetaEps: 1e-8 } },
    };
    expect(klProfile(denseOnly).dense.logAlpha.thetaEps).toBe(1e-8);
  });
});

// ---------------------------------------------------------------------------
// The edge-case table of spec/log-alpha.md, recomputed from the page's equations.
// ---------------------------------------------------------------------------

interface EdgeCase {
  readonly why: string;
  readonly profile: ProfileName;
  readonly layer: LayerKind;
  readonly theta: number;
  readonly noise: number;
}

const EDGE_CASES: readonly EdgeCase[] = [
  { why: 'theta = 0, no eps', profile: 'molchanov2017', layer: 'dense', theta: 0, noise: -10 },
  {
    why: 'subnormal theta, theta^2 = 0',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 5e-324,
    noise: -10,
  },
  {
    why: 'subnormal theta, theta^2 = 0',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1e-310,
    noise: -10,
  },
  { why: 'theta^2 subnormal', profile: 'molchanov2017', layer: 'dense', theta: 1e-160, noise: -10 },
  {
    why: 'huge theta, theta^2 = inf',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1e300,
    noise: -10,
  },
  {
    why: 'log_alpha exactly 3, kept',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1,
    noise: 3,
  },
  {
    why: 'log_alpha exactly 3, pruned',
    profile: 'bayesgroup-theano',
    layer: 'dense',
    theta: 1,
    noise: 3,
  },
  {
    why: 'at the clip max: gradient 1',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1,
    noise: 8,
  },
  {
    why: 'one ulp above: gradient 0',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1,
    noise: 8.000000000000002,
  },
  {
    why: 'at the clip min: gradient 1',
    profile: 'molchanov2017',
    layer: 'dense',
    theta: 1,
    noise: -8,
  },
  {
    why: 'theta = 0, eps 1e-8',
    profile: 'bayesgroup-theano',
    layer: 'conv2d',
    theta: 0,
    noise: -20,
  },
  {
    why: 'theta = 0, eps 1e-8, sigma2',
    profile: 'state-of-sparsity-nn',
    layer: 'dense',
    theta: 0,
    noise: -10,
  },
  {
    why: 'theta = 0, eps 1e-8, sigma2 rebuilt from the clip',
    profile: 'state-of-sparsity',
    layer: 'dense',
    theta: 0,
    noise: -10,
  },
  {
    why: 'at the clip max, switch clip: gradient 0',
    profile: 'bayesgroup-theano',
    layer: 'dense',
    theta: 1,
    noise: 8,
  },
  {
    why: 'theta = 0, eps 1e-16, log_sigma',
    profile: 'deepbayes-pytorch',
    layer: 'dense',
    theta: 0,
    noise: -5,
  },
  { why: 'theta = 0, eps 1e-15', profile: 'pytorch-ard', layer: 'dense', theta: 0, noise: -10 },
  {
    why: 'log_alpha 9: inside [-10, 10]',
    profile: 'pytorch-ard',
    layer: 'dense',
    theta: 1,
    noise: 9,
  },
  { why: 'log_alpha 9: clipped to 8', profile: 'pytorch-ard', layer: 'conv2d', theta: 1, noise: 9 },
  {
    why: 'above alpha = 1: clipped',
    profile: 'kingma2015',
    layer: 'dense',
    theta: 0.5,
    noise: 0.5,
  },
  { why: 'huge theta, VD', profile: 'kingma2015', layer: 'dense', theta: 1e300, noise: -1 },
];

function cell(x: number): string {
  return String(x);
}

function edgeCaseTableMarkdown(): string {
  const header =
    '| case | profile | layer | theta | noise | raw | log_alpha | mask | variance | dLogAlphaDTheta | dLogAlphaDNoise | dVarianceDTheta | dVarianceDNoise |';
  const rule = `|${' --- |'.repeat(13)}`;
  const rows = EDGE_CASES.map((c) => {
    const w = specWeight(PROFILES[c.profile], c.layer, c.theta, c.noise);
    const values = [
      c.theta,
      c.noise,
      w.raw,
      w.logAlpha,
      w.mask,
      w.variance,
      w.dLogAlphaDTheta,
      w.dLogAlphaDNoise,
      w.dVarianceDTheta,
      w.dVarianceDNoise,
    ].map(cell);
    return `| ${c.why} | \`${c.profile}\` | ${c.layer} | ${values.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

describe('spec/log-alpha.md#edge-cases: the table', () => {
  it('the page shows exactly the values the page equations give', () => {
    expectSpecBlock('log-alpha.md', 'log-alpha-edge-cases', edgeCaseTableMarkdown());
  });

  it.each(EDGE_CASES.map((c) => [c.why, c] as const))('the reference agrees: %s', (_why, c) => {
    const got = one(PROFILES[c.profile], c.layer, c.theta, c.noise);
    const want = specWeight(PROFILES[c.profile], c.layer, c.theta, c.noise);
    expect(describeMismatch(c.profile, c.layer, c.theta, c.noise, got, want)).toBeNull();
  });
});
