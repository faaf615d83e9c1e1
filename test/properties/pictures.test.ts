/**
 * spec/train.md#pictures: the first layer of a sparse export drawn as the
 * input pixels that keep any weight (dense first layer) or the filters with
 * their pruned taps (one-channel conv first layer); a first layer of
 * neither kind gets no picture, and asking for one is refused. The expected
 * values are read off hand-written models, not computed by the module.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { runPicturesCommand } from '../../src/cli/pictures.js';
import { parseSparseModel } from '../../src/export/sparse.js';
import type { SparseModel } from '../../src/export/sparse.js';
import {
  filtersSpec,
  firstLayerFilters,
  inputPixelMap,
  sparsityPictureSpecs,
} from '../../src/train/pictures.js';
import { renderSvg } from '../../src/train/plots.js';
import { expectRefusal, untyped } from './refusals.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A 2 x 2 image, flat, into a dense layer of 3 units: pixel 0 keeps 2, 1 keeps 0, 2 keeps 1, 3 keeps 3. */
const denseModel = parseSparseModel({
  format: 'vdspec-sparse',
  version: 1,
  inputShape: [4],
  layers: [
    {
      kind: 'dense',
      shape: [4, 3],
      rowPointers: [0, 2, 2, 3, 6],
      columns: [0, 2, 1, 0, 1, 2],
      values: [0.5, -1, 2, 0.25, 0.75, -0.5],
      bias: [0, 0, 0],
    },
  ],
  meta: {},
});

/** Two 2 x 2 filters on one channel: rows are taps (0,0), (0,1), (1,0), (1,1). */
const convModel = parseSparseModel({
  format: 'vdspec-sparse',
  version: 1,
  inputShape: [3, 3, 1],
  layers: [
    {
      kind: 'conv2d',
      shape: [2, 2, 1, 2],
      stride: [1, 1],
      padding: 'valid',
      rowPointers: [0, 1, 1, 3, 4],
      columns: [1, 0, 1, 0],
      values: [0.5, -0.25, 1.5, 2],
      bias: [0, 0],
    },
    { kind: 'relu' },
    { kind: 'flatten' },
  ],
  meta: {},
});

describe('spec/train.md#pictures', () => {
  it('the pixel map counts the kept weights of each input pixel, row-major on the square image', () => {
    expect(inputPixelMap(denseModel)).toEqual([
      { row: 0, col: 0, kept: 2 },
      { row: 0, col: 1, kept: 0 },
      { row: 1, col: 0, kept: 1 },
      { row: 1, col: 1, kept: 3 },
    ]);
  });

  it('the filters show each kept tap with its value and each pruned tap as null', () => {
    const taps = firstLayerFilters(convModel);
    const of = (filter: number) =>
      taps.filter((t) => t.filter === filter).map((t) => [t.row, t.col, t.value]);
    expect(of(0)).toEqual([
      [0, 0, null],
      [0, 1, null],
      [1, 0, -0.25],
      [1, 1, 2],
    ]);
    expect(of(1)).toEqual([
      [0, 0, 0.5],
      [0, 1, null],
      [1, 0, 1.5],
      [1, 1, null],
    ]);
  });

  it('each model gets its picture, rendered with the counts in its subtitle', async () => {
    const [pixels] = sparsityPictureSpecs(denseModel, 'test');
    expect(pixels!.name).toBe('pixels');
    expect(await renderSvg(pixels!.spec)).toContain('3 of 4');
    const [filters] = sparsityPictureSpecs(convModel, 'test');
    expect(filters!.name).toBe('filters');
    expect(await renderSvg(filters!.spec)).toContain('4 of 8 taps kept');
  });

  it('vdspec pictures writes them into RUN_DIR/plots; a bad call is one line, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vdspec-pictures-'));
    temps.push(dir);
    writeFileSync(join(dir, 'model.sparse.json'), JSON.stringify(denseModel));
    const out: string[] = [];
    const err: string[] = [];
    expect(
      await runPicturesCommand(
        [dir],
        (s) => out.push(s),
        (s) => err.push(s),
      ),
    ).toBe(0);
    expect(err).toEqual([]);
    expect(readFileSync(join(dir, 'plots', 'pixels.svg'), 'utf8')).toContain('<svg');
    const missing: string[] = [];
    const code = await runPicturesCommand(
      [join(dir, 'absent')],
      () => {},
      (s) => missing.push(s),
    );
    expect(code).toBe(2);
    expect(missing).toHaveLength(1);
    expect(missing[0]).toMatch(/^vdspec pictures: .*absent/);
    expect(
      await runPicturesCommand(
        [],
        () => {},
        () => {},
      ),
    ).toBe(2);
  });
});

