/**
 * Backend selection for the float32 fast implementation (spec/fast.md#backends).
 *
 * TensorFlow.js runs the same ops on several backends. vdspec prefers the
 * native one (`tensorflow`, from the optional `@tensorflow/tfjs-node`), then
 * `wasm` (XNNPACK, shipped as a dependency), then the pure-JavaScript `cpu`.
 * `VDSPEC_BACKEND` replaces that order with one name; an explicit request
 * (option or variable) for a backend that cannot load here is an error, never
 * a silent fallback, so a benchmark or an agreement run always says which
 * arithmetic produced its numbers.
 */
import * as tf from '@tensorflow/tfjs';

import { VdspecError } from '../errors.js';

export const FAST_BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type FastBackend = (typeof FAST_BACKENDS)[number];

/** The environment variable that overrides the default backend order. */
export const BACKEND_ENV_VAR = 'VDSPEC_BACKEND';

export interface InitBackendOptions {
  /** Use exactly this backend; an error if it cannot load here. */
  readonly backend?: FastBackend;
}

export interface BackendInfo {
  /** The active backend after the call. */
  readonly name: FastBackend;
  /** True when the choice came from `options.backend` or `VDSPEC_BACKEND`, not the default order. */
  readonly forced: boolean;
}

// tfjs-node is an optional dependency: a variable specifier keeps TypeScript
// from requiring its type files where it is not installed.
const TFJS_NODE_MODULE = '@tensorflow/tfjs-node';
const TFJS_WASM_MODULE = '@tensorflow/tfjs-backend-wasm';

/** One load attempt per backend and process: a module import either works or it does not. */
const loadAttempts = new Map<FastBackend, Promise<boolean>>();

let initialised: FastBackend | null = null;

export function isFastBackend(name: unknown): name is FastBackend {
  return typeof name === 'string' && (FAST_BACKENDS as readonly string[]).includes(name);
}

/**
 * Silence TensorFlow.js: without it the cpu backend prints a banner on first
 * use in Node and failed backend probes print warnings. Every such message
 * goes through tfjs's own logger, which prod mode turns off. Called before
 * any backend module loads or any tensor is created.
 */
function quietTensorflow(): void {
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
}

async function importModule(specifier: string): Promise<boolean> {
  try {
    await import(specifier);
    return true;
  } catch {
    return false;
  }
}

/** Make `name` selectable (import its module, register it); true when its factory exists. */
function loadBackend(name: FastBackend): Promise<boolean> {
  let attempt = loadAttempts.get(name);
  if (attempt === undefined) {
    attempt = (async () => {
      quietTensorflow();
      if (name === 'tensorflow' && !(await importModule(TFJS_NODE_MODULE))) return false;
      if (name === 'wasm' && !(await importModule(TFJS_WASM_MODULE))) return false;
      // tfjs returns null for an unregistered name (its type says otherwise).
      return (tf.findBackendFactory(name) as unknown) != null;
    })();
    loadAttempts.set(name, attempt);
  }
  return attempt;
}

/** Load and switch to `name`; false when its module or its initialisation fails. */
async function trySetBackend(name: FastBackend): Promise<boolean> {
  if (!(await loadBackend(name))) return false;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

function requestedBackend(options: InitBackendOptions | undefined): {
  name: FastBackend;
  source: string;
} | null {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new VdspecError('invalid_argument', 'expected an object { backend? }', 'options');
  }
  const fromOption = options?.backend;
  if (fromOption !== undefined) {
    if (!isFastBackend(fromOption)) {
      throw new VdspecError(
        'invalid_argument',
        `unknown backend "${String(fromOption)}"; known backends: ${FAST_BACKENDS.join(', ')}`,
        'options.backend',
      );
    }
    return { name: fromOption, source: 'options.backend' };
  }
  const fromEnv = process.env[BACKEND_ENV_VAR];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isFastBackend(fromEnv)) {
      throw new VdspecError(
        'invalid_argument',
        `unknown backend "${fromEnv}"; known backends: ${FAST_BACKENDS.join(', ')}`,
        BACKEND_ENV_VAR,
      );
    }
    return { name: fromEnv, source: BACKEND_ENV_VAR };
  }
  return null;
}

/**
 * Choose and initialise the TensorFlow.js backend the fast operations run on.
 * Order: `options.backend`, else `VDSPEC_BACKEND`, else the first of
 * tensorflow, wasm, cpu that loads. May be called again to switch.
 */
export async function initBackend(options?: InitBackendOptions): Promise<BackendInfo> {
  quietTensorflow();
  const requested = requestedBackend(options);
  if (requested !== null) {
    if (!(await trySetBackend(requested.name))) {
      throw new VdspecError(
        'unsupported',
        `backend "${requested.name}" cannot be loaded here` +
          (requested.name === 'tensorflow'
            ? ` (it needs the optional dependency ${TFJS_NODE_MODULE}, which is not installed or does not load)`
            : ''),
        requested.source,
      );
    }
    initialised = requested.name;
    return { name: requested.name, forced: true };
  }
  for (const name of FAST_BACKENDS) {
    if (await trySetBackend(name)) {
      initialised = name;
      return { name, forced: false };
    }
  }
  throw new VdspecError('unsupported', 'no TensorFlow.js backend could be initialised', 'backend');
}

/** The backend the fast operations run on now; null before initBackend. */
export function activeBackend(): FastBackend | null {
  if (initialised === null) return null;
  const current = tf.getBackend();
  return isFastBackend(current) ? current : null;
}

/**
 * The backends that can be loaded here, in preference order. Probing
 * initialises each one; the active backend (if any) is restored afterwards.
 */
export async function availableBackends(): Promise<FastBackend[]> {
  quietTensorflow();
  const before = activeBackend();
  const found: FastBackend[] = [];
  for (const name of FAST_BACKENDS) {
    if (await trySetBackend(name)) found.push(name);
  }
  if (before !== null) await tf.setBackend(before);
  return found;
}

/**
 * Throw unless initBackend has run: a fast op on an uninitialised engine
 * would otherwise pick a backend on its own (or fail asynchronously for wasm).
 */
export function requireBackend(): FastBackend {
  const name = activeBackend();
  if (name === null) {
    throw new VdspecError(
      'unsupported',
      'no fast backend is active: await initBackend() before calling a fast operation',
      'backend',
    );
  }
  return name;
}
