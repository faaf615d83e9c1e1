/**
 * `vdspec pictures RUN_DIR`: draw what a finished Sparse VD run kept
 * (spec/train.md#pictures) from its model.sparse.json, into RUN_DIR/plots.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { writeSparsityPictures } from '../train/pictures.js';
import { NETWORKS } from '../train/recipe.js';
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

export const PICTURES_FLAGS = {
  command: 'pictures',
  flags: { help: HELP_FLAG },
  positionals: true,
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec pictures RUN_DIR

Draw the first layer of the sparse network a finished run exported
(RUN_DIR/model.sparse.json, spec/export.md) into RUN_DIR/plots:
pixels.svg for a dense first layer on the 28 x 28 image (LeNet-300-100: which
input pixels keep any weight), filters.svg for a one-channel conv first layer
(LeNet-5: its filters, pruned taps marked), each with its Vega-Lite spec.
vdspec train draws them itself at the end of a run.

Options:
${optionList(PICTURES_FLAGS.flags)}

Exit codes: 0 written, 2 a bad call or a missing or malformed model.`;

/** The run's own title from its record, when there is one. */
function titleOf(dir: string): string {
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) return dir;
  const c = readRecordFile(path).config;
  return `${NETWORKS[c.network].title}, Sparse VD (${c.profile})`;
}

async function run(argv: readonly string[], out: Writer): Promise<number> {
  const { values, positionals } = parseFlags(argv, PICTURES_FLAGS);
  if (values.help) {
    out(HELP);
    return 0;
  }
  const [dir] = positionals;
  if (dir === undefined || positionals.length > 1) {
    throw new UsageError('expected one run directory: vdspec pictures RUN_DIR');
  }
  for (const path of await writeSparsityPictures(dir, titleOf(dir))) out(`wrote ${path}`);
  return 0;
}

export function runPicturesCommand(argv: string[], out: Writer, err: Writer): Promise<number> {
  return runCommand('pictures', err, () => run(argv, out), {
    usageHint: 'see vdspec pictures --help',
  });
}
