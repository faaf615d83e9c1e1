/**
 * Profiles: each set of conventions as plain data.
 *
 * Published implementations of Sparse VD disagree on a handful of choices
 * (see spec/profiles.md). Each profile writes those choices down; the
 * reference, the fast implementation and the golden files read them from here
 * and nowhere else. `molchanov2017` and `kingma2015` are the canonical
 * profiles (the papers); the others mirror one public implementation each.
 */
import {
  BAYESGROUP_CONV_THETA_EPS,
  DEEPBAYES_THETA_EPS,
  PYTORCH_ARD_SQRT_EPS,
  PYTORCH_ARD_THETA_EPS,
  SQRT_EPS,
  STATE_OF_SPARSITY_THETA_EPS,
  SVD_LOG_ALPHA_MAX,
  SVD_LOG_ALPHA_MIN,
  SVD_PRUNE_THRESHOLD,
  VD_LOG_ALPHA_MAX,
  WIDE_LOG_ALPHA_MAX,
  WIDE_LOG_ALPHA_MIN,
} from './constants.js';
import { VdspecError } from './errors.js';

export const PROFILE_NAMES = [
  'molchanov2017',
  'kingma2015',
  'bayesgroup-theano',
  'deepbayes-pytorch',
  'state-of-sparsity',
  'state-of-sparsity-nn',
  'pytorch-ard',
] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export type LayerKind = 'dense' | 'conv2d';

/** Which parameter the layer learns next to theta. */
export type NoiseParameter = 'log_sigma2' | 'log_sigma' | 'log_alpha';

export interface Clip {
  /** Lower bound on log_alpha, or null for none. */
  readonly min: number | null;
  /** Upper bound on log_alpha, or null for none. */
  readonly max: number | null;
  /**
   * The clip's derivative exactly at a bound: 1 (a closed interval, as
   * clamp / clip_by_value / clipByValue differentiate) or 0 (a switch whose
   * comparison includes the bound selects the constant there, as Theano's
   * `switch(le(x, -8), -8, x)` does). Strictly inside it is 1, strictly
   * outside 0, either way. Absent means 1.
   */
  readonly gradientAtBound?: 0 | 1;
}

export interface LogAlphaConvention {
  /**
   * - `learned`: log_alpha is the learned parameter itself (VD).
   * - `log_theta2`: log_alpha = log_sigma2 - log(theta^2 + thetaEps).
   * - `log_abs_theta`: log_alpha = log_sigma2 - 2 * log(|theta| + thetaEps).
   * With `log_sigma` as the noise parameter, log_sigma2 = 2 * log_sigma.
   */
  readonly form: 'learned' | 'log_theta2' | 'log_abs_theta';
  /** The eps inside the log; 0 means none (log(0) = -inf, then the clip). */
  readonly thetaEps: number;
  /** The clip applied to log_alpha, or null for none. */
  readonly clip: Clip | null;
}

export interface LayerConventions {
  readonly logAlpha: LogAlphaConvention;
  /**
   * The log_alpha the KL reads, when it differs from the forward's (the
   * Theano conv layer's KL drops the forward's eps); null: the same.
   */
  readonly klLogAlpha: LogAlphaConvention | null;
  /**
   * The per-weight variance in the local reparameterization:
   * - `alpha_theta2`: exp(clipped log_alpha) * theta^2 (theta unmasked);
   * - `sigma2`: exp(log_sigma2) straight from the parameter, unclipped;
   * - `sigma2_rebuilt`: exp(clipped log_alpha + log(theta^2 + thetaEps)), i.e.
   *   log_sigma2 rebuilt from the clipped log_alpha (state_of_sparsity with
   *   clip_alpha set): exp(log_sigma2) inside the clip, exp(+-bound) *
   *   (theta^2 + thetaEps) beyond it. Needs the `log_theta2` form.
   */
  readonly variance: 'alpha_theta2' | 'sigma2' | 'sigma2_rebuilt';
  /** Where the mask applies in the training forward when `trainClip` is on. */
  readonly trainMask: 'mean' | 'mean_and_variance';
}

