/**
 * spec/check.md#fingerprint on its own: the candidates the checker offers for
 * a profile (every id and every sentence written out here), which of them a
 * port's answer matches on small hand-built cases (the answers worked out by
 * hand in the comments), the merge of a convention's dense and conv2d halves
 * into one cause, and the passed cases that contradict a diagnosis.
 * check.test.ts runs the fingerprint end to end through `vdspec check`; this
 * file pins each rule in a few seconds, and is what `npm run mutate` runs
 * against `fingerprint.ts` (spec/mutation.md).
 */
import { describe, expect, it } from 'vitest';

import {
  candidateIds,
  contradictingCases,
  FLOAT32_ARITHMETIC,
  fingerprintCandidates,
  fingerprintCase,
  mergeLayerHalves,
  type PassedCase,
  type TallyEntry,
} from '../../src/check/fingerprint.js';
import { PROFILES, type Profile } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';

type Candidate = ReturnType<typeof fingerprintCandidates>[number];

const molchanov = PROFILES.molchanov2017;
/** Loose enough for rounding, tight enough that an eps of 1e-8 in a result of order 1 shows. */
const TIGHT = { abs: 1e-12, rel: 0, scaled: 0 };

const t = (shape: readonly number[], data: readonly number[]): Tensor => ({ shape, data });
const ids = (found: readonly { id: string }[]) => found.map((d) => d.id);

const CLIP_8_SWITCH = '{"min":-8,"max":8,"gradientAtBound":0}';
const CLIP_8 = '{"min":-8,"max":8,"gradientAtBound":1}';
const CLIP_10 = '{"min":-10,"max":10,"gradientAtBound":1}';
const BAYESGROUP_CONV_KL = `{"form":"log_theta2","thetaEps":0,"clip":${CLIP_8_SWITCH}}`;

const KL_SIGN =
  'common mistake: your KL has the opposite sign (-KL, the term as it appears in the lower bound; the ops return the KL itself)';
const SWITCH_WORDS =
  'with no gradient exactly on a bound (a switch that selects the constant there)';

/** The bugs and mistakes of a profile whose square-root eps is `sqrtEps`, in the order offered. */
function bugsOf(sqrtEps: string): [string, string, string][] {
  return [
    [
      'bug',
      'bug:std_from_sigma4',
      'known bug: your standard deviation comes from sigma^4 instead of sigma^2 (variance = (x*x) @ s2^2; pytorch_ard, since fixed)',
    ],
    [
      'bug',
      'bug:bias_in_variance',
      'known bug: your variance includes the bias (variance = (x*x) @ s2 + b; deepbayes-2019 issue #7, pytorch_ard Conv2dARD)',
    ],
    ['bug', 'bug:kl_sign', `${KL_SIGN}, and so has its gradient`],
    ['bug', 'bug:kl_sign_value_only', `${KL_SIGN}; its gradient has the right sign`],
    [
      'bug',
      'bug:no_sqrt_eps',
      `common mistake: your training forward has no eps inside the square root (the profile's is ${sqrtEps}; without it the gradient is infinite where the variance is 0)`,
    ],
    [
      'bug',
      'bug:eval_without_mask',
      'common mistake: your eval forward does not apply the keep mask (its answer is the unmasked eval forward, every weight at its mean)',
    ],
    [
      'bug',
      'bug:sqrt_eps_in_variance',
      `common mistake: your variance output includes the square root's eps (${sqrtEps}), which belongs inside the square root only`,
    ],
  ];
}

const PROFILE_TEXTS = {
  molchanov2017:
    'your answer matches the molchanov2017 profile (Molchanov, Ashukha, Vetrov 2017, Variational Dropout Sparsifies Deep Neural Networks)',
  'bayesgroup-theano':
    'your answer matches the bayesgroup-theano profile (Official Theano/Lasagne code of the SVD paper)',
  'deepbayes-pytorch':
    'your answer matches the deepbayes-pytorch profile (Official PyTorch notebook (Deep|Bayes summer school 2019, LinearSVDO))',
  'state-of-sparsity':
    'your answer matches the state-of-sparsity profile (google-research state_of_sparsity (TensorFlow), its layer classes)',
  'state-of-sparsity-nn':
    'your answer matches the state-of-sparsity-nn profile (google-research state_of_sparsity (TensorFlow), its bare nn.py functions)',
  'pytorch-ard':
    'your answer matches the pytorch-ard profile (pytorch_ard (pip package torch-ard))',
};

/**
 * Every candidate for molchanov2017, worked out from the profiles of
 * spec/profiles.md: per convention field, each value another SVD profile
 * uses, in the order the profiles are listed (bayesgroup-theano, deepbayes-
 * pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard), once.
 */
