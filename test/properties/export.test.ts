/**
 * spec/export.md: the sparse export of a trained network (src/export/sparse.ts).
 *
 * - sparseForward's logits are bitwise the float64 reference's eval forward
 *   of the masked dense network (denseEval / conv2dEval chained with relu,
 *   max-pool and flatten written out here), on random dense-first and
 *   conv-first networks with random keep masks, and with the reference's
 *   own Sparse VD mask; conv outputs even keep the sign of a zero;
 * - write -> read round-trips exactly, and the file stores exactly the kept
 *   weights;
 * - a FastModel exported through its parameters and fastKeepMask predicts
 *   what model.predict predicts (float32 against float64);
 * - malformed files and bad inputs give VdspecErrors naming the JSON path
 *   (or argument), and a failed write leaves nothing on disk.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { VdspecError } from '../../src/errors.js';
import {
  buildSparseModel,
  parseSparseModel,
  readSparseModel,
  sparseForward,
  sparseStats,
  writeSparseModel,
  type ExportLayer,
  type SparseModel,
} from '../../src/export/sparse.js';
import { initBackend } from '../../src/fast/backend.js';
import { createFastModel } from '../../src/fast/fast-model.js';
import type { FastLayerSpec } from '../../src/fast/networks.js';
import { fastKeepMask } from '../../src/fast/weights.js';
import { PROFILES, type Profile } from '../../src/profiles.js';
import { conv2dEval, denseEval, keepMask } from '../../src/reference/index.js';
import type { Tensor } from '../../src/tensor.js';
import { mulberry32 as prng } from './dense-cases.js';

// ------------------------------------------------------------------ helpers

/** float32 standard normals: the weights a float32 training run leaves. */
function normals(n: number, rand: () => number, scale = 1): number[] {
  return Array.from({ length: n }, () => {
    const u = Math.max(rand(), 1e-12);
    return Math.fround(scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand()));
  });
}

/** Inputs with exact zeros of both signs among them (they are where zero signs could differ). */
function inputs(n: number, rand: () => number): number[] {
  return normals(n, rand).map((v) => {
    const r = rand();
    if (r < 0.15) return 0;
    if (r < 0.2) return -0;
    return v;
  });
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

type ArbValue<A> = A extends fc.Arbitrary<infer T> ? T : never;

/** density < 0: keep = null (keep everything); else each weight kept with that probability. */
function randomKeep(shape: number[], density: number, rand: () => number): Tensor | null {
  if (density < 0) return null;
  return { shape, data: Array.from({ length: sizeOf(shape) }, () => (rand() < density ? 1 : 0)) };
}

/** A layer of the float64 reference chain: a dense / conv2d eval under a profile, or a fixed layer. */
type ReferenceLayer =
  | {
      kind: 'dense' | 'conv2d';
      theta: Tensor;
      noise: Tensor;
      bias: Tensor;
      profile: Profile;
      stride: [number, number];
      padding: 'valid' | 'same';
    }
  | { kind: 'relu' | 'maxPool2x2' | 'flatten' };

/**
 * "The masked dense network" of an export layer: theta * keep under the
 * kingma2015 profile (VD, never prunes) with log_alpha = 0.
 */
function maskedDense(layer: ExportLayer): ReferenceLayer {
  if (layer.kind !== 'dense' && layer.kind !== 'conv2d') return { kind: layer.kind };
  const keep = layer.keep;
  const theta = {
    shape: [...layer.theta.shape],
    data: layer.theta.data.map((t, k) => (keep === null ? t : t * keep.data[k]!)),
  };
  return {
    kind: layer.kind,
    theta,
    noise: { shape: [...theta.shape], data: theta.data.map(() => 0) },
    bias: layer.bias,
    profile: PROFILES.kingma2015,
    stride: layer.kind === 'conv2d' ? [...layer.stride] : [1, 1],
    padding: layer.kind === 'conv2d' ? layer.padding : 'valid',
  };
}

function relu(h: Tensor): Tensor {
  return { shape: h.shape, data: h.data.map((v) => (v > 0 ? v : 0)) };
}

/** 2x2, stride 2, valid, NHWC: written out independently of src/export. */
function maxPool(h: Tensor): Tensor {
  const [n, height, width, c] = h.shape as [number, number, number, number];
  const oh = Math.floor(height / 2);
  const ow = Math.floor(width / 2);
  const data: number[] = [];
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          for (const [di, dj] of [
            [0, 0],
            [0, 1],
            [1, 0],
            [1, 1],
          ] as const) {
            const v = h.data[((b * height + 2 * i + di) * width + 2 * j + dj) * c + ch]!;
            if (v > best) best = v;
          }
          data.push(best);
        }
      }
    }
  }
  return { shape: [n, oh, ow, c], data };
}

