/**
 * The README's "Results" table, generated from the committed run records
 * (results/<run>/results.json) so that it cannot say anything the runs did
 * not produce (test/properties/train.test.ts checks the README against it).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

import { NETWORKS } from './recipe.js';
import { readRecordFile, RESULTS_FILE, trainedModelName, type TrainRecord } from './trainer.js';

export interface NamedRecord {
  /** The run's directory name, also its --out in the command shown. */
  readonly name: string;
  readonly record: TrainRecord;
}

/** Every complete run record in the subdirectories of `dir`, by name. */
export function readResults(dir: string): NamedRecord[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .filter((name) => existsSync(join(dir, name, RESULTS_FILE)))
    .sort()
    .map((name) => {
      const path = join(dir, name, RESULTS_FILE);
      return { name, record: readRecordFile(path) };
    });
}

/** The command that repeats a run, with --out and --init-from under runs/. */
export function reproduceCommand(run: NamedRecord): string {
  const c = run.record.config;
  const flags = [`vdspec train ${c.network}`];
  if (c.data !== 'mnist') flags.push(`--data ${c.data}`);
  if (c.baseline) flags.push('--baseline');
  if (c.profile !== 'molchanov2017') flags.push(`--profile ${c.profile}`);
  if (c.trainClip !== null) flags.push(c.trainClip ? '--train-clip' : '--no-train-clip');
  if (c.reparameterization === 'multiplicative') flags.push('--multiplicative');
  if (c.vdLogAlpha !== null) flags.push(`--vd-log-alpha ${c.vdLogAlpha}`);
  if (c.randomLabels !== null) flags.push(`--random-labels ${c.randomLabels}`);
  flags.push(`--epochs ${c.epochs}`);
  if (c.seed !== 1) flags.push(`--seed ${c.seed}`);
  if (c.initFrom !== null) flags.push(`--init-from runs/${basename(c.initFrom)}`);
  if (c.trainLimit !== null) flags.push(`--train-limit ${c.trainLimit}`);
  if (c.testLimit !== null) flags.push(`--test-limit ${c.testLimit}`);
  // The default is every core: the thread count is part of what repeats a run bit for bit.
  flags.push(`--threads ${c.threads}`);
  flags.push(`--out runs/${run.name}`);
  return flags.join(' ');
}

const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;

/**
 * One row per complete run: error, its gap to the baseline of the same network
 * and epochs (blank when there is none), compression, kept per layer, time.
 */
export function resultsTableMarkdown(runs: readonly NamedRecord[]): string {
  const complete = runs.filter((r) => r.record.complete && r.record.final !== null);
  // A run is compared with the baseline of its network trained for as many epochs.
  const baselineError = new Map<string, number>();
  const key = (c: TrainRecord['config']) =>
    `${c.network}/${c.data}/${c.epochs}/${c.randomLabels ?? 'true labels'}`;
  for (const r of complete) {
    if (r.record.config.baseline)
      baselineError.set(key(r.record.config), r.record.final!.testError);
  }
  const rows = complete.map((r) => {
    const c = r.record.config;
    const f = r.record.final!;
    const name = trainedModelName(c);
    const algorithm =
      name === 'VD'
        ? `VD (${c.vdLogAlpha === 'input' ? 'alpha per input unit' : c.vdLogAlpha === 'scalar' ? 'alpha per layer' : 'alpha per weight'})`
        : name;
    const kind =
      (c.baseline
        ? 'dense baseline'
        : c.initFrom !== null
          ? `${algorithm} from the baseline`
          : `${algorithm} from scratch`) +
      (c.reparameterization === 'multiplicative' ? ', log_alpha trained (multiplicative)' : '') +
      (c.trainClip === true ? ', mask in training' : '') +
      (c.randomLabels !== null ? ', random labels' : '');
    const base = baselineError.get(key(c));
    const gap =
      c.baseline || base === undefined
        ? ''
        : `${100 * (f.testError - base) >= 0 ? '+' : ''}${(100 * (f.testError - base)).toFixed(2)}`;
    const kept = c.baseline
      ? '100 (all)'
      : f.layers.map((l) => l.keptPercent.toFixed(2)).join(' / ');
    const compression = Number.isFinite(f.overall.compression)
      ? `${f.overall.compression.toFixed(1)}x`
      : 'all pruned';
    const images = `${r.record.trainSize.toLocaleString('en-US')} / ${r.record.testSize.toLocaleString('en-US')}`;
    const trainAccuracy = `${(100 * r.record.epochs.at(-1)!.trainAccuracy).toFixed(1)}%`;
    return `| ${NETWORKS[c.network].title} | ${images} | ${kind} | ${c.epochs} | ${trainAccuracy} | ${(100 * f.testError).toFixed(2)}% | ${gap} | ${compression} | ${kept} | ${minutes(r.record.wallSeconds)} | \`${reproduceCommand(r)}\` |`;
  });
  return [
    '| network | train / test images | run | epochs | train accuracy, last epoch | test error | vs baseline, same data and epochs (points) | compression | kept per layer (%) | wall time | command |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |',
    ...rows,
  ].join('\n');
}
