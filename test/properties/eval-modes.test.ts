/**
 * Properties of the evaluation modes (spec/dense.md#evaluation-modes,
 * spec/conv2d.md#svdconv2deval_unmasked): the unmasked mean of SVD layers
 * and the Monte Carlo predictive of dense layers. Expected values come from
 * mathjs products, softmaxes written here, hand-computed numbers, or other
 * ops (the training forward per draw), never from the op under test.
 */
import fc from 'fast-check';
import { multiply } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { isVdspecError } from '../../src/errors.js';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import { weightStatistics } from '../../src/reference/logAlpha.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';

const SVD = PROFILE_NAMES.map((n) => PROFILES[n]).filter((p) => p.algorithm === 'svd');
const t = (shape: number[], data: number[]): Tensor => ({ shape, data });

/** Uniform on a 1/64 grid (fc.double favours 0 and the bounds). */
const grid = (lo: number, hi: number) =>
  fc.integer({ min: Math.ceil(lo * 64), max: Math.floor(hi * 64) }).map((k) => k / 64);
const tensorArb = (shape: number[], lo: number, hi: number) =>
  fc
    .array(grid(lo, hi), {
      minLength: shape.reduce((a, b) => a * b, 1),
      maxLength: shape.reduce((a, b) => a * b, 1),
    })
    .map((data) => t(shape, data));

/** A dense layer for `profile`: raw log_alpha spread over [-10, 10] so some weights are pruned. */
function denseArb(profile: Profile, draws = fc.integer({ min: 1, max: 4 })) {
  return fc
    .record({
      batch: fc.integer({ min: 1, max: 3 }),
      inSize: fc.integer({ min: 1, max: 4 }),
      out: fc.integer({ min: 1, max: 4 }),
      draws,
    })
    .chain(({ batch, inSize, out, draws: s }) =>
      fc.record({
        x: tensorArb([batch, inSize], -2, 2),
        theta: tensorArb([inSize, out], -2, 2),
        [profile.noiseParameter]:
          profile.noiseParameter === 'log_alpha'
            ? tensorArb([inSize, 1], -6, 1)
            : tensorArb([inSize, out], -14, 6),
        bias: tensorArb([out], -1, 1),
        eps: tensorArb([s, batch, out], -3, 3),
        train_clip: fc.boolean(),
      }),
    );
}

const rows = (m: Tensor): number[][] => {
  const cols = m.shape[m.shape.length - 1]!;
  return Array.from({ length: m.data.length / cols }, (_, r) =>
    m.data.slice(r * cols, (r + 1) * cols),
  );
};

