/**
 * The plots of `vdspec train` (spec/train.md#plots): Vega-Lite specs with
 * their data inline, rendered to SVG by Vega itself in Node (the headless
 * 'none' renderer: no canvas, no browser).
 *
 * - `curves`: accuracy per epoch (test and train) of every run, and the
 *   overall compression per epoch on a log scale;
 * - `log-alpha`: a histogram of log_alpha per layer, binned here so the
 *   inline data stays small, with the pruning threshold as a rule;
 * - `kl`: the exact KL per weight against the approximations of Molchanov
 *   2017 and Kingma 2015 (it depends on no run).
 */
import { renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { parse as parseVega, View } from 'vega';
import {
  compile as compileVegaLite,
  version as vegaLiteVersion,
  type TopLevelSpec,
} from 'vega-lite';
import type { NonNormalizedSpec } from 'vega-lite/types_unstable/spec/index.js';

import {
  SVD_LOG_ALPHA_MAX,
  SVD_LOG_ALPHA_MIN,
  SVD_PRUNE_THRESHOLD,
  VD_LOG_ALPHA_MAX,
} from '../constants.js';
import { VdspecError } from '../errors.js';
import { makeDirectories, temporaryBeside, writeFlushed } from '../files.js';
import { klErrorTable, klExact, klSvdSigmoid, klVdCubic } from '../reference/kl.js';

export interface PlotEpoch {
  /** 1-based count of completed epochs. */
  readonly epoch: number;
  /** In [0, 1]. */
  readonly trainAccuracy: number;
  /** Eval forward (the pruned network for Sparse VD), in [0, 1]. */
  readonly testAccuracy: number;
  /** Overall |W| / |W != 0|: 1 for a dense net, Infinity when nothing is kept (not drawn). */
  readonly compression: number;
}

/** One training run, e.g. 'Sparse VD' or 'dense baseline'. */
export interface PlotRun {
  readonly label: string;
  readonly epochs: readonly PlotEpoch[];
}

/** One layer's log_alpha, in any order (only its histogram is drawn). */
export interface LogAlphaLayer {
  readonly name: string;
  readonly values: ArrayLike<number>;
}

export interface TrainingPlotsInput {
  readonly title: string;
  readonly runs: readonly PlotRun[];
  /** One entry per layer; empty for a network without log_alpha (then no histogram is drawn). */
  readonly logAlpha: readonly LogAlphaLayer[];
  /** The pruning threshold on log_alpha, drawn as a rule on the histograms. */
  readonly threshold: number;
  /** The histograms' x range; values outside it are counted in the end bins. */
  readonly logAlphaRange: readonly [number, number];
}

/** One plot: its file stem, its Vega-Lite spec. */
export interface PlotSpec {
  readonly name: string;
  readonly spec: TopLevelSpec;
}

/** Bins per log_alpha histogram: 0.25 wide on [-8, 8], a few kB of inline data per layer. */
export const LOG_ALPHA_BINS = 64;

/** Grid step of the KL figure: 321 points on [-8, 8], smooth at the figure's size. */
export const KL_FIGURE_STEP = 0.05;

const SCHEMA = `https://vega.github.io/schema/vega-lite/v${vegaLiteVersion.split('.')[0]}.json`;

/*
 * Sizes in px. Without a canvas Vega estimates a text's width as 0.8 em per
 * character, more than most fonts draw: a rotated axis title longer (so
 * estimated) than its panel's height pushes the panels apart, and a long
 * legend label is cut at its limit. Axis titles and legend labels are kept
 * short for that reason.
 */
const PANEL_WIDTH = 520;
const PANEL_HEIGHT = 220;
const HISTOGRAM_WIDTH = 300;
const HISTOGRAM_HEIGHT = 180;

/** Panel titles are 13 px by default; the figure title above them should stand out. */
const CONFIG = {
  title: { fontSize: 15, subtitleFontSize: 11, subtitleColor: '#444', anchor: 'start' as const },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 360 },
};

// ---------------------------------------------------------------- input checks

function invalid(argument: string, message: string): VdspecError {
  return new VdspecError('invalid_argument', message, argument);
}

