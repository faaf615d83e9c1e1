/**
 * The compressed export of a trained VD / Sparse VD network (spec/export.md):
 * one JSON document holding, for every dense and conv2d layer, only the kept
 * weights in CSR form, plus the parameter-free layers (relu, 2x2 max-pool,
 * flatten) in order.
 *
 * `sparseForward` evaluates such a file in float64 with plain loops over the
 * stored entries. Its summation order is the reference's (src/reference/
 * dense.ts `denseEval`, src/reference/conv2d.ts `conv2dEval`) with the pruned
 * terms left out. A pruned term is x * 0, an exact (signed) zero, and adding
 * an exact zero to a float sum changes nothing but possibly the sign of a
 * zero sum; so the logits equal the masked dense network's eval forward
 * bit for bit (a zero logit's sign aside). test/properties/export.test.ts
 * checks this claim.
 *
 * This module shares no arithmetic with the reference or the fast
 * implementation: it is a third, independent evaluation of the same network.
 */
import { readFileSync } from 'node:fs';

import { VdspecError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';
import { schemaViolation, type SchemaViolation } from '../schema.js';

/** The value of the file's `format` field. */
export const SPARSE_FORMAT = 'vdspec-sparse';
/** The only version this module reads and writes. */
export const SPARSE_FORMAT_VERSION = 1;

export type SparsePadding = 'valid' | 'same';

/** A layer of the trained network, as plain tensors (row-major data). */
export type ExportLayer =
  | {
      readonly kind: 'dense';
      /** [in, out] */
      readonly theta: Tensor;
      /** [out] */
      readonly bias: Tensor;
      /** 0/1 of theta's shape; null keeps every weight (VD). */
      readonly keep: Tensor | null;
    }
  | {
      readonly kind: 'conv2d';
      /** [kh, kw, cin, cout], HWIO */
      readonly theta: Tensor;
      /** [cout] */
      readonly bias: Tensor;
      /** 0/1 of theta's shape; null keeps every weight (VD). */
      readonly keep: Tensor | null;
      readonly stride: readonly [number, number];
      readonly padding: SparsePadding;
    }
  | { readonly kind: 'relu' }
  | { readonly kind: 'maxPool2x2' }
  | { readonly kind: 'flatten' };

export interface ExportInput {
  /** One example's shape: [features] for a dense first layer, [height, width, channels] for conv2d. */
  readonly inputShape: readonly number[];
  readonly layers: readonly ExportLayer[];
  /** Free-form JSON facts about the model (profile, seed, accuracy, ...). */
  readonly meta?: Record<string, unknown>;
}

/**
 * The kept entries of theta viewed as a [rows, cols] matrix, in CSR order:
 * row r's entries are columns[rowPointers[r] .. rowPointers[r + 1]), with
 * strictly increasing column indices, and their weights in `values`.
 */
export interface SparseCsr {
  readonly rowPointers: readonly number[];
  readonly columns: readonly number[];
  readonly values: readonly number[];
  /** Dense, one per column (output unit or channel). */
  readonly bias: readonly number[];
}

export interface SparseDenseLayer extends SparseCsr {
  readonly kind: 'dense';
  /** theta's shape [in, out]; the CSR matrix is theta itself. */
  readonly shape: readonly [number, number];
}

export interface SparseConv2dLayer extends SparseCsr {
  readonly kind: 'conv2d';
  /** theta's shape [kh, kw, cin, cout]; the CSR matrix is [kh * kw * cin, cout]. */
  readonly shape: readonly [number, number, number, number];
  readonly stride: readonly [number, number];
  readonly padding: SparsePadding;
}

export type SparseLayer =
  | SparseDenseLayer
  | SparseConv2dLayer
  | { readonly kind: 'relu' }
  | { readonly kind: 'maxPool2x2' }
  | { readonly kind: 'flatten' };

export interface SparseModel {
  readonly format: typeof SPARSE_FORMAT;
  readonly version: typeof SPARSE_FORMAT_VERSION;
  readonly inputShape: readonly number[];
  readonly layers: readonly SparseLayer[];
  readonly meta: Record<string, unknown>;
}

export interface SparseLayerStats {
  /** `dense<p>` / `conv2d<p>`, p counting dense and conv2d layers only (as FastModel names them). */
  readonly name: string;
  /** The layer's index in `layers`; -1 for the overall row. */
  readonly layer: number;
  /** Stored (kept) weights. */
  readonly kept: number;
  /** Weights of the dense layer: the product of theta's shape. */
  readonly total: number;
  /** (total - kept) / total. */
  readonly fractionPruned: number;
  /** |W| / |W != 0| = total / kept; Infinity when nothing is kept. */
  readonly compression: number;
}

export interface SparseStats {
  readonly layers: SparseLayerStats[];
  readonly overall: SparseLayerStats;
}

// ---------------------------------------------------------------------------
// Shapes through the layer sequence (step 5 of spec/export.md#validation).

/** A conv2d output axis: TensorFlow's 'valid' / 'same' rule (spec/conv2d.md#padding). */
function convAxis(
  size: number,
  kernel: number,
  stride: number,
  padding: SparsePadding,
): { output: number; padBefore: number } {
  if (padding === 'valid')
    return { output: Math.floor((size - kernel) / stride) + 1, padBefore: 0 };
  const output = Math.ceil(size / stride);
  const total = Math.max((output - 1) * stride + kernel - size, 0);
  return { output, padBefore: Math.floor(total / 2) };
}

type ShapedLayer =
  | { readonly kind: 'dense'; readonly shape: readonly number[] }
  | {
      readonly kind: 'conv2d';
      readonly shape: readonly number[];
      readonly stride: readonly [number, number];
      readonly padding: SparsePadding;
    }
  | { readonly kind: 'relu' | 'maxPool2x2' | 'flatten' };

/** One example's shape after `layer` (at JSON pointer `path`), given its shape before. */
function nextShape(shape: readonly number[], layer: ShapedLayer, path: string): number[] {
  switch (layer.kind) {
    case 'relu':
      return [...shape];
    case 'flatten':
      return [sizeOf(shape)];
    case 'maxPool2x2':
      if (shape.length !== 3 || shape[0]! < 2 || shape[1]! < 2) {
        throw new VdspecError(
          'shape_mismatch',
          `maxPool2x2 needs [height >= 2, width >= 2, channels], the previous layer gives ${shapeToString(shape)}`,
          path,
        );
      }
      return [Math.floor(shape[0]! / 2), Math.floor(shape[1]! / 2), shape[2]!];
    case 'dense': {
      const [rows, cols] = layer.shape as [number, number];
      if (shape.length !== 1 || shape[0] !== rows) {
        throw new VdspecError(
          'shape_mismatch',
          `a dense layer of shape ${shapeToString(layer.shape)} needs the input [${rows}], the previous layer gives ${shapeToString(shape)}`,
          `${path}/shape`,
        );
      }
      return [cols];
    }
    case 'conv2d': {
      const [kh, kw, cin, cout] = layer.shape as [number, number, number, number];
      if (shape.length !== 3 || shape[2] !== cin) {
        throw new VdspecError(
          'shape_mismatch',
          `a conv2d layer of shape ${shapeToString(layer.shape)} needs the input [height, width, ${cin}], the previous layer gives ${shapeToString(shape)}`,
          `${path}/shape`,
        );
      }
      const [height, width] = shape as [number, number];
      if (layer.padding === 'valid' && (height < kh || width < kw)) {
        throw new VdspecError(
          'shape_mismatch',
          `'valid' padding needs the input at least as large as the kernel: input ${height}x${width}, kernel ${kh}x${kw}`,
          `${path}/shape`,
        );
      }
      const rows = convAxis(height, kh, layer.stride[0], layer.padding);
      const cols = convAxis(width, kw, layer.stride[1], layer.padding);
      return [rows.output, cols.output, cout];
    }
  }
}

/** The output shape of the whole sequence; it must be a vector of logits and include parameters. */
function finalShape(inputShape: readonly number[], layers: readonly ShapedLayer[]): number[] {
  let shape = [...inputShape];
  layers.forEach((layer, i) => {
    shape = nextShape(shape, layer, `/layers/${i}`);
  });
  if (!layers.some((l) => l.kind === 'dense' || l.kind === 'conv2d')) {
    throw new VdspecError('invalid_argument', 'the model needs a dense or conv2d layer', '/layers');
  }
  if (shape.length !== 1) {
    throw new VdspecError(
      'shape_mismatch',
      `the last layer gives ${shapeToString(shape)}: expected a vector of logits [classes] (end with a dense layer or a flatten)`,
      '/layers',
    );
  }
  return shape;
}

/** The CSR matrix's size for theta's shape: [in, out] for dense, [kh * kw * cin, cout] for conv2d. */
function csrSize(kind: 'dense' | 'conv2d', shape: readonly number[]): [number, number] {
  if (kind === 'dense') return [shape[0]!, shape[1]!];
  return [shape[0]! * shape[1]! * shape[2]!, shape[3]!];
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : String(value);
}

/** Plain JSON only (objects, arrays, strings, finite numbers, booleans, null): meta must survive a file. */
function requireJson(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new VdspecError('non_finite', `JSON has no ${value}`, path);
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => requireJson(v, `${path}/${i}`));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, v] of Object.entries(value)) requireJson(v, `${path}/${key}`);
    return;
  }
  throw new VdspecError(
    'invalid_argument',
    `expected plain JSON data, got ${typeof value === 'object' ? 'a non-plain object' : typeof value}`,
    path,
  );
}

