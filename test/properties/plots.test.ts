/**
 * spec/train.md#plots: the training plots (src/train/plots.ts).
 *
 * - writeTrainingPlots writes <name>.vl.json and <name>.svg for curves,
 *   log-alpha and kl, and nothing else (no temporary file left);
 * - every SVG is one balanced, escaped SVG document holding the titles, the
 *   axis titles and the layer names, with no NaN or Infinity in it;
 * - every .vl.json parses, is the spec that was rendered, compiles with
 *   Vega-Lite without a warning and validates against Vega-Lite's schema;
 * - the histogram's counts sum to the number of values, each value in the
 *   bin of its own, out-of-range values in the end bins, in TypeScript and
 *   in the written spec;
 * - the KL figure draws the reference's functions (src/reference/kl.ts);
 * - bad input (no run, an empty run, a non-finite metric, NaN log_alpha, a
 *   directory that is a file) gives a VdspecError and writes nothing.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Ajv } from 'ajv';
import fc from 'fast-check';
import { compile as compileVegaLite, type TopLevelSpec } from 'vega-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { VD_LOG_ALPHA_MAX } from '../../src/constants.js';
import { VdspecError } from '../../src/errors.js';
import { klErrorTable, klExact, klSvdSigmoid } from '../../src/reference/kl.js';
import {
  compactJson,
  KL_FIGURE_STEP,
  klFigureSpec,
  LOG_ALPHA_BINS,
  logAlphaHistogram,
  renderSvg,
  trainingPlotSpecs,
  writeTrainingPlots,
  type PlotEpoch,
  type TrainingPlotsInput,
} from '../../src/train/plots.js';
import { mulberry32 as prng } from './dense-cases.js';

// ------------------------------------------------------------------ helpers

/** A Sparse VD-like log_alpha: a share `kept` around -4, the rest piled up near the clip at 8. */
function bimodal(n: number, kept: number, seed: number): Float32Array {
  const random = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = random() < kept ? -8 + 8 * random() : 6 + 4 * random(); // some beyond 8: clipped into the end bin
  }
  return out;
}

function epochs(count: number, compression: (epoch: number) => number): PlotEpoch[] {
  return Array.from({ length: count }, (_, i) => ({
    epoch: i + 1,
    trainAccuracy: 0.9 + 0.009 * i,
    testAccuracy: 0.88 + 0.01 * i,
    compression: compression(i + 1),
  }));
}

const TITLE = 'LeNet-300-100, Sparse VD (molchanov2017) & <test>, 300 MNIST digits';

function sampleInput(): TrainingPlotsInput {
  return {
    title: TITLE,
    runs: [
      { label: 'Sparse VD', epochs: epochs(6, (e) => 2 ** e) },
      { label: 'dense baseline', epochs: epochs(4, () => 1) },
    ],
    logAlpha: [
      { name: 'dense0', values: bimodal(3000, 0.1, 1) },
      { name: 'dense1', values: bimodal(700, 0.3, 2) },
      { name: 'dense2', values: Array.from(bimodal(50, 0.5, 3)) },
    ],
    threshold: 3,
    logAlphaRange: [-8, 8],
  };
}

/** XML's five escapes; anything else after '&' would be malformed. */
const ENTITY = /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;

/**
 * A small well-formedness check: one root <svg> element, every start tag
 * closed in order, attributes quoted, '&' only in entities, no text outside
 * the root. Returns a description of the first problem, or null.
 */