function checkFiniteNumber(value: unknown, argument: string): number {
  if (typeof value !== 'number') throw invalid(argument, `expected a number, got ${typeof value}`);
  if (!Number.isFinite(value)) {
    throw new VdspecError('non_finite', `expected a finite number, got ${value}`, argument);
  }
  return value;
}

function checkLabel(value: unknown, argument: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw invalid(argument, 'expected a non-empty string');
  }
  return value;
}

function checkEpoch(value: unknown, argument: string, previous: number): PlotEpoch {
  if (typeof value !== 'object' || value === null) {
    throw invalid(argument, 'expected an epoch object');
  }
  const e = value as Record<string, unknown>;
  const epoch = checkFiniteNumber(e['epoch'], `${argument}.epoch`);
  if (!Number.isInteger(epoch) || epoch < 1) {
    throw invalid(`${argument}.epoch`, `expected an integer >= 1, got ${epoch}`);
  }
  if (epoch <= previous) {
    throw invalid(`${argument}.epoch`, `epochs must increase, got ${epoch} after ${previous}`);
  }
  const accuracy = (key: 'trainAccuracy' | 'testAccuracy'): number => {
    const v = checkFiniteNumber(e[key], `${argument}.${key}`);
    if (v < 0 || v > 1) throw invalid(`${argument}.${key}`, `expected a value in [0, 1], got ${v}`);
    return v;
  };
  const trainAccuracy = accuracy('trainAccuracy');
  const testAccuracy = accuracy('testAccuracy');
  const compression = e['compression'];
  if (typeof compression !== 'number') {
    throw invalid(`${argument}.compression`, `expected a number, got ${typeof compression}`);
  }
  // +Infinity is meaningful (nothing kept); NaN and -Infinity are not.
  if (Number.isNaN(compression) || compression === -Infinity) {
    throw new VdspecError(
      'non_finite',
      `expected a number >= 1 or Infinity, got ${compression}`,
      `${argument}.compression`,
    );
  }
  if (compression < 1) {
    throw invalid(`${argument}.compression`, `|W| / |W != 0| is at least 1, got ${compression}`);
  }
  return { epoch, trainAccuracy, testAccuracy, compression };
}

function checkRuns(value: unknown): PlotRun[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid('runs', 'expected at least one run');
  }
  const labels = new Set<string>();
  return value.map((run: unknown, i): PlotRun => {
    const where = `runs[${i}]`;
    if (typeof run !== 'object' || run === null) throw invalid(where, 'expected a run object');
    const r = run as Record<string, unknown>;
    const label = checkLabel(r['label'], `${where}.label`);
    if (labels.has(label)) throw invalid(`${where}.label`, `two runs are labelled '${label}'`);
    labels.add(label);
    const epochs = r['epochs'];
    if (!Array.isArray(epochs) || epochs.length === 0) {
      throw invalid(`${where}.epochs`, `run '${label}' has no completed epoch to plot`);
    }
    let previous = 0;
    return {
      label,
      epochs: epochs.map((e: unknown, j) => {
        const checked = checkEpoch(e, `${where}.epochs[${j}]`, previous);
        previous = checked.epoch;
        return checked;
      }),
    };
  });
}

function checkRange(value: unknown): [number, number] {
  if (!Array.isArray(value) || value.length !== 2) {
    throw invalid('logAlphaRange', 'expected [from, to]');
  }
  const from = checkFiniteNumber(value[0], 'logAlphaRange');
  const to = checkFiniteNumber(value[1], 'logAlphaRange');
  if (!(from < to)) throw invalid('logAlphaRange', `expected from < to, got [${from}, ${to}]`);
  return [from, to];
}

