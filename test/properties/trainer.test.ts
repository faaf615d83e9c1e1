/**
 * spec/train.md#a-run: the trainer module (`src/train/trainer.ts`) without
 * the command line, on runs small enough to take a second (30 training
 * images, one step an epoch), so that every rule of a run is checked where
 * the trainer applies it: the schedule and batch order of each epoch (a
 * 4-epoch run replayed by hand, bit for bit), the permuted labels, the
 * record and its callbacks, pausing, stopping
 * and resuming, the refusals (each with its code, argument and message, and
 * nothing written), --init-from, and the readers of records. The command
 * line's own tests are in train.test.ts; this file is what `npm run mutate`
 * runs against the trainer (spec/mutation.md).
 *
 * Expected values are worked out here, never by the trainer: the seeds of
 * the batch order and of the random labels are FNV-1a and xorshift32 done by
 * hand in Python (spec/train.md#a-run, #random-labels).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import * as tf from '@tensorflow/tfjs';

import { activeBackend, initBackend } from '../../src/fast/backend.js';
import { createFastModel } from '../../src/fast/fast-model.js';
import { LENET_300_100 } from '../../src/fast/networks.js';
import { loadDataSet, MNIST_SPLIT_SEED, stratifiedSplit } from '../../src/data/mnist.js';
import { PROFILES } from '../../src/profiles.js';
import { readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { recipeFor } from '../../src/train/recipe.js';
import {
  batchOrder,
  batchOrderSeed,
  CHECKPOINT_FILE,
  checkRecord,
  describeConfigField,
  initFromDir,
  jsonNumbers,
  makeConfig,
  MAX_THREADS,
  NOISE_GENERATOR,
  OLD_NOISE_GENERATOR,
  permutedLabels,
  readRecordFile,
  readRunConfig,
  RESULTS_FILE,
  sameField,
  trainRun,
  type TrainConfig,
  type TrainProgress,
  type TrainRecord,
} from '../../src/train/trainer.js';
import { expectRefusal, expectRejection } from './refusals.js';

await initBackend();

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-trainer-'));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** 30 training images (one step of 100 an epoch) and 20 test images of the 8,000 / 2,000 split. */
const tinyInput = {
  network: 'lenet300',
  data: 'mnist-small',
  epochs: 3,
  seed: 5,
  trainLimit: 30,
  testLimit: 20,
  threads: 1,
};
function tiny(extra: Partial<Parameters<typeof makeConfig>[0]> = {}): TrainConfig {
  return makeConfig({ ...tinyInput, ...extra });
}

function resultsOf(dir: string): TrainRecord {
  return readRecordFile(join(dir, RESULTS_FILE));
}

