/**
 * spec/eval.md: `vdspec eval` end to end, in-process (stdin injected) for
 * both implementations, the number encoding both ways, every error path
 * (exit 2, one line on stderr, nothing on stdout), an internal error (exit
 * 1), the catalogue listing; and once as a real child process from dist/
 * when a build with the command exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { runEvalCommand } from '../../src/cli/eval.js';
import { main } from '../../src/cli/main.js';
import { availableBackends, initBackend } from '../../src/fast/backend.js';
import { fastRun } from '../../src/fast/index.js';
import { decodeTensor } from '../../src/golden/encoding.js';
import { closeOperationNames, OP_NAMES, getOp, resolveNames } from '../../src/ops.js';
import { PROFILES } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { expectSpecBlock } from './spec-blocks.js';

const BACKENDS = await availableBackends();

interface Result {
  readonly code: number;
  readonly out: string;
  readonly err: string[];
}

async function evalCli(argv: string[], stdin: string | (() => Promise<string>)): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const reader = typeof stdin === 'string' ? () => Promise.resolve(stdin) : stdin;
  const code = await runEvalCommand(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
    reader,
  );
  return { code, out: out.join(''), err };
}

/** stdout decoded: every output a tensor in the golden encoding. */
function decodeOutputs(text: string): Record<string, Tensor> {
  const parsed = JSON.parse(text) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, decodeTensor(v, k)]));
}

const t = (shape: number[], data: number[]): Tensor => ({ shape, data });
const DENSE = {
  x: t([2, 3], [0.5, -1, 2, 0, 1.5, -0.25]),
  theta: t([3, 2], [0.1, -0.2, 0, 0.7, -1, 0.05]),
  log_sigma2: t([3, 2], [-6, -2, -9, 1, -3, -12]),
  bias: t([2], [0.25, -0.5]),
  eps: t([2, 2], [0.3, -1.1, 0.8, 2]),
  cotangent: t([2, 2], [1, -0.5, 0.25, 2]),
};

