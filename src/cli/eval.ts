/**
 * `vdspec eval`: run one operation of the catalogue (spec/ops.md) on inputs
 * read as one JSON object from stdin, with the float64 reference or the
 * float32 fast implementation, and write its outputs as JSON on stdout
 * (spec/eval.md). Numbers use the encoding of the golden files
 * (src/golden/encoding.ts): NaN, the infinities and -0 as strings.
 *
 * The fast implementation (and TensorFlow.js with it) is imported only when
 * asked for, so the reference path starts as fast as `vdspec kl`.
 */
import {
  decodeNumber,
  decodeTensor,
  encodeTensor,
  stringifyGolden,
  type Json,
} from '../golden/encoding.js';
import { isVdspecError } from '../errors.js';
import {
  closeOperationNames,
  getOp,
  NOISE,
  OP_NAMES,
  OPS,
  resolveNames,
  type OpSpec,
} from '../ops.js';
import { PROFILE_NAMES, PROFILES, getProfile, type Profile } from '../profiles.js';
import { run } from '../reference/run.js';
import type { Tensor } from '../tensor.js';
import {
  HELP_FLAG,
  optionList,
  parseFlags,
  runCommand,
  UsageError,
  type FlagSpec,
  type FlagValues,
  type Writer,
} from './common.js';

/** Returns the whole of stdin as text. */
export type StdinReader = () => Promise<string>;

export const EVAL_IMPLS = ['reference', 'fast'] as const;
export type EvalImpl = (typeof EVAL_IMPLS)[number];

export const EVAL_FLAGS = {
  command: 'eval',
  flags: {
    op: { value: 'NAME', help: 'the operation, e.g. svd.dense.train (--list shows them all)' },
    impl: { value: 'I', help: 'reference (float64, default) or fast (float32, TensorFlow.js)' },
    profile: {
      value: 'P',
      help:
        'the profile (default: molchanov2017, or kingma2015 for vd.* ops); ' +
        `one of ${PROFILE_NAMES.join(', ')}`,
    },
    backend: {
      value: 'B',
      help: 'with --impl fast only: tensorflow, wasm or cpu (default: the first that loads, or $VDSPEC_BACKEND)',
    },
    list: { help: 'print the catalogue: operations, profiles, inputs, outputs' },
    help: HELP_FLAG,
  },
  unknown: (arg, flag) =>
    arg.startsWith('-')
      ? `unknown option ${flag} (see vdspec eval --help)`
      : `unexpected argument "${arg}": the inputs are read from stdin`,
} as const satisfies FlagSpec;

type EvalOptions = FlagValues<typeof EVAL_FLAGS.flags>;

const HELP = `Usage: vdspec eval --op NAME [--impl reference|fast] [--profile P] [--backend B] < inputs.json
       vdspec eval --list

Run one operation of the catalogue (spec/ops.md) on the inputs given as one
JSON object on stdin, and write its outputs as one JSON object on stdout.

${optionList(EVAL_FLAGS.flags)}

Tensors are {"shape": [...], "data": [...]} in row-major order (a scalar has
shape []); NaN, Infinity, -Infinity and -0 are written as the strings
"NaN", "Infinity", "-Infinity", "-0", in the inputs and in the outputs.
Example:
  echo '{"log_alpha": {"shape": [2], "data": [0, 3]}}' | vdspec eval --op kl.approx

Exit status: 0 success; 2 a bad call (unknown operation, profile, backend or
option, missing or malformed input, bad shape, bad JSON on stdin); 1 an
internal error. Errors are one line on stderr.`;

function findOp(name: string): OpSpec {
  if (OP_NAMES.includes(name)) return getOp(name);
  const close = closeOperationNames(name);
  throw new UsageError(
    `unknown operation "${name}"` +
      (close.length > 0 ? `; did you mean ${close.join(', ')}?` : '') +
      ` (vdspec eval --list shows all ${OP_NAMES.length})`,
  );
}

/** The canonical profile of the op's algorithm (SVD for ops that take any profile). */
function defaultProfile(op: OpSpec): Profile {
  const algorithm = op.algorithm ?? 'svd';
  return PROFILE_NAMES.map((n) => PROFILES[n]).find(
    (p) => p.canonical && p.algorithm === algorithm,
  )!;
}

function checkImpl(impl: string | undefined): EvalImpl {
  if (impl === undefined) return 'reference';
  if (!(EVAL_IMPLS as readonly string[]).includes(impl)) {
    throw new UsageError(`unknown implementation "${impl}"; expected ${EVAL_IMPLS.join(' or ')}`);
  }
  return impl as EvalImpl;
}

