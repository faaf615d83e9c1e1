/**
 * The runner: every case of every selected golden file, answered by a port,
 * compared within the golden tolerance for the port's dtype, and the failed
 * cases fingerprinted. The result is a plain, JSON-able report
 * (spec/check.md#report); rendering it is report.ts's job.
 */
import { closeOperationNames, OP_NAMES } from '../ops.js';
import type { Profile } from '../profiles.js';
import type { Tensor } from '../tensor.js';
import { compareOutputs, type CaseComparison } from './compare.js';
import { CheckInfrastructureError, messageOf } from './errors.js';
import {
  contradictingCases,
  fingerprintCandidates,
  fingerprintCase,
  FLOAT32_ARITHMETIC,
  mergeLayerHalves,
  type Diagnosis,
  type PassedCase,
  type TallyEntry,
} from './fingerprint.js';
import type { GoldenCase, GoldenFile, GoldenSet, Tolerance } from './golden.js';
import type { Port, PortCase, PortInfo } from './port.js';
import { formatNumber } from './format.js';
import {
  noiseTranslation,
  translateAnswer,
  translateCase,
  type NoiseTranslation,
} from './translate.js';

export const REPORT_SCHEMA = 'vdspec-check-report/1';

/** The infrastructure error of a run in which the port answered no selected case. */
export const NOTHING_CHECKED =
  'no case was checked: the port declares none of the selected ops (see --op, --profile and the ops it declares)';

/** Failed cases per op that get a fingerprint (each costs a few dozen reference runs). */
export const DEFAULT_FINGERPRINT_CASES = 10;

export type CaseStatus = 'passed' | 'failed' | 'skipped' | 'not_run';

export interface CaseResult {
  readonly op: string;
  readonly caseId: number;
  readonly status: CaseStatus;
  readonly comment: string;
  readonly flags: readonly string[];
  /** Set for passed and failed cases the port answered with outputs. */
  readonly comparison: CaseComparison | null;
  /** The port's error message, when it answered with an error. */
  readonly portError: string | null;
  /** Why there was no answer at all (a results file without a usable entry), else null. */
  readonly noAnswer: string | null;
  /** Set for fingerprinted failed cases (possibly empty: nothing matched). */
  readonly fingerprint: readonly Diagnosis[] | null;
  /** One line per input, for failed cases only (spec/check.md#report). */
  readonly inputs: readonly string[] | null;
  /**
   * For failed cases of a cross-profile run: the names translated between
   * the golden profile's noise parameter and the port's (empty: none in this case).
   */
  readonly translated: readonly string[] | null;
}

export interface FingerprintTally extends TallyEntry {
  /** Sampled passed cases (of every op) whose answer the diagnosis gets wrong. */
  readonly contradicted: number;
  /** Their ops. */
  readonly contradictedIn: readonly string[];
}

export type OpStatus = 'passed' | 'failed' | 'skipped' | 'not_run' | 'empty';

export interface OpResult {
  readonly op: string;
  readonly section: string;
  readonly status: OpStatus;
  readonly cases: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly notRun: number;
  /** Worst error / allowed error over the answered cases (null: none answered with outputs). */
  readonly worstRatio: number | null;
  readonly worstAbsError: number | null;
  readonly tolerance: Tolerance;
  readonly fingerprint: readonly FingerprintTally[];
  readonly fingerprintChecked: number;
}

export interface CheckTotals {
  readonly ops: number;
  readonly cases: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly notRun: number;
  /** Answers for case ids the golden set does not have (`unknownResults`); each fails the check. */
  readonly unknown: number;
}

/** A results file's entry for a case id the checked golden file does not have. */
export interface UnknownResult {
  readonly op: string;
  /** The key as written in the results file. */
  readonly caseId: string;
}