/** JSON writes -0 as 0: storing +0 keeps a model equal to its own file. */
function positiveZero(v: number): number {
  return v === 0 ? 0 : v;
}

// ---------------------------------------------------------------------------
// Building from a trained network.

/** theta's kept entries (keep = 1, or all when keep is null), row by row. */
function toCsr(
  theta: Tensor,
  keep: Tensor | null,
  bias: Tensor,
  rows: number,
  cols: number,
): SparseCsr {
  const rowPointers = [0];
  const columns: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * cols + c;
      if (keep !== null && keep.data[k] === 0) continue;
      columns.push(c);
      values.push(positiveZero(theta.data[k]!));
    }
    rowPointers.push(columns.length);
  }
  return { rowPointers, columns, values, bias: bias.data.map(positiveZero) };
}

/**
 * The sparse model of a trained network: each dense / conv2d layer keeps the
 * weights where `keep` is 1 (all of them when keep is null), in CSR. A kept
 * weight is stored even when its value is 0, so the stored count is the
 * number of kept weights. Only what the CSR conversion relies on is checked
 * here (theta's rank, bias and keep of its shape, keep 0 or 1, finite
 * numbers); the model built then goes through parseSparseModel, so the input
 * shape, strides, paddings, layer kinds, the layer sequence and meta are
 * held to the file format's rules. Every error names a JSON pointer into
 * `input` (`/layers/0/keep`, `/meta/accuracy`; a layer's `shape` is its
 * theta's).
 */