describe('spec/eval.md: vdspec eval in-process', () => {
  it('spec/eval.md#outputs-stdout: --impl reference writes exactly what run() returns, in the catalogue order', async () => {
    for (const op of ['svd.dense.train', 'svd.dense.train_vjp', 'kl.layer']) {
      const names = resolveNames(getOp(op), PROFILES.molchanov2017).inputs.map((i) => i.name);
      const inputs = Object.fromEntries(Object.entries(DENSE).filter(([k]) => names.includes(k)));
      const r = await evalCli(['--op', op, '--impl', 'reference'], JSON.stringify(inputs));
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      const outputs = decodeOutputs(r.out);
      expect(outputs).toEqual(run(op, inputs, 'molchanov2017'));
      expect(Object.keys(outputs)).toEqual(resolveNames(getOp(op), PROFILES.molchanov2017).outputs);
    }
  });

  it.each(BACKENDS)(
    'spec/eval.md#outputs-stdout: --impl fast --backend %s writes exactly what fastRun() returns on that backend',
    async (backend) => {
      const op = 'svd.dense.train_vjp';
      const r = await evalCli(
        ['--op', op, '--impl', 'fast', '--backend', backend, '--profile', 'bayesgroup-theano'],
        JSON.stringify(DENSE),
      );
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      await initBackend({ backend });
      expect(decodeOutputs(r.out)).toEqual(await fastRun(op, DENSE, 'bayesgroup-theano'));
    },
  );

  it('spec/eval.md#usage: without --profile, vd.* ops run under kingma2015 and the rest under molchanov2017', async () => {
    const vd = await evalCli(
      ['--op', 'vd.log_alpha'],
      JSON.stringify({ theta: t([1, 2], [1, 2]), log_alpha: t([], [-3]) }),
    );
    expect(vd.code).toBe(0);
    expect(decodeOutputs(vd.out)['log_alpha']!.data).toEqual([-3, -3]);
    const ce = await evalCli(['--op', 'kl.approx'], JSON.stringify({ log_alpha: t([1], [3]) }));
    expect(decodeOutputs(ce.out)).toEqual(
      run('kl.approx', { log_alpha: t([1], [3]) }, 'molchanov2017'),
    );
  });

  it('spec/eval.md#inputs-stdin: NaN, +-Infinity and -0 cross stdin and stdout as strings, both ways, both implementations', async () => {
    // -0 passes through the reference's learned log_alpha unchanged (below the clip max 0).
    const negZero = await evalCli(
      ['--op', 'vd.log_alpha'],
      '{"theta": {"shape": [2, 1], "data": [1, 2]}, "log_alpha": {"shape": [], "data": ["-0"]}}',
    );
    expect(negZero.code).toBe(0);
    expect(JSON.parse(negZero.out)).toEqual({ log_alpha: { shape: [2, 1], data: ['-0', '-0'] } });
    expect(Object.is(decodeOutputs(negZero.out)['log_alpha']!.data[0], -0)).toBe(true);
    for (const impl of ['reference', 'fast']) {
      const r = await evalCli(
        ['--op', 'kl.approx', '--impl', impl],
        '{"log_alpha": {"shape": [3], "data": ["-Infinity", "Infinity", -0]}}',
      );
      expect(r.code).toBe(0);
      // KL(-inf) = +inf, KL(+inf) = 0 with C = -k1; the derivatives -1/2 and 0 (spec/kl.md#klsum).
      const out = JSON.parse(r.out) as Record<string, { data: unknown[] }>;
      expect(out['kl']!.data.slice(0, 2)).toEqual(['Infinity', 0]);
      expect(out['dkl_dlog_alpha']!.data.slice(0, 2)).toEqual([-0.5, 0]);
    }
    // "NaN" decodes to NaN, which every op rejects (non_finite, exit 2).
    const nan = await evalCli(
      ['--op', 'kl.approx'],
      '{"log_alpha": {"shape": [1], "data": ["NaN"]}}',
    );
    expect(nan.code).toBe(2);
    expect(nan.err[0]).toMatch(/log_alpha.*NaN/);
    // A tensor's entries are its elements: "element 1", not "value 1".
    const second = await evalCli(
      ['--op', 'kl.approx'],
      '{"log_alpha": {"shape": [2], "data": [0, "NaN"]}}',
    );
    expect(second.err[0]).toBe('vdspec eval: log_alpha: element 1 is NaN');
  });

  it('an input named __proto__ is named as such, not "[object Object]"', async () => {
    const r = await evalCli(
      ['--op', 'kl.approx'],
      '{"__proto__": {"shape": [1], "data": [1]}, "log_alpha": {"shape": [1], "data": [0]}}',
    );
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe(
      'vdspec eval: __proto__: kl.approx takes no input "__proto__"; it takes log_alpha',
    );
  });

  it('spec/eval.md#inputs-stdin: any finite float64 crosses stdout bit for bit (shortest round-trip form)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.double({ min: -40, max: 40, noNaN: true }), async (epoch) => {
        fc.pre(epoch >= 0);
        const r = await evalCli(['--op', 'schedule.kl_weight'], JSON.stringify({ epoch }));
        expect(decodeOutputs(r.out)['kl_weight']).toEqual(
          run('schedule.kl_weight', { epoch }, 'molchanov2017')['kl_weight'],
        );
      }),
      { numRuns: 40 },
    );
  });

  // [what, argv, stdin, a fragment the message must contain]
  const ERRORS: [string, string[], string, RegExp][] = [
    [
      'an unknown op (close names suggested)',
      ['--op', 'svd.dense.trian'],
      '{}',
      /unknown operation "svd\.dense\.trian"; did you mean svd\.dense\.train/,
    ],
    ['no --op', [], '{}', /--op NAME is required/],
    [
      'a missing input',
      ['--op', 'kl.layer'],
      JSON.stringify({ theta: DENSE.theta }),
      /log_sigma2: missing input/,
    ],
    [
      'an input the op does not take',
      ['--op', 'kl.approx'],
      JSON.stringify({ log_alpha: t([1], [0]), theta: DENSE.theta }),
      /takes no input "theta"/,
    ],
    [
      'a bad shape',
      ['--op', 'svd.dense.eval'],
      JSON.stringify({ ...DENSE, eps: undefined, cotangent: undefined, bias: t([3], [0, 0, 0]) }),
      /bias: expected shape \[2\]/,
    ],
    [
      'data that does not fill its shape',
      ['--op', 'kl.approx'],
      '{"log_alpha": {"shape": [2], "data": [1]}}',
      /log_alpha/,
    ],
    [
      'a string that is not an encoded number',
      ['--op', 'kl.approx'],
      '{"log_alpha": {"shape": [1], "data": ["inf"]}}',
      /log_alpha\.data\[0\]/,
    ],
    ['bad JSON on stdin', ['--op', 'kl.approx'], '{"log_alpha": ', /stdin is not valid JSON/],
    ['empty stdin', ['--op', 'kl.approx'], ' \n', /no inputs on stdin.*kl\.approx takes log_alpha/],
    ['stdin not an object', ['--op', 'kl.approx'], '[1, 2]', /inputs: expected an object/],
    [
      'an unknown implementation',
      ['--op', 'kl.approx', '--impl', 'gpu'],
      '{}',
      /unknown implementation "gpu"; expected reference or fast/,
    ],
    [
      'an unknown profile',
      ['--op', 'kl.approx', '--profile', 'molchanov'],
      '{}',
      /unknown profile "molchanov"/,
    ],
    [
      'a profile of the wrong algorithm',
      ['--op', 'svd.mask', '--profile', 'kingma2015'],
      JSON.stringify({ theta: DENSE.theta, log_alpha: DENSE.theta }),
      /needs a SVD profile/,
    ],
    [
      'an unknown backend',
      ['--op', 'kl.approx', '--impl', 'fast', '--backend', 'gpu'],
      '{}',
      /unknown backend "gpu"/,
    ],
    [
      '--backend with the reference',
      ['--op', 'kl.approx', '--backend', 'cpu'],
      '{}',
      /--backend applies to --impl fast only/,
    ],
    ['an unknown option', ['--op', 'kl.approx', '--verbose'], '{}', /unknown option --verbose/],
    [
      'a positional argument',
      ['--op', 'kl.approx', 'inputs.json'],
      '{}',
      /unexpected argument "inputs\.json"/,
    ],
    ['an option given twice', ['--op', 'kl.approx', '--op', 'kl.exact'], '{}', /--op given twice/],
    ['an option without its value', ['--op'], '{}', /--op needs a value/],
    [
      'an op the fast implementation does not have',
      ['--op', 'kl.exact', '--impl', 'fast'],
      JSON.stringify({ log_alpha: t([1], [0]) }),
      /kl\.exact has no fast implementation/,
    ],
  ];

  it.each(ERRORS)(
    'spec/eval.md#errors-and-exit-status: %s exits 2 with one line on stderr and nothing on stdout',
    async (_what, argv, stdin, message) => {
      const r = await evalCli(argv, stdin);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(/^vdspec eval: /);
      expect(r.err[0]).not.toMatch(/\n|\s+at\s/);
      expect(r.err[0]).toMatch(message);
    },
  );

  it('spec/eval.md#errors-and-exit-status: a failure inside the command (here: reading stdin) exits 1 with one line, no stack trace', async () => {
    const r = await evalCli(['--op', 'kl.approx'], () =>
      Promise.reject(new Error('EIO: i/o error, read')),
    );
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toEqual(['vdspec eval: internal error: EIO: i/o error, read']);
  });

  it('spec/eval.md#errors-and-exit-status: close names of a misspelt op are real operations, nearest first', () => {
    expect(closeOperationNames('svd.dense.trian')[0]).toBe('svd.dense.train');
    expect(closeOperationNames('kl.aprox')[0]).toBe('kl.approx');
    expect(closeOperationNames('objective.ce')).toContain('objective.sgvb');
    for (const name of ['x', 'svd.conv.train', 'schedule.kl']) {
      for (const close of closeOperationNames(name)) expect(OP_NAMES).toContain(close);
    }
  });

  it('spec/eval.md#usage: --list prints every operation of the catalogue and which the fast implementation lacks; --help exits 0', async () => {
    const list = await evalCli(['--list'], '');
    expect(list.code).toBe(0);
    const lines = list.out.split('\n');
    for (const name of OP_NAMES) expect(lines.some((l) => l.startsWith(`${name} `))).toBe(true);
    expect(lines.find((l) => l.startsWith('kl.exact '))).toMatch(/reference only/);
    const help = await evalCli(['--help'], '');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/Usage: vdspec eval --op NAME/);
    const usage: string[] = [];
    expect(
      await main(
        ['--help'],
        (s) => usage.push(s),
        () => undefined,
      ),
    ).toBe(0);
    expect(usage.join('')).toMatch(/\n {2}eval {5}/);
  });
});

