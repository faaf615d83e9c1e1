/**
 * `vdspec check` (src/check/, src/cli/check.ts): the port protocol, the
 * results file, the tolerance rule, the convention fingerprint, the three
 * report formats and the exit codes of spec/check.md.
 *
 * Golden files come from test/properties/check-fixtures.ts (small, written
 * here by the reference's `run`), so these tests do not depend on the
 * shipped set. The NumPy example port (examples/ports/numpy) is run with
 * python3 when `import numpy` works there; otherwise those tests are skipped.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { compareOutputs, positionOf } from '../../src/check/compare.js';
import { fingerprintCandidates, fingerprintCase } from '../../src/check/fingerprint.js';
import { CheckInfrastructureError } from '../../src/check/errors.js';
import {
  deepEqual,
  goldenFileFromText,
  loadGoldenFile,
  loadGoldenSet,
  opMatcher,
} from '../../src/check/golden.js';
import { functionPort } from '../../src/check/port.js';
import { openProcessPort } from '../../src/check/processPort.js';
import { renderJunit } from '../../src/check/report.js';
import { runCheck, type CheckReport } from '../../src/check/runner.js';
import { runCheckCommand } from '../../src/cli/check.js';
import { GOLDEN_TOLERANCE } from '../../src/golden/scale.js';
import { OPS } from '../../src/ops.js';
import { PROFILE_NAMES, PROFILES, type Profile, type ProfileName } from '../../src/profiles.js';
import { run } from '../../src/reference/run.js';
import type { Tensor } from '../../src/tensor.js';
import { FIXTURE_OPS, FIXTURE_TOLERANCE, writeFixtureGoldens } from './check-fixtures.js';
import { expectDead, fakePid } from './port-processes.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const NUMPY_PORT = here('../../examples/ports/numpy/vdspec_port.py');
const FAKE_PORT = here('../fixtures/ports/fake-port.mjs');
const SHIPPED_GOLDEN = here('../golden');
const fake = (mode: string) => `"${process.execPath}" "${FAKE_PORT}" ${mode}`;
// .ci/run sets VDSPEC_PYTHON to an interpreter that has numpy (installing Debian's python3-numpy
// when none has) and VDSPEC_REQUIRE_NUMPY=1, so CI never skips the port tests silently.
const PYTHON = process.env['VDSPEC_PYTHON'] ?? 'python3';
const numpy = (...args: string[]) => `"${PYTHON}" "${NUMPY_PORT}" ${args.join(' ')}`;

const HAS_NUMPY = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
const NUMPY_SKIP_REASON = `${PYTHON} with numpy is not available (${PYTHON} -c "import numpy" failed)`;
if (!HAS_NUMPY && process.env['VDSPEC_REQUIRE_NUMPY'] === '1') {
  throw new Error(`VDSPEC_REQUIRE_NUMPY=1 but ${NUMPY_SKIP_REASON}`);
}
if (!HAS_NUMPY) console.warn(`check.test.ts: skipping the NumPy port tests: ${NUMPY_SKIP_REASON}`);
/**
 * Skip a test that runs the NumPy port when there is none, with the reason as
 * the skip's note: test/reporters/skip-summary.ts repeats it at the end of the run.
 */
function needsNumpy(ctx: TestContext): void {
  if (!HAS_NUMPY) ctx.skip(`the NumPy port tests: ${NUMPY_SKIP_REASON}`);
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vdspec-check-'));
  writeFixtureGoldens(join(dir, 'golden'), ['molchanov2017', 'kingma2015']);
});
afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  out: string;
  err: string;
}

/** A stack frame line: what a crash would print and the CLI must never print. */
const STACK_FRAME = /\n\s+at .+:\d+:\d+\)?/;

async function check(argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const golden = argv.includes('--golden') ? [] : ['--golden', join(dir, 'golden')];
  const code = await runCheckCommand(
    [...golden, ...argv],
    (s) => out.push(s),
    (s) => err.push(s),
  );
  const result = { code, out: out.join('\n'), err: err.join('\n') };
  expect(result.out + result.err).not.toMatch(STACK_FRAME);
  return result;
}

async function checkJson(argv: string[]): Promise<CheckReport> {
  const r = await check([...argv, '--json']);
  return JSON.parse(r.out) as CheckReport;
}

function referencePort(profile: ProfileName, dtype: 'float64' | 'float32' = 'float64') {
  const p = PROFILES[profile];
  return functionPort({
    name: 'reference',
    ops: OPS.filter((o) => o.algorithm === null || o.algorithm === p.algorithm).map((o) => o.name),
    profile,
    dtype,
    run: (op, inputs) => run(op, inputs, profile),
  });
}

