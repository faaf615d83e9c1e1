/** Golden cases of the layers (spec/dense.md, spec/conv2d.md): dense and conv2d, train and eval. */
import { NOISE, type OpSpec } from '../../ops.js';
import type { Profile } from '../../profiles.js';
import { conv2dGeometry, type Conv2dStride } from '../../reference/conv2d.js';
import { Xorshift32 } from '../prng.js';
import type { Edge } from './draft.js';
import { vdNoiseShape } from './logAlpha.js';
import {
  COARSE_STEP,
  COARSE_THETA_STEP,
  exactAtUnitTheta,
  fill,
  NUDGE,
  RANDOM_CASES,
  RANDOM_ID_BASE,
  RANDOM_SPREAD,
  weights,
  zeros,
} from './values.js';

/**
 * Whether the layer files of `profile` get the realistic-size cases: those
 * of the canonical profiles (molchanov2017, kingma2015). Size exercises the
 * kernels (matmul, convolution and their transposes), which the other
 * profiles do not change (bayesgroup-theano's 'same' padding has its own
 * small case, 21); in every profile the set would pass 4 MB.
 */
export function realisticSizes(profile: Profile): boolean {
  return profile.canonical;
}

interface DenseDims {
  readonly kind: 'dense';
  readonly batch: number;
  readonly in: number;
  readonly out: number;
}
interface ConvDims {
  readonly kind: 'conv2d';
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly kh: number;
  readonly kw: number;
  readonly cout: number;
  readonly stride?: Conv2dStride;
  readonly padding?: 'valid' | 'same';
}
type Dims = DenseDims | ConvDims;

function shapes(d: Dims) {
  if (d.kind === 'dense') {
    return { x: [d.batch, d.in], theta: [d.in, d.out], bias: [d.out], out: [d.batch, d.out] };
  }
  const theta = [d.kh, d.kw, d.cin, d.cout];
  const x = [d.n, d.h, d.w, d.cin];
  const g = conv2dGeometry(x, theta, {
    ...(d.stride === undefined ? {} : { stride: d.stride }),
    ...(d.padding === undefined ? {} : { padding: d.padding }),
  });
  return { x, theta, bias: [d.cout], out: [g.batch, g.outHeight, g.outWidth, g.outChannels] };
}

interface LayerDraftOptions {
  readonly targets?: number[];
  readonly noiseShape?: number[];
  readonly thetaZeros?: number;
  readonly zeroX?: boolean;
  readonly zeroEps?: boolean;
  readonly trainClip?: boolean;
  /** Raw log_alpha range of the weights without a target. */
  readonly spread?: number;
  /** Monte Carlo draws: eps is [samples, ...output shape] (predict_mc). */
  readonly samples?: number;
  /**
   * Coarser grids for the realistic-size cases, so their files stay small:
   * x integers in [-2, 2], theta and the noise parameter on 1/16, bias, eps
   * and cotangents on 1/4.
   */
  readonly coarse?: boolean;
}

function layerValues(
  rng: Xorshift32,
  profile: Profile,
  d: Dims,
  o: LayerDraftOptions,
): Record<string, unknown> {
  const s = shapes(d);
  const w = weights(rng, profile, d.kind, s.theta, {
    ...(o.targets === undefined ? {} : { targets: o.targets }),
    ...(o.noiseShape === undefined ? {} : { noiseShape: o.noiseShape }),
    ...(o.spread === undefined ? {} : { spread: o.spread }),
    ...(o.coarse ? { thetaStep: COARSE_THETA_STEP, noiseStep: NUDGE } : {}),
    zeroAt: Array.from({ length: o.thetaZeros ?? 0 }, (_, i) => i),
  });
  const step = o.coarse ? COARSE_STEP : 1 / 64;
  const x = o.zeroX ? zeros(s.x) : fill(rng, s.x, -2, 2, o.coarse ? 1 : step);
  const bias = fill(rng, s.bias, -1, 1, step);
  const epsShape = o.samples === undefined ? s.out : [o.samples, ...s.out];
  const eps = o.zeroEps ? zeros(epsShape) : fill(rng, epsShape, -3, 3, step);
  const cotangent = fill(rng, s.out, -2, 2, step);
  return {
    x,
    theta: w.theta,
    [NOISE]: w.noise,
    bias,
    ...(d.kind === 'conv2d' && d.stride !== undefined ? { stride: d.stride } : {}),
    ...(d.kind === 'conv2d' && d.padding !== undefined ? { padding: d.padding } : {}),
    eps,
    ...(o.trainClip === undefined ? {} : { train_clip: o.trainClip }),
    cotangent,
  };
}

