#!/usr/bin/env node
/**
 * The `vdspec` command. Each subcommand is a function that takes its
 * arguments and two writers and returns an exit code, so tests can run it
 * in-process; this file only dispatches and turns any escaped error into a
 * one-line message (no stack trace unless VDSPEC_DEBUG is set).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isVdspecError } from '../errors.js';
import { packageVersion } from '../golden/generate.js';

type Writer = (s: string) => void;
type Command = (argv: string[], out: Writer, err: Writer) => number | Promise<number>;

/**
 * Each command's module is imported when the command runs: `vdspec kl` or
 * `vdspec eval --impl reference` then never load TensorFlow.js, which
 * `vdspec train` needs (start-up, issue 11).
 */
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  check: {
    load: async () => (await import('./check.js')).runCheckCommand,
    summary: 'check a port against the golden files (spec/check.md)',
  },
  compare: {
    load: async () => (await import('./compare.js')).runCompareCommand,
    summary: "several runs' accuracy and compression curves in one figure",
  },
  fuzz: {
    load: async () => (await import('./fuzz.js')).runFuzzCommand,
    summary: 'fuzz a port with fast-check cases, shrinking failures (spec/fuzz.md)',
  },
  golden: {
    load: async () => (await import('./golden.js')).runGoldenCommand,
    summary: 'write golden files (reference outputs) and their manifest',
  },
  kl: {
    load: async () => (await import('./kl.js')).runKlCommand,
    summary: 'KL per weight over a grid of log_alpha: exact, SVD and VD approximations',
  },
  eval: {
    load: async () => (await import('./eval.js')).runEvalCommand,
    summary: 'run one operation (reference or fast) on JSON inputs from stdin',
  },
  pictures: {
    load: async () => (await import('./pictures.js')).runPicturesCommand,
    summary: "draw a finished run's first layer: kept input pixels or pruned filter taps",
  },
  train: {
    load: async () => (await import('./train.js')).runTrainCommand,
    summary: 'train LeNet-300-100 or LeNet-5 with Sparse VD on real MNIST digits (spec/train.md)',
  },
};

function usage(): string {
  const lines = [
    'usage: vdspec <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
    '',
    'vdspec <command> --help shows the options of a command.',
  ];
  return lines.join('\n');
}

export async function main(argv: string[], out: Writer, err: Writer): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // No command is a mistake (exit 2), so the usage goes where mistakes go; --help asks for it.
    err(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return 0;
  }
  if (name === '--version') {
    out(packageVersion());
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    err(`vdspec: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await (
      await command.load()
    )(rest, out, err);
  } catch (e) {
    if (isVdspecError(e)) {
      err(`vdspec ${name}: ${e.message}`);
      return 2;
    }
    if (process.env['VDSPEC_DEBUG']) throw e;
    err(`vdspec ${name}: internal error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

// Run only as the program itself (also through npm's bin symlink), not when imported.
function isMainModule(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
const invokedDirectly = isMainModule();
if (invokedDirectly) {
  // A reader that stops early (`vdspec kl | head`) closes the pipe: that is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  process.exitCode = await main(
    process.argv.slice(2),
    (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  );
}
