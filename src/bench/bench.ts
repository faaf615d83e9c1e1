/**
 * vdspec's speed benchmark (spec/fast.md#speed).
 *
 *   npm run build && node dist/bench/bench.js [--rounds N] [--backends wasm,cpu] [--no-torch]
 *
 * Per backend, every case runs once per round, the cases interleaved (so that
 * a change of machine load hits all of them alike), and the median over the
 * rounds is reported with the minimum; ratios are of medians from the same
 * run. Each timed step includes its read-back (loss, data term, KL,
 * accuracy), as a training loop that logs them would.
 *
 * Cases (batch 100, Adam, KL weight 1, the molchanov2017 profile):
 * - plain dense 784x300 step: x @ W + b, N * mean CE over 300 classes, Adam on W
 *   and b; once with tf.matMul's own gradient ("stock"), once with the
 *   transpose-free products of src/fast/fused-kernels.ts;
 * - SVD dense 784x300 step: a one-layer FastModel, fused and autodiff;
 * - LeNet-300-100 SVD step: fused and autodiff, absolute times;
 * - LeNet-5 (Caffe) SVD step, fused: conv 20@5x5, relu, max-pool, conv 50@5x5,
 *   relu, max-pool, dense 500, relu, dense 10 on 28x28x1;
 * - the dense training forward [100, 784] x [784, 300] through the public
 *   plain-tensor API: the float64 reference (denseTrain) against the fast one
 *   (fastDenseTrain), and the tfjs-level forward for scale;
 * - the LeNet-300-100 and LeNet-5 steps on every core: the data-parallel
 *   step of src/fast/parallel.ts with T = os.availableParallelism() threads;
 * - PyTorch: the same LeNet-300-100 and LeNet-5 steps (bench/torch_svd_step.py)
 *   on one thread and on T, interleaved with the rounds, when `import torch`
 *   works; which BLAS it loaded is printed, with a warning for the reference one;
 * - the products alone: the matrix-product and convolution kernels of one
 *   profiled fused step (LeNet-300-100, LeNet-5), their summed time;
 * - the training noise: seededNormals against tf.randomNormal;
 * - start-up: `vdspec eval --op kl.approx` (reference) and `vdspec kl`, start
 *   to exit, as child processes.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import {
  DENSE_INIT_THETA_STD,
  SQRT_EPS,
  SVD_INIT_LOG_SIGMA2,
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  SVD_LOG_ALPHA_MAX,
  SVD_LOG_ALPHA_MIN,
} from '../constants.js';
import { availableBackends, initBackend, type FastBackend } from '../fast/backend.js';
import { denseTrainTf, fastDenseTrain } from '../fast/dense.js';
import { fusedWeightsTf, maxPool2x2Tf, plainLinearTf } from '../fast/fused-kernels.js';
import { seededNormals } from '../fast/normals.js';
import { ParallelTrainer } from '../fast/parallel.js';
import { adamUpdateTf, createAdamSlots } from '../fast/adam.js';
import { createFastModel, type FastModel } from '../fast/fast-model.js';
import { LENET_300_100, LENET_5_CAFFE, type FastLayerSpec } from '../fast/networks.js';
import { PROFILES } from '../profiles.js';
import { denseTrain } from '../reference/dense.js';
import type { Tensor } from '../tensor.js';

const BATCH = 100;
const TRAIN_SIZE = 60_000;
const LEARNING_RATE = 1e-3;
const KL_WEIGHT = 1;
const PROFILE = PROFILES.molchanov2017;

interface Args {
  rounds: number | null;
  backends: FastBackend[] | null;
  torch: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: null, backends: null, torch: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') args.rounds = Number(argv[++i]);
    else if (a === '--backends') args.backends = (argv[++i] ?? '').split(',') as FastBackend[];
    else if (a === '--no-torch') args.torch = false;
    else
      throw new Error(
        `unknown argument ${a}; usage: bench.js [--rounds N] [--backends wasm,cpu] [--no-torch]`,
      );
  }
  return args;
}

interface Case {
  readonly name: string;
  /** Steps per timing (the time is divided by it). */
  readonly inner: number;
  readonly run: () => void | Promise<void>;
  /** Steps per call of run (PyTorch runs several per request); default 1. */
  readonly perCall?: number;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function measure(cases: readonly Case[], rounds: number): Promise<Map<string, number[]>> {
  const samples = new Map(cases.map((c) => [c.name, [] as number[]]));
  // Warm-up: compile kernels, fill caches, take the first (Adam) steps.
  for (const c of cases) for (let i = 0; i < 2; i++) await c.run();
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      const start = performance.now();
      for (let i = 0; i < c.inner; i++) await c.run();
      samples.get(c.name)!.push((performance.now() - start) / c.inner);
    }
  }
  return samples;
}

