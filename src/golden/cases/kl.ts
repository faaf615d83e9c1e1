/** Golden cases of the KL ops (kl.exact, kl.approx and their variants). */
import type { OpSpec } from '../../ops.js';
import type { Profile } from '../../profiles.js';
import type { Edge } from './draft.js';
import { fill, RANDOM_CASES, RANDOM_ID_BASE } from './values.js';

export function klEdges(op: OpSpec, profile: Profile): Edge[] {
  const la = (data: number[], shape: number[] = [data.length]) => ({ log_alpha: { shape, data } });
  const edges: Edge[] = [
    {
      id: 1,
      build: () => ({
        comment:
          'log_alpha on the clip bounds of every profile (-10, -8, 0, 8, 10) and the threshold 3',
        flags: ['clip_bounds'],
        values: la([-10, -8, 0, 3, 8, 10]),
      }),
    },
    {
      id: 2,
      build: () => ({
        comment:
          'log_alpha = +inf (theta = 0 without a clip): KL and its derivative take their limits',
        flags: [],
        values: la([Infinity]),
      }),
    },
    {
      id: 3,
      build: () => ({
        comment: 'log_alpha = -inf: KL = +inf, derivative -1/2',
        flags: [],
        values: la([-Infinity]),
      }),
    },
    {
      id: 4,
      build: () => ({
        comment:
          'tiny and huge alpha: overflow and cancellation in exp(-log_alpha) and the sigmoid',
        flags: ['alpha_tiny', 'alpha_huge'],
        values: la([-30, -20, 15, 20]),
      }),
    },
    {
      id: 5,
      build: () => ({
        comment: 'one element, not at any edge',
        flags: ['one_element'],
        values: la([0.5]),
      }),
    },
    {
      id: 6,
      build: () => ({
        comment: 'log_alpha = 0 and -0: alpha = 1 from either sign of zero',
        flags: ['zero_input'],
        values: la([0, -0]),
      }),
    },
    {
      id: 7,
      build: () => ({
        comment: 'an empty tensor: empty outputs',
        flags: [],
        values: la([], [0]),
      }),
    },
    {
      id: 8,
      build: () => ({
        comment: 'a rank-2 log_alpha: the outputs keep its shape',
        flags: [],
        values: la([-2, -1, 0.25, 1, 2, 4], [2, 3]),
      }),
    },
  ];
  if (op.name === 'kl.exact') {
    edges.push({
      id: 9,
      build: () => ({
        comment:
          'around the switch between the small-alpha expansion and the Poisson series (-8) and the ends of their overlap (-12, -5)',
        flags: ['series_switch'],
        values: la([-12, -8.0625, -8, -7.9375, -5]),
      }),
    });
  }
  // The cubic is fitted for alpha <= 1 and VD clips log_alpha <= 0 before the KL.
  const hi = profile.kl.approximation === 'vd_cubic' && op.name === 'kl.approx' ? 0 : 12;
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const shape = rng.coin() ? [rng.int(1, 8)] : [rng.int(1, 3), rng.int(1, 3)];
        return {
          comment: `random log_alpha on [-12, ${hi}] (grid 1/32)`,
          flags: ['random'],
          values: { log_alpha: fill(rng, shape, -12, hi, 1 / 32) },
        };
      },
    });
  }
  return edges;
}
