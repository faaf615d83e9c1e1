/**
 * Data-parallel training on every core (spec/fast.md#threads): the batch is
 * cut into one shard of rows per thread; each worker thread holds a replica
 * of the model on its own backend and computes its shard's gradient; the main
 * thread adds the shards' gradients in shard order, applies Adam once, and
 * hands the new parameters to the workers with the next step.
 *
 * Every shard draws its own rows of the step's noise (normals.ts), so the
 * noise is the single-thread run's; what depends on the thread count is only
 * the order of float32 additions. For a given seed and thread count a run is
 * bit-identical on every repetition: nothing depends on timing.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import * as tf from '@tensorflow/tfjs';

import { VdspecError, type VdspecErrorCode } from '../errors.js';
import { activeBackend } from './backend.js';
import type { FastModel } from './fast-model.js';
import type { FastModelOptions, FastShard, FastTrainStepResult } from './model-types.js';

/** What a worker is started with. */
export interface ParallelWorkerInit {
  readonly backend: string;
  readonly modelOptions: FastModelOptions;
  /** The trained tensors' values, written by the main thread before each step that changed them. */
  readonly parameters: SharedArrayBuffer;
  /** The worker's shard gradient, written by the worker (float32, readTrainables layout). */
  readonly gradients: SharedArrayBuffer;
}

/** Main thread -> worker. */
export interface ParallelStepRequest {
  readonly kind: 'step';
  readonly x: Float32Array;
  readonly labels: Int32Array;
  readonly step: number;
  readonly firstRow: number;
  readonly batchSize: number;
  readonly trainSize: number;
}

/** Worker -> main thread. */
export type ParallelWorkerReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'done'; readonly dataTerm: number; readonly correct: number }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };

/** The threads to use when none is asked for: VDSPEC_THREADS if set, else every core. */
export const THREADS_ENV_VAR = 'VDSPEC_THREADS';

function workerUrl(): URL {
  const beside = new URL('./parallelWorker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  // Run from the TypeScript sources (the tests): the compiled worker in dist/.
  const built = new URL('../../dist/fast/parallelWorker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new VdspecError(
    'unsupported',
    'the worker script parallelWorker.js is missing: run npm run build',
    'threads',
  );
}

class WorkerHandle {
  private pending: {
    resolve: (reply: ParallelWorkerReply) => void;
    reject: (error: Error) => void;
  } | null = null;
  private failure: Error | null = null;

  constructor(
    readonly worker: Worker,
    readonly gradients: Float32Array,
  ) {
    worker.on('message', (reply: ParallelWorkerReply) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(reply);
    });
    const fail = (error: Error) => {
      this.failure = error;
      const p = this.pending;
      this.pending = null;
      p?.reject(error);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`a training worker exited (code ${code})`)));
  }

  request(message: ParallelStepRequest | null): Promise<ParallelWorkerReply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      if (message !== null) this.worker.postMessage(message, [message.x.buffer as ArrayBuffer]);
    });
  }
}

/**
 * A FastModel trained on `threads` threads: the main thread's model plus
 * `threads - 1` workers. Everything but the step (evaluation, sparsity,
 * state, export) is the main model's.
 */
export class ParallelTrainer {
  private closed = false;

  private constructor(
    readonly model: FastModel,
    readonly threads: number,
    private readonly workers: WorkerHandle[],
    private readonly parameters: Float32Array,
    private readonly inputShape: readonly number[],
  ) {}

