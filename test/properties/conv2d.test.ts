/**
 * Properties of spec/conv2d.md: the plain convolution against an im2col
 * matrix product, the layer's masks and variance against formulas written
 * here from the spec's equations, every VJP against central differences, and
 * the input checks.
 *
 * Inputs are built from a target log_alpha per weight (see `noiseFor`), so the
 * test knows the mask and the variance without calling weightStatistics and
 * can keep every point away from the clip bounds and the threshold.
 */
import fc from 'fast-check';
import { multiply } from 'mathjs';
import { describe, expect, it } from 'vitest';
import { isVdspecError } from '../../src/errors.js';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dEval,
  conv2dEvalVjp,
  conv2dGeometry,
  conv2dTrain,
  conv2dTrainVjp,
  type Conv2dOptions,
  type Conv2dPaddingMode,
  type Conv2dTrainInputs,
} from '../../src/reference/conv2d.js';
import type { Tensor } from '../../src/tensor.js';
import { expectRefusal, untyped } from './refusals.js';

// ---------------------------------------------------------------------------
// Helpers written from the spec, independent of the module under test

type Padding = Conv2dPaddingMode;

interface Dims {
  n: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  cin: number;
  cout: number;
  sh: number;
  sw: number;
  padding: Padding;
  /** How 'same' splits its padding (the profile's samePadding); TensorFlow's when absent. */
  rule?: 'tensorflow' | 'lasagne';
}

/**
 * TensorFlow's documented output sizes: 'same' ceil(in / s); 'valid'
 * ceil((in - k + 1) / s). The total padding is what the window needs beyond
 * the input, floor half before.
 */
function axis(size: number, k: number, s: number, padding: Padding, rule = 'tensorflow') {
  if (padding === 'valid') return { out: Math.ceil((size - k + 1) / s), before: 0, after: 0 };
  if (rule === 'lasagne') {
    // Lasagne: (k - 1) / 2 zeros on each side (k odd); the output counts the window starts.
    const half = (k - 1) / 2;
    return { out: Math.ceil((size + 2 * half - k + 1) / s), before: half, after: half };
  }
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return { out, before: Math.floor(total / 2), after: total - Math.floor(total / 2) };
}

/** Output shape [n, oh, ow, cout] by the rule above. */
function outShape(d: Dims): number[] {
  return [
    d.n,
    axis(d.h, d.kh, d.sh, d.padding, d.rule).out,
    axis(d.w, d.kw, d.sw, d.padding, d.rule).out,
    d.cout,
  ];
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * conv2d as one matrix product: an explicitly zero-padded copy of x, one
 * patch row per output pixel (taps in (p, q, c) order), times the filter
 * reshaped to [kh*kw*cin, cout]. No bounds tests, no shared index code.
 */
function convByIm2col(
  x: Tensor,
  f: Tensor,
  stride: [number, number],
  padding: Padding,
  rule: 'tensorflow' | 'lasagne' = 'tensorflow',
): Tensor {
  const [n, h, w, cin] = x.shape as [number, number, number, number];
  const [kh, kw, , cout] = f.shape as [number, number, number, number];
  const rows = axis(h, kh, stride[0], padding, rule);
  const cols = axis(w, kw, stride[1], padding, rule);
  const hp = h + rows.before + rows.after;
  const wp = w + cols.before + cols.after;
  const padded: number[][][][] = [];
  for (let b = 0; b < n; b++) {
    padded.push(
      Array.from({ length: hp }, (_, r) =>
        Array.from({ length: wp }, (_, s) =>
          Array.from({ length: cin }, (_, c) => {
            const rr = r - rows.before;
            const ss = s - cols.before;
            return rr >= 0 && rr < h && ss >= 0 && ss < w
              ? x.data[((b * h + rr) * w + ss) * cin + c]!
              : 0;
          }),
        ),
      ),
    );
  }
  const patches: number[][] = [];
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < rows.out; i++) {
      for (let j = 0; j < cols.out; j++) {
        const patch: number[] = [];
        for (let p = 0; p < kh; p++) {
          for (let q = 0; q < kw; q++) {
            patch.push(...padded[b]![i * stride[0] + p]![j * stride[1] + q]!);
          }
        }
        patches.push(patch);
      }
    }
  }
  const filterMatrix = Array.from({ length: kh * kw * cin }, (_, r) =>
    f.data.slice(r * cout, (r + 1) * cout),
  );
  const product = multiply(patches, filterMatrix) as number[][];
  return { shape: [n, rows.out, cols.out, cout], data: product.flat() };
}

function addBias(t: Tensor, bias: readonly number[]): number[] {
  return t.data.map((v, k) => v + bias[k % bias.length]!);
}

/** Per-profile log_alpha bounds and the pruning threshold: the points FD must stay away from. */
function edges(profile: Profile): number[] {
  const e: number[] = [];
  const clip = profile.conv2d.logAlpha.clip;
  if (clip?.min != null) e.push(clip.min);
  if (clip?.max != null) e.push(clip.max);
  if (profile.prune) e.push(profile.prune.threshold);
  return e;
}

function clipped(profile: Profile, logAlpha: number): number {
  const clip = profile.conv2d.logAlpha.clip;
  let v = logAlpha;
  if (clip?.min != null) v = Math.max(v, clip.min);
  if (clip?.max != null) v = Math.min(v, clip.max);
  return v;
}

/** The noise parameter value that gives this theta the target (unclipped) log_alpha. */
function noiseFor(profile: Profile, theta: number, target: number): number {
  const { form, thetaEps } = profile.conv2d.logAlpha;
  if (form === 'learned') return target;
  const logTheta2 =
    form === 'log_theta2'
      ? Math.log(theta * theta + thetaEps)
      : 2 * Math.log(Math.abs(theta) + thetaEps);
  const logSigma2 = target + logTheta2;
  return profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2;
}

/** Kept (1) or pruned (0) for a target log_alpha at least a margin away from the threshold. */
function keptFor(profile: Profile, target: number): number {
  if (profile.prune === null) return 1;
  return target > profile.prune.threshold ? 0 : 1;
}

/** Per-weight variance from the spec's table, from the construction's own values. */
function varianceFor(profile: Profile, theta: number, noise: number, target: number): number {
  if (profile.conv2d.variance === 'sigma2') {
    return Math.exp(profile.noiseParameter === 'log_sigma' ? 2 * noise : noise);
  }
  if (profile.conv2d.variance === 'sigma2_rebuilt') {
    // exp(log_sigma2) where the clip passes; exp(bound) * (theta^2 + eps) beyond it.
    const eps = profile.conv2d.logAlpha.thetaEps;
    return clipped(profile, target) === target
      ? Math.exp(noise)
      : Math.exp(clipped(profile, target)) * (theta * theta + eps);
  }
  return Math.exp(clipped(profile, target)) * theta * theta;
}

const profiles = PROFILE_NAMES.map((name) => PROFILES[name]);
const molchanov = PROFILES.molchanov2017;
const bayesgroup = PROFILES['bayesgroup-theano'];
const kingma = PROFILES.kingma2015;

// ---------------------------------------------------------------------------
// Arbitraries

interface DimsLimits {
  maxBatch: number;
  maxSpatial: number;
  maxKernel: number;
  maxChannels: number;
  maxStride: number;
}

function dimsArb(l: DimsLimits): fc.Arbitrary<Dims> {
  return fc
    .record({
      n: fc.integer({ min: 1, max: l.maxBatch }),
      h: fc.integer({ min: 1, max: l.maxSpatial }),
      w: fc.integer({ min: 1, max: l.maxSpatial }),
      kh: fc.integer({ min: 1, max: l.maxKernel }),
      kw: fc.integer({ min: 1, max: l.maxKernel }),
      cin: fc.integer({ min: 1, max: l.maxChannels }),
      cout: fc.integer({ min: 1, max: l.maxChannels }),
      sh: fc.integer({ min: 1, max: l.maxStride }),
      sw: fc.integer({ min: 1, max: l.maxStride }),
      padding: fc.constantFrom<Padding>('valid', 'same'),
    })
    .map((d) =>
      // 'valid' needs the kernel to fit; shrink it rather than discard the case.
      d.padding === 'valid' ? { ...d, kh: Math.min(d.kh, d.h), kw: Math.min(d.kw, d.w) } : d,
    );
}

/**
 * A number spread evenly over [min, max] (a grid of 2^20 steps plus a random
 * fraction of a step). fc.double concentrates its draws near 0 and the
 * bounds, which would leave e.g. log_alpha in (3, 8) almost untested.
 */
