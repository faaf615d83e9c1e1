/**
 * The catalogue of operations: one stable name per operation of the spec,
 * with its inputs and outputs (spec/ops.md). Data only: the reference, the
 * fast implementation, the golden files and ports all speak this vocabulary,
 * so nothing here computes.
 *
 * Values crossing `run(op, inputs, profile)` are plain JSON: tensors as
 * `{shape, data}`, numbers, booleans, strings, arrays of integers (labels),
 * and `[sh, sw]` for a stride. Every output is a tensor (a scalar has shape []).
 * The input `$noise` stands for the profile's learned noise parameter
 * (`log_sigma2`, `log_sigma` or `log_alpha`); its gradient output is
 * `grad_<that name>`.
 */
import { VdspecError } from './errors.js';
import type { LayerKind, Profile } from './profiles.js';
import type { Tensor } from './tensor.js';

export type InputKind = 'tensor' | 'number' | 'boolean' | 'labels' | 'stride' | 'padding' | 'layer';

export interface OpInput {
  readonly name: string;
  readonly kind: InputKind;
  /** Optional inputs take the default the spec section states. */
  readonly optional?: boolean;
}

export interface OpSpec {
  readonly name: string;
  /** The algorithm whose profiles the op accepts; null: any profile (or none needed). */
  readonly algorithm: 'svd' | 'vd' | null;
  /** The layer kind the op is about, when fixed by its name. */
  readonly layer: LayerKind | null;
  /** The spec page and anchor that define the op. */
  readonly section: string;
  readonly inputs: readonly OpInput[];
  readonly outputs: readonly string[];
}

export const NOISE = '$noise';
const tensor = (name: string, optional = false): OpInput => ({ name, kind: 'tensor', optional });

const LAYER_INPUTS: Record<LayerKind, readonly OpInput[]> = {
  dense: [tensor('x'), tensor('theta'), tensor(NOISE), tensor('bias')],
  conv2d: [
    tensor('x'),
    tensor('theta'),
    tensor(NOISE),
    tensor('bias'),
    { name: 'stride', kind: 'stride', optional: true },
    { name: 'padding', kind: 'padding', optional: true },
  ],
};
const TRAIN_CLIP: OpInput = { name: 'train_clip', kind: 'boolean', optional: true };
const GRADIENTS = ['grad_x', 'grad_theta', `grad_${NOISE}`, 'grad_bias'] as const;

function layerOps(algorithm: 'svd' | 'vd', layer: LayerKind): OpSpec[] {
  const base = `${algorithm}.${layer}`;
  const page = layer === 'dense' ? 'spec/dense.md' : 'spec/conv2d.md';
  const anchor = (op: string) => `${page}#${`${base}.${op}`.replace(/\./g, '')}`;
  const inputs = LAYER_INPUTS[layer];
  return [
    {
      name: `${base}.train`,
      algorithm,
      layer,
      section: anchor('train'),
      inputs: [...inputs, tensor('eps'), TRAIN_CLIP],
      outputs: ['mean', 'variance', 'output'],
    },
    {
      name: `${base}.eval`,
      algorithm,
      layer,
      section: anchor('eval'),
      inputs,
      outputs: ['output'],
    },
    {
      name: `${base}.train_vjp`,
      algorithm,
      layer,
      section: anchor('train'),
      inputs: [...inputs, tensor('eps'), TRAIN_CLIP, tensor('cotangent')],
      outputs: GRADIENTS,
    },
    {
      name: `${base}.eval_vjp`,
      algorithm,
      layer,
      section: anchor('eval'),
      inputs: [...inputs, tensor('cotangent')],
      outputs: GRADIENTS,
    },
  ];
}

/**
 * VD variant A (spec/dense-a.md): Gaussian dropout on the input units, one
 * multiplicative noise per (example, input unit), so `eps` is [batch, in].
 * Not layer ops in the sense of `layer`: their noise, log_alpha and KL have
 * shapes of their own.
 */
const DENSE_A_INPUTS: readonly OpInput[] = [
  tensor('x'),
  tensor('theta'),
  tensor(NOISE),
  tensor('bias'),
  tensor('eps'),
];