/** The PyTorch side: one long-lived process that runs n steps per request. */
class TorchStep {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  private failed: ((error: Error) => void) | null = null;
  private exited: Error | null = null;
  info: {
    torch: string;
    threads: number;
    matmul_ms: number;
    blas: string;
    blas_libraries: string[];
  } | null = null;

  constructor(
    python: string,
    readonly network: 'lenet300' | 'lenet5',
    readonly threads: number,
  ) {
    const script = fileURLToPath(new URL('../../bench/torch_svd_step.py', import.meta.url));
    // OpenBLAS keeps its own thread pool, which torch.set_num_threads does not reach when
    // torch was built against the generic BLAS interface (Debian's): pin it as well.
    const pinned = String(threads);
    this.child = spawn(python, [script], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OPENBLAS_NUM_THREADS: pinned, OMP_NUM_THREADS: pinned },
    });
    let buffer = '';
    this.child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = null;
          this.failed = null;
          w(line);
        } else this.lines.push(line);
      }
    });
    let stderr = '';
    this.child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    this.child.on('exit', (code) => {
      this.exited = new Error(`python exited with code ${code}: ${stderr.slice(-500)}`);
      this.failed?.(this.exited);
    });
  }

  private next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.exited !== null) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
    });
  }

  async start(): Promise<void> {
    const config = {
      k1: SVD_KL_K1,
      k2: SVD_KL_K2,
      k3: SVD_KL_K3,
      clip_min: SVD_LOG_ALPHA_MIN,
      clip_max: SVD_LOG_ALPHA_MAX,
      sqrt_eps: SQRT_EPS,
      init_log_sigma2: SVD_INIT_LOG_SIGMA2,
      init_std: DENSE_INIT_THETA_STD,
      train_size: TRAIN_SIZE,
      lr: LEARNING_RATE,
      batch: BATCH,
      network: this.network,
      threads: this.threads,
    };
    this.child.stdin.write(`${JSON.stringify(config)}\n`);
    this.info = JSON.parse(await this.next());
  }

  async steps(n: number): Promise<void> {
    this.child.stdin.write(`${n}\n`);
    JSON.parse(await this.next());
  }

  stop(): void {
    this.child.stdin.end('\n');
  }
}

function findPython(): string | null {
  const candidates = [process.env.VDSPEC_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (p): p is string => typeof p === 'string' && p !== '',
  );
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return python;
  }
  return null;
}

function crossEntropyMean(logits: tf.Tensor, oneHot: tf.Tensor): tf.Scalar {
  return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, oneHot), 1))) as tf.Scalar;
}

