/**
 * spec/ops.md, spec/fast.md: the fast front door `fastRun(op, inputs,
 * profile)` answers every operation of the catalogue with the reference's
 * input and output names and agrees with `run` within the tolerance model of
 * spec/fast.md#tolerance-model, for every profile the op accepts, on every backend
 * that loads here; it rejects the same bad calls with the same error codes
 * and argument names; and the ops it does not implement are listed here with
 * the reason.
 *
 * Inputs are float32 values (fast-check generated, plus one fixed example
 * per op and profile), so both implementations see the same numbers and the
 * bounds cover arithmetic only. The layer and per-weight bounds are those of
 * fast-agreement.test.ts (./fast-bounds.ts); the bounds of the objective ops
 * are derived below, each where it is used.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KL_WARMUP_END_EPOCH, KL_WARMUP_START_EPOCH } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import { activeBackend, availableBackends, initBackend } from '../../src/fast/backend.js';
import { FAST_UNSUPPORTED_OPS, fastRun, type FastOutputs } from '../../src/fast/index.js';
import { OPS, getOp, resolveNames, type OpSpec } from '../../src/ops.js';
import { PROFILE_NAMES, PROFILES, type LayerKind, type Profile } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import { sizeOf, type Tensor } from '../../src/tensor.js';
import {
  convCaseWith,
  denseAKlTolerance,
  denseATolerance,
  denseCaseWith,
  expectWithin,
  f32,
  float,
  klEvalTolerance,
  klSlopeTolerance,
  LAYERS,
  layerKlTolerance,
  layerTolerance,
  noiseValue,
  predictMcTolerance,
  runs,
  tensorOf,
  thetaValue,
  TINY,
  U,
  weightsFor,
  weightTolerance,
  type LayerCase,
  type Weights,
  worst,
} from './fast-bounds.js';

const BACKENDS = await availableBackends();

/** VDSPEC_FAST_REPORT=1: the largest |fast - ref| / tolerance per backend, op and output. */
afterAll(() => {
  if (process.env.VDSPEC_FAST_REPORT) {
    const rows = new Map<string, number>();
    for (const [k, v] of worst) {
      // Keys are "<backend> <op> <profile>[ example] <output>": one row per backend, op and output.
      const [backend, op, , ...rest] = k.split(' ');
      const row = `${backend} ${op} ${rest.filter((w) => w !== 'example').join(' ')}`;
      rows.set(row, Math.max(rows.get(row) ?? 0, v));
    }
    const sorted = [...rows.entries()].sort(([a], [b]) => a.localeCompare(b));
    console.log(sorted.map(([k, v]) => `${k.padEnd(50)} ${v.toFixed(4)}`).join('\n'));
  }
});

/**
 * The ops fastRun rejects with VdspecError('unsupported'), and why. Must equal
 * FAST_UNSUPPORTED_OPS: adding a fast op means deleting its line here.
 */
const UNSUPPORTED: Record<string, string> = {
  'kl.exact':
    'the exact KL is a float64 series (spec/kl.md#klexact), reference-only by design: it measures the approximations, no training step needs it',
};

const accepts = (op: OpSpec, p: Profile) => op.algorithm === null || op.algorithm === p.algorithm;
const CALLS = OPS.flatMap((op) =>
  PROFILE_NAMES.filter((p) => accepts(op, PROFILES[p])).map((p) => [op.name, p] as const),
);
const SUPPORTED_CALLS = CALLS.filter(([op]) => UNSUPPORTED[op] === undefined);
const UNSUPPORTED_CALLS = CALLS.filter(([op]) => UNSUPPORTED[op] !== undefined);

// ---------------------------------------------------------------------------
// Inputs: one fixed example per op and profile, and generators
// ---------------------------------------------------------------------------

/** Deterministic float32 values (the pattern of run.test.ts, rounded to float32). */
function filled(shape: number[], seed: number, scale = 1, offset = 0): Tensor {
  return {
    shape,
    data: Array.from({ length: sizeOf(shape) }, (_, i) =>
      f32(offset + scale * Math.sin(seed * 12.9898 + i * 78.233)),
    ),
  };
}

