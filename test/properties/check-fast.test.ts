/**
 * Issue 4: the fast implementation is checked through the same runner as any
 * port, in-process, against the committed golden files, in float32.
 */
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadGoldenSet } from '../../src/check/golden.js';
import { functionPort } from '../../src/check/port.js';
import { runCheck } from '../../src/check/runner.js';
import { availableBackends, initBackend } from '../../src/fast/backend.js';
import { FAST_UNSUPPORTED_OPS, fastRun } from '../../src/fast/run.js';
import { OPS } from '../../src/ops.js';
import { PROFILE_NAMES } from '../../src/profiles.js';

const GOLDEN = fileURLToPath(new URL('../golden', import.meta.url));
const FAST_OPS = OPS.map((op) => op.name).filter((name) => !(name in FAST_UNSUPPORTED_OPS));

describe('vdspec check: the fast implementation passes every golden case in float32', () => {
  let backends: string[] = [];
  beforeAll(async () => {
    backends = await availableBackends();
  });

  it.each(PROFILE_NAMES)('%s, on every available backend', async (profile) => {
    expect(backends.length).toBeGreaterThan(0);
    for (const backend of backends) {
      await initBackend({ backend: backend as 'tensorflow' | 'wasm' | 'cpu' });
      const port = functionPort({
        name: `fast (${backend})`,
        ops: FAST_OPS,
        profile,
        dtype: 'float32',
        run: (op, inputs) => fastRun(op, inputs, profile),
      });
      const report = await runCheck(port, loadGoldenSet(GOLDEN, profile));
      const failures = report.cases.filter((c) => c.status === 'failed');
      expect(
        failures.map((c) => `${c.op}#${c.caseId}`),
        `${profile} on ${backend}`,
      ).toEqual([]);
      expect(report.totals.passed, `${profile} on ${backend}`).toBeGreaterThan(0);
      expect(report.infrastructureError).toBeNull();
      expect(report.exitCode).toBe(0);
    }
  });
});
