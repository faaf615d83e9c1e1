/** Golden cases of VD variant A (spec/dense-a.md). */
import { NOISE, type OpSpec } from '../../ops.js';
import type { Tensor } from '../../tensor.js';
import { Xorshift32 } from '../prng.js';
import type { Edge } from './draft.js';
import {
  COARSE_STEP,
  COARSE_THETA_STEP,
  EDGE_MARGIN,
  fill,
  LOG_ALPHA_EDGES,
  NUDGE,
  RANDOM_CASES,
  RANDOM_ID_BASE,
  thetaValue,
  zeros,
} from './values.js';

interface DenseADraft {
  readonly batch?: number;
  readonly in?: number;
  readonly out?: number;
  /** log_alpha [] instead of [in]. */
  readonly scalar?: boolean;
  /** log_alpha of the first input units, exactly (the others random). */
  readonly targets?: readonly number[];
  readonly zeroX?: boolean;
  readonly zeroEps?: boolean;
  /** The coarse grids of the realistic-size cases (LayerDraftOptions.coarse). */
  readonly coarse?: boolean;
}

/**
 * log_alpha of a variant-A layer: targets first, the others on [-6, 1]
 * (grid 1/32), nudged by 1/16 until at least EDGE_MARGIN from every edge.
 */
function denseALogAlpha(rng: Xorshift32, n: number, targets: readonly number[]): Tensor {
  const data = Array.from({ length: n }, (_, i) => {
    if (i < targets.length) return targets[i]!;
    let v = rng.grid(-6, 1, 1 / 32);
    while (LOG_ALPHA_EDGES.some((e) => Math.abs(v - e) < EDGE_MARGIN)) v += NUDGE;
    return v;
  });
  return { shape: [n], data };
}

function denseAValues(rng: Xorshift32, d: DenseADraft): Record<string, unknown> {
  const batch = d.batch ?? 2;
  const inSize = d.in ?? 3;
  const out = d.out ?? 2;
  const la = denseALogAlpha(rng, d.scalar ? 1 : inSize, d.targets ?? []);
  const step = d.coarse ? COARSE_STEP : 1 / 64;
  return {
    x: d.zeroX ? zeros([batch, inSize]) : fill(rng, [batch, inSize], -2, 2, d.coarse ? 1 : step),
    theta: {
      shape: [inSize, out],
      data: Array.from({ length: inSize * out }, () =>
        d.coarse ? rng.grid(-2, 2, COARSE_THETA_STEP) : thetaValue(rng),
      ),
    },
    [NOISE]: d.scalar ? { shape: [], data: la.data } : la,
    bias: fill(rng, [out], -1, 1, step),
    eps: d.zeroEps ? zeros([batch, inSize]) : fill(rng, [batch, inSize], -3, 3, step),
    cotangent: fill(rng, [batch, out], -2, 2, step),
  };
}

export function denseAEdges(op: OpSpec): Edge[] {
  const kl = op.name === 'vd.dense_a.kl';
  const edge = (id: number, comment: string, flags: string[], d: DenseADraft): Edge => ({
    id,
    build: (rng) => ({ comment, flags, values: denseAValues(rng, d) }),
  });
  const edges: Edge[] = [
    edge(1, 'log_alpha one per input unit ([in])', [], {}),
    edge(
      2,
      kl
        ? 'log_alpha a scalar, in = 4, out = 3: the KL counts it once per input unit (4 times), not per weight (12)'
        : 'log_alpha a scalar: one alpha for the layer, still one noise per example and input unit',
      [],
      { scalar: true, in: 4, out: 3 },
    ),
    edge(
      3,
      'log_alpha exactly 0 = VD_LOG_ALPHA_MAX in two units: the clip gradient passes (closed interval)',
      [],
      { targets: [0, 0] },
    ),
    edge(
      4,
      'log_alpha 0.5 and 2, beyond the clip max: clipped to 0 (alpha = 1), gradient exactly 0',
      [],
      { targets: [0.5, 2] },
    ),
    edge(5, 'alpha tiny: log_alpha -20 (sqrt(alpha) = e^-10)', [], { targets: [-20] }),
    edge(6, 'every size 1', ['one_element'], { batch: 1, in: 1, out: 1 }),
    edge(
      7,
      kl ? 'in = 0: no input unit, KL 0' : 'in = 0: empty sums, mean = output = bias, variance = 0',
      kl ? [] : ['empty_sum'],
      { in: 0 },
    ),
  ];
  if (!kl) {
    edges.push(
      edge(8, 'x = 0: variance 0, output = mean = bias (no sqrtEps in variant A)', ['zero_input'], {
        zeroX: true,
      }),
      edge(9, 'eps = 0: xi = 1, the output is the mean', ['eps_zero'], { zeroEps: true }),
      edge(10, 'batch = 0: empty results, zero gradients', [], { batch: 0 }),
      edge(
        11,
        'one input unit, out 3: the outputs of an example share one eps (correlation +-1)',
        [],
        { batch: 2, in: 1, out: 3 },
      ),
      edge(
        12,
        'in = out = 3: eps [batch, in] has the shape variant B would draw per output; the noise is per input unit',
        [],
        { batch: 2, in: 3, out: 3 },
      ),
      edge(13, 'realistic size: batch 5, in 9, out 33', ['realistic_size'], {
        batch: 5,
        in: 9,
        out: 33,
        coarse: true,
      }),
    );
  }
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const d: DenseADraft = {
          batch: rng.int(1, 3),
          in: rng.int(1, 4),
          out: rng.int(1, 3),
          scalar: rng.coin(),
        };
        return {
          comment: 'random shapes and values, log_alpha [] or [in] on [-6, 1]',
          flags: ['random'],
          values: denseAValues(rng, d),
        };
      },
    });
  }
  return edges;
}
