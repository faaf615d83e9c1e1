/**
 * The checks of what a fast model's methods are given (src/fast/fast-model.ts):
 * a batch's inputs and labels, the noise of a step, a step's options. Each
 * error names the argument.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import { checkNumber, checkTensor, shapeToString } from '../tensor.js';

/** x as a float32 [batch >= 1, ...inputShape] tensor; `owned`: the caller disposes `x`. */
export function checkBatchX(
  inputShape: readonly number[],
  xIn: unknown,
  name: string,
): { x: tf.Tensor; owned: boolean; batch: number } {
  const want = inputShape;
  const ok = (shape: readonly number[]) =>
    shape.length === want.length + 1 && want.every((d, i) => shape[i + 1] === d);
  if (xIn instanceof tf.Tensor) {
    if (!ok(xIn.shape) || xIn.shape[0] === 0) {
      throw new VdspecError(
        'shape_mismatch',
        `expected [batch >= 1, ${want.join(', ')}], got ${shapeToString(xIn.shape)}`,
        name,
      );
    }
    const x = xIn.dtype === 'float32' ? xIn : tf.cast(xIn, 'float32');
    return { x, owned: x !== xIn, batch: xIn.shape[0]! };
  }
  const t = checkTensor(name, xIn, { rank: want.length + 1 });
  if (!ok(t.shape) || t.shape[0] === 0) {
    throw new VdspecError(
      'shape_mismatch',
      `expected [batch >= 1, ${want.join(', ')}], got ${shapeToString(t.shape)}`,
      name,
    );
  }
  return {
    x: tf.tensor(t.data as number[], [...t.shape], 'float32'),
    owned: true,
    batch: t.shape[0]!,
  };
}

/** One class index in [0, classes) per example. */
export function checkLabels(
  classes: number,
  labelsIn: unknown,
  batch: number,
  name: string,
): Int32Array {
  if (!Array.isArray(labelsIn) && !(labelsIn instanceof Int32Array)) {
    throw new VdspecError('invalid_argument', 'expected an array of class indices', name);
  }
  if (labelsIn.length !== batch) {
    throw new VdspecError(
      'shape_mismatch',
      `expected ${batch} labels (x's batch), got ${labelsIn.length}`,
      name,
    );
  }
  if (Array.isArray(labelsIn)) {
    labelsIn.forEach((label: unknown, i) => {
      if (typeof label !== 'number' || !Number.isInteger(label)) {
        throw new VdspecError('invalid_argument', `label ${i} is not an integer`, name);
      }
    });
  }
  const labels = Int32Array.from(labelsIn as ArrayLike<number>);
  labels.forEach((label, i) => {
    if (label < 0 || label >= classes) {
      throw new VdspecError(
        'invalid_argument',
        `label ${i} must be in [0, ${classes - 1}], got ${label}`,
        name,
      );
    }
  });
  return labels;
}

/**
 * The given noise as float32 tensors, one per dense / conv2d layer of the
 * shape `noiseShapes` gives it; null when none is given.
 */
export function checkEps(noiseShapes: readonly number[][], epsIn: unknown): tf.Tensor[] | null {
  if (epsIn === undefined) return null;
  if (!Array.isArray(epsIn) || epsIn.length !== noiseShapes.length) {
    throw new VdspecError(
      'invalid_argument',
      `expected one tensor per dense / conv2d layer (${noiseShapes.length})`,
      'options.eps',
    );
  }
  return epsIn.map((e: unknown, p) => {
    const name = `options.eps[${p}]`;
    const want = noiseShapes[p]!;
    if (e instanceof tf.Tensor) {
      const shape: readonly number[] = e.shape;
      if (shape.length !== want.length || !shape.every((d, i) => d === want[i])) {
        throw new VdspecError(
          'shape_mismatch',
          `expected ${shapeToString(want)}, got ${shapeToString(e.shape)}`,
          name,
        );
      }
      return tf.cast(e, 'float32');
    }
    const t = checkTensor(name, e, { shape: want });
    return tf.tensor(t.data as number[], want, 'float32');
  });
}

/** A training step's {trainSize, klWeight, learningRate} (eps is checked by checkEps). */
export function checkStepOptions(options: unknown): {
  trainSize: number;
  klWeight: number;
  learningRate: number;
} {
  if (typeof options !== 'object' || options === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected {trainSize, klWeight, learningRate, eps?}',
      'options',
    );
  }
  const o = options as Record<string, unknown>;
  return {
    trainSize: checkNumber('options.trainSize', o.trainSize, { integer: true, min: 1 }),
    klWeight: checkNumber('options.klWeight', o.klWeight, { min: 0 }),
    learningRate: checkNumber('options.learningRate', o.learningRate, { min: 0 }),
  };
}
