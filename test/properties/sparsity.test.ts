/**
 * Properties of spec/log-alpha.md#sparsity (op `sparsity`) and of the two
 * comparisons a profile may use for its mask (`maskFromLogAlpha`, forward vs
 * report).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SVD_PRUNE_THRESHOLD } from '../../src/constants.js';
import { isVdspecError } from '../../src/errors.js';
import { PROFILE_NAMES, PROFILES } from '../../src/profiles.js';
import { maskFromLogAlpha, sparsity } from '../../src/reference/logAlpha.js';

const EPS = Number.EPSILON;

function vdspecErrorOf(f: () => unknown): { code: string; argument: string | undefined } {
  try {
    f();
  } catch (e) {
    if (isVdspecError(e)) return { code: e.code, argument: e.argument };
    throw new Error(`expected a VdspecError, got ${String(e)}`);
  }
  throw new Error('expected a VdspecError, nothing was thrown');
}

const maskArb = fc.array(fc.constantFrom(0, 1), { minLength: 0, maxLength: 40 });
const layersArb = fc.array(
  fc.tuple(fc.string({ maxLength: 8 }), maskArb).map(([name, data]) => ({
    name,
    mask: { shape: [data.length], data },
  })),
  { minLength: 1, maxLength: 5 },
);

describe('spec/log-alpha.md#sparsity: per-layer and overall counts', () => {
  it('kept + pruned = total; fractionPruned = pruned / total; compression = total / kept', () => {
    fc.assert(
      fc.property(layersArb, (layers) => {
        const report = sparsity(layers);
        expect(report.layers.map((l) => l.name)).toEqual(layers.map((l) => l.name));
        for (let i = 0; i < layers.length; i++) {
          const row = report.layers[i]!;
          const data = layers[i]!.mask.data;
          const kept = data.filter((m) => m === 1).length;
          const pruned = data.filter((m) => m === 0).length;
          expect(row.kept).toBe(kept);
          expect(row.total).toBe(data.length);
          expect(row.kept + pruned).toBe(row.total);
          // An empty layer prunes nothing: the fraction is 0, not 0/0.
          expect(row.fractionPruned).toBe(row.total === 0 ? 0 : pruned / row.total);
          // |W| / |W != 0|; with nothing kept the ratio is unbounded.
          expect(row.compression).toBe(kept === 0 ? Infinity : row.total / kept);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('overall aggregates the layers (sums of counts, not a mean of ratios)', () => {
    fc.assert(
      fc.property(layersArb, (layers) => {
        const { layers: rows, overall } = sparsity(layers);
        const kept = rows.reduce((a, r) => a + r.kept, 0);
        const total = rows.reduce((a, r) => a + r.total, 0);
        expect(overall.name).toBe('overall');
        expect(overall.kept).toBe(kept);
        expect(overall.total).toBe(total);
        expect(overall.fractionPruned).toBe(total === 0 ? 0 : (total - kept) / total);
        expect(overall.compression).toBe(kept === 0 ? Infinity : total / kept);
      }),
      { numRuns: 300 },
    );
  });

  it('the mask may have any shape: counts are over all its elements', () => {
    const report = sparsity([
      { name: 'conv', mask: { shape: [2, 2, 1, 2], data: [1, 0, 0, 0, 1, 0, 0, 0] } },
      { name: 'dense', mask: { shape: [2, 3], data: [1, 1, 1, 1, 1, 0] } },
    ]);
    expect(report.layers.map((l) => [l.kept, l.total])).toEqual([
      [2, 8],
      [5, 6],
    ]);
    expect(report.layers[0]!.compression).toBe(4);
    expect(report.overall).toEqual({
      name: 'overall',
      kept: 7,
      total: 14,
      fractionPruned: 0.5,
      compression: 2,
    });
  });

  it('nothing kept: compression is Infinity, fractionPruned 1', () => {
    const report = sparsity([{ name: 'a', mask: { shape: [3], data: [0, 0, 0] } }]);
    expect(report.layers[0]!.compression).toBe(Infinity);
    expect(report.layers[0]!.fractionPruned).toBe(1);
  });
});

describe('spec/log-alpha.md#sparsity: bad masks are rejected naming the argument', () => {
  it('values other than 0 and 1 (including NaN and infinities) name layers[i].mask', () => {
    fc.assert(
      fc.property(
        fc.array(maskArb, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.oneof(
          fc.constantFrom(NaN, Infinity, -Infinity, 0.5, 2, -1),
          fc.double().filter((v) => v !== 0 && v !== 1),
        ),
        (masks, where, bad) => {
          const layerIndex = where % masks.length;
          const layers = masks.map((data, i) => {
            const values = i === layerIndex ? [...data, bad] : data;
            return { name: `l${i}`, mask: { shape: [values.length], data: values } };
          });
          const err = vdspecErrorOf(() => sparsity(layers));
          expect(err.argument).toBe(`layers[${layerIndex}].mask`);
          expect(['invalid_argument', 'non_finite']).toContain(err.code);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a malformed mask tensor or an empty list names the argument', () => {
    expect(vdspecErrorOf(() => sparsity([]))).toEqual({
      code: 'invalid_argument',
      argument: 'layers',
    });
    expect(
      vdspecErrorOf(() => sparsity([{ name: 'a', mask: { shape: [3], data: [1, 0] } }])),
    ).toEqual({ code: 'shape_mismatch', argument: 'layers[0].mask' });
    expect(() => sparsity([])).toThrow('layers: expected a non-empty list of layers');
    expect(() => sparsity([{ name: 'a', mask: { shape: [2], data: [1, 0.5] } }])).toThrow(
      'layers[0].mask: mask values must be 0 or 1, got 0.5',
    );
    expect(vdspecErrorOf(() => sparsity([{ name: 'a', mask: [1, 0] }]))).toEqual({
      code: 'invalid_argument',
      argument: 'layers[0].mask',
    });
  });
});

describe('spec/log-alpha.md#svdmask: forward vs report comparison', () => {
  // Values around the threshold, exactly on it, the infinities, and anything else.
  const logAlphaValue = fc.oneof(
    fc.constantFrom(
      SVD_PRUNE_THRESHOLD,
      SVD_PRUNE_THRESHOLD - SVD_PRUNE_THRESHOLD * EPS,
      SVD_PRUNE_THRESHOLD + 2 * SVD_PRUNE_THRESHOLD * EPS,
      Infinity,
      -Infinity,
      8,
      -8,
    ),
    fc.double({ noNaN: true }),
  );

  it.each(PROFILE_NAMES)(
    '%s: forward, report and compression masks differ only where the page says, at exactly 3',
    (name) => {
      const profile = PROFILES[name];
      // spec/profiles.md: the Theano code's forward prunes at >= 3 while both its reports
      // count > 3; the Deep|Bayes notebook's per-layer log counts > 3 while its forward and its
      // kept-weight ratio use >= (log_alpha < 3 kept).
      const reportDiffers = ['bayesgroup-theano', 'deepbayes-pytorch'].includes(name);
      const compressionDiffers = name === 'bayesgroup-theano';
      fc.assert(
        fc.property(fc.array(logAlphaValue, { minLength: 1, maxLength: 16 }), (values) => {
          const input = { shape: [values.length], data: values };
          const forward = maskFromLogAlpha(input, profile, 'forward').data;
          const report = maskFromLogAlpha(input, profile, 'report').data;
          const compression = maskFromLogAlpha(input, profile, 'compression').data;
          for (let i = 0; i < values.length; i++) {
            const atThreshold = values[i] === SVD_PRUNE_THRESHOLD;
            expect(forward[i] !== report[i], `log_alpha ${values[i]}`).toBe(
              reportDiffers && atThreshold,
            );
            expect(forward[i] !== compression[i], `log_alpha ${values[i]}`).toBe(
              compressionDiffers && atThreshold,
            );
            if (reportDiffers && atThreshold) {
              // The forward pass prunes (>=), the report counts the weight as kept (>).
              expect([forward[i], report[i]]).toEqual([0, 1]);
            }
          }
        }),
        { numRuns: 200 },
      );
    },
  );

  it('the default is the forward comparison', () => {
    const theano = PROFILES['bayesgroup-theano'];
    const input = { shape: [1], data: [SVD_PRUNE_THRESHOLD] };
    expect(maskFromLogAlpha(input, theano).data).toEqual(
      maskFromLogAlpha(input, theano, 'forward').data,
    );
  });
});