export interface PruneConvention {
  /** log_alpha compared against this value. */
  readonly threshold: number;
  /** A weight is pruned when `log_alpha <comparison> threshold` (in the forward passes). */
  readonly comparison: '>' | '>=';
  /** The comparison of the implementation's own per-layer sparsity report. */
  readonly reportComparison: '>' | '>=';
  /** The comparison of its report of the whole network's kept share or "compression". */
  readonly compressionComparison: '>' | '>=';
  /**
   * The log_alpha its reports read: the forward's `clipped` one, or
   * `unclipped_no_eps` (log_sigma2 - log(theta^2) recomputed without the
   * clip or any eps, as the Theano code's reports do in numpy).
   */
  readonly reportLogAlpha: 'clipped' | 'unclipped_no_eps';
  /**
   * The mask is computed from the clipped or the unclipped log_alpha. While the
   * threshold lies strictly inside the clip range the two give the same mask.
   */
  readonly from: 'clipped' | 'unclipped';
}

export interface KlConvention {
  /** `svd_sigmoid`: Molchanov eq. 14; `vd_cubic`: Kingma eq. 16. */
  readonly approximation: 'svd_sigmoid' | 'vd_cubic';
  /**
   * The additive constant: `minus_k1` makes KL -> 0 as alpha -> inf;
   * `omitted` drops it (KL -> -k1 per weight); `dropped` is the cubic's.
   */
  readonly constant: 'minus_k1' | 'omitted' | 'dropped';
}

export interface SourceCitation {
  /** Paper or project. */
  readonly project: string;
  /** Public repository (owner/name), when the profile mirrors code. */
  readonly repository: string | null;
  /** The commit read (40 hex digits); spec/profiles.md cites its lines field by field. */
  readonly commit: string | null;
  /** The file the profile mirrors. */
  readonly file: string | null;
  readonly note: string;
}

export interface Profile {
  readonly name: ProfileName;
  readonly algorithm: 'svd' | 'vd';
  readonly canonical: boolean;
  readonly source: SourceCitation;
  readonly noiseParameter: NoiseParameter;
  readonly dense: LayerConventions;
  readonly conv2d: LayerConventions;
  /** Added to the variance before the square root. */
  readonly sqrtEps: number;
  /**
   * How 'same' padding splits a convolution's padding: `tensorflow` puts
   * max((ceil(n / s) - 1) s + k - n, 0) in all, the odd one after; `lasagne`
   * puts floor(k / 2) on each side and refuses an even kernel.
   */
  readonly samePadding: 'tensorflow' | 'lasagne';
  /** Pruning rule, or null when the algorithm does not prune (VD). */
  readonly prune: PruneConvention | null;
  /** Whether the training forward applies the mask unless told otherwise. */
  readonly trainClipDefault: boolean;
  readonly kl: KlConvention;
  /** How the implementation scales the data term of the objective. */
  readonly likelihoodScaling: 'n_mean_ce' | 'user';
  /** What the implementation calls "compression" (informative; vdspec reports |W| / |W != 0|). */
  readonly compressionReported: string;
}

const SVD_CLIP: Clip = { min: SVD_LOG_ALPHA_MIN, max: SVD_LOG_ALPHA_MAX, gradientAtBound: 1 };
const WIDE_CLIP: Clip = { min: WIDE_LOG_ALPHA_MIN, max: WIDE_LOG_ALPHA_MAX, gradientAtBound: 1 };
/** Theano's switch(le(x, -8), -8, x) then switch(ge(x, 8), 8, x): the constant wins at a bound. */
const SWITCH_CLIP: Clip = { min: SVD_LOG_ALPHA_MIN, max: SVD_LOG_ALPHA_MAX, gradientAtBound: 0 };

function layers(dense: LayerConventions, conv2d: LayerConventions = dense) {
  return { dense, conv2d };
}