function checkLayers(value: unknown): LogAlphaLayer[] {
  if (!Array.isArray(value)) throw invalid('logAlpha', 'expected an array of layers');
  const names = new Set<string>();
  return value.map((layer: unknown, i): LogAlphaLayer => {
    const where = `logAlpha[${i}]`;
    if (typeof layer !== 'object' || layer === null) {
      throw invalid(where, 'expected a layer object');
    }
    const l = layer as Record<string, unknown>;
    const name = checkLabel(l['name'], `${where}.name`);
    if (names.has(name)) throw invalid(`${where}.name`, `two layers are named '${name}'`);
    names.add(name);
    const values = l['values'] as ArrayLike<unknown> | null | undefined;
    if (typeof values !== 'object' || values === null || !Number.isInteger(values.length)) {
      throw invalid(`${where}.values`, 'expected an array of numbers');
    }
    if (values.length === 0) throw invalid(`${where}.values`, `layer '${name}' has no log_alpha`);
    return { name, values: values as ArrayLike<number> };
  });
}

/** The input, checked: every problem is a VdspecError naming the argument. */
function checkInput(input: unknown): TrainingPlotsInput {
  if (typeof input !== 'object' || input === null) throw invalid('input', 'expected an object');
  const i = input as Record<string, unknown>;
  const title = checkLabel(i['title'], 'title');
  const runs = checkRuns(i['runs']);
  const logAlpha = checkLayers(i['logAlpha']);
  const logAlphaRange = checkRange(i['logAlphaRange']);
  const threshold = checkFiniteNumber(i['threshold'], 'threshold');
  if (threshold < logAlphaRange[0] || threshold > logAlphaRange[1]) {
    throw invalid(
      'threshold',
      `${threshold} lies outside logAlphaRange [${logAlphaRange.join(', ')}]`,
    );
  }
  return { title, runs, logAlpha, threshold, logAlphaRange };
}

// ---------------------------------------------------------------- histogram

export interface LogAlphaHistogram {
  /** LOG_ALPHA_BINS + 1 edges from range[0] to range[1]. */
  readonly edges: readonly number[];
  readonly counts: readonly number[];
  /** Values > threshold. */
  readonly above: number;
  readonly total: number;
}

/**
 * Counts per bin, the last bin closed on the right; values below the range
 * (-Infinity included) count in the first bin, above it in the last, as the
 * clip to the range would put them. NaN is rejected: it has no bin.
 */
export function logAlphaHistogram(
  values: ArrayLike<number>,
  range: readonly [number, number],
  threshold: number,
  bins = LOG_ALPHA_BINS,
  argument = 'values',
): LogAlphaHistogram {
  const [from, to] = checkRange(range);
  checkFiniteNumber(threshold, 'threshold');
  if (!Number.isInteger(bins) || bins < 1) {
    throw invalid('bins', `expected an integer >= 1, got ${bins}`);
  }
  const width = (to - from) / bins;
  const counts = new Array<number>(bins).fill(0);
  // Edges from the index, not by accumulation, so the last is exactly `to`.
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? to : from + i * width));
  let above = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (typeof v !== 'number') {
      throw invalid(argument, `element ${i} is a ${typeof v}, not a number`);
    }
    if (Number.isNaN(v)) {
      throw new VdspecError('non_finite', `element ${i} is NaN: log_alpha has no bin`, argument);
    }
    let bin = Math.min(bins - 1, Math.max(0, Math.floor((v - from) / width)));
    // The division rounds: a value within an ulp of an edge may land one bin off the edges drawn.
    if (bin > 0 && v < edges[bin]!) bin -= 1;
    else if (bin < bins - 1 && v >= edges[bin + 1]!) bin += 1;
    counts[bin]! += 1;
    if (v > threshold) above += 1;
  }
  return { edges, counts, above, total: values.length };
}

// ---------------------------------------------------------------- specs

const formatCount = (n: number): string => n.toLocaleString('en-US');

