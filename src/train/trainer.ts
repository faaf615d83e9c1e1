/**
 * `vdspec train` without the command line (spec/train.md): train a LeNet
 * with Sparse VD (or its dense baseline) on the seeded MNIST split with the
 * fast implementation, one checkpoint per epoch, and a JSON record of the
 * run. Resuming from the checkpoint continues the exact same run: batches,
 * noise and Adam's state depend only on the seed and the step count.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import {
  isDataSetName,
  loadDataSet,
  MNIST_SPLIT_SEED,
  stratifiedSplit,
  type DataSetName,
  type MnistSubset,
} from '../data/mnist.js';
import { SVD_INIT_LOG_SIGMA2 } from '../constants.js';
import { schemaViolation } from '../schema.js';
import { VdspecError } from '../errors.js';
import { activeBackend } from '../fast/backend.js';
import { makeDirectories, plainFileError, writeFileAtomic } from '../files.js';
import { defaultThreads, ParallelTrainer } from '../fast/parallel.js';
import { createFastModel, type FastModel } from '../fast/fast-model.js';
import type { FastModelOptions, FastModelState, VdLogAlphaShape } from '../fast/model-types.js';
import { fnv1a32, Xorshift32 } from '../golden/prng.js';
import {
  isProfileName,
  PROFILE_NAMES,
  PROFILES,
  type LayerConventions,
  type Profile,
  type ProfileName,
} from '../profiles.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import {
  isNetworkName,
  NETWORKS,
  recipeFor,
  scheduleAt,
  type NetworkName,
  type Recipe,
} from './recipe.js';

export const TRAIN_RECORD_FORMAT = 'vdspec-train';
export const TRAIN_RECORD_VERSION = 1;
export const CHECKPOINT_FILE = 'checkpoint.bin';
export const RESULTS_FILE = 'results.json';

export interface TrainConfig {
  readonly network: NetworkName;
  /** `mnist`: the original 60,000 / 10,000; `mnist-small`: the seeded 8,000 / 2,000 (spec/data.md). */
  readonly data: DataSetName;
  readonly profile: ProfileName;
  /**
   * Apply the keep mask in the training forward (the official LeNet scripts'
   * train_clip=True); null for the profile's trainClipDefault.
   */
  readonly trainClip: boolean | null;
  /**
   * The SVD paper's random-labels experiment: the training labels permuted by
   * a seeded shuffle with this seed (spec/train.md#random-labels); null: the
   * true labels. The test labels are never permuted.
   */
  readonly randomLabels: number | null;
  /** VD only: the learned log_alpha per weight, per input unit or per layer; null otherwise. */
  readonly vdLogAlpha: VdLogAlphaShape | null;
  /** The dense baseline: the same architecture, deterministic, no KL (FastModelOptions.deterministic). */
  readonly baseline: boolean;
  readonly epochs: number;
  /** Seeds the initialisation, the noise and the batch order. */
  readonly seed: number;
  readonly splitSeed: number;
  /** Use only the first `trainLimit` training images (in split order); null for all. */
  readonly trainLimit: number | null;
  readonly testLimit: number | null;
  /**
   * A finished baseline run's directory whose theta and bias start this run;
   * null for none. makeConfig gives it absolute; the record holds it relative
   * to the run's own directory (`../lenet5-baseline`), so that a record names
   * no path of the machine that trained. Records written before hold an
   * absolute path, which reads as is (initFromDir).
   */
  readonly initFrom: string | null;
  readonly recipe: Recipe;
  /**
   * Threads of the data-parallel step (spec/fast.md#threads): a run is
   * bit-identical for a given seed and thread count.
   */
  readonly threads: number;
  /**
   * The generator of the training noise: NOISE_GENERATOR (spec/fast.md#noise);
   * `tf-random-normal` in records made before it, with `tf.randomNormal`.
   */
  readonly noise: string;
  /**
   * Sparse VD's noise parameter: `additive` trains log_sigma2 (the SVD
   * paper's additive reparameterization, every profile's), `multiplicative`
   * trains log_alpha itself (the multiplicative noise on theta the paper
   * compares it with; spec/train.md#additive-and-multiplicative).
   */
  readonly reparameterization: Reparameterization;
}

/**
 * What a run trained, as its banner, plots and the README's Results name it:
 * the profile's algorithm decides, so a kingma2015 run is never called Sparse VD.
 */
