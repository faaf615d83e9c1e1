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
 *   directory that is a file) gives a VdspecError and writes nothing;
 * - each input check names its argument and says what is wrong, and each
 *   spec's rows, axes, subtitles and rules, the histogram's bins and
 *   compactJson's line breaks are worked out by hand on small inputs (these
 *   are what the mutation runs of plots.ts lean on, spec/mutation.md).
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
import { klErrorTable, klExact, klSvdSigmoid, klVdCubic } from '../../src/reference/kl.js';
import {
  compactJson,
  KL_FIGURE_STEP,
  klFigureSpec,
  LOG_ALPHA_BINS,
  logAlphaHistogram,
  lowerBoundSpec,
  renderSvg,
  trainingPlotSpecs,
  writePlotFiles,
  writeTrainingPlots,
  type PlotEpoch,
  type TrainingPlotsInput,
} from '../../src/train/plots.js';
import { mulberry32 as prng } from './dense-cases.js';
import { expectRefusal, expectRejection, untyped } from './refusals.js';

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

// ------------------------------------------------------------------ each rule, worked out by hand

describe('each input check names its argument and says what is wrong', () => {
  const base = sampleInput();
  const run = base.runs[0]!;
  const epoch = run.epochs[0]!;
  const withRuns = (runs: unknown): TrainingPlotsInput => untyped({ ...base, runs });
  const withEpochs = (...list: unknown[]): TrainingPlotsInput =>
    withRuns([{ label: 'a', epochs: list }]);
  const withEpoch = (patch: Record<string, unknown>) => withEpochs({ ...epoch, ...patch });
  const at = 'runs[0].epochs[0]';
  const cases: [string, unknown, string, string, string | RegExp][] = [
    ['no object', null, 'invalid_argument', 'input', 'expected an object'],
    ['a string', 'plots', 'invalid_argument', 'input', 'expected an object'],
    [
      'a title that is no string',
      { ...base, title: 5 },
      'invalid_argument',
      'title',
      'expected a non-empty string',
    ],
    [
      'runs that are no array',
      withRuns({ length: 1 }),
      'invalid_argument',
      'runs',
      'expected at least one run',
    ],
    [
      'a run that is null',
      withRuns([null]),
      'invalid_argument',
      'runs[0]',
      'expected a run object',
    ],
    [
      'a run that is a number',
      withRuns([run, 7]),
      'invalid_argument',
      'runs[1]',
      'expected a run object',
    ],
    [
      'a run without a label',
      withRuns([{ epochs: run.epochs }]),
      'invalid_argument',
      'runs[0].label',
      'expected a non-empty string',
    ],
    [
      'two runs, one label',
      withRuns([run, run]),
      'invalid_argument',
      'runs[1].label',
      "two runs are labelled 'Sparse VD'",
    ],
    [
      'epochs that are no array',
      withRuns([{ label: 'a', epochs: 'x' }]),
      'invalid_argument',
      'runs[0].epochs',
      "run 'a' has no completed epoch to plot",
    ],
    ['an epoch that is null', withEpochs(null), 'invalid_argument', at, 'expected an epoch object'],
    [
      'an epoch that is a string',
      withEpochs('1'),
      'invalid_argument',
      at,
      'expected an epoch object',
    ],
    [
      'an epoch number that is a string',
      withEpoch({ epoch: '1' }),
      'invalid_argument',
      `${at}.epoch`,
      'expected a number, got string',
    ],
    [
      'an infinite epoch number',
      withEpoch({ epoch: Infinity }),
      'non_finite',
      `${at}.epoch`,
      'expected a finite number, got Infinity',
    ],
    [
      'a fractional epoch number',
      withEpoch({ epoch: 1.5 }),
      'invalid_argument',
      `${at}.epoch`,
      'expected an integer >= 1, got 1.5',
    ],
    [
      'epoch 0',
      withEpoch({ epoch: 0 }),
      'invalid_argument',
      `${at}.epoch`,
      'expected an integer >= 1, got 0',
    ],
    [
      'an epoch twice',
      withEpochs({ ...epoch, epoch: 2 }, { ...epoch, epoch: 2 }),
      'invalid_argument',
      'runs[0].epochs[1].epoch',
      'epochs must increase, got 2 after 2',
    ],
    [
      'a negative accuracy',
      withEpoch({ trainAccuracy: -0.25 }),
      'invalid_argument',
      `${at}.trainAccuracy`,
      'expected a value in [0, 1], got -0.25',
    ],
    [
      'an accuracy above 1',
      withEpoch({ testAccuracy: 1.25 }),
      'invalid_argument',
      `${at}.testAccuracy`,
      'expected a value in [0, 1], got 1.25',
    ],
    [
      'a compression that is a string',
      withEpoch({ compression: '2' }),
      'invalid_argument',
      `${at}.compression`,
      'expected a number, got string',
    ],
    [
      'a compression of -Infinity',
      withEpoch({ compression: -Infinity }),
      'non_finite',
      `${at}.compression`,
      'expected a number >= 1 or Infinity, got -Infinity',
    ],
    [
      'a NaN compression',
      withEpoch({ compression: NaN }),
      'non_finite',
      `${at}.compression`,
      'expected a number >= 1 or Infinity, got NaN',
    ],
    [
      'a compression below 1',
      withEpoch({ compression: 0.5 }),
      'invalid_argument',
      `${at}.compression`,
      '|W| / |W != 0| is at least 1, got 0.5',
    ],
    [
      'layers that are no array',
      { ...base, logAlpha: 'x' },
      'invalid_argument',
      'logAlpha',
      'expected an array of layers',
    ],
    [
      'a layer that is null',
      { ...base, logAlpha: [null] },
      'invalid_argument',
      'logAlpha[0]',
      'expected a layer object',
    ],
    [
      'a layer that is a number',
      { ...base, logAlpha: [3] },
      'invalid_argument',
      'logAlpha[0]',
      'expected a layer object',
    ],
    [
      'a layer without a name',
      { ...base, logAlpha: [{ values: [1] }] },
      'invalid_argument',
      'logAlpha[0].name',
      'expected a non-empty string',
    ],
    [
      'two layers, one name',
      {
        ...base,
        logAlpha: [
          { name: 'a', values: [1] },
          { name: 'a', values: [2] },
        ],
      },
      'invalid_argument',
      'logAlpha[1].name',
      "two layers are named 'a'",
    ],
    [
      'values that are null',
      { ...base, logAlpha: [{ name: 'a', values: null }] },
      'invalid_argument',
      'logAlpha[0].values',
      'expected an array of numbers',
    ],
    [
      'values that are a number',
      { ...base, logAlpha: [{ name: 'a', values: 4 }] },
      'invalid_argument',
      'logAlpha[0].values',
      'expected an array of numbers',
    ],
    [
      // A string has a whole length too.
      'values that are a string',
      { ...base, logAlpha: [{ name: 'a', values: '-1' }] },
      'invalid_argument',
      'logAlpha[0].values',
      'expected an array of numbers',
    ],
    [
      'values without a whole length',
      { ...base, logAlpha: [{ name: 'a', values: { length: 1.5 } }] },
      'invalid_argument',
      'logAlpha[0].values',
      'expected an array of numbers',
    ],
    [
      'no values',
      { ...base, logAlpha: [{ name: 'a', values: new Float32Array(0) }] },
      'invalid_argument',
      'logAlpha[0].values',
      "layer 'a' has no log_alpha",
    ],
    [
      'a range that is no array',
      { ...base, logAlphaRange: 'x' },
      'invalid_argument',
      'logAlphaRange',
      'expected [from, to]',
    ],
    [
      'a range of three',
      { ...base, logAlphaRange: [-8, 0, 8] },
      'invalid_argument',
      'logAlphaRange',
      'expected [from, to]',
    ],
    [
      'a range with a string start',
      { ...base, logAlphaRange: ['-8', 8] },
      'invalid_argument',
      'logAlphaRange',
      'expected a number, got string',
    ],
    [
      'a range with a string end',
      { ...base, logAlphaRange: [-8, '8'] },
      'invalid_argument',
      'logAlphaRange',
      'expected a number, got string',
    ],
    [
      'an empty range',
      { ...base, logAlphaRange: [8, 8], threshold: 8 },
      'invalid_argument',
      'logAlphaRange',
      'expected from < to, got [8, 8]',
    ],
    [
      'a threshold that is a string',
      { ...base, threshold: '3' },
      'invalid_argument',
      'threshold',
      'expected a number, got string',
    ],
    [
      'an infinite threshold',
      { ...base, threshold: Infinity },
      'non_finite',
      'threshold',
      'expected a finite number, got Infinity',
    ],
    [
      'a threshold below the range',
      { ...base, threshold: -8.5 },
      'invalid_argument',
      'threshold',
      '-8.5 lies outside logAlphaRange [-8, 8]',
    ],
    [
      'a threshold above the range',
      { ...base, threshold: 8.5 },
      'invalid_argument',
      'threshold',
      '8.5 lies outside logAlphaRange [-8, 8]',
    ],
  ];
  for (const [what, input, code, argument, message] of cases) {
    it(what, () => {
      expectRefusal(() => trainingPlotSpecs(untyped(input)), code, argument, message);
    });
  }

  it('accepts the ends: accuracy 0 and 1, compression 1, the threshold on either end of the range', () => {
    const edge = withEpoch({ trainAccuracy: 0, testAccuracy: 1, compression: 1 });
    expect(trainingPlotSpecs(edge).map((p) => p.name)).toEqual(['curves', 'log-alpha', 'kl']);
    for (const threshold of [-8, 8]) {
      expect(trainingPlotSpecs({ ...base, threshold })).toHaveLength(3);
    }
  });

  it('logAlphaHistogram: whole bins >= 1, numbers only, the argument named as given', () => {
    for (const bins of [0, 1.5]) {
      expectRefusal(
        () => logAlphaHistogram([0], [-8, 8], 3, bins),
        'invalid_argument',
        'bins',
        `expected an integer >= 1, got ${bins}`,
      );
    }
    expectRefusal(
      () => logAlphaHistogram([0, 1, 'x'] as unknown as number[], [-8, 8], 3, 4, 'layer'),
      'invalid_argument',
      'layer',
      'element 2 is a string, not a number',
    );
    expectRefusal(
      () => logAlphaHistogram([0, NaN], [-8, 8], 3, 4, 'layer'),
      'non_finite',
      'layer',
      'element 1 is NaN: log_alpha has no bin',
    );
    expectRefusal(() => logAlphaHistogram([0], [-8, 8], NaN), 'non_finite', 'threshold', /NaN/);
    expectRefusal(
      () => logAlphaHistogram([0], [8, -8], 3),
      'invalid_argument',
      'logAlphaRange',
      /from < to/,
    );
  });

  it('logAlphaHistogram: 4 bins on [-8, 8], by hand', () => {
    // Edges -8, -4, 0, 4, 8; a value on an edge belongs to the bin above it, 8 to the last.
    const h = logAlphaHistogram([-9, -8, -4, -0.5, 0, 3, 3.5, 4, 8, 20], [-8, 8], 3, 4);
    expect(h.edges).toEqual([-8, -4, 0, 4, 8]);
    expect(h.counts).toEqual([2, 2, 3, 3]);
    expect(h.above).toBe(4);
    expect(h.total).toBe(10);
    // One bin: everything in it.
    expect(logAlphaHistogram([-20, 0, 20], [-8, 8], 3, 1).counts).toEqual([3]);
  });
});

