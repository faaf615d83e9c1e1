/**
 * The pieces of `vdspec train` on their own (spec/train.md): the recipe
 * scales the official schedules to the epochs asked for, the progress line,
 * and the checkpoint file (round trip, its bytes built here by hand from the
 * layout, the digest, the older format, and every damaged file refused with
 * the file named). A second; train.test.ts runs the command, trainer.test.ts
 * the trainer. The mutation runs of recipe.ts and checkpoint.ts use it
 * (spec/mutation.md).
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  KL_WARMUP_END_EPOCH,
  KL_WARMUP_START_EPOCH,
  RECIPE_BATCH_SIZE,
  RECIPE_EPOCHS,
  RECIPE_LEARNING_RATE,
} from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import { readCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { formatDuration, formatEpochLine, formatProgress } from '../../src/train/progress.js';
import { isNetworkName, recipeFor, scheduleAt } from '../../src/train/recipe.js';
import { expectRefusal } from './refusals.js';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-train-parts-'));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('recipe', () => {
  it('is the official recipe at RECIPE_EPOCHS and scales its warm-up with the epochs', () => {
    const official = recipeFor('lenet300', RECIPE_EPOCHS);
    expect(official.klWarmup).toEqual({ start: KL_WARMUP_START_EPOCH, end: KL_WARMUP_END_EPOCH });
    expect(official.batchSize).toBe(RECIPE_BATCH_SIZE);
    expect(official.learningRate).toBe(RECIPE_LEARNING_RATE);
    expect(recipeFor('lenet5', RECIPE_EPOCHS).learningRateSchedule).toBe('lenet5');
    const half = recipeFor('lenet300', RECIPE_EPOCHS / 2);
    expect(half.klWarmup).toEqual({
      start: KL_WARMUP_START_EPOCH / 2,
      end: KL_WARMUP_END_EPOCH / 2,
    });
  });

  it('beta rises from 0 to 1 and the learning rate falls, at every length', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 400 }),
        fc.constantFrom('lenet300', 'lenet5'),
        (epochs, net) => {
          const recipe = recipeFor(net as 'lenet300' | 'lenet5', epochs);
          let previous = scheduleAt(recipe, 0);
          expect(previous.learningRate).toBe(RECIPE_LEARNING_RATE);
          for (let e = 1; e < epochs; e++) {
            const now = scheduleAt(recipe, e);
            expect(now.klWeight).toBeGreaterThanOrEqual(previous.klWeight);
            expect(now.learningRate).toBeLessThanOrEqual(previous.learningRate);
            expect(now.learningRate).toBeGreaterThan(0);
            previous = now;
          }
          if (epochs >= 2) expect(previous.klWeight).toBe(1);
        },
      ),
    );
  });

  it('refuses a non-integer or zero epoch count', () => {
    for (const bad of [0, -1, 2.5, NaN]) {
      expect(() => recipeFor('lenet300', bad)).toThrow(/epochs/);
    }
  });
});

describe('progress line', () => {
  const at = (step: number, epoch = 2) => ({
    epoch,
    epochs: 4,
    step,
    steps: 10,
    loss: 123.456,
    accuracy: 0.5,
    sessionSeconds: 20,
    sessionSteps: 10,
    lastEpoch: null,
  });

  it('shows the epoch, the share done and an ETA from the mean step time, at most every 250 ms', () => {
    const state = { lastDraw: -Infinity };
    const line = formatProgress(at(5), state, 1000)!;
    // 15 of 40 steps done, 2 s a step: 25 steps, 50 s left.
    expect(line).toBe(
      `\r\x1b[2Kepoch 2/4 [${'#'.repeat(9)}${'-'.repeat(15)}] 37.5%  ETA 50s  loss 123.46  acc 50.0%`,
    );
    expect(formatProgress(at(6), state, 1100)).toBeNull();
    expect(formatProgress(at(10), state, 1100)).not.toBeNull();
    expect(formatProgress(at(7), state, 1400)).not.toBeNull();
  });

  it('formats durations', () => {
    expect([5, 65, 3725, NaN, -1].map(formatDuration)).toEqual(['5s', '1m05s', '1h02m', '?', '?']);
  });
});

/** The bytes of a checkpoint of spec/train.md#checkpoints, built here by hand from its layout. */
function checkpointBytes(magic: string, stored: object, values: number[], digest: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(stored), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const padding = Buffer.alloc((4 - ((12 + json.length) % 4)) % 4);
  const data = Buffer.from(Float32Array.from(values).buffer);
  const body = Buffer.concat([Buffer.from(magic, 'ascii'), length, json, padding, data]);
  return digest ? Buffer.concat([body, createHash('sha256').update(body).digest()]) : body;
}