function exampleInputs(op: OpSpec, profile: Profile): Record<string, unknown> {
  const conv = op.layer === 'conv2d';
  const theta = conv ? filled([2, 2, 2, 3], 1, 0.5) : filled([3, 2], 1, 0.5);
  const noise =
    profile.noiseParameter === 'log_alpha'
      ? filled([], 2, 0.5, -1)
      : filled([...theta.shape], 2, 2, -6);
  const out = conv ? [1, 3, 3, 3] : [2, 2];
  // VD variant A draws one eps per example and input unit: [batch, in].
  const epsShape = op.name.startsWith('vd.dense_a.')
    ? [2, 3]
    : op.name.endsWith('.predict_mc')
      ? [3, ...out] // S = 3 draws
      : out;
  // kl.approx: both infinities, a clip bound, the threshold; VD's cubic only below its clip max 0.
  const logAlpha =
    profile.kl.approximation === 'vd_cubic'
      ? [-Infinity, -8, -3, -0.5, 0]
      : [-Infinity, -8, 0, 3, 8, 12, Infinity];
  const values: Record<string, unknown> = {
    x: conv ? filled([1, 4, 4, 2], 3) : filled([2, 3], 3),
    theta,
    bias: filled([conv ? 3 : 2], 4, 0.1),
    eps: filled(epsShape, 5),
    cotangent: filled(out, 6),
    log_alpha: { shape: [logAlpha.length], data: logAlpha },
    logits: filled([2, 3], 8, 3),
    labels: [0, 2],
    train_size: 100,
    kl_weight: 0.5,
    kl: 12.5,
    epoch: 7,
  };
  values[profile.noiseParameter] = noise;
  const inputs: Record<string, unknown> = {};
  for (const input of resolveNames(op, profile).inputs) {
    if (!input.optional) inputs[input.name] = values[input.name];
  }
  return inputs;
}

type LayerOpKind = 'train' | 'eval' | 'train_vjp' | 'eval_vjp' | 'eval_unmasked' | 'predict_mc';
const layerOpKind = (op: OpSpec) => op.name.split('.').slice(2).join('.') as LayerOpKind;

function layerInputs(op: OpSpec, profile: Profile, c: LayerCase): Record<string, unknown> {
  const kind = layerOpKind(op);
  const inputs: Record<string, unknown> = {
    x: c.x,
    theta: c.w.theta,
    [profile.noiseParameter]: c.w.noise,
    bias: c.bias,
  };
  if (kind === 'train' || kind === 'train_vjp' || kind === 'predict_mc') {
    inputs['eps'] = c.eps;
    if (c.trainClip !== undefined) inputs['train_clip'] = c.trainClip;
  }
  if (kind === 'train_vjp' || kind === 'eval_vjp') inputs['cotangent'] = c.gy;
  if (op.layer === 'conv2d') {
    inputs['stride'] = c.stride;
    inputs['padding'] = c.padding;
  }
  return inputs;
}

function weightInputs(profile: Profile, w: Weights, omitLayer: boolean): Record<string, unknown> {
  return {
    theta: w.theta,
    [profile.noiseParameter]: w.noise,
    ...(omitLayer && w.layer === 'dense' ? {} : { layer: w.layer }),
  };
}

/** A class-index array of `batch` labels for `classes` classes, with logits to match. */
function classification(logit: fc.Arbitrary<number>) {
  return fc
    .record({ batch: fc.integer({ min: 1, max: 5 }), classes: fc.integer({ min: 1, max: 6 }) })
    .chain(({ batch, classes }) =>
      fc.record({
        logits: fc
          .array(logit, { minLength: batch * classes, maxLength: batch * classes })
          .map((data) => ({ shape: [batch, classes], data })),
        labels: fc.array(fc.integer({ min: 0, max: classes - 1 }), {
          minLength: batch,
          maxLength: batch,
        }),
      }),
    );
}

/** Logits mostly moderate, sometimes up to 1e4 (the bound grows with |logsumexp|). */
const logitValue = fc.oneof(
  { weight: 4, arbitrary: float(-30, 30) },
  { weight: 1, arbitrary: float(-1e4, 1e4) },
);

/**
 * VD variant A: batch 0..3, in 0..5, out 0..4 (empty sizes included), log_alpha
 * [] or [in] around its clip max 0 (sometimes exactly on it), eps [batch, in].
 */