export function buildSparseModel(input: ExportInput): SparseModel {
  const layers = input.layers.map((layer, i): SparseLayer => {
    if (layer.kind !== 'dense' && layer.kind !== 'conv2d') return layer;
    const at = `/layers/${i}`;
    const rank = layer.kind === 'dense' ? 2 : 4;
    const theta = checkTensor(`${at}/theta`, layer.theta, { rank });
    const cols = theta.shape[rank - 1]!;
    const bias = checkTensor(`${at}/bias`, layer.bias, { shape: [cols] });
    let keep: Tensor | null = null;
    if (layer.keep !== null) {
      keep = checkTensor(`${at}/keep`, layer.keep, { shape: theta.shape });
      const bad = keep.data.findIndex((v) => v !== 0 && v !== 1);
      if (bad >= 0) {
        throw new VdspecError(
          'invalid_argument',
          `keep values must be 0 or 1, got ${keep.data[bad]} at ${bad}`,
          `${at}/keep`,
        );
      }
    }
    const csr = toCsr(theta, keep, bias, csrSize(layer.kind, theta.shape)[0], cols);
    if (layer.kind === 'dense') {
      return { kind: 'dense', shape: theta.shape as [number, number], ...csr };
    }
    const { stride, padding } = layer;
    const shape = theta.shape as [number, number, number, number];
    return { kind: 'conv2d', shape, stride, padding, ...csr };
  });
  const { inputShape, meta = {} } = input;
  return parseSparseModel({
    format: SPARSE_FORMAT,
    version: SPARSE_FORMAT_VERSION,
    inputShape,
    layers,
    meta,
  });
}