function xmlProblem(text: string): string | null {
  const doc = text.trimEnd();
  if (!doc.startsWith('<svg')) return 'does not start with <svg';
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  while (i < doc.length) {
    if (doc[i] === '<') {
      const end = doc.indexOf('>', i);
      if (end < 0) return `unterminated tag at ${i}`;
      const tag = doc.slice(i + 1, end);
      if (tag.startsWith('/')) {
        const name = tag.slice(1).trim();
        const open = stack.pop();
        if (open !== name) return `</${name}> closes <${open ?? 'nothing'}> at ${i}`;
      } else {
        const match = /^([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)$/.exec(tag);
        if (match === null) return `malformed tag <${tag.slice(0, 60)}> at ${i}`;
        if (stack.length === 0) roots += 1;
        if (match[3] !== '/') stack.push(match[1]!);
      }
      i = end + 1;
    } else {
      if (stack.length === 0) return `text outside the root at ${i}`;
      if (doc[i] === '&' && !ENTITY.test(doc.slice(i, i + 12))) return `bare '&' at ${i}`;
      if (doc[i] === '>') return `bare '>' at ${i}`;
      i += 1;
    }
  }
  if (stack.length > 0) return `<${stack.join('> <')}> never closed`;
  return roots === 1 ? null : `${roots} root elements`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Compile with Vega-Lite and keep every warning and error. */
function vegaLiteMessages(spec: TopLevelSpec): string[] {
  const messages: string[] = [];
  const keep = (...args: unknown[]) => {
    messages.push(args.map(String).join(' '));
    return logger;
  };
  interface Logger {
    level(level?: number): number | Logger;
    error(...args: unknown[]): Logger;
    warn(...args: unknown[]): Logger;
    info(): Logger;
    debug(): Logger;
  }
  const logger: Logger = {
    level: () => logger,
    error: keep,
    warn: keep,
    info: () => logger,
    debug: () => logger,
  };
  compileVegaLite(spec, { logger });
  return messages;
}

function expectVdspecError(fn: () => unknown, code: string, argument: RegExp | string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(VdspecError);
    expect((error as VdspecError).code).toBe(code);
    expect((error as VdspecError).argument).toMatch(argument);
    return;
  }
  expect.fail('expected a VdspecError');
}

async function expectRejects(
  promise: Promise<unknown>,
  code: string,
  argument: RegExp | string,
): Promise<VdspecError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(VdspecError);
  expect((error as VdspecError).code).toBe(code);
  expect((error as VdspecError).argument).toMatch(argument);
  return error as VdspecError;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vdspec-plots-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ------------------------------------------------------------------ the written plots

describe('writeTrainingPlots', () => {
  const input = sampleInput();
  let out: string;
  let paths: string[];

  beforeAll(async () => {
    out = join(dir, 'run', 'plots'); // two levels missing: created
    paths = await writeTrainingPlots(input, out);
  });

  it('writes a spec and an SVG per plot, and nothing else', () => {
    const names = ['curves', 'log-alpha', 'kl'].flatMap((n) => [`${n}.vl.json`, `${n}.svg`]);
    expect(paths).toEqual(names.map((n) => join(out, n)));
    expect(readdirSync(out).sort()).toEqual([...names].sort());
  });

  it('each SVG is one balanced, escaped document with its titles and no NaN', () => {
    const expected: Record<string, string[]> = {
      curves: [escapeXml(TITLE), 'epoch', 'accuracy', 'compression (log scale)', 'Sparse VD'],
      'log-alpha': [
        escapeXml(TITLE),
        'dense0',
        'dense1',
        'dense2',
        'log α',
        'weights (symlog)',
        'threshold 3',
        '3,000 weights',
      ],
      kl: ['KL(q ‖ p) per weight', 'log α', 'KL per weight (nats)', 'approx − exact (nats)'],
    };
    for (const [name, texts] of Object.entries(expected)) {
      const svg = readFileSync(join(out, `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg'), name).toBe(true);
      expect(xmlProblem(svg), name).toBeNull();
      for (const text of texts) expect(svg, `${name}: ${text}`).toContain(text);
      expect(svg, name).not.toMatch(/NaN|Infinity|undefined/);
    }
  });

  it('each .vl.json parses, is the rendered spec and compiles without a warning', () => {
    const specs = trainingPlotSpecs(input);
    for (const { name, spec } of specs) {
      const stored = JSON.parse(readFileSync(join(out, `${name}.vl.json`), 'utf8')) as TopLevelSpec;
      expect(stored, name).toEqual(JSON.parse(JSON.stringify(spec)));
      expect(stored.$schema).toMatch(/^https:\/\/vega\.github\.io\/schema\/vega-lite\/v\d+\.json$/);
      expect(vegaLiteMessages(stored), name).toEqual([]);
    }
  });

  it('each .vl.json validates against the Vega-Lite schema', () => {
    // Formats are URIs and colours only; not checking them halves the schema's compile time.
    const ajv = new Ajv({ strict: false, validateFormats: false, code: { optimize: false } });
    const schema = JSON.parse(
      readFileSync(join('node_modules', 'vega-lite', 'build', 'vega-lite-schema.json'), 'utf8'),
    ) as object;
    const validate = ajv.compile(schema);
    for (const name of ['curves', 'log-alpha', 'kl']) {
      const ok = validate(JSON.parse(readFileSync(join(out, `${name}.vl.json`), 'utf8')));
      expect(ok ? '' : ajv.errorsText(validate.errors), name).toBe('');
    }
  });

  it("the histogram's counts in the written spec sum to each layer's size", () => {
    const spec = JSON.parse(readFileSync(join(out, 'log-alpha.vl.json'), 'utf8')) as {
      concat: { layer: { data: { values: { count?: number; from?: number }[] } }[] }[];
    };
    expect(spec.concat).toHaveLength(input.logAlpha.length);
    spec.concat.forEach((panel, i) => {
      const bars = panel.layer[0]!.data.values;
      expect(bars).toHaveLength(LOG_ALPHA_BINS);
      expect(bars.reduce((s, b) => s + b.count!, 0)).toBe(input.logAlpha[i]!.values.length);
    });
  });

  it('writing again replaces the plots and leaves no temporary file', async () => {
    const again = await writeTrainingPlots({ ...input, title: 'second' }, out);
    expect(again).toEqual(paths);
    expect(readdirSync(out)).toHaveLength(6);
    expect(readFileSync(join(out, 'curves.svg'), 'utf8')).toContain('second');
  });
});

describe('plots of special runs', () => {
  it('a dense-only run (no log_alpha) gets no histogram', async () => {
    const out = join(dir, 'dense');
    const paths = await writeTrainingPlots(
      { ...sampleInput(), runs: [{ label: 'dense', epochs: epochs(3, () => 1) }], logAlpha: [] },
      out,
    );
    expect(paths.map((p) => p.slice(out.length + 1))).toEqual([
      'curves.vl.json',
      'curves.svg',
      'kl.vl.json',
      'kl.svg',
    ]);
    const svg = readFileSync(join(out, 'curves.svg'), 'utf8');
    expect(xmlProblem(svg)).toBeNull();
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('one epoch, accuracy 0 and 1, and an infinite compression render cleanly', async () => {
    const input: TrainingPlotsInput = {
      ...sampleInput(),
      runs: [
        {
          label: 'Sparse VD',
          epochs: [{ epoch: 1, trainAccuracy: 0, testAccuracy: 1, compression: Infinity }],
        },
      ],
      logAlpha: [{ name: 'only', values: [-Infinity, Infinity, 3, -100, 100] }],
    };
    for (const { name, spec } of trainingPlotSpecs(input)) {
      const warnings: string[] = [];
      const svg = await renderSvg(spec, warnings);
      expect(warnings, name).toEqual([]);
      expect(xmlProblem(svg), name).toBeNull();
      expect(svg, name).not.toMatch(/NaN|Infinity/);
      if (name === 'curves') expect(svg).toContain('no weight is kept');
      if (name === 'log-alpha') expect(svg).toContain('5 weights, 40.0% with log α &gt; 3');
    }
  });
});

// ------------------------------------------------------------------ histogram

describe('logAlphaHistogram', () => {
  it('counts every value once, in its own bin, out-of-range values in the end bins', () => {
    const value = fc.oneof(
      fc.double({ min: -12, max: 12, noNaN: true }),
      fc.constantFrom(-Infinity, Infinity, -8, 8, 3, 0, -7.75, 7.75),
    );
    fc.assert(
      fc.property(
        fc.array(value, { maxLength: 300 }),
        fc.integer({ min: 1, max: 80 }),
        (values, bins) => {
          const h = logAlphaHistogram(values, [-8, 8], 3, bins);
          expect(h.counts).toHaveLength(bins);
          expect(h.edges).toHaveLength(bins + 1);
          expect(h.edges[0]).toBe(-8);
          expect(h.edges[bins]).toBe(8);
          expect(h.counts.reduce((a, b) => a + b, 0)).toBe(values.length);
          expect(h.total).toBe(values.length);
          expect(h.above).toBe(values.filter((v) => v > 3).length);
          const expected = new Array<number>(bins).fill(0);
          for (const v of values) {
            const clipped = Math.min(8, Math.max(-8, v));
            // The bin whose [edge, next edge) holds the value; the last bin also holds 8.
            let b = h.edges.findIndex(
              (e, k) => k < bins && clipped >= e && clipped < h.edges[k + 1]!,
            );
            if (b < 0) b = bins - 1;
            expected[b]! += 1;
          }
          expect(h.counts).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rejects NaN and non-numbers', () => {
    expectVdspecError(() => logAlphaHistogram([0, NaN], [-8, 8], 3), 'non_finite', 'values');
    expectVdspecError(
      () => logAlphaHistogram(['1'] as unknown as number[], [-8, 8], 3),
      'invalid_argument',
      'values',
    );
  });
});

// ------------------------------------------------------------------ KL figure

describe('klFigureSpec', () => {
  type Row = { logAlpha: number; curve: string; kl?: number; error?: number };
  const spec = klFigureSpec() as unknown as {
    title: { text: string; subtitle: string[] };
    vconcat: [{ layer: [{ data: { values: Row[] } }] }, { data: { values: Row[] } }];
  };
  const curves = spec.vconcat[0].layer[0].data.values;
  const errors = spec.vconcat[1].data.values;
  const byCurve = (rows: Row[], prefix: string) => rows.filter((r) => r.curve.startsWith(prefix));

  it('says it draws KL (not -KL) and draws the reference functions on [-8, 8]', () => {
    expect(spec.title.text).toMatch(/KL itself, not the papers’ −KL/);
    const exact = byCurve(curves, 'exact');
    const sigmoid = byCurve(curves, 'Molchanov 2017');
    expect(exact).toHaveLength(Math.round(16 / KL_FIGURE_STEP) + 1);
    expect(exact[0]!.logAlpha).toBe(-8);
    expect(exact[exact.length - 1]!.logAlpha).toBe(8);
    for (const [i, r] of exact.entries()) {
      expect(r.kl).toBe(klExact(r.logAlpha));
      expect(sigmoid[i]!.kl).toBe(klSvdSigmoid(r.logAlpha, 'minus_k1'));
      if (i > 0) expect(r.kl!).toBeLessThan(exact[i - 1]!.kl!);
    }
  });

  it("draws the cubic on alpha <= 1 only, shifted so its errors are the table's", () => {
    const table = klErrorTable(KL_FIGURE_STEP);
    const cubic = byCurve(curves, 'Kingma 2015');
    expect(cubic.length).toBeGreaterThan(0);
    expect(cubic.every((r) => r.logAlpha <= VD_LOG_ALPHA_MAX)).toBe(true);
    const cubicErrors = byCurve(errors, 'Kingma 2015').map((r) => Math.abs(r.error!));
    expect(Math.max(...cubicErrors)).toBeCloseTo(table.vdCubic.maxDeviation, 12);
    const sigmoidErrors = byCurve(errors, 'Molchanov 2017').map((r) => Math.abs(r.error!));
    expect(Math.max(...sigmoidErrors)).toBeCloseTo(table.svd.maxAbsError, 12);
  });
});

// ------------------------------------------------------------------ compact JSON

describe('compactJson', () => {
  it('is JSON.stringify up to whitespace, with no line longer than needed', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const text = compactJson(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 200 },
    );
  });
});

// ------------------------------------------------------------------ bad input

describe('bad input gives a VdspecError and writes nothing', () => {
  const base = sampleInput();
  const run = base.runs[0]!;
  const epoch = run.epochs[0]!;
  const withEpoch = (patch: Partial<PlotEpoch>): TrainingPlotsInput => ({
    ...base,
    runs: [{ ...run, epochs: [{ ...epoch, ...patch }] }],
  });
  const cases: [string, TrainingPlotsInput, string, RegExp | string][] = [
    ['no run', { ...base, runs: [] }, 'invalid_argument', 'runs'],
    [
      'an empty run',
      { ...base, runs: [{ label: 'Sparse VD', epochs: [] }] },
      'invalid_argument',
      'runs[0].epochs',
    ],
    ['NaN test accuracy', withEpoch({ testAccuracy: NaN }), 'non_finite', /testAccuracy$/],
    [
      'infinite train accuracy',
      withEpoch({ trainAccuracy: Infinity }),
      'non_finite',
      /trainAccuracy$/,
    ],
    ['accuracy above 1', withEpoch({ testAccuracy: 1.5 }), 'invalid_argument', /testAccuracy$/],
    ['NaN compression', withEpoch({ compression: NaN }), 'non_finite', /compression$/],
    ['compression below 1', withEpoch({ compression: 0.5 }), 'invalid_argument', /compression$/],
    ['epoch 0', withEpoch({ epoch: 0 }), 'invalid_argument', /epoch$/],
    [
      'epochs out of order',
      { ...base, runs: [{ ...run, epochs: [run.epochs[1]!, run.epochs[0]!] }] },
      'invalid_argument',
      'runs[0].epochs[1].epoch',
    ],
    ['two runs with one label', { ...base, runs: [run, run] }, 'invalid_argument', 'runs[1].label'],
    ['an empty title', { ...base, title: ' ' }, 'invalid_argument', 'title'],
    [
      'NaN log_alpha',
      { ...base, logAlpha: [{ name: 'dense0', values: [0, NaN] }] },
      'non_finite',
      'logAlpha[0].values',
    ],
    [
      'a layer without values',
      { ...base, logAlpha: [{ name: 'dense0', values: [] }] },
      'invalid_argument',
      'logAlpha[0].values',
    ],
    ['a NaN threshold', { ...base, threshold: NaN }, 'non_finite', 'threshold'],
    ['a threshold off the axis', { ...base, threshold: 9 }, 'invalid_argument', 'threshold'],
    ['a reversed range', { ...base, logAlphaRange: [8, -8] }, 'invalid_argument', 'logAlphaRange'],
  ];

  for (const [what, input, code, argument] of cases) {
    it(what, async () => {
      const out = join(dir, `bad-${what.replace(/\W+/g, '-')}`);
      await expectRejects(writeTrainingPlots(input, out), code, argument);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('an output directory that is a file', async () => {
    const parent = join(dir, 'file-parent');
    mkdirSync(parent);
    const out = join(parent, 'plots');
    writeFileSync(out, 'not a directory');
    const error = await expectRejects(writeTrainingPlots(base, out), 'io_error', 'outDir');
    expect(error.message).toMatch(/not a directory/);
    expect(readFileSync(out, 'utf8')).toBe('not a directory');
    expect(readdirSync(parent)).toEqual(['plots']);
  });

  it('a plot file that is a directory', async () => {
    const out = join(dir, 'blocked');
    mkdirSync(join(out, 'kl.svg'), { recursive: true });
    const error = await expectRejects(writeTrainingPlots(base, out), 'io_error', 'outDir');
    expect(error.message).toMatch(/kl\.svg is a directory/);
    expect(readdirSync(out)).toEqual(['kl.svg']);
  });
});