// ---------------------------------------------------------------------------
// The example session of spec/eval.md
// ---------------------------------------------------------------------------

/** [argv, stdin] of each call shown in spec/eval.md#example-session. */
const SESSION: [string[], string][] = [
  [['--op', 'kl.approx'], '{"log_alpha": {"shape": [4], "data": [-8, 0, 3, "Infinity"]}}'],
  [
    ['--op', 'kl.approx', '--impl', 'fast', '--backend', 'cpu'],
    '{"log_alpha": {"shape": [4], "data": [-8, 0, 3, "Infinity"]}}',
  ],
  [
    ['--op', 'svd.dense.train', '--profile', 'bayesgroup-theano'],
    '{"x": {"shape": [1, 2], "data": [1, -2]}, "theta": {"shape": [2, 1], "data": [0.5, 0]}, ' +
      '"log_sigma2": {"shape": [2, 1], "data": [-4, -4]}, "bias": {"shape": [1], "data": [0.1]}, ' +
      '"eps": {"shape": [1, 1], "data": [1]}}',
  ],
  [['--op', 'svd.dense.trian'], '{}'],
  [['--op', 'kl.exact', '--impl', 'fast'], '{"log_alpha": {"shape": [1], "data": [0]}}'],
];

describe('spec/eval.md: the printed session and listing are the current output of the command', () => {
  it('spec/eval.md#example-session, spec/eval.md: --list', async () => {
    const lines: string[] = [];
    for (const [argv, stdin] of SESSION) {
      const r = await evalCli(argv, stdin);
      lines.push(`$ echo '${stdin}' | vdspec eval ${argv.join(' ')}`);
      lines.push(...(r.code === 0 ? r.out.trimEnd().split('\n') : r.err));
      if (r.code !== 0) lines.push('$ echo $?', String(r.code));
    }
    const fenced = (text: string) => ['```console', text, '```'].join('\n');
    expectSpecBlock('eval.md', 'eval-session', fenced(lines.join('\n')));
    const list = await evalCli(['--list'], '');
    expectSpecBlock('eval.md', 'eval-list', ['```text', list.out, '```'].join('\n'));
  });
});

