/**
 * `vdspec golden`: write the golden files of the float64 reference
 * (spec/golden.md#regenerating).
 */
import { isVdspecError } from '../errors.js';
import { PROFILE_NAMES } from '../profiles.js';
import { generateGolden, MANIFEST_NAME } from '../golden/generate.js';

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
Exit codes: 0 written, 2 bad arguments (nothing written), 1 anything else.`;

class UsageError extends Error {}

interface GoldenOptions {
  out: string;
  profiles?: string[];
  ops?: string[];
  help: boolean;
}

function list(flag: string, text: string | undefined): string[] {
  if (text === undefined || text === '') throw new UsageError(`${flag} needs a value`);
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`${flag}: empty item in "${text}"`);
  return items;
}

function parseArgs(argv: readonly string[]): GoldenOptions {
  const options: GoldenOptions = { out: DEFAULT_GOLDEN_OUT, help: false };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (seen.has(flag)) throw new UsageError(`${flag} given twice`);
    seen.add(flag);
    const value = (): string | undefined => {
      if (inline !== undefined) return inline;
      i++;
      return argv[i];
    };
    switch (flag) {
      case '--out': {
        const v = value();
        if (v === undefined || v === '') throw new UsageError('--out needs a directory');
        options.out = v;
        break;
      }
      case '--profile': {
        const names = list(flag, value());
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
        options.ops = list(flag, value());
        break;
      case '-h':
      case '--help':
        if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
        options.help = true;
        break;
      default:
        throw new UsageError(`unknown argument "${arg}" (see vdspec golden --help)`);
    }
  }
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
 * exit code: 0 written, 2 bad arguments (one line on `err`, nothing
 * written), 1 anything unexpected (a file system error included). Never throws.
 */
export function runGoldenCommand(
  argv: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): number {
  try {
    return run(argv, out);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`vdspec golden: ${e.message}`);
      return 2;
    }
    if (isVdspecError(e)) {
      err(`vdspec golden: ${e.message}`);
      return 2;
    }
    err(`vdspec golden: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
