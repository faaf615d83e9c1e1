/** Golden cases of the per-weight ops: log_alpha, the keep mask, kl.layer. */
import { SVD_PRUNE_THRESHOLD } from '../../constants.js';
import { NOISE } from '../../ops.js';
import type { LayerKind, Profile } from '../../profiles.js';
import { Xorshift32 } from '../prng.js';
import type { Draft, Edge } from './draft.js';
import {
  exactAtUnitTheta,
  RANDOM_CASES,
  RANDOM_ID_BASE,
  RANDOM_SPREAD,
  weights,
} from './values.js';

export function weightEdges(profile: Profile): Edge[] {
  const vd = profile.dense.logAlpha.form === 'learned';
  const denseShape = [2, 3];
  const convShape = [1, 2, 2, 2];
  const build =
    (
      comment: string,
      flags: string[],
      layer: LayerKind,
      shape: number[],
      targets: number[],
      exact: boolean,
      noiseShape?: number[],
    ) =>
    (rng: Xorshift32): Draft | null => {
      if (exact && !exactAtUnitTheta(profile, layer)) return null;
      const w = weights(rng, profile, layer, shape, {
        targets,
        ...(noiseShape === undefined ? {} : { noiseShape }),
      });
      return {
        comment,
        flags,
        values: {
          theta: w.theta,
          [NOISE]: w.noise,
          ...(layer === 'conv2d' ? { layer } : {}),
        },
      };
    };
  const edges: Edge[] = [
    {
      id: 1,
      build: (rng) => {
        const w = weights(rng, profile, 'dense', denseShape, { zeroAt: [0, 1] });
        return {
          comment: 'theta = 0 and -0: log(0) = -inf before the clip; no NaN anywhere',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise },
        };
      },
    },
    ...(profile.prune === null
      ? []
      : [
          {
            id: 2,
            build: build(
              'raw log_alpha exactly at the threshold 3 (theta = +-1): kept by ">", pruned by ">="',
              [],
              'dense',
              denseShape,
              [SVD_PRUNE_THRESHOLD, SVD_PRUNE_THRESHOLD],
              true,
            ),
          },
        ]),
    ...clipEdges(profile, 'dense', denseShape, build),
    {
      id: 5,
      build: build(
        'raw log_alpha 9 and -9: beyond [-8, 8], inside [-10, 10], where profiles disagree',
        [],
        'dense',
        denseShape,
        [9, -9],
        false,
      ),
    },
    {
      id: 6,
      build: build(
        'raw log_alpha 11 and -11: beyond every clip',
        [],
        'dense',
        denseShape,
        [11, -11],
        false,
      ),
    },
    {
      id: 7,
      build: build(
        'huge and tiny alpha: raw log_alpha 20 and -20',
        [],
        'dense',
        denseShape,
        [20, -20],
        false,
      ),
    },
    {
      id: 8,
      build: build('one weight', ['one_element'], 'dense', [1, 1], [], false),
    },
    {
      id: 9,
      build: (rng) => {
        const w = weights(rng, profile, 'conv2d', convShape, { targets: [9, -9], zeroAt: [2] });
        return {
          comment:
            'conv2d conventions (rank-4 theta): theta = 0 and raw log_alpha +-9, where some profiles clip conv2d differently from dense',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise, layer: 'conv2d' },
        };
      },
    },
    ...(profile.prune === null
      ? []
      : [
          {
            id: 10,
            build: build(
              'conv2d conventions: raw log_alpha exactly at the threshold',
              [],
              'conv2d',
              convShape,
              [SVD_PRUNE_THRESHOLD, SVD_PRUNE_THRESHOLD],
              true,
            ),
          },
        ]),
    {
      id: 11,
      build: (rng) => {
        const w = weights(rng, profile, 'dense', [0, 2], { noiseShape: vd ? [] : [0, 2] });
        return {
          comment: 'no weights: empty outputs (the layer KL is 0)',
          flags: [],
          values: { theta: w.theta, [NOISE]: w.noise },
        };
      },
    },
    ...(vd ? vdNoiseEdges(profile, denseShape) : []),
  ];
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        const layer: LayerKind = rng.coin() ? 'dense' : 'conv2d';
        const shape =
          layer === 'dense'
            ? [rng.int(1, 4), rng.int(1, 4)]
            : [rng.int(1, 3), rng.int(1, 3), rng.int(1, 2), rng.int(1, 2)];
        const noiseShape = vd ? vdNoiseShape(rng, shape) : shape;
        const w = weights(rng, profile, layer, shape, { noiseShape, spread: RANDOM_SPREAD });
        return {
          comment: `random ${layer} weights`,
          flags: ['random'],
          values: { theta: w.theta, [NOISE]: w.noise, ...(layer === 'conv2d' ? { layer } : {}) },
        };
      },
    });
  }
  return edges;
}

type WeightBuild = (
  comment: string,
  flags: string[],
  layer: LayerKind,
  shape: number[],
  targets: number[],
  exact: boolean,
) => (rng: Xorshift32) => Draft | null;

/** Cases 3 and 4: raw log_alpha exactly on the clip max and min (the clip gradient passes). */
function clipEdges(
  profile: Profile,
  layer: LayerKind,
  shape: number[],
  build: WeightBuild,
): Edge[] {
  const clip = profile[layer].logAlpha.clip;
  const edges: Edge[] = [];
  if (clip?.max != null) {
    edges.push({
      id: 3,
      build: build(
        `raw log_alpha exactly at the clip max ${clip.max}: the clip gradient is 1 there`,
        [],
        layer,
        shape,
        [clip.max, clip.max],
        true,
      ),
    });
  }
  if (clip?.min != null) {
    edges.push({
      id: 4,
      build: build(
        `raw log_alpha exactly at the clip min ${clip.min}: the clip gradient is 1 there`,
        [],
        layer,
        shape,
        [clip.min, clip.min],
        true,
      ),
    });
  }
  return edges;
}

/** VD's log_alpha broadcasts: a scalar, one per input unit, one per weight. */
export function vdNoiseShape(rng: Xorshift32, shape: readonly number[]): number[] {
  const kind = rng.below(3);
  if (kind === 0) return [];
  if (kind === 2) return [...shape];
  // One per input unit: dense [in, 1], conv2d [1, 1, cin, 1] (dropout on input channels).
  return shape.length === 2 ? [shape[0]!, 1] : [1, 1, shape[2]!, 1];
}

function vdNoiseEdges(profile: Profile, shape: number[]): Edge[] {
  const make = (id: number, noiseShape: number[], what: string): Edge => ({
    id,
    build: (rng) => {
      const w = weights(rng, profile, 'dense', shape, { noiseShape });
      return {
        comment: `VD log_alpha ${what}, broadcast to theta's shape`,
        flags: [],
        values: { theta: w.theta, [NOISE]: w.noise },
      };
    },
  });
  return [
    make(12, [], 'a scalar (one per layer)'),
    make(13, [shape[0]!, 1], 'one per input unit ([in, 1])'),
    make(14, [...shape], 'one per weight'),
  ];
}