export interface CheckReport {
  readonly schema: typeof REPORT_SCHEMA;
  readonly port: PortInfo;
  /** The golden profile the port was checked against. */
  readonly profile: string;
  /** How the noise parameter was translated for a port of another profile, or null. */
  readonly translation: NoiseTranslation | null;
  readonly golden: {
    readonly dir: string;
    readonly generator: GoldenFile['generator'] | null;
  };
  readonly ops: readonly OpResult[];
  readonly cases: readonly CaseResult[];
  /** Results-file entries for cases the selected golden files do not have, by op and id. */
  readonly unknownResults: readonly UnknownResult[];
  readonly totals: CheckTotals;
  /** Why the run stopped early (crash, hang, junk, wrong id), or null. */
  readonly infrastructureError: string | null;
  readonly notes: readonly string[];
  readonly stderr: readonly string[];
  /**
   * 0 every answered case passed, 1 some failed (or answers for unknown case
   * ids), 2 the check could not be completed.
   */
  readonly exitCode: 0 | 1 | 2;
}

export interface RunCheckOptions {
  readonly fingerprintCases?: number;
  /** Cases carrying any of these golden flags are skipped (spec/check.md#usage, --skip-flag). */
  readonly skipFlags?: readonly string[];
}

const SHOWN_VALUES = 6;

/** `name [shape] = [values]` for small tensors, with min and max for larger ones. */
export function summarizeInputs(inputs: Readonly<Record<string, unknown>>): string[] {
  return Object.entries(inputs).map(([name, value]) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'data' in value) {
      const t = value as Tensor;
      const values = t.data.slice(0, SHOWN_VALUES).map(formatNumber).join(', ');
      const shape = `[${t.shape.join(', ')}]`;
      if (t.data.length <= SHOWN_VALUES) return `${name} ${shape} = [${values}]`;
      const finite = t.data.filter((v) => Number.isFinite(v));
      const range =
        finite.length === 0
          ? ''
          : `, min ${formatNumber(Math.min(...finite))}, max ${formatNumber(Math.max(...finite))}`;
      return `${name} ${shape} = [${values}, ...] (${t.data.length} values${range})`;
    }
    if (Array.isArray(value)) {
      const shown = value.slice(0, SHOWN_VALUES * 2).map((v) => JSON.stringify(v));
      return `${name} = [${shown.join(', ')}${value.length > shown.length ? ', ...' : ''}]`;
    }
    return `${name} = ${typeof value === 'number' ? formatNumber(value) : JSON.stringify(value)}`;
  });
}

function caseResult(
  file: GoldenFile,
  c: GoldenCase,
  status: CaseStatus,
  comparison: CaseComparison | null = null,
  portError: string | null = null,
  translated: readonly string[] | null = null,
  noAnswer: string | null = null,
): CaseResult {
  const failed = status === 'failed';
  return {
    op: file.op.name,
    caseId: c.id,
    status,
    comment: c.comment,
    flags: c.flags,
    comparison,
    portError,
    noAnswer,
    fingerprint: null,
    inputs: failed ? summarizeInputs(c.inputs) : null,
    translated: failed && translated !== null ? translated : null,
  };
}

function opResult(
  file: GoldenFile,
  results: readonly CaseResult[],
  declared: boolean,
  tolerance: Tolerance,
  tally: readonly FingerprintTally[],
  checked: number,
): OpResult {
  const count = (s: CaseStatus) => results.filter((r) => r.status === s).length;
  const compared = results.filter((r) => r.comparison !== null).map((r) => r.comparison!);
  const failed = count('failed');
  const notRun = count('not_run');
  const status: OpStatus = !declared
    ? 'skipped'
    : results.length === 0
      ? 'empty'
      : failed > 0
        ? 'failed'
        : notRun > 0
          ? 'not_run'
          : 'passed';
  return {
    op: file.op.name,
    section: file.section,
    status,
    cases: results.length,
    passed: count('passed'),
    failed,
    skipped: count('skipped'),
    notRun,
    worstRatio: compared.length === 0 ? null : Math.max(...compared.map((c) => c.ratio)),
    worstAbsError: compared.length === 0 ? null : Math.max(...compared.map((c) => c.maxAbsError)),
    tolerance,
    fingerprint: tally,
    fingerprintChecked: checked,
  };
}

