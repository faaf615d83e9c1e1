/**
 * `vdspec kl`: the exact KL and both approximations on a grid of log_alpha
 * (the SVD paper's Figure 1 as numbers), or the measured-error table of
 * spec/kl.md. All values are KL (not -KL) in nats, per weight.
 */
import { PROFILE_NAMES, PROFILES, type LayerKind } from '../profiles.js';
import {
  klApprox,
  klErrorTable,
  klExact,
  klSvdSigmoid,
  klVdCubic,
  type KlErrorRow,
  type KlErrorTable,
} from '../reference/kl.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  parseNumberFlag,
  runCommand,
  UsageError,
  type FlagSpec,
} from './common.js';

/** Most grid points one call may print. */
export const KL_GRID_MAX_POINTS = 100001;

/**
 * Bound on |--from| and |--to|: keeps every column a finite float64 (the
 * cubic overflows to -inf near log_alpha = 236) and covers every log_alpha a
 * profile's clip allows ([-10, 10] at the widest) many times over.
 */
export const KL_GRID_LIMIT = 100;

const DEFAULT_GRID = { from: -8, to: 8, step: 1 } as const;

export const KL_FLAGS = {
  command: 'kl',
  flags: {
    from: { value: 'A', parse: parseNumberFlag, help: 'first log_alpha of the grid (default -8)' },
    to: {
      value: 'B',
      parse: parseNumberFlag,
      help: 'last log_alpha of the grid (default 8); points are A + i*S <= B',
    },
    step: {
      value: 'S',
      parse: parseNumberFlag,
      help: 'grid step, > 0 (default 1; with --error-table default 0.001)',
    },
    json: {
      help:
        'JSON instead of a table: an array of\n{"logAlpha", "exact", "molchanov2017", "kingma2015"}\n' +
        '(with --error-table: the klErrorTable object)',
    },
    'error-table': { help: 'the measured error of both approximations on [-8, 8] (spec/kl.md)' },
    help: HELP_FLAG,
  },
} as const satisfies FlagSpec;

const HELP = `Usage: vdspec kl [--from A] [--to B] [--step S] [--json]
       vdspec kl --error-table [--step S] [--json]

KL(q || prior) per weight, in nats (KL, not -KL), as a function of log_alpha:
  exact          the exact KL, normalised so KL -> 0 as alpha -> inf (spec/kl.md#klexact)
  molchanov2017  the SVD sigmoid approximation with C = -k1 (spec/kl.md#klsvd)
  kingma2015     the VD cubic approximation, its constant dropped (spec/kl.md#klvd)

Options:
${optionList(KL_FLAGS.flags)}

|A| and |B| must be <= ${KL_GRID_LIMIT}; at most ${KL_GRID_MAX_POINTS} points.`;

/**
 * The grid from + i * step, i = 0, 1, ..., up to the last point <= to + 1e-9 step.
 * Each point is computed from i directly, so no rounding accumulates.
 */
function gridPoints(from: number, to: number, step: number): number[] {
  if (!(step > 0)) throw new UsageError(`--step must be > 0, got ${step}`);
  for (const [flag, v] of [
    ['--from', from],
    ['--to', to],
  ] as const) {
    if (Math.abs(v) > KL_GRID_LIMIT) {
      throw new UsageError(`${flag} must lie in [-${KL_GRID_LIMIT}, ${KL_GRID_LIMIT}], got ${v}`);
    }
  }
  if (from > to) throw new UsageError(`--from (${from}) must be <= --to (${to})`);
  const estimate = (to - from) / step;
  if (estimate > KL_GRID_MAX_POINTS) {
    throw new UsageError(
      `the grid has more than ${KL_GRID_MAX_POINTS} points; use a larger --step`,
    );
  }
  const limit = to + 1e-9 * step;
  let count = Math.floor(estimate) + 1;
  while (count > 1 && from + (count - 1) * step > limit) count--;
  while (from + count * step <= limit) count++;
  if (count > KL_GRID_MAX_POINTS) {
    throw new UsageError(
      `the grid has more than ${KL_GRID_MAX_POINTS} points; use a larger --step`,
    );
  }
  return Array.from({ length: count }, (_, i) => from + i * step);
}