// ---------------------------------------------------------------------------
// Parsing and validating a document: spec/schemas/sparse-model.schema.json for
// the structure, then what a schema cannot say (lengths that follow from the
// shape, row pointers and columns in range and in order, the layer sequence).

/** A schema violation as a VdspecError: null, NaN or an infinity where a number belongs is non_finite. */
function schemaError(v: SchemaViolation): VdspecError {
  const nonFinite =
    v.keyword === 'type' &&
    (v.data === null || (typeof v.data === 'number' && !Number.isFinite(v.data)));
  const rank = /^(minItems|maxItems)$/.test(v.keyword) && /\/(shape|stride)$/.test(v.path);
  const problem =
    nonFinite && v.data === null ? `${v.problem} (JSON's null for NaN and infinities)` : v.problem;
  return new VdspecError(
    nonFinite ? 'non_finite' : rank ? 'shape_mismatch' : 'invalid_argument',
    problem,
    v.path,
  );
}

/** The CSR arrays' lengths, row pointers and columns against the matrix [rows, cols]. */
function checkCsr(layer: SparseCsr, rows: number, cols: number, path: string): void {
  const { rowPointers, columns, values, bias } = layer;
  const stored = columns.length;
  const fail = (code: 'shape_mismatch' | 'invalid_argument', message: string, at: string) => {
    throw new VdspecError(code, message, `${path}/${at}`);
  };
  if (rowPointers.length !== rows + 1) {
    fail(
      'shape_mismatch',
      `expected rows + 1 = ${rows + 1} row pointers for a [${rows}, ${cols}] matrix, got ${rowPointers.length}`,
      'rowPointers',
    );
  }
  if (values.length !== stored) {
    fail(
      'shape_mismatch',
      `expected one value per stored column index (${stored}), got ${values.length}`,
      'values',
    );
  }
  if (bias.length !== cols) {
    fail('shape_mismatch', `expected ${cols} biases (one per column), got ${bias.length}`, 'bias');
  }
  rowPointers.forEach((p, r) => {
    if (p > stored) {
      fail(
        'invalid_argument',
        `expected an integer in [0, ${stored}], got ${p}`,
        `rowPointers/${r}`,
      );
    }
    if (r === 0 && p !== 0) {
      fail('invalid_argument', `the first row pointer must be 0, got ${p}`, 'rowPointers/0');
    }
    if (r > 0 && p < rowPointers[r - 1]!) {
      fail(
        'invalid_argument',
        `row pointers must not decrease: ${p} after ${rowPointers[r - 1]}`,
        `rowPointers/${r}`,
      );
    }
  });
  if (rowPointers[rows] !== stored) {
    fail(
      'shape_mismatch',
      `the last row pointer must equal the number of stored entries (${stored}), got ${rowPointers[rows]}`,
      `rowPointers/${rows}`,
    );
  }
  for (let r = 0; r < rows; r++) {
    for (let e = rowPointers[r]!; e < rowPointers[r + 1]!; e++) {
      if (columns[e]! >= cols) {
        fail(
          'invalid_argument',
          `expected an integer in [0, ${cols - 1}], got ${columns[e]}`,
          `columns/${e}`,
        );
      }
      if (e > rowPointers[r]! && columns[e]! <= columns[e - 1]!) {
        fail(
          'invalid_argument',
          `column indices must increase strictly within row ${r}: ${columns[e]} after ${columns[e - 1]}`,
          `columns/${e}`,
        );
      }
    }
  }
}

