/**
 * A results file as a port (spec/check.md#results-file): a port author who
 * cannot (or would rather not) keep a process talking to the runner writes
 * every answer to one JSON file and passes `--results FILE`.
 *
 *   { "schema": "vdspec-results/1", "dtype": "float64" | "float32", "profile": "<name>",
 *     "results": { "<op>": { "<case id>": { "outputs": {...} } | { "error": "message" } } } }
 *
 * The ops present in `results` are the ops the port declares; a case of such
 * an op with no entry fails ("no answer"), an op absent from the file is
 * skipped, and an entry for a case id the golden file does not have fails the
 * check too (the runner reports it, from caseIds).
 */
import { readFileSync } from 'node:fs';
import { CheckInfrastructureError, messageOf } from './errors.js';
import type { Port, PortAnswer, PortCase } from './port.js';

export const RESULTS_SCHEMA = 'vdspec-results/1';

function fail(message: string): never {
  throw new CheckInfrastructureError('results', message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function openResultsPort(path: string): Port {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`cannot read results file ${path}: ${messageOf(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`results file ${path} is not valid JSON: ${messageOf(e)}`);
  }
  if (!isRecord(json)) fail(`results file ${path}: expected a JSON object`);
  if (json['schema'] !== RESULTS_SCHEMA) {
    fail(
      `results file ${path}: schema ${JSON.stringify(json['schema'])}, expected "${RESULTS_SCHEMA}"`,
    );
  }
  const dtype = json['dtype'];
  if (dtype !== 'float64' && dtype !== 'float32') {
    fail(`results file ${path}: "dtype" must be "float64" or "float32"`);
  }
  const profile = json['profile'];
  if (typeof profile !== 'string') fail(`results file ${path}: "profile" must be a string`);
  const results = json['results'];
  if (!isRecord(results)) fail(`results file ${path}: "results" must be an object of ops`);
  for (const [op, cases] of Object.entries(results)) {
    if (!isRecord(cases))
      fail(`results file ${path}: results["${op}"] must be an object of case ids`);
  }
  // An empty file would skip every case and pass: in a port's CI that hides everything.
  if (Object.keys(results).length === 0) {
    fail(`results file ${path}: "results" holds no op, so nothing could be checked`);
  }
  const byOp = results as Record<string, Record<string, unknown>>;
  return {
    info: {
      name: typeof json['name'] === 'string' ? json['name'] : path,
      source: path,
      kind: 'results',
      ops: Object.keys(byOp),
      profile,
      dtype,
    },
    notes: [],
    async answer(c: PortCase): Promise<PortAnswer> {
      const cases = byOp[c.op];
      const entry =
        cases !== undefined && Object.hasOwn(cases, String(c.caseId))
          ? cases[String(c.caseId)]
          : undefined;
      if (entry === undefined) {
        return { kind: 'none', message: 'the results file has no entry for this case' };
      }
      if (isRecord(entry) && Object.hasOwn(entry, 'outputs')) {
        return { kind: 'outputs', outputs: entry['outputs'] };
      }
      if (isRecord(entry) && typeof entry['error'] === 'string') {
        return { kind: 'error', message: entry['error'] };
      }
      return {
        kind: 'none',
        message:
          'the results file\'s entry for this case is malformed (expected {"outputs": {...}} or {"error": "..."})',
      };
    },
    caseIds: (op) => (Object.hasOwn(byOp, op) ? Object.keys(byOp[op]!) : []),
    async close() {},
    stderrTail: () => [],
  };
}
