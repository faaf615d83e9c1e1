/**
 * Comparing a port's outputs with the golden outputs (spec/check.md#tolerance).
 *
 * An element `a` passes against the expected `e` when
 * `|a - e| <= abs + rel * |e| + scaled * s` (s: the case's `scale` for that
 * output, 0 where there is none). A non-finite expected value must be matched
 * exactly (NaN by NaN, +inf by +inf); a non-finite answer where a finite one
 * is expected fails. Each output is summarised by its worst error as a
 * fraction of the allowed error (`ratio`, <= 1 passes) and its largest
 * absolute error (`maxAbsError`, infinite for a non-finite mismatch).
 */
import type { Tensor } from '../tensor.js';
import { isVdspecError } from '../errors.js';
import { decodeTensor } from '../golden/encoding.js';
import type { Tolerance } from './golden.js';

export interface ElementMismatch {
  /** Flat row-major index. */
  readonly index: number;
  /** The same index per axis. */
  readonly position: readonly number[];
  readonly expected: number;
  readonly actual: number;
  readonly error: number;
  readonly allowed: number;
}

export interface OutputComparison {
  readonly name: string;
  readonly ok: boolean;
  /** A structural problem (missing output, malformed tensor, wrong shape), or null. */
  readonly problem: string | null;
  /** max over elements of error / allowed (0 when equal, Infinity for a non-finite mismatch). */
  readonly ratio: number;
  /** Largest |a - e| over the elements; Infinity when a non-finite value mismatches. */
  readonly maxAbsError: number;
  readonly mismatches: number;
  readonly size: number;
  readonly firstMismatch: ElementMismatch | null;
}

export interface CaseComparison {
  readonly ok: boolean;
  readonly ratio: number;
  readonly maxAbsError: number;
  readonly outputs: readonly OutputComparison[];
}

export function positionOf(index: number, shape: readonly number[]): number[] {
  const position = new Array<number>(shape.length).fill(0);
  let rest = index;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const d = shape[axis]!;
    position[axis] = d === 0 ? 0 : rest % d;
    rest = d === 0 ? 0 : Math.floor(rest / d);
  }
  return position;
}

function elementRatio(error: number, allowed: number): number {
  if (error === 0) return 0;
  return allowed === 0 ? Infinity : error / allowed;
}

function structural(name: string, problem: string): OutputComparison {
  return {
    name,
    ok: false,
    problem,
    ratio: Infinity,
    maxAbsError: Infinity,
    mismatches: 0,
    size: 0,
    firstMismatch: null,
  };
}

export function compareTensor(
  name: string,
  expected: Tensor,
  actual: Tensor,
  tolerance: Tolerance,
  scale: Tensor | undefined,
): OutputComparison {
  if (
    actual.shape.join() !== expected.shape.join() ||
    actual.shape.length !== expected.shape.length
  ) {
    return structural(
      name,
      `shape [${actual.shape.join(', ')}], expected [${expected.shape.join(', ')}]`,
    );
  }
  let ratio = 0;
  let maxAbsError = 0;
  let mismatches = 0;
  let firstMismatch: ElementMismatch | null = null;
  for (let i = 0; i < expected.data.length; i++) {
    const e = expected.data[i]!;
    const a = actual.data[i]!;
    let pass: boolean;
    let error: number;
    let allowed: number;
    if (!Number.isFinite(e)) {
      pass = Number.isNaN(e) ? Number.isNaN(a) : a === e;
      error = pass ? 0 : Infinity;
      allowed = 0;
    } else {
      allowed =
        tolerance.abs + tolerance.rel * Math.abs(e) + tolerance.scaled * (scale?.data[i] ?? 0);
      error = Math.abs(a - e);
      pass = Number.isFinite(a) && error <= allowed;
      if (!Number.isFinite(a)) error = Infinity;
    }
    // Every element counts, a non-finite mismatch as inf: a NaN answer must not read as a small error.
    maxAbsError = Math.max(maxAbsError, error);
    ratio = Math.max(ratio, elementRatio(error, allowed));
    if (!pass) {
      mismatches++;
      if (firstMismatch === null) {
        firstMismatch = {
          index: i,
          position: positionOf(i, expected.shape),
          expected: e,
          actual: a,
          error,
          allowed,
        };
      }
    }
  }
  return {
    name,
    ok: mismatches === 0,
    problem: null,
    ratio,
    maxAbsError,
    mismatches,
    size: expected.data.length,
    firstMismatch,
  };
}

/**
 * Compare a port's `outputs` object, in the golden encoding (non-finite
 * numbers and -0 as strings), with the expected tensors. Outputs the port
 * adds beyond the expected ones are ignored.
 */
export function compareOutputs(
  expected: Readonly<Record<string, Tensor>>,
  scale: Readonly<Record<string, Tensor>>,
  actualOutputs: unknown,
  tolerance: Tolerance,
): CaseComparison {
  const given =
    typeof actualOutputs === 'object' && actualOutputs !== null && !Array.isArray(actualOutputs)
      ? (actualOutputs as Record<string, unknown>)
      : null;
  const outputs = Object.entries(expected).map(([name, e]) => {
    if (given === null) return structural(name, 'the answer has no outputs object');
    if (!Object.hasOwn(given, name)) {
      // A misspelt key ("KL" for "kl") is the usual cause: show what the port did send.
      const sent = Object.keys(given).filter((k) => !Object.hasOwn(expected, k));
      return structural(
        name,
        sent.length === 0
          ? 'missing from the answer'
          : `missing from the answer (it has ${sent.map((k) => JSON.stringify(k)).join(', ')}, which the op does not output)`,
      );
    }
    let actual: Tensor;
    try {
      actual = decodeTensor(given[name], name);
    } catch (err) {
      if (isVdspecError(err)) return structural(name, `malformed: ${err.message}`);
      throw err;
    }
    return compareTensor(name, e, actual, tolerance, scale[name]);
  });
  return {
    ok: outputs.every((o) => o.ok),
    ratio: Math.max(0, ...outputs.map((o) => o.ratio)),
    maxAbsError: Math.max(0, ...outputs.map((o) => o.maxAbsError)),
    outputs,
  };
}