/** A plain dense training step with the same loss, Adam and read-back as the model's. */
function plainStep(
  x: tf.Tensor2D,
  labels: tf.Tensor1D,
  classes: number,
  matmul: 'stock' | 'transpose-free',
): { run: () => void; dispose: () => void } {
  const w = tf.variable(
    tf.randomNormal([x.shape[1], classes], 0, DENSE_INIT_THETA_STD, 'float32', 1),
  );
  const b = tf.variable(tf.zeros([classes]));
  const slots = createAdamSlots([w, b]);
  const oneHot = tf.cast(tf.oneHot(labels, classes), 'float32');
  let t = 0;
  return {
    run: () =>
      tf.tidy(() => {
        let logits: tf.Tensor | null = null;
        const { value, grads } = tf.variableGrads(() => {
          const z =
            matmul === 'stock'
              ? tf.add(tf.matMul(x, w), b)
              : plainLinearTf(x, w as tf.Tensor as tf.Tensor2D, b, false);
          logits = tf.keep(z);
          return tf.mul(crossEntropyMean(z, oneHot), TRAIN_SIZE) as tf.Scalar;
        }, [w, b]);
        adamUpdateTf(slots, [grads[w.name]!, grads[b.name]!], LEARNING_RATE, ++t);
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits!, 1), labels), 'float32'));
        tf.stack([value, correct]).dataSync();
        tf.dispose(logits!);
      }),
    dispose: () => tf.dispose([w, b, oneHot, ...slots.flatMap((s) => [s.m, s.v])]),
  };
}

function plainTensor(t: tf.Tensor): Tensor {
  return { shape: [...t.shape], data: Array.from(t.dataSync()) };
}

interface Row {
  name: string;
  median: number;
  min: number;
}

