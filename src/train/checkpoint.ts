/**
 * Training checkpoints (spec/train.md#checkpoints): one file holding a JSON
 * header (the run's record so far) and the model state as raw float32, so
 * that a run stopped at any point resumes from its last finished epoch and
 * continues exactly as if it had never stopped.
 *
 * Layout: the 8 ASCII bytes `VDSPECK2`, the header's byte length as a
 * uint32 little-endian, the header (UTF-8 JSON), zero padding to a multiple
 * of 4 bytes, every tensor's float32 values little-endian, in the header's
 * order, then the SHA-256 of every byte before it (32 bytes), so that a
 * flipped bit anywhere is refused instead of resumed. A `VDSPECK1` file
 * (written before the checksum existed) has the same layout without the
 * digest and is read unchecked. The file is written to a temporary name and
 * renamed, so a reader sees the previous checkpoint or the new one, never a mix.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { schemaViolation } from '../schema.js';
import { VdspecError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { sizeOf } from '../tensor.js';
import type { FastModelState, FastStateTensor } from '../fast/model-types.js';

export const CHECKPOINT_MAGIC = 'VDSPECK2';
/** The layout before the checksum: read, but nothing to verify it with. */
export const CHECKPOINT_MAGIC_UNCHECKED = 'VDSPECK1';
const DIGEST_BYTES = 32;

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

export interface CheckpointTensorEntry {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface Checkpoint<Header> {
  readonly header: Header;
  readonly state: FastModelState;
}

interface StoredHeader<Header> {
  readonly record: Header;
  readonly step: number;
  readonly tensors: readonly CheckpointTensorEntry[];
}

/** Write `header` and the model state to `path` atomically. */
export function writeCheckpoint<Header>(path: string, header: Header, state: FastModelState): void {
  const stored: StoredHeader<Header> = {
    record: header,
    step: state.step,
    tensors: state.tensors.map((t) => ({ name: t.name, shape: [...t.shape] })),
  };
  const headerBytes = Buffer.from(JSON.stringify(stored), 'utf8');
  const prefix = 8 + 4 + headerBytes.length;
  const padding = (4 - (prefix % 4)) % 4;
  const head = Buffer.alloc(prefix + padding);
  head.write(CHECKPOINT_MAGIC, 0, 'ascii');
  head.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(head, 12);

  const data = state.tensors.map(
    // Float32Array's bytes are the platform's order; every supported platform is little-endian.
    (t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  );
  const body = Buffer.concat([head, ...data]);
  try {
    writeFileAtomic(path, Buffer.concat([body, sha256(body)]));
  } catch (error) {
    throw new VdspecError(
      'io_error',
      `cannot write the checkpoint ${path}: ${(error as Error).message}`,
      'checkpoint',
    );
  }
}

function corrupt(path: string, why: string): VdspecError {
  return new VdspecError(
    'invalid_checkpoint',
    `${path} is not a usable vdspec checkpoint: ${why}`,
    'checkpoint',
  );
}

/**
 * Read a checkpoint written by writeCheckpoint. `checkHeader` validates the
 * record (it throws a VdspecError for a bad one). Errors name the file and
 * what is wrong with it.
 */
export function readCheckpoint<Header>(
  path: string,
  checkHeader: (record: unknown) => Header,
): Checkpoint<Header> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new VdspecError(
      'io_error',
      `cannot read the checkpoint ${path}: ${(error as Error).message}`,
      'checkpoint',
    );
  }
  const magic = bytes.length < 12 ? '' : bytes.toString('ascii', 0, 8);
  if (magic !== CHECKPOINT_MAGIC && magic !== CHECKPOINT_MAGIC_UNCHECKED) {
    throw corrupt(path, `it does not start with ${CHECKPOINT_MAGIC}`);
  }
  // Where the tensors end: before the digest, or at the end of an unchecked file.
  const end = bytes.length - (magic === CHECKPOINT_MAGIC ? DIGEST_BYTES : 0);
  const headerLength = bytes.readUInt32LE(8);
  if (12 + headerLength > end) throw corrupt(path, 'the header is cut short');
  let stored: StoredHeader<unknown>;
  try {
    stored = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as StoredHeader<unknown>;
  } catch {
    throw corrupt(path, 'the header is not JSON');
  }
  const problem = schemaViolation('checkpoint-header', stored);
  if (problem !== null) throw corrupt(path, `its header: ${problem.path}: ${problem.problem}`);
  let offset = 12 + headerLength;
  offset += (4 - (offset % 4)) % 4;
  const tensors: FastStateTensor[] = [];
  for (const entry of stored.tensors) {
    const length = sizeOf(entry.shape);
    if (offset + 4 * length > end) {
      throw corrupt(path, `the data ends inside tensor ${entry.name} (the file is truncated)`);
    }
    // Copy into an aligned buffer of its own: Buffer's pool may not be 4-byte aligned.
    const data = new Float32Array(length);
    new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + 4 * length));
    tensors.push({ name: entry.name, shape: [...entry.shape], data });
    offset += 4 * length;
  }
  if (offset !== end) {
    throw corrupt(path, `${end - offset} bytes follow the last tensor`);
  }
  // After the structural checks, so that a truncated file is called truncated.
  if (magic === CHECKPOINT_MAGIC && !sha256(bytes.subarray(0, end)).equals(bytes.subarray(end))) {
    throw corrupt(path, 'its SHA-256 does not match its content (the file is damaged)');
  }
  return { header: checkHeader(stored.record), state: { step: stored.step, tensors } };
}
