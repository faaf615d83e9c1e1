/**
 * spec/kl.md allows a port to evaluate either KL approximation in the form
 * the paper prints. Ports that do so, in float64 and in float32 (every
 * operation rounded with Math.fround), must pass every kl.approx golden case
 * of every profile: the golden scales cover the cancellation of the printed
 * form, not only the reference's cancellation-free evaluation.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { loadGoldenSet } from '../../src/check/golden.js';
import { functionPort } from '../../src/check/port.js';
import { runCheck } from '../../src/check/runner.js';
import {
  SVD_KL_K1,
  SVD_KL_K2,
  SVD_KL_K3,
  VD_KL_C1,
  VD_KL_C2,
  VD_KL_C3,
} from '../../src/constants.js';
import { getProfile, PROFILE_NAMES, type Profile } from '../../src/profiles.js';
import type { Tensor } from '../../src/tensor.js';

const GOLDEN = fileURLToPath(new URL('../golden', import.meta.url));

/**
 * The paper's printed forms, negated to a KL: Molchanov eq. 14,
 * -(k1 sigmoid(k2 + k3 la) - 0.5 log1p(exp(-la)) + C), and Kingma eq. 16,
 * -(0.5 la + c1 a + c2 a^2 + c3 a^3), term by term in the port's precision.
 */
function printedKl(la: number, profile: Profile, r: (v: number) => number) {
  // spec/kl.md: the printed form is for finite log_alpha; at -inf its autodiff
  // is inf/inf = NaN, so a port returns the stated limits there.
  if (la === -Infinity) return { kl: Infinity, slope: -0.5 };
  if (profile.kl.approximation === 'svd_sigmoid') {
    const k1 = r(SVD_KL_K1);
    const k2 = r(SVD_KL_K2);
    const k3 = r(SVD_KL_K3);
    const c = profile.kl.constant === 'minus_k1' ? -k1 : 0;
    const z = r(k2 + r(k3 * la));
    const s = r(1 / r(1 + r(Math.exp(-z))));
    const soft = r(Math.log1p(r(Math.exp(-la))));
    const negKl = r(r(r(k1 * s) - r(0.5 * soft)) + c);
    // d(-KL)/dla = k1 k3 s (1 - s) + 0.5 exp(-la) / (1 + exp(-la)): the autodiff of the printed form.
    const e = r(Math.exp(-la));
    const dNeg = r(r(r(k1 * k3) * r(s * r(1 - s))) + r(r(0.5 * e) / r(1 + e)));
    return { kl: -negKl, slope: -dNeg };
  }
  const a = r(Math.exp(la));
  const [c1, c2, c3] = [r(VD_KL_C1), r(VD_KL_C2), r(VD_KL_C3)];
  const poly = r(r(r(c1 * a) + r(c2 * r(a * a))) + r(c3 * r(r(a * a) * a)));
  const negKl = r(r(0.5 * la) + poly);
  const dPoly = r(r(r(c1 * a) + r(2 * r(c2 * r(a * a)))) + r(3 * r(c3 * r(r(a * a) * a))));
  return { kl: -negKl, slope: -r(0.5 + dPoly) };
}

function printedPort(profileName: string, dtype: 'float64' | 'float32') {
  const profile = getProfile(profileName);
  const r = dtype === 'float32' ? Math.fround : (v: number) => v;
  return functionPort({
    name: `printed KL (${dtype})`,
    ops: ['kl.approx'],
    profile: profileName,
    dtype,
    run: (_op, inputs) => {
      const la = inputs['log_alpha'] as Tensor;
      const values = la.data.map((v) => printedKl(r(v), profile, r));
      return {
        kl: { shape: la.shape, data: values.map((v) => v.kl) },
        dkl_dlog_alpha: { shape: la.shape, data: values.map((v) => v.slope) },
      };
    },
  });
}

describe('spec/kl.md: the printed form of each approximation passes kl.approx', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    it.each(PROFILE_NAMES)(`%s, ${dtype}`, async (profile) => {
      const report = await runCheck(
        printedPort(profile, dtype),
        loadGoldenSet(GOLDEN, profile, 'kl.approx'),
      );
      const failures = report.cases
        .filter((c) => c.status === 'failed')
        .map((c) => `#${c.caseId}: ${JSON.stringify(c).slice(0, 400)}`);
      expect(failures).toEqual([]);
      expect(report.totals.passed).toBeGreaterThan(0);
    });
  }
});
