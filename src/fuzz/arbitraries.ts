/**
 * The generators of `vdspec fuzz` (spec/fuzz.md#generators): one fast-check
 * arbitrary per op family, producing the decoded inputs of one case of `op`
 * under `profile`, in the catalogue's order.
 *
 * Shapes are drawn first and the values from them (`chain`), so a failure
 * shrinks its sizes first (to a handful of elements) and then its values
 * (towards 0). Every value lies on a power-of-two grid, so a float32 port
 * starts from exactly the reference's inputs, as in the golden set.
 * Weights are a mix: random ones (theta on [-2, 2], raw log_alpha on
 * [-12, 12], sometimes [-30, 30]) kept EDGE_MARGIN away from every clip bound
 * and the threshold, where a correct float32 port may land on the other
 * side; weights exactly on the profile's own threshold and clip bounds
 * (theta = +-1, the noise that lands there under the profile's formula);
 * and theta = 0 and -0.
 */
import fc from 'fast-check';
import { family, orderedInputs } from '../golden/cases/draft.js';
import {
  avoidEdges,
  exactAtUnitTheta,
  exactNoiseFor,
  logThetaTerm,
  noiseFor,
  EDGE_MARGIN,
  LOG_ALPHA_EDGES,
} from '../golden/cases/values.js';
import { NOISE, type OpSpec } from '../ops.js';
import type { LayerKind, Profile } from '../profiles.js';
import type { Conv2dStride } from '../reference/conv2d.js';
import { sizeOf, type Tensor } from '../tensor.js';

export type Inputs = Record<string, unknown>;

/** Size bounds of the generators (documented in spec/fuzz.md#generators). */
export const FUZZ_BOUNDS = {
  denseBatch: 8,
  denseIn: 40,
  denseOut: 40,
  convBatch: 2,
  convSize: 12,
  convChannelsIn: 5,
  convChannelsOut: 6,
  convKernel: 4,
  klSize: 8,
  classes: 10,
  samples: 4,
} as const;

/** Values k * step for integers k with lo <= k * step <= hi; shrinks towards 0. */
function grid(lo: number, hi: number, step: number): fc.Arbitrary<number> {
  return fc
    .integer({ min: Math.ceil(lo / step), max: Math.floor(hi / step) })
    .map((k) => k * step + 0);
}

function tensor(shape: readonly number[], value: fc.Arbitrary<number>): fc.Arbitrary<Tensor> {
  const n = sizeOf(shape);
  return fc
    .array(value, { minLength: n, maxLength: n })
    .map((data) => ({ shape: [...shape], data }));
}

/** One weight before it becomes (theta, noise). */
type WeightDraw =
  | { readonly kind: 'random'; readonly theta: number; readonly la: number }
  | { readonly kind: 'edge'; readonly target: number; readonly negative: boolean }
  | { readonly kind: 'zero'; readonly negative: boolean; readonly la: number };

/** The raw log_alpha values a weight may be put on exactly: the profile's own threshold and clip bounds. */
export function exactEdges(profile: Profile, layer: LayerKind): number[] {
  if (!exactAtUnitTheta(profile, layer)) return [];
  const clip = profile[layer].logAlpha.clip;
  const edges = [profile.prune?.threshold, clip?.min, clip?.max].filter(
    (v): v is number => typeof v === 'number',
  );
  return [...new Set(edges)];
}

const rawLogAlpha = fc.oneof(
  { weight: 9, arbitrary: grid(-12, 12, 1 / 16) },
  { weight: 1, arbitrary: grid(-30, 30, 1 / 4) },
);

function weightDraw(profile: Profile, layer: LayerKind): fc.Arbitrary<WeightDraw> {
  const edges = exactEdges(profile, layer);
  const random = fc
    .record({ theta: grid(-2, 2, 1 / 256), la: rawLogAlpha })
    .map((w): WeightDraw => ({ kind: 'random', ...w }));
  const zero = fc
    .record({ negative: fc.boolean(), la: grid(-12, 4, 1 / 64) })
    .map((w): WeightDraw => ({ kind: 'zero', ...w }));
  const options: { weight: number; arbitrary: fc.Arbitrary<WeightDraw> }[] = [
    { weight: 12, arbitrary: random },
    { weight: 1, arbitrary: zero },
  ];
  if (edges.length > 0) {
    options.push({
      weight: 1,
      arbitrary: fc
        .record({ target: fc.constantFrom(...edges), negative: fc.boolean() })
        .map((w): WeightDraw => ({ kind: 'edge', ...w })),
    });
  }
  return fc.oneof(...options);
}

