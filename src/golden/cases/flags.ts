/**
 * The flags of golden cases (spec/golden.md#flags): those that follow from a
 * case's inputs, and the vocabulary of every flag with what a port that fails
 * such a case likely got wrong.
 */
import { SVD_LOG_ALPHA_MAX, WIDE_LOG_ALPHA_MAX } from '../../constants.js';
import type { OpSpec } from '../../ops.js';
import type { LayerKind, Profile } from '../../profiles.js';
import type { Conv2dStride } from '../../reference/conv2d.js';
import { weightStatistics } from '../../reference/logAlpha.js';
import type { Tensor } from '../../tensor.js';
import { family } from './draft.js';
import { EXTREME_LOG_ALPHA } from './values.js';

function weightFlags(theta: Tensor, noise: Tensor, profile: Profile, layer: LayerKind): string[] {
  const flags = new Set<string>();
  const stats = weightStatistics(theta, noise, profile, layer);
  const { clip, form } = profile[layer].logAlpha;
  if (theta.data.some((t) => t === 0)) flags.add('theta_zero');
  stats.logAlphaRaw.forEach((raw, i) => {
    if (profile.prune !== null) {
      const compared = profile.prune.from === 'clipped' ? stats.logAlpha[i]! : raw;
      if (compared === profile.prune.threshold) flags.add('threshold_exact');
    }
    if (clip?.min != null && raw === clip.min) flags.add('clip_min');
    if (clip?.max != null && raw === clip.max) flags.add('clip_max');
    if ((clip?.min != null && raw < clip.min) || (clip?.max != null && raw > clip.max)) {
      flags.add('beyond_clip');
    }
    const a = Math.abs(raw);
    if (Number.isFinite(raw) && a > SVD_LOG_ALPHA_MAX && a <= WIDE_LOG_ALPHA_MAX) {
      flags.add('between_clips');
    }
    if (Number.isFinite(raw) && a > WIDE_LOG_ALPHA_MAX) flags.add('beyond_wide_clip');
    if (Number.isFinite(raw) && raw >= EXTREME_LOG_ALPHA) flags.add('alpha_huge');
    if (Number.isFinite(raw) && raw <= -EXTREME_LOG_ALPHA) flags.add('alpha_tiny');
  });
  if (stats.mask.some((m) => m === 0)) flags.add('pruned');
  if (form === 'learned') {
    if (noise.shape.length === 0) flags.add('noise_scalar');
    else if (noise.data.length === theta.data.length) flags.add('noise_per_weight');
    else flags.add('noise_per_input');
  }
  return [...flags];
}

/** VD variant A: log_alpha [] or [in], one per input unit (spec/dense-a.md). */
function denseAFlags(op: OpSpec, theta: Tensor, noise: Tensor, profile: Profile): string[] {
  const flags = new Set<string>();
  const clip = profile.dense.logAlpha.clip;
  flags.add(noise.shape.length === 0 ? 'noise_scalar' : 'noise_per_input');
  for (const raw of noise.data) {
    if (clip?.max != null && raw === clip.max) flags.add('clip_max');
    if ((clip?.max != null && raw > clip.max) || (clip?.min != null && raw < clip.min)) {
      flags.add('beyond_clip');
    }
    if (raw >= EXTREME_LOG_ALPHA) flags.add('alpha_huge');
    if (raw <= -EXTREME_LOG_ALPHA) flags.add('alpha_tiny');
  }
  const [inSize, out] = theta.shape as [number, number];
  if (family(op) === 'dense_a' && inSize === out && inSize > 1) flags.add('square_layer');
  return [...flags];
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v;
}

