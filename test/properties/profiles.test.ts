/**
 * Properties of spec/profiles.md: every profile is well-formed, each
 * non-canonical profile differs from its canonical one exactly in the fields
 * and the observable behaviour the page states, and the page's tables are the
 * ones generated from src/profiles.ts.
 *
 * DEPARTURES below restates the page on purpose (eps values included): it is
 * the expectation the data is checked against, so it must not be read from
 * the profiles.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SVD_LOG_ALPHA_MAX, SVD_PRUNE_THRESHOLD } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import {
  CANONICAL_PROFILE,
  PROFILE_NAMES,
  PROFILES,
  getProfile,
  isProfileName,
  type LayerKind,
  type Profile,
  type ProfileName,
} from '../../src/profiles.js';
import { weightStatistics } from '../../src/reference/logAlpha.js';
import {
  profileDifferences,
  profileDifferencesMarkdown,
  profileTableMarkdown,
} from '../../src/reference/profileTable.js';
import { expectSpecBlock } from './spec-blocks.js';

const LAYERS: readonly LayerKind[] = ['dense', 'conv2d'];
const EPS = Number.EPSILON;

// ---------------------------------------------------------------------------
// The page's statement of each departure from molchanov2017.
// ---------------------------------------------------------------------------

interface LayerDeparture {
  /**
   * Upper bound on how far the eps inside the log lowers log_alpha below the
   * canonical value at a given theta (0: the same float64 operations).
   * log(theta^2 + e) - log(theta^2) <= e / theta^2; 2 log(|theta| + e) - 2 log|theta| <= 2 e / |theta|.
   */
  readonly logAlphaShift: (theta: number) => number;
  readonly clip: readonly [number, number];
  /**
   * `clipped`: exp(clipped log_alpha) * theta^2; `unclipped`: exp(log_sigma2);
   * `rebuilt`: exp(log_sigma2) inside the clip, exp(bound) * (theta^2 + 1e-8) beyond it.
   */
  readonly variance: 'clipped' | 'unclipped' | 'rebuilt';
  /** Raw log_alpha at theta = 0 as a function of log_sigma2. */
  readonly rawAtThetaZero: (logSigma2: number) => number;
}

interface Departure {
  readonly profile: ProfileName;
  /** The convention fields that differ from molchanov2017: exactly these, nowhere else. */
  readonly fields: readonly string[];
  /** The learned parameter as a function of log_sigma2. */
  readonly noiseFromLogSigma2: (logSigma2: number) => number;
  readonly atThreshold: 'kept' | 'pruned';
  readonly layers: Readonly<Record<LayerKind, LayerDeparture>>;
}

const identical = () => 0;
/** state-of-sparsity-nn (nn.py's clip_alpha=None): no clip at all. */
const NO_CLIP = [-Infinity, Infinity] as const;
const logSigma2Itself = (s: number) => s;