describe('the curves spec, by hand', () => {
  type Curves = {
    title: { text: string; subtitle: string[] };
    vconcat: [
      {
        data: { values: unknown[] };
        encoding: { x: { scale: { domain: number[] } }; color: { sort: string[] } };
      },
      {
        data: { values: unknown[] };
        encoding: { y: { scale: { domain: number[] }; axis: { values: number[] } } };
      },
    ];
  };
  const at = (e: number, compression: number, testAccuracy = 0.5) => ({
    epoch: e,
    trainAccuracy: 0.25,
    testAccuracy,
    compression,
  });
  const curves = (runs: TrainingPlotsInput['runs']) =>
    trainingPlotSpecs({ ...sampleInput(), runs })[0]!.spec as unknown as Curves;

  it('two runs: the accuracy and compression rows, the epoch axis from the first epoch to the last', () => {
    const spec = curves([
      { label: 'late', epochs: [at(2, 3, 0.75), at(3, Infinity)] },
      { label: 'early', epochs: [at(1, 174.9)] },
    ]);
    expect(spec.vconcat[0].data.values).toEqual([
      { run: 'late', epoch: 2, split: 'test (eval forward)', accuracy: 0.75 },
      { run: 'late', epoch: 2, split: 'train', accuracy: 0.25 },
      { run: 'late', epoch: 3, split: 'test (eval forward)', accuracy: 0.5 },
      { run: 'late', epoch: 3, split: 'train', accuracy: 0.25 },
      { run: 'early', epoch: 1, split: 'test (eval forward)', accuracy: 0.5 },
      { run: 'early', epoch: 1, split: 'train', accuracy: 0.25 },
    ]);
    expect(spec.vconcat[1].data.values).toEqual([
      { run: 'late', epoch: 2, compression: 3 },
      { run: 'early', epoch: 1, compression: 174.9 },
    ]);
    expect(spec.vconcat[0].encoding.x.scale.domain).toEqual([1, 3]);
    expect(spec.vconcat[0].encoding.color.sort).toEqual(['late', 'early']);
    // 174.9: the log axis runs to the next power of ten.
    expect(spec.vconcat[1].encoding.y.scale.domain).toEqual([1, 1000]);
    expect(spec.vconcat[1].encoding.y.axis.values).toEqual([1, 10, 100, 1000]);
    expect(spec.title.subtitle).toEqual([
      'top: accuracy per completed epoch (test: the eval forward, pruned for Sparse VD)',
      'bottom: overall compression |W| / |W ≠ 0| on a log scale (1 = dense)',
      'compression not drawn where no weight is kept (infinite): late epoch 3',
    ]);
  });

  it('one epoch gets an axis one epoch wide; a dense run alone still gets the decade 1 to 10', () => {
    const spec = curves([{ label: 'dense', epochs: [at(4, 1)] }]);
    expect(spec.vconcat[0].encoding.x.scale.domain).toEqual([3, 4]);
    expect(spec.vconcat[1].encoding.y.scale.domain).toEqual([1, 10]);
    expect(spec.vconcat[1].encoding.y.axis.values).toEqual([1, 10]);
    expect(spec.title.subtitle).toHaveLength(2);
    // Exactly 10: no decade above it.
    const ten = curves([{ label: 'ten', epochs: [at(1, 10)] }]);
    expect(ten.vconcat[1].encoding.y.axis.values).toEqual([1, 10]);
    const eleven = curves([{ label: 'eleven', epochs: [at(1, 11)] }]);
    expect(eleven.vconcat[1].encoding.y.axis.values).toEqual([1, 10, 100]);
  });

  it('names at most four epochs that kept nothing, then "..."', () => {
    const none = (n: number) =>
      curves([{ label: 'r', epochs: Array.from({ length: n }, (_, i) => at(i + 1, Infinity)) }])
        .title.subtitle[2];
    expect(none(4)).toBe(
      'compression not drawn where no weight is kept (infinite): r epoch 1, r epoch 2, r epoch 3, r epoch 4',
    );
    expect(none(5)).toBe(
      'compression not drawn where no weight is kept (infinite): r epoch 1, r epoch 2, r epoch 3, r epoch 4, ...',
    );
  });
});

