import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { methodAgreement, ranks, spearman } from '../../server/src/sensitivity/agreement';
import type { CalibratedLayer } from '../../server/src/sensitivity/types';

describe('Spearman rank agreement', () => {
  it('average ranks for ties', () => {
    assert.deepEqual(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
    assert.deepEqual(ranks([7, 7, 7]), [2, 2, 2]);
    assert.deepEqual(ranks([3, -Infinity, Infinity, 3]), [2.5, 1, 4, 2.5]);
  });

  it('hand-ranked lists with ties', () => {
    // ranks a = [1, 2, 3, 4, 5]; b = [5, 6, 7, 8, 7] → [1, 2, 3.5, 5, 3.5].
    // Centered: [−2, −1, 0, 1, 2] and [−2, −1, 0.5, 2, 0.5]: Σab = 8, Σa² = 10, Σb² = 9.5 → 8/√95.
    const rho = spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])!;
    assert.ok(Math.abs(rho - 8 / Math.sqrt(95)) < 1e-12, `${rho}`);
    assert.equal(spearman([1, 2, 3], [30, 20, 10]), -1);
    assert.equal(spearman([0.1, 5, 2], [1, 100, 3]), 1);
  });

  it('undefined cases give null; NaN pairs are left out', () => {
    assert.equal(spearman([1], [2]), null);
    assert.equal(spearman([1, 2, 3], [4, 4, 4]), null);
    assert.equal(spearman([1, NaN, 2, 3], [1, 5, 2, 3]), 1);
    assert.throws(() => spearman([1, 2], [1]));
  });

  it('pairs every available ranking per format, oriented so larger = more sensitive', () => {
    const layer = (name: string, h: number, kl: number, sqnrDb: number, top1: number): CalibratedLayer => ({
      name, node: name, op: 'MatMul', shape: [2, 2], layout: 'in_out', params: 4,
      scores: { hessian: { f: h }, empirical: { f: { kl, sqnrDb, top1 } } },
    });
    const layers = [layer('a', 1, 0.1, 30, 1), layer('b', 3, 0.3, 10, 0.5), layer('c', 2, 0.2, 20, 0.9)];
    const agree = methodAgreement(layers, ['f']);
    assert.equal(agree.length, 6);
    for (const e of agree) {
      assert.equal(e.rho, 1, `${e.a} vs ${e.b}`);
      assert.equal(e.layers, 3);
    }
    // A layer without a Hessian score is left out of the pairs that need one.
    delete layers[2].scores.hessian;
    const partial = methodAgreement(layers, ['f']).find((e) => e.a === 'hessian' && e.b === 'empirical.kl')!;
    assert.equal(partial.layers, 2);
    assert.equal(partial.rho, 1);
  });
});
