// vdspec port kit for Node: the protocol of spec/check.md, so that a port is a table of ops.
// Copy this file next to your port; it depends on nothing but Node's standard library (and
// ajv, for validation, when it can be imported).
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
//
// Validation (spec/check.md#port-kit): when ajv can be imported (from beside this file, or as the
// dependency of an installed vdspec), every message received and sent is checked against
// spec/schemas/port-message.schema.json, found at $VDSPEC_PORT_SCHEMA (`vdspec check` sets it for
// its port), next to this file, in the vdspec tree this file sits in, or in the installed vdspec.
// An answer that does not match (an output that is not an encoded tensor) is sent as that case's
// error, naming the place; a bad hello, or a runner message that does not match, ends serve()
// with 2 (and process.exitCode 2). Without ajv the kit says so once on stderr and does not
// validate; VDSPEC_KIT_VALIDATE=1 makes that an error, VDSPEC_KIT_VALIDATE=0 turns validation off.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';

export const PROTOCOL = 'vdspec-port/1';

const SPECIAL = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 };

/** An input the port rejects: answered as the case's error, not a crash. */
export class PortError extends Error {}

/** A message that does not match the protocol's schema, or validation that cannot be done. */
export class ProtocolError extends Error {}

export const SCHEMA_FILE = 'port-message.schema.json';

// The schema's definition of each message, by type: as the runner sends it, as a port sends it.
const RECEIVED = { hello: 'hello', case: 'case', bye: 'bye' };
const SENT = { hello: 'portHello', result: 'portResult', error: 'error' };

const here = dirname(fileURLToPath(import.meta.url));

/** vdspec's own directory when it is installed where this file can resolve it, else null. */
function installedVdspec() {
  try {
    return dirname(createRequire(import.meta.url).resolve('vdspec/package.json'));
  } catch {
    return null;
  }
}

async function importAjv() {
  let mod;
  try {
    mod = await import('ajv/dist/2020.js');
  } catch (error) {
    const vdspec = installedVdspec();
    if (vdspec === null) throw error;
    const path = createRequire(join(vdspec, 'package.json')).resolve('ajv/dist/2020.js');
    mod = await import(pathToFileURL(path).href);
  }
  return mod.Ajv2020 ?? mod.default;
}

function schemaPath() {
  const vdspec = installedVdspec();
  const candidates = [
    process.env.VDSPEC_PORT_SCHEMA,
    join(here, SCHEMA_FILE),
    join(here, '..', '..', '..', 'spec', 'schemas', SCHEMA_FILE),
    vdspec === null ? undefined : join(vdspec, 'spec', 'schemas', SCHEMA_FILE),
  ];
  return candidates.find((p) => p !== undefined && p !== '' && existsSync(p)) ?? null;
}

/**
 * A function (message, definition) -> null when the message matches `$defs/<definition>` of the
 * port-message schema, else "<JSON pointer>: <what>"; or null when validation is off or cannot
 * be done (said once on stderr). mode: '1' required (ProtocolError when it cannot be done),
 * '0' off, anything else: when possible.
 */
export async function loadValidator(mode = process.env.VDSPEC_KIT_VALIDATE ?? '') {
  if (mode === '0') return null;
  let missing;
  try {
    const Ajv2020 = await importAjv();
    const path = schemaPath();
    if (path !== null) {
      const ajv = new Ajv2020({ strict: false, discriminator: true, verbose: true });
      ajv.addSchema(JSON.parse(readFileSync(path, 'utf8')), 'port-message');
      return (message, definition) => {
        const validate = ajv.getSchema(`port-message#/$defs/${definition}`);
        if (validate(message)) return null;
        const e = validate.errors[0];
        const named = e.params.additionalProperty ?? e.params.allowedValues;
        const value = /^(required|additionalProperties)$/.test(e.keyword)
          ? ''
          : ` (got ${String(JSON.stringify(e.data)).slice(0, 80)})`;
        const detail = named === undefined ? value : ` (${JSON.stringify(named)})`;
        return `${e.instancePath || '/'}: ${e.message}${detail}`;
      };
    }
    missing = `${SCHEMA_FILE} was not found (set VDSPEC_PORT_SCHEMA to its path)`;
  } catch (error) {
    missing = `ajv cannot be imported (${error instanceof Error ? error.message : error})`;
  }
  if (mode === '1') throw new ProtocolError(`VDSPEC_KIT_VALIDATE=1, but ${missing}`);
  process.stderr.write(
    `vdspec_kit: messages are not validated: ${missing}; VDSPEC_KIT_VALIDATE=0 silences this\n`,
  );
  return null;
}

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

async function reply(ops, message) {
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

/** The answer to one case message: a result or an error; checked when a validator is given. */
export async function answer(ops, message, validator = null) {
  const answered = await reply(ops, message);
  const problem = validator?.(answered, SENT[answered.type]) ?? null;
  if (problem === null) return answered;
  // vdspec would only see a malformed output; here the port learns which and where.
  const text = `vdspec_kit: protocol error: this port's ${answered.type} does not match ${SCHEMA_FILE} at ${problem}`;
  process.stderr.write(`${text}\n`);
  return { type: 'error', id: message.id, message: text };
}

/**
 * Speak the protocol on stdin/stdout until "bye" (or the end of input); resolves with 0, or with 2
 * after a protocol error (said on stderr; process.exitCode is set too). `validate`: see loadValidator.
 */
export async function serve({ ops, name, profile, dtype = 'float64', validate }) {
  const send = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
  const protocolError = (text) => {
    process.stderr.write(`vdspec_kit: protocol error: ${text}\n`);
    process.exitCode = 2;
    return 2;
  };
  let validator;
  try {
    validator = await loadValidator(validate);
  } catch (e) {
    if (e instanceof ProtocolError) return protocolError(e.message);
    throw e;
  }
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const message = JSON.parse(line);
    const definition = Object.hasOwn(RECEIVED, message.type) ? RECEIVED[message.type] : null;
    const problem = validator && definition ? validator(message, definition) : null;
    if (problem !== null) {
      return protocolError(
        `the runner's ${message.type} message does not match ${SCHEMA_FILE} at ${problem}`,
      );
    }
    if (message.type === 'hello') {
      if (message.protocol !== PROTOCOL) {
        process.stderr.write(
          `vdspec_kit: the runner speaks ${message.protocol}, this kit ${PROTOCOL}\n`,
        );
      }
      const hello = {
        type: 'hello',
        protocol: PROTOCOL,
        name,
        ops: Object.keys(ops).sort(),
        profile,
        dtype,
      };
      const bad = validator ? validator(hello, 'portHello') : null;
      if (bad !== null) {
        return protocolError(`this port's hello does not match ${SCHEMA_FILE} at ${bad}`);
      }
      send(hello);
    } else if (message.type === 'case') {
      send(await answer(ops, message, validator));
    } else if (message.type === 'bye') {
      break;
    }
  }
  return 0;
}
