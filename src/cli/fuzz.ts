/**
 * `vdspec fuzz`: property-based conformance of a port (spec/fuzz.md). Cases
 * drawn by fast-check, answered by the port over the check protocol,
 * compared with the float64 reference under the golden tolerance model; a
 * failure is shrunk to a minimal case and reported as `vdspec check` reports
 * a failed golden case, with the seed and path that replay it.
 *
 * Exit codes (as check): 0 every drawn case passed; 1 some op failed; 2 the
 * fuzzing could not be carried out (usage, a port that crashes, hangs or
 * prints junk, an unwritable --junit or --save-failures).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckInfrastructureError, messageOf } from '../check/errors.js';
import { opMatcher } from '../check/golden.js';
import type { Port } from '../check/port.js';
import { openProcessPort } from '../check/processPort.js';
import { escapeXml, renderJson, renderText, DEFAULT_MAX_FAILURES } from '../check/report.js';
import { VdspecError } from '../errors.js';
import { makeDirectories, writeFileAtomic } from '../files.js';
import { encodeInputs } from '../check/golden.js';
import {
  goldenFileOf,
  manifestText,
  MANIFEST_NAME,
  packageVersion,
  sha256,
  type ManifestEntry,
} from '../golden/generate.js';
import { inputFlags } from '../golden/cases/flags.js';
import { getOp, OPS } from '../ops.js';
import { getProfile, isProfileName, PROFILE_NAMES } from '../profiles.js';
import {
  checkReportPath,
  DEFAULT_TIMEOUT_SECONDS,
  infrastructureReporter,
  parseCount,
  parseOpPatterns,
  parseTimeout,
  withReportGuard,
} from './check.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  parseIntegerFlag,
  runCommand,
  UsageError,
  type FlagSpec,
  type Writer,
} from './common.js';
import { DEFAULT_FUZZ_RUNS, FUZZ_REPORT_SCHEMA, runFuzz, type FuzzReport } from '../fuzz/runner.js';

export const DEFAULT_FUZZ_SEED = 42;

function parseRuns(flag: string, text: string): number {
  const n = parseIntegerFlag(flag, text);
  if (n < 1 || n > 1e7) throw new UsageError(`${flag} must be in [1, 10000000], got "${text}"`);
  return n;
}

function parseSeed(flag: string, text: string): number {
  const n = parseIntegerFlag(flag, text);
  if (n < -(2 ** 31) || n >= 2 ** 32) {
    throw new UsageError(`${flag} must be a 32-bit integer, got "${text}"`);
  }
  return n;
}

function parsePath(flag: string, text: string): string {
  if (!/^\d+(:\d+)*$/.test(text)) {
    throw new UsageError(`${flag} expects fast-check's path (digits and colons), got "${text}"`);
  }
  return text;
}

export const FUZZ_FLAGS = {
  command: 'fuzz',
  flags: {
    port: { value: '"COMMAND"', help: 'run COMMAND (with sh -c), protocol vdspec-port/1' },
    profile: { value: 'P', help: 'the profile to hold the port to (default: the one it declares)' },
    op: {
      value: 'PATTERN',
      parse: parseOpPatterns,
      help: "only these ops: comma-separated globs ('svd.dense.*,kl.approx')",
    },
    runs: { value: 'N', parse: parseRuns, help: `cases per op (default ${DEFAULT_FUZZ_RUNS})` },
    seed: {
      value: 'S',
      parse: parseSeed,
      help: `the run's seed, an integer (default ${DEFAULT_FUZZ_SEED}); same seed, same cases`,
    },
    'time-limit': {
      value: 'T',
      parse: parseTimeout,
      help: 'stop drawing new cases after T seconds in all (a failure found is still shrunk)',
    },
    path: {
      value: 'PATH',
      parse: parsePath,
      help: "replay one failure: fast-check's path, printed with it (needs one --op)",
    },
    timeout: {
      value: 'SEC',
      parse: parseTimeout,
      help: `seconds per message before the port counts as hung (default ${DEFAULT_TIMEOUT_SECONDS})`,
    },
    json: { help: 'the report as JSON on stdout' },
    junit: { value: 'FILE', help: 'also write the report as JUnit XML to FILE' },
    'save-failures': {
      value: 'DIR',
      help:
        'write the minimal failing cases as golden files (DIR/<profile>/<op>.json and ' +
        'DIR/manifest.json), for vdspec check --golden DIR',
    },
    'max-failures': {
      value: 'N',
      parse: parseCount,
      help: `failed ops shown in detail (default ${DEFAULT_MAX_FAILURES})`,
    },
    help: HELP_FLAG,
  },
  unknown: (arg) => `unknown option "${arg}" (see vdspec fuzz --help)`,
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec fuzz --port "COMMAND" [options]

Fuzz a port of VD / Sparse VD (spec/fuzz.md): cases drawn by fast-check,
compared with the float64 reference under the golden tolerance model; a
failure is shrunk to a minimal case.

${optionList(FUZZ_FLAGS.flags, ['port'])}
Options:
${optionList(FUZZ_FLAGS.flags, Object.keys(FUZZ_FLAGS.flags).slice(1))}

Exit codes: 0 every drawn case passed, 1 some op failed, 2 the fuzzing could
not be carried out (also when the port declares none of the selected ops).`;

interface FuzzArgs {
  port?: string;
  profile?: string;
  op?: string;
  runs: number;
  seed: number;
  timeLimitSeconds: number | null;
  path?: string;
  timeoutSeconds: number;
  json: boolean;
  junit?: string;
  saveFailures?: string;
  maxFailures: number;
  help: boolean;
}

function parseArgs(argv: readonly string[]): FuzzArgs {
  const given = parseFlags(argv, FUZZ_FLAGS).values;
  const args: FuzzArgs = {
    ...(given.port === undefined ? {} : { port: given.port }),
    ...(given.profile === undefined ? {} : { profile: given.profile }),
    ...(given.op === undefined ? {} : { op: given.op }),
    ...(given.path === undefined ? {} : { path: given.path }),
    ...(given.junit === undefined ? {} : { junit: given.junit }),
    ...(given['save-failures'] === undefined ? {} : { saveFailures: given['save-failures'] }),
    runs: given.runs ?? DEFAULT_FUZZ_RUNS,
    seed: given.seed ?? DEFAULT_FUZZ_SEED,
    timeLimitSeconds: given['time-limit'] ?? null,
    timeoutSeconds: given.timeout ?? DEFAULT_TIMEOUT_SECONDS,
    json: given.json === true,
    maxFailures: given['max-failures'] ?? DEFAULT_MAX_FAILURES,
    help: given.help === true,
  };
  if (args.help) return args;
  if (args.port === undefined) throw new UsageError('--port "COMMAND" is required');
  if (args.profile !== undefined && !isProfileName(args.profile)) {
    throw new UsageError(
      `unknown profile "${args.profile}"; known profiles: ${PROFILE_NAMES.join(', ')}`,
    );
  }
  if (args.path !== undefined && (args.op === undefined || !OPS.some((o) => o.name === args.op))) {
    throw new UsageError('--path replays one op: give its exact name with --op');
  }
  if (args.junit !== undefined) checkReportPath('--junit', args.junit);
  if (args.saveFailures !== undefined) checkFailuresDir('--save-failures', args.saveFailures);
  return args;
}

/** Refuse a --save-failures path that is a file, before the port starts (a run can take minutes). */
function checkFailuresDir(flag: string, path: string): void {
  if (existsSync(path) && !statSync(path).isDirectory()) {
    throw new VdspecError('invalid_argument', `${flag} ${path} is a file, not a directory`);
  }
}