  /**
   * Starts `threads - 1` workers, each building a replica of `model` from
   * `modelOptions` (the options `model` was created with) on the active
   * backend. `threads` = 1 starts none.
   */
  static async create(
    model: FastModel,
    modelOptions: FastModelOptions,
    threads: number,
  ): Promise<ParallelTrainer> {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new VdspecError(
        'invalid_argument',
        `expected an integer >= 1, got ${threads}`,
        'threads',
      );
    }
    const total = model
      .trainableShapes()
      .reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const parameters = new SharedArrayBuffer(4 * total);
    const backend = activeBackend();
    if (backend === null) {
      throw new VdspecError('unsupported', 'no backend: call initBackend() first', 'backend');
    }
    const handles: WorkerHandle[] = [];
    const url = threads > 1 ? workerUrl() : null;
    try {
      for (let k = 1; k < threads; k++) {
        const gradients = new SharedArrayBuffer(4 * total);
        const init: ParallelWorkerInit = { backend, modelOptions, parameters, gradients };
        const worker = new Worker(url!, { workerData: init });
        const handle = new WorkerHandle(worker, new Float32Array(gradients));
        handles.push(handle);
      }
      // Each worker says 'ready' once its backend and replica exist.
      const replies = await Promise.all(handles.map((h) => h.request(null)));
      for (const reply of replies) {
        if (reply.kind === 'error')
          throw new Error(`a training worker failed to start: ${reply.message}`);
      }
    } catch (error) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw error;
    }
    return new ParallelTrainer(
      model,
      threads,
      handles,
      new Float32Array(parameters),
      model.inputShape,
    );
  }

  /**
   * One step on `x` (the batch's rows, row-major, `[batch, ...inputShape]`)
   * and `labels`: the same loss as model.trainStep with the same noise, its
   * gradient summed over the shards in shard order, one Adam update.
   */
  async trainStep(
    x: Float32Array,
    labels: Int32Array,
    options: { trainSize: number; klWeight: number; learningRate: number },
  ): Promise<FastTrainStepResult> {
    if (this.closed) {
      throw new VdspecError('invalid_argument', 'the trainer has been closed', 'trainer');
    }
    const batch = labels.length;
    const rowSize = this.inputShape.reduce((a, b) => a * b, 1);
    if (batch < 1 || x.length !== batch * rowSize) {
      throw new VdspecError(
        'shape_mismatch',
        `expected ${batch} rows of ${rowSize} values, got ${x.length} values`,
        'x',
      );
    }
    // Shard k holds rows floor(k B / S) .. floor((k + 1) B / S) - 1; the main thread's is shard 0.
    const shards = Math.min(this.threads, batch);
    const bound = (k: number) => Math.floor((k * batch) / shards);
    const step = this.model.step;
    if (shards > 1) this.model.readTrainables(this.parameters);
    const replies = this.workers.slice(0, shards - 1).map((handle, j) => {
      const from = bound(j + 1);
      const to = bound(j + 2);
      return handle.request({
        kind: 'step',
        x: x.slice(from * rowSize, to * rowSize),
        labels: labels.slice(from, to),
        step,
        firstRow: from,
        batchSize: batch,
        trainSize: options.trainSize,
      });
    });
    const own = this.ownShard(
      x.subarray(0, bound(1) * rowSize),
      labels.subarray(0, bound(1)),
      options,
      {
        step,
        firstRow: 0,
        batchSize: batch,
      },
    );
    const settled = await Promise.allSettled(replies);
    if (own.error !== undefined) throw own.error;
    const { grads } = own;
    try {
      let dataTerm = own.dataTerm;
      let correct = own.correct;
      for (const [j, result] of settled.entries()) {
        const worker = `training worker ${j + 1}`;
        if (result.status === 'rejected') throw new Error(`${worker}: ${String(result.reason)}`);
        const reply = result.value;
        if (reply.kind === 'error') {
          throw reply.code === 'internal'
            ? new Error(`${worker}: ${reply.message}`)
            : new VdspecError(reply.code as VdspecErrorCode, reply.message);
        }
        if (reply.kind !== 'done') throw new Error(`${worker} answered ${reply.kind}`);
        dataTerm = Math.fround(dataTerm + reply.dataTerm);
        correct += reply.correct;
      }
      const klTerm = Math.fround(Math.fround(options.klWeight) * own.kl);
      const loss = Math.fround(dataTerm + klTerm);
      if (!Number.isFinite(loss)) {
        throw new VdspecError(
          'non_finite',
          `the loss is ${loss} (data term ${dataTerm}, KL ${own.kl}) at step ${step}: nothing was updated`,
        );
      }
      const parts = this.workers.slice(0, shards - 1).map((h) => h.gradients);
      const shapes = this.model.trainableShapes();
      tf.tidy(() => {
        let offset = 0;
        const total = grads.map((g, i) => {
          const shape = shapes[i]!.shape;
          const size = shape.reduce((a, b) => a * b, 1);
          let sum = g;
          for (const part of parts) {
            sum = tf.add(sum, tf.tensor(part.subarray(offset, offset + size), shape, 'float32'));
          }
          offset += size;
          return sum;
        });
        this.model.applyGradients(total, options.learningRate);
      });
      return { step, loss, dataTerm, klTerm, kl: own.kl, accuracy: correct / batch };
    } finally {
      tf.dispose(grads);
    }
  }

  private ownShard(
    x: Float32Array,
    labels: Int32Array,
    options: { trainSize: number; klWeight: number; learningRate: number },
    shard: FastShard,
  ):
    | { error: undefined; dataTerm: number; kl: number; correct: number; grads: tf.Tensor[] }
    | { error: unknown; dataTerm: 0; kl: 0; correct: 0; grads: [] } {
    const rows = labels.length;
    const tensor = tf.tensor(x, [rows, ...this.inputShape], 'float32');
    try {
      return {
        error: undefined,
        ...this.model.shardGradients({ x: tensor, labels }, options, shard),
      };
    } catch (error) {
      return { error, dataTerm: 0, kl: 0, correct: 0, grads: [] };
    } finally {
      tensor.dispose();
    }
  }

  /** Stops the workers (the main model stays). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((h) => h.worker.terminate()));
  }
}

/** The thread count asked for by VDSPEC_THREADS, or every core. */
export function defaultThreads(availableCores: number): number {
  const fromEnv = process.env[THREADS_ENV_VAR];
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1 || n > 256) {
      throw new VdspecError(
        'invalid_argument',
        `expected an integer from 1 to 256, got ${JSON.stringify(fromEnv)}`,
        THREADS_ENV_VAR,
      );
    }
    return n;
  }
  return Math.max(1, availableCores);
}