export function trainedModelName(config: Pick<TrainConfig, 'baseline' | 'profile'>): string {
  if (config.baseline) return 'dense baseline';
  return PROFILES[config.profile].algorithm === 'vd' ? 'VD' : 'Sparse VD';
}

export type Reparameterization = 'additive' | 'multiplicative';

/** The training noise's generator, as records name it. */
export const NOISE_GENERATOR = 'philox-xoshiro-polar';
/** What records made before NOISE_GENERATOR drew their noise with. */
export const OLD_NOISE_GENERATOR = 'tf-random-normal';

export interface EpochMetrics {
  /** 1 for the first epoch. */
  readonly epoch: number;
  /** beta during the epoch (0 for the baseline, which has no KL). */
  readonly klWeight: number;
  readonly learningRate: number;
  /** Means over the epoch's steps of the minimised loss and its parts (before each update). */
  readonly loss: number;
  readonly dataTerm: number;
  readonly kl: number;
  /** Accuracy of the training forward (with its noise) over the epoch's batches. */
  readonly trainAccuracy: number;
  /** Accuracy and mean cross-entropy of the eval forward (pruned for SVD) on the test images. */
  readonly testAccuracy: number;
  readonly testCrossEntropy: number;
  /** Weights kept by the eval forward, and |W| / |W != 0|. */
  readonly kept: number;
  readonly total: number;
  readonly compression: number;
  /** Wall time of the epoch, training and evaluation. */
  readonly seconds: number;
}

export interface LayerResult {
  readonly name: string;
  readonly kept: number;
  readonly total: number;
  readonly keptPercent: number;
  readonly compression: number;
}

export interface TrainRecord {
  readonly format: typeof TRAIN_RECORD_FORMAT;
  readonly version: typeof TRAIN_RECORD_VERSION;
  readonly config: TrainConfig;
  readonly trainSize: number;
  readonly testSize: number;
  /** Backend of each session (a resumed run may change machine). */
  readonly backends: string[];
  readonly epochs: EpochMetrics[];
  /** Sum of the epochs' wall times, over every session. */
  readonly wallSeconds: number;
  /** True once every epoch has run. */
  readonly complete: boolean;
  /**
   * Filled in when complete and the exports are done (spec/train.md#results);
   * complete with a null final: stopped during the exports, which --resume redoes.
   */
  readonly final: FinalResults | null;
}

export interface FinalResults {
  readonly testError: number;
  readonly layers: LayerResult[];
  readonly overall: LayerResult;
  /** Extra results of the caller (export, plots), stored as given. */
  readonly extra: Record<string, unknown>;
}

export interface TrainProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly accuracy: number;
  /** Seconds since this session started training, and the epochs it has finished. */
  readonly sessionSeconds: number;
  readonly sessionSteps: number;
  readonly lastEpoch: EpochMetrics | null;
}

export interface TrainRunOptions {
  readonly outDir: string;
  /** Continue from outDir's checkpoint; without it, a checkpoint in outDir is an error. */
  readonly resume: boolean;
  /** Stop after this epoch (1-based), resumable later; default all epochs. */
  readonly until?: number;
  /**
   * Called once every input is checked (configuration, checkpoint, --until,
   * data, --init-from, the output directory) and before the first step: a
   * banner printed here never precedes a refusal.
   */
  readonly onStart?: () => void;
  readonly onStep?: (p: TrainProgress) => void;
  readonly onEpoch?: (m: EpochMetrics, record: TrainRecord) => void;
  /** Polled after every step: true stops the run at once (the epoch in progress is lost). */
  readonly shouldStop?: () => boolean;
  /**
   * Run after the last epoch, with the trained model: returns extra results
   * for the record. It awaits `stopPoint` between its pieces of work, which
   * ends the run as stopped there when shouldStop says so.
   */
  readonly finish?: (
    model: FastModel,
    data: { test: MnistSubset; xTest: tf.Tensor },
    record: TrainRecord,
    stopPoint: () => Promise<void>,
  ) => Promise<Record<string, unknown>>;
}

/** Thrown by a stop point of `finish` to end the run as stopped. */
class RunStopped extends Error {}

