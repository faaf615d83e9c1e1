/** Golden cases of the objective: cross-entropy, the SGVB objective, the KL weight schedule. */
import { Xorshift32 } from '../prng.js';
import type { Edge } from './draft.js';
import { fill, RANDOM_CASES, RANDOM_ID_BASE } from './values.js';

function logits(rng: Xorshift32, batch: number, classes: number) {
  return {
    logits: fill(rng, [batch, classes], -8, 8, 1 / 32),
    labels: Array.from({ length: batch }, () => rng.below(classes)),
  };
}

export function crossEntropyEdges(): Edge[] {
  const fixed = (
    id: number,
    comment: string,
    flags: string[],
    values: Record<string, unknown>,
  ): Edge => ({
    id,
    build: () => ({ comment, flags, values }),
  });
  const edges: Edge[] = [
    fixed(1, 'one example, one class: CE = 0', ['one_element'], {
      logits: { shape: [1, 1], data: [0.5] },
      labels: [0],
    }),
    fixed(
      2,
      'logits of size 1e4: a logsumexp without the max shift overflows (spec/objective.md)',
      ['large_logits'],
      {
        logits: { shape: [3, 3], data: [1e4, 0, -1e4, 1e4, 0, -1e4, 1e4, 0, -1e4] },
        labels: [0, 1, 2],
      },
    ),
    fixed(3, 'zero logits: CE = log(classes)', ['zero_input'], {
      logits: { shape: [2, 4], data: new Array<number>(8).fill(0) },
      labels: [0, 3],
    }),
    fixed(4, 'a tie for the maximum', [], {
      logits: { shape: [1, 3], data: [1, 1, 0] },
      labels: [1],
    }),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random logits on [-8, 8] (grid 1/32) and labels',
        flags: ['random'],
        values: logits(rng, rng.int(1, 4), rng.int(2, 6)),
      }),
    });
  }
  return edges;
}

export function sgvbEdges(): Edge[] {
  const base = (rng: Xorshift32) => logits(rng, 2, 3);
  const edge = (
    id: number,
    comment: string,
    flags: string[],
    extra: Record<string, number>,
  ): Edge => ({
    id,
    build: (rng) => ({ comment, flags, values: { ...base(rng), ...extra } }),
  });
  const edges: Edge[] = [
    edge(1, 'kl_weight = 0 (the warm-up): the loss is the data term', ['kl_weight_zero'], {
      train_size: 60000,
      kl_weight: 0,
      kl: 1234.5,
    }),
    edge(
      2,
      'train_size 60000 (MNIST), kl_weight 1: the data term is N * mean CE, not the batch sum',
      [],
      {
        train_size: 60000,
        kl_weight: 1,
        kl: 1234.5,
      },
    ),
    edge(3, 'a negative KL (the constant omitted or dropped)', [], {
      train_size: 100,
      kl_weight: 0.5,
      kl: -12.5,
    }),
    edge(4, 'train_size 1, kl 0', [], { train_size: 1, kl_weight: 1, kl: 0 }),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random logits, labels, train size, KL weight and KL',
        flags: ['random'],
        values: {
          ...logits(rng, rng.int(1, 4), rng.int(2, 6)),
          train_size: rng.int(1, 60000),
          kl_weight: rng.grid(0, 1, 1 / 64),
          kl: rng.grid(0, 2000, 1 / 8),
        },
      }),
    });
  }
  return edges;
}

export function scheduleEdges(): Edge[] {
  const at = (id: number, epoch: number, comment: string): Edge => ({
    id,
    build: () => ({ comment, flags: [], values: { epoch } }),
  });
  const edges: Edge[] = [
    at(1, 0, 'epoch 0: beta = 0'),
    at(2, 4.9921875, 'just before the warm-up starts: beta = 0'),
    at(3, 5, 'epoch 5, the start of the warm-up: beta = 0'),
    at(4, 6, 'epoch 6: beta = 1/15'),
    at(5, 12.5, 'a fractional epoch half-way: beta = 0.5'),
    at(6, 19.9921875, 'just before the end of the warm-up'),
    at(7, 20, 'epoch 20, the end of the warm-up: beta = 1'),
    at(8, 1000, 'long after: beta = 1'),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => ({
        comment: 'random epoch on [0, 30] (grid 1/8)',
        flags: ['random'],
        values: { epoch: rng.grid(0, 30, 1 / 8) },
      }),
    });
  }
  return edges;
}
