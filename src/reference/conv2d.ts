/**
 * Reference: the conv2d layer of VD and SVD (spec/conv2d.md), in float64.
 *
 * Layout: input NHWC [n, h, w, cin], filter HWIO [kh, kw, cin, cout], bias
 * [cout], outputs NHWC [n, oh, ow, cout]. Cross-correlation (no filter flip),
 * TensorFlow's 'valid' / 'same' padding. Per-weight quantities (log_alpha, the
 * mask, the variance and their partials) come from weightStatistics; this
 * module only adds the convolutions and the chain rule through them.
 *
 * The convolutions are plain loops written to match the spec's index
 * formulas one to one, so that a reader can check them against the page.
 */
import { VdspecError } from '../errors.js';
import { getProfile, type Profile, type ProfileName } from '../profiles.js';
import { checkNumber, checkTensor, shapeToString, sizeOf, type Tensor } from '../tensor.js';
import { noiseName, sumToShape, weightStatistics, type WeightStatistics } from './logAlpha.js';

export type Conv2dPaddingMode = 'valid' | 'same';
/** How 'same' splits its padding (spec/conv2d.md#padding; `profile.samePadding`). */
export type SamePaddingRule = 'tensorflow' | 'lasagne';
/** One stride for both spatial axes, or [strideHeight, strideWidth]. */
export type Conv2dStride = number | readonly [number, number];

export interface Conv2dOptions {
  /** Default 1. */
  readonly stride?: Conv2dStride;
  /** Default 'valid'. */
  readonly padding?: Conv2dPaddingMode;
  /** How 'same' splits its padding; default 'tensorflow' (the layers use the profile's). */
  readonly samePadding?: SamePaddingRule;
  /** Apply the keep mask in the training forward; default profile.trainClipDefault. Eval ignores it. */
  readonly trainClip?: boolean;
}

export interface Conv2dEvalInputs {
  /** [n, h, w, cin] */
  readonly x: Tensor;
  /** [kh, kw, cin, cout] */
  readonly theta: Tensor;
  /** The profile's noise parameter (log_sigma2, log_sigma or log_alpha); theta's shape, or broadcastable to it for VD. */
  readonly noise: Tensor;
  /** [cout] */
  readonly bias: Tensor;
}

export interface Conv2dTrainInputs extends Conv2dEvalInputs {
  /** Standard-normal draws, the output's shape [n, oh, ow, cout]. */
  readonly eps: Tensor;
}

export interface Conv2dTrainResult {
  /** conv(x, theta_m) + bias */
  readonly mean: Tensor;
  /** conv(x*x, s2_m); no sqrtEps, no bias. */
  readonly variance: Tensor;
  /** mean + sqrt(variance + sqrtEps) * eps */
  readonly output: Tensor;
}

/** Cotangents of a loss w.r.t. the training results; `output` is required, the others add to it. */
export interface Conv2dTrainCotangent {
  /** d loss / d output, the output's shape. */
  readonly output: Tensor;
  readonly mean?: Tensor;
  readonly variance?: Tensor;
}

export interface Conv2dGradients {
  readonly x: Tensor;
  readonly theta: Tensor;
  /** The noise parameter's own shape (summed over broadcast axes). */
  readonly noise: Tensor;
  readonly bias: Tensor;
}

/** Output size and zero padding of one spatial axis. */
export interface AxisGeometry {
  readonly output: number;
  readonly padBefore: number;
  readonly padAfter: number;
}

/** Everything the loops need, resolved once. */
export interface Conv2dGeometry {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly inChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly outChannels: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly outHeight: number;
  readonly outWidth: number;
  /** Rows of zeros above the input (top). */
  readonly padTop: number;
  readonly padBottom: number;
  /** Columns of zeros left of the input. */
  readonly padLeft: number;
  readonly padRight: number;
}

// ---------------------------------------------------------------------------
// Option and shape checks

