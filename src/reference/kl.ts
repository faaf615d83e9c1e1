/**
 * The KL term of VD and Sparse VD, per weight: spec/kl.md.
 *
 * Every function returns KL (not -KL), in nats, as a function of log_alpha
 * alone. The exact KL is the yardstick the two published approximations are
 * measured against; the layers use the approximation their profile names.
 */
import {
  EXACT_KL_LIMIT,
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../constants.js';
import { VdspecError } from '../errors.js';
import { getProfile, type Profile, type ProfileName } from '../profiles.js';
import { checkTensor, type Tensor } from '../tensor.js';

/**
 * Below this log_alpha the exact KL uses its small-alpha asymptotic expansion
 * instead of the Poisson series (spec/kl.md#klexact). At -8 the series needs
 * about 800 terms and the expansion is exact to far below float64 rounding,
 * so the switch costs no accuracy; below it the series length grows like
 * 1/alpha (2.4e8 terms at -20).
 */
export const EXACT_KL_ASYMPTOTIC_BELOW = -8;

/**
 * Where each branch may be called directly (klExactSeries, klExactAsymptotic):
 * the series is valid everywhere but its length grows like 1/alpha, so it is
 * capped for cost; the expansion's truncation error exp(-1/(2 alpha)) is
 * below 1e-32 only for log_alpha <= -5. The overlap [-12, -5] is where the
 * switch point is tested.
 */
export const EXACT_KL_SERIES_MIN = -12;
export const EXACT_KL_ASYMPTOTIC_MAX = -5;

/**
 * The Poisson weights are summed outward from the mode until they fall below
 * this fraction of the mode's weight (and at least two terms past the mode);
 * the mass left out is then below 1e-18 of the total for every mu, far below
 * float64 rounding of the result.
 */
const POISSON_TAIL_CUTOFF = 1e-20;

/** Terms of the small-alpha expansion are added until they fall below this (absolute, nats). */
const ASYMPTOTIC_TERM_CUTOFF = 1e-19;

export type SvdKlConstant = 'minus_k1' | 'omitted';

/** Value and slope of a KL at one log_alpha. */
export interface KlValue {
  /** KL in nats. */
  readonly kl: number;
  /** dKL / dlog_alpha. */
  readonly derivative: number;
}

// ---------------------------------------------------------------- helpers

/** log_alpha as a scalar: NaN is the only value with no defined KL limit. */
function checkLogAlpha(value: unknown, name = 'log_alpha'): number {
  if (typeof value !== 'number') {
    throw new VdspecError('invalid_argument', `expected a number, got ${typeof value}`, name);
  }
  if (Number.isNaN(value)) {
    throw new VdspecError('non_finite', 'log_alpha is NaN', name);
  }
  return value;
}

/**
 * Compensated (Neumaier) running sum: the series adds up to a few thousand
 * positive terms and the KL sum up to millions, and the reference should be
 * the exact sum to within about one rounding.
 */
class CompensatedSum {
  private sum = 0;
  private compensation = 0;

  add(x: number): void {
    const t = this.sum + x;
    if (Math.abs(this.sum) >= Math.abs(x)) this.compensation += this.sum - t + x;
    else this.compensation += x - t + this.sum;
    this.sum = t;
  }

  value(): number {
    // An infinite term makes the compensation inf - inf = NaN; the running
    // sum itself is then the answer (+-inf, or NaN for +inf plus -inf).
    return Number.isFinite(this.sum) ? this.sum + this.compensation : this.sum;
  }
}

/** 1 / (1 + exp(-x)) without overflow for either sign of x. */
function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(1 + exp(x)) for every x, +-inf included (exp(x) alone overflows above 709). */
function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

// ---------------------------------------------------------------- exact KL

/**
 * The exact KL by its Poisson mixture (spec/kl.md#klexact), with
 * mu = 1 / (2 alpha) and K ~ Poisson(mu):
 *
 *   KL   = 0.5 * E[H_K],        H_k = sum_{j=1..k} 2 / (2j - 1)  (= psi(k + 1/2) + gamma + 2 ln 2)
 *   dKL/dlog_alpha = -mu * E[1 / (2K + 1)]
 *
 * The weights are ratios to the mode's probability, built by the ratio
 * recurrence p(k+1)/p(k) = mu/(k+1) outward from the mode and normalised by
 * their own sum: no probability is formed from exp/lgamma of large numbers,
 * whose cancellation would cost ~1e-12 at mu ~ 1500.
 */
export function klExactSeries(logAlpha: number): KlValue {
  const la = checkLogAlpha(logAlpha);
  if (la < EXACT_KL_SERIES_MIN || !Number.isFinite(la)) {
    throw new VdspecError(
      'invalid_argument',
      `the series form takes finite log_alpha >= ${EXACT_KL_SERIES_MIN}, got ${la}`,
      'log_alpha',
    );
  }
  const mu = 0.5 * Math.exp(-la);
  const mode = Math.floor(mu);
  const safetyCap = Math.ceil(mu + 40 * Math.sqrt(mu) + 100);

  // Relative weights below the mode (index 0 = mode - 1, going down).
  const below: number[] = [];
  for (let k = mode, w = 1; k > 0; k--) {
    w *= k / mu;
    if (w < POISSON_TAIL_CUTOFF) break;
    below.push(w);
  }
  // Relative weights from the mode up (index 0 = the mode itself).
  const fromMode: number[] = [1];
  for (let k = mode + 1, w = 1; k <= safetyCap; k++) {
    w *= mu / k;
    // For mu < 1 the KL is carried by k = 1 alone (H_0 = 0), whose weight is
    // mu itself: keep two terms past the mode so the KL keeps its relative
    // accuracy however small mu gets (truncation error ~ mu^2 relative).
    if (w < POISSON_TAIL_CUTOFF && k > mode + 2) break;
    fromMode.push(w);
  }
  const kFirst = mode - below.length;
  const kLast = mode + fromMode.length - 1;
  const weightAt = (k: number): number => (k >= mode ? fromMode[k - mode]! : below[mode - k - 1]!);

  const harmonic = new CompensatedSum(); // H_k, built from k = 0 up
  const weights = new CompensatedSum();
  const weightedHarmonic = new CompensatedSum();
  const weightedReciprocal = new CompensatedSum();
  for (let k = 0; k <= kLast; k++) {
    if (k > 0) harmonic.add(2 / (2 * k - 1));
    if (k < kFirst) continue;
    const w = weightAt(k);
    weights.add(w);
    weightedHarmonic.add(w * harmonic.value());
    weightedReciprocal.add(w / (2 * k + 1));
  }
  const total = weights.value();
  return {
    kl: (0.5 * weightedHarmonic.value()) / total,
    // + 0 turns the -0 of mu = 0 (log_alpha above ~745) into 0.
    derivative: (-mu * weightedReciprocal.value()) / total + 0,
  };
}

/**
 * The small-alpha expansion of the exact KL (spec/kl.md#klexact): with
 * e = 1 + sqrt(alpha) z, E log|e| = -sum_{n>=1} (2n-1)!! alpha^n / (2n), so
 *
 *   KL             = EXACT_KL_LIMIT - log_alpha/2 - 0.5 * sum_{n>=1} (2n-1)!! alpha^n / n
 *   dKL/dlog_alpha = -0.5 - 0.5 * sum_{n>=1} (2n-1)!! alpha^n
 *
 * The series is asymptotic (it diverges for every alpha > 0), but its
 * smallest term, near n = 1/(2 alpha), is about exp(-1/(2 alpha)): at
 * log_alpha = -8 that is exp(-1490), at -5 exp(-74), so truncating at a term
 * of 1e-19 (reached by n = 20 for log_alpha <= -5) is exact in float64.
 */
export function klExactAsymptotic(logAlpha: number): KlValue {
  const la = checkLogAlpha(logAlpha);
  if (la > EXACT_KL_ASYMPTOTIC_MAX) {
    throw new VdspecError(
      'invalid_argument',
      `the asymptotic form takes log_alpha <= ${EXACT_KL_ASYMPTOTIC_MAX}, got ${la}`,
      'log_alpha',
    );
  }
  if (la === -Infinity) return { kl: Infinity, derivative: -0.5 };
  const alpha = Math.exp(la);
  let term = 1; // (2n - 1)!! alpha^n, from n = 0
  const klTail = new CompensatedSum();
  const slopeTail = new CompensatedSum();
  for (let n = 1; n <= 100; n++) {
    term *= (2 * n - 1) * alpha;
    klTail.add(term / n);
    slopeTail.add(term);
    if (term < ASYMPTOTIC_TERM_CUTOFF) break;
  }
  return {
    kl: EXACT_KL_LIMIT - 0.5 * la - 0.5 * klTail.value(),
    derivative: -0.5 - 0.5 * slopeTail.value(),
  };
}

function exactKlValue(logAlpha: number): KlValue {
  const la = checkLogAlpha(logAlpha);
  if (la === Infinity) return { kl: 0, derivative: 0 };
  return la < EXACT_KL_ASYMPTOTIC_BELOW ? klExactAsymptotic(la) : klExactSeries(la);
}

/**
 * KL(q || p) between q = N(theta, alpha theta^2) and the log-uniform prior,
 * normalised so that KL -> 0 as alpha -> inf (spec/kl.md#klexact).
 * Positive, strictly decreasing; log_alpha = +inf gives 0, -inf gives +inf.
 */
export function klExact(logAlpha: number): number {
  return exactKlValue(logAlpha).kl;
}

/**
 * dKL/dlog_alpha of the exact KL: negative, with minimum -0.6424 at log_alpha
 * = -1.507 (spec/kl.md#klexact); -0.5 at -inf and 0 at +inf.
 */
export function klExactDerivative(logAlpha: number): number {
  return exactKlValue(logAlpha).derivative;
}

// ---------------------------------------------------------------- SVD approximation

function checkSvdConstant(constant: unknown): SvdKlConstant {
  if (constant !== 'minus_k1' && constant !== 'omitted') {
    throw new VdspecError(
      'invalid_argument',
      `expected 'minus_k1' or 'omitted', got ${String(constant)}`,
      'constant',
    );
  }
  return constant;
}

/**
 * Molchanov et al. 2017, eq. 14 (spec/kl.md#klsvd):
 *
 *   KL = -(k1 * sigmoid(k2 + k3 * log_alpha) - 0.5 * log1p(exp(-log_alpha)) + C)
 *
 * with C = -k1 ('minus_k1') or C = 0 ('omitted'). Evaluated as
 * k1 * sigmoid(-(k2 + k3 la)) + 0.5 * softplus(-la) - (k1 + C), the same
 * function (1 - sigmoid(z) = sigmoid(-z)), so that with C = -k1 the value
 * keeps its relative accuracy as it goes to 0, and log_alpha = +inf gives
 * -(k1 + C) instead of inf - inf.
 */
export function klSvdSigmoid(logAlpha: number, constant: SvdKlConstant): number {
  const la = checkLogAlpha(logAlpha);
  const c = checkSvdConstant(constant) === 'minus_k1' ? -SVD_KL_K1 : 0;
  const z = SVD_KL_K2 + SVD_KL_K3 * la;
  return SVD_KL_K1 * sigmoid(-z) + 0.5 * softplus(-la) - (SVD_KL_K1 + c);
}

/** dKL/dlog_alpha of klSvdSigmoid (the constant does not enter): 0 at +inf, -0.5 at -inf. */
export function klSvdSigmoidDerivative(logAlpha: number): number {
  const la = checkLogAlpha(logAlpha);
  const z = SVD_KL_K2 + SVD_KL_K3 * la;
  // + 0 turns the -0 at log_alpha = +inf into 0.
  return -SVD_KL_K1 * SVD_KL_K3 * sigmoid(z) * sigmoid(-z) - 0.5 * sigmoid(-la) + 0;
}

// ---------------------------------------------------------------- VD approximation

function checkCubicLogAlpha(logAlpha: number): number {
  const la = checkLogAlpha(logAlpha);
  if (la === Infinity) {
    // The cubic is fitted for alpha <= 1 only and has no finite limit; VD
    // clips log_alpha <= 0 before the KL, so +inf can only be a caller error.
    throw new VdspecError(
      'non_finite',
      'log_alpha = +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)',
      'log_alpha',
    );
  }
  return la;
}

/**
 * Kingma et al. 2015, eq. 16, constant dropped (spec/kl.md#klvd):
 *
 *   KL = -(0.5 * log_alpha + c1 alpha + c2 alpha^2 + c3 alpha^3)
 *
 * The polynomial is evaluated in Horner form alpha (c1 + alpha (c2 + alpha c3)):
 * the same polynomial, and it overflows to -inf above log_alpha ~ 236
 * instead of producing inf - inf = NaN above ~ 355.
 */
export function klVdCubic(logAlpha: number): number {
  const la = checkCubicLogAlpha(logAlpha);
  const alpha = Math.exp(la);
  return -(0.5 * la + alpha * (VD_KL_C1 + alpha * (VD_KL_C2 + alpha * VD_KL_C3)));
}

/** dKL/dlog_alpha of klVdCubic: -(0.5 + c1 alpha + 2 c2 alpha^2 + 3 c3 alpha^3). */
export function klVdCubicDerivative(logAlpha: number): number {
  const la = checkCubicLogAlpha(logAlpha);
  const alpha = Math.exp(la);
  return -(0.5 + alpha * (VD_KL_C1 + alpha * (2 * VD_KL_C2 + alpha * 3 * VD_KL_C3)));
}

// ---------------------------------------------------------------- per profile

type KlForm = { kind: 'svd_sigmoid'; constant: SvdKlConstant } | { kind: 'vd_cubic' };

/** The KL the profile's layers use, checked: `profile` may come from user data at run time. */
function klForm(profile: Profile): KlForm {
  const { approximation, constant } = profile.kl;
  if (approximation === 'svd_sigmoid' && (constant === 'minus_k1' || constant === 'omitted')) {
    return { kind: 'svd_sigmoid', constant };
  }
  if (approximation === 'vd_cubic' && constant === 'dropped') return { kind: 'vd_cubic' };
  throw new VdspecError(
    'invalid_argument',
    `kl = {approximation: ${String(approximation)}, constant: ${String(constant)}} is not a ` +
      `supported pair (svd_sigmoid with minus_k1 or omitted; vd_cubic with dropped)`,
    'profile',
  );
}

function klOfForm(form: KlForm, la: number): number {
  return form.kind === 'svd_sigmoid' ? klSvdSigmoid(la, form.constant) : klVdCubic(la);
}

function klDerivativeOfForm(form: KlForm, la: number): number {
  return form.kind === 'svd_sigmoid' ? klSvdSigmoidDerivative(la) : klVdCubicDerivative(la);
}

/** The per-weight KL approximation named by `profile.kl` (spec/kl.md#klsum). */
export function klApprox(logAlpha: number, profile: Profile | ProfileName): number {
  return klOfForm(klForm(getProfile(profile)), checkLogAlpha(logAlpha));
}

/** dKL/dlog_alpha of klApprox. */
export function klApproxDerivative(logAlpha: number, profile: Profile | ProfileName): number {
  return klDerivativeOfForm(klForm(getProfile(profile)), checkLogAlpha(logAlpha));
}

/**
 * Check a clipped log_alpha tensor for the KL (spec/kl.md#klsum): NaN is
 * rejected; -inf gives KL = +inf (the limit of both forms); +inf only where
 * the approximation has a finite limit there (the sigmoid form), since the
 * cubic has none and VD keeps log_alpha <= 0.
 */
function checkLogAlphaTensor(logAlpha: Tensor, form: KlForm): Tensor {
  const t = checkTensor('log_alpha', logAlpha, { allow: 'infinity' });
  if (form.kind === 'vd_cubic') {
    const i = t.data.indexOf(Infinity);
    if (i >= 0) {
      throw new VdspecError(
        'non_finite',
        `element ${i} is +Infinity: the VD cubic KL has no finite value there (VD keeps log_alpha <= 0)`,
        'log_alpha',
      );
    }
  }
  return t;
}

/** KL per weight, same shape as `logAlpha` (already clipped per the profile). */
export function klPerWeight(logAlpha: Tensor, profile: Profile | ProfileName): Tensor {
  const form = klForm(getProfile(profile));
  const t = checkLogAlphaTensor(logAlpha, form);
  return { shape: [...t.shape], data: t.data.map((la) => klOfForm(form, la)) };
}

/** dKL/dlog_alpha per weight (the derivative with respect to the clipped log_alpha). */
export function klPerWeightDerivative(logAlpha: Tensor, profile: Profile | ProfileName): Tensor {
  const form = klForm(getProfile(profile));
  const t = checkLogAlphaTensor(logAlpha, form);
  return { shape: [...t.shape], data: t.data.map((la) => klDerivativeOfForm(form, la)) };
}

/**
 * The layer's KL: the sum of klPerWeight over every entry (0 for an empty
 * tensor; +inf if some log_alpha is -inf).
 */
export function klSum(logAlpha: Tensor, profile: Profile | ProfileName): number {
  const sum = new CompensatedSum();
  for (const v of klPerWeight(logAlpha, profile).data) sum.add(v);
  const total = sum.value();
  if (Number.isNaN(total)) {
    // Only the cubic can get here: +inf at log_alpha = -inf and -inf from
    // overflow above log_alpha ~ 236.8, both far outside VD's alpha <= 1.
    throw new VdspecError(
      'non_finite',
      'the per-weight KL is +Infinity at one entry and -Infinity at another; the sum is undefined',
      'log_alpha',
    );
  }
  return total;
}

// ---------------------------------------------------------------- measured error

export interface KlErrorRow {
  readonly logAlpha: number;
  readonly exact: number;
  /** klSvdSigmoid(la, 'minus_k1') - klExact(la). */
  readonly svdError: number;
  /** klVdCubic(la) - klExact(la) (the cubic's constant is dropped, so this is not small). */
  readonly cubicDifference: number;
  /** cubicDifference - vdCubic.offset. */
  readonly cubicDeviation: number;
}

export interface KlErrorTable {
  readonly grid: {
    readonly from: number;
    readonly to: number;
    readonly step: number;
    readonly points: number;
  };
  readonly svd: {
    readonly constant: 'minus_k1';
    /** max |svd - exact| over the grid. */
    readonly maxAbsError: number;
    readonly atLogAlpha: number;
    /** svd - exact at that point (its sign). */
    readonly signedError: number;
    readonly meanAbsError: number;
  };
  readonly vdCubic: {
    /** The fitted range: alpha <= 1, i.e. grid points with log_alpha <= 0. */
    readonly fitFrom: number;
    readonly fitTo: number;
    /** The constant c minimising max |cubic - exact - c| on the fitted range (midrange). */
    readonly offset: number;
    /** That minimum: max |cubic - exact - offset| on the fitted range. */
    readonly maxDeviation: number;
    readonly atLogAlpha: number;
  };
  /** One row per integer log_alpha in [-8, 8] (whatever the step), for the printed table. */
  readonly rows: readonly KlErrorRow[];
  /** The rows at log_alpha = 1, 2, 3, where the cubic leaves its fitted range. */
  readonly cubicAbove: readonly KlErrorRow[];
}

/** Error-table grid bounds: the SVD clip range, where both papers compare the curves. */
const ERROR_TABLE_FROM = -8;
const ERROR_TABLE_TO = 8;

/**
 * Measure both approximations against the exact KL on log_alpha in [-8, 8]
 * (spec/kl.md, "Measured error"; printed by `vdspec kl --error-table`).
 * Grid points are -8 + i * step, i = 0, 1, ..., while <= 8 (plus 1e-9 step).
 */
export function klErrorTable(step = 0.001): KlErrorTable {
  if (typeof step !== 'number' || !Number.isFinite(step) || step <= 0) {
    throw new VdspecError('invalid_argument', `expected a finite step > 0, got ${step}`, 'step');
  }
  const points = Math.floor((ERROR_TABLE_TO - ERROR_TABLE_FROM) / step + 1e-9) + 1;
  if (points > 1_000_001) {
    throw new VdspecError(
      'invalid_argument',
      `step ${step} gives more than 1000001 points`,
      'step',
    );
  }
  const grid = Array.from({ length: points }, (_, i) => ERROR_TABLE_FROM + i * step);
  const exact = grid.map(klExact);
  const svdError = grid.map((la, i) => klSvdSigmoid(la, 'minus_k1') - exact[i]!);
  const cubicDifference = grid.map((la, i) => klVdCubic(la) - exact[i]!);

  let svdWorst = 0;
  const absSum = new CompensatedSum();
  svdError.forEach((e, i) => {
    absSum.add(Math.abs(e));
    if (Math.abs(e) > Math.abs(svdError[svdWorst]!)) svdWorst = i;
  });

  const fitted = grid.map((la, i) => ({ la, d: cubicDifference[i]! })).filter((p) => p.la <= 0);
  const lowest = fitted.reduce((m, p) => Math.min(m, p.d), Infinity);
  const highest = fitted.reduce((m, p) => Math.max(m, p.d), -Infinity);
  const offset = 0.5 * (lowest + highest);
  let cubicWorst = fitted[0]!;
  for (const p of fitted)
    if (Math.abs(p.d - offset) > Math.abs(cubicWorst.d - offset)) cubicWorst = p;

  const rowAt = (la: number): KlErrorRow => {
    const e = klExact(la);
    const diff = klVdCubic(la) - e;
    return {
      logAlpha: la,
      exact: e,
      svdError: klSvdSigmoid(la, 'minus_k1') - e,
      cubicDifference: diff,
      cubicDeviation: diff - offset,
    };
  };
  const integers: number[] = [];
  for (let la = ERROR_TABLE_FROM; la <= ERROR_TABLE_TO; la++) integers.push(la);

  return {
    grid: { from: ERROR_TABLE_FROM, to: grid[grid.length - 1]!, step, points },
    svd: {
      constant: 'minus_k1',
      maxAbsError: Math.abs(svdError[svdWorst]!),
      atLogAlpha: grid[svdWorst]!,
      signedError: svdError[svdWorst]!,
      meanAbsError: absSum.value() / points,
    },
    vdCubic: {
      fitFrom: fitted[0]!.la,
      fitTo: fitted[fitted.length - 1]!.la,
      offset,
      maxDeviation: 0.5 * (highest - lowest),
      atLogAlpha: cubicWorst.la,
    },
    rows: integers.map(rowAt),
    cubicAbove: [1, 2, 3].map(rowAt),
  };
}
