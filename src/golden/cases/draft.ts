/**
 * What a family of golden cases is made of: the op families, an edge case
 * (its id and how to build it) and a case's draft (values, comment, flags),
 * and the inputs in the op's order.
 */
import { VdspecError } from '../../errors.js';
import { NOISE, resolveNames, type OpSpec } from '../../ops.js';
import type { Profile } from '../../profiles.js';
import { Xorshift32 } from '../prng.js';

export type Family =
  | 'kl_exact'
  | 'kl_approx'
  | 'weights'
  | 'layer'
  | 'dense_a'
  | 'dense_a_kl'
  | 'cross_entropy'
  | 'sgvb'
  | 'schedule';

/** Which generator (and which scale rule) serves an op; unknown ops are 'unsupported'. */
export function family(op: OpSpec): Family {
  if (op.layer !== null) return 'layer';
  switch (op.name) {
    case 'kl.exact':
      return 'kl_exact';
    case 'kl.approx':
      return 'kl_approx';
    case 'svd.log_alpha':
    case 'vd.log_alpha':
    case 'svd.mask':
    case 'kl.layer':
      return 'weights';
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp':
      return 'dense_a';
    case 'vd.dense_a.kl':
      return 'dense_a_kl';
    case 'objective.cross_entropy':
      return 'cross_entropy';
    case 'objective.sgvb':
      return 'sgvb';
    case 'schedule.kl_weight':
      return 'schedule';
  }
  throw new VdspecError('unsupported', `no golden case generator for ${op.name}`, 'op');
}

/** A case before its id: `null` where the edge does not apply to the profile. */
export interface Draft {
  readonly comment: string;
  readonly flags: readonly string[];
  readonly values: Record<string, unknown>;
}

export interface Edge {
  readonly id: number;
  readonly build: (rng: Xorshift32) => Draft | null;
}

/** Inputs in the op's catalogue order, optional ones left out when undefined. */
export function orderedInputs(op: OpSpec, profile: Profile, values: Record<string, unknown>) {
  const inputs: Record<string, unknown> = {};
  const resolved = resolveNames(op, profile).inputs;
  for (const [k, input] of resolved.entries()) {
    const v = op.inputs[k]!.name === NOISE ? values[NOISE] : values[input.name];
    if (v === undefined) {
      if (!input.optional) throw new Error(`case for ${op.name} lacks input ${input.name}`);
      continue;
    }
    inputs[input.name] = v;
  }
  return inputs;
}