function checkStride(stride: unknown, name: string): [number, number] {
  if (stride === undefined) return [1, 1];
  if (typeof stride === 'number') {
    const s = checkNumber(name, stride, { integer: true, min: 1 });
    return [s, s];
  }
  if (Array.isArray(stride) && stride.length === 2) {
    return [
      checkNumber(name, stride[0], { integer: true, min: 1 }),
      checkNumber(name, stride[1], { integer: true, min: 1 }),
    ];
  }
  throw new VdspecError(
    'invalid_argument',
    `expected a positive integer or [strideHeight, strideWidth], got ${JSON.stringify(stride)}`,
    name,
  );
}

function checkPadding(padding: unknown, name: string): Conv2dPaddingMode {
  if (padding === undefined) return 'valid';
  if (padding === 'valid' || padding === 'same') return padding;
  throw new VdspecError(
    'invalid_argument',
    `expected 'valid' or 'same', got ${JSON.stringify(padding)}`,
    name,
  );
}

interface CheckedOptions {
  readonly stride: [number, number];
  readonly padding: Conv2dPaddingMode;
  readonly samePadding: SamePaddingRule;
  readonly trainClip: boolean | undefined;
}

function checkSamePadding(rule: unknown, name: string): SamePaddingRule {
  if (rule === undefined) return 'tensorflow';
  if (rule === 'tensorflow' || rule === 'lasagne') return rule;
  throw new VdspecError(
    'invalid_argument',
    `expected 'tensorflow' or 'lasagne', got ${JSON.stringify(rule)}`,
    name,
  );
}

function checkOptions(options: unknown): CheckedOptions {
  if (options === undefined) {
    return { stride: [1, 1], padding: 'valid', samePadding: 'tensorflow', trainClip: undefined };
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {stride?, padding?, samePadding?, trainClip?}',
      'options',
    );
  }
  const { stride, padding, samePadding, trainClip } = options as Record<string, unknown>;
  if (trainClip !== undefined && typeof trainClip !== 'boolean') {
    throw new VdspecError(
      'invalid_argument',
      `expected true or false, got ${JSON.stringify(trainClip)}`,
      'options.trainClip',
    );
  }
  return {
    stride: checkStride(stride, 'options.stride'),
    padding: checkPadding(padding, 'options.padding'),
    samePadding: checkSamePadding(samePadding, 'options.samePadding'),
    trainClip: trainClip as boolean | undefined,
  };
}

/**
 * One axis. 'valid': out = floor((in - k) / s) + 1, no padding, in >= k
 * required. 'same', TensorFlow's rule: out = ceil(in / s), total pad =
 * max((out - 1) * s + k - in, 0), floor(total / 2) before, the rest after.
 * 'same', Lasagne's rule: floor(k / 2) on each side (k odd), out =
 * floor((in + 2 floor(k / 2) - k) / s) + 1 = ceil(in / s).
 */
export function axisGeometry(
  inputSize: number,
  kernelSize: number,
  stride: number,
  padding: Conv2dPaddingMode,
  samePadding: SamePaddingRule = 'tensorflow',
): AxisGeometry {
  if (padding === 'valid') {
    return { output: Math.floor((inputSize - kernelSize) / stride) + 1, padBefore: 0, padAfter: 0 };
  }
  if (samePadding === 'lasagne') {
    const pad = Math.floor(kernelSize / 2);
    const output = Math.floor((inputSize + 2 * pad - kernelSize) / stride) + 1;
    return { output, padBefore: pad, padAfter: pad };
  }
  const output = Math.ceil(inputSize / stride);
  const total = Math.max((output - 1) * stride + kernelSize - inputSize, 0);
  const padBefore = Math.floor(total / 2);
  return { output, padBefore, padAfter: total - padBefore };
}

function resolveGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  stride: [number, number],
  padding: Conv2dPaddingMode,
  xName: string,
  filterName: string,
  samePadding: SamePaddingRule = 'tensorflow',
): Conv2dGeometry {
  const [batch, height, width, inChannels] = xShape as [number, number, number, number];
  const [kernelHeight, kernelWidth, filterIn, outChannels] = filterShape as [
    number,
    number,
    number,
    number,
  ];
  if (kernelHeight < 1 || kernelWidth < 1) {
    throw new VdspecError(
      'shape_mismatch',
      `the kernel needs at least one row and one column, got shape ${shapeToString(filterShape)}`,
      filterName,
    );
  }
  if (filterIn !== inChannels) {
    throw new VdspecError(
      'shape_mismatch',
      `HWIO filter has ${filterIn} input channels (dimension 2) but ${xName} ${shapeToString(xShape)} has ${inChannels} (dimension 3)`,
      filterName,
    );
  }
  if (padding === 'valid' && (height < kernelHeight || width < kernelWidth)) {
    throw new VdspecError(
      'shape_mismatch',
      `'valid' padding needs the input at least as large as the kernel: input ${height}x${width}, kernel ${kernelHeight}x${kernelWidth}`,
      xName,
    );
  }
  if (
    padding === 'same' &&
    samePadding === 'lasagne' &&
    (kernelHeight % 2 === 0 || kernelWidth % 2 === 0)
  ) {
    throw new VdspecError(
      'shape_mismatch',
      `Lasagne's 'same' padding (floor(k / 2) on each side) needs an odd kernel, got ${kernelHeight}x${kernelWidth}`,
      filterName,
    );
  }
  const [strideHeight, strideWidth] = stride;
  const rows = axisGeometry(height, kernelHeight, strideHeight, padding, samePadding);
  const cols = axisGeometry(width, kernelWidth, strideWidth, padding, samePadding);
  return {
    batch,
    height,
    width,
    inChannels,
    kernelHeight,
    kernelWidth,
    outChannels,
    strideHeight,
    strideWidth,
    outHeight: rows.output,
    outWidth: cols.output,
    padTop: rows.padBefore,
    padBottom: rows.padAfter,
    padLeft: cols.padBefore,
    padRight: cols.padAfter,
  };
}

function checkShape(name: string, shape: unknown): number[] {
  if (
    !Array.isArray(shape) ||
    shape.length !== 4 ||
    !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)
  ) {
    throw new VdspecError(
      'invalid_argument',
      `expected a shape of 4 non-negative integers, got ${JSON.stringify(shape)}`,
      name,
    );
  }
  return [...(shape as number[])];
}

/**
 * Output shape and padding of a conv2d of an NHWC input of shape xShape with
 * an HWIO filter of shape filterShape, after checking both and the options.
 */
export function conv2dGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  options?: Conv2dOptions,
): Conv2dGeometry {
  const { stride, padding, samePadding } = checkOptions(options);
  return resolveGeometry(
    checkShape('xShape', xShape),
    checkShape('filterShape', filterShape),
    stride,
    padding,
    'xShape',
    'filterShape',
    samePadding,
  );
}

function outputShape(g: Conv2dGeometry): number[] {
  return [g.batch, g.outHeight, g.outWidth, g.outChannels];
}

// ---------------------------------------------------------------------------
// The three convolution loops (spec/conv2d.md#convolution)

function nhwc(g: Conv2dGeometry, b: number, row: number, col: number, c: number): number {
  return ((b * g.height + row) * g.width + col) * g.inChannels + c;
}
function hwio(g: Conv2dGeometry, p: number, q: number, c: number, o: number): number {
  return ((p * g.kernelWidth + q) * g.inChannels + c) * g.outChannels + o;
}
function nhwcOut(g: Conv2dGeometry, b: number, i: number, j: number, o: number): number {
  return ((b * g.outHeight + i) * g.outWidth + j) * g.outChannels + o;
}

/**
 * y[b, i, j, o] = sum_{p, q, c} x~[b, i*sh + p - padTop, j*sw + q - padLeft, c] * f[p, q, c, o],
 * x~ being x with zeros outside the image.
 */