const DEPARTURES: readonly Departure[] = [
  {
    profile: 'bayesgroup-theano',
    fields: [
      'dense.logAlpha.clip.gradientAtBound',
      'conv2d.logAlpha.thetaEps',
      'conv2d.logAlpha.clip.gradientAtBound',
      'conv2d.klLogAlpha.form',
      'conv2d.klLogAlpha.thetaEps',
      'conv2d.klLogAlpha.clip.min',
      'conv2d.klLogAlpha.clip.max',
      'conv2d.klLogAlpha.clip.gradientAtBound',
      'conv2d.trainMask',
      'samePadding',
      'prune.comparison',
      'prune.reportLogAlpha',
      'trainClipDefault',
      'compressionReported',
    ],
    noiseFromLogSigma2: logSigma2Itself,
    atThreshold: 'pruned',
    layers: {
      dense: {
        logAlphaShift: identical,
        clip: [-8, 8],
        variance: 'clipped',
        rawAtThetaZero: () => Infinity,
      },
      conv2d: {
        logAlphaShift: (t) => 1e-8 / (t * t),
        clip: [-8, 8],
        variance: 'clipped',
        rawAtThetaZero: (s) => s - Math.log(1e-8),
      },
    },
  },
  {
    profile: 'deepbayes-pytorch',
    fields: [
      'noiseParameter',
      'dense.logAlpha.form',
      'dense.logAlpha.thetaEps',
      'dense.logAlpha.clip.min',
      'dense.logAlpha.clip.max',
      'dense.variance',
      'conv2d.logAlpha.form',
      'conv2d.logAlpha.thetaEps',
      'conv2d.logAlpha.clip.min',
      'conv2d.logAlpha.clip.max',
      'conv2d.variance',
      'prune.comparison',
      'prune.compressionComparison',
      'kl.constant',
      'compressionReported',
    ],
    // log_sigma = log_sigma2 / 2 (halving is exact in binary floating point).
    noiseFromLogSigma2: (s) => s / 2,
    atThreshold: 'pruned',
    layers: {
      dense: {
        logAlphaShift: (t) => (2 * 1e-16) / Math.abs(t),
        clip: [-10, 10],
        variance: 'unclipped',
        rawAtThetaZero: (s) => s - 2 * Math.log(1e-16),
      },
      conv2d: {
        logAlphaShift: (t) => (2 * 1e-16) / Math.abs(t),
        clip: [-10, 10],
        variance: 'unclipped',
        rawAtThetaZero: (s) => s - 2 * Math.log(1e-16),
      },
    },
  },
  {
    profile: 'state-of-sparsity',
    fields: [
      'dense.logAlpha.thetaEps',
      'dense.variance',
      'conv2d.logAlpha.thetaEps',
      'conv2d.variance',
      'prune.comparison',
      'prune.reportComparison',
      'prune.compressionComparison',
      'prune.from',
      'likelihoodScaling',
      'compressionReported',
    ],
    noiseFromLogSigma2: logSigma2Itself,
    atThreshold: 'pruned',
    layers: {
      dense: {
        logAlphaShift: (t) => 1e-8 / (t * t),
        clip: [-8, 8],
        variance: 'rebuilt',
        rawAtThetaZero: (s) => s - Math.log(1e-8),
      },
      conv2d: {
        logAlphaShift: (t) => 1e-8 / (t * t),
        clip: [-8, 8],
        variance: 'rebuilt',
        rawAtThetaZero: (s) => s - Math.log(1e-8),
      },
    },
  },
  {
    profile: 'state-of-sparsity-nn',
    fields: [
      'dense.logAlpha.thetaEps',
      'dense.logAlpha.clip.min',
      'dense.logAlpha.clip.max',
      'dense.logAlpha.clip.gradientAtBound',
      'dense.variance',
      'conv2d.logAlpha.thetaEps',
      'conv2d.logAlpha.clip.min',
      'conv2d.logAlpha.clip.max',
      'conv2d.logAlpha.clip.gradientAtBound',
      'conv2d.variance',
      'prune.comparison',
      'prune.reportComparison',
      'prune.compressionComparison',
      'prune.from',
      'likelihoodScaling',
      'compressionReported',
    ],
    noiseFromLogSigma2: logSigma2Itself,
    atThreshold: 'pruned',
    layers: {
      dense: {
        logAlphaShift: (t) => 1e-8 / (t * t),
        clip: NO_CLIP,
        variance: 'unclipped',
        rawAtThetaZero: (s) => s - Math.log(1e-8),
      },
      conv2d: {
        logAlphaShift: (t) => 1e-8 / (t * t),
        clip: NO_CLIP,
        variance: 'unclipped',
        rawAtThetaZero: (s) => s - Math.log(1e-8),
      },
    },
  },
  {
    profile: 'pytorch-ard',
    fields: [
      'dense.logAlpha.form',
      'dense.logAlpha.thetaEps',
      'dense.logAlpha.clip.min',
      'dense.logAlpha.clip.max',
      'conv2d.logAlpha.form',
      'conv2d.logAlpha.thetaEps',
      'sqrtEps',
      'prune.comparison',
      'prune.reportComparison',
      'prune.compressionComparison',
      'likelihoodScaling',
      'compressionReported',
    ],
    noiseFromLogSigma2: logSigma2Itself,
    atThreshold: 'pruned',
    layers: {
      dense: {
        logAlphaShift: (t) => (2 * 1e-15) / Math.abs(t),
        clip: [-10, 10],
        variance: 'clipped',
        rawAtThetaZero: (s) => s - 2 * Math.log(1e-15),
      },
      conv2d: {
        logAlphaShift: (t) => (2 * 1e-15) / Math.abs(t),
        clip: [-8, 8],
        variance: 'clipped',
        rawAtThetaZero: (s) => s - 2 * Math.log(1e-15),
      },
    },
  },
];

