/**
 * Every numeric constant of the two algorithms, stated once.
 *
 * Both implementations (float64 reference, float32 fast) and the golden files
 * read these values from here; `spec/constants.md` cites each by name.
 */

/** Molchanov et al. 2017, eq. 14: the sigmoid approximation of -KL. */
export const SVD_KL_K1 = 0.63576;
export const SVD_KL_K2 = 1.8732;
export const SVD_KL_K3 = 1.48695;

/** Kingma et al. 2015, eq. 16: the cubic approximation of -KL (its constant dropped). */
export const VD_KL_C1 = 1.16145124;
export const VD_KL_C2 = -1.50204118;
export const VD_KL_C3 = 0.58629921;

/** Molchanov et al. 2017, sec. 4.1 and the official code: log_alpha lives in [-8, 8]. */
export const SVD_LOG_ALPHA_MIN = -8;
export const SVD_LOG_ALPHA_MAX = 8;

/** Molchanov et al. 2017, sec. 4.3: a weight is pruned when log_alpha > 3. */
export const SVD_PRUNE_THRESHOLD = 3;

/** Kingma et al. 2015, sec. 3.3: alpha <= 1, so log_alpha <= 0. */
export const VD_LOG_ALPHA_MAX = 0;

/** Added to the pre-activation variance before the square root (official SVD code). */
export const SQRT_EPS = 1e-8;

/** Euler-Mascheroni constant, for the exact KL. */
export const EULER_GAMMA = 0.5772156649015329;

/**
 * The limit of -KL's constant as alpha -> inf: (gamma + ln 2) / 2.
 * The exact KL is normalised so that KL -> 0 as alpha -> inf.
 */
export const EXACT_KL_LIMIT = (EULER_GAMMA + Math.LN2) / 2;

/** Official SVD initialisation of log_sigma2 (Theano code); informative only. */
export const SVD_INIT_LOG_SIGMA2 = -10;

/** Official SVD initialisation of dense theta: N(0, 0.01^2) (std 0.01). */
export const DENSE_INIT_THETA_STD = 0.01;

/** Adam's moment decay rates and epsilon (Kingma & Ba 2014 defaults, as PyTorch and the official code use). */
export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPSILON = 1e-8;

/** Official KL-weight warm-up for LeNet-300-100: beta = 0 before epoch 5, linear to 1 at epoch 20. */
export const KL_WARMUP_START_EPOCH = 5;
export const KL_WARMUP_END_EPOCH = 20;

/**
 * The official LeNet recipes (spec/train.md#recipe): Adam at this base
 * learning rate, batches of this size, for this many epochs; `vdspec train`
 * scales the epoch-based schedules to the epochs it is asked for.
 */
export const RECIPE_LEARNING_RATE = 1e-3;
export const RECIPE_BATCH_SIZE = 100;
export const RECIPE_EPOCHS = 200;

/**
 * Constants of the public implementations mirrored by the non-canonical
 * profiles (src/profiles.ts). Each is the value that implementation uses.
 */
export const WIDE_LOG_ALPHA_MIN = -10;
export const WIDE_LOG_ALPHA_MAX = 10;
export const BAYESGROUP_CONV_THETA_EPS = 1e-8;
export const DEEPBAYES_THETA_EPS = 1e-16;
export const STATE_OF_SPARSITY_THETA_EPS = 1e-8;
export const PYTORCH_ARD_THETA_EPS = 1e-15;
export const PYTORCH_ARD_SQRT_EPS = 1e-15;