export interface TrainOutcome {
  readonly record: TrainRecord;
  /** Why it returned: all epochs done, `until` reached, or stopped by shouldStop. */
  readonly status: 'complete' | 'paused' | 'stopped';
}

/** The seed of epoch e's batch order: fnv1a32("<seed>/batches/<e>"), 0 replaced by 1. */
export function batchOrderSeed(seed: number, epoch: number): number {
  return fnv1a32(`${seed}/batches/${epoch}`) || 1;
}

/** The order of the training images in epoch `epoch` (from 0): a seeded Fisher-Yates shuffle. */
export function batchOrder(count: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const rng = new Xorshift32(batchOrderSeed(seed, epoch));
  for (let i = count - 1; i > 0; i--) {
    const j = rng.next() % (i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** The fields that make a run, each with the `vdspec train` flag that sets it (network: the positional argument). */
export const CONFIG_FLAGS = {
  network: 'the network',
  data: '--data',
  profile: '--profile',
  trainClip: '--train-clip',
  randomLabels: '--random-labels',
  vdLogAlpha: '--vd-log-alpha',
  baseline: '--baseline',
  epochs: '--epochs',
  seed: '--seed',
  splitSeed: '--split-seed',
  trainLimit: '--train-limit',
  testLimit: '--test-limit',
  initFrom: '--init-from',
  threads: '--threads',
  reparameterization: '--multiplicative',
} as const satisfies Partial<Record<keyof TrainConfig, string>>;

export type ConfigField = keyof typeof CONFIG_FLAGS;

/**
 * A config field as the flags that give it, in words: `--epochs 2`,
 * `--no-train-clip`, `no --train-limit`, `network lenet5`.
 */
export function describeConfigField(config: TrainConfig, field: ConfigField): string {
  const value = config[field];
  if (field === 'network') return `network ${String(value)}`;
  if (field === 'trainClip') {
    if (value === null) return "the profile's --train-clip default";
    return value ? '--train-clip' : '--no-train-clip';
  }
  if (field === 'baseline') return value ? '--baseline' : 'no --baseline';
  if (field === 'reparameterization') {
    return value === 'multiplicative' ? '--multiplicative' : 'no --multiplicative';
  }
  if (value === null) return `no ${CONFIG_FLAGS[field]}`;
  return `${CONFIG_FLAGS[field]} ${String(value)}`;
}

/** The directory of the baseline run `config` starts from (absolute), or null; `outDir` is the run's. */
export function initFromDir(config: Pick<TrainConfig, 'initFrom'>, outDir: string): string | null {
  return config.initFrom === null ? null : resolve(outDir, config.initFrom);
}

/** `config` as a run in `outDir` records it: initFrom relative to outDir. */
function recordedConfig(config: TrainConfig, outDir: string): TrainConfig {
  if (config.initFrom === null || !isAbsolute(config.initFrom)) return config;
  // On another drive (Windows) there is no relative path: relative() returns the absolute one.
  return { ...config, initFrom: relative(resolve(outDir), config.initFrom) || '.' };
}

/** Whether two configs of the run in `outDir` agree on `field` (initFrom: the same directory). */
export function sameField(
  a: TrainConfig,
  b: TrainConfig,
  field: ConfigField,
  outDir: string,
): boolean {
  if (field === 'initFrom') return initFromDir(a, outDir) === initFromDir(b, outDir);
  return a[field] === b[field];
}

/** The first field where `a` (the checkpoint's) and `b` differ, in words; null when none does. */
function sameConfig(a: TrainConfig, b: TrainConfig, outDir: string): string | null {
  for (const k of Object.keys(CONFIG_FLAGS) as ConfigField[]) {
    if (!sameField(a, b, k, outDir)) {
      return `${describeConfigField(a, k)} there, ${describeConfigField(b, k)} here`;
    }
  }
  return null;
}

/**
 * The configuration of the run in `outDir`, from its checkpoint: what
 * `--resume` continues.
 */
export function readRunConfig(outDir: string): TrainConfig {
  const checkpointPath = join(outDir, CHECKPOINT_FILE);
  if (!existsSync(checkpointPath)) {
    throw new VdspecError('invalid_argument', `${outDir} holds no checkpoint to resume`, 'resume');
  }
  return readCheckpoint(checkpointPath, (r) => checkRecord(r, checkpointPath)).header.config;
}

/**
 * Read and validate a results file (`results.json`): every reader of one goes
 * through here, so a missing, unreadable, truncated or non-JSON file is the
 * same one-line refusal (exit 2) as a record that fails the schema.
 */
export function readRecordFile(path: string): TrainRecord {
  const bad = (why: string) => new VdspecError('invalid_checkpoint', `${path}: ${why}`, 'record');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw bad(
      (e as NodeJS.ErrnoException).code === 'EISDIR'
        ? 'is a directory, not a file'
        : `cannot be read: ${plainFileError(e)}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw bad(
      text.trim() === ''
        ? 'is empty (not a JSON record)'
        : `is not valid JSON (truncated?): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return checkRecord(value, path);
}

/** Validate a record read back from a checkpoint or results file. */
export function checkRecord(value: unknown, where: string): TrainRecord {
  const bad = (why: string) => new VdspecError('invalid_checkpoint', `${where}: ${why}`, 'record');
  const problem = schemaViolation('train-record', value);
  if (problem !== null) throw bad(`${problem.path}: ${problem.problem}`);
  const r = value as TrainRecord;
  if (r.epochs.length > r.config.epochs) {
    throw bad(`/epochs: ${r.epochs.length} epochs recorded, ${r.config.epochs} configured`);
  }
  // Records written before --data, --train-clip, --threads, the seeded-normals generator, ...:
  // what those runs did.
  const c: Partial<TrainConfig> = r.config;
  return {
    ...r,
    config: {
      ...r.config,
      data: c.data ?? 'mnist-small',
      trainClip: c.trainClip ?? null,
      randomLabels: c.randomLabels ?? null,
      vdLogAlpha: c.vdLogAlpha ?? null,
      threads: c.threads ?? 1,
      noise: c.noise ?? OLD_NOISE_GENERATOR,
      reparameterization: c.reparameterization ?? 'additive',
    },
  };
}

function prepareOutDir(outDir: string): void {
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) {
    throw new VdspecError('io_error', `${outDir} exists and is not a directory`, 'out');
  }
  try {
    makeDirectories(outDir);
  } catch (error) {
    throw new VdspecError(
      'io_error',
      `cannot create ${outDir}: ${(error as Error).message}`,
      'out',
    );
  }
}

/** Write a file of the run directory atomically, with the run's error for a failure. */
function writeRunFile(path: string, text: string): void {
  try {
    writeFileAtomic(path, text);
  } catch (error) {
    throw new VdspecError('io_error', `cannot write ${path}: ${(error as Error).message}`, 'out');
  }
}

/** theta and bias of a finished baseline run, for `initFrom`. */
function baselineWeights(dir: string, network: NetworkName): Map<string, Float32Array> {
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) {
    throw new VdspecError(
      'invalid_argument',
      `${dir} holds no ${CHECKPOINT_FILE}: train the baseline there first (vdspec train ${network} --baseline --out ${dir})`,
      'init-from',
    );
  }
  const { header, state } = readCheckpoint(path, (r) => checkRecord(r, path));
  if (!header.config.baseline || header.config.network !== network || !header.complete) {
    throw new VdspecError(
      'invalid_argument',
      `${dir} must hold a finished --baseline run of ${network} (it holds ${header.config.baseline ? 'a baseline' : 'an SVD'} run of ${header.config.network}, ${header.epochs.length}/${header.config.epochs} epochs)`,
      'init-from',
    );
  }
  const weights = new Map<string, Float32Array>();
  for (const t of state.tensors) {
    if (t.name.endsWith('.theta') || t.name.endsWith('.bias')) weights.set(t.name, t.data);
  }
  return weights;
}

function startModel(config: TrainConfig): FastModel {
  return createFastModel(modelOptions(config));
}

function modelOptions(config: TrainConfig): FastModelOptions {
  const net = NETWORKS[config.network];
  return {
    inputShape: net.inputShape,
    layers: net.layers,
    profile:
      config.reparameterization === 'multiplicative'
        ? multiplicativeProfile(PROFILES[config.profile])
        : config.profile,
    seed: config.seed,
    deterministic: config.baseline,
    ...(config.trainClip === null ? {} : { trainClip: config.trainClip }),
    ...(config.vdLogAlpha === null ? {} : { vdLogAlpha: config.vdLogAlpha }),
  };
}

function applyInitFrom(model: FastModel, weights: Map<string, Float32Array>, dir: string): void {
  const state = model.exportState();
  const tensors = state.tensors.map((t) => {
    const w = weights.get(t.name);
    if (w === undefined) return t;
    if (w.length !== t.data.length) {
      throw new VdspecError('shape_mismatch', `${t.name} of ${dir} has another shape`, 'init-from');
    }
    return { ...t, data: w };
  });
  model.importState({ step: state.step, tensors } satisfies FastModelState);
}

/**
 * At most `limit` images of `subset`: all of them, or a stratified sample
 * drawn by the split algorithm itself (spec/data.md#split-algorithm, seed
 * `splitSeed`), so that a small run still sees every class in proportion.
 */
function limited(subset: MnistSubset, limit: number | null, splitSeed: number): MnistSubset {
  if (limit === null || limit >= subset.count) return subset;
  const { test: picked } = stratifiedSplit(subset.labels, { testSize: limit, seed: splitSeed });
  const pixels = subset.images.length / subset.count;
  const images = new Float32Array(limit * pixels);
  picked.forEach((i, k) =>
    images.set(subset.images.subarray(i * pixels, (i + 1) * pixels), k * pixels),
  );
  return {
    images,
    labels: Uint8Array.from(picked, (i) => subset.labels[i]!),
    count: limit,
    indices: Uint32Array.from(picked, (i) => subset.indices[i]!),
  };
}

/** The shapes `--vd-log-alpha` accepts: one log_alpha per weight, per input unit, per layer. */
export const VD_LOG_ALPHA_SHAPES: readonly VdLogAlphaShape[] = ['weight', 'input', 'scalar'];

/**
 * The training labels permuted (spec/train.md#random-labels): a Fisher-Yates
 * shuffle of the label array, `i` from n-1 down to 1 swapping with
 * `j = r mod (i + 1)`, `r` from the golden xorshift32 seeded with
 * fnv1a32("<seed>/labels") (0 replaced by 1). The images stay in place, so
 * each image gets another image's label and the class counts are unchanged.
 */
export function permutedLabels(labels: Uint8Array, seed: number): Uint8Array {
  const out = Uint8Array.from(labels);
  const rng = new Xorshift32(fnv1a32(`${seed}/labels`) || 1);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.next() % (i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

function withRandomLabels(subset: MnistSubset, seed: number | null): MnistSubset {
  return seed === null ? subset : { ...subset, labels: permutedLabels(subset.labels, seed) };
}

/** A new run's configuration with the recipe filled in and every field checked. */
export function makeConfig(input: {
  network: string;
  data?: string;
  profile?: string;
  trainClip?: boolean | null;
  randomLabels?: number | null;
  vdLogAlpha?: string | null;
  baseline?: boolean;
  epochs: number;
  seed?: number;
  splitSeed?: number;
  trainLimit?: number | null;
  testLimit?: number | null;
  initFrom?: string | null;
  threads?: number;
  multiplicative?: boolean;
}): TrainConfig {
  if (!isNetworkName(input.network)) {
    throw new VdspecError(
      'invalid_argument',
      `unknown network "${input.network}" (expected ${Object.keys(NETWORKS).join(' or ')})`,
      'network',
    );
  }
  const profile = input.profile ?? 'molchanov2017';
  if (!isProfileName(profile)) {
    throw new VdspecError(
      'unknown_profile',
      `unknown profile "${profile}" (expected one of ${PROFILE_NAMES.join(', ')})`,
      'profile',
    );
  }
  const positive = (name: string, v: number | null | undefined, min = 1): number | null => {
    if (v === null || v === undefined) return null;
    if (!Number.isInteger(v) || v < min) {
      throw new VdspecError('invalid_argument', `must be an integer >= ${min}, got ${v}`, name);
    }
    return v;
  };
  const seed = input.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 31 - 1) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer in [0, 2^31 - 1], got ${seed}`,
      'seed',
    );
  }
  const data = input.data ?? 'mnist';
  if (!isDataSetName(data)) {
    throw new VdspecError(
      'invalid_argument',
      `unknown data set "${data}" (expected mnist or mnist-small)`,
      'data',
    );
  }
  const baseline = input.baseline ?? false;
  const vdLogAlpha = input.vdLogAlpha ?? null;
  if (vdLogAlpha !== null) {
    if (!VD_LOG_ALPHA_SHAPES.includes(vdLogAlpha as VdLogAlphaShape)) {
      throw new VdspecError(
        'invalid_argument',
        `expected ${VD_LOG_ALPHA_SHAPES.join(', ')}, got "${vdLogAlpha}"`,
        'vd-log-alpha',
      );
    }
    if (PROFILES[profile].algorithm !== 'vd' || baseline) {
      throw new VdspecError(
        'invalid_argument',
        'only a VD run (--profile kingma2015, not --baseline) learns log_alpha directly',
        'vd-log-alpha',
      );
    }
  }
  const randomLabels = input.randomLabels ?? null;
  if (randomLabels !== null && (!Number.isInteger(randomLabels) || randomLabels < 0)) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer >= 0, got ${randomLabels}`,
      'random-labels',
    );
  }
  if (input.multiplicative && (baseline || PROFILES[profile].algorithm !== 'svd')) {
    throw new VdspecError(
      'invalid_argument',
      'only a Sparse VD run (not --baseline, not kingma2015) has an additive noise parameter to replace',
      'multiplicative',
    );
  }
  if (baseline && input.initFrom) {
    throw new VdspecError('invalid_argument', 'a baseline run starts from scratch', 'init-from');
  }
  return {
    network: input.network,
    data,
    profile,
    trainClip: baseline ? null : (input.trainClip ?? null),
    randomLabels,
    vdLogAlpha: vdLogAlpha as VdLogAlphaShape | null,
    baseline,
    epochs: positive('epochs', input.epochs)!,
    seed,
    splitSeed: positive('split-seed', input.splitSeed ?? MNIST_SPLIT_SEED)!,
    trainLimit: positive('train-limit', input.trainLimit),
    testLimit: positive('test-limit', input.testLimit),
    initFrom: input.initFrom ? resolve(input.initFrom) : null,
    recipe: recipeFor(input.network, input.epochs),
    threads: checkThreads(input.threads ?? defaultThreads(availableParallelism())),
    noise: NOISE_GENERATOR,
    reparameterization: input.multiplicative ? 'multiplicative' : 'additive',
  };
}

/**
 * The profile with log_alpha trained directly (multiplicative noise on
 * theta): the same clip, KL, variance, mask and pruning; only the trained
 * noise parameter differs.
 */
export function multiplicativeProfile(profile: Profile): Profile {
  const learned = (layer: LayerConventions): LayerConventions => ({
    ...layer,
    logAlpha: { form: 'learned', thetaEps: 0, clip: layer.logAlpha.clip },
    klLogAlpha: null,
  });
  return {
    ...profile,
    noiseParameter: 'log_alpha',
    dense: learned(profile.dense),
    conv2d: learned(profile.conv2d),
  };
}

/**
 * A multiplicative run starts from the additive run's distribution: log_alpha
 * = SVD_INIT_LOG_SIGMA2 - log(theta^2), clipped as the profile clips it.
 */
export function startMultiplicative(model: FastModel, profile: Profile): void {
  const state = model.exportState();
  const thetas = new Map(state.tensors.map((t) => [t.name, t.data]));
  const tensors = state.tensors.map((t) => {
    if (!t.name.endsWith('.noise')) return t;
    const theta = thetas.get(t.name.replace(/\.noise$/, '.theta'))!;
    const layer = t.name.startsWith('conv2d') ? profile.conv2d : profile.dense;
    const clip = layer.logAlpha.clip;
    const data = Float32Array.from(theta, (w) => {
      const raw = SVD_INIT_LOG_SIGMA2 - Math.log(w * w);
      return Math.min(clip?.max ?? Infinity, Math.max(clip?.min ?? -Infinity, raw));
    });
    return { ...t, data };
  });
  model.importState({ step: state.step, tensors });
}

/** At most MAX_THREADS: more threads than rows of a batch would sit idle. */
export const MAX_THREADS = 64;

function checkThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer in [1, ${MAX_THREADS}], got ${threads}`,
      'threads',
    );
  }
  return threads;
}

/**
 * Train (or resume) the run described by `config` in `options.outDir`.
 * Call `await initBackend()` first.
 */
export async function trainRun(
  given: TrainConfig,
  options: TrainRunOptions,
): Promise<TrainOutcome> {
  const outDir = options.outDir;
  const config = recordedConfig(given, outDir);
  const checkpointPath = join(outDir, CHECKPOINT_FILE);
  let resumed: { record: TrainRecord; state: FastModelState } | null = null;
  if (existsSync(checkpointPath)) {
    if (!options.resume) {
      throw new VdspecError(
        'invalid_argument',
        `${outDir} already holds a run; pass --resume to continue it, or choose another --out`,
        'out',
      );
    }
    const { header, state } = readCheckpoint(checkpointPath, (r) => checkRecord(r, checkpointPath));
    if (header.config.noise !== NOISE_GENERATOR) {
      throw new VdspecError(
        'invalid_argument',
        `the run in ${outDir} drew its noise with ${header.config.noise} (an older vdspec), so it cannot be continued exactly: start it again in another --out`,
        'resume',
      );
    }
    const differs = sameConfig(header.config, config, outDir);
    if (differs !== null) {
      throw new VdspecError(
        'invalid_argument',
        `the run in ${outDir} has another configuration (${differs})`,
        'resume',
      );
    }
    resumed = { record: header, state };
  } else if (options.resume) {
    throw new VdspecError('invalid_argument', `${outDir} holds no checkpoint to resume`, 'resume');
  }
  const until = options.until ?? config.epochs;
  if (!Number.isInteger(until) || until < 1 || until > config.epochs) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer in [1, ${config.epochs}]`,
      'until',
    );
  }

  const net = NETWORKS[config.network];
  const split = loadDataSet(config.data, config.splitSeed);
  const train = withRandomLabels(
    limited(split.train, config.trainLimit, config.splitSeed),
    config.randomLabels,
  );
  const test = limited(split.test, config.testLimit, config.splitSeed);
  const baselineDir = initFromDir(config, outDir);
  const initWeights =
    resumed === null && baselineDir !== null ? baselineWeights(baselineDir, config.network) : null;
  // Only once every input is known to be good, so that a refused call leaves nothing behind.
  prepareOutDir(outDir);
  options.onStart?.();

  const backend = activeBackend() ?? 'none';
  let record: TrainRecord = resumed
    ? { ...resumed.record, backends: [...resumed.record.backends, backend] }
    : {
        format: TRAIN_RECORD_FORMAT,
        version: TRAIN_RECORD_VERSION,
        config,
        trainSize: train.count,
        testSize: test.count,
        backends: [backend],
        epochs: [],
        wallSeconds: 0,
        complete: false,
        final: null,
      };

  const model = startModel(config);
  // With threads, every step's rows are copied from train.images: no tensor of the training set.
  const xTrain =
    config.threads > 1
      ? null
      : tf.tensor(train.images, [train.count, ...net.inputShape], 'float32');
  const xTest = tf.tensor(test.images, [test.count, ...net.inputShape], 'float32');
  let parallel: ParallelTrainer | null = null;
  try {
    if (config.threads > 1) {
      parallel = await ParallelTrainer.create(model, modelOptions(config), config.threads);
    }
    if (resumed) model.importState(resumed.state);
    else {
      if (initWeights) applyInitFrom(model, initWeights, baselineDir!);
      // After --init-from: log_alpha starts from the theta the run starts from.
      if (config.reparameterization === 'multiplicative') {
        startMultiplicative(model, multiplicativeProfile(PROFILES[config.profile]));
      }
    }

    // The checkpoint first: a results.json never claims more than the checkpoint holds.
    const save = (r: TrainRecord) => {
      writeCheckpoint(checkpointPath, r, model.exportState());
      writeRunFile(join(outDir, RESULTS_FILE), `${JSON.stringify(r, jsonNumbers, 2)}\n`);
    };
    // A new run is resumable from its first step: a stop in epoch 1 resumes from here.
    if (!resumed) save(record);
    const steps = Math.ceil(train.count / config.recipe.batchSize);
    const rowSize = net.inputShape.reduce((a, b) => a * b, 1);
    const sessionStart = performance.now();
    let sessionSteps = 0;
    for (let e = record.epochs.length; e < until; e++) {
      const started = performance.now();
      const schedule = scheduleAt(config.recipe, e);
      const klWeight = config.baseline ? 0 : schedule.klWeight;
      const order = batchOrder(train.count, config.seed, e);
      let loss = 0;
      let dataTerm = 0;
      let kl = 0;
      let correct = 0;
      for (let s = 0; s < steps; s++) {
        const from = s * config.recipe.batchSize;
        const picked = order.subarray(from, Math.min(train.count, from + config.recipe.batchSize));
        const labels = Int32Array.from(picked, (i) => train.labels[i]!);
        const stepOptions = {
          trainSize: train.count,
          klWeight,
          learningRate: schedule.learningRate,
        };
        let r;
        if (parallel !== null) {
          r = await parallel.trainStep(rowsOf(train.images, picked, rowSize), labels, stepOptions);
        } else {
          const x = tf.tidy(() =>
            tf.gather(xTrain!, tf.tensor1d(Int32Array.from(picked), 'int32')),
          );
          try {
            r = model.trainStep({ x, labels }, stepOptions);
          } finally {
            x.dispose();
          }
        }
        loss += r.loss;
        dataTerm += r.dataTerm;
        kl += r.kl;
        correct += r.accuracy * picked.length;
        sessionSteps++;
        options.onStep?.({
          epoch: e + 1,
          epochs: config.epochs,
          step: s + 1,
          steps,
          loss: r.loss,
          accuracy: r.accuracy,
          sessionSeconds: (performance.now() - sessionStart) / 1000,
          sessionSteps,
          lastEpoch: record.epochs.at(-1) ?? null,
        });
        // Let signal handlers run between steps (a step is synchronous).
        await new Promise((r) => setImmediate(r));
        if (options.shouldStop?.()) return { record, status: 'stopped' };
      }
      const evaluation = model.evaluate({ x: xTest, labels: Int32Array.from(test.labels) }, 500);
      const sparsity = model.sparsity().overall;
      const metrics: EpochMetrics = {
        epoch: e + 1,
        klWeight,
        learningRate: schedule.learningRate,
        loss: loss / steps,
        dataTerm: dataTerm / steps,
        kl: kl / steps,
        trainAccuracy: correct / train.count,
        testAccuracy: evaluation.accuracy,
        testCrossEntropy: evaluation.crossEntropy,
        kept: sparsity.kept,
        total: sparsity.total,
        compression: sparsity.compression,
        seconds: (performance.now() - started) / 1000,
      };
      record = {
        ...record,
        epochs: [...record.epochs, metrics],
        wallSeconds: record.wallSeconds + metrics.seconds,
        complete: e + 1 === config.epochs,
      };
      save(record);
      options.onEpoch?.(metrics, record);
    }
    if (!record.complete) return { record, status: 'paused' };

    const sparsity = model.sparsity();
    const row = (l: { name: string; kept: number; total: number; compression: number }) => ({
      name: l.name,
      kept: l.kept,
      total: l.total,
      keptPercent: (100 * l.kept) / l.total,
      compression: l.compression,
    });
    // Let a Ctrl-C during the last epoch's evaluation in, and between the exports' pieces.
    const stopPoint = async () => {
      await new Promise((r) => setImmediate(r));
      if (options.shouldStop?.()) throw new RunStopped();
    };
    let extra: Record<string, unknown> = {};
    try {
      await stopPoint();
      if (options.finish) extra = await options.finish(model, { test, xTest }, record, stopPoint);
    } catch (error) {
      if (error instanceof RunStopped) return { record, status: 'stopped' };
      throw error;
    }
    record = {
      ...record,
      final: {
        testError: 1 - record.epochs.at(-1)!.testAccuracy,
        layers: sparsity.layers.map(row),
        overall: row(sparsity.overall),
        extra,
      },
    };
    save(record);
    return { record, status: 'complete' };
  } finally {
    await parallel?.close();
    model.dispose();
    tf.dispose(xTrain === null ? [xTest] : [xTrain, xTest]);
  }
}

/** The rows `picked` of a row-major set of images, as one batch. */
function rowsOf(images: Float32Array, picked: Uint32Array, rowSize: number): Float32Array {
  const rows = new Float32Array(picked.length * rowSize);
  picked.forEach((image, r) => {
    rows.set(images.subarray(image * rowSize, (image + 1) * rowSize), r * rowSize);
  });
  return rows;
}

/** JSON has no Infinity: a network with nothing kept has compression "Infinity". */
export function jsonNumbers(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}