function denseAArb(profile: Profile, op: OpSpec): fc.Arbitrary<Record<string, unknown>> {
  const la = profile.noiseParameter;
  return fc
    .record({
      batch: fc.integer({ min: 0, max: 3 }),
      inSize: fc.integer({ min: 0, max: 5 }),
      out: fc.integer({ min: 0, max: 4 }),
      scalarNoise: fc.boolean(),
    })
    .chain(({ batch, inSize, out, scalarNoise }) => {
      const theta = tensorOf([inSize, out], thetaValue);
      const noise = tensorOf(scalarNoise ? [] : [inSize], noiseValue(profile));
      if (op.name === 'vd.dense_a.kl') {
        return fc.record({ theta, [la]: noise });
      }
      return fc.record({
        x: tensorOf([batch, inSize], float(-2, 2)),
        theta,
        [la]: noise,
        bias: tensorOf([out], float(-1, 1)),
        eps: tensorOf([batch, inSize], float(-3, 3)),
        ...(op.name === 'vd.dense_a.train_vjp'
          ? { cotangent: tensorOf([batch, out], float(-1, 1)) }
          : {}),
      });
    });
}

/** Generated inputs of `op` under `profile`, float32 values throughout. */
function inputsArb(op: OpSpec, profile: Profile): fc.Arbitrary<Record<string, unknown>> {
  const only = fc.constant(profile);
  if (op.layer !== null) {
    const cases = op.layer === 'dense' ? denseCaseWith(1, only) : convCaseWith(1, only);
    if (layerOpKind(op) === 'predict_mc') {
      // S = 1..4 draws of eps: [S, batch, out].
      return cases.chain((c) =>
        fc
          .integer({ min: 1, max: 4 })
          .chain((draws) => tensorOf([draws, ...c.eps.shape], float(-3, 3)))
          .map((eps) => ({ ...layerInputs(op, profile, c), eps })),
      );
    }
    return cases.map((c) => layerInputs(op, profile, c));
  }
  const weights = fc
    .record({
      layer: fc.constantFrom(...LAYERS),
      dims: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 4, maxLength: 4 }),
      omitLayer: fc.boolean(),
    })
    .chain(({ layer, dims, omitLayer }) =>
      weightsFor(profile, layer, layer === 'dense' ? dims.slice(0, 2) : dims).map((w) =>
        weightInputs(profile, w, omitLayer),
      ),
    );
  switch (op.name) {
    case 'svd.log_alpha':
    case 'vd.log_alpha':
    case 'svd.mask':
    case 'kl.layer':
      return weights;
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp':
    case 'vd.dense_a.kl':
      return denseAArb(profile, op);
    case 'kl.approx': {
      // The cubic only where VD's clip holds it (la <= 0); the sigmoid on both sides of every bound.
      const cubic = profile.kl.approximation === 'vd_cubic';
      const value = fc.oneof(
        { weight: 8, arbitrary: cubic ? float(-12, 0) : float(-12, 12) },
        { weight: 1, arbitrary: fc.constantFrom(-Infinity, ...(cubic ? [] : [Infinity])) },
      );
      return fc
        .array(value, { minLength: 0, maxLength: 12 })
        .map((data) => ({ log_alpha: { shape: [data.length], data } }));
    }
    case 'objective.cross_entropy':
      return classification(logitValue);
    case 'objective.sgvb':
      return fc
        .record({
          c: classification(logitValue),
          train_size: fc.integer({ min: 1, max: 1_000_000 }),
          kl_weight: float(0, 1),
          kl: float(-1e5, 1e5),
        })
        .map(({ c, ...rest }) => ({ ...c, ...rest }));
    case 'schedule.kl_weight':
      return fc
        .oneof(float(0, 40), fc.constantFrom(0, f32(4.99), 5, 12.5, 20, 100))
        .map((epoch) => ({ epoch }));
  }
  throw new Error(`no generator for ${op.name}`);
}

// ---------------------------------------------------------------------------
// Comparison: one tolerance model per kind of op
// ---------------------------------------------------------------------------

const zeros = (shape: readonly number[]): Tensor => ({
  shape: [...shape],
  data: new Array<number>(sizeOf(shape)).fill(0),
});

/** The layer case behind a layer op's inputs (eps and cotangent 0 where the op has none). */
function caseOf(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  outShape: readonly number[],
): LayerCase {
  return {
    w: {
      profile,
      layer: op.layer!,
      theta: inputs['theta'] as Tensor,
      noise: inputs[profile.noiseParameter] as Tensor,
    },
    x: inputs['x'] as Tensor,
    bias: inputs['bias'] as Tensor,
    eps: (inputs['eps'] as Tensor | undefined) ?? zeros(outShape),
    gy: (inputs['cotangent'] as Tensor | undefined) ?? zeros(outShape),
    trainClip: inputs['train_clip'] as boolean | undefined,
    stride: (inputs['stride'] as [number, number] | undefined) ?? 1,
    padding: (inputs['padding'] as 'valid' | 'same' | undefined) ?? 'valid',
  };
}

