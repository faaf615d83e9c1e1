/**
 * The flags of every `vdspec` command (src/cli/common.ts): one table per
 * command makes both its parser (Node's util.parseArgs) and the option list
 * of its --help, so the two cannot drift. Each property runs the real
 * command through the dispatcher.
 */
import { describe, expect, it } from 'vitest';
import { CHECK_FLAGS } from '../../src/cli/check.js';
import { parseFlags, UsageError, type FlagSpec } from '../../src/cli/common.js';
import { COMPARE_FLAGS } from '../../src/cli/compare.js';
import { EVAL_FLAGS } from '../../src/cli/eval.js';
import { FUZZ_FLAGS } from '../../src/cli/fuzz.js';
import { GOLDEN_FLAGS } from '../../src/cli/golden.js';
import { KL_FLAGS } from '../../src/cli/kl.js';
import { main } from '../../src/cli/main.js';
import { PICTURES_FLAGS } from '../../src/cli/pictures.js';
import { TRAIN_FLAGS } from '../../src/cli/train.js';

const SPECS: Record<string, FlagSpec> = {
  check: CHECK_FLAGS,
  compare: COMPARE_FLAGS,
  eval: EVAL_FLAGS,
  fuzz: FUZZ_FLAGS,
  golden: GOLDEN_FLAGS,
  kl: KL_FLAGS,
  pictures: PICTURES_FLAGS,
  train: TRAIN_FLAGS,
};

async function vdspec(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface Listed {
  readonly flag: string;
  readonly short: string | undefined;
  readonly value: string | undefined;
}

/** The flags an option list of --help shows: lines `  [-x, ]--flag [VALUE]  description`. */
function listedFlags(help: string): Listed[] {
  return [...help.matchAll(/^ {2}(?:(-\w), )?(--[\w-]+)(?: (\S+))? {2}/gm)].map((m) => ({
    flag: m[2]!,
    short: m[1],
    value: m[3],
  }));
}

/** A value each listed flag's parser takes: a profile name for P, an op for PATTERN, a golden flag for FLAGS, else 1. */
const SAMPLES: Record<string, string> = {
  P: 'molchanov2017',
  PATTERN: 'kl.approx',
  FLAGS: 'infinite_log_alpha',
};
const sample = (value: string) => SAMPLES[value] ?? '1';

const parse = (spec: FlagSpec, argv: string[]) => () => parseFlags(argv, spec);

describe('vdspec <command> --help lists exactly the flags its parser accepts', () => {
  it('every command of the dispatcher has a flag table here', async () => {
    const usage = (await vdspec(['--help'])).out;
    const commands = [...usage.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]);
    expect(commands.sort()).toEqual(Object.keys(SPECS).sort());
  });

  it.each(Object.keys(SPECS))(
    '%s: each listed flag (with a value if listed with one, as --flag VALUE and --flag=VALUE) is accepted, given twice is refused',
    async (command) => {
      const help = await vdspec([command, '--help']);
      expect(help.code).toBe(0);
      const listed = listedFlags(help.out);
      // The listing is the table, no more and no less.
      expect(listed.map((l) => l.flag.slice(2))).toEqual(Object.keys(SPECS[command]!.flags));
      expect(listed.at(-1)).toEqual({ flag: '--help', short: '-h', value: undefined });
      for (const { flag, short, value } of listed) {
        const forms =
          value === undefined
            ? [[flag], ...(short === undefined ? [] : [[short]])]
            : [[flag, sample(value)], [`${flag}=${sample(value)}`]];
        for (const form of forms) {
          // --help after the flag: the command prints its help once the whole line parses.
          const r = await vdspec([command, ...form, ...(flag === '--help' ? [] : ['--help'])]);
          expect(r.err, form.join(' ')).toBe('');
          expect(r.code, form.join(' ')).toBe(0);
          expect(r.out).toBe(help.out);
        }
        // Refusals run with --help last, so that a parser which let one through prints help and writes nothing.
        const twice = await vdspec([command, ...forms[0]!, ...forms[0]!, '--help']);
        expect(twice.code, flag).toBe(2);
        expect(twice.err, flag).toMatch(new RegExp(`^vdspec ${command}: ${flag} given twice`));
        const spec = SPECS[command]!;
        if (value === undefined) {
          expect(parse(spec, [`${flag}=1`])).toThrow(`${flag} takes no value`);
        } else {
          expect(parse(spec, [flag])).toThrow(new RegExp(`^${flag} needs a`));
          expect(parse(spec, [`${flag}=`])).toThrow(new RegExp(`^${flag} needs a`));
        }
      }
    },
  );

  it.each(Object.keys(SPECS))(
    "%s: the other commands' flags it does not list are refused as unknown",
    (command) => {
      const own = SPECS[command]!;
      const others = new Set(Object.values(SPECS).flatMap((s) => Object.keys(s.flags)));
      let refused = 0;
      for (const name of others) {
        if (Object.hasOwn(own.flags, name)) continue;
        expect(parse(own, [`--${name}`, '1']), name).toThrow(/unknown|unexpected/);
        refused++;
      }
      expect(refused).toBeGreaterThan(0);
    },
  );
});