describe('vdspec check --skip-flag (spec/check.md#usage)', () => {
  // The printed KL form of the published code: the gradient of 0.5 log1p(exp(-la)) is
  // -0.5 exp(-la) / (1 + exp(-la)), inf / inf = NaN at la = -inf (spec/profiles.md).
  const printedForm = () =>
    functionPort({
      name: 'printed KL form',
      ops: ['kl.approx'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => {
        const out = run(op, inputs, 'molchanov2017');
        const la = inputs['log_alpha'] as Tensor;
        const d = out['dkl_dlog_alpha']!;
        return {
          ...out,
          dkl_dlog_alpha: {
            shape: d.shape,
            data: d.data.map((v, i) => (la.data[i] === -Infinity ? NaN : v)),
          },
        };
      },
    });

  it('skips exactly the cases carrying the flag, counts them as skipped and says so', async () => {
    const golden = loadGoldenSet(SHIPPED_GOLDEN, 'molchanov2017', 'kl.approx');
    const flagged = golden.files[0]!.cases.filter((c) => c.flags.includes('infinite_log_alpha'));
    expect(flagged.length).toBeGreaterThan(0);
    const plain = await runCheck(printedForm(), golden);
    expect(plain.exitCode).toBe(1);
    const failedIds = plain.cases.filter((c) => c.status === 'failed').map((c) => c.caseId);
    // Only cases with an infinite log_alpha fail, and not every flagged one has a -inf.
    expect(failedIds.every((id) => flagged.some((c) => c.id === id))).toBe(true);
    const skipping = await runCheck(printedForm(), golden, { skipFlags: ['infinite_log_alpha'] });
    expect(skipping.exitCode).toBe(0);
    expect(skipping.totals.skipped).toBe(flagged.length);
    expect(skipping.totals.passed).toBe(golden.files[0]!.cases.length - flagged.length);
    expect(skipping.notes).toContain(
      `${flagged.length} cases flagged infinite_log_alpha skipped (--skip-flag)`,
    );
  });

  it('refuses a flag name no golden case can carry (a misspelt flag would skip nothing)', async () => {
    const r = await check(['--port', fake('good'), '--skip-flag', 'infinite_log_alfa']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /--skip-flag: no golden flag is named "infinite_log_alfa"; known: .*infinite_log_alpha/,
    );
  });
});

describe('vdspec check: a clip whose gradient is 0 on its bounds is diagnosed (spec/check.md#fingerprint)', () => {
  it('a molchanov2017 port with a switch clip fails exactly the clip_min / clip_max gradient cases, diagnosed as that convention', async () => {
    const canonical = PROFILES.molchanov2017;
    const switchClip = (c: typeof canonical.dense) => ({
      ...c,
      logAlpha: { ...c.logAlpha, clip: { ...c.logAlpha.clip!, gradientAtBound: 0 as const } },
    });
    // The canonical conventions but for the clip's derivative on its bounds (Theano's switch).
    const variant = {
      ...canonical,
      dense: switchClip(canonical.dense),
      conv2d: switchClip(canonical.conv2d),
    };
    const port = functionPort({
      name: 'switch clip',
      ops: ['kl.layer', 'svd.dense.train_vjp', 'svd.conv2d.train_vjp', 'svd.log_alpha'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => run(op, inputs, variant),
    });
    const report = await runCheck(port, loadGoldenSet(SHIPPED_GOLDEN, 'molchanov2017'), {
      fingerprintCases: 1000,
    });
    const failed = report.cases.filter((c) => c.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const c of failed) {
      // Only a case with a weight exactly on a bound can tell the two clips apart.
      expect(
        c.flags.some((f) => f === 'clip_min' || f === 'clip_max'),
        `${c.op}#${c.caseId}`,
      ).toBe(true);
    }
    // svd.log_alpha has no gradient output: the value is the same either way.
    expect(report.ops.find((o) => o.op === 'svd.log_alpha')!.status).toBe('passed');
    for (const op of report.ops.filter((o) => o.status === 'failed')) {
      expect(op.fingerprint[0]?.text, op.op).toMatch(
        /^convention: your (dense|conv2d) log_alpha is clipped to \[-8, 8, gradient 0 on a bound\] with no gradient exactly on a bound.*like bayesgroup-theano$/,
      );
      expect(op.fingerprint[0]!.matched, op.op).toBe(op.fingerprintChecked);
    }
  });
});

describe('vdspec check: in-process ports (spec/check.md#in-process-ports)', () => {
  it('spec/check.md#in-process-ports: the reference checked against its own golden files passes with zero error', async () => {
    for (const profile of ['molchanov2017', 'kingma2015'] as const) {
      const report = await runCheck(
        referencePort(profile),
        loadGoldenSet(join(dir, 'golden'), profile),
      );
      expect(report.exitCode).toBe(0);
      expect(report.totals.failed).toBe(0);
      expect(report.totals.passed).toBe(report.totals.cases);
      expect(report.ops.map((o) => o.op).sort()).toEqual(
        [...FIXTURE_OPS[PROFILES[profile].algorithm]].sort(),
      );
      for (const op of report.ops) expect(op.worstRatio, op.op).toBe(0);
    }
  });

  it('spec/check.md#tolerance: the declared dtype picks the float32 or the float64 tolerance', async () => {
    // float32 rounding of every output: a relative error near 2^-24 = 6e-8, inside the fixture's
    // float32 rel 1e-4 and far outside its float64 rel 1e-9 (FIXTURE_TOLERANCE).
    const rounded = (dtype: 'float32' | 'float64') =>
      functionPort({
        name: 'fround',
        ops: ['kl.approx'],
        profile: 'molchanov2017',
        dtype,
        run: (op, inputs) => {
          const out = run(op, inputs, 'molchanov2017');
          return Object.fromEntries(
            Object.entries(out).map(([k, t]) => [
              k,
              { shape: t.shape, data: t.data.map(Math.fround) },
            ]),
          );
        },
      });
    const golden = loadGoldenSet(join(dir, 'golden'), 'molchanov2017', 'kl.approx');
    const as32 = await runCheck(rounded('float32'), golden);
    expect(as32.exitCode).toBe(0);
    expect(as32.ops[0]!.tolerance).toEqual(FIXTURE_TOLERANCE.float32);
    const as64 = await runCheck(rounded('float64'), golden);
    expect(as64.exitCode).toBe(1);
    expect(as64.ops[0]!.tolerance).toEqual(FIXTURE_TOLERANCE.float64);
  });

  it("spec/check.md#in-process-ports: an exception is that case's failure, with its message", async () => {
    const port = functionPort({
      name: 'throws',
      ops: ['schedule.kl_weight'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: () => {
        throw new Error('not written yet');
      },
    });
    const report = await runCheck(port, loadGoldenSet(join(dir, 'golden'), 'molchanov2017'));
    expect(report.exitCode).toBe(1);
    const op = report.ops.find((o) => o.op === 'schedule.kl_weight')!;
    expect(op.failed).toBe(op.cases);
    expect(report.cases.find((c) => c.status === 'failed')!.portError).toBe('not written yet');
    // Every other op is skipped, not failed.
    expect(report.totals.failed).toBe(op.cases);
    expect(report.totals.skipped).toBe(report.totals.cases - op.cases);
  });
});

describe('vdspec check: the convention fingerprint (spec/check.md#fingerprint)', () => {
  const golden = () => loadGoldenSet(join(dir, 'golden'), 'molchanov2017');

  it("spec/check.md#fingerprint: a port with another profile's conventions is named, the noise parameter mapped", async () => {
    // deepbayes-pytorch learns log_sigma = log_sigma2 / 2; its gradient is 2x the log_sigma2 one.
    const port = functionPort({
      name: 'deepbayes-like',
      ops: ['svd.dense.train_vjp', 'svd.mask'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => {
        const { log_sigma2, ...rest } = inputs as { log_sigma2: Tensor };
        const logSigma = { shape: log_sigma2.shape, data: log_sigma2.data.map((v) => v / 2) };
        const out = run(op, { ...rest, log_sigma: logSigma }, 'deepbayes-pytorch');
        const g = out['grad_log_sigma'];
        if (g === undefined) return out;
        delete out['grad_log_sigma'];
        return { ...out, grad_log_sigma2: { shape: g.shape, data: g.data.map((v) => v / 2) } };
      },
    });
    const report = await runCheck(port, golden());
    expect(report.exitCode).toBe(1);
    for (const name of ['svd.dense.train_vjp', 'svd.mask']) {
      const op = report.ops.find((o) => o.op === name)!;
      expect(op.failed, name).toBeGreaterThan(0);
      const profileMatch = op.fingerprint.find((f) => f.id === 'profile:deepbayes-pytorch');
      expect(profileMatch, name).toBeDefined();
      expect(profileMatch!.matched).toBe(op.fingerprintChecked);
    }
  });

  it('spec/check.md#fingerprint: a single convention changed is named with the profiles that share it', () => {
    // molchanov2017 with the [-10, 10] dense clip of deepbayes-pytorch and pytorch-ard.
    const wide: Profile = {
      ...PROFILES.molchanov2017,
      dense: {
        ...PROFILES.molchanov2017.dense,
        logAlpha: { form: 'log_theta2', thetaEps: 0, clip: { min: -10, max: 10 } },
      },
    };
    const inputs = {
      theta: { shape: [1, 3], data: [1, 0.5, 2] },
      log_sigma2: { shape: [1, 3], data: [9, -9.9, 1] },
    };
    const answer = run('svd.log_alpha', inputs, wide);
    const expected = run('svd.log_alpha', inputs, 'molchanov2017');
    const tolerance = FIXTURE_TOLERANCE.float64;
    expect(compareOutputs(expected, {}, answer, tolerance).ok).toBe(false);
    const found = fingerprintCase(
      'svd.log_alpha',
      PROFILES.molchanov2017,
      inputs,
      answer,
      tolerance,
    );
    const clip = found.find((d) => d.id.startsWith('convention:dense.logAlpha.clip'));
    expect(clip?.text).toMatch(
      /^convention: your dense log_alpha is clipped to \[-10, 10\].*like deepbayes-pytorch, pytorch-ard$/,
    );
    // The conv2d clip is not a candidate for a dense layer.
    expect(found.some((d) => d.id.startsWith('convention:conv2d.'))).toBe(false);
  });

  it("spec/check.md#fingerprint: a candidate is held to its own error scale, not the golden value's", () => {
    // theta = 0.7, log_sigma2 = 9: molchanov2017 clips log_alpha = 9.71 to exactly 8, and its
    // golden scale there is 0 (an exact value); pytorch-ard's 9 - 2 log(0.7 + 1e-15) is a rounded
    // log, whose golden scale would be about 56 u. A float64 port of pytorch-ard a few ulps off
    // (6e-15, inside that scale, outside the 4-ulp rel term at 9.7) must still be recognised.
    const inputs = {
      theta: { shape: [1, 1], data: [0.7] },
      log_sigma2: { shape: [1, 1], data: [9] },
    };
    const exact = 9 - 2 * Math.log(0.7 + 1e-15);
    const answer = { log_alpha: { shape: [1, 1], data: [exact + 6e-15] } };
    const found = fingerprintCase(
      'svd.log_alpha',
      PROFILES.molchanov2017,
      inputs,
      answer,
      GOLDEN_TOLERANCE.float64,
    );
    expect(found.map((d) => d.id)).toContain('profile:pytorch-ard');
  });

  it('spec/check.md#fingerprint: an answer that matches nothing known says so', async () => {
    const port = functionPort({
      name: 'off',
      ops: ['svd.log_alpha'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => {
        const t = run(op, inputs, 'molchanov2017')['log_alpha']!;
        return { log_alpha: { shape: t.shape, data: t.data.map((v) => v + 0.125) } };
      },
    });
    const r = await runCheck(port, golden());
    const op = r.ops.find((o) => o.op === 'svd.log_alpha')!;
    expect(op.fingerprintChecked).toBeGreaterThan(0);
    expect(op.fingerprint).toEqual([]);
    expect(
      r.cases.filter((c) => c.fingerprint !== null).every((c) => c.fingerprint!.length === 0),
    ).toBe(true);
  });
});

describe('vdspec check: cross-profile runs (spec/check.md#cross-profile-runs)', () => {
  const times = (t: Tensor, k: number): Tensor => ({
    shape: t.shape,
    data: t.data.map((v) => v * k),
  });
  const SVD_OPS = FIXTURE_OPS.svd;

  /**
   * A port that learns `learns` and computes `computes`'s conventions: it
   * converts its own parameter itself (log_sigma2 = 2 log_sigma, and
   * d/d log_sigma = 2 d/d log_sigma2), independently of the runner.
   */
  function relabelledPort(
    declares: ProfileName,
    learns: 'log_sigma' | 'log_sigma2',
    computes: ProfileName,
  ) {
    const wants = PROFILES[computes].noiseParameter;
    // wants = k * learns, so d/d learns = k * d/d wants.
    const k = learns === wants ? 1 : learns === 'log_sigma' ? 2 : 0.5;
    return functionPort({
      name: `${computes} learning ${learns}`,
      ops: SVD_OPS,
      profile: declares,
      dtype: 'float64',
      run: (op, inputs) => {
        if (learns !== wants && Object.hasOwn(inputs, wants)) {
          throw new Error(`sent ${wants}, expected ${learns}`);
        }
        const { [learns]: own, ...rest } = inputs;
        const given = own === undefined ? inputs : { ...rest, [wants]: times(own as Tensor, k) };
        const out = run(op, given, computes);
        const { [`grad_${wants}`]: g, ...others } = out;
        return g === undefined ? out : { ...others, [`grad_${learns}`]: times(g, k) };
      },
    });
  }

  it('spec/check.md#cross-profile-runs: a port learning log_sigma gets log_sigma = log_sigma2 / 2, its grad_log_sigma is read back as grad_log_sigma2 = grad_log_sigma / 2', async () => {
    // Declares deepbayes-pytorch (log_sigma), computes molchanov2017: with the names translated
    // both ways it is the molchanov2017 reference, to the bit.
    const report = await runCheck(
      relabelledPort('deepbayes-pytorch', 'log_sigma', 'molchanov2017'),
      loadGoldenSet(join(dir, 'golden'), 'molchanov2017'),
    );
    expect(report.infrastructureError).toBeNull();
    expect(report.translation).toEqual({
      golden: 'log_sigma2',
      port: 'log_sigma',
      factor: 0.5,
      input: 'log_sigma = log_sigma2 / 2',
      output: 'grad_log_sigma2 = grad_log_sigma / 2',
    });
    expect(report.totals.failed).toBe(0);
    expect(report.totals.passed).toBe(report.totals.cases);
    for (const op of report.ops) expect(op.worstRatio, op.op).toBe(0);
    expect(report.notes.join('\n')).toMatch(
      /every log_sigma2 input is sent as log_sigma = log_sigma2 \/ 2, and the port's grad_log_sigma is read back as grad_log_sigma2 = grad_log_sigma \/ 2/,
    );
  });

  it('spec/check.md#cross-profile-runs: the reverse, a port learning log_sigma2 against deepbayes-pytorch (shipped golden files)', async () => {
    const report = await runCheck(
      relabelledPort('molchanov2017', 'log_sigma2', 'deepbayes-pytorch'),
      loadGoldenSet(SHIPPED_GOLDEN, 'deepbayes-pytorch'),
    );
    expect(report.translation).toMatchObject({
      input: 'log_sigma2 = 2 * log_sigma',
      output: 'grad_log_sigma = 2 * grad_log_sigma2',
    });
    expect(report.totals.failed).toBe(0);
    // Every case of the ops it declares passes (the shipped set has more ops than the fixture's).
    expect(report.totals.passed).toBe(report.totals.cases - report.totals.skipped);
    expect(report.totals.passed).toBeGreaterThan(0);
    for (const op of report.ops.filter((o) => o.status !== 'skipped')) {
      expect(op.worstRatio, op.op).toBe(0);
    }
  });

  it('spec/check.md#cross-profile-runs: failed cases say which names were translated, in the table, JSON and JUnit', async () => {
    const golden = loadGoldenSet(join(dir, 'golden'), 'molchanov2017');
    const report = await runCheck(
      relabelledPort('deepbayes-pytorch', 'log_sigma', 'deepbayes-pytorch'),
      golden,
    );
    const failed = report.cases.filter((c) => c.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    // Every input arrived: no case was answered with an error.
    expect(failed.filter((c) => c.portError !== null)).toEqual([]);
    const sent = 'input log_sigma2 sent as log_sigma = log_sigma2 / 2';
    const read = 'output grad_log_sigma read as grad_log_sigma2 = grad_log_sigma / 2';
    const vjp = failed.find((c) => c.op === 'svd.dense.train_vjp')!;
    expect(vjp.translated).toEqual([sent, read]);
    expect(failed.find((c) => c.op === 'svd.mask')!.translated).toEqual([sent]);
    expect(failed.find((c) => c.op === 'kl.approx')!.translated).toEqual([]);
    expect(report.cases.find((c) => c.status === 'passed')!.translated).toBeNull();
    const { renderText } = await import('../../src/check/report.js');
    expect(renderText(report, 1000)).toContain(`   translated: ${sent}; ${read}\n`);
    expect(renderJunit(report)).toContain(`translated: ${sent}; ${read}`);
  });

  it('spec/check.md#cross-profile-runs: a VD port against an SVD profile (or the reverse) is refused, exit 2', async () => {
    const port = functionPort({
      name: 'vd',
      ops: ['kl.approx'],
      profile: 'kingma2015',
      dtype: 'float64',
      run: (op, inputs) => run(op, inputs, 'kingma2015'),
    });
    await expect(
      runCheck(port, loadGoldenSet(join(dir, 'golden'), 'molchanov2017')),
    ).rejects.toThrow(
      /the port implements kingma2015 \(VD, learns log_alpha\) and cannot be checked against molchanov2017 \(SVD, learns log_sigma2\)/,
    );
    // The fake port implements molchanov2017: one line, no report, the port ended.
    const r = await check(['--port', fake('good'), '--profile', 'kingma2015']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^vdspec check: the port implements molchanov2017 \(SVD, learns log_sigma2\) and cannot be checked against kingma2015 \(VD, learns log_alpha\)[^\n]*$/,
    );
    const portProcess = await openProcessPort({ command: fake('good'), timeoutMs: 10_000 });
    await expect(
      runCheck(portProcess, loadGoldenSet(join(dir, 'golden'), 'kingma2015')),
    ).rejects.toThrow(/cannot be checked against kingma2015/);
    await expectDead(fakePid(portProcess.stderrTail().join('\n')));
  });

  it('spec/check.md#cross-profile-runs: a profile vdspec does not know is not translated, and a note says so', async () => {
    const port = functionPort({
      name: 'custom',
      ops: ['svd.mask'],
      profile: 'my-own-profile',
      dtype: 'float64',
      run: (op, inputs) => run(op, inputs, 'molchanov2017'),
    });
    const report = await runCheck(port, loadGoldenSet(join(dir, 'golden'), 'molchanov2017'));
    expect(report.exitCode).toBe(0);
    expect(report.translation).toBeNull();
    expect(report.notes.join('\n')).toMatch(
      /"my-own-profile", which vdspec does not know.*untranslated/,
    );
  });
});

describe('vdspec check: comparison (spec/check.md#tolerance)', () => {
  const tol = { abs: 1e-3, rel: 1e-2, scaled: 0.5 };
  const e = (data: number[]) => ({ x: { shape: [data.length], data } });

  it('spec/check.md#tolerance: |a - e| <= abs + rel*|e| + scaled*s, bounds inclusive', () => {
    // allowed at e = 10, s = 2: 1e-3 + 1e-1 + 1 = 1.101 (powers of two chosen so the sum is exact enough)
    const scale = { x: { shape: [1], data: [2] } };
    expect(compareOutputs(e([10]), scale, { x: { shape: [1], data: [11.1] } }, tol).ok).toBe(true);
    expect(compareOutputs(e([10]), scale, { x: { shape: [1], data: [11.2] } }, tol).ok).toBe(false);
    // Without a scale the scaled term is 0: 0.101 allowed.
    expect(compareOutputs(e([10]), {}, { x: { shape: [1], data: [10.1] } }, tol).ok).toBe(true);
    expect(compareOutputs(e([10]), {}, { x: { shape: [1], data: [10.2] } }, tol).ok).toBe(false);
  });

  it('spec/check.md#numbers: non-finite values match exactly, in the string encoding', () => {
    const exact = { abs: 0, rel: 0, scaled: 0 };
    const expected = e([NaN, Infinity, -Infinity, -0]);
    expect(
      compareOutputs(
        expected,
        {},
        { x: { shape: [4], data: ['NaN', 'Infinity', '-Infinity', 0] } },
        exact,
      ).ok,
    ).toBe(true);
    const swapped = compareOutputs(
      expected,
      {},
      { x: { shape: [4], data: ['NaN', '-Infinity', '-Infinity', '-0'] } },
      exact,
    );
    expect(swapped.ok).toBe(false);
    expect(swapped.outputs[0]!.firstMismatch!.index).toBe(1);
    expect(compareOutputs(e([1]), {}, { x: { shape: [1], data: ['NaN'] } }, tol).ok).toBe(false);
  });

  it('spec/check.md#tolerance: a missing output, a wrong shape or a malformed value fails the case', () => {
    const missing = compareOutputs(e([1, 2]), {}, {}, tol);
    expect(missing.outputs[0]!.problem).toMatch(/missing/);
    const shape = compareOutputs(e([1, 2]), {}, { x: { shape: [2, 1], data: [1, 2] } }, tol);
    expect(shape.outputs[0]!.problem).toMatch(/shape \[2, 1\], expected \[2\]/);
    const junk = compareOutputs(e([1]), {}, { x: { shape: [1], data: ['one'] } }, tol);
    expect(junk.outputs[0]!.problem).toMatch(/malformed/);
    const none = compareOutputs(e([1]), {}, null, tol);
    expect(none.outputs[0]!.problem).toMatch(/no outputs object/);
    // Not only the text: each of them fails the output and the case, with an infinite ratio.
    for (const r of [missing, shape, junk, none]) {
      expect(r.ok).toBe(false);
      expect(r.outputs[0]!.ok).toBe(false);
      expect(r.ratio).toBe(Infinity);
    }
    // One good output beside a missing one still fails the case.
    const two = { x: { shape: [1], data: [1] }, y: { shape: [1], data: [2] } };
    const half = compareOutputs(two, {}, { x: { shape: [1], data: [1] } }, tol);
    expect(half.outputs.map((o) => o.ok)).toEqual([true, false]);
    expect(half.ok).toBe(false);
  });

  it('spec/check.md#tolerance: err/tol, the largest error and the structural problems, exactly', () => {
    // allowed at e = 10 without a scale: 1e-3 + 1e-1 = 0.101; an error of 0.05 is 0.05 / 0.101 of it.
    const near = compareOutputs(
      { x: { shape: [2], data: [10, 0] } },
      {},
      { x: { shape: [2], data: [10.05, 0] } },
      tol,
    );
    expect(near.ok).toBe(true);
    expect(near.ratio).toBeCloseTo((10.05 - 10) / 0.101, 12);
    expect(near.maxAbsError).toBeCloseTo(0.05, 12);
    expect(near.outputs[0]!.maxAbsError).toBeCloseTo(0.05, 12);
    // Nothing allowed (exact tolerance): any error is an infinite ratio.
    const exact = compareOutputs(
      e([1]),
      {},
      { x: { shape: [1], data: [1.5] } },
      { abs: 0, rel: 0, scaled: 0 },
    );
    expect(exact.ratio).toBe(Infinity);
    expect(exact.maxAbsError).toBe(0.5);
    // A non-finite answer where a finite value is expected: an infinite error.
    const nan = compareOutputs(e([1]), {}, { x: { shape: [1], data: ['NaN'] } }, tol);
    expect(nan.ratio).toBe(Infinity);
    expect(nan.outputs[0]!.firstMismatch!.error).toBe(Infinity);
    // ... and so is the largest error: a NaN must not read as the small error of its finite neighbours.
    const mostlyNan = compareOutputs(
      e([1, 2]),
      {},
      { x: { shape: [2], data: ['NaN', 2.25] } },
      tol,
    );
    expect(mostlyNan.maxAbsError).toBe(Infinity);
    expect(mostlyNan.outputs[0]!.maxAbsError).toBe(Infinity);
    const inf = compareOutputs(e([1]), {}, { x: { shape: [1], data: ['-Infinity'] } }, tol);
    expect(inf.maxAbsError).toBe(Infinity);
    const wrongNan = compareOutputs(e([NaN]), {}, { x: { shape: [1], data: [0] } }, tol);
    expect(wrongNan.maxAbsError).toBe(Infinity);
    // The same rank with other sizes, named in full.
    const sized = compareOutputs(
      { y: { shape: [2, 3], data: [0, 1, 2, 3, 4, 5] } },
      {},
      { y: { shape: [3, 2], data: [0, 1, 2, 3, 4, 5] } },
      tol,
    );
    expect(sized.ok).toBe(false);
    expect(sized.outputs[0]!.problem).toBe('shape [3, 2], expected [2, 3]');
    // An answer whose outputs are not an object.
    for (const outputs of [[1], 'x', 42]) {
      const r = compareOutputs(e([1]), {}, outputs, tol);
      expect(r.outputs[0]!.problem, JSON.stringify(outputs)).toBe(
        'the answer has no outputs object',
      );
    }
    expect(positionOf(5, [2, 3])).toEqual([1, 2]);
    expect(positionOf(0, [0, 3])).toEqual([0, 0]);
    // An empty last axis must not turn the axes before it into NaN (0 / 0).
    expect(positionOf(0, [3, 0])).toEqual([0, 0]);
  });

  it('spec/check.md#report: the first differing element is located by flat index and position', () => {
    const expected = { y: { shape: [2, 3], data: [0, 1, 2, 3, 4, 5] } };
    const r = compareOutputs(expected, {}, { y: { shape: [2, 3], data: [0, 1, 2, 3, 9, 9] } }, tol);
    const m = r.outputs[0]!.firstMismatch!;
    expect([m.index, ...m.position, m.expected, m.actual]).toEqual([4, 1, 1, 4, 9]);
    expect(r.outputs[0]!.mismatches).toBe(2);
  });
});

describe('vdspec check --port: the NumPy example port (examples/ports/numpy)', () => {
  beforeEach(needsNumpy);
  it.each(['molchanov2017', 'kingma2015'] as const)(
    'spec/check.md#protocol: the NumPy port passes every case of %s',
    async (profile) => {
      const report = await checkJson(['--port', numpy('--profile', profile)]);
      expect(report.infrastructureError).toBeNull();
      expect(report.exitCode).toBe(0);
      expect(report.totals.failed).toBe(0);
      expect(report.totals.skipped).toBe(0);
      expect(report.totals.passed).toBe(report.totals.cases);
      expect(report.port.dtype).toBe('float64');
      const required =
        profile === 'molchanov2017'
          ? [
              'svd.log_alpha',
              'svd.mask',
              'kl.approx',
              'svd.dense.train',
              'svd.dense.eval',
              'svd.conv2d.train',
              'svd.conv2d.eval',
              'kl.layer',
              'objective.sgvb',
            ]
          : ['vd.dense.train', 'vd.dense.eval', 'kl.layer', 'objective.sgvb'];
      for (const op of required)
        expect(report.ops.find((o) => o.op === op)?.status, op).toBe('passed');
    },
  );

  it
    .skipIf(!existsSync(join(SHIPPED_GOLDEN, 'manifest.json')))
    .each(['molchanov2017', 'kingma2015'])(
    'spec/check.md#protocol: the NumPy port passes the shipped golden files of %s (test/golden)',
    async (profile) => {
      const report = await checkJson([
        '--golden',
        SHIPPED_GOLDEN,
        '--port',
        numpy('--profile', profile),
      ]);
      expect(report.infrastructureError).toBeNull();
      expect(report.totals.failed).toBe(0);
      expect(report.totals.passed).toBe(report.totals.cases);
      expect(report.exitCode).toBe(0);
    },
  );

  const SVD_PROFILES = PROFILE_NAMES.filter((p) => PROFILES[p].algorithm === 'svd');
  const crossPairs = SVD_PROFILES.flatMap((port) =>
    SVD_PROFILES.filter((golden) => golden !== port).map((golden) => ({ port, golden })),
  );
  it.skipIf(!existsSync(join(SHIPPED_GOLDEN, 'manifest.json'))).each(crossPairs)(
    'spec/check.md#cross-profile-runs: the NumPy port of $port against the shipped $golden golden files answers every case, and every failure is diagnosed as $port',
    async ({ port, golden }) => {
      const report = await runCheck(
        await openProcessPort({ command: numpy('--profile', port), timeoutMs: 20_000 }),
        loadGoldenSet(SHIPPED_GOLDEN, golden),
        { fingerprintCases: Infinity },
      );
      expect(report.infrastructureError).toBeNull();
      const failed = report.cases.filter((c) => c.status === 'failed');
      // A Lasagne-padding port refuses 'same' with an even kernel, which its profile cannot
      // express (spec/conv2d.md#padding); any other error answer is a translation failure.
      const refusable = (c: (typeof failed)[number]) =>
        PROFILES[port].samePadding === 'lasagne' &&
        /Lasagne's 'same' padding needs an odd kernel/.test(c.portError ?? '');
      const errors = failed.filter((c) => c.portError !== null && !refusable(c));
      expect(errors.map((c) => `${c.op}#${c.caseId}: ${c.portError}`)).toEqual([]);
      // The profiles differ: some cases fail, on their values, and only as the port's profile does.
      expect(failed.length).toBeGreaterThan(0);
      const undiagnosed = failed.filter(
        (c) => !refusable(c) && !c.fingerprint!.some((d) => d.id === `profile:${port}`),
      );
      expect(undiagnosed.map((c) => `${c.op}#${c.caseId}`)).toEqual([]);
    },
  );

  it.skipIf(!existsSync(join(SHIPPED_GOLDEN, 'manifest.json')))(
    "spec/check.md#fingerprint: pytorch-ard's kl.layer failures under molchanov2017 are its dense clip [-10, 10]",
    async () => {
      // Where molchanov2017 clips at 8 its golden scale is 0: judged by that scale, the rounding
      // of pytorch-ard's unclipped log_alpha hid the clip convention in 2 of the 5 cases.
      const report = await checkJson([
        '--golden',
        SHIPPED_GOLDEN,
        '--port',
        numpy('--profile', 'pytorch-ard'),
        '--profile',
        'molchanov2017',
        '--op',
        'kl.layer',
      ]);
      const op = report.ops[0]!;
      expect(op.failed).toBeGreaterThan(0);
      expect(op.fingerprintChecked).toBe(op.failed);
      const clip = op.fingerprint.find(
        (f) => f.id === 'convention:dense.logAlpha.clip={"min":-10,"max":10,"gradientAtBound":1}',
      );
      expect(clip?.matched).toBe(op.failed);
      expect(op.fingerprint.find((f) => f.id === 'profile:pytorch-ard')?.matched).toBe(op.failed);
    },
  );

  it('the convention lines README.md and spec/check.md quote are the ones the checker prints', () => {
    const texts = new Map(
      fingerprintCandidates(PROFILES.molchanov2017).map((c) => [c.id, c.text] as const),
    );
    const readme = readFileSync(here('../../README.md'), 'utf8');
    const page = readFileSync(here('../../spec/check.md'), 'utf8');
    const mask = texts.get('convention:prune.comparison=">="')!;
    expect(mask).toMatch(/, like .*state-of-sparsity-nn/);
    expect(readme).toContain(`matches: ${mask}\n`);
    expect(page).toContain(`\`${mask}\``);
    // Every "like <profiles>" list the page quotes is complete.
    for (const m of page.matchAll(/`convention: ([^`]*, like [^`]*)`/g)) {
      expect([...texts.values()]).toContain(`convention: ${m[1]}`);
    }
  });

  // Two true defects, labelled "known bug", and two choices published code makes on purpose
  // (>= at the threshold, the KL without its constant), labelled "convention".
  const planted = [
    {
      bug: 'std-from-sigma4',
      id: 'bug:std_from_sigma4',
      label: 'known bug',
      ops: ['svd.dense.train', 'svd.conv2d.train'],
      text: /your standard deviation comes from sigma\^4 instead of sigma\^2/,
    },
    {
      bug: 'mask-ge-threshold',
      id: 'convention:prune.comparison=">="',
      label: 'convention',
      ops: ['svd.mask', 'svd.dense.eval', 'svd.conv2d.eval'],
      text: /your mask uses >= at the threshold: a weight at exactly log_alpha = 3 is pruned \(prune\.comparison = '>='; molchanov2017 has '>'\), like bayesgroup-theano, deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard/,
    },
    {
      bug: 'kl-constant-dropped',
      id: 'convention:kl.constant="omitted"',
      label: 'convention',
      ops: ['kl.approx', 'kl.layer'],
      text: /your KL omits the constant C = -k1: lower by SVD_KL_K1 = 0\.63576 per weight.*, like deepbayes-pytorch$/m,
    },
    {
      bug: 'bias-in-variance',
      id: 'bug:bias_in_variance',
      label: 'known bug',
      ops: ['svd.dense.train', 'svd.conv2d.train'],
      text: /your variance includes the bias/,
    },
    {
      bug: 'kl-sign-flipped',
      id: 'bug:kl_sign_value_only',
      label: 'common mistake',
      ops: ['kl.approx'],
      text: /your KL has the opposite sign \(-KL.*; its gradient has the right sign/,
    },
    {
      bug: 'eval-without-mask',
      id: 'bug:eval_without_mask',
      label: 'common mistake',
      ops: ['svd.dense.eval', 'svd.conv2d.eval'],
      text: /your eval forward does not apply the keep mask/,
    },
    {
      bug: 'no-sqrt-eps',
      id: 'bug:no_sqrt_eps',
      label: 'common mistake',
      ops: ['svd.dense.train', 'svd.conv2d.train'],
      text: /your training forward has no eps inside the square root \(the profile's is 1e-8/,
    },
    {
      bug: 'sqrt-eps-in-variance',
      id: 'bug:sqrt_eps_in_variance',
      label: 'common mistake',
      ops: ['svd.dense.train', 'svd.conv2d.train'],
      text: /your variance output includes the square root's eps \(1e-8\)/,
    },
    {
      bug: 'float32-kl',
      id: 'bug:float32_arithmetic',
      label: 'common mistake',
      ops: ['kl.approx'],
      text: /the answer is within the float32 tolerance, not the float64 one/,
    },
    {
      // One clip range in both layer kinds is one cause: svd.log_alpha and kl.layer see both kinds.
      bug: 'log-alpha-clip-10',
      id: 'convention:dense+conv2d.logAlpha.clip={"min":-10,"max":10,"gradientAtBound":1}',
      label: 'convention',
      ops: ['svd.log_alpha', 'kl.layer'],
      text: /your dense and conv2d log_alpha is clipped to \[-10, 10\] \(dense\.logAlpha\.clip and conv2d\.logAlpha\.clip = \[-10, 10\]; molchanov2017 has \[-8, 8\] for dense, molchanov2017 has \[-8, 8\] for conv2d\), like deepbayes-pytorch/,
    },
  ];
  it.each(planted)(
    'spec/check.md#fingerprint: planted $bug is caught and diagnosed as a $label',
    async ({ bug, id, label, ops, text }) => {
      const r = await check(['--port', numpy('--bug', bug), '--json']);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.out) as CheckReport;
      for (const name of ops) {
        const op = report.ops.find((o) => o.op === name)!;
        expect(op.status, name).toBe('failed');
        // The diagnosis explains every fingerprinted failure of the op, no passed case
        // contradicts it, and it comes first.
        expect(op.fingerprint[0]?.id, name).toBe(id);
        expect(op.fingerprint[0]!.matched, name).toBe(op.fingerprintChecked);
        expect(op.fingerprint[0]!.contradicted, name).toBe(0);
        expect(op.fingerprint[0]!.text).toMatch(text);
        expect(op.fingerprint[0]!.text.startsWith(`${label}: `), name).toBe(true);
      }
      if (label === 'convention') {
        // A published convention is never called a bug, in any op.
        const bugs = report.ops.flatMap((o) => o.fingerprint).filter((f) => f.kind === 'bug');
        expect(bugs.map((f) => f.text)).toEqual([]);
        expect(r.out).not.toMatch(/known bug/);
      }
      // Ops the planted change cannot touch still pass.
      expect(report.ops.find((o) => o.op === 'objective.sgvb')!.status).toBe('passed');
      // The table says it too.
      const table = await check(['--port', numpy('--bug', bug), '--op', ops.join(',')]);
      expect(table.code).toBe(1);
      expect(table.out).toMatch(
        new RegExp(
          `^  ${ops[0]!.replace(/\./g, '\\.')}: \\d+ of \\d+ failed cases?: ${label}: ${text.source}`,
          'm',
        ),
      );
    },
  );

  it('spec/check.md#fingerprint: a diagnosis that passed cases contradict ranks after one they do not', async () => {
    const port = numpy('--bug', 'log-alpha-clip-10');
    const report = await checkJson(['--port', port, '--golden', SHIPPED_GOLDEN]);
    const op = report.ops.find((o) => o.op === 'svd.log_alpha')!;
    // deepbayes-pytorch clips to [-10, 10] too, so it explains every failure of svd.log_alpha;
    // but it omits the KL constant and takes log_sigma, which the passing kl.approx refutes.
    const whole = op.fingerprint.findIndex((f) => f.id === 'profile:deepbayes-pytorch');
    expect(whole).toBeGreaterThan(0);
    expect(op.fingerprint[whole]!.matched).toBe(op.fingerprintChecked);
    expect(op.fingerprint[whole]!.contradicted).toBeGreaterThan(0);
    expect(op.fingerprint[whole]!.contradictedIn).toContain('kl.approx');
    const table = await check([
      '--port',
      port,
      '--golden',
      SHIPPED_GOLDEN,
      '--op',
      'svd.log_alpha,kl.approx',
    ]);
    expect(table.out).toMatch(
      /^ {2}svd\.log_alpha: 9 of 9 failed cases: your answer matches the deepbayes-pytorch profile .*\[contradicted by \d+ passed cases? of kl\.approx\]$/m,
    );
  });

  it('spec/golden.md#cases: a kernel wrong only from the 4th output unit on passes the small cases and fails the realistic-size ones', async (ctx) => {
    needsNumpy(ctx);
    const port = numpy('--bug', 'tail-from-4th-unit');
    const report = await checkJson(['--port', port, '--golden', SHIPPED_GOLDEN]);
    expect(report.exitCode).toBe(1);
    const failed = report.cases.filter((c) => c.status === 'failed');
    // Every forward of both layer kinds fails, and only on the realistic-size cases.
    for (const op of ['svd.dense.train', 'svd.dense.eval', 'svd.conv2d.train', 'svd.conv2d.eval']) {
      expect(
        failed.some((c) => c.op === op),
        op,
      ).toBe(true);
    }
    for (const c of failed) expect(c.flags, `${c.op} case ${c.caseId}`).toContain('realistic_size');
    // The set as it was before those cases (the same cases less the realistic-size ones: adding
    // a case changes no other) passes the bug.
    const golden = join(dir, 'golden-small');
    for (const file of [
      'svd.dense.train',
      'svd.dense.eval',
      'svd.conv2d.train',
      'svd.conv2d.eval',
    ]) {
      const g = JSON.parse(
        readFileSync(join(SHIPPED_GOLDEN, 'molchanov2017', `${file}.json`), 'utf8'),
      ) as { cases: { flags: string[] }[] };
      const small = g.cases.filter((c) => !c.flags.includes('realistic_size'));
      expect(small.length).toBeLessThan(g.cases.length);
      g.cases = small;
      mkdirSync(join(golden, 'molchanov2017'), { recursive: true });
      writeFileSync(join(golden, 'molchanov2017', `${file}.json`), JSON.stringify(g));
    }
    const before = await checkJson(['--port', port, '--golden', golden]);
    expect(before.exitCode).toBe(0);
    expect(before.totals.passed).toBeGreaterThan(50);
  });

  it('spec/check.md#fingerprint: a VD port with sigma^4 is diagnosed too', async () => {
    const report = await checkJson([
      '--port',
      numpy('--profile', 'kingma2015', '--bug', 'std-from-sigma4'),
      '--op',
      'vd.*.train',
    ]);
    expect(report.exitCode).toBe(1);
    for (const op of report.ops) expect(op.fingerprint[0]?.id, op.op).toBe('bug:std_from_sigma4');
  });
});

describe('vdspec check --port: ports that break the protocol (spec/check.md#exit-codes)', () => {
  it('spec/check.md#protocol: a port that declares a subset of ops: the rest is skipped, not failed', async () => {
    const r = await check(['--port', fake('good')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^kl\.approx\s+pass\s+2\s+2\s+0\s+0\s+0/m);
    expect(r.out).toMatch(/^svd\.mask\s+skipped\s+6\s+0\s+0\s+6\s+0/m);
    expect(r.out).toMatch(/Result: PASS/);
    await expectDead(fakePid(r.out));
  });

  it('spec/check.md#protocol: lines on stdout that cannot be messages (debug prints) are ignored, and the report says so', async () => {
    const r = await check(['--port', fake('chatty')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^kl\.approx\s+pass\s+2\s+2\s+0/m);
    expect(r.out).toMatch(
      /the port printed 2 lines on stdout that are not protocol messages, the first "DEBUG case kl\.approx#0" \(ignored; stdout is reserved for protocol messages, print diagnostics to stderr\)/,
    );
  });

  it('spec/check.md#protocol: error answers are failed cases, with the message (exit 1)', async () => {
    const r = await check(['--port', fake('error-answer'), '--op', 'kl.approx']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/the port answered with an error: not implemented here/);
  });

  const broken = [
    {
      mode: 'crash',
      message:
        /the port exited with code 3 while the runner waited for its answer to case kl\.approx#0/,
      stderr: /crashing on purpose/,
    },
    {
      mode: 'hang',
      message:
        /no answer within 1 s \(--timeout\) for case kl\.approx#0: .*\(did the port flush stdout after the line\?\)/,
      stderr: /mode=hang/,
    },
    {
      mode: 'junk',
      message:
        /printed junk on stdout while the runner waited for case kl\.approx#0: "\{computing\.\.\. done!"/,
      stderr: /mode=junk/,
    },
    {
      mode: 'chatty-only',
      message:
        /no answer within 1 s \(--timeout\) for case kl\.approx#0: it hangs, is too slow, or keeps its answer in an output buffer \(did the port flush stdout after the line\?\); meanwhile it printed 1 line on stdout that is not a protocol message "computing\.\.\. done!"/,
      stderr: /mode=chatty-only/,
    },
    {
      mode: 'bare-nan',
      message:
        /junk .*\[NaN\].*; non-finite numbers must be the strings "NaN", "Infinity", "-Infinity"/,
      stderr: /mode=bare-nan/,
    },
    {
      mode: 'wrong-id',
      message: /answered case kl\.approx#0 with id "kl\.approx#0-other"/,
      stderr: /mode=wrong-id/,
    },
    {
      mode: 'outputs-list',
      message: /the port's answer to case kl\.approx#0: \/outputs: \[1,2\] is not an object/,
      stderr: /mode=outputs-list/,
    },
  ];
  it.each(broken)(
    'spec/check.md#exit-codes: a port that $mode: report, exit 2, child killed',
    async ({ mode, message, stderr }) => {
      const started = Date.now();
      const r = await check(['--port', fake(mode), '--timeout', '1']);
      // The hang costs the 1 s timeout; nothing waits for the 2 s exit grace after a failure.
      expect(Date.now() - started).toBeLessThan(5000);
      expect(r.code).toBe(2);
      expect(r.out).toMatch(message);
      expect(r.out).toMatch(stderr);
      expect(r.out).toMatch(/^kl\.approx\s+not run\s+2\s+0\s+0\s+0\s+2/m);
      expect(r.out).toMatch(/Result: ERROR/);
      await expectDead(fakePid(r.out));
    },
  );

  const handshake = [
    { mode: 'hang-hello', message: /no answer within 1 s \(--timeout\) for the handshake/ },
    {
      mode: 'silent-exit',
      message:
        /the port exited with code 0 while the runner waited for its answer to the handshake/,
    },
    {
      mode: 'old-protocol',
      message: /the port speaks protocol "vdspec-port\/0"; this runner speaks "vdspec-port\/1"/,
    },
    {
      mode: 'float16-hello',
      message:
        /^vdspec check: the port's hello: \/dtype: "float16", expected "float64" or "float32"/,
    },
  ];
  it.each(handshake)(
    'spec/check.md#handshake: a port that fails the handshake ($mode): one message, exit 2',
    async ({ mode, message }) => {
      const r = await check(['--port', fake(mode), '--timeout', '1']);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(message);
      await expectDead(fakePid(r.err));
    },
  );

  it("spec/check.md#exit-codes: a command that does not exist is exit 2 with the shell's message", async () => {
    const r = await check(['--port', 'vdspec-no-such-command-here']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /exited with code 127 while the runner waited for its answer to the handshake[\s\S]*not found/,
    );
  });
});

describe('vdspec check --results (spec/check.md#results-file)', () => {
  function resultsFile(
    name: string,
    edit: (results: Record<string, Record<string, unknown>>) => void,
    extra: Record<string, unknown> = {},
  ): string {
    const golden = loadGoldenSet(join(dir, 'golden'), 'molchanov2017');
    const results: Record<string, Record<string, unknown>> = {};
    for (const file of golden.files) {
      results[file.op.name] = Object.fromEntries(
        file.cases.map((c) => [
          String(c.id),
          {
            outputs: JSON.parse(
              JSON.stringify(c.outputs, (_k, v: unknown) =>
                typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
              ),
            ) as unknown,
          },
        ]),
      );
    }
    edit(results);
    const path = join(dir, name);
    writeFileSync(
      path,
      JSON.stringify({
        schema: 'vdspec-results/1',
        dtype: 'float64',
        profile: 'molchanov2017',
        results,
        ...extra,
      }),
    );
    return path;
  }

  it('spec/check.md#results-file: a results file of a log_sigma profile has its grad_log_sigma read back as grad_log_sigma2 = grad_log_sigma / 2', async () => {
    // The golden kl.layer answers, written as a deepbayes-pytorch port names its gradient:
    // d/d log_sigma = 2 d/d log_sigma2 (non-finite strings are their own doubles).
    const path = resultsFile(
      'log-sigma.json',
      (results) => {
        for (const entry of Object.values(results['kl.layer']!)) {
          const outputs = (entry as { outputs: Record<string, { data: unknown[] }> }).outputs;
          const { grad_log_sigma2: g, ...rest } = outputs;
          const doubled = { ...g!, data: g!.data.map((v) => (typeof v === 'number' ? 2 * v : v)) };
          (entry as { outputs: unknown }).outputs = { ...rest, grad_log_sigma: doubled };
        }
      },
      { profile: 'deepbayes-pytorch' },
    );
    const report = await checkJson([
      '--results',
      path,
      '--profile',
      'molchanov2017',
      '--op',
      'kl.layer',
    ]);
    expect(report.translation).toMatchObject({ output: 'grad_log_sigma2 = grad_log_sigma / 2' });
    expect(report.ops.find((o) => o.op === 'kl.layer')).toMatchObject({
      status: 'passed',
      worstRatio: 0,
    });
    expect(report.exitCode).toBe(0);
  });

  it('spec/check.md#exit-codes: op names vdspec does not know are refused with the near names (exit 2), never a pass of nothing', async () => {
    const path = resultsFile('typos.json', (results) => {
      for (const op of Object.keys(results)) Reflect.deleteProperty(results, op);
      results['kl_approx'] = { '0': { error: 'x' } };
      results['schedule.klweight'] = {};
    });
    const r = await check(['--results', path]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toBe(
      `vdspec check: results file ${path}: /results holds op names vdspec does not know: ` +
        '"kl_approx" (did you mean kl.approx?), "schedule.klweight" (did you mean schedule.kl_weight?); ' +
        'the operations are listed in spec/ops.md (vdspec eval --list)',
    );
    // Beside known ops too: one typo hides that op's cases.
    const mixed = resultsFile('mixed.json', (results) => {
      results['svd.dense.Eval'] = {};
    });
    const m = await check(['--results', mixed]);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/"svd\.dense\.Eval" \(did you mean svd\.dense\.eval, /);
  });

  it('spec/check.md#exit-codes: a run that checked no case fails (exit 2), in the table, JSON and JUnit; ops without golden files keep their note', async () => {
    // Known ops, none of them selected: every case skipped.
    const path = resultsFile('only-mask.json', (results) => {
      for (const op of Object.keys(results))
        if (op !== 'svd.mask') Reflect.deleteProperty(results, op);
      results['vd.dense.train'] = {};
    });
    const junit = join(dir, 'nothing-junit.xml');
    const r = await check(['--results', path, '--op', 'kl.*', '--junit', junit]);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      /^Error: no case was checked: the port declares none of the selected ops/m,
    );
    expect(r.out).toMatch(
      /^Note: declared by the port but without golden files for molchanov2017: vd\.dense\.train$/m,
    );
    expect(r.out).toMatch(/Result: ERROR: no case was checked \(\d+ skipped\) \(exit 2\)$/);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuites [^>]*errors="1"/);
    expect(xml).toMatch(/<error message="no case was checked: /);
    const report = await checkJson(['--results', path, '--op', 'kl.*']);
    expect(report.exitCode).toBe(2);
    expect(report.totals.passed + report.totals.failed).toBe(0);
    expect(report.infrastructureError).toMatch(/^no case was checked/);
    // The same file with its op selected is checked as usual.
    const ok = await check(['--results', path, '--op', 'svd.mask,kl.*']);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(
      /Note: declared by the port but without golden files for molchanov2017: vd\.dense\.train/,
    );
  });

  it('spec/check.md#results-file: the golden outputs themselves pass', async () => {
    const r = await check(['--results', resultsFile('good.json', () => undefined)]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Result: PASS/);
  });

  it('spec/check.md#results-file: a wrong value, a missing case and an error entry fail; an absent op is skipped', async () => {
    const path = resultsFile('bad.json', (results) => {
      // Case 1 has log_alpha exactly 3 everywhere: '>' keeps all four weights, '>=' prunes them.
      const mask = results['svd.mask']!['1'] as { outputs: { mask: { data: number[] } } };
      mask.outputs.mask.data = [0, 0, 0, 0];
      delete results['kl.layer']!['0'];
      results['kl.approx']!['0'] = { error: 'diverged' };
      delete results['objective.sgvb'];
    });
    const report = await checkJson(['--results', path]);
    expect(report.exitCode).toBe(1);
    const status = (op: string) => report.ops.find((o) => o.op === op)!;
    expect(status('svd.mask').failed).toBe(1);
    expect(status('kl.layer').failed).toBe(1);
    expect(status('objective.sgvb').status).toBe('skipped');
    const failures = report.cases.filter((c) => c.status === 'failed');
    expect(failures.find((c) => c.op === 'kl.approx')).toMatchObject({
      portError: 'diverged',
      noAnswer: null,
    });
    // A case without an entry is no error the port answered: it has no answer at all.
    expect(failures.find((c) => c.op === 'kl.layer')).toMatchObject({
      caseId: 0,
      portError: null,
      noAnswer: 'the results file has no entry for this case',
    });
    const text = await check(['--results', path, '--max-failures', '10']);
    expect(text.out).toMatch(/^ {3}no answer: the results file has no entry for this case$/m);
    expect(text.out).toMatch(/^ {3}the port answered with an error: diverged$/m);
    expect(text.out).not.toMatch(/answered with an error: the results file/);
    const mask = failures.find((c) => c.op === 'svd.mask')!;
    expect(mask.comparison!.outputs[0]!.firstMismatch!.index).toBe(0);
    expect(mask.fingerprint!.map((d) => d.id)).toContain('convention:prune.comparison=">="');
  });

  it('spec/check.md#results-file: answers for case ids the golden set does not have are listed and fail the check; a malformed entry is no answer', async () => {
    const path = resultsFile('unknown.json', (results) => {
      results['svd.mask']!['9999'] = results['svd.mask']!['0'];
      results['kl.approx']!['abc'] = { error: 'not a case' };
    });
    const report = await checkJson(['--results', path]);
    expect(report.totals.failed).toBe(0);
    expect(report.unknownResults).toEqual(
      expect.arrayContaining([
        { op: 'svd.mask', caseId: '9999' },
        { op: 'kl.approx', caseId: 'abc' },
      ]),
    );
    expect(report.totals.unknown).toBe(2);
    expect(report.exitCode).toBe(1);
    const junit = join(dir, 'unknown-junit.xml');
    const text = await check(['--results', path, '--junit', junit]);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(
      /^The results file has 2 answers for cases the golden set does not have \(each fails the check/m,
    );
    expect(text.out).toMatch(/^ {2}svd\.mask: case 9999$/m);
    expect(text.out).toMatch(
      /Result: FAIL: \d+ cases passed, but the results file has 2 answers for cases the golden set does not have \(exit 1\)$/,
    );
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuites [^>]*failures="2"/);
    expect(xml).toContain('name="case 9999: not in the golden set"');
    // Only the selected ops' files are compared: kl.approx's extra id is outside --op svd.mask.
    const selected = await checkJson(['--results', path, '--op', 'svd.mask']);
    expect(selected.unknownResults).toEqual([{ op: 'svd.mask', caseId: '9999' }]);

    const malformed = resultsFile('malformed.json', (results) => {
      results['svd.mask']!['0'] = { output: {} };
    });
    const m = await checkJson(['--results', malformed, '--op', 'svd.mask']);
    expect(m.cases.find((c) => c.caseId === 0)).toMatchObject({
      status: 'failed',
      portError: null,
      noAnswer: expect.stringMatching(/entry for this case is malformed/) as unknown,
    });
  });

  // Each defect alone, in one output of one case: the case fails, its op fails, the run is exit 1.
  it.each([
    {
      defect: 'missing',
      edit: (outputs: Record<string, unknown>, name: string) =>
        Reflect.deleteProperty(outputs, name),
      problem: /^missing from the answer$/,
    },
    {
      defect: 'misspelt',
      edit: (outputs: Record<string, unknown>, name: string) => {
        outputs[name.toUpperCase()] = outputs[name];
        Reflect.deleteProperty(outputs, name);
      },
      problem: /^missing from the answer \(it has "[A-Z_0-9]+", which the op does not output\)$/,
    },
    {
      defect: 'misshapen',
      edit: (outputs: Record<string, unknown>, name: string) => {
        const t = outputs[name] as { shape: number[]; data: unknown[] };
        outputs[name] = { shape: [...t.shape, 1], data: t.data };
      },
      problem: /shape \[.*, 1\], expected/,
    },
    {
      defect: 'malformed',
      edit: (outputs: Record<string, unknown>, name: string) => {
        const t = outputs[name] as { shape: number[]; data: unknown[] };
        outputs[name] = { shape: t.shape, data: ['one', ...t.data.slice(1)] };
      },
      problem: /malformed/,
    },
    {
      defect: 'not an object',
      edit: (outputs: Record<string, unknown>, name: string) => (outputs[name] = 42),
      problem: /malformed/,
    },
  ])(
    'spec/check.md#tolerance: a $defect output fails its case end to end (exit 1, the case failed, FAIL)',
    async ({ defect, edit, problem }) => {
      const op = 'kl.layer';
      let broken = '';
      const path = resultsFile(`defect-${defect.replace(/ /g, '-')}.json`, (results) => {
        const entry = results[op]!['1'] as { outputs: Record<string, unknown> };
        // The last output: a defect in any output, not only the first, fails the case.
        broken = Object.keys(entry.outputs).at(-1)!;
        edit(entry.outputs, broken);
      });
      const report = await checkJson(['--results', path, '--op', op]);
      expect(report.exitCode).toBe(1);
      const failed = report.cases.filter((c) => c.status === 'failed');
      expect(failed.map((c) => [c.op, String(c.caseId)])).toEqual([[op, '1']]);
      const comparison = failed[0]!.comparison!;
      expect(comparison.ok).toBe(false);
      const output = comparison.outputs.find((o) => o.name === broken)!;
      expect(output.ok).toBe(false);
      expect(output.problem).toMatch(problem);
      expect(report.ops.find((o) => o.op === op)).toMatchObject({ status: 'failed', failed: 1 });
      expect(report.totals.failed).toBe(1);
      const text = await check(['--results', path, '--op', op]);
      expect(text.code).toBe(1);
      expect(text.out).toMatch(/Result: FAIL: 1 of \d+ checked cases failed/);
      expect(text.out).toContain(`output "${broken}": `);
    },
  );

  it('spec/check.md#exit-codes: an unreadable, non-JSON or wrong-schema results file is exit 2', async () => {
    const missing = await check(['--results', join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read results file/);
    const junkPath = join(dir, 'junk.json');
    writeFileSync(junkPath, '{"schema": ');
    expect((await check(['--results', junkPath])).err).toMatch(/is not valid JSON/);
    const schema = await check([
      '--results',
      resultsFile('schema.json', () => undefined, { schema: 'vdspec-results/9' }),
    ]);
    expect(schema.code).toBe(2);
    expect(schema.err).toMatch(
      /^vdspec check: results file .*schema\.json: \/schema: "vdspec-results\/9", expected "vdspec-results\/1"$/m,
    );
    // No op at all: every case would be skipped and the check would pass.
    const emptyPath = join(dir, 'empty.json');
    writeFileSync(
      emptyPath,
      JSON.stringify({
        schema: 'vdspec-results/1',
        dtype: 'float64',
        profile: 'molchanov2017',
        results: {},
      }),
    );
    const empty = await check(['--results', emptyPath]);
    expect(empty.code).toBe(2);
    expect(empty.err).toMatch(/empty\.json: \/results: holds no op, so nothing could be checked/);
    expect(empty.out).not.toMatch(/PASS/);
  });
});

describe('vdspec check: report formats (spec/check.md#report)', () => {
  /** Minimal XML 1.0 well-formedness: balanced tags, quoted attributes, known entities only. */
  function parseXml(xml: string): { name: string; attrs: Record<string, string> }[] {
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n')).toBe(true);
    const body = xml.slice(xml.indexOf('?>') + 2);
    const elements: { name: string; attrs: Record<string, string> }[] = [];
    const stack: string[] = [];
    const token = /<(\/?)([A-Za-z][\w-]*)((?:\s+[\w-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
    let m: RegExpExecArray | null;
    let consumed = 0;
    while ((m = token.exec(body)) !== null) {
      consumed = token.lastIndex;
      const text = m[5];
      if (text !== undefined) {
        expect(text.replace(/&(amp|lt|gt|quot|apos);/g, '')).not.toMatch(/[&<>]/);
        continue;
      }
      const [, close, name, attrText, selfClose] = m;
      if (close) {
        expect(stack.pop()).toBe(name);
        continue;
      }
      const attrs: Record<string, string> = {};
      for (const a of attrText!.matchAll(/([\w-]+)="([^"]*)"/g)) {
        expect(a[2]!.replace(/&(amp|lt|gt|quot|apos);/g, '')).not.toMatch(/[&<>]/);
        attrs[a[1]!] = a[2]!;
      }
      elements.push({ name: name!, attrs });
      if (!selfClose) stack.push(name!);
    }
    expect(consumed).toBe(body.length);
    expect(stack).toEqual([]);
    return elements;
  }

  it("spec/check.md#report: --junit writes well-formed XML with the report's counts", async (ctx) => {
    needsNumpy(ctx);
    const path = join(dir, 'junit.xml');
    const r = await check(['--port', numpy('--bug', 'mask-ge-threshold'), '--junit', path]);
    expect(r.code).toBe(1);
    const xml = readFileSync(path, 'utf8');
    const elements = parseXml(xml);
    const report = await checkJson(['--port', numpy('--bug', 'mask-ge-threshold')]);
    const root = elements[0]!;
    expect(root.name).toBe('testsuites');
    expect(Number(root.attrs['tests'])).toBe(report.totals.cases);
    expect(Number(root.attrs['failures'])).toBe(report.totals.failed);
    expect(Number(root.attrs['skipped'])).toBe(report.totals.skipped);
    expect(elements.filter((e) => e.name === 'testcase')).toHaveLength(report.totals.cases);
    expect(elements.filter((e) => e.name === 'failure')).toHaveLength(report.totals.failed);
    expect(elements.filter((e) => e.name === 'testsuite')).toHaveLength(report.ops.length);
    // Messages with "|error| ... > allowed" went through the escapes.
    expect(xml).toMatch(/&gt; allowed/);
  });

  it('spec/check.md#report: JUnit counts skipped and not-run cases; JSON keeps non-finite numbers as strings', async () => {
    const r = await check(['--port', fake('crash'), '--op', 'kl.*,svd.mask', '--json']);
    expect(r.code).toBe(2);
    const report = JSON.parse(r.out) as CheckReport;
    expect(report.schema).toBe('vdspec-check-report/1');
    expect(report.totals).toMatchObject({ passed: 0, failed: 0, notRun: 2 });
    expect(report.infrastructureError).toMatch(/exited with code 3/);
    const elements = parseXml(renderJunit(report));
    expect(elements[0]!.attrs).toMatchObject({
      errors: '2',
      skipped: String(report.totals.skipped),
    });
    expect(elements.filter((e) => e.name === 'error')).toHaveLength(2);
    expect(elements.filter((e) => e.name === 'skipped')).toHaveLength(report.totals.skipped);
    // A finite answer where +inf is expected (kl.approx case 1: log_alpha = -inf): the ratio is
    // Infinity, and JSON spells it "Infinity" like the golden encoding.
    const path = join(dir, 'inf.json');
    writeFileSync(
      path,
      JSON.stringify({
        schema: 'vdspec-results/1',
        dtype: 'float64',
        profile: 'molchanov2017',
        results: {
          'kl.approx': {
            '1': {
              outputs: {
                kl: { shape: [1], data: [0] },
                dkl_dlog_alpha: { shape: [1], data: [-0.5] },
              },
            },
          },
        },
      }),
    );
    const inf = await check(['--results', path, '--op', 'kl.approx', '--json']);
    expect(inf.code).toBe(1);
    expect(inf.out).toMatch(/"worstRatio": "Infinity"/);
    expect(inf.out).toMatch(/"expected": "Infinity"/);
    expect((JSON.parse(inf.out) as CheckReport).totals.failed).toBe(2);
  });

  it('spec/check.md#report: the table shows the first failures in detail, --max-failures more or fewer', async () => {
    const port = functionPort({
      name: 'plus-one',
      ops: ['schedule.kl_weight'],
      profile: 'molchanov2017',
      dtype: 'float64',
      run: (op, inputs) => {
        const t = run(op, inputs, 'molchanov2017')['kl_weight']!;
        return { kl_weight: { shape: t.shape, data: t.data.map((v) => v + 1) } };
      },
    });
    const report = await runCheck(
      port,
      loadGoldenSet(join(dir, 'golden'), 'molchanov2017', 'schedule.*'),
    );
    const { renderText } = await import('../../src/check/report.js');
    const text = renderText(report, 2);
    expect(text).toMatch(/Failures \(first 2 of 6; --max-failures N shows more\):/);
    expect(text).toMatch(
      /1\) schedule\.kl_weight case 0 \(spec\/objective\.md#schedulekl_weight\)\n {3}comment: epoch 0\n {3}input epoch = 0\n {3}output "kl_weight": 1 of 1 elements differ; first at index 0 \[\]: expected 0, got 1/,
    );
    expect(text).not.toMatch(/3\) schedule/);
    expect(renderText(report, 10)).toMatch(/6\) schedule\.kl_weight case 5/);
  });
});

describe('vdspec check: usage (spec/check.md#exit-codes)', () => {
  it.each([
    [[], /give exactly one of --port "COMMAND" and --results FILE/],
    [['--port', 'x', '--results', 'y'], /give exactly one/],
    [['--results', 'x', '--timeout', '0'], /--timeout must be in \(0, 86400\] seconds, got "0"/],
    // Beyond setTimeout's 2^31 - 1 ms Node fires at once: "no answer within 2147484 s".
    [['--results', 'x', '--timeout', '2147484'], /--timeout must be in \(0, 86400\] seconds/],
    [['--results', 'x', '--timeout', 'soon'], /--timeout expects a decimal number, got "soon"/],
    [['--results', 'x', '--max-failures', '-1'], /--max-failures expects a non-negative integer/],
    [['--results', 'x', '--frobnicate'], /unknown option "--frobnicate"/],
    [['--results', 'x', '--json', '--json'], /--json given twice/],
  ])('spec/check.md#exit-codes: %j is a usage error, exit 2', async (argv, message) => {
    const r = await check(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  it('spec/check.md#exit-codes: an unknown profile, an --op matching nothing, a missing golden directory: exit 2', async () => {
    const good = fake('good');
    expect((await check(['--port', good, '--profile', 'nope'])).err).toMatch(
      /unknown profile "nope"/,
    );
    expect((await check(['--port', good, '--op', 'no.such.*'])).err).toMatch(
      /pattern "no\.such\.\*" matches no operation/,
    );
    // Ops that exist but have no golden file for the profile: named with the ones it has.
    expect((await check(['--port', good, '--op', 'vd.*'])).err).toMatch(
      /--op vd\.\* matches none of the golden ops of "molchanov2017"/,
    );
    const r = await check(['--port', good, '--golden', join(dir, 'missing')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/golden directory .*missing does not exist/);
  });

  it('spec/check.md#exit-codes: an --op pattern matching no operation is refused, as golden refuses it, even beside one that matches', async () => {
    const good = fake('good');
    const r = await check(['--port', good, '--op', 'kl.approx,nope']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^vdspec check: --op: pattern "nope" matches no operation; operations: kl\.exact, /,
    );
    // A misspelt plain name gets the near names.
    expect((await check(['--port', good, '--op', 'kl_approx'])).err).toMatch(
      /pattern "kl_approx" matches no operation \(did you mean kl\.approx\?\)/,
    );
    expect((await check(['--port', good, '--op', 'kl.approx,'])).err).toMatch(/empty item/);
  });

  it('spec/check.md#exit-codes: a port declaring op names vdspec does not know is refused (exit 2, near names), with --json too', async () => {
    const r = await check(['--port', fake('typo-ops')]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^vdspec check: the port's hello: \/ops holds op names vdspec does not know: "kl_approx" \(did you mean kl\.approx\?\), "svd\.dense\.Eval" \(did you mean svd\.dense\.eval, /,
    );
    const json = await check(['--port', fake('typo-ops'), '--json']);
    expect(JSON.parse(json.out)).toMatchObject({ exitCode: 2 });
  });

  it('--timeout takes the number syntax of every numeric flag (1e3, 0.5)', async () => {
    for (const timeout of ['1e3', '0.5e1', '86400']) {
      const r = await check(['--port', fake('good'), '--op', 'kl.approx', '--timeout', timeout]);
      expect(r.err, timeout).toBe('');
      expect(r.code, timeout).toBe(0);
    }
  });

  it('spec/check.md#exit-codes: an unusable --junit path is refused before the run, with no verdict printed', async () => {
    const cases: [string, RegExp][] = [
      [dir, /--junit .* is a directory/],
      [
        join(dir, 'no-such-dir', 'junit.xml'),
        /--junit .*: the directory .*no-such-dir does not exist/,
      ],
    ];
    for (const [target, message] of cases) {
      const r = await check(['--port', fake('good'), '--junit', target]);
      expect(r.code, target).toBe(2);
      expect(r.err, target).toMatch(message);
      expect(r.err.split('\n'), r.err).toHaveLength(1);
      expect(r.out, target).not.toMatch(/Result:/);
    }
  });

  it('spec/check.md#report: a run that ends without a report replaces an earlier --junit file with one error, atomically', async () => {
    const junit = join(dir, 'stale-junit.xml');
    const green = '<testsuites name="an earlier green run" tests="1" failures="0" errors="0"/>\n';
    const runs: [string[], RegExp][] = [
      // A port that dies before its hello, a usage error, an --op matching nothing, golden files missing.
      [['--port', 'exit 3'], /the port exited with code 3/],
      [['--port', fake('good'), '--results', 'x'], /give exactly one of --port/],
      [
        ['--port', fake('good'), '--op', 'nope'],
        /--op: pattern &quot;nope&quot; matches no operation/,
      ],
      [
        ['--port', fake('good'), '--golden', join(dir, 'missing')],
        /golden directory .*missing does not exist/,
      ],
    ];
    for (const [argv, message] of runs) {
      for (const form of [['--junit', junit], [`--junit=${junit}`]]) {
        writeFileSync(junit, green);
        const r = await check([...argv, ...form]);
        expect(r.code, argv.join(' ')).toBe(2);
        const xml = readFileSync(junit, 'utf8');
        expect(xml, argv.join(' ')).not.toContain('an earlier green run');
        expect(xml).toMatch(/<testsuites name="vdspec check" tests="1" failures="0" errors="1"/);
        expect(xml).toMatch(new RegExp(`<error message="[^"]*${message.source}`));
        expect(readdirSync(dir).filter((f) => f.startsWith('stale-junit.xml.'))).toEqual([]);
      }
    }
    // The port's stderr tail, which the message carries, is the error's body.
    await check(['--port', 'echo boom at import >&2; exit 3', '--junit', junit]);
    expect(readFileSync(junit, 'utf8')).toMatch(
      /<error message="the port exited with code 3 while the runner waited for its answer to the handshake \(hello\)">[^<]*boom at import[^<]*<\/error>/,
    );
    // A command line that does not parse: an earlier file is replaced, but no new file is made.
    writeFileSync(junit, green);
    expect((await check(['--port', 'x', '--junit', junit, '--junit', junit])).code).toBe(2);
    expect(readFileSync(junit, 'utf8')).toMatch(/<error message="--junit given twice"/);
    const fresh = join(dir, 'fresh-junit.xml');
    expect((await check(['--port', 'x', '--junit', fresh, '--junit', fresh])).code).toBe(2);
    expect(existsSync(fresh)).toBe(false);
    // A full report is the run's own: not replaced.
    const ok = await check(['--port', fake('good'), '--op', 'kl.approx', '--junit', junit]);
    expect(ok.code).toBe(0);
    expect(readFileSync(junit, 'utf8')).toMatch(/<testsuite name="molchanov2017\/kl.approx"/);
  });

  it('spec/check.md#golden-files: a golden file that fails its manifest hash is refused', async () => {
    const copy = join(dir, 'tampered');
    writeFixtureGoldens(copy, ['molchanov2017']);
    writeFileSync(
      join(copy, 'manifest.json'),
      JSON.stringify({
        schema: 'vdspec-golden-manifest/1',
        generator: { name: 'vdspec', version: '0', seed: 0 },
        files: [{ path: 'molchanov2017/kl.approx.json', sha256: '0'.repeat(64), cases: 2 }],
      }),
    );
    const r = await check(['--port', fake('good'), '--golden', copy]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/does not match its sha256/);
  });

  it('--help prints the options and exits 0', async () => {
    const r = await check(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--port "COMMAND"/);
    expect(r.out).toMatch(/Exit codes: 0/);
  });
});

/** The fixture golden file of `op` under `profile`, as text. */
function fixtureText(profile: ProfileName, op: string): string {
  return readFileSync(join(dir, 'golden', profile, `${op}.json`), 'utf8');
}

/** The fixture file with `change` applied to its parsed JSON. */
function alteredFixture(
  profile: ProfileName,
  op: string,
  change: (file: Record<string, unknown>) => void,
): string {
  const file = JSON.parse(fixtureText(profile, op)) as Record<string, unknown>;
  change(file);
  return JSON.stringify(file);
}

/** The golden error `f` throws: a CheckInfrastructureError of kind `golden`. */
function goldenError(f: () => unknown): CheckInfrastructureError {
  let thrown: unknown = undefined;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(CheckInfrastructureError);
  expect((thrown as CheckInfrastructureError).kind).toBe('golden');
  return thrown as CheckInfrastructureError;
}

function manifestJson(entries: { path: string; text: string; cases: number }[]): string {
  return JSON.stringify({
    schema: 'vdspec-golden-manifest/1',
    generator: { name: 'check-test', version: '0', seed: 0 },
    files: entries.map((e) => ({
      path: e.path,
      sha256: createHash('sha256').update(e.text).digest('hex'),
      cases: e.cases,
    })),
  });
}

describe("spec/check.md#golden-files: the golden set's checks and messages", () => {
  let root = '';
  let count = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'vdspec-golden-set-'));
  });
  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });
  /** A fresh golden directory holding `files` (relative path to text). */
  function goldenDir(files: Record<string, string>): string {
    const g = join(root, `set${count++}`);
    mkdirSync(g);
    for (const [relative, text] of Object.entries(files)) {
      mkdirSync(join(g, relative, '..'), { recursive: true });
      writeFileSync(join(g, relative), text);
    }
    return g;
  }

  it('an unknown profile is refused with the list of known ones', () => {
    const g = goldenDir({});
    expect(goldenError(() => loadGoldenSet(g, 'nope')).message).toBe(
      'unknown profile "nope"; known profiles: molchanov2017, kingma2015, bayesgroup-theano, ' +
        'deepbayes-pytorch, state-of-sparsity, state-of-sparsity-nn, pytorch-ard',
    );
  });

  it('without a manifest: the directory is listed (its .json files only) and one warning says so', () => {
    const approx = fixtureText('molchanov2017', 'kl.approx');
    const g = goldenDir({
      'molchanov2017/kl.approx.json': approx,
      'molchanov2017/notes.txt': 'not a golden file',
    });
    const set = loadGoldenSet(g, 'molchanov2017');
    expect(set.warnings).toEqual([
      `no manifest.json in ${g}: golden files not verified against their sha256`,
    ]);
    expect(set.available).toEqual(['kl.approx']);
    expect(set.files.map((f) => f.op.name)).toEqual(['kl.approx']);
  });

  it('with a manifest: only the files it lists are read, and no warning', () => {
    const approx = fixtureText('molchanov2017', 'kl.approx');
    const g = goldenDir({
      'molchanov2017/kl.approx.json': approx,
      'molchanov2017/kl.exact.json': fixtureText('molchanov2017', 'kl.exact'),
      'manifest.json': manifestJson([
        { path: 'molchanov2017/kl.approx.json', text: approx, cases: 2 },
      ]),
    });
    const set = loadGoldenSet(g, 'molchanov2017');
    expect(set.warnings).toEqual([]);
    expect(set.available).toEqual(['kl.approx']);
    expect(set.files.map((f) => f.path)).toEqual([join(g, 'molchanov2017/kl.approx.json')]);
  });

  it('a profile without a directory, or with an empty one, has no golden files', () => {
    const missing = goldenDir({
      'kingma2015/kl.approx.json': fixtureText('kingma2015', 'kl.approx'),
    });
    expect(goldenError(() => loadGoldenSet(missing, 'molchanov2017')).message).toBe(
      `no golden files for profile "molchanov2017" in ${missing}`,
    );
    const empty = goldenDir({ 'molchanov2017/notes.txt': 'nothing' });
    expect(goldenError(() => loadGoldenSet(empty, 'molchanov2017')).message).toBe(
      `no golden files for profile "molchanov2017" in ${empty}`,
    );
  });

  it("a case count other than the manifest's is refused", () => {
    const approx = fixtureText('molchanov2017', 'kl.approx');
    const g = goldenDir({
      'molchanov2017/kl.approx.json': approx,
      'manifest.json': manifestJson([
        { path: 'molchanov2017/kl.approx.json', text: approx, cases: 3 },
      ]),
    });
    const path = join(g, 'molchanov2017/kl.approx.json');
    expect(goldenError(() => loadGoldenSet(g, 'molchanov2017')).message).toBe(
      `golden file ${path} has 2 cases; the manifest says 3`,
    );
  });

  it('a file the manifest lists but the directory lacks cannot be read', () => {
    const g = goldenDir({
      'manifest.json': manifestJson([
        { path: 'molchanov2017/kl.approx.json', text: 'absent', cases: 2 },
      ]),
    });
    const path = join(g, 'molchanov2017/kl.approx.json');
    expect(goldenError(() => loadGoldenSet(g, 'molchanov2017')).message).toBe(
      `cannot read golden file ${path}: ENOENT: no such file or directory, open '${path}'`,
    );
  });

  it('an unreadable manifest (a directory) is a golden error, not a crash', () => {
    const g = goldenDir({ 'manifest.json/x': '' });
    expect(goldenError(() => loadGoldenSet(g, 'molchanov2017')).message).toBe(
      'EISDIR: illegal operation on a directory, read',
    );
  });

  it('a file holding another op, or another profile, than its name says is refused', () => {
    const wrongOp = goldenDir({
      'molchanov2017/kl.exact.json': fixtureText('molchanov2017', 'kl.approx'),
    });
    expect(goldenError(() => loadGoldenSet(wrongOp, 'molchanov2017')).message).toBe(
      `golden file ${join(wrongOp, 'molchanov2017/kl.exact.json')} holds op "kl.approx"`,
    );
    const wrongProfile = goldenDir({
      'molchanov2017/kl.approx.json': fixtureText('kingma2015', 'kl.approx'),
    });
    expect(goldenError(() => loadGoldenSet(wrongProfile, 'molchanov2017')).message).toBe(
      `golden file ${join(wrongProfile, 'molchanov2017/kl.approx.json')} holds profile "kingma2015"`,
    );
  });

  it('an --op matching none lists the ops by name; available ops are sorted by name', () => {
    // Listed by file name, "a.b.json" comes before "a.json"; by op name "a" comes first.
    const g = goldenDir({
      'molchanov2017/a.json': 'never read',
      'molchanov2017/a.b.json': 'never read',
      'molchanov2017/kl.approx.json': fixtureText('molchanov2017', 'kl.approx'),
    });
    expect(goldenError(() => loadGoldenSet(g, 'molchanov2017', 'svd.*')).message).toBe(
      '--op svd.* matches none of the golden ops of "molchanov2017": a, a.b, kl.approx',
    );
    expect(loadGoldenSet(g, 'molchanov2017', 'kl.approx').available).toEqual([
      'a',
      'a.b',
      'kl.approx',
    ]);
  });

  it('an empty entry of --op selects nothing, not a file named ".json"', () => {
    const g = goldenDir({
      'molchanov2017/.json': 'never read',
      'molchanov2017/kl.approx.json': fixtureText('molchanov2017', 'kl.approx'),
    });
    const set = loadGoldenSet(g, 'molchanov2017', 'kl.approx,');
    expect(set.files.map((f) => f.op.name)).toEqual(['kl.approx']);
    expect(opMatcher('kl.approx,,')('')).toBe(false);
    expect(opMatcher('')('')).toBe(false);
  });

  it('--op entries are trimmed', () => {
    const matches = opMatcher('svd.mask , kl.approx');
    expect(matches('kl.approx')).toBe(true);
    expect(matches('svd.mask')).toBe(true);
    expect(matches('kl.exact')).toBe(false);
  });
});

describe("spec/check.md#golden-files: a single golden file's checks and messages", () => {
  let root = '';
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'vdspec-golden-file-'));
  });
  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('loadGoldenFile reads a file, and names one it cannot read', () => {
    const path = join(root, 'kl.approx.json');
    writeFileSync(path, fixtureText('molchanov2017', 'kl.approx'));
    const file = loadGoldenFile(path);
    expect(file.path).toBe(path);
    expect(file.op.name).toBe('kl.approx');
    expect(file.profile.name).toBe('molchanov2017');
    expect(file.cases.map((c) => c.comment)).toEqual([
      'the sigmoid approximation on [-8, 8], the threshold, the clip bounds',
      'the limit at -inf',
    ]);
    const missing = join(root, 'absent.json');
    expect(goldenError(() => loadGoldenFile(missing)).message).toBe(
      `cannot read golden file ${missing}: ENOENT: no such file or directory, open '${missing}'`,
    );
  });

  it("the reader's own refusal becomes a golden error naming the file", () => {
    const text = alteredFixture('molchanov2017', 'kl.approx', (f) => {
      f['op'] = 'kl.nope';
    });
    expect(goldenError(() => goldenFileFromText(text, 'x.json')).message).toBe(
      'x.json: /op: unknown operation "kl.nope"',
    );
  });

  it('a profile that differs from the definition in one value, or in prune being null, is refused', () => {
    const stale = (profile: ProfileName) =>
      `golden file x.json: its profile "${profile}" differs from this vdspec's definition (regenerate the golden files)`;
    const sqrtEps = alteredFixture('molchanov2017', 'kl.approx', (f) => {
      (f['profile'] as Record<string, unknown>)['sqrtEps'] = 2e-8;
    });
    expect(goldenError(() => goldenFileFromText(sqrtEps, 'x.json')).message).toBe(
      stale('molchanov2017'),
    );
    const noPrune = alteredFixture('molchanov2017', 'kl.approx', (f) => {
      (f['profile'] as Record<string, unknown>)['prune'] = null;
    });
    expect(goldenError(() => goldenFileFromText(noPrune, 'x.json')).message).toBe(
      stale('molchanov2017'),
    );
    // kingma2015 defines no pruning: a prune object where it has null.
    const withPrune = alteredFixture('kingma2015', 'kl.approx', (f) => {
      (f['profile'] as Record<string, unknown>)['prune'] = {
        threshold: 3,
        comparison: '>',
        reportComparison: '>',
        compressionComparison: '>',
        reportLogAlpha: 'clipped',
        from: 'clipped',
      };
    });
    expect(goldenError(() => goldenFileFromText(withPrune, 'x.json')).message).toBe(
      stale('kingma2015'),
    );
  });

  it('deepEqual: structural equality of JSON values, key order ignored', () => {
    expect(deepEqual({ a: 1, b: { c: [1, 'x', null] } }, { b: { c: [1, 'x', null] }, a: 1 })).toBe(
      true,
    );
    const unequal: [unknown, unknown][] = [
      [1, 2],
      ['ab', 'cd'],
      [1, {}],
      [{}, 1],
      [null, {}],
      [{}, null],
      [[], {}],
      [{}, []],
      [{ a: 1 }, { a: 1, b: 2 }],
      [{ a: 1, b: 2 }, { a: 1 }],
      [{ a: 1 }, { b: 1 }],
      [
        { a: 1, b: 2 },
        { a: 1, b: 3 },
      ],
    ];
    for (const [a, b] of unequal) expect(deepEqual(a, b), JSON.stringify([a, b])).toBe(false);
  });
});

describe("spec/check.md#protocol: a case's inputs are sent in the golden file's encoding", () => {
  it('a non-finite number input is sent as its string, and decoded for in-process ports', () => {
    const text = alteredFixture('molchanov2017', 'schedule.kl_weight', (f) => {
      const cases = f['cases'] as { inputs: Record<string, unknown> }[];
      cases[0]!.inputs['epoch'] = 'Infinity';
      cases[1]!.inputs['epoch'] = '-0';
    });
    const file = goldenFileFromText(text, 'x.json');
    expect(file.cases[0]!.rawInputs).toEqual({ epoch: 'Infinity' });
    expect(file.cases[0]!.inputs).toEqual({ epoch: Infinity });
    expect(file.cases[1]!.rawInputs).toEqual({ epoch: '-0' });
    expect(Object.is(file.cases[1]!.inputs['epoch'], -0)).toBe(true);
  });
});

describe('spec/check.md#in-process-ports: what a function port says about itself', () => {
  it('its info, no notes and no stderr', () => {
    const port = functionPort({
      name: 'mine',
      ops: ['kl.approx'],
      profile: 'kingma2015',
      dtype: 'float32',
      run: () => ({}),
    });
    expect(port.info).toEqual({
      name: 'mine',
      source: 'in-process',
      kind: 'function',
      ops: ['kl.approx'],
      profile: 'kingma2015',
      dtype: 'float32',
    });
    expect(port.notes).toEqual([]);
    expect(port.stderrTail()).toEqual([]);
  });
});
