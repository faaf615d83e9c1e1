/**
 * `vdspec check`: run a port (or read its results file) against the golden
 * files and report, per op, what passed, what failed and which published
 * convention or known bug a failed answer matches (spec/check.md).
 *
 * Exit codes: 0 every checked case passed; 1 some failed; 2 the check could
 * not be carried out (usage, unreadable files, a port that crashes, hangs,
 * prints junk or answers the wrong id).
 */
import { accessSync, constants, existsSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckInfrastructureError, messageOf } from '../check/errors.js';
import { loadGoldenSet } from '../check/golden.js';
import type { Port } from '../check/port.js';
import { openProcessPort } from '../check/processPort.js';
import {
  DEFAULT_MAX_FAILURES,
  renderErrorJunit,
  renderJson,
  renderJunit,
  renderText,
} from '../check/report.js';
import { openResultsPort } from '../check/resultsPort.js';
import { REPORT_SCHEMA, runCheck } from '../check/runner.js';
import { isVdspecError, VdspecError } from '../errors.js';
import { GOLDEN_FLAGS } from '../golden/cases/flags.js';
import { writeFileAtomic } from '../files.js';
import { matchOps } from '../golden/generate.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  parseIntegerFlag,
  parseNumberFlag,
  runCommand,
  splitList,
  UsageError,
  type FlagSpec,
  type FlagValues,
  type Writer,
} from './common.js';

/** Seconds a port may take per message (the handshake and each case). */
export const DEFAULT_TIMEOUT_SECONDS = 10;

/** The longest --timeout: a day. */
export const MAX_TIMEOUT_SECONDS = 86_400;

export const DEFAULT_GOLDEN_DIR = fileURLToPath(new URL('../../test/golden', import.meta.url));

/** --timeout: seconds in (0, a day]: plenty for one message, and far below setTimeout's 2^31 - 1 ms, beyond which Node fires at once. */
export function parseTimeout(flag: string, text: string): number {
  const seconds = parseNumberFlag(flag, text);
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new UsageError(`${flag} must be in (0, ${MAX_TIMEOUT_SECONDS}] seconds, got "${text}"`);
  }
  return seconds;
}

export function parseCount(flag: string, text: string): number {
  const count = parseIntegerFlag(flag, text);
  if (count < 0) throw new UsageError(`${flag} expects a non-negative integer, got "${text}"`);
  return count;
}

/** --skip-flag: names of golden flags (spec/golden.md#flags); a misspelt one would skip nothing. */
export function parseSkipFlags(flag: string, text: string): string[] {
  const names = text.split(',').map((n) => n.trim());
  for (const name of names) {
    if (!Object.hasOwn(GOLDEN_FLAGS, name)) {
      throw new UsageError(
        `${flag}: no golden flag is named "${name}"; known: ${Object.keys(GOLDEN_FLAGS).join(', ')}`,
      );
    }
  }
  return names;
}

/**
 * --op of check and fuzz: comma-separated globs, each matching some operation
 * (golden's rule, by the same code): a misspelt name is refused before the
 * port starts instead of selecting nothing. The text is kept for opMatcher.
 */
export function parseOpPatterns(flag: string, text: string): string {
  try {
    matchOps(splitList(flag, text));
  } catch (e) {
    // A flag's parser throws usage errors (the --help hint follows); matchOps words it for golden's --op.
    if (isVdspecError(e)) throw new UsageError(`${flag}: ${e.message.replace(/^op: /, '')}`);
    throw e;
  }
  return text;
}

