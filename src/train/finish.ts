/**
 * After the last epoch of `vdspec train` (spec/train.md#results): export the
 * kept weights (spec/export.md), check the export against the trained model
 * on the test images, and draw the plots.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import type { MnistSubset } from '../data/mnist.js';
import {
  buildSparseModel,
  readSparseModel,
  sparseForward,
  sparseStats,
  writeSparseModel,
} from '../export/sparse.js';
import type { FastModel } from '../fast/fast-model.js';
import { SVD_LOG_ALPHA_MAX, SVD_LOG_ALPHA_MIN, SVD_PRUNE_THRESHOLD } from '../constants.js';
import { PROFILES } from '../profiles.js';
import { sizeOf } from '../tensor.js';
import { PLOTS_DIR, SPARSE_MODEL_FILE, writeSparsityPictures } from './pictures.js';
import { writeTrainingPlots, type PlotRun } from './plots.js';
import { NETWORKS } from './recipe.js';
import {
  RESULTS_FILE,
  initFromDir,
  readRecordFile,
  trainedModelName,
  type TrainRecord,
} from './trainer.js';

export { PLOTS_DIR, SPARSE_MODEL_FILE };

/** Images per sparseForward call (bounds its float64 buffers). */
const SPARSE_CHUNK = 250;

function argmaxRows(data: ArrayLike<number>, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) {
      if (data[r * cols + c]! > data[r * cols + best]!) best = c;
    }
    out[r] = best;
  }
  return out;
}

export interface SparseCheck {
  readonly path: string;
  readonly storedWeights: number;
  /** Test error of the exported model's float64 forward (sparseForward). */
  readonly testError: number;
  /** Test images on which it picks the same class as the fast model's eval forward. */
  readonly samePrediction: number;
  readonly testImages: number;
}

function exportAndCheck(
  model: FastModel,
  record: TrainRecord,
  test: MnistSubset,
  xTest: tf.Tensor,
  outDir: string,
): SparseCheck {
  const net = NETWORKS[record.config.network];
  const sparse = buildSparseModel({
    inputShape: net.inputShape,
    layers: model.networkLayers(),
    meta: {
      network: record.config.network,
      profile: record.config.profile,
      baseline: record.config.baseline,
      seed: record.config.seed,
      epochs: record.epochs.length,
    },
  });
  const path = join(outDir, SPARSE_MODEL_FILE);
  writeSparseModel(sparse, path);
  // Check what was written, not what is in memory.
  const stored = readSparseModel(path);
  const classes = 10;
  const pixels = sizeOf(net.inputShape);
  let wrong = 0;
  let same = 0;
  for (let from = 0; from < test.count; from += SPARSE_CHUNK) {
    const count = Math.min(SPARSE_CHUNK, test.count - from);
    const x = {
      shape: [count, ...net.inputShape],
      data: Array.from(test.images.subarray(from * pixels, (from + count) * pixels)),
    };
    const sparsePicks = argmaxRows(sparseForward(stored, x).data, count, classes);
    const fastLogits = tf.tidy(() => model.predict(tf.slice(xTest, from, count)));
    const fastPicks = argmaxRows(fastLogits.dataSync(), count, classes);
    fastLogits.dispose();
    for (let i = 0; i < count; i++) {
      if (sparsePicks[i] !== test.labels[from + i]) wrong++;
      if (sparsePicks[i] === fastPicks[i]) same++;
    }
  }
  return {
    path: SPARSE_MODEL_FILE,
    storedWeights: sparseStats(stored).overall.kept,
    testError: wrong / test.count,
    samePrediction: same,
    testImages: test.count,
  };
}

/** The curves of the baseline run this one (in outDir) started from, if its record is there. */
function baselineRun(record: TrainRecord, outDir: string): PlotRun | null {
  const dir = initFromDir(record.config, outDir);
  if (dir === null) return null;
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) return null;
  const base = readRecordFile(path);
  return { label: 'dense baseline (start point)', epochs: base.epochs };
}

/**
 * Export, check and plot; returns what goes into the record's `final.extra`.
 * Awaits `stopPoint` between the pieces (it throws to stop the run there).
 */
export async function finishRun(
  model: FastModel,
  data: { test: MnistSubset; xTest: tf.Tensor },
  record: TrainRecord,
  outDir: string,
  stopPoint: () => Promise<void> = () => Promise.resolve(),
): Promise<Record<string, unknown>> {
  const sparse = exportAndCheck(model, record, data.test, data.xTest, outDir);
  await stopPoint();
  const net = NETWORKS[record.config.network];
  const names = model.layerNames;
  const runs: PlotRun[] = [{ label: trainedModelName(record.config), epochs: record.epochs }];
  const base = baselineRun(record, outDir);
  if (base !== null) runs.push(base);
  const logAlpha = model.logAlphaValues().map((values, i) => ({ name: names[i]!, values }));
  const plots = await writeTrainingPlots(
    {
      title:
        `${net.title}, ${trainedModelName(record.config)}${record.config.baseline ? '' : ` (${record.config.profile})`}, ` +
        `${record.trainSize.toLocaleString('en-US')} MNIST digits`,
      runs,
      logAlpha,
      // Profiles without a clip or a prune rule are drawn on the SVD paper's axes.
      threshold: PROFILES[record.config.profile].prune?.threshold ?? SVD_PRUNE_THRESHOLD,
      logAlphaRange: [SVD_LOG_ALPHA_MIN, SVD_LOG_ALPHA_MAX],
    },
    join(outDir, PLOTS_DIR),
    stopPoint,
  );
  // What the sparse network kept of its first layer (spec/train.md#pictures).
  await stopPoint();
  const pictures = record.config.baseline
    ? []
    : await writeSparsityPictures(
        outDir,
        `${net.title}, ${trainedModelName(record.config)} (${record.config.profile}), ${record.trainSize.toLocaleString('en-US')} MNIST digits`,
      );
  return {
    sparseExport: sparse,
    plots: [...plots, ...pictures].map((p) => p.slice(outDir.length).replace(/^[/\\]+/, '')),
  };
}