function weightsOf(profile: Profile, inputs: Record<string, unknown>): Weights {
  return {
    profile,
    layer: (inputs['layer'] as LayerKind | undefined) ?? 'dense',
    theta: inputs['theta'] as Tensor,
    noise: inputs[profile.noiseParameter] as Tensor,
  };
}

/**
 * Per-output tolerances of a comparison, or 'skip' when some log_alpha lies
 * within float32 error of a clip bound or the threshold without being on it
 * (spec/fast.md#tolerance-model, "Edges": float32 may land on the other side).
 */
type Tolerances = Record<string, readonly number[]> | 'skip';

function layerTolerances(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  ref: FastOutputs,
): Tolerances {
  const kind = layerOpKind(op);
  const outShape =
    kind === 'train' || kind === 'eval' || kind === 'eval_unmasked'
      ? ref['output']!.shape
      : kind === 'predict_mc'
        ? ref['mean_output']!.shape
        : (inputs['cotangent'] as Tensor).shape;
  const c = caseOf(op, profile, inputs, outShape);
  const noise = `grad_${profile.noiseParameter}`;
  if (kind === 'eval_vjp') {
    // The eval VJP is the train VJP's mean path with the mask on (fast-agreement.test.ts): eps = 0.
    const t = layerTolerance({ ...c, trainClip: true, eps: zeros(outShape) });
    if (t.nearEdge) return 'skip';
    // The noise only moves the piecewise-constant mask: its gradient is exactly 0 on both sides.
    return {
      grad_x: t.gx,
      grad_theta: t.gTheta,
      [noise]: c.w.noise.data.map(() => 0),
      grad_bias: t.gBias,
    };
  }
  if (kind === 'predict_mc') {
    const t = predictMcTolerance(c, inputs['eps'] as Tensor);
    if (t.nearEdge) return 'skip';
    return { mean_output: t.meanOutput, mean_softmax: t.meanSoftmax };
  }
  if (kind === 'eval_unmasked') {
    // The training mean with the mask off: no mask, so no edge to skip.
    const t = layerTolerance({ ...c, trainClip: false, eps: zeros(outShape) });
    return { output: t.mean };
  }
  const t = layerTolerance(c);
  if (t.nearEdge) return 'skip';
  switch (kind) {
    case 'train':
      return { mean: t.mean, variance: t.variance, output: t.output };
    case 'eval':
      return { output: t.eval };
    case 'train_vjp':
      return { grad_x: t.gx, grad_theta: t.gTheta, [noise]: t.gNoise, grad_bias: t.gBias };
  }
}

/** kl.layer with cotangent 1: the bounds of fast-agreement.test.ts's layer-KL property. */
function klLayerTolerances(profile: Profile, w: Weights): Tolerances {
  const tol = layerKlTolerance(w);
  if (tol.nearEdge) return 'skip';
  return {
    kl: [tol.kl],
    grad_theta: tol.theta,
    [`grad_${profile.noiseParameter}`]: tol.noise,
  };
}

/**
 * Cross-entropy, CE_b = logsumexp(z_b) - z_b[y_b], as tfjs forms it: a_i =
 * z_i - m (error u |a_i|), e^{a_i} (2u relative, plus the argument's error,
 * which weighted by e^{a_i} sums to at most C u / e over the row), their sum
 * S >= 1 ((C - 1) u relative), log S (relative error of S plus 2u |log S|),
 * m + log S (u |lse|), minus z_y (u |CE|; the one-hot pick adds exact zeros):
 * |err| <= (2C + 1) u + 2u ln C + u |lse| + u |CE|, doubled for margin.
 * The mean adds (M + 1) u mean|CE| for the sum and the division, doubled.
 */
function crossEntropyTolerances(logits: Tensor, labels: readonly number[], ref: FastOutputs) {
  const classes = logits.shape[1]!;
  const ce = ref['per_example']!.data;
  const perExample = ce.map((v, b) => {
    const lse = v + logits.data[b * classes + labels[b]!]!;
    return 2 * U * (2 * classes + 1 + 2 * Math.log(classes) + Math.abs(lse) + Math.abs(v)) + TINY;
  });
  const m = ce.length;
  const meanAbs = ce.reduce((s, v) => s + Math.abs(v), 0) / m;
  const mean = perExample.reduce((s, v) => s + v, 0) / m + 2 * (m + 1) * U * meanAbs + TINY;
  return { perExample, mean };
}