const MOLCHANOV_CANDIDATES: [string, string, string][] = [
  ...bugsOf('1e-8'),
  [
    'convention',
    'convention:dense.logAlpha.form="log_abs_theta"',
    "convention: your dense log_alpha is log_sigma2 - 2*log(|theta| + eps) (dense.logAlpha.form = 'log_abs_theta'; molchanov2017 has 'log_theta2'), like deepbayes-pytorch, pytorch-ard",
  ],
  [
    'convention',
    'convention:dense.logAlpha.thetaEps=1e-16',
    'convention: your dense log_alpha adds eps 1e-16 inside the log (dense.logAlpha.thetaEps = 1e-16; molchanov2017 has 0), like deepbayes-pytorch',
  ],
  [
    'convention',
    'convention:dense.logAlpha.thetaEps=1e-8',
    'convention: your dense log_alpha adds eps 1e-8 inside the log (dense.logAlpha.thetaEps = 1e-8; molchanov2017 has 0), like state-of-sparsity, state-of-sparsity-nn',
  ],
  [
    'convention',
    'convention:dense.logAlpha.thetaEps=1e-15',
    'convention: your dense log_alpha adds eps 1e-15 inside the log (dense.logAlpha.thetaEps = 1e-15; molchanov2017 has 0), like pytorch-ard',
  ],
  [
    'convention',
    `convention:dense.logAlpha.clip=${CLIP_8_SWITCH}`,
    `convention: your dense log_alpha is clipped to [-8, 8, gradient 0 on a bound] ${SWITCH_WORDS} (dense.logAlpha.clip = [-8, 8, gradient 0 on a bound]; molchanov2017 has [-8, 8]), like bayesgroup-theano`,
  ],
  [
    'convention',
    `convention:dense.logAlpha.clip=${CLIP_10}`,
    'convention: your dense log_alpha is clipped to [-10, 10] (dense.logAlpha.clip = [-10, 10]; molchanov2017 has [-8, 8]), like deepbayes-pytorch, pytorch-ard',
  ],
  [
    'convention',
    'convention:dense.logAlpha.clip=null',
    'convention: your dense log_alpha is not clipped (dense.logAlpha.clip = none; molchanov2017 has [-8, 8]), like state-of-sparsity-nn',
  ],
  [
    'convention',
    'convention:dense.variance="sigma2"',
    "convention: your dense variance is exp(log_sigma2), ignoring the clip (dense.variance = 'sigma2'; molchanov2017 has 'alpha_theta2'), like deepbayes-pytorch, state-of-sparsity-nn",
  ],
  [
    'convention',
    'convention:dense.variance="sigma2_rebuilt"',
    "convention: your dense variance is exp(clipped log_alpha) * (theta^2 + eps): log_sigma2 rebuilt from the clipped log_alpha (dense.variance = 'sigma2_rebuilt'; molchanov2017 has 'alpha_theta2'), like state-of-sparsity",
  ],
  [
    'convention',
    'convention:conv2d.logAlpha.form="log_abs_theta"',
    "convention: your conv2d log_alpha is log_sigma2 - 2*log(|theta| + eps) (conv2d.logAlpha.form = 'log_abs_theta'; molchanov2017 has 'log_theta2'), like deepbayes-pytorch, pytorch-ard",
  ],
  // bayesgroup-theano's conv layer has the eps 1e-8, so it comes first here.
  [
    'convention',
    'convention:conv2d.logAlpha.thetaEps=1e-8',
    'convention: your conv2d log_alpha adds eps 1e-8 inside the log (conv2d.logAlpha.thetaEps = 1e-8; molchanov2017 has 0), like bayesgroup-theano, state-of-sparsity, state-of-sparsity-nn',
  ],
  [
    'convention',
    'convention:conv2d.logAlpha.thetaEps=1e-16',
    'convention: your conv2d log_alpha adds eps 1e-16 inside the log (conv2d.logAlpha.thetaEps = 1e-16; molchanov2017 has 0), like deepbayes-pytorch',
  ],
  [
    'convention',
    'convention:conv2d.logAlpha.thetaEps=1e-15',
    'convention: your conv2d log_alpha adds eps 1e-15 inside the log (conv2d.logAlpha.thetaEps = 1e-15; molchanov2017 has 0), like pytorch-ard',
  ],
  [
    'convention',
    `convention:conv2d.logAlpha.clip=${CLIP_8_SWITCH}`,
    `convention: your conv2d log_alpha is clipped to [-8, 8, gradient 0 on a bound] ${SWITCH_WORDS} (conv2d.logAlpha.clip = [-8, 8, gradient 0 on a bound]; molchanov2017 has [-8, 8]), like bayesgroup-theano`,
  ],
  // pytorch-ard clips its conv layer to [-8, 8]: only deepbayes-pytorch has [-10, 10] there.
  [
    'convention',
    `convention:conv2d.logAlpha.clip=${CLIP_10}`,
    'convention: your conv2d log_alpha is clipped to [-10, 10] (conv2d.logAlpha.clip = [-10, 10]; molchanov2017 has [-8, 8]), like deepbayes-pytorch',
  ],
  [
    'convention',
    'convention:conv2d.logAlpha.clip=null',
    'convention: your conv2d log_alpha is not clipped (conv2d.logAlpha.clip = none; molchanov2017 has [-8, 8]), like state-of-sparsity-nn',
  ],
  [
    'convention',
    `convention:conv2d.klLogAlpha=${BAYESGROUP_CONV_KL}`,
    "convention: your conv2d KL reads its own log_alpha (log_theta2, eps 0, clip [-8, 8, gradient 0 on a bound]), not the forward's (conv2d.klLogAlpha = log_theta2, eps 0, clip [-8, 8, gradient 0 on a bound]; molchanov2017 has none), like bayesgroup-theano",
  ],
  [
    'convention',
    'convention:conv2d.variance="sigma2"',
    "convention: your conv2d variance is exp(log_sigma2), ignoring the clip (conv2d.variance = 'sigma2'; molchanov2017 has 'alpha_theta2'), like deepbayes-pytorch, state-of-sparsity-nn",
  ],
  [
    'convention',
    'convention:conv2d.variance="sigma2_rebuilt"',
    "convention: your conv2d variance is exp(clipped log_alpha) * (theta^2 + eps): log_sigma2 rebuilt from the clipped log_alpha (conv2d.variance = 'sigma2_rebuilt'; molchanov2017 has 'alpha_theta2'), like state-of-sparsity",
  ],
  [
    'convention',
    'convention:conv2d.trainMask="mean_and_variance"',
    "convention: your conv2d training forward masks the variance as well as the mean (conv2d.trainMask = 'mean_and_variance'; molchanov2017 has 'mean'), like bayesgroup-theano",
  ],
  [
    'convention',
    'convention:sqrtEps=1e-15',
    "convention: your training forward adds 1e-15 or less (none at all included) inside the square root, not the profile's 1e-8 (sqrtEps = 1e-15; molchanov2017 has 1e-8), like pytorch-ard",
  ],
  [
    'convention',
    'convention:samePadding="lasagne"',
    "convention: your 'same' padding puts floor(k / 2) on each side (Lasagne) (samePadding = 'lasagne'; molchanov2017 has 'tensorflow'), like bayesgroup-theano",
  ],
  [
    'convention',
    'convention:prune.comparison=">="',
    "convention: your mask uses >= at the threshold: a weight at exactly log_alpha = 3 is pruned (prune.comparison = '>='; molchanov2017 has '>'), like bayesgroup-theano, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard",
  ],
  [
    'convention',
    'convention:prune.from="unclipped"',
    "convention: your mask reads the unclipped log_alpha (prune.from = 'unclipped'; molchanov2017 has 'clipped'), like state-of-sparsity, state-of-sparsity-nn",
  ],
  [
    'convention',
    'convention:trainClipDefault=true',
    'convention: your training forward applies the mask by default (train_clip on) (trainClipDefault = true; molchanov2017 has false), like bayesgroup-theano',
  ],
  [
    'convention',
    'convention:kl.constant="omitted"',
    "convention: your KL omits the constant C = -k1: lower by SVD_KL_K1 = 0.63576 per weight, -> -k1 instead of 0 as alpha -> inf (kl.constant = 'omitted'; molchanov2017 has 'minus_k1'), like deepbayes-pytorch",
  ],
  ['profile', 'profile:bayesgroup-theano', PROFILE_TEXTS['bayesgroup-theano']],
  ['profile', 'profile:deepbayes-pytorch', PROFILE_TEXTS['deepbayes-pytorch']],
  ['profile', 'profile:state-of-sparsity', PROFILE_TEXTS['state-of-sparsity']],
  ['profile', 'profile:state-of-sparsity-nn', PROFILE_TEXTS['state-of-sparsity-nn']],
  ['profile', 'profile:pytorch-ard', PROFILE_TEXTS['pytorch-ard']],
];

const triples = (profile: Profile) =>
  fingerprintCandidates(profile).map((c) => [c.kind, c.id, c.text]);
const textOf = (profile: Profile, id: string) =>
  fingerprintCandidates(profile).find((c) => c.id === id)?.text;

