/**
 * The edges of spec/conv2d.md's plain helpers and layer that a mutation run
 * on src/reference/conv2d.ts found untested (spec/mutation.md, its lines
 * 448-827): each check's code, argument and exact message; each result and
 * gradient beyond float64, refused naming which; a weight masked out of the
 * variance whose variance overflows (hard zeros, not inf * 0 = NaN); the
 * sqrtEps = 0 refusal; conv2dBackpropInput's and conv2dBackpropFilter's
 * default stride and padding. Every expected number is a convolution small
 * enough to do by hand, written out in the comments.
 */
import { describe, expect, it } from 'vitest';
import { PROFILES, type Profile } from '../../src/profiles.js';
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dEval,
  conv2dEvalUnmasked,
  conv2dEvalVjp,
  conv2dTrain,
  conv2dTrainVjp,
  type Conv2dTrainCotangent,
  type Conv2dTrainInputs,
} from '../../src/reference/conv2d.js';
import type { Tensor } from '../../src/tensor.js';
import { expectRefusal, untyped } from './refusals.js';

const zeros = (shape: number[]): Tensor => ({
  shape,
  data: new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0),
});

/** A 1x1 convolution of one pixel, one channel in and out: the layer at its smallest. */
function oneTap(x: number, theta: number, noise: number, eps = 0): Conv2dTrainInputs {
  return {
    x: { shape: [1, 1, 1, 1], data: [x] },
    theta: { shape: [1, 1, 1, 1], data: [theta] },
    noise: { shape: [1, 1, 1, 1], data: [noise] },
    bias: { shape: [1], data: [0] },
    eps: { shape: [1, 1, 1, 1], data: [eps] },
  };
}

const oneTapCotangent = (g: number): Conv2dTrainCotangent => ({
  output: { shape: [1, 1, 1, 1], data: [g] },
});

const TOO_LARGE = 'the inputs are too large for float64';

