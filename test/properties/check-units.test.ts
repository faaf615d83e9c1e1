/**
 * The checker's small modules on their own (spec/check.md): the numbers of a
 * report (`format.ts`), its one error type (`errors.ts`), a results file as
 * a port (`resultsPort.ts`, spec/check.md#results-file) and the translation
 * of a cross-profile run (`translate.ts`, spec/check.md#cross-profile-runs).
 * check.test.ts runs them end to end through `vdspec check`; this file pins
 * each rule with literal values in a second, and is what `npm run mutate`
 * runs against these modules (spec/mutation.md).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  CheckInfrastructureError,
  isCheckInfrastructureError,
  messageOf,
} from '../../src/check/errors.js';
import { counted, formatNumber, formatShort } from '../../src/check/format.js';
import type { PortCase } from '../../src/check/port.js';
import { openResultsPort, RESULTS_SCHEMA } from '../../src/check/resultsPort.js';
import { noiseTranslation, translateAnswer, translateCase } from '../../src/check/translate.js';
import { PROFILES } from '../../src/profiles.js';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdspec-check-units-'));
  temps.push(dir);
  return dir;
}
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** What `run` throws: a CheckInfrastructureError of this kind and message. */
function expectInfrastructure(run: () => unknown, kind: string, message: string | RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CheckInfrastructureError);
  const error = caught as CheckInfrastructureError;
  expect(error.kind).toBe(kind);
  if (typeof message === 'string') expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
}

