import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVdspecError } from '../../src/errors.js';
import { OPS, getOp, resolveNames } from '../../src/ops.js';
import { PROFILE_NAMES, PROFILES, type Profile } from '../../src/profiles.js';
import { denseTrain } from '../../src/reference/dense.js';
import { conv2dTrainVjp } from '../../src/reference/conv2d.js';
import { klExact } from '../../src/reference/kl.js';
import { layerKl } from '../../src/reference/objective.js';
import { opsTableMarkdown } from '../../src/reference/opsTable.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { expectSpecBlock } from './spec-blocks.js';

/** Deterministic small values, so every op gets a valid call. */
function filled(shape: number[], seed: number, scale = 1, offset = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    shape,
    data: Array.from(
      { length: n },
      (_, i) => offset + scale * Math.sin(seed * 12.9898 + i * 78.233),
    ),
  };
}

/** A valid input set for any op under any profile. */
function exampleInputs(opName: string, profile: Profile): Record<string, unknown> {
  const op = getOp(opName);
  const conv = op.layer === 'conv2d';
  const theta = conv ? filled([2, 2, 2, 3], 1, 0.5) : filled([3, 2], 1, 0.5);
  const noise =
    profile.noiseParameter === 'log_alpha'
      ? filled([], 2, 0.5, -1)
      : filled(theta.shape as number[], 2, 2, -6);
  const x = conv ? filled([1, 4, 4, 2], 3) : filled([2, 3], 3);
  const out = conv ? [1, 3, 3, 3] : [2, 2];
  const values: Record<string, unknown> = {
    x,
    theta,
    bias: filled([conv ? 3 : 2], 4, 0.1),
    // VD variant A draws one eps per example and input unit: [batch, in].
    // The Monte Carlo predictive takes S draws: [S, batch, out].
    eps: filled(
      opName.startsWith('vd.dense_a.')
        ? [2, 3]
        : opName.endsWith('.predict_mc')
          ? [3, ...out]
          : out,
      5,
    ),
    cotangent: filled(out, 6),
    log_alpha: filled([5], 7, 8),
    logits: filled([2, 3], 8, 3),
    labels: [0, 2],
    train_size: 100,
    kl_weight: 0.5,
    kl: 12.5,
    epoch: 7,
  };
  // Last: for VD the noise parameter is itself called log_alpha.
  values[profile.noiseParameter] = noise;
  const inputs: Record<string, unknown> = {};
  for (const input of resolveNames(op, profile).inputs) {
    if (!input.optional) inputs[input.name] = values[input.name];
  }
  return inputs;
}

const CALLS = OPS.flatMap((op) =>
  PROFILE_NAMES.filter((p) => op.algorithm === null || PROFILES[p].algorithm === op.algorithm).map(
    (p) => [op.name, p] as const,
  ),
);