const DENSE_A_OPS: readonly OpSpec[] = [
  {
    name: 'vd.dense_a.train',
    algorithm: 'vd',
    layer: null,
    section: 'spec/dense-a.md#vddense_atrain',
    inputs: DENSE_A_INPUTS,
    outputs: ['mean', 'variance', 'output'],
  },
  {
    name: 'vd.dense_a.train_vjp',
    algorithm: 'vd',
    layer: null,
    section: 'spec/dense-a.md#vddense_atrain',
    inputs: [...DENSE_A_INPUTS, tensor('cotangent')],
    outputs: GRADIENTS,
  },
  {
    name: 'vd.dense_a.kl',
    algorithm: 'vd',
    layer: null,
    section: 'spec/dense-a.md#vddense_akl',
    inputs: [tensor('theta'), tensor(NOISE)],
    outputs: ['kl', `grad_${NOISE}`],
  },
];

/**
 * SVD's unmasked eval forward (spec/dense.md#svddenseeval_unmasked,
 * spec/conv2d.md#svdconv2deval_unmasked): every weight at its mean, nothing
 * pruned. VD has no mask: its `eval` is already this.
 */
function unmaskedEvalOp(layer: LayerKind): OpSpec {
  const page = layer === 'dense' ? 'spec/dense.md' : 'spec/conv2d.md';
  return {
    name: `svd.${layer}.eval_unmasked`,
    algorithm: 'svd',
    layer,
    section: `${page}#svd${layer}eval_unmasked`,
    inputs: LAYER_INPUTS[layer],
    outputs: ['output'],
  };
}

/**
 * The Monte Carlo predictive of a dense layer (spec/dense.md#svddensepredict_mc):
 * the training forward once per draw of eps [S, batch, out], averaged.
 */
function predictMcOp(algorithm: 'svd' | 'vd'): OpSpec {
  return {
    name: `${algorithm}.dense.predict_mc`,
    algorithm,
    layer: 'dense',
    section: `spec/dense.md#${algorithm}densepredict_mc`,
    inputs: [...LAYER_INPUTS.dense, tensor('eps'), TRAIN_CLIP],
    outputs: ['mean_output', 'mean_softmax'],
  };
}

const WEIGHT_INPUTS: readonly OpInput[] = [
  tensor('theta'),
  tensor(NOISE),
  { name: 'layer', kind: 'layer', optional: true },
];

export const OPS: readonly OpSpec[] = [
  {
    name: 'kl.exact',
    algorithm: null,
    layer: null,
    section: 'spec/kl.md#klexact',
    inputs: [tensor('log_alpha')],
    outputs: ['kl', 'dkl_dlog_alpha'],
  },
  {
    name: 'kl.approx',
    algorithm: null,
    layer: null,
    section: 'spec/kl.md#klsum',
    inputs: [tensor('log_alpha')],
    outputs: ['kl', 'dkl_dlog_alpha'],
  },
  ...(['svd', 'vd'] as const).map((algorithm): OpSpec => ({
    name: `${algorithm}.log_alpha`,
    algorithm,
    layer: null,
    section: `spec/log-alpha.md#${algorithm}log_alpha`,
    inputs: WEIGHT_INPUTS,
    outputs: ['log_alpha'],
  })),
  {
    name: 'svd.mask',
    algorithm: 'svd',
    layer: null,
    section: 'spec/log-alpha.md#svdmask',
    inputs: WEIGHT_INPUTS,
    outputs: ['mask'],
  },
  ...(['svd', 'vd'] as const).flatMap((a) => [...layerOps(a, 'dense'), ...layerOps(a, 'conv2d')]),
  unmaskedEvalOp('dense'),
  unmaskedEvalOp('conv2d'),
  predictMcOp('svd'),
  predictMcOp('vd'),
  ...DENSE_A_OPS,
  {
    name: 'kl.layer',
    algorithm: null,
    layer: null,
    section: 'spec/objective.md#kllayer',
    inputs: WEIGHT_INPUTS,
    outputs: ['kl', 'grad_theta', `grad_${NOISE}`],
  },
  {
    name: 'objective.cross_entropy',
    algorithm: null,
    layer: null,
    section: 'spec/objective.md#objectivecross_entropy',
    inputs: [tensor('logits'), { name: 'labels', kind: 'labels' }],
    outputs: ['per_example', 'mean'],
  },
  {
    name: 'objective.sgvb',
    algorithm: null,
    layer: null,
    section: 'spec/objective.md#objectivesgvb',
    inputs: [
      tensor('logits'),
      { name: 'labels', kind: 'labels' },
      { name: 'train_size', kind: 'number' },
      { name: 'kl_weight', kind: 'number' },
      { name: 'kl', kind: 'number' },
    ],
    outputs: ['loss', 'data_term', 'kl_term'],
  },
  {
    name: 'schedule.kl_weight',
    algorithm: null,
    layer: null,
    section: 'spec/objective.md#schedulekl_weight',
    inputs: [{ name: 'epoch', kind: 'number' }],
    outputs: ['kl_weight'],
  },
];

