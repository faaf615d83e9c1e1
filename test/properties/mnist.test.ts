import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VdspecError } from '../../src/errors.js';
import {
  MNIST_PIXELS,
  MNIST_SPLIT_SEED,
  MNIST_TEST_SIZE,
  loadMnistDigits,
  mnistSplit,
  splitTable,
  stratifiedSplit,
  testQuotas,
  type MnistDigits,
  type SplitIndices,
} from '../../src/data/mnist.js';
import { expectSpecBlock } from './spec-blocks.js';

function classCounts(labels: ArrayLike<number>, indices?: ArrayLike<number>): Map<number, number> {
  const counts = new Map<number, number>();
  const n = indices === undefined ? labels.length : indices.length;
  for (let k = 0; k < n; k++) {
    const label = labels[indices === undefined ? k : indices[k]!]!;
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return counts;
}

/** Disjoint, ascending, together exactly 0 .. n-1, test of the requested size. */
function expectPartition(split: SplitIndices, n: number, testSize: number): void {
  expect(split.test.length).toBe(testSize);
  expect(split.train.length).toBe(n - testSize);
  const seen = new Uint8Array(n);
  for (const part of [split.train, split.test]) {
    for (let k = 0; k < part.length; k++) {
      if (k > 0) expect(part[k]!).toBeGreaterThan(part[k - 1]!);
      expect(seen[part[k]!]).toBe(0);
      seen[part[k]!] = 1;
    }
  }
  expect(seen.every((s) => s === 1)).toBe(true);
}

/**
 * Every class's test count is within 1 of its exact share testSize * c_k / n:
 * largest-remainder rounding moves each quota by less than 1 (spec/data.md,
 * step 3), so |test_k - share_k| < 1 is the bound the algorithm guarantees.
 */
function expectStratified(labels: ArrayLike<number>, split: SplitIndices, testSize: number): void {
  const all = classCounts(labels);
  const inTest = classCounts(labels, split.test);
  for (const [label, count] of all) {
    const share = (testSize * count) / labels.length;
    expect(Math.abs((inTest.get(label) ?? 0) - share)).toBeLessThan(1);
  }
}

function expectVdspecError(fn: () => unknown, mentions: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(VdspecError);
  expect((caught as VdspecError).message).toContain(mentions);
}

describe('spec/data.md#the-data', () => {
  let digits: MnistDigits;
  beforeAll(() => {
    digits = loadMnistDigits();
  });

  test('spec/data.md#the-data: 10,000 images, 863..1127 per class, values in [0, 1]', () => {
    expect(digits.count).toBe(10000);
    expect(digits.images.length).toBe(10000 * MNIST_PIXELS);
    expect(digits.labels.length).toBe(10000);
    const counts = classCounts(digits.labels);
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // 863 (digit 5) and 1127 (digit 1) are the smallest and largest class files of mnist 1.1.0.
    expect(Math.min(...counts.values())).toBe(863);
    expect(Math.max(...counts.values())).toBe(1127);
    let min = Infinity;
    let max = -Infinity;
    for (const v of digits.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    // Labels are ordered by class (spec/data.md#the-data: index order).
    for (let i = 1; i < digits.count; i++) {
      expect(digits.labels[i]!).toBeGreaterThanOrEqual(digits.labels[i - 1]!);
    }
  });

  test('spec/data.md#default-split: deterministic, disjoint, exact sizes, stratified', () => {
    const a = stratifiedSplit(digits.labels);
    const b = stratifiedSplit(digits.labels, { seed: MNIST_SPLIT_SEED, testSize: 2000 });
    expect(MNIST_TEST_SIZE).toBe(2000);
    expect(a.test).toEqual(b.test);
    expect(a.train).toEqual(b.train);
    expectPartition(a, 10000, 2000);
    expectStratified(digits.labels, a, 2000);
    const other = stratifiedSplit(digits.labels, { seed: MNIST_SPLIT_SEED + 1 });
    expect(other.test).not.toEqual(a.test);
    // Same per-class sizes: the quotas do not depend on the seed.
    expect(classCounts(digits.labels, other.test)).toEqual(classCounts(digits.labels, a.test));
  });

  test('spec/data.md#default-split: the generated table matches the page', () => {
    expectSpecBlock(
      'data.md',
      'mnist-split',
      splitTable(digits.labels, stratifiedSplit(digits.labels)),
    );
  });

  test('spec/data.md#default-split: mnistSplit returns the images of the split', () => {
    const { train, test: held } = mnistSplit();
    const split = stratifiedSplit(digits.labels);
    expect(train.indices).toEqual(split.train);
    expect(held.indices).toEqual(split.test);
    expect(train.count).toBe(8000);
    expect(held.count).toBe(2000);
    for (const k of [0, 777, 1999]) {
      const index = held.indices[k]!;
      expect(held.labels[k]).toBe(digits.labels[index]);
      expect(held.images.subarray(k * MNIST_PIXELS, (k + 1) * MNIST_PIXELS)).toEqual(
        digits.images.subarray(index * MNIST_PIXELS, (index + 1) * MNIST_PIXELS),
      );
    }
  });
});

describe('spec/data.md#split-algorithm', () => {
  const labelArrays = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 300 });

  test('spec/data.md#split-algorithm: any labels, any test size: exact sizes, partition, stratified', () => {
    fc.assert(
      fc.property(
        labelArrays.chain((labels) =>
          fc.tuple(
            fc.constant(labels),
            fc.integer({ min: 0, max: labels.length }),
            fc.integer({ min: 1, max: 0xffffffff }),
          ),
        ),
        ([labels, testSize, seed]) => {
          const split = stratifiedSplit(labels, { testSize, seed });
          expectPartition(split, labels.length, testSize);
          expectStratified(labels, split, testSize);
          expect(stratifiedSplit(labels, { testSize, seed })).toEqual(split);
        },
      ),
      { numRuns: 200, seed: 5 },
    );
  });

  test('spec/data.md#split-algorithm: quotas are largest-remainder, ties to the smaller label', () => {
    // 3 classes of 1 item each, testSize 2: every remainder is 2, so labels 0 and 1 win.
    expect([
      ...testQuotas(
        new Map([
          [0, 1],
          [1, 1],
          [2, 1],
        ]),
        3,
        2,
      ),
    ]).toEqual([
      [0, 1],
      [1, 1],
      [2, 0],
    ]);
    // MNIST: 863 * 2000 / 10000 = 172.6 rounds up, 1001 * 0.2 = 200.2 down.
    const q = testQuotas(
      new Map([
        [0, 1001],
        [5, 863],
        [1, 1127],
      ]),
      2991,
      598,
    );
    expect([...q.values()].reduce((s, v) => s + v, 0)).toBe(598);
  });

  test('spec/data.md#split-algorithm: bad options and labels are rejected', () => {
    expectVdspecError(() => stratifiedSplit([0, 1], { testSize: 3 }), 'testSize');
    expectVdspecError(() => stratifiedSplit([0, 1], { testSize: 0.5 }), 'testSize');
    expectVdspecError(() => stratifiedSplit([0, 1], { testSize: 1, seed: 0 }), 'seed');
    expectVdspecError(() => stratifiedSplit([0, 1], { testSize: 1, seed: 2 ** 32 }), 'seed');
    expectVdspecError(() => stratifiedSplit([0, -1], { testSize: 1 }), 'labels[1]');
    expectVdspecError(() => stratifiedSplit([0, 1.5], { testSize: 1 }), 'labels[1]');
  });
});

