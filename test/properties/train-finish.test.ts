/**
 * spec/train.md#results, #plots and #pictures: what `vdspec train` does after
 * its last epoch (`finishRun`, src/train/finish.ts) and the README's results
 * table (src/train/resultsTable.ts), on their own and in a few seconds.
 *
 * - finishRun exports the kept weights (spec/export.md) with the run's meta,
 *   checks the written export on the test images (its error, and on how many
 *   images it picks the fast model's class, over more than one chunk of
 *   images), draws the curves of the run and of the baseline it started
 *   from, the log_alpha histograms and the first-layer picture, and returns
 *   the files relative to the run directory; it awaits the stop point before
 *   each piece, and a baseline gets neither histogram nor picture;
 * - the results table: one row per complete run, its error's gap to the
 *   baseline of the same network, data, epochs and labels, its kind, its
 *   compression and kept shares, and the command that repeats it.
 *
 * The model finishRun is given is a stand-in with a hand-made first layer
 * (pixel k feeds class k, k < 10) whose eval forward reads classes off pixels
 * 10..19, so every pick, error and count below is worked out by hand.
 * train.test.ts runs the same pieces end to end on a trained network.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import * as tf from '@tensorflow/tfjs';

import type { MnistSubset } from '../../src/data/mnist.js';
import { readSparseModel } from '../../src/export/sparse.js';
import { initBackend } from '../../src/fast/backend.js';
import type { FastModel } from '../../src/fast/fast-model.js';
import { finishRun } from '../../src/train/finish.js';
import {
  readResults,
  reproduceCommand,
  resultsTableMarkdown,
  type NamedRecord,
} from '../../src/train/resultsTable.js';
import {
  checkRecord,
  makeConfig,
  RESULTS_FILE,
  type EpochMetrics,
  type TrainConfig,
  type TrainRecord,
} from '../../src/train/trainer.js';

await initBackend();

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-train-finish-'));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

// ------------------------------------------------------------------ records

function epochMetrics(epoch: number, patch: Partial<EpochMetrics> = {}): EpochMetrics {
  return {
    epoch,
    klWeight: 1,
    learningRate: 1e-3,
    loss: 1,
    dataTerm: 1,
    kl: 0,
    trainAccuracy: 0.5,
    testAccuracy: 0.5,
    testCrossEntropy: 1,
    kept: 10,
    total: 20,
    compression: 2,
    seconds: 1,
    ...patch,
  };
}

function record(config: TrainConfig, patch: Partial<TrainRecord> = {}): TrainRecord {
  return {
    format: 'vdspec-train',
    version: 1,
    config,
    trainSize: 1234,
    testSize: 260,
    backends: ['wasm'],
    epochs: [epochMetrics(1), epochMetrics(2)],
    wallSeconds: 2,
    complete: true,
    final: null,
    ...patch,
  };
}

function writeRecord(dir: string, r: TrainRecord): void {
  mkdirSync(dir, { recursive: true });
  // Through the checker first: a record the readers would refuse is the test's own mistake.
  checkRecord(JSON.parse(JSON.stringify(r)), dir);
  writeFileSync(join(dir, RESULTS_FILE), JSON.stringify(r));
}

// ------------------------------------------------------------------ the stand-in model

const PIXELS = 784;
const CLASSES = 10;
/** More than one chunk of sparseForward (250 images): 250 + 10. */
const IMAGES = 260;
/** Pixels 0..9 hold the export's class, 10..19 the fast model's; the value varies (1, 2, 3) so no row ties with its neighbour. */
const strength = (i: number) => 1 + (i % 3);
/** The export picks i % 10, except image 255 whose pixels 0..9 are all 0: a tie, class 0 (image 21 also has 0.5 at pixel 2). */
const sparseClass = (i: number) => (i === 255 ? null : i % 10);
/** The fast model agrees except on images 10, 11, 12 and 252. */
const DISAGREE = new Set([10, 11, 12, 252]);
/** Labels: right except on images 0..4 and 251 (six wrong). */
const WRONG = new Set([0, 1, 2, 3, 4, 251]);