/**
 * Validate a parsed JSON document (or an in-memory model) and return a fresh
 * SparseModel. Every problem is a VdspecError whose argument is the JSON
 * pointer of the offending field (`/layers/2/rowPointers/5`; `/`: the document).
 */
export function parseSparseModel(json: unknown): SparseModel {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new VdspecError('invalid_argument', `expected a JSON object, got ${describe(json)}`, '/');
  }
  const root = json as Record<string, unknown>;
  // Format and version first: a file of another format or version is named as such, not by
  // whichever of its fields this version does not know.
  if (root['format'] !== SPARSE_FORMAT) {
    throw new VdspecError(
      'invalid_argument',
      `expected ${JSON.stringify(SPARSE_FORMAT)}, got ${describe(root['format'])}: not a vdspec sparse model`,
      '/format',
    );
  }
  if (root['version'] === undefined) {
    throw new VdspecError('invalid_argument', 'missing field', '/version');
  }
  if (root['version'] !== SPARSE_FORMAT_VERSION) {
    throw new VdspecError(
      'unsupported',
      `version ${describe(root['version'])} is not supported (this reader knows version ${SPARSE_FORMAT_VERSION})`,
      '/version',
    );
  }
  const violation = schemaViolation('sparse-model', json);
  if (violation !== null) throw schemaError(violation);
  const model = json as SparseModel;
  model.layers.forEach((layer, i) => {
    if (layer.kind === 'dense' || layer.kind === 'conv2d') {
      const [rows, cols] = csrSize(layer.kind, layer.shape);
      checkCsr(layer, rows, cols, `/layers/${i}`);
    }
  });
  finalShape(model.inputShape, model.layers);
  requireJson(model.meta, '/meta');
  // A deep copy through JSON: the model owns its data and equals what a file gives back.
  return JSON.parse(JSON.stringify({ ...model, meta: model.meta ?? {} })) as SparseModel;
}

// ---------------------------------------------------------------------------
// Files.

function systemMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Write the model as one JSON document, atomically: validated first, written
 * to a temporary file in the same directory, flushed, then renamed over
 * `path`. On any failure `path` is untouched and the temporary file removed.
 */
export function writeSparseModel(model: SparseModel, path: string): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw new VdspecError('invalid_argument', 'expected a file path', 'path');
  }
  const text = `${JSON.stringify(parseSparseModel(model))}\n`;
  try {
    writeFileAtomic(path, text);
  } catch (error) {
    throw new VdspecError(
      'invalid_argument',
      `cannot write ${path}: ${systemMessage(error)}`,
      'path',
    );
  }
}

