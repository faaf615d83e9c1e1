/**
 * Property-based conformance of a port (spec/fuzz.md): per op, fast-check
 * draws cases from src/fuzz/arbitraries.ts, the port answers each over the
 * port protocol, and each answer is compared with the float64 reference
 * under the golden tolerance model, exactly as `vdspec check` compares a
 * golden case (the case is built as a one-case golden file and run through
 * runCheck). A failure is shrunk by fast-check to a minimal case, which is
 * then checked once more with the fingerprint, for the report.
 */
import fc from 'fast-check';
import { encodeInputs, type GoldenCase, type GoldenFile, type GoldenSet } from '../check/golden.js';
import type { Port } from '../check/port.js';
import { CheckInfrastructureError } from '../check/errors.js';
import { runCheck, unknownOpsProblem, type CheckReport } from '../check/runner.js';
import { noiseTranslation } from '../check/translate.js';
import { isVdspecError } from '../errors.js';
import { caseScale, packageVersion } from '../golden/generate.js';
import { inputFlags } from '../golden/cases/flags.js';
import { fnv1a32 } from '../golden/prng.js';
import { GOLDEN_TOLERANCE } from '../golden/scale.js';
import type { OpSpec } from '../ops.js';
import type { Profile } from '../profiles.js';
import { run } from '../reference/run.js';
import { caseArbitrary, type Inputs } from './arbitraries.js';

export const FUZZ_REPORT_SCHEMA = 'vdspec-fuzz-report/1';
export const DEFAULT_FUZZ_RUNS = 100;

/** The infrastructure error of a run whose time limit ended before any case was answered. */
export const NO_CASE_IN_TIME =
  'no case was fuzzed: the time limit ran out before the first answer (raise --time-limit)';

/** The infrastructure error of a run in which the port declares none of the selected ops. */
export const NOTHING_FUZZED =
  'no op was fuzzed: the port declares none of the selected ops (see --op, --profile and the ops it declares)';

/** Bounds on shrinking one failure: port calls, and wall time. */
export const MAX_SHRINK_CALLS = 2000;
export const MAX_SHRINK_MS = 60_000;

export interface FuzzOptions {
  readonly profile: Profile;
  /** The ops to fuzz, in order (already restricted to the profile's). */
  readonly ops: readonly OpSpec[];
  readonly runs: number;
  readonly seed: number;
  /**
   * Stop drawing new cases after this many ms in all (shrinking a failure
   * found still finishes). Each op may use the time left divided by the
   * number of ops still to fuzz, so every op gets its share.
   */
  readonly timeLimitMs: number | null;
  /** Replay one counterexample path (fast-check's), for a single op. */
  readonly path?: string;
  /** The clock (tests may replace it). */
  readonly now?: () => number;
}

export type FuzzOpStatus = 'passed' | 'failed' | 'skipped' | 'not_run';

export interface FuzzOpResult {
  readonly op: string;
  readonly status: FuzzOpStatus;
  /** Cases drawn and answered before the first failure (or in all). */
  readonly runs: number;
  /** Cases the reference rejects (fast-check preconditions), not sent. */
  readonly rejected: number;
  /** Port calls spent shrinking. */
  readonly shrinks: number;
  /** The op's fast-check seed (derived from the run's seed and the op name). */
  readonly seed: number;
  /** fast-check's counterexample path of the minimal case, for --path. */
  readonly path: string | null;
  /** The minimal failing case's inputs (decoded), or null. */
  readonly minimal: Inputs | null;
  readonly elapsedMs: number;
}

export interface FuzzReport {
  readonly schema: typeof FUZZ_REPORT_SCHEMA;
  readonly profile: string;
  readonly seed: number;
  readonly runsPerOp: number;
  readonly timeLimitSeconds: number | null;
  readonly timedOut: boolean;
  readonly ops: readonly FuzzOpResult[];
  /** The minimal failing cases checked like golden cases (fingerprint included); null when none failed. */
  readonly check: CheckReport | null;
  readonly infrastructureError: string | null;
  readonly notes: readonly string[];
  readonly exitCode: 0 | 1 | 2;
}

