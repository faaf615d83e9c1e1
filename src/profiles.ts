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
   * The per-weight variance in the local reparameterization:
   * - `alpha_theta2`: exp(clipped log_alpha) * theta^2 (theta unmasked);
   * - `sigma2`: exp(log_sigma2) straight from the parameter, unclipped.
   */
  readonly variance: 'alpha_theta2' | 'sigma2';
  /** Where the mask applies in the training forward when `trainClip` is on. */
  readonly trainMask: 'mean' | 'mean_and_variance';
}

export interface PruneConvention {
  /** log_alpha compared against this value. */
  readonly threshold: number;
  /** A weight is pruned when `log_alpha <comparison> threshold` (in the forward passes). */
  readonly comparison: '>' | '>=';
  /** The comparison the implementation's own sparsity report uses. */
  readonly reportComparison: '>' | '>=';
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

const SVD_CLIP: Clip = { min: SVD_LOG_ALPHA_MIN, max: SVD_LOG_ALPHA_MAX };
const WIDE_CLIP: Clip = { min: WIDE_LOG_ALPHA_MIN, max: WIDE_LOG_ALPHA_MAX };

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
      file: null,
      note: 'The paper: additive reparameterization, clip [-8, 8], prune where log_alpha > 3, KL with C = -k1.',
    },
    noiseParameter: 'log_sigma2',
    ...layers({
      logAlpha: { form: 'log_theta2', thetaEps: 0, clip: SVD_CLIP },
      variance: 'alpha_theta2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>',
      reportComparison: '>',
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
      file: null,
      note: 'The paper: log_alpha learned directly (scalar, per input unit or per weight), alpha <= 1, cubic KL with its constant dropped. The paper puts no eps in the square root; vdspec adds sqrtEps so the gradient stays finite where the variance is 0.',
    },
    noiseParameter: 'log_alpha',
    ...layers({
      logAlpha: { form: 'learned', thetaEps: 0, clip: { min: null, max: VD_LOG_ALPHA_MAX } },
      variance: 'alpha_theta2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
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
      file: 'nets/layers.py',
      note: 'Dense log_alpha has no eps, conv uses log(theta^2 + 1e-8); the LeNet scripts train with train_clip=True (mask on the mean; conv masks the variance too); the forward prunes at >= 3, the sparsity report counts > 3.',
    },
    noiseParameter: 'log_sigma2',
    ...layers(
      {
        logAlpha: { form: 'log_theta2', thetaEps: 0, clip: SVD_CLIP },
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
      {
        logAlpha: { form: 'log_theta2', thetaEps: BAYESGROUP_CONV_THETA_EPS, clip: SVD_CLIP },
        variance: 'alpha_theta2',
        trainMask: 'mean_and_variance',
      },
    ),
    sqrtEps: SQRT_EPS,
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>',
      from: 'clipped',
    },
    trainClipDefault: true,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'n_mean_ce',
    compressionReported: 'fraction of zeroed weights',
  },
  'deepbayes-pytorch': {
    name: 'deepbayes-pytorch',
    algorithm: 'svd',
    canonical: false,
    source: {
      project: 'Official PyTorch notebook (Deep|Bayes summer school 2019, LinearSVDO)',
      repository: 'bayesgroup/deepbayes-2019',
      file: 'seminars/day6/SparseVD-solution.ipynb',
      note: 'Learns log_sigma; log_alpha = 2*log_sigma - 2*log(1e-16 + |theta|) clipped to [-10, 10]; the variance uses exp(2*log_sigma) unclipped; the KL omits C. (The 2018 notebook, bayesgroup/deepbayes-2018 day6_sparse-variational-dropout/svdo-solution.ipynb, has log(1e-16 + 2*|theta|) instead: a known bug, not a convention.)',
    },
    noiseParameter: 'log_sigma',
    ...layers({
      logAlpha: { form: 'log_abs_theta', thetaEps: DEEPBAYES_THETA_EPS, clip: WIDE_CLIP },
      variance: 'sigma2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
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
      project: 'google-research state_of_sparsity (TensorFlow)',
      repository: 'google-research/google-research',
      file: 'state_of_sparsity/layers/variational_dropout/common.py',
      note: 'Its default (clip_alpha=None): log_alpha = log_sigma2 - log(theta^2 + 1e-8) with no clip; the variance uses exp(log_sigma2); the mask prunes at >= 3. With clip_alpha set, nn.py rebuilds log_sigma2 from the clipped log_alpha plus log(theta^2 + 1e-8), a combination this profile does not model.',
    },
    noiseParameter: 'log_sigma2',
    ...layers({
      logAlpha: { form: 'log_theta2', thetaEps: STATE_OF_SPARSITY_THETA_EPS, clip: null },
      variance: 'sigma2',
      trainMask: 'mean',
    }),
    sqrtEps: SQRT_EPS,
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
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
      file: 'torch_ard/torch_ard.py',
      note: 'log_alpha = log_sigma2 - 2*log(|theta| + 1e-15), clipped to [-10, 10] dense and [-8, 8] conv; variance exp(log_alpha) * theta^2; eps 1e-15 in the square root; prunes at >= 3.',
    },
    noiseParameter: 'log_sigma2',
    ...layers(
      {
        logAlpha: { form: 'log_abs_theta', thetaEps: PYTORCH_ARD_THETA_EPS, clip: WIDE_CLIP },
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
      {
        logAlpha: { form: 'log_abs_theta', thetaEps: PYTORCH_ARD_THETA_EPS, clip: SVD_CLIP },
        variance: 'alpha_theta2',
        trainMask: 'mean',
      },
    ),
    sqrtEps: PYTORCH_ARD_SQRT_EPS,
    prune: {
      threshold: SVD_PRUNE_THRESHOLD,
      comparison: '>=',
      reportComparison: '>=',
      from: 'clipped',
    },
    trainClipDefault: false,
    kl: { approximation: 'svd_sigmoid', constant: 'minus_k1' },
    likelihoodScaling: 'user',
    compressionReported: 'dropped / total',
  },
};

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