describe('spec/check.md#report: the numbers of a report', () => {
  it('formatNumber: the shortest round-trip form, with the specials named', () => {
    expect([NaN, Infinity, -Infinity, -0, 0, 0.1, -2.5e-300, 1e21].map(formatNumber)).toEqual([
      'NaN',
      'inf',
      '-inf',
      '-0',
      '0',
      '0.1',
      '-2.5e-300',
      '1e+21',
    ]);
  });

  it('formatShort: three significant digits, plain from 1e-3 up to 1e5, exponential outside', () => {
    const cases: [number | null, string][] = [
      [null, '-'],
      [NaN, 'NaN'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
      [0, '0'],
      [-0, '0'],
      [1e-3, '0.001'],
      [-1e-3, '-0.001'],
      [0.00099949, '9.99e-4'],
      [1.23456, '1.23'],
      [-1.23456, '-1.23'],
      [1.5, '1.5'],
      // Rounded to three digits it is 1e5, written plainly since 99999 is below 1e5.
      [99999, '100000'],
      [99949, '99900'],
      [1e5, '1.00e+5'],
      [-1e5, '-1.00e+5'],
      [123456, '1.23e+5'],
    ];
    for (const [v, text] of cases) expect(formatShort(v), String(v)).toBe(text);
  });

  it('counted: the count with its noun, plural unless 1', () => {
    expect(counted(1, 'case')).toBe('1 case');
    expect(counted(0, 'case')).toBe('0 cases');
    expect(counted(2, 'case')).toBe('2 cases');
    expect(counted(2, 'entry', 'entries')).toBe('2 entries');
    expect(counted(1, 'entry', 'entries')).toBe('1 entry');
  });
});

describe("spec/check.md#exit-codes: the checker's one error type", () => {
  it('carries its kind and message, and says what it is', () => {
    const e = new CheckInfrastructureError('port', 'the port hung');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('CheckInfrastructureError');
    expect(e.kind).toBe('port');
    expect(e.message).toBe('the port hung');
    expect(isCheckInfrastructureError(e)).toBe(true);
    expect(isCheckInfrastructureError(new Error('x'))).toBe(false);
    expect(isCheckInfrastructureError('x')).toBe(false);
  });

  it('messageOf: the message of an Error, anything else as a string, never a stack', () => {
    expect(messageOf(new TypeError('bad type'))).toBe('bad type');
    expect(messageOf('plain')).toBe('plain');
    expect(messageOf(42)).toBe('42');
    expect(messageOf(null)).toBe('null');
  });
});

describe('spec/check.md#results-file: a results file as a port', () => {
  const entryOf = (path: string, results: unknown, extra: Record<string, unknown> = {}) => {
    writeFileSync(
      path,
      JSON.stringify({
        schema: RESULTS_SCHEMA,
        dtype: 'float32',
        profile: 'molchanov2017',
        results,
        ...extra,
      }),
    );
    return openResultsPort(path);
  };
  const caseOf = (op: string, caseId: number): PortCase => ({
    op,
    caseId,
    inputs: {},
    rawInputs: {},
  });

  it('declares the ops of the file, answers each case from its entry, and lists the case ids', async () => {
    const dir = tempDir();
    const path = join(dir, 'results.json');
    const outputs = { y: { shape: [1], data: [0.5] } };
    const port = entryOf(path, {
      'kl.approx': { '0': { outputs }, '2': { error: 'not implemented' } },
      'svd.mask': {},
    });
    expect(RESULTS_SCHEMA).toBe('vdspec-results/1');
    expect(port.info).toEqual({
      name: path,
      source: path,
      kind: 'results',
      ops: ['kl.approx', 'svd.mask'],
      profile: 'molchanov2017',
      dtype: 'float32',
    });
    expect(port.notes).toEqual([]);
    expect(port.stderrTail()).toEqual([]);
    expect(await port.answer(caseOf('kl.approx', 0))).toEqual({ kind: 'outputs', outputs });
    expect(await port.answer(caseOf('kl.approx', 2))).toEqual({
      kind: 'error',
      message: 'not implemented',
    });
    const none = { kind: 'none', message: 'the results file has no entry for this case' };
    expect(await port.answer(caseOf('kl.approx', 1))).toEqual(none);
    expect(await port.answer(caseOf('svd.mask', 0))).toEqual(none);
    expect(await port.answer(caseOf('kl.exact', 0))).toEqual(none);
    // An inherited property is no entry.
    expect(
      await port.answer({ ...caseOf('kl.approx', 0), caseId: 'constructor' as never }),
    ).toEqual(none);
    expect(port.caseIds!('kl.approx')).toEqual(['0', '2']);
    expect(port.caseIds!('svd.mask')).toEqual([]);
    expect(port.caseIds!('kl.exact')).toEqual([]);
    expect(port.caseIds!('toString')).toEqual([]);
    await port.close();
    expect(entryOf(path, { 'svd.mask': {} }, { name: 'my-port' }).info.name).toBe('my-port');
  });

  it('a malformed entry is no answer, saying what an entry must be', async () => {
    const path = join(tempDir(), 'results.json');
    const port = entryOf(path, { 'kl.approx': { '0': { result: 1 } } });
    expect(await port.answer(caseOf('kl.approx', 0))).toEqual({
      kind: 'none',
      message:
        'the results file\'s entry for this case is malformed (expected {"outputs": {...}} or {"error": "..."})',
    });
  });

  it('refuses a missing, non-JSON or off-schema file, naming it (kind "results")', () => {
    const dir = tempDir();
    const missing = join(dir, 'missing.json');
    expectInfrastructure(
      () => openResultsPort(missing),
      'results',
      `cannot read results file ${missing}: ENOENT: no such file or directory, open '${missing}'`,
    );
    const cut = join(dir, 'cut.json');
    writeFileSync(cut, '{"schema": ');
    expectInfrastructure(
      () => openResultsPort(cut),
      'results',
      new RegExp(`^results file ${cut} is not valid JSON: .+`),
    );
    const off = join(dir, 'off.json');
    writeFileSync(off, JSON.stringify({ schema: RESULTS_SCHEMA, dtype: 'float16' }));
    expectInfrastructure(
      () => openResultsPort(off),
      'results',
      new RegExp(`^results file ${off}: /`),
    );
  });
});

describe('spec/check.md#cross-profile-runs: translating the noise parameter', () => {
  const molchanov = PROFILES.molchanov2017;
  const deepbayes = PROFILES['deepbayes-pytorch'];

  it('none for the same profile, no profile, or one of the same noise parameter', () => {
    expect(noiseTranslation(null, molchanov)).toEqual({ translation: null, notes: [] });
    expect(noiseTranslation('molchanov2017', molchanov)).toEqual({ translation: null, notes: [] });
    expect(noiseTranslation('pytorch-ard', molchanov)).toEqual({ translation: null, notes: [] });
  });

  it('an unknown profile is sent untranslated, with a note', () => {
    expect(noiseTranslation('mine', molchanov)).toEqual({
      translation: null,
      notes: [
        'the port declares profile "mine", which vdspec does not know: its inputs are sent as the molchanov2017 golden files name them (log_sigma2), untranslated',
      ],
    });
  });

  it('log_sigma2 and log_sigma, each way, with the rules written as the spec writes them', () => {
    expect(noiseTranslation('deepbayes-pytorch', molchanov)).toEqual({
      translation: {
        golden: 'log_sigma2',
        port: 'log_sigma',
        factor: 0.5,
        input: 'log_sigma = log_sigma2 / 2',
        output: 'grad_log_sigma2 = grad_log_sigma / 2',
      },
      notes: [
        "the port learns log_sigma (deepbayes-pytorch), the molchanov2017 golden files log_sigma2: every log_sigma2 input is sent as log_sigma = log_sigma2 / 2, and the port's grad_log_sigma is read back as grad_log_sigma2 = grad_log_sigma / 2",
      ],
    });
    expect(noiseTranslation('molchanov2017', deepbayes).translation).toEqual({
      golden: 'log_sigma',
      port: 'log_sigma2',
      factor: 2,
      input: 'log_sigma2 = 2 * log_sigma',
      output: 'grad_log_sigma = 2 * grad_log_sigma2',
    });
  });

  it('refuses a port of the other algorithm, both ways (kind "usage")', () => {
    expectInfrastructure(
      () => noiseTranslation('kingma2015', molchanov),
      'usage',
      'the port implements kingma2015 (VD, learns log_alpha) and cannot be checked against molchanov2017 (SVD, learns log_sigma2): no translation between the two exists; check it against a profile of its own algorithm',
    );
    expectInfrastructure(
      () => noiseTranslation('deepbayes-pytorch', PROFILES.kingma2015),
      'usage',
      /^the port implements deepbayes-pytorch \(SVD, learns log_sigma\) and cannot be checked against kingma2015 \(VD, learns log_alpha\)/,
    );
  });

  // Made in each test: a failure of noiseTranslation then fails a test, not the file's loading.
  const halving = () => noiseTranslation('deepbayes-pytorch', molchanov).translation!;

  it('a case: the golden noise input renamed and scaled, decoded and encoded; other inputs kept in order', () => {
    const c: PortCase = {
      op: 'svd.vjp',
      caseId: 3,
      inputs: {
        x: { shape: [1], data: [7] },
        log_sigma2: { shape: [3], data: [-8, -0, Infinity] },
        theta: { shape: [1], data: [1] },
      },
      rawInputs: {
        x: { shape: [1], data: [7] },
        log_sigma2: { shape: [3], data: [-8, '-0', 'Infinity'] },
        theta: { shape: [1], data: [1] },
      },
    };
    const { portCase, translated } = translateCase(halving(), c);
    expect(translated).toEqual(['input log_sigma2 sent as log_sigma = log_sigma2 / 2']);
    expect(portCase.op).toBe('svd.vjp');
    expect(portCase.caseId).toBe(3);
    expect(Object.keys(portCase.inputs)).toEqual(['x', 'log_sigma', 'theta']);
    expect(portCase.inputs['log_sigma']).toEqual({ shape: [3], data: [-4, -0, Infinity] });
    expect(Object.is((portCase.inputs['log_sigma'] as { data: number[] }).data[1], -0)).toBe(true);
    expect(portCase.inputs['x']).toBe(c.inputs['x']);
    expect(Object.keys(portCase.rawInputs)).toEqual(['x', 'log_sigma', 'theta']);
    expect(portCase.rawInputs['log_sigma']).toEqual({ shape: [3], data: [-4, '-0', 'Infinity'] });
    expect(c.inputs['log_sigma2']).toEqual({ shape: [3], data: [-8, -0, Infinity] });

    const noNoise: PortCase = { op: 'kl.approx', caseId: 0, inputs: { a: 1 }, rawInputs: { a: 1 } };
    expect(translateCase(halving(), noNoise)).toEqual({ portCase: noNoise, translated: [] });
  });

  it("an answer: the port's noise gradient scaled back under the golden name, winning over a golden-named one", () => {
    const read = 'output grad_log_sigma read as grad_log_sigma2 = grad_log_sigma / 2';
    const expected = ['y', 'grad_log_sigma2'];
    const answer = {
      kind: 'outputs' as const,
      outputs: {
        y: { shape: [1], data: [1] },
        grad_log_sigma2: { shape: [1], data: [99] },
        grad_log_sigma: { shape: [2], data: [3, '-Infinity'] },
      },
    };
    const back = translateAnswer(halving(), expected, answer);
    expect(back.translated).toEqual([read]);
    expect(back.answer).toEqual({
      kind: 'outputs',
      outputs: {
        y: { shape: [1], data: [1] },
        grad_log_sigma2: { shape: [2], data: [1.5, '-Infinity'] },
      },
    });
    expect(Object.keys((back.answer as { outputs: object }).outputs)).toEqual([
      'y',
      'grad_log_sigma2',
    ]);

    // Not decodable: passed on as given, under the golden name, for the comparison to report.
    const junk = { kind: 'outputs' as const, outputs: { grad_log_sigma: 'junk' } };
    expect(translateAnswer(halving(), expected, junk)).toEqual({
      answer: { kind: 'outputs', outputs: { grad_log_sigma2: 'junk' } },
      translated: [read],
    });
    // Not given: stays missing.
    const without = { kind: 'outputs' as const, outputs: { y: 1 } };
    expect(translateAnswer(halving(), expected, without)).toStrictEqual({
      answer: without,
      translated: [read],
    });
    // Outputs that are no object are left to the comparison.
    for (const outputs of [null, [1], 'x']) {
      const odd = { kind: 'outputs' as const, outputs };
      expect(translateAnswer(halving(), expected, odd)).toEqual({
        answer: odd,
        translated: [read],
      });
    }
    // No noise gradient expected, or no outputs at all: nothing to translate.
    expect(translateAnswer(halving(), ['y'], answer)).toEqual({ answer, translated: [] });
    const error = { kind: 'error' as const, message: 'boom' };
    expect(translateAnswer(halving(), expected, error)).toEqual({ answer: error, translated: [] });
  });
});
