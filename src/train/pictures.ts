/**
 * What a sparse network kept, as pictures (spec/train.md#pictures): for a
 * network whose first layer is dense on the 28 x 28 image (LeNet-300-100),
 * the map of input pixels by how many of their weights survived; for one
 * whose first layer is a one-channel convolution (LeNet-5), its filters with
 * the pruned taps marked. Both read the sparse export (spec/export.md), so
 * they show exactly what `model.sparse.json` holds.
 */
import { join } from 'node:path';

import type { TopLevelSpec } from 'vega-lite';

import { VdspecError } from '../errors.js';
import { readSparseModel, type SparseLayer, type SparseModel } from '../export/sparse.js';
import { writePlotFiles, type PlotSpec } from './plots.js';

/** The files of a run directory that the pictures read and write into (spec/train.md#a-run). */
export const SPARSE_MODEL_FILE = 'model.sparse.json';
export const PLOTS_DIR = 'plots';

/** One input pixel of a dense first layer: its row and column, and its kept outgoing weights. */
export interface PixelCell {
  readonly row: number;
  readonly col: number;
  readonly kept: number;
}

/** One tap of a first-layer filter: its value, or null where the tap is pruned. */
export interface FilterTap {
  readonly filter: number;
  readonly row: number;
  readonly col: number;
  readonly value: number | null;
}

function firstWeightLayer(
  model: SparseModel,
): Exclude<SparseLayer, { kind: 'relu' | 'maxPool2x2' | 'flatten' }> {
  const layer = model.layers.find((l) => l.kind === 'dense' || l.kind === 'conv2d');
  if (layer === undefined || (layer.kind !== 'dense' && layer.kind !== 'conv2d')) {
    throw new VdspecError('invalid_argument', 'the model has no dense or conv2d layer', 'model');
  }
  return layer;
}

/** The square image side of a flat input, or null when it is not a square. */
function squareSide(size: number): number | null {
  const side = Math.round(Math.sqrt(size));
  return side * side === size ? side : null;
}

/**
 * Kept outgoing weights per input pixel of a dense first layer on a flat
 * square image: row r of its CSR matrix is input pixel r (row-major).
 */
export function inputPixelMap(model: SparseModel): PixelCell[] {
  const layer = firstWeightLayer(model);
  const side = layer.kind === 'dense' ? squareSide(layer.shape[0]) : null;
  if (layer.kind !== 'dense' || side === null || model.inputShape.length !== 1) {
    throw new VdspecError(
      'invalid_argument',
      'the input pixel map needs a dense first layer on a flat square image',
      'model',
    );
  }
  const cells: PixelCell[] = [];
  for (let r = 0; r < layer.shape[0]; r++) {
    cells.push({
      row: Math.floor(r / side),
      col: r % side,
      kept: layer.rowPointers[r + 1]! - layer.rowPointers[r]!,
    });
  }
  return cells;
}

/**
 * The taps of a one-channel conv first layer, filter by filter: row
 * (p * kw + q) of its CSR matrix holds tap (p, q) of every filter that kept it.
 */
export function firstLayerFilters(model: SparseModel): FilterTap[] {
  const layer = firstWeightLayer(model);
  if (layer.kind !== 'conv2d' || layer.shape[2] !== 1) {
    throw new VdspecError(
      'invalid_argument',
      'the filter picture needs a conv2d first layer on a one-channel image',
      'model',
    );
  }
  const [kh, kw, , filters] = layer.shape;
  const taps: FilterTap[] = [];
  for (let p = 0; p < kh; p++) {
    for (let q = 0; q < kw; q++) {
      const row = p * kw + q;
      const kept = new Map<number, number>();
      for (let k = layer.rowPointers[row]!; k < layer.rowPointers[row + 1]!; k++) {
        kept.set(layer.columns[k]!, layer.values[k]!);
      }
      for (let f = 0; f < filters; f++) {
        taps.push({ filter: f, row: p, col: q, value: kept.get(f) ?? null });
      }
    }
  }
  return taps.sort((a, b) => a.filter - b.filter || a.row - b.row || a.col - b.col);
}

export function pixelMapSpec(cells: readonly PixelCell[], title: string): TopLevelSpec {
  const pixels = cells.length;
  const used = cells.filter((c) => c.kept > 0).length;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: `input pixels that keep any weight: ${used} of ${pixels} (white: every weight of the pixel pruned)`,
    },
    width: 336,
    height: 336,
    data: { values: cells.map((c) => ({ ...c })) },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'col', type: 'ordinal', axis: null },
      y: { field: 'row', type: 'ordinal', axis: null },
      color: {
        condition: { test: 'datum.kept === 0', value: '#ffffff' },
        field: 'kept',
        type: 'quantitative',
        title: 'kept weights',
        scale: { scheme: 'blues', domainMin: 0 },
      },
      tooltip: [
        { field: 'row', type: 'ordinal' },
        { field: 'col', type: 'ordinal' },
        { field: 'kept', type: 'quantitative' },
      ],
    },
  } as TopLevelSpec;
}

export function filtersSpec(taps: readonly FilterTap[], title: string): TopLevelSpec {
  const kept = taps.filter((t) => t.value !== null).length;
  const extent = Math.max(1e-12, ...taps.map((t) => Math.abs(t.value ?? 0)));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: `first-layer filters: ${kept} of ${taps.length} taps kept (pruned taps grey, marked x)`,
    },
    data: {
      values: taps.map((t) => ({ ...t, pruned: t.value === null, shown: t.value ?? 0 })),
    },
    facet: { field: 'filter', type: 'ordinal', title: null, header: { labelFontSize: 9 } },
    columns: 10,
    spec: {
      width: 60,
      height: 60,
      layer: [
        {
          mark: { type: 'rect' },
          encoding: {
            x: { field: 'col', type: 'ordinal', axis: null },
            y: { field: 'row', type: 'ordinal', axis: null },
            color: {
              condition: { test: 'datum.pruned', value: '#d9d9d9' },
              field: 'shown',
              type: 'quantitative',
              title: 'theta',
              scale: { scheme: 'redblue', domain: [-extent, extent], reverse: true },
            },
          },
        },
        {
          transform: [{ filter: 'datum.pruned' }],
          mark: { type: 'text', text: 'x', fontSize: 9, color: '#737373' },
          encoding: {
            x: { field: 'col', type: 'ordinal' },
            y: { field: 'row', type: 'ordinal' },
          },
        },
      ],
    },
  } as TopLevelSpec;
}

/** The picture of a sparse model's first layer, or none when it is neither kind. */
export function sparsityPictureSpecs(model: SparseModel, title: string): PlotSpec[] {
  const layer = firstWeightLayer(model);
  if (
    layer.kind === 'dense' &&
    model.inputShape.length === 1 &&
    squareSide(layer.shape[0]) !== null
  ) {
    return [{ name: 'pixels', spec: pixelMapSpec(inputPixelMap(model), title) }];
  }
  if (layer.kind === 'conv2d' && layer.shape[2] === 1) {
    return [{ name: 'filters', spec: filtersSpec(firstLayerFilters(model), title) }];
  }
  return [];
}

/** Read runDir/model.sparse.json and write its pictures into runDir/plots; returns the paths. */
export async function writeSparsityPictures(runDir: string, title: string): Promise<string[]> {
  const model = readSparseModel(join(runDir, SPARSE_MODEL_FILE));
  return writePlotFiles(sparsityPictureSpecs(model, title), join(runDir, PLOTS_DIR));
}