describe('spec/conv2d.md#errors: checks and messages of the plain helpers', () => {
  // x [1, 3, 3, 2] with a 2x2 kernel, 'valid': the output and its cotangent are [1, 2, 2, 1].
  const x = zeros([1, 3, 3, 2]);
  const filter = zeros([2, 2, 2, 1]);
  const cotangent = zeros([1, 2, 2, 1]);
  const rankThreeX = zeros([3, 3, 2]);
  const rankThreeFilter = zeros([2, 2, 2]);
  const threeChannelFilter = zeros([2, 2, 3, 1]);

  it('conv2d names x, filter, stride and samePadding', () => {
    expectRefusal(
      () => conv2d(rankThreeX, filter),
      'shape_mismatch',
      'x',
      'expected rank 4, got shape [3, 3, 2]',
    );
    expectRefusal(
      () => conv2d(x, rankThreeFilter),
      'shape_mismatch',
      'filter',
      'expected rank 4, got shape [2, 2, 2]',
    );
    expectRefusal(() => conv2d(x, filter, 0), 'invalid_argument', 'stride', 'must be >= 1, got 0');
    expectRefusal(
      () => conv2d(x, filter, 1, 'same', untyped('torch')),
      'invalid_argument',
      'samePadding',
      `expected 'tensorflow' or 'lasagne', got "torch"`,
    );
  });

  it('conv2dBackpropInput names filter, xShape, stride, padding, samePadding and cotangent', () => {
    expectRefusal(
      () => conv2dBackpropInput(cotangent, rankThreeFilter, [1, 3, 3, 2]),
      'shape_mismatch',
      'filter',
      'expected rank 4, got shape [2, 2, 2]',
    );
    expectRefusal(
      () => conv2dBackpropInput(cotangent, filter, [1, 3, 3, 2], 0),
      'invalid_argument',
      'stride',
      'must be >= 1, got 0',
    );
    expectRefusal(
      () => conv2dBackpropInput(cotangent, filter, [1, 3, 3, 2], 1, untyped('full')),
      'invalid_argument',
      'padding',
      `expected 'valid' or 'same', got "full"`,
    );
    expectRefusal(
      () => conv2dBackpropInput(cotangent, filter, [1, 3, 3, 2], 1, 'same', untyped('torch')),
      'invalid_argument',
      'samePadding',
      `expected 'tensorflow' or 'lasagne', got "torch"`,
    );
    // The geometry's own checks name the helper's arguments: the input is xShape, not x.
    expectRefusal(
      () => conv2dBackpropInput(cotangent, filter, [1, 1, 3, 2]),
      'shape_mismatch',
      'xShape',
      "'valid' padding needs the input at least as large as the kernel: input 1x3, kernel 2x2",
    );
    expectRefusal(
      () => conv2dBackpropInput(cotangent, threeChannelFilter, [1, 3, 3, 2]),
      'shape_mismatch',
      'filter',
      'HWIO filter has 3 input channels (dimension 2) but xShape [1, 3, 3, 2] has 2 (dimension 3)',
    );
    // A 3x3 cotangent is the output of a 1x1 kernel, not of this 2x2 one.
    expectRefusal(
      () => conv2dBackpropInput(zeros([1, 3, 3, 1]), filter, [1, 3, 3, 2]),
      'shape_mismatch',
      'cotangent',
      'expected shape [1, 2, 2, 1], got [1, 3, 3, 1]',
    );
  });

  it('conv2dBackpropFilter names x, filterShape, stride, padding and samePadding', () => {
    expectRefusal(
      () => conv2dBackpropFilter(rankThreeX, cotangent, [2, 2, 2, 1]),
      'shape_mismatch',
      'x',
      'expected rank 4, got shape [3, 3, 2]',
    );
    expectRefusal(
      () => conv2dBackpropFilter(x, cotangent, [2, 2, 2]),
      'invalid_argument',
      'filterShape',
      'expected a shape of 4 non-negative integers, got [2,2,2]',
    );
    expectRefusal(
      () => conv2dBackpropFilter(x, cotangent, [2, 2, 2, 1], 0),
      'invalid_argument',
      'stride',
      'must be >= 1, got 0',
    );
    expectRefusal(
      () => conv2dBackpropFilter(x, cotangent, [2, 2, 2, 1], 1, untyped('full')),
      'invalid_argument',
      'padding',
      `expected 'valid' or 'same', got "full"`,
    );
    expectRefusal(
      () => conv2dBackpropFilter(x, cotangent, [2, 2, 2, 1], 1, 'same', untyped('torch')),
      'invalid_argument',
      'samePadding',
      `expected 'tensorflow' or 'lasagne', got "torch"`,
    );
    expectRefusal(
      () => conv2dBackpropFilter(zeros([1, 1, 3, 2]), cotangent, [2, 2, 2, 1]),
      'shape_mismatch',
      'x',
      "'valid' padding needs the input at least as large as the kernel: input 1x3, kernel 2x2",
    );
    expectRefusal(
      () => conv2dBackpropFilter(x, cotangent, [2, 2, 3, 1]),
      'shape_mismatch',
      'filterShape',
      'HWIO filter has 3 input channels (dimension 2) but x [1, 3, 3, 2] has 2 (dimension 3)',
    );
  });
});

describe('spec/conv2d.md#vjps: conv2dBackpropInput and conv2dBackpropFilter with their defaults', () => {
  // One row: x = [1, 2, 3], filter = [1, 2] (a 1x2 kernel), stride 1, 'valid': conv = [5, 8].
  // With the cotangent g = [10, 100]:
  //   convT_x: dx[s] = sum over j + q = s of g[j] f[q] = [10, 2*10 + 100, 2*100] = [10, 120, 200]
  //   convT_f: df[q] = sum_j x[j + q] g[j] = [1*10 + 2*100, 2*10 + 3*100] = [210, 320]
  const x: Tensor = { shape: [1, 1, 3, 1], data: [1, 2, 3] };
  const filter: Tensor = { shape: [1, 2, 1, 1], data: [1, 2] };
  const g: Tensor = { shape: [1, 1, 2, 1], data: [10, 100] };

  it('stride 1 and valid padding when left out', () => {
    expect(conv2d(x, filter)).toEqual({ shape: [1, 1, 2, 1], data: [5, 8] });
    expect(conv2dBackpropInput(g, filter, [1, 1, 3, 1])).toEqual({
      shape: [1, 1, 3, 1],
      data: [10, 120, 200],
    });
    expect(conv2dBackpropFilter(x, g, [1, 2, 1, 1])).toEqual({
      shape: [1, 2, 1, 1],
      data: [210, 320],
    });
  });
});

