/**
 * Small golden files for the checker's tests (test/properties/check.test.ts),
 * written in the format of spec/golden.md by calling the reference's `run`:
 * a handful of hand-picked cases per op (theta = 0, log_alpha exactly at the
 * threshold, beyond the clip, a negative bias, strided and padded
 * convolutions) plus a few seeded random ones. They are fixtures, not the
 * shipped golden set: their tolerance is deliberately simple (see FIXTURE_TOLERANCE).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  encodeNumber,
  encodeTensor,
  stringifyGolden,
  type Json,
} from '../../src/golden/encoding.js';
import { getOp, resolveNames } from '../../src/ops.js';
import { PROFILES, type ProfileName } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { mulberry32 as prng } from './dense-cases.js';

/**
 * float64: a NumPy port differs from the reference by summation order and
 * libm rounding, a few ulps of the largest term (values here are below 1e3,
 * sums have at most 18 terms: 18 * 1e3 * 2^-52 = 4e-12 at worst, typically
 * far less), so abs 1e-11 with rel 1e-9 separates rounding from every
 * planted bug (the smallest bug effect in these cases is above 1e-6).
 * float32 is not exercised by these fixtures beyond the choice of tolerance.
 */
export const FIXTURE_TOLERANCE = {
  float64: { abs: 1e-11, rel: 1e-9, scaled: 0 },
  float32: { abs: 1e-5, rel: 1e-4, scaled: 0 },
};

interface FixtureCase {
  comment: string;
  flags: string[];
  inputs: Record<string, unknown>;
}

const t = (shape: number[], data: number[]): Tensor => ({ shape, data });

function uniform(rand: () => number, shape: number[], lo: number, hi: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return t(
    shape,
    Array.from({ length: n }, () => lo + (hi - lo) * rand()),
  );
}

const asKernel = (w: Tensor): Tensor => t([1, 1, ...w.shape], [...w.data]);

/** Weights of a [2, 3] dense layer with one weight of each kind (spec/dense.md#worked-example). */
const DENSE_THETA = t([2, 3], [0.5, 0.2, 0, -1, 2, 1]);
const DENSE_LOG_SIGMA2 = t([2, 3], [-3, 1, -10, 3, 1, 9]);

