/**
 * Properties of the KL term: spec/kl.md.
 *
 * The exact KL is checked against an independent quadrature of its defining
 * integral (written here, sharing nothing with src/reference/kl.ts), and the
 * two approximations against the exact KL with the bounds spec/kl.md states.
 */
import fc from 'fast-check';
import { bignumber } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { EXACT_KL_LIMIT, SVD_KL_K1, SVD_KL_K2, SVD_KL_K3 } from '../../src/constants.js';
import { VdspecError } from '../../src/errors.js';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import {
  EXACT_KL_ASYMPTOTIC_BELOW,
  EXACT_KL_ASYMPTOTIC_MAX,
  EXACT_KL_SERIES_MIN,
  klApprox,
  klApproxDerivative,
  klErrorTable,
  klExact,
  klExactAsymptotic,
  klExactDerivative,
  klExactSeries,
  klPerWeight,
  klPerWeightDerivative,
  klSum,
  klSvdSigmoid,
  klSvdSigmoidDerivative,
  klVdCubic,
  klVdCubicDerivative,
} from '../../src/reference/kl.js';
import type { Tensor } from '../../src/tensor.js';

// ------------------------------------------------------------ independent quadrature

/** Gauss-Legendre nodes and weights on [-1, 1], by Newton's method on P_n. */
function gaussLegendre(n: number): { nodes: number[]; weights: number[] } {
  const nodes: number[] = [];
  const weights: number[] = [];
  for (let i = 1; i <= n; i++) {
    let x = Math.cos((Math.PI * (i - 0.25)) / (n + 0.5));
    let derivative = 0;
    for (let iter = 0; iter < 100; iter++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= n; k++) {
        const p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      derivative = (n * (x * p1 - p0)) / (x * x - 1);
      const dx = p1 / derivative;
      x -= dx;
      if (Math.abs(dx) < 1e-16) break;
    }
    nodes.push(x);
    weights.push(2 / ((1 - x * x) * derivative * derivative));
  }
  return { nodes, weights };
}

const GL = gaussLegendre(20);

function glPanel(f: (x: number) => number, a: number, b: number): number {
  const half = 0.5 * (b - a);
  const mid = 0.5 * (a + b);
  let s = 0;
  for (let i = 0; i < GL.nodes.length; i++) s += GL.weights[i]! * f(mid + half * GL.nodes[i]!);
  return half * s;
}

/**
 * Adaptive Gauss-Legendre: a panel is accepted when its 20-point rule and the
 * sum over its two halves agree to `tolerance`; the halves' sum is kept. For
 * analytic integrands the 20-point rule's error falls far faster than the
 * difference, so the accepted value is accurate to well below `tolerance`.
 */
function adaptive(
  f: (x: number) => number,
  a: number,
  b: number,
  tolerance: number,
  whole = glPanel(f, a, b),
  depth = 0,
): number {
  const m = 0.5 * (a + b);
  const left = glPanel(f, a, m);
  const right = glPanel(f, m, b);
  if (Math.abs(left + right - whole) <= tolerance || depth >= 40) return left + right;
  return (
    adaptive(f, a, m, tolerance, left, depth + 1) + adaptive(f, m, b, tolerance, right, depth + 1)
  );
}

function integrate(f: (x: number) => number, breakpoints: number[], tolerance: number): number {
  const pts = [...new Set(breakpoints)].sort((x, y) => x - y);
  let s = 0;
  for (let i = 0; i + 1 < pts.length; i++) s += adaptive(f, pts[i]!, pts[i + 1]!, tolerance);
  return s;
}

const normalPdf = (x: number, mean: number, sd: number): number =>
  Math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * Math.sqrt(2 * Math.PI));

/**
 * KL from its definition (spec/kl.md#klexact):
 * KL = -log_alpha/2 + E_{e ~ N(1, alpha)} log|e| + (gamma + ln 2)/2.
 *
 * Folding e < 0 onto e > 0 gives E log|e| = int_0^inf log(e) g(e) de with
 * g(e) = N(e; 1, alpha) + N(e; -1, alpha); the substitution e = exp(u) turns
 * the log singularity at e = 0 into the smooth, exponentially decaying tail
 * u e^u g(e^u) as u -> -inf. Truncation: below u = -60 the tail is below
 * 61 e^-60 g(0) < 1e-24; above e = 1 + 40 sd the Gaussian is below e^-800.
 * Breakpoints at e = 1 + k sd place panel edges across the peak at e = 1,
 * however narrow it is.
 */