describe('spec/ops.md: run(op, inputs, profile) on the reference', () => {
  it('spec/ops.md#catalogue: the table is generated from src/ops.ts, unchanged', () => {
    expectSpecBlock('ops.md', 'ops-table', opsTableMarkdown());
  });

  it.each(CALLS)(
    '%s under %s: returns exactly the declared outputs, as finite tensors',
    (name, p) => {
      const profile = PROFILES[p];
      const outputs = run(name, exampleInputs(name, profile), profile);
      expect(Object.keys(outputs).sort()).toEqual(
        [...resolveNames(getOp(name), profile).outputs].sort(),
      );
      for (const t of Object.values(outputs)) {
        expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
        for (const v of t.data) expect(Number.isFinite(v)).toBe(true);
      }
    },
  );

  it('run is the reference function under another name (dense train, conv2d VJP, KL)', () => {
    const profile = PROFILES.molchanov2017;
    const inputs = exampleInputs('svd.dense.train', profile);
    const direct = denseTrain(
      {
        x: inputs['x'] as Tensor,
        theta: inputs['theta'] as Tensor,
        noise: inputs['log_sigma2'] as Tensor,
        bias: inputs['bias'] as Tensor,
        eps: inputs['eps'] as Tensor,
      },
      profile,
    );
    const viaRun = run('svd.dense.train', inputs, profile);
    expect(viaRun['output']).toEqual(direct.output);

    const cInputs = exampleInputs('svd.conv2d.train_vjp', profile);
    const cDirect = conv2dTrainVjp(
      {
        x: cInputs['x'] as Tensor,
        theta: cInputs['theta'] as Tensor,
        noise: cInputs['log_sigma2'] as Tensor,
        bias: cInputs['bias'] as Tensor,
        eps: cInputs['eps'] as Tensor,
      },
      { output: cInputs['cotangent'] as Tensor },
      profile,
    );
    const cRun = run('svd.conv2d.train_vjp', cInputs, profile);
    expect(cRun['grad_theta']).toEqual(cDirect.theta);
    expect(cRun['grad_log_sigma2']).toEqual(cDirect.noise);

    fc.assert(
      fc.property(fc.double({ min: -8, max: 8, noNaN: true }), (la) => {
        const r = run('kl.exact', { log_alpha: { shape: [], data: [la] } }, profile);
        expect(r['kl']!.data[0]).toBe(klExact(la));
      }),
      { numRuns: 50 },
    );
    const kInputs = exampleInputs('kl.layer', profile);
    expect(run('kl.layer', kInputs, profile)['kl']!.data[0]).toBe(
      layerKl(
        { theta: kInputs['theta'] as Tensor, noise: kInputs['log_sigma2'] as Tensor },
        profile,
        'dense',
      ),
    );
  });

  const rejects = (f: () => unknown, code: string, argument: string) => {
    try {
      f();
    } catch (e) {
      expect(isVdspecError(e)).toBe(true);
      if (isVdspecError(e)) {
        expect(e.code).toBe(code);
        expect(e.argument).toBe(argument);
      }
      return;
    }
    expect.unreachable('expected a VdspecError');
  };

  it('bad calls get a VdspecError naming what is wrong', () => {
    const profile = PROFILES.molchanov2017;
    const inputs = exampleInputs('svd.dense.train', profile);
    rejects(() => run('svd.dense.trian', inputs, profile), 'unknown_op', 'op');
    rejects(() => run('svd.dense.train', inputs, 'molchanov'), 'unknown_profile', 'profile');
    rejects(
      () => run('svd.dense.train', inputs, PROFILES.kingma2015),
      'invalid_argument',
      'profile',
    );
    const { eps: _eps, ...noEps } = inputs;
    rejects(() => run('svd.dense.train', noEps, profile), 'invalid_argument', 'eps');
    rejects(
      () => run('svd.dense.train', { ...inputs, log_alpha: inputs['log_sigma2'] }, profile),
      'invalid_argument',
      'log_alpha',
    );
    rejects(
      () =>
        run(
          'svd.dense.train',
          { ...inputs, x: { shape: [2, 3, 1], data: new Array(6).fill(0) } },
          profile,
        ),
      'shape_mismatch',
      'x',
    );
    rejects(
      () => run('svd.dense.train', { ...inputs, train_clip: 'yes' }, profile),
      'invalid_argument',
      'train_clip',
    );
    rejects(
      () =>
        run('svd.log_alpha', { ...exampleInputs('svd.log_alpha', profile), layer: 'rnn' }, profile),
      'invalid_argument',
      'layer',
    );
    rejects(() => run('kl.exact', [], profile), 'invalid_argument', 'inputs');
  });
});

describe('spec/kl.md#how-the-reference-evaluates-it: the KL ops take infinite log_alpha and name a bad one', () => {
  for (const opName of ['kl.exact', 'kl.approx']) {
    it(`${opName}: +inf and -inf are the limits, NaN is refused naming log_alpha`, () => {
      const out = run(
        opName,
        { log_alpha: { shape: [2], data: [Infinity, -Infinity] } },
        'molchanov2017',
      );
      // spec/kl.md's table: +inf gives KL = 0, KL' = 0; -inf gives KL = +inf, KL' = -1/2.
      expect(out['kl']?.data).toEqual([0, Infinity]);
      expect(out['dkl_dlog_alpha']?.data).toEqual([0, -0.5]);
      let caught: unknown;
      try {
        run(opName, { log_alpha: { shape: [2], data: [0, NaN] } }, 'molchanov2017');
      } catch (e) {
        caught = e;
      }
      expect(isVdspecError(caught)).toBe(true);
      expect(caught).toMatchObject({
        code: 'non_finite',
        argument: 'log_alpha',
        message: 'log_alpha: element 1 is NaN',
      });
    });
  }
});