/** Passed cases per op whose answers test each diagnosis: the smallest, so the reference is quick. */
const PASSED_CASES_PER_OP = 3;

function inputSize(inputs: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const v of Object.values(inputs)) {
    if (typeof v === 'object' && v !== null && 'data' in v) n += (v as Tensor).data.length;
  }
  return n;
}

/** The few smallest passed cases of every op, with the port's answers. */
function passedSample(
  perFile: readonly { file: GoldenFile; passedAnswers: Map<number, unknown> }[],
  dtype: PortInfo['dtype'],
): PassedCase[] {
  return perFile.flatMap(({ file, passedAnswers }) =>
    file.cases
      .filter((c) => passedAnswers.has(c.id))
      .sort((a, b) => inputSize(a.inputs) - inputSize(b.inputs))
      .slice(0, PASSED_CASES_PER_OP)
      .map((c) => ({
        op: file.op.name,
        caseId: c.id,
        inputs: c.inputs,
        answer: passedAnswers.get(c.id),
        tolerance: file.tolerance[dtype],
      })),
  );
}

/**
 * Fingerprint up to `limit` failed cases of one op (those answered with
 * outputs; an error answer has nothing to match) and tally the diagnoses;
 * each is then tested on the sampled passed cases of every op, and those it
 * contradicts rank after those it does not.
 */
function fingerprintOp(
  file: GoldenFile,
  profile: Profile,
  results: CaseResult[],
  answers: Map<number, unknown>,
  dtype: PortInfo['dtype'],
  limit: number,
  passed: readonly PassedCase[],
  cache: Map<string, boolean>,
): { tally: FingerprintTally[]; checked: number } {
  const tolerance = file.tolerance[dtype];
  const candidates = fingerprintCandidates(profile);
  const byId = new Map(file.cases.map((c) => [c.id, c]));
  const counts = new Map<string, { d: Diagnosis; n: number }>();
  let checked = 0;
  for (let i = 0; i < results.length && checked < limit; i++) {
    const r = results[i]!;
    if (r.status !== 'failed' || !answers.has(r.caseId)) continue;
    const c = byId.get(r.caseId)!;
    const answer = answers.get(r.caseId);
    const matches = fingerprintCase(file.op.name, profile, c.inputs, answer, tolerance, candidates);
    // A fallback: any small defect also passes the wider tolerance, so it is offered only
    // when nothing more specific matched.
    if (
      matches.length === 0 &&
      dtype === 'float64' &&
      compareOutputs(c.outputs, c.scale, answer, file.tolerance.float32).ok
    ) {
      matches.push(FLOAT32_ARITHMETIC);
    }
    results[i] = { ...r, fingerprint: matches };
    checked++;
    for (const d of matches) {
      const entry = counts.get(d.id) ?? { d, n: 0 };
      entry.n++;
      counts.set(d.id, entry);
    }
  }
  const merged = mergeLayerHalves(
    profile,
    [...counts.values()].map(({ d, n }) => ({
      id: d.id,
      kind: d.kind,
      text: d.text,
      matched: n,
      checked,
    })),
  );
  // Ranked by runCheck, which knows every op's tally.
  const tally = merged.map((entry) => {
    const against = contradictingCases(entry.id, file.op.name, passed, candidates, cache);
    return {
      ...entry,
      contradicted: against.length,
      contradictedIn: [...new Set(against.map((p) => p.op))],
    };
  });
  return { tally, checked };
}

/**
 * The port's declared op names that are no operation of vdspec (spec/ops.md),
 * as one message with the near names, or null when all are known. Such a name
 * is a typo or another vocabulary: left alone its cases would all be
 * skipped, and a check of nothing would pass.
 */
export function unknownOpsProblem(info: PortInfo): string | null {
  const known = new Set(OP_NAMES);
  const unknown = info.ops.filter((op) => !known.has(op));
  if (unknown.length === 0) return null;
  const listed = unknown
    .map((op) => {
      const close = closeOperationNames(op);
      return `"${op}"${close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : ''}`;
    })
    .join(', ');
  const where =
    info.kind === 'results'
      ? `results file ${info.source}: /results holds`
      : info.kind === 'process'
        ? "the port's hello: /ops holds"
        : `the port "${info.name}" declares`;
  return (
    `${where} ${unknown.length === 1 ? 'an op name' : 'op names'} vdspec does not know: ${listed}; ` +
    'the operations are listed in spec/ops.md (vdspec eval --list)'
  );
}