function referenceChain(layers: readonly ReferenceLayer[], x: Tensor): Tensor {
  let h = x;
  for (const layer of layers) {
    if (layer.kind === 'dense' || layer.kind === 'conv2d') {
      const { theta, noise, bias, profile, stride, padding } = layer;
      h =
        layer.kind === 'dense'
          ? denseEval({ x: h, theta, noise, bias }, profile)
          : conv2dEval({ x: h, theta, noise, bias }, profile, { stride, padding });
    } else if (layer.kind === 'relu') h = relu(h);
    else if (layer.kind === 'maxPool2x2') h = maxPool(h);
    else h = { shape: [h.shape[0]!, sizeOf(h.shape.slice(1))], data: h.data };
  }
  return h;
}

/** Bitwise equal entry by entry; `===` forgives only the sign of a zero, `Object.is` nothing. */
function expectBitwise(actual: Tensor, expected: Tensor, exact: 'zeroSign' | 'objectIs'): void {
  expect(actual.shape).toEqual(expected.shape);
  actual.data.forEach((a, k) => {
    const e = expected.data[k]!;
    const same = exact === 'objectIs' ? Object.is(a, e) : a === e;
    if (!same) {
      expect.fail(`logit ${k}: sparse ${a} (${a.toExponential(17)}) vs reference ${e}`);
    }
  });
}

function keptCount(layers: readonly ExportLayer[]): number {
  let n = 0;
  for (const l of layers) {
    if (l.kind !== 'dense' && l.kind !== 'conv2d') continue;
    n += l.keep === null ? sizeOf(l.theta.shape) : l.keep.data.reduce((a, b) => a + b, 0);
  }
  return n;
}

// ------------------------------------------------------------------ random networks

interface RandomNet {
  inputShape: number[];
  layers: ExportLayer[];
  x: Tensor;
  /** The conv-only case ends in a flatten: its logits are conv outputs. */
  convOnly: boolean;
}

const DENSITIES = [-1, 0, 0.1, 0.5, 0.9, 1] as const;

