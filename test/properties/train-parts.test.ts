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
import { formatDuration, formatProgress } from '../../src/train/progress.js';
import { recipeFor, scheduleAt } from '../../src/train/recipe.js';

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
