/**
 * `vdspec golden`: write the golden files of the float64 reference
 * (spec/golden.md#regenerating).
 */
import { PROFILE_NAMES } from '../profiles.js';
import { generateGolden, MANIFEST_NAME } from '../golden/generate.js';
import { runCommand, scanFlags, splitList, UsageError, type FlagSpec } from './common.js';

/** Where files go without --out (the repository's own set is written by `npm run golden`). */
export const DEFAULT_GOLDEN_OUT = './golden';

const HELP = `Usage: vdspec golden [--out DIR] [--profile P[,P...]] [--op PATTERN[,PATTERN...]]

Write golden files: inputs and float64 reference outputs of every operation
under every profile it accepts, one file per (profile, op) at
DIR/<profile>/<op>.json, plus DIR/${MANIFEST_NAME} with each file's sha256
(format: spec/golden.md). The same version of vdspec always writes the same
bytes. Files are staged and renamed into place only once all are written, so a
failed run leaves the previous set as it was.

Options:
  --out DIR        output directory (default ${DEFAULT_GOLDEN_OUT}; this repository's
                   committed set is test/golden: npm run golden)
  --profile P      only these profiles (comma-separated); known: ${PROFILE_NAMES.join(', ')}
  --op PATTERN     only ops matching these globs (comma-separated; * any characters,
                   ? one), e.g. 'svd.dense.*' or 'kl.*,schedule.*'
  -h, --help       this text

With --profile or --op, the files of other ops already in DIR are kept and stay
in the manifest (when they still match their recorded sha256).
Exit codes: 0 written, 2 bad arguments or an --out that cannot be written
(nothing written), 1 anything else.`;

interface GoldenOptions {
  out: string;
  profiles?: string[];
  ops?: string[];
  help: boolean;
}

const FLAGS: FlagSpec = {
  command: 'golden',
  values: ['--out', '--profile', '--op'],
  booleans: ['-h', '--help'],
  needs: { '--out': 'a directory' },
};

function parseArgs(argv: readonly string[]): GoldenOptions {
  const options: GoldenOptions = { out: DEFAULT_GOLDEN_OUT, help: false };
  scanFlags(argv, FLAGS, (flag, value) => {
    switch (flag) {
      case '--out':
        options.out = value;
        break;
      case '--profile': {
        const names = splitList(flag, value);
        for (const n of names) {
          if (!(PROFILE_NAMES as readonly string[]).includes(n)) {
            throw new UsageError(
              `unknown profile "${n}"; known profiles: ${PROFILE_NAMES.join(', ')}`,
            );
          }
        }
        options.profiles = names;
        break;
      }
      case '--op':
        options.ops = splitList(flag, value);
        break;
      case '-h':
      case '--help':
        options.help = true;
        break;
    }
  });
  return options;
}

function run(argv: readonly string[], out: (s: string) => void): number {
  const options = parseArgs(argv);
  if (options.help) {
    out(HELP);
    return 0;
  }
  const summary = generateGolden(options.out, {
    ...(options.profiles === undefined ? {} : { profiles: options.profiles }),
    ...(options.ops === undefined ? {} : { ops: options.ops }),
  });
  const kb = (summary.bytes / 1024).toFixed(0);
  out(
    `wrote ${summary.files.length} golden files (${summary.cases} cases, ${kb} KiB) and ` +
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
 * Run `vdspec golden` with `argv` (the arguments after `golden`). Returns the
 * exit code: 0 written, 2 bad arguments or an unusable --out (one line on
 * `err`, nothing written), 1 anything unexpected. Never throws
 * (unless VDSPEC_DEBUG is set: see runCommand).
 */
export function runGoldenCommand(
  argv: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): number {
  return runCommand('golden', err, () => run(argv, out));
}
