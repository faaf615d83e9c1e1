/**
 * `vdspec golden`: write the golden files of the float64 reference
 * (spec/golden.md#regenerating).
 */
import { PROFILE_NAMES } from '../profiles.js';
import { counted } from '../check/format.js';
import {
  generateGoldenInterruptible,
  GoldenInterrupted,
  MANIFEST_NAME,
  type GenerateHooks,
} from '../golden/generate.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  runCommand,
  splitList,
  UsageError,
  type FlagSpec,
  type Writer,
} from './common.js';

/** Where files go without --out (the repository's own set is written by `npm run golden`). */
export const DEFAULT_GOLDEN_OUT = './golden';

/** --profile: known profile names, comma-separated. */
function parseProfiles(flag: string, text: string): string[] {
  const names = splitList(flag, text);
  for (const n of names) {
    if (!(PROFILE_NAMES as readonly string[]).includes(n)) {
      throw new UsageError(`unknown profile "${n}"; known profiles: ${PROFILE_NAMES.join(', ')}`);
    }
  }
  return names;
}

export const GOLDEN_FLAGS = {
  command: 'golden',
  flags: {
    out: {
      value: 'DIR',
      needs: 'a directory',
      help:
        `output directory (default ${DEFAULT_GOLDEN_OUT}; this repository's committed set ` +
        'is test/golden: npm run golden)',
    },
    profile: {
      value: 'P',
      parse: parseProfiles,
      help: `only these profiles (comma-separated); known: ${PROFILE_NAMES.join(', ')}`,
    },
    op: {
      value: 'PATTERN',
      parse: splitList,
      help:
        'only ops matching these globs (comma-separated; * any characters, ? one), ' +
        "e.g. 'svd.dense.*' or 'kl.*,schedule.*'",
    },
    help: HELP_FLAG,
  },
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec golden [--out DIR] [--profile P[,P...]] [--op PATTERN[,PATTERN...]]

Write golden files: inputs and float64 reference outputs of every operation
under every profile it accepts, one file per (profile, op) at
DIR/<profile>/<op>.json, plus DIR/${MANIFEST_NAME} with each file's sha256
(format: spec/golden.md). The same version of vdspec always writes the same
bytes. Files are staged and renamed into place only once all are written, so a
failed run leaves the previous set as it was.

Options:
${optionList(GOLDEN_FLAGS.flags)}

With --profile or --op, the files of other ops already in DIR are kept and stay
in the manifest (when they still match their recorded sha256).

Ctrl-C (or SIGTERM) before the files are put in place stops the run: nothing
is written and DIR stays as it was (exit 130, 143 for SIGTERM). Once the
renames have begun they finish: the run says it wrote the files and exits 0.
Exit codes: 0 written, 2 bad arguments or an --out that cannot be written
(nothing written), 130 / 143 interrupted (nothing written), 1 anything else.`;

export interface GoldenCommandIo {
  /**
   * Listen for SIGINT and SIGTERM (default true, for the program). After a
   * successful write the listeners stay until the process exits, so that a
   * signal after the verdict cannot turn "wrote ..." and exit 0 into a kill.
   */
  readonly handleSignals?: boolean;
  /** Given the function a signal calls, so that a test can interrupt without one. */
  readonly interruptHook?: (interrupt: (signal: NodeJS.Signals) => void) => void;
  /** Passed to the generator (tests: interrupt after a given file is staged). */
  readonly hooks?: GenerateHooks;
}

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

async function run(
  argv: readonly string[],
  out: Writer,
  err: Writer,
  io: GoldenCommandIo,
): Promise<number> {
  const flags = parseFlags(argv, GOLDEN_FLAGS).values;
  const options = { ...flags, out: flags.out ?? DEFAULT_GOLDEN_OUT };
  if (options.help) {
    out(HELP);
    return 0;
  }
  let signal: NodeJS.Signals | null = null;
  let written = false;
  // After the verdict a signal changes nothing: the files are written and the exit code is 0.
  const onSignal = (s: NodeJS.Signals) => {
    if (!written) signal ??= s;
  };
  const handleSignals = io.handleSignals ?? true;
  const stopListening = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  io.interruptHook?.(onSignal);
  let summary;
  try {
    summary = await generateGoldenInterruptible(
      options.out,
      {
        ...(options.profile === undefined ? {} : { profiles: options.profile }),
        ...(options.op === undefined ? {} : { ops: options.op }),
      },
      { shouldStop: () => signal !== null, ...(io.hooks === undefined ? {} : { hooks: io.hooks }) },
    );
  } catch (error) {
    if (handleSignals) stopListening();
    if (error instanceof GoldenInterrupted && signal !== null) {
      err(`vdspec golden: interrupted (${signal}); nothing written, ${options.out} is as it was`);
      return SIGNAL_EXIT[signal] ?? 130;
    }
    throw error;
  }
  // From here the verdict is "written" (the listeners stay, see GoldenCommandIo).
  written = true;
  const kb = (summary.bytes / 1024).toFixed(0);
  out(
    `wrote ${counted(summary.files.length, 'golden file')} (${summary.cases} cases, ${kb} KiB) and ` +
      `${MANIFEST_NAME} to ${options.out}` +
      (summary.merged ? ' (the manifest keeps the other files already there)' : ''),
  );
  if (summary.dropped.length > 0) {
    // Expected, not an error: an edge case drafted for every profile may be invalid under one.
    out(`${summary.dropped.length} drafted case(s) left out, rejected by the reference:`);
    for (const d of summary.dropped) out(`  ${d.path} case ${d.id}: ${d.reason}`);
  }
  return 0;
}

/**
 * Run `vdspec golden` with `argv` (the arguments after `golden`). Resolves to
 * the exit code: 0 written, 2 bad arguments or an unusable --out (one line on
 * `err`, nothing written), 130 / 143 interrupted by SIGINT / SIGTERM before
 * the files were put in place (nothing written), 1 anything unexpected. Never
 * rejects (unless VDSPEC_DEBUG is set: see runCommand).
 */
export function runGoldenCommand(
  argv: string[],
  out: Writer,
  err: Writer,
  io: GoldenCommandIo = {},
): Promise<number> {
  return runCommand('golden', err, () => run(argv, out, err, io));
}
