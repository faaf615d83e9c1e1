/**
 * A fast model's state (spec/train.md#checkpoints): every parameter and
 * Adam's moments, in a fixed order with names, and the step count; read
 * out by FastModel.exportState and restored by FastModel.importState.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';
import { checkNumber, shapeToString } from '../tensor.js';
import type { AdamSlot } from './adam.js';
import { trainableNames, type ParamLayer } from './model-layers.js';
import type { FastModelState } from './model-types.js';

/** A named variable of the state. */
export interface StateEntry {
  readonly name: string;
  readonly variable: tf.Variable;
}

/**
 * The state's variables in order: theta, noise and bias of every layer (the
 * noise too for a deterministic network), then each trained tensor's Adam
 * moments (`<name>.adam_m`, `<name>.adam_v`).
 */
export function stateLayout(
  params: readonly ParamLayer[],
  adam: readonly AdamSlot[],
  deterministic: boolean,
): StateEntry[] {
  const layout: StateEntry[] = [];
  params.forEach((p) => {
    layout.push({ name: `${p.name}.theta`, variable: p.theta });
    layout.push({ name: `${p.name}.noise`, variable: p.noise });
    layout.push({ name: `${p.name}.bias`, variable: p.bias });
  });
  const names = trainableNames(params, deterministic);
  adam.forEach((slot, i) => {
    layout.push({ name: `${names[i]!}.adam_m`, variable: slot.m });
    layout.push({ name: `${names[i]!}.adam_v`, variable: slot.v });
  });
  return layout;
}

/** The values of `layout`'s variables at step `step`. */
export function readState(layout: readonly StateEntry[], step: number): FastModelState {
  const tensors = layout.map(({ name, variable }) => ({
    name,
    shape: [...variable.shape],
    data: new Float32Array(variable.dataSync()),
  }));
  return { step, tensors };
}

/**
 * Checks `state` against `expected` (every name and shape must match, every
 * value be finite), then assigns it; returns its step. Nothing changes when
 * a check fails.
 */
export function restoreState(expected: readonly StateEntry[], state: FastModelState): number {
  if (typeof state !== 'object' || state === null || !Array.isArray(state.tensors)) {
    throw new VdspecError('invalid_argument', 'expected {step, tensors}', 'state');
  }
  const step = checkNumber('state.step', state.step, { integer: true, min: 0 });
  if (state.tensors.length !== expected.length) {
    throw new VdspecError(
      'shape_mismatch',
      `expected ${expected.length} tensors, got ${state.tensors.length}: the state is from another model`,
      'state.tensors',
    );
  }
  expected.forEach((want, i) => {
    const got = state.tensors[i]!;
    const where = `state.tensors[${i}]`;
    if (got?.name !== want.name) {
      throw new VdspecError(
        'shape_mismatch',
        `expected ${want.name}, got ${String(got?.name)}: the state is from another model`,
        where,
      );
    }
    const shape = got.shape;
    if (
      !Array.isArray(shape) ||
      shape.length !== want.variable.shape.length ||
      !shape.every((d, k) => d === want.variable.shape[k])
    ) {
      throw new VdspecError(
        'shape_mismatch',
        `${want.name}: expected ${shapeToString(want.variable.shape)}, got ${shapeToString(shape ?? [])}`,
        where,
      );
    }
    if (!(got.data instanceof Float32Array) || got.data.length !== want.variable.size) {
      throw new VdspecError(
        'invalid_argument',
        `${want.name}: expected a Float32Array of ${want.variable.size} values`,
        where,
      );
    }
    if (!got.data.every(Number.isFinite)) {
      throw new VdspecError('non_finite', `${want.name} holds a non-finite value`, where);
    }
  });
  tf.tidy(() => {
    expected.forEach((want, i) => {
      want.variable.assign(tf.tensor(state.tensors[i]!.data, want.variable.shape, 'float32'));
    });
  });
  return step;
}