describe('the candidates offered for a profile (spec/check.md#fingerprint)', () => {
  it('molchanov2017: bugs first, then each convention another SVD profile uses, then the other profiles', () => {
    expect(triples(molchanov)).toEqual(MOLCHANOV_CANDIDATES);
  });

  it('kingma2015, the only VD profile, has no other profile to borrow a convention from: its bugs only', () => {
    expect(triples(PROFILES.kingma2015)).toEqual(bugsOf('1e-8'));
  });

  it("pytorch-ard's eps of 1e-15 in the square root: the canonical 1e-8 is a larger eps, said plainly", () => {
    expect(triples(PROFILES['pytorch-ard']).slice(0, 7)).toEqual(bugsOf('1e-15'));
    expect(textOf(PROFILES['pytorch-ard'], 'convention:sqrtEps=1e-8')).toBe(
      "convention: your training forward adds 1e-8 inside the square root, not the profile's 1e-15 (sqrtEps = 1e-8; pytorch-ard has 1e-15), like molchanov2017, bayesgroup-theano, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn",
    );
  });

  it('the other side of each two-valued field, seen from a profile that has the first', () => {
    const ard = PROFILES['pytorch-ard'];
    expect(textOf(ard, 'convention:dense.logAlpha.form="log_theta2"')).toBe(
      "convention: your dense log_alpha is log_sigma2 - log(theta^2 + eps) (dense.logAlpha.form = 'log_theta2'; pytorch-ard has 'log_abs_theta'), like molchanov2017, bayesgroup-theano, state-of-sparsity, state-of-sparsity-nn",
    );
    expect(textOf(ard, 'convention:dense.logAlpha.thetaEps=0')).toBe(
      'convention: your dense log_alpha has no eps inside the log (dense.logAlpha.thetaEps = 0; pytorch-ard has 1e-15), like molchanov2017, bayesgroup-theano',
    );
    expect(textOf(ard, 'convention:prune.comparison=">"')).toBe(
      "convention: your mask uses > at the threshold: a weight at exactly log_alpha = 3 is kept (prune.comparison = '>'; pytorch-ard has '>='), like molchanov2017",
    );
    const nn = PROFILES['state-of-sparsity-nn'];
    expect(textOf(nn, 'convention:dense.variance="alpha_theta2"')).toBe(
      "convention: your dense variance is exp(clipped log_alpha) * theta^2 (dense.variance = 'alpha_theta2'; state-of-sparsity-nn has 'sigma2'), like molchanov2017, bayesgroup-theano, pytorch-ard",
    );
    expect(textOf(nn, `convention:dense.logAlpha.clip=${CLIP_8}`)).toBe(
      'convention: your dense log_alpha is clipped to [-8, 8] (dense.logAlpha.clip = [-8, 8]; state-of-sparsity-nn has none), like molchanov2017, state-of-sparsity',
    );
    expect(textOf(nn, 'convention:prune.from="clipped"')).toBe(
      "convention: your mask reads the clipped log_alpha (prune.from = 'clipped'; state-of-sparsity-nn has 'unclipped'), like molchanov2017, bayesgroup-theano, deepbayes-pytorch, pytorch-ard",
    );
    const theano = PROFILES['bayesgroup-theano'];
    expect(textOf(theano, 'convention:conv2d.klLogAlpha=null')).toBe(
      "convention: your conv2d KL reads the forward's log_alpha (conv2d.klLogAlpha = none; bayesgroup-theano has log_theta2, eps 0, clip [-8, 8, gradient 0 on a bound]), like molchanov2017, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard",
    );
    expect(textOf(theano, 'convention:conv2d.trainMask="mean"')).toBe(
      "convention: your conv2d training forward masks the mean only (conv2d.trainMask = 'mean'; bayesgroup-theano has 'mean_and_variance'), like molchanov2017, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard",
    );
    expect(textOf(theano, 'convention:samePadding="tensorflow"')).toBe(
      "convention: your 'same' padding puts the odd row and column after (TensorFlow) (samePadding = 'tensorflow'; bayesgroup-theano has 'lasagne'), like molchanov2017, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard",
    );
    expect(textOf(theano, 'convention:trainClipDefault=false')).toBe(
      'convention: your training forward does not apply the mask by default (train_clip off) (trainClipDefault = false; bayesgroup-theano has true), like molchanov2017, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard',
    );
    expect(textOf(PROFILES['deepbayes-pytorch'], 'convention:kl.constant="minus_k1"')).toBe(
      "convention: your KL includes the constant C = -k1: higher by SVD_KL_K1 = 0.63576 per weight, -> 0 instead of -k1 as alpha -> inf (kl.constant = 'minus_k1'; deepbayes-pytorch has 'omitted'), like molchanov2017, bayesgroup-theano, state-of-sparsity, state-of-sparsity-nn, pytorch-ard",
    );
  });

  it('a hand-made VD profile: a value no other profile shares gets no "like", and the cubic constant is named as it is', () => {
    const kingma = PROFILES.kingma2015;
    const vd: Profile = {
      ...kingma,
      dense: {
        ...kingma.dense,
        logAlpha: { form: 'log_theta2', thetaEps: 0, clip: { min: -8, max: null } },
      },
      sqrtEps: 1e-4,
      kl: { approximation: 'vd_cubic', constant: 'minus_k1' },
    };
    // kingma2015 itself is the other VD profile: its values are the candidates, its name is not.
    expect(
      fingerprintCandidates(vd)
        .filter((c) => c.kind !== 'bug')
        .map((c) => [c.kind, c.id, c.text]),
    ).toEqual([
      [
        'convention',
        'convention:dense.logAlpha.form="learned"',
        "convention: your dense log_alpha is the learned parameter itself (dense.logAlpha.form = 'learned'; kingma2015 has 'log_theta2'), like kingma2015",
      ],
      [
        'convention',
        'convention:dense.logAlpha.clip={"min":null,"max":0,"gradientAtBound":1}',
        'convention: your dense log_alpha is clipped to [none, 0] (dense.logAlpha.clip = [none, 0]; kingma2015 has [-8, none]), like kingma2015',
      ],
      [
        'convention',
        'convention:sqrtEps=1e-8',
        "convention: your training forward adds 1e-8 or less (none at all included) inside the square root, not the profile's 0.0001 (sqrtEps = 1e-8; kingma2015 has 0.0001), like kingma2015",
      ],
      [
        'convention',
        'convention:kl.constant="dropped"',
        "convention: your KL uses the constant 'dropped' (kl.constant = 'dropped'; kingma2015 has 'minus_k1'), like kingma2015",
      ],
    ]);
  });

  it('a profile whose noise parameter no other maps to (log_alpha under SVD) has no whole-profile candidates', () => {
    const learned: Profile = { ...molchanov, noiseParameter: 'log_alpha' };
    expect(fingerprintCandidates(learned).filter((c) => c.kind === 'profile')).toEqual([]);
  });

  it('a profile that does not prune has no pruning conventions, whatever the others do', () => {
    const unpruned: Profile = { ...molchanov, prune: null };
    expect(ids(fingerprintCandidates(unpruned)).filter((id) => id.includes('prune'))).toEqual([]);
  });

  it('log_sigma2 and log_sigma map onto each other only: a VD profile with either has no whole-profile candidate', () => {
    // kingma2015, the other VD profile, learns log_alpha.
    for (const noiseParameter of ['log_sigma2', 'log_sigma'] as const) {
      const vd: Profile = { ...PROFILES.kingma2015, name: 'molchanov2017', noiseParameter };
      expect(fingerprintCandidates(vd).filter((c) => c.kind === 'profile')).toEqual([]);
    }
  });

  it('the whole-profile candidates leave out the checked profile by its name', () => {
    const renamed: Profile = { ...PROFILES['pytorch-ard'], name: 'molchanov2017' };
    expect(
      fingerprintCandidates(renamed)
        .filter((c) => c.kind === 'profile')
        .map((c) => c.id),
    ).toEqual([
      'profile:bayesgroup-theano',
      'profile:deepbayes-pytorch',
      'profile:state-of-sparsity',
      'profile:state-of-sparsity-nn',
      'profile:pytorch-ard',
    ]);
  });

  it('FLOAT32_ARITHMETIC is a bug with its own words', () => {
    expect(FLOAT32_ARITHMETIC).toEqual({
      kind: 'bug',
      id: 'bug:float32_arithmetic',
      text: 'common mistake: the answer is within the float32 tolerance, not the float64 one: computed in float32 while declaring float64? (declare "dtype": "float32"; it is PyTorch\'s default)',
    });
  });
});

