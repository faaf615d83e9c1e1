/**
 * What the `vdspec` subcommands share: the usage error, the flag parser and
 * the --help option list (both made from one table per command), the number
 * syntax of numeric flags, and the error boundary that turns any failure into
 * one line on stderr and an exit code (2 a bad call, 1 anything unexpected).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { isVdspecError } from '../errors.js';

export type Writer = (s: string) => void;

/** A bad call (unknown flag, missing value, ...): one line on stderr and exit 2, like a VdspecError. */
export class UsageError extends Error {}

/** One flag of a command. The parser and the option list of `--help` are both made from these. */
export interface Flag {
  /** The value's name in --help (`DIR`, `N`); a flag without one takes no value. */
  readonly value?: string;
  /** Reads the value (default: the text as given), e.g. parseIntegerFlag; throws a UsageError. */
  readonly parse?: (flag: string, text: string) => unknown;
  /** What the flag needs when its value is missing or empty (default "a value"). */
  readonly needs?: string;
  /** A one-letter alias (`-h`). */
  readonly short?: string;
  /** The description in --help, wrapped to fit; a newline starts a new line. */
  readonly help: string;
}

/** A command's flags by long name (`'max-failures'` is `--max-failures`), in the order --help lists them. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** What parseFlags returns for a table: each flag given, as its `parse` returns it, text, or `true`. */
export type FlagValues<T extends FlagTable> = {
  -readonly [K in keyof T]?: T[K] extends { parse: (flag: string, text: string) => infer V }
    ? V
    : T[K] extends { value: string }
      ? string
      : true;
};

export interface FlagSpec<T extends FlagTable = FlagTable> {
  /** The subcommand's name, for the default message about an unknown argument. */
  readonly command: string;
  readonly flags: T;
  /** Whether arguments that are no flag are taken (in order); otherwise each is an unknown argument. */
  readonly positionals?: boolean;
  /**
   * The message for an argument that is no known flag; `flag` is `arg`
   * without its `=value`. Default: `unknown argument "<arg>" (see vdspec <command> --help)`.
   */
  readonly unknown?: (arg: string, flag: string) => string;
}

/** `-h, --help`, the last flag of every command. */
export const HELP_FLAG = { short: 'h', help: 'this text' } as const satisfies Flag;

/**
 * Parse `argv` with Node's util.parseArgs, then check its tokens in order.
 * A value flag takes `--flag=value` or the next argument whatever it looks
 * like (`--from -3`, `--op --json`: parseArgs's strict mode would refuse
 * those, so it runs loose and the checks are here): never empty. A flag
 * without a value refuses `--flag=anything`. Each flag may appear once (`-h`
 * and `--help` count as two); short flags only alone (`-hx` is unknown), and
 * `--` is an unknown argument. Errors are UsageErrors, thrown at the first
 * bad argument, after every value before it was parsed (so the `parse`
 * checks keep the order of argv).
 */
export function parseFlags<T extends FlagTable>(
  argv: readonly string[],
  spec: FlagSpec<T>,
): { values: FlagValues<T>; positionals: string[] } {
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(
      Object.entries(spec.flags).map(([name, f]) => [
        name,
        { type: f.value === undefined ? 'boolean' : 'string', ...(f.short && { short: f.short }) },
      ]),
    ) as ParseArgsConfig['options'],
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const seen = new Set<string>();
  for (const token of tokens) {
    const arg = argv[token.index]!;
    if (token.kind === 'positional' && spec.positionals) {
      positionals.push(token.value);
      continue;
    }
    // Only `--` flags split at `=`; a token that is not its whole argument comes from `-hx`.
    const flag = arg.startsWith('--') ? arg.split('=')[0]! : arg;
    const option = token.kind === 'option' && token.rawName === flag ? token : null;
    if (seen.has(flag)) throw new UsageError(`${flag} given twice`);
    seen.add(flag);
    const def = option && Object.hasOwn(spec.flags, option.name) ? spec.flags[option.name] : null;
    if (!option || !def) {
      throw new UsageError(
        spec.unknown?.(arg, flag) ??
          `unknown argument "${arg}" (see vdspec ${spec.command} --help)`,
      );
    }
    if (def.value === undefined) {
      if (option.value !== undefined) throw new UsageError(`${flag} takes no value`);
      values[option.name] = true;
    } else if (option.value === undefined || option.value === '') {
      throw new UsageError(`${flag} needs ${def.needs ?? 'a value'}`);
    } else {
      values[option.name] = def.parse ? def.parse(flag, option.value) : option.value;
    }
  }
  return { values: values as FlagValues<T>, positionals };
}

/**
 * The option list of a command's --help, made from its flag table: the
 * flags `names` (default all, in the table's order), aligned for the whole table.
 */
export function optionList(
  flags: FlagTable,
  names: readonly string[] = Object.keys(flags),
): string {
  const label = (name: string, f: Flag) =>
    `${f.short ? `-${f.short}, ` : ''}--${name}${f.value ? ` ${f.value}` : ''}`;
  const width = Math.max(...Object.entries(flags).map(([n, f]) => label(n, f).length)) + 4;
  return names
    .flatMap((name) =>
      wrap(flags[name]!.help, 84 - width).map(
        (line, j) => (j === 0 ? `  ${label(name, flags[name]!)}` : '').padEnd(width) + line,
      ),
    )
    .join('\n');
}

/** `text` in lines of at most `width` characters (a longer word alone), breaking at spaces and at newlines. */
function wrap(text: string, width: number): string[] {
  return text.split('\n').flatMap((paragraph) => {
    const lines = [''];
    for (const word of paragraph.split(' ')) {
      const last = lines[lines.length - 1]!;
      if (last !== '' && last.length + 1 + word.length > width) lines.push(word);
      else lines[lines.length - 1] = last === '' ? word : `${last} ${word}`;
    }
    return lines;
  });
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