export const CHECK_FLAGS = {
  command: 'check',
  flags: {
    port: {
      value: '"COMMAND"',
      help: 'run COMMAND (with sh -c) and talk to it over stdin/stdout, JSON lines, protocol vdspec-port/1',
    },
    results: { value: 'FILE', help: "read the port's answers from a vdspec-results/1 file" },
    golden: { value: 'DIR', help: "golden files (default: this package's test/golden)" },
    profile: {
      value: 'P',
      help:
        'the golden profile to check against (default: the one the port or the results file ' +
        'declares); log_sigma and log_sigma2 are translated between the two profiles',
    },
    op: {
      value: 'PATTERN',
      parse: parseOpPatterns,
      help: "only these ops: comma-separated names, * matches anything (e.g. 'svd.dense.*,kl.approx')",
    },
    timeout: {
      value: 'SEC',
      parse: parseTimeout,
      help:
        'seconds per message before the port counts as hung ' +
        `(default ${DEFAULT_TIMEOUT_SECONDS}, at most ${MAX_TIMEOUT_SECONDS}; also the handshake's)`,
    },
    json: { help: 'the report as JSON on stdout instead of the table' },
    junit: { value: 'FILE', help: 'also write the report as JUnit XML to FILE' },
    'max-failures': {
      value: 'N',
      parse: parseCount,
      help: `failed cases shown in detail (default ${DEFAULT_MAX_FAILURES}); all cases are run`,
    },
    'skip-flag': {
      value: 'FLAGS',
      parse: parseSkipFlags,
      help:
        'skip the cases that carry any of these golden flags (comma-separated, ' +
        'spec/golden.md#flags), e.g. infinite_log_alpha for code that cannot run them; ' +
        'they count as skipped and the report says how many',
    },
    help: HELP_FLAG,
  },
  unknown: (arg) => `unknown option "${arg}" (see vdspec check --help)`,
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec check (--port "COMMAND" | --results FILE) [options]

Check a port of VD / Sparse VD against the golden files (spec/check.md).

${optionList(CHECK_FLAGS.flags, ['port', 'results'])}
Options:
${optionList(CHECK_FLAGS.flags, Object.keys(CHECK_FLAGS.flags).slice(2))}

Exit codes: 0 all checked cases pass (undeclared ops are skipped), 1 some
fail, 2 the check could not be carried out (also when no case was checked,
or the port declares an op name vdspec does not know).`;

type CheckArgs = FlagValues<typeof CHECK_FLAGS.flags>;

function parseArgs(argv: readonly string[]): CheckArgs {
  const args = parseFlags(argv, CHECK_FLAGS).values;
  if (!args.help && (args.port === undefined) === (args.results === undefined)) {
    throw new UsageError('give exactly one of --port "COMMAND" and --results FILE');
  }
  if (!args.help && args.junit !== undefined) checkReportPath('--junit', args.junit);
  return args;
}

/**
 * Refuse a report path that cannot be written before the check runs (a run
 * can take minutes): not a directory, in an existing directory we may write.
 */
/**
 * How check and fuzz end when they cannot be carried out: the message on
 * stderr, with --json also a report holding only it, and exit 2.
 */
export function infrastructureReporter(
  command: string,
  schema: string,
  json: boolean,
  out: Writer,
  err: Writer,
): (message: string) => number {
  return (message) => {
    err(`vdspec ${command}: ${message}`);
    if (json) {
      out(JSON.stringify({ schema, infrastructureError: message, exitCode: 2 }, null, 2));
    }
    return 2;
  };
}

export function checkReportPath(flag: string, path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new VdspecError('invalid_argument', `${flag} ${path} is a directory: give a file name`);
  }
  const parent = dirname(resolve(path));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new VdspecError(
      'invalid_argument',
      `${flag} ${path}: the directory ${parent} does not exist`,
    );
  }
  try {
    accessSync(parent, constants.W_OK);
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch {
    throw new VdspecError('invalid_argument', `${flag} ${path}: no permission to write there`);
  }
}

function openPort(args: CheckArgs): Promise<Port> | Port {
  if (args.results !== undefined) return openResultsPort(args.results);
  const seconds = args.timeout ?? DEFAULT_TIMEOUT_SECONDS;
  return openProcessPort({ command: args.port!, timeoutMs: seconds * 1000 });
}

/** The --junit path of a command line, read without the flag parser (which may be what failed). */
function junitPathOf(argv: readonly string[]): string | null {
  let path: string | null = null;
  argv.forEach((arg, i) => {
    if (arg === '--junit' && i + 1 < argv.length) path = argv[i + 1]!;
    else if (arg.startsWith('--junit=')) path = arg.slice('--junit='.length);
  });
  return path;
}

/**
 * Run check or fuzz so that a --junit file never keeps an earlier run's
 * verdict: when the run ends without writing its report (a usage error, a
 * port that fails its handshake, unreadable golden files, an internal
 * error), the file is replaced, atomically, by a JUnit report of that one
 * error, or removed when it cannot be written. A path that is no writable
 * file's (a directory, a missing directory) is left alone, and so is a path
 * with no file yet when the command line itself does not parse.
 */
export async function withReportGuard(
  command: 'check' | 'fuzz',
  spec: FlagSpec,
  argv: readonly string[],
  err: Writer,
  run: (err: Writer, reported: () => void) => Promise<number>,
): Promise<number> {
  let written = false;
  let first: string | null = null;
  const code = await run(
    (s) => {
      first ??= s;
      err(s);
    },
    () => {
      written = true;
    },
  );
  if (code === 0 || written) return code;
  let path: string | null;
  try {
    const value = parseFlags(argv, spec).values['junit'];
    path = typeof value === 'string' ? value : null;
  } catch {
    // A command line that does not parse names no report for sure: only an earlier file is replaced.
    path = junitPathOf(argv);
    if (path !== null && !existsSync(path)) path = null;
  }
  if (path === null || path === '') return code;
  try {
    checkReportPath('--junit', path);
  } catch {
    return code;
  }
  const message = (first ?? `vdspec ${command} exited with code ${code}`).replace(
    new RegExp(`^vdspec ${command}: `),
    '',
  );
  try {
    writeFileAtomic(path, renderErrorJunit(command, message));
  } catch (e) {
    try {
      rmSync(path, { force: true });
    } catch (removal) {
      err(
        `vdspec ${command}: the JUnit report ${path} is an earlier run's and could not be replaced ` +
          `(${messageOf(e)}) nor removed (${messageOf(removal)})`,
      );
    }
  }
  return code;
}

