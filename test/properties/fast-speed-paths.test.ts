/**
 * The fast code paths of the training step (src/fast/conv2d.ts,
 * src/fast/fused-kernels.ts) against the plain ones they replace, on every backend:
 *
 * - patchesTf (depthwise 0/1 convolutions on wasm for stride 1) is the
 *   slice-and-concat patch matrix exactly, for every finite input, and its
 *   gradient is the slices' gradient up to float32 rounding;
 * - fusedConv2dTf (convolution kernels only, no patch matrix) gives
 *   fusedLinearTf-on-patches' output and gradients for x, theta, noise and
 *   bias up to float32 rounding, with and without x's gradient;
 * - plainConv2dTf gives tfjs autodiff of patches @ W + b.
 *
 * fusedLinearTf and the slice patches are held to the float64 reference by
 * fast-train.test.ts and fast-agreement.test.ts; these properties carry that
 * to the fast paths.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import * as tf from '@tensorflow/tfjs';

import { availableBackends, initBackend } from '../../src/fast/backend.js';
import { convGeometry, patchesBySlicesTf, patchesTf } from '../../src/fast/conv2d.js';
import type { ConvGeometry, FastConv2dPadding } from '../../src/fast/conv2d.js';
import {
  fusedConv2dTf,
  fusedLinearTf,
  fusedWeightsTf,
  plainConv2dTf,
  plainLinearTf,
} from '../../src/fast/fused-kernels.js';
import { PROFILES } from '../../src/profiles.js';

const backends = (await availableBackends()).filter((b) => b !== 'tensorflow');

interface Case {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly cout: number;
  readonly kh: number;
  readonly kw: number;
  readonly padding: FastConv2dPadding;
  readonly seed: number;
}

/** Stride-1 geometries whose 'valid' output is not empty. */
const caseArb: fc.Arbitrary<Case> = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 8 }),
    w: fc.integer({ min: 1, max: 8 }),
    cin: fc.integer({ min: 1, max: 4 }),
    cout: fc.integer({ min: 1, max: 4 }),
    kh: fc.integer({ min: 1, max: 5 }),
    kw: fc.integer({ min: 1, max: 5 }),
    padding: fc.constantFrom<FastConv2dPadding>('valid', 'same'),
    seed: fc.integer({ min: 0, max: 1_000_000 }),
  })
  .filter((c) => c.padding === 'same' || (c.kh <= c.h && c.kw <= c.w));

function geometryOf(c: Case, stride: [number, number] = [1, 1]): ConvGeometry {
  return convGeometry([c.n, c.h, c.w, c.cin], [c.kh, c.kw, c.cin, c.cout], stride, c.padding);
}

function outShapeOf(g: ConvGeometry): [number, number, number, number] {
  return [g.batch, g.outHeight, g.outWidth, g.outChannels];
}

/** max |a - b| <= rel * max |b| per tensor (b the trusted path). */
function expectClose(a: tf.Tensor, b: tf.Tensor, rel: number, what: string): void {
  expect(a.shape, what).toEqual(b.shape);
  const av = a.dataSync();
  const bv = b.dataSync();
  let scale = 0;
  let worst = 0;
  bv.forEach((v, i) => {
    scale = Math.max(scale, Math.abs(v));
    worst = Math.max(worst, Math.abs(av[i]! - v));
  });
  expect(worst, `${what}: worst ${worst} against max |ref| ${scale}`).toBeLessThanOrEqual(
    rel * scale,
  );
}

/** Every finite float32, with zeros, subnormals and values near the largest float32. */
const finiteFloat = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, 1e-45, -1e-40, 3.4e38, -3.4e38),
);