// ---------------------------------------------------------------------------
// The built command, as users run it
// ---------------------------------------------------------------------------

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT = `${ROOT}dist/cli/main.js`;
// A dist/ built before the command existed has main.js but no eval.js: nothing to test there.
const built = existsSync(BUILT) && existsSync(`${ROOT}dist/cli/eval.js`);
/** The skip's note, repeated at the end of the run by test/reporters/skip-summary.ts. */
const NO_DIST = 'the built command: no dist/ (npm run build)';

describe('spec/eval.md: the built vdspec eval as a child process', () => {
  const spawn = (argv: string[], input: string) =>
    spawnSync(process.execPath, [BUILT, 'eval', ...argv], { input, encoding: 'utf8', cwd: ROOT });

  it('reads stdin, writes the outputs on stdout, exits 0 (reference and fast)', (ctx) => {
    ctx.skip(!built, NO_DIST);
    const input = '{"log_alpha": {"shape": [3], "data": [0, 3, "-Infinity"]}}';
    const reference = spawn(['--op', 'kl.approx'], input);
    expect(reference.stderr).toBe('');
    expect(reference.status).toBe(0);
    expect(decodeOutputs(reference.stdout)).toEqual(
      run('kl.approx', { log_alpha: t([3], [0, 3, -Infinity]) }, 'molchanov2017'),
    );
    const fast = spawn(['--op', 'kl.approx', '--impl', 'fast', '--backend', 'cpu'], input);
    expect(fast.stderr).toBe('');
    expect(fast.status).toBe(0);
    expect(decodeOutputs(fast.stdout)['kl']!.data[2]).toBe(Infinity);
  });

  it('a bad call exits 2 with one line on stderr', (ctx) => {
    ctx.skip(!built, NO_DIST);
    const r = spawn(['--op', 'kl.approx'], '{"log_alpha": ');
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vdspec eval: stdin is not valid JSON: [^\n]*\n$/);
  });
});