function convolve(x: readonly number[], f: readonly number[], g: Conv2dGeometry): number[] {
  const y = new Array<number>(sizeOf(outputShape(g))).fill(0);
  for (let b = 0; b < g.batch; b++) {
    for (let i = 0; i < g.outHeight; i++) {
      for (let j = 0; j < g.outWidth; j++) {
        for (let o = 0; o < g.outChannels; o++) {
          let sum = 0;
          for (let p = 0; p < g.kernelHeight; p++) {
            const row = i * g.strideHeight + p - g.padTop;
            if (row < 0 || row >= g.height) continue;
            for (let q = 0; q < g.kernelWidth; q++) {
              const col = j * g.strideWidth + q - g.padLeft;
              if (col < 0 || col >= g.width) continue;
              for (let c = 0; c < g.inChannels; c++) {
                sum += x[nhwc(g, b, row, col, c)]! * f[hwio(g, p, q, c, o)]!;
              }
            }
          }
          y[nhwcOut(g, b, i, j, o)] = sum;
        }
      }
    }
  }
  return y;
}

/**
 * The transpose of `convolve` in x: every output cotangent is scattered back
 * onto the input pixels its window read, weighted by the tap that read them.
 * gx[b, r, s, c] = sum over (i, p, j, q, o) with i*sh + p - padTop = r and
 * j*sw + q - padLeft = s of gy[b, i, j, o] * f[p, q, c, o].
 */
function convolveTransposeInput(
  gy: readonly number[],
  f: readonly number[],
  g: Conv2dGeometry,
): number[] {
  const gx = new Array<number>(g.batch * g.height * g.width * g.inChannels).fill(0);
  for (let b = 0; b < g.batch; b++) {
    for (let i = 0; i < g.outHeight; i++) {
      for (let j = 0; j < g.outWidth; j++) {
        for (let p = 0; p < g.kernelHeight; p++) {
          const row = i * g.strideHeight + p - g.padTop;
          if (row < 0 || row >= g.height) continue;
          for (let q = 0; q < g.kernelWidth; q++) {
            const col = j * g.strideWidth + q - g.padLeft;
            if (col < 0 || col >= g.width) continue;
            for (let c = 0; c < g.inChannels; c++) {
              let sum = 0;
              for (let o = 0; o < g.outChannels; o++) {
                sum += gy[nhwcOut(g, b, i, j, o)]! * f[hwio(g, p, q, c, o)]!;
              }
              gx[nhwc(g, b, row, col, c)]! += sum;
            }
          }
        }
      }
    }
  }
  return gx;
}

/**
 * The transpose of `convolve` in f: the correlation of the input with the
 * output cotangent. gf[p, q, c, o] = sum_{b, i, j} x~[b, i*sh + p - padTop, j*sw + q - padLeft, c] * gy[b, i, j, o].
 */
function convolveTransposeFilter(
  x: readonly number[],
  gy: readonly number[],
  g: Conv2dGeometry,
): number[] {
  const gf = new Array<number>(g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels).fill(
    0,
  );
  for (let p = 0; p < g.kernelHeight; p++) {
    for (let q = 0; q < g.kernelWidth; q++) {
      for (let c = 0; c < g.inChannels; c++) {
        for (let o = 0; o < g.outChannels; o++) {
          let sum = 0;
          for (let b = 0; b < g.batch; b++) {
            for (let i = 0; i < g.outHeight; i++) {
              const row = i * g.strideHeight + p - g.padTop;
              if (row < 0 || row >= g.height) continue;
              for (let j = 0; j < g.outWidth; j++) {
                const col = j * g.strideWidth + q - g.padLeft;
                if (col < 0 || col >= g.width) continue;
                sum += x[nhwc(g, b, row, col, c)]! * gy[nhwcOut(g, b, i, j, o)]!;
              }
            }
          }
          gf[hwio(g, p, q, c, o)] = sum;
        }
      }
    }
  }
  return gf;
}

/** Sum over batch and space: the bias gradient, one value per output channel. */
function sumPerChannel(gy: readonly number[], g: Conv2dGeometry): number[] {
  const gb = new Array<number>(g.outChannels).fill(0);
  for (let k = 0; k < gy.length; k++) gb[k % g.outChannels]! += gy[k]!;
  return gb;
}