export async function runFuzzCommand(argv: string[], out: Writer, err: Writer): Promise<number> {
  return withReportGuard('fuzz', FUZZ_FLAGS, argv, err, (guardedErr, reported) =>
    runCommand(
      'fuzz',
      guardedErr,
      async () => {
        const args = parseArgs(argv);
        if (args.help) {
          out(HELP);
          return 0;
        }
        return fuzz(args, out, guardedErr, reported);
      },
      { usageHint: 'Run "vdspec fuzz --help" for the options.' },
    ),
  );
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command line that replays the failure of `op`. */
function replayCommand(args: FuzzArgs, report: FuzzReport, op: string, path: string): string {
  return `vdspec fuzz --port ${quote(args.port!)} --profile ${report.profile} --op ${op} --seed ${report.seed} --path ${path}`;
}

function renderFuzzText(args: FuzzArgs, port: Port, report: FuzzReport): string {
  const lines: string[] = [];
  lines.push(
    `vdspec fuzz: port "${port.info.name}" (command: ${port.info.source}), dtype ${port.info.dtype}`,
  );
  lines.push(
    `profile ${report.profile}; seed ${report.seed}; ${report.runsPerOp} runs per op` +
      (report.timeLimitSeconds === null ? '' : `; time limit ${report.timeLimitSeconds} s`),
  );
  lines.push('');
  const width = Math.max(2, ...report.ops.map((o) => o.op.length));
  const status = { passed: 'pass', failed: 'FAIL', skipped: 'skipped', not_run: 'not run' };
  lines.push(
    `${'op'.padEnd(width)}  ${'status'.padEnd(7)}  ${'runs'.padStart(6)}  ${'shrinks'.padStart(7)}  ${'time'.padStart(8)}`,
  );
  for (const o of report.ops) {
    lines.push(
      `${o.op.padEnd(width)}  ${status[o.status].padEnd(7)}  ${String(o.runs).padStart(6)}  ${String(o.shrinks).padStart(7)}  ${`${(o.elapsedMs / 1000).toFixed(1)} s`.padStart(8)}`,
    );
  }
  const failed = report.ops.filter((o) => o.status === 'failed');
  if (report.check !== null) {
    lines.push('');
    // check's report of the minimal cases, from its failures to its fingerprint (not its table or verdict).
    const text = renderText(report.check, args.maxFailures);
    const from = text.indexOf('\nFailures');
    const to = text.indexOf('\nResult:');
    lines.push(from < 0 ? text : text.slice(from + 1, to < 0 ? undefined : to).trimEnd());
  }
  if (failed.length > 0) {
    lines.push('');
    lines.push('Replay:');
    for (const o of failed) lines.push(`  ${replayCommand(args, report, o.op, o.path!)}`);
  }
  if (report.infrastructureError !== null) {
    lines.push('');
    lines.push(`Could not finish: ${report.infrastructureError}`);
    const tail = port.stderrTail();
    if (tail.length > 0)
      lines.push("The port's stderr (last lines):", ...tail.map((l) => `  ${l}`));
  }
  for (const n of report.notes) lines.push(`note: ${n}`);
  if (report.timedOut) lines.push(`note: the time limit stopped the drawing of cases (see "runs")`);
  lines.push('');
  const fuzzed = report.ops.reduce((a, o) => a + o.runs, 0);
  const limit = timeLimitSummary(report);
  lines.push(
    report.exitCode === 0
      ? `Result: PASS: ${fuzzed} drawn cases passed${limit} (exit 0)`
      : report.exitCode === 1
        ? `Result: FAIL: ${failed.length} of ${report.ops.filter((o) => o.status !== 'skipped').length} ops failed${limit} (exit 1)`
        : `Result: ERROR: the fuzzing could not be carried out (exit 2)`,
  );
  return lines.join('\n');
}

/**
 * What the time limit left undone, for the result line (empty when nothing):
 * a pass over some of the ops must not read as a pass over all of them.
 */
export function timeLimitSummary(report: FuzzReport): string {
  if (!report.timedOut || report.infrastructureError !== null) return '';
  const fuzzable = report.ops.filter((o) => o.status !== 'skipped').length;
  const notRun = report.ops.filter((o) => o.status === 'not_run').length;
  const short = report.ops.filter((o) => o.status === 'passed' && o.runs < report.runsPerOp).length;
  const parts = [
    ...(notRun > 0 ? [`${notRun} of ${fuzzable} ops not run`] : []),
    ...(short > 0 ? [`${short} stopped before ${report.runsPerOp} runs`] : []),
  ];
  return parts.length === 0 ? '' : `; the time limit left ${parts.join(', ')}`;
}

function renderFuzzJson(args: FuzzArgs, port: Port, report: FuzzReport): string {
  const ops = report.ops.map((o) => {
    const op = getOp(o.op);
    const profile = getProfile(report.profile);
    return {
      ...o,
      minimal: o.minimal === null ? null : encodeInputs(op, profile, o.minimal),
      replay: o.path === null ? null : replayCommand(args, report, o.op, o.path),
    };
  });
  return JSON.stringify(
    {
      ...report,
      port: port.info,
      ops,
      check: report.check === null ? null : (JSON.parse(renderJson(report.check)) as unknown),
    },
    null,
    2,
  );
}

function renderFuzzJunit(args: FuzzArgs, report: FuzzReport): string {
  const suites = report.ops.map((o) => {
    const name = `${report.profile}/${o.op}`;
    const head = `  <testsuite name="${escapeXml(name)}" tests="1" failures="${o.status === 'failed' ? 1 : 0}" errors="${o.status === 'not_run' ? 1 : 0}" skipped="${o.status === 'skipped' ? 1 : 0}">`;
    const caseName = escapeXml(`fuzz ${o.op}: ${o.runs} runs, seed ${report.seed}`);
    let body = '';
    if (o.status === 'failed') {
      const c = report.check?.cases.find((x) => x.op === o.op);
      const detail = [
        `replay: ${replayCommand(args, report, o.op, o.path!)}`,
        ...(c?.inputs ?? []).map((l) => `input ${l}`),
        ...(c?.comparison?.outputs ?? [])
          .filter((x) => !x.ok)
          .map((x) => {
            const m = x.firstMismatch;
            return m === null
              ? `output ${x.name}: ${x.problem ?? 'differs'}`
              : `output ${x.name}: ${x.mismatches} of ${x.size} elements differ; first at [${m.position.join(', ')}]: expected ${m.expected}, got ${m.actual}`;
          }),
        ...(c?.portError == null ? [] : [`port error: ${c.portError}`]),
        ...(c?.fingerprint ?? []).map((d) => `matches: ${d.text}`),
      ].join('\n');
      body = `      <failure message="minimal failing case found">${escapeXml(detail)}</failure>\n`;
    } else if (o.status === 'skipped') {
      body = '      <skipped/>\n';
    } else if (o.status === 'not_run') {
      body = `      <error message="${escapeXml(report.infrastructureError ?? 'time limit')}"/>\n`;
    }
    return `${head}\n    <testcase classname="vdspec.fuzz.${escapeXml(report.profile)}" name="${caseName}">\n${body}    </testcase>\n  </testsuite>`;
  });
  const count = (s: string) => report.ops.filter((o) => o.status === s).length;
  // An error no op carries (nothing was fuzzed) gets a testcase of its own, or CI would show only skips.
  const loose = report.infrastructureError !== null && count('not_run') === 0;
  if (loose) {
    suites.push(
      [
        `  <testsuite name="${escapeXml(`${report.profile}/fuzz`)}" tests="1" failures="0" errors="1" skipped="0">`,
        `    <testcase classname="vdspec.fuzz" name="vdspec fuzz">`,
        `      <error message="${escapeXml(report.infrastructureError!)}"/>`,
        '    </testcase>',
        '  </testsuite>',
      ].join('\n'),
    );
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="vdspec fuzz" tests="${report.ops.length + (loose ? 1 : 0)}" failures="${count('failed')}" errors="${count('not_run') + (loose ? 1 : 0)}" skipped="${count('skipped')}">`,
    ...suites,
    '</testsuites>',
    '',
  ].join('\n');
}

/** Write the minimal failing cases as golden files, each atomically, the manifest last. */
function saveFailures(dir: string, report: FuzzReport): string[] {
  const profile = getProfile(report.profile);
  const version = packageVersion();
  const written: ManifestEntry[] = [];
  const files: string[] = [];
  makeDirectories(join(dir, profile.name));
  for (const o of report.ops) {
    if (o.status !== 'failed' || o.minimal === null) continue;
    const op = getOp(o.op);
    const built = goldenFileOf(
      op,
      profile,
      [
        {
          id: 1,
          comment: `vdspec fuzz: minimal failing case (seed ${report.seed}, path ${o.path})`,
          flags: inputFlags(op, profile, o.minimal).sort(),
          inputs: o.minimal,
        },
      ],
      o.seed,
      version,
    );
    writeFileAtomic(join(dir, built.path), built.text);
    written.push({ path: built.path, sha256: sha256(built.text), cases: built.cases });
    files.push(join(dir, built.path));
  }
  // Entries of an earlier manifest in DIR whose files are still there as recorded.
  const kept: ManifestEntry[] = [];
  const manifestPath = join(dir, MANIFEST_NAME);
  if (existsSync(manifestPath)) {
    try {
      const old = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files?: ManifestEntry[] };
      for (const e of old.files ?? []) {
        if (written.some((w) => w.path === e.path)) continue;
        const f = join(dir, e.path);
        if (existsSync(f) && sha256(readFileSync(f)) === e.sha256) kept.push(e);
      }
    } catch {
      // An unreadable manifest is replaced.
    }
  }
  writeFileAtomic(manifestPath, manifestText([...kept, ...written], version));
  return files;
}

async function fuzz(
  args: FuzzArgs,
  out: Writer,
  err: Writer,
  reported: () => void,
): Promise<number> {
  const infrastructure = infrastructureReporter('fuzz', FUZZ_REPORT_SCHEMA, args.json, out, err);
  let port: Port | null = null;
  try {
    port = await openProcessPort({ command: args.port!, timeoutMs: args.timeoutSeconds * 1000 });
    const profileName = args.profile ?? port.info.profile;
    if (profileName === null) {
      throw new CheckInfrastructureError(
        'usage',
        'the port declares no profile: pass --profile NAME',
      );
    }
    if (!isProfileName(profileName)) {
      throw new CheckInfrastructureError(
        'usage',
        `the port declares profile "${profileName}", which vdspec does not know: pass --profile NAME`,
      );
    }
    const profile = getProfile(profileName);
    const match = opMatcher(args.op);
    const ops = OPS.filter(
      (o) => match(o.name) && (o.algorithm === null || o.algorithm === profile.algorithm),
    ).sort((a, b) => (a.name < b.name ? -1 : 1));
    if (ops.length === 0) {
      throw new CheckInfrastructureError(
        'usage',
        `--op ${args.op} matches no operation of ${profile.name}`,
      );
    }
    const report = await runFuzz(port, {
      profile,
      ops,
      runs: args.runs,
      seed: args.seed,
      timeLimitMs: args.timeLimitSeconds === null ? null : args.timeLimitSeconds * 1000,
      ...(args.path === undefined ? {} : { path: args.path }),
    });
    const p = port;
    port = null;
    await p.close(report.infrastructureError === null);
    const notes: string[] = [];
    if (args.saveFailures !== undefined && report.ops.some((o) => o.status === 'failed')) {
      try {
        const files = saveFailures(args.saveFailures, report);
        notes.push(
          `wrote ${files.length} golden file(s) of minimal failing cases to ${args.saveFailures}`,
        );
      } catch (e) {
        return infrastructure(`cannot write --save-failures ${args.saveFailures}: ${messageOf(e)}`);
      }
    }
    if (args.junit !== undefined) {
      try {
        writeFileAtomic(args.junit, renderFuzzJunit(args, report));
        reported();
      } catch (e) {
        return infrastructure(`cannot write the JUnit report ${args.junit}: ${messageOf(e)}`);
      }
    }
    const withNotes = { ...report, notes: [...report.notes, ...notes] };
    out(args.json ? renderFuzzJson(args, p, withNotes) : renderFuzzText(args, p, withNotes));
    return report.exitCode;
  } catch (e) {
    if (e instanceof CheckInfrastructureError) return infrastructure(e.message);
    return infrastructure(`internal error: ${messageOf(e)}`);
  } finally {
    if (port !== null) await port.close(false);
  }
}