const DEPARTURE_CASES = DEPARTURES.flatMap((d) =>
  LAYERS.map((layer) => [d.profile, layer, d] as const),
);
const CANONICAL = PROFILES.molchanov2017;

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

function one(profile: Profile, layer: LayerKind, theta: number, noise: number) {
  const shape = layer === 'dense' ? [1, 1] : [1, 1, 1, 1];
  const s = weightStatistics({ shape, data: [theta] }, { shape, data: [noise] }, profile, layer);
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

/** Rounding of log_sigma2 - log(theta^2) in float64: a few ulps of the larger operand, plus exp's own. */
function rounding(logSigma2: number, theta: number): number {
  return 16 * EPS * (1 + Math.abs(logSigma2) + Math.abs(Math.log(theta * theta)));
}

function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}) {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value))
      flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
  } else {
    out[prefix] = value;
  }
  return out;
}

const thetaAwayFromZero = fc
  .tuple(fc.double({ min: 0.05, max: 20, noNaN: true }), fc.boolean())
  .map(([m, negative]) => (negative ? -m : m));

// ---------------------------------------------------------------------------

describe('spec/profiles.md#the-profiles: every profile is well-formed', () => {
  it('PROFILE_NAMES lists the keys of PROFILES; each profile carries its own name', () => {
    expect([...PROFILE_NAMES].sort()).toEqual(Object.keys(PROFILES).sort());
    for (const name of PROFILE_NAMES) expect(PROFILES[name].name).toBe(name);
  });

  it('one canonical profile per algorithm, and CANONICAL_PROFILE names it', () => {
    for (const algorithm of ['svd', 'vd'] as const) {
      const canonical = PROFILE_NAMES.filter(
        (n) => PROFILES[n].algorithm === algorithm && PROFILES[n].canonical,
      );
      expect(canonical).toEqual([CANONICAL_PROFILE[algorithm]]);
    }
  });

  it.each(PROFILE_NAMES)('%s: fields present, in range, consistent', (name) => {
    const p = PROFILES[name];
    expect(['svd', 'vd']).toContain(p.algorithm);
    expect(['log_sigma2', 'log_sigma', 'log_alpha']).toContain(p.noiseParameter);
    expect(p.sqrtEps).toBeGreaterThan(0);
    expect(Number.isFinite(p.sqrtEps)).toBe(true);
    expect(typeof p.trainClipDefault).toBe('boolean');
    expect(['svd_sigmoid', 'vd_cubic']).toContain(p.kl.approximation);
    expect(['minus_k1', 'omitted', 'dropped']).toContain(p.kl.constant);
    expect(['n_mean_ce', 'user']).toContain(p.likelihoodScaling);
    expect(p.compressionReported.length).toBeGreaterThan(0);
    expect(p.source.project.length).toBeGreaterThan(0);
    expect(p.source.note.length).toBeGreaterThan(0);
    // A profile that mirrors code cites the repository and the file.
    if (!p.canonical) {
      expect(p.source.repository).toMatch(/^[\w.-]+\/[\w.-]+$/);
      expect(p.source.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(p.source.file).toBeTruthy();
    }
    expect(['tensorflow', 'lasagne']).toContain(p.samePadding);
    for (const layer of LAYERS) {
      const c = p[layer];
      expect(['learned', 'log_theta2', 'log_abs_theta']).toContain(c.logAlpha.form);
      expect(c.logAlpha.thetaEps).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(c.logAlpha.thetaEps)).toBe(true);
      expect(['alpha_theta2', 'sigma2', 'sigma2_rebuilt']).toContain(c.variance);
      // Rebuilding log_sigma2 adds back log(theta^2 + thetaEps): the log_theta2 form's term.
      if (c.variance === 'sigma2_rebuilt') expect(c.logAlpha.form).toBe('log_theta2');
      expect([0, 1]).toContain(c.logAlpha.clip?.gradientAtBound ?? 1);
      if (c.klLogAlpha !== null) {
        expect(c.klLogAlpha.form).toBe(c.logAlpha.form);
        expect(c.klLogAlpha.thetaEps).toBeGreaterThanOrEqual(0);
      }
      expect(['mean', 'mean_and_variance']).toContain(c.trainMask);
      // log_alpha is learned exactly when it is the noise parameter.
      expect(c.logAlpha.form === 'learned').toBe(p.noiseParameter === 'log_alpha');
      // sigma2 needs a log_sigma2 (or log_sigma) to exponentiate.
      if (c.variance === 'sigma2') expect(p.noiseParameter).not.toBe('log_alpha');
      const clip = c.logAlpha.clip;
      // null: no clip (state-of-sparsity-nn); otherwise a proper interval.
      if (clip !== null && clip.min !== null && clip.max !== null) {
        expect(clip.min).toBeLessThan(clip.max);
      }
      if (p.prune !== null) {
        // The threshold strictly inside the clip: the clipped and unclipped masks then agree.
        expect(clip?.min ?? -Infinity).toBeLessThan(p.prune.threshold);
        expect(clip?.max ?? Infinity).toBeGreaterThan(p.prune.threshold);
      }
    }
    if (p.algorithm === 'vd') {
      expect(p.prune).toBeNull();
      expect(p.kl.approximation).toBe('vd_cubic');
    } else {
      expect(p.prune).not.toBeNull();
      expect(p.kl.approximation).toBe('svd_sigmoid');
      expect(['>', '>=']).toContain(p.prune?.comparison);
      expect(['>', '>=']).toContain(p.prune?.reportComparison);
      expect(['>', '>=']).toContain(p.prune?.compressionComparison);
      expect(['clipped', 'unclipped_no_eps']).toContain(p.prune?.reportLogAlpha);
      expect(['clipped', 'unclipped']).toContain(p.prune?.from);
      expect(Number.isFinite(p.prune?.threshold)).toBe(true);
    }
  });

  it('getProfile: by name, passes a profile object through, rejects unknown names listing the known ones', () => {
    for (const name of PROFILE_NAMES) {
      expect(getProfile(name)).toBe(PROFILES[name]);
      expect(getProfile(PROFILES[name])).toBe(PROFILES[name]);
      expect(isProfileName(name)).toBe(true);
    }
    fc.assert(
      fc.property(fc.string(), (name) => {
        fc.pre(!isProfileName(name));
        try {
          getProfile(name);
          expect.unreachable(`getProfile("${name}") returned`);
        } catch (e) {
          expect(isVdspecError(e)).toBe(true);
          if (!isVdspecError(e)) return;
          expect(e.code).toBe('unknown_profile');
          expect(e.argument).toBe('profile');
          for (const known of PROFILE_NAMES) expect(e.message).toContain(known);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('spec/profiles.md#side-by-side: the page shows the data', () => {
  it('the side-by-side table is exactly profileTableMarkdown()', () => {
    expectSpecBlock('profiles.md', 'profile-table', profileTableMarkdown());
  });

  it('the list of differing fields is exactly profileDifferencesMarkdown()', () => {
    expectSpecBlock('profiles.md', 'profile-differences', profileDifferencesMarkdown());
  });

  it('the side-by-side table has one row per field and one column per profile', () => {
    const lines = profileTableMarkdown().split('\n');
    const leaves = new Set(PROFILE_NAMES.flatMap((n) => Object.keys(flatten(PROFILES[n]))));
    // `prune` (kingma2015) and `logAlpha.clip` (state-of-sparsity-nn) are null leaves in one profile
    // and objects elsewhere: only their children are rows.
    for (const leaf of [...leaves]) {
      if ([...leaves].some((other) => other.startsWith(`${leaf}.`))) leaves.delete(leaf);
    }
    expect(lines.length - 2).toBe(leaves.size);
    for (const line of lines) expect(line.split(' | ').length).toBe(PROFILE_NAMES.length + 1);
  });
});

describe('spec/profiles.md#departures: each profile differs from molchanov2017 exactly where the page says', () => {
  it('every non-canonical profile has an entry in the table of departures', () => {
    const nonCanonical = PROFILE_NAMES.filter((n) => !PROFILES[n].canonical);
    expect(DEPARTURES.map((d) => d.profile).sort()).toEqual([...nonCanonical].sort());
  });

  it.each(DEPARTURES.map((d) => [d.profile, d] as const))(
    '%s: the differing fields are exactly the stated ones',
    (name, departure) => {
      const canonical = flatten(PROFILES[CANONICAL_PROFILE[PROFILES[name].algorithm]]);
      const profile = flatten(PROFILES[name]);
      const keys = Object.keys({ ...canonical, ...profile });
      // A null object (state-of-sparsity-nn's clip) is a leaf here and an object there: keep its children.
      const differing = keys.filter(
        (k) =>
          !keys.some((other) => other.startsWith(`${k}.`)) &&
          !['name', 'canonical'].includes(k) &&
          !k.startsWith('source.') &&
          canonical[k] !== profile[k],
      );
      expect(differing.sort()).toEqual([...departure.fields].sort());
      expect([...profileDifferences(name)].sort()).toEqual([...departure.fields].sort());
    },
  );

  it.each(DEPARTURE_CASES)(
    '%s %s: away from the special points log_alpha, mask, variance and partials agree within the stated shift',
    (name, layer, departure) => {
      const profile = PROFILES[name];
      const expected = departure.layers[layer];
      const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
      fc.assert(
        fc.property(
          thetaAwayFromZero,
          // Strictly inside [-8, 8] and away from the threshold, with room for the shift
          // (at most 1e-8 / 0.05^2 = 4e-6 at |theta| >= 0.05).
          fc.double({ min: -7.9, max: 7.9, noNaN: true }).filter((u) => Math.abs(u - 3) > 0.01),
          (theta, u) => {
            const logSigma2 = u + Math.log(theta * theta);
            const c = one(CANONICAL, layer, theta, logSigma2);
            const p = one(profile, layer, theta, departure.noiseFromLogSigma2(logSigma2));
            const shift = expected.logAlphaShift(theta);
            const round = rounding(logSigma2, theta);
            // log_alpha: lower by at most the shift (eps only adds to the log's argument).
            expect(p.logAlpha).toBeLessThanOrEqual(c.logAlpha + round);
            expect(c.logAlpha - p.logAlpha).toBeLessThanOrEqual(shift + round);
            if (shift === 0) expect(p.logAlpha).toBe(c.logAlpha);
            expect(p.mask).toBe(c.mask);
            // Variance: exp turns an absolute error in log_alpha into the same relative error.
            const relVariance = Math.abs(p.variance / c.variance - 1);
            if (expected.variance !== 'clipped') {
              // exp(log_sigma2) (sigma2, or rebuilt inside the clip) vs
              // exp(log_sigma2 - log(theta^2)) * theta^2: rounding only.
              expect(relVariance).toBeLessThanOrEqual(round + 8 * EPS);
            } else {
              expect(relVariance).toBeLessThanOrEqual(shift + round + 8 * EPS);
            }
            expect(p.dLogAlphaDNoise).toBe(scale * c.dLogAlphaDNoise);
            expect(Math.abs(p.dLogAlphaDTheta - c.dLogAlphaDTheta)).toBeLessThanOrEqual(
              Math.abs(c.dLogAlphaDTheta) * (shift + 8 * EPS),
            );
            // The canonical d variance / d theta is 0 up to cancellation (sigma2 does not depend on
            // theta inside the clip); a profile may add at most 2 alpha |theta| times the shift.
            const alphaTheta = 2 * Math.exp(c.logAlpha) * Math.abs(theta);
            expect(Math.abs(p.dVarianceDTheta - c.dVarianceDTheta)).toBeLessThanOrEqual(
              alphaTheta * (shift + round + 8 * EPS),
            );
            expect(
              Math.abs(p.dVarianceDNoise / (scale * c.dVarianceDNoise) - 1),
            ).toBeLessThanOrEqual(shift + round + 8 * EPS);
          },
        ),
        { numRuns: 300 },
      );
    },
  );

  it.each(DEPARTURE_CASES)('%s %s: theta = 0', (name, layer, departure) => {
    const profile = PROFILES[name];
    const expected = departure.layers[layer];
    const [min, max] = expected.clip;
    fc.assert(
      // raw at theta = 0 is log_sigma2 + 18..74 with an eps: this range puts it below,
      // inside and above every clip, and on both sides of the threshold.
      fc.property(fc.double({ min: -100, max: 20, noNaN: true }), (logSigma2) => {
        const c = one(CANONICAL, layer, 0, logSigma2);
        expect([c.raw, c.logAlpha, c.mask, c.variance]).toEqual([
          Infinity,
          SVD_LOG_ALPHA_MAX,
          0,
          0,
        ]);
        const p = one(profile, layer, 0, departure.noiseFromLogSigma2(logSigma2));
        const raw = expected.rawAtThetaZero(logSigma2);
        if (raw === Infinity) {
          expect(p.raw).toBe(Infinity);
        } else {
          // A finite raw value: the weight is not automatically pruned.
          expect(Math.abs(p.raw - raw)).toBeLessThanOrEqual(
            rounding(logSigma2, 1) + 16 * EPS * Math.abs(raw),
          );
        }
        expect(p.logAlpha).toBe(Math.min(Math.max(p.raw, min), max));
        expect(p.mask).toBe(p.logAlpha >= SVD_PRUNE_THRESHOLD ? 0 : 1);
        // alpha * theta^2 is 0 at theta = 0; sigma2 is not; rebuilt is sigma2 inside the clip,
        // exp(bound) * 1e-8 beyond it.
        const inside = p.raw > min && p.raw < max;
        expect(p.variance).toBe(
          expected.variance === 'clipped'
            ? 0
            : expected.variance === 'rebuilt' && !inside
              ? Math.exp(p.logAlpha) * 1e-8
              : Math.exp(logSigma2),
        );
        expect(p.dLogAlphaDTheta === 0 && p.dVarianceDTheta === 0).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it.each(DEPARTURE_CASES)('%s %s: log_alpha exactly 3', (name, layer, departure) => {
    const profile = PROFILES[name];
    expect(one(CANONICAL, layer, 1, SVD_PRUNE_THRESHOLD).mask).toBe(1);
    // Find inputs giving exactly 3 under this profile's eps (theta = 1 does not, with eps).
    let found = false;
    for (const theta of [1, 2, 4, 8, 16, 64, 1024, 65536]) {
      const { form, thetaEps } = profile[layer].logAlpha;
      const logTerm =
        form === 'log_theta2'
          ? Math.log(theta * theta + thetaEps)
          : 2 * Math.log(Math.abs(theta) + thetaEps);
      const noise = departure.noiseFromLogSigma2(SVD_PRUNE_THRESHOLD + logTerm);
      const p = one(profile, layer, theta, noise);
      if (p.logAlpha !== SVD_PRUNE_THRESHOLD) continue;
      found = true;
      expect(p.mask).toBe(departure.atThreshold === 'kept' ? 1 : 0);
      break;
    }
    expect(found, 'an input giving log_alpha exactly 3').toBe(true);
  });

  const beyond = (lo: number, hi: number) => fc.double({ min: lo, max: hi, noNaN: true });
  // 0.01 inside each open interval: the eps shift (at most 4e-6 at |theta| >= 0.05) and the
  // rounding cannot carry raw across a bound.
  const REGIONS = [
    { region: 'log_alpha in (8, 10)', target: beyond(8.01, 9.99) },
    { region: 'log_alpha beyond 10', target: beyond(10.01, 40) },
    { region: 'log_alpha in (-10, -8)', target: beyond(-9.99, -8.01) },
    { region: 'log_alpha below -10', target: beyond(-40, -10.01) },
  ];
  const regionCases = DEPARTURE_CASES.flatMap(([name, layer, d]) =>
    REGIONS.map((r) => [name, layer, r.region, d, r.target] as const),
  );

  it.each(regionCases)(
    '%s %s, %s: the clip and the variance differ as stated',
    (name, layer, _region, departure, target) => {
      const profile = PROFILES[name];
      const expected = departure.layers[layer];
      const [min, max] = expected.clip;
      const scale = profile.noiseParameter === 'log_sigma' ? 2 : 1;
      fc.assert(
        fc.property(thetaAwayFromZero, target, (theta, u) => {
          const logSigma2 = u + Math.log(theta * theta);
          const c = one(CANONICAL, layer, theta, logSigma2);
          const p = one(profile, layer, theta, departure.noiseFromLogSigma2(logSigma2));
          // The canonical clip is active: log_alpha sits on a bound, no gradient flows.
          expect(c.logAlpha).toBe(u > 0 ? 8 : -8);
          expect(c.dLogAlphaDNoise).toBe(0);
          const inside = u > min && u < max;
          const shift = expected.logAlphaShift(theta) + rounding(logSigma2, theta);
          if (inside) {
            // A wider clip: log_alpha keeps its raw value and the gradient flows.
            expect(Math.abs(p.logAlpha - u)).toBeLessThanOrEqual(shift);
            expect(p.dLogAlphaDNoise).toBe(scale);
          } else {
            expect(p.logAlpha).toBe(u > 0 ? max : min);
            expect(p.dLogAlphaDNoise).toBe(0);
          }
          expect(p.mask).toBe(c.mask);
          let variance: number;
          if (expected.variance === 'unclipped') {
            // exp(log_sigma2): the clip does not reach the variance.
            variance = Math.exp(logSigma2);
            expect(p.variance).toBe(variance);
          } else if (expected.variance === 'rebuilt') {
            // Beyond the clip: exp(bound) * (theta^2 + 1e-8), a relative 1e-8 / theta^2 above canonical.
            variance = Math.exp(p.logAlpha) * (theta * theta + 1e-8);
            expect(Math.abs(p.variance / variance - 1)).toBeLessThanOrEqual(8 * EPS);
            expect(variance / c.variance - 1).toBeLessThanOrEqual(shift + 8 * EPS);
            expect(variance / c.variance).toBeGreaterThanOrEqual(1);
            return;
          } else {
            variance = Math.exp(p.logAlpha) * theta * theta;
            expect(Math.abs(p.variance / variance - 1)).toBeLessThanOrEqual(8 * EPS);
          }
          // The direction against the canonical e^(+-8) theta^2.
          const ratio = variance / c.variance;
          if (expected.variance === 'clipped' && max === 8 && min === -8) {
            expect(Math.abs(ratio - 1)).toBeLessThanOrEqual(8 * EPS);
          } else if (u > 0) {
            expect(ratio).toBeGreaterThan(1);
          } else {
            expect(ratio).toBeLessThan(1);
          }
        }),
        { numRuns: 100 },
      );
    },
  );
});

describe('spec/profiles.md#sources-field-by-field: every field of a mirrored profile cites the code', () => {
  const page = readFileSync(new URL('../../spec/profiles.md', import.meta.url), 'utf8');
  const mirrored = PROFILE_NAMES.filter((n) => !PROFILES[n].canonical);

  it.each(mirrored)('%s: each convention field has a row with a source', (name) => {
    const start = `<!-- cite:${name}:start -->`;
    const end = `<!-- cite:${name}:end -->`;
    expect(page).toContain(start);
    const block = page.slice(page.indexOf(start) + start.length, page.indexOf(end));
    const cited = new Set<string>();
    for (const line of block.split('\n')) {
      const cells = line.split(' | ');
      if (!line.startsWith('| `') || cells.length < 3) continue;
      // Every row names its source: a file and line, or the reason there is none.
      expect(cells[2]!.trim().length, line).toBeGreaterThan(10);
      for (const m of cells[0]!.matchAll(/`([\w.]+)`/g)) cited.add(m[1]!);
    }
    const fields = Object.keys(flatten(PROFILES[name])).filter(
      (k) => !['name', 'canonical', 'algorithm'].includes(k) && !k.startsWith('source.'),
    );
    expect(fields.filter((f) => !cited.has(f))).toEqual([]);
    // No stale rows: every cited name is a field of this profile.
    expect([...cited].filter((c) => !fields.includes(c))).toEqual([]);
    // The commit in the data is the one the section names.
    expect(page).toContain(PROFILES[name].source.commit!);
  });
});