describe('the log-alpha spec, by hand', () => {
  type Panel = {
    title: { text: string; subtitle: string };
    layer: [
      {
        data: { values: { from: number; to: number; count: number }[] };
        encoding: {
          x: { bin: { step: number }; scale: { domain: number[] } };
          y: { scale: { domain: number[] }; axis: { values: number[] } };
        };
      },
      { data: { values: unknown[] } },
      unknown,
    ];
  };
  type Histograms = { title: { subtitle: string[] }; columns: number; concat: Panel[] };
  const histograms = (values: number[][], threshold = 3) =>
    trainingPlotSpecs({
      ...sampleInput(),
      threshold,
      logAlpha: values.map((v, i) => ({ name: `layer${i}`, values: v })),
    })[1]!.spec as unknown as Histograms;

  it("a panel's bars, count axis, subtitle and threshold rule", () => {
    const spec = histograms([[-8, -7.9, 7.9, 8]]);
    const [panel] = spec.concat;
    const bars = panel!.layer[0].data.values;
    expect(bars).toHaveLength(64);
    expect(bars[0]).toEqual({ from: -8, to: -7.75, count: 2 });
    expect(bars[63]).toEqual({ from: 7.75, to: 8, count: 2 });
    expect(panel!.layer[0].encoding.x.bin.step).toBe(0.25);
    expect(panel!.layer[0].encoding.x.scale.domain).toEqual([-8, 8]);
    // The highest bin holds 2: the count axis ends at 10.
    expect(panel!.layer[0].encoding.y.scale.domain).toEqual([0, 10]);
    expect(panel!.layer[0].encoding.y.axis.values).toEqual([0, 1, 10]);
    expect(panel!.title).toEqual({ text: 'layer0', subtitle: '4 weights, 50.0% with log α > 3' });
    expect(panel!.layer[1].data.values).toEqual([{ threshold: 3, label: 'threshold 3' }]);
    expect(spec.title.subtitle).toEqual([
      'log α per layer after training: 64 bins on [-8, 8], values outside counted in the end bins',
      'dashed rule: the pruning threshold log α = 3',
    ]);
  });

  it('the share above the threshold: one decimal from 10%, two digits below', () => {
    const subtitle = (values: number[], threshold = 3) =>
      histograms([values], threshold).concat[0]!.title.subtitle;
    expect(subtitle([5])).toBe('1 weight, 100.0% with log α > 3');
    expect(subtitle([5, ...new Array<number>(9).fill(0)])).toBe('10 weights, 10.0% with log α > 3');
    expect(subtitle([5, ...new Array<number>(199).fill(0)])).toBe(
      '200 weights, 0.50% with log α > 3',
    );
    expect(subtitle([5, ...new Array<number>(1999).fill(0)])).toBe(
      '2,000 weights, 0.050% with log α > 3',
    );
    expect(subtitle([0, 1], -2.5)).toBe('2 weights, 100.0% with log α > -2.5');
    expect(subtitle([0, 1])).toBe('2 weights, 0.0% with log α > 3');
  });

  it('a count of exactly 10 ends its axis at 10, 11 at 100', () => {
    const axis = (n: number) =>
      histograms([new Array<number>(n).fill(0)]).concat[0]!.layer[0].encoding.y;
    expect(axis(10).axis.values).toEqual([0, 1, 10]);
    expect(axis(11).axis.values).toEqual([0, 1, 10, 100]);
    expect(axis(11).scale.domain).toEqual([0, 100]);
    expect(axis(1).axis.values).toEqual([0, 1]);
  });

  it('up to three layers in a row, then two', () => {
    expect(histograms([[0]]).columns).toBe(1);
    expect(histograms([[0], [0], [0]]).columns).toBe(3);
    expect(histograms([[0], [0], [0], [0]]).columns).toBe(2);
  });
});

