// Explorer scores: a layer's SQNR over its tensors at one format, and its quartile band among the model's layers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnalysisReport, LayerReport } from '../../server/src/analysis/types';
import { layerScores } from '../../server/src/report/scores';

const t = (name: string, params: number, sumSq: number, relMse: number, bits: number): LayerReport => ({
  name, block: 'b', layer: name, params, shape: [params], layout: 'out_in', dtype: 'F32', sumSq,
  errors: { f: { relMse, sqnrDb: null, maxAbsErr: 0, entropyBits: 0, bitsPerWeight: bits } },
  stats: { kurtosis: 0, outlierShare: 0, maxOverStd: 0, mean: 0, std: 0, maxAbs: 0, superWeights: [] },
});

const report = {
  formats: [{ id: 'f', bitsPerWeight: 4 }],
  layers: [t('a.w', 100, 3, 0.01, 4), t('a.b', 300, 1, 0.05, 8), t('c.w', 10, 1, 0.1, 4), t('d.w', 10, 1, 0.001, 4), t('e.w', 10, 1, 0, 4)],
} as unknown as AnalysisReport;

test('layer score: energy-weighted relMSE over its tensors, SQNR, parameter-weighted bits; quartile bands', () => {
  const s = layerScores(report, 'f', new Map([['a', ['a.w', 'a.b', 'a.missing']], ['c', ['c.w']], ['d', ['d.w']], ['e', ['e.w']], ['none', ['x']]]));
  // a: (0.01·3 + 0.05·1) / 4 = 0.02 → 16.99 dB; bits (4·100 + 8·300) / 400 = 7.
  const a = s.get('a')!;
  assert.ok(Math.abs(a.relMse - 0.02) < 1e-15);
  assert.ok(Math.abs(a.sqnrDb! - 16.9897000433602) < 1e-9);
  assert.equal(a.bits, 7);
  assert.equal(s.get('e')!.sqnrDb, null);
  assert.equal(s.has('none'), false);
  // Ranks by relMse: c (0.1) 0, a (0.02) 1, d (0.001) 2, e (0) 3 → bands 0, 1, 2, 3 with four layers.
  assert.deepEqual(['c', 'a', 'd', 'e'].map((k) => s.get(k)!.band), [0, 1, 2, 3]);
  assert.equal(layerScores(report, 'other', new Map([['a', ['a.w']]])).size, 0);
});