export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  molchanov2017: {
    name: 'molchanov2017',
    algorithm: 'svd',
    canonical: true,
    source: {
      project:
        'Molchanov, Ashukha, Vetrov 2017, Variational Dropout Sparsifies Deep Neural Networks',
      repository: null,
      commit: null,
      file: null,
      note: "The paper: additive reparameterization (log_sigma2), KL with C = -k1, prune where log_alpha > 3. The clip to [-8, 8] and the variance from the clipped alpha are the official code's choices (bayesgroup-theano), not stated in the paper's text.",
    },
    noiseParameter: 'log_sigma2',
    ...layers({
      logAlpha: { form: 'log_theta2', thetaEps: 0, clip: SVD_CLIP },
      klLogAlpha: null,
      variance: 'alpha_theta2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    samePadding: 'tensorflow',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>',
      reportComparison: '>',
      compressionComparison: '>',
      reportLogAlpha: 'clipped',
      from: 'clipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'n_mean_ce',
    compressionReported: '|W| / |W != 0|',
  },
  kingma2015: {
    name: 'kingma2015',
    algorithm: 'vd',
    canonical: true,
    source: {
      project:
        'Kingma, Salimans, Welling 2015, Variational Dropout and the Local Reparameterization Trick',
      repository: null,
      commit: null,
      file: null,
      note: 'The paper: log_alpha learned directly (scalar, per input unit or per weight), alpha <= 1, cubic KL with its constant dropped. The paper puts no eps in the square root; vdspec adds sqrtEps so the gradient stays finite where the variance is 0.',
    },
    noiseParameter: 'log_alpha',
    ...layers({
      logAlpha: {
        form: 'learned',
        thetaEps: 0,
        clip: { min: null, max: VD_LOG_ALPHA_MAX, gradientAtBound: 1 },
      },
      klLogAlpha: null,
      variance: 'alpha_theta2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    samePadding: 'tensorflow',
    prune: null,
    trainClipDefault: false,
    kl: { approximation: 'vd_cubic', constant: 'dropped' },
    likelihoodScaling: 'n_mean_ce',
    compressionReported: 'none (VD does not prune)',
  },
  'bayesgroup-theano': {
    name: 'bayesgroup-theano',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'Official Theano/Lasagne code of the SVD paper',
      repository: 'ars-ashuha/variational-dropout-sparsifies-dnn',
      commit: '3d9b78acdf8de67ffbd2190b233852082c4168a0',
      file: 'nets/layers.py',
      note: 'Dense log_alpha has no eps; the conv forward uses log(theta^2 + 1e-8), its KL no eps. The clip is a Theano switch whose constant wins at a bound (gradient 0 there). The forward prunes at >= 3; its reports count > 3 on an unclipped, eps-free log_alpha. The layers default to train_clip=False; the LeNet scripts pass True (mask on the mean; conv masks the variance too), the VGG script does not.',
    },
    noiseParameter: 'log_sigma2',
    ...layers(
      {
        logAlpha: { form: 'log_theta2', thetaEps: 0, clip: SWITCH_CLIP },
        klLogAlpha: null,
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
      {
        logAlpha: { form: 'log_theta2', thetaEps: BAYESGROUP_CONV_THETA_EPS, clip: SWITCH_CLIP },
        klLogAlpha: { form: 'log_theta2', thetaEps: 0, clip: SWITCH_CLIP },
        variance: 'alpha_theta2',
        trainMask: 'mean_and_variance',
      },
    ),
    sqrtEps: SQRT_EPS,
    samePadding: 'lasagne',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>',
      compressionComparison: '>',
      reportLogAlpha: 'unclipped_no_eps',
      from: 'clipped',
    },
    trainClipDefault: true,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'n_mean_ce',
    compressionReported: 'zeros / weights (compr_w), zeros / other parameters (compr_full)',
  },
  'deepbayes-pytorch': {
    name: 'deepbayes-pytorch',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'Official PyTorch notebook (Deep|Bayes summer school 2019, LinearSVDO)',
      repository: 'bayesgroup/deepbayes-2019',
      commit: '48114e19c926827df95662afbb2d27050344fbba',
      file: 'seminars/day6/SparseVD-solution.ipynb',
      note: 'Learns log_sigma; log_alpha = 2*log_sigma - 2*log(1e-16 + |theta|) clamped to [-10, 10]; the variance uses exp(2*log_sigma) unclipped; eval keeps log_alpha < 3; the KL omits C. The notebook has a dense layer only: the conv2d fields extend its conventions to a conv layer, and no code backs them. Its training forward has no mask. (The 2018 notebook has log(1e-16 + 2*|theta|): a known bug, not a convention.)',
    },
    noiseParameter: 'log_sigma',
    ...layers({
      logAlpha: { form: 'log_abs_theta', thetaEps: DEEPBAYES_THETA_EPS, clip: WIDE_CLIP },
      klLogAlpha: null,
      variance: 'sigma2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    samePadding: 'tensorflow',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>',
      compressionComparison: '>=',
      reportLogAlpha: 'clipped',
      from: 'clipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'omitted' },
    likelihoodScaling: 'n_mean_ce',
    compressionReported: 'total / kept',
  },
  'state-of-sparsity': {
    name: 'state-of-sparsity',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'google-research state_of_sparsity (TensorFlow), its layer classes',
      repository: 'google-research/google-research',
      commit: '0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa',
      file: 'state_of_sparsity/layers/variational_dropout/layers.py',
      note: "The path its training code runs: the layer classes default to clip_alpha=8, so log_alpha = clip(log_sigma2 - log(theta^2 + 1e-8), -8, 8) and nn.py rebuilds log_sigma2 from it (variance exp(clipped log_alpha) * (theta^2 + 1e-8)); the KL is computed with compute_log_alpha's default value_limit=8; the eval mask reads the unclipped log_alpha and prunes at >= 3.",
    },
    noiseParameter: 'log_sigma2',
    ...layers({
      logAlpha: { form: 'log_theta2', thetaEps: STATE_OF_SPARSITY_THETA_EPS, clip: SVD_CLIP },
      klLogAlpha: null,
      variance: 'sigma2_rebuilt',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    samePadding: 'tensorflow',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
      compressionComparison: '>=',
      reportLogAlpha: 'clipped',
      from: 'unclipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'user',
    compressionReported: 'zeros / total',
  },
  'state-of-sparsity-nn': {
    name: 'state-of-sparsity-nn',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'google-research state_of_sparsity (TensorFlow), its bare nn.py functions',
      repository: 'google-research/google-research',
      commit: '0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa',
      file: 'state_of_sparsity/layers/variational_dropout/nn.py',
      note: 'The nn.py functions called with their defaults (clip_alpha=None, negative_dkl included): log_alpha = log_sigma2 - log(theta^2 + 1e-8) with no clip; the variance uses exp(log_sigma2); the mask prunes at >= 3.',
    },
    noiseParameter: 'log_sigma2',
    ...layers({
      logAlpha: { form: 'log_theta2', thetaEps: STATE_OF_SPARSITY_THETA_EPS, clip: null },
      klLogAlpha: null,
      variance: 'sigma2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    samePadding: 'tensorflow',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
      compressionComparison: '>=',
      reportLogAlpha: 'clipped',
      from: 'unclipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'user',
    compressionReported: 'zeros / total',
  },
  'pytorch-ard': {
    name: 'pytorch-ard',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'pytorch_ard (pip package torch-ard)',
      repository: 'HolyBayes/pytorch_ard',
      commit: '9da3a4ce1b1b1b21d55a34bdd12d867a070ca9ab',
      file: 'torch_ard/torch_ard.py',
      note: 'LinearARD and Conv2dARD at HEAD, both with the local reparameterization: log_alpha = log_sigma2 - 2*log(|theta| + 1e-15), clamped to [-10, 10] dense and [-8, 8] conv; variance exp(log_alpha) * theta^2; 1e-15 inside the square root in both layers; prunes at >= 3. Its defects (a multi-element bias crashes LinearARD, Conv2dARD forces bias=False) are known bugs of that code, not conventions.',
    },
    noiseParameter: 'log_sigma2',
    ...layers(
      {
        logAlpha: { form: 'log_abs_theta', thetaEps: PYTORCH_ARD_THETA_EPS, clip: WIDE_CLIP },
        klLogAlpha: null,
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
      {
        logAlpha: { form: 'log_abs_theta', thetaEps: PYTORCH_ARD_THETA_EPS, clip: SVD_CLIP },
        klLogAlpha: null,
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
    ),
    sqrtEps: PYTORCH_ARD_SQRT_EPS,
    samePadding: 'tensorflow',
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
      compressionComparison: '>=',
      reportLogAlpha: 'clipped',
      from: 'clipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'user',
    compressionReported: 'dropped / total',
  },
};

/** A layer kind's conventions as its KL sees them: `klLogAlpha`, where set, in place of `logAlpha`. */
export function klLayerConventions(conventions: LayerConventions): LayerConventions {
  return conventions.klLogAlpha === null
    ? conventions
    : { ...conventions, logAlpha: conventions.klLogAlpha, klLogAlpha: null };
}

export const CANONICAL_PROFILE: Record<'svd' | 'vd', ProfileName> = {
  svd: 'molchanov2017',
  vd: 'kingma2015',
};

export function isProfileName(name: unknown): name is ProfileName {
  return typeof name === 'string' && (PROFILE_NAMES as readonly string[]).includes(name);
}

/** Look a profile up by name (or pass one through); unknown names get a VdspecError. */
export function getProfile(profile: ProfileName | Profile | string): Profile {
  if (typeof profile === 'object') return profile;
  if (!isProfileName(profile)) {
    throw new VdspecError(
      'unknown_profile',
      `unknown profile "${profile}"; known profiles: ${PROFILE_NAMES.join(', ')}`,
      'profile',
    );
  }
  return PROFILES[profile];
}
