/**
 * A validated reader of the IDX files that hold the original MNIST
 * (spec/data.md#the-idx-format): a big-endian header (two zero bytes, a type
 * byte, the number of dimensions, then one uint32 per dimension) followed by
 * the values. MNIST uses only the unsigned-byte type, so that is the only
 * one accepted; anything else, a truncated file or trailing bytes is an
 * error that names the file.
 */
import { readFileSync } from 'node:fs';

import { VdspecError } from '../errors.js';

/** IDX type byte of unsigned bytes, the only type MNIST uses. */
export const IDX_UNSIGNED_BYTE = 0x08;

/** The magic number of an unsigned-byte IDX file of `rank` dimensions: 2049 labels, 2051 images. */
export function idxMagic(rank: number): number {
  return (IDX_UNSIGNED_BYTE << 8) | rank;
}

export interface IdxArray {
  /** The dimensions from the header, outermost first. */
  readonly shape: readonly number[];
  /** The values in row-major order (a view on the file's bytes). */
  readonly data: Uint8Array;
}

function invalid(path: string, why: string): VdspecError {
  return new VdspecError(
    'invalid_argument',
    `${path} is not a valid MNIST IDX file: ${why}`,
    'data',
  );
}

/**
 * Parse an IDX file's bytes. `expectedShape` pins every dimension that is
 * not null (e.g. `[null, 28, 28]` for images).
 */
export function parseIdx(
  bytes: Uint8Array,
  path: string,
  expectedShape: readonly (number | null)[],
): IdxArray {
  const rank = expectedShape.length;
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw invalid(path, `${bytes.length} bytes, shorter than the ${headerBytes}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== idxMagic(rank)) {
    throw invalid(
      path,
      `magic number ${magic}, expected ${idxMagic(rank)} (unsigned bytes, ${rank} dimension${rank === 1 ? '' : 's'})`,
    );
  }
  const shape: number[] = [];
  let size = 1;
  for (let d = 0; d < rank; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    const want = expectedShape[d];
    if (want !== null && want !== undefined && n !== want) {
      throw invalid(path, `dimension ${d} is ${n}, expected ${want}`);
    }
    shape.push(n);
    size *= n;
  }
  const expectedBytes = headerBytes + size;
  if (bytes.length !== expectedBytes) {
    const what = bytes.length < expectedBytes ? 'truncated' : 'trailing bytes';
    throw invalid(
      path,
      `${what}: ${bytes.length} bytes, the header [${shape.join(', ')}] needs ${expectedBytes}`,
    );
  }
  return { shape, data: bytes.subarray(headerBytes) };
}

/** Read and parse one IDX file; a missing or unreadable file is an error naming it. */
export function readIdx(path: string, expectedShape: readonly (number | null)[]): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new VdspecError('io_error', `cannot read ${path}: ${(e as Error).message}`, 'data');
  }
  return parseIdx(bytes, path, expectedShape);
}