const denseNetArb = fc.record({
  sizes: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 4 }),
  batch: fc.integer({ min: 1, max: 4 }),
  densities: fc.array(fc.constantFrom(...DENSITIES), { minLength: 3, maxLength: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

function denseNet(c: ArbValue<typeof denseNetArb>): RandomNet {
  const rand = prng(c.seed);
  const layers: ExportLayer[] = [];
  for (let l = 0; l + 1 < c.sizes.length; l++) {
    const [inSize, outSize] = [c.sizes[l]!, c.sizes[l + 1]!];
    if (l > 0) layers.push({ kind: 'relu' });
    layers.push({
      kind: 'dense',
      theta: { shape: [inSize, outSize], data: normals(inSize * outSize, rand, 0.7) },
      bias: { shape: [outSize], data: normals(outSize, rand, 0.3) },
      keep: randomKeep([inSize, outSize], c.densities[l]!, rand),
    });
  }
  const inputShape = [c.sizes[0]!];
  const x = { shape: [c.batch, ...inputShape], data: inputs(c.batch * c.sizes[0]!, rand) };
  return { inputShape, layers, x, convOnly: false };
}

const convNetArb = fc.record({
  height: fc.integer({ min: 1, max: 7 }),
  width: fc.integer({ min: 1, max: 7 }),
  channels: fc.integer({ min: 1, max: 3 }),
  filters: fc.integer({ min: 1, max: 3 }),
  kernel: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
  stride: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
  padding: fc.constantFrom('valid' as const, 'same' as const),
  pool: fc.boolean(),
  secondConv: fc.boolean(),
  denseHead: fc.boolean(),
  classes: fc.integer({ min: 1, max: 4 }),
  batch: fc.integer({ min: 1, max: 3 }),
  densities: fc.array(fc.constantFrom(...DENSITIES), { minLength: 3, maxLength: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

function outputSize(size: number, kernel: number, stride: number, padding: 'valid' | 'same') {
  return padding === 'valid' ? Math.floor((size - kernel) / stride) + 1 : Math.ceil(size / stride);
}

function convNet(c: ArbValue<typeof convNetArb>): RandomNet {
  const rand = prng(c.seed);
  const inputShape = [c.height, c.width, c.channels];
  // 'valid' needs the kernel to fit.
  const kh = c.padding === 'valid' ? Math.min(c.kernel[0], c.height) : c.kernel[0];
  const kw = c.padding === 'valid' ? Math.min(c.kernel[1], c.width) : c.kernel[1];
  const convLayer = (
    shape: [number, number, number, number],
    stride: [number, number],
    padding: 'valid' | 'same',
    density: number,
  ): ExportLayer => ({
    kind: 'conv2d',
    theta: { shape, data: normals(sizeOf(shape), rand, 0.6) },
    bias: { shape: [shape[3]], data: normals(shape[3], rand, 0.3) },
    keep: randomKeep(shape, density, rand),
    stride,
    padding,
  });
  const layers: ExportLayer[] = [
    convLayer([kh, kw, c.channels, c.filters], c.stride, c.padding, c.densities[0]!),
    { kind: 'relu' },
  ];
  let shape = [
    outputSize(c.height, kh, c.stride[0], c.padding),
    outputSize(c.width, kw, c.stride[1], c.padding),
    c.filters,
  ];
  if (c.pool && shape[0]! >= 2 && shape[1]! >= 2) {
    layers.push({ kind: 'maxPool2x2' });
    shape = [Math.floor(shape[0]! / 2), Math.floor(shape[1]! / 2), shape[2]!];
  }
  if (c.secondConv) {
    layers.push(convLayer([2, 2, shape[2]!, 2], [1, 1], 'same', c.densities[1]!));
    shape = [shape[0]!, shape[1]!, 2];
  }
  layers.push({ kind: 'flatten' });
  if (c.denseHead) {
    const features = sizeOf(shape);
    layers.push({
      kind: 'dense',
      theta: { shape: [features, c.classes], data: normals(features * c.classes, rand, 0.5) },
      bias: { shape: [c.classes], data: normals(c.classes, rand, 0.3) },
      keep: randomKeep([features, c.classes], c.densities[2]!, rand),
    });
  }
  const x = { shape: [c.batch, ...inputShape], data: inputs(c.batch * sizeOf(inputShape), rand) };
  return { inputShape, layers, x, convOnly: !c.denseHead };
}

// ------------------------------------------------------------------ tests

describe('spec/export.md#the-forward: sparseForward is bitwise the masked dense float64 eval forward', () => {
  it('dense-first networks, random keep masks (up to the sign of a zero logit)', () => {
    fc.assert(
      fc.property(denseNetArb, (c) => {
        const net = denseNet(c);
        const model = buildSparseModel(net);
        const expected = referenceChain(net.layers.map(maskedDense), net.x);
        expectBitwise(sparseForward(model, net.x), expected, 'zeroSign');
      }),
      { numRuns: 150 },
    );
  });

  it('conv-first networks (padding, stride, odd pool sizes), random keep masks; conv-only logits keep even the sign of zero', () => {
    fc.assert(
      fc.property(convNetArb, (c) => {
        const net = convNet(c);
        const model = buildSparseModel(net);
        const expected = referenceChain(net.layers.map(maskedDense), net.x);
        expectBitwise(
          sparseForward(model, net.x),
          expected,
          net.convOnly ? 'objectIs' : 'zeroSign',
        );
      }),
      { numRuns: 150 },
    );
  });

  it("with the reference's own Sparse VD mask: the export of (theta, log_sigma2) under molchanov2017 = svd.dense.eval / svd.conv2d.eval chained", () => {
    const profile = PROFILES.molchanov2017;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.boolean(), (seed, convFirst) => {
        const rand = prng(seed);
        const net = convFirst
          ? convNet({
              height: 6,
              width: 5,
              channels: 2,
              filters: 3,
              kernel: [3, 2],
              stride: [1, 2],
              padding: 'same',
              pool: true,
              secondConv: false,
              denseHead: true,
              classes: 4,
              batch: 3,
              densities: [-1, -1, -1],
              seed,
            })
          : denseNet({ sizes: [7, 6, 5], batch: 3, densities: [-1, -1, -1], seed });
        // log_sigma2 = log(theta^2) + log_alpha, log_alpha spread across the threshold 3; some theta = 0.
        const reference: ReferenceLayer[] = [];
        const layers = net.layers.map((layer): ExportLayer => {
          if (layer.kind !== 'dense' && layer.kind !== 'conv2d') {
            reference.push({ kind: layer.kind });
            return layer;
          }
          const theta = {
            shape: [...layer.theta.shape],
            data: layer.theta.data.map((t) => (rand() < 0.1 ? 0 : t)),
          };
          const noise = {
            shape: [...theta.shape],
            data: theta.data.map((t) => Math.fround(Math.log(t * t + 1e-30) + (rand() * 12 - 5))),
          };
          const keep = keepMask(theta, noise, profile, layer.kind);
          const conv = layer.kind === 'conv2d' ? layer : null;
          reference.push({
            kind: layer.kind,
            theta,
            noise,
            bias: layer.bias,
            profile,
            stride: conv === null ? [1, 1] : [...conv.stride],
            padding: conv === null ? 'valid' : conv.padding,
          });
          return { ...layer, theta, keep };
        });
        const model = buildSparseModel({ inputShape: net.inputShape, layers });
        const stats = sparseStats(model);
        expect(stats.overall.kept).toBe(keptCount(layers));
        expect(stats.overall.kept).toBeLessThan(stats.overall.total);
        expectBitwise(sparseForward(model, net.x), referenceChain(reference, net.x), 'zeroSign');
      }),
      { numRuns: 40 },
    );
  });
});

describe('spec/export.md#the-file: write -> read', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vdspec-export-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips exactly; the file stores exactly the kept weights; nothing else is left in the directory', () => {
    let n = 0;
    fc.assert(
      fc.property(fc.oneof(denseNetArb.map(denseNet), convNetArb.map(convNet)), (net) => {
        const model = buildSparseModel({ ...net, meta: { profile: 'molchanov2017', case: n } });
        const path = join(dir, `model-${n++}.json`);
        writeSparseModel(model, path);
        const text = readFileSync(path, 'utf8');
        const back = readSparseModel(path);
        expect(back).toEqual(model);
        // Byte-identical when written again, and the same logits to the bit.
        writeSparseModel(back, path);
        expect(readFileSync(path, 'utf8')).toBe(text);
        expectBitwise(sparseForward(back, net.x), sparseForward(model, net.x), 'objectIs');

        const stored = back.layers.reduce(
          (a, l) => a + (l.kind === 'dense' || l.kind === 'conv2d' ? l.values.length : 0),
          0,
        );
        expect(stored).toBe(keptCount(net.layers));
        expect(sparseStats(back).overall.kept).toBe(stored);
      }),
      { numRuns: 60 },
    );
    expect(readdirSync(dir).every((f) => /^model-\d+\.json$/.test(f))).toBe(true);
  });

  it('the CSR layout: dense theta as [in, out], conv theta HWIO as [kh*kw*cin, cout]', () => {
    // theta[k] = k + 1 so each stored value names its own flat (row-major) index.
    const conv: ExportLayer = {
      kind: 'conv2d',
      theta: { shape: [2, 1, 2, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] },
      bias: { shape: [3], data: [0.5, -0.5, 0] },
      keep: { shape: [2, 1, 2, 3], data: [1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1] },
      stride: [1, 1],
      padding: 'valid',
    };
    const dense: ExportLayer = {
      kind: 'dense',
      theta: { shape: [6, 2], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] },
      bias: { shape: [2], data: [0, 0] },
      keep: { shape: [6, 2], data: [0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1] },
    };
    const model = buildSparseModel({
      inputShape: [3, 1, 2],
      layers: [conv, { kind: 'flatten' }, dense],
    });
    expect(model.layers[0]).toEqual({
      kind: 'conv2d',
      shape: [2, 1, 2, 3],
      stride: [1, 1],
      padding: 'valid',
      rowPointers: [0, 1, 1, 3, 5],
      columns: [0, 1, 2, 0, 2],
      values: [1, 8, 9, 10, 12],
      bias: [0.5, -0.5, 0],
    });
    expect(model.layers[2]).toEqual({
      kind: 'dense',
      shape: [6, 2],
      rowPointers: [0, 1, 1, 3, 3, 3, 4],
      columns: [1, 0, 1, 1],
      values: [2, 5, 6, 12],
      bias: [0, 0],
    });
    const stats = sparseStats(model);
    expect(stats.layers.map((l) => [l.name, l.layer, l.kept, l.total])).toEqual([
      ['conv2d0', 0, 5, 12],
      ['dense1', 2, 4, 12],
    ]);
    expect(stats.overall.compression).toBe(24 / 9);
    expect(stats.overall.fractionPruned).toBe(15 / 24);
  });

  it('the worked example of spec/export.md parses and gives the stated logits and counts', () => {
    const page = readFileSync(join(import.meta.dirname, '../../spec/export.md'), 'utf8');
    const block = /```json\n([\s\S]*?)```/.exec(page);
    expect(block, 'spec/export.md has a json block').not.toBeNull();
    const model = parseSparseModel(JSON.parse(block![1]!));
    const built = buildSparseModel({
      inputShape: [3],
      layers: [
        {
          kind: 'dense',
          theta: { shape: [3, 2], data: [0.5, -1, 0, 2, 1.5, 0.25] },
          bias: { shape: [2], data: [0.25, -0.5] },
          keep: { shape: [3, 2], data: [1, 1, 0, 1, 1, 0] },
        },
        { kind: 'relu' },
        {
          kind: 'dense',
          theta: { shape: [2, 2], data: [1, -3, 0.5, 2] },
          bias: { shape: [2], data: [0, 0.125] },
          keep: { shape: [2, 2], data: [1, 0, 1, 1] },
        },
      ],
      meta: { profile: 'molchanov2017' },
    });
    expect(model).toEqual(built);
    expect(sparseForward(model, { shape: [1, 3], data: [1, 2, 3] })).toEqual({
      shape: [1, 2],
      data: [6.5, 5.125],
    });
    const stats = sparseStats(model);
    expect(stats.layers.map((l) => [l.kept, l.total])).toEqual([
      [4, 6],
      [3, 4],
    ]);
    expect(stats.overall.compression).toBe(10 / 7);
  });

  it('float32 weights survive as JSON numbers; a kept weight of -0 is stored as 0', () => {
    const w = [Math.fround(0.1), Math.fround(-1e-30), Math.fround(3.4e38), -0];
    const model = buildSparseModel({
      inputShape: [4],
      layers: [
        {
          kind: 'dense',
          theta: { shape: [4, 1], data: w },
          bias: { shape: [1], data: [-0] },
          keep: null,
        },
      ],
    });
    const layer = model.layers[0]!;
    if (layer.kind !== 'dense') throw new Error('expected a dense layer');
    expect(layer.values.map((v) => Object.is(v, -0))).toEqual([false, false, false, false]);
    expect(Object.is(layer.bias[0], 0)).toBe(true);
    const back = parseSparseModel(JSON.parse(JSON.stringify(model)));
    expect(back).toEqual(model);
    if (back.layers[0]!.kind !== 'dense') throw new Error('expected a dense layer');
    expect(back.layers[0]!.values.every((v, k) => Object.is(v, layer.values[k]))).toBe(true);
  });
});

