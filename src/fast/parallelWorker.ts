/**
 * A training worker of parallel.ts: a replica of the model on its own
 * backend, which computes the gradient of its shard of each batch.
 */
import { parentPort, workerData } from 'node:worker_threads';

import * as tf from '@tensorflow/tfjs';

import { isVdspecError } from '../errors.js';
import { initBackend } from './backend.js';
import type { ParallelStepRequest, ParallelWorkerInit, ParallelWorkerReply } from './parallel.js';
import { createFastModel, type FastModel } from './fast-model.js';

const port = parentPort!;
const init = workerData as ParallelWorkerInit;
const reply = (message: ParallelWorkerReply) => port.postMessage(message);
const failure = (error: unknown): ParallelWorkerReply => ({
  kind: 'error',
  code: isVdspecError(error) ? error.code : 'internal',
  message: error instanceof Error ? error.message : String(error),
});

let model: FastModel | null = null;
try {
  await initBackend({ backend: init.backend as 'wasm' });
  model = createFastModel(init.modelOptions);
  reply({ kind: 'ready' });
} catch (error) {
  reply(failure(error));
}
const parameters = new Float32Array(init.parameters);
const gradients = new Float32Array(init.gradients);

port.on('message', (request: ParallelStepRequest) => {
  if (model === null) return;
  try {
    model.writeTrainables(parameters);
    const rows = request.labels.length;
    const x = tf.tensor(request.x, [rows, ...model.inputShape], 'float32');
    let r;
    try {
      r = model.shardGradients(
        { x, labels: request.labels },
        { trainSize: request.trainSize, klWeight: 0, learningRate: 0 },
        { step: request.step, firstRow: request.firstRow, batchSize: request.batchSize },
      );
    } finally {
      x.dispose();
    }
    let offset = 0;
    for (const g of r.grads) {
      const values = g.dataSync() as Float32Array;
      gradients.set(values, offset);
      offset += values.length;
    }
    tf.dispose(r.grads);
    reply({ kind: 'done', dataTerm: r.dataTerm, correct: r.correct });
  } catch (error) {
    reply(failure(error));
  }
});