/** One grid row as printed by --json: KL in nats, the cubic with its constant dropped. */
export interface KlGridRow {
  readonly logAlpha: number;
  readonly exact: number;
  readonly molchanov2017: number;
  readonly kingma2015: number;
}

function gridRow(logAlpha: number): KlGridRow {
  return {
    logAlpha,
    exact: klExact(logAlpha),
    molchanov2017: klSvdSigmoid(logAlpha, 'minus_k1'),
    kingma2015: klVdCubic(logAlpha),
  };
}

/** Ten significant digits; exponent form only where fixed notation would be unreadable. */
function formatValue(v: number): string {
  if (v === 0) return '0';
  const magnitude = Math.abs(v);
  return magnitude >= 1e-4 && magnitude < 1e9
    ? String(Number(v.toPrecision(10)))
    : v.toExponential(9);
}

/** Grid coordinates print with up to 12 significant digits, hiding i*step rounding. */
function formatLogAlpha(v: number): string {
  return String(Number(v.toPrecision(12)));
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => cell.padStart(widths[c]!))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

function gridText(rows: readonly KlGridRow[]): string[] {
  // Kingma et al. fit the cubic for alpha <= 1 only; beyond, its values (even negative) are no KL.
  const outsideCubic = rows.some((r) => r.logAlpha > 0);
  return [
    'KL per weight in nats (KL, not -KL). exact: spec/kl.md#klexact;',
    'molchanov2017: SVD sigmoid with C = -k1; kingma2015: VD cubic, constant dropped.',
    '',
    ...table(
      ['log_alpha', 'exact', 'molchanov2017', 'kingma2015 '],
      rows.map((r) => [
        formatLogAlpha(r.logAlpha),
        formatValue(r.exact),
        formatValue(r.molchanov2017),
        `${formatValue(r.kingma2015)}${r.logAlpha > 0 ? '*' : ' '}`,
      ]),
    ),
    ...(outsideCubic
      ? [
          '',
          '* kingma2015 outside alpha <= 1 (log_alpha > 0), where the cubic was fitted: not a KL.',
        ]
      : []),
  ];
}

function errorRowCells(r: KlErrorRow): string[] {
  return [
    formatLogAlpha(r.logAlpha),
    formatValue(r.exact),
    formatValue(r.svdError),
    formatValue(r.cubicDifference),
    formatValue(r.cubicDeviation),
  ];
}

/** `-8, -7, ..., 8` for consecutive integers, else every value. */
function rowList(values: readonly number[]): string {
  const consecutive = values.every((v, i) => i === 0 || v === values[i - 1]! + 1);
  if (consecutive && values.length > 3) {
    return `${values[0]}, ${values[1]}, ..., ${values[values.length - 1]}`;
  }
  return values.map(formatLogAlpha).join(', ');
}

function errorTableText(t: KlErrorTable): string[] {
  const { svd, vdCubic: vd, grid } = t;
  const side = svd.signedError >= 0 ? 'svd above exact' : 'svd below exact';
  return [
    'Measured error against the exact KL, nats (klErrorTable). Maxima and means: over the grid ' +
      `${grid.from}..${formatLogAlpha(grid.to)} step ${grid.step} (${grid.points} points);`,
    // The rows do not follow --step: a coarse grid would leave the table nearly empty.
    `the table: log_alpha = ${rowList(t.rows.map((r) => r.logAlpha))}, whatever the step.`,
    '',
    `molchanov2017 (SVD sigmoid, C = -k1) vs exact on [${grid.from}, ${formatLogAlpha(grid.to)}]:`,
    `  max |svd - exact| = ${formatValue(svd.maxAbsError)} at log_alpha = ` +
      `${formatLogAlpha(svd.atLogAlpha)} (${side})`,
    `  mean |svd - exact| = ${formatValue(svd.meanAbsError)}`,
    `kingma2015 (VD cubic, constant dropped) vs exact on [${vd.fitFrom}, ${formatLogAlpha(vd.fitTo)}] (alpha <= 1):`,
    `  cubic - exact = offset + d, offset = ${formatValue(vd.offset)}, ` +
      `max |d| = ${formatValue(vd.maxDeviation)} at log_alpha = ${formatLogAlpha(vd.atLogAlpha)}`,
    '  above alpha = 1: the rows log_alpha = 1, 2, 3, ...',
    '',
    ...table(
      ['log_alpha', 'exact', 'svd - exact', 'cubic - exact', 'cubic - exact - offset'],
      t.rows.map(errorRowCells),
    ),
  ];
}