function tolerances(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
  ref: FastOutputs,
): Tolerances {
  if (op.layer !== null) return layerTolerances(op, profile, inputs, ref);
  switch (op.name) {
    case 'svd.log_alpha':
    case 'vd.log_alpha': {
      const tol = weightTolerance(weightsOf(profile, inputs));
      return { log_alpha: tol.logAlpha };
    }
    case 'kl.layer':
      return klLayerTolerances(profile, weightsOf(profile, inputs));
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp': {
      const x = inputs['x'] as Tensor;
      const out = [x.shape[0]!, (inputs['theta'] as Tensor).shape[1]!];
      const t = denseATolerance({
        profile,
        x,
        theta: inputs['theta'] as Tensor,
        noise: inputs[profile.noiseParameter] as Tensor,
        bias: inputs['bias'] as Tensor,
        eps: inputs['eps'] as Tensor,
        cotangent: (inputs['cotangent'] as Tensor | undefined) ?? zeros(out),
      });
      if (op.name === 'vd.dense_a.train') {
        return { mean: t.mean, variance: t.variance, output: t.output };
      }
      return {
        grad_x: t.gradX,
        grad_theta: t.gradTheta,
        [`grad_${profile.noiseParameter}`]: t.gradNoise,
        grad_bias: t.gradBias,
      };
    }
    case 'vd.dense_a.kl': {
      const t = denseAKlTolerance(
        inputs['theta'] as Tensor,
        inputs[profile.noiseParameter] as Tensor,
        profile,
      );
      return { kl: [t.kl], [`grad_${profile.noiseParameter}`]: t.noise };
    }
    case 'kl.approx': {
      // At a float32 log_alpha (exact on both sides): the evaluation bounds of
      // fast-agreement.test.ts, the slope's plus 8u |KL'| for its products. At an
      // infinite input both return the limit: +inf exactly, or a finite limit
      // (-(k1 + C), -1/2, 0) that the fast side rounds to float32 (u relative).
      const la = (inputs['log_alpha'] as Tensor).data;
      const at = (name: string, i: number) => Math.abs(ref[name]!.data[i]!);
      return {
        kl: la.map((v, i) => (Number.isFinite(v) ? klEvalTolerance(v, profile) : U * at('kl', i))),
        dkl_dlog_alpha: la.map((v, i) =>
          Number.isFinite(v)
            ? klSlopeTolerance(v, profile) + 8 * U * at('dkl_dlog_alpha', i)
            : U * at('dkl_dlog_alpha', i),
        ),
      };
    }
    case 'objective.cross_entropy': {
      const t = crossEntropyTolerances(
        inputs['logits'] as Tensor,
        inputs['labels'] as number[],
        ref,
      );
      return { per_example: t.perExample, mean: [t.mean] };
    }
    case 'objective.sgvb': {
      // data = N * mean: N is a float32-exact integer (<= 2^24), so N tol(mean) plus
      // one rounding; kl_term = beta * kl of float32-exact inputs: one rounding;
      // loss adds both and one rounding. Doubled for margin.
      const n = inputs['train_size'] as number;
      const ceRef = run(
        'objective.cross_entropy',
        {
          logits: inputs['logits'],
          labels: inputs['labels'],
        },
        profile,
      );
      const ce = crossEntropyTolerances(
        inputs['logits'] as Tensor,
        inputs['labels'] as number[],
        ceRef,
      );
      const data = Math.abs(ref['data_term']!.data[0]!);
      const klTerm = Math.abs(ref['kl_term']!.data[0]!);
      const dataTol = 2 * (n * ce.mean + U * data) + TINY;
      const klTol = 2 * U * klTerm + TINY;
      return {
        data_term: [dataTol],
        kl_term: [klTol],
        loss: [dataTol + klTol + 2 * U * (data + klTerm)],
      };
    }
    case 'schedule.kl_weight': {
      // (e - start) / (end - start) in float32 with e float32-exact: two roundings,
      // u |e - start| / (end - start) and u |quotient| (<= u after the clip), doubled.
      const e = inputs['epoch'] as number;
      const span = KL_WARMUP_END_EPOCH - KL_WARMUP_START_EPOCH;
      return { kl_weight: [2 * U * (Math.abs(e - KL_WARMUP_START_EPOCH) / span + 1)] };
    }
  }
  throw new Error(`no tolerance for ${op.name}`);
}