/** A 6-pixel input (not a square image) into a dense layer of 2 units. */
const nonSquareDense = parseSparseModel({
  format: 'vdspec-sparse',
  version: 1,
  inputShape: [6],
  layers: [
    {
      kind: 'dense',
      shape: [6, 2],
      rowPointers: [0, 1, 1, 1, 1, 1, 2],
      columns: [0, 1],
      values: [1, 2],
      bias: [0, 0],
    },
  ],
  meta: {},
});

/** A 2 x 2 one-channel image flattened into a dense layer: square, but the input is not flat. */
const flattenedDense = parseSparseModel({
  format: 'vdspec-sparse',
  version: 1,
  inputShape: [2, 2, 1],
  layers: [
    { kind: 'flatten' },
    {
      kind: 'dense',
      shape: [4, 2],
      rowPointers: [0, 1, 1, 1, 2],
      columns: [0, 1],
      values: [1, 2],
      bias: [0, 0],
    },
  ],
  meta: {},
});

/** One 1 x 1 filter on a three-channel image. */
const threeChannelConv = parseSparseModel({
  format: 'vdspec-sparse',
  version: 1,
  inputShape: [2, 2, 3],
  layers: [
    {
      kind: 'conv2d',
      shape: [1, 1, 3, 1],
      stride: [1, 1],
      padding: 'valid',
      rowPointers: [0, 1, 1, 1],
      columns: [0],
      values: [1],
      bias: [0],
    },
    { kind: 'flatten' },
  ],
  meta: {},
});

describe('spec/train.md#pictures: which first layer gets which picture', () => {
  const PIXELS_NEEDS = 'the input pixel map needs a dense first layer on a flat square image';
  const FILTERS_NEEDS = 'the filter picture needs a conv2d first layer on a one-channel image';

  it('the taps come filter by filter, each filter row by row', () => {
    expect(firstLayerFilters(convModel).map((t) => [t.filter, t.row, t.col, t.value])).toEqual([
      [0, 0, 0, null],
      [0, 0, 1, null],
      [0, 1, 0, -0.25],
      [0, 1, 1, 2],
      [1, 0, 0, 0.5],
      [1, 0, 1, null],
      [1, 1, 0, 1.5],
      [1, 1, 1, null],
    ]);
  });

  it("a first layer that is neither picture's gets none, and asking for one is refused", () => {
    for (const [what, model] of [
      ['6 pixels, not a square', nonSquareDense],
      ['a square image, flattened', flattenedDense],
    ] as const) {
      expect(sparsityPictureSpecs(model, 't'), what).toEqual([]);
      expectRefusal(() => inputPixelMap(model), 'invalid_argument', 'model', PIXELS_NEEDS);
      expectRefusal(() => firstLayerFilters(model), 'invalid_argument', 'model', FILTERS_NEEDS);
    }
    expect(sparsityPictureSpecs(threeChannelConv, 't')).toEqual([]);
    expectRefusal(
      () => firstLayerFilters(threeChannelConv),
      'invalid_argument',
      'model',
      FILTERS_NEEDS,
    );
    expectRefusal(() => inputPixelMap(threeChannelConv), 'invalid_argument', 'model', PIXELS_NEEDS);
    expectRefusal(() => inputPixelMap(convModel), 'invalid_argument', 'model', PIXELS_NEEDS);
    expectRefusal(() => firstLayerFilters(denseModel), 'invalid_argument', 'model', FILTERS_NEEDS);
  });

  it('a model without a dense or conv2d layer (the reader refuses one) is refused here too', () => {
    const noWeights = untyped<SparseModel>({ ...denseModel, layers: [{ kind: 'relu' }] });
    for (const run of [
      () => inputPixelMap(noWeights),
      () => firstLayerFilters(noWeights),
      () => sparsityPictureSpecs(noWeights, 't'),
    ]) {
      expectRefusal(run, 'invalid_argument', 'model', 'the model has no dense or conv2d layer');
    }
  });

  it('the filters picture counts the kept taps and centres its colours on 0 at the largest |value|', () => {
    const spec = (taps: Parameters<typeof filtersSpec>[0]) =>
      filtersSpec(taps, 't') as unknown as {
        title: { subtitle: string };
        spec: { layer: [{ encoding: { color: { scale: { domain: number[] } } } }] };
      };
    const some = spec([
      { filter: 0, row: 0, col: 0, value: 0.5 },
      { filter: 0, row: 0, col: 1, value: null },
      { filter: 0, row: 1, col: 0, value: -3 },
    ]);
    expect(some.title.subtitle).toBe(
      'first-layer filters: 2 of 3 taps kept (pruned taps grey, marked x)',
    );
    expect(some.spec.layer[0].encoding.color.scale.domain).toEqual([-3, 3]);
    // Every tap pruned: a tiny range, not [0, 0] (which Vega cannot scale).
    const none = spec([{ filter: 0, row: 0, col: 0, value: null }]);
    expect(none.title.subtitle).toMatch(/^first-layer filters: 0 of 1 taps kept/);
    expect(none.spec.layer[0].encoding.color.scale.domain).toEqual([-1e-12, 1e-12]);
  });
});