function addBias(y: readonly number[], bias: readonly number[], g: Conv2dGeometry): number[] {
  return y.map((v, k) => v + bias[k % g.outChannels]!);
}

// ---------------------------------------------------------------------------
// Plain convolution helpers (exported for ports' tests and for the spec)

/** conv2d(x, filter): NHWC x HWIO -> NHWC, no bias, cross-correlation. */
export function conv2d(
  x: unknown,
  filter: unknown,
  stride: Conv2dStride = 1,
  padding: Conv2dPaddingMode = 'valid',
  samePadding: SamePaddingRule = 'tensorflow',
): Tensor {
  const xs = checkTensor('x', x, { rank: 4 });
  const fs = checkTensor('filter', filter, { rank: 4 });
  const g = resolveGeometry(
    xs.shape,
    fs.shape,
    checkStride(stride, 'stride'),
    checkPadding(padding, 'padding'),
    'x',
    'filter',
    checkSamePadding(samePadding, 'samePadding'),
  );
  return { shape: outputShape(g), data: convolve(xs.data, fs.data, g) };
}

/** d sum(cotangent * conv2d(x, filter)) / d x, for an input of shape xShape (a transposed convolution). */
export function conv2dBackpropInput(
  cotangent: unknown,
  filter: unknown,
  xShape: readonly number[],
  stride: Conv2dStride = 1,
  padding: Conv2dPaddingMode = 'valid',
  samePadding: SamePaddingRule = 'tensorflow',
): Tensor {
  const fs = checkTensor('filter', filter, { rank: 4 });
  const g = resolveGeometry(
    checkShape('xShape', xShape),
    fs.shape,
    checkStride(stride, 'stride'),
    checkPadding(padding, 'padding'),
    'xShape',
    'filter',
    checkSamePadding(samePadding, 'samePadding'),
  );
  const gy = checkTensor('cotangent', cotangent, { shape: outputShape(g) });
  return { shape: [...xShape], data: convolveTransposeInput(gy.data, fs.data, g) };
}

/** d sum(cotangent * conv2d(x, filter)) / d filter, for a filter of shape filterShape. */
export function conv2dBackpropFilter(
  x: unknown,
  cotangent: unknown,
  filterShape: readonly number[],
  stride: Conv2dStride = 1,
  padding: Conv2dPaddingMode = 'valid',
  samePadding: SamePaddingRule = 'tensorflow',
): Tensor {
  const xs = checkTensor('x', x, { rank: 4 });
  const g = resolveGeometry(
    xs.shape,
    checkShape('filterShape', filterShape),
    checkStride(stride, 'stride'),
    checkPadding(padding, 'padding'),
    'x',
    'filterShape',
    checkSamePadding(samePadding, 'samePadding'),
  );
  const gy = checkTensor('cotangent', cotangent, { shape: outputShape(g) });
  return { shape: [...filterShape], data: convolveTransposeFilter(xs.data, gy.data, g) };
}

// ---------------------------------------------------------------------------
// The layer

interface PreparedLayer {
  readonly profile: Profile;
  readonly geometry: Conv2dGeometry;
  readonly x: Tensor;
  readonly theta: Tensor;
  readonly noiseShape: readonly number[];
  readonly bias: Tensor;
  readonly stats: WeightStatistics;
  readonly trainClip: boolean;
}

function checkInputsObject(inputs: unknown): Record<string, unknown> {
  if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {x, theta, noise, bias, ...}',
      'inputs',
    );
  }
  return inputs as Record<string, unknown>;
}