describe('spec/export.md#from-a-fastmodel: a FastModel exported with fastKeepMask predicts what model.predict predicts', () => {
  const cases: { name: string; inputShape: number[]; layers: FastLayerSpec[]; train: boolean }[] = [
    {
      name: 'dense-first, after 4 training steps',
      inputShape: [20],
      layers: [
        { kind: 'dense', units: 16 },
        { kind: 'relu' },
        { kind: 'dense', units: 12 },
        { kind: 'relu' },
        { kind: 'dense', units: 5 },
      ],
      train: true,
    },
    {
      name: 'conv-first (same padding, stride, odd pool)',
      inputShape: [9, 9, 2],
      layers: [
        { kind: 'conv2d', filters: 4, kernelSize: 3, padding: 'same' },
        { kind: 'relu' },
        { kind: 'maxPool2x2' },
        { kind: 'conv2d', filters: 5, kernelSize: [2, 3], stride: [1, 2] },
        { kind: 'relu' },
        { kind: 'flatten' },
        { kind: 'dense', units: 4 },
      ],
      train: false,
    },
  ];

  it.each(cases)('$name', async ({ inputShape, layers: specs, train }) => {
    await initBackend();
    const seed = 2024;
    const rand = prng(seed);
    const model = createFastModel({ inputShape, layers: specs, profile: 'molchanov2017', seed });
    try {
      const batchSize = 64;
      const classes = (specs.at(-1) as { units: number }).units;
      const x = {
        shape: [batchSize, ...inputShape],
        data: inputs(batchSize * sizeOf(inputShape), rand),
      };
      if (train) {
        const labels = Array.from({ length: batchSize }, () => Math.floor(rand() * classes));
        for (let s = 0; s < 4; s++) {
          model.trainStep({ x, labels }, { trainSize: 1000, klWeight: 1, learningRate: 0.01 });
        }
      }
      // log_sigma2 = log(theta^2) + log_alpha with log_alpha spread around the threshold: some weights pruned.
      model.setParameters(
        model.parameters().map((p) => ({
          theta: p.theta,
          bias: { shape: p.bias.shape, data: normals(p.bias.data.length, rand, 0.1) },
          noise: {
            shape: p.noise.shape,
            data: p.theta.data.map((t) => Math.fround(Math.log(t * t) + (rand() * 10 - 5))),
          },
        })),
      );

      const params = model.parameters();
      let p = 0;
      const layers = specs.map((spec): ExportLayer => {
        if (spec.kind !== 'dense' && spec.kind !== 'conv2d') return { kind: spec.kind };
        const { theta, noise, bias, kind } = params[p++]!;
        const keep = fastKeepMask(theta, noise, model.profile, kind);
        if (spec.kind === 'dense') return { kind: 'dense', theta, bias, keep };
        const stride = spec.stride ?? 1;
        return {
          kind: 'conv2d',
          theta,
          bias,
          keep,
          stride: typeof stride === 'number' ? [stride, stride] : [stride[0], stride[1]],
          padding: spec.padding ?? 'valid',
        };
      });
      const sparse = buildSparseModel({
        inputShape,
        layers,
        meta: { profile: model.profile.name },
      });

      // The file's counts are the model's own sparsity report.
      const stats = sparseStats(sparse);
      const report = model.sparsity();
      expect(stats.layers.map((l) => [l.name, l.kept, l.total])).toEqual(
        report.layers.map((l) => [l.name, l.kept, l.total]),
      );
      for (const l of stats.layers) {
        expect(l.kept).toBeGreaterThan(0);
        expect(l.kept).toBeLessThan(l.total);
      }

      const logits64 = sparseForward(sparse, x);
      const predicted = model.predict(x);
      const logits32 = Array.from(predicted.dataSync());
      predicted.dispose();
      expect(logits64.shape).toEqual([batchSize, classes]);

      const scale = Math.max(...logits64.data.map(Math.abs));
      const tolerance = 1e-5 * scale;
      const worst = Math.max(...logits32.map((v, k) => Math.abs(v - logits64.data[k]!)));
      expect(worst).toBeLessThanOrEqual(tolerance);
      // Argmax: equal on every row whose top two float64 logits are farther apart than the
      // float32 error can move them (the logits themselves agree within the tolerance above).
      let compared = 0;
      for (let b = 0; b < batchSize; b++) {
        const row64 = logits64.data.slice(b * classes, (b + 1) * classes);
        const row32 = logits32.slice(b * classes, (b + 1) * classes);
        const sorted = [...row64].sort((u, v) => v - u);
        if (classes > 1 && sorted[0]! - sorted[1]! <= 2 * tolerance) continue;
        compared += 1;
        expect(row32.indexOf(Math.max(...row32))).toBe(row64.indexOf(Math.max(...row64)));
      }
      expect(compared).toBeGreaterThanOrEqual(batchSize - 2);
    } finally {
      model.dispose();
    }
  });
});