describe('spec/train.md#comparing-runs: vdspec compare', () => {
  it('draws two runs in one figure, labelled; a bad call is one line, exit 2', async () => {
    const { runCompareCommand } = await import('../../src/cli/compare.js');
    const root = mkdtempSync(join(tmpdir(), 'vdspec-compare-'));
    temps.push(root);
    const epoch = (e: number, test: number) => ({
      epoch: e,
      klWeight: 0,
      learningRate: 1e-3,
      loss: 1,
      dataTerm: 1,
      kl: 0,
      trainAccuracy: 0.5,
      testAccuracy: test,
      testCrossEntropy: 1,
      kept: 10,
      total: 20,
      compression: 2,
      seconds: 1,
    });
    const record = (label: string) => ({
      format: 'vdspec-train',
      version: 1,
      config: {
        network: 'lenet300',
        profile: 'molchanov2017',
        baseline: false,
        epochs: 2,
        seed: 1,
        splitSeed: 20170,
        trainLimit: null,
        testLimit: null,
        initFrom: null,
        recipe: {},
      },
      trainSize: 10,
      testSize: 10,
      backends: ['wasm'],
      epochs: [epoch(1, 0.25), epoch(2, label === 'b' ? 0.75 : 0.5)],
      wallSeconds: 2,
      complete: true,
      final: null,
    });
    for (const name of ['a', 'b']) {
      const dir = join(root, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'results.json'), JSON.stringify(record(name)));
    }
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCompareCommand(
      [
        '--out',
        join(root, 'plots'),
        '--name',
        'both',
        '--title',
        'two runs',
        `${join(root, 'a')}=run A`,
        `${join(root, 'b')}=run B`,
      ],
      (s) => out.push(s),
      (s) => err.push(s),
    );
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const svg = readFileSync(join(root, 'plots', 'both.svg'), 'utf8');
    expect(svg).toContain('run A');
    expect(svg).toContain('run B');
    const bad: string[] = [];
    expect(
      await runCompareCommand(
        ['--out', root, join(root, 'a')],
        () => {},
        (s) => bad.push(s),
      ),
    ).toBe(2);
    expect(bad).toHaveLength(1);
  });
});

describe('spec/train.md#results: every reader of a results.json refuses a broken one in one line, exit 2', () => {
  it('compare, pictures and the results table: truncated, empty, a directory in its place', async () => {
    const { runCompareCommand } = await import('../../src/cli/compare.js');
    const { readResults } = await import('../../src/train/resultsTable.js');
    const root = mkdtempSync(join(tmpdir(), 'vdspec-broken-record-'));
    temps.push(root);
    const broken: [string, (path: string) => void, RegExp][] = [
      [
        'truncated',
        (p) => writeFileSync(p, '{"format": "vdspec-train", "ver'),
        /is not valid JSON/,
      ],
      ['empty', (p) => writeFileSync(p, ''), /is empty/],
      ['directory', (p) => mkdirSync(p), /is a directory, not a file/],
    ];
    for (const [name, make, why] of broken) {
      const dir = join(root, name);
      mkdirSync(dir);
      const path = join(dir, 'results.json');
      make(path);
      const line = new RegExp(
        `^record: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${why.source}`,
      );
      const err: string[] = [];
      const code = await runCompareCommand(
        ['--out', join(root, 'plots'), '--name', 'x', '--title', 't', `${dir}=A`],
        () => {},
        (s) => err.push(s),
      );
      expect(code, name).toBe(2);
      expect(err, name).toHaveLength(1);
      expect(err[0]!.replace(/^vdspec compare: /, ''), name).toMatch(line);
      expect(err[0], name).not.toMatch(/internal error/);
      const picturesErr: string[] = [];
      expect(
        await runPicturesCommand(
          [dir],
          () => {},
          (s) => picturesErr.push(s),
        ),
        name,
      ).toBe(2);
      expect(picturesErr.join('\n'), name).not.toMatch(/internal error/);
      expect(() => readResults(root), name).toThrow(line);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