function prepare(
  inputsIn: unknown,
  profileIn: Profile | ProfileName,
  optionsIn: unknown,
): PreparedLayer {
  const profile = getProfile(profileIn);
  checkNumber('profile.sqrtEps', profile.sqrtEps, { min: 0 });
  const inputs = checkInputsObject(inputsIn);
  const options = checkOptions(optionsIn);
  const x = checkTensor('x', inputs['x'], { rank: 4 });
  const theta = checkTensor('theta', inputs['theta'], { rank: 4 });
  // The layer splits 'same' padding by its profile's rule (an options.samePadding is ignored here).
  const geometry = resolveGeometry(
    x.shape,
    theta.shape,
    options.stride,
    options.padding,
    'x',
    'theta',
    profile.samePadding,
  );
  const bias = checkTensor('bias', inputs['bias'], { shape: [geometry.outChannels] });
  // weightStatistics names the noise argument after the profile (log_sigma2, log_sigma, log_alpha).
  const stats = weightStatistics(theta, inputs['noise'], profile, 'conv2d');
  return {
    profile,
    geometry,
    x,
    theta,
    noiseShape: [...(inputs['noise'] as Tensor).shape],
    bias,
    stats,
    trainClip: options.trainClip ?? profile.trainClipDefault,
  };
}

/** Overflow of a result is not one input's fault; the message says which result. */
function requireFinite(values: readonly number[], what: string): number[] {
  for (const v of values) {
    if (!Number.isFinite(v)) {
      throw new VdspecError('non_finite', `${what} is ${v}: the inputs are too large for float64`);
    }
  }
  return [...values];
}

/**
 * The masks of the training forward (spec/conv2d.md#masks). The mean's mask
 * is the keep mask when trainClip is on, else all ones; the variance's mask
 * is the keep mask only for trainMask 'mean_and_variance' with trainClip on.
 */
function trainMasks(layer: PreparedLayer): { mean: number[]; variance: number[] } {
  const ones = layer.stats.mask.map(() => 1);
  if (!layer.trainClip) return { mean: ones, variance: ones };
  const masksVariance = layer.profile.conv2d.trainMask === 'mean_and_variance';
  return { mean: layer.stats.mask, variance: masksVariance ? layer.stats.mask : ones };
}

/**
 * a * b elementwise, where a zero factor gives an exact 0 even against an
 * infinite one: a pruned weight or a zero partial is a hard zero
 * (spec/log-alpha.md), not IEEE's inf * 0 = NaN.
 */
function hardZeroProduct(a: readonly number[], b: readonly number[]): number[] {
  return a.map((v, k) => (v === 0 || b[k] === 0 ? 0 : v * b[k]!));
}

interface TrainForward {
  readonly masks: { mean: number[]; variance: number[] };
  readonly thetaMasked: number[];
  readonly varianceMasked: number[];
  readonly xSquared: number[];
  readonly eps: Tensor;
  readonly mean: number[];
  readonly variance: number[];
  readonly output: number[];
}

function trainForward(layer: PreparedLayer, epsIn: unknown): TrainForward {
  const g = layer.geometry;
  const eps = checkTensor('eps', epsIn, { shape: outputShape(g) });
  const masks = trainMasks(layer);
  const thetaMasked = hardZeroProduct(layer.theta.data, masks.mean);
  const varianceMasked = hardZeroProduct(layer.stats.variance, masks.variance);
  varianceMasked.forEach((s2, k) => {
    if (Number.isFinite(s2)) return;
    const t = layer.theta.data[k]!;
    throw new VdspecError(
      'non_finite',
      `the variance of weight ${k} (HWIO order) overflows float64 (${s2})`,
      Number.isFinite(t * t) ? noiseName(layer.profile) : 'theta',
    );
  });
  const xSquared = layer.x.data.map((v) => v * v);

  // mean = conv(x, theta_m) + b;  variance = conv(x*x, s2_m): the bias never enters the variance.
  const mean = requireFinite(
    addBias(convolve(layer.x.data, thetaMasked, g), layer.bias.data, g),
    'the mean',
  );
  const variance = requireFinite(convolve(xSquared, varianceMasked, g), 'the variance');
  const output = requireFinite(
    mean.map((m, k) => m + Math.sqrt(variance[k]! + layer.profile.sqrtEps) * eps.data[k]!),
    'the output',
  );
  return { masks, thetaMasked, varianceMasked, xSquared, eps, mean, variance, output };
}

