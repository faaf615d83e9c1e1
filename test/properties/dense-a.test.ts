/**
 * Properties of spec/dense-a.md: VD variant A (Gaussian dropout on the input
 * units). The forward against independent matrix products (mathjs), the
 * mean, variance and covariance identities from basis-vector eps (no
 * sampling), the independence of the rows, the VJP against finite
 * differences and at the clip bound, the per-unit KL against the closed-form
 * cubic, the worked example, degenerate sizes and errors.
 */
import fc from 'fast-check';
import { multiply } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { VD_KL_C1, VD_KL_C2, VD_KL_C3, VD_LOG_ALPHA_MAX } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import { PROFILES, type Profile } from '../../src/profiles.js';
import {
  denseAKl,
  denseAKlVjp,
  denseATrain,
  denseATrainVjp,
  type DenseATrainInputs,
} from '../../src/reference/denseA.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { fivePointDerivative, withEntry } from './dense-cases.js';
import { expectSpecBlock } from './spec-blocks.js';
import { expectRefusal, untyped } from './refusals.js';

const VD = PROFILES.kingma2015;

const matrix = (t: Tensor, rows: number, cols: number): number[][] =>
  Array.from({ length: rows }, (_, r) => t.data.slice(r * cols, (r + 1) * cols));

/** a @ b with mathjs (an independent product), empty sizes answered as 0. */
function matmul(a: number[][], b: number[][], cols: number): number[][] {
  if (a.length === 0) return [];
  if (a[0]!.length === 0 || cols === 0) return a.map(() => new Array<number>(cols).fill(0));
  return multiply(a, b);
}

const t = (shape: number[], data: number[]): Tensor => ({ shape, data });

/** Uniform on [lo, hi] with a 1/1024 grid. */
const grid = (lo: number, hi: number) =>
  fc.integer({ min: Math.ceil(lo * 1024), max: Math.floor(hi * 1024) }).map((k) => k / 1024);

/** Small variant-A cases: batch 1..3, in 1..4, out 1..3, log_alpha [] or [in] in `la`. */
function caseArb(la: fc.Arbitrary<number> = grid(-4, 1)) {
  return fc
    .record({
      batch: fc.integer({ min: 1, max: 3 }),
      inSize: fc.integer({ min: 1, max: 4 }),
      out: fc.integer({ min: 1, max: 3 }),
      scalar: fc.boolean(),
    })
    .chain(({ batch, inSize, out, scalar }) => {
      // Values on a 1/64 grid, uniform (fc.double favours 0 and the bounds, which would leave
      // most gradients exactly 0 and the finite differences with nothing to compare).
      const v = (n: number, lo: number, hi: number) =>
        fc.array(
          fc.integer({ min: lo * 64, max: hi * 64 }).map((k) => k / 64),
          { minLength: n, maxLength: n },
        );
      return fc.record({
        x: v(batch * inSize, -2, 2).map((d) => t([batch, inSize], d)),
        theta: v(inSize * out, -2, 2).map((d) => t([inSize, out], d)),
        noise: fc
          .array(la, { minLength: scalar ? 1 : inSize, maxLength: scalar ? 1 : inSize })
          .map((d) => t(scalar ? [] : [inSize], d)),
        bias: v(out, -1, 1).map((d) => t([out], d)),
        eps: v(batch * inSize, -3, 3).map((d) => t([batch, inSize], d)),
        g: v(batch * out, -1, 1).map((d) => t([batch, out], d)),
      });
    });
}

/** alpha of input unit i: exp(min(log_alpha, 0)). */
function alphaOf(noise: Tensor, i: number): number {
  const raw = noise.data[noise.shape.length === 0 ? 0 : i]!;
  return Math.exp(Math.min(raw, VD_LOG_ALPHA_MAX));
}

function close(a: number, b: number, scale: number, rel = 1e-12) {
  return Math.abs(a - b) <= rel * (scale + Math.abs(b));
}