function klByQuadrature(logAlpha: number): number {
  const sd = Math.exp(0.5 * logAlpha);
  const integrand = (u: number): number => {
    const e = Math.exp(u);
    return u * e * (normalPdf(e, 1, sd) + normalPdf(e, -1, sd));
  };
  const top = Math.log(1 + 40 * sd);
  const breakpoints = [-60, top];
  for (let k = -12; k <= 12; k++) {
    const e = 1 + k * sd;
    if (e > 0 && Math.log(e) < top) breakpoints.push(Math.log(e));
  }
  const expectedLog = integrate(integrand, breakpoints, 1e-16);
  return -0.5 * logAlpha + expectedLog + EXACT_KL_LIMIT;
}

/**
 * dKL/dlog_alpha from a second integral: sum_k Pois(k; mu) / (2k + 1) =
 * e^-mu sum_k mu^k/k! int_0^1 t^(2k) dt = int_0^1 exp(-mu (1 - t^2)) dt, so
 * dKL/dlog_alpha = -mu int_0^1 exp(-mu (1 - t^2)) dt (-sqrt(mu) times Dawson's
 * function of sqrt(mu)). The integrand peaks at t = 1 with width ~ 1/(2 mu);
 * breakpoints at 1 - k/mu follow it.
 */
function klDerivativeByQuadrature(logAlpha: number): number {
  const mu = 0.5 * Math.exp(-logAlpha);
  // In s = 1 - t the exponent is -mu s (2 - s): 1 - t^2 formed from t near 1
  // would carry an absolute rounding of 1e-16, times mu (up to 6e5 here).
  const breakpoints = [0, 1];
  for (let k = 1; k <= 64; k *= 2) if (k / mu < 1) breakpoints.push(k / mu);
  return -mu * integrate((s) => Math.exp(-mu * s * (2 - s)), breakpoints, 1e-17);
}

// ------------------------------------------------------------ helpers

const logAlphaIn = (min: number, max: number) =>
  fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

/** Central difference, error h^2 |f'''| / 6 + ~eps |f| / h (bounds at each use). */
function centralDifference(f: (x: number) => number, x: number, h = 1e-4): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

function expectVdspecError(fn: () => unknown, code: string, argument: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(VdspecError);
  expect((caught as VdspecError).code).toBe(code);
  expect((caught as VdspecError).argument).toBe(argument);
}

// ------------------------------------------------------------ kl.exact