/** Read and validate a sparse model file; every problem names the file and the JSON path. */
export function readSparseModel(path: string): SparseModel {
  if (typeof path !== 'string' || path.length === 0) {
    throw new VdspecError('invalid_argument', 'expected a file path', 'path');
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new VdspecError(
      'invalid_argument',
      `cannot read ${path}: ${systemMessage(error)}`,
      'path',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const e = new VdspecError('invalid_argument', 'not JSON', '/');
    e.message = `${path}: not JSON: ${systemMessage(error)}`;
    throw e;
  }
  try {
    return parseSparseModel(json);
  } catch (error) {
    if (!(error instanceof VdspecError)) throw error;
    // `<file>: <JSON pointer>: <problem>`, the argument still the pointer.
    error.message = `${path}: ${error.message}`;
    throw error;
  }
}

// ---------------------------------------------------------------------------
// The forward pass. Activations are Float64Array [batch, ...shape], NHWC.

interface Activation {
  readonly batch: number;
  /** One example's shape. */
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/**
 * x @ theta_kept + b. The reference (mathjs) forms each output as
 * ((p_0 + p_1) + p_2) + ... over the input index k, p_k = x_k * theta_kj,
 * then adds b. Here the input rows are walked in the same increasing k and
 * each kept entry adds into its column's accumulator, so every column sees
 * its kept terms in the reference's order. The accumulator starts at -0,
 * IEEE's additive identity, so the first kept term enters exactly as the
 * reference's first term does. An input x_k = 0 only contributes zeros and
 * is skipped.
 */
function denseForward(h: Activation, layer: SparseDenseLayer): Activation {
  const [rows, cols] = layer.shape;
  const { rowPointers, columns, values, bias } = layer;
  const out = new Float64Array(h.batch * cols);
  const sums = new Float64Array(cols);
  for (let b = 0; b < h.batch; b++) {
    sums.fill(-0);
    const base = b * rows;
    for (let k = 0; k < rows; k++) {
      const xk = h.data[base + k]!;
      if (xk === 0) continue;
      for (let e = rowPointers[k]!; e < rowPointers[k + 1]!; e++) {
        sums[columns[e]!]! += xk * values[e]!;
      }
    }
    for (let j = 0; j < cols; j++) out[b * cols + j] = sums[j]! + bias[j]!;
  }
  return { batch: h.batch, shape: [cols], data: out };
}

/**
 * conv(x, theta_kept) + b. The reference sums, per output pixel and channel,
 * from +0 over the taps in the order kernel row p, kernel column q, input
 * channel c (skipping taps in the zero padding), then adds b. That order is
 * the CSR row order k = (p * kw + q) * cin + c, so walking the rows in order
 * and adding each kept entry into its output channel's accumulator repeats
 * it with the pruned (zero) terms left out. From +0 a float sum never
 * reaches -0, so here even the sign of a zero output matches.
 */
function convForward(h: Activation, layer: SparseConv2dLayer): Activation {
  const [kh, kw, cin, cout] = layer.shape;
  const [height, width] = h.shape as [number, number, number];
  const [strideHeight, strideWidth] = layer.stride;
  const rowAxis = convAxis(height, kh, strideHeight, layer.padding);
  const colAxis = convAxis(width, kw, strideWidth, layer.padding);
  const outHeight = rowAxis.output;
  const outWidth = colAxis.output;
  const { rowPointers, columns, values, bias } = layer;
  const out = new Float64Array(h.batch * outHeight * outWidth * cout);
  const sums = new Float64Array(cout);
  for (let b = 0; b < h.batch; b++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++) {
        sums.fill(0);
        for (let p = 0; p < kh; p++) {
          const row = i * strideHeight + p - rowAxis.padBefore;
          if (row < 0 || row >= height) continue;
          for (let q = 0; q < kw; q++) {
            const col = j * strideWidth + q - colAxis.padBefore;
            if (col < 0 || col >= width) continue;
            const pixel = ((b * height + row) * width + col) * cin;
            const tap = (p * kw + q) * cin;
            for (let c = 0; c < cin; c++) {
              const xv = h.data[pixel + c]!;
              if (xv === 0) continue;
              const k = tap + c;
              for (let e = rowPointers[k]!; e < rowPointers[k + 1]!; e++) {
                sums[columns[e]!]! += xv * values[e]!;
              }
            }
          }
        }
        const base = ((b * outHeight + i) * outWidth + j) * cout;
        for (let o = 0; o < cout; o++) out[base + o] = sums[o]! + bias[o]!;
      }
    }
  }
  return { batch: h.batch, shape: [outHeight, outWidth, cout], data: out };
}

/** max(v, 0), with +0 for every non-positive input. */
function reluForward(h: Activation): Activation {
  return { ...h, data: h.data.map((v) => (v > 0 ? v : 0)) };
}

