/**
 * The plain, JSON-able tensor every public function takes and returns:
 * a shape and its values in row-major (C) order. A scalar has shape [].
 *
 * Only the container and its input checks live here; no arithmetic, so the
 * reference and the fast implementation share no computation through it.
 */
import { VdspecError } from './errors.js';

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: readonly number[];
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data: readonly number[]): Tensor {
  return { shape: [...shape], data: [...data] };
}

export function scalar(value: number): Tensor {
  return { shape: [], data: [value] };
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export interface TensorCheck {
  /** Required rank (number of dimensions). */
  rank?: number;
  /** Required shape; `null` entries match any size. */
  shape?: readonly (number | null)[];
  /**
   * What non-finite values are allowed. Default: none (NaN and +-Infinity are
   * rejected). `'infinity'` allows +-Infinity but still rejects NaN.
   */
  allow?: 'none' | 'infinity';
}

/**
 * Check that `value` is a well-formed tensor and return it. Every failure is
 * a VdspecError naming `name`.
 */
export function checkTensor(name: string, value: unknown, check: TensorCheck = {}): Tensor {
  if (typeof value !== 'object' || value === null) {
    throw new VdspecError('invalid_argument', 'expected a tensor {shape, data}', name);
  }
  const { shape, data } = value as { shape?: unknown; data?: unknown };
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)
  ) {
    throw new VdspecError(
      'invalid_argument',
      'shape must be an array of non-negative integers',
      name,
    );
  }
  if (!Array.isArray(data) && !ArrayBuffer.isView(data)) {
    throw new VdspecError('invalid_argument', 'data must be an array of numbers', name);
  }
  const values = Array.from(data as ArrayLike<unknown>);
  const expected = sizeOf(shape as number[]);
  if (values.length !== expected) {
    throw new VdspecError(
      'shape_mismatch',
      `shape ${shapeToString(shape as number[])} needs ${expected} values, got ${values.length}`,
      name,
    );
  }
  if (check.rank !== undefined && shape.length !== check.rank) {
    throw new VdspecError(
      'shape_mismatch',
      `expected rank ${check.rank}, got shape ${shapeToString(shape as number[])}`,
      name,
    );
  }
  if (check.shape !== undefined) {
    const want = check.shape;
    const ok = want.length === shape.length && want.every((d, i) => d === null || d === shape[i]);
    if (!ok) {
      const wanted = `[${want.map((d) => (d === null ? '*' : String(d))).join(', ')}]`;
      throw new VdspecError(
        'shape_mismatch',
        `expected shape ${wanted}, got ${shapeToString(shape as number[])}`,
        name,
      );
    }
  }
  const allow = check.allow ?? 'none';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number') {
      throw new VdspecError('invalid_argument', `element ${i} is not a number`, name);
    }
    if (Number.isNaN(v)) {
      throw new VdspecError('non_finite', `element ${i} is NaN`, name);
    }
    if (allow === 'none' && !Number.isFinite(v)) {
      throw new VdspecError('non_finite', `element ${i} is ${v}`, name);
    }
  }
  return { shape: [...(shape as number[])], data: values as number[] };
}

/** Check a plain number argument. */
export function checkNumber(
  name: string,
  value: unknown,
  opts: { integer?: boolean; min?: number; max?: number; allowInfinity?: boolean } = {},
): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new VdspecError('invalid_argument', `expected a number, got ${String(value)}`, name);
  }
  if (!opts.allowInfinity && !Number.isFinite(value)) {
    throw new VdspecError('non_finite', `expected a finite number, got ${value}`, name);
  }
  if (opts.integer && !Number.isInteger(value)) {
    throw new VdspecError('invalid_argument', `expected an integer, got ${value}`, name);
  }
  if (opts.min !== undefined && value < opts.min) {
    throw new VdspecError('invalid_argument', `must be >= ${opts.min}, got ${value}`, name);
  }
  if (opts.max !== undefined && value > opts.max) {
    throw new VdspecError('invalid_argument', `must be <= ${opts.max}, got ${value}`, name);
  }
  return value;
}

/**
 * Check a classification batch: logits [batch >= 1, classes >= 1] and one
 * integer class index in [0, classes) per row.
 */
export function checkClassification(
  logitsIn: unknown,
  labelsIn: unknown,
): { logits: Tensor; labels: number[]; batch: number; classes: number } {
  const logits = checkTensor('logits', logitsIn, { rank: 2 });
  const [batch, classes] = logits.shape as [number, number];
  if (batch < 1 || classes < 1) {
    throw new VdspecError(
      'shape_mismatch',
      `expected [batch >= 1, classes >= 1], got [${batch}, ${classes}]`,
      'logits',
    );
  }
  if (!Array.isArray(labelsIn)) {
    throw new VdspecError('invalid_argument', 'expected an array of class indices', 'labels');
  }
  if (labelsIn.length !== batch) {
    throw new VdspecError(
      'shape_mismatch',
      `expected ${batch} labels (logits' batch), got ${labelsIn.length}`,
      'labels',
    );
  }
  const labels = labelsIn.map((label: unknown, b) => {
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= classes) {
      throw new VdspecError(
        'invalid_argument',
        `label ${b} must be an integer class index in [0, ${classes - 1}], got ${String(label)}`,
        'labels',
      );
    }
    return label;
  });
  return { logits, labels, batch, classes };
}
