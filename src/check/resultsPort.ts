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
import type { Dtype } from './golden.js';
import { schemaProblem } from '../schema.js';

export const RESULTS_SCHEMA = 'vdspec-results/1';

function fail(message: string): never {
  throw new CheckInfrastructureError('results', message);
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
  const problem = schemaProblem('results', json, `results file ${path}`);
  if (problem !== null) fail(problem);
  const { dtype, profile, results, name } = json as {
    dtype: Dtype;
    profile: string;
    results: Record<string, Record<string, unknown>>;
    name?: string;
  };
  const byOp = results;
  return {
    info: {
      name: name ?? path,
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
      const malformed = schemaProblem('results', entry, 'entry', 'entry');
      if (malformed !== null) {
        return {
          kind: 'none',
          message:
            'the results file\'s entry for this case is malformed (expected {"outputs": {...}} or {"error": "..."})',
        };
      }
      const answer = entry as { outputs?: unknown; error?: string };
      return answer.outputs !== undefined
        ? { kind: 'outputs', outputs: answer.outputs }
        : { kind: 'error', message: answer.error! };
    },
    caseIds: (op) => (Object.hasOwn(byOp, op) ? Object.keys(byOp[op]!) : []),
    async close() {},
    stderrTail: () => [],
  };
}