function svdCases(op: string, rand: () => number): FixtureCase[] {
  const cases: FixtureCase[] = [];
  const layerWeights = (layer: 'dense' | 'conv2d'): FixtureCase[] => [
    {
      comment: 'worked example: kept, pruned, theta = 0, exactly 3, kept, beyond the clip',
      flags: ['theta_zero', 'threshold_exact', 'beyond_clip'],
      inputs: { theta: DENSE_THETA, log_sigma2: DENSE_LOG_SIGMA2, layer },
    },
    {
      comment: 'log_alpha exactly at the threshold everywhere (theta = 1, log_sigma2 = 3)',
      flags: ['threshold_exact'],
      inputs: { theta: t([2, 2], [1, 1, -1, 1]), log_sigma2: t([2, 2], [3, 3, 3, 3]), layer },
    },
    {
      comment: 'random weights inside the clip',
      flags: ['random'],
      inputs: {
        theta: uniform(rand, [3, 4], -1, 1),
        log_sigma2: uniform(rand, [3, 4], -6, 1),
        layer,
      },
    },
  ];
  const x = t([2, 2], [1, -2, 0.5, 1.5]);
  const bias = t([3], [0.1, -0.2, 0.3]);
  const eps = t([2, 3], [0.5, -1, 2, 1.5, 0.3, -0.7]);
  const dense = (
    trainClip: boolean | undefined,
    negativeBias = false,
  ): Record<string, unknown> => ({
    x,
    theta: DENSE_THETA,
    log_sigma2: DENSE_LOG_SIGMA2,
    bias: negativeBias ? t([3], [-0.5, -1, -2]) : bias,
    ...(trainClip === undefined ? {} : { train_clip: trainClip }),
  });
  const rx = uniform(rand, [3, 4], -2, 2);
  const rtheta = uniform(rand, [4, 2], -1, 1);
  const rls2 = uniform(rand, [4, 2], -5, 0);
  const rbias = uniform(rand, [2], -1, 1);
  const randomDense = { x: rx, theta: rtheta, log_sigma2: rls2, bias: rbias };
  const convBase = (stride: number | [number, number], padding: 'valid' | 'same') => {
    const cx = uniform(rand, [1, 4, 5, 2], -1, 1);
    const ctheta = uniform(rand, [3, 2, 2, 2], -1, 1);
    const cls2 = uniform(rand, [3, 2, 2, 2], -5, 0);
    // One tap at exactly the threshold, one at theta = 0.
    (ctheta.data as number[])[0] = 1;
    (cls2.data as number[])[0] = 3;
    (ctheta.data as number[])[5] = 0;
    return {
      x: cx,
      theta: ctheta,
      log_sigma2: cls2,
      bias: t([2], [0.25, -0.75]),
      stride,
      padding,
    };
  };
  const conv = [convBase(1, 'same'), convBase([2, 1], 'valid')];
  const outputShape = (i: Record<string, unknown>): number[] => {
    const evalInputs = Object.fromEntries(
      Object.entries(i).filter(([k]) => !['train_clip', 'eps', 'cotangent'].includes(k)),
    );
    const evalOp = op.replace(/_vjp$/, '').replace('.train', '.eval');
    return run(evalOp, evalInputs, 'molchanov2017')['output']!.shape as number[];
  };
  const withEps = (i: Record<string, unknown>) => ({
    ...i,
    eps: uniform(rand, outputShape(i), -2, 2),
  });
  const withCotangent = (i: Record<string, unknown>) => ({
    ...i,
    cotangent: uniform(rand, outputShape(i), -1, 1),
  });
  switch (op) {
    case 'svd.log_alpha':
    case 'svd.mask':
    case 'kl.layer':
      // conv2d weights are HWIO: the same values as a 1x1 kernel.
      return [
        ...layerWeights('dense'),
        ...layerWeights('conv2d').map((c) => ({
          ...c,
          inputs: {
            ...c.inputs,
            theta: asKernel(c.inputs['theta'] as Tensor),
            log_sigma2: asKernel(c.inputs['log_sigma2'] as Tensor),
          },
        })),
      ];
    case 'svd.dense.train':
      return [
        {
          comment: 'worked example, train_clip off',
          flags: ['threshold_exact'],
          inputs: { ...dense(false), eps },
        },
        {
          comment: 'worked example, train_clip on',
          flags: ['threshold_exact', 'train_clip'],
          inputs: { ...dense(true), eps },
        },
        {
          comment: 'negative bias: a bias in the variance makes sqrt NaN',
          flags: ['negative_bias'],
          inputs: { ...dense(undefined, true), eps },
        },
        { comment: 'random', flags: ['random'], inputs: withEps(randomDense) },
      ];
    case 'svd.dense.eval':
      return [
        {
          comment: 'worked example',
          flags: ['threshold_exact', 'theta_zero'],
          inputs: dense(undefined),
        },
        { comment: 'random', flags: ['random'], inputs: randomDense },
      ];
    case 'svd.dense.train_vjp':
      return [
        {
          comment: 'worked example, train_clip off',
          flags: ['threshold_exact'],
          inputs: { ...dense(false), eps, cotangent: t([2, 3], [1, 1, 1, -1, 0.5, 2]) },
        },
        {
          comment: 'worked example, train_clip on',
          flags: ['train_clip'],
          inputs: { ...dense(true), eps, cotangent: t([2, 3], [1, 1, 1, -1, 0.5, 2]) },
        },
        { comment: 'random', flags: ['random'], inputs: withCotangent(withEps(randomDense)) },
      ];
    case 'svd.dense.eval_vjp':
      return [
        {
          comment: 'worked example',
          flags: ['threshold_exact'],
          inputs: { ...dense(undefined), cotangent: t([2, 3], [1, 1, 1, -1, 0.5, 2]) },
        },
        { comment: 'random', flags: ['random'], inputs: withCotangent(randomDense) },
      ];
    case 'svd.conv2d.train':
      return conv.flatMap((c, i) => [
        {
          comment: `conv ${i}, train_clip off`,
          flags: ['threshold_exact', 'theta_zero'],
          inputs: withEps({ ...c, train_clip: false }),
        },
        {
          comment: `conv ${i}, train_clip on`,
          flags: ['threshold_exact', 'train_clip'],
          inputs: withEps({ ...c, train_clip: true }),
        },
      ]);
    case 'svd.conv2d.eval':
      return conv.map((c, i) => ({ comment: `conv ${i}`, flags: ['threshold_exact'], inputs: c }));
    case 'svd.conv2d.train_vjp':
      return conv.map((c, i) => ({
        comment: `conv ${i}`,
        flags: ['threshold_exact'],
        inputs: withCotangent(withEps({ ...c, train_clip: i === 1 })),
      }));
    case 'svd.conv2d.eval_vjp':
      return conv.map((c, i) => ({ comment: `conv ${i}`, flags: [], inputs: withCotangent(c) }));
  }
  return cases;
}

