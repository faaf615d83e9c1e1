/**
 * Evaluating a fast model (src/fast/fast-model.ts): accuracy and mean
 * cross-entropy of the eval forward over a labelled set, and the sparsity
 * report (spec/log-alpha.md#sparsity).
 */
import * as tf from '@tensorflow/tfjs';

import type { Profile } from '../profiles.js';
import { keepMaskFromValues } from './dense.js';
import type { ParamLayer } from './model-layers.js';
import type { FastLayerSparsity, FastSparsityReport } from './model-types.js';
import { crossEntropyOneHotTf } from './objective.js';

/**
 * Accuracy and mean cross-entropy of `logitsOf` on the `n` rows of `x`
 * (labels checked), in chunks of `size` rows.
 */
export function evaluateInChunks(
  logitsOf: (xs: tf.Tensor) => tf.Tensor,
  x: tf.Tensor,
  labels: Int32Array,
  classes: number,
  size: number,
): { accuracy: number; crossEntropy: number } {
  const n = labels.length;
  let correct = 0;
  let ceSum = 0;
  for (let start = 0; start < n; start += size) {
    const count = Math.min(size, n - start);
    const [c, s] = tf.tidy(() => {
      const xs = tf.slice(x, start, count);
      const logits = logitsOf(xs);
      const ys = tf.tensor1d(labels.subarray(start, start + count), 'int32');
      const oneHot = tf.cast(tf.oneHot(ys, classes), 'float32');
      const ce = tf.sum(crossEntropyOneHotTf(logits, oneHot));
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), ys), 'float32'));
      return Array.from(tf.stack([hits, ce]).dataSync()) as [number, number];
    });
    correct += c;
    ceSum += s;
  }
  return { accuracy: correct / n, crossEntropy: ceSum / n };
}

/**
 * Kept weights per dense / conv2d layer and overall, from the forward keep
 * mask (spec/log-alpha.md#sparsity); VD and a deterministic network keep
 * every weight.
 */
export function sparsityReport(
  params: readonly ParamLayer[],
  profile: Profile,
  deterministic: boolean,
): FastSparsityReport {
  const counts = tf.tidy(() => {
    const kept = params.map((p) => {
      const keep = deterministic ? null : keepMaskFromValues(p.theta, p.noise, profile, p.kind);
      return keep === null ? tf.scalar(p.theta.size) : tf.sum(keep);
    });
    return Array.from(tf.stack(kept).dataSync());
  });
  const row = (name: string, kept: number, total: number): FastLayerSparsity => ({
    name,
    kept,
    total,
    fractionPruned: total === 0 ? 0 : (total - kept) / total,
    compression: kept === 0 ? Infinity : total / kept,
  });
  const layers = params.map((p, i) => row(p.name, counts[i]!, p.theta.size));
  const kept = layers.reduce((a, l) => a + l.kept, 0);
  const total = layers.reduce((a, l) => a + l.total, 0);
  return { layers, overall: row('overall', kept, total) };
}