/** 2x2 windows, stride 2, 'valid' (an odd last row or column is dropped), NHWC. */
function maxPoolForward(h: Activation): Activation {
  const [height, width, channels] = h.shape as [number, number, number];
  const outHeight = Math.floor(height / 2);
  const outWidth = Math.floor(width / 2);
  const out = new Float64Array(h.batch * outHeight * outWidth * channels);
  const at = (b: number, r: number, c: number, ch: number) =>
    h.data[((b * height + r) * width + c) * channels + ch]!;
  let n = 0;
  for (let b = 0; b < h.batch; b++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++) {
        for (let ch = 0; ch < channels; ch++) {
          const r = 2 * i;
          const c = 2 * j;
          out[n++] = Math.max(
            at(b, r, c, ch),
            at(b, r, c + 1, ch),
            at(b, r + 1, c, ch),
            at(b, r + 1, c + 1, ch),
          );
        }
      }
    }
  }
  return { batch: h.batch, shape: [outHeight, outWidth, channels], data: out };
}

/**
 * The float64 logits [batch, classes] of the sparse model on x
 * [batch, ...inputShape]: bitwise the reference's eval forward of the
 * masked dense network (spec/export.md#the-forward), the sign of a zero
 * logit aside.
 */
export function sparseForward(modelIn: SparseModel, x: Tensor): Tensor {
  const model = parseSparseModel(modelIn);
  const xs = checkTensor('x', x, { rank: model.inputShape.length + 1 });
  if (!model.inputShape.every((d, i) => xs.shape[i + 1] === d)) {
    throw new VdspecError(
      'shape_mismatch',
      `expected [batch, ${model.inputShape.join(', ')}], got ${shapeToString(xs.shape)}`,
      'x',
    );
  }
  let h: Activation = {
    batch: xs.shape[0]!,
    shape: model.inputShape,
    data: Float64Array.from(xs.data),
  };
  model.layers.forEach((layer, i) => {
    switch (layer.kind) {
      case 'relu':
        h = reluForward(h);
        return;
      case 'flatten':
        h = { ...h, shape: [sizeOf(h.shape)] };
        return;
      case 'maxPool2x2':
        h = maxPoolForward(h);
        return;
      case 'dense':
        h = denseForward(h, layer);
        break;
      case 'conv2d':
        h = convForward(h, layer);
        break;
    }
    const bad = h.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new VdspecError(
        'non_finite',
        `the output of layer ${i} is ${h.data[bad]} (example ${Math.floor(bad / sizeOf(h.shape))}): the inputs are too large for float64`,
        'x',
      );
    }
  });
  return { shape: [h.batch, ...h.shape], data: Array.from(h.data) };
}

// ---------------------------------------------------------------------------
// Statistics.

function statsRow(name: string, layer: number, kept: number, total: number): SparseLayerStats {
  return {
    name,
    layer,
    kept,
    total,
    fractionPruned: total === 0 ? 0 : (total - kept) / total,
    compression: kept === 0 ? Infinity : total / kept,
  };
}

/**
 * Kept and total weights per dense / conv2d layer and overall, counted from
 * the file alone: kept = the number of stored values, total = the product of
 * theta's shape, compression = |W| / |W != 0| = total / kept
 * (spec/log-alpha.md#sparsity; the overall row sums kept and total first).
 */
export function sparseStats(modelIn: SparseModel): SparseStats {
  const model = parseSparseModel(modelIn);
  const layers: SparseLayerStats[] = [];
  model.layers.forEach((layer, i) => {
    if (layer.kind !== 'dense' && layer.kind !== 'conv2d') return;
    const name = `${layer.kind}${layers.length}`;
    layers.push(statsRow(name, i, layer.values.length, sizeOf(layer.shape)));
  });
  const kept = layers.reduce((a, l) => a + l.kept, 0);
  const total = layers.reduce((a, l) => a + l.total, 0);
  return { layers, overall: statsRow('overall', -1, kept, total) };
}