async function benchBackend(
  backend: FastBackend,
  rounds: number,
  torch: readonly TorchStep[],
  threads: number,
) {
  await initBackend({ backend });
  const x = tf.randomNormal([BATCH, 784], 0, 1, 'float32', 3) as tf.Tensor2D;
  const labels300 = tf.tensor1d(
    Array.from({ length: BATCH }, (_, i) => (7 * i) % 300),
    'int32',
  );
  const labels10 = Array.from({ length: BATCH }, (_, i) => i % 10);
  const stepOptions = { trainSize: TRAIN_SIZE, klWeight: KL_WEIGHT, learningRate: LEARNING_RATE };
  const models: FastModel[] = [];
  const model = (
    layers: readonly FastLayerSpec[],
    gradients: 'fused' | 'autodiff',
    inputShape: readonly number[] = [784],
  ) => {
    const m = createFastModel({ inputShape, layers, profile: PROFILE, seed: 1, gradients });
    models.push(m);
    return m;
  };
  const dense300 = [{ kind: 'dense', units: 300 }] as const;
  const svdFused = model(dense300, 'fused');
  const svdAutodiff = model(dense300, 'autodiff');
  const lenetFused = model(LENET_300_100, 'fused');
  const lenetAutodiff = model(LENET_300_100, 'autodiff');
  const lenet5Fused = model(LENET_5_CAFFE, 'fused', [28, 28, 1]);
  const images = tf.randomUniform([BATCH, 28, 28, 1], 0, 1, 'float32', 11);
  const plainStock = plainStep(x, labels300, 300, 'stock');
  const plainFast = plainStep(x, labels300, 300, 'transpose-free');
  const batch300 = { x, labels: Array.from(labels300.dataSync()) };
  const batch10 = { x, labels: labels10 };
  const batchImages = { x: images, labels: labels10 };

  // The dense forward through the public plain-tensor API of both implementations.
  const p = svdFused.parameters()[0]!;
  const eps = tf.randomNormal([BATCH, 300], 0, 1, 'float32', 4);
  const inputs = {
    x: plainTensor(x),
    theta: p.theta,
    noise: p.noise,
    bias: p.bias,
    eps: plainTensor(eps),
  };
  const tfInputs = {
    x,
    theta: tf.tensor(p.theta.data as number[], [...p.theta.shape]),
    noise: tf.tensor(p.noise.data as number[], [...p.noise.shape]),
    bias: tf.zeros([300]),
  };

  const slow = backend === 'cpu';
  const cases: Case[] = [
    {
      name: 'plain dense step, stock tf.matMul gradient',
      inner: slow ? 1 : 3,
      run: plainStock.run,
    },
    { name: 'plain dense step, transpose-free', inner: slow ? 1 : 3, run: plainFast.run },
    {
      name: 'SVD dense step, fused',
      inner: slow ? 1 : 3,
      run: () => void svdFused.trainStep(batch300, stepOptions),
    },
    {
      name: 'SVD dense step, autodiff',
      inner: 1,
      run: () => void svdAutodiff.trainStep(batch300, stepOptions),
    },
    {
      name: 'LeNet-300-100 SVD step, fused',
      inner: slow ? 1 : 3,
      run: () => void lenetFused.trainStep(batch10, stepOptions),
    },
    {
      name: 'LeNet-300-100 SVD step, autodiff',
      inner: 1,
      run: () => void lenetAutodiff.trainStep(batch10, stepOptions),
    },
    {
      name: 'LeNet-5 SVD step, fused',
      inner: 1,
      run: () => void lenet5Fused.trainStep(batchImages, stepOptions),
    },
    {
      name: 'dense forward, fast (plain tensors in and out)',
      inner: slow ? 1 : 3,
      run: () => void fastDenseTrain(inputs, PROFILE),
    },
    {
      name: 'dense forward, fast (tfjs tensors, read back)',
      inner: slow ? 1 : 3,
      run: () =>
        tf.tidy(() => void denseTrainTf(tfInputs, eps, null, PROFILE, false).output.dataSync()),
    },
    {
      name: 'dense forward, float64 reference',
      inner: 1,
      run: () => void denseTrain(inputs, PROFILE),
    },
  ];
  const trainers: ParallelTrainer[] = [];
  if (threads > 1) {
    const options = (layers: readonly FastLayerSpec[], inputShape: readonly number[]) => ({
      inputShape,
      layers,
      profile: PROFILE,
      seed: 1,
    });
    const lenet300Options = options(LENET_300_100, [784]);
    const lenet5Options = options(LENET_5_CAFFE, [28, 28, 1]);
    const lenet300 = await ParallelTrainer.create(
      model(LENET_300_100, 'fused'),
      lenet300Options,
      threads,
    );
    const lenet5 = await ParallelTrainer.create(
      model(LENET_5_CAFFE, 'fused', [28, 28, 1]),
      lenet5Options,
      threads,
    );
    trainers.push(lenet300, lenet5);
    const xValues = x.dataSync() as Float32Array;
    const imageValues = images.dataSync() as Float32Array;
    const labelValues = Int32Array.from(labels10);
    cases.push(
      {
        name: `LeNet-300-100 SVD step, fused, ${threads} threads`,
        inner: slow ? 1 : 3,
        run: async () => void (await lenet300.trainStep(xValues, labelValues, stepOptions)),
      },
      {
        name: `LeNet-5 SVD step, fused, ${threads} threads`,
        inner: 1,
        run: async () => void (await lenet5.trainStep(imageValues, labelValues, stepOptions)),
      },
    );
  }
  for (const t of torch) {
    const perCall = t.network === 'lenet300' ? 3 : 1;
    cases.push({
      name: `${t.network === 'lenet300' ? 'LeNet-300-100' : 'LeNet-5'} SVD step, PyTorch, ${t.threads} thread${t.threads === 1 ? '' : 's'}`,
      inner: 1,
      perCall,
      run: () => t.steps(perCall),
    });
  }
  const samples = await measure(cases, rounds);
  const rows: Row[] = cases.map((c) => {
    const s = samples.get(c.name)!;
    const scale = 1 / (c.perCall ?? 1);
    return { name: c.name, median: median(s) * scale, min: Math.min(...s) * scale };
  });
  rows.push(
    await productsAlone(
      'LeNet-300-100',
      () => void lenetFused.trainStep(batch10, stepOptions),
      rounds,
    ),
    await productsAlone(
      'LeNet-5',
      () => void lenet5Fused.trainStep(batchImages, stepOptions),
      rounds,
    ),
  );
  await Promise.all(trainers.map((t) => t.close()));
  for (const m of models) m.dispose();
  plainStock.dispose();
  plainFast.dispose();
  tf.dispose([x, images, labels300, eps, tfInputs.theta, tfInputs.noise, tfInputs.bias]);
  return rows;
}