/** The op's own seed: a failure of one op replays with --op alone. */
export function opSeed(seed: number, op: string): number {
  return fnv1a32(`${seed >>> 0}/${op}`);
}

/** A port whose close() does nothing: runCheck closes its port, and the fuzzer reuses it. */
function borrowed(port: Port): Port {
  return {
    info: port.info,
    notes: [],
    answer: (c) => port.answer(c),
    close: async () => {},
    stderrTail: () => port.stderrTail(),
  };
}

/** A golden case of `inputs` (outputs and scale from the reference), or null when the reference rejects them. */
export function goldenCaseOf(
  op: OpSpec,
  profile: Profile,
  inputs: Inputs,
  id: number,
  comment: string,
): GoldenCase | null {
  let outputs;
  try {
    outputs = run(op.name, inputs, profile);
  } catch (e) {
    if (isVdspecError(e)) return null;
    throw e;
  }
  let scale;
  try {
    scale = caseScale(op, profile, inputs, outputs);
  } catch {
    // The error model has no finite bound here (an overflow): no tolerance to hold a port to.
    return null;
  }
  return {
    id,
    comment,
    flags: inputFlags(op, profile, inputs).sort(),
    rawInputs: encodeInputs(op, profile, inputs),
    inputs,
    outputs,
    scale,
  };
}

export function oneCaseSet(
  profile: Profile,
  files: { op: OpSpec; c: GoldenCase }[],
  available: readonly string[],
): GoldenSet {
  const version = packageVersion();
  const goldenFiles: GoldenFile[] = files.map(({ op, c }) => ({
    path: `(fuzz)/${profile.name}/${op.name}.json`,
    op,
    section: op.section,
    profile,
    tolerance: GOLDEN_TOLERANCE,
    generator: { name: 'vdspec fuzz', version, seed: null },
    cases: [c],
  }));
  return {
    dir: '(generated by vdspec fuzz)',
    profile,
    files: goldenFiles,
    // Every op the port declares counts as available: no note about ops without files.
    available: [...available],
    warnings: [],
  };
}

/**
 * Fuzz `port` on `options.ops`. The port is left open (the caller closes
 * it). A port that breaks the protocol (crash, hang, junk) ends the run with
 * `infrastructureError` and exit code 2, as in `vdspec check`.
 */