describe('the KL figure and the lower bound, by hand', () => {
  it("the KL figure's legend and subtitle carry spec/kl.md's numbers", () => {
    const spec = klFigureSpec() as unknown as {
      title: { subtitle: string[] };
      vconcat: [{ layer: [{ encoding: { color: { sort: string[] } } }] }];
    };
    expect(spec.vconcat[0].layer[0].encoding.color.sort).toEqual([
      'exact (Poisson series)',
      'Molchanov 2017 sigmoid, C = −k1',
      'Kingma 2015 cubic + 0.655, α ≤ 1',
    ]);
    expect(spec.title.subtitle).toEqual([
      'exact KL normalised to 0 as α → ∞; the cubic drops its constant, so it is drawn shifted by the',
      'midrange of exact − cubic on log α ≤ 0 (+ 0.655), and only there (it is fitted for α ≤ 1)',
      'max |sigmoid − exact| = 0.0094 at log α = -3.50; max |shifted cubic − exact| = 0.0201 at log α = -2.10',
      'dotted rule: the pruning threshold log α = 3',
    ]);
  });

  it('lowerBoundSpec: -(data term + KL) / N per epoch and run', () => {
    const spec = lowerBoundSpec('bound', [
      { label: 'a', trainSize: 100, epochs: [{ epoch: 1, dataTerm: 250, kl: 50 }] },
      {
        label: 'b',
        trainSize: 8,
        epochs: [
          { epoch: 1, dataTerm: 4, kl: 2 },
          { epoch: 2, dataTerm: 3, kl: -1 },
        ],
      },
    ]) as unknown as {
      title: { text: string };
      data: { values: unknown[] };
      encoding: { color: { sort: string[] } };
    };
    expect(spec.title.text).toBe('bound');
    expect(spec.data.values).toEqual([
      { run: 'a', epoch: 1, bound: -3 },
      { run: 'b', epoch: 1, bound: -0.75 },
      { run: 'b', epoch: 2, bound: -0.25 },
    ]);
    expect(spec.encoding.color.sort).toEqual(['a', 'b']);
  });
});