describe('spec/conv2d.md#errors: checks and messages of the layer', () => {
  const molchanov = PROFILES.molchanov2017;
  const inputs = oneTap(0.5, 0.3, -4, 0.1);
  const cotangent = oneTapCotangent(1);

  it('the inputs object: a number, null or a string', () => {
    // 7 and 'x' are refused by the typeof test alone: 7.x is undefined and would be refused as x.
    for (const notObject of [7, null, 'x']) {
      const message = 'expected an object {x, theta, noise, bias, ...}';
      for (const run of [
        () => conv2dTrain(untyped(notObject), molchanov),
        () => conv2dEval(untyped(notObject), molchanov),
        () => conv2dEvalUnmasked(untyped(notObject), molchanov),
        () => conv2dTrainVjp(untyped(notObject), cotangent, molchanov),
        () => conv2dEvalVjp(untyped(notObject), cotangent.output, molchanov),
      ]) {
        expectRefusal(run, 'invalid_argument', 'inputs', message);
      }
    }
  });

  it("the training VJP's cotangent: not an object, or an optional part of the wrong shape", () => {
    // 7 would otherwise be refused as a missing cotangent.output; null would be dereferenced.
    for (const notObject of [7, null]) {
      expectRefusal(
        () => conv2dTrainVjp(inputs, untyped(notObject), molchanov),
        'invalid_argument',
        'cotangent',
        'expected an object {output, mean?, variance?}',
      );
    }
    const wide = zeros([1, 1, 1, 2]);
    expectRefusal(
      () => conv2dTrainVjp(inputs, { ...cotangent, mean: wide }, molchanov),
      'shape_mismatch',
      'cotangent.mean',
      'expected shape [1, 1, 1, 1], got [1, 1, 1, 2]',
    );
    expectRefusal(
      () => conv2dTrainVjp(inputs, { ...cotangent, variance: wide }, molchanov),
      'shape_mismatch',
      'cotangent.variance',
      'expected shape [1, 1, 1, 1], got [1, 1, 1, 2]',
    );
  });

  it('a negative profile.sqrtEps, even where the forward never reads it', () => {
    const negative: Profile = { ...PROFILES.kingma2015, sqrtEps: -1e-8 };
    const vdInputs = oneTap(0.5, 0.3, -1);
    for (const run of [
      () => conv2dEval(vdInputs, negative),
      () => conv2dEvalUnmasked(vdInputs, negative),
      () => conv2dEvalVjp(vdInputs, cotangent.output, negative),
      () => conv2dTrain(vdInputs, negative),
      () => conv2dTrainVjp(vdInputs, cotangent, negative),
    ]) {
      expectRefusal(run, 'invalid_argument', 'profile.sqrtEps', 'must be >= 0, got -1e-8');
    }
  });

  it('spec/conv2d.md#edge-cases: a per-weight variance beyond float64 names the weight in HWIO order', () => {
    // state-of-sparsity-nn: s2 = exp(log_sigma2). Weight 1 (tap q = 1 of a 1x2 kernel) has
    // exp(800) = inf; theta^2 = 2.25 does not overflow, so log_sigma2 is at fault.
    const overflowing: Conv2dTrainInputs = {
      x: { shape: [1, 1, 3, 1], data: [2, 3, 4] },
      theta: { shape: [1, 2, 1, 1], data: [0.5, 1.5] },
      noise: { shape: [1, 2, 1, 1], data: [-2, 800] },
      bias: { shape: [1], data: [0.25] },
      eps: { shape: [1, 1, 2, 1], data: [0.5, -0.25] },
    };
    expectRefusal(
      () => conv2dTrain(overflowing, PROFILES['state-of-sparsity-nn']),
      'non_finite',
      'log_sigma2',
      'the variance of weight 1 (HWIO order) overflows float64 (Infinity)',
    );
    // molchanov2017: theta^2 = 1e600 overflows, s2 = exp(clipped log_alpha) theta^2 with it.
    expectRefusal(
      () => conv2dTrain(oneTap(1, 1e300, 0), molchanov),
      'non_finite',
      'theta',
      'the variance of weight 0 (HWIO order) overflows float64 (Infinity)',
    );
  });

  it('spec/conv2d.md#vjp-train: sqrtEps = 0 and a zero variance where g eps is not 0', () => {
    // x = 0: variance 0, and with sqrtEps = 0 the std is 0; g eps = 1.
    const profile: Profile = { ...PROFILES.kingma2015, sqrtEps: 0 };
    expectRefusal(
      () => conv2dTrainVjp(oneTap(0, 0.5, -1, 1), cotangent, profile),
      'non_finite',
      'profile',
      'the variance is 0 and profile.sqrtEps is 0: d sqrt(v)/dv is infinite there (every built-in profile has sqrtEps > 0)',
    );
  });
});