describe('candidateIds: a merged id stands for its two halves', () => {
  it('splits a dense+conv2d id and leaves any other alone', () => {
    expect(candidateIds(`convention:dense+conv2d.logAlpha.clip=${CLIP_10}`)).toEqual([
      `convention:dense.logAlpha.clip=${CLIP_10}`,
      `convention:conv2d.logAlpha.clip=${CLIP_10}`,
    ]);
    expect(candidateIds('profile:pytorch-ard')).toEqual(['profile:pytorch-ard']);
    expect(candidateIds('convention:dense.variance="sigma2"')).toEqual([
      'convention:dense.variance="sigma2"',
    ]);
    // Only at the start, and the value may span lines.
    expect(candidateIds('x convention:dense+conv2d.a=1')).toEqual([
      'x convention:dense+conv2d.a=1',
    ]);
    expect(candidateIds('convention:dense+conv2d.a=[1,\n2]')).toEqual([
      'convention:dense.a=[1,\n2]',
      'convention:conv2d.a=[1,\n2]',
    ]);
  });
});

const entry = (id: string, matched: number, checked = 9): TallyEntry => ({
  kind: id.startsWith('bug:') ? 'bug' : id.startsWith('profile:') ? 'profile' : 'convention',
  id,
  text: `text of ${id}`,
  matched,
  checked,
});

describe('mergeLayerHalves: one convention at one value in both layer kinds is one cause', () => {
  it('merges the two halves where the first stands, counts added, and keeps the rest in order', () => {
    const tally = [
      entry('bug:kl_sign', 1),
      entry(`convention:conv2d.logAlpha.clip=${CLIP_10}`, 4),
      entry('profile:deepbayes-pytorch', 9),
      entry(`convention:dense.logAlpha.clip=${CLIP_10}`, 5),
      entry('convention:sqrtEps=1e-15', 2),
    ];
    expect(mergeLayerHalves(molchanov, tally)).toEqual([
      tally[0],
      {
        kind: 'convention',
        id: `convention:dense+conv2d.logAlpha.clip=${CLIP_10}`,
        // pytorch-ard clips its conv layer to [-8, 8]: only deepbayes-pytorch has both.
        text: 'convention: your dense and conv2d log_alpha is clipped to [-10, 10] (dense.logAlpha.clip and conv2d.logAlpha.clip = [-10, 10]; molchanov2017 has [-8, 8] for dense, molchanov2017 has [-8, 8] for conv2d), like deepbayes-pytorch',
        matched: 9,
        checked: 9,
      },
      tally[2],
      tally[4],
    ]);
  });

  it('keeps halves apart when the value, the field or the layer differs, or the id only looks like one', () => {
    const tally = [
      entry(`convention:dense.logAlpha.clip=${CLIP_10}`, 1),
      entry('convention:conv2d.logAlpha.clip=null', 2),
      entry('convention:conv2d.variance="sigma2"', 3),
      entry(`convention:dense.logAlpha.clip=${CLIP_10}x`, 4),
      entry(`bug:convention:conv2d.logAlpha.clip=${CLIP_10}`, 5),
      entry('convention:dense.variance="sigma2_rebuilt"', 6),
    ];
    expect(mergeLayerHalves(molchanov, tally)).toEqual(tally);
  });

  it('a value no profile has in both layers gets no "like"; the checked count is the first half\'s', () => {
    const tally = [
      entry(`convention:conv2d.klLogAlpha=${BAYESGROUP_CONV_KL}`, 3, 7),
      entry(`convention:dense.klLogAlpha=${BAYESGROUP_CONV_KL}`, 2, 7),
    ];
    expect(mergeLayerHalves(molchanov, tally)).toEqual([
      {
        kind: 'convention',
        id: `convention:dense+conv2d.klLogAlpha=${BAYESGROUP_CONV_KL}`,
        text: "convention: your dense and conv2d KL reads its own log_alpha (log_theta2, eps 0, clip [-8, 8, gradient 0 on a bound]), not the forward's (dense.klLogAlpha and conv2d.klLogAlpha = log_theta2, eps 0, clip [-8, 8, gradient 0 on a bound]; molchanov2017 has none for dense, molchanov2017 has none for conv2d)",
        matched: 5,
        checked: 7,
      },
    ]);
  });

  it('two or more profiles with the value in both layers are all named; dense.trainMask has its words too', () => {
    const tally = [
      entry('convention:dense.variance="sigma2"', 1),
      entry('convention:conv2d.variance="sigma2"', 1),
      entry('convention:dense.trainMask="mean_and_variance"', 1),
      entry('convention:conv2d.trainMask="mean_and_variance"', 1),
    ];
    expect(mergeLayerHalves(molchanov, tally).map((e) => e.text)).toEqual([
      "convention: your dense and conv2d variance is exp(log_sigma2), ignoring the clip (dense.variance and conv2d.variance = 'sigma2'; molchanov2017 has 'alpha_theta2' for dense, molchanov2017 has 'alpha_theta2' for conv2d), like deepbayes-pytorch, state-of-sparsity-nn",
      // bayesgroup-theano masks the variance in its conv layer only.
      "convention: your dense and conv2d training forward masks the variance as well as the mean (dense.trainMask and conv2d.trainMask = 'mean_and_variance'; molchanov2017 has 'mean' for dense, molchanov2017 has 'mean' for conv2d)",
    ]);
  });

  it('one value in two different fields is two causes', () => {
    // Both real candidates of bayesgroup-theano, both at null.
    const tally = [
      entry('convention:dense.logAlpha.clip=null', 2),
      entry('convention:conv2d.klLogAlpha=null', 3),
    ];
    expect(mergeLayerHalves(PROFILES['bayesgroup-theano'], tally)).toEqual(tally);
  });

  it('a field past the end of a convention (a path through a string) names no profile and does not throw', () => {
    const tally = [
      entry('convention:dense.logAlpha.form.x.y=1', 1),
      entry('convention:conv2d.logAlpha.form.x.y=1', 1),
    ];
    expect(ids(mergeLayerHalves(molchanov, tally))).toEqual([
      'convention:dense+conv2d.logAlpha.form.x.y=1',
    ]);
  });

  it('a value spread over lines is still one value', () => {
    const value = '{"min":-10,\n"max":10,"gradientAtBound":1}';
    const tally = [
      entry(`convention:dense.logAlpha.clip=${value}`, 1),
      entry(`convention:conv2d.logAlpha.clip=${value}`, 1),
    ];
    expect(ids(mergeLayerHalves(molchanov, tally))).toEqual([
      `convention:dense+conv2d.logAlpha.clip=${value}`,
    ]);
  });
});