function uniform(min: number, max: number): fc.Arbitrary<number> {
  const steps = 2 ** 20;
  return fc
    .tuple(fc.integer({ min: 0, max: steps }), fc.integer({ min: 0, max: 999 }))
    .map(([i, j]) => Math.min(max, min + ((max - min) * (i + j / 1000)) / steps));
}

const values = (length: number, min: number, max: number) =>
  fc.array(uniform(min, max), { minLength: length, maxLength: length });

/** |theta| in [0.2, 1.5]: a step of 1e-6 then moves log_alpha by at most 1e-5 (2h/|theta|). */
const thetaValue = fc
  .tuple(fc.boolean(), uniform(0.2, 1.5))
  .map(([negative, m]) => (negative ? -m : m));

/**
 * x is 0 or |x| in [1e-3, 1.5]. sqrt(x^2 s2 + sqrtEps) bends over |x| ~ sqrt(sqrtEps / s2),
 * down to ~2e-8 for pytorch-ard (sqrtEps 1e-15): an x within a step of 0 puts the
 * central difference across that bend. At exactly 0 the difference is symmetric.
 */
const inputValue = fc.oneof(
  fc.constant(0),
  fc.tuple(fc.boolean(), uniform(1e-3, 1.5)).map(([negative, m]) => (negative ? -m : m)),
);

/** At least this far (in log_alpha) from every clip bound and the threshold: 5000 FD steps. */
const EDGE_MARGIN = 0.05;

function targetArb(profile: Profile): fc.Arbitrary<number> {
  // SVD: cover both sides of the clip; VD: the learned log_alpha around its clip max 0.
  const [min, max] = profile.algorithm === 'svd' ? [-12, 12] : [-6, 2];
  return uniform(min, max).filter((t) =>
    edges(profile).every((e) => Math.abs(t - e) > EDGE_MARGIN),
  );
}

type VdNoiseShape = 'scalar' | 'per_output' | 'per_input' | 'per_weight';

interface LayerCase {
  dims: Dims;
  options: Conv2dOptions;
  inputs: Conv2dTrainInputs;
  cotangent: Tensor;
  /** Cotangents of the mean and the variance (train VJP), in about half of the cases. */
  extraCotangents: { mean: Tensor; variance: Tensor } | null;
  /** The unclipped log_alpha of each weight (theta's order). */
  targets: number[];
}

function layerCaseArb(profile: Profile, limits: DimsLimits): fc.Arbitrary<LayerCase> {
  return fc
    .record({
      // The profile's 'same' rule; Lasagne's takes odd kernels only (2 becomes 3).
      dims: dimsArb(limits).map((d) =>
        profile.samePadding === 'lasagne' && d.padding === 'same'
          ? { ...d, kh: d.kh | 1, kw: d.kw | 1, rule: 'lasagne' as const }
          : d,
      ),
      trainClip: fc.constantFrom<boolean | undefined>(true, false, undefined),
      vdNoise: fc.constantFrom<VdNoiseShape>('scalar', 'per_output', 'per_input', 'per_weight'),
    })
    .chain(({ dims, trainClip, vdNoise }) => {
      const xShape = [dims.n, dims.h, dims.w, dims.cin];
      const thetaShape = [dims.kh, dims.kw, dims.cin, dims.cout];
      const yShape = outShape(dims);
      // VD's log_alpha may be broadcast (spec/log-alpha.md); SVD's noise is per weight.
      const perWeight = profile.conv2d.logAlpha.form !== 'learned' || vdNoise === 'per_weight';
      const noiseShape = perWeight
        ? thetaShape
        : vdNoise === 'scalar'
          ? []
          : vdNoise === 'per_output'
            ? [dims.cout]
            : [dims.cin, 1];
      return fc
        .record({
          x: fc.array(inputValue, { minLength: size(xShape), maxLength: size(xShape) }),
          theta: fc.array(thetaValue, {
            minLength: size(thetaShape),
            maxLength: size(thetaShape),
          }),
          targets: fc.array(targetArb(profile), {
            minLength: size(noiseShape),
            maxLength: size(noiseShape),
          }),
          bias: values(dims.cout, -1, 1),
          eps: values(size(yShape), -2, 2),
          cotangent: values(size(yShape), -1, 1),
          extra: fc.option(
            fc.record({ mean: values(size(yShape), -1, 1), variance: values(size(yShape), -1, 1) }),
          ),
        })
        .map((v) => {
          const perWeightTargets = v.theta.map(
            (_, k) => v.targets[noiseIndex(noiseShape, dims, k)]!,
          );
          const noise = perWeight
            ? v.theta.map((t, k) => noiseFor(profile, t, v.targets[k]!))
            : v.targets.map((t) => noiseFor(profile, 0, t));
          const options: Conv2dOptions =
            trainClip === undefined
              ? { stride: [dims.sh, dims.sw], padding: dims.padding }
              : { stride: [dims.sh, dims.sw], padding: dims.padding, trainClip };
          return {
            dims,
            options,
            inputs: {
              x: { shape: xShape, data: v.x },
              theta: { shape: thetaShape, data: v.theta },
              noise: { shape: noiseShape, data: noise },
              bias: { shape: [dims.cout], data: v.bias },
              eps: { shape: yShape, data: v.eps },
            },
            cotangent: { shape: yShape, data: v.cotangent },
            extraCotangents:
              v.extra === null
                ? null
                : {
                    mean: { shape: yShape, data: v.extra.mean },
                    variance: { shape: yShape, data: v.extra.variance },
                  },
            targets: perWeightTargets,
          };
        });
    });
}

/** Which noise entry weight k (HWIO flat index) reads, for the broadcast shapes used here. */
function noiseIndex(noiseShape: readonly number[], d: Dims, k: number): number {
  if (noiseShape.length === 0) return 0;
  if (noiseShape.length === 1) return k % d.cout;
  if (noiseShape.length === 2) return Math.floor(k / d.cout) % d.cin;
  return k;
}

const SMALL: DimsLimits = {
  maxBatch: 2,
  maxSpatial: 5,
  maxKernel: 3,
  maxChannels: 2,
  maxStride: 2,
};

/** Float64 sums of at most 48 products of magnitude <= 4 (here): 1e-11 is ~20x the worst rounding. */
const SUM_TOLERANCE = 1e-11;

function expectClose(actual: readonly number[], expected: readonly number[], tol: number) {
  expect(actual.length).toBe(expected.length);
  for (let k = 0; k < actual.length; k++) {
    if (!(Math.abs(actual[k]! - expected[k]!) <= tol)) {
      throw new Error(`entry ${k}: ${actual[k]} vs ${expected[k]} (tolerance ${tol})`);
    }
  }
}

function expectIdentical(actual: readonly number[], expected: readonly number[]) {
  expect(actual.length).toBe(expected.length);
  for (let k = 0; k < actual.length; k++) {
    if (actual[k] !== expected[k]) throw new Error(`entry ${k}: ${actual[k]} !== ${expected[k]}`);
  }
}

// ---------------------------------------------------------------------------