// ------------------------------------------------------------------ errors

/** A small valid model's JSON: dense 3x2 (partly pruned), relu, dense 2x2. */
function validJson(): Record<string, unknown> {
  const model = buildSparseModel({
    inputShape: [3],
    layers: [
      {
        kind: 'dense',
        theta: { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
        bias: { shape: [2], data: [0.1, 0.2] },
        keep: { shape: [3, 2], data: [1, 1, 0, 1, 1, 0] },
      },
      { kind: 'relu' },
      {
        kind: 'dense',
        theta: { shape: [2, 2], data: [1, -1, 0.5, 2] },
        bias: { shape: [2], data: [0, 0] },
        keep: null,
      },
    ],
    meta: { profile: 'molchanov2017' },
  });
  return JSON.parse(JSON.stringify(model)) as Record<string, unknown>;
}

type Json = Record<string, unknown>;
const layer0 = (j: Json) => (j['layers'] as Json[])[0]!;
const layer2 = (j: Json) => (j['layers'] as Json[])[2]!;

function expectVdspecError(run: () => unknown, code: string, argument: string): VdspecError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a VdspecError').toBeInstanceOf(VdspecError);
  const error = caught as VdspecError;
  expect({ code: error.code, argument: error.argument }).toEqual({ code, argument });
  expect(error.message.length).toBeGreaterThan(argument.length + 10);
  return error;
}