/**
 * The per-profile table of spec/kl.md#klsum (between its
 * `kl-profile-table` markers): each profile's KL form and the per-weight KL
 * at its clip bounds and at log_alpha = +inf, one row per profile and layer
 * kind (merged when both kinds share the clip).
 */
export function klProfileTableMarkdown(): string {
  const cell = (la: number | null, profile: (typeof PROFILES)[keyof typeof PROFILES]): string => {
    if (la === null) return '—';
    if (la === Infinity && profile.kl.approximation === 'vd_cubic') return 'rejected';
    return `\`${String(klApprox(la, profile))}\``;
  };
  const lines = [
    '| profile | layer | `kl.approximation` | `kl.constant` | clip | KL at clip min | KL at clip max | KL at `+inf` |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const name of PROFILE_NAMES) {
    const profile = PROFILES[name];
    const kinds: LayerKind[] = ['dense', 'conv2d'];
    const clipOf = (kind: LayerKind) => profile[kind].logAlpha.clip;
    const same = JSON.stringify(clipOf('dense')) === JSON.stringify(clipOf('conv2d'));
    for (const kind of same ? (['dense'] as const) : kinds) {
      const clip = clipOf(kind);
      const min = clip?.min ?? null;
      const max = clip?.max ?? null;
      const bound = (v: number | null): string => (v === null ? 'none' : String(v));
      lines.push(
        `| \`${name}\` | ${same ? 'dense, conv2d' : kind} | \`${profile.kl.approximation}\` | ` +
          `\`${profile.kl.constant}\` | [${bound(min)}, ${bound(max)}] | ${cell(min, profile)} | ` +
          `${cell(max, profile)} | ${cell(Infinity, profile)} |`,
      );
    }
  }
  return lines.join('\n');
}

function run(argv: readonly string[], out: (s: string) => void): number {
  const options = parseFlags(argv, KL_FLAGS).values;
  if (options.help) {
    out(HELP);
    return 0;
  }
  if (options['error-table']) {
    if (options.from !== undefined || options.to !== undefined) {
      throw new UsageError('--from/--to do not apply to --error-table (its grid is [-8, 8])');
    }
    // klErrorTable rejects a step <= 0 or one giving over 1000001 points
    // with a VdspecError naming `step`, reported below as a usage error.
    const t = klErrorTable(options.step ?? 0.001);
    if (options.json) out(JSON.stringify(t, null, 2));
    else for (const line of errorTableText(t)) out(line);
    return 0;
  }
  const rows = gridPoints(
    options.from ?? DEFAULT_GRID.from,
    options.to ?? DEFAULT_GRID.to,
    options.step ?? DEFAULT_GRID.step,
  ).map(gridRow);
  if (options.json) out(JSON.stringify(rows, null, 2));
  else for (const line of gridText(rows)) out(line);
  return 0;
}

/**
 * Run `vdspec kl` with `argv` (the arguments after `kl`). Each call to `out`
 * or `err` is one line or one complete JSON document, without its trailing
 * newline. Returns the exit code: 0 success, 2 bad arguments (one line on
 * `err`), 1 anything unexpected. Never throws (unless VDSPEC_DEBUG is set:
 * see runCommand).
 */
export function runKlCommand(
  argv: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): number {
  return runCommand('kl', err, () => run(argv, out));
}