/**
 * The kernels that multiply matrices or convolve: the part of a step that is
 * the backend's arithmetic, not vdspec's, and whose time no change to vdspec's
 * step can lower. Depthwise convolutions (the patches of spec/fast.md#kernel-paths)
 * and the max-pool gradient's small routing product are left out, so the sum
 * is a lower bound.
 */
const PRODUCT_KERNELS = new Set([
  'BatchMatMul',
  '_FusedMatMul',
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
]);

/**
 * The time of one fused step's product kernels, from tf.profile (each kernel
 * timed on its own, so the sum leaves out everything between them), median
 * and minimum over `rounds` profiled steps.
 */
async function productsAlone(network: string, step: () => void, rounds: number): Promise<Row> {
  const sums: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const profile = await tf.profile(step);
    let sum = 0;
    for (const k of profile.kernels) {
      if (!PRODUCT_KERNELS.has(k.name) || typeof k.kernelTimeMs !== 'number') continue;
      // The max-pool gradient's routing product (a 4x4 matrix of ones, maxPoolBackward)
      // is vdspec's choice of kernel path, not a product of the layers.
      if (k.name === 'BatchMatMul' && k.inputShapes[0]?.slice(-2).join('x') === '4x4') continue;
      sum += k.kernelTimeMs;
    }
    sums.push(sum);
  }
  return {
    name: `${network} SVD step, fused: its products alone`,
    median: median(sums),
    min: Math.min(...sums),
  };
}

/**
 * The kernels behind the design choices of spec/fast.md#training, timed
 * without read-back (wasm and cpu run each kernel to completion before the
 * call returns).
 */
async function benchKernels(rounds: number): Promise<Row[]> {
  const x = tf.randomNormal([BATCH, 784], 0, 1, 'float32', 5);
  const g = tf.randomNormal([BATCH, 300], 0, 1, 'float32', 6);
  const la = tf.randomUniform([784, 300], -8, 8, 'float32', 7);
  const p = tf.sigmoid(la);
  const theta = tf.randomNormal([784, 300], 0, DENSE_INIT_THETA_STD, 'float32', 8);
  const noise = tf.fill([784, 300], SVD_INIT_LOG_SIGMA2);
  const pooled = tf.relu(tf.randomNormal([BATCH, 24, 24, 20], 0, 1, 'float32', 9)) as tf.Tensor4D;
  const dy = tf.randomNormal([BATCH, 12, 12, 20], 0, 1, 'float32', 10) as tf.Tensor4D;
  const poolGrad = (impl: 'native' | 'ops') => () =>
    tf.tidy(() => void tf.grad((t: tf.Tensor) => maxPool2x2Tf(t as tf.Tensor4D, impl))(pooled, dy));
  const cases: Case[] = [
    {
      name: 'matMul [784,100]x[100,300], transposeA flag',
      inner: 1,
      run: () => tf.tidy(() => void tf.matMul(x, g, true, false)),
    },
    {
      name: 'the same product: tf.transpose, then matMul',
      inner: 1,
      run: () => tf.tidy(() => void tf.matMul(tf.transpose(x), g)),
    },
    { name: 'exp, 784x300', inner: 3, run: () => tf.tidy(() => void tf.exp(la)) },
    {
      name: 'sigmoid(x) / sigmoid(-x), 784x300',
      inner: 3,
      run: () => tf.tidy(() => void tf.div(tf.sigmoid(la), tf.sigmoid(tf.neg(la)))),
    },
    { name: 'sum of logs, 784x300', inner: 3, run: () => tf.tidy(() => void tf.sum(tf.log(p))) },
    {
      name: 'sum of logs of products of 8, 784x300',
      inner: 3,
      run: () => tf.tidy(() => void tf.sum(tf.log(tf.prod(tf.reshape(p, [-1, 8]), 1)))),
    },
    {
      name: 'fusedWeightsTf, 784x300',
      inner: 3,
      run: () => tf.tidy(() => void fusedWeightsTf(theta, noise, PROFILE, 'dense', false)),
    },
    {
      name: 'normals, 1,152,000 (LeNet-5 conv1, batch 100): seededNormals',
      inner: 1,
      run: () => void seededNormals(1_152_000, 12345),
    },
    {
      name: 'normals, 1,152,000: tf.randomNormal, read back',
      inner: 1,
      run: () =>
        tf.tidy(() => void tf.randomNormal([1_152_000], 0, 1, 'float32', 12345).dataSync()),
    },
    { name: 'max-pool 2x2 gradient [100,24,24,20], native', inner: 1, run: poolGrad('native') },
    { name: 'max-pool 2x2 gradient [100,24,24,20], ops', inner: 1, run: poolGrad('ops') },
  ];
  const samples = await measure(cases, rounds);
  tf.dispose([x, g, la, p, theta, noise, pooled, dy]);
  return cases.map((c) => {
    const t = samples.get(c.name)!;
    return { name: c.name, median: median(t), min: Math.min(...t) };
  });
}