describe('checkpoint file', () => {
  const state = {
    step: 7,
    tensors: [
      { name: 'a', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, -0, 1e-30]) },
      { name: 'b', shape: [1], data: Float32Array.from([42]) },
    ],
  };
  const header = { hello: 'world', n: 1 };
  const asIs = (r: unknown) => r as typeof header;

  it('round-trips the header and every value', () => {
    const path = join(tempDir(), 'c.bin');
    writeCheckpoint(path, header, state);
    const back = readCheckpoint(path, asIs);
    expect(back.header).toEqual(header);
    expect(back.state.step).toBe(7);
    expect(back.state.tensors).toEqual(state.tensors);
  });

  it('ends with the SHA-256 of everything before it; one flipped bit is refused', () => {
    const dir = tempDir();
    const path = join(dir, 'c.bin');
    writeCheckpoint(path, header, state);
    const stored = {
      record: header,
      step: 7,
      tensors: [
        { name: 'a', shape: [2, 3] },
        { name: 'b', shape: [1] },
      ],
    };
    const expected = checkpointBytes('VDSPECK2', stored, [1, -2, 3.5, 0, -0, 1e-30, 42], true);
    expect(readFileSync(path)).toEqual(expected);
    // One bit of the last tensor value (42), a payload byte the structure does not check.
    const flipped = Buffer.from(expected);
    flipped[expected.length - 32 - 2]! ^= 0x01;
    writeFileSync(path, flipped);
    expect(() => readCheckpoint(path, asIs)).toThrow(
      /c\.bin is not a usable vdspec checkpoint: its SHA-256 does not match its content/,
    );
    // A bit of the header (a digit of the step count: 7 -> 6) too.
    const header7 = Buffer.from(expected);
    header7[header7.indexOf('"step":7') + 7] = '6'.charCodeAt(0);
    writeFileSync(path, header7);
    expect(() => readCheckpoint(path, asIs)).toThrow(/SHA-256 does not match/);
  });

  it('a checkpoint from before the checksum (VDSPECK1, no digest) is still read', () => {
    const path = join(tempDir(), 'old.bin');
    const stored = { record: header, step: 3, tensors: [{ name: 'b', shape: [2] }] };
    writeFileSync(path, checkpointBytes('VDSPECK1', stored, [0.5, -4], false));
    const back = readCheckpoint(path, asIs);
    expect(back.header).toEqual(header);
    expect(back.state).toEqual({
      step: 3,
      tensors: [{ name: 'b', shape: [2], data: Float32Array.from([0.5, -4]) }],
    });
  });

  it('refuses a truncated, padded, foreign or missing file with the file named', () => {
    const dir = tempDir();
    const path = join(dir, 'c.bin');
    writeCheckpoint(path, header, state);
    const size = readFileSync(path).length;
    truncateSync(path, size - 2);
    expect(() => readCheckpoint(path, asIs)).toThrow(/truncated/);
    writeCheckpoint(path, header, state);
    writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.from([0, 0, 0, 0])]));
    expect(() => readCheckpoint(path, asIs)).toThrow(/bytes follow/);
    writeFileSync(path, '{"not": "a checkpoint"}');
    expect(() => readCheckpoint(path, asIs)).toThrow(/VDSPECK2/);
    expect(() => readCheckpoint(join(dir, 'missing.bin'), asIs)).toThrow(/cannot read/);
    try {
      readCheckpoint(path, asIs);
    } catch (e) {
      expect(isVdspecError(e) && e.message.includes(path)).toBe(true);
    }
  });
});