for (const backend of backends) {
  describe(`${backend}: fast conv paths = the plain ones`, () => {
    it('patchesTf is the slice-and-concat patch matrix exactly, for finite inputs', async () => {
      await initBackend({ backend });
      fc.assert(
        fc.property(
          caseArb.chain((c) =>
            fc.tuple(
              fc.constant(c),
              fc.array(finiteFloat, {
                minLength: c.n * c.h * c.w * c.cin,
                maxLength: c.n * c.h * c.w * c.cin,
              }),
            ),
          ),
          ([c, values]) => {
            const g = geometryOf(c);
            tf.tidy(() => {
              const x = tf.tensor4d(values, [c.n, c.h, c.w, c.cin]);
              const fast = patchesTf(x, g);
              const plain = patchesBySlicesTf(x, g);
              expect(fast.shape).toEqual(plain.shape);
              // === so that -0 and 0 count as equal (a sum with +0 turns -0 into 0).
              const fv = fast.dataSync();
              const pv = plain.dataSync();
              const differing = Array.from(pv).findIndex((v, i) => fv[i] !== v);
              expect(differing, `first differing entry ${differing}`).toBe(-1);
            });
          },
        ),
        { numRuns: 60 },
      );
    });

    it("patchesTf's gradient is the slices' gradient up to float32 rounding", async () => {
      await initBackend({ backend });
      fc.assert(
        fc.property(caseArb, (c) => {
          const g = geometryOf(c);
          tf.tidy(() => {
            const x = tf.randomNormal([c.n, c.h, c.w, c.cin], 0, 1, 'float32', c.seed);
            const rows = g.batch * g.outHeight * g.outWidth;
            const dy = tf.randomNormal([rows, c.kh * c.kw * c.cin], 0, 1, 'float32', c.seed + 1);
            const fast = tf.grad((t: tf.Tensor) => patchesTf(t, g))(x, dy);
            const plain = tf.grad((t: tf.Tensor) => patchesBySlicesTf(t, g))(x, dy);
            expectClose(fast, plain, 1e-6, 'dx');
          });
        }),
        { numRuns: 40 },
      );
    });

    for (const name of ['molchanov2017', 'kingma2015'] as const) {
      it(`${name}: fusedConv2dTf = fusedLinearTf on patches (output, dx, dtheta, dnoise, dbias)`, async () => {
        await initBackend({ backend });
        const profile = PROFILES[name];
        fc.assert(
          fc.property(caseArb, fc.boolean(), fc.boolean(), (c, xNeedsGradient, trainClip) => {
            const g = geometryOf(c);
            tf.tidy(() => {
              const shape = [c.kh, c.kw, c.cin, c.cout];
              const x = tf.randomNormal(
                [c.n, c.h, c.w, c.cin],
                0,
                1,
                'float32',
                c.seed,
              ) as tf.Tensor4D;
              const theta = tf.randomNormal(shape, 0, 0.5, 'float32', c.seed + 1);
              // log_sigma2 (SVD) or log_alpha (VD) across the clip bounds and the threshold.
              const noise =
                profile.noiseParameter === 'log_alpha'
                  ? tf.randomUniform(shape, -6, 2, 'float32', c.seed + 2)
                  : tf.randomUniform(shape, -12, 4, 'float32', c.seed + 2);
              const bias = tf.randomNormal([c.cout], 0, 0.1, 'float32', c.seed + 3);
              const outShape = outShapeOf(g);
              const eps = tf.randomNormal(outShape, 0, 1, 'float32', c.seed + 4) as tf.Tensor4D;
              const dy = tf.randomNormal(outShape, 0, 1, 'float32', c.seed + 5);
              const w = fusedWeightsTf(theta, noise, profile, 'conv2d', trainClip);
              const rows = g.batch * g.outHeight * g.outWidth;
              const viaConv = (xIn: tf.Tensor, t: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
                fusedConv2dTf(xIn as tf.Tensor4D, t, s, b, w, eps, profile.sqrtEps, true, g);
              const viaPatches = (xIn: tf.Tensor, t: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
                tf.reshape(
                  fusedLinearTf(
                    patchesBySlicesTf(xIn, g),
                    t,
                    s,
                    b,
                    w,
                    tf.reshape(eps, [rows, g.outChannels]) as tf.Tensor2D,
                    profile.sqrtEps,
                    true,
                  ),
                  outShape,
                );
              expectClose(
                viaConv(x, theta, noise, bias),
                viaPatches(x, theta, noise, bias),
                1e-5,
                'output',
              );
              const names = ['dx', 'dtheta', 'dnoise', 'dbias'];
              const want = tf.grads(viaPatches)([x, theta, noise, bias], dy);
              if (xNeedsGradient) {
                const got = tf.grads(viaConv)([x, theta, noise, bias], dy);
                got.forEach((t, i) => expectClose(t, want[i]!, 1e-4, names[i]!));
              } else {
                const first = (t: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
                  fusedConv2dTf(x, t, s, b, w, eps, profile.sqrtEps, false, g);
                const got = tf.grads(first)([theta, noise, bias], dy);
                got.forEach((t, i) => expectClose(t, want[i + 1]!, 1e-4, names[i + 1]!));
              }
            });
          }),
          { numRuns: 40 },
        );
      });
    }

    it('fusedConv2dTf with a stride is fusedLinearTf on patches', async () => {
      await initBackend({ backend });
      const profile = PROFILES.molchanov2017;
      const c: Case = { n: 2, h: 7, w: 6, cin: 2, cout: 3, kh: 3, kw: 2, padding: 'same', seed: 9 };
      const g = geometryOf(c, [2, 3]);
      tf.tidy(() => {
        const shape = [c.kh, c.kw, c.cin, c.cout];
        const x = tf.randomNormal([c.n, c.h, c.w, c.cin], 0, 1, 'float32', 1) as tf.Tensor4D;
        const theta = tf.randomNormal(shape, 0, 0.5, 'float32', 2);
        const noise = tf.randomUniform(shape, -12, 4, 'float32', 3);
        const bias = tf.zeros([c.cout]);
        const outShape = outShapeOf(g);
        const eps = tf.randomNormal(outShape, 0, 1, 'float32', 4) as tf.Tensor4D;
        const w = fusedWeightsTf(theta, noise, profile, 'conv2d', true);
        const rows = g.batch * g.outHeight * g.outWidth;
        const got = fusedConv2dTf(x, theta, noise, bias, w, eps, profile.sqrtEps, true, g);
        const want = fusedLinearTf(
          patchesTf(x, g),
          theta,
          noise,
          bias,
          w,
          tf.reshape(eps, [rows, g.outChannels]) as tf.Tensor2D,
          profile.sqrtEps,
          true,
        );
        expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
      });
    });

    it('plainConv2dTf = autodiff of patches @ W + b (output, dx, dW, db)', async () => {
      await initBackend({ backend });
      fc.assert(
        fc.property(caseArb, fc.boolean(), (c, xNeedsGradient) => {
          const g = geometryOf(c);
          tf.tidy(() => {
            const x = tf.randomNormal(
              [c.n, c.h, c.w, c.cin],
              0,
              1,
              'float32',
              c.seed,
            ) as tf.Tensor4D;
            const weights = tf.randomNormal(
              [c.kh, c.kw, c.cin, c.cout],
              0,
              0.5,
              'float32',
              c.seed + 1,
            );
            const bias = tf.randomNormal([c.cout], 0, 0.1, 'float32', c.seed + 2);
            const outShape = outShapeOf(g);
            const dy = tf.randomNormal(outShape, 0, 1, 'float32', c.seed + 3);
            const viaPatches = (xIn: tf.Tensor, wIn: tf.Tensor, b: tf.Tensor) =>
              tf.reshape(
                tf.add(
                  tf.matMul(
                    patchesBySlicesTf(xIn, g),
                    tf.reshape(wIn, [-1, g.outChannels]) as tf.Tensor2D,
                  ),
                  b,
                ),
                outShape,
              );
            const viaConv = (xIn: tf.Tensor, wIn: tf.Tensor, b: tf.Tensor) =>
              plainConv2dTf(xIn as tf.Tensor4D, wIn, b, true, g);
            expectClose(viaConv(x, weights, bias), viaPatches(x, weights, bias), 1e-5, 'output');
            const want = tf.grads(viaPatches)([x, weights, bias], dy);
            const names = ['dx', 'dW', 'db'];
            if (xNeedsGradient) {
              tf.grads(viaConv)([x, weights, bias], dy).forEach((t, i) =>
                expectClose(t, want[i]!, 1e-4, names[i]!),
              );
            } else {
              const first = (wIn: tf.Tensor, b: tf.Tensor) => plainConv2dTf(x, wIn, b, false, g);
              tf.grads(first)([weights, bias], dy).forEach((t, i) =>
                expectClose(t, want[i + 1]!, 1e-4, names[i + 1]!),
              );
            }
          });
        }),
        { numRuns: 40 },
      );
    });

    it('plainConv2dTf with a stride is plainLinearTf on patches', async () => {
      await initBackend({ backend });
      const c: Case = {
        n: 2,
        h: 7,
        w: 6,
        cin: 2,
        cout: 3,
        kh: 3,
        kw: 2,
        padding: 'valid',
        seed: 9,
      };
      const g = geometryOf(c, [3, 2]);
      tf.tidy(() => {
        const x = tf.randomNormal([c.n, c.h, c.w, c.cin], 0, 1, 'float32', 1) as tf.Tensor4D;
        const weights = tf.randomNormal([c.kh, c.kw, c.cin, c.cout], 0, 0.5, 'float32', 2);
        const bias = tf.randomNormal([c.cout], 0, 0.1, 'float32', 3);
        const got = plainConv2dTf(x, weights, bias, true, g);
        const want = plainLinearTf(
          patchesTf(x, g),
          tf.reshape(weights, [-1, c.cout]) as tf.Tensor2D,
          bias,
          true,
        );
        expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
      });
    });
  });
}