/**
 * Training forward (ops `svd.conv2d.train`, `vd.conv2d.train`):
 *
 *     mean     = conv(x, theta * m_mean) + b
 *     variance = conv(x*x, s2 * m_var)
 *     output   = mean + sqrt(variance + profile.sqrtEps) * eps
 */
export function conv2dTrain(
  inputs: Conv2dTrainInputs,
  profile: Profile | ProfileName,
  options?: Conv2dOptions,
): Conv2dTrainResult {
  const layer = prepare(inputs, profile, options);
  const f = trainForward(layer, checkInputsObject(inputs)['eps']);
  const shape = outputShape(layer.geometry);
  return {
    mean: { shape, data: f.mean },
    variance: { shape: [...shape], data: f.variance },
    output: { shape: [...shape], data: f.output },
  };
}

/**
 * Eval forward (ops `svd.conv2d.eval`, `vd.conv2d.eval`): conv(x, theta * mask) + b,
 * the mask all ones when the profile does not prune. `options.trainClip` is ignored.
 */
export function conv2dEval(
  inputs: Conv2dEvalInputs,
  profile: Profile | ProfileName,
  options?: Conv2dOptions,
): Tensor {
  const layer = prepare(inputs, profile, options);
  const g = layer.geometry;
  const thetaMasked = hardZeroProduct(layer.theta.data, layer.stats.mask);
  return {
    shape: outputShape(g),
    data: requireFinite(
      addBias(convolve(layer.x.data, thetaMasked, g), layer.bias.data, g),
      'the output',
    ),
  };
}

/**
 * Unmasked eval forward (op `svd.conv2d.eval_unmasked`): conv(x, theta) + b,
 * every weight at its posterior mean, pruned or not. The noise parameter is
 * validated and does not enter the result.
 */
export function conv2dEvalUnmasked(
  inputs: Conv2dEvalInputs,
  profile: Profile | ProfileName,
  options?: Conv2dOptions,
): Tensor {
  const layer = prepare(inputs, profile, options);
  const g = layer.geometry;
  return {
    shape: outputShape(g),
    data: requireFinite(
      addBias(convolve(layer.x.data, layer.theta.data, g), layer.bias.data, g),
      'the output',
    ),
  };
}

function checkOutputShaped(name: string, value: unknown, g: Conv2dGeometry): number[] {
  return [...checkTensor(name, value, { shape: outputShape(g) }).data];
}

function gradientsOf(
  layer: PreparedLayer,
  dx: number[],
  dTheta: number[],
  dNoiseFull: number[],
  dBias: number[],
): Conv2dGradients {
  requireFinite(dx, 'the gradient w.r.t. x');
  requireFinite(dTheta, 'the gradient w.r.t. theta');
  requireFinite(dNoiseFull, `the gradient w.r.t. ${noiseName(layer.profile)}`);
  requireFinite(dBias, 'the gradient w.r.t. bias');
  return {
    x: { shape: [...layer.x.shape], data: dx },
    theta: { shape: [...layer.theta.shape], data: dTheta },
    // VD's log_alpha may be broadcast: its gradient sums over the broadcast axes.
    noise: sumToShape(dNoiseFull, layer.theta.shape, layer.noiseShape),
    bias: { shape: [layer.geometry.outChannels], data: dBias },
  };
}

/**
 * VJP of the training forward (spec/conv2d.md#vjp-train): the gradient of a
 * loss L w.r.t. x, theta, the noise parameter and the bias, given dL/d output
 * (and optionally dL/d mean and dL/d variance, which add to those paths).
 */