// A dense layer, one example: x = [1, 2], theta = [0.5, 1] (2 inputs, 1 output), bias 0.25, eps 0.5.
// log_sigma2 = [0, ln 2] puts log_alpha at ln 4 and ln 2, inside the clip and below the
// threshold, so each weight's variance is exp(log_sigma2) = [1, 2]:
//   mean = 1 * 0.5 + 2 * 1 + 0.25 = 2.75, variance = 1 * 1 + 4 * 2 = 9,
//   output = 2.75 + 0.5 * sqrt(9 + 1e-8).
const DENSE = {
  x: t([1, 2], [1, 2]),
  theta: t([2, 1], [0.5, 1]),
  log_sigma2: t([2, 1], [0, Math.LN2]),
  bias: t([1], [0.25]),
  eps: t([1, 1], [0.5]),
};
function denseAnswer(variance: number, underTheRoot: number) {
  return {
    mean: t([1, 1], [2.75]),
    variance: t([1, 1], [variance]),
    output: t([1, 1], [2.75 + 0.5 * Math.sqrt(underTheRoot)]),
  };
}

describe('fingerprintCase: the training forward bugs on a dense layer worked out by hand', () => {
  const found = (answer: unknown) =>
    ids(fingerprintCase('svd.dense.train', molchanov, DENSE, answer, TIGHT));

  it('the correct answer matches no bug', () => {
    expect(found(denseAnswer(9, 9 + 1e-8)).filter((id) => id.startsWith('bug:'))).toEqual([]);
  });

  it('sigma^4: variance = 1 * 1^2 + 4 * 2^2 = 17', () => {
    expect(found(denseAnswer(17, 17 + 1e-8))).toEqual(['bug:std_from_sigma4']);
  });

  it('the bias in the variance: 9 + 0.25', () => {
    expect(found(denseAnswer(9.25, 9.25 + 1e-8))).toEqual(['bug:bias_in_variance']);
  });

  it('the bias in the variance of two examples: the second, x = [0, 1], has mean 1.25 and variance 2', () => {
    const inputs = { ...DENSE, x: t([2, 2], [1, 2, 0, 1]), eps: t([2, 1], [0.5, 0.5]) };
    const answer = {
      mean: t([2, 1], [2.75, 1.25]),
      variance: t([2, 1], [9.25, 2.25]),
      output: t([2, 1], [2.75 + 0.5 * Math.sqrt(9.25 + 1e-8), 1.25 + 0.5 * Math.sqrt(2.25 + 1e-8)]),
    };
    expect(ids(fingerprintCase('svd.dense.train', molchanov, inputs, answer, TIGHT))).toEqual([
      'bug:bias_in_variance',
    ]);
  });

  it("the square root's eps in the variance output: 9 + 1e-8, the output unchanged", () => {
    expect(found(denseAnswer(9 + 1e-8, 9 + 1e-8))).toEqual(['bug:sqrt_eps_in_variance']);
  });

  it("no eps in the square root: output 2.75 + 0.5 * 3, which pytorch-ard's 1e-15 cannot be told from", () => {
    expect(found(denseAnswer(9, 9))).toEqual([
      'bug:no_sqrt_eps',
      'convention:sqrtEps=1e-15',
      'profile:pytorch-ard',
    ]);
  });
});

describe('fingerprintCase: sigma^4 through the masks and a strided convolution', () => {
  const ROUNDING = { abs: 1e-9, rel: 0, scaled: 0 };

  it('molchanov2017 masks the mean only: with train_clip on, the pruned weight stays in the variance', () => {
    // log_sigma2 = [2, ln 2]: the first log_alpha is 2 - ln(1/4) = 3.39 > 3, pruned; its
    // variance is exp(3.39) * 1/4 = e^2, whose square e^4 stays in the sigma^4 variance.
    const inputs = { ...DENSE, log_sigma2: t([2, 1], [2, Math.LN2]), train_clip: true };
    const variance = Math.exp(4) + 4 * 4;
    const answer = {
      mean: t([1, 1], [2 * 1 + 0.25]),
      variance: t([1, 1], [variance]),
      output: t([1, 1], [2.25 + 0.5 * Math.sqrt(variance + 1e-8)]),
    };
    expect(ids(fingerprintCase('svd.dense.train', molchanov, inputs, answer, ROUNDING))).toEqual([
      'bug:std_from_sigma4',
    ]);
  });

  // bayesgroup-theano's conv layer: eps 1e-8 in the log (hence the looser tolerance), and with
  // train_clip on (its default) the mask applies to the variance too. A 1-D convolution:
  // x = [1, 2, 3], a 3x1 kernel of ones, log_sigma2 = [ln 2, ln 2, 5]: the third weight is pruned.
  const theano = PROFILES['bayesgroup-theano'];
  const CONV = {
    x: t([1, 3, 1, 1], [1, 2, 3]),
    theta: t([3, 1, 1, 1], [1, 1, 1]),
    log_sigma2: t([3, 1, 1, 1], [Math.LN2, Math.LN2, 5]),
    bias: t([1], [0]),
    eps: t([1, 1, 1, 1], [0.5]),
  };
  const convAnswer = (mean: number, variance: number) => ({
    mean: t([1, 1, 1, 1], [mean]),
    variance: t([1, 1, 1, 1], [variance]),
    output: t([1, 1, 1, 1], [mean + 0.5 * Math.sqrt(variance + 1e-8)]),
  });
  const LOOSER = { abs: 0, rel: 1e-6, scaled: 0 };

  it('bayesgroup-theano conv2d, train_clip by default: the pruned weight leaves mean and variance', () => {
    // mean 1 + 2, sigma^4 variance 1 * 2^2 + 4 * 2^2.
    expect(
      ids(fingerprintCase('svd.conv2d.train', theano, CONV, convAnswer(3, 20), LOOSER)),
    ).toEqual(['bug:std_from_sigma4']);
  });

  it('bayesgroup-theano conv2d, train_clip off: every weight counts, e^5 squared among them', () => {
    const inputs = { ...CONV, train_clip: false };
    expect(
      ids(
        fingerprintCase(
          'svd.conv2d.train',
          theano,
          inputs,
          convAnswer(6, 20 + 9 * Math.exp(10)),
          LOOSER,
        ),
      ),
    ).toEqual(['bug:std_from_sigma4']);
  });

  it("molchanov2017 conv2d with stride 2 and 'same' padding: TensorFlow's one row of padding after", () => {
    // x = [1, 2, 3, 4] padded to [1, 2, 3, 4, 0]; windows at rows 0 and 2 of a 3x1 kernel of ones;
    // per-weight variance [1, 2, 4], squared [1, 4, 16]; x^2 = [1, 4, 9, 16]:
    //   mean [1 + 2 + 3, 3 + 4], sigma^4 variance [1 + 16 + 144, 9 + 64].
    const inputs = {
      x: t([1, 4, 1, 1], [1, 2, 3, 4]),
      theta: t([3, 1, 1, 1], [1, 1, 1]),
      log_sigma2: t([3, 1, 1, 1], [0, Math.LN2, Math.log(4)]),
      bias: t([1], [0]),
      eps: t([1, 2, 1, 1], [0.5, 0.25]),
      stride: 2,
      padding: 'same',
    };
    const answer = {
      mean: t([1, 2, 1, 1], [6, 7]),
      variance: t([1, 2, 1, 1], [161, 73]),
      output: t([1, 2, 1, 1], [6 + 0.5 * Math.sqrt(161 + 1e-8), 7 + 0.25 * Math.sqrt(73 + 1e-8)]),
    };
    expect(ids(fingerprintCase('svd.conv2d.train', molchanov, inputs, answer, ROUNDING))).toEqual([
      'bug:std_from_sigma4',
    ]);
  });
});