describe('spec/export.md#validation: malformed files give clear VdspecErrors naming the JSON path', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vdspec-export-bad-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const textCases: [string, (text: string) => string, string, string][] = [
    ['truncated file', (t) => t.slice(0, Math.floor(t.length / 2)), 'invalid_argument', '/'],
    ['empty file', () => '', 'invalid_argument', '/'],
    [
      'a bare NaN (not JSON)',
      (t) => t.replace('"values":[1,2', '"values":[NaN,2'),
      'invalid_argument',
      '/',
    ],
    [
      '1e999 (parses to Infinity)',
      (t) => t.replace('"values":[1,2', '"values":[1e999,2'),
      'non_finite',
      '/layers/0/values/0',
    ],
  ];
  it.each(textCases)('%s', (_name, edit, code, argument) => {
    const path = join(dir, 'bad.json');
    const text = JSON.stringify(validJson());
    const edited = edit(text);
    expect(edited).not.toBe(text);
    writeFileSync(path, edited);
    const error = expectVdspecError(() => readSparseModel(path), code, argument);
    expect(error.message).toContain(path);
  });

  const jsonCases: [string, (j: Json) => unknown, string, string][] = [
    ['not an object', () => [1, 2], 'invalid_argument', '/'],
    ['wrong format', (j) => ({ ...j, format: 'onnx' }), 'invalid_argument', '/format'],
    ['wrong version', (j) => ({ ...j, version: 2 }), 'unsupported', '/version'],
    ['missing version', (j) => ({ ...j, version: undefined }), 'invalid_argument', '/version'],
    ['unknown top-level field', (j) => ({ ...j, weights: [] }), 'invalid_argument', '/weights'],
    ['missing layers', (j) => ({ ...j, layers: undefined }), 'invalid_argument', '/layers'],
    ['empty layers', (j) => ({ ...j, layers: [] }), 'invalid_argument', '/layers'],
    ['bad inputShape', (j) => ({ ...j, inputShape: [3.5] }), 'invalid_argument', '/inputShape/0'],
    [
      'unknown layer kind',
      (j) => (((j['layers'] as Json[])[1] = { kind: 'tanh' }), j),
      'invalid_argument',
      '/layers/1/kind',
    ],
    [
      'unknown layer field',
      (j) => ((layer0(j)['keep'] = []), j),
      'invalid_argument',
      '/layers/0/keep',
    ],
    [
      'missing values',
      (j) => (delete layer0(j)['values'], j),
      'invalid_argument',
      '/layers/0/values',
    ],
    [
      'row pointer out of range',
      (j) => (((layer0(j)['rowPointers'] as number[])[2] = 9), j),
      'invalid_argument',
      '/layers/0/rowPointers/2',
    ],
    [
      'row pointers decreasing',
      (j) => (((layer0(j)['rowPointers'] as number[])[2] = 1), j),
      'invalid_argument',
      '/layers/0/rowPointers/2',
    ],
    [
      'first row pointer not 0',
      (j) => (((layer0(j)['rowPointers'] as number[])[0] = 1), j),
      'invalid_argument',
      '/layers/0/rowPointers/0',
    ],
    [
      'last row pointer short of the entries',
      (j) => (((layer0(j)['rowPointers'] as number[])[3] = 3), j),
      'shape_mismatch',
      '/layers/0/rowPointers/3',
    ],
    [
      'truncated rowPointers',
      (j) => ((layer0(j)['rowPointers'] as number[]).pop(), j),
      'shape_mismatch',
      '/layers/0/rowPointers',
    ],
    [
      'truncated values',
      (j) => ((layer0(j)['values'] as number[]).pop(), j),
      'shape_mismatch',
      '/layers/0/values',
    ],
    [
      'truncated bias',
      (j) => ((layer2(j)['bias'] as number[]).pop(), j),
      'shape_mismatch',
      '/layers/2/bias',
    ],
    [
      'column out of range',
      (j) => (((layer0(j)['columns'] as number[])[1] = 2), j),
      'invalid_argument',
      '/layers/0/columns/1',
    ],
    [
      'column repeated in a row',
      (j) => (((layer0(j)['columns'] as number[])[1] = 0), j),
      'invalid_argument',
      '/layers/0/columns/1',
    ],
    [
      'fractional column',
      (j) => (((layer0(j)['columns'] as number[])[1] = 0.5), j),
      'invalid_argument',
      '/layers/0/columns/1',
    ],
    [
      'NaN value (JSON null)',
      (j) => (((layer0(j)['values'] as unknown[])[2] = null), j),
      'non_finite',
      '/layers/0/values/2',
    ],
    [
      'string value',
      (j) => (((layer0(j)['values'] as unknown[])[2] = '3'), j),
      'invalid_argument',
      '/layers/0/values/2',
    ],
    [
      'NaN bias',
      (j) => (((layer2(j)['bias'] as unknown[])[0] = null), j),
      'non_finite',
      '/layers/2/bias/0',
    ],
    [
      'layer shape mismatch',
      (j) => ((layer2(j)['shape'] = [3, 2]), j),
      'shape_mismatch',
      '/layers/2/rowPointers',
    ],
    [
      'dense shape rank',
      (j) => ((layer0(j)['shape'] = [3, 2, 1]), j),
      'shape_mismatch',
      '/layers/0/shape',
    ],
    ['meta not an object', (j) => ({ ...j, meta: [1] }), 'invalid_argument', '/meta'],
  ];
  it.each(jsonCases)('%s', (_name, edit, code, argument) => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify(edit(validJson())));
    const error = expectVdspecError(() => readSparseModel(path), code, argument);
    expect(error.message.startsWith(`${path}: ${argument}: `), error.message).toBe(true);
    expectVdspecError(() => parseSparseModel(edit(validJson())), code, argument);
  });

  it('a layer whose input size disagrees with the previous layer is named by its shape', () => {
    // Both denses consistent in themselves, but the second expects 3 inputs where the first gives 2.
    const j = validJson();
    const second = layer2(j);
    second['shape'] = [3, 2];
    second['rowPointers'] = [0, 2, 4, 6];
    second['columns'] = [0, 1, 0, 1, 0, 1];
    second['values'] = [1, 2, 3, 4, 5, 6];
    expectVdspecError(() => parseSparseModel(j), 'shape_mismatch', '/layers/2/shape');
    const conv = {
      ...validJson(),
      inputShape: [4, 4, 2],
      layers: [
        {
          kind: 'conv2d',
          shape: [2, 2, 3, 1],
          stride: [1, 1],
          padding: 'valid',
          rowPointers: new Array(13).fill(0),
          columns: [],
          values: [],
          bias: [0],
        },
        { kind: 'flatten' },
      ],
    };
    expectVdspecError(() => parseSparseModel(conv), 'shape_mismatch', '/layers/0/shape');
    const pooledTooFar = {
      ...conv,
      inputShape: [1, 5, 3],
      layers: [{ kind: 'maxPool2x2' }, ...conv.layers],
    };
    expectVdspecError(() => parseSparseModel(pooledTooFar), 'shape_mismatch', '/layers/0');
    const noFlatten = { ...conv, inputShape: [4, 4, 3], layers: conv.layers.slice(0, 1) };
    expectVdspecError(() => parseSparseModel(noFlatten), 'shape_mismatch', '/layers');
    const badPadding = {
      ...conv,
      layers: [{ ...conv.layers[0], padding: 'SAME' }, conv.layers[1]],
    };
    expectVdspecError(() => parseSparseModel(badPadding), 'invalid_argument', '/layers/0/padding');
  });

  it('a missing file or a directory is named', () => {
    expectVdspecError(() => readSparseModel(join(dir, 'absent.json')), 'invalid_argument', 'path');
    expectVdspecError(() => readSparseModel(dir), 'invalid_argument', 'path');
  });
});