describe('spec/conv2d.md#convolution', () => {
  it('spec/conv2d.md#convolution: conv2d equals the im2col matrix product, output shape by TF rule', () => {
    fc.assert(
      fc.property(
        dimsArb({ maxBatch: 2, maxSpatial: 7, maxKernel: 4, maxChannels: 3, maxStride: 3 }).chain(
          (d) =>
            fc.record({
              d: fc.constant(d),
              x: values(d.n * d.h * d.w * d.cin, -2, 2),
              f: values(d.kh * d.kw * d.cin * d.cout, -2, 2),
            }),
        ),
        ({ d, x, f }) => {
          const xt = { shape: [d.n, d.h, d.w, d.cin], data: x };
          const ft = { shape: [d.kh, d.kw, d.cin, d.cout], data: f };
          const y = conv2d(xt, ft, [d.sh, d.sw], d.padding);
          expect(y.shape).toEqual(outShape(d));
          const expected = convByIm2col(xt, ft, [d.sh, d.sw], d.padding);
          expectClose(y.data, expected.data, SUM_TOLERANCE);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('spec/conv2d.md#padding: worked examples (extra padding row/column at the bottom/right)', () => {
    const ones = (kh: number, kw: number) => ({
      shape: [kh, kw, 1, 1],
      data: new Array<number>(kh * kw).fill(1),
    });
    const grid = (h: number, w: number) => ({
      shape: [1, h, w, 1],
      data: Array.from({ length: h * w }, (_, k) => k + 1),
    });
    // 3x3 input 1..9, 2x2 ones, stride 1 'same': one padding row and column, both after.
    expect(conv2d(grid(3, 3), ones(2, 2), 1, 'same')).toEqual({
      shape: [1, 3, 3, 1],
      data: [12, 16, 9, 24, 28, 15, 15, 17, 9],
    });
    // 4x4 input 1..16, 3x3 ones, stride 2 'same': out 2x2, total pad 1, at the bottom/right.
    expect(conv2d(grid(4, 4), ones(3, 3), 2, 'same')).toEqual({
      shape: [1, 2, 2, 1],
      data: [54, 45, 72, 54],
    });
    // 'valid' with stride 2 drops the last column that a window cannot cover.
    expect(conv2d(grid(3, 4), ones(2, 2), 2, 'valid')).toEqual({
      shape: [1, 1, 2, 1],
      data: [14, 22],
    });
    expect(
      conv2dGeometry([1, 5, 6, 1], [4, 3, 1, 1], { stride: [2, 3], padding: 'same' }),
    ).toMatchObject({
      outHeight: 3,
      outWidth: 2,
      padTop: 1,
      padBottom: 2,
      padLeft: 0,
      padRight: 0,
    });
  });

  it('spec/conv2d.md#vjps: backprop input and filter are the adjoints of conv2d', () => {
    // <gy, conv(x, f)> = <backpropInput(gy, f), x> = <backpropFilter(x, gy), f>, exactly up to rounding.
    fc.assert(
      fc.property(
        dimsArb({ maxBatch: 2, maxSpatial: 6, maxKernel: 4, maxChannels: 3, maxStride: 3 }).chain(
          (d) =>
            fc.record({
              d: fc.constant(d),
              x: values(d.n * d.h * d.w * d.cin, -2, 2),
              f: values(d.kh * d.kw * d.cin * d.cout, -2, 2),
              gy: values(size(outShape(d)), -2, 2),
            }),
        ),
        ({ d, x, f, gy }) => {
          const xShape = [d.n, d.h, d.w, d.cin];
          const fShape = [d.kh, d.kw, d.cin, d.cout];
          const xt = { shape: xShape, data: x };
          const ft = { shape: fShape, data: f };
          const gyt = { shape: outShape(d), data: gy };
          const dot = (a: readonly number[], b: readonly number[]) =>
            a.reduce((s, v, k) => s + v * b[k]!, 0);
          const y = conv2d(xt, ft, [d.sh, d.sw], d.padding);
          const gx = conv2dBackpropInput(gyt, ft, xShape, [d.sh, d.sw], d.padding);
          const gf = conv2dBackpropFilter(xt, gyt, fShape, [d.sh, d.sw], d.padding);
          expect(gx.shape).toEqual(xShape);
          expect(gf.shape).toEqual(fShape);
          // Each side sums at most ~6000 products of magnitude <= 8.
          const tol = 1e-9;
          expect(Math.abs(dot(gy, y.data) - dot(gx.data, x))).toBeLessThan(tol);
          expect(Math.abs(dot(gy, y.data) - dot(gf.data, f))).toBeLessThan(tol);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('spec/conv2d.md#convolution: a 1x1 convolution is a matrix product per (strided) pixel', () => {
    fc.assert(
      fc.property(
        dimsArb({ maxBatch: 2, maxSpatial: 6, maxKernel: 1, maxChannels: 4, maxStride: 3 }).chain(
          (d) =>
            fc.record({
              d: fc.constant(d),
              x: values(d.n * d.h * d.w * d.cin, -2, 2),
              f: values(d.cin * d.cout, -2, 2),
            }),
        ),
        ({ d, x, f }) => {
          const y = conv2d(
            { shape: [d.n, d.h, d.w, d.cin], data: x },
            { shape: [1, 1, d.cin, d.cout], data: f },
            [d.sh, d.sw],
            d.padding,
          );
          // A 1x1 window never needs padding: output pixel (i, j) reads input pixel (i*sh, j*sw).
          const pixels: number[][] = [];
          for (let b = 0; b < d.n; b++) {
            for (let r = 0; r < d.h; r += d.sh) {
              for (let s = 0; s < d.w; s += d.sw) {
                const at = ((b * d.h + r) * d.w + s) * d.cin;
                pixels.push(x.slice(at, at + d.cin));
              }
            }
          }
          const weights = Array.from({ length: d.cin }, (_, c) =>
            f.slice(c * d.cout, (c + 1) * d.cout),
          );
          const expected = (multiply(pixels, weights) as number[][]).flat();
          expect(y.shape).toEqual([d.n, Math.ceil(d.h / d.sh), Math.ceil(d.w / d.sw), d.cout]);
          expectClose(y.data, expected, SUM_TOLERANCE);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('spec/conv2d.md#svdconv2deval, #vdconv2deval', () => {
  for (const profile of profiles) {
    it(`spec/conv2d.md#${profile.algorithm}conv2deval (${profile.name}): conv(x, theta*mask) + b, pruned taps skipped`, () => {
      fc.assert(
        fc.property(layerCaseArb(profile, SMALL), (c) => {
          const y = conv2dEval(c.inputs, profile, c.options);
          const kept = c.targets.map((t) => keptFor(profile, t));
          // The test's own "skip pruned taps": zero them in a copy of the filter.
          const thetaKept = c.inputs.theta.data.map((t, k) => (kept[k] === 1 ? t : 0));
          const expected = addBias(
            convByIm2col(
              c.inputs.x,
              { shape: c.inputs.theta.shape, data: thetaKept },
              [c.dims.sh, c.dims.sw],
              c.dims.padding,
              c.dims.rule,
            ),
            c.inputs.bias.data,
          );
          expectClose(y.data, expected, SUM_TOLERANCE);
        }),
        { numRuns: 60 },
      );
    });
  }

  for (const profile of profiles.filter((p) => p.prune !== null)) {
    it(`spec/conv2d.md#svdconv2deval (${profile.name}): changing pruned weights (still pruned) changes nothing`, () => {
      fc.assert(
        fc.property(
          layerCaseArb(profile, SMALL),
          fc.infiniteStream(fc.tuple(thetaValue, uniform(3.5, 12))),
          (c, replacements) => {
            const before = conv2dEval(c.inputs, profile, c.options);
            const theta = [...c.inputs.theta.data];
            const noise = [...c.inputs.noise.data];
            let changed = 0;
            const source = replacements[Symbol.iterator]();
            c.targets.forEach((t, k) => {
              if (keptFor(profile, t) === 1) return;
              // A new theta and a new log_alpha above the threshold (>= 3.5): the weight stays pruned.
              const [newTheta, newTarget] = source.next().value as [number, number];
              theta[k] = newTheta;
              noise[k] = noiseFor(profile, newTheta, newTarget);
              changed++;
            });
            fc.pre(changed > 0);
            const after = conv2dEval(
              {
                ...c.inputs,
                theta: { shape: c.inputs.theta.shape, data: theta },
                noise: { shape: c.inputs.noise.shape, data: noise },
              },
              profile,
              c.options,
            );
            // A pruned tap contributes an exact 0: bit-identical outputs.
            expectIdentical(after.data, before.data);
          },
        ),
        { numRuns: 40 },
      );
    });
  }
});

describe('spec/conv2d.md#svdconv2dtrain, #vdconv2dtrain', () => {
  for (const profile of profiles) {
    it(`spec/conv2d.md#${profile.algorithm}conv2dtrain (${profile.name}): mean, variance and output by the equations; bias outside the variance`, () => {
      fc.assert(
        fc.property(layerCaseArb(profile, SMALL), uniform(-3, 3), (c, shift) => {
          const r = conv2dTrain(c.inputs, profile, c.options);
          const trainClip = c.options.trainClip ?? profile.trainClipDefault;
          const kept = c.targets.map((t) => keptFor(profile, t));
          const maskMean = kept.map((m) => (trainClip ? m : 1));
          const maskVariance = kept.map((m) =>
            trainClip && profile.conv2d.trainMask === 'mean_and_variance' ? m : 1,
          );
          const s2 = c.inputs.theta.data.map((t, k) =>
            varianceFor(
              profile,
              t,
              c.inputs.noise.data[noiseIndex(c.inputs.noise.shape, c.dims, k)]!,
              c.targets[k]!,
            ),
          );
          const stride: [number, number] = [c.dims.sh, c.dims.sw];
          const mean = addBias(
            convByIm2col(
              c.inputs.x,
              {
                shape: c.inputs.theta.shape,
                data: c.inputs.theta.data.map((t, k) => t * maskMean[k]!),
              },
              stride,
              c.dims.padding,
              c.dims.rule,
            ),
            c.inputs.bias.data,
          );
          const variance = convByIm2col(
            { shape: c.inputs.x.shape, data: c.inputs.x.data.map((v) => v * v) },
            { shape: c.inputs.theta.shape, data: s2.map((v, k) => v * maskVariance[k]!) },
            stride,
            c.dims.padding,
            c.dims.rule,
          ).data;
          // s2 reaches exp(8) * 1.5^2 ~ 7e3 here, 18 taps of x^2 <= 2.25: relative 1e-12 covers rounding.
          const scale = 1 + Math.max(...variance);
          expectClose(r.mean.data, mean, SUM_TOLERANCE);
          expectClose(r.variance.data, variance, 1e-12 * scale);
          expect(r.variance.data.every((v) => v >= 0)).toBe(true);
          expectClose(
            r.output.data,
            r.mean.data.map(
              (m, k) =>
                m + Math.sqrt(r.variance.data[k]! + profile.sqrtEps) * c.inputs.eps.data[k]!,
            ),
            0,
          );

          // eps = 0: the output is the mean, exactly.
          const zeroEps = conv2dTrain(
            {
              ...c.inputs,
              eps: { shape: c.inputs.eps.shape, data: c.inputs.eps.data.map(() => 0) },
            },
            profile,
            c.options,
          );
          expectIdentical(zeroEps.output.data, zeroEps.mean.data);

          // Shifting the bias shifts the mean and leaves the variance bit-identical.
          const shifted = conv2dTrain(
            {
              ...c.inputs,
              bias: { shape: [c.dims.cout], data: c.inputs.bias.data.map((b) => b + shift) },
            },
            profile,
            c.options,
          );
          expectIdentical(shifted.variance.data, r.variance.data);
          expectClose(
            shifted.mean.data,
            r.mean.data.map((m) => m + shift),
            1e-12 * (1 + Math.abs(shift)) * 64,
          );
        }),
        { numRuns: 40 },
      );
    });
  }

  it('spec/conv2d.md#known-bug-the-bias-inside-the-variance: x = 0 gives variance 0 and output b + sqrt(sqrtEps) * eps', () => {
    for (const profile of profiles) {
      const theta = { shape: [2, 2, 1, 2], data: [0.5, -0.3, 0.8, 0.2, -0.6, 0.4, 0.9, -0.7] };
      const noise = {
        shape: theta.shape,
        data: theta.data.map((t, k) => noiseFor(profile, t, k % 2 === 0 ? -1 : 0.5)),
      };
      const bias = { shape: [2], data: [-0.5, 0.25] };
      const eps = { shape: [1, 2, 2, 2], data: [1, -1, 0.5, 2, -2, 0.25, 1, 1] };
      const r = conv2dTrain(
        { x: { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(0) }, theta, noise, bias, eps },
        profile,
      );
      expect(r.variance.data.every((v) => v === 0)).toBe(true);
      expectIdentical(
        r.output.data,
        eps.data.map((e, k) => bias.data[k % 2]! + Math.sqrt(profile.sqrtEps) * e),
      );
    }
  });

  it('spec/conv2d.md#masks: bayesgroup-theano masks the variance under trainClip; molchanov2017 does not', () => {
    // One input channel, one output channel, 2x2 kernel, every input 1: the variance is the sum of s2.
    // Weights 0 and 3 pruned (log_alpha 5 > 3), 1 and 2 kept (log_alpha -2).
    const theta = [0.5, -0.4, 0.3, 0.6];
    const targets = [5, -2, -2, 5];
    const x = { shape: [1, 2, 2, 1], data: [1, 1, 1, 1] };
    const bias = { shape: [1], data: [0] };
    const eps = { shape: [1, 1, 1, 1], data: [1] };
    const run = (profile: Profile, trainClip?: boolean) => {
      const inputs = {
        x,
        theta: { shape: [2, 2, 1, 1], data: theta },
        noise: {
          shape: [2, 2, 1, 1],
          data: theta.map((t, k) => noiseFor(profile, t, targets[k]!)),
        },
        bias,
        eps,
      };
      const r = conv2dTrain(inputs, profile, trainClip === undefined ? {} : { trainClip });
      return { mean: r.mean.data[0]!, variance: r.variance.data[0]! };
    };
    const s2 = theta.map((t, k) => Math.exp(targets[k]!) * t * t);
    const all = s2.reduce((a, b) => a + b, 0);
    const keptOnly = s2[1]! + s2[2]!;
    const meanAll = theta.reduce((a, b) => a + b, 0);
    const meanKept = theta[1]! + theta[2]!;
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

    // bayesgroup-theano: trainClip on by default; the mask multiplies both terms.
    const bgDefault = run(bayesgroup);
    expect(rel(bgDefault.variance, keptOnly)).toBeLessThan(1e-14);
    expect(Math.abs(bgDefault.mean - meanKept)).toBeLessThan(1e-15);
    const bgOff = run(bayesgroup, false);
    expect(rel(bgOff.variance, all)).toBeLessThan(1e-14);
    expect(Math.abs(bgOff.mean - meanAll)).toBeLessThan(1e-15);

    // molchanov2017: trainClip off by default; when on, the mean only.
    const moOn = run(molchanov, true);
    expect(rel(moOn.variance, all)).toBeLessThan(1e-14);
    expect(Math.abs(moOn.mean - meanKept)).toBeLessThan(1e-15);
    const moDefault = run(molchanov);
    expect(Math.abs(moDefault.mean - meanAll)).toBeLessThan(1e-15);
    // The two conventions must visibly differ here.
    expect(all - keptOnly).toBeGreaterThan(10);
  });

  it('spec/conv2d.md#masks: at exactly the threshold, > keeps (molchanov2017) and >= prunes (deepbayes-pytorch)', () => {
    // theta = 1: |theta| + 1e-16 rounds to 1, log(1) = 0, so log_alpha = log_sigma2 = 3 exactly.
    const inputs = (noise: number) => ({
      x: { shape: [1, 1, 1, 1], data: [2] },
      theta: { shape: [1, 1, 1, 1], data: [1] },
      noise: { shape: [1, 1, 1, 1], data: [noise] },
      bias: { shape: [1], data: [0.5] },
    });
    expect(conv2dEval(inputs(3), molchanov).data).toEqual([2.5]);
    expect(conv2dEval(inputs(1.5), PROFILES['deepbayes-pytorch']).data).toEqual([0.5]);
  });

  it('spec/conv2d.md#edge-cases: empty batch, no input channels, no output channels', () => {
    const profile = molchanov;
    const theta = (cin: number, cout: number) => ({
      shape: [1, 1, cin, cout],
      data: new Array<number>(cin * cout).fill(0.5),
    });
    const noise = (cin: number, cout: number) => ({
      shape: [1, 1, cin, cout],
      data: new Array<number>(cin * cout).fill(noiseFor(profile, 0.5, -1)),
    });
    const empty = conv2dTrain(
      {
        x: { shape: [0, 2, 2, 1], data: [] },
        theta: theta(1, 1),
        noise: noise(1, 1),
        bias: { shape: [1], data: [1] },
        eps: { shape: [0, 2, 2, 1], data: [] },
      },
      profile,
    );
    expect(empty.output).toEqual({ shape: [0, 2, 2, 1], data: [] });
    const noInputs = conv2dTrain(
      {
        x: { shape: [1, 1, 2, 0], data: [] },
        theta: theta(0, 2),
        noise: noise(0, 2),
        bias: { shape: [2], data: [1, -1] },
        eps: { shape: [1, 1, 2, 2], data: [0, 0, 0, 0] },
      },
      profile,
    );
    expect(noInputs.mean.data).toEqual([1, -1, 1, -1]);
    expect(noInputs.variance.data).toEqual([0, 0, 0, 0]);
    const noOutputs = conv2dEval(
      {
        x: { shape: [1, 2, 2, 1], data: [1, 2, 3, 4] },
        theta: theta(1, 0),
        noise: noise(1, 0),
        bias: { shape: [0], data: [] },
      },
      profile,
    );
    expect(noOutputs).toEqual({ shape: [1, 2, 2, 0], data: [] });
    // 'same' on an empty image: out = ceil(0 / s) = 0.
    const emptyImage = conv2d(
      { shape: [1, 0, 3, 1], data: [] },
      { shape: [2, 2, 1, 1], data: [1, 1, 1, 1] },
      [2, 1],
      'same',
    );
    expect(emptyImage).toEqual({ shape: [1, 0, 3, 1], data: [] });
    // The eval forward ignores trainClip.
    const evalInputs = {
      x: { shape: [1, 2, 2, 1], data: [1, 2, 3, 4] },
      theta: theta(1, 1),
      noise: { shape: [1, 1, 1, 1], data: [noiseFor(profile, 0.5, 5)] },
      bias: { shape: [1], data: [0] },
    };
    expect(conv2dEval(evalInputs, profile, { trainClip: false }).data).toEqual([0, 0, 0, 0]);
  });
});

// ---------------------------------------------------------------------------
// VJPs against central differences

type ParameterName = 'x' | 'theta' | 'noise' | 'bias';
const PARAMETERS: ParameterName[] = ['x', 'theta', 'noise', 'bias'];

/**
 * Central differences of L = sum_k w_k r_k over the results r (output, and in
 * half the cases mean and variance) with cotangents w, step h = 1e-6, taken
 * result by result: fd = sum_k w_k (r_k(+h) - r_k(-h)) / 2h.
 * - Truncation, h^2/6 |L'''|: the sharpest term is sqrt(v + sqrtEps); with the
 *   inputs drawn here |L'''| stays below ~1e3, so the error stays below ~2e-10.
 * - Rounding: each r_k carries an error of a few ulps of the magnitude of
 *   what it adds up (|x||theta| products, |b|, sqrt(v + sqrtEps)|eps|, the
 *   positive terms of v), and the difference divides it by h. `scale` is
 *   sum_k |w_k| times that magnitude; 64 u scale / h allows ~30 ulps per
 *   result (u = 2^-53).
 * - Plus 1e-6 relative and 1e-7 absolute for everything else.
 * Run with 10x the runs below, the worst error seen was 0.3 of this bound.
 */
const FD_STEP = 1e-6;
const FD_ABS = 1e-7;
const FD_REL = 1e-6;
const UNIT_ROUNDOFF = 2 ** -53;

interface Objective {
  /** The results, concatenated. */
  readonly results: (inputs: Conv2dTrainInputs) => readonly number[];
  /** Their cotangents, in the same order. */
  readonly weights: readonly number[];
  /** sum_k |w_k| * (magnitude of what r_k adds up). */
  readonly scale: number;
}

function withEntry(inputs: Conv2dTrainInputs, name: ParameterName, k: number, delta: number) {
  const t = inputs[name];
  const data = [...t.data];
  data[k] = data[k]! + delta;
  return { ...inputs, [name]: { shape: t.shape, data } };
}

/** Per output: conv(|x|, |theta|) + |b| (the mean's magnitude) and the unmasked variance. */
function magnitudes(c: LayerCase, profile: Profile) {
  const abs = (t: Tensor) => ({ shape: t.shape, data: t.data.map(Math.abs) });
  const spread = conv2d(
    abs(c.inputs.x),
    abs(c.inputs.theta),
    [c.dims.sh, c.dims.sw],
    c.dims.padding,
    c.dims.rule,
  );
  const unmasked = conv2dTrain(c.inputs, profile, { ...c.options, trainClip: false });
  const mean = spread.data.map((v, k) => v + Math.abs(c.inputs.bias.data[k % c.dims.cout]!));
  return { mean, variance: unmasked.variance.data };
}

function trainCotangent(c: LayerCase) {
  return c.extraCotangents === null
    ? { output: c.cotangent }
    : { output: c.cotangent, ...c.extraCotangents };
}

function trainObjective(c: LayerCase, profile: Profile): Objective {
  const m = magnitudes(c, profile);
  const outputMagnitude = m.mean.map(
    (v, k) => v + Math.sqrt(m.variance[k]! + profile.sqrtEps) * Math.abs(c.inputs.eps.data[k]!),
  );
  const weights = [...c.cotangent.data];
  let magnitude = outputMagnitude;
  if (c.extraCotangents !== null) {
    weights.push(...c.extraCotangents.mean.data, ...c.extraCotangents.variance.data);
    magnitude = [...outputMagnitude, ...m.mean, ...m.variance];
  }
  const withExtras = c.extraCotangents !== null;
  return {
    results: (inputs) => {
      const r = conv2dTrain(inputs, profile, c.options);
      return withExtras ? [...r.output.data, ...r.mean.data, ...r.variance.data] : r.output.data;
    },
    weights,
    scale: weights.reduce((s, w, k) => s + Math.abs(w) * magnitude[k]!, 0),
  };
}

function evalObjective(c: LayerCase, profile: Profile): Objective {
  const m = magnitudes(c, profile);
  return {
    results: (inputs) => conv2dEval(inputs, profile, c.options).data,
    weights: c.cotangent.data,
    scale: c.cotangent.data.reduce((s, w, k) => s + Math.abs(w) * m.mean[k]!, 0),
  };
}

function checkAgainstDifferences(
  objective: Objective,
  inputs: Conv2dTrainInputs,
  gradients: Record<ParameterName, Tensor>,
) {
  // Central differences at h and h / 2: their gap estimates the truncation error (the
  // second's is about a third of it), which matters where terms of order 1 cancel to a small
  // gradient along a sharply curved square root (a tiny x against a huge sigma^2).
  const half = FD_STEP / 2;
  const rounding = (64 * UNIT_ROUNDOFF * objective.scale) / half;
  const difference = (name: ParameterName, k: number, h: number) => {
    const plus = objective.results(withEntry(inputs, name, k, h));
    const minus = objective.results(withEntry(inputs, name, k, -h));
    return objective.weights.reduce((s, w, j) => s + (w * (plus[j]! - minus[j]!)) / (2 * h), 0);
  };
  for (const name of PARAMETERS) {
    const g = gradients[name];
    expect(g.shape).toEqual(inputs[name].shape);
    for (let k = 0; k < g.data.length; k++) {
      const coarse = difference(name, k, FD_STEP);
      const fd = difference(name, k, half);
      const analytic = g.data[k]!;
      const bound = FD_ABS + FD_REL * Math.abs(fd) + rounding + Math.abs(coarse - fd);
      if (!(Math.abs(analytic - fd) <= bound)) {
        throw new Error(
          `d/d${name}[${k}]: VJP ${analytic}, central difference ${fd}, bound ${bound}`,
        );
      }
    }
  }
}

describe('spec/conv2d.md#vjps', () => {
  const FD_DIMS: DimsLimits = {
    maxBatch: 2,
    maxSpatial: 4,
    maxKernel: 3,
    maxChannels: 2,
    maxStride: 2,
  };

  for (const profile of profiles) {
    it(`spec/conv2d.md#vjp-train (${profile.name}): matches central differences, inside and outside the clip`, () => {
      fc.assert(
        fc.property(layerCaseArb(profile, FD_DIMS), (c) => {
          const grads = conv2dTrainVjp(c.inputs, trainCotangent(c), profile, c.options);
          checkAgainstDifferences(trainObjective(c, profile), c.inputs, grads);
          // Outside the clip, log_alpha is constant: with variance alpha*theta^2 the noise gradient is exactly 0.
          if (
            profile.conv2d.variance === 'alpha_theta2' &&
            profile.conv2d.logAlpha.form !== 'learned'
          ) {
            const clip = profile.conv2d.logAlpha.clip!;
            c.targets.forEach((t, k) => {
              if ((clip.max !== null && t > clip.max) || (clip.min !== null && t < clip.min)) {
                expect(grads.noise.data[k]).toBe(0);
              }
            });
          }
        }),
        { numRuns: 40 },
      );
    });

    it(`spec/conv2d.md#vjp-eval (${profile.name}): matches central differences; noise gradient 0`, () => {
      fc.assert(
        fc.property(layerCaseArb(profile, FD_DIMS), (c) => {
          const grads = conv2dEvalVjp(c.inputs, c.cotangent, profile, c.options);
          expect(grads.noise.data.every((v) => v === 0)).toBe(true);
          checkAgainstDifferences(evalObjective(c, profile), c.inputs, grads);
        }),
        { numRuns: 20 },
      );
    });
  }

  for (const profile of profiles) {
    it(`spec/conv2d.md#theta-zero-and-the-clip (${profile.name}): finite gradients at theta = 0, as the spec states`, () => {
      fc.assert(
        fc.property(
          layerCaseArb(profile, FD_DIMS),
          fc.infiniteStream(fc.boolean()),
          uniform(-12, 2),
          (c, zeroFlags, logSigma2) => {
            const flags = zeroFlags[Symbol.iterator]();
            const zero = c.inputs.theta.data.map(() => flags.next().value === true);
            fc.pre(zero.some((z) => z));
            const theta = c.inputs.theta.data.map((t, k) => (zero[k] ? 0 : t));
            // At theta = 0 the log_alpha forms see log(thetaEps) (or -inf): pick log_sigma2 so that,
            // also a step away from 0, log_alpha stays off the clip bounds and the threshold.
            const noiseAtZero = profile.noiseParameter === 'log_sigma' ? logSigma2 / 2 : logSigma2;
            const noise = c.inputs.noise.data.map((v, k) =>
              zero[k] && profile.conv2d.logAlpha.form !== 'learned' ? noiseAtZero : v,
            );
            const { thetaEps, form } = profile.conv2d.logAlpha;
            if (form !== 'learned') {
              for (const t of [0, FD_STEP]) {
                const raw =
                  form === 'log_theta2'
                    ? logSigma2 - Math.log(t * t + thetaEps)
                    : logSigma2 - 2 * Math.log(Math.abs(t) + thetaEps);
                fc.pre(edges(profile).every((e) => Math.abs(raw - e) > EDGE_MARGIN));
              }
            }
            const inputs = {
              ...c.inputs,
              theta: { shape: c.inputs.theta.shape, data: theta },
              noise: { shape: c.inputs.noise.shape, data: noise },
            };
            const zeroCase = { ...c, inputs, extraCotangents: null };
            const grads = conv2dTrainVjp(inputs, trainCotangent(zeroCase), profile, c.options);
            for (const name of PARAMETERS) {
              expect(grads[name].data.every(Number.isFinite)).toBe(true);
            }
            checkAgainstDifferences(trainObjective(zeroCase, profile), inputs, grads);

            // The spec's statement: at theta = 0 the variance path adds nothing to d/dtheta,
            // so d/dtheta = maskMean * correlation(x, cotangent); with variance alpha*theta^2
            // the noise gradient of that weight is 0.
            const g = conv2dBackpropFilter(
              c.inputs.x,
              c.cotangent,
              c.inputs.theta.shape,
              [c.dims.sh, c.dims.sw],
              c.dims.padding,
              c.dims.rule,
            );
            const trainClip = c.options.trainClip ?? profile.trainClipDefault;
            const meanMask = keepMaskBySpec(inputs, profile);
            zero.forEach((z, k) => {
              if (!z) return;
              const expected = trainClip ? g.data[k]! * meanMask[k]! : g.data[k]!;
              expect(Math.abs(grads.theta.data[k]! - expected)).toBeLessThan(1e-12);
              if (profile.conv2d.variance === 'alpha_theta2' && c.inputs.noise.shape.length === 4) {
                expect(grads.noise.data[k]).toBe(0);
              }
            });
          },
        ),
        { numRuns: 20 },
      );
    });
  }
});

/**
 * The keep mask by the spec's rule (log_alpha from the noise parameter, the
 * profile's clip and comparison), computed here rather than read from the
 * module under test.
 */
function keepMaskBySpec(inputs: Conv2dTrainInputs, profile: Profile): number[] {
  const prune = profile.prune;
  const { form, thetaEps } = profile.conv2d.logAlpha;
  if (prune === null) return inputs.theta.data.map(() => 1);
  return inputs.theta.data.map((t, k) => {
    const v = inputs.noise.data[k]!;
    const logSigma2 = profile.noiseParameter === 'log_sigma' ? 2 * v : v;
    const raw =
      form === 'learned'
        ? v
        : form === 'log_theta2'
          ? logSigma2 - Math.log(t * t + thetaEps)
          : logSigma2 - 2 * Math.log(Math.abs(t) + thetaEps);
    const compared = prune.from === 'clipped' ? clipped(profile, raw) : raw;
    const pruned =
      prune.comparison === '>' ? compared > prune.threshold : compared >= prune.threshold;
    return pruned ? 0 : 1;
  });
}

// ---------------------------------------------------------------------------
// Input checks

function expectArgumentError(run: () => unknown, argument: string) {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(isVdspecError(caught), `expected a VdspecError naming ${argument}`).toBe(true);
  expect((caught as { argument?: string }).argument).toBe(argument);
}

describe('spec/conv2d.md#errors', () => {
  const base: Conv2dTrainInputs = {
    x: { shape: [1, 3, 3, 2], data: Array.from({ length: 18 }, (_, k) => k / 10) },
    theta: { shape: [2, 2, 2, 1], data: [0.5, -0.5, 0.25, 0.3, -0.2, 0.4, 0.6, -0.1] },
    noise: { shape: [2, 2, 2, 1], data: new Array<number>(8).fill(-4) },
    bias: { shape: [1], data: [0.1] },
    eps: { shape: [1, 2, 2, 1], data: [0.1, -0.2, 0.3, 0.4] },
  };
  const cot = { output: { shape: [1, 2, 2, 1], data: [1, 1, 1, 1] } };
  const train = (inputs: Partial<Record<keyof Conv2dTrainInputs, unknown>>, options?: unknown) =>
    conv2dTrain({ ...base, ...inputs } as Conv2dTrainInputs, molchanov, options as Conv2dOptions);

  it('spec/conv2d.md#errors: every bad input names its argument', () => {
    expect(() => train({})).not.toThrow();
    expectArgumentError(() => train({ x: { shape: [3, 3, 2], data: new Array(18).fill(0) } }), 'x');
    expectArgumentError(
      () => train({ x: { shape: [1, 3, 3, 2], data: [NaN, ...new Array(17).fill(0)] } }),
      'x',
    );
    expectArgumentError(
      () => train({ x: { shape: [1, 1, 3, 2], data: new Array(6).fill(0) } }),
      'x',
    );
    expectArgumentError(
      () => train({ theta: { shape: [2, 2, 2], data: new Array(8).fill(0.5) } }),
      'theta',
    );
    expectArgumentError(
      () => train({ theta: { shape: [2, 2, 1, 2], data: new Array(8).fill(0.5) } }),
      'theta',
    );
    expectArgumentError(() => train({ theta: { shape: [0, 2, 2, 1], data: [] } }), 'theta');
    expectArgumentError(() => train({ bias: { shape: [2], data: [0, 0] } }), 'bias');
    expectArgumentError(() => train({ bias: { shape: [], data: [0] } }), 'bias');
    expectArgumentError(
      () => train({ eps: { shape: [1, 3, 3, 1], data: new Array(9).fill(0) } }),
      'eps',
    );
    expectArgumentError(
      () => train({ eps: { shape: [1, 2, 2, 1], data: [0, Infinity, 0, 0] } }),
      'eps',
    );
    expectArgumentError(
      () => train({ noise: { shape: [2, 2, 2], data: new Array(8).fill(-4) } }),
      'log_sigma2',
    );
    expectArgumentError(
      () =>
        conv2dTrain(
          { ...base, noise: { shape: [2], data: [-4, -4] } },
          PROFILES['deepbayes-pytorch'],
        ),
      'log_sigma',
    );
    expectArgumentError(
      () => conv2dEval({ ...base, noise: { shape: [3], data: [-1, -1, -1] } }, kingma),
      'log_alpha',
    );
    expectArgumentError(() => train({}, { stride: 0 }), 'options.stride');
    expectArgumentError(() => train({}, { stride: 1.5 }), 'options.stride');
    expectArgumentError(() => train({}, { stride: [1] }), 'options.stride');
    expectArgumentError(() => train({}, { stride: [1, -1] }), 'options.stride');
    expectArgumentError(() => train({}, { stride: '2' }), 'options.stride');
    expectArgumentError(() => train({}, { padding: 'SAME' }), 'options.padding');
    expectArgumentError(() => train({}, { padding: 1 }), 'options.padding');
    expectArgumentError(() => train({}, { trainClip: 'yes' }), 'options.trainClip');
    expectArgumentError(() => train({}, 'same'), 'options');
    expectArgumentError(
      () => conv2dTrain(null as unknown as Conv2dTrainInputs, molchanov),
      'inputs',
    );
    expectArgumentError(
      () =>
        conv2dTrainVjp(
          base,
          { output: { shape: [1, 2, 2, 2], data: new Array(8).fill(0) } },
          molchanov,
        ),
      'cotangent.output',
    );
    expectArgumentError(() => conv2dEvalVjp(base, {} as never, molchanov), 'cotangent');
    expectArgumentError(
      () => conv2d(base.x, { shape: [4, 4, 2, 1], data: new Array(32).fill(0) }),
      'x',
    );
    expectArgumentError(() => conv2d(base.x, base.theta, 1, 'full' as never), 'padding');
    expectArgumentError(
      () => conv2d(base.x, { shape: [2, 2, 3, 1], data: new Array(12).fill(0) }),
      'filter',
    );
    expectArgumentError(
      () => conv2dBackpropInput(cot.output, base.theta, [1, 3, 3], 1, 'valid'),
      'xShape',
    );
    expectArgumentError(
      () =>
        conv2dBackpropFilter(
          base.x,
          { shape: [1, 3, 3, 1], data: new Array(9).fill(0) },
          [2, 2, 2, 1],
        ),
      'cotangent',
    );
  });

  it('spec/conv2d.md#errors: a profile by name, unknown names, results beyond float64', () => {
    expect(conv2dTrain(base, 'molchanov2017')).toEqual(conv2dTrain(base, molchanov));
    expectArgumentError(() => conv2dTrain(base, 'molchanov' as never), 'profile');
    // theta^2 overflows: s2 = exp(-8) * inf. The culprit is theta.
    const hugeTheta = {
      ...base,
      theta: { shape: base.theta.shape, data: [1e300, ...base.theta.data.slice(1)] },
    };
    expectArgumentError(() => conv2dTrain(hugeTheta, molchanov), 'theta');
    // exp(800) overflows under the sigma2 convention. The culprit is log_sigma2.
    const hugeNoise = {
      ...base,
      noise: { shape: base.noise.shape, data: [800, ...base.noise.data.slice(1)] },
    };
    expectArgumentError(() => conv2dTrain(hugeNoise, 'state-of-sparsity-nn'), 'log_sigma2');
    // A mean beyond float64 is no single argument's fault: code non_finite, no argument.
    const hugeX = { ...base, x: { shape: base.x.shape, data: base.x.data.map(() => 1e300) } };
    const tenTheta = {
      ...hugeX,
      theta: { shape: base.theta.shape, data: base.theta.data.map(() => 1e10) },
    };
    let caught: unknown;
    try {
      conv2dEval(tenTheta, kingma);
    } catch (e) {
      caught = e;
    }
    expect(
      isVdspecError(caught) && caught.code === 'non_finite' && caught.argument === undefined,
    ).toBe(true);
  });

  it('spec/conv2d.md#vjp-train: a custom profile with sqrtEps = 0 has no gradient where the variance is 0', () => {
    const noSqrtEps: Profile = { ...molchanov, sqrtEps: 0 };
    const zeroX = { ...base, x: { shape: base.x.shape, data: base.x.data.map(() => 0) } };
    expectArgumentError(() => conv2dTrainVjp(zeroX, cot, noSqrtEps), 'profile');
    // Where eps is 0 too, the product rule needs no derivative of the square root.
    const zeroEps = { ...zeroX, eps: { shape: base.eps.shape, data: [0, 0, 0, 0] } };
    expect(conv2dTrainVjp(zeroEps, cot, noSqrtEps).theta.data.every(Number.isFinite)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// The checks' codes, arguments and whole messages, and the geometry's edges

describe('spec/conv2d.md#errors: checks and messages of the options', () => {
  const inputs: Conv2dTrainInputs = {
    x: { shape: [1, 3, 3, 1], data: [1, 2, 3, 4, 5, 6, 7, 8, 9] },
    theta: { shape: [2, 2, 1, 1], data: [0.5, -0.5, 0.25, 0.3] },
    noise: { shape: [2, 2, 1, 1], data: [-4, -4, -4, -4] },
    bias: { shape: [1], data: [0.1] },
    eps: { shape: [1, 2, 2, 1], data: [0.1, -0.2, 0.3, 0.4] },
  };
  const xShape = [1, 3, 3, 1];
  const filterShape = [2, 2, 1, 1];
  const train = (options: unknown) => () =>
    conv2dTrain(inputs, molchanov, untyped<Conv2dOptions>(options));
  const geometry = (options: unknown) => () =>
    conv2dGeometry(xShape, filterShape, untyped<Conv2dOptions>(options));

  it('a stride that is neither a positive integer nor a pair of them', () => {
    const notStride = 'expected a positive integer or [strideHeight, strideWidth], got';
    // Refused whole, before any entry is read: [1]'s second entry is undefined, [1, 2, 3] would
    // pass as [1, 2], and the string '2' has an entry '2'[0] without being a pair.
    for (const [stride, shown] of [
      [[1], '[1]'],
      [[1, 2, 3], '[1,2,3]'],
      ['2', '"2"'],
    ] as const) {
      expectRefusal(
        train({ stride }),
        'invalid_argument',
        'options.stride',
        `${notStride} ${shown}`,
      );
      expectRefusal(
        geometry({ stride }),
        'invalid_argument',
        'options.stride',
        `${notStride} ${shown}`,
      );
      expectRefusal(
        () => conv2d(inputs.x, inputs.theta, untyped(stride)),
        'invalid_argument',
        'stride',
        `${notStride} ${shown}`,
      );
    }
    // Each entry of a pair is a positive integer, checked on its own.
    expectRefusal(
      train({ stride: [0, 1] }),
      'invalid_argument',
      'options.stride',
      'must be >= 1, got 0',
    );
    expectRefusal(
      train({ stride: [1, 0] }),
      'invalid_argument',
      'options.stride',
      'must be >= 1, got 0',
    );
    expectRefusal(
      train({ stride: [1.5, 1] }),
      'invalid_argument',
      'options.stride',
      'expected an integer, got 1.5',
    );
    expectRefusal(
      train({ stride: [1, 1.5] }),
      'invalid_argument',
      'options.stride',
      'expected an integer, got 1.5',
    );
    expectRefusal(
      train({ stride: 0 }),
      'invalid_argument',
      'options.stride',
      'must be >= 1, got 0',
    );
  });

  it('a padding, a samePadding rule or a trainClip outside its values', () => {
    expectRefusal(
      train({ padding: 'SAME' }),
      'invalid_argument',
      'options.padding',
      `expected 'valid' or 'same', got "SAME"`,
    );
    expectRefusal(
      () => conv2d(inputs.x, inputs.theta, 1, untyped('full')),
      'invalid_argument',
      'padding',
      `expected 'valid' or 'same', got "full"`,
    );
    const notRule = `expected 'tensorflow' or 'lasagne', got "Lasagne"`;
    expectRefusal(
      geometry({ padding: 'same', samePadding: 'Lasagne' }),
      'invalid_argument',
      'options.samePadding',
      notRule,
    );
    // The layer splits 'same' by its profile's rule, but a bad options.samePadding is still refused.
    expectRefusal(
      train({ samePadding: 'Lasagne' }),
      'invalid_argument',
      'options.samePadding',
      notRule,
    );
    for (const run of [
      () => conv2d(inputs.x, inputs.theta, 1, 'same', untyped('Lasagne')),
      () => conv2dBackpropInput(inputs.eps, inputs.theta, xShape, 1, 'valid', untyped('Lasagne')),
      () => conv2dBackpropFilter(inputs.x, inputs.eps, filterShape, 1, 'valid', untyped('Lasagne')),
    ]) {
      expectRefusal(run, 'invalid_argument', 'samePadding', notRule);
    }
    expectRefusal(
      train({ trainClip: 'yes' }),
      'invalid_argument',
      'options.trainClip',
      'expected true or false, got "yes"',
    );
    expectRefusal(
      train({ trainClip: 1 }),
      'invalid_argument',
      'options.trainClip',
      'expected true or false, got 1',
    );
  });

  it('options that are not an object', () => {
    // null would otherwise be destructured (a TypeError), 7 and 'same' read as {} (the defaults).
    for (const options of [null, 7, 'same', [2]]) {
      const message = 'expected an object {stride?, padding?, samePadding?, trainClip?}';
      expectRefusal(train(options), 'invalid_argument', 'options', message);
      expectRefusal(geometry(options), 'invalid_argument', 'options', message);
      expectRefusal(
        () => conv2dEval(inputs, molchanov, untyped(options)),
        'invalid_argument',
        'options',
        message,
      );
    }
  });
});

describe('spec/conv2d.md#errors: checks and messages of the shapes and the geometry', () => {
  it('a kernel without rows or columns', () => {
    for (const filterShape of [
      [0, 2, 1, 1],
      [2, 0, 1, 1],
    ]) {
      const shown = `[${filterShape.join(', ')}]`;
      const message = `the kernel needs at least one row and one column, got shape ${shown}`;
      expectRefusal(
        () => conv2dGeometry([1, 3, 3, 1], filterShape),
        'shape_mismatch',
        'filterShape',
        message,
      );
      expectRefusal(
        () =>
          conv2d(
            { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(1) },
            { shape: filterShape, data: [] },
          ),
        'shape_mismatch',
        'filter',
        message,
      );
      expectRefusal(
        () =>
          conv2dEval(
            {
              x: { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(1) },
              theta: { shape: filterShape, data: [] },
              noise: { shape: filterShape, data: [] },
              bias: { shape: [1], data: [0] },
            },
            molchanov,
          ),
        'shape_mismatch',
        'theta',
        message,
      );
    }
  });

  it("the filter's input channels against x's", () => {
    expectRefusal(
      () => conv2dGeometry([1, 3, 3, 2], [2, 2, 3, 1]),
      'shape_mismatch',
      'filterShape',
      'HWIO filter has 3 input channels (dimension 2) but xShape [1, 3, 3, 2] has 2 (dimension 3)',
    );
    expectRefusal(
      () =>
        conv2dBackpropFilter(
          { shape: [1, 3, 3, 2], data: new Array<number>(18).fill(1) },
          { shape: [1, 2, 2, 1], data: [1, 1, 1, 1] },
          [2, 2, 3, 1],
        ),
      'shape_mismatch',
      'filterShape',
      'HWIO filter has 3 input channels (dimension 2) but x [1, 3, 3, 2] has 2 (dimension 3)',
    );
  });

  it("'valid' padding with an input smaller than the kernel, in either direction", () => {
    expectRefusal(
      () => conv2dGeometry([1, 3, 1, 1], [1, 2, 1, 1]),
      'shape_mismatch',
      'xShape',
      "'valid' padding needs the input at least as large as the kernel: input 3x1, kernel 1x2",
    );
    expectRefusal(
      () => conv2dGeometry([1, 1, 3, 1], [2, 1, 1, 1], { padding: 'valid' }),
      'shape_mismatch',
      'xShape',
      "'valid' padding needs the input at least as large as the kernel: input 1x3, kernel 2x1",
    );
    // 'same' pads instead: a 1x3 input and a 2x1 kernel give a 1x3 output.
    expect(conv2dGeometry([1, 1, 3, 1], [2, 1, 1, 1], { padding: 'same' })).toMatchObject({
      outHeight: 1,
      outWidth: 3,
      padTop: 0,
      padBottom: 1,
    });
  });

  it("Lasagne's 'same' refuses an even kernel, in either direction; 'valid' and TensorFlow's 'same' take it", () => {
    const lasagneSame = { padding: 'same', samePadding: 'lasagne' } as const;
    for (const [kh, kw] of [
      [2, 3],
      [3, 2],
      [2, 2],
    ] as const) {
      expectRefusal(
        () => conv2dGeometry([1, 4, 4, 1], [kh, kw, 1, 1], lasagneSame),
        'shape_mismatch',
        'filterShape',
        `Lasagne's 'same' padding (floor(k / 2) on each side) needs an odd kernel, got ${kh}x${kw}`,
      );
    }
    expect(
      conv2dGeometry([1, 4, 4, 1], [2, 3, 1, 1], { padding: 'valid', samePadding: 'lasagne' }),
    ).toMatchObject({
      outHeight: 3,
      outWidth: 2,
    });
    expect(
      conv2dGeometry([1, 4, 4, 1], [2, 3, 1, 1], { padding: 'same', samePadding: 'tensorflow' }),
    ).toMatchObject({
      outHeight: 4,
      outWidth: 4,
      padTop: 0,
      padBottom: 1,
      padLeft: 1,
      padRight: 1,
    });
    // bayesgroup-theano's layer: the profile's rule, the argument at fault is theta.
    const theta = { shape: [2, 2, 1, 1], data: [0.5, -0.5, 0.25, 0.3] };
    expectRefusal(
      () =>
        conv2dEval(
          {
            x: { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(1) },
            theta,
            noise: { shape: theta.shape, data: [-4, -4, -4, -4] },
            bias: { shape: [1], data: [0] },
          },
          bayesgroup,
          { padding: 'same' },
        ),
      'shape_mismatch',
      'theta',
      "Lasagne's 'same' padding (floor(k / 2) on each side) needs an odd kernel, got 2x2",
    );
  });

  it('shapes of four non-negative integers, 0 included', () => {
    const message = (shown: string) => `expected a shape of 4 non-negative integers, got ${shown}`;
    // One bad entry among good ones; a non-integer that is not negative; a negative integer.
    for (const [xShape, shown] of [
      [[1, 3, 3, -1], '[1,3,3,-1]'],
      [[1, 3, 3, 1.5], '[1,3,3,1.5]'],
      [[1, -3, 3, 1], '[1,-3,3,1]'],
      [[1, 3, 3], '[1,3,3]'],
    ] as const) {
      expectRefusal(
        () => conv2dGeometry(xShape, [1, 1, 1, 1]),
        'invalid_argument',
        'xShape',
        message(shown),
      );
      expectRefusal(
        () =>
          conv2dBackpropInput(
            { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(0) },
            { shape: [1, 1, 1, 1], data: [1] },
            xShape,
            1,
            'valid',
          ),
        'invalid_argument',
        'xShape',
        message(shown),
      );
    }
    expectRefusal(
      () => conv2dGeometry([1, 3, 3, 1], [2, 2, 1, -1]),
      'invalid_argument',
      'filterShape',
      message('[2,2,1,-1]'),
    );
    expectRefusal(
      () =>
        conv2dBackpropFilter(
          { shape: [1, 3, 3, 1], data: new Array<number>(9).fill(0) },
          { shape: [1, 2, 2, 1], data: [0, 0, 0, 0] },
          [2, 2, 0.5, 1],
        ),
      'invalid_argument',
      'filterShape',
      message('[2,2,0.5,1]'),
    );
    // An empty batch and an empty output channel count are shapes like any other.
    expect(conv2dGeometry([0, 3, 3, 1], [2, 2, 1, 0])).toMatchObject({
      batch: 0,
      outHeight: 2,
      outWidth: 2,
      outChannels: 0,
    });
    expect(
      conv2dBackpropInput(
        { shape: [0, 2, 2, 1], data: [] },
        { shape: [2, 2, 1, 1], data: [1, 1, 1, 1] },
        [0, 3, 3, 1],
        1,
        'valid',
      ),
    ).toEqual({ shape: [0, 3, 3, 1], data: [] });
  });
});

describe("spec/conv2d.md#padding: Lasagne's rule through the plain helpers", () => {
  // A 1x4 row [1, 2, 3, 4], a 1x3 kernel of ones, stride 2, 'same' (out = 2 either way).
  // TensorFlow: total = (2 - 1) * 2 + 3 - 4 = 1, all of it after: windows [1 2 3], [3 4 0].
  // Lasagne: floor(3 / 2) = 1 on each side: windows [0 1 2], [2 3 4].
  const row = { shape: [1, 1, 4, 1], data: [1, 2, 3, 4] };
  const ones = { shape: [1, 3, 1, 1], data: [1, 1, 1] };

  it('the same input, two alignments, by hand', () => {
    expect(conv2d(row, ones, 2, 'same', 'tensorflow')).toEqual({
      shape: [1, 1, 2, 1],
      data: [6, 7],
    });
    expect(conv2d(row, ones, 2, 'same', 'lasagne')).toEqual({ shape: [1, 1, 2, 1], data: [3, 9] });
    expect(
      conv2dGeometry(row.shape, ones.shape, { stride: 2, padding: 'same', samePadding: 'lasagne' }),
    ).toMatchObject({ outWidth: 2, padLeft: 1, padRight: 1, padTop: 0, padBottom: 0 });
    expect(conv2dGeometry(row.shape, ones.shape, { stride: 2, padding: 'same' })).toMatchObject({
      outWidth: 2,
      padLeft: 0,
      padRight: 1,
      padTop: 0,
      padBottom: 0,
    });
  });

  it("the backprops follow the rule: each input pixel's gradient counts the windows that read it", () => {
    const cotangent = { shape: [1, 1, 2, 1], data: [1, 1] };
    // Lasagne's windows read pixels {0, 1} and {1, 2, 3}; TensorFlow's {0, 1, 2} and {2, 3}.
    expect(conv2dBackpropInput(cotangent, ones, row.shape, 2, 'same', 'lasagne').data).toEqual([
      1, 2, 1, 1,
    ]);
    expect(conv2dBackpropInput(cotangent, ones, row.shape, 2, 'same', 'tensorflow').data).toEqual([
      1, 1, 2, 1,
    ]);
    // Tap q reads pixel 2j + q - padLeft: Lasagne [0 + 2, 1 + 3, 2 + 4], TensorFlow [1 + 3, 2 + 4, 3 + 0].
    expect(conv2dBackpropFilter(row, cotangent, ones.shape, 2, 'same', 'lasagne').data).toEqual([
      2, 4, 6,
    ]);
    expect(conv2dBackpropFilter(row, cotangent, ones.shape, 2, 'same', 'tensorflow').data).toEqual([
      4, 6, 3,
    ]);
  });
});