function softmax(row: readonly number[]): number[] {
  const max = Math.max(...row);
  const e = row.map((z) => Math.exp(z - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

describe('spec/dense.md#svddenseeval_unmasked', () => {
  it.each(SVD.map((p) => [p.name, p] as const))(
    '%s: output = x @ theta + b (mathjs), = the training mean with train_clip off (bit for bit), and eval_unmasked - eval = x @ (theta (1 - m))',
    (_name, profile) => {
      let pruned = 0;
      fc.assert(
        fc.property(denseArb(profile), (inputs) => {
          const { eps: _e, train_clip: _c, ...evalInputs } = inputs;
          const x = inputs.x as Tensor;
          const theta = inputs.theta as Tensor;
          const bias = inputs.bias as Tensor;
          const [batch, inSize] = x.shape as [number, number];
          const out = theta.shape[1]!;
          const got = run('svd.dense.eval_unmasked', evalInputs, profile)['output']!;
          const product = multiply(rows(x), rows(theta)) as number[][];
          const mask = weightStatistics(
            theta,
            evalInputs[profile.noiseParameter],
            profile,
            'dense',
          ).mask;
          pruned += mask.filter((m) => m === 0).length;
          const prunedPart = multiply(
            rows(x),
            rows(
              t(
                [inSize, out],
                theta.data.map((v, k) => v * (1 - mask[k]!)),
              ),
            ),
          ) as number[][];
          const masked = run('svd.dense.eval', evalInputs, profile)['output']!;
          const trainMean = run(
            'svd.dense.train',
            {
              ...evalInputs,
              eps: t([batch, out], new Array<number>(batch * out).fill(0)),
              train_clip: false,
            },
            profile,
          )['mean']!;
          got.data.forEach((v, k) => {
            const b = Math.floor(k / out);
            const j = k % out;
            const scale =
              rows(x)[b]!.reduce((s, xv, i) => s + Math.abs(xv * theta.data[i * out + j]!), 0) + 1;
            expect(Math.abs(v - (product[b]![j]! + bias.data[j]!))).toBeLessThanOrEqual(
              1e-14 * scale,
            );
            expect(Math.abs(v - masked.data[k]! - prunedPart[b]![j]!)).toBeLessThanOrEqual(
              1e-14 * scale,
            );
            expect(Object.is(v, trainMean.data[k])).toBe(true);
          });
        }),
        { numRuns: 100 },
      );
      // Not vacuous: the generated layers had pruned weights.
      expect(pruned).toBeGreaterThan(20);
    },
  );
});

describe('spec/conv2d.md#svdconv2deval_unmasked', () => {
  it('a 2x2 image and a 2x2 kernel with one pruned tap: by hand, unmasked 4.75, masked -1.25', () => {
    // Tap 2 (theta = 2) has log_alpha = log_sigma2 - log(4) = 5: pruned by every SVD profile.
    const inputs = {
      x: t([1, 2, 2, 1], [1, 2, 3, 4]),
      theta: t([2, 2, 1, 1], [0.5, -1, 2, 0.25]),
      log_sigma2: t([2, 2, 1, 1], [-6, -6, 5 + Math.log(4), -6]),
      bias: t([1], [0.25]),
    };
    const p = PROFILES.molchanov2017;
    const unmasked = run('svd.conv2d.eval_unmasked', inputs, p)['output']!;
    expect(unmasked.shape).toEqual([1, 1, 1, 1]);
    expect(unmasked.data[0]).toBeCloseTo(0.5 * 1 - 1 * 2 + 2 * 3 + 0.25 * 4 + 0.25, 14);
    expect(run('svd.conv2d.eval', inputs, p)['output']!.data[0]).toBeCloseTo(
      0.5 - 2 + 1 + 0.25,
      14,
    );
  });

  it.each(SVD.map((p) => [p.name, p] as const))(
    '%s: equals the training mean with train_clip off, bit for bit (strides and paddings)',
    (_name, profile) => {
      const k = (padding: string) =>
        padding === 'same' && profile.samePadding === 'lasagne' ? 3 : 2;
      const g = fc
        .record({
          h: fc.integer({ min: 2, max: 5 }),
          w: fc.integer({ min: 2, max: 5 }),
          cin: fc.integer({ min: 1, max: 2 }),
          cout: fc.integer({ min: 1, max: 2 }),
          stride: fc.constantFrom(1, 2),
          padding: fc.constantFrom('valid', 'same'),
        })
        .chain((d) =>
          fc.record({
            x: tensorArb([1, d.h, d.w, d.cin], -2, 2),
            // Lasagne's 'same' (bayesgroup-theano) takes odd kernels only.
            theta: tensorArb([k(d.padding), k(d.padding), d.cin, d.cout], -2, 2),
            noise: tensorArb([k(d.padding), k(d.padding), d.cin, d.cout], -14, 6),
            bias: tensorArb([d.cout], -1, 1),
            stride: fc.constant(d.stride),
            padding: fc.constant(d.padding),
          }),
        );
      fc.assert(
        fc.property(g, ({ noise, ...rest }) => {
          const inputs = { ...rest, [profile.noiseParameter]: noise };
          const got = run('svd.conv2d.eval_unmasked', inputs, profile)['output']!;
          const mean = run(
            'svd.conv2d.train',
            {
              ...inputs,
              eps: t(
                [...got.shape],
                got.data.map(() => 0),
              ),
              train_clip: false,
            },
            profile,
          )['mean']!;
          expect(got.data.every((v, k) => Object.is(v, mean.data[k]))).toBe(true);
        }),
        { numRuns: 40 },
      );
    },
  );
});

describe('spec/dense.md#svddensepredict_mc and #vddensepredict_mc', () => {
  const PROFILES_MC = PROFILE_NAMES.map((n) => PROFILES[n]);

  it.each(PROFILES_MC.map((p) => [p.name, p] as const))(
    '%s: mean_output and mean_softmax are the averages over the draws of the training output (run per draw) and of its softmax; rows sum to 1',
    (_name, profile) => {
      fc.assert(
        fc.property(denseArb(profile), (inputs) => {
          const op = `${profile.algorithm}.dense.predict_mc`;
          const got = run(op, inputs, profile);
          const eps = inputs.eps as Tensor;
          const [draws, batch, out] = eps.shape as [number, number, number];
          const size = batch * out;
          const sumOut = new Array<number>(size).fill(0);
          const sumSoft = new Array<number>(size).fill(0);
          let scale = 0;
          for (let s = 0; s < draws; s++) {
            const o = run(
              `${profile.algorithm}.dense.train`,
              { ...inputs, eps: t([batch, out], eps.data.slice(s * size, (s + 1) * size)) },
              profile,
            )['output']!;
            o.data.forEach((v, k) => {
              sumOut[k]! += v;
              scale = Math.max(scale, Math.abs(v));
            });
            rows(o).forEach((row, b) =>
              softmax(row).forEach((p, j) => (sumSoft[b * out + j]! += p)),
            );
          }
          got['mean_output']!.data.forEach((v, k) =>
            expect(Math.abs(v - sumOut[k]! / draws)).toBeLessThanOrEqual(1e-13 * (scale + 1)),
          );
          got['mean_softmax']!.data.forEach((v, k) =>
            expect(Math.abs(v - sumSoft[k]! / draws)).toBeLessThanOrEqual(1e-14),
          );
          rows(got['mean_softmax']!).forEach((row) =>
            expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThanOrEqual(1e-14),
          );
        }),
        { numRuns: 60 },
      );
    },
  );

  it('S = 1: mean_output is the training output bit for bit', () => {
    const p = PROFILES.molchanov2017;
    fc.assert(
      fc.property(denseArb(p, fc.constant(1)), (inputs) => {
        const eps = inputs.eps as Tensor;
        const got = run('svd.dense.predict_mc', inputs, p)['mean_output']!;
        const train = run(
          'svd.dense.train',
          { ...inputs, eps: t(eps.shape.slice(1) as number[], [...eps.data]) },
          p,
        )['output']!;
        expect(got.data.every((v, k) => Object.is(v, train.data[k]))).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('by hand: one input, x = 1, two outputs, two draws: the average of softmaxes, not the softmax of the average', () => {
    // kingma2015, log_alpha 0: s2 = theta^2, variance = theta^2, sd = sqrt(theta^2 + 1e-8).
    const inputs = {
      x: t([1, 1], [1]),
      theta: t([1, 2], [1, 0]),
      log_alpha: t([], [0]),
      bias: t([2], [0, 0]),
      eps: t([2, 1, 2], [2, 0, -2, 0]),
    };
    const r = run('vd.dense.predict_mc', inputs, PROFILES.kingma2015);
    const sd = Math.sqrt(1 + 1e-8);
    const sd0 = Math.sqrt(1e-8);
    // Draw 1: logits [1 + 2 sd, 0]; draw 2: [1 - 2 sd, 0] (eps 0 on the second output).
    const l1 = [1 + 2 * sd, 0 * sd0];
    const l2 = [1 - 2 * sd, 0];
    expect(r['mean_output']!.data[0]).toBeCloseTo(1, 14);
    const p1 = 1 / (1 + Math.exp(-l1[0]!));
    const p2 = 1 / (1 + Math.exp(-l2[0]!));
    expect(r['mean_softmax']!.data[0]).toBeCloseTo((p1 + p2) / 2, 14);
    // softmax of the mean logits [1, 0] would give 0.731: the predictive is less confident.
    expect(Math.abs(r['mean_softmax']!.data[0]! - 1 / (1 + Math.exp(-1)))).toBeGreaterThan(0.05);
  });

  const bad: [string, string, Record<string, unknown>, string][] = [
    [
      'eps of rank 2 (one draw without the S axis)',
      'eps',
      { eps: t([1, 2], [0, 0]) },
      'shape_mismatch',
    ],
    ['S = 0 draws', 'eps', { eps: t([0, 1, 2], []) }, 'shape_mismatch'],
    [
      'eps whose draws have the wrong output size',
      'eps',
      { eps: t([2, 1, 3], [0, 0, 0, 0, 0, 0]) },
      'shape_mismatch',
    ],
  ];
  it.each(bad)('%s is a VdspecError naming %s', (_what, argument, over, code) => {
    const inputs = {
      x: t([1, 1], [1]),
      theta: t([1, 2], [1, 0.5]),
      log_sigma2: t([1, 2], [-4, -4]),
      bias: t([2], [0, 0]),
      eps: t([2, 1, 2], [0, 0, 0, 0]),
      ...over,
    };
    let error: unknown;
    try {
      run('svd.dense.predict_mc', inputs, 'molchanov2017');
    } catch (e) {
      error = e;
    }
    expect(isVdspecError(error)).toBe(true);
    expect(error).toMatchObject({ code, argument });
  });

  it('S = 0 draws: the message says how many draws were given and which shape eps takes', () => {
    let error: unknown;
    try {
      run(
        'svd.dense.predict_mc',
        {
          x: t([1, 1], [1]),
          theta: t([1, 2], [1, 0.5]),
          log_sigma2: t([1, 2], [-4, -4]),
          bias: t([2], [0, 0]),
          eps: t([0, 1, 2], []),
        },
        'molchanov2017',
      );
    } catch (e) {
      error = e;
    }
    expect(isVdspecError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'shape_mismatch', argument: 'eps' });
    expect((error as Error).message).toBe('eps: expected S >= 1 draws [S, batch, out], got S = 0');
  });

  it('there is no conv2d predictive (a feature map has no classes)', () => {
    expect(() => run('svd.conv2d.predict_mc', {}, 'molchanov2017')).toThrow(
      expect.objectContaining({ code: 'unknown_op' }),
    );
  });
});