describe('fingerprintCase: the error scale a candidate is held to', () => {
  it('no eps in the square root where the variance is 0: no scale exists, the plain tolerance holds', () => {
    // x = 0: the variance is 0, and without an eps the square root has no derivative there,
    // so the golden generator gives no scale; the answer 0.25 + 0.5 * sqrt(0) still matches.
    const inputs = { ...DENSE, x: t([1, 2], [0, 0]) };
    const answer = {
      mean: t([1, 1], [0.25]),
      variance: t([1, 1], [0]),
      output: t([1, 1], [0.25]),
    };
    expect(ids(fingerprintCase('svd.dense.train', molchanov, inputs, answer, TIGHT))).toEqual([
      'bug:no_sqrt_eps',
    ]);
  });

  it("pytorch-ard's rounded log is held to its own scale, not to the exact clipped golden value's", () => {
    // theta = 0.7, log_sigma2 = 9: pytorch-ard's 9 - 2 log(0.7 + 1e-15), a float64 port 6e-15 off:
    // outside the 4-ulp relative term at 9.7, inside the rounding scale of that log.
    const inputs = { theta: t([1, 1], [0.7]), log_sigma2: t([1, 1], [9]) };
    const answer = { log_alpha: t([1, 1], [9 - 2 * Math.log(0.7 + 1e-15) + 6e-15]) };
    const withScale = { abs: 1e-307, rel: 2 ** -51, scaled: 2 ** -52 };
    expect(ids(fingerprintCase('svd.log_alpha', molchanov, inputs, answer, withScale))).toContain(
      'profile:pytorch-ard',
    );
    expect(
      ids(fingerprintCase('svd.log_alpha', molchanov, inputs, answer, { ...withScale, scaled: 0 })),
    ).not.toContain('profile:pytorch-ard');
  });
});

describe('fingerprintCase: the KL sign and the eval mask', () => {
  // kl.approx is elementwise; the KL and its derivative come from the reference under molchanov2017.
  const logAlpha = { log_alpha: t([2], [0, 2]) };
  const correct = run('kl.approx', logAlpha, molchanov);
  const minus = (x: Tensor) =>
    t(
      x.shape,
      x.data.map((v) => -v),
    );

  it('-KL with its gradient, and -KL alone', () => {
    const both = { kl: minus(correct['kl']!), dkl_dlog_alpha: minus(correct['dkl_dlog_alpha']!) };
    expect(ids(fingerprintCase('kl.approx', molchanov, logAlpha, both, TIGHT))).toEqual([
      'bug:kl_sign',
    ]);
    const valueOnly = { ...correct, kl: minus(correct['kl']!) };
    expect(ids(fingerprintCase('kl.approx', molchanov, logAlpha, valueOnly, TIGHT))).toEqual([
      'bug:kl_sign_value_only',
    ]);
  });

  it('the right KL matches every candidate that cannot change kl.approx (no conv2d field: the layer is dense)', () => {
    expect(ids(fingerprintCase('kl.approx', molchanov, logAlpha, correct, TIGHT))).toEqual([
      'convention:dense.logAlpha.form="log_abs_theta"',
      'convention:dense.logAlpha.thetaEps=1e-16',
      'convention:dense.logAlpha.thetaEps=1e-8',
      'convention:dense.logAlpha.thetaEps=1e-15',
      `convention:dense.logAlpha.clip=${CLIP_8_SWITCH}`,
      `convention:dense.logAlpha.clip=${CLIP_10}`,
      'convention:dense.logAlpha.clip=null',
      'convention:dense.variance="sigma2"',
      'convention:dense.variance="sigma2_rebuilt"',
      'convention:sqrtEps=1e-15',
      'convention:samePadding="lasagne"',
      'convention:prune.comparison=">="',
      'convention:prune.from="unclipped"',
      'convention:trainClipDefault=true',
      // deepbayes-pytorch omits the KL constant.
      'profile:bayesgroup-theano',
      'profile:state-of-sparsity',
      'profile:state-of-sparsity-nn',
      'profile:pytorch-ard',
    ]);
  });

  it('the sign mistake is a KL one: a negated log_alpha matches nothing; vd.dense_a.kl is a KL op', () => {
    expect(
      ids(
        fingerprintCase(
          'svd.log_alpha',
          molchanov,
          { theta: t([1, 2], [1, 1e-3]), log_sigma2: t([1, 2], [9, -20]) },
          { log_alpha: t([1, 2], [-8, 20 + Math.log(1e-6)]) },
          { abs: 1e-6, rel: 0, scaled: 0 },
        ),
      ),
    ).toEqual([]);
    const inputs = { theta: t([2, 1], [0.5, 1]), log_alpha: t([2], [-1, -2]) };
    const kl = run('vd.dense_a.kl', inputs, PROFILES.kingma2015);
    const negatedKl = { kl: minus(kl['kl']!), grad_log_alpha: minus(kl['grad_log_alpha']!) };
    expect(
      ids(fingerprintCase('vd.dense_a.kl', PROFILES.kingma2015, inputs, negatedKl, TIGHT)),
    ).toEqual(['bug:kl_sign']);
  });

  it('VD has no keep mask: a VD eval forward is never diagnosed as one without it', () => {
    // The unmasked SVD answer, 1 * 0.5 + 2 * 1 + 0.25, given for vd.dense.eval: no candidate of
    // molchanov2017 is offered for a VD op (the reference refuses each), the mask mistake included.
    const inputs = {
      x: DENSE.x,
      theta: DENSE.theta,
      log_sigma2: t([2, 1], [2, Math.LN2]),
      bias: DENSE.bias,
    };
    expect(
      fingerprintCase('vd.dense.eval', molchanov, inputs, { output: t([1, 1], [2.75]) }, TIGHT),
    ).toEqual([]);
  });

  it('the unmasked eval forward itself is not the eval forward without its mask', () => {
    const inputs = {
      x: DENSE.x,
      theta: DENSE.theta,
      log_sigma2: DENSE.log_sigma2,
      bias: DENSE.bias,
    };
    const found = fingerprintCase(
      'svd.dense.eval_unmasked',
      molchanov,
      inputs,
      { output: t([1, 1], [0.5 + 2 + 0.25]) },
      TIGHT,
    );
    // The square root's eps is offered for every layer op, and an eval forward has no square root.
    expect(ids(found.filter((d) => d.kind === 'bug'))).toEqual(['bug:no_sqrt_eps']);
  });

  it('the eval forward without its mask: the pruned weight (log_alpha = 2 + ln 4 > 3) counted', () => {
    const inputs = {
      x: DENSE.x,
      theta: DENSE.theta,
      log_sigma2: t([2, 1], [2, Math.LN2]),
      bias: DENSE.bias,
    };
    // Masked: 2 * 1 + 0.25; unmasked: 1 * 0.5 + 2 * 1 + 0.25.
    expect(
      ids(
        fingerprintCase('svd.dense.eval', molchanov, inputs, { output: t([1, 1], [2.25]) }, TIGHT),
      ),
    ).not.toContain('bug:eval_without_mask');
    expect(
      ids(
        fingerprintCase('svd.dense.eval', molchanov, inputs, { output: t([1, 1], [2.75]) }, TIGHT),
      ),
    ).toEqual(['bug:eval_without_mask']);
  });
});