/**
 * Check `port` against `golden`. The port is closed on every path (a process
 * port is told "bye", and killed if it lingers or has failed). A port of the
 * other algorithm (VD against an SVD profile, or the reverse) is refused with
 * a CheckInfrastructureError('usage'): nothing translates between them.
 */
export async function runCheck(
  port: Port,
  golden: GoldenSet,
  options: RunCheckOptions = {},
): Promise<CheckReport> {
  const limit = options.fingerprintCases ?? DEFAULT_FINGERPRINT_CASES;
  const unknownOps = unknownOpsProblem(port.info);
  if (unknownOps !== null) {
    await port.close(false);
    throw new CheckInfrastructureError('usage', unknownOps);
  }
  const skipFlags = new Set(options.skipFlags ?? []);
  const skippedByFlag = new Map<string, number>();
  const declared = new Set(port.info.ops);
  const dtype = port.info.dtype;
  const notes: string[] = [...golden.warnings];
  let translation: NoiseTranslation | null;
  try {
    const t = noiseTranslation(port.info.profile, golden.profile);
    translation = t.translation;
    if (port.info.profile !== null && port.info.profile !== golden.profile.name) {
      notes.push(
        `the port declares profile "${port.info.profile}"; it is checked against the "${golden.profile.name}" golden files`,
      );
    }
    notes.push(...t.notes);
  } catch (e) {
    await port.close();
    throw e;
  }
  const goldenOps = new Set(golden.available);
  const extra = port.info.ops.filter((op) => !goldenOps.has(op));
  if (extra.length > 0) {
    notes.push(
      `declared by the port but without golden files for ${golden.profile.name}: ${extra.join(', ')}`,
    );
  }

  let infrastructureError: string | null = null;
  const perFile: {
    file: GoldenFile;
    results: CaseResult[];
    answers: Map<number, unknown>;
    passedAnswers: Map<number, unknown>;
  }[] = [];
  try {
    for (const file of golden.files) {
      const results: CaseResult[] = [];
      const answers = new Map<number, unknown>();
      const passedAnswers = new Map<number, unknown>();
      perFile.push({ file, results, answers, passedAnswers });
      const tolerance = file.tolerance[dtype];
      for (const c of file.cases) {
        if (!declared.has(file.op.name)) {
          results.push(caseResult(file, c, 'skipped'));
          continue;
        }
        const skippedFlag = c.flags.find((f) => skipFlags.has(f));
        if (skippedFlag !== undefined) {
          skippedByFlag.set(skippedFlag, (skippedByFlag.get(skippedFlag) ?? 0) + 1);
          results.push(caseResult(file, c, 'skipped'));
          continue;
        }
        if (infrastructureError !== null) {
          results.push(caseResult(file, c, 'not_run'));
          continue;
        }
        try {
          let portCase: PortCase = {
            op: file.op.name,
            caseId: c.id,
            rawInputs: c.rawInputs,
            inputs: c.inputs,
          };
          let translated: string[] | null = null;
          if (translation !== null) {
            const sent = translateCase(translation, portCase);
            portCase = sent.portCase;
            translated = sent.translated;
          }
          let answer = await port.answer(portCase);
          if (translation !== null) {
            const back = translateAnswer(translation, Object.keys(c.outputs), answer);
            answer = back.answer;
            translated = [...translated!, ...back.translated];
          }
          if (answer.kind === 'none') {
            results.push(caseResult(file, c, 'failed', null, null, translated, answer.message));
          } else if (answer.kind === 'error') {
            results.push(caseResult(file, c, 'failed', null, answer.message, translated));
          } else {
            const comparison = compareOutputs(c.outputs, c.scale, answer.outputs, tolerance);
            (comparison.ok ? passedAnswers : answers).set(c.id, answer.outputs);
            results.push(
              caseResult(
                file,
                c,
                comparison.ok ? 'passed' : 'failed',
                comparison,
                null,
                translated,
              ),
            );
          }
        } catch (e) {
          // Whatever stopped this case, the cases after it are listed as not run: an op cut
          // short must not read as passed.
          infrastructureError =
            e instanceof CheckInfrastructureError
              ? e.message
              : `internal error while checking: ${messageOf(e)}`;
          results.push(caseResult(file, c, 'not_run'));
        }
      }
    }
  } catch (e) {
    infrastructureError = `internal error while checking: ${messageOf(e)}`;
  } finally {
    await port.close(infrastructureError === null);
  }
  notes.push(...port.notes);
  for (const [flag, n] of skippedByFlag) {
    notes.push(`${n} case${n === 1 ? '' : 's'} flagged ${flag} skipped (--skip-flag)`);
  }

  const passed = passedSample(perFile, dtype);
  const cache = new Map<string, boolean>();
  const fingerprinted = perFile.map(({ file, results, answers }) => {
    const tolerance = file.tolerance[dtype];
    const { tally, checked } = fingerprintOp(
      file,
      golden.profile,
      results,
      answers,
      dtype,
      limit,
      passed,
      cache,
    );
    return { file, results, tolerance, tally, checked };
  });
  // Within an op: uncontradicted first, then the failed cases explained; ties go to the
  // diagnosis that explains more failed cases over all ops (the deepbayes variance explains
  // its train_vjp failures too, an unclipped log_alpha fewer), then bugs, conventions, profiles.
  const kindOrder = { bug: 0, convention: 1, profile: 2 } as const;
  const support = new Map<string, number>();
  for (const o of fingerprinted) {
    for (const t of o.tally) support.set(t.id, (support.get(t.id) ?? 0) + t.matched);
  }
  const ops = fingerprinted.map(({ file, results, tolerance, tally, checked }) => {
    const ranked = [...tally].sort(
      (a, b) =>
        Number(a.contradicted > 0) - Number(b.contradicted > 0) ||
        b.matched - a.matched ||
        support.get(b.id)! - support.get(a.id)! ||
        kindOrder[a.kind] - kindOrder[b.kind],
    );
    return {
      op: opResult(file, results, declared.has(file.op.name), tolerance, ranked, checked),
      results,
    };
  });
  const cases = ops.flatMap((o) => o.results);
  // A results file's answers for cases the golden files do not have: written for another set?
  const unknownResults: UnknownResult[] = [];
  for (const file of golden.files) {
    if (!declared.has(file.op.name) || port.caseIds === undefined) continue;
    const known = new Set(file.cases.map((c) => String(c.id)));
    for (const id of port.caseIds(file.op.name)) {
      if (!known.has(id)) unknownResults.push({ op: file.op.name, caseId: id });
    }
  }
  const totals: CheckTotals = {
    ops: ops.length,
    cases: cases.length,
    passed: cases.filter((c) => c.status === 'passed').length,
    failed: cases.filter((c) => c.status === 'failed').length,
    skipped: cases.filter((c) => c.status === 'skipped').length,
    notRun: cases.filter((c) => c.status === 'not_run').length,
    unknown: unknownResults.length,
  };
  // A check of nothing must not pass: in a port's CI it would hide everything (spec/check.md#exit-codes).
  if (infrastructureError === null && totals.passed + totals.failed === 0) {
    infrastructureError = NOTHING_CHECKED;
  }
  return {
    schema: REPORT_SCHEMA,
    port: port.info,
    profile: golden.profile.name,
    translation,
    golden: { dir: golden.dir, generator: golden.files[0]?.generator ?? null },
    ops: ops.map((o) => o.op),
    cases,
    unknownResults,
    totals,
    infrastructureError,
    notes,
    stderr: port.stderrTail(),
    exitCode: infrastructureError !== null ? 2 : totals.failed > 0 || totals.unknown > 0 ? 1 : 0,
  };
}