describe('the refusals of the pieces: each code, argument and whole message', () => {
  const header = { hello: 'world' };
  const asIs = (r: unknown) => r as typeof header;
  /** An unchecked (VDSPECK1) file: magic, header length, header, then `rest` as is. */
  const unchecked = (headerText: string, rest: Buffer = Buffer.alloc(0)) => {
    const json = Buffer.from(headerText, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    return Buffer.concat([Buffer.from('VDSPECK1', 'ascii'), length, json, rest]);
  };
  const stored = (tensors: object[]) => JSON.stringify({ record: header, step: 1, tensors });

  it('readCheckpoint names the file and what is wrong with it', () => {
    const dir = tempDir();
    const path = join(dir, 'c.bin');
    const refused = (bytes: Buffer, why: string) => {
      writeFileSync(path, bytes);
      expectRefusal(
        () => readCheckpoint(path, asIs),
        'invalid_checkpoint',
        'checkpoint',
        `${path} is not a usable vdspec checkpoint: ${why}`,
      );
    };
    const missing = join(dir, 'missing.bin');
    expectRefusal(
      () => readCheckpoint(missing, asIs),
      'io_error',
      'checkpoint',
      `cannot read the checkpoint ${missing}: ENOENT: no such file or directory, open '${missing}'`,
    );
    // Shorter than magic and length: not a checkpoint, whatever its first bytes.
    refused(Buffer.from('VDSPECK2abc', 'ascii'), 'it does not start with VDSPECK2');
    refused(Buffer.from('NOTACHECKPOINT', 'ascii'), 'it does not start with VDSPECK2');
    // Exactly magic and length, an empty header.
    refused(unchecked(''), 'the header is not JSON');
    refused(unchecked('{"a"').subarray(0, 14), 'the header is cut short');
    refused(unchecked('{"a"'), 'the header is not JSON');
    refused(
      unchecked(stored([{ name: 'a', shape: [3] }]), Buffer.alloc(8)),
      'the data ends inside tensor a (the file is truncated)',
    );
    const oneValue = (extra: number) => {
      const text = stored([{ name: 'b', shape: [1] }]);
      const pad = (4 - ((12 + Buffer.byteLength(text)) % 4)) % 4;
      return unchecked(text, Buffer.alloc(pad + 4 + extra));
    };
    refused(oneValue(8), '8 bytes follow the last tensor');
    writeFileSync(path, oneValue(0));
    expect(readCheckpoint(path, asIs).state.tensors).toEqual([
      { name: 'b', shape: [1], data: Float32Array.from([0]) },
    ]);
    writeFileSync(path, unchecked('{"x": 1}'));
    expectRefusal(
      () => readCheckpoint(path, asIs),
      'invalid_checkpoint',
      'checkpoint',
      new RegExp(`^checkpoint: ${path} is not a usable vdspec checkpoint: its header: /.+`),
    );
  });

  it('a checkpoint without tensors whose header ends the file is read', () => {
    // A header of 52 bytes: 12 + 52 is a multiple of 4, so no padding, and nothing follows.
    const text = stored([]).padEnd(52, ' ');
    expect(Buffer.byteLength(text)).toBe(52);
    const path = join(tempDir(), 'c.bin');
    writeFileSync(path, unchecked(text));
    expect(readCheckpoint(path, asIs)).toEqual({ header, state: { step: 1, tensors: [] } });
  });

  it('writeCheckpoint says which checkpoint it could not write', () => {
    const path = tempDir();
    expectRefusal(
      () => writeCheckpoint(path, header, { step: 0, tensors: [] }),
      'io_error',
      'checkpoint',
      new RegExp(`^checkpoint: cannot write the checkpoint ${path}: .+`),
    );
  });

  it('recipeFor refuses an epoch count naming --epochs; isNetworkName knows the two networks', () => {
    expectRefusal(
      () => recipeFor('lenet300', 0),
      'invalid_argument',
      'epochs',
      'must be an integer >= 1, got 0',
    );
    expect(isNetworkName('lenet300')).toBe(true);
    expect(isNetworkName('lenet5')).toBe(true);
    expect(isNetworkName('lenet7')).toBe(false);
    expect(isNetworkName(5)).toBe(false);
    expect(isNetworkName(undefined)).toBe(false);
  });
});

describe('the progress and epoch lines, to the character', () => {
  const epoch = {
    epoch: 3,
    klWeight: 0.25,
    learningRate: 0.0005,
    loss: 1234.5678,
    dataTerm: 1000,
    kl: 234.5678,
    trainAccuracy: 0.9876,
    testAccuracy: 0.975,
    testCrossEntropy: 0.1,
    kept: 125,
    total: 1000,
    compression: 8,
    seconds: 12.34,
  };

  it('a redraw 250 ms after the last is drawn, one sooner is not; a zero duration is 0s', () => {
    const at = {
      epoch: 1,
      epochs: 2,
      step: 1,
      steps: 4,
      loss: 1,
      accuracy: 1,
      sessionSeconds: 1,
      sessionSteps: 1,
      lastEpoch: null,
    };
    expect(formatProgress(at, { lastDraw: 1000 }, 1249)).toBeNull();
    expect(formatProgress(at, { lastDraw: 1000 }, 1250)).not.toBeNull();
    expect([0, 0.4].map(formatDuration)).toEqual(['0s', '0s']);
  });

  it('after an epoch, the live line shows its test accuracy and what it kept', () => {
    const line = formatProgress(
      {
        epoch: 4,
        epochs: 4,
        step: 10,
        steps: 10,
        loss: 2,
        accuracy: 0.5,
        sessionSeconds: 10,
        sessionSteps: 10,
        lastEpoch: epoch,
      },
      { lastDraw: 0 },
      0,
    );
    expect(line).toBe(
      `\r\x1b[2Kepoch 4/4 [${'#'.repeat(24)}] 100.0%  ETA 0s  loss 2.0000  acc 50.0%  test 97.5%  kept 12.5% (8.0x)`,
    );
  });

  it('the line of a finished epoch, with the sparsity for Sparse VD and without for a baseline', () => {
    const record = (baseline: boolean) =>
      ({ config: { epochs: 200, baseline } }) as unknown as Parameters<typeof formatEpochLine>[1];
    expect(formatEpochLine(epoch, record(false))).toBe(
      'epoch 3/200  loss 1234.6  train acc 98.8%  test acc 97.5%  kept 12.5% (8.0x)  beta 0.250  lr 5.00e-4  12.3 s',
    );
    expect(formatEpochLine(epoch, record(true))).toBe(
      'epoch 3/200  loss 1234.6  train acc 98.8%  test acc 97.5%  lr 5.00e-4  12.3 s',
    );
  });
});