function testData(): { test: MnistSubset; xTest: tf.Tensor } {
  const images = new Float32Array(IMAGES * PIXELS);
  const labels = new Uint8Array(IMAGES);
  for (let i = 0; i < IMAGES; i++) {
    const s = sparseClass(i);
    const picked = s ?? 0;
    if (s !== null) images[i * PIXELS + s] = strength(i);
    // A runner-up after the winner: the pick is the largest, not the last one above the first.
    if (i === 21) images[i * PIXELS + 2] = 0.5;
    const fast = DISAGREE.has(i) ? (picked + 1) % CLASSES : picked;
    images[i * PIXELS + CLASSES + fast] = strength(i);
    labels[i] = WRONG.has(i) ? (picked + 1) % CLASSES : picked;
  }
  const test = { images, labels, count: IMAGES, indices: new Uint32Array(IMAGES) };
  return { test, xTest: tf.tensor2d(images, [IMAGES, PIXELS]) };
}

/** theta: pixel k to class k (k < 10) and pixel 20 to class 3 (0.5); kept: those 11, or every weight. */
function standInModel(options: { keepAll: boolean; logAlpha: number[][] }): FastModel {
  const theta = new Array<number>(PIXELS * CLASSES).fill(0);
  const keep = new Array<number>(PIXELS * CLASSES).fill(0);
  for (let k = 0; k < CLASSES; k++) {
    theta[k * CLASSES + k] = 1;
    keep[k * CLASSES + k] = 1;
  }
  theta[20 * CLASSES + 3] = 0.5;
  keep[20 * CLASSES + 3] = 1;
  const shape = [PIXELS, CLASSES];
  const model = {
    layerNames: options.logAlpha.map((_, i) => `dense${i}`),
    networkLayers: () => [
      {
        kind: 'dense',
        theta: { shape, data: theta },
        bias: { shape: [CLASSES], data: new Array<number>(CLASSES).fill(0) },
        keep: options.keepAll ? null : { shape, data: keep },
      },
    ],
    predict: (x: tf.Tensor2D) => tf.slice(x, [0, CLASSES], [-1, CLASSES]),
    logAlphaValues: () => options.logAlpha.map((v) => Float32Array.from(v)),
  };
  return model as unknown as FastModel;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

interface CurvesSpec {
  title: { text: string };
  vconcat: [{ data: { values: { run: string; epoch: number }[] } }];
}

/** The run labels drawn in a curves.vl.json, in data order, once each. */
function runsDrawn(path: string): string[] {
  const spec = readJson(path) as unknown as CurvesSpec;
  return [...new Set(spec.vconcat[0].data.values.map((v) => v.run))];
}

const SVD_PLOTS = ['curves', 'log-alpha', 'kl', 'pixels'].flatMap((n) => [
  `plots/${n}.vl.json`,
  `plots/${n}.svg`,
]);

// ------------------------------------------------------------------ finishRun

describe('finishRun (spec/train.md#results: final.extra)', { timeout: 60_000 }, () => {
  let data: { test: MnistSubset; xTest: tf.Tensor };
  beforeAll(() => {
    data = testData();
  });
  afterAll(() => data.xTest.dispose());

  it('a Sparse VD run from a baseline: the checked export, the plots with both runs, the picture', async () => {
    const root = tempDir();
    const out = join(root, 'svd');
    mkdirSync(out);
    const baseEpochs = [1, 2, 3].map((e) => epochMetrics(e, { compression: 1 }));
    writeRecord(
      join(root, 'base'),
      record(makeConfig({ network: 'lenet300', baseline: true, epochs: 3 }), {
        epochs: baseEpochs,
      }),
    );
    const config = {
      ...makeConfig({ network: 'lenet300', epochs: 2, seed: 5 }),
      initFrom: '../base',
    };
    const stops: string[] = [];
    const extra = await finishRun(
      standInModel({ keepAll: false, logAlpha: [[-5, 0, 3.5, 7]] }),
      data,
      record(config),
      out,
      () => {
        stops.push(
          ['model.sparse.json', 'plots/curves.svg', 'plots/kl.svg', 'plots/pixels.svg']
            .filter((f) => existsSync(join(out, f)))
            .join(' '),
        );
        return Promise.resolve();
      },
    );
    expect(extra).toEqual({
      sparseExport: {
        path: 'model.sparse.json',
        storedWeights: 11,
        testError: 6 / 260,
        samePrediction: 256,
        testImages: 260,
      },
      plots: SVD_PLOTS,
    });
    // Before the plots, before each of the three renderings (nothing written yet), before the picture.
    expect(stops).toEqual([
      'model.sparse.json',
      'model.sparse.json',
      'model.sparse.json',
      'model.sparse.json',
      'model.sparse.json plots/curves.svg plots/kl.svg',
    ]);
    const sparse = readSparseModel(join(out, 'model.sparse.json'));
    expect(sparse.inputShape).toEqual([784]);
    expect(sparse.meta).toEqual({
      network: 'lenet300',
      profile: 'molchanov2017',
      baseline: false,
      seed: 5,
      epochs: 2,
    });
    const curves = readJson(join(out, 'plots/curves.vl.json')) as unknown as CurvesSpec;
    expect(curves.title.text).toBe('LeNet-300-100, Sparse VD (molchanov2017), 1,234 MNIST digits');
    expect(runsDrawn(join(out, 'plots/curves.vl.json'))).toEqual([
      'Sparse VD',
      'dense baseline (start point)',
    ]);
    expect(
      curves.vconcat[0].data.values
        .filter((v) => v.run === 'dense baseline (start point)')
        .map((v) => v.epoch),
    ).toEqual([1, 1, 2, 2, 3, 3]);
    const histogram = readFileSync(join(out, 'plots/log-alpha.svg'), 'utf8');
    expect(histogram).toContain('dense0');
    expect(histogram).toContain('4 weights, 50.0% with log α &gt; 3');
    expect(histogram).toContain('64 bins on [-8, 8]');
    const pixels = readJson(join(out, 'plots/pixels.vl.json')) as {
      title: { text: string; subtitle: string };
    };
    expect(pixels.title.text).toBe('LeNet-300-100, Sparse VD (molchanov2017), 1,234 MNIST digits');
    expect(pixels.title.subtitle).toMatch(/^input pixels that keep any weight: 11 of 784 /);
  });

  it('a dense baseline: its own label and title, every weight stored, no histogram and no picture', async () => {
    const root = tempDir();
    const out = join(root, 'base');
    mkdirSync(out);
    // An --init-from directory without a record: no start-point curve, no error.
    const config = {
      ...makeConfig({ network: 'lenet300', baseline: true, epochs: 2 }),
      initFrom: '../missing',
    };
    let stops = 0;
    // Exactly one chunk: images 0..249, five of them wrong (0..4), three picked otherwise (10..12).
    const first250 = {
      test: {
        images: data.test.images.subarray(0, 250 * PIXELS),
        labels: data.test.labels.subarray(0, 250),
        count: 250,
        indices: new Uint32Array(250),
      },
      xTest: tf.slice(data.xTest, 0, 250),
    };
    const extra = await finishRun(
      standInModel({ keepAll: true, logAlpha: [] }),
      first250,
      record(config, { trainSize: 60000 }),
      `${out}/`,
      () => {
        stops += 1;
        return Promise.resolve();
      },
    );
    expect(extra['plots']).toEqual([
      'plots/curves.vl.json',
      'plots/curves.svg',
      'plots/kl.vl.json',
      'plots/kl.svg',
    ]);
    first250.xTest.dispose();
    expect(extra['sparseExport']).toEqual({
      path: 'model.sparse.json',
      storedWeights: 7840,
      testError: 5 / 250,
      samePrediction: 247,
      testImages: 250,
    });
    expect(stops).toBe(4);
    const curves = readJson(join(out, 'plots/curves.vl.json')) as unknown as CurvesSpec;
    expect(curves.title.text).toBe('LeNet-300-100, dense baseline, 60,000 MNIST digits');
    expect(runsDrawn(join(out, 'plots/curves.vl.json'))).toEqual(['dense baseline']);
  });

  it('VD (no prune rule) draws the SVD threshold; a stop before the picture leaves the plots only', async () => {
    const out = tempDir();
    const config = makeConfig({ network: 'lenet300', profile: 'kingma2015', epochs: 2 });
    let stops = 0;
    const stopped = finishRun(
      standInModel({ keepAll: false, logAlpha: [[-1, 1]] }),
      data,
      record(config),
      out,
      () => {
        stops += 1;
        return stops === 5 ? Promise.reject(new Error('stop')) : Promise.resolve();
      },
    );
    await expect(stopped).rejects.toThrow('stop');
    const histogram = readJson(join(out, 'plots/log-alpha.vl.json')) as {
      title: { subtitle: string[] };
    };
    expect(histogram.title.subtitle[1]).toBe('dashed rule: the pruning threshold log α = 3');
    expect(existsSync(join(out, 'plots/kl.svg'))).toBe(true);
    expect(existsSync(join(out, 'plots/pixels.svg'))).toBe(false);
    expect(runsDrawn(join(out, 'plots/curves.vl.json'))).toEqual(['VD']);
  });
});

// ------------------------------------------------------------------ the results table

const SMALL_200 = makeConfig({ network: 'lenet300', data: 'mnist-small', epochs: 200, threads: 1 });

function layer(name: string, keptPercent: number, compression: number) {
  return { name, kept: 1, total: 1, keptPercent, compression };
}

/** A finished run: its test error, kept share per layer (%), overall compression, last train accuracy. */
function finished(
  name: string,
  config: Partial<TrainConfig>,
  result: { testError: number; kept: number[]; compression: number; trainAccuracy?: number },
  patch: Partial<TrainRecord> = {},
): NamedRecord {
  const layers = result.kept.map((k, i) => layer(`dense${i}`, k, 100 / k));
  return {
    name,
    record: record(
      { ...SMALL_200, ...config },
      {
        trainSize: 8000,
        testSize: 2000,
        wallSeconds: 60,
        // The earlier epochs' accuracies differ: the table shows the last one.
        epochs: [
          epochMetrics(1, { trainAccuracy: 0.125 }),
          epochMetrics(2, { trainAccuracy: 0.25 }),
          epochMetrics(3, { trainAccuracy: result.trainAccuracy ?? 0.5 }),
        ],
        final: {
          testError: result.testError,
          layers,
          overall: layer('overall', 100 / result.compression, result.compression),
          extra: {},
        },
        ...patch,
      },
    ),
  };
}

const HEADER = [
  '| network | train / test images | run | epochs | train accuracy, last epoch | test error | vs baseline, same data and epochs (points) | compression | kept per layer (%) | wall time | command |',
  '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |',
];

describe('resultsTableMarkdown (spec/train.md#results: the README table)', () => {
  const dense = { baseline: true, trainClip: null };
  const runs: NamedRecord[] = [
    finished(
      'b',
      dense,
      { testError: 0.043, kept: [100, 100, 100], compression: 1, trainAccuracy: 1 },
      { wallSeconds: 384 },
    ),
    finished(
      's',
      {},
      { testError: 0.061, kept: [0.48, 0.812, 15.8], compression: 174.93, trainAccuracy: 0.9583 },
      { wallSeconds: 469 },
    ),
    finished(
      'same',
      { initFrom: '../b', trainClip: true, seed: 7 },
      { testError: 0.043, kept: [0, 0, 0], compression: Infinity },
    ),
    finished(
      'better',
      { trainClip: false, reparameterization: 'multiplicative' },
      { testError: 0.04, kept: [1, 2, 3], compression: 50 },
    ),
    // Only the epochs differ from 's': its baseline is the incomplete one below, so none.
    finished(
      'vd-input',
      {
        profile: 'kingma2015',
        vdLogAlpha: 'input',
        epochs: 10,
        trainLimit: 300,
        testLimit: 100,
        threads: 2,
      },
      { testError: 0.1, kept: [100, 100, 100], compression: 1 },
      { trainSize: 300, testSize: 100 },
    ),
    finished(
      'incomplete-base',
      { ...dense, epochs: 10 },
      { testError: 0.5, kept: [100, 100, 100], compression: 1 },
      { complete: false },
    ),
    finished('stopped', {}, { testError: 0.5, kept: [1, 1, 1], compression: 100 }, { final: null }),
    // Only the network differs from 's': no LeNet-5 baseline.
    finished(
      'vd-scalar',
      { network: 'lenet5', profile: 'kingma2015', vdLogAlpha: 'scalar' },
      { testError: 0.01, kept: [100, 100, 100, 100], compression: 1 },
      { trainSize: 60000, testSize: 10000 },
    ),
    // Only the data differ from 's': no baseline on the original MNIST.
    finished(
      'vd-weight',
      {
        data: 'mnist',
        profile: 'kingma2015',
        vdLogAlpha: 'weight',
        initFrom: '/machine/runs/lenet300-base',
      },
      { testError: 0.02, kept: [100, 100, 100], compression: 1 },
    ),
    finished(
      'rl-base',
      { ...dense, randomLabels: 1 },
      { testError: 0.893, kept: [100, 100, 100], compression: 1 },
    ),
    finished(
      'rl-svd',
      { randomLabels: 1 },
      { testError: 0.9, kept: [10, 20, 30], compression: 10 },
    ),
    // Other random labels than the baseline's: none to compare with.
    finished(
      'rl2-svd',
      { randomLabels: 2 },
      { testError: 0.9, kept: [10, 20, 30], compression: 10 },
    ),
  ];

  it('one row per complete run, compared with the baseline of its network, data, epochs and labels', () => {
    const lines = resultsTableMarkdown(runs).split('\n');
    expect(lines.slice(0, 2)).toEqual(HEADER);
    expect(lines.slice(2)).toEqual([
      '| LeNet-300-100 | 8,000 / 2,000 | dense baseline | 200 | 100.0% | 4.30% |  | 1.0x | 100 (all) | 6.4 min | `vdspec train lenet300 --data mnist-small --baseline --epochs 200 --threads 1 --out runs/b` |',
      '| LeNet-300-100 | 8,000 / 2,000 | Sparse VD from scratch | 200 | 95.8% | 6.10% | +1.80 | 174.9x | 0.48 / 0.81 / 15.80 | 7.8 min | `vdspec train lenet300 --data mnist-small --epochs 200 --threads 1 --out runs/s` |',
      '| LeNet-300-100 | 8,000 / 2,000 | Sparse VD from the baseline, mask in training | 200 | 50.0% | 4.30% | +0.00 | all pruned | 0.00 / 0.00 / 0.00 | 1.0 min | `vdspec train lenet300 --data mnist-small --train-clip --epochs 200 --seed 7 --init-from runs/b --threads 1 --out runs/same` |',
      '| LeNet-300-100 | 8,000 / 2,000 | Sparse VD from scratch, log_alpha trained (multiplicative) | 200 | 50.0% | 4.00% | -0.30 | 50.0x | 1.00 / 2.00 / 3.00 | 1.0 min | `vdspec train lenet300 --data mnist-small --no-train-clip --multiplicative --epochs 200 --threads 1 --out runs/better` |',
      '| LeNet-300-100 | 300 / 100 | VD (alpha per input unit) from scratch | 10 | 50.0% | 10.00% |  | 1.0x | 100.00 / 100.00 / 100.00 | 1.0 min | `vdspec train lenet300 --data mnist-small --profile kingma2015 --vd-log-alpha input --epochs 10 --train-limit 300 --test-limit 100 --threads 2 --out runs/vd-input` |',
      '| LeNet-5-Caffe | 60,000 / 10,000 | VD (alpha per layer) from scratch | 200 | 50.0% | 1.00% |  | 1.0x | 100.00 / 100.00 / 100.00 / 100.00 | 1.0 min | `vdspec train lenet5 --data mnist-small --profile kingma2015 --vd-log-alpha scalar --epochs 200 --threads 1 --out runs/vd-scalar` |',
      '| LeNet-300-100 | 8,000 / 2,000 | VD (alpha per weight) from the baseline | 200 | 50.0% | 2.00% |  | 1.0x | 100.00 / 100.00 / 100.00 | 1.0 min | `vdspec train lenet300 --profile kingma2015 --vd-log-alpha weight --epochs 200 --init-from runs/lenet300-base --threads 1 --out runs/vd-weight` |',
      '| LeNet-300-100 | 8,000 / 2,000 | dense baseline, random labels | 200 | 50.0% | 89.30% |  | 1.0x | 100 (all) | 1.0 min | `vdspec train lenet300 --data mnist-small --baseline --random-labels 1 --epochs 200 --threads 1 --out runs/rl-base` |',
      '| LeNet-300-100 | 8,000 / 2,000 | Sparse VD from scratch, random labels | 200 | 50.0% | 90.00% | +0.70 | 10.0x | 10.00 / 20.00 / 30.00 | 1.0 min | `vdspec train lenet300 --data mnist-small --random-labels 1 --epochs 200 --threads 1 --out runs/rl-svd` |',
      '| LeNet-300-100 | 8,000 / 2,000 | Sparse VD from scratch, random labels | 200 | 50.0% | 90.00% |  | 10.0x | 10.00 / 20.00 / 30.00 | 1.0 min | `vdspec train lenet300 --data mnist-small --random-labels 2 --epochs 200 --threads 1 --out runs/rl2-svd` |',
    ]);
  });

  it('no run: the header alone', () => {
    expect(resultsTableMarkdown([])).toBe(HEADER.join('\n'));
  });

  it('reproduceCommand: the defaults (original MNIST, molchanov2017, seed 1) are left out', () => {
    const run = finished(
      'r',
      { data: 'mnist', threads: 4 },
      {
        testError: 0,
        kept: [1],
        compression: 100,
      },
    );
    expect(reproduceCommand(run)).toBe(
      'vdspec train lenet300 --epochs 200 --threads 4 --out runs/r',
    );
  });
});

describe('readResults (spec/train.md#results: the committed records)', () => {
  it('every subdirectory holding a results.json, by name; nothing for a missing directory', () => {
    const root = tempDir();
    expect(readResults(join(root, 'absent'))).toEqual([]);
    const config = makeConfig({ network: 'lenet300', epochs: 2, threads: 1 });
    for (const [name, seed] of [
      ['m-run', 3],
      ['z-run', 2],
      ['a-run', 1],
    ] as const) {
      // Made out of order: the list is sorted by name, whatever order the directory lists them in.
      writeRecord(join(root, name), record({ ...config, seed }));
    }
    mkdirSync(join(root, 'no-record'));
    writeFileSync(join(root, 'notes.txt'), 'not a run');
    const read = readResults(root);
    expect(read.map((r) => [r.name, r.record.config.seed])).toEqual([
      ['a-run', 1],
      ['m-run', 3],
      ['z-run', 2],
    ]);
  });
});