describe('spec/conv2d.md#edge-cases: a result beyond float64 is non_finite and says which', () => {
  // kingma2015: s2 = exp(min(log_alpha, 0)) theta^2, no mask.
  const vd = PROFILES.kingma2015;

  it('the training forward: the mean, then the variance, then the output', () => {
    // x theta = 1e310; s2 = e^-1 * 1e20 is finite.
    expectRefusal(
      () => conv2dTrain(oneTap(1e300, 1e10, -1), vd),
      'non_finite',
      undefined,
      `the mean is Infinity: ${TOO_LARGE}`,
    );
    // mean = 1e200 is finite; x^2 = 1e400 is not.
    expectRefusal(
      () => conv2dTrain(oneTap(1e200, 1, -1), vd),
      'non_finite',
      undefined,
      `the variance is Infinity: ${TOO_LARGE}`,
    );
    // alpha = 1: mean 1e150 and variance 1e300 are finite; sqrt(1e300) * 1e300 is not.
    expectRefusal(
      () => conv2dTrain(oneTap(1e150, 1, 0, 1e300), vd),
      'non_finite',
      undefined,
      `the output is Infinity: ${TOO_LARGE}`,
    );
  });

  it('the eval forwards', () => {
    const message = `the output is Infinity: ${TOO_LARGE}`;
    expectRefusal(() => conv2dEval(oneTap(1e300, 1e10, -1), vd), 'non_finite', undefined, message);
    // molchanov2017: log_alpha = 0 - log(1e20), kept; the unmasked forward ignores the mask anyway.
    expectRefusal(
      () => conv2dEvalUnmasked(oneTap(1e300, 1e10, 0), PROFILES.molchanov2017),
      'non_finite',
      undefined,
      message,
    );
  });

  it('the gradients, each alone beyond float64', () => {
    // With eps = 0 the variance path carries no gradient, so only the mean path's products can
    // overflow: dx = g theta = 1e310, while dtheta = x g = 1e300 and dbias = 1e300 are finite.
    for (const run of [
      () => conv2dTrainVjp(oneTap(1, 1e10, -1), oneTapCotangent(1e300), vd),
      () => conv2dEvalVjp(oneTap(1, 1e10, -1), oneTapCotangent(1e300).output, vd),
    ]) {
      expectRefusal(
        run,
        'non_finite',
        undefined,
        `the gradient w.r.t. x is Infinity: ${TOO_LARGE}`,
      );
    }
    // dx = g theta = 1e300 is finite; dtheta = x g = 1e310 is not.
    for (const run of [
      () => conv2dTrainVjp(oneTap(1e10, 1, -1), oneTapCotangent(1e300), vd),
      () => conv2dEvalVjp(oneTap(1e10, 1, -1), oneTapCotangent(1e300).output, vd),
    ]) {
      expectRefusal(
        run,
        'non_finite',
        undefined,
        `the gradient w.r.t. theta is Infinity: ${TOO_LARGE}`,
      );
    }
    // state-of-sparsity-nn, sigma2 = exp(0) = 1: mean 1e150, variance x^2 = 1e300, std 1e150,
    // output 1e150 + 1e150 * 1e150 finite. g = 1e10: g_var = g eps / (2 std) = 5e9, so
    // dx = g theta + 2 x g_var sigma2 = 1e10 + 1e160 and dtheta = x g = 1e160 are finite,
    // d log_sigma2 = x^2 g_var sigma2 = 5e309 is not.
    expectRefusal(
      () =>
        conv2dTrainVjp(
          oneTap(1e150, 1, 0, 1e150),
          oneTapCotangent(1e10),
          PROFILES['state-of-sparsity-nn'],
        ),
      'non_finite',
      undefined,
      `the gradient w.r.t. log_sigma2 is Infinity: ${TOO_LARGE}`,
    );
    // Two pixels of one channel, g = 1e308 each: dx = g theta = 1e307 per pixel,
    // dtheta = 2 * 0.25 * 1e308 = 5e307; d bias = 2e308 is beyond float64.
    const twoPixels: Conv2dTrainInputs = {
      ...oneTap(0.25, 0.1, -1),
      x: { shape: [1, 1, 2, 1], data: [0.25, 0.25] },
      eps: { shape: [1, 1, 2, 1], data: [0, 0] },
    };
    const g: Tensor = { shape: [1, 1, 2, 1], data: [1e308, 1e308] };
    for (const run of [
      () => conv2dTrainVjp(twoPixels, { output: g }, vd),
      () => conv2dEvalVjp(twoPixels, g, vd),
    ]) {
      expectRefusal(
        run,
        'non_finite',
        undefined,
        `the gradient w.r.t. bias is Infinity: ${TOO_LARGE}`,
      );
    }
  });
});