/** The mask: equal except within tol(log_alpha) of the threshold (spec/fast.md#tolerance-model, "Mask"). */
function expectMaskAgrees(key: string, profile: Profile, w: Weights, fast: Tensor, ref: Tensor) {
  const tol = weightTolerance(w);
  const prune = profile.prune!;
  fast.data.forEach((m, i) => {
    if (m === ref.data[i]) return;
    const compared =
      prune.from === 'unclipped' ? tol.stats.logAlphaRaw[i]! : tol.stats.logAlpha[i]!;
    expect(
      Math.abs(compared - prune.threshold) <= tol.logAlpha[i]!,
      `${key} mask[${i}]: fast ${m}, reference ${ref.data[i]}, log_alpha ${compared}`,
    ).toBe(true);
  });
}

/**
 * Run both front doors on `inputs` and compare: the same output names (fast
 * in the catalogue's order), the same shapes, values within the tolerances;
 * fastRun leaks no tensor. Returns false when the case sits on an edge.
 */
async function expectAgreement(
  key: string,
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
): Promise<boolean> {
  const ref = run(op.name, inputs, profile);
  const before = tf.memory().numTensors;
  const fast = await fastRun(op.name, inputs, profile);
  expect(tf.memory().numTensors, `${key}: tensors leaked`).toBe(before);
  expect(Object.keys(fast)).toEqual(resolveNames(op, profile).outputs);
  expect(Object.keys(ref).sort()).toEqual(Object.keys(fast).sort());
  for (const name of Object.keys(ref)) {
    expect(fast[name]!.shape, `${key} ${name}: shape`).toEqual(ref[name]!.shape);
  }
  if (op.name === 'svd.mask') {
    expectMaskAgrees(key, profile, weightsOf(profile, inputs), fast['mask']!, ref['mask']!);
    return true;
  }
  const tol = tolerances(op, profile, inputs, ref);
  if (tol === 'skip') return false;
  for (const name of Object.keys(ref)) {
    expectWithin(`${key} ${name}`, fast[name]!.data, ref[name]!.data, tol[name]!);
  }
  return true;
}

/** Generated cases per (op, profile, backend): the layer ops cost more (the bounds run the reference's convolutions). */
const numRunsFor = (op: OpSpec) => runs(op.layer !== null ? 12 : 25);

// ---------------------------------------------------------------------------

describe('spec/ops.md: fastRun, the fast front door', () => {
  it('spec/fast.md#backends: fastRun initialises the default backend itself when none is active', async () => {
    expect(activeBackend()).toBe(null);
    const r = await fastRun('schedule.kl_weight', { epoch: 12.5 }, 'molchanov2017');
    expect(r['kl_weight']).toEqual({ shape: [], data: [0.5] });
    expect(BACKENDS).toContain(activeBackend());
  });

  it('the unsupported ops are exactly the ones listed in this test, with a reason', () => {
    expect(Object.keys(FAST_UNSUPPORTED_OPS).sort()).toEqual(Object.keys(UNSUPPORTED).sort());
    for (const reason of Object.values(FAST_UNSUPPORTED_OPS))
      expect(reason.length).toBeGreaterThan(20);
    // Every catalogue op is either answered or listed (a new op without a fast path fails here).
    expect(SUPPORTED_CALLS.length + UNSUPPORTED_CALLS.length).toBe(CALLS.length);
    expect(new Set(SUPPORTED_CALLS.map(([op]) => op)).size).toBe(
      OPS.length - Object.keys(UNSUPPORTED).length,
    );
  });
});

describe.each(BACKENDS)('fastRun on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  it.each(SUPPORTED_CALLS)(
    'spec/ops.md#catalogue, spec/fast.md#tolerance-model: %s under %s agrees with the reference run (fixed example and generated inputs)',
    async (name, p) => {
      const op = getOp(name);
      const profile = PROFILES[p];
      const key = `${backend} ${name} ${p}`;
      expect(await expectAgreement(`${key} example`, op, profile, exampleInputs(op, profile))).toBe(
        true,
      );
      await fc.assert(
        fc.asyncProperty(inputsArb(op, profile), async (inputs) => {
          fc.pre(await expectAgreement(key, op, profile, inputs));
        }),
        { numRuns: numRunsFor(op) },
      );
    },
  );

  it.each(UNSUPPORTED_CALLS)(
    'spec/kl.md#klexact: %s under %s is rejected as unsupported, naming the op',
    async (name, p) => {
      const inputs = exampleInputs(getOp(name), PROFILES[p]);
      expect(run(name, inputs, p)).toBeDefined();
      await expect(fastRun(name, inputs, p)).rejects.toMatchObject({
        code: 'unsupported',
        argument: 'op',
        message: expect.stringContaining(name),
      });
    },
  );

  it('spec/fast.md#numerics: a VD cubic KL that overflows float32 is non_finite with no argument (the reference, in float64, still answers)', async () => {
    const inputs = { log_alpha: { shape: [2], data: [-1, 40] } };
    expect(Number.isFinite(run('kl.approx', inputs, 'kingma2015')['kl']!.data[1])).toBe(true);
    await expect(fastRun('kl.approx', inputs, 'kingma2015')).rejects.toMatchObject({
      code: 'non_finite',
      argument: undefined,
    });
  });
});