// theta = [1, 1e-3], log_sigma2 = [9, -20]: log_alpha = 9 (clipped to 8 by molchanov2017) and
// -20 - ln(1e-6) = -6.18. An eps of 1e-8 inside the log moves the second by ln(1.01) = 0.00995;
// 1e-15 or 1e-16 move it by about 1e-9, inside LOOSE.
const WEIGHTS = { theta: t([1, 2], [1, 1e-3]), log_sigma2: t([1, 2], [9, -20]) };
const LOOSE = { abs: 1e-6, rel: 0, scaled: 0 };
const SECOND = -20 - Math.log(1e-6);

describe('fingerprintCase: log_alpha, per layer kind', () => {
  const found = (layer: 'dense' | 'conv2d' | undefined, first: number) =>
    ids(
      fingerprintCase(
        'svd.log_alpha',
        molchanov,
        layer === undefined ? WEIGHTS : { ...WEIGHTS, layer },
        { log_alpha: t([1, 2], [first, SECOND]) },
        LOOSE,
      ),
    );
  const UNCHANGED = [
    'convention:sqrtEps=1e-15',
    'convention:samePadding="lasagne"',
    'convention:prune.comparison=">="',
    'convention:prune.from="unclipped"',
    'convention:trainClipDefault=true',
    'convention:kl.constant="omitted"',
  ];

  it('the right answer on a dense layer (the default): what leaves it alone, bayesgroup-theano among them', () => {
    const dense = [
      'convention:dense.logAlpha.form="log_abs_theta"',
      'convention:dense.logAlpha.thetaEps=1e-16',
      'convention:dense.logAlpha.thetaEps=1e-15',
      `convention:dense.logAlpha.clip=${CLIP_8_SWITCH}`,
      'convention:dense.variance="sigma2"',
      'convention:dense.variance="sigma2_rebuilt"',
      ...UNCHANGED,
      'profile:bayesgroup-theano',
    ];
    expect(found(undefined, 8)).toEqual(dense);
    expect(found('dense', 8)).toEqual(dense);
  });

  it('the right answer on a conv2d layer: pytorch-ard clips at 8 there, bayesgroup-theano adds 1e-8', () => {
    expect(found('conv2d', 8)).toEqual([
      'convention:conv2d.logAlpha.form="log_abs_theta"',
      'convention:conv2d.logAlpha.thetaEps=1e-16',
      'convention:conv2d.logAlpha.thetaEps=1e-15',
      `convention:conv2d.logAlpha.clip=${CLIP_8_SWITCH}`,
      `convention:conv2d.klLogAlpha=${BAYESGROUP_CONV_KL}`,
      'convention:conv2d.variance="sigma2"',
      'convention:conv2d.variance="sigma2_rebuilt"',
      'convention:conv2d.trainMask="mean_and_variance"',
      ...UNCHANGED,
      'profile:pytorch-ard',
    ]);
  });

  it('log_alpha = 9 unclipped on a dense layer: the wide clip, no clip, and the two profiles that clip at 10', () => {
    // deepbayes-pytorch learns log_sigma = log_sigma2 / 2; its log_alpha is 2 log_sigma - 2 log(|theta| + 1e-16).
    expect(found('dense', 9)).toEqual([
      `convention:dense.logAlpha.clip=${CLIP_10}`,
      'convention:dense.logAlpha.clip=null',
      'profile:deepbayes-pytorch',
      'profile:pytorch-ard',
    ]);
  });

  it('a candidate the reference rejects on the inputs is left out, not an error', () => {
    // 'conv3d' is no layer kind: every candidate's reference refuses it.
    expect(
      fingerprintCase(
        'svd.log_alpha',
        molchanov,
        { ...WEIGHTS, layer: 'conv3d' },
        { log_alpha: t([1, 2], [8, SECOND]) },
        LOOSE,
      ),
    ).toEqual([]);
  });
});

// kl.layer over two weights: theta = [0.01, 0.02], log_sigma2 = [-0.2, -6.8], so log_alpha =
// -0.2 - ln(1e-4) = 9.01 (beyond 8, inside 10) and -6.8 - ln(4e-4) = 1.02. An eps of 1e-8 in
// the log moves them by 1e-4 and 2.5e-5; 1e-16 by about 1e-14.
const KL_WEIGHTS = { theta: t([1, 2], [0.01, 0.02]), log_sigma2: t([1, 2], [-0.2, -6.8]) };
const KL_TOLERANCE = { abs: 1e-11, rel: 1e-9, scaled: 0 };

describe('fingerprintCase: a whole other profile, its noise parameter mapped', () => {
  it("molchanov2017 checked, deepbayes-pytorch's answer: log_sigma = log_sigma2 / 2 in, d/d log_sigma2 = (d/d log_sigma) / 2 out", () => {
    const logSigma = t([1, 2], [-0.1, -3.4]);
    const theirs = run(
      'kl.layer',
      { theta: KL_WEIGHTS.theta, log_sigma: logSigma },
      'deepbayes-pytorch',
    );
    const g = theirs['grad_log_sigma']!;
    const answer = {
      kl: theirs['kl'],
      grad_theta: theirs['grad_theta'],
      grad_log_sigma2: t(
        g.shape,
        g.data.map((v) => v / 2),
      ),
    };
    expect(ids(fingerprintCase('kl.layer', molchanov, KL_WEIGHTS, answer, KL_TOLERANCE))).toEqual([
      'profile:deepbayes-pytorch',
    ]);
    // Without the gradient's factor the profile does not match.
    const unscaled = { ...answer, grad_log_sigma2: g };
    expect(ids(fingerprintCase('kl.layer', molchanov, KL_WEIGHTS, unscaled, KL_TOLERANCE))).toEqual(
      [],
    );
  });

  it("deepbayes-pytorch checked, molchanov2017's answer: log_sigma2 = 2 log_sigma in, d/d log_sigma = 2 d/d log_sigma2 out", () => {
    const deepbayes = PROFILES['deepbayes-pytorch'];
    const inputs = { theta: KL_WEIGHTS.theta, log_sigma: t([1, 2], [-0.1, -3.4]) };
    const theirs = run('kl.layer', KL_WEIGHTS, molchanov);
    const g = theirs['grad_log_sigma2']!;
    const answer = {
      kl: theirs['kl'],
      grad_theta: theirs['grad_theta'],
      grad_log_sigma: t(
        g.shape,
        g.data.map((v) => v * 2),
      ),
    };
    // bayesgroup-theano's dense layer is molchanov2017's but for the gradient exactly on a bound.
    expect(ids(fingerprintCase('kl.layer', deepbayes, inputs, answer, KL_TOLERANCE))).toEqual([
      'profile:molchanov2017',
      'profile:bayesgroup-theano',
    ]);
  });
});