/** Flags that any reader can check from the inputs alone. */
export function inputFlags(
  op: OpSpec,
  profile: Profile,
  inputs: Record<string, unknown>,
): string[] {
  const flags: string[] = [];
  const tensors = Object.values(inputs).filter(isTensor);
  const numbers = [
    ...tensors.flatMap((t) => t.data),
    ...Object.values(inputs).filter((v): v is number => typeof v === 'number'),
  ];
  if (numbers.some((v) => Object.is(v, -0))) flags.push('negative_zero');
  if (numbers.some((v) => Number.isFinite(v) && Math.fround(v) !== v)) flags.push('float64_input');
  if (tensors.some((t) => t.data.length === 0)) flags.push('empty');
  const theta = inputs['theta'];
  const noise = inputs[profile.noiseParameter];
  const variantA = family(op) === 'dense_a' || family(op) === 'dense_a_kl';
  if (variantA && isTensor(theta) && isTensor(noise)) {
    flags.push(...denseAFlags(op, theta, noise, profile));
  } else if (
    isTensor(theta) &&
    isTensor(noise) &&
    op.name !== 'kl.exact' &&
    op.name !== 'kl.approx'
  ) {
    const layer = (op.layer ?? inputs['layer'] ?? 'dense') as LayerKind;
    flags.push(...weightFlags(theta, noise, profile, layer));
    if (op.layer === null && layer === 'conv2d') flags.push('layer_conv2d');
  }
  const logAlpha = inputs['log_alpha'];
  if ((op.name === 'kl.exact' || op.name === 'kl.approx') && isTensor(logAlpha)) {
    if (logAlpha.data.some((v) => !Number.isFinite(v))) flags.push('infinite_log_alpha');
  }
  const bias = inputs['bias'];
  if (isTensor(bias) && op.layer !== null) {
    if (bias.data.length > 1) flags.push('bias_multi_element');
    if (bias.data.some((b) => b !== 0)) flags.push('bias_nonzero');
  }
  if (op.inputs.some((i) => i.name === 'train_clip')) {
    const tc = inputs['train_clip'];
    flags.push(tc === undefined ? 'train_clip_default' : tc ? 'train_clip_on' : 'train_clip_off');
  }
  if (op.layer === 'conv2d') {
    flags.push(inputs['padding'] === 'same' ? 'padding_same' : 'padding_valid');
    const s = inputs['stride'] as Conv2dStride | undefined;
    if (s !== undefined && (typeof s === 'number' ? s !== 1 : s[0] !== 1 || s[1] !== 1)) {
      flags.push('strided');
    }
  }
  return flags;
}

// ---------------------------------------------------------------------------
// The flag vocabulary (spec/golden.md#flags)

/** Every flag a case may carry: when it is set, and what a port that fails such a case likely got wrong. */
export const GOLDEN_FLAGS: Readonly<
  Record<string, { readonly when: string; readonly catches: string }>
