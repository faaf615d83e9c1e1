/**
 * What the runner talks to: a "port" answers cases of the ops it declares.
 * Three kinds exist: a child process speaking the JSON-lines protocol
 * (processPort.ts), a results file written beforehand (resultsPort.ts) and a
 * function in this process (functionPort below), which is how the fast
 * implementation, or any JavaScript implementation, is checked.
 */
import { encodeTensor } from '../golden/encoding.js';
import type { Tensor } from '../tensor.js';
import type { Dtype } from './golden.js';

export interface PortInfo {
  /** The port's own name (from its hello, or chosen by the caller). */
  readonly name: string;
  /** How it was reached: the command line, the results file, or "in-process". */
  readonly source: string;
  readonly kind: 'process' | 'results' | 'function';
  /** The ops it answers; cases of other ops are skipped, not failed. */
  readonly ops: readonly string[];
  /** The profile it says it implements (null: not declared). */
  readonly profile: string | null;
  /** Picks the golden file's float64 or float32 tolerance. */
  readonly dtype: Dtype;
}

/** One case, in both forms: as stored (encoded numbers) and decoded. */
export interface PortCase {
  readonly op: string;
  readonly caseId: number;
  readonly rawInputs: Readonly<Record<string, unknown>>;
  readonly inputs: Readonly<Record<string, unknown>>;
}

/**
 * A port's answer to one case: its outputs (numbers may be encoded), the
 * error it reported, or none at all (a results file without a usable entry
 * for the case: `message` says why). Each fails the case but the first.
 */
export type PortAnswer =
  | { readonly kind: 'outputs'; readonly outputs: unknown }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'none'; readonly message: string };

export interface Port {
  readonly info: PortInfo;
  /**
   * Answer one case. Throws CheckInfrastructureError('port') when the port
   * can no longer be talked to (crash, hang, junk, wrong id); the run stops.
   */
  answer(c: PortCase): Promise<PortAnswer>;
  /**
   * Release the port (a process is told "bye" and killed if it lingers;
   * with `graceful` false, after a failure, it is killed at once). Safe to call twice.
   */
  close(graceful?: boolean): Promise<void>;
  /** The last lines the port wrote to stderr (empty for non-process ports). */
  stderrTail(): readonly string[];
  /** Things worth telling the user that are not failures (e.g. an unknown op declared). */
  readonly notes: string[];
  /**
   * The case ids the port holds answers for, per op, when it holds them
   * beforehand (a results file): the runner reports the ids the golden set
   * does not have.
   */
  caseIds?(op: string): readonly string[];
}

/** An implementation inside this process: `run(op, inputs)` returns the op's outputs by name. */
export interface FunctionPortSpec {
  readonly name: string;
  readonly ops: readonly string[];
  readonly profile: string;
  readonly dtype: Dtype;
  run(
    op: string,
    inputs: Record<string, unknown>,
  ): Record<string, Tensor> | Promise<Record<string, Tensor>>;
}

/**
 * Wrap an in-process implementation as a port. Its inputs are decoded (plain
 * numbers, `Infinity` and `NaN` included) and deep-copied per call, so it may
 * not alter the golden data; an exception it throws is that case's error
 * answer (a failed case), not an infrastructure failure.
 */
export function functionPort(spec: FunctionPortSpec): Port {
  return {
    info: {
      name: spec.name,
      source: 'in-process',
      kind: 'function',
      ops: [...spec.ops],
      profile: spec.profile,
      dtype: spec.dtype,
    },
    notes: [],
    async answer(c: PortCase): Promise<PortAnswer> {
      try {
        const outputs = await spec.run(c.op, structuredClone(c.inputs) as Record<string, unknown>);
        // Encoded like a process's answer, so every port is compared by the same decoder.
        const encoded: Record<string, unknown> = {};
        for (const [name, t] of Object.entries(outputs)) encoded[name] = encodeTensor(t);
        return { kind: 'outputs', outputs: encoded };
      } catch (e) {
        return { kind: 'error', message: e instanceof Error ? e.message : String(e) };
      }
    },
    async close() {},
    stderrTail: () => [],
  };
}
