/**
 * What `vdspec train` shows while it runs: a live line (epoch, bar, ETA,
 * loss, accuracy, sparsity) redrawn in place on a terminal, and one line per
 * finished epoch.
 */
import type { EpochMetrics, TrainProgress, TrainRecord } from './trainer.js';

/** Redraws at most this often. */
const REDRAW_MS = 250;
const BAR_WIDTH = 24;

export interface ProgressState {
  /** performance.now() of the last redraw. */
  lastDraw: number;
}

/** "1h02m", "4m05s", "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(rest).padStart(2, '0')}s`;
  return `${rest}s`;
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The live line for step `p`, starting with a carriage return and a clear,
 * or null when the last redraw is too recent (the last step of an epoch is
 * always drawn). The ETA extrapolates this session's mean step time.
 */
export function formatProgress(
  p: TrainProgress,
  state: ProgressState,
  now = performance.now(),
): string | null {
  if (p.step !== p.steps && now - state.lastDraw < REDRAW_MS) return null;
  state.lastDraw = now;
  const done = (p.epoch - 1) * p.steps + p.step;
  const total = p.epochs * p.steps;
  const filled = Math.round((BAR_WIDTH * done) / total);
  const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
  const eta = (p.sessionSeconds / p.sessionSteps) * (total - done);
  const last = p.lastEpoch;
  const tail =
    last === null
      ? ''
      : `  test ${percent(last.testAccuracy)}  kept ${percent(last.kept / last.total)} (${last.compression.toFixed(1)}x)`;
  return (
    `\r\x1b[2Kepoch ${p.epoch}/${p.epochs} [${bar}] ${percent(done / total)}  ETA ${formatDuration(eta)}` +
    `  loss ${p.loss.toPrecision(5)}  acc ${percent(p.accuracy)}${tail}`
  );
}

/** The line printed when an epoch ends. */
export function formatEpochLine(m: EpochMetrics, record: TrainRecord): string {
  const baseline = record.config.baseline;
  return (
    `epoch ${m.epoch}/${record.config.epochs}  loss ${m.loss.toPrecision(5)}  ` +
    `train acc ${percent(m.trainAccuracy)}  test acc ${percent(m.testAccuracy)}` +
    (baseline
      ? ''
      : `  kept ${percent(m.kept / m.total)} (${m.compression.toFixed(1)}x)  beta ${m.klWeight.toFixed(3)}`) +
    `  lr ${m.learningRate.toExponential(2)}  ${m.seconds.toFixed(1)} s`
  );
}