/** Read the inputs: one JSON object, with tensors and numbers in the golden encoding. */
function decodeInputs(text: string, op: OpSpec, profile: Profile): unknown {
  if (text.trim() === '') {
    throw new UsageError(
      `no inputs on stdin: expected one JSON object of named inputs (${op.name} takes ${inputList(op, profile)})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`stdin is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    // The implementation's own check names the argument.
    return parsed;
  }
  const inputs = { ...(parsed as Record<string, unknown>) };
  for (const { name, kind } of resolveNames(op, profile).inputs) {
    if (!Object.hasOwn(inputs, name)) continue;
    if (kind === 'tensor') inputs[name] = decodeTensor(inputs[name], name);
    if (kind === 'number') inputs[name] = decodeNumber(inputs[name], name);
  }
  return inputs;
}

/** The op's inputs, `?` marking the optional ones; the noise parameter named by `profile`, or `<noise>`. */
function inputList(op: OpSpec, profile: Profile | null): string {
  const inputs = profile === null ? op.inputs : resolveNames(op, profile).inputs;
  return inputs
    .map((i) => `${i.name.replace(NOISE, '<noise>')}${i.optional ? '?' : ''}`)
    .join(', ');
}

function encodeOutputs(outputs: Record<string, Tensor>): Json {
  const encoded: Record<string, Json> = {};
  for (const [name, t] of Object.entries(outputs)) {
    const e = encodeTensor(t);
    encoded[name] = { shape: [...e.shape], data: [...e.data] };
  }
  return encoded;
}

async function catalogue(): Promise<string> {
  const { FAST_UNSUPPORTED_OPS } = await import('../fast/run.js');
  const rows = OPS.map((op) => [
    op.name,
    op.algorithm === null ? 'any' : op.algorithm.toUpperCase(),
    inputList(op, null),
    op.outputs.map((o) => o.replace(NOISE, '<noise>')).join(', '),
    FAST_UNSUPPORTED_OPS[op.name] === undefined ? 'yes' : 'no (reference only)',
  ]);
  const header = ['operation', 'profiles', 'inputs (? optional)', 'outputs', 'fast'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]) =>
    r
      .map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    ...rows.map(line),
    '',
    "<noise> is the profile's noise parameter: " +
      'log_sigma2, log_sigma or log_alpha (spec/ops.md#values).',
  ].join('\n');
}

async function evaluate(options: EvalOptions, readStdin: StdinReader, out: Writer): Promise<void> {
  if (options.op === undefined) throw new UsageError('--op NAME is required (or --list)');
  const op = findOp(options.op);
  const impl = checkImpl(options.impl);
  if (options.backend !== undefined && impl !== 'fast') {
    throw new UsageError('--backend applies to --impl fast only');
  }
  const profile = options.profile === undefined ? defaultProfile(op) : getProfile(options.profile);
  let outputs: Record<string, Tensor>;
  if (impl === 'reference') {
    const inputs = decodeInputs(await readStdin(), op, profile);
    outputs = run(op.name, inputs, profile);
  } else {
    const fast = await import('../fast/index.js');
    if (options.backend !== undefined) {
      if (!(fast.FAST_BACKENDS as readonly string[]).includes(options.backend)) {
        throw new UsageError(
          `unknown backend "${options.backend}"; expected one of ${fast.FAST_BACKENDS.join(', ')}`,
        );
      }
    }
    const inputs = decodeInputs(await readStdin(), op, profile);
    if (options.backend !== undefined) {
      const backend = options.backend as (typeof fast.FAST_BACKENDS)[number];
      try {
        await fast.initBackend({ backend });
      } catch (e) {
        if (!isVdspecError(e)) throw e;
        throw new UsageError(
          `--backend ${backend}: ${e.message.replace(/^options\.backend: /, '')}`,
        );
      }
    }
    outputs = await fast.fastRun(op.name, inputs, profile);
  }
  out(stringifyGolden(encodeOutputs(outputs)));
}

async function readProcessStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new UsageError(
      'the inputs are read from stdin: pipe one JSON object in (vdspec eval --help)',
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The command. `readStdin` supplies the inputs' text (default: all of
 * process.stdin), so that tests can run it in-process. Returns the exit code.
 */
export async function runEvalCommand(
  argv: string[],
  out: Writer,
  err: Writer,
  readStdin: StdinReader = readProcessStdin,
): Promise<number> {
  return runCommand('eval', err, async () => {
    const options = parseFlags(argv, EVAL_FLAGS).values;
    if (options.help) {
      out(HELP);
      return 0;
    }
    if (options.list) {
      if (options.op !== undefined) throw new UsageError('--list takes no --op');
      out(await catalogue());
      return 0;
    }
    await evaluate(options, readStdin, out);
    return 0;
  });
}