/** VD's log_alpha values: [-8, 1] on a 1/32 grid, off the edges, or exactly on the clip bounds. */
function vdLogAlpha(profile: Profile, layer: LayerKind): fc.Arbitrary<number> {
  const nudged = grid(-8, 1, 1 / 32).map((v) => {
    let u = v;
    while (LOG_ALPHA_EDGES.some((e) => Math.abs(u - e) < EDGE_MARGIN)) u += 1 / 16;
    return u;
  });
  const edges = exactEdges(profile, layer);
  return edges.length === 0
    ? nudged
    : fc.oneof(
        { weight: 12, arbitrary: nudged },
        { weight: 1, arbitrary: fc.constantFrom(...edges) },
      );
}

/** VD's noise shape for theta's: a scalar, one per input unit, or theta's own. */
function vdNoiseShape(kind: 0 | 1 | 2, shape: readonly number[]): number[] {
  if (kind === 0) return [...shape];
  if (kind === 1) return [];
  return shape.length === 2 ? [shape[0]!, 1] : [1, 1, shape[2]!, 1];
}

/** theta and the noise parameter of `shape` (VD: the noise of `noiseKind`'s shape). */
function weightsArbitrary(
  profile: Profile,
  layer: LayerKind,
  shape: readonly number[],
  noiseKind: 0 | 1 | 2,
): fc.Arbitrary<{ theta: Tensor; noise: Tensor }> {
  const n = sizeOf(shape);
  if (profile[layer].logAlpha.form === 'learned') {
    const noiseShape = vdNoiseShape(noiseKind, shape);
    const thetaValue = fc.oneof(
      { weight: 12, arbitrary: grid(-2, 2, 1 / 256) },
      { weight: 1, arbitrary: fc.constantFrom(0, -0) },
    );
    return fc.record({
      theta: tensor(shape, thetaValue),
      noise: tensor(noiseShape, vdLogAlpha(profile, layer)),
    });
  }
  return fc.array(weightDraw(profile, layer), { minLength: n, maxLength: n }).map((draws) => {
    const theta: number[] = [];
    const noise: number[] = [];
    const fixed = new Set<number>();
    draws.forEach((d, i) => {
      if (d.kind === 'random') {
        theta.push(d.theta);
        noise.push(
          Number.isFinite(logThetaTerm(d.theta, profile, layer))
            ? noiseFor(d.la, d.theta, profile, layer)
            : d.la,
        );
      } else if (d.kind === 'zero') {
        theta.push(d.negative ? -0 : 0);
        noise.push(d.la);
      } else {
        const t = d.negative ? -1 : 1;
        theta.push(t);
        noise.push(
          exactNoiseFor(d.target, t, profile, layer) ?? noiseFor(d.target, t, profile, layer),
        );
        fixed.add(i);
      }
    });
    const w = {
      theta: { shape: [...shape], data: theta },
      noise: { shape: [...shape], data: noise },
    };
    avoidEdges(w, profile, layer, fixed);
    return w;
  });
}

/** x: on [-4, 4] (grid 1/64), times 2^e for a magnitude e of 0, -10 or 10. */
function xArbitrary(shape: readonly number[], magnitude: number): fc.Arbitrary<Tensor> {
  return tensor(shape, grid(-4, 4, 1 / 64)).map((t) => ({
    shape: t.shape,
    data: t.data.map((v) => v * 2 ** magnitude),
  }));
}

// ---------------------------------------------------------------------------
// Layers

interface LayerDims {
  readonly kind: LayerKind;
  readonly x: number[];
  readonly theta: number[];
  readonly out: number[];
  readonly stride?: Conv2dStride;
  readonly padding?: 'valid' | 'same';
  readonly noiseKind: 0 | 1 | 2;
  readonly magnitude: number;
  readonly samples: number;
  readonly trainClip: boolean | undefined;
}

const magnitude = fc.constantFrom(0, -10, 10);
const noiseKind = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const trainClip = fc.constantFrom<boolean | undefined>(undefined, true, false);

function outSize(n: number, k: number, s: number, padding: 'valid' | 'same' | undefined): number {
  return padding === 'same' ? Math.ceil(n / s) : Math.floor((n - k) / s) + 1;
}