describe('spec/export.md: nothing half-written (writeSparseModel writes atomically)', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vdspec-export-write-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const good = () => parseSparseModel(validJson());

  it('an invalid model is rejected before any file is touched', () => {
    const path = join(dir, 'model.json');
    writeSparseModel(good(), path);
    const before = readFileSync(path, 'utf8');
    const broken = validJson();
    (layer0(broken)['values'] as unknown[])[0] = Number.NaN;
    expectVdspecError(
      () => writeSparseModel(broken as unknown as SparseModel, path),
      'non_finite',
      '/layers/0/values/0',
    );
    expectVdspecError(
      () => writeSparseModel(broken as unknown as SparseModel, join(dir, 'new.json')),
      'non_finite',
      '/layers/0/values/0',
    );
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['model.json']);
  });

  it('a failing rename or a missing directory leaves no temporary file and the old contents', () => {
    const target = join(dir, 'occupied');
    mkdirSync(target);
    expectVdspecError(() => writeSparseModel(good(), target), 'invalid_argument', 'path');
    expectVdspecError(
      () => writeSparseModel(good(), join(dir, 'missing', 'model.json')),
      'invalid_argument',
      'path',
    );
    expect(readdirSync(dir).sort()).toEqual(['model.json', 'occupied']);
    expect(readdirSync(target)).toEqual([]);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });
});