export const OP_NAMES: readonly string[] = OPS.map((op) => op.name);

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Up to three operation names close to `name`: nearest by edit distance, then sharing its first segment. */
export function closeOperationNames(name: string): string[] {
  const limit = Math.max(3, Math.floor(name.length / 3));
  const byDistance = OP_NAMES.map((n) => ({ n, d: distance(name, n) }))
    .filter(({ d }) => d <= limit)
    .sort((a, b) => a.d - b.d)
    .map(({ n }) => n);
  const head = name.split('.')[0] ?? '';
  const sameHead = OP_NAMES.filter((n) => head !== '' && n.startsWith(`${head}.`));
  return [...new Set([...byDistance, ...sameHead])].slice(0, 3);
}

/** The op named `name`, or a VdspecError('unknown_op') that lists the known ones. */
export function getOp(name: unknown): OpSpec {
  const op = OPS.find((o) => o.name === name);
  if (op === undefined) {
    throw new VdspecError(
      'unknown_op',
      `unknown operation ${JSON.stringify(name)}; known operations: ${OP_NAMES.join(', ')}`,
      'op',
    );
  }
  return op;
}

/** An op's input and output names with `$noise` resolved for a profile. */
export function resolveNames(
  op: OpSpec,
  profile: Profile,
): { inputs: OpInput[]; outputs: string[] } {
  const resolve = (name: string) => name.replace(NOISE, profile.noiseParameter);
  return {
    inputs: op.inputs.map((i) => ({ ...i, name: resolve(i.name) })),
    outputs: op.outputs.map(resolve),
  };
}

/**
 * Check that `inputs` is an object with every required input of `op` and
 * nothing else, and that the profile suits the op. Value checks (shapes,
 * finiteness) are the implementation's.
 */
export function checkOpCall(
  op: OpSpec,
  inputs: unknown,
  profile: Profile,
): Record<string, unknown> {
  if (op.algorithm !== null && op.algorithm !== profile.algorithm) {
    throw new VdspecError(
      'invalid_argument',
      `${op.name} needs a ${op.algorithm.toUpperCase()} profile; "${profile.name}" is ${profile.algorithm.toUpperCase()}`,
      'profile',
    );
  }
  if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) {
    throw new VdspecError('invalid_argument', 'expected an object of named inputs', 'inputs');
  }
  const given = inputs as Record<string, unknown>;
  const { inputs: expected } = resolveNames(op, profile);
  for (const input of expected) {
    if (!(input.name in given) && !input.optional) {
      throw new VdspecError('invalid_argument', `missing input of ${op.name}`, input.name);
    }
  }
  for (const name of Object.keys(given)) {
    if (!expected.some((i) => i.name === name)) {
      throw new VdspecError(
        'invalid_argument',
        `${op.name} takes no input "${name}"; it takes ${expected.map((i) => i.name).join(', ')}`,
        name,
      );
    }
  }
  return given;
}

/**
 * Argument names the implementations' functions use for what the catalogue
 * calls by another name; an error raised inside `run` names the catalogue input.
 */