describe('compactJson and the plot files, by hand', () => {
  it('one line up to 120 characters with its indentation, else one entry per line', () => {
    expect(compactJson(undefined)).toBe('null');
    expect(compactJson({ a: [1, 2], b: 'x' })).toBe('{"a":[1,2],"b":"x"}');
    const fits = 'x'.repeat(116); // ["…"] is 120 characters
    expect(compactJson([fits])).toBe(`["${fits}"]`);
    const long = 'y'.repeat(117);
    expect(compactJson([long, 1])).toBe(`[\n  "${long}",\n  1\n]`);
    // Nested: the inner array's 119 characters plus its two of indentation do not fit.
    const inner = 'z'.repeat(115);
    expect(compactJson({ k: [inner], u: undefined })).toBe(`{\n  "k": [\n    "${inner}"\n  ]\n}`);
    const fitsInside = 'w'.repeat(114); // ["…"] is 118, indented 2: 120
    expect(compactJson({ k: [fitsInside], v: 'v'.repeat(10) })).toBe(
      `{\n  "k": ["${fitsInside}"],\n  "v": "${'v'.repeat(10)}"\n}`,
    );
  });

  it('writePlotFiles: an empty directory path, a render that fails, a directory it cannot create', async () => {
    const spec = trainingPlotSpecs(sampleInput())[2]!;
    await expectRejection(
      () => writePlotFiles([spec], ''),
      'invalid_argument',
      'outDir',
      'expected a directory path',
    );
    await expectRejection(
      () => writePlotFiles([spec], untyped(7)),
      'invalid_argument',
      'outDir',
      'expected a directory path',
    );
    const bad = join(dir, 'unrenderable');
    await expectRejection(
      () => writePlotFiles([{ name: 'broken', spec: untyped({ mark: { type: 'bogus' } }) }], bad),
      'unsupported',
      'plot',
      /^plot: cannot render the broken plot: ./,
    );
    expect(existsSync(bad)).toBe(false);
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    await expectRejection(
      () => writePlotFiles([spec], join(file, 'plots')),
      'io_error',
      'outDir',
      /^outDir: cannot create .*a-file\/plots: /,
    );
  });

  it('writePlotFiles awaits beforeEachRender once per plot, before rendering it', async () => {
    const out = join(dir, 'counted');
    let calls = 0;
    const paths = await writePlotFiles(trainingPlotSpecs(sampleInput()), out, () => {
      calls += 1;
      return Promise.resolve();
    });
    expect(calls).toBe(3);
    expect(paths).toHaveLength(6);
  });

  it('renderSvg hands Vega-Lite warnings to the list given, and none without one', async () => {
    const spec = untyped<TopLevelSpec>({
      data: { values: [{ a: 1 }] },
      mark: 'text',
      encoding: {
        x: { field: 'a', type: 'quantitative' },
        strokeDash: { field: 'a', type: 'nominal' },
      },
    });
    const warnings: string[] = [];
    expect(await renderSvg(spec, warnings)).toMatch(/^<svg/);
    expect(warnings).toEqual(['strokeDash dropped as it is incompatible with "text".']);
    expect(await renderSvg(spec)).toMatch(/^<svg/);
  });

  it("renderSvg keeps Vega's own runtime warnings too (Vega calls the logger with the view as `this`)", async () => {
    // A log scale over a domain that holds 0: Vega-Lite compiles it; Vega warns when it runs.
    const spec = untyped<TopLevelSpec>({
      data: { values: [{ a: 0 }, { a: 10 }] },
      mark: 'point',
      encoding: { x: { field: 'a', type: 'quantitative', scale: { type: 'log' } } },
    });
    const warnings: string[] = [];
    expect(await renderSvg(spec, warnings)).toMatch(/^<svg/);
    expect(warnings).toEqual(['Log scale domain includes zero: [0,10]']);
    expect(await renderSvg(spec)).toMatch(/^<svg/);
  });
});