function percent(fraction: number): string {
  const p = 100 * fraction;
  return `${p >= 10 || p === 0 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

/** Powers of ten from 1 up to the first at or above `max`: a log axis whose ends are round. */
function decadesUpTo(max: number): number[] {
  const out = [1];
  while (out[out.length - 1]! < max) out.push(out[out.length - 1]! * 10);
  return out;
}

/** Test and train accuracy of every run, and its compression on a log scale. */
export function curvesSpec(input: TrainingPlotsInput): TopLevelSpec {
  const { title, runs } = checkInput(input);
  const accuracy = runs.flatMap((run) =>
    run.epochs.flatMap((e) => [
      { run: run.label, epoch: e.epoch, split: 'test (eval forward)', accuracy: e.testAccuracy },
      { run: run.label, epoch: e.epoch, split: 'train', accuracy: e.trainAccuracy },
    ]),
  );
  const compression = runs.flatMap((run) =>
    run.epochs
      .filter((e) => Number.isFinite(e.compression))
      .map((e) => ({ run: run.label, epoch: e.epoch, compression: e.compression })),
  );
  const nothingKept = runs.flatMap((run) =>
    run.epochs
      .filter((e) => !Number.isFinite(e.compression))
      .map((e) => `${run.label} epoch ${e.epoch}`),
  );
  const lastEpoch = Math.max(...runs.map((r) => r.epochs[r.epochs.length - 1]!.epoch));
  const firstEpoch = Math.min(...runs.map((r) => r.epochs[0]!.epoch));
  const highest = Math.max(1, ...compression.map((c) => c.compression));
  const epochAxis = {
    field: 'epoch',
    type: 'quantitative' as const,
    title: 'epoch',
    // One epoch is a point: give the axis some width around it.
    scale: {
      domain: [firstEpoch === lastEpoch ? firstEpoch - 1 : firstEpoch, lastEpoch],
      nice: false,
    },
    axis: { tickMinStep: 1, format: 'd' },
  };
  const color = {
    field: 'run',
    type: 'nominal' as const,
    title: 'run',
    sort: runs.map((r) => r.label),
  };
  const subtitle = [
    'top: accuracy per completed epoch (test: the eval forward, pruned for Sparse VD)',
    'bottom: overall compression |W| / |W ≠ 0| on a log scale (1 = dense)',
  ];
  if (nothingKept.length > 0) {
    const listed = nothingKept.slice(0, 4).join(', ') + (nothingKept.length > 4 ? ', ...' : '');
    subtitle.push(`compression not drawn where no weight is kept (infinite): ${listed}`);
  }
  return {
    $schema: SCHEMA,
    title: { text: title, subtitle },
    config: CONFIG,
    vconcat: [
      {
        width: PANEL_WIDTH,
        height: PANEL_HEIGHT,
        data: { values: accuracy },
        encoding: {
          x: epochAxis,
          y: {
            field: 'accuracy',
            type: 'quantitative',
            title: 'accuracy',
            scale: { zero: false },
            axis: { format: '.1%' },
          },
          color,
        },
        // Lines and points as two layers: with point: true the dash legend would show circles.
        layer: [
          {
            mark: { type: 'line' },
            encoding: {
              strokeDash: {
                field: 'split',
                type: 'nominal',
                title: 'accuracy on',
                sort: ['test (eval forward)', 'train'],
                legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
              },
            },
          },
          {
            mark: { type: 'point', filled: true, size: 25 },
            encoding: {
              tooltip: [
                { field: 'run' },
                { field: 'split' },
                { field: 'epoch', type: 'quantitative' },
                { field: 'accuracy', type: 'quantitative', format: '.2%' },
              ],
            },
          },
        ],
      },
      {
        width: PANEL_WIDTH,
        height: PANEL_HEIGHT,
        data: { values: compression },
        mark: { type: 'line', point: true },
        encoding: {
          x: epochAxis,
          y: {
            field: 'compression',
            type: 'quantitative',
            title: 'compression (log scale)',
            // An explicit domain: a dense run alone (all 1) would leave a log scale no extent.
            scale: { type: 'log', domain: [1, decadesUpTo(Math.max(highest, 10)).at(-1)!] },
            axis: { values: decadesUpTo(Math.max(highest, 10)), format: '~s' },
          },
          color,
          tooltip: [
            { field: 'run' },
            { field: 'epoch', type: 'quantitative' },
            { field: 'compression', type: 'quantitative', format: '.1f' },
          ],
        },
      },
    ],
  };
}

/** A run's per-epoch means of the objective's two terms (results.json), for the lower bound. */
export interface BoundRun {
  readonly label: string;
  /** N, the training images. */
  readonly trainSize: number;
  readonly epochs: readonly { epoch: number; dataTerm: number; kl: number }[];
}

/**
 * The variational lower bound per training example, -(data term + KL) / N
 * (the epoch's means over its steps; the whole KL, whatever its weight in
 * the warm-up), per epoch and run.
 */
export function lowerBoundSpec(title: string, runs: readonly BoundRun[]): TopLevelSpec {
  const values = runs.flatMap((run) =>
    run.epochs.map((e) => ({
      run: run.label,
      epoch: e.epoch,
      bound: -(e.dataTerm + e.kl) / run.trainSize,
    })),
  );
  return {
    $schema: SCHEMA,
    title: {
      text: title,
      subtitle: [
        'variational lower bound per training example: -(N mean CE + KL) / N, means over each epoch',
        'the whole KL at every epoch, also during the warm-up that weights it less in the loss',
      ],
    },
    config: CONFIG,
    width: PANEL_WIDTH,
    height: PANEL_HEIGHT,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'epoch',
        type: 'quantitative',
        title: 'epoch',
        axis: { tickMinStep: 1, format: 'd' },
      },
      y: {
        field: 'bound',
        type: 'quantitative',
        title: 'lower bound per example (nats)',
        scale: { zero: false },
      },
      color: { field: 'run', type: 'nominal', title: 'run', sort: runs.map((r) => r.label) },
      tooltip: [
        { field: 'run' },
        { field: 'epoch', type: 'quantitative' },
        { field: 'bound', type: 'quantitative', format: '.4f' },
      ],
    },
  };
}

/** One log_alpha histogram per layer, the threshold drawn as a rule; null for no layers. */
export function logAlphaSpec(input: TrainingPlotsInput): TopLevelSpec | null {
  const { title, logAlpha, threshold, logAlphaRange } = checkInput(input);
  if (logAlpha.length === 0) return null;
  const panels = logAlpha.map((layer, i): NonNormalizedSpec => {
    const h = logAlphaHistogram(
      layer.values,
      logAlphaRange,
      threshold,
      LOG_ALPHA_BINS,
      `logAlpha[${i}].values`,
    );
    const bars = h.counts.map((count, b) => ({ from: h.edges[b]!, to: h.edges[b + 1]!, count }));
    const top = Math.max(...h.counts);
    return {
      title: {
        text: layer.name,
        subtitle: `${formatCount(h.total)} weight${h.total === 1 ? '' : 's'}, ${percent(h.above / h.total)} with log α > ${threshold}`,
      },
      width: HISTOGRAM_WIDTH,
      height: HISTOGRAM_HEIGHT,
      layer: [
        {
          data: { values: bars },
          mark: { type: 'bar', color: '#4c78a8', binSpacing: 0 },
          encoding: {
            x: {
              field: 'from',
              type: 'quantitative',
              bin: { binned: true, step: h.edges[1]! - h.edges[0]! },
              title: 'log α',
              scale: { domain: [...logAlphaRange], nice: false },
              axis: { format: '~g' },
            },
            x2: { field: 'to' },
            y: {
              field: 'count',
              type: 'quantitative',
              title: 'weights (symlog)',
              // The counts span 1 to ~1e5 with empty bins between the modes: symlog shows both ends and 0.
              scale: { type: 'symlog', domain: [0, decadesUpTo(top).at(-1)!] },
              // A '~s' format would share one SI prefix across ticks (0M, 0M, 1M): format each label alone.
              axis: { values: [0, ...decadesUpTo(top)], labelExpr: "format(datum.value, '~s')" },
            },
            tooltip: [
              { field: 'from', type: 'quantitative', title: 'from', format: '.2f' },
              { field: 'to', type: 'quantitative', title: 'to', format: '.2f' },
              { field: 'count', type: 'quantitative', title: 'weights' },
            ],
          },
        },
        {
          data: { values: [{ threshold, label: `threshold ${threshold}` }] },
          mark: { type: 'rule', color: '#d62728', strokeWidth: 1.5, strokeDash: [5, 3] },
          encoding: { x: { field: 'threshold', type: 'quantitative' } },
        },
        {
          data: { values: [{ threshold, label: `threshold ${threshold}` }] },
          mark: { type: 'text', color: '#d62728', align: 'left', dx: 4, y: 8, fontSize: 11 },
          encoding: { x: { field: 'threshold', type: 'quantitative' }, text: { field: 'label' } },
        },
      ],
    };
  });
  const [from, to] = logAlphaRange;
  return {
    $schema: SCHEMA,
    title: {
      text: title,
      subtitle: [
        `log α per layer after training: ${LOG_ALPHA_BINS} bins on [${from}, ${to}], values outside counted in the end bins`,
        `dashed rule: the pruning threshold log α = ${threshold}`,
      ],
    },
    config: CONFIG,
    columns: logAlpha.length <= 3 ? logAlpha.length : 2,
    concat: panels,
  };
}

/**
 * The KL per weight (KL itself, in nats, not the papers' -KL) over log_alpha
 * in [-8, 8]: the exact KL, the Molchanov 2017 sigmoid (C = -k1) and the
 * Kingma 2015 cubic on its fitted range alpha <= 1, shifted by the constant
 * its formula drops (the midrange offset of spec/kl.md's measured error), and
 * below them each approximation minus the exact KL.
 */
export function klFigureSpec(): TopLevelSpec {
  const table = klErrorTable(KL_FIGURE_STEP);
  // cubicDeviation = cubic - exact - offset: drawing cubic - offset puts the cubic on the exact KL's constant.
  const shift = -table.vdCubic.offset;
  const shiftText = `${shift >= 0 ? '+' : '−'} ${Math.abs(shift).toFixed(3)}`;
  const exactName = 'exact (Poisson series)';
  const svdName = 'Molchanov 2017 sigmoid, C = −k1';
  const vdName = `Kingma 2015 cubic ${shiftText}, α ≤ 1`;
  const curves: { logAlpha: number; curve: string; kl: number }[] = [];
  const errors: { logAlpha: number; curve: string; error: number }[] = [];
  for (let i = 0; i < table.grid.points; i++) {
    // The same grid as the error table: from + i * step, rounded for the inline data.
    const la = Math.round((SVD_LOG_ALPHA_MIN + i * KL_FIGURE_STEP) * 1e6) / 1e6;
    if (la > SVD_LOG_ALPHA_MAX) break;
    const exact = klExact(la);
    const svd = klSvdSigmoid(la, 'minus_k1');
    curves.push({ logAlpha: la, curve: exactName, kl: exact });
    curves.push({ logAlpha: la, curve: svdName, kl: svd });
    errors.push({ logAlpha: la, curve: svdName, error: svd - exact });
    if (la <= VD_LOG_ALPHA_MAX) {
      const vd = klVdCubic(la) + shift;
      curves.push({ logAlpha: la, curve: vdName, kl: vd });
      errors.push({ logAlpha: la, curve: vdName, error: vd - exact });
    }
  }
  const color = {
    field: 'curve',
    type: 'nominal' as const,
    title: null,
    sort: [exactName, svdName, vdName],
    scale: { domain: [exactName, svdName, vdName], range: ['#222222', '#d62728', '#1f77b4'] },
    legend: { orient: 'top-right' as const },
  };
  const x = {
    field: 'logAlpha',
    type: 'quantitative' as const,
    title: 'log α',
    scale: { domain: [SVD_LOG_ALPHA_MIN, SVD_LOG_ALPHA_MAX], nice: false },
  };
  return {
    $schema: SCHEMA,
    title: {
      text: 'KL(q ‖ p) per weight, in nats (KL itself, not the papers’ −KL)',
      subtitle: [
        'exact KL normalised to 0 as α → ∞; the cubic drops its constant, so it is drawn shifted by the',
        `midrange of exact − cubic on log α ≤ 0 (${shiftText}), and only there (it is fitted for α ≤ 1)`,
        `max |sigmoid − exact| = ${table.svd.maxAbsError.toFixed(4)} at log α = ${table.svd.atLogAlpha.toFixed(2)}; ` +
          `max |shifted cubic − exact| = ${table.vdCubic.maxDeviation.toFixed(4)} at log α = ${table.vdCubic.atLogAlpha.toFixed(2)}`,
        `dotted rule: the pruning threshold log α = ${SVD_PRUNE_THRESHOLD}`,
      ],
    },
    config: CONFIG,
    vconcat: [
      {
        width: PANEL_WIDTH,
        height: 260,
        layer: [
          {
            data: { values: curves },
            mark: { type: 'line', strokeWidth: 2 },
            encoding: {
              x,
              y: { field: 'kl', type: 'quantitative', title: 'KL per weight (nats)' },
              color,
              strokeDash: {
                field: 'curve',
                type: 'nominal',
                // Same field and title as the colour: Vega-Lite merges the two into one legend.
                title: null,
                scale: {
                  domain: [exactName, svdName, vdName],
                  range: [
                    [1, 0],
                    [6, 3],
                    [2, 2],
                  ],
                },
              },
            },
          },
          {
            data: { values: [{ threshold: SVD_PRUNE_THRESHOLD }] },
            mark: { type: 'rule', color: '#888888', strokeDash: [2, 3] },
            encoding: { x: { field: 'threshold', type: 'quantitative' } },
          },
        ],
      },
      {
        width: PANEL_WIDTH,
        height: 180,
        data: { values: errors },
        layer: [
          {
            mark: { type: 'rule', color: '#888888' },
            encoding: { y: { datum: 0 } },
          },
          {
            mark: { type: 'line', strokeWidth: 2 },
            encoding: {
              x,
              y: { field: 'error', type: 'quantitative', title: 'approx − exact (nats)' },
              // The same scale as the panel above: one shared legend.
              color,
            },
          },
        ],
      },
    ],
  };
}

/** The plots for `input`, in file order; no log-alpha plot when there is no log_alpha. */
export function trainingPlotSpecs(input: TrainingPlotsInput): PlotSpec[] {
  const checked = checkInput(input);
  const histogram = logAlphaSpec(checked);
  return [
    { name: 'curves', spec: curvesSpec(checked) },
    ...(histogram === null ? [] : [{ name: 'log-alpha', spec: histogram }]),
    { name: 'kl', spec: klFigureSpec() },
  ];
}

// ---------------------------------------------------------------- rendering

/** Vega's logger interface (vega-util's LoggerInterface). */
interface VegaLogger {
  level(level?: number): number | VegaLogger;
  error(...args: unknown[]): VegaLogger;
  warn(...args: unknown[]): VegaLogger;
  info(...args: unknown[]): VegaLogger;
  debug(...args: unknown[]): VegaLogger;
}

/**
 * A Vega / Vega-Lite logger that keeps warnings and errors in `warnings` (for
 * the tests) or drops them, instead of printing them. Vega's dataflow calls
 * these methods with `this` set to the View, so none of them may use `this`.
 */
function collectingLogger(warnings: string[] | undefined): VegaLogger {
  /** Vega's level numbers: 2 is Warn (errors and warnings). */
  let current = 2;
  const keep = (args: unknown[]): VegaLogger => {
    warnings?.push(args.map(String).join(' '));
    return logger;
  };
  const logger: VegaLogger = {
    level: (level?: number) => {
      if (level === undefined) return current;
      current = level;
      return logger;
    },
    error: (...args: unknown[]) => keep(args),
    warn: (...args: unknown[]) => keep(args),
    info: () => logger,
    debug: () => logger,
  };
  return logger;
}

/**
 * Compile a Vega-Lite spec and render it to an SVG document with Vega's
 * headless renderer; warnings of either go to `warnings` when given and are
 * otherwise dropped (a plot must not spam a training log).
 */
export async function renderSvg(spec: TopLevelSpec, warnings?: string[]): Promise<string> {
  const logger = collectingLogger(warnings);
  const compiled = compileVegaLite(spec, { logger }).spec;
  const view = new View(parseVega(compiled), { renderer: 'none', logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

// ---------------------------------------------------------------- writing

/** Longest line compactJson puts an object or array on. */
const JSON_LINE = 120;

/**
 * JSON indented by 2 like JSON.stringify(value, null, 2), except that an
 * object or array whose one-line form fits in JSON_LINE stays on one line:
 * the inline data is then one row per line, not five.
 */
export function compactJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return 'null';
  if (typeof value !== 'object' || value === null || indent.length + flat.length <= JSON_LINE) {
    return flat;
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + compactJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  const lines = entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${compactJson(v, inner)}`);
  return `{\n${lines.join(',\n')}\n${indent}}`;
}

