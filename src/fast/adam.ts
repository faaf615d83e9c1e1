/**
 * Adam (Kingma and Ba 2015) for the fast models: the moments of every
 * trained tensor (`createAdamSlots`) and one update (`adamUpdateTf`).
 */
import * as tf from '@tensorflow/tfjs';

import { ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON } from '../constants.js';

/** A trainable tensor and its two Adam moments. */
export interface AdamSlot {
  readonly variable: tf.Variable;
  readonly m: tf.Variable;
  readonly v: tf.Variable;
}

/** Zero moments for each variable (the caller disposes slot.m and slot.v). */
export function createAdamSlots(variables: readonly tf.Variable[]): AdamSlot[] {
  // tf.variable keeps its initial value's data but not the tensor object: dispose that.
  const zeros = (like: tf.Tensor) => {
    const initial = tf.zerosLike(like);
    const variable = tf.variable(initial, false);
    initial.dispose();
    return variable;
  };
  return variables.map((variable) => ({ variable, m: zeros(variable), v: zeros(variable) }));
}

/**
 * Adam step t >= 1 (Kingma and Ba 2015, in PyTorch's form):
 * m <- m + (1 - b1)(g - m), v <- v + (1 - b2)(g^2 - v),
 * p <- p - lr m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t),
 * evaluated as p - (lr sqrt(1 - b2^t) / (1 - b1^t)) m / (sqrt(v) + eps sqrt(1 - b2^t))
 * (the same number in exact arithmetic, two elementwise passes fewer). Call inside tf.tidy.
 */
export function adamUpdateTf(
  slots: readonly AdamSlot[],
  grads: readonly tf.Tensor[],
  learningRate: number,
  t: number,
): void {
  const correction1 = 1 - ADAM_BETA1 ** t;
  const root2 = Math.sqrt(1 - ADAM_BETA2 ** t);
  const stepSize = (learningRate * root2) / correction1;
  const epsilon = ADAM_EPSILON * root2;
  slots.forEach((slot, i) => {
    const g = grads[i]!;
    const m = tf.add(slot.m, tf.mul(tf.sub(g, slot.m), 1 - ADAM_BETA1));
    const v = tf.add(slot.v, tf.mul(tf.sub(tf.square(g), slot.v), 1 - ADAM_BETA2));
    slot.m.assign(m);
    slot.v.assign(v);
    slot.variable.assign(
      tf.sub(slot.variable, tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), stepSize)),
    );
  });
}
