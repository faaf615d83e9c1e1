/**
 * The networks and the recipe of `vdspec train` (spec/train.md#networks,
 * spec/train.md#recipe): LeNet-300-100 and LeNet-5-Caffe for MNIST, and the
 * official schedules scaled to the number of epochs asked for.
 */
import {
  KL_WARMUP_END_EPOCH,
  KL_WARMUP_START_EPOCH,
  RECIPE_BATCH_SIZE,
  RECIPE_EPOCHS,
  RECIPE_LEARNING_RATE,
} from '../constants.js';
import { MNIST_PIXELS, MNIST_SIDE } from '../data/mnist.js';
import { VdspecError } from '../errors.js';
import { LENET_300_100, LENET_5_CAFFE, type FastLayerSpec } from '../fast/networks.js';
import {
  klWeightSchedule,
  learningRateSchedule,
  type LearningRateScheduleKind,
} from '../reference/objective.js';

export const NETWORK_NAMES = ['lenet300', 'lenet5'] as const;
export type NetworkName = (typeof NETWORK_NAMES)[number];

export interface NetworkDefinition {
  readonly title: string;
  /** One example's shape. */
  readonly inputShape: readonly number[];
  readonly layers: readonly FastLayerSpec[];
  /** The official learning-rate schedule of this network. */
  readonly learningRateSchedule: LearningRateScheduleKind;
}

export const NETWORKS: Readonly<Record<NetworkName, NetworkDefinition>> = {
  lenet300: {
    title: 'LeNet-300-100',
    inputShape: [MNIST_PIXELS],
    layers: LENET_300_100,
    learningRateSchedule: 'lenet300',
  },
  lenet5: {
    title: 'LeNet-5-Caffe',
    inputShape: [MNIST_SIDE, MNIST_SIDE, 1],
    layers: LENET_5_CAFFE,
    learningRateSchedule: 'lenet5',
  },
};

export function isNetworkName(name: unknown): name is NetworkName {
  return typeof name === 'string' && (NETWORK_NAMES as readonly string[]).includes(name);
}

export interface Recipe {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly learningRateSchedule: LearningRateScheduleKind;
  /** The KL warm-up, in epochs of this run: beta = 0 before start, 1 from end. */
  readonly klWarmup: { readonly start: number; readonly end: number };
}

/**
 * The official recipe for `network` over `epochs` epochs: the warm-up's
 * epochs scale by epochs / RECIPE_EPOCHS, the learning-rate schedule runs
 * over `epochs` (spec/train.md#recipe).
 */
export function recipeFor(network: NetworkName, epochs: number): Recipe {
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new VdspecError('invalid_argument', `must be an integer >= 1, got ${epochs}`, 'epochs');
  }
  const scale = epochs / RECIPE_EPOCHS;
  return {
    epochs,
    batchSize: RECIPE_BATCH_SIZE,
    learningRate: RECIPE_LEARNING_RATE,
    learningRateSchedule: NETWORKS[network].learningRateSchedule,
    klWarmup: { start: KL_WARMUP_START_EPOCH * scale, end: KL_WARMUP_END_EPOCH * scale },
  };
}

/**
 * beta and the learning rate of epoch `epoch` (counted from 0), set once at
 * the start of the epoch as the official training loops do.
 */
export function scheduleAt(
  recipe: Recipe,
  epoch: number,
): { klWeight: number; learningRate: number } {
  return {
    klWeight: klWeightSchedule(epoch, recipe.klWarmup),
    learningRate: learningRateSchedule(
      epoch,
      recipe.epochs,
      recipe.learningRate,
      recipe.learningRateSchedule,
    ),
  };
}