describe('vdspec flags: forms, numbers, unknown flags', () => {
  it('--flag=value and --flag value give the same run, negative values included', async () => {
    const spaced = await vdspec(['kl', '--from', '-2', '--to', '1.5', '--step', '0.5', '--json']);
    const inline = await vdspec(['kl', '--from=-2', '--to=1.5', '--step=5e-1', '--json']);
    expect(spaced.code).toBe(0);
    expect(inline).toEqual(spaced);
    expect((JSON.parse(inline.out) as unknown[]).length).toBe(8);
  });

  it.each(Object.keys(SPECS))(
    '%s: every numeric flag reads one syntax: integers, decimals and exponents (1e1), nothing else',
    (command) => {
      const spec = SPECS[command]!;
      for (const [name, f] of Object.entries(spec.flags)) {
        if (f.value === undefined) continue;
        let numeric = false;
        try {
          parseFlags([`--${name}`, 'ten'], spec);
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
          numeric = /integer|decimal number/.test((e as Error).message);
        }
        if (!numeric) continue;
        const values = parseFlags([`--${name}`, '1e1'], spec).values as Record<string, unknown>;
        expect(values[name], name).toBe(10);
        expect(parseFlags([`--${name}=10`], spec).values).toEqual(values);
        for (const bad of ['0x10', '1e', 'Infinity', '1_0']) {
          expect(parse(spec, [`--${name}`, bad]), `${name} ${bad}`).toThrow(UsageError);
        }
      }
    },
  );

  it('train and check have numeric flags (the property above is not vacuous)', () => {
    const numeric = (spec: FlagSpec, name: string) =>
      parseFlags([`--${name}`, '1e1'], spec).values as Record<string, unknown>;
    expect(numeric(TRAIN_FLAGS, 'epochs')['epochs']).toBe(10);
    expect(numeric(CHECK_FLAGS, 'timeout')['timeout']).toBe(10);
    expect(numeric(KL_FLAGS, 'from')['from']).toBe(10);
  });

  it.each(Object.keys(SPECS))(
    '%s: an unknown flag is exit 2, one line on stderr naming it, with the --help hint; nothing on stdout',
    async (command) => {
      // --help last: a parser that let the flag through would print help and write nothing.
      for (const argv of [
        ['--no-such-flag', '--help'],
        ['--no-such-flag=1', '--help'],
        ['--help', '--no-such-flag'],
      ]) {
        const r = await vdspec([command, ...argv]);
        expect(r.code, argv.join(' ')).toBe(2);
        expect(r.out).toBe('');
        expect(r.err.split('\n'), r.err).toHaveLength(1);
        expect(r.err).toMatch(new RegExp(`^vdspec ${command}: unknown .*--no-such-flag`));
        expect(r.err).toContain(`see vdspec ${command} --help`);
      }
    },
  );

  it('a short flag only alone, -- and arguments no command takes are unknown arguments', () => {
    for (const argv of [['-hx'], ['-h=x'], ['--'], ['-3'], ['--h'], ['--constructor']]) {
      expect(parse(KL_FLAGS, argv), argv.join(' ')).toThrow(
        `unknown argument "${argv[0]}" (see vdspec kl --help)`,
      );
    }
    expect(parse(KL_FLAGS, ['stray'])).toThrow('unknown argument "stray"');
    expect(parseFlags(['-h', '--help'], KL_FLAGS).values).toEqual({ help: true });
    // A value flag takes the next argument whatever it looks like.
    expect(parseFlags(['--op', '--list'], EVAL_FLAGS).values).toEqual({ op: '--list' });
    expect(parseFlags(['a=1', '--out', 'x', 'b=2'], COMPARE_FLAGS)).toEqual({
      values: { out: 'x' },
      positionals: ['a=1', 'b=2'],
    });
  });
});
