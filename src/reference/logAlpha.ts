/**
 * Reference: from a layer's parameters to per-weight quantities.
 *
 * spec/log-alpha.md. Everything a layer needs per weight, in float64:
 * log_alpha before and after the clip, the keep mask, the variance that
 * enters the local reparameterization, and their partial derivatives. The
 * dense and conv2d layers only add the linear algebra on top.
 */
import { VdspecError } from '../errors.js';
import { klLayerConventions, type LayerKind, type Profile } from '../profiles.js';
import { checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';

/** Per-weight values, all flat arrays in theta's row-major order. */
export interface WeightStatistics {
  readonly shape: readonly number[];
  /** log_alpha before the clip (may be +-Infinity). */
  readonly logAlphaRaw: number[];
  /** log_alpha after the profile's clip: what the KL, the mask and the variance use. */
  readonly logAlpha: number[];
  /** 1 where the weight is kept, 0 where it is pruned (all 1 when the profile does not prune). */
  readonly mask: number[];
  /** The per-weight variance of the local reparameterization. */
  readonly variance: number[];
  /** d logAlpha / d theta (through the clip). */
  readonly dLogAlphaDTheta: number[];
  /** d logAlpha / d noise, before any reduction to the noise parameter's shape. */
  readonly dLogAlphaDNoise: number[];
  /** d variance / d theta. */
  readonly dVarianceDTheta: number[];
  /** d variance / d noise, before any reduction to the noise parameter's shape. */
  readonly dVarianceDNoise: number[];
}

/**
 * NumPy broadcasting of `shape` to `target`, as an index map: for each flat
 * index of `target`, the flat index of `shape` it reads. Null when the shapes
 * do not broadcast.
 */
export function broadcastIndex(
  shape: readonly number[],
  target: readonly number[],
): number[] | null {
  if (shape.length > target.length) return null;
  const lead = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d !== 1 && d !== target[lead + i]) return null;
  }
  const n = sizeOf(target);
  const out = new Array<number>(n);
  const idx = new Array<number>(target.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    let src = 0;
    for (let i = 0; i < shape.length; i++) {
      const d = shape[i]!;
      src = src * d + (d === 1 ? 0 : idx[lead + i]!);
    }
    out[flat] = src;
    for (let a = target.length - 1; a >= 0; a--) {
      idx[a] = idx[a]! + 1;
      if (idx[a]! < target[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Sum a full-size gradient back onto a broadcast parameter of shape `shape`. */
export function sumToShape(
  values: readonly number[],
  target: readonly number[],
  shape: readonly number[],
): Tensor {
  const index = broadcastIndex(shape, target);
  if (index === null) {
    throw new VdspecError(
      'shape_mismatch',
      `${shapeToString(shape)} does not broadcast to ${shapeToString(target)}`,
      'shape',
    );
  }
  if (values.length !== index.length) {
    throw new VdspecError('shape_mismatch', `expected ${index.length} values`, 'values');
  }
  const data = new Array<number>(sizeOf(shape)).fill(0);
  for (let i = 0; i < index.length; i++) data[index[i]!]! += values[i]!;
  return { shape: [...shape], data };
}

/**
 * a * b, except that an exact 0 wins over an infinite factor: a partial that
 * is exactly 0 (clip inactive) must give 0, not inf * 0 = NaN (spec/log-alpha.md, hard zero).
 */
function productWithHardZero(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : a * b;
}

/**
 * The gradient of clip(x, min, max): 1 strictly inside, 0 strictly outside,
 * and the clip's `gradientAtBound` (default 1) exactly on a bound.
 */
export function clipGradient(x: number, clip: Profile['dense']['logAlpha']['clip']): number {
  if (!Number.isFinite(x)) return 0;
  if (clip === null) return 1;
  if (clip.min !== null && x < clip.min) return 0;
  if (clip.max !== null && x > clip.max) return 0;
  if (x === clip.min || x === clip.max) return clip.gradientAtBound ?? 1;
  return 1;
}

/**
 * The profile as the KL sees it: each layer kind's `klLogAlpha`, where set,
 * in place of its forward log_alpha (spec/objective.md#kllayer).
 */
export function klProfile(profile: Profile): Profile {
  if (profile.dense.klLogAlpha === null && profile.conv2d.klLogAlpha === null) return profile;
  return {
    ...profile,
    dense: klLayerConventions(profile.dense),
    conv2d: klLayerConventions(profile.conv2d),
  };
}

export function clipValue(x: number, clip: Profile['dense']['logAlpha']['clip']): number {
  if (clip === null) return x;
  let y = x;
  if (clip.min !== null && y < clip.min) y = clip.min;
  if (clip.max !== null && y > clip.max) y = clip.max;
  return y;
}

function isPruned(logAlpha: number, comparison: '>' | '>=', threshold: number): boolean {
  return comparison === '>' ? logAlpha > threshold : logAlpha >= threshold;
}

/** The name the spec gives the learned noise parameter under this profile. */
export function noiseName(profile: Profile): string {
  return profile.noiseParameter;
}

/**
 * Validate `theta` and the noise parameter for a layer and return the
 * per-weight statistics. The noise parameter must have theta's shape, except
 * for VD (`learned` log_alpha), where it may be any shape that broadcasts to
 * theta's (a scalar [], one per input unit, one per weight).
 */
export function weightStatistics(
  thetaIn: unknown,
  noiseIn: unknown,
  profile: Profile,
  layer: LayerKind,
): WeightStatistics {
  if (layer !== 'dense' && layer !== 'conv2d') {
    throw new VdspecError('invalid_argument', `unknown layer kind ${String(layer)}`, 'layer');
  }
  const conventions = profile[layer];
  const form = conventions.logAlpha.form;
  const theta = checkTensor('theta', thetaIn);
  const noise = checkTensor(noiseName(profile), noiseIn);
  const index = broadcastIndex(noise.shape, theta.shape);
  const sameShape =
    noise.shape.length === theta.shape.length && noise.shape.every((d, i) => d === theta.shape[i]);
  if (index === null || (form !== 'learned' && !sameShape)) {
    throw new VdspecError(
      'shape_mismatch',
      form === 'learned'
        ? `shape ${shapeToString(noise.shape)} does not broadcast to theta's ${shapeToString(theta.shape)}`
        : `expected theta's shape ${shapeToString(theta.shape)}, got ${shapeToString(noise.shape)}`,
      noiseName(profile),
    );
  }

  const n = theta.data.length;
  const { thetaEps, clip } = conventions.logAlpha;
  // d log_sigma2 / d noise: 2 when the learned parameter is log_sigma.
  const noiseScale = profile.noiseParameter === 'log_sigma' ? 2 : 1;

  const logAlphaRaw = new Array<number>(n);
  const logAlpha = new Array<number>(n);
  const mask = new Array<number>(n);
  const variance = new Array<number>(n);
  const dLogAlphaDTheta = new Array<number>(n);
  const dLogAlphaDNoise = new Array<number>(n);
  const dVarianceDTheta = new Array<number>(n);
  const dVarianceDNoise = new Array<number>(n);

  for (let i = 0; i < n; i++) {
    const t = theta.data[i]!;
    const v = noise.data[index[i]!]!;
    const logSigma2 = noiseScale * v;

    // Raw log_alpha and its partials before the clip.
    let raw: number;
    let rawDTheta: number;
    let rawDNoise: number;
    if (form === 'learned') {
      raw = v;
      rawDTheta = 0;
      rawDNoise = 1;
    } else if (form === 'log_theta2') {
      raw = logSigma2 - Math.log(t * t + thetaEps);
      rawDTheta = t === 0 ? 0 : (-2 * t) / (t * t + thetaEps);
      rawDNoise = noiseScale;
    } else {
      raw = logSigma2 - 2 * Math.log(Math.abs(t) + thetaEps);
      rawDTheta = t === 0 ? 0 : (-2 * Math.sign(t)) / (Math.abs(t) + thetaEps);
      rawDNoise = noiseScale;
    }
    const g = clipGradient(raw, clip);
    const clipped = clipValue(raw, clip);
    logAlphaRaw[i] = raw;
    logAlpha[i] = clipped;
    // Written as a branch, not a product: outside the clip rawDTheta may be infinite (theta subnormal).
    dLogAlphaDTheta[i] = g === 0 ? 0 : rawDTheta;
    dLogAlphaDNoise[i] = g === 0 ? 0 : rawDNoise;

    const prune = profile.prune;
    if (prune === null) {
      mask[i] = 1;
    } else {
      const compared = prune.from === 'clipped' ? clipped : raw;
      mask[i] = isPruned(compared, prune.comparison, prune.threshold) ? 0 : 1;
    }

    if (conventions.variance === 'sigma2') {
      const s2 = Math.exp(logSigma2);
      variance[i] = s2;
      dVarianceDTheta[i] = 0;
      dVarianceDNoise[i] = noiseScale * s2;
    } else if (conventions.variance === 'sigma2_rebuilt') {
      // exp(clipped + log(theta^2 + eps)): exp(log_sigma2) where the clip passes (its theta
      // partials cancel exactly), exp(bound) * (theta^2 + eps) beyond it.
      const passes = dLogAlphaDNoise[i] !== 0;
      const s2 = passes ? Math.exp(logSigma2) : Math.exp(clipped) * (t * t + thetaEps);
      variance[i] = s2;
      dVarianceDTheta[i] = passes || t === 0 ? 0 : 2 * Math.exp(clipped) * t;
      dVarianceDNoise[i] = passes ? noiseScale * s2 : 0;
    } else if (clipped === Infinity) {
      // Only reachable without a clip max, where theta^2 underflowed: alpha * theta^2 is sigma2 itself.
      variance[i] = Math.exp(logSigma2);
      dVarianceDTheta[i] = 0;
      dVarianceDNoise[i] = 0;
    } else {
      const alpha = Math.exp(clipped);
      // exp(clipped) alone can overflow where alpha * theta^2 does not (custom profiles without a clip).
      const s2 = alpha === Infinity ? Math.exp(clipped + Math.log(t * t)) : alpha * t * t;
      variance[i] = s2;
      const direct = t === 0 ? 0 : alpha === Infinity ? (2 * s2) / t : 2 * alpha * t;
      // d(alpha theta^2)/dtheta = 2 alpha theta + alpha theta^2 dlogAlpha/dtheta. Inside the clip the
      // second term cancels all of the first but a factor eps/(theta^2 + eps) (log_theta2) or
      // eps/(|theta| + eps) (log_abs_theta); written that way the additive reparameterization's
      // zero is exact instead of a rounding residue.
      const insideClipThroughTheta = dLogAlphaDTheta[i] !== 0 && form !== 'learned';
      const share = !insideClipThroughTheta
        ? 1
        : form === 'log_theta2'
          ? thetaEps / (t * t + thetaEps)
          : thetaEps / (Math.abs(t) + thetaEps);
      dVarianceDTheta[i] = productWithHardZero(direct, share);
      dVarianceDNoise[i] = productWithHardZero(s2, dLogAlphaDNoise[i]!);
    }
  }
  return {
    shape: [...theta.shape],
    logAlphaRaw,
    logAlpha,
    mask,
    variance,
    dLogAlphaDTheta,
    dLogAlphaDNoise,
    dVarianceDTheta,
    dVarianceDNoise,
  };
}

/** Clipped log_alpha as a tensor of theta's shape (op `<alg>.log_alpha`). */
export function logAlpha(
  theta: unknown,
  noise: unknown,
  profile: Profile,
  layer: LayerKind,
): Tensor {
  const s = weightStatistics(theta, noise, profile, layer);
  return { shape: s.shape, data: s.logAlpha };
}

/** The keep mask (1 kept, 0 pruned) as a tensor of theta's shape (op `<alg>.mask`). */
export function keepMask(
  theta: unknown,
  noise: unknown,
  profile: Profile,
  layer: LayerKind,
): Tensor {
  const s = weightStatistics(theta, noise, profile, layer);
  return { shape: s.shape, data: s.mask };
}

/** Keep mask straight from a log_alpha tensor, with either of the profile's comparisons. */
export function maskFromLogAlpha(
  logAlphaIn: unknown,
  profile: Profile,
  which: 'forward' | 'report' | 'compression' = 'forward',
): Tensor {
  if (which !== 'forward' && which !== 'report' && which !== 'compression') {
    throw new VdspecError('invalid_argument', 'expected forward, report or compression', 'which');
  }
  const la = checkTensor('log_alpha', logAlphaIn, { allow: 'infinity' });
  const prune = profile.prune;
  if (prune === null) return { shape: la.shape, data: la.data.map(() => 1) };
  const comparison =
    which === 'forward'
      ? prune.comparison
      : which === 'report'
        ? prune.reportComparison
        : prune.compressionComparison;
  return {
    shape: la.shape,
    data: la.data.map((v) => (isPruned(v, comparison, prune.threshold) ? 0 : 1)),
  };
}

export interface LayerSparsity {
  readonly name: string;
  readonly kept: number;
  readonly total: number;
  /** pruned / total. */
  readonly fractionPruned: number;
  /** |W| / |W != 0| = total / kept; Infinity when nothing is kept. */
  readonly compression: number;
}

export interface SparsityReport {
  readonly layers: LayerSparsity[];
  readonly overall: LayerSparsity;
}

function layerSparsity(name: string, kept: number, total: number): LayerSparsity {
  return {
    name,
    kept,
    total,
    fractionPruned: total === 0 ? 0 : (total - kept) / total,
    compression: kept === 0 ? Infinity : total / kept,
  };
}

/** Sparsity statistics from each layer's keep mask (op `sparsity`). */
export function sparsity(layers: readonly { name: string; mask: unknown }[]): SparsityReport {
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new VdspecError('invalid_argument', 'expected a non-empty list of layers', 'layers');
  }
  let kept = 0;
  let total = 0;
  const rows = layers.map((layer, i) => {
    const mask = checkTensor(`layers[${i}].mask`, layer.mask);
    let k = 0;
    for (const m of mask.data) {
      if (m !== 0 && m !== 1) {
        throw new VdspecError(
          'invalid_argument',
          `mask values must be 0 or 1, got ${m}`,
          `layers[${i}].mask`,
        );
      }
      k += m;
    }
    kept += k;
    total += mask.data.length;
    return layerSparsity(layer.name, k, mask.data.length);
  });
  return { layers: rows, overall: layerSparsity('overall', kept, total) };
}