function report(backend: string, rows: Row[], threads: number): void {
  const get = (name: string) => rows.find((r) => r.name === name)?.median ?? NaN;
  console.log(`\n## backend ${backend}\n`);
  console.log('| case | median ms | min ms |');
  console.log('| --- | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.name} | ${r.median.toFixed(2)} | ${r.min.toFixed(2)} |`);
  const ratio = (a: string, b: string, label: string) => {
    const v = get(a) / get(b);
    if (Number.isFinite(v)) console.log(`| ${label} | ${v.toFixed(2)}x |`);
  };
  console.log('\n| ratio (medians) | value |');
  console.log('| --- | ---: |');
  ratio(
    'SVD dense step, fused',
    'plain dense step, transpose-free',
    'SVD dense fused / plain transpose-free',
  );
  ratio(
    'SVD dense step, fused',
    'plain dense step, stock tf.matMul gradient',
    'SVD dense fused / plain stock',
  );
  ratio(
    'SVD dense step, autodiff',
    'plain dense step, stock tf.matMul gradient',
    'SVD dense autodiff / plain stock (before)',
  );
  ratio(
    'LeNet-300-100 SVD step, autodiff',
    'LeNet-300-100 SVD step, fused',
    'LeNet-300-100 autodiff / fused (speed-up)',
  );
  const t = `${threads} threads`;
  ratio(
    'LeNet-300-100 SVD step, fused',
    'LeNet-300-100 SVD step, PyTorch, 1 thread',
    'LeNet-300-100 fused / PyTorch, 1 thread each',
  );
  ratio(
    `LeNet-300-100 SVD step, fused, ${t}`,
    `LeNet-300-100 SVD step, PyTorch, ${t}`,
    `LeNet-300-100 fused / PyTorch, ${t} each`,
  );
  ratio(
    'LeNet-5 SVD step, fused',
    'LeNet-5 SVD step, PyTorch, 1 thread',
    'LeNet-5 fused / PyTorch, 1 thread each',
  );
  ratio(
    `LeNet-5 SVD step, fused, ${t}`,
    `LeNet-5 SVD step, PyTorch, ${t}`,
    `LeNet-5 fused / PyTorch, ${t} each`,
  );
  ratio(
    'LeNet-300-100 SVD step, fused: its products alone',
    'LeNet-300-100 SVD step, PyTorch, 1 thread',
    'LeNet-300-100 fused products alone / PyTorch whole step, 1 thread each',
  );
  ratio(
    'LeNet-5 SVD step, fused: its products alone',
    'LeNet-5 SVD step, PyTorch, 1 thread',
    'LeNet-5 fused products alone / PyTorch whole step, 1 thread each',
  );
  ratio(
    'LeNet-300-100 SVD step, fused',
    `LeNet-300-100 SVD step, fused, ${t}`,
    `LeNet-300-100, 1 thread / ${t} (speed-up)`,
  );
  ratio(
    'LeNet-5 SVD step, fused',
    `LeNet-5 SVD step, fused, ${t}`,
    `LeNet-5, 1 thread / ${t} (speed-up)`,
  );
  ratio(
    'dense forward, float64 reference',
    'dense forward, fast (plain tensors in and out)',
    'dense forward reference / fast (plain tensors)',
  );
  ratio(
    'dense forward, float64 reference',
    'dense forward, fast (tfjs tensors, read back)',
    'dense forward reference / fast (tfjs tensors)',
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const found = await availableBackends();
  const backends = (args.backends ?? found).filter((b) => found.includes(b));
  console.log('# vdspec benchmark');
  console.log(
    `node ${process.version}, tfjs ${tf.version.tfjs}, ${os.cpus()[0]?.model ?? 'unknown cpu'} x ${os.cpus().length}, ` +
      `load average at start ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const threads = os.availableParallelism();
  console.log(`threads: 1 and ${threads} (os.availableParallelism())`);
  const torch: TorchStep[] = [];
  if (args.torch) {
    const python = findPython();
    if (python === null) console.log('PyTorch: not available (`import torch` fails); skipped');
    else {
      for (const network of ['lenet300', 'lenet5'] as const) {
        for (const n of threads > 1 ? [1, threads] : [1]) {
          const t = new TorchStep(python, network, n);
          await t.start();
          torch.push(t);
          const info = t.info!;
          console.log(
            `PyTorch ${info.torch} (${python}), ${network}, ${info.threads} thread(s); ` +
              `its 100x784 @ 784x300 matmul: ${info.matmul_ms.toFixed(2)} ms`,
          );
        }
      }
      const info = torch[0]!.info!;
      const loaded = info.blas_libraries.join(', ') || 'none found';
      console.log(`PyTorch BLAS: built with BLAS_INFO=${info.blas}; loaded: ${loaded}`);
      if (!/openblas|mkl|blis/i.test(loaded)) {
        console.log(
          'WARNING: PyTorch runs on the reference BLAS, which flatters vdspec: ' +
            'apt-get install -y libopenblas0-pthread (spec/fast.md#speed)',
        );
      }
    }
  }
  for (const backend of backends) {
    const rounds = args.rounds ?? (backend === 'cpu' ? 5 : 15);
    const rows = await benchBackend(backend, rounds, torch, threads);
    report(backend, rows, threads);
    console.log('\n| kernel | median ms | min ms |');
    console.log('| --- | ---: | ---: |');
    for (const r of await benchKernels(rounds)) {
      console.log(`| ${r.name} | ${r.median.toFixed(2)} | ${r.min.toFixed(2)} |`);
    }
    console.log(
      `\n(${rounds} rounds; load average now ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')})`,
    );
  }
  for (const t of torch) t.stop();
  startup();
}

/** Start to exit of commands that need no TensorFlow.js, as users run them (dist/cli/main.js). */
function startup(): void {
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  if (!existsSync(cli)) return;
  const runs = 11;
  const time = (args: string[], input: string, script: string[] = [cli]) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      const r = spawnSync(process.execPath, [...script, ...args], { input, encoding: 'utf8' });
      times.push(performance.now() - start);
      if (r.status !== 0) throw new Error(`vdspec ${args.join(' ')} failed: ${r.stderr}`);
    }
    return { median: median(times), min: Math.min(...times) };
  };
  const rows: [string, { median: number; min: number }][] = [
    [
      'vdspec eval --op kl.approx (reference)',
      time(['eval', '--op', 'kl.approx'], '{"log_alpha": {"shape": [3], "data": [0, 3, 8]}}'),
    ],
    ['vdspec kl', time(['kl'], '')],
    ['vdspec --version', time(['--version'], '')],
    ['node -e 0 (Node alone)', time(['-e', '0'], '', [])],
  ];
  console.log(`\n| start to exit (${runs} runs) | median ms | min ms |`);
  console.log('| --- | ---: | ---: |');
  for (const [name, t] of rows) {
    console.log(`| ${name} | ${t.median.toFixed(0)} | ${t.min.toFixed(0)} |`);
  }
}

await main();