describe('spec/data.md#errors', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'vdspec-mnist-'));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** A directory of ten valid one-image files, then `file` of class 3 replaced by `badText`. */
  function dirWith(name: string, badText: string | null): string {
    const dir = join(root, name);
    mkdirSync(dir);
    const image = JSON.stringify({ data: new Array<number>(MNIST_PIXELS).fill(0.5) });
    for (let d = 0; d < 10; d++) {
      if (d === 3 && badText === null) continue;
      writeFileSync(join(dir, `${d}.json`), d === 3 ? badText! : image);
    }
    return dir;
  }

  const pixels = (values: string[]) => {
    const data = new Array<string>(MNIST_PIXELS).fill('0');
    values.forEach((v, i) => (data[i + 10] = v));
    return `{"data":[${data.join(',')}]}`;
  };

  test('spec/data.md#errors: a valid directory loads', () => {
    const loaded = loadMnistDigits({ dir: dirWith('ok', pixels(['1'])) });
    expect(loaded.count).toBe(10);
    expect(Array.from(loaded.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(loaded.images[3 * MNIST_PIXELS + 10]).toBe(1);
  });

  test('spec/data.md#errors: malformed files name the file (and the index)', () => {
    expectVdspecError(() => loadMnistDigits({ dir: join(root, 'absent') }), 'absent');
    expectVdspecError(() => loadMnistDigits({ dir: dirWith('missing', null) }), '3.json');
    expectVdspecError(() => loadMnistDigits({ dir: dirWith('notjson', '{"data": [0,') }), '3.json');
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('nodata', '{"pixels": []}') }),
      '3.json',
    );
    expectVdspecError(() => loadMnistDigits({ dir: dirWith('notarray', '{"data": 1}') }), '3.json');
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('short', '{"data": [0, 0.5]}') }),
      '3.json',
    );
    expectVdspecError(() => loadMnistDigits({ dir: dirWith('empty', '{"data": []}') }), '3.json');
    const above = join(dirWith('above', pixels(['1.5'])), '3.json');
    expectVdspecError(() => loadMnistDigits({ dir: join(root, 'above') }), `${above}: data[10]`);
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('below', pixels(['-0.1'])) }),
      'data[10]',
    );
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('inf', pixels(['1e999'])) }),
      'data[10]',
    );
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('null', pixels(['null'])) }),
      'data[10]',
    );
    expectVdspecError(
      () => loadMnistDigits({ dir: dirWith('string', pixels(['"0"'])) }),
      'data[10]',
    );
  });
});