const CATALOGUE_NAME_OF_ARGUMENT: Readonly<Record<string, string>> = {
  'options.trainClip': 'train_clip',
  'options.stride': 'stride',
  'options.padding': 'padding',
  'cotangent.output': 'cotangent',
  trainSize: 'train_size',
  klWeight: 'kl_weight',
};

/** `e` with its argument renamed to the catalogue's input name, when they differ. */
export function inCatalogueTerms(e: unknown): unknown {
  if (!(e instanceof VdspecError) || e.argument === undefined) return e;
  // Own keys only: an input named "__proto__" would find Object.prototype.
  if (!Object.hasOwn(CATALOGUE_NAME_OF_ARGUMENT, e.argument)) return e;
  const renamed = CATALOGUE_NAME_OF_ARGUMENT[e.argument]!;
  const prefix = `${e.argument}: `;
  const message = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  return new VdspecError(e.code, message, renamed);
}

/** The optional `layer` input: 'dense' (default) or 'conv2d'. */
export function layerInput(value: unknown): LayerKind {
  if (value === undefined) return 'dense';
  if (value !== 'dense' && value !== 'conv2d') {
    throw new VdspecError(
      'invalid_argument',
      `expected "dense" or "conv2d", got ${JSON.stringify(value)}`,
      'layer',
    );
  }
  return value;
}

/** The `labels` input: an array (its entries are checked with the logits). */
export function labelsInput(value: unknown): number[] {
  if (!Array.isArray(value)) {
    throw new VdspecError('invalid_argument', 'expected an array of class indices', 'labels');
  }
  return value as number[];
}

/**
 * The inputs of `objective.sgvb` under the implementations' field names
 * (values unchecked: each implementation checks them).
 */
export function sgvbArguments(given: Record<string, unknown>): {
  logits: Tensor;
  labels: number[];
  trainSize: number;
  klWeight: number;
  kl: number;
} {
  return {
    logits: given['logits'] as Tensor,
    labels: labelsInput(given['labels']),
    trainSize: given['train_size'] as number,
    klWeight: given['kl_weight'] as number,
    kl: given['kl'] as number,
  };
}

export interface LayerCallArguments {
  /** What the op does with the layer: the last part of its name. */
  readonly kind: 'train' | 'eval' | 'train_vjp' | 'eval_vjp' | 'eval_unmasked' | 'predict_mc';
  /** The layer's inputs under the implementations' field names (values unchecked). */
  readonly inputs: {
    readonly x: unknown;
    readonly theta: unknown;
    readonly noise: unknown;
    readonly bias: unknown;
    readonly eps: unknown;
  };
  readonly options: { trainClip?: boolean; stride?: unknown; padding?: unknown };
  readonly cotangent: unknown;
  /** The gradient outputs of a `*_vjp` op under their catalogue names. */
  gradientOutputs<T>(g: { x: T; theta: T; noise: T; bias: T }): Record<string, T>;
}

/** Unpack a layer op's catalogue inputs into the arguments both implementations take. */
export function layerCallArguments(
  op: OpSpec,
  given: Record<string, unknown>,
  profile: Profile,
): LayerCallArguments {
  const noiseName = profile.noiseParameter;
  const trainClip = given['train_clip'];
  if (trainClip !== undefined && typeof trainClip !== 'boolean') {
    throw new VdspecError(
      'invalid_argument',
      `expected true or false, got ${JSON.stringify(trainClip)}`,
      'train_clip',
    );
  }
  return {
    kind: op.name.split('.').slice(2).join('.') as LayerCallArguments['kind'],
    inputs: {
      x: given['x'],
      theta: given['theta'],
      noise: given[noiseName],
      bias: given['bias'],
      eps: given['eps'],
    },
    options: {
      ...(trainClip === undefined ? {} : { trainClip }),
      ...(given['stride'] === undefined ? {} : { stride: given['stride'] }),
      ...(given['padding'] === undefined ? {} : { padding: given['padding'] }),
    },
    cotangent: given['cotangent'],
    gradientOutputs: (g) => ({
      grad_x: g.x,
      grad_theta: g.theta,
      [`grad_${noiseName}`]: g.noise,
      grad_bias: g.bias,
    }),
  };
}
