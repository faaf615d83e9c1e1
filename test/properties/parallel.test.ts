/**
 * spec/fast.md#threads: the data-parallel step. Worker threads run compiled
 * JavaScript, so the package is built first into a scratch directory inside
 * the repository (where node_modules resolves), and everything here runs from
 * that build: the trainer, its workers and `vdspec train --threads`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type * as TF from '@tensorflow/tfjs';

import type { ParallelTrainer as ParallelTrainerClass } from '../../src/fast/parallel.js';
import type { FastModel } from '../../src/fast/fast-model.js';
import type { FastModelOptions, FastTrainStepResult } from '../../src/fast/model-types.js';

const ROOT = resolve(import.meta.dirname, '../..');
let build = '';
let tf: typeof TF;
let ParallelTrainer: typeof ParallelTrainerClass;
let createFastModel: (o: FastModelOptions) => FastModel;

beforeAll(async () => {
  build = mkdtempSync(join(ROOT, '.test-build-'));
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', build],
    { cwd: ROOT, encoding: 'utf8' },
  );
  expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
  const load = (path: string) => import(pathToFileURL(join(build, path)).href);
  // The build imports the same @tensorflow/tfjs (node_modules are not bundled by vitest).
  tf = await import('@tensorflow/tfjs');
  await (await load('fast/backend.js')).initBackend({ backend: 'wasm' });
  ({ ParallelTrainer } = await load('fast/parallel.js'));
  ({ createFastModel } = await load('fast/fast-model.js'));
}, 120_000);
afterAll(() => {
  if (build !== '') rmSync(build, { recursive: true, force: true });
});

const DENSE: FastModelOptions = {
  inputShape: [20],
  layers: [{ kind: 'dense', units: 16 }, { kind: 'relu' }, { kind: 'dense', units: 5 }],
  profile: 'molchanov2017',
  seed: 3,
  trainClip: true,
};
const CONV: FastModelOptions = {
  inputShape: [8, 8, 2],
  layers: [
    { kind: 'conv2d', filters: 4, kernelSize: 3 },
    { kind: 'relu' },
    { kind: 'maxPool2x2' },
    { kind: 'flatten' },
    { kind: 'dense', units: 5 },
  ],
  profile: 'molchanov2017',
  seed: 4,
};

function batchOf(options: FastModelOptions, rows: number, seed: number) {
  const size = options.inputShape.reduce((a, b) => a * b, 1);
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const x = Float32Array.from({ length: rows * size }, () => next());
  const labels = Int32Array.from({ length: rows }, () => Math.floor(next() * 5));
  return { x, labels };
}

const STEP = { trainSize: 500, klWeight: 0.5, learningRate: 1e-2 };

function trainables(model: FastModel): Float32Array {
  const total = model.trainableShapes().reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const values = new Float32Array(total);
  model.readTrainables(values);
  return values;
}

/** `steps` steps on `threads` threads (1: the model's own trainStep); results and final parameters. */
async function run(
  options: FastModelOptions,
  threads: number | 'plain',
  steps: number,
  rows = 12,
): Promise<{ results: FastTrainStepResult[]; parameters: Float32Array }> {
  const model = createFastModel(options);
  const results: FastTrainStepResult[] = [];
  if (threads === 'plain') {
    for (let s = 0; s < steps; s++) {
      const { x, labels } = batchOf(options, rows, 100 + s);
      const xt = tf.tensor(x, [rows, ...options.inputShape]);
      results.push(model.trainStep({ x: xt, labels }, STEP));
      xt.dispose();
    }
  } else {
    const trainer = await ParallelTrainer.create(model, options, threads);
    try {
      for (let s = 0; s < steps; s++) {
        const { x, labels } = batchOf(options, rows, 100 + s);
        results.push(await trainer.trainStep(x, labels, STEP));
      }
    } finally {
      await trainer.close();
    }
  }
  const parameters = trainables(model);
  model.dispose();
  return { results, parameters };
}