function vdCases(op: string, rand: () => number): FixtureCase[] {
  const theta = t([3, 2], [0.5, -1, 0, 2, 0.25, -0.75]);
  const perUnit = t([3, 1], [-1, 0.5, -3]);
  const scalarLa = t([], [-2]);
  const perWeight = uniform(rand, [3, 2], -4, 0.5);
  const x = uniform(rand, [2, 3], -2, 2);
  const bias = t([2], [-0.5, 0.4]);
  const shapes = [perUnit, scalarLa, perWeight];
  const cx = uniform(rand, [2, 3, 3, 2], -1, 1);
  const ctheta = uniform(rand, [2, 2, 2, 3], -1, 1);
  const conv = [
    {
      x: cx,
      theta: ctheta,
      log_alpha: t([2, 1], [-1, 0.7]),
      bias: t([3], [0.1, -0.3, 0.2]),
      stride: 1,
      padding: 'same',
    },
    {
      x: cx,
      theta: ctheta,
      log_alpha: uniform(rand, [2, 2, 2, 3], -3, 0),
      bias: t([3], [-1, 0, 1]),
      stride: [1, 2],
      padding: 'valid',
    },
  ];
  const outShape = (i: Record<string, unknown>, kind: 'dense' | 'conv2d') =>
    run(`vd.${kind}.eval`, i, 'kingma2015')['output']!.shape as number[];
  switch (op) {
    case 'vd.log_alpha':
    case 'kl.layer':
      return shapes.map((la, i) => ({
        comment: `log_alpha shape [${la.shape.join(', ')}]`,
        flags: i === 0 ? ['above_clip'] : [],
        inputs: { theta, log_alpha: la },
      }));
    case 'vd.dense.train':
      return shapes.map((la) => {
        const i = { x, theta, log_alpha: la, bias };
        return {
          comment: `log_alpha shape [${la.shape.join(', ')}]`,
          flags: ['negative_bias'],
          inputs: { ...i, eps: uniform(rand, outShape(i, 'dense'), -2, 2) },
        };
      });
    case 'vd.dense.eval':
      return shapes.map((la) => ({
        comment: `log_alpha shape [${la.shape.join(', ')}]`,
        flags: [],
        inputs: { x, theta, log_alpha: la, bias },
      }));
    case 'vd.dense.train_vjp':
      return shapes.map((la) => {
        const i = { x, theta, log_alpha: la, bias };
        const s = outShape(i, 'dense');
        return {
          comment: `log_alpha shape [${la.shape.join(', ')}]`,
          flags: [],
          inputs: { ...i, eps: uniform(rand, s, -2, 2), cotangent: uniform(rand, s, -1, 1) },
        };
      });
    case 'vd.dense.eval_vjp':
      return shapes.map((la) => {
        const i = { x, theta, log_alpha: la, bias };
        return {
          comment: `log_alpha shape [${la.shape.join(', ')}]`,
          flags: [],
          inputs: { ...i, cotangent: uniform(rand, outShape(i, 'dense'), -1, 1) },
        };
      });
    case 'vd.conv2d.train':
      return conv.map((i, k) => ({
        comment: `conv ${k}`,
        flags: ['negative_bias'],
        inputs: { ...i, eps: uniform(rand, outShape(i, 'conv2d'), -2, 2) },
      }));
    case 'vd.conv2d.eval':
      return conv.map((i, k) => ({ comment: `conv ${k}`, flags: [], inputs: i }));
    case 'vd.conv2d.train_vjp':
      return conv.map((i, k) => {
        const s = outShape(i, 'conv2d');
        return {
          comment: `conv ${k}`,
          flags: [],
          inputs: { ...i, eps: uniform(rand, s, -2, 2), cotangent: uniform(rand, s, -1, 1) },
        };
      });
    case 'vd.conv2d.eval_vjp':
      return conv.map((i, k) => ({
        comment: `conv ${k}`,
        flags: [],
        inputs: { ...i, cotangent: uniform(rand, outShape(i, 'conv2d'), -1, 1) },
      }));
  }
  return [];
}