export function layerEdges(op: OpSpec, profile: Profile): Edge[] {
  const layer = op.layer!;
  const conv = layer === 'conv2d';
  const mc = op.name.endsWith('.predict_mc');
  const train = op.name.endsWith('.train') || op.name.endsWith('.train_vjp') || mc;
  const vd = profile[layer].logAlpha.form === 'learned';
  const base: Dims = conv
    ? { kind: 'conv2d', n: 1, h: 3, w: 3, cin: 2, kh: 2, kw: 2, cout: 2 }
    : { kind: 'dense', batch: 2, in: 3, out: 2 };
  const exactOk = exactAtUnitTheta(profile, layer);
  const clip = profile[layer].logAlpha.clip;
  const edge = (
    id: number,
    comment: string,
    flags: string[],
    options: LayerDraftOptions & { dims?: Dims; exact?: boolean; when?: boolean },
  ): Edge[] => {
    if (options.when === false || (options.exact && !exactOk)) return [];
    return [
      {
        id,
        build: (rng) => ({
          comment,
          flags,
          // The Monte Carlo predictive averages 3 draws unless the case says otherwise.
          values: layerValues(
            rng,
            profile,
            options.dims ?? base,
            mc ? { samples: 3, ...options } : options,
          ),
        }),
      },
    ];
  };
  const edges: Edge[] = [
    ...edge(1, 'theta = 0 and -0 in two weights: no NaN in any output or gradient', [], {
      thetaZeros: 2,
    }),
    ...edge(
      2,
      'raw log_alpha exactly 3 in two weights (theta = +-1): kept by ">", pruned by ">="',
      [],
      { targets: [3, 3], exact: true, when: profile.prune !== null },
    ),
    ...edge(3, `raw log_alpha exactly at the clip max ${clip?.max}: the clip gradient passes`, [], {
      targets: [clip?.max ?? 0, clip?.max ?? 0],
      exact: true,
      when: clip?.max != null,
    }),
    ...edge(4, `raw log_alpha exactly at the clip min ${clip?.min}: the clip gradient passes`, [], {
      targets: [clip?.min ?? 0, clip?.min ?? 0],
      exact: true,
      when: clip?.min != null,
    }),
    ...edge(5, 'raw log_alpha 9 and -9: beyond [-8, 8], inside [-10, 10]', [], {
      targets: [9, -9],
    }),
    ...edge(6, 'raw log_alpha 11 and -11: beyond every clip', [], { targets: [11, -11] }),
    ...edge(7, 'huge and tiny alpha: raw log_alpha 20 and -20', [], { targets: [20, -20] }),
    ...edge(8, 'x = 0: variance 0, the output is mean + sqrt(sqrtEps) * eps', ['zero_input'], {
      zeroX: true,
    }),
    ...edge(9, 'every size 1', ['one_element'], {
      dims: conv
        ? { kind: 'conv2d', n: 1, h: 1, w: 1, cin: 1, kh: 1, kw: 1, cout: 1 }
        : { kind: 'dense', batch: 1, in: 1, out: 1 },
    }),
    ...edge(
      10,
      conv
        ? 'cin = 0: empty sums, mean = bias, variance = 0'
        : 'in = 0: empty sums, mean = bias, variance = 0',
      ['empty_sum'],
      {
        dims: { ...base, ...(conv ? { cin: 0 } : { in: 0 }) },
        ...(vd ? { noiseShape: [] } : {}),
      },
    ),
    ...edge(
      11,
      'train_clip on, with pruned weights (raw log_alpha 5): the mask enters the training forward',
      [],
      { targets: [5, 5, -1], trainClip: true, when: train },
    ),
    ...edge(12, 'train_clip off, the same kind of weights: no mask in training', [], {
      targets: [5, 5, -1],
      trainClip: false,
      when: train,
    }),
    ...edge(13, 'eps = 0: the output is the mean', ['eps_zero'], { zeroEps: true, when: train }),
    ...edge(21, 'one draw (S = 1): the predictive is the training forward of that draw', [], {
      samples: 1,
      when: mc,
    }),
    ...edge(
      22,
      'eight draws of one example with three outputs: the average of softmaxes is not the softmax of the mean',
      [],
      { samples: 8, dims: { kind: 'dense', batch: 1, in: 3, out: 3 }, when: mc },
    ),
  ];
  if (vd) {
    const thetaShape = shapes(base).theta;
    const perInput = conv ? [1, 1, thetaShape[2]!, 1] : [thetaShape[0]!, 1];
    edges.push(
      ...edge(14, 'VD log_alpha a scalar (one per layer)', [], { noiseShape: [] }),
      ...edge(15, `VD log_alpha one per input unit ([${perInput.join(', ')}])`, [], {
        noiseShape: perInput,
      }),
      ...edge(16, 'VD log_alpha one per weight', [], { noiseShape: thetaShape }),
    );
  }
  if (conv) {
    const c = (over: Partial<ConvDims>): ConvDims => ({ ...(base as ConvDims), ...over });
    edges.push(
      ...edge(
        17,
        "padding 'same', stride 1, kernel 2x3 on 4x5: the extra row and column go at the bottom and right",
        [],
        { dims: c({ h: 4, w: 5, kh: 2, kw: 3, padding: 'same', stride: 1 }) },
      ),
      ...edge(
        18,
        "padding 'valid', stride 2 on 5x5, kernel 2x2: the last row and column are never read",
        [],
        {
          dims: c({ h: 5, w: 5, padding: 'valid', stride: 2 }),
        },
      ),
      ...edge(
        19,
        "padding 'same', stride 2, kernel 3x3 on 6x5: asymmetric padding on one axis only",
        [],
        {
          dims: c({ h: 6, w: 5, kh: 3, kw: 3, padding: 'same', stride: 2 }),
        },
      ),
      ...edge(20, "stride [1, 2] (a pair), padding 'same', batch 2", [], {
        dims: c({ n: 2, h: 3, w: 4, stride: [1, 2], padding: 'same' }),
      }),
      ...edge(
        21,
        "padding 'same', stride 2, kernel 3x3 on 8x8: TensorFlow pads 0 before and 1 after, Lasagne 1 and 1 (the profile's samePadding)",
        [],
        { dims: c({ h: 8, w: 8, cin: 1, cout: 1, kh: 3, kw: 3, padding: 'same', stride: 2 }) },
      ),
    );
  }
  if (realisticSizes(profile)) {
    // Realistic sizes (spec/golden.md#cases): dimensions past 4, 8, 16 and 32, where a
    // vectorised or tiled kernel's remainder loop starts; raw log_alpha over every clip.
    const big = { coarse: true, spread: RANDOM_SPREAD, ...(mc ? { samples: 2 } : {}) };
    const evalOnly = op.name.endsWith('.eval');
    if (conv) {
      edges.push(
        ...edge(
          30,
          "realistic size: 16x16 input, 8 channels in, 4 out, kernel 3x3, stride 2, padding 'same' (even input: TensorFlow pads 0 before, 1 after)",
          ['realistic_size'],
          {
            ...big,
            dims: {
              kind: 'conv2d',
              n: 1,
              h: 16,
              w: 16,
              cin: 8,
              kh: 3,
              kw: 3,
              cout: 4,
              stride: 2,
              padding: 'same',
            },
          },
        ),
        ...edge(
          31,
          "realistic size: 17x17 input (odd), 8 channels in, 1 out, kernel 3x3, stride 1, padding 'valid'",
          ['realistic_size'],
          {
            ...big,
            // Only in svd.conv2d.eval, whose outputs are short decimals (budget: spec/golden.md#cases).
            when: evalOnly && profile.algorithm === 'svd',
            dims: {
              kind: 'conv2d',
              n: 1,
              h: 17,
              w: 17,
              cin: 8,
              kh: 3,
              kw: 3,
              cout: 1,
              stride: 1,
              padding: 'valid',
            },
          },
        ),
      );
    } else {
      edges.push(
        ...edge(30, 'realistic size: batch 5, in 9, out 33', ['realistic_size'], {
          ...big,
          dims: { kind: 'dense', batch: 5, in: 9, out: 33 },
        }),
        ...edge(31, 'realistic size: batch 2, in 33, out 5', ['realistic_size'], {
          ...big,
          // Only in svd.dense.eval, whose outputs are short decimals (budget: spec/golden.md#cases).
          when: evalOnly && profile.algorithm === 'svd',
          dims: { kind: 'dense', batch: 2, in: 33, out: 5 },
        }),
      );
    }
  }
  for (let k = 0; k < RANDOM_CASES; k++) {
    edges.push({
      id: RANDOM_ID_BASE + k,
      build: (rng) => {
        let d: Dims;
        if (conv) {
          const kh = rng.int(1, 3);
          const kw = rng.int(1, 3);
          const padding = rng.pick([undefined, 'valid', 'same'] as const);
          const stride = rng.pick([undefined, 1, 2, [1, 2], [2, 1]] as const);
          const lo = padding === 'same' ? 1 : 0;
          d = {
            kind: 'conv2d',
            n: rng.int(1, 2),
            h: lo === 1 ? rng.int(1, 5) : rng.int(kh, kh + 2),
            w: lo === 1 ? rng.int(1, 5) : rng.int(kw, kw + 2),
            cin: rng.int(1, 2),
            kh,
            kw,
            cout: rng.int(1, 2),
            ...(stride === undefined
              ? {}
              : { stride: Array.isArray(stride) ? ([...stride] as [number, number]) : stride }),
            ...(padding === undefined ? {} : { padding }),
          };
        } else {
          d = { kind: 'dense', batch: rng.int(1, 3), in: rng.int(1, 4), out: rng.int(1, 3) };
        }
        const thetaShape = shapes(d).theta;
        const trainClip = train ? rng.pick([undefined, true, false] as const) : undefined;
        return {
          comment: 'random shapes and values',
          flags: ['random'],
          values: layerValues(rng, profile, d, {
            ...(vd ? { noiseShape: vdNoiseShape(rng, thetaShape) } : {}),
            ...(trainClip === undefined ? {} : { trainClip }),
            ...(mc ? { samples: rng.int(1, 4) } : {}),
            spread: RANDOM_SPREAD,
          }),
        };
      },
    });
  }
  return edges;
}
