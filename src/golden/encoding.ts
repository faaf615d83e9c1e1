/**
 * The number encoding of golden files, results files and the port protocol
 * (spec/golden.md#number-encoding), and the deterministic JSON writer of the
 * golden files.
 *
 * Finite float64 values are JSON numbers in JavaScript's shortest round-trip
 * form, which every correctly rounding parser (JS, Python's json, serde)
 * reads back bit-identical. JSON has no NaN, infinities or negative zero
 * (JSON.stringify(-0) is "0"), so those four are strings.
 */
import { VdspecError } from '../errors.js';
import { sizeOf, type Tensor } from '../tensor.js';

export const SPECIAL_NUMBERS = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  '-0': -0,
} as const;

export type SpecialNumber = keyof typeof SPECIAL_NUMBERS;
export type EncodedNumber = number | SpecialNumber;

export interface EncodedTensor {
  readonly shape: readonly number[];
  readonly data: readonly EncodedNumber[];
}

/** A float64 as it is written: a finite number other than -0 as itself, the rest as a string. */
export function encodeNumber(value: number): EncodedNumber {
  if (typeof value !== 'number') {
    throw new VdspecError('invalid_argument', `expected a number, got ${typeof value}`, 'value');
  }
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return 'Infinity';
  if (value === Number.NEGATIVE_INFINITY) return '-Infinity';
  if (Object.is(value, -0)) return '-0';
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

/**
 * Read one encoded float64. `at` names the place in the file for the error:
 * anything but a JSON number or one of the four strings is rejected.
 */
export function decodeNumber(value: unknown, at = 'value'): number {
  if (typeof value === 'number') {
    // JSON.parse never yields these; a caller handing in live numbers might.
    // A JSON -0 (what Python's json writes for -0.0) parses to -0 and is accepted as such.
    if (!Number.isFinite(value)) {
      throw new VdspecError(
        'invalid_argument',
        `${String(value)} must be written as the string "${String(encodeNumber(value))}"`,
        at,
      );
    }
    return value;
  }
  if (typeof value === 'string' && Object.hasOwn(SPECIAL_NUMBERS, value)) {
    return SPECIAL_NUMBERS[value as SpecialNumber];
  }
  throw new VdspecError(
    'invalid_argument',
    `expected a number or one of "NaN", "Infinity", "-Infinity", "-0", got ${describe(value)}`,
    at,
  );
}

export function encodeTensor(t: Tensor): EncodedTensor {
  return { shape: [...t.shape], data: t.data.map(encodeNumber) };
}

/**
 * Read an encoded tensor: `shape` non-negative integers, `data` as many
 * encoded numbers as the shape holds, no other keys.
 */
export function decodeTensor(value: unknown, at = 'tensor'): Tensor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VdspecError(
      'invalid_argument',
      `expected a tensor {"shape", "data"}, got ${describe(value)}`,
      at,
    );
  }
  const extra = Object.keys(value).filter((k) => k !== 'shape' && k !== 'data');
  if (extra.length > 0) {
    throw new VdspecError('invalid_argument', `unexpected key "${extra[0]}" in a tensor`, at);
  }
  const { shape, data } = value as { shape?: unknown; data?: unknown };
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)
  ) {
    throw new VdspecError(
      'invalid_argument',
      'shape must be an array of non-negative integers',
      `${at}.shape`,
    );
  }
  if (!Array.isArray(data)) {
    throw new VdspecError('invalid_argument', 'data must be an array', `${at}.data`);
  }
  const expected = sizeOf(shape as number[]);
  if (data.length !== expected) {
    throw new VdspecError(
      'shape_mismatch',
      `shape [${shape.join(', ')}] holds ${expected} values, data has ${data.length}`,
      at,
    );
  }
  return {
    shape: [...(shape as number[])],
    data: data.map((v, i) => decodeNumber(v, `${at}.data[${i}]`)),
  };
}

// ---------------------------------------------------------------------------
// Deterministic JSON

export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

function isPrimitive(v: Json): boolean {
  return v === null || typeof v !== 'object';
}

/** A value written on one line: an array of primitives, or an object of primitives and such arrays. */
function isLeaf(v: Json): boolean {
  if (isPrimitive(v)) return true;
  if (Array.isArray(v)) return v.every(isPrimitive);
  return Object.values(v as Record<string, Json>).every(
    (x) => isPrimitive(x) || (Array.isArray(x) && x.every(isPrimitive)),
  );
}

function primitive(v: Json): string {
  if (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))) {
    throw new VdspecError(
      'invalid_argument',
      `${String(v)} cannot be written as a JSON number; encode it first`,
      'value',
    );
  }
  return JSON.stringify(v);
}

function oneLine(v: Json): string {
  if (isPrimitive(v)) return primitive(v);
  if (Array.isArray(v)) return `[${v.map(oneLine).join(', ')}]`;
  const entries = Object.entries(v as Record<string, Json>);
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}: ${oneLine(x)}`).join(', ')}}`;
}

function block(v: Json, indent: string): string {
  if (isLeaf(v)) return oneLine(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + block(x, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, Json>);
  if (entries.length === 0) return '{}';
  const lines = entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${block(x, inner)}`);
  return `{\n${lines.join(',\n')}\n${indent}}`;
}

/**
 * The bytes of a golden file: keys in insertion order, two-space indentation,
 * every array of primitives and every object of primitives (a tensor) on one
 * line, numbers in the shortest round-trip form, a trailing newline. The same
 * value always gives the same text. Non-finite numbers and -0 must have been
 * encoded first.
 */
export function stringifyGolden(value: Json): string {
  return `${block(value, '')}\n`;
}
