/**
 * `vdspec compare`: several finished runs' accuracy and compression curves in
 * one figure (spec/train.md#comparing-runs), e.g. the dense network and
 * Sparse VD trained on random labels.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { SVD_LOG_ALPHA_MAX, SVD_LOG_ALPHA_MIN, SVD_PRUNE_THRESHOLD } from '../constants.js';
import {
  curvesSpec,
  lowerBoundSpec,
  writePlotFiles,
  type BoundRun,
  type PlotRun,
} from '../train/plots.js';
import { readRecordFile, RESULTS_FILE } from '../train/trainer.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  runCommand,
  UsageError,
  type FlagSpec,
  type Writer,
} from './common.js';

export const COMPARE_FLAGS = {
  command: 'compare',
  flags: {
    out: { value: 'DIR', needs: 'a directory', help: 'the output directory (required)' },
    name: { value: 'NAME', help: 'the file name (required): letters, digits, _, . and -' },
    title: { value: 'TITLE', help: "the figure's title (required)" },
    'lower-bound': { help: 'also draw the lower bound' },
    help: HELP_FLAG,
  },
  positionals: true,
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec compare --out DIR --name NAME --title TITLE [--lower-bound] RUN_DIR=LABEL...

Draw the train and test accuracy and the compression per epoch of several
runs (each RUN_DIR holds a vdspec train results.json) in one figure:
DIR/NAME.svg and its Vega-Lite spec DIR/NAME.vl.json. With --lower-bound,
also the variational lower bound per training example per epoch,
-(data term + KL) / N: DIR/NAME-lower-bound.svg and .vl.json.

Options:
${optionList(COMPARE_FLAGS.flags)}

Exit codes: 0 written, 2 a bad call or a missing or malformed record.`;

function readRun(argument: string): PlotRun & BoundRun {
  const cut = argument.lastIndexOf('=');
  if (cut <= 0 || cut === argument.length - 1) {
    throw new UsageError(`expected RUN_DIR=LABEL, got "${argument}"`);
  }
  const dir = argument.slice(0, cut);
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) throw new UsageError(`${dir} holds no ${RESULTS_FILE}`);
  const record = readRecordFile(path);
  if (record.epochs.length === 0) throw new UsageError(`${path} has no finished epoch`);
  // results.json writes an infinite compression (nothing kept) as the string "Infinity".
  const epochs = record.epochs.map((e) => ({
    ...e,
    compression: (e.compression as unknown) === 'Infinity' ? Infinity : e.compression,
  }));
  return { label: argument.slice(cut + 1), epochs, trainSize: record.trainSize };
}

async function run(argv: readonly string[], out: Writer): Promise<number> {
  const { values: options, positionals } = parseFlags(argv, COMPARE_FLAGS);
  if (options.help) {
    out(HELP);
    return 0;
  }
  const runs = positionals.map(readRun);
  const { out: dir, name, title } = options;
  if (dir === undefined) throw new UsageError('--out is required');
  if (name === undefined) throw new UsageError('--name is required');
  if (title === undefined) throw new UsageError('--title is required');
  if (runs.length === 0) throw new UsageError('give at least one RUN_DIR=LABEL');
  if (!/^[\w.-]+$/.test(name)) {
    throw new UsageError('--name is a file name: letters, digits, _, . and -');
  }
  const written = await writePlotFiles(
    [
      {
        name: name,
        // The curves only: no log_alpha histogram is drawn here.
        spec: curvesSpec({
          title: title,
          runs,
          logAlpha: [],
          threshold: SVD_PRUNE_THRESHOLD,
          logAlphaRange: [SVD_LOG_ALPHA_MIN, SVD_LOG_ALPHA_MAX],
        }),
      },
      ...(options['lower-bound']
        ? [
            {
              name: `${name}-lower-bound`,
              spec: lowerBoundSpec(title, runs),
            },
          ]
        : []),
    ],
    dir,
  );
  for (const path of written) out(`wrote ${path}`);
  return 0;
}

export function runCompareCommand(argv: string[], out: Writer, err: Writer): Promise<number> {
  return runCommand('compare', err, () => run(argv, out), {
    usageHint: 'see vdspec compare --help',
  });
}