describe('spec/conv2d.md#masks: a weight masked out of the variance contributes 0, even where its variance overflows', () => {
  // state-of-sparsity-nn (s2 = exp(log_sigma2), no clip) with the mask on the variance too,
  // trainClip on. Weight 0: log_alpha = -2 - log(0.25 + 1e-8) ~ -0.61, kept, s2 = e^-2.
  // Weight 1: log_alpha ~ 800 - log 2.25, pruned, s2 = exp(800) = inf.
  const profile: Profile = {
    ...PROFILES['state-of-sparsity-nn'],
    conv2d: { ...PROFILES['state-of-sparsity-nn'].conv2d, trainMask: 'mean_and_variance' },
  };
  const inputs: Conv2dTrainInputs = {
    x: { shape: [1, 1, 3, 1], data: [2, 3, 4] },
    theta: { shape: [1, 2, 1, 1], data: [0.5, 1.5] },
    noise: { shape: [1, 2, 1, 1], data: [-2, 800] },
    bias: { shape: [1], data: [0.25] },
    eps: { shape: [1, 1, 2, 1], data: [0.5, -0.25] },
  };
  const options = { trainClip: true };
  // Only tap 0 is left: mean[j] = x[j] * 0.5 + 0.25, variance[j] = x[j]^2 s2.
  const s2 = Math.exp(-2);
  const variance = [4 * s2, 9 * s2];
  const std = variance.map((v) => Math.sqrt(v + 1e-8)); // the profile's sqrtEps

  it('the training forward and the eval forward', () => {
    const r = conv2dTrain(inputs, profile, options);
    expect(r.mean.data).toEqual([1.25, 1.75]);
    expect(r.variance.data[0]).toBeCloseTo(variance[0]!, 15);
    expect(r.variance.data[1]).toBeCloseTo(variance[1]!, 15);
    expect(r.output.data[0]).toBeCloseTo(1.25 + std[0]! * 0.5, 15);
    expect(r.output.data[1]).toBeCloseTo(1.75 - std[1]! * 0.25, 15);
    expect(conv2dEval(inputs, profile).data).toEqual([1.25, 1.75]);
  });

  it('spec/conv2d.md#vjp-train: the pruned weight gets exact zeros, not inf * 0', () => {
    // g = [1, 1]: g_mean = g, g_var[j] = eps[j] / (2 std[j]). With theta_m = [0.5, 0] and
    // s2_m = [s2, 0]:
    //   dx = convT_x(g, theta_m) + 2 x convT_x(g_var, s2_m)
    //      = [0.5 + 4 g_var[0] s2, 0.5 + 6 g_var[1] s2, 0]
    //   dtheta = m * convT_f(x, g) = [2 + 3, 0]   (sigma2 does not depend on theta)
    //   d log_sigma2 = m * convT_f(x^2, g_var) * s2 = [(4 g_var[0] + 9 g_var[1]) s2, 0]
    const gVar = [0.5 / (2 * std[0]!), -0.25 / (2 * std[1]!)];
    const grads = conv2dTrainVjp(
      inputs,
      { output: { shape: [1, 1, 2, 1], data: [1, 1] } },
      profile,
      options,
    );
    expect(grads.x.data[0]).toBeCloseTo(0.5 + 4 * gVar[0]! * s2, 14);
    expect(grads.x.data[1]).toBeCloseTo(0.5 + 6 * gVar[1]! * s2, 14);
    expect(grads.x.data[2]).toBe(0);
    expect(grads.theta.data).toEqual([5, 0]);
    expect(grads.noise.data[0]).toBeCloseTo((4 * gVar[0]! + 9 * gVar[1]!) * s2, 14);
    expect(grads.noise.data[1]).toBe(0);
    expect(grads.bias.data).toEqual([2]);
  });
});