function layerDims(kind: LayerKind): fc.Arbitrary<LayerDims> {
  const B = FUZZ_BOUNDS;
  const common = {
    noiseKind,
    magnitude,
    samples: fc.integer({ min: 1, max: B.samples }),
    trainClip,
  };
  if (kind === 'dense') {
    return fc
      .record({
        batch: fc.integer({ min: 1, max: B.denseBatch }),
        in: fc.integer({ min: 0, max: B.denseIn }),
        out: fc.integer({ min: 1, max: B.denseOut }),
        ...common,
      })
      .map((d) => ({
        kind,
        x: [d.batch, d.in],
        theta: [d.in, d.out],
        out: [d.batch, d.out],
        noiseKind: d.noiseKind,
        magnitude: d.magnitude,
        samples: d.samples,
        trainClip: d.trainClip,
      }));
  }
  return fc
    .record({
      n: fc.integer({ min: 1, max: B.convBatch }),
      h: fc.integer({ min: 1, max: B.convSize }),
      w: fc.integer({ min: 1, max: B.convSize }),
      cin: fc.integer({ min: 0, max: B.convChannelsIn }),
      cout: fc.integer({ min: 1, max: B.convChannelsOut }),
      kh: fc.integer({ min: 1, max: B.convKernel }),
      kw: fc.integer({ min: 1, max: B.convKernel }),
      stride: fc.constantFrom<Conv2dStride | undefined>(undefined, 1, 2, [1, 2], [2, 1], 3),
      padding: fc.constantFrom<'valid' | 'same' | undefined>(undefined, 'same', 'valid'),
      ...common,
    })
    .map((d) => {
      // 'valid' needs the kernel to fit: the input grows to it.
      const h = d.padding === 'same' ? d.h : Math.max(d.h, d.kh);
      const w = d.padding === 'same' ? d.w : Math.max(d.w, d.kw);
      const [sh, sw] =
        d.stride === undefined
          ? [1, 1]
          : typeof d.stride === 'number'
            ? [d.stride, d.stride]
            : d.stride;
      return {
        kind,
        x: [d.n, h, w, d.cin],
        theta: [d.kh, d.kw, d.cin, d.cout],
        out: [d.n, outSize(h, d.kh, sh, d.padding), outSize(w, d.kw, sw, d.padding), d.cout],
        ...(d.stride === undefined ? {} : { stride: d.stride }),
        ...(d.padding === undefined ? {} : { padding: d.padding }),
        noiseKind: d.noiseKind,
        magnitude: d.magnitude,
        samples: d.samples,
        trainClip: d.trainClip,
      };
    });
}

function layerArbitrary(op: OpSpec, profile: Profile): fc.Arbitrary<Inputs> {
  const kind = op.layer!;
  const mc = op.name.endsWith('.predict_mc');
  const train = op.name.endsWith('.train') || op.name.endsWith('.train_vjp') || mc;
  return layerDims(kind).chain((d) => {
    const epsShape = mc ? [d.samples, ...d.out] : d.out;
    return fc
      .record({
        w: weightsArbitrary(profile, kind, d.theta, d.noiseKind),
        x: xArbitrary(d.x, d.magnitude),
        bias: tensor([d.theta[d.theta.length - 1]!], grid(-1, 1, 1 / 64)),
        eps: tensor(epsShape, grid(-3, 3, 1 / 64)),
        cotangent: tensor(d.out, grid(-2, 2, 1 / 64)),
      })
      .map((v) => ({
        x: v.x,
        theta: v.w.theta,
        [NOISE]: v.w.noise,
        bias: v.bias,
        ...(d.stride === undefined ? {} : { stride: d.stride }),
        ...(d.padding === undefined ? {} : { padding: d.padding }),
        eps: v.eps,
        ...(train && d.trainClip !== undefined ? { train_clip: d.trainClip } : {}),
        cotangent: v.cotangent,
      }));
  });
}

// ---------------------------------------------------------------------------
// Per-weight ops, variant A, KL, objective, schedule

function weightOpArbitrary(profile: Profile): fc.Arbitrary<Inputs> {
  const B = FUZZ_BOUNDS;
  const shape = fc.oneof(
    fc
      .tuple(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 10 }))
      .map(([i, o]) => ({ layer: 'dense' as const, shape: [i, o] })),
    fc
      .tuple(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: B.convChannelsIn }),
        fc.integer({ min: 1, max: B.convChannelsOut }),
      )
      .map((s) => ({ layer: 'conv2d' as const, shape: s })),
  );
  return fc.record({ s: shape, noiseKind }).chain(({ s, noiseKind: k }) =>
    weightsArbitrary(profile, s.layer, s.shape, k).map((w) => ({
      theta: w.theta,
      [NOISE]: w.noise,
      ...(s.layer === 'conv2d' ? { layer: 'conv2d' } : {}),
    })),
  );
}