describe('spec/fast.md#threads: the data-parallel step', () => {
  it('on one thread it is model.trainStep, bit for bit (dense and conv)', async () => {
    for (const options of [DENSE, CONV]) {
      const plain = await run(options, 'plain', 4);
      const one = await run(options, 1, 4);
      expect(one.results).toEqual(plain.results);
      expect(Array.from(one.parameters)).toEqual(Array.from(plain.parameters));
    }
  });

  it('on 2 and 3 threads: the same noise and loss as one thread up to float32 summation order, and bit-identical when repeated', async () => {
    for (const options of [DENSE, CONV]) {
      const plain = await run(options, 'plain', 4);
      for (const threads of [2, 3]) {
        const a = await run(options, threads, 4);
        const b = await run(options, threads, 4);
        expect(Array.from(b.parameters)).toEqual(Array.from(a.parameters));
        expect(b.results).toEqual(a.results);
        // The first step starts from the same parameters: its loss differs by float32 rounding only
        // (a shard drawing other noise rows, or a lost shard, moves it by far more).
        const first = a.results[0]!;
        const reference = plain.results[0]!;
        expect(Math.abs(first.loss - reference.loss)).toBeLessThan(1e-5 * Math.abs(reference.loss));
        expect(first.accuracy).toBe(reference.accuracy);
        expect(first.kl).toBe(reference.kl);
        // Four Adam steps later the parameters still agree closely.
        let worst = 0;
        a.parameters.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - plain.parameters[i]!));
        });
        expect(worst).toBeLessThan(1e-4);
      }
    }
  });

  it('a batch smaller than the thread count uses one thread per row', async () => {
    const plain = await run(DENSE, 'plain', 2, 2);
    const many = await run(DENSE, 3, 2, 2);
    expect(Math.abs(many.results[0]!.loss - plain.results[0]!.loss)).toBeLessThan(
      1e-5 * plain.results[0]!.loss,
    );
  });

  it('a non-finite loss is a VdspecError and updates nothing; a closed trainer refuses steps', async () => {
    const model = createFastModel(DENSE);
    const trainer = await ParallelTrainer.create(model, DENSE, 2);
    const before = trainables(model);
    const { x, labels } = batchOf(DENSE, 6, 1);
    const huge = x.map(() => 3e38);
    await expect(trainer.trainStep(huge, labels, STEP)).rejects.toMatchObject({
      code: 'non_finite',
    });
    expect(Array.from(trainables(model))).toEqual(Array.from(before));
    expect(model.step).toBe(0);
    // Still usable after a refused step.
    await trainer.trainStep(x, labels, STEP);
    expect(model.step).toBe(1);
    await expect(trainer.trainStep(x.subarray(1), labels, STEP)).rejects.toMatchObject({
      code: 'shape_mismatch',
    });
    await trainer.close();
    await expect(trainer.trainStep(x, labels, STEP)).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    model.dispose();
  });
});

describe('spec/train.md: vdspec train --threads', () => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [join(build, 'cli/main.js'), 'train', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
  const small = [
    'lenet300',
    '--data',
    'mnist-small',
    '--epochs',
    '2',
    '--train-limit',
    '300',
    '--test-limit',
    '100',
    '--quiet',
  ];

  it('records the thread count, repeats bit for bit, and refuses another count on --resume', () => {
    const dirs = [0, 1, 2].map(() => mkdtempSync(join(build, 'run-')));
    const first = cli([...small, '--threads', '2', '--until', '1', '--out', dirs[0]!]);
    expect(first.status, first.stderr).toBe(0);
    const again = cli([...small, '--threads', '2', '--until', '1', '--out', dirs[1]!]);
    expect(again.status, again.stderr).toBe(0);
    const record = (d: string) => JSON.parse(readFileSync(join(d, 'results.json'), 'utf8'));
    const a = record(dirs[0]!);
    expect(a.config.threads).toBe(2);
    expect(a.config.noise).toBe('philox-xoshiro-polar');
    const withoutTime = (r: { epochs: { seconds: number }[] }) =>
      r.epochs.map(({ seconds: _s, ...rest }) => rest);
    expect(withoutTime(record(dirs[1]!))).toEqual(withoutTime(a));
    // VDSPEC_THREADS is the default.
    const fromEnv = cli([...small, '--until', '1', '--out', dirs[2]!], { VDSPEC_THREADS: '2' });
    expect(fromEnv.status, fromEnv.stderr).toBe(0);
    expect(record(dirs[2]!).config.threads).toBe(2);
    const other = cli(['lenet300', '--resume', '--threads', '1', '--out', dirs[0]!, '--quiet']);
    expect(other.status).toBe(2);
    expect(other.stderr).toContain('--threads 2');
    const resumed = cli(['lenet300', '--resume', '--out', dirs[0]!, '--quiet']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(record(dirs[0]!).epochs).toHaveLength(2);
  }, 180_000);

  it('a bad --threads or VDSPEC_THREADS is exit 2 with one line (and the --help pointer)', () => {
    for (const [args, env] of [
      [['--threads', '0'], {}],
      [['--threads', '65'], {}],
      [['--threads', '1.5'], {}],
      [[], { VDSPEC_THREADS: 'many' }],
    ] as [string[], Record<string, string>][]) {
      const r = cli([...small, ...args, '--out', join(build, 'never')], env);
      expect(r.status, r.stderr).toBe(2);
      // One line, and for a malformed flag value the usual pointer to --help.
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/threads|THREADS/);
      expect(lines.slice(1).every((l) => l === 'see vdspec train --help')).toBe(true);
    }
  });
});