> = {
  realistic_size: {
    when: 'a layer case of realistic size (dense dimensions past 4, 8, 16 and 32; conv2d inputs of 16x16 and more with 8 channels)',
    catches:
      'a vectorised or tiled loop with a remainder bug: wrong only from the 4th, 9th, 17th or 33rd unit on',
  },
  random: {
    when: 'a seeded random case (shapes and values)',
    catches: 'general disagreement; layouts (NHWC/HWIO, [in, out]) and shapes',
  },
  theta_zero: {
    when: 'some theta is exactly 0 (or -0)',
    catches: 'NaN gradients from log(0) = -inf (inf * 0); a missing clip of log_alpha = +inf',
  },
  negative_zero: {
    when: 'some input number is -0 (written "-0")',
    catches: 'a reader that rejects or mangles "-0"; sign(-0) and abs at zero',
  },
  threshold_exact: {
    when: 'the log_alpha the mask compares is exactly the threshold 3',
    catches: '">" against ">=" (molchanov2017 keeps the weight, the other SVD profiles prune it)',
  },
  clip_min: {
    when: 'a raw log_alpha is exactly the clip min',
    catches:
      "a clip gradient at the bound other than the profile's gradientAtBound (1 for a closed interval, 0 for bayesgroup-theano's switch)",
  },
  clip_max: {
    when: 'a raw log_alpha is exactly the clip max',
    catches:
      "a clip gradient at the bound other than the profile's gradientAtBound (1 for a closed interval, 0 for bayesgroup-theano's switch)",
  },
  float64_input: {
    when: 'an input is not a float32 value: a noise putting raw log_alpha exactly on an edge under a profile with an eps in the log (spec/golden.md#cases)',
    catches: '">" against ">=" and the clip gradient at a bound under profiles with an eps',
  },
  bias_multi_element: {
    when: 'a layer case whose bias has more than one element',
    catches:
      "pytorch_ard HEAD's `if self.bias:` (LinearARD's training forward raises on a multi-element tensor)",
  },
  bias_nonzero: {
    when: 'a layer case with a nonzero bias',
    catches:
      'a bias inside the variance convolution; a port of Conv2dARD, which forces bias=False, cannot run these',
  },
  beyond_clip: {
    when: "a raw log_alpha lies strictly outside the layer's clip (+inf included)",
    catches:
      'a variance or gradient taken from the unclipped log_alpha; a clip gradient of 1 outside',
  },
  between_clips: {
    when: 'a raw log_alpha has 8 < |log_alpha| <= 10',
    catches: 'the clip range: [-8, 8] and [-10, 10] profiles disagree here',
  },
  beyond_wide_clip: {
    when: 'a finite raw log_alpha has |log_alpha| > 10',
    catches: 'a missing clip (every clipping profile clips here)',
  },
  alpha_huge: {
    when: 'a raw log_alpha >= 15',
    catches: 'overflow or cancellation in exp(log_alpha), the sigmoid and log1p(exp(-log_alpha))',
  },
  alpha_tiny: {
    when: 'a raw log_alpha <= -15',
    catches: 'overflow of exp(-log_alpha); a variance that should nearly vanish',
  },
  pruned: {
    when: 'some weight has mask 0',
    catches: 'a mask missing from the eval forward, or applied where the profile does not',
  },
  noise_scalar: {
    when: 'VD log_alpha is a scalar',
    catches: 'broadcasting of log_alpha; its gradient summed over every weight',
  },
  noise_per_input: {
    when: 'VD log_alpha has one entry per input unit ([in, 1], or [1, 1, cin, 1]; [in] for vd.dense_a)',
    catches: 'broadcasting along the output axis; the gradient summed over it',
  },
  square_layer: {
    when: 'a vd.dense_a train op with in = out > 1',
    catches:
      "variant B's independent per-output noise for variant A's shared per-input noise (eps has the same shape here)",
  },
  noise_per_weight: {
    when: "VD log_alpha has theta's shape",
    catches: 'plain elementwise log_alpha',
  },
  layer_conv2d: {
    when: 'a per-weight op asked for the conv2d conventions (`layer: "conv2d"`)',
    catches:
      "ignoring a profile's conv2d conventions (bayesgroup-theano's eps, pytorch-ard's clip)",
  },
  infinite_log_alpha: {
    when: 'a KL input log_alpha is +inf or -inf',
    catches: 'inf - inf = NaN where the KL has a limit',
  },
  clip_bounds: {
    when: 'KL inputs at -10, -8, 0, 3, 8 and 10',
    catches: 'the KL constants and form at the values every profile meets',
  },
  series_switch: {
    when: 'kl.exact around log_alpha = -8 and at -12 and -5',
    catches: 'a jump between the series and the small-alpha expansion',
  },
  zero_input: {
    when: 'x = 0 (layers), log_alpha = 0 and -0 (KL), logits = 0 (cross-entropy)',
    catches: 'the bias inside the variance (the variance must be 0); sqrtEps in the output',
  },
  one_element: {
    when: 'every size is 1',
    catches: 'squeezed axes and broadcasting mistakes',
  },
  empty: {
    when: 'some input tensor has no elements',
    catches: 'crashes and wrong shapes on empty tensors (results are empty, sums 0)',
  },
  empty_sum: {
    when: 'the layer sums over nothing (dense in = 0, conv2d cin = 0)',
    catches:
      'uninitialised memory from an empty matmul (seen in tfjs-wasm); mean must equal the bias',
  },
  eps_zero: {
    when: 'eps = 0 in a training forward',
    catches: 'noise added outside the sqrt(variance + sqrtEps) * eps term',
  },
  train_clip_on: {
    when: 'train_clip = true given',
    catches:
      "the mask in the training forward (mean, or also variance per the profile's trainMask)",
  },
  train_clip_off: {
    when: 'train_clip = false given',
    catches: 'a mask applied in training when it is off',
  },
  train_clip_default: {
    when: "train_clip omitted: the profile's trainClipDefault applies",
    catches: 'a wrong default (bayesgroup-theano trains with the mask on)',
  },
  padding_same: {
    when: "conv2d padding 'same'",
    catches: "TensorFlow's rule: the extra row and column at the bottom and right, not the top",
  },
  padding_valid: {
    when: "conv2d padding 'valid' (given or by default)",
    catches: 'output size without padding; rows the stride never reaches',
  },
  strided: {
    when: 'a conv2d stride other than 1 (a number or a pair)',
    catches: 'output size and input offsets under stride',
  },
  large_logits: {
    when: 'logits of size 1e4',
    catches: 'a log-sum-exp without the max shift (overflow to inf)',
  },
  kl_weight_zero: {
    when: 'kl_weight = 0',
    catches: 'a KL term that does not vanish during the warm-up',
  },
};

/** The flags table of spec/golden.md (between its `golden-flags` markers). */
export function goldenFlagsTableMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const rows = Object.entries(GOLDEN_FLAGS).map(
    ([flag, f]) => `| \`${flag}\` | ${cell(f.when)} | ${cell(f.catches)} |`,
  );
  return [
    '| flag | set when | a port failing such a case likely has |',
    '| --- | --- | --- |',
    ...rows,
  ].join('\n');
}