describe('spec/train.md#a-run: the batch order and the random labels, by their literal values', () => {
  it('the batch order of epoch e is the Fisher-Yates shuffle seeded with fnv1a32("<seed>/batches/<e>")', () => {
    // FNV-1a of "7/batches/0" and "7/batches/3", and the two shuffles, computed in Python.
    expect(batchOrderSeed(7, 0)).toBe(1314492766);
    expect(batchOrderSeed(7, 3)).toBe(1297715147);
    expect([...batchOrder(8, 7, 0)]).toEqual([6, 0, 4, 5, 1, 2, 7, 3]);
    expect([...batchOrder(8, 7, 1)]).toEqual([5, 2, 7, 0, 6, 1, 4, 3]);
    expect([...batchOrder(1, 7, 0)]).toEqual([0]);
    expect([...batchOrder(0, 7, 0)]).toEqual([]);
  });

  it('random labels are the Fisher-Yates shuffle seeded with fnv1a32("<seed>/labels"); the input is left alone', () => {
    const labels = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...permutedLabels(labels, 5)]).toEqual([2, 9, 4, 6, 5, 0, 3, 8, 1, 7]);
    expect([...labels]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('batch order', () => {
  it('is a permutation, the same for the same seed and epoch, another for another epoch', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.nat(300),
        (count, seed, epoch) => {
          const order = batchOrder(count, seed, epoch);
          expect([...order].sort((a, b) => a - b)).toEqual([...Array(count).keys()]);
          expect(batchOrder(count, seed, epoch)).toEqual(order);
          if (count >= 20) expect(batchOrder(count, seed, epoch + 1)).not.toEqual(order);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('makeConfig: defaults, and every refusal with its argument', () => {
  it('fills in the defaults, the recipe and the generator', () => {
    const c = makeConfig({ network: 'lenet5', epochs: 4, threads: 2 });
    expect(c).toEqual({
      network: 'lenet5',
      data: 'mnist',
      profile: 'molchanov2017',
      trainClip: null,
      randomLabels: null,
      vdLogAlpha: null,
      baseline: false,
      epochs: 4,
      seed: 1,
      splitSeed: MNIST_SPLIT_SEED,
      trainLimit: null,
      testLimit: null,
      initFrom: null,
      recipe: recipeFor('lenet5', 4),
      threads: 2,
      noise: NOISE_GENERATOR,
      reparameterization: 'additive',
    });
    expect(NOISE_GENERATOR).toBe('philox-xoshiro-polar');
    expect(OLD_NOISE_GENERATOR).toBe('tf-random-normal');
  });

  it('keeps what it is given; a baseline has no train-clip; --init-from is made absolute', () => {
    const c = makeConfig({
      network: 'lenet300',
      data: 'mnist-small',
      profile: 'kingma2015',
      trainClip: true,
      randomLabels: 0,
      vdLogAlpha: 'scalar',
      epochs: 2,
      seed: 0,
      splitSeed: 3,
      trainLimit: 1,
      testLimit: 2,
      initFrom: 'runs/base',
      threads: MAX_THREADS,
    });
    expect(c).toMatchObject({
      data: 'mnist-small',
      profile: 'kingma2015',
      trainClip: true,
      randomLabels: 0,
      vdLogAlpha: 'scalar',
      seed: 0,
      splitSeed: 3,
      trainLimit: 1,
      testLimit: 2,
      initFrom: join(process.cwd(), 'runs/base'),
      threads: 64,
    });
    expect(makeConfig({ network: 'lenet300', epochs: 1, trainClip: false }).trainClip).toBe(false);
    expect(
      makeConfig({ network: 'lenet300', epochs: 1, baseline: true, trainClip: true }).trainClip,
    ).toBeNull();
    expect(makeConfig({ network: 'lenet300', epochs: 1, seed: 2 ** 31 - 1 }).seed).toBe(
      2 ** 31 - 1,
    );
    expect(
      makeConfig({ network: 'lenet300', epochs: 1, multiplicative: true }).reparameterization,
    ).toBe('multiplicative');
    expect(makeConfig({ network: 'lenet300', epochs: 1, initFrom: '' }).initFrom).toBeNull();
    expect(
      makeConfig({ network: 'lenet300', epochs: 1, trainLimit: null, testLimit: null }),
    ).toMatchObject({ trainLimit: null, testLimit: null });
  });

  it('refuses each bad field, naming it', () => {
    const base = { network: 'lenet300', epochs: 1 };
    const refused = (
      input: Partial<Parameters<typeof makeConfig>[0]>,
      code: string,
      argument: string,
      message: string,
    ) => expectRefusal(() => makeConfig({ ...base, ...input }), code, argument, message);
    refused(
      { network: 'lenet7' },
      'invalid_argument',
      'network',
      'unknown network "lenet7" (expected lenet300 or lenet5)',
    );
    refused(
      { profile: 'nope' },
      'unknown_profile',
      'profile',
      `unknown profile "nope" (expected one of ${Object.keys(PROFILES).join(', ')})`,
    );
    refused(
      { seed: -1 },
      'invalid_argument',
      'seed',
      'must be an integer in [0, 2^31 - 1], got -1',
    );
    refused(
      { seed: 2 ** 31 },
      'invalid_argument',
      'seed',
      'must be an integer in [0, 2^31 - 1], got 2147483648',
    );
    refused(
      { seed: 1.5 },
      'invalid_argument',
      'seed',
      'must be an integer in [0, 2^31 - 1], got 1.5',
    );
    refused(
      { data: 'cifar' },
      'invalid_argument',
      'data',
      'unknown data set "cifar" (expected mnist or mnist-small)',
    );
    refused(
      { profile: 'kingma2015', vdLogAlpha: 'unit' },
      'invalid_argument',
      'vd-log-alpha',
      'expected weight, input, scalar, got "unit"',
    );
    const onlyVd = 'only a VD run (--profile kingma2015, not --baseline) learns log_alpha directly';
    refused({ vdLogAlpha: 'weight' }, 'invalid_argument', 'vd-log-alpha', onlyVd);
    refused(
      { profile: 'kingma2015', vdLogAlpha: 'weight', baseline: true },
      'invalid_argument',
      'vd-log-alpha',
      onlyVd,
    );
    refused(
      { randomLabels: -1 },
      'invalid_argument',
      'random-labels',
      'must be an integer >= 0, got -1',
    );
    refused(
      { randomLabels: 0.5 },
      'invalid_argument',
      'random-labels',
      'must be an integer >= 0, got 0.5',
    );
    const onlySvd =
      'only a Sparse VD run (not --baseline, not kingma2015) has an additive noise parameter to replace';
    refused(
      { multiplicative: true, baseline: true },
      'invalid_argument',
      'multiplicative',
      onlySvd,
    );
    refused(
      { multiplicative: true, profile: 'kingma2015' },
      'invalid_argument',
      'multiplicative',
      onlySvd,
    );
    refused(
      { baseline: true, initFrom: 'x' },
      'invalid_argument',
      'init-from',
      'a baseline run starts from scratch',
    );
    refused({ epochs: 0 }, 'invalid_argument', 'epochs', 'must be an integer >= 1, got 0');
    refused({ epochs: 1.5 }, 'invalid_argument', 'epochs', 'must be an integer >= 1, got 1.5');
    refused({ splitSeed: 0 }, 'invalid_argument', 'split-seed', 'must be an integer >= 1, got 0');
    refused({ trainLimit: 0 }, 'invalid_argument', 'train-limit', 'must be an integer >= 1, got 0');
    refused(
      { testLimit: 2.5 },
      'invalid_argument',
      'test-limit',
      'must be an integer >= 1, got 2.5',
    );
    for (const threads of [0, MAX_THREADS + 1, 1.5]) {
      refused(
        { threads },
        'invalid_argument',
        'threads',
        `must be an integer in [1, 64], got ${threads}`,
      );
    }
  });
});

describe('a configuration in words, and whether two agree', () => {
  it('describes each field by the flag that sets it', () => {
    const c = tiny();
    expect(describeConfigField(c, 'network')).toBe('network lenet300');
    expect(describeConfigField(c, 'trainClip')).toBe("the profile's --train-clip default");
    expect(describeConfigField({ ...c, trainClip: true }, 'trainClip')).toBe('--train-clip');
    expect(describeConfigField({ ...c, trainClip: false }, 'trainClip')).toBe('--no-train-clip');
    expect(describeConfigField(c, 'baseline')).toBe('no --baseline');
    expect(describeConfigField({ ...c, baseline: true }, 'baseline')).toBe('--baseline');
    expect(describeConfigField(c, 'reparameterization')).toBe('no --multiplicative');
    expect(
      describeConfigField({ ...c, reparameterization: 'multiplicative' }, 'reparameterization'),
    ).toBe('--multiplicative');
    expect(describeConfigField(c, 'randomLabels')).toBe('no --random-labels');
    expect(describeConfigField(c, 'epochs')).toBe('--epochs 3');
    expect(describeConfigField(c, 'data')).toBe('--data mnist-small');
    expect(describeConfigField(c, 'trainLimit')).toBe('--train-limit 30');
    expect(describeConfigField({ ...c, vdLogAlpha: 'input' }, 'vdLogAlpha')).toBe(
      '--vd-log-alpha input',
    );
  });

  it('compares --init-from as the directory it names from the run, other fields by value', () => {
    const c = tiny();
    const run = '/data/runs/svd';
    const relative = { ...c, initFrom: '../base' };
    const absolute = { ...c, initFrom: '/data/runs/base' };
    expect(initFromDir(relative, run)).toBe('/data/runs/base');
    expect(initFromDir(c, run)).toBeNull();
    expect(sameField(relative, absolute, 'initFrom', run)).toBe(true);
    expect(sameField(relative, { ...c, initFrom: '../other' }, 'initFrom', run)).toBe(false);
    expect(sameField(relative, c, 'initFrom', run)).toBe(false);
    expect(sameField(c, { ...c, epochs: 4 }, 'epochs', run)).toBe(false);
    expect(sameField(c, { ...c }, 'epochs', run)).toBe(true);
  });

  it('writes a compression of Infinity (nothing kept) as a string, other values as they are', () => {
    expect(JSON.stringify({ a: Infinity, b: -Infinity, c: NaN, d: 2.5, e: 'x' }, jsonNumbers)).toBe(
      '{"a":"Infinity","b":"-Infinity","c":"NaN","d":2.5,"e":"x"}',
    );
  });
});

describe(
  'trainRun: the record, the callbacks, pausing, stopping and resuming',
  { timeout: 120_000 },
  () => {
    it('a run paused after epoch 2 and resumed records every epoch, the sessions and the final results', async () => {
      const dir = join(tempDir(), 'run');
      const config = tiny();
      const events: string[] = [];
      const steps: TrainProgress[] = [];
      const tensorsBefore = tf.memory().numTensors;
      const began = performance.now();
      const paused = await trainRun(config, {
        outDir: dir,
        resume: false,
        until: 2,
        onStart: () => events.push(`start ${existsSync(join(dir, CHECKPOINT_FILE))}`),
        onStep: (p) => {
          events.push(`step ${p.epoch}`);
          steps.push(p);
        },
        onEpoch: (m, record) => {
          events.push(`epoch ${m.epoch}`);
          expect(record.epochs.at(-1)).toEqual(m);
          // The record is saved before onEpoch: the file already holds this epoch.
          expect(resultsOf(dir).epochs).toHaveLength(m.epoch);
        },
      });
      // onStart comes after every check and before the first checkpoint.
      expect(events).toEqual(['start false', 'step 1', 'epoch 1', 'step 2', 'epoch 2']);
      expect(paused.status).toBe('paused');
      expect(paused.record.complete).toBe(false);
      expect(paused.record.final).toBeNull();
      expect(paused.record.trainSize).toBe(30);
      expect(paused.record.testSize).toBe(20);
      expect(paused.record.backends).toEqual([activeBackend()]);
      // Every tensor of the run (the model, the images, each batch) is disposed of.
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      const elapsed = (performance.now() - began) / 1000;
      expect(steps.map((s) => [s.epoch, s.epochs, s.step, s.steps, s.sessionSteps])).toEqual([
        [1, 3, 1, 1, 1],
        [2, 3, 1, 1, 2],
      ]);
      expect(steps[0]!.lastEpoch).toBeNull();
      expect(steps[1]!.lastEpoch).toEqual(paused.record.epochs[0]);
      steps.forEach((s, i) => {
        expect(Number.isFinite(s.loss)).toBe(true);
        expect(s.sessionSeconds).toBeGreaterThan(0);
        expect(s.sessionSeconds).toBeLessThanOrEqual(elapsed);
        // One step an epoch: the epoch's training accuracy is that step's.
        expect(paused.record.epochs[i]!.trainAccuracy).toBeCloseTo(s.accuracy, 12);
      });
      for (const e of paused.record.epochs) {
        expect(e.seconds).toBeGreaterThan(0);
        expect(e.seconds).toBeLessThanOrEqual(elapsed);
        expect(e.trainAccuracy).toBeGreaterThanOrEqual(0);
        expect(e.trainAccuracy).toBeLessThanOrEqual(1);
      }
      expect(resultsOf(dir)).toEqual(paused.record);

      // --test-limit 20: stratifiedSplit's picks of the test labels with the split seed
      // (spec/train.md#a-run), named by their index in the digits.
      const { test: fullTest } = loadDataSet('mnist-small', MNIST_SPLIT_SEED);
      const picks = stratifiedSplit(fullTest.labels, { testSize: 20, seed: MNIST_SPLIT_SEED }).test;
      let finishedWith: {
        testCount: number;
        indices: number[];
        xShape: number[];
        epochs: number;
      } | null = null;
      const done = await trainRun(config, {
        outDir: dir,
        resume: true,
        finish: async (_model, data, record) => {
          finishedWith = {
            testCount: data.test.count,
            indices: [...data.test.indices],
            xShape: data.xTest.shape,
            epochs: record.epochs.length,
          };
          return { note: 'extra' };
        },
      });
      expect(finishedWith).toEqual({
        testCount: 20,
        indices: [...picks].map((i) => fullTest.indices[i]!),
        xShape: [20, 784],
        epochs: 3,
      });
      const r = done.record;
      expect(done.status).toBe('complete');
      expect(r.complete).toBe(true);
      expect(r.backends).toHaveLength(2);
      expect(r.epochs.slice(0, 2)).toEqual(paused.record.epochs);
      expect(r.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
      const sum = r.epochs.reduce((s, e) => s + e.seconds, 0);
      expect(r.wallSeconds).toBeCloseTo(sum, 9);
      for (const e of r.epochs) {
        // One step an epoch: the epoch's means are that step's values, the loss in float32.
        expect(Math.abs(e.loss - (e.dataTerm + e.klWeight * e.kl))).toBeLessThanOrEqual(
          1e-6 * Math.abs(e.loss),
        );
        expect(e.total).toBe(784 * 300 + 300 * 100 + 100 * 10);
        expect(e.compression).toBeCloseTo(e.total / e.kept, 9);
        expect(e.trainAccuracy * 30).toBeCloseTo(Math.round(e.trainAccuracy * 30), 9);
        expect(e.testAccuracy * 20).toBeCloseTo(Math.round(e.testAccuracy * 20), 9);
        expect(e.testCrossEntropy).toBeGreaterThan(0);
        expect(e.kl).toBeGreaterThan(0);
      }
      const final = r.final!;
      expect(final.testError).toBe(1 - r.epochs[2]!.testAccuracy);
      expect(final.extra).toEqual({ note: 'extra' });
      expect(final.layers.map((l) => [l.name, l.total])).toEqual([
        ['dense0', 784 * 300],
        ['dense1', 300 * 100],
        ['dense2', 100 * 10],
      ]);
      for (const l of [...final.layers, final.overall]) {
        expect(l.keptPercent).toBeCloseTo((100 * l.kept) / l.total, 12);
        expect(l.compression).toBeCloseTo(l.total / l.kept, 9);
      }
      expect(final.overall.kept).toBe(r.epochs[2]!.kept);
      expect(final.overall.kept).toBe(final.layers.reduce((s, l) => s + l.kept, 0));
      expect(resultsOf(dir)).toEqual(r);
      expect(readCheckpoint(join(dir, CHECKPOINT_FILE), (x) => checkRecord(x, dir)).header).toEqual(
        r,
      );
      expect(readRunConfig(dir)).toEqual(config);

      // The same run straight through: the resumed one continued it exactly.
      const straight = await trainRun(config, {
        outDir: join(tempDir(), 'straight'),
        resume: false,
      });
      const withoutTime = (record: TrainRecord) =>
        record.epochs.map(({ seconds: _seconds, ...rest }) => rest);
      expect(withoutTime(straight.record)).toEqual(withoutTime(r));
      expect(straight.record.final!.overall).toEqual(r.final!.overall);
    });

    it('a baseline records beta 0 and no KL in every epoch', async () => {
      const { record } = await trainRun(tiny({ baseline: true, epochs: 2 }), {
        outDir: join(tempDir(), 'base'),
        resume: false,
      });
      expect(record.epochs.map((e) => [e.klWeight, e.kl])).toEqual([
        [0, 0],
        [0, 0],
      ]);
      expect(record.final!.overall.compression).toBe(1);
    });

    it('a stop after a step keeps the epochs before it; a stop at the exports keeps a complete run without final results', async () => {
      const dir = join(tempDir(), 'stop');
      const config = tiny({ epochs: 2 });
      let polls = 0;
      const stopped = await trainRun(config, {
        outDir: dir,
        resume: false,
        // Epoch 1's step, then epoch 2's: stop after the second.
        shouldStop: () => ++polls === 2,
      });
      expect(stopped.status).toBe('stopped');
      expect(stopped.record.epochs).toHaveLength(1);
      expect(resultsOf(dir).epochs).toHaveLength(1);

      // Stopped in its first step, a new run leaves its start: no epoch, not complete. A
      // resume stopped in its first step leaves the files as they were.
      const early = join(tempDir(), 'early');
      const atOnce = { shouldStop: () => true };
      const first = await trainRun(config, { outDir: early, resume: false, ...atOnce });
      expect(first.status).toBe('stopped');
      const start = readFileSync(join(early, RESULTS_FILE), 'utf8');
      expect(resultsOf(early)).toMatchObject({ epochs: [], complete: false, final: null });
      expect(resultsOf(early).backends).toHaveLength(1);
      await trainRun(config, { outDir: early, resume: true, ...atOnce });
      expect(readFileSync(join(early, RESULTS_FILE), 'utf8')).toBe(start);

      let finishCalls = 0;
      const atExports = await trainRun(config, {
        outDir: dir,
        resume: true,
        // The epoch's step polls once; the first stop point of the exports stops.
        shouldStop: () => ++polls >= 4,
        finish: async () => {
          finishCalls++;
          return {};
        },
      });
      expect(atExports.status).toBe('stopped');
      expect(finishCalls).toBe(0);
      expect(atExports.record.complete).toBe(true);
      expect(resultsOf(dir).final).toBeNull();

      const inExports = await trainRun(config, {
        outDir: dir,
        resume: true,
        shouldStop: () => finishCalls > 0,
        finish: async (_m, _d, _r, stopPoint) => {
          finishCalls++;
          await stopPoint();
          throw new Error('a stop point that does not stop');
        },
      });
      expect(inExports.status).toBe('stopped');
      expect(resultsOf(dir).final).toBeNull();

      // An error of the exports is not a stop: it reaches the caller.
      await expect(
        trainRun(config, {
          outDir: dir,
          resume: true,
          finish: async () => {
            throw new Error('the plots failed');
          },
        }),
      ).rejects.toThrow('the plots failed');
    });

    it('refuses, with nothing written, a run over a run, a resume of nothing, another configuration, an older generator and a bad --until', async () => {
      const dir = join(tempDir(), 'run');
      const config = tiny({ epochs: 2 });
      await trainRun(config, { outDir: dir, resume: false, until: 1 });
      const before = readFileSync(join(dir, CHECKPOINT_FILE));
      await expectRejection(
        () => trainRun(config, { outDir: dir, resume: false }),
        'invalid_argument',
        'out',
        `${dir} already holds a run; pass --resume to continue it, or choose another --out`,
      );
      await expectRejection(
        () => trainRun({ ...config, epochs: 4 }, { outDir: dir, resume: true }),
        'invalid_argument',
        'resume',
        `the run in ${dir} has another configuration (--epochs 2 there, --epochs 4 here)`,
      );
      await expectRejection(
        () => trainRun({ ...config, seed: 6 }, { outDir: dir, resume: true }),
        'invalid_argument',
        'resume',
        `the run in ${dir} has another configuration (--seed 5 there, --seed 6 here)`,
      );
      for (const until of [0, 3, 1.5]) {
        await expectRejection(
          () => trainRun(config, { outDir: dir, resume: true, until }),
          'invalid_argument',
          'until',
          'must be an integer in [1, 2]',
        );
      }
      expect(readFileSync(join(dir, CHECKPOINT_FILE)).equals(before)).toBe(true);

      // A checkpoint of an older vdspec, whose noise came from tf.randomNormal.
      const { header, state } = readCheckpoint(join(dir, CHECKPOINT_FILE), (x) =>
        checkRecord(x, dir),
      );
      const old = join(tempDir(), 'old');
      mkdirSync(old);
      writeCheckpoint(
        join(old, CHECKPOINT_FILE),
        { ...header, config: { ...header.config, noise: OLD_NOISE_GENERATOR } },
        state,
      );
      await expectRejection(
        () => trainRun(config, { outDir: old, resume: true }),
        'invalid_argument',
        'resume',
        `the run in ${old} drew its noise with ${OLD_NOISE_GENERATOR} (an older vdspec), so it cannot be continued exactly: start it again in another --out`,
      );

      const none = join(tempDir(), 'none');
      await expectRejection(
        () => trainRun(config, { outDir: none, resume: true }),
        'invalid_argument',
        'resume',
        `${none} holds no checkpoint to resume`,
      );
      const fresh = join(tempDir(), 'fresh');
      await expectRejection(
        () => trainRun(config, { outDir: fresh, resume: false, until: 3 }),
        'invalid_argument',
        'until',
        'must be an integer in [1, 2]',
      );
      expect(existsSync(fresh)).toBe(false);
      const file = join(tempDir(), 'a-file');
      writeFileSync(file, 'x');
      await expectRejection(
        () => trainRun(config, { outDir: file, resume: false }),
        'io_error',
        'out',
        `${file} exists and is not a directory`,
      );
      const under = join(file, 'run');
      await expectRejection(
        () => trainRun(config, { outDir: under, resume: false }),
        'io_error',
        'out',
        new RegExp(`^out: cannot create ${under}: `),
      );
    });
  },
);

describe('trainRun: what the configuration changes', { timeout: 120_000 }, () => {
  /** The model a run trains, as `finish` sees it, and the run's record. */
  async function trained(config: TrainConfig) {
    let seen: { trainClip: boolean; noiseParameter: string; noiseSizes: number[] } | null = null;
    const { record } = await trainRun(config, {
      outDir: join(tempDir(), 'run'),
      resume: false,
      finish: async (model) => {
        seen = {
          trainClip: model.trainClip,
          noiseParameter: model.profile.noiseParameter,
          noiseSizes: model
            .exportState()
            .tensors.filter((t) => t.name.endsWith('.noise'))
            .map((t) => t.data.length),
        };
        return {};
      },
    });
    return { record, model: seen! };
  }

  it('--train-clip and --vd-log-alpha reach the model', async () => {
    const clip = !PROFILES.molchanov2017.trainClipDefault;
    expect((await trained(tiny({ epochs: 1, trainClip: clip }))).model.trainClip).toBe(clip);
    const vd = await trained(
      tiny({ epochs: 1, profile: 'kingma2015', vdLogAlpha: 'scalar', trainLimit: 10 }),
    );
    expect(vd.model.noiseSizes).toEqual([1, 1, 1]);
  });

  it('--multiplicative trains log_alpha from the additive start: the same first step, then another run', async () => {
    const additive = await trained(tiny({ epochs: 2 }));
    const multiplicative = await trained(tiny({ epochs: 2, multiplicative: true }));
    expect(additive.model.noiseParameter).toBe('log_sigma2');
    expect(multiplicative.model.noiseParameter).toBe('log_alpha');
    const [a1, a2] = additive.record.epochs;
    const [m1, m2] = multiplicative.record.epochs;
    // Epoch 1 is one step from the same distribution (log_alpha = log_sigma2 - log theta^2 in
    // float32): the same loss and KL to float32 rounding.
    expect(Math.abs(m1!.loss - a1!.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(a1!.loss));
    expect(Math.abs(m1!.kl - a1!.kl)).toBeLessThanOrEqual(1e-5 * Math.abs(a1!.kl));
    expect(Math.abs(m2!.loss - a2!.loss)).toBeGreaterThan(1e-4 * Math.abs(a2!.loss));
  });

  it('--random-labels permutes the training labels only', async () => {
    const truth = await trained(tiny({ epochs: 1 }));
    const random = await trained(tiny({ epochs: 1, randomLabels: 7 }));
    expect(random.record.epochs[0]!.dataTerm).not.toBe(truth.record.epochs[0]!.dataTerm);
    expect(random.record.trainSize).toBe(truth.record.trainSize);
  });

  it('no --test-limit, or one at or above the 2,000 test images, is every test image', async () => {
    const runs: TrainRecord[] = [];
    for (const testLimit of [null, 2000, 5000]) {
      const { record } = await trainRun(tiny({ epochs: 1, trainLimit: 10, testLimit }), {
        outDir: join(tempDir(), 'run'),
        resume: false,
      });
      runs.push(record);
    }
    expect(runs.map((r) => r.testSize)).toEqual([2000, 2000, 2000]);
    const metrics = runs.map((r) => [r.epochs[0]!.testAccuracy, r.epochs[0]!.testCrossEntropy]);
    expect(metrics[1]).toEqual(metrics[0]);
    expect(metrics[2]).toEqual(metrics[0]);
  });

  it('a results file that cannot be written is an io_error naming it', async () => {
    const dir = join(tempDir(), 'run');
    mkdirSync(join(dir, RESULTS_FILE), { recursive: true });
    await expectRejection(
      () => trainRun(tiny(), { outDir: dir, resume: false }),
      'io_error',
      'out',
      new RegExp(`^out: cannot write ${join(dir, RESULTS_FILE)}: .+`),
    );
  });
});

describe(
  'trainRun --init-from: the theta and bias of a finished baseline',
  { timeout: 120_000 },
  () => {
    it('starts from them, records the directory relative to the run, and refuses anything else', async () => {
      const root = tempDir();
      const base = join(root, 'base');
      await trainRun(tiny({ baseline: true, epochs: 1 }), { outDir: base, resume: false });
      const baseState = readCheckpoint(join(base, CHECKPOINT_FILE), (x) =>
        checkRecord(x, base),
      ).state;

      const dir = join(root, 'svd');
      const stopped = await trainRun(tiny({ initFrom: base }), {
        outDir: dir,
        resume: false,
        shouldStop: () => true,
      });
      expect(stopped.record.config.initFrom).toBe('../base');
      // Stopped in the first step: the checkpoint is the run's start.
      const start = readCheckpoint(join(dir, CHECKPOINT_FILE), (x) => checkRecord(x, dir)).state;
      const byName = new Map(baseState.tensors.map((t) => [t.name, t.data]));
      const copied = start.tensors.filter((t) => /\.(theta|bias)$/.test(t.name));
      expect(copied.map((t) => t.name)).toEqual([
        'dense0.theta',
        'dense0.bias',
        'dense1.theta',
        'dense1.bias',
        'dense2.theta',
        'dense2.bias',
      ]);
      for (const t of copied) expect([...t.data], t.name).toEqual([...byName.get(t.name)!]);
      // Only theta and bias: Adam's moments and the step are the new run's, zero.
      const moments = (state: typeof start) =>
        state.tensors.filter((t) => t.name.includes('.adam_'));
      expect(moments(baseState).some((t) => t.data.some((v) => v !== 0))).toBe(true);
      for (const t of moments(start))
        expect(
          t.data.every((v) => v === 0),
          t.name,
        ).toBe(true);
      expect(start.step).toBe(0);

      // Resumed, it continues from its own checkpoint: the baseline is not read again (here
      // it has moved away).
      renameSync(base, `${base}-moved`);
      const resumed = await trainRun(tiny({ initFrom: base }), {
        outDir: dir,
        resume: true,
        until: 1,
      });
      expect(resumed.status).toBe('paused');
      renameSync(`${base}-moved`, base);

      const svdRun = join(root, 'svd-full');
      await trainRun(tiny({ epochs: 1 }), { outDir: svdRun, resume: false });
      const unfinished = join(root, 'base-unfinished');
      await trainRun(tiny({ baseline: true, epochs: 2 }), {
        outDir: unfinished,
        resume: false,
        until: 1,
      });
      const refused = (from: string, message: string) =>
        expectRejection(
          () => trainRun(tiny({ initFrom: from }), { outDir: join(root, 'never'), resume: false }),
          'invalid_argument',
          'init-from',
          message,
        );
      await refused(
        join(root, 'nothing'),
        `${join(root, 'nothing')} holds no checkpoint.bin: train the baseline there first (vdspec train lenet300 --baseline --out ${join(root, 'nothing')})`,
      );
      await refused(
        svdRun,
        `${svdRun} must hold a finished --baseline run of lenet300 (it holds an SVD run of lenet300, 1/1 epochs)`,
      );
      await refused(
        unfinished,
        `${unfinished} must hold a finished --baseline run of lenet300 (it holds a baseline run of lenet300, 1/2 epochs)`,
      );
      await expectRejection(
        () =>
          trainRun(makeConfig({ ...tinyInput, network: 'lenet5', initFrom: base }), {
            outDir: join(root, 'never'),
            resume: false,
          }),
        'invalid_argument',
        'init-from',
        `${base} must hold a finished --baseline run of lenet5 (it holds a baseline run of lenet300, 1/1 epochs)`,
      );
      expect(existsSync(join(root, 'never'))).toBe(false);

      // A baseline whose theta has another shape than the network's.
      const { header, state } = readCheckpoint(join(base, CHECKPOINT_FILE), (x) =>
        checkRecord(x, base),
      );
      const forged = join(root, 'forged');
      mkdirSync(forged);
      writeCheckpoint(join(forged, CHECKPOINT_FILE), header, {
        ...state,
        tensors: state.tensors.map((t) =>
          t.name === 'dense1.bias' ? { name: t.name, shape: [3], data: new Float32Array(3) } : t,
        ),
      });
      await expectRejection(
        () => trainRun(tiny({ initFrom: forged }), { outDir: join(root, 'never2'), resume: false }),
        'shape_mismatch',
        'init-from',
        `dense1.bias of ${forged} has another shape`,
      );
    });
  },
);

describe('the readers of a record: results.json and a checkpoint', { timeout: 60_000 }, () => {
  let record: TrainRecord;
  let dir: string;
  beforeAll(async () => {
    dir = join(tempDir(), 'run');
    record = (await trainRun(tiny({ epochs: 1 }), { outDir: dir, resume: false })).record;
  });

  it('refuses a missing, directory, empty, non-JSON or off-schema results file, naming it', () => {
    const refused = (path: string, why: string) =>
      expectRefusal(() => readRecordFile(path), 'invalid_checkpoint', 'record', `${path}: ${why}`);
    const missing = join(dir, 'missing.json');
    expectRefusal(
      () => readRecordFile(missing),
      'invalid_checkpoint',
      'record',
      `${missing}: cannot be read: no such file or directory`,
    );
    refused(dir, 'is a directory, not a file');
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, ' \n');
    refused(empty, 'is empty (not a JSON record)');
    const cut = join(dir, 'cut.json');
    writeFileSync(cut, '{"format": "vdspec-train"');
    const cutError = (() => {
      try {
        JSON.parse('{"format": "vdspec-train"');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    refused(cut, `is not valid JSON (truncated?): ${cutError}`);
    const off = join(dir, 'off.json');
    writeFileSync(off, JSON.stringify({ ...record, format: 'other' }));
    const read = () => readRecordFile(off);
    expect(read).toThrow(new RegExp(`^record: ${off}: /format: `));
  });

  it('refuses more epochs than configured, and reads an older record as those runs were made', () => {
    expectRefusal(
      () => checkRecord({ ...record, epochs: [record.epochs[0], record.epochs[0]] }, 'here'),
      'invalid_checkpoint',
      'record',
      'here: /epochs: 2 epochs recorded, 1 configured',
    );
    const {
      data: _d,
      trainClip: _t,
      randomLabels: _r,
      vdLogAlpha: _v,
      threads: _h,
      noise: _n,
      reparameterization: _p,
      ...older
    } = record.config;
    const read = checkRecord(JSON.parse(JSON.stringify({ ...record, config: older })), 'old');
    expect(read.config).toEqual({
      ...older,
      data: 'mnist-small',
      trainClip: null,
      randomLabels: null,
      vdLogAlpha: null,
      threads: 1,
      noise: 'tf-random-normal',
      reparameterization: 'additive',
    });
    // A field the record has is kept, not replaced by the older default.
    expect(checkRecord(JSON.parse(JSON.stringify(record)), 'now').config).toEqual(record.config);
  });

  it('readRunConfig: the configuration of a run directory, or a refusal naming --resume', () => {
    expect(readRunConfig(dir)).toEqual(record.config);
    const empty = tempDir();
    expectRefusal(
      () => readRunConfig(empty),
      'invalid_argument',
      'resume',
      `${empty} holds no checkpoint to resume`,
    );
  });
});

describe("spec/train.md#a-run: the trainer's call sites (schedule, batch order), replayed by hand", () => {
  it('a 4-epoch run records the schedule of each epoch, and its parameters and Adam state equal, bit for bit, steps taken here in the batchOrder of each epoch', async () => {
    const seed = 7;
    const n = 150; // two batches per epoch, the second of 50
    const config = makeConfig({
      network: 'lenet300',
      data: 'mnist-small',
      epochs: 4,
      seed,
      trainLimit: n,
      testLimit: 50,
    });
    const dir = join(tempDir(), 'run');
    const outcome = await trainRun(config, { outDir: dir, resume: false });
    expect(outcome.status).toBe('complete');

    // spec/train.md#recipe for E = 4, worked by hand: the KL warm-up runs from 5 * 4 / 200 = 0.1
    // to 20 * 4 / 200 = 0.4, so beta is 0 at epoch index 0 and 1 from index 1; lenet300's rate
    // is 1e-3 * min(1, 2 (4 - e) / 4): 1e-3 for e = 0, 1, 2 and 5e-4 for e = 3.
    const schedule = [
      { learningRate: 1e-3, klWeight: 0 },
      { learningRate: 1e-3, klWeight: 1 },
      { learningRate: 1e-3, klWeight: 1 },
      { learningRate: 5e-4, klWeight: 1 },
    ];
    const record = resultsOf(dir);
    expect(
      record.epochs.map((e) => ({ learningRate: e.learningRate, klWeight: e.klWeight })),
    ).toEqual(schedule);
    expect(record.epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);

    // The images of --train-limit 150 (spec/train.md#a-run): stratifiedSplit's "test" indices
    // of the training labels with the split seed, ascending.
    const { train } = loadDataSet('mnist-small', MNIST_SPLIT_SEED);
    const kept = stratifiedSplit(train.labels, { testSize: n, seed: MNIST_SPLIT_SEED }).test;
    expect([...kept].every((v, i) => i === 0 || v > kept[i - 1]!)).toBe(true);
    const model = createFastModel({
      inputShape: [784],
      layers: LENET_300_100,
      profile: 'molchanov2017',
      seed,
    });
    const orders: Uint32Array[] = [];
    // Each epoch's means over its two steps, as the record should hold them.
    const means: { loss: number; dataTerm: number; kl: number; trainAccuracy: number }[] = [];
    schedule.forEach(({ learningRate, klWeight }, e) => {
      const order = batchOrder(n, seed, e);
      orders.push(order);
      const sums = { loss: 0, dataTerm: 0, kl: 0, correct: 0 };
      for (let from = 0; from < n; from += 100) {
        const picked = order.subarray(from, Math.min(n, from + 100));
        const images = new Float32Array(picked.length * 784);
        picked.forEach((i, k) =>
          images.set(train.images.subarray(kept[i]! * 784, (kept[i]! + 1) * 784), k * 784),
        );
        const x = tf.tensor2d(images, [picked.length, 784]);
        const labels = Int32Array.from(picked, (i) => train.labels[kept[i]!]!);
        const r = model.trainStep({ x, labels }, { trainSize: n, klWeight, learningRate });
        sums.loss += r.loss;
        sums.dataTerm += r.dataTerm;
        sums.kl += r.kl;
        sums.correct += r.accuracy * picked.length;
        x.dispose();
      }
      means.push({
        loss: sums.loss / 2,
        dataTerm: sums.dataTerm / 2,
        kl: sums.kl / 2,
        trainAccuracy: sums.correct / n,
      });
    });
    record.epochs.forEach((epoch, e) => {
      for (const key of ['loss', 'dataTerm', 'kl', 'trainAccuracy'] as const) {
        expect(epoch[key], `epoch ${e + 1} ${key}`).toBeCloseTo(means[e]![key], 12);
      }
    });
    // The epochs' orders differ, so an epoch trained in another epoch's order would show.
    expect(orders[1]).not.toEqual(orders[0]);
    const mine = model.exportState();
    model.dispose();
    const { state } = readCheckpoint(join(dir, CHECKPOINT_FILE), (r) => checkRecord(r, dir));
    expect(state.step).toBe(8);
    expect(mine.step).toBe(8);
    expect(state.tensors.map((t) => t.name)).toEqual(mine.tensors.map((t) => t.name));
    state.tensors.forEach((t, i) => {
      const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      expect(bits(t.data).equals(bits(mine.tensors[i]!.data)), t.name).toBe(true);
    });
  });
});

describe('spec/train.md#random-labels: the permuted training labels', () => {
  it('a permutation of the labels (class counts kept), the same for a seed, another for another seed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ min: 0, max: 9, minLength: 2, maxLength: 300 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (labels, seed) => {
          const permuted = permutedLabels(labels, seed);
          expect(permuted.length).toBe(labels.length);
          expect([...permuted].sort()).toEqual([...labels].sort());
          expect(permutedLabels(labels, seed)).toEqual(permuted);
          // The input is not changed in place.
          expect(permuted).not.toBe(labels);
        },
      ),
      { numRuns: 100 },
    );
    // 0..999 distinct: a shuffle moves almost every label, and seeds give different orders.
    const distinct = Uint8Array.from({ length: 250 }, (_, i) => i);
    const a = permutedLabels(distinct, 1);
    const b = permutedLabels(distinct, 2);
    expect(a.filter((v, i) => v === i).length).toBeLessThan(10);
    expect(a).not.toEqual(b);
  });
});