export function conv2dTrainVjp(
  inputs: Conv2dTrainInputs,
  cotangent: Conv2dTrainCotangent,
  profile: Profile | ProfileName,
  options?: Conv2dOptions,
): Conv2dGradients {
  const layer = prepare(inputs, profile, options);
  const g = layer.geometry;
  const f = trainForward(layer, checkInputsObject(inputs)['eps']);
  if (typeof cotangent !== 'object' || cotangent === null) {
    throw new VdspecError(
      'invalid_argument',
      'expected an object {output, mean?, variance?}',
      'cotangent',
    );
  }
  const gOutput = checkOutputShaped('cotangent.output', cotangent.output, g);
  const extraMean =
    cotangent.mean === undefined ? null : checkOutputShaped('cotangent.mean', cotangent.mean, g);
  const extraVariance =
    cotangent.variance === undefined
      ? null
      : checkOutputShaped('cotangent.variance', cotangent.variance, g);

  // output = mean + s * eps, s = sqrt(variance + sqrtEps):
  //   dL/dmean = gy;  dL/dvariance = gy * eps / (2 s)
  const gMean = gOutput.map((v, k) => v + (extraMean?.[k] ?? 0));
  const gVariance = gOutput.map((gy, k) => {
    const extra = extraVariance?.[k] ?? 0;
    const numerator = gy * f.eps.data[k]!;
    if (numerator === 0) return extra;
    const s = Math.sqrt(f.variance[k]! + layer.profile.sqrtEps);
    if (s === 0) {
      throw new VdspecError(
        'non_finite',
        'the variance is 0 and profile.sqrtEps is 0: d sqrt(v)/dv is infinite there (every built-in profile has sqrtEps > 0)',
        'profile',
      );
    }
    return numerator / (2 * s) + extra;
  });

  // mean = conv(x, theta_m) + b
  const dxFromMean = convolveTransposeInput(gMean, f.thetaMasked, g);
  const dThetaMasked = convolveTransposeFilter(layer.x.data, gMean, g);
  const dBias = sumPerChannel(gMean, g);

  // variance = conv(x*x, s2_m); d(x*x)/dx = 2x
  const dxSquared = convolveTransposeInput(gVariance, f.varianceMasked, g);
  const dxFromVariance = dxSquared.map((v, k) => 2 * layer.x.data[k]! * v);
  const dVarianceMasked = convolveTransposeFilter(f.xSquared, gVariance, g);

  // theta_m = theta * m_mean, s2_m = s2 * m_var: the masks are piecewise constant (derivative 0).
  const dThetaDirect = hardZeroProduct(dThetaMasked, f.masks.mean);
  const dS2 = hardZeroProduct(dVarianceMasked, f.masks.variance);

  // s2 = s2(theta, noise): weightStatistics' partials (zero through an inactive clip).
  const dThetaThroughVariance = hardZeroProduct(dS2, layer.stats.dVarianceDTheta);
  const dTheta = dThetaDirect.map((v, k) => v + dThetaThroughVariance[k]!);
  const dNoiseFull = hardZeroProduct(dS2, layer.stats.dVarianceDNoise);

  const dx = dxFromMean.map((v, k) => v + dxFromVariance[k]!);
  return gradientsOf(layer, dx, dTheta, dNoiseFull, dBias);
}

/**
 * VJP of the eval forward (spec/conv2d.md#vjp-eval). The mask is piecewise
 * constant, so the noise parameter's gradient is 0 everywhere (by convention
 * also at the threshold) and pruned weights get a zero theta gradient.
 */
export function conv2dEvalVjp(
  inputs: Conv2dEvalInputs,
  cotangent: Tensor,
  profile: Profile | ProfileName,
  options?: Conv2dOptions,
): Conv2dGradients {
  const layer = prepare(inputs, profile, options);
  const g = layer.geometry;
  const gy = checkOutputShaped('cotangent', cotangent, g);
  const mask = layer.stats.mask;

  // out = conv(x, theta * mask) + b
  const dx = convolveTransposeInput(gy, hardZeroProduct(layer.theta.data, mask), g);
  const dTheta = hardZeroProduct(convolveTransposeFilter(layer.x.data, gy, g), mask);
  const dNoiseFull = layer.theta.data.map(() => 0);
  return gradientsOf(layer, dx, dTheta, dNoiseFull, sumPerChannel(gy, g));
}