describe('spec/dense-a.md#vddense_atrain: forward', () => {
  it('mean = x @ theta + b, variance = (x^2 alpha) @ theta^2, output = (x xi) @ theta + b (against mathjs products)', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const [batch, inSize] = c.x.shape as [number, number];
        const out = c.theta.shape[1]!;
        const r = denseATrain(c, VD);
        const X = matrix(c.x, batch, inSize);
        const W = matrix(c.theta, inSize, out);
        const alpha = Array.from({ length: inSize }, (_, i) => alphaOf(c.noise, i));
        const xi = X.map((row, b) =>
          row.map((_, i) => 1 + Math.sqrt(alpha[i]!) * c.eps.data[b * inSize + i]!),
        );
        const mean = matmul(X, W, out);
        const variance = matmul(
          X.map((row) => row.map((v, i) => v * v * alpha[i]!)),
          W.map((row) => row.map((v) => v * v)),
          out,
        );
        const noisy = matmul(
          X.map((row, b) => row.map((v, i) => v * xi[b]![i]!)),
          W,
          out,
        );
        const absScale = matmul(
          X.map((row, b) => row.map((v, i) => Math.abs(v) * Math.abs(xi[b]![i]!) + Math.abs(v))),
          W.map((row) => row.map(Math.abs)),
          out,
        );
        for (let b = 0; b < batch; b++) {
          for (let j = 0; j < out; j++) {
            const k = b * out + j;
            const s = absScale[b]![j]! + Math.abs(c.bias.data[j]!);
            expect(close(r.mean.data[k]!, mean[b]![j]! + c.bias.data[j]!, s)).toBe(true);
            expect(close(r.variance.data[k]!, variance[b]![j]!, 0)).toBe(true);
            expect(close(r.output.data[k]!, noisy[b]![j]! + c.bias.data[j]!, s)).toBe(true);
            expect(r.variance.data[k]!).toBeGreaterThanOrEqual(0);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('eps = 0 gives output = mean bit for bit; the output is linear in eps (no sqrt of a variance, no sqrtEps)', () => {
    fc.assert(
      fc.property(caseArb(), caseArb(), (c, other) => {
        const zero = {
          ...c,
          eps: t(
            c.eps.shape as number[],
            c.eps.data.map(() => 0),
          ),
        };
        const r0 = denseATrain(zero, VD);
        expect(r0.output.data.every((v, k) => Object.is(v, r0.mean.data[k]))).toBe(true);
        // A second eps of the same shape: (out(e1 + e2) - mean) = (out(e1) - mean) + (out(e2) - mean).
        const e2 = c.eps.data.map((_, k) => other.eps.data[k % other.eps.data.length]!);
        const r1 = denseATrain(c, VD);
        const r2 = denseATrain({ ...c, eps: t(c.eps.shape as number[], e2) }, VD);
        const r12 = denseATrain(
          {
            ...c,
            eps: t(
              c.eps.shape as number[],
              c.eps.data.map((v, k) => v + e2[k]!),
            ),
          },
          VD,
        );
        r12.output.data.forEach((v, k) => {
          const m = r1.mean.data[k]!;
          const sum = r1.output.data[k]! - m + (r2.output.data[k]! - m);
          const s =
            Math.abs(r1.output.data[k]!) + Math.abs(r2.output.data[k]!) + 4 * Math.abs(m) + 1;
          expect(Math.abs(v - m - sum)).toBeLessThanOrEqual(1e-12 * s);
        });
      }),
      { numRuns: 200 },
    );
  });
});

describe('spec/dense-a.md#mean-variance-and-correlation', () => {
  it('with eps = e_k (one input unit of one example): sum_k d_kj^2 = variance, sum_k d_kj d_kl = sum_i x_i^2 alpha_i theta_ij theta_il, other rows untouched', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const [batch, inSize] = c.x.shape as [number, number];
        const out = c.theta.shape[1]!;
        const base = denseATrain(c, VD);
        for (let b = 0; b < batch; b++) {
          // d[k][j] = output_bj - mean_bj with eps = e_{b,k}
          const d = Array.from({ length: inSize }, (_, k) => {
            const eps = new Array<number>(batch * inSize).fill(0);
            eps[b * inSize + k] = 1;
            const r = denseATrain({ ...c, eps: t([batch, inSize], eps) }, VD);
            for (let bb = 0; bb < batch; bb++) {
              if (bb === b) continue;
              for (let j = 0; j < out; j++) {
                // Rows are independent: another example's noise moves nothing here.
                expect(Object.is(r.output.data[bb * out + j], r.mean.data[bb * out + j])).toBe(
                  true,
                );
              }
            }
            return Array.from(
              { length: out },
              (_, j) => r.output.data[b * out + j]! - r.mean.data[b * out + j]!,
            );
          });
          for (let j = 0; j < out; j++) {
            for (let l = 0; l < out; l++) {
              let fromOutputs = 0;
              let closedForm = 0;
              let scale = 0;
              for (let i = 0; i < inSize; i++) {
                fromOutputs += d[i]![j]! * d[i]![l]!;
                const xv = c.x.data[b * inSize + i]!;
                const term =
                  xv *
                  xv *
                  alphaOf(c.noise, i) *
                  c.theta.data[i * out + j]! *
                  c.theta.data[i * out + l]!;
                closedForm += term;
                scale += Math.abs(term);
              }
              const m =
                Math.abs(base.mean.data[b * out + j]!) + Math.abs(base.mean.data[b * out + l]!);
              // d carries the cancellation of output - mean: relative to |mean| + |d|.
              const tol = 1e-12 * (scale + m * m + 1);
              expect(Math.abs(fromOutputs - closedForm)).toBeLessThanOrEqual(tol);
              if (j === l) {
                expect(
                  Math.abs(fromOutputs - base.variance.data[b * out + j]!),
                ).toBeLessThanOrEqual(tol);
              }
            }
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it("the marginals are those of variant B with log_alpha [in, 1]: mean and variance equal vd.dense.train's (what differs is the joint distribution)", () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const [batch, inSize] = c.x.shape as [number, number];
        const out = c.theta.shape[1]!;
        const a = denseATrain(c, VD);
        const tied = c.noise.shape.length === 0 ? c.noise : t([inSize, 1], [...c.noise.data]);
        const b = run(
          'vd.dense.train',
          {
            x: c.x,
            theta: c.theta,
            log_alpha: tied,
            bias: c.bias,
            eps: t([batch, out], new Array<number>(batch * out).fill(0)),
          },
          VD,
        );
        a.mean.data.forEach((v, k) => expect(close(v, b['mean']!.data[k]!, 10)).toBe(true));
        a.variance.data.forEach((v, k) => expect(close(v, b['variance']!.data[k]!, 0)).toBe(true));
      }),
      { numRuns: 100 },
    );
  });

  it('one input unit: the outputs of an example are perfectly correlated, Cov^2 = Var_j Var_l with the sign of theta_0j theta_0l', () => {
    const c: DenseATrainInputs = {
      x: t([1, 1], [1.5]),
      theta: t([1, 3], [0.5, -2, 1.25]),
      noise: t([1], [-0.75]),
      bias: t([3], [0.1, 0.2, 0.3]),
      eps: t([1, 1], [0.8]),
    };
    const r = denseATrain(c, VD);
    const dev = r.output.data.map((v, j) => v - r.mean.data[j]!);
    // Every deviation is x sqrt(alpha) eps theta_0j: proportional to theta's row, one shared eps.
    const k = 1.5 * Math.exp(-0.375) * 0.8;
    dev.forEach((v, j) => expect(v).toBeCloseTo(k * c.theta.data[j]!, 12));
    const v = r.variance.data;
    const cov01 = 1.5 * 1.5 * Math.exp(-0.75) * 0.5 * -2;
    expect(cov01 * cov01).toBeCloseTo(v[0]! * v[1]!, 12);
    expect(Math.sign(dev[0]! * dev[1]!)).toBe(-1);
    expect(Math.sign(dev[0]! * dev[2]!)).toBe(1);
  });
});

describe('spec/dense-a.md#vjp-vddense_atrain_vjp', () => {
  type Arg = 'x' | 'theta' | 'noise' | 'bias';
  const loss = (c: DenseATrainInputs, g: Tensor) =>
    denseATrain(c, VD).output.data.reduce((s, v, k) => s + v * g.data[k]!, 0);

  it('every gradient against five-point central differences, log_alpha at least 0.05 from the clip bound 0', () => {
    const la = fc.oneof(grid(-4, -0.05), grid(0.05, 2));
    fc.assert(
      fc.property(caseArb(la), (c) => {
        const grads = denseATrainVjp(c, c.g, VD);
        const scale = c.g.data.reduce((s, v) => s + Math.abs(v), 0) * 10;
        for (const arg of ['x', 'theta', 'noise', 'bias'] as Arg[]) {
          const base = c[arg];
          expect(grads[arg].shape).toEqual(base.shape);
          base.data.forEach((_, k) => {
            const numeric = fivePointDerivative(
              (delta) => loss({ ...c, [arg]: withEntry(base, k, delta) }, c.g),
              1e-3,
            );
            const analytic = grads[arg].data[k]!;
            expect(
              Math.abs(numeric - analytic),
              `${arg}[${k}]: analytic ${analytic}, numeric ${numeric}`,
            ).toBeLessThanOrEqual(1e-8 * (scale + Math.abs(analytic)));
          });
        }
      }),
      { numRuns: 100 },
    );
  });

  it('at log_alpha = 0 exactly the clip gradient passes (the left derivative); beyond it the gradient is exactly 0 and the forward is the bound', () => {
    fc.assert(
      fc.property(caseArb(), grid(0.01, 5), (c0, over) => {
        const n = c0.noise.data.length;
        const at = { ...c0, noise: t([...c0.noise.shape], new Array<number>(n).fill(0)) };
        const g = denseATrainVjp(at, c0.g, VD).noise;
        // Second-order one-sided difference from the smooth side (log_alpha <= 0).
        for (let k = 0; k < n; k++) {
          const f = (delta: number) => loss({ ...at, noise: withEntry(at.noise, k, delta) }, c0.g);
          const h = 1e-4;
          const left = (3 * f(0) - 4 * f(-h) + f(-2 * h)) / (2 * h);
          const scale = c0.g.data.reduce((s, v) => s + Math.abs(v), 0) * 10;
          expect(Math.abs(left - g.data[k]!)).toBeLessThanOrEqual(1e-6 * (scale + 1));
        }
        const beyond = { ...c0, noise: t([...c0.noise.shape], new Array<number>(n).fill(over)) };
        expect(denseATrainVjp(beyond, c0.g, VD).noise.data.every((v) => v === 0)).toBe(true);
        expect(denseATrain(beyond, VD)).toEqual(denseATrain(at, VD));
      }),
      { numRuns: 100 },
    );
  });
});

/** The cubic of spec/kl.md#klvd at the clipped log_alpha, constant dropped, and its derivative. */
const cubic = (la: number) => {
  const a = Math.exp(Math.min(la, VD_LOG_ALPHA_MAX));
  return -(0.5 * Math.min(la, 0) + VD_KL_C1 * a + VD_KL_C2 * a * a + VD_KL_C3 * a * a * a);
};
const cubicSlope = (la: number) => {
  if (la > VD_LOG_ALPHA_MAX) return 0;
  const a = Math.exp(la);
  return -(0.5 + VD_KL_C1 * a + 2 * VD_KL_C2 * a * a + 3 * VD_KL_C3 * a * a * a);
};

describe('spec/dense-a.md#vddense_akl', () => {
  it('one term per input unit: sum_i KL(la_i) for [in], in * KL(la) for a scalar (closed-form cubic); the gradient per entry', () => {
    fc.assert(
      fc.property(caseArb(grid(-12, 2)), (c) => {
        const inSize = c.theta.shape[0]!;
        const scalar = c.noise.shape.length === 0;
        const las = Array.from({ length: inSize }, (_, i) => c.noise.data[scalar ? 0 : i]!);
        const expected = las.reduce((s, la) => s + cubic(la), 0);
        const scale = las.reduce((s, la) => s + Math.abs(cubic(la)) + Math.abs(la), 0);
        const kl = denseAKl({ theta: c.theta, noise: c.noise }, VD);
        expect(Math.abs(kl - expected)).toBeLessThanOrEqual(1e-14 * (scale + 1));
        const grad = denseAKlVjp({ theta: c.theta, noise: c.noise }, 1, VD);
        expect(grad.shape).toEqual(c.noise.shape);
        const slopes = scalar ? [inSize * cubicSlope(las[0]!)] : las.map(cubicSlope);
        grad.data.forEach((v, k) => {
          expect(Math.abs(v - slopes[k]!)).toBeLessThanOrEqual(1e-14 * inSize * 4);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('against kl.layer on the same layer as variant B with log_alpha [in, 1]: exactly out times smaller (KL per unit, not per weight)', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const [inSize, out] = c.theta.shape as [number, number];
        const perUnit = c.noise.shape.length === 0 ? c.noise : t([inSize, 1], [...c.noise.data]);
        const a = run('vd.dense_a.kl', { theta: c.theta, log_alpha: c.noise }, VD)['kl']!.data[0]!;
        const b = run('kl.layer', { theta: c.theta, log_alpha: perUnit }, VD)['kl']!.data[0]!;
        expect(Math.abs(b - out * a)).toBeLessThanOrEqual(1e-13 * (Math.abs(b) + inSize * out));
      }),
      { numRuns: 200 },
    );
  });
});

/** A valid variant-A call: batch 2, 3 inputs, 2 outputs, one log_alpha per input. */
const OK_INPUTS: DenseATrainInputs = {
  x: t([2, 3], [1, -2, 0.5, 0.25, 1, -1]),
  theta: t([3, 2], [0.5, 0.2, -1, 2, 1, 0]),
  noise: t([3], [-1, 0, -2]),
  bias: t([2], [0.1, -0.2]),
  eps: t([2, 3], [0.5, -1, 2, 1, 0, -0.5]),
};

describe('spec/dense-a.md#degenerate-sizes and #errors', () => {
  const ok = OK_INPUTS;

  it('in = 0: mean = output = b, variance 0, KL 0; batch = 0: empty results, zero gradients', () => {
    const empty = {
      ...ok,
      x: t([2, 0], []),
      theta: t([0, 2], []),
      noise: t([], [-1]),
      eps: t([2, 0], []),
    };
    const r = denseATrain(empty, VD);
    expect(r.mean.data).toEqual([0.1, -0.2, 0.1, -0.2]);
    expect(r.output.data).toEqual([0.1, -0.2, 0.1, -0.2]);
    expect(r.variance.data).toEqual([0, 0, 0, 0]);
    expect(denseAKl({ theta: empty.theta, noise: empty.noise }, VD)).toBe(0);
    const g = denseATrainVjp(empty, t([2, 2], [1, 2, 3, 4]), VD);
    expect(g.bias.data).toEqual([4, 6]);
    expect(g.noise.data).toEqual([0]);
    const none = { ...ok, x: t([0, 3], []), eps: t([0, 3], []) };
    expect(denseATrain(none, VD).output.shape).toEqual([0, 2]);
    const gn = denseATrainVjp(none, t([0, 2], []), VD);
    expect([...gn.theta.data, ...gn.noise.data, ...gn.bias.data].every((v) => v === 0)).toBe(true);
  });

  const bad: [string, () => unknown, string, string][] = [
    ['an SVD profile', () => denseATrain(ok, 'molchanov2017'), 'invalid_argument', 'profile'],
    [
      "variant B's eps [batch, out]",
      () => denseATrain({ ...ok, eps: t([2, 2], [0, 0, 0, 0]) }, VD),
      'shape_mismatch',
      'eps',
    ],
    [
      "variant B's tied log_alpha [in, 1]",
      () => denseATrain({ ...ok, noise: t([3, 1], [-1, -1, -1]) }, VD),
      'shape_mismatch',
      'log_alpha',
    ],
    [
      'log_alpha of the output size',
      () => denseAKl({ theta: ok.theta, noise: t([2], [-1, -1]) }, VD),
      'shape_mismatch',
      'log_alpha',
    ],
    [
      'NaN in x',
      () => denseATrain({ ...ok, x: t([2, 3], [NaN, 0, 0, 0, 0, 0]) }, VD),
      'non_finite',
      'x',
    ],
    [
      'theta rows not in',
      () => denseATrain({ ...ok, theta: t([2, 2], [1, 1, 1, 1]) }, VD),
      'shape_mismatch',
      'theta',
    ],
    [
      'bias of the wrong length',
      () => denseATrain({ ...ok, bias: t([3], [0, 0, 0]) }, VD),
      'shape_mismatch',
      'bias',
    ],
    [
      'a cotangent of the wrong shape',
      () => denseATrainVjp(ok, t([2, 3], [0, 0, 0, 0, 0, 0]), VD),
      'shape_mismatch',
      'cotangent',
    ],
    [
      'infinite log_alpha',
      () => denseATrain({ ...ok, noise: t([], [-Infinity]) }, VD),
      'non_finite',
      'log_alpha',
    ],
  ];
  it.each(bad)('%s is a VdspecError naming its argument', (_what, f, code, argument) => {
    let error: unknown;
    try {
      f();
    } catch (e) {
      error = e;
    }
    expect(isVdspecError(error)).toBe(true);
    expect(error).toMatchObject({ code, argument });
  });

  it('through run: a missing eps and an eps of variant B shape name eps', () => {
    const inputs = { x: ok.x, theta: ok.theta, log_alpha: ok.noise, bias: ok.bias };
    expect(() => run('vd.dense_a.train', inputs, VD)).toThrow(
      expect.objectContaining({ code: 'invalid_argument', argument: 'eps' }),
    );
    expect(() =>
      run(
        'vd.dense_a.train_vjp',
        { ...inputs, eps: t([2, 2], [0, 0, 0, 0]), cotangent: t([2, 2], [0, 0, 0, 0]) },
        VD,
      ),
    ).toThrow(expect.objectContaining({ code: 'shape_mismatch', argument: 'eps' }));
  });
});

describe('spec/dense-a.md#errors: checks and messages', () => {
  const ok = OK_INPUTS;
  const klOk = { theta: ok.theta, noise: ok.noise };
  const g = t([2, 2], [1, -1, 0.5, 2]);

  it('the profile: an SVD algorithm or a log_alpha that is not learned is refused, each test on its own', () => {
    const message = (name: string, algorithm: string) =>
      `VD variant A needs a VD profile (log_alpha learned); "${name}" is ${algorithm}`;
    expectRefusal(
      () => denseATrain(ok, 'molchanov2017'),
      'invalid_argument',
      'profile',
      message('molchanov2017', 'SVD'),
    );
    // Custom profiles that fail only one of the two conditions: either alone must refuse.
    const svdButLearned: Profile = { ...VD, algorithm: 'svd' };
    const vdButDerived: Profile = {
      ...VD,
      dense: { ...VD.dense, logAlpha: { ...VD.dense.logAlpha, form: 'log_theta2' } },
    };
    for (const f of [(p: Profile) => denseATrain(ok, p), (p: Profile) => denseAKl(klOk, p)]) {
      expectRefusal(
        () => f(svdButLearned),
        'invalid_argument',
        'profile',
        message('kingma2015', 'SVD'),
      );
      expectRefusal(
        () => f(vdButDerived),
        'invalid_argument',
        'profile',
        message('kingma2015', 'VD'),
      );
    }
  });

  it('the inputs object: a number, a string and null are refused as inputs, not read as tensors', () => {
    // A number would otherwise reach the x check (7.x is undefined); null would throw a TypeError.
    for (const inputs of [7, 'x', null]) {
      const trainMessage = 'expected an object {x, theta, noise, bias, eps}';
      expectRefusal(
        () => denseATrain(untyped(inputs), VD),
        'invalid_argument',
        'inputs',
        trainMessage,
      );
      expectRefusal(
        () => denseATrainVjp(untyped(inputs), g, VD),
        'invalid_argument',
        'inputs',
        trainMessage,
      );
      const klMessage = 'expected an object {theta, noise}';
      expectRefusal(() => denseAKl(untyped(inputs), VD), 'invalid_argument', 'inputs', klMessage);
      expectRefusal(
        () => denseAKlVjp(untyped(inputs), 1, VD),
        'invalid_argument',
        'inputs',
        klMessage,
      );
    }
  });

  it('x and theta must be rank 2 (a rank-1 x or theta would otherwise read as [in] rows)', () => {
    expectRefusal(
      () => denseATrain({ ...ok, x: t([3], [1, -2, 0.5]) }, VD),
      'shape_mismatch',
      'x',
      'expected rank 2, got shape [3]',
    );
    const flatTheta = t([3], [0.5, -1, 1]);
    expectRefusal(
      () => denseAKl({ theta: flatTheta, noise: ok.noise }, VD),
      'shape_mismatch',
      'theta',
      'expected rank 2, got shape [3]',
    );
    expectRefusal(
      () => denseAKlVjp({ theta: flatTheta, noise: ok.noise }, 1, VD),
      'shape_mismatch',
      'theta',
      'expected rank 2, got shape [3]',
    );
  });

  it("log_alpha's shape: the message names [] and [in], and points to variant B for a rank-2 log_alpha only", () => {
    const takes = 'variant A takes one log_alpha per layer ([]) or one per input unit ([3]), got ';
    expectRefusal(
      () => denseATrain({ ...ok, noise: t([3, 1], [-1, -1, -1]) }, VD),
      'shape_mismatch',
      'log_alpha',
      `${takes}[3, 1] (a rank-2 log_alpha such as [in, 1] is variant B with tied alphas: vd.dense.*)`,
    );
    expectRefusal(
      () => denseAKl({ theta: ok.theta, noise: t([2], [-1, -1]) }, VD),
      'shape_mismatch',
      'log_alpha',
      `${takes}[2]`,
    );
    expectRefusal(
      () => denseAKlVjp({ theta: ok.theta, noise: t([3, 1, 1], [-1, -1, -1]) }, 1, VD),
      'shape_mismatch',
      'log_alpha',
      `${takes}[3, 1, 1]`,
    );
  });

  it('eps: missing, non-finite, or of any shape but [batch, in], each refused naming eps', () => {
    expectRefusal(
      () => denseATrain({ ...ok, eps: untyped<Tensor>(undefined) }, VD),
      'invalid_argument',
      'eps',
      'missing: the noise is an input',
    );
    expectRefusal(
      () => denseATrain({ ...ok, eps: t([2, 3], [0, 0, NaN, 0, 0, 0]) }, VD),
      'non_finite',
      'eps',
      'element 2 is NaN',
    );
    const expected =
      'variant A draws one eps per example and input unit: expected [2, 3] ([batch, in]), got ';
    // [2, 3, 1] has the right first two sizes and the right number of values: only the rank is wrong.
    // [3, 3] has the right in and too many rows: only the batch is wrong.
    for (const shape of [
      [2, 3, 1],
      [3, 3],
      [2, 2],
    ]) {
      const eps = t(shape, new Array<number>(shape.reduce((p, d) => p * d, 1)).fill(0.5));
      expectRefusal(
        () => denseATrain({ ...ok, eps }, VD),
        'shape_mismatch',
        'eps',
        `${expected}[${shape.join(', ')}]`,
      );
      expectRefusal(
        () => denseATrainVjp({ ...ok, eps }, g, VD),
        'shape_mismatch',
        'eps',
        `${expected}[${shape.join(', ')}]`,
      );
    }
  });

  it('alpha = exp(log_alpha) beyond float64 names log_alpha and the unit (reachable only with a profile without a clip max)', () => {
    // kingma2015 clips log_alpha at 0 (alpha <= 1); a custom VD profile without the clip lets
    // log_alpha = 710 through, and exp(710) > 1.8e308.
    const unclipped: Profile = {
      ...VD,
      dense: { ...VD.dense, logAlpha: { ...VD.dense.logAlpha, clip: null } },
    };
    expectRefusal(
      () => denseATrain({ ...ok, noise: t([3], [-1, 710, -2]) }, unclipped),
      'non_finite',
      'log_alpha',
      'alpha = exp(log_alpha) of input unit 1 overflows float64 (Infinity)',
    );
    // Below the overflow the same profile gives finite alphas: the check is on exp, not on log_alpha.
    expect(() => denseATrain({ ...ok, noise: t([3], [-1, 700, -2]) }, unclipped)).not.toThrow();
  });

  it("the KL's cotangent must be a number", () => {
    expectRefusal(
      () => denseAKlVjp(klOk, NaN, VD),
      'invalid_argument',
      'cotangent',
      'expected a number, got NaN',
    );
  });
});

describe('spec/dense-a.md#errors: a result beyond float64 is non_finite and says which', () => {
  const tooLarge = ': the inputs are too large for float64';
  /** One example, one input unit, one output: each value is a plain number. */
  const one = (x: number, theta: number, logAlpha: number, eps: number): DenseATrainInputs => ({
    x: t([1, 1], [x]),
    theta: t([1, 1], [theta]),
    noise: t([], [logAlpha]),
    bias: t([1], [0]),
    eps: t([1, 1], [eps]),
  });

  it('the forward: the mean, the variance and the output, each overflowing while the ones checked before it do not', () => {
    // mean = 1e200 * 1e200.
    expectRefusal(
      () => denseATrain(one(1e200, 1e200, -1, 0), VD),
      'non_finite',
      undefined,
      `the mean is Infinity${tooLarge}`,
    );
    // mean = 1e155, variance = (1e155)^2 * 1 * 1 = 1e310.
    expectRefusal(
      () => denseATrain(one(1e155, 1, 0, 0), VD),
      'non_finite',
      undefined,
      `the variance is Infinity${tooLarge}`,
    );
    // mean = 1e10, variance = 1e20, output = 1e10 * (1 + 1e300).
    expectRefusal(
      () => denseATrain(one(1e10, 1, 0, 1e300), VD),
      'non_finite',
      undefined,
      `the output is Infinity${tooLarge}`,
    );
  });

  it('the VJP: each gradient overflowing while the others stay finite', () => {
    const cot = (...values: number[]) => t([values.length, 1], values);
    // dz = 1e10, xi = 1 + 1e300: dx = 1e310; dtheta = 1e-20 * 1e300 * 1e10 = 1e290.
    expectRefusal(
      () => denseATrainVjp(one(1e-20, 1, 0, 1e300), cot(1e10), VD),
      'non_finite',
      undefined,
      `the gradient w.r.t. x is Infinity${tooLarge}`,
    );
    // dz = 1e200 * 1e-200 ~ 1, dx ~ 1; dtheta = x * g = 1e400; eps = 0: dlog_alpha = 0.
    expectRefusal(
      () => denseATrainVjp(one(1e200, 1e-200, 0, 0), cot(1e200), VD),
      'non_finite',
      undefined,
      `the gradient w.r.t. theta is Infinity${tooLarge}`,
    );
    // dz = 1e200, xi = 2: dx = dtheta = 2e200; dlog_alpha = 1e200 * 1e200 * 1 * 1 / 2.
    expectRefusal(
      () => denseATrainVjp(one(1e200, 1e200, 0, 1), cot(1), VD),
      'non_finite',
      undefined,
      `the gradient w.r.t. log_alpha is Infinity${tooLarge}`,
    );
    // Two examples with g = 1e308 each: dbias = 2e308; dx = 1e298, dtheta = 2e298, eps = 0.
    const twoRows: DenseATrainInputs = {
      x: t([2, 1], [1e-10, 1e-10]),
      theta: t([1, 1], [1e-10]),
      noise: t([], [0]),
      bias: t([1], [0]),
      eps: t([2, 1], [0, 0]),
    };
    expectRefusal(
      () => denseATrainVjp(twoRows, cot(1e308, 1e308), VD),
      'non_finite',
      undefined,
      `the gradient w.r.t. bias is Infinity${tooLarge}`,
    );
  });
});

// ---------------------------------------------------------------------------
// The worked example of spec/dense-a.md, regenerated from the reference.

const nested = (x: Tensor): string => {
  if (x.shape.length < 2) return JSON.stringify(x.shape.length === 0 ? x.data[0] : x.data);
  const cols = x.shape[1]!;
  return JSON.stringify(
    Array.from({ length: x.shape[0]! }, (_, r) => x.data.slice(r * cols, (r + 1) * cols)),
  );
};

const EXAMPLE: DenseATrainInputs = {
  x: t([1, 2], [1, -2]),
  theta: t([2, 3], [0.5, 0.2, 0, -1, 2, 1]),
  noise: t([2], [-1, 0.5]),
  bias: t([3], [0.1, -0.2, 0.3]),
  eps: t([1, 2], [0.5, -1]),
};
const EXAMPLE_G = t([1, 3], [1, 1, 1]);

function workedExampleText(): string {
  const r = denseATrain(EXAMPLE, VD);
  const g = denseATrainVjp(EXAMPLE, EXAMPLE_G, VD);
  const klInputs = { theta: EXAMPLE.theta, noise: EXAMPLE.noise };
  const scalar = { theta: EXAMPLE.theta, noise: t([], [-1]) };
  return [
    '```text',
    'profile = kingma2015',
    `x = ${nested(EXAMPLE.x)}`,
    `theta = ${nested(EXAMPLE.theta)}`,
    `log_alpha = ${nested(EXAMPLE.noise)}   (shape [2]: one per input unit)`,
    `bias = ${nested(EXAMPLE.bias)}`,
    `eps = ${nested(EXAMPLE.eps)}   (shape [batch, in])`,
    '',
    `mean = ${nested(r.mean)}`,
    `variance = ${nested(r.variance)}`,
    `output = ${nested(r.output)}`,
    '',
    `cotangent (d L / d output) = ${nested(EXAMPLE_G)}`,
    `d x = ${nested(g.x)}`,
    `d theta = ${nested(g.theta)}`,
    `d log_alpha = ${nested(g.noise)}`,
    `d bias = ${nested(g.bias)}`,
    '',
    `vd.dense_a.kl: kl = ${denseAKl(klInputs, VD)}, d log_alpha = ${nested(denseAKlVjp(klInputs, 1, VD))}`,
    `vd.dense_a.kl with log_alpha = -1 (shape []): kl = ${denseAKl(scalar, VD)} (= 2 KL(-1)), d log_alpha = ${nested(denseAKlVjp(scalar, 1, VD))}`,
    '```',
  ].join('\n');
}

describe('spec/dense-a.md#worked-example', () => {
  it('the page shows what the reference computes, and that agrees with the values computed by hand', () => {
    expectSpecBlock('dense-a.md', 'dense-a-worked-example', workedExampleText());
    // By hand: la = [-1, 0] (0.5 clipped), sqrt(alpha) = [e^-0.5, 1], xi = [1 + 0.5 e^-0.5, 1 - 1 = 0].
    const xi0 = 1 + 0.5 * Math.exp(-0.5);
    const r = denseATrain(EXAMPLE, VD);
    const expectClose = (got: readonly number[], want: number[]) =>
      want.forEach((w, k) => expect(got[k]!).toBeCloseTo(w, 14));
    expectClose(r.output.data, [0.5 * xi0 + 0.1, 0.2 * xi0 - 0.2, 0.3]);
    expectClose(r.mean.data, [0.5 + 2 + 0.1, 0.2 - 4 - 0.2, -2 + 0.3]);
    expectClose(r.variance.data, [
      Math.exp(-1) * 0.25 + 4 * 1,
      Math.exp(-1) * 0.04 + 4 * 4,
      Math.exp(-1) * 0 + 4 * 1,
    ]);
    const g = denseATrainVjp(EXAMPLE, EXAMPLE_G, VD);
    // dz = g @ theta^T = [0.7, 2]; dx = dz * xi; dla_0 = dz_0 x_0 eps_0 sqrt(alpha_0) / 2.
    expectClose(g.x.data, [0.7 * xi0, 0]);
    expectClose(g.theta.data, [xi0, xi0, xi0, 0, 0, 0]);
    expectClose(g.noise.data, [(0.7 * 1 * 0.5 * Math.exp(-0.5)) / 2, 0]);
    expectClose(g.bias.data, [1, 1, 1]);
    expect(denseAKl({ theta: EXAMPLE.theta, noise: t([], [-1]) }, VD)).toBeCloseTo(
      2 * cubic(-1),
      14,
    );
  });
});
