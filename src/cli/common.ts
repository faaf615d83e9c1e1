/**
 * What the `vdspec` subcommands share: the usage error, the flag scanner and
 * the error boundary that turns any failure into one line on stderr and an
 * exit code (2 a bad call, 1 anything unexpected).
 */
import { isVdspecError } from '../errors.js';

export type Writer = (s: string) => void;

/** A bad call (unknown flag, missing value, ...): one line on stderr and exit 2, like a VdspecError. */
export class UsageError extends Error {}

export interface FlagSpec {
  /** The subcommand's name, for the default message about an unknown argument. */
  readonly command: string;
  /** Flags that take a value, as `--flag value` or `--flag=value`; the value may not be empty. */
  readonly values: readonly string[];
  /** Flags that take none (`-h`, `--help`, `--json`, ...); `--flag=anything` is an error. */
  readonly booleans: readonly string[];
  /** What a value flag needs when it has none, by flag (default "a value"): "--out needs a directory". */
  readonly needs?: Readonly<Record<string, string>>;
  /**
   * The message for an argument that is no known flag; `flag` is `arg`
   * without its `=value`. Default: `unknown argument "<arg>" (see vdspec <command> --help)`.
   */
  readonly unknown?: (arg: string, flag: string) => string;
}

/**
 * Scan `argv` and call `onFlag` once per flag, in order: with its value for
 * a value flag (never empty), with '' for a boolean one. A value flag takes the
 * next argument whatever it looks like (`--from -3`, `--op --json`), so
 * negative numbers need no `=`. Only `--` flags split at `=`. Each flag may
 * appear once (`-h` and `--help` count as two flags). Errors are
 * UsageErrors, thrown at the first bad argument, after `onFlag` has seen
 * every argument before it (so its own checks keep the order of argv).
 */
export function scanFlags(
  argv: readonly string[],
  spec: FlagSpec,
  onFlag: (flag: string, value: string) => void,
): void {
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (seen.has(flag)) throw new UsageError(`${flag} given twice`);
    seen.add(flag);
    if (spec.booleans.includes(flag)) {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
      onFlag(flag, '');
    } else if (spec.values.includes(flag)) {
      const value = inline ?? argv[++i];
      if (value === undefined || value === '') {
        throw new UsageError(`${flag} needs ${spec.needs?.[flag] ?? 'a value'}`);
      }
      onFlag(flag, value);
    } else {
      throw new UsageError(
        spec.unknown?.(arg, flag) ??
          `unknown argument "${arg}" (see vdspec ${spec.command} --help)`,
      );
    }
  }
}

/** The one number syntax of every numeric flag: decimal, optional sign, fraction and exponent (`1e3`). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A numeric flag's value: DECIMAL syntax and finite, or a usage error naming the flag. */
export function parseNumberFlag(flag: string, text: string): number {
  if (!DECIMAL.test(text)) throw new UsageError(`${flag} expects a decimal number, got "${text}"`);
  const value = Number(text);
  if (!Number.isFinite(value)) throw new UsageError(`${flag} is not finite: "${text}"`);
  return value;
}

/** An integer flag's value: the same syntax (so `1e3` is 1000), and a whole number. */
export function parseIntegerFlag(flag: string, text: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag} needs an integer, got "${text}"`);
  return value;
}

/** The items of a comma-separated flag value, trimmed; an empty item is a usage error. */
export function splitList(flag: string, text: string): string[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`${flag}: empty item in "${text}"`);
  return items;
}

export interface BoundaryOptions {
  /**
   * A line added after a usage error's message (not after a VdspecError's),
   * e.g. where to find the options; left out when the message already points
   * to --help, so the hint is given once.
   */
  readonly usageHint?: string;
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ');

/**
 * Run `body` (the subcommand) and return its exit code. A UsageError or a
 * VdspecError becomes `vdspec <name>: <message>` on `err` and exit 2; any
 * other error `vdspec <name>: internal error: <message>` and exit 1, or is
 * rethrown when VDSPEC_DEBUG is set, for its stack trace. Messages are
 * folded onto one line. Works for a synchronous body and an asynchronous
 * one; make the latter an `async` function, so that it fails by rejecting
 * (a synchronous throw is taken for a synchronous body's and returns a number).
 */
export function runCommand(
  name: string,
  err: Writer,
  body: () => number,
  options?: BoundaryOptions,
): number;
export function runCommand(
  name: string,
  err: Writer,
  body: () => Promise<number>,
  options?: BoundaryOptions,
): Promise<number>;
export function runCommand(
  name: string,
  err: Writer,
  body: () => number | Promise<number>,
  options: BoundaryOptions = {},
): number | Promise<number> {
  const report = (e: unknown): number => {
    if (e instanceof UsageError) {
      const hint =
        options.usageHint === undefined || e.message.includes('--help')
          ? ''
          : `\n${options.usageHint}`;
      err(`vdspec ${name}: ${oneLine(e.message)}${hint}`);
      return 2;
    }
    if (isVdspecError(e)) {
      err(`vdspec ${name}: ${oneLine(e.message)}`);
      return 2;
    }
    if (process.env['VDSPEC_DEBUG']) throw e;
    err(`vdspec ${name}: internal error: ${oneLine(e instanceof Error ? e.message : String(e))}`);
    return 1;
  };
  try {
    const code = body();
    return typeof code === 'number' ? code : code.catch(report);
  } catch (e) {
    return report(e);
  }
}
