/**
 * Golden cases: seeded random cases and hand-picked edge cases, per op and
 * profile (spec/golden.md#cases). A case is only its inputs plus why it
 * exists (comment, flags); the outputs come from the reference later.
 *
 * Every input value is exactly representable in float32 (random values lie
 * on power-of-two grids, edge values are small integers or halves), so a
 * float32 port starts from the same numbers and the tolerance model only has
 * to cover arithmetic. Random cases keep every raw log_alpha at least
 * EDGE_MARGIN away from every clip bound and from the threshold, where a
 * float32 port may land on the other side; the edge cases sit exactly on
 * them instead, where both dtypes compute them exactly.
 *
 * One file per op family: kl.ts, logAlpha.ts (log_alpha, the mask,
 * kl.layer), layers.ts (dense, conv2d), denseA.ts, objective.ts; the values
 * and weights they draw in values.ts, the flags in flags.ts, what a case is
 * made of in draft.ts. This file assembles them (draftCases).
 */
import type { OpSpec } from '../../ops.js';
import type { Profile } from '../../profiles.js';
import { Xorshift32 } from '../prng.js';
import { denseAEdges } from './denseA.js';
import { type Edge, family, orderedInputs } from './draft.js';
import { GOLDEN_FLAGS, inputFlags } from './flags.js';
import { klEdges } from './kl.js';
import { layerEdges } from './layers.js';
import { weightEdges } from './logAlpha.js';
import { crossEntropyEdges, scheduleEdges, sgvbEdges } from './objective.js';
import { caseSeed, type CaseSpec } from './values.js';

/**
 * The cases of `op` under `profile`, before the reference runs: every edge
 * case that applies to the profile, then RANDOM_CASES random ones, each
 * drawn from its own stream (caseSeed(fileSeed, id)), so adding or removing
 * a case changes no other case.
 */
export function draftCases(op: OpSpec, profile: Profile, fileSeed: number): CaseSpec[] {
  let edges: Edge[];
  switch (family(op)) {
    case 'kl_exact':
    case 'kl_approx':
      edges = klEdges(op, profile);
      break;
    case 'weights':
      edges = weightEdges(profile);
      break;
    case 'layer':
      edges = layerEdges(op, profile);
      break;
    case 'dense_a':
    case 'dense_a_kl':
      edges = denseAEdges(op);
      break;
    case 'cross_entropy':
      edges = crossEntropyEdges();
      break;
    case 'sgvb':
      edges = sgvbEdges();
      break;
    case 'schedule':
      edges = scheduleEdges();
      break;
  }
  const cases: CaseSpec[] = [];
  const seen = new Set<number>();
  for (const e of edges) {
    if (seen.has(e.id)) throw new Error(`duplicate case id ${e.id} for ${op.name}`);
    seen.add(e.id);
    const draft = e.build(new Xorshift32(caseSeed(fileSeed, e.id)));
    if (draft === null) continue;
    const inputs = orderedInputs(op, profile, draft.values);
    const flags = [...new Set([...draft.flags, ...inputFlags(op, profile, inputs)])].sort();
    const unknown = flags.find((f) => !Object.hasOwn(GOLDEN_FLAGS, f));
    if (unknown !== undefined) throw new Error(`flag ${unknown} is not in GOLDEN_FLAGS`);
    cases.push({ id: e.id, comment: draft.comment, flags, inputs });
  }
  return cases.sort((a, b) => a.id - b.id);
}
