/**
 * spec/train.md: `vdspec train` (the recipe, the progress line and the
 * checkpoint file on their own are in train-parts.test.ts; the batch order
 * and the trainer without the command line in trainer.test.ts).
 *
 * - a deterministic (baseline) model trains theta and bias only, has no KL
 *   and prunes nothing;
 * - a model's state exported and imported continues bit for bit;
 * - a resume of a damaged checkpoint is refused with a clear error;
 * - the smoke run (CI): one short epoch of each network on a small subset
 *   writes a complete record, a checkpoint, a sparse export that picks the
 *   same classes as the trained model, and the plots; a run paused with
 *   --until and resumed gives the same metrics and the same export as one
 *   run straight through; a stopped run keeps its finished epochs;
 * - bad calls fail with one line and exit 2, never a stack trace.
 */
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSpecBlock } from './spec-blocks.js';

import * as tf from '@tensorflow/tfjs';

import { defaultOut, runTrainCommand } from '../../src/cli/train.js';
import { initBackend } from '../../src/fast/backend.js';
import { createFastModel } from '../../src/fast/fast-model.js';
import { LENET_300_100 } from '../../src/fast/networks.js';
import { readSparseModel, sparseStats } from '../../src/export/sparse.js';
import { finishRun } from '../../src/train/finish.js';
import {
  readResults,
  reproduceCommand,
  resultsTableMarkdown,
} from '../../src/train/resultsTable.js';
import {
  CHECKPOINT_FILE,
  checkRecord,
  makeConfig,
  RESULTS_FILE,
  trainRun,
  type TrainRecord,
} from '../../src/train/trainer.js';

await initBackend();

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-train-'));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runTrainCommand(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
    {
      handleSignals: false,
    },
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function readRecord(dir: string): TrainRecord {
  return checkRecord(JSON.parse(readFileSync(join(dir, RESULTS_FILE), 'utf8')), dir);
}

/** Everything but the wall times, which differ from run to run. */
function metricsWithoutTime(record: TrainRecord) {
  return record.epochs.map(({ seconds: _seconds, ...rest }) => rest);
}