function sharedCases(op: string, profile: ProfileName): FixtureCase[] {
  const vd = PROFILES[profile].algorithm === 'vd';
  switch (op) {
    case 'kl.approx':
      return [
        {
          comment: vd
            ? 'the cubic on [-8, 0]'
            : 'the sigmoid approximation on [-8, 8], the threshold, the clip bounds',
          flags: ['grid'],
          inputs: {
            log_alpha: vd
              ? t([5], [-8, -3.5, -1, -0.25, 0])
              : t([2, 4], [-8, -3.5, -1, 0, 1.5, 3, 5, 8]),
          },
        },
        {
          comment: 'the limit at -inf',
          flags: ['infinite'],
          inputs: { log_alpha: t([1], [-Infinity]) },
        },
      ];
    case 'kl.exact':
      return [
        {
          comment: 'series and expansion branches',
          flags: ['grid'],
          inputs: { log_alpha: t([7], [-10, -8, -3, 0, 3, 8, 40]) },
        },
      ];
    case 'objective.cross_entropy':
      return [
        {
          comment: 'three examples',
          flags: [],
          inputs: { logits: t([3, 3], [1, 2, 3, 0, -1, 4, 1e4, 0, -1e4]), labels: [0, 1, 2] },
        },
      ];
    case 'objective.sgvb':
      return [
        {
          comment: 'N = 60000, beta = 0.5',
          flags: [],
          inputs: {
            logits: t([2, 3], [1, 2, 3, 0.5, -1, 2]),
            labels: [2, 0],
            train_size: 60000,
            kl_weight: 0.5,
            kl: 123.25,
          },
        },
        {
          comment: 'negative kl (constant omitted)',
          flags: [],
          inputs: {
            logits: t([1, 2], [0, 1]),
            labels: [1],
            train_size: 100,
            kl_weight: 1,
            kl: -12.5,
          },
        },
      ];
    case 'schedule.kl_weight':
      return [0, 4.99, 5, 12.5, 20, 100].map((epoch) => ({
        comment: `epoch ${epoch}`,
        flags: [],
        inputs: { epoch },
      }));
  }
  return [];
}

export const FIXTURE_OPS: Record<'svd' | 'vd', string[]> = {
  svd: [
    'kl.approx',
    'kl.exact',
    'svd.log_alpha',
    'svd.mask',
    'svd.dense.train',
    'svd.dense.eval',
    'svd.dense.train_vjp',
    'svd.dense.eval_vjp',
    'svd.conv2d.train',
    'svd.conv2d.eval',
    'svd.conv2d.train_vjp',
    'svd.conv2d.eval_vjp',
    'kl.layer',
    'objective.cross_entropy',
    'objective.sgvb',
    'schedule.kl_weight',
  ],
  vd: [
    'kl.approx',
    'vd.log_alpha',
    'vd.dense.train',
    'vd.dense.eval',
    'vd.dense.train_vjp',
    'vd.dense.eval_vjp',
    'vd.conv2d.train',
    'vd.conv2d.eval',
    'vd.conv2d.train_vjp',
    'vd.conv2d.eval_vjp',
    'kl.layer',
    'objective.sgvb',
  ],
};

function encodeInputs(op: string, profile: ProfileName, inputs: Record<string, unknown>): Json {
  const kinds = new Map(
    resolveNames(getOp(op), PROFILES[profile]).inputs.map((i) => [i.name, i.kind]),
  );
  const out: Record<string, Json> = {};
  for (const [name, value] of Object.entries(inputs)) {
    if (value === undefined) continue;
    const kind = kinds.get(name);
    if (kind === 'tensor') out[name] = encodeTensor(value as Tensor) as unknown as Json;
    else if (kind === 'number') out[name] = encodeNumber(value as number);
    else out[name] = value as Json;
  }
  return out;
}

/** The cases of one op under one profile, as the golden file would hold them. */
export function fixtureCases(op: string, profile: ProfileName): FixtureCase[] {
  const rand = prng(op.length * 7919 + profile.length);
  const alg = PROFILES[profile].algorithm;
  const own = alg === 'svd' ? svdCases(op, rand) : vdCases(op, rand);
  return own.length > 0 ? own : sharedCases(op, profile);
}

/** Write fixture golden files for `profiles` under `dir` (no manifest: the loader lists the directory). */
export function writeFixtureGoldens(dir: string, profiles: readonly ProfileName[]): void {
  for (const profile of profiles) {
    const sub = join(dir, profile);
    mkdirSync(sub, { recursive: true });
    for (const op of FIXTURE_OPS[PROFILES[profile].algorithm]) {
      const cases = fixtureCases(op, profile).map((c, id) => {
        const outputs = run(
          op,
          Object.fromEntries(Object.entries(c.inputs).filter(([, v]) => v !== undefined)),
          profile,
        );
        return {
          id,
          comment: c.comment,
          flags: c.flags,
          inputs: encodeInputs(op, profile, c.inputs),
          outputs: Object.fromEntries(
            Object.entries(outputs).map(([k, v]) => [k, encodeTensor(v) as unknown as Json]),
          ),
        };
      });
      const file = {
        schema: 'vdspec-golden/1',
        generator: { name: 'vdspec-check-fixture', version: '0', seed: 0 },
        op,
        section: getOp(op).section,
        profile: PROFILES[profile] as unknown as Json,
        tolerance: FIXTURE_TOLERANCE,
        cases,
      };
      writeFileSync(join(sub, `${op}.json`), stringifyGolden(file as unknown as Json));
    }
  }
}
