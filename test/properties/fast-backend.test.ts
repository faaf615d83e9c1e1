/**
 * spec/fast.md#backends: backend selection (default order, VDSPEC_BACKEND,
 * explicit requests), silence (no banner or warning printed), and input
 * validation of the fast operations (every bad input is a VdspecError that
 * names the argument).
 *
 * The console spies are installed before the fast modules are imported, and
 * this file is the only one in its worker (vitest isolates test files), so
 * "nothing printed" covers module loading, backend initialisation and the
 * cpu backend's first tensor (where tfjs prints its Node banner unless told not to).
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

const printed: string[] = [];
const methods = ['log', 'warn', 'error', 'info', 'debug'] as const;
const spies = methods.map((m) =>
  vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
    printed.push(`console.${m}: ${args.map(String).join(' ')}`);
  }),
);
afterAll(() => spies.forEach((s) => s.mockRestore()));

const fast = await import('../../src/fast/index.js');
const { PROFILES } = await import('../../src/profiles.js');

const savedEnv = process.env.VDSPEC_BACKEND;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.VDSPEC_BACKEND;
  else process.env.VDSPEC_BACKEND = savedEnv;
});

const theta = { shape: [2, 3], data: [0.5, -0.25, 0, 1, 0.125, -2] };
const noise = { shape: [2, 3], data: [-4, -1, -8, 2, -6, -3] };
const x = { shape: [4, 2], data: [1, -1, 0.5, 2, -0.5, 0, 1.5, -2] };
const bias = { shape: [3], data: [0.1, -0.2, 0.3] };
const eps = { shape: [4, 3], data: Array.from({ length: 12 }, (_, i) => Math.sin(i)) };

describe('spec/fast.md#backends', () => {
  it('before initBackend a fast op is refused (VdspecError unsupported, argument backend)', () => {
    expect(fast.activeBackend()).toBeNull();
    expect(() => fast.fastLogAlpha(theta, noise, 'molchanov2017', 'dense')).toThrow(
      expect.objectContaining({ code: 'unsupported', argument: 'backend' }),
    );
  });

  it('default order: the first of tensorflow, wasm, cpu that loads (here tfjs-node may be absent); forced is false', async () => {
    delete process.env.VDSPEC_BACKEND;
    const available = await fast.availableBackends();
    // cpu is pure JavaScript and always loads; wasm ships as a dependency.
    expect(available).toContain('cpu');
    expect(available).toContain('wasm');
    expect(available).toEqual(fast.FAST_BACKENDS.filter((b) => available.includes(b)));
    const info = await fast.initBackend();
    expect(info).toEqual({ name: available[0], forced: false });
    expect(fast.activeBackend()).toBe(available[0]);
    // An op runs and reads back on it.
    expect(fast.fastLogAlpha(theta, noise, 'molchanov2017', 'dense').data[2]).toBe(8);
  });

  it('VDSPEC_BACKEND overrides the default order; options.backend overrides VDSPEC_BACKEND', async () => {
    process.env.VDSPEC_BACKEND = 'cpu';
    expect(await fast.initBackend()).toEqual({ name: 'cpu', forced: true });
    expect(fast.activeBackend()).toBe('cpu');
    expect(await fast.initBackend({ backend: 'wasm' })).toEqual({ name: 'wasm', forced: true });
    expect(fast.activeBackend()).toBe('wasm');
  });

  it('an unavailable or unknown backend is an error naming where it was asked for', async () => {
    const available = await fast.availableBackends();
    if (!available.includes('tensorflow')) {
      await expect(fast.initBackend({ backend: 'tensorflow' })).rejects.toMatchObject({
        code: 'unsupported',
        argument: 'options.backend',
      });
      process.env.VDSPEC_BACKEND = 'tensorflow';
      await expect(fast.initBackend()).rejects.toMatchObject({
        code: 'unsupported',
        argument: 'VDSPEC_BACKEND',
      });
    }
    process.env.VDSPEC_BACKEND = 'webgpu';
    await expect(fast.initBackend()).rejects.toMatchObject({
      code: 'invalid_argument',
      argument: 'VDSPEC_BACKEND',
    });
    delete process.env.VDSPEC_BACKEND;
    await expect(fast.initBackend({ backend: 'gpu' as unknown as 'cpu' })).rejects.toMatchObject({
      code: 'invalid_argument',
      argument: 'options.backend',
    });
  });

  it('availableBackends() restores the active backend', async () => {
    await fast.initBackend({ backend: 'cpu' });
    await fast.availableBackends();
    expect(fast.activeBackend()).toBe('cpu');
  });

  it('every backend computes the same mask and the same float32 log_alpha bits on an exact case', async () => {
    // theta = +-1, 0 and log_sigma2 on the clip bounds: every value is exact in float32.
    const t = { shape: [1, 4], data: [1, -1, 0, 1] };
    const n = { shape: [1, 4], data: [8, -8, -3, 3] };
    for (const backend of await fast.availableBackends()) {
      await fast.initBackend({ backend });
      expect(fast.fastLogAlpha(t, n, 'molchanov2017', 'dense').data).toEqual([8, -8, 8, 3]);
      // log_alpha = 3 exactly: '>' keeps it (molchanov2017), '>=' prunes it (bayesgroup-theano).
      expect(fast.fastKeepMask(t, n, 'molchanov2017', 'dense').data).toEqual([0, 1, 0, 1]);
      expect(fast.fastKeepMask(t, n, 'bayesgroup-theano', 'dense').data).toEqual([0, 1, 0, 0]);
    }
  });

  it('nothing was printed: no tfjs banner, no backend warning (prod mode)', () => {
    expect(printed).toEqual([]);
  });
});

describe('spec/README.md#numerics-conventions-normative (7): the fast operations reject bad input with a named VdspecError', () => {
  const named = (code: string, argument: string) => expect.objectContaining({ code, argument });
  const svd = PROFILES.molchanov2017;
  const train = { x, theta, noise, bias, eps };

  it('dense: shapes, NaN, profile, options, cotangent', async () => {
    await fast.initBackend({ backend: 'cpu' });
    expect(() =>
      fast.fastDenseTrain({ ...train, x: { shape: [4, 3], data: new Array(12).fill(0) } }, svd),
    ).toThrow(named('shape_mismatch', 'theta'));
    expect(() =>
      fast.fastDenseTrain({ ...train, eps: { shape: [4, 2], data: new Array(8).fill(0) } }, svd),
    ).toThrow(named('shape_mismatch', 'eps'));
    expect(() =>
      fast.fastDenseTrain({ ...train, bias: { shape: [2], data: [0, 0] } }, svd),
    ).toThrow(named('shape_mismatch', 'bias'));
    expect(() =>
      fast.fastDenseTrain({ ...train, theta: { ...theta, data: [NaN, 0, 0, 0, 0, 0] } }, svd),
    ).toThrow(named('non_finite', 'theta'));
    // The noise argument is named after the profile's parameter.
    expect(() =>
      fast.fastDenseTrain(
        { ...train, noise: { shape: [3], data: [0, 0, 0] } },
        'deepbayes-pytorch',
      ),
    ).toThrow(named('shape_mismatch', 'log_sigma'));
    // VD's log_alpha may broadcast (one per input unit), but not along a wrong axis.
    expect(() =>
      fast.fastDenseTrain({ ...train, noise: { shape: [2, 1], data: [-1, -2] } }, 'kingma2015'),
    ).not.toThrow();
    expect(() =>
      fast.fastDenseTrain({ ...train, noise: { shape: [3, 1], data: [-1, -2, -3] } }, 'kingma2015'),
    ).toThrow(named('shape_mismatch', 'log_alpha'));
    expect(() => fast.fastDenseTrain(train, 'no-such-profile')).toThrow(
      named('unknown_profile', 'profile'),
    );
    expect(() =>
      fast.fastDenseTrain(train, svd, { trainClip: 'yes' as unknown as boolean }),
    ).toThrow(named('invalid_argument', 'options.trainClip'));
    expect(() =>
      fast.fastDenseTrainVjp(train, { output: { shape: [4, 2], data: new Array(8).fill(0) } }, svd),
    ).toThrow(named('shape_mismatch', 'cotangent.output'));
    expect(() =>
      fast.fastDenseTrainVjp(train, { output: eps, variance: { shape: [1], data: [0] } }, svd),
    ).toThrow(named('shape_mismatch', 'cotangent.variance'));
    // float32 overflow (finite float64 inputs): an error with no argument, never inf or NaN.
    const huge = { ...train, x: { shape: [4, 2], data: new Array(8).fill(1e30) } };
    expect(() =>
      fast.fastDenseTrain({ ...huge, theta: { ...theta, data: new Array(6).fill(1e10) } }, svd),
    ).toThrow(expect.objectContaining({ code: 'non_finite', argument: undefined }));
  });

  it('conv2d: HWIO channels, valid padding size, stride, padding, path', async () => {
    await fast.initBackend({ backend: 'cpu' });
    const cx = { shape: [1, 3, 3, 2], data: new Array(18).fill(0.5) };
    const ct = { shape: [2, 2, 2, 1], data: new Array(8).fill(0.5) };
    const cn = { shape: [2, 2, 2, 1], data: new Array(8).fill(-4) };
    const cb = { shape: [1], data: [0] };
    const inputs = { x: cx, theta: ct, noise: cn, bias: cb };
    expect(() =>
      fast.fastConv2dEval(
        { ...inputs, theta: { shape: [2, 2, 3, 1], data: new Array(12).fill(0) } },
        svd,
      ),
    ).toThrow(named('shape_mismatch', 'theta'));
    expect(() =>
      fast.fastConv2dEval(
        { ...inputs, x: { shape: [1, 1, 3, 2], data: new Array(6).fill(0) } },
        svd,
      ),
    ).toThrow(named('shape_mismatch', 'x'));
    expect(() => fast.fastConv2dEval(inputs, svd, { stride: 0 })).toThrow(
      named('invalid_argument', 'options.stride'),
    );
    expect(() => fast.fastConv2dEval(inputs, svd, { padding: 'full' as 'same' })).toThrow(
      named('invalid_argument', 'options.padding'),
    );
    expect(() => fast.fastConv2dEval(inputs, svd, { path: 'gpu' as 'auto' })).toThrow(
      named('invalid_argument', 'options.path'),
    );
    expect(() =>
      fast.fastConv2dTrain(
        { ...inputs, eps: { shape: [1, 3, 3, 1], data: new Array(9).fill(0) } },
        svd,
      ),
    ).toThrow(named('shape_mismatch', 'eps'));
  });

  it('KL: -inf log_alpha, +inf for the cubic, layer kind, cotangent', async () => {
    await fast.initBackend({ backend: 'cpu' });
    expect(() => fast.fastKlPerWeight({ shape: [1], data: [-Infinity] }, svd)).toThrow(
      named('non_finite', 'log_alpha'),
    );
    expect(() => fast.fastKlPerWeight({ shape: [1], data: [Infinity] }, 'kingma2015')).toThrow(
      named('non_finite', 'log_alpha'),
    );
    // The sigmoid KL has a finite limit at +inf: its constant's negative (0 with C = -k1).
    expect(fast.fastKlPerWeight({ shape: [1], data: [Infinity] }, svd).data).toEqual([0]);
    expect(() => fast.fastLayerKl({ theta, noise }, svd, 'conv1d' as 'dense')).toThrow(
      named('invalid_argument', 'layer'),
    );
    expect(() => fast.fastLayerKl({ theta, noise }, svd, 'conv2d')).toThrow(
      named('shape_mismatch', 'theta'),
    );
    expect(() => fast.fastLayerKlVjp({ theta, noise }, NaN, svd, 'dense')).toThrow(
      named('invalid_argument', 'cotangent'),
    );
  });
});