// ---------------------------------------------------------------------------
// Bad calls
// ---------------------------------------------------------------------------

/**
 * Where the reference's run still reports an argument under its function's
 * own name rather than the catalogue's input name, the name it uses. fastRun
 * always uses the catalogue's (spec/ops.md); the reference may use either.
 */
const REFERENCE_ARGUMENT_NAMES: Record<string, string> = {
  cotangent: 'cotangent.output',
  stride: 'options.stride',
  padding: 'options.padding',
  train_size: 'trainSize',
  kl_weight: 'klWeight',
};

function referenceError(f: () => unknown): { code: string; argument: string | undefined } {
  try {
    f();
  } catch (e) {
    if (isVdspecError(e)) return { code: e.code, argument: e.argument };
    throw e;
  }
  throw new Error('expected the reference to reject the call');
}

describe('spec/ops.md#values: bad calls get the same VdspecError from fastRun as from run', () => {
  const svd = PROFILES.molchanov2017;
  const dense = (name: string) => exampleInputs(getOp(name), svd);
  const t = (shape: number[], value = 0.5): Tensor => ({
    shape,
    data: new Array<number>(sizeOf(shape)).fill(value),
  });
  const { eps: _eps, ...noEps } = dense('svd.dense.train');
  const classification = { logits: t([2, 3]), labels: [0, 1] };
  const sgvb = { ...classification, train_size: 10, kl_weight: 1, kl: 2 };
  // [description, op, inputs, profile, code, argument (the catalogue's name)]
  const BAD: [string, string, unknown, string | Profile, string, string | undefined][] = [
    // The calls of run.test.ts.
    ['a misspelt op', 'svd.dense.trian', dense('svd.dense.train'), svd, 'unknown_op', 'op'],
    [
      'an unknown profile',
      'svd.dense.train',
      dense('svd.dense.train'),
      'molchanov',
      'unknown_profile',
      'profile',
    ],
    [
      'a VD profile for an SVD op',
      'svd.dense.train',
      dense('svd.dense.train'),
      PROFILES.kingma2015,
      'invalid_argument',
      'profile',
    ],
    ['a missing input', 'svd.dense.train', noEps, svd, 'invalid_argument', 'eps'],
    [
      'an input the op does not take',
      'svd.dense.train',
      { ...dense('svd.dense.train'), log_alpha: t([3, 2]) },
      svd,
      'invalid_argument',
      'log_alpha',
    ],
    [
      'x of rank 3',
      'svd.dense.train',
      { ...dense('svd.dense.train'), x: t([2, 3, 1]) },
      svd,
      'shape_mismatch',
      'x',
    ],
    [
      'train_clip not a boolean',
      'svd.dense.train',
      { ...dense('svd.dense.train'), train_clip: 'yes' },
      svd,
      'invalid_argument',
      'train_clip',
    ],
    [
      'an unknown layer kind',
      'svd.log_alpha',
      { ...dense('svd.log_alpha'), layer: 'rnn' },
      svd,
      'invalid_argument',
      'layer',
    ],
    ['inputs not an object', 'kl.exact', [], svd, 'invalid_argument', 'inputs'],
    // More: shapes, values, options, the objective.
    [
      'bias of the wrong length',
      'svd.dense.eval',
      { ...dense('svd.dense.eval'), bias: t([3]) },
      svd,
      'shape_mismatch',
      'bias',
    ],
    [
      'the noise of the wrong shape',
      'svd.dense.eval',
      { ...dense('svd.dense.eval'), log_sigma2: t([2, 2]) },
      svd,
      'shape_mismatch',
      'log_sigma2',
    ],
    [
      'NaN in theta',
      'svd.dense.eval',
      { ...dense('svd.dense.eval'), theta: t([3, 2], Number.NaN) },
      svd,
      'non_finite',
      'theta',
    ],
    [
      'an eval cotangent of the wrong shape',
      'svd.dense.eval_vjp',
      { ...dense('svd.dense.eval_vjp'), cotangent: t([3, 3]) },
      svd,
      'shape_mismatch',
      'cotangent',
    ],
    [
      'a train cotangent of the wrong shape',
      'svd.dense.train_vjp',
      { ...dense('svd.dense.train_vjp'), cotangent: t([3, 3]) },
      svd,
      'shape_mismatch',
      'cotangent',
    ],
    [
      'a conv2d train cotangent of the wrong shape',
      'svd.conv2d.train_vjp',
      { ...dense('svd.conv2d.train_vjp'), cotangent: t([1, 2, 2, 3]) },
      svd,
      'shape_mismatch',
      'cotangent',
    ],
    [
      'stride 0',
      'svd.conv2d.eval',
      { ...dense('svd.conv2d.eval'), stride: 0 },
      svd,
      'invalid_argument',
      'stride',
    ],
    [
      'a stride that is not a number',
      'svd.conv2d.eval',
      { ...dense('svd.conv2d.eval'), stride: 'x' },
      svd,
      'invalid_argument',
      'stride',
    ],
    [
      'an unknown padding',
      'svd.conv2d.train',
      { ...dense('svd.conv2d.train'), padding: 'full' },
      svd,
      'invalid_argument',
      'padding',
    ],
    [
      'an HWIO filter whose input channels differ from x',
      'svd.conv2d.eval',
      { ...dense('svd.conv2d.eval'), theta: t([2, 2, 3, 3]), log_sigma2: t([2, 2, 3, 3]) },
      svd,
      'shape_mismatch',
      'theta',
    ],
    [
      'kl.layer on theta of the wrong rank',
      'kl.layer',
      { theta: t([3, 2]), log_sigma2: t([3, 2]), layer: 'conv2d' },
      svd,
      'shape_mismatch',
      'theta',
    ],
    [
      'NaN log_alpha',
      'kl.approx',
      { log_alpha: { shape: [1], data: [Number.NaN] } },
      svd,
      'non_finite',
      'log_alpha',
    ],
    [
      '+Infinity for the VD cubic',
      'kl.approx',
      { log_alpha: { shape: [1], data: [Infinity] } },
      PROFILES.kingma2015,
      'non_finite',
      'log_alpha',
    ],
    [
      'labels not an array',
      'objective.cross_entropy',
      { ...classification, labels: 'a' },
      svd,
      'invalid_argument',
      'labels',
    ],
    [
      'too few labels',
      'objective.cross_entropy',
      { ...classification, labels: [0] },
      svd,
      'shape_mismatch',
      'labels',
    ],
    [
      'a label out of range',
      'objective.sgvb',
      { ...sgvb, labels: [0, 3] },
      svd,
      'invalid_argument',
      'labels',
    ],
    [
      'empty logits',
      'objective.cross_entropy',
      { logits: t([0, 3]), labels: [] },
      svd,
      'shape_mismatch',
      'logits',
    ],
    [
      'a fractional train_size',
      'objective.sgvb',
      { ...sgvb, train_size: 0.5 },
      svd,
      'invalid_argument',
      'train_size',
    ],
    [
      'a negative kl_weight',
      'objective.sgvb',
      { ...sgvb, kl_weight: -1 },
      svd,
      'invalid_argument',
      'kl_weight',
    ],
    ['an infinite kl', 'objective.sgvb', { ...sgvb, kl: Infinity }, svd, 'non_finite', 'kl'],
    ['a negative epoch', 'schedule.kl_weight', { epoch: -1 }, svd, 'invalid_argument', 'epoch'],
    [
      'an epoch that is not a number',
      'schedule.kl_weight',
      { epoch: '7' },
      svd,
      'invalid_argument',
      'epoch',
    ],
  ];

  it.each(BAD)('%s (%s)', async (_what, op, inputs, profile, code, argument) => {
    const ref = referenceError(() => run(op, inputs, profile));
    expect(ref.code).toBe(code);
    const refNames = [
      argument,
      argument === undefined ? undefined : REFERENCE_ARGUMENT_NAMES[argument],
    ];
    expect(refNames).toContain(ref.argument);
    await expect(fastRun(op, inputs, profile)).rejects.toMatchObject({ code, argument });
  });
});
