// vdspec port kit for Node: the protocol of spec/check.md, so that a port is a table of ops.
// Copy this file next to your port; it depends on nothing but Node's standard library.
//
//   import { PortError, serve } from './vdspec_kit.mjs';
//   serve({
//     name: 'my-port', profile: 'molchanov2017', dtype: 'float64',
//     ops: { 'schedule.kl_weight': ({ epoch }) => ({ kl_weight: Math.min(Math.max((epoch - 5) / 15, 0), 1) }) },
//   });
//
// Each case's inputs are decoded: a {shape, data} tensor keeps its shape and gets its data as
// numbers ("NaN", "Infinity", "-Infinity", "-0" decoded), and so do plain encoded numbers; other
// values are passed as JSON gives them. An op returns {name: output}, each output a {shape, data}
// tensor or a plain number (shape []). A PortError is answered as that case's error; any other
// exception as an internal error (stack on stderr). serve() resolves with 0 at "bye".
import { createInterface } from 'node:readline';

export const PROTOCOL = 'vdspec-port/1';

const SPECIAL = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 };

/** An input the port rejects: answered as the case's error, not a crash. */
export class PortError extends Error {}

/** A number of the golden encoding (spec/check.md#numbers). */
export function decodeNumber(value, name = 'value') {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && Object.hasOwn(SPECIAL, value)) return SPECIAL[value];
  throw new PortError(`${name}: expected a number`);
}

export function encodeNumber(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (Object.is(x, -0)) return '-0';
  return x;
}

const isTensor = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && 'shape' in v && 'data' in v;

/** A tensor input as {shape, data: number[]}, checked. */
export function decodeTensor(value, name = 'value') {
  if (!isTensor(value) || !Array.isArray(value.shape) || !Array.isArray(value.data)) {
    throw new PortError(`${name}: expected a tensor {shape, data}`);
  }
  const size = value.shape.reduce((a, d) => a * d, 1);
  if (value.data.length !== size) {
    throw new PortError(
      `${name}: shape [${value.shape}] does not hold ${value.data.length} values`,
    );
  }
  return { shape: [...value.shape], data: value.data.map((v) => decodeNumber(v, name)) };
}

export function decodeInputs(inputs) {
  const out = {};
  for (const [name, value] of Object.entries(inputs ?? {})) {
    if (isTensor(value)) out[name] = decodeTensor(value, name);
    else if (typeof value === 'string' && Object.hasOwn(SPECIAL, value)) out[name] = SPECIAL[value];
    else out[name] = value;
  }
  return out;
}

export function encodeTensor(value) {
  if (typeof value === 'number') return { shape: [], data: [encodeNumber(value)] };
  if (isTensor(value)) return { shape: [...value.shape], data: [...value.data].map(encodeNumber) };
  throw new TypeError(`cannot encode an output of type ${typeof value}`);
}

/** The answer to one case message: a result or an error. */
export async function answer(ops, message) {
  const { id, op } = message;
  try {
    if (!Object.hasOwn(ops, op)) throw new PortError(`op "${op}" is not implemented by this port`);
    const outputs = await ops[op](decodeInputs(message.inputs));
    const encoded = {};
    for (const [k, v] of Object.entries(outputs)) encoded[k] = encodeTensor(v);
    return { type: 'result', id, outputs: encoded };
  } catch (e) {
    if (e instanceof PortError) return { type: 'error', id, message: e.message };
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    return { type: 'error', id, message: `internal error: ${e instanceof Error ? e.message : e}` };
  }
}

/** Speak the protocol on stdin/stdout until "bye" (or the end of input); resolves with 0. */
export async function serve({ ops, name, profile, dtype = 'float64' }) {
  const send = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const message = JSON.parse(line);
    if (message.type === 'hello') {
      if (message.protocol !== PROTOCOL) {
        process.stderr.write(
          `vdspec_kit: the runner speaks ${message.protocol}, this kit ${PROTOCOL}\n`,
        );
      }
      send({
        type: 'hello',
        protocol: PROTOCOL,
        name,
        ops: Object.keys(ops).sort(),
        profile,
        dtype,
      });
    } else if (message.type === 'case') {
      send(await answer(ops, message));
    } else if (message.type === 'bye') {
      break;
    }
  }
  return 0;
}