function rejectNonDirectory(outDir: string): void {
  let isDirectory: boolean | null = null;
  try {
    isDirectory = statSync(outDir).isDirectory();
  } catch {
    // Missing: created once the plots are rendered.
  }
  if (isDirectory === false) {
    throw new VdspecError('io_error', `${outDir} exists and is not a directory`, 'outDir');
  }
}

/** Create outDir if needed; reject it, or a target that is a directory, before writing anything. */
function prepareDirectory(outDir: string, targets: readonly string[]): void {
  rejectNonDirectory(outDir);
  try {
    makeDirectories(outDir);
  } catch (error) {
    throw new VdspecError(
      'io_error',
      `cannot create ${outDir}: ${(error as Error).message}`,
      'outDir',
    );
  }
  for (const target of targets) {
    let blocked = false;
    try {
      blocked = statSync(target).isDirectory();
    } catch {
      // Missing: written below.
    }
    if (blocked) {
      throw new VdspecError('io_error', `${target} is a directory, not a plot file`, 'outDir');
    }
  }
}

/**
 * Writes <name>.vl.json (the Vega-Lite spec, data inline) and <name>.svg for
 * each plot into outDir (created if missing); returns the written paths.
 * Everything is rendered before anything is written, every file goes to a
 * temporary name first and is renamed into place only once all are written,
 * so a failure leaves no partial file behind. `beforeEachRender` is awaited
 * before each plot's rendering (vdspec train's Ctrl-C stops there by throwing).
 */
