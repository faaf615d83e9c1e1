/**
 * spec/train.md#additive-and-multiplicative: Sparse VD with log_alpha trained
 * directly, started from the additive run's distribution, and the lower-bound
 * figure of `vdspec compare`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import * as tf from '@tensorflow/tfjs';

import { runCompareCommand } from '../../src/cli/compare.js';
import { runTrainCommand } from '../../src/cli/train.js';
import { SVD_INIT_LOG_SIGMA2 } from '../../src/constants.js';
import { initBackend } from '../../src/fast/backend.js';
import { createFastModel } from '../../src/fast/fast-model.js';
import { LENET_300_100, LENET_5_CAFFE } from '../../src/fast/networks.js';
import { PROFILES } from '../../src/profiles.js';
import {
  checkRecord,
  multiplicativeProfile,
  startMultiplicative,
} from '../../src/train/trainer.js';

await initBackend();

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-mult-'));
  temps.push(dir);
  return dir;
}

async function cli(argv: string[]) {
  const err: string[] = [];
  const code = await runTrainCommand(
    argv,
    () => {},
    (s) => err.push(s),
    { handleSignals: false },
  );
  return { code, err: err.join('\n') };
}

describe('spec/train.md#additive-and-multiplicative', () => {
  it('the multiplicative profile trains log_alpha and keeps the clip, KL, variance and pruning', () => {
    const additive = PROFILES.molchanov2017;
    const multiplicative = multiplicativeProfile(additive);
    expect(multiplicative.noiseParameter).toBe('log_alpha');
    for (const layer of ['dense', 'conv2d'] as const) {
      expect(multiplicative[layer].logAlpha).toEqual({
        form: 'learned',
        thetaEps: 0,
        clip: additive[layer].logAlpha.clip,
      });
      expect(multiplicative[layer].variance).toBe(additive[layer].variance);
    }
    expect(multiplicative.kl).toEqual(additive.kl);
    expect(multiplicative.prune).toEqual(additive.prune);
    expect(multiplicative.algorithm).toBe('svd');
  });

  it("a multiplicative model starts from the additive one's log_alpha, and its first step has the same loss", () => {
    const options = { inputShape: [784], layers: LENET_300_100, seed: 3, trainClip: true };
    const additive = createFastModel({ ...options, profile: 'molchanov2017' });
    const profile = multiplicativeProfile(PROFILES.molchanov2017);
    const multiplicative = createFastModel({ ...options, profile });
    startMultiplicative(multiplicative, profile);
    const a = additive.logAlphaValues();
    const m = multiplicative.logAlphaValues();
    a.forEach((layer, l) => {
      let worst = 0;
      layer.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - m[l]![i]!))));
      // float32 log_sigma2 - 2 log|theta| against float64 then rounded: a few ulps of ~10.
      expect(worst).toBeLessThan(1e-5);
    });
    // Written out for one weight: log_alpha = -10 - log(theta^2), clipped to [-8, 8].
    const theta0 = multiplicative.parameters()[0]!.theta.data[0] as number;
    const expected = Math.min(8, Math.max(-8, SVD_INIT_LOG_SIGMA2 - Math.log(theta0 * theta0)));
    expect(Math.abs(m[0]![0]! - expected)).toBeLessThan(1e-5);

    const x = tf.randomUniform([20, 784], 0, 1, 'float32', 5);
    const batch = { x, labels: Array.from({ length: 20 }, (_, i) => i % 10) };
    const step = { trainSize: 1000, klWeight: 1, learningRate: 1e-3 };
    const la = additive.trainStep(batch, step);
    const lm = multiplicative.trainStep(batch, step);
    expect(Math.abs(lm.loss - la.loss)).toBeLessThan(1e-4 * Math.abs(la.loss));
    // The parameterizations then move apart: the same gradient step is not the same step.
    const a2 = additive.logAlphaValues()[0]!;
    const m2 = multiplicative.logAlphaValues()[0]!;
    let moved = 0;
    a2.forEach((v, i) => (moved = Math.max(moved, Math.abs(v - m2[i]!))));
    expect(moved).toBeGreaterThan(1e-4);
    x.dispose();
    additive.dispose();
    multiplicative.dispose();
  });

  it("each layer's start is clipped by its own kind's clip, and a layer without a clip is not clipped", () => {
    // molchanov2017 clips both kinds to [-8, 8]; a profile whose conv2d and dense clips differ
    // (and one without a clip) shows which clip each tensor gets.
    const base = PROFILES.molchanov2017;
    const profile = multiplicativeProfile({
      ...base,
      conv2d: { ...base.conv2d, logAlpha: { ...base.conv2d.logAlpha, clip: { min: -1, max: 2 } } },
      dense: { ...base.dense, logAlpha: { ...base.dense.logAlpha, clip: null } },
    });
    const model = createFastModel({
      inputShape: [28, 28, 1],
      layers: LENET_5_CAFFE,
      seed: 4,
      profile: multiplicativeProfile(base),
    });
    startMultiplicative(model, profile);
    const seen = { conv2d: { below: 0, inside: 0, above: 0 }, dense: { below: 0, above: 0 } };
    for (const layer of model.parameters()) {
      const theta = layer.theta.data;
      const noise = layer.noise.data;
      let worst = 0;
      theta.forEach((w, i) => {
        const raw = SVD_INIT_LOG_SIGMA2 - Math.log(w * w);
        let expected = raw;
        if (layer.kind === 'conv2d') {
          expected = Math.min(2, Math.max(-1, raw));
          seen.conv2d[raw < -1 ? 'below' : raw > 2 ? 'above' : 'inside'] += 1;
        } else {
          seen.dense[raw < 0 ? 'below' : 'above'] += 1;
        }
        worst = Math.max(
          worst,
          Math.abs((noise[i] as number) - expected) / Math.max(1, Math.abs(expected)),
        );
      });
      // float32 rounding of a float64 value of magnitude up to ~30.
      expect(worst, layer.name).toBeLessThan(1e-6);
    }
    // The check above saw both bounds of the conv2d clip at work, and dense values on both sides
    // of 0 (a missing bound read as 0 would clip them).
    expect(Math.min(...Object.values(seen.conv2d))).toBeGreaterThan(0);
    expect(Math.min(seen.dense.below, seen.dense.above)).toBeGreaterThan(0);
    model.dispose();
  });

  it('vdspec train --multiplicative records it; with --baseline or a VD profile it is exit 2', async () => {
    const dir = join(tempDir(), 'run');
    const small = [
      '--data',
      'mnist-small',
      '--epochs',
      '1',
      '--train-limit',
      '200',
      '--test-limit',
      '50',
      '--quiet',
    ];
    const r = await cli(['lenet300', '--multiplicative', '--train-clip', ...small, '--out', dir]);
    expect(r.code, r.err).toBe(0);
    const record = checkRecord(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')), dir);
    expect(record.config.reparameterization).toBe('multiplicative');
    for (const extra of [['--baseline'], ['--profile', 'kingma2015']]) {
      const bad = await cli([
        'lenet300',
        '--multiplicative',
        ...extra,
        ...small,
        '--out',
        join(tempDir(), 'x'),
      ]);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('multiplicative');
    }
    // One step (100 images, batch 100): the epoch's KL is the KL at the start (recorded whatever
    // its weight), which a multiplicative run shares with the additive one only if it starts
    // from its log_alpha.
    const oneStep = [
      '--data',
      'mnist-small',
      '--epochs',
      '1',
      '--train-limit',
      '100',
      '--test-limit',
      '50',
      '--quiet',
      '--train-clip',
    ];
    const runs = await Promise.all(
      [[], ['--multiplicative']].map(async (extra) => {
        const out = join(tempDir(), 'one');
        const done = await cli(['lenet300', ...extra, ...oneStep, '--out', out]);
        expect(done.code, done.err).toBe(0);
        return checkRecord(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), out);
      }),
    );
    const [additiveKl, multiplicativeKl] = runs.map((run) => run.epochs[0]!.kl);
    expect(Math.abs(multiplicativeKl! - additiveKl!)).toBeLessThan(1e-4 * additiveKl!);
    expect(Math.abs(runs[1]!.epochs[0]!.loss - runs[0]!.epochs[0]!.loss)).toBeLessThan(
      1e-4 * runs[0]!.epochs[0]!.loss,
    );
    // An old record (no field) reads as additive.
    const old = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    delete old.config.reparameterization;
    expect(checkRecord(old, 'old').config.reparameterization).toBe('additive');
  });
});

describe('spec/train.md#comparing-runs: vdspec compare --lower-bound', () => {
  it('draws -(data term + KL) / N per epoch for each run', async () => {
    const root = tempDir();
    const epoch = (e: number, dataTerm: number, kl: number) => ({
      epoch: e,
      klWeight: 1,
      learningRate: 1e-3,
      loss: dataTerm + kl,
      dataTerm,
      kl,
      trainAccuracy: 0.5,
      testAccuracy: 0.5,
      testCrossEntropy: 1,
      kept: 10,
      total: 20,
      compression: 2,
      seconds: 1,
    });
    const record = (epochs: ReturnType<typeof epoch>[]) => ({
      format: 'vdspec-train',
      version: 1,
      config: {
        network: 'lenet300',
        profile: 'molchanov2017',
        baseline: false,
        epochs: 2,
        seed: 1,
        splitSeed: 20170,
        trainLimit: null,
        testLimit: null,
        initFrom: null,
        recipe: {},
      },
      trainSize: 100,
      testSize: 10,
      backends: ['wasm'],
      epochs,
      wallSeconds: 2,
      complete: true,
      final: null,
    });
    const runs = { a: [epoch(1, 300, 50), epoch(2, 200, 25)], b: [epoch(1, 400, 100)] };
    for (const [name, epochs] of Object.entries(runs)) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'results.json'), JSON.stringify(record(epochs)));
    }
    const out: string[] = [];
    const code = await runCompareCommand(
      [
        '--out',
        join(root, 'plots'),
        '--name',
        'ab',
        '--title',
        'a and b',
        '--lower-bound',
        `${join(root, 'a')}=A`,
        `${join(root, 'b')}=B`,
      ],
      (s) => out.push(s),
      () => {},
    );
    expect(code).toBe(0);
    expect(out.join('\n')).toContain('ab-lower-bound.svg');
    const spec = JSON.parse(readFileSync(join(root, 'plots', 'ab-lower-bound.vl.json'), 'utf8'));
    // -(300 + 50) / 100, -(200 + 25) / 100, -(400 + 100) / 100.
    expect(spec.data.values).toEqual([
      { run: 'A', epoch: 1, bound: -3.5 },
      { run: 'A', epoch: 2, bound: -2.25 },
      { run: 'B', epoch: 1, bound: -5 },
    ]);
    expect(readFileSync(join(root, 'plots', 'ab-lower-bound.svg'), 'utf8')).toContain('<svg');
  });
});