describe('spec/kl.md#klexact', () => {
  it('spec/kl.md#klexact: check values at log_alpha = 0 and 3 (algorithms.md, 10 digits)', () => {
    expect(klExact(0)).toBeCloseTo(0.4266856043, 10);
    expect(klExact(3)).toBeCloseTo(0.0246883354, 10);
    // The full-precision values the page prints, to within 2 ulp.
    const printed: [number, number][] = [
      [0, 0.4266856042960448],
      [3, 0.02468833544029892],
      [-8, 4.635013606920862],
      [8, 1.6772193643947361e-4],
    ];
    for (const [la, kl] of printed) {
      expect(Math.abs(klExact(la) - kl)).toBeLessThanOrEqual(4.5e-16 * kl);
    }
  });

  it('spec/kl.md#klexact: series agrees with quadrature of the defining integral', () => {
    // Both sides are accurate to ~1e-15 (the quadrature: 20-point panels
    // accepted at 1e-16; the series: compensated sums); measured max
    // difference 2.0e-15 on a 0.0137-step grid over [-14, 10]. 1e-13 leaves
    // a factor 50 for rounding in -log_alpha/2 + E log|e| (which cancel to
    // ~1e-4 at log_alpha = 8). [-14, 10] covers the asymptotic branch too.
    fc.assert(
      fc.property(logAlphaIn(-14, 10), (la) => {
        expect(Math.abs(klExact(la) - klByQuadrature(la))).toBeLessThan(1e-13);
      }),
      { numRuns: 40, seed: 1 },
    );
  });

  it('spec/kl.md#klexact: quadrature agreement at the grid ends and the switch point', () => {
    for (const la of [-8, -7.999, -8.001, 8, 0, -3.5]) {
      expect(Math.abs(klExact(la) - klByQuadrature(la))).toBeLessThan(1e-13);
    }
  });

  it('spec/kl.md#klexact: the series and the asymptotic branch agree around the switch', () => {
    // The expansion is exact to ~exp(-1/(2 alpha)) (e^-74 at -5), the series
    // to float64 rounding: they must agree to rounding (KL ~ 3.1..6.6 here,
    // so 1e-14 is ~10-20 ulp).
    for (let la = EXACT_KL_SERIES_MIN; la <= EXACT_KL_ASYMPTOTIC_MAX; la += 0.25) {
      const series = klExactSeries(la);
      const asymptotic = klExactAsymptotic(la);
      expect(Math.abs(series.kl - asymptotic.kl)).toBeLessThan(1e-14);
      expect(Math.abs(series.derivative - asymptotic.derivative)).toBeLessThan(1e-14);
    }
    expect(EXACT_KL_ASYMPTOTIC_BELOW).toBe(-8);
    // Continuity of klExact itself across the switch: |KL'| <= 0.65 (spec), so
    // a step of 1e-12 moves KL by < 1e-12; anything beyond that is a jump.
    const below = klExact(-8 - 1e-12);
    const at = klExact(-8);
    expect(below - at).toBeGreaterThanOrEqual(0);
    expect(below - at).toBeLessThan(1e-12 + 1e-14);
  });

  it('spec/kl.md#klexact: KL -> 0 as alpha -> inf, with 1 - exp(-mu) <= KL <= mu', () => {
    // From KL = sum_j P(K >= j)/(2j - 1), K ~ Poisson(mu): the j = 1 term is
    // 1 - exp(-mu), and every term is at most P(K >= j), which sum to E K = mu.
    // Relative slack 1e-14 for rounding.
    fc.assert(
      fc.property(logAlphaIn(-8, 700), (la) => {
        const mu = 0.5 * Math.exp(-la);
        const kl = klExact(la);
        expect(kl).toBeGreaterThan(0);
        expect(kl).toBeLessThanOrEqual(mu * (1 + 1e-14));
        expect(kl).toBeGreaterThanOrEqual(-Math.expm1(-mu) * (1 - 1e-14));
      }),
      { numRuns: 200, seed: 2 },
    );
    expect(klExact(Infinity)).toBe(0);
    expect(klExactDerivative(Infinity)).toBe(0);
  });

  it('spec/kl.md#klexact: KL + log_alpha/2 -> (gamma + ln 2)/2 as alpha -> 0', () => {
    // KL + la/2 - EXACT_KL_LIMIT = E log|e|, e ~ N(1, alpha). Jensen:
    // E log|e| <= log E|e|^2 / 2 = log1p(alpha)/2; and E log|e| -> -alpha/2,
    // so |E log|e|| <= alpha for alpha <= e^-2 (measured there: 0.09 vs 0.135).
    fc.assert(
      fc.property(logAlphaIn(-700, -2), (la) => {
        const alpha = Math.exp(la);
        const gap = klExact(la) + 0.5 * la - EXACT_KL_LIMIT;
        const rounding = 1e-15 * Math.abs(la); // ulp of KL ~ |la|/2
        expect(gap).toBeLessThanOrEqual(0.5 * Math.log1p(alpha) + rounding);
        expect(Math.abs(gap)).toBeLessThanOrEqual(alpha + rounding);
      }),
      { numRuns: 200, seed: 3 },
    );
    expect(klExact(-Infinity)).toBe(Infinity);
    expect(klExactDerivative(-Infinity)).toBe(-0.5);
  });

  it('spec/kl.md#klexact: strictly decreasing in log_alpha', () => {
    // |KL'| / KL >= 1/31 on [-30, 610] (KL' -> -KL for large la, and
    // 0.5 / (15 + 0.64) at -30), so a gap >= 1e-3 lowers KL by >= 3e-5
    // relative: far above its ~1e-15 relative rounding.
    fc.assert(
      fc.property(logAlphaIn(-30, 600), logAlphaIn(1e-3, 10), (la, gap) => {
        expect(klExact(la)).toBeGreaterThan(klExact(la + gap));
      }),
      { numRuns: 300, seed: 4 },
    );
  });

  it('spec/kl.md#klexact: derivative is negative, above its minimum -0.6424 (at la = -1.507)', () => {
    // min_x of -x F(x), F = Dawson's function, is -0.642374719828 at
    // x = 1.50197526827 (mpmath), i.e. log_alpha = -1.50670935524.
    fc.assert(
      fc.property(logAlphaIn(-40, 700), (la) => {
        const d = klExactDerivative(la);
        expect(d).toBeLessThan(0);
        expect(d).toBeGreaterThanOrEqual(-0.642374719829);
      }),
      { numRuns: 300, seed: 5 },
    );
    expect(klExactDerivative(-1.50670935524)).toBeCloseTo(-0.642374719828, 11);
  });

  it('spec/kl.md#klexact: derivative agrees with the Dawson-integral quadrature', () => {
    // Both accurate to ~1e-15 relative (measured max 6.6e-16 on a 0.0137-step
    // grid over [-14, 30]); 1e-13 relative leaves a factor 100.
    fc.assert(
      fc.property(logAlphaIn(-14, 30), (la) => {
        const expected = klDerivativeByQuadrature(la);
        expect(Math.abs(klExactDerivative(la) - expected)).toBeLessThan(1e-13 * Math.abs(expected));
      }),
      { numRuns: 60, seed: 6 },
    );
  });

  it('spec/kl.md#klexact: derivative matches central differences of klExact', () => {
    // max |KL'''| = 0.341 (mpmath, over [-14, 12]): truncation < 6e-10 with
    // h = 1e-4; rounding eps |KL| / h < 1e-11 (KL <= 7.7 here).
    fc.assert(
      fc.property(logAlphaIn(-14, 12), (la) => {
        const fd = centralDifference(klExact, la);
        expect(Math.abs(klExactDerivative(la) - fd)).toBeLessThan(2e-9);
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  it('spec/kl.md#klexact: NaN is rejected naming log_alpha', () => {
    expectVdspecError(() => klExact(NaN), 'non_finite', 'log_alpha');
    expectVdspecError(() => klExactDerivative(NaN), 'non_finite', 'log_alpha');
  });
});

// ------------------------------------------------------------ measured error table

describe('spec/kl.md (measured error)', () => {
  // The numbers spec/kl.md prints, rounded as printed there; this test keeps
  // the page and the code in step.
  const table = klErrorTable();

  it('spec/kl.md#klsvd: the printed max error 0.009375 at log_alpha -3.511', () => {
    expect(table.grid).toEqual({ from: -8, to: table.grid.to, step: 0.001, points: 16001 });
    expect(table.grid.to).toBeCloseTo(8, 9);
    expect(table.svd.maxAbsError).toBeCloseTo(0.009375, 6);
    expect(table.svd.atLogAlpha).toBeCloseTo(-3.511, 9);
    expect(table.svd.signedError).toBeGreaterThan(0);
  });

  it('spec/kl.md#klvd: the printed offset -0.65546 and deviation 0.02006', () => {
    expect(table.vdCubic.offset).toBeCloseTo(-0.65546, 5);
    expect(table.vdCubic.maxDeviation).toBeCloseTo(0.02006, 5);
    expect(table.vdCubic.fitFrom).toBe(-8);
    expect(table.vdCubic.fitTo).toBeCloseTo(0, 9);
    expect(table.cubicAbove.map((r) => Math.round(r.cubicDifference * 100) / 100)).toEqual([
      -4.51, -164.17, -4169.72,
    ]);
  });
});

// ------------------------------------------------------------ kl.svd

/** Bound enforced on [-8, 8]: measured max 0.009375 (klErrorTable, step 0.001) plus ~1%. */
const SVD_ERROR_BOUND = 0.0095;

describe('spec/kl.md#klsvd', () => {
  it('spec/kl.md#klsvd: within 0.0095 of the exact KL on [-8, 8]', () => {
    fc.assert(
      fc.property(logAlphaIn(-8, 8), (la) => {
        expect(Math.abs(klSvdSigmoid(la, 'minus_k1') - klExact(la))).toBeLessThanOrEqual(
          SVD_ERROR_BOUND,
        );
      }),
      { numRuns: 300, seed: 8 },
    );
    // Near the measured worst point, where a random draw rarely lands.
    for (let la = -3.6; la <= -3.4; la += 0.002) {
      expect(Math.abs(klSvdSigmoid(la, 'minus_k1') - klExact(la))).toBeLessThanOrEqual(
        SVD_ERROR_BOUND,
      );
    }
  });

  it('spec/kl.md#klsvd: with C = -k1 the KL goes to 0 as alpha -> inf', () => {
    // KL = k1 sigmoid(-(k2 + k3 la)) + softplus(-la)/2 <= k1 e^-(k2 + k3 la) + e^-la / 2.
    fc.assert(
      fc.property(logAlphaIn(8, 700), (la) => {
        const kl = klSvdSigmoid(la, 'minus_k1');
        expect(kl).toBeGreaterThan(0);
        expect(kl).toBeLessThanOrEqual(
          (SVD_KL_K1 * Math.exp(-(SVD_KL_K2 + SVD_KL_K3 * la)) + 0.5 * Math.exp(-la)) * (1 + 1e-14),
        );
      }),
      { numRuns: 200, seed: 9 },
    );
    expect(klSvdSigmoid(Infinity, 'minus_k1')).toBe(0);
    expect(klSvdSigmoid(-Infinity, 'minus_k1')).toBe(Infinity);
    expect(klSvdSigmoidDerivative(Infinity)).toBe(0);
    expect(klSvdSigmoidDerivative(-Infinity)).toBe(-0.5);
  });

  it('spec/kl.md#klsvd: C omitted shifts KL by -k1 everywhere (limit -k1 at +inf)', () => {
    fc.assert(
      fc.property(logAlphaIn(-50, 50), (la) => {
        const shift = klSvdSigmoid(la, 'omitted') - klSvdSigmoid(la, 'minus_k1');
        // Both values are O(|la|); their rounding is ~1e-16 |la| + 1e-16.
        expect(Math.abs(shift + SVD_KL_K1)).toBeLessThan(1e-14 * (1 + Math.abs(la)));
      }),
      { numRuns: 200, seed: 10 },
    );
    expect(klSvdSigmoid(Infinity, 'omitted')).toBe(-SVD_KL_K1);
  });

  it('spec/kl.md#klsvd: the written equation, term by term', () => {
    // The equation as printed, evaluated naively where it is safe (|la| <= 30).
    fc.assert(
      fc.property(logAlphaIn(-30, 30), (la) => {
        const sig = 1 / (1 + Math.exp(-(SVD_KL_K2 + SVD_KL_K3 * la)));
        const naive = -(SVD_KL_K1 * sig - 0.5 * Math.log1p(Math.exp(-la)) - SVD_KL_K1);
        expect(Math.abs(klSvdSigmoid(la, 'minus_k1') - naive)).toBeLessThan(1e-13);
      }),
      { numRuns: 200, seed: 11 },
    );
  });

  it('spec/kl.md#klsvd: derivative matches central differences', () => {
    // |sigmoid'''| <= 1/8 and |sigmoid''| <= 0.1, so |f'''| <= k1 k3^3 / 8 + 0.05
    // < 0.31 and the truncation h^2 |f'''| / 6 < 6e-10 with h = 1e-4; rounding
    // adds eps |f| / h < 2e-11 (|f| <= 16 on [-30, 30]).
    fc.assert(
      fc.property(logAlphaIn(-30, 30), (la) => {
        const fd = centralDifference((x) => klSvdSigmoid(x, 'minus_k1'), la);
        expect(Math.abs(klSvdSigmoidDerivative(la) - fd)).toBeLessThan(2e-9);
      }),
      { numRuns: 200, seed: 12 },
    );
  });

  it('spec/kl.md#klsvd: bad constant and NaN name their argument', () => {
    expectVdspecError(() => klSvdSigmoid(NaN, 'minus_k1'), 'non_finite', 'log_alpha');
    expectVdspecError(() => klSvdSigmoidDerivative(NaN), 'non_finite', 'log_alpha');
    expectVdspecError(
      () => klSvdSigmoid(0, 'dropped' as unknown as 'omitted'),
      'invalid_argument',
      'constant',
    );
  });
});

// ------------------------------------------------------------ kl.vd

/** Bound enforced on [-8, 0]: measured spread 2 * 0.020059 (klErrorTable) plus ~2%. */
const CUBIC_SPREAD_BOUND = 0.041;

describe('spec/kl.md#klvd', () => {
  it('spec/kl.md#klvd: equals the exact KL up to a constant for alpha <= 1', () => {
    // Offset-free form of "max |cubic - exact - c| <= 0.0201 for one c":
    // any two differences are within twice that.
    fc.assert(
      fc.property(logAlphaIn(-8, 0), logAlphaIn(-8, 0), (a, b) => {
        const da = klVdCubic(a) - klExact(a);
        const db = klVdCubic(b) - klExact(b);
        expect(Math.abs(da - db)).toBeLessThanOrEqual(CUBIC_SPREAD_BOUND);
      }),
      { numRuns: 300, seed: 13 },
    );
    // The extremes found by klErrorTable: la = -8 (top) and -2.1 (bottom).
    expect(Math.abs(klVdCubic(-8) - klExact(-8) - (klVdCubic(-2.1) - klExact(-2.1)))).toBeLessThan(
      CUBIC_SPREAD_BOUND,
    );
  });

  it('spec/kl.md#klvd: diverges above alpha = 1 (off by > 1000 from la = 3)', () => {
    // Measured: -4.5 at la = 1, -164 at 2, -4170 at 3; the alpha^3 term grows from there.
    fc.assert(
      fc.property(logAlphaIn(3, 8), (la) => {
        expect(klVdCubic(la) - klExact(la)).toBeLessThan(-1000);
      }),
      { numRuns: 100, seed: 14 },
    );
  });

  it('spec/kl.md#klvd: the written equation; limits', () => {
    fc.assert(
      fc.property(logAlphaIn(-30, 5), (la) => {
        const a = Math.exp(la);
        const naive = -(0.5 * la + 1.16145124 * a - 1.50204118 * a * a + 0.58629921 * a * a * a);
        // Literal paper coefficients here on purpose: an independent transcription
        // of Kingma eq. 16 against src/constants.ts. Rounding: ~1e-16 of the
        // largest term (0.59 e^15 ~ 2e6 at la = 5).
        expect(Math.abs(klVdCubic(la) - naive)).toBeLessThan(1e-15 * (1 + Math.abs(la) + a ** 3));
      }),
      { numRuns: 200, seed: 15 },
    );
    expect(klVdCubic(-Infinity)).toBe(Infinity);
    expect(klVdCubicDerivative(-Infinity)).toBe(-0.5);
    expect(klVdCubic(400)).toBe(-Infinity); // overflow, never NaN
    expectVdspecError(() => klVdCubic(Infinity), 'non_finite', 'log_alpha');
    expectVdspecError(() => klVdCubicDerivative(Infinity), 'non_finite', 'log_alpha');
    expectVdspecError(() => klVdCubic(NaN), 'non_finite', 'log_alpha');
  });

  it('spec/kl.md#klvd: derivative matches central differences', () => {
    // f''' = -(c1 a + 8 c2 a^2 + 27 c3 a^3) with a <= e on [-30, 1]:
    // |f'''| <= 3.2 + 88.7 + 318 < 410, so h^2 |f'''| / 6 < 7e-7 with h = 1e-4.
    fc.assert(
      fc.property(logAlphaIn(-30, 1), (la) => {
        const fd = centralDifference(klVdCubic, la);
        expect(Math.abs(klVdCubicDerivative(la) - fd)).toBeLessThan(1e-6);
      }),
      { numRuns: 200, seed: 16 },
    );
  });
});

// ------------------------------------------------------------ kl.sum

const tensorOf = (data: number[]): Tensor => ({ shape: [data.length], data });

describe('spec/kl.md#klsum', () => {
  const profiles = PROFILE_NAMES.map((name) => PROFILES[name]);

  it('spec/kl.md#klsum: klApprox follows profile.kl (approximation and constant)', () => {
    // Branches on the fields, not the names: a renamed copy behaves the same.
    for (const profile of profiles) {
      const renamed = { ...profile, name: 'molchanov2017' } as Profile;
      for (const la of [-8, -3.5, 0, 3, 8]) {
        if (profile.kl.approximation === 'vd_cubic' && la > 0) continue;
        const expected =
          profile.kl.approximation === 'vd_cubic'
            ? klVdCubic(la)
            : klSvdSigmoid(la, profile.kl.constant === 'omitted' ? 'omitted' : 'minus_k1');
        expect(klApprox(la, profile)).toBe(expected);
        expect(klApprox(la, renamed)).toBe(expected);
        expect(klApprox(la, profile.name)).toBe(expected);
        const expectedSlope =
          profile.kl.approximation === 'vd_cubic'
            ? klVdCubicDerivative(la)
            : klSvdSigmoidDerivative(la);
        expect(klApproxDerivative(la, profile)).toBe(expectedSlope);
      }
    }
  });

  it('spec/kl.md#klsum: per weight equals the scalar; sum equals the sum', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...profiles),
        fc.array(logAlphaIn(-10, 10), { minLength: 0, maxLength: 40 }),
        (profile, values) => {
          const clipped = values.map((v) =>
            profile.kl.approximation === 'vd_cubic' ? Math.min(v, 0) : v,
          );
          const t: Tensor = { shape: [1, clipped.length], data: clipped };
          const perWeight = klPerWeight(t, profile);
          expect(perWeight.shape).toEqual([1, clipped.length]);
          expect(perWeight.data).toEqual(clipped.map((v) => klApprox(v, profile)));
          const slopes = klPerWeightDerivative(t, profile);
          expect(slopes.shape).toEqual([1, clipped.length]);
          expect(slopes.data).toEqual(clipped.map((v) => klApproxDerivative(v, profile)));
          // Compensated sum vs a plain one: they differ only by rounding,
          // <= n eps sum|KL|.
          const plain = perWeight.data.reduce((s, v) => s + v, 0);
          const scale = perWeight.data.reduce((s, v) => s + Math.abs(v), 0);
          expect(Math.abs(klSum(t, profile) - plain)).toBeLessThanOrEqual(
            clipped.length * 2.3e-16 * scale,
          );
        },
      ),
      { numRuns: 100, seed: 17 },
    );
    expect(klSum({ shape: [0], data: [] }, 'molchanov2017')).toBe(0);
    expect(klSum({ shape: [], data: [0] }, 'molchanov2017')).toBe(klSvdSigmoid(0, 'minus_k1'));
  });

  it('spec/kl.md#klsum: +inf where the limit is finite (sigmoid), rejected for the cubic', () => {
    const t = tensorOf([Infinity, 0]);
    expect(klPerWeight(t, 'molchanov2017').data[0]).toBe(0);
    expect(klPerWeight(t, 'deepbayes-pytorch').data[0]).toBe(-SVD_KL_K1);
    expect(klPerWeightDerivative(t, 'molchanov2017').data[0]).toBe(0);
    expect(klSum(t, 'molchanov2017')).toBe(klSvdSigmoid(0, 'minus_k1'));
    expectVdspecError(() => klPerWeight(t, 'kingma2015'), 'non_finite', 'log_alpha');
    expectVdspecError(() => klPerWeightDerivative(t, 'kingma2015'), 'non_finite', 'log_alpha');
    expectVdspecError(() => klSum(t, 'kingma2015'), 'non_finite', 'log_alpha');
  });

  it('spec/kl.md#klsum: NaN, bad shapes and bad profiles name their argument; -inf gives +inf', () => {
    for (const name of PROFILE_NAMES) {
      expectVdspecError(() => klPerWeight(tensorOf([0, NaN]), name), 'non_finite', 'log_alpha');
      expectVdspecError(() => klSum(tensorOf([NaN]), name), 'non_finite', 'log_alpha');
      // -inf: the KL's limit, +inf, for both forms; its slope's limit -1/2.
      expect(klPerWeight(tensorOf([-Infinity, 0]), name).data[0]).toBe(Infinity);
      expect(klPerWeightDerivative(tensorOf([-Infinity]), name).data[0]).toBe(-0.5);
      expect(klSum(tensorOf([-Infinity, 0, 1]), name)).toBe(Infinity);
    }
    // The cubic overflows to -inf above la ~ 236.8; with a -inf entry the sum
    // would be inf - inf.
    expectVdspecError(
      () => klSum(tensorOf([-Infinity, 300]), 'kingma2015'),
      'non_finite',
      'log_alpha',
    );
    expectVdspecError(
      () => klSum({ shape: [2, 2], data: [0, 0, 0] }, 'molchanov2017'),
      'shape_mismatch',
      'log_alpha',
    );
    expectVdspecError(
      () => klSum(tensorOf([0]), 'no-such-profile' as 'molchanov2017'),
      'unknown_profile',
      'profile',
    );
    const mismatched = {
      ...PROFILES.molchanov2017,
      kl: { approximation: 'vd_cubic', constant: 'minus_k1' },
    } as Profile;
    expectVdspecError(() => klApprox(0, mismatched), 'invalid_argument', 'profile');
    expectVdspecError(() => klApprox(NaN, 'molchanov2017'), 'non_finite', 'log_alpha');
  });
});

// ------------------------------------------------------------ edges the mutation run found bare

describe('spec/kl.md#klexact: the branches at their edges', () => {
  it('each branch called directly refuses log_alpha outside its range, with the message', () => {
    expect(() => klExactSeries(-12.5)).toThrow(
      'log_alpha: the series form takes finite log_alpha >= -12, got -12.5',
    );
    expectVdspecError(() => klExactSeries(-12.5), 'invalid_argument', 'log_alpha');
    expectVdspecError(() => klExactSeries(Infinity), 'invalid_argument', 'log_alpha');
    expect(() => klExactAsymptotic(-4.9)).toThrow(
      'log_alpha: the asymptotic form takes log_alpha <= -5, got -4.9',
    );
    expectVdspecError(() => klExactAsymptotic(-4.9), 'invalid_argument', 'log_alpha');
    expect(() => klExact('1' as unknown as number)).toThrow(
      'log_alpha: expected a number, got string',
    );
    expectVdspecError(() => klExact('1' as unknown as number), 'invalid_argument', 'log_alpha');
    expect(() => klExact(NaN)).toThrow('log_alpha: log_alpha is NaN');
  });

  it('tiny mu = 1/(2 alpha): the KL keeps its relative accuracy (the Poisson terms k = 0, 1, 2 summed here)', () => {
    for (const la of [23, 25, 30, 40]) {
      const mu = 0.5 * Math.exp(-la);
      // p_k proportional to mu^k / k!, H_0 = 0, H_1 = 2, H_2 = 2 + 2/3; the k = 3 term is ~mu^2 relative.
      const p = [1, mu, (mu * mu) / 2];
      const h = [0, 2, 2 + 2 / 3];
      const total = p[0]! + p[1]! + p[2]!;
      const want = (0.5 * (p[1]! * h[1]! + p[2]! * h[2]!)) / total;
      expect(Math.abs(klExact(la) - want) / want, `la=${la}`).toBeLessThan(1e-14);
    }
  });

  it('the sigmoid KL slope keeps its subnormal tail -exp(-log_alpha)/2 up to log_alpha ~ 745', () => {
    // sigmoid(-la) as 1 / (1 + exp(la)) would be 1 / inf = 0 from la ~ 709.8 on.
    for (const la of [712, 720, 740]) {
      const want = -0.5 * Math.exp(-la);
      expect(want).toBeLessThan(0);
      const got = klSvdSigmoidDerivative(la);
      expect(Math.abs(got - want), `la=${la}`).toBeLessThanOrEqual(Math.abs(want) * 1e-6);
    }
  });

  it('the slope is +0, not -0, where mu underflows to 0', () => {
    expect(Object.is(klExactDerivative(800), 0)).toBe(true);
  });
});

describe('spec/kl.md#klsum: checks and the compensated sum', () => {
  it('klSum is the exact sum of the per-weight KLs where a plain sum would lose the small one', () => {
    // Cubic KLs of about 1.1, 1e16 and -1e16 in that order: the 1.1 is lost to 1e16's ulp (2)
    // unless the compensation keeps it. The reference is the three float64 values added exactly.
    const t = tensorOf([-2, -2e16, 12.458]);
    const values = klPerWeight(t, 'kingma2015').data;
    expect(values[1]).toBe(1e16);
    expect(Math.abs(values[2]!)).toBeGreaterThan(5e15);
    const exact = values.reduce((s, v) => s.plus(bignumber(v)), bignumber(0)).toNumber();
    expect(Math.abs(klSum(t, 'kingma2015') - exact)).toBeLessThanOrEqual(
      4 * Number.EPSILON * Math.abs(exact),
    );
  });

  it('the messages of every refusal', () => {
    expect(() => klSvdSigmoid(0, 'dropped' as 'omitted')).toThrow(
      "constant: expected 'minus_k1' or 'omitted', got dropped",
    );
    expect(() => klVdCubic(Infinity)).toThrow(
      'log_alpha: log_alpha = +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)',
    );
    // +inf first: the tensor check, not the scalar cubic, refuses it, naming the element.
    expect(() => klPerWeight(tensorOf([Infinity, 0]), 'kingma2015')).toThrow(
      'log_alpha: element 0 is +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)',
    );
    expect(() => klSum(tensorOf([-Infinity, 300]), 'kingma2015')).toThrow(
      'log_alpha: the per-weight KL is +Infinity at one entry and -Infinity at another; the sum is undefined',
    );
    // svd_sigmoid with the cubic's constant: refused as a pair (not by the sigmoid's own check).
    const svdDropped = {
      ...PROFILES.molchanov2017,
      kl: { approximation: 'svd_sigmoid', constant: 'dropped' },
    } as Profile;
    expect(() => klApprox(0, svdDropped)).toThrow(
      'profile: kl = {approximation: svd_sigmoid, constant: dropped} is not a supported pair (svd_sigmoid with minus_k1 or omitted; vd_cubic with dropped)',
    );
    expectVdspecError(() => klApprox(0, svdDropped), 'invalid_argument', 'profile');
  });

  it('klErrorTable refuses a step that is not finite and positive, or too small', () => {
    for (const step of [0, -1, NaN, Infinity]) {
      expect(() => klErrorTable(step)).toThrow(`step: expected a finite step > 0, got ${step}`);
      expectVdspecError(() => klErrorTable(step), 'invalid_argument', 'step');
    }
    expect(() => klErrorTable(1e-6)).toThrow('step: step 0.000001 gives more than 1000001 points');
    expectVdspecError(() => klErrorTable(1e-6), 'invalid_argument', 'step');
  });
});