export async function runCheckCommand(argv: string[], out: Writer, err: Writer): Promise<number> {
  return withReportGuard('check', CHECK_FLAGS, argv, err, (guardedErr, reported) =>
    runCommand(
      'check',
      guardedErr,
      async () => {
        const args = parseArgs(argv);
        if (args.help) {
          out(HELP);
          return 0;
        }
        return check(args, out, guardedErr, reported);
      },
      { usageHint: 'Run "vdspec check --help" for the options.' },
    ),
  );
}

/**
 * Check with parsed arguments. Every failure here is exit 2, never 1 (which
 * means failed cases): its own boundary reports it, as JSON too with --json.
 */
async function check(
  args: CheckArgs,
  out: Writer,
  err: Writer,
  reported: () => void,
): Promise<number> {
  const infrastructure = infrastructureReporter(
    'check',
    REPORT_SCHEMA,
    args.json === true,
    out,
    err,
  );

  let port: Port | null = null;
  try {
    port = await openPort(args);
    const profile = args.profile ?? port.info.profile;
    if (profile === null) {
      throw new CheckInfrastructureError(
        'usage',
        'the port declares no profile: pass --profile NAME',
      );
    }
    const golden = loadGoldenSet(args.golden ?? DEFAULT_GOLDEN_DIR, profile, args.op);
    const report = await runCheck(port, golden, { skipFlags: args['skip-flag'] ?? [] });
    port = null;
    // The JUnit file first: a verdict on stdout must not be contradicted by a failed write and exit 2.
    if (args.junit !== undefined) {
      try {
        writeFileAtomic(args.junit, renderJunit(report));
        reported();
      } catch (e) {
        return infrastructure(`cannot write the JUnit report ${args.junit}: ${messageOf(e)}`);
      }
    }
    out(
      args.json
        ? renderJson(report)
        : renderText(report, args['max-failures'] ?? DEFAULT_MAX_FAILURES),
    );
    return report.exitCode;
  } catch (e) {
    if (e instanceof CheckInfrastructureError) return infrastructure(e.message);
    return infrastructure(`internal error: ${messageOf(e)}`);
  } finally {
    // runCheck closes the port itself; this covers a failure between opening it and running.
    if (port !== null) await port.close();
  }
}
