/**
 * `vdspec kl` (src/cli/kl.ts): output format, grid rule, and errors without
 * throwing. Values are checked against the reference functions: spec/kl.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KL_GRID_LIMIT,
  KL_GRID_MAX_POINTS,
  klProfileTableMarkdown,
  runKlCommand,
} from '../../src/cli/kl.js';
import {
  klErrorTable,
  klExact,
  klSvdSigmoid,
  klVdCubic,
  type KlErrorTable,
} from '../../src/reference/kl.js';
import { expectSpecBlock } from './spec-blocks.js';

interface Run {
  code: number;
  out: string[];
  err: string[];
}

function run(argv: string[]): Run {
  const out: string[] = [];
  const err: string[] = [];
  let code = -1;
  expect(() => {
    code = runKlCommand(
      argv,
      (s) => out.push(s),
      (s) => err.push(s),
    );
  }).not.toThrow();
  return { code, out, err };
}

function runJson(argv: string[]): Record<string, number>[] {
  const r = run([...argv, '--json']);
  expect(r.code).toBe(0);
  expect(r.err).toEqual([]);
  expect(r.out).toHaveLength(1);
  return JSON.parse(r.out[0]!) as Record<string, number>[];
}

describe('vdspec kl (spec/kl.md)', () => {
  it("marks the kingma2015 cells outside the cubic's range (log_alpha > 0, alpha > 1) and says why", () => {
    const r = run(['--from', '-1', '--to', '1']);
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    const row = (la: string) => text.split('\n').find((l) => l.trimStart().startsWith(`${la} `))!;
    expect(row('0')).not.toMatch(/\*$/);
    expect(row('1')).toMatch(/-4\.334619689\*$/);
    expect(text).toMatch(/^\* kingma2015 outside alpha <= 1 .*not a KL/m);
  });

  it('spec/kl.md: default table is Figure 1, log_alpha -8..8 step 1, three KL columns', () => {
    const r = run([]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    const header = r.out.find((l) => l.includes('log_alpha'))!;
    expect(header.trim().split(/\s+/)).toEqual([
      'log_alpha',
      'exact',
      'molchanov2017',
      'kingma2015',
    ]);
    // The rows, then a blank line and the note on the cubic's range.
    const dataLines = r.out.slice(r.out.indexOf(header) + 2, -2);
    expect(dataLines).toHaveLength(17);
    dataLines.forEach((line, i) => {
      const [la, exact, svd, cubic] = line.replace(/\*$/, '').trim().split(/\s+/).map(Number);
      expect(la).toBe(-8 + i);
      // Printed with 10 significant digits.
      expect(exact).toBeCloseTo(klExact(la!), 8);
      expect(Math.abs(svd! - klSvdSigmoid(la!, 'minus_k1'))).toBeLessThanOrEqual(
        1e-9 * Math.abs(svd!),
      );
      expect(Math.abs(cubic! - klVdCubic(la!))).toBeLessThanOrEqual(1e-9 * Math.abs(cubic!));
    });
  });

  it('spec/kl.md: --json rows have exactly the four keys and the reference values', () => {
    const rows = runJson([]);
    expect(rows).toHaveLength(17);
    for (const row of rows) {
      expect(Object.keys(row)).toEqual(['logAlpha', 'exact', 'molchanov2017', 'kingma2015']);
      const la = row.logAlpha!;
      expect(row.exact).toBe(klExact(la));
      expect(row.molchanov2017).toBe(klSvdSigmoid(la, 'minus_k1'));
      expect(row.kingma2015).toBe(klVdCubic(la));
    }
  });

  it('spec/kl.md: grid points are from + i*step, last <= to + 1e-9 step', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -2000, max: 2000 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1, max: 500 }),
        (fromMilli, spanMilli, stepMilli) => {
          const from = fromMilli / 1000;
          const to = (fromMilli + spanMilli) / 1000;
          const step = stepMilli / 1000;
          const rows = runJson([
            '--from',
            String(from),
            '--to',
            String(to),
            '--step',
            String(step),
          ]);
          expect(rows.length).toBeGreaterThanOrEqual(1);
          rows.forEach((row, i) => expect(row.logAlpha).toBe(from + i * step));
          const last = rows[rows.length - 1]!.logAlpha!;
          expect(last).toBeLessThanOrEqual(to + 1e-9 * step);
          // Maximal: the next point would pass `to`.
          expect(from + rows.length * step).toBeGreaterThan(to + 1e-9 * step);
          // Integer arithmetic says how many points there are.
          expect(rows.length).toBe(Math.floor(spanMilli / stepMilli) + 1);
        },
      ),
      { numRuns: 100, seed: 21 },
    );
  });

  it('spec/kl.md: the end point is included despite i*step rounding (0..0.3 step 0.1)', () => {
    // 3 * 0.1 = 0.30000000000000004 > 0.3, within the 1e-9 step allowance.
    expect(runJson(['--from', '0', '--to', '0.3', '--step', '0.1']).map((r) => r.logAlpha)).toEqual(
      [0, 0.1, 0.2, 0.30000000000000004],
    );
    expect(runJson(['--from=-1', '--to=-1']).map((r) => r.logAlpha)).toEqual([-1]);
  });

  it('spec/kl.md: --error-table prints klErrorTable (text and JSON)', () => {
    const r = run(['--error-table', '--step', '0.01']);
    expect(r.code).toBe(0);
    const expected = klErrorTable(0.01);
    const text = r.out.join('\n');
    expect(text).toContain(String(Number(expected.svd.maxAbsError.toPrecision(10))));
    expect(text).toContain(String(Number(expected.vdCubic.maxDeviation.toPrecision(10))));
    const json = run(['--error-table', '--step', '0.01', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out[0]!) as KlErrorTable).toEqual(expected);
  });

  it('spec/kl.md: --error-table says which grid the maxima cover and which rows it lists (--step 5)', () => {
    const r = run(['--error-table', '--step', '5']);
    expect(r.code).toBe(0);
    const dashes = r.out.findIndex((l) => l.startsWith('---------'));
    const rows = r.out.slice(dashes + 1).map((l) => Number(l.trim().split(/\s+/)[0]));
    // The rows are the integers -8..8 whatever the step; the maxima come from -8, -3, 2, 7.
    expect(rows).toEqual([-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const header = r.out.slice(0, 2).join(' ');
    expect(header).toContain('over the grid -8..7 step 5 (4 points)');
    expect(header).toContain('the table: log_alpha = -8, -7, ..., 8, whatever the step');
  });

  it('spec/kl.md: --help exits 0 and names every flag', () => {
    for (const flag of ['--help', '-h']) {
      const r = run([flag]);
      expect(r.code).toBe(0);
      for (const name of ['--from', '--to', '--step', '--json', '--error-table']) {
        expect(r.out.join('\n')).toContain(name);
      }
    }
  });

  it('spec/kl.md: bad arguments give one line on stderr and exit 2, never a throw', () => {
    const bad: string[][] = [
      ['--bogus'],
      ['positional'],
      ['--from'],
      ['--from', 'abc'],
      ['--from', 'NaN'],
      ['--from', 'Infinity'],
      ['--from', '1e400'],
      ['--to', ''],
      ['--step', '0'],
      ['--step', '-1'],
      ['--from', '2', '--to', '1'],
      ['--from', String(-KL_GRID_LIMIT - 1)],
      ['--to', String(KL_GRID_LIMIT + 0.5)],
      ['--from', '-100', '--to', '100', '--step', '0.001'], // 200001 points
      ['--json', '--json'],
      ['--json=yes'],
      ['--error-table', '--from', '0'],
      ['--error-table', '--step', '0'],
      ['--error-table', '--step', '1e-9'],
    ];
    for (const argv of bad) {
      const r = run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out, argv.join(' ')).toEqual([]);
      expect(r.err, argv.join(' ')).toHaveLength(1);
      expect(r.err[0]!.startsWith('vdspec kl: ')).toBe(true);
      expect(r.err[0]!).not.toContain('\n');
    }
  });

  it('spec/kl.md: at most 100001 points, and exactly that many is accepted', () => {
    expect(KL_GRID_MAX_POINTS).toBe(100001);
    const r = run(['--from', '-100', '--to', '100', '--step', '0.002', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out[0]!) as unknown[];
    expect(rows).toHaveLength(100001);
    // Every value is a finite number inside the allowed range (JSON has no inf).
    const nonNumbers = (rows as Record<string, unknown>[]).filter((row) =>
      Object.values(row).some((v) => typeof v !== 'number'),
    );
    expect(nonNumbers).toEqual([]);
  });

  it('spec/kl.md: the printed blocks are the current output of the code', () => {
    const fenced = (lines: string[]): string => ['```text', ...lines, '```'].join('\n');
    expectSpecBlock('kl.md', 'vdspec-kl', fenced(run([]).out));
    expectSpecBlock('kl.md', 'vdspec-kl-error-table', fenced(run(['--error-table']).out));
    expectSpecBlock('kl.md', 'kl-profile-table', klProfileTableMarkdown());
  });
});