describe('contradictingCases: the passes that speak against a diagnosis', () => {
  const klCase = (caseId: number, answer: unknown): PassedCase => ({
    op: 'kl.approx',
    caseId,
    inputs: { log_alpha: t([2], [0, 2]) },
    answer,
    tolerance: TIGHT,
  });
  const rightKl = run('kl.approx', { log_alpha: t([2], [0, 2]) }, molchanov);
  const candidates = fingerprintCandidates(molchanov);

  it('a right KL passed contradicts the sign mistake in its own op, and a whole profile anywhere', () => {
    const passed = [klCase(3, rightKl)];
    expect(contradictingCases('bug:kl_sign', 'kl.approx', passed, candidates)).toEqual(passed);
    // A bug sits in one op's code: kl.approx's passes say nothing about kl.layer's.
    expect(contradictingCases('bug:kl_sign', 'kl.layer', passed, candidates)).toEqual([]);
    // A setting of the whole port shows in every op: deepbayes-pytorch omits the KL constant.
    expect(
      contradictingCases('profile:deepbayes-pytorch', 'svd.log_alpha', passed, candidates),
    ).toEqual(passed);
    expect(contradictingCases('profile:pytorch-ard', 'svd.log_alpha', passed, candidates)).toEqual(
      [],
    );
    // An id no candidate has is contradicted by nothing.
    expect(contradictingCases('bug:unknown', 'kl.approx', passed, candidates)).toEqual([]);
  });

  it("vd.dense_a's noise is per input unit: the computed forward bugs are not offered for it", () => {
    const inputs = {
      x: t([1, 2], [1, 2]),
      theta: t([2, 1], [0.5, 1]),
      log_alpha: t([2], [-1, -2]),
      bias: t([1], [0.25]),
      eps: t([1, 2], [0.5, -0.5]),
    };
    const passed: PassedCase = {
      op: 'vd.dense_a.train',
      caseId: 0,
      inputs,
      answer: run('vd.dense_a.train', inputs, PROFILES.kingma2015),
      tolerance: TIGHT,
    };
    const kingma = fingerprintCandidates(PROFILES.kingma2015);
    for (const bug of ['bug:std_from_sigma4', 'bug:bias_in_variance', 'bug:sqrt_eps_in_variance']) {
      expect(contradictingCases(bug, 'vd.dense_a.train', [passed], kingma), bug).toEqual([]);
    }
  });

  /** A candidate whose answer is `value` for every op, recording what it was asked. */
  function fake(id: string, kind: Candidate['kind'], value: number | Error, layers: string[] = []) {
    const calls: string[] = [];
    const candidate: Candidate = {
      kind,
      id,
      text: id,
      applies: (op, layer) => {
        layers.push(`${op.name}/${layer}`);
        return !op.name.startsWith('objective.');
      },
      evaluate: (op) => {
        calls.push(op.name);
        if (value instanceof Error) throw value;
        return { outputs: { kl: t([1], [value]) }, scale: {} };
      },
    };
    return { candidate, calls };
  }
  const passedAt = (
    op: string,
    caseId: number,
    kl: number,
    inputs: Record<string, unknown> = {},
  ): PassedCase => ({
    op,
    caseId,
    inputs,
    answer: { kl: t([1], [kl]) },
    tolerance: TIGHT,
  });

  it("a convention's halves: either one contradicting is enough; each (candidate, case) is evaluated once", () => {
    const dense = fake('convention:dense.f=1', 'convention', 1);
    const conv = fake('convention:conv2d.f=1', 'convention', 2);
    const passed = [
      passedAt('kl.approx', 0, 1),
      passedAt('kl.approx', 1, 3),
      passedAt('kl.layer', 0, 2),
      passedAt('objective.sgvb', 0, 5),
    ];
    const cache = new Map<string, boolean>();
    const against = contradictingCases(
      'convention:dense+conv2d.f=1',
      'svd.log_alpha',
      passed,
      [dense.candidate, conv.candidate],
      cache,
    );
    // Case 0 of kl.approx: the dense half agrees (1), the conv2d half does not (2).
    expect(against).toEqual([passed[0], passed[1], passed[2]]);
    expect(dense.calls).toEqual(['kl.approx', 'kl.approx', 'kl.layer']);
    expect(conv.calls).toEqual(['kl.approx']);
    expect([...cache]).toEqual([
      ['convention:dense.f=1\u0000kl.approx#0', false],
      ['convention:conv2d.f=1\u0000kl.approx#0', true],
      ['convention:dense.f=1\u0000kl.approx#1', true],
      ['convention:dense.f=1\u0000kl.layer#0', true],
    ]);
    // The same question again is answered from the cache.
    expect(
      contradictingCases(
        'convention:dense+conv2d.f=1',
        'x',
        passed,
        [dense.candidate, conv.candidate],
        cache,
      ),
    ).toEqual(against);
    expect(dense.calls).toHaveLength(3);
    expect(conv.calls).toHaveLength(1);
  });

  it("only a diagnosis made of bugs alone is one op's: a half that is a convention makes it the port's", () => {
    const dense = fake('convention:dense.f=1', 'bug', 2);
    const conv = fake('convention:conv2d.f=1', 'convention', 2);
    const passed = [passedAt('kl.layer', 0, 1)];
    expect(
      contradictingCases('convention:dense+conv2d.f=1', 'kl.approx', passed, [
        dense.candidate,
        conv.candidate,
      ]),
    ).toEqual(passed);
    expect(
      contradictingCases('convention:dense+conv2d.f=1', 'kl.approx', passed, [
        dense.candidate,
        { ...conv.candidate, kind: 'bug' },
      ]),
    ).toEqual([]);
  });

  it('a cached answer is believed, and a candidate that throws contradicts nothing', () => {
    const broken = fake('profile:broken', 'profile', new Error('refused'));
    const passed = [passedAt('kl.approx', 0, 1), passedAt('kl.approx', 1, 1)];
    const cache = new Map([['profile:broken\u0000kl.approx#1', true]]);
    expect(
      contradictingCases('profile:broken', 'kl.approx', passed, [broken.candidate], cache),
    ).toEqual([passed[1]]);
    expect(broken.calls).toEqual(['kl.approx']);
    expect(cache.get('profile:broken\u0000kl.approx#0')).toBe(false);
    // Without a cache of its own it still works.
    expect(contradictingCases('profile:broken', 'kl.approx', passed, [broken.candidate])).toEqual(
      [],
    );
  });

  it("the layer a candidate is asked about: the op's own, else the case's layer input, else dense", () => {
    const layers: string[] = [];
    const probe = fake('profile:probe', 'profile', 1, layers);
    const passed = [
      passedAt('svd.conv2d.eval', 0, 1),
      passedAt('kl.layer', 1, 1, { layer: 'conv2d' }),
      passedAt('kl.layer', 2, 1, { layer: 'dense' }),
      passedAt('kl.layer', 3, 1),
    ];
    expect(contradictingCases('profile:probe', 'kl.layer', passed, [probe.candidate])).toEqual([]);
    expect(layers).toEqual([
      'svd.conv2d.eval/conv2d',
      'kl.layer/conv2d',
      'kl.layer/dense',
      'kl.layer/dense',
    ]);
  });
});