function denseAArbitrary(op: OpSpec, profile: Profile): fc.Arbitrary<Inputs> {
  const B = FUZZ_BOUNDS;
  const kl = op.name === 'vd.dense_a.kl';
  return fc
    .record({
      batch: fc.integer({ min: 0, max: B.denseBatch }),
      in: fc.integer({ min: 0, max: B.denseIn }),
      out: fc.integer({ min: 1, max: B.denseOut }),
      scalar: fc.boolean(),
      magnitude,
    })
    .chain((d) =>
      fc
        .record({
          x: xArbitrary([d.batch, d.in], d.magnitude),
          theta: tensor([d.in, d.out], grid(-2, 2, 1 / 256)),
          la: tensor(d.scalar ? [] : [d.in], vdLogAlpha(profile, 'dense')),
          bias: tensor([d.out], grid(-1, 1, 1 / 64)),
          eps: tensor([d.batch, d.in], grid(-3, 3, 1 / 64)),
          cotangent: tensor([d.batch, d.out], grid(-2, 2, 1 / 64)),
        })
        .map((v) =>
          kl
            ? { theta: v.theta, [NOISE]: v.la }
            : {
                x: v.x,
                theta: v.theta,
                [NOISE]: v.la,
                bias: v.bias,
                eps: v.eps,
                cotangent: v.cotangent,
              },
        ),
    );
}

function klArbitrary(op: OpSpec, profile: Profile): fc.Arbitrary<Inputs> {
  const B = FUZZ_BOUNDS;
  // The VD cubic is fitted for alpha <= 1 and has no value at +inf (spec/kl.md).
  const cubic = op.name === 'kl.approx' && profile.kl.approximation === 'vd_cubic';
  const hi = cubic ? 0 : 20;
  const specials = cubic
    ? [-10, -8, 0, -0, -Infinity]
    : [-10, -8, 0, -0, 3, 8, 10, Infinity, -Infinity, -8.0625, -7.9375];
  const value = fc.oneof(
    { weight: 10, arbitrary: grid(-20, hi, 1 / 32) },
    { weight: 1, arbitrary: fc.constantFrom(...specials) },
  );
  const shape = fc.oneof(
    fc.constant<number[]>([]),
    fc.tuple(fc.integer({ min: 0, max: B.klSize })).map((s) => [...s]),
    fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })).map((s) => [...s]),
  );
  return shape.chain((s) => tensor(s, value).map((t) => ({ log_alpha: t })));
}

function logitsArbitrary(): fc.Arbitrary<{ logits: Tensor; labels: number[] }> {
  return fc
    .record({
      batch: fc.integer({ min: 1, max: 6 }),
      classes: fc.integer({ min: 1, max: FUZZ_BOUNDS.classes }),
      large: fc.boolean(),
    })
    .chain((d) =>
      fc.record({
        logits: tensor([d.batch, d.classes], grid(-8, 8, 1 / 32)).map((t) => ({
          shape: t.shape,
          data: t.data.map((v) => (d.large ? v * 2048 : v)),
        })),
        labels: fc.array(fc.integer({ min: 0, max: d.classes - 1 }), {
          minLength: d.batch,
          maxLength: d.batch,
        }),
      }),
    );
}

function sgvbArbitrary(): fc.Arbitrary<Inputs> {
  return fc
    .record({
      l: logitsArbitrary(),
      train_size: fc.integer({ min: 1, max: 60000 }),
      kl_weight: grid(0, 1, 1 / 64),
      kl: grid(-100, 5000, 1 / 8),
    })
    .map(({ l, ...rest }) => ({ ...l, ...rest }));
}

function scheduleArbitrary(): fc.Arbitrary<Inputs> {
  return fc
    .oneof(
      { weight: 10, arbitrary: grid(0, 40, 1 / 128) },
      { weight: 1, arbitrary: fc.constantFrom(0, 5, 20, 4.9921875, 19.9921875, 1000) },
    )
    .map((epoch) => ({ epoch }));
}

/** The arbitrary of `op`'s inputs under `profile`, in the catalogue's order. */
export function caseArbitrary(op: OpSpec, profile: Profile): fc.Arbitrary<Inputs> {
  let values: fc.Arbitrary<Inputs>;
  switch (family(op)) {
    case 'layer':
      values = layerArbitrary(op, profile);
      break;
    case 'weights':
      values = weightOpArbitrary(profile);
      break;
    case 'dense_a':
    case 'dense_a_kl':
      values = denseAArbitrary(op, profile);
      break;
    case 'kl_exact':
    case 'kl_approx':
      values = klArbitrary(op, profile);
      break;
    case 'cross_entropy':
      values = logitsArbitrary();
      break;
    case 'sgvb':
      values = sgvbArbitrary();
      break;
    case 'schedule':
      values = scheduleArbitrary();
      break;
  }
  return values.map((v) => orderedInputs(op, profile, v));
}
