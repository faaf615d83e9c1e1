/**
 * The layer lists of the fast models (spec/fast.md#training,
 * spec/train.md#networks): how a sequential network is written down
 * (`FastLayerSpec`), and the two networks of the SVD paper.
 */
import type { FastConv2dPadding } from './conv2d.js';

export type FastLayerSpec =
  | { readonly kind: 'dense'; readonly units: number }
  | {
      readonly kind: 'conv2d';
      readonly filters: number;
      /** One size for both axes or [height, width]. */
      readonly kernelSize: number | readonly [number, number];
      /** Default 1. */
      readonly stride?: number | readonly [number, number];
      /** Default 'valid'. */
      readonly padding?: FastConv2dPadding;
    }
  | { readonly kind: 'relu' }
  /** 2x2 windows, stride 2, 'valid' (an odd last row or column is dropped). */
  | { readonly kind: 'maxPool2x2' }
  | { readonly kind: 'flatten' };

/** LeNet-300-100 (the SVD paper's fully connected net) for 784 inputs and 10 classes. */
export const LENET_300_100: readonly FastLayerSpec[] = [
  { kind: 'dense', units: 300 },
  { kind: 'relu' },
  { kind: 'dense', units: 100 },
  { kind: 'relu' },
  { kind: 'dense', units: 10 },
];

/**
 * LeNet-5-Caffe as the SVD paper trains it, for 28x28x1 inputs and 10
 * classes: conv 20@5x5, max-pool, conv 50@5x5, max-pool, dense 800-500,
 * dense 500-10, 'valid' convolutions and a ReLU after every layer but the
 * last (spec/train.md#networks).
 */
export const LENET_5_CAFFE: readonly FastLayerSpec[] = [
  { kind: 'conv2d', filters: 20, kernelSize: 5 },
  { kind: 'relu' },
  { kind: 'maxPool2x2' },
  { kind: 'conv2d', filters: 50, kernelSize: 5 },
  { kind: 'relu' },
  { kind: 'maxPool2x2' },
  { kind: 'flatten' },
  { kind: 'dense', units: 500 },
  { kind: 'relu' },
  { kind: 'dense', units: 10 },
];