describe('FastModel: deterministic baseline and state', () => {
  const data = (seed: number, batch = 20) => {
    const x = tf.randomUniform([batch, 784], 0, 1, 'float32', seed);
    const labels = Array.from({ length: batch }, (_, i) => (i * 7 + seed) % 10);
    return { x, labels };
  };

  it('a deterministic model trains theta and bias only, has no KL and keeps every weight', () => {
    const model = createFastModel({
      inputShape: [784],
      layers: LENET_300_100,
      profile: 'molchanov2017',
      seed: 3,
      deterministic: true,
    });
    const batch = data(1);
    try {
      const before = model.parameters();
      let first = Infinity;
      let last = Infinity;
      for (let i = 0; i < 30; i++) {
        const r = model.trainStep(batch, { trainSize: 100, klWeight: 1, learningRate: 1e-3 });
        expect(r.kl).toBe(0);
        expect(r.klTerm).toBe(0);
        if (i === 0) first = r.loss;
        last = r.loss;
      }
      expect(last).toBeLessThan(first / 2);
      const after = model.parameters();
      after.forEach((layer, i) => {
        expect(layer.noise.data).toEqual(before[i]!.noise.data);
        expect(layer.theta.data).not.toEqual(before[i]!.theta.data);
      });
      expect(model.sparsity().overall.compression).toBe(1);
      expect(model.keepMasks().every((k) => k === null)).toBe(true);
      expect(model.logAlphaValues()).toEqual([]);
      // Its eval forward is its training forward: no noise, no mask.
      const logits = model.predict(batch.x);
      const again = model.predict(batch.x);
      expect(Array.from(logits.dataSync())).toEqual(Array.from(again.dataSync()));
      tf.dispose([logits, again]);
    } finally {
      model.dispose();
      batch.x.dispose();
    }
  });

  it.each([false, true])(
    'exportState / importState continue bit for bit (deterministic %s)',
    (deterministic) => {
      const options = {
        inputShape: [784],
        layers: LENET_300_100,
        profile: 'molchanov2017' as const,
        seed: 5,
        deterministic,
      };
      const straight = createFastModel(options);
      const resumed = createFastModel(options);
      const batch = data(2);
      const step = (m: typeof straight) =>
        m.trainStep(batch, { trainSize: 1000, klWeight: 0.5, learningRate: 1e-3 });
      try {
        for (let i = 0; i < 3; i++) step(straight);
        const state = straight.exportState();
        resumed.importState(state);
        expect(resumed.step).toBe(3);
        for (let i = 0; i < 3; i++) expect(step(resumed)).toEqual(step(straight));
        expect(resumed.exportState()).toEqual(straight.exportState());
      } finally {
        straight.dispose();
        resumed.dispose();
        batch.x.dispose();
      }
    },
  );

  it('importState refuses another model’s state and leaves the model unchanged', () => {
    const a = createFastModel({
      inputShape: [784],
      layers: LENET_300_100,
      profile: 'molchanov2017',
      seed: 1,
    });
    const b = createFastModel({
      inputShape: [784],
      layers: LENET_300_100,
      profile: 'molchanov2017',
      seed: 1,
      deterministic: true,
    });
    try {
      const before = a.exportState();
      expect(() => a.importState(b.exportState())).toThrow(/another model/);
      const bad = {
        step: 0,
        tensors: before.tensors.map((t, i) =>
          i === 4 ? { ...t, data: new Float32Array(t.data.length).fill(NaN) } : t,
        ),
      };
      expect(() => a.importState(bad)).toThrow(/non-finite/);
      expect(a.exportState()).toEqual(before);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

// Each CLI run loads the 10,000 digits, trains, exports and renders the plots: a few seconds
// alone, several times that on a machine busy with other work.
describe(
  'vdspec train (smoke: the pipeline end to end, not the accuracy)',
  { timeout: 240_000 },
  () => {
    const small = [
      '--data',
      'mnist-small',
      '--train-limit',
      '300',
      '--test-limit',
      '100',
      '--quiet',
    ];
    let straight: string;
    let straightRecord: TrainRecord;

    beforeAll(async () => {
      straight = join(tempDir(), 'run');
      const r = await cli(['lenet300', '--epochs', '2', '--out', straight, ...small]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      straightRecord = readRecord(straight);
    }, 240_000);

    it('writes a complete record, a checkpoint, a checked sparse export and the plots', () => {
      const r = straightRecord;
      expect(r.complete).toBe(true);
      expect(r.trainSize).toBe(300);
      expect(r.testSize).toBe(100);
      expect(r.epochs.map((e) => e.epoch)).toEqual([1, 2]);
      // spec/train.md#recipe at E = 2, by hand: warm-up 0.05 to 0.2, so beta 0 then 1; the
      // lenet300 rate 1e-3 * min(1, 2 (2 - e) / 2) is 1e-3 at e = 0 and 1.
      expect(r.epochs.map((e) => [e.learningRate, e.klWeight])).toEqual([
        [1e-3, 0],
        [1e-3, 1],
      ]);
      for (const e of r.epochs) {
        for (const v of [e.loss, e.dataTerm, e.kl, e.testAccuracy, e.trainAccuracy, e.seconds]) {
          expect(Number.isFinite(v)).toBe(true);
        }
      }
      const final = r.final!;
      expect(final.layers.map((l) => l.name)).toEqual(['dense0', 'dense1', 'dense2']);
      expect(final.overall.total).toBe(784 * 300 + 300 * 100 + 100 * 10);
      expect(final.testError).toBeCloseTo(1 - r.epochs[1]!.testAccuracy, 12);
      expect(existsSync(join(straight, CHECKPOINT_FILE))).toBe(true);

      const sparse = final.extra['sparseExport'] as {
        path: string;
        storedWeights: number;
        samePrediction: number;
        testImages: number;
        testError: number;
      };
      const model = readSparseModel(join(straight, sparse.path));
      expect(sparseStats(model).overall.kept).toBe(final.overall.kept);
      expect(sparse.storedWeights).toBe(final.overall.kept);
      expect(sparse.samePrediction).toBe(sparse.testImages);
      expect(sparse.testError).toBeCloseTo(final.testError, 12);

      const plots = final.extra['plots'] as string[];
      for (const name of ['curves', 'log-alpha', 'kl']) {
        const svg = plots.find((p) => p.endsWith(`${name}.svg`));
        expect(svg, name).toBeDefined();
        expect(readFileSync(join(straight, svg!), 'utf8')).toMatch(/^<svg/);
      }
    });

    it('a run paused with --until and resumed equals the run straight through', async () => {
      const dir = join(tempDir(), 'run');
      const first = await cli([
        'lenet300',
        '--epochs',
        '2',
        '--until',
        '1',
        '--out',
        dir,
        ...small,
      ]);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/paused after epoch 1 of 2/);
      expect(readRecord(dir).complete).toBe(false);
      const again = await cli(['lenet300', '--epochs', '2', '--out', dir, ...small]);
      expect(again.code).toBe(2);
      expect(again.err).toMatch(/already holds a run; pass --resume/);
      const second = await cli(['lenet300', '--epochs', '2', '--resume', '--out', dir, ...small]);
      expect(second.code).toBe(0);
      const record = readRecord(dir);
      expect(record.backends).toHaveLength(2);
      expect(metricsWithoutTime(record)).toEqual(metricsWithoutTime(straightRecord));
      expect(readFileSync(join(dir, 'model.sparse.json'))).toEqual(
        readFileSync(join(straight, 'model.sparse.json')),
      );
    });

    it('a stopped run keeps its finished epochs and resumes from them', async () => {
      const dir = join(tempDir(), 'run');
      const config = makeConfig({
        network: 'lenet300',
        data: 'mnist-small',
        epochs: 2,
        trainLimit: 300,
        testLimit: 100,
      });
      let steps = 0;
      const stopped = await trainRun(config, {
        outDir: dir,
        resume: false,
        onStep: () => steps++,
        // Stop in the middle of the second epoch (3 steps per epoch).
        shouldStop: () => steps === 5,
      });
      expect(stopped.status).toBe('stopped');
      expect(readRecord(dir).epochs).toHaveLength(1);
      const resumed = await trainRun(config, { outDir: dir, resume: true });
      expect(resumed.status).toBe('complete');
      expect(metricsWithoutTime(resumed.record)).toEqual(metricsWithoutTime(straightRecord));
    });

    it('Ctrl-C during epoch 1 prints a --resume command that works, with no other flag repeated', async () => {
      const dir = join(tempDir(), 'run');
      let interrupt = () => {};
      let interrupted = false;
      const err: string[] = [];
      const code = await runTrainCommand(
        ['lenet300', '--epochs', '2', '--out', dir, ...small.filter((a) => a !== '--quiet')],
        () => {},
        (s) => err.push(s),
        {
          handleSignals: false,
          interruptHook: (f) => (interrupt = f),
          // The first step's progress line: Ctrl-C in the middle of epoch 1.
          progress: () => {
            if (interrupted) return;
            interrupted = true;
            interrupt();
          },
        },
      );
      expect(code).toBe(130);
      const hint = /Continue with: vdspec train (.*)$/m.exec(err.join('\n'));
      expect(hint, err.join('\n')).not.toBeNull();
      expect(hint![1]).toBe(`lenet300 --out ${dir} --resume`);
      const resumed = await cli([...hint![1]!.split(' '), '--quiet']);
      expect(resumed.err).toBe('');
      expect(resumed.code).toBe(0);
      expect(metricsWithoutTime(readRecord(dir))).toEqual(metricsWithoutTime(straightRecord));
    });

    it('Ctrl-C after the last epoch stops before the exports: exit 130, the epochs kept, --resume finishes', async () => {
      const dir = join(tempDir(), 'run');
      let interrupt = () => {};
      const err: string[] = [];
      const code = await runTrainCommand(
        ['lenet300', '--epochs', '1', '--out', dir, ...small.filter((a) => a !== '--quiet')],
        () => {},
        (s) => {
          err.push(s);
          if (s.startsWith('epoch 1/1')) interrupt();
        },
        { handleSignals: false, interruptHook: (f) => (interrupt = f), progress: () => {} },
      );
      expect(code).toBe(130);
      expect(err.at(-1)).toMatch(
        /after the last epoch.* vdspec train lenet300 --out \S+ --resume$/,
      );
      const record = readRecord(dir);
      expect(record.complete).toBe(true);
      expect(record.final).toBeNull();
      expect(existsSync(join(dir, 'model.sparse.json'))).toBe(false);
      const resumed = await cli(['lenet300', '--out', dir, '--resume', '--quiet']);
      expect(resumed.err).toBe('');
      expect(resumed.code).toBe(0);
      expect(readRecord(dir).final).not.toBeNull();
      expect(existsSync(join(dir, 'model.sparse.json'))).toBe(true);
    });

    it('a stop requested during the exports takes effect before the next piece (the plots)', async () => {
      const dir = join(tempDir(), 'run');
      const config = makeConfig({
        network: 'lenet300',
        data: 'mnist-small',
        epochs: 1,
        trainLimit: 300,
        testLimit: 100,
      });
      const outcome = await trainRun(config, {
        outDir: dir,
        resume: false,
        // Ctrl-C once the export is written: the plots must not follow.
        shouldStop: () => existsSync(join(dir, 'model.sparse.json')),
        finish: (model, data, record, stopPoint) => finishRun(model, data, record, dir, stopPoint),
      });
      expect(outcome.status).toBe('stopped');
      expect(readRecord(dir).final).toBeNull();
      expect(existsSync(join(dir, 'plots'))).toBe(false);
    });

    it('trains the dense baseline and LeNet-5 (one short epoch, from the baseline weights)', async () => {
      const base = join(tempDir(), 'base');
      const tiny = [
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
      const b = await cli(['lenet5', '--baseline', '--out', base, ...tiny]);
      expect(b.err).toBe('');
      expect(b.code).toBe(0);
      const baseRecord = readRecord(base);
      expect(baseRecord.final!.overall.compression).toBe(1);
      expect(baseRecord.epochs[0]!.kl).toBe(0);
      const svd = join(tempDir(), 'svd');
      const s = await cli(['lenet5', '--init-from', base, '--out', svd, ...tiny]);
      expect(s.err).toBe('');
      expect(s.code).toBe(0);
      // The record names the baseline relative to the run, no path of this machine.
      const recorded = readRecord(svd).config.initFrom!;
      expect(recorded).toBe(join('..', '..', basename(dirname(base)), 'base'));
      // Read back (resume, the plots) relative to the run's directory, not the working directory;
      // --init-from given again as an absolute path names the same directory.
      const resumed = await cli([
        'lenet5',
        '--out',
        svd,
        '--resume',
        '--init-from',
        base,
        '--quiet',
      ]);
      expect(resumed.err).toBe('');
      expect(resumed.code).toBe(0);
      const other = await cli(['lenet5', '--out', svd, '--resume', '--init-from', svd]);
      expect(other.code).toBe(2);
      expect(other.err).toMatch(
        /was started with --init-from \.\.\/\.\.\/.*\/base, not --init-from/,
      );
      const curves = readFileSync(join(svd, 'plots', 'curves.vl.json'), 'utf8');
      expect(curves).toContain('dense baseline (start point)');
      const record = readRecord(svd);
      expect(record.final!.layers.map((l) => l.name)).toEqual([
        'conv2d0',
        'conv2d1',
        'dense2',
        'dense3',
      ]);
      const sparse = record.final!.extra['sparseExport'] as {
        samePrediction: number;
        testImages: number;
      };
      expect(sparse.samePrediction).toBe(sparse.testImages);
    });

    it('bad calls: one line on stderr, exit 2, nothing trained', async () => {
      const dir = tempDir();
      const cases: [string[], RegExp][] = [
        [[], /which network/],
        [['lenet7'], /unknown network "lenet7"/],
        [['lenet300', '--epochs', '0'], /epochs: must be an integer >= 1/],
        [['lenet300', '--epochs', 'ten'], /--epochs needs an integer/],
        [['lenet300', '--epochs', '2.5'], /--epochs needs an integer, got "2.5"/],
        [['lenet300', '--profile', 'nope'], /unknown profile "nope"/],
        [
          ['lenet300', '--until', '5', '--epochs', '2', '--out', join(dir, 'u')],
          /until: must be an integer in \[1, 2\]/,
        ],
        [['lenet300', '--resume', '--out', join(dir, 'none')], /holds no checkpoint to resume/],
        [
          ['lenet300', '--init-from', join(dir, 'nothing'), '--out', join(dir, 'i')],
          /holds no checkpoint\.bin/,
        ],
        [['lenet300', '--baseline', '--init-from', dir], /a baseline run starts from scratch/],
        [['lenet300', '--out', join(straight, RESULTS_FILE)], /is not a directory/],
        [['lenet300', '--bogus'], /unknown argument "--bogus"/],
      ];
      for (const [argv, message] of cases) {
        const r = await cli(argv);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.err, argv.join(' ')).toMatch(message);
        // Everything is checked before the banner: the refusal is the first line of stderr.
        expect(r.err.split('\n')[0], argv.join(' ')).toMatch(/^vdspec train: /);
        expect(r.err.split('\n')[0], argv.join(' ')).toMatch(message);
        expect(r.err, argv.join(' ')).not.toMatch(/training|resuming/);
        // A usage error may add one hint line, given once.
        expect(r.err.split('\n').length, r.err).toBeLessThanOrEqual(2);
        expect(r.err.match(/--help/g)?.length ?? 0, r.err).toBeLessThanOrEqual(1);
        expect(r.err).not.toMatch(/\n\s+at /);
      }
      // A refusal found by trainRun (--until, --out, --init-from) is one line and no banner.
      for (const argv of [cases[6]![0], cases[8]![0], cases[10]![0]]) {
        expect((await cli(argv)).err.split('\n'), argv.join(' ')).toHaveLength(1);
      }
    });

    it('trains on the original MNIST by default; --data and --train-clip are recorded and checked', async () => {
      const dir = join(tempDir(), 'full');
      const limits = ['--train-limit', '200', '--test-limit', '100', '--quiet'];
      const r = await cli([
        'lenet300',
        '--epochs',
        '1',
        '--until',
        '1',
        '--out',
        dir,
        '--train-clip',
        ...limits,
      ]);
      expect(r.err).toBe('');
      const record = readRecord(dir);
      expect(record.config.data).toBe('mnist');
      expect(record.config.trainClip).toBe(true);
      const other = await cli([
        'lenet300',
        '--data',
        'mnist-small',
        '--epochs',
        '1',
        '--resume',
        '--out',
        dir,
        '--train-clip',
        ...limits,
      ]);
      expect(other.code).toBe(2);
      expect(other.err).toMatch(/was started with --data mnist, not --data mnist-small/);
      const bogus = await cli(['lenet300', '--data', 'cifar', '--out', join(tempDir(), 'x')]);
      expect(bogus.code).toBe(2);
      expect(bogus.err).toMatch(/unknown data set "cifar" \(expected mnist or mnist-small\)/);
      const both = await cli([
        'lenet300',
        '--train-clip',
        '--no-train-clip',
        '--out',
        join(tempDir(), 'y'),
      ]);
      expect(both.code).toBe(2);
      const baseline = await cli([
        'lenet300',
        '--baseline',
        '--train-clip',
        '--out',
        join(tempDir(), 'z'),
      ]);
      expect(baseline.code).toBe(2);
      expect(baseline.err).toMatch(/--baseline has no noise/);
    });

    it('--random-labels and --vd-log-alpha are recorded, repeated in the command, and checked', async () => {
      const dir = join(tempDir(), 'random');
      const r = await cli([
        'lenet300',
        '--epochs',
        '1',
        '--random-labels',
        '7',
        '--out',
        dir,
        ...small,
      ]);
      expect(r.err).toBe('');
      expect(readRecord(dir).config.randomLabels).toBe(7);
      // The same run on the true labels: identical but for the labels, so its loss differs.
      const truth = join(tempDir(), 'truth');
      expect((await cli(['lenet300', '--epochs', '1', '--out', truth, ...small])).code).toBe(0);
      expect(readRecord(dir).epochs[0]!.dataTerm).not.toBe(readRecord(truth).epochs[0]!.dataTerm);
      expect(readRecord(dir).testSize).toBe(readRecord(truth).testSize);
      const vd = join(tempDir(), 'vd');
      const v = await cli([
        'lenet300',
        '--epochs',
        '1',
        '--profile',
        'kingma2015',
        '--vd-log-alpha',
        'input',
        '--out',
        vd,
        ...small.filter((a) => a !== '--quiet'),
      ]);
      // The banner names the algorithm the profile runs: VD, not Sparse VD.
      expect(v.err.split('\n')[0]).toMatch(
        /^vdspec train: training lenet300 \(VD, kingma2015\) for 1 epoch on \w+ \(\d+ threads?\), writing to /,
      );
      expect(readRecord(vd).config.vdLogAlpha).toBe('input');
      // ...and so do its figures: title, legend and first-layer picture.
      const vdCurves = readFileSync(join(vd, 'plots', 'curves.vl.json'), 'utf8');
      expect(vdCurves).toContain('LeNet-300-100, VD (kingma2015), ');
      expect(vdCurves).toContain('"run":"VD"');
      expect(vdCurves).not.toContain('"run":"Sparse VD"');
      const vdPixels = readFileSync(join(vd, 'plots', 'pixels.vl.json'), 'utf8');
      expect(vdPixels).toContain('LeNet-300-100, VD (kingma2015), ');
      const svd = await cli([
        'lenet300',
        '--vd-log-alpha',
        'input',
        '--out',
        join(tempDir(), 'w'),
        ...small,
      ]);
      expect(svd.code).toBe(2);
      expect(svd.err).toMatch(/vd-log-alpha: only a VD run/);
      const shape = await cli([
        'lenet300',
        '--profile',
        'kingma2015',
        '--vd-log-alpha',
        'unit',
        '--out',
        join(tempDir(), 'u'),
        ...small,
      ]);
      expect(shape.code).toBe(2);
      expect(shape.err).toMatch(/vd-log-alpha: expected weight, input, scalar, got "unit"/);
    });

    it('a resume with other flags, or of a damaged checkpoint, is refused', async () => {
      const dir = join(tempDir(), 'run');
      expect(
        (await cli(['lenet300', '--epochs', '2', '--until', '1', '--out', dir, ...small])).code,
      ).toBe(0);
      const other = await cli(['lenet300', '--epochs', '3', '--resume', '--out', dir, ...small]);
      expect(other.code).toBe(2);
      expect(other.err).toMatch(/was started with --epochs 2, not --epochs 3 \(--resume takes/);
      // Flags are named as typed, not by the record's field names.
      const limit = await cli(['lenet300', '--resume', '--out', dir, '--train-limit', '400']);
      expect(limit.code).toBe(2);
      expect(limit.err).toMatch(/started with --train-limit 300, not --train-limit 400/);
      expect(limit.err.split('\n')).toHaveLength(1);
      const network = await cli(['lenet5', '--resume', '--out', dir]);
      expect(network.err).toMatch(/started with network lenet300, not network lenet5/);
      const path = join(dir, CHECKPOINT_FILE);
      const good = readFileSync(path);
      const flipped = Buffer.from(good);
      // A byte in the middle of the tensors (the last 32 bytes are the digest).
      flipped[Math.floor((good.length - 32) * 0.9)]! ^= 0x10;
      writeFileSync(path, flipped);
      const bitFlip = await cli(['lenet300', '--resume', '--out', dir, '--quiet']);
      expect(bitFlip.code).toBe(2);
      expect(bitFlip.err).toMatch(
        /^vdspec train: .*checkpoint\.bin is not a usable vdspec checkpoint: its SHA-256 does not match its content \(the file is damaged\)$/,
      );
      writeFileSync(path, good);
      truncateSync(path, readFileSync(path).length - 100);
      const damaged = await cli(['lenet300', '--epochs', '2', '--resume', '--out', dir, ...small]);
      expect(damaged.code).toBe(2);
      expect(damaged.err).toMatch(/not a usable vdspec checkpoint: .*truncated/);
    });
  },
);

describe('committed results (README "Results")', () => {
  const runs = readResults(resolve(import.meta.dirname, '../../results'));

  it('every committed run is complete, and its export and plots are there and agree with it', () => {
    expect(runs.length).toBeGreaterThan(0);
    for (const { name, record } of runs) {
      expect(record.complete, name).toBe(true);
      const dir = resolve(import.meta.dirname, '../../results', name);
      const final = record.final!;
      // A baseline's or a VD run's export keeps every weight (megabytes of JSON): only the
      // sparse ones are committed.
      if (!record.config.baseline && record.config.profile !== 'kingma2015') {
        const sparse = readSparseModel(join(dir, 'model.sparse.json'));
        expect(sparseStats(sparse).overall.kept, name).toBe(final.overall.kept);
      }
      for (const plot of final.extra['plots'] as string[]) {
        expect(existsSync(join(dir, plot)), `${name}/${plot}`).toBe(true);
      }
    }
  });

  it("name in their figures the algorithm the record's profile ran (a VD run is not Sparse VD)", () => {
    const vdRuns = runs.filter((r) => r.record.config.profile === 'kingma2015');
    expect(vdRuns.length).toBeGreaterThan(0);
    for (const { name, record } of runs) {
      const curves = readFileSync(
        resolve(import.meta.dirname, '../../results', name, 'plots', 'curves.vl.json'),
        'utf8',
      );
      const expected = record.config.baseline
        ? 'dense baseline'
        : record.config.profile === 'kingma2015'
          ? 'VD (kingma2015)'
          : `Sparse VD (${record.config.profile})`;
      expect(curves, name).toContain(`, ${expected}, `);
    }
  });

  it('name no path of the machine that trained them: --init-from is relative to the run', () => {
    const withBaseline = runs.filter((r) => r.record.config.initFrom !== null);
    expect(withBaseline.map((r) => r.name)).toEqual([
      'lenet300-svd-init',
      'lenet5-svd-init',
      'mnist-lenet5-svd-e60',
      'mnist-lenet5-svd-e80',
    ]);
    for (const { name, record } of withBaseline) {
      expect(isAbsolute(record.config.initFrom!), name).toBe(false);
      const dir = resolve(import.meta.dirname, '../../results', name, record.config.initFrom!);
      expect(readRecord(dir).config.baseline, name).toBe(true);
    }
  });

  it('a record from before (an absolute --init-from) still reads, and repeats as runs/<name>', () => {
    const [run] = runs.filter((r) => r.name === 'lenet5-svd-init');
    const old = {
      ...run!,
      record: {
        ...run!.record,
        config: { ...run!.record.config, initFrom: '/work/runs/lenet5-baseline' },
      },
    };
    const record = checkRecord(JSON.parse(JSON.stringify(old.record)), 'old');
    expect(record.config.initFrom).toBe('/work/runs/lenet5-baseline');
    expect(reproduceCommand({ name: old.name, record })).toBe(reproduceCommand(run!));
    expect(reproduceCommand(run!)).toContain('--init-from runs/lenet5-baseline ');
  });

  it("the README's comparison with the paper's Table 1 quotes the records it names", () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const quoted: [network: string, run: string, record: string][] = [
      ['LeNet-300-100', 'here, dense, 200 epochs', 'mnist-lenet300-baseline'],
      ['LeNet-300-100', 'here, Sparse VD, 200 epochs', 'mnist-lenet300-svd'],
      ['LeNet-5-Caffe', 'here, dense, 20 epochs', 'mnist-lenet5-baseline'],
      [
        'LeNet-5-Caffe',
        'here, Sparse VD from the dense network, 60 epochs',
        'mnist-lenet5-svd-e60',
      ],
      [
        'LeNet-5-Caffe',
        'here, Sparse VD from the dense network, 80 epochs',
        'mnist-lenet5-svd-e80',
      ],
    ];
    for (const [network, run, name] of quoted) {
      const rows = readme.split('\n').filter((l) => l.startsWith(`| ${network} | ${run}`));
      expect(rows, `${network} ${run}`).toHaveLength(1);
      const cells = rows[0]!.split('|').map((c) => c.replaceAll('**', '').trim());
      const [error, compression, kept] = [cells[3]!, cells[4]!, cells[5]!];
      const final = runs.find((r) => r.name === name)!.record.final!;
      expect(error, name).toBe(`${(100 * final.testError).toFixed(2)}%`);
      const c = final.overall.compression;
      expect(compression, name).toBe(c === 1 ? '1x' : `${c.toFixed(1)}x`);
      // Each layer's kept percentage, rounded to the digits the README shows.
      const shown = kept.split(' / ');
      expect(shown, name).toHaveLength(c === 1 ? 1 : final.layers.length);
      shown.forEach((text, i) => {
        const digits = text.split('.')[1]?.length ?? 0;
        const value = c === 1 ? final.overall.keptPercent : final.layers[i]!.keptPercent;
        expect(Math.abs(Number(text) - value), `${name} layer ${i}`).toBeLessThanOrEqual(
          0.5 * 10 ** -digits + 1e-9,
        );
      });
    }
  });

  it('the README table is generated from them', () => {
    expectSpecBlock('../README.md', 'results', resultsTableMarkdown(runs));
  });

  it("the README's words on their noise generator and threads are the records' (a new run must update them)", () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const seeded = runs.filter((r) => r.record.config.noise === 'philox-xoshiro-polar');
    expect(seeded.map((r) => r.name).sort()).toEqual([
      'lenet300-baseline-random',
      'lenet300-svd-random',
      'mnist-lenet300-svd-e20',
      'mnist-lenet300-svd-mult-e20',
      'mnist-lenet300-vd-scalar',
      'mnist-lenet5-baseline',
      'mnist-lenet5-svd-e60',
      'mnist-lenet5-svd-e80',
      'mnist-lenet5-vd-input',
      'mnist-lenet5-vd-scalar',
      'mnist-lenet5-vd-weight',
    ]);
    expect(readme).toContain('Eleven runs drew their training noise with');
    const threaded = runs.filter((r) => r.record.config.threads !== 1);
    expect(threaded.map((r) => [r.name, r.record.config.threads])).toEqual([
      ['mnist-lenet5-baseline', 2],
      ['mnist-lenet5-svd-e60', 2],
      ['mnist-lenet5-svd-e80', 2],
      ['mnist-lenet5-vd-input', 2],
      ['mnist-lenet5-vd-scalar', 2],
      ['mnist-lenet5-vd-weight', 2],
    ]);
    expect(readme).toMatch(
      /one\s+thread per run except the LeNet-5-Caffe runs on the original MNIST,\s+which had two/,
    );
  });
});

describe('vdspec train --out: the default --help states is the one used', () => {
  it('runs/<network>[-<data>]-<svd|baseline>-<profile>-s<seed>, the data part only for mnist-small', async () => {
    const help = (await cli(['--help'])).out.replace(/\s+/g, ' ');
    expect(help).toContain(
      'default runs/<network>[-<data>]-<svd|baseline>-<profile>-s<seed>, the data part left out for mnist: runs/lenet300-mnist-small-svd-molchanov2017-s1',
    );
    expect(defaultOut(makeConfig({ network: 'lenet300', data: 'mnist-small', epochs: 1 }))).toBe(
      join('runs', 'lenet300-mnist-small-svd-molchanov2017-s1'),
    );
    expect(defaultOut(makeConfig({ network: 'lenet5', baseline: true, seed: 3, epochs: 1 }))).toBe(
      join('runs', 'lenet5-baseline-molchanov2017-s3'),
    );
  });
});