export async function runFuzz(port: Port, options: FuzzOptions): Promise<FuzzReport> {
  const now = options.now ?? Date.now;
  const { profile } = options;
  // Refuses op names vdspec does not know, and a port of the other algorithm, as check does (exit 2).
  const unknownOps = unknownOpsProblem(port.info);
  if (unknownOps !== null) throw new CheckInfrastructureError('usage', unknownOps);
  const t = noiseTranslation(port.info.profile, profile);
  const notes: string[] = [...t.notes];
  if (port.info.profile !== null && port.info.profile !== profile.name) {
    notes.push(
      `the port declares profile "${port.info.profile}"; it is fuzzed against "${profile.name}"`,
    );
  }
  const declared = new Set(port.info.ops);
  const start = now();
  const deadline = options.timeLimitMs === null ? null : start + options.timeLimitMs;
  let infrastructureError: string | null = null;
  let timedOut = false;
  const results: FuzzOpResult[] = [];
  const failures: { op: OpSpec; c: GoldenCase }[] = [];
  // The ops still to fuzz: each gets the budget left over their number, so the first cannot take it all.
  let waiting = options.ops.filter((op) => declared.has(op.name)).length;

  for (const op of options.ops) {
    const seed = opSeed(options.seed, op.name);
    const blank = { runs: 0, rejected: 0, shrinks: 0, seed, path: null, minimal: null };
    if (!declared.has(op.name)) {
      results.push({ op: op.name, status: 'skipped', ...blank, elapsedMs: 0 });
      continue;
    }
    const share = waiting--;
    if (infrastructureError !== null || (deadline !== null && now() >= deadline)) {
      if (infrastructureError === null) timedOut = true;
      results.push({ op: op.name, status: 'not_run', ...blank, elapsedMs: 0 });
      continue;
    }
    const opStart = now();
    const opDeadline = deadline === null ? null : opStart + (deadline - opStart) / share;
    let cut = false;
    let runs = 0;
    let rejected = 0;
    let shrinks = 0;
    let failedAt: number | null = null;
    let id = 0;
    const property = fc.asyncProperty(caseArbitrary(op, profile), async (inputs) => {
      if (infrastructureError !== null) return true;
      if (failedAt === null && opDeadline !== null && now() >= opDeadline) {
        timedOut = true;
        cut = true;
        return true;
      }
      if (failedAt !== null && (shrinks >= MAX_SHRINK_CALLS || now() - failedAt > MAX_SHRINK_MS)) {
        return true;
      }
      const c = goldenCaseOf(op, profile, inputs, ++id, 'fuzz');
      if (c === null) rejected++;
      fc.pre(c !== null);
      if (failedAt === null) runs++;
      else shrinks++;
      const report = await runCheck(
        borrowed(port),
        oneCaseSet(profile, [{ op, c: c! }], port.info.ops),
        {
          fingerprintCases: 0,
        },
      );
      if (report.infrastructureError !== null) {
        infrastructureError = report.infrastructureError;
        return true;
      }
      const ok = report.exitCode === 0;
      if (!ok && failedAt === null) failedAt = now();
      return ok;
    });
    const details = await fc.check(property, {
      seed,
      numRuns: options.runs,
      maxSkipsPerRun: 1000,
      ...(options.path === undefined ? {} : { path: options.path }),
    });
    const elapsedMs = now() - opStart;
    if (details.failed && details.counterexample !== null) {
      const minimal = details.counterexample[0];
      const comment = `vdspec fuzz: minimal failing case of ${op.name} (seed ${options.seed}, path ${details.counterexamplePath})`;
      const c = goldenCaseOf(op, profile, minimal, 1, comment)!;
      failures.push({ op, c });
      results.push({
        op: op.name,
        status: 'failed',
        runs,
        rejected,
        shrinks,
        seed,
        path: details.counterexamplePath,
        minimal,
        elapsedMs,
      });
    } else if (details.failed) {
      // fast-check failed without a counterexample: too many rejected cases, or an error of ours.
      throw new Error(
        `fast-check failed on ${op.name}: ${details.errorInstance ?? 'no counterexample'}`,
      );
    } else {
      results.push({
        op: op.name,
        // An op whose share of the time limit ran out before its first case was not fuzzed at all.
        status: infrastructureError === null && !(cut && runs === 0) ? 'passed' : 'not_run',
        runs,
        rejected,
        shrinks,
        seed,
        path: null,
        minimal: null,
        elapsedMs,
      });
    }
  }

  let check: CheckReport | null = null;
  if (failures.length > 0 && infrastructureError === null) {
    check = await runCheck(borrowed(port), oneCaseSet(profile, failures, port.info.ops));
    if (check.infrastructureError !== null) infrastructureError = check.infrastructureError;
  }
  // Fuzzing nothing must not pass, as in check (spec/fuzz.md).
  if (infrastructureError === null && results.every((r) => r.status === 'skipped')) {
    infrastructureError = NOTHING_FUZZED;
  } else if (infrastructureError === null && results.every((r) => r.runs === 0)) {
    infrastructureError = NO_CASE_IN_TIME;
  }
  const failed = results.some((r) => r.status === 'failed');
  return {
    schema: FUZZ_REPORT_SCHEMA,
    profile: profile.name,
    seed: options.seed,
    runsPerOp: options.runs,
    timeLimitSeconds: options.timeLimitMs === null ? null : options.timeLimitMs / 1000,
    timedOut,
    ops: results,
    check,
    infrastructureError,
    notes,
    exitCode: infrastructureError !== null ? 2 : failed ? 1 : 0,
  };
}
