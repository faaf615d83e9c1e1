/**
 * The constants table of spec/constants.md, generated from src/constants.ts so
 * that the page cannot drift from the code (test/properties/spec-pages.test.ts
 * checks that the page contains exactly this table).
 */
import * as constants from '../constants.js';

const MEANING: Record<keyof typeof constants, string> = {
  SVD_KL_K1: 'k1 of the SVD sigmoid KL approximation (Molchanov 2017, eq. 14)',
  SVD_KL_K2: 'k2 of the SVD sigmoid KL approximation',
  SVD_KL_K3: 'k3 of the SVD sigmoid KL approximation',
  VD_KL_C1: 'c1 of the VD cubic KL approximation (Kingma 2015, eq. 16)',
  VD_KL_C2: 'c2 of the VD cubic KL approximation',
  VD_KL_C3: 'c3 of the VD cubic KL approximation',
  SVD_LOG_ALPHA_MIN: 'lower clip bound of log_alpha (SVD)',
  SVD_LOG_ALPHA_MAX: 'upper clip bound of log_alpha (SVD)',
  SVD_PRUNE_THRESHOLD: 'a weight is pruned when log_alpha exceeds this (SVD)',
  VD_LOG_ALPHA_MAX: 'upper clip bound of log_alpha (VD: alpha <= 1)',
  SQRT_EPS: 'added to the pre-activation variance before the square root',
  EULER_GAMMA: 'Euler-Mascheroni constant (exact KL)',
  EXACT_KL_LIMIT: '(gamma + ln 2) / 2: the limit of KL + 0.5 log_alpha as alpha -> 0',
  SVD_INIT_LOG_SIGMA2: 'official initial value of log_sigma2 (informative)',
  DENSE_INIT_THETA_STD: 'standard deviation of the official dense theta initialisation N(0, std^2)',
  ADAM_BETA1: 'Adam first-moment decay (fast training step)',
  ADAM_BETA2: 'Adam second-moment decay (fast training step)',
  ADAM_EPSILON: 'Adam epsilon (fast training step)',
  KL_WARMUP_START_EPOCH: 'KL weight is 0 before this epoch (official LeNet-300-100 recipe)',
  KL_WARMUP_END_EPOCH: 'KL weight reaches 1 at this epoch',
  RECIPE_LEARNING_RATE: "Adam's base learning rate of the official LeNet recipes (vdspec train)",
  RECIPE_BATCH_SIZE: 'batch size of the official LeNet recipes',
  RECIPE_EPOCHS:
    'epochs of the official LeNet recipes; vdspec train scales the schedules to its --epochs',
  WIDE_LOG_ALPHA_MIN:
    'lower clip bound of deepbayes-pytorch (dense and conv) and pytorch-ard (dense)',
  WIDE_LOG_ALPHA_MAX:
    'upper clip bound of deepbayes-pytorch (dense and conv) and pytorch-ard (dense)',
  BAYESGROUP_CONV_THETA_EPS: 'eps in log(theta^2 + eps), bayesgroup-theano conv layers',
  DEEPBAYES_THETA_EPS: 'eps in log(|theta| + eps), deepbayes-pytorch',
  STATE_OF_SPARSITY_THETA_EPS: 'eps in log(theta^2 + eps), state-of-sparsity',
  PYTORCH_ARD_THETA_EPS: 'eps in log(|theta| + eps), pytorch-ard',
  PYTORCH_ARD_SQRT_EPS: 'eps inside the square root of the variance, pytorch-ard',
};

export function constantsTableMarkdown(): string {
  const rows = (Object.keys(MEANING) as (keyof typeof constants)[]).map(
    (name) => `| \`${name}\` | ${String(constants[name])} | ${MEANING[name]} |`,
  );
  return ['| name | value | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