describe('bad arguments to buildSparseModel and sparseForward', () => {
  const dense = (
    keep: Tensor | null,
    bias: Tensor = { shape: [2], data: [0, 0] },
  ): ExportLayer => ({
    kind: 'dense',
    theta: { shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
    bias,
    keep,
  });

  it.each([
    [
      'keep not 0/1',
      { inputShape: [3], layers: [dense({ shape: [3, 2], data: [1, 0.5, 0, 1, 1, 1] })] },
      'invalid_argument',
      '/layers/0/keep',
    ],
    [
      'keep of the wrong shape',
      { inputShape: [3], layers: [dense({ shape: [2, 3], data: [1, 1, 1, 1, 1, 1] })] },
      'shape_mismatch',
      '/layers/0/keep',
    ],
    [
      'bias of the wrong shape',
      { inputShape: [3], layers: [dense(null, { shape: [3], data: [0, 0, 0] })] },
      'shape_mismatch',
      '/layers/0/bias',
    ],
    [
      'input size mismatch',
      { inputShape: [4], layers: [dense(null)] },
      'shape_mismatch',
      '/layers/0/shape',
    ],
    [
      'a non-finite weight',
      {
        inputShape: [3],
        layers: [{ ...dense(null), theta: { shape: [3, 2], data: [1, 2, 3, 4, 5, Infinity] } }],
      },
      'non_finite',
      '/layers/0/theta',
    ],
    [
      'unknown kind',
      { inputShape: [3], layers: [{ kind: 'softmax' }] },
      'invalid_argument',
      '/layers/0/kind',
    ],
    [
      'conv stride',
      {
        inputShape: [3, 3, 1],
        layers: [
          {
            kind: 'conv2d',
            theta: { shape: [1, 1, 1, 1], data: [1] },
            bias: { shape: [1], data: [0] },
            keep: null,
            stride: [0, 1],
            padding: 'valid',
          },
          { kind: 'flatten' },
        ],
      },
      'invalid_argument',
      '/layers/0/stride/0',
    ],
    [
      'meta with NaN',
      { inputShape: [3], layers: [dense(null)], meta: { accuracy: Number.NaN } },
      'non_finite',
      '/meta/accuracy',
    ],
    [
      'meta with a function',
      { inputShape: [3], layers: [dense(null)], meta: { f: () => 1 } },
      'invalid_argument',
      '/meta/f',
    ],
  ] as [string, unknown, string, string][])('%s', (_name, input, code, argument) => {
    expectVdspecError(
      () => buildSparseModel(input as Parameters<typeof buildSparseModel>[0]),
      code,
      argument,
    );
  });

  it('x of the wrong shape, and overflow, are named', () => {
    const model = buildSparseModel({ inputShape: [3], layers: [dense(null)] });
    expectVdspecError(
      () => sparseForward(model, { shape: [2, 4], data: new Array(8).fill(0) }),
      'shape_mismatch',
      'x',
    );
    expectVdspecError(
      () => sparseForward(model, { shape: [1, 3], data: [1e308, 1e308, 1e308] }),
      'non_finite',
      'x',
    );
    expect(sparseForward(model, { shape: [0, 3], data: [] })).toEqual({ shape: [0, 2], data: [] });
  });
});