export async function writeTrainingPlots(
  input: TrainingPlotsInput,
  outDir: string,
  beforeEachRender: () => Promise<void> = () => Promise.resolve(),
): Promise<string[]> {
  // writePlotFiles checks outDir before any rendering.
  return writePlotFiles(trainingPlotSpecs(input), outDir, beforeEachRender);
}

/**
 * Render `plots` and write each as <name>.vl.json and <name>.svg into outDir,
 * atomically as a set (see writeTrainingPlots); returns the written paths.
 */
export async function writePlotFiles(
  plots: readonly PlotSpec[],
  outDir: string,
  beforeEachRender: () => Promise<void> = () => Promise.resolve(),
): Promise<string[]> {
  if (typeof outDir !== 'string' || outDir.length === 0) {
    throw invalid('outDir', 'expected a directory path');
  }
  rejectNonDirectory(outDir);
  const files: { path: string; text: string }[] = [];
  for (const plot of plots) {
    // A stop here leaves nothing written: the files are written only once all are rendered.
    await beforeEachRender();
    let svg: string;
    try {
      svg = await renderSvg(plot.spec);
    } catch (error) {
      throw new VdspecError(
        'unsupported',
        `cannot render the ${plot.name} plot: ${(error as Error).message}`,
        'plot',
      );
    }
    files.push({
      path: join(outDir, `${plot.name}.vl.json`),
      text: `${compactJson(plot.spec)}\n`,
    });
    files.push({ path: join(outDir, `${plot.name}.svg`), text: `${svg}\n` });
  }

  prepareDirectory(
    outDir,
    files.map((f) => f.path),
  );
  const written: { temporary: string; path: string }[] = [];
  try {
    for (const file of files) {
      const temporary = temporaryBeside(file.path);
      written.push({ temporary, path: file.path });
      writeFlushed(temporary, file.text);
    }
    for (const file of written) renameSync(file.temporary, file.path);
  } catch (error) {
    for (const file of written) rmSync(file.temporary, { force: true });
    throw new VdspecError(
      'io_error',
      `cannot write the plots to ${outDir}: ${(error as Error).message}`,
      'outDir',
    );
  }
  return files.map((f) => f.path);
}