describe('what each plot shows, in its spec', () => {
  const input = (): TrainingPlotsInput => ({
    ...sampleInput(),
    runs: [{ label: 'run', epochs: epochs(2, (e) => 10 * e) }],
    logAlpha: [{ name: 'dense0', values: [0, 4] }],
  });

  it('the plots are named curves, log-alpha and kl, in that order', () => {
    expect(trainingPlotSpecs(input()).map((p) => p.name)).toEqual(['curves', 'log-alpha', 'kl']);
  });

  it('curves: epochs as whole numbers, accuracy in percent, test solid and train dashed, compression on a log axis', () => {
    type Curves = {
      vconcat: [
        {
          encoding: Record<string, unknown>;
          layer: [
            { mark: unknown; encoding: { strokeDash: unknown } },
            { mark: unknown; encoding: unknown },
          ];
        },
        { mark: unknown; encoding: Record<string, unknown> },
      ];
    };
    const spec = trainingPlotSpecs(input())[0]!.spec as unknown as Curves;
    const [top, bottom] = spec.vconcat;
    const epochAxis = {
      field: 'epoch',
      type: 'quantitative',
      title: 'epoch',
      scale: { domain: [1, 2], nice: false },
      axis: { tickMinStep: 1, format: 'd' },
    };
    const color = { field: 'run', type: 'nominal', title: 'run', sort: ['run'] };
    expect(top.encoding['x']).toEqual(epochAxis);
    expect(top.encoding['y']).toEqual({
      field: 'accuracy',
      type: 'quantitative',
      title: 'accuracy',
      scale: { zero: false },
      axis: { format: '.1%' },
    });
    expect(top.encoding['color']).toEqual(color);
    // The first of a strokeDash domain is drawn solid: the test accuracy.
    expect(top.layer[0].encoding.strokeDash).toEqual({
      field: 'split',
      type: 'nominal',
      title: 'accuracy on',
      sort: ['test (eval forward)', 'train'],
      legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
    });
    expect(top.layer[1].mark).toEqual({ type: 'point', filled: true, size: 25 });
    // Hovering a point in the Vega editor names it (the SVG has no tooltips).
    expect(top.layer[1].encoding).toEqual({
      tooltip: [
        { field: 'run' },
        { field: 'split' },
        { field: 'epoch', type: 'quantitative' },
        { field: 'accuracy', type: 'quantitative', format: '.2%' },
      ],
    });
    expect(bottom.mark).toEqual({ type: 'line', point: true });
    expect(bottom.encoding['x']).toEqual(epochAxis);
    expect(bottom.encoding['color']).toEqual(color);
    expect(bottom.encoding['tooltip']).toEqual([
      { field: 'run' },
      { field: 'epoch', type: 'quantitative' },
      { field: 'compression', type: 'quantitative', format: '.1f' },
    ]);
    // Compression 20 at most: the axis runs 1, 10, 100.
    expect(bottom.encoding['y']).toEqual({
      field: 'compression',
      type: 'quantitative',
      title: 'compression (log scale)',
      scale: { type: 'log', domain: [1, 100] },
      axis: { values: [1, 10, 100], format: '~s' },
    });
  });

  it('log-alpha: bars on the binned log α axis, counts on a symlog axis, the threshold a dashed rule and a label', () => {
    type Panel = {
      layer: [
        { mark: unknown; encoding: Record<string, unknown> },
        { data: unknown; mark: unknown; encoding: unknown },
        { data: unknown; mark: unknown; encoding: unknown },
      ];
    };
    const spec = trainingPlotSpecs(input())[1]!.spec as unknown as { concat: Panel[] };
    const [bars, rule, label] = spec.concat[0]!.layer;
    expect(bars.mark).toEqual({ type: 'bar', color: '#4c78a8', binSpacing: 0 });
    expect(bars.encoding['x']).toEqual({
      field: 'from',
      type: 'quantitative',
      bin: { binned: true, step: 0.25 },
      title: 'log α',
      scale: { domain: [-8, 8], nice: false },
      axis: { format: '~g' },
    });
    expect(bars.encoding['x2']).toEqual({ field: 'to' });
    expect(bars.encoding['tooltip']).toEqual([
      { field: 'from', type: 'quantitative', title: 'from', format: '.2f' },
      { field: 'to', type: 'quantitative', title: 'to', format: '.2f' },
      { field: 'count', type: 'quantitative', title: 'weights' },
    ]);
    expect(bars.encoding['y']).toEqual({
      field: 'count',
      type: 'quantitative',
      title: 'weights (symlog)',
      scale: { type: 'symlog', domain: [0, 1] },
      axis: { values: [0, 1], labelExpr: "format(datum.value, '~s')" },
    });
    const at3 = { values: [{ threshold: 3, label: 'threshold 3' }] };
    expect(rule).toEqual({
      data: at3,
      mark: { type: 'rule', color: '#d62728', strokeWidth: 1.5, strokeDash: [5, 3] },
      encoding: { x: { field: 'threshold', type: 'quantitative' } },
    });
    expect(label).toEqual({
      data: at3,
      mark: { type: 'text', color: '#d62728', align: 'left', dx: 4, y: 8, fontSize: 11 },
      encoding: { x: { field: 'threshold', type: 'quantitative' }, text: { field: 'label' } },
    });
  });

  it('kl: the three curves on [-8, 8], the cubic on log α <= 0 only, the errors approx − exact', () => {
    type Row = { logAlpha: number; curve: string; kl?: number; error?: number };
    const spec = klFigureSpec() as unknown as {
      title: { text: string };
      vconcat: [
        {
          layer: [
            { data: { values: Row[] }; encoding: Record<string, unknown> },
            { data: unknown; mark: unknown; encoding: unknown },
          ];
        },
        {
          data: { values: Row[] };
          layer: [{ mark: unknown; encoding: unknown }, { encoding: Record<string, unknown> }];
        },
      ];
    };
    expect(spec.title.text).toBe('KL(q ‖ p) per weight, in nats (KL itself, not the papers’ −KL)');
    const [top, bottom] = spec.vconcat;
    const curves = top.layer[0].data.values;
    const exact = 'exact (Poisson series)';
    const sigmoid = 'Molchanov 2017 sigmoid, C = −k1';
    const cubic = 'Kingma 2015 cubic + 0.655, α ≤ 1';
    const of = (rows: Row[], curve: string) => rows.filter((r) => r.curve === curve);
    // 321 points from -8 by 0.05; the cubic on the 161 of them up to 0.
    expect(of(curves, exact).map((r) => r.logAlpha)).toEqual(
      Array.from({ length: 321 }, (_, i) => Math.round(i * 5 - 800) / 100),
    );
    expect(of(curves, sigmoid)).toHaveLength(321);
    expect(of(curves, cubic).map((r) => r.logAlpha)).toEqual(
      Array.from({ length: 161 }, (_, i) => Math.round(i * 5 - 800) / 100),
    );
    const errors = bottom.data.values;
    expect(of(errors, exact)).toEqual([]);
    // At log α = 0 (row 160 of each curve): each error is its curve minus the exact KL.
    const exactAt0 = of(curves, exact)[160]!;
    expect(exactAt0.logAlpha).toBe(0);
    expect(exactAt0.kl).toBe(klExact(0));
    for (const name of [sigmoid, cubic]) {
      const curveAt0 = of(curves, name)[160]!;
      expect(of(errors, name)[160]).toEqual({
        logAlpha: 0,
        curve: name,
        error: curveAt0.kl! - exactAt0.kl!,
      });
    }
    // The cubic drawn is the cubic plus 0.655 (rounded): within 5e-4 of klVdCubic(0) + 0.655.
    expect(Math.abs(of(curves, cubic)[160]!.kl! - (klVdCubic(0) + 0.655))).toBeLessThan(5e-4);
    const x = {
      field: 'logAlpha',
      type: 'quantitative',
      title: 'log α',
      scale: { domain: [-8, 8], nice: false },
    };
    const color = {
      field: 'curve',
      type: 'nominal',
      title: null,
      sort: [exact, sigmoid, cubic],
      scale: { domain: [exact, sigmoid, cubic], range: ['#222222', '#d62728', '#1f77b4'] },
      legend: { orient: 'top-right' },
    };
    expect(top.layer[0].encoding).toEqual({
      x,
      y: { field: 'kl', type: 'quantitative', title: 'KL per weight (nats)' },
      color,
      // Exact solid, the sigmoid dashed, the cubic dotted.
      strokeDash: {
        field: 'curve',
        type: 'nominal',
        title: null,
        scale: {
          domain: [exact, sigmoid, cubic],
          range: [
            [1, 0],
            [6, 3],
            [2, 2],
          ],
        },
      },
    });
    expect(top.layer[1]).toEqual({
      data: { values: [{ threshold: 3 }] },
      mark: { type: 'rule', color: '#888888', strokeDash: [2, 3] },
      encoding: { x: { field: 'threshold', type: 'quantitative' } },
    });
    expect(bottom.layer[0]).toEqual({
      mark: { type: 'rule', color: '#888888' },
      encoding: { y: { datum: 0 } },
    });
    expect(bottom.layer[1].encoding).toEqual({
      x,
      y: { field: 'error', type: 'quantitative', title: 'approx − exact (nats)' },
      color,
    });
  });

  it('lowerBoundSpec: a line per run over whole epochs, the bound in nats', () => {
    const spec = lowerBoundSpec('t', [
      { label: 'a', trainSize: 10, epochs: [{ epoch: 1, dataTerm: 1, kl: 1 }] },
    ]) as unknown as {
      title: { subtitle: string[] };
      mark: unknown;
      encoding: Record<string, unknown>;
    };
    expect(spec.title.subtitle).toEqual([
      'variational lower bound per training example: -(N mean CE + KL) / N, means over each epoch',
      'the whole KL at every epoch, also during the warm-up that weights it less in the loss',
    ]);
    expect(spec.mark).toEqual({ type: 'line', point: true });
    expect(spec.encoding['x']).toEqual({
      field: 'epoch',
      type: 'quantitative',
      title: 'epoch',
      axis: { tickMinStep: 1, format: 'd' },
    });
    expect(spec.encoding['y']).toEqual({
      field: 'bound',
      type: 'quantitative',
      title: 'lower bound per example (nats)',
      scale: { zero: false },
    });
    expect(spec.encoding['color']).toEqual({
      field: 'run',
      type: 'nominal',
      title: 'run',
      sort: ['a'],
    });
    expect(spec.encoding['tooltip']).toEqual([
      { field: 'run' },
      { field: 'epoch', type: 'quantitative' },
      { field: 'bound', type: 'quantitative', format: '.4f' },
    ]);
  });

  it('a value on an edge that the division puts one bin low goes to the bin the edges say', () => {
    // [0, 1] in 100 bins: 0.29 / 0.01 is 28.999..., but 0.29 is edge 29 exactly.
    const h = logAlphaHistogram([0.29], [0, 1], 0.5, 100);
    expect(h.edges[29]).toBe(0.29);
    expect(h.counts[29]).toBe(1);
  });

  it('compactJson: a long string stays a string', () => {
    const long = 's'.repeat(130);
    expect(compactJson(long)).toBe(`"${long}"`);
    expect(compactJson([])).toBe('[]');
  });

  it('writePlotFiles: an output path that is a file is refused before any rendering', async () => {
    const out = join(dir, 'a-file-in-the-way');
    writeFileSync(out, 'x');
    let renders = 0;
    await expectRejection(
      () =>
        writePlotFiles(trainingPlotSpecs(input()), out, () => {
          renders += 1;
          return Promise.resolve();
        }),
      'io_error',
      'outDir',
      `${out} exists and is not a directory`,
    );
    expect(renders).toBe(0);
  });

  it('writePlotFiles: each .vl.json is the spec as JSON plus a final newline', async () => {
    const out = join(dir, 'newline');
    const [curves] = trainingPlotSpecs(input());
    await writePlotFiles([curves!], out);
    const text = readFileSync(join(out, 'curves.vl.json'), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.endsWith('}\n\n')).toBe(false);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(curves!.spec)));
  });
});
