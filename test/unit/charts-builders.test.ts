// Chart data builders: a small hand-written analysis report → the exact Plotly traces.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnalysisReport, FormatErrors, LayerReport } from '../../server/src/analysis/types';
import {
  agreementChart,
  bitsChart,
  cellOf,
  depthOrder,
  groupMapChart,
  groupMapLayer,
  heatmapChart,
  lowestBitFormat,
  paretoChart,
  predictedMeasuredChart,
  reportScores,
  scaleFor,
} from '../../server/src/report/charts';

const err = (relMse: number, bitsPerWeight: number, extra: Partial<FormatErrors> = {}): FormatErrors => ({
  relMse,
  sqnrDb: relMse === 0 ? null : -10 * Math.log10(relMse),
  maxAbsErr: 0,
  entropyBits: 0,
  bitsPerWeight,
  ...extra,
});

function layer(name: string, block: string, errors: Record<string, FormatErrors>, over: Partial<LayerReport> = {}): LayerReport {
  return {
    name,
    block,
    layer: name.split('.').slice(-2).join('.'),
    params: 64,
    shape: [8, 8],
    layout: 'out_in',
    dtype: 'F32',
    sumSq: 1,
    stats: { kurtosis: 0, outlierShare: 0, maxOverStd: 3, mean: 0, std: 1, maxAbs: 3, superWeights: [] },
    errors,
    ...over,
  };
}

// Listed out of depth order on purpose (block 10 before block 2, as safetensors' sorted names come).
const report: AnalysisReport = {
  version: 'test',
  formats: [
    { id: 'int4', bitsPerWeight: 4.25 },
    { id: 'int2', bitsPerWeight: 2.5 },
  ],
  options: { sigma: 6, sample: null, confidence: null, ratios: [] },
  model: { path: '/m', format: 'safetensors', files: ['/m/model.safetensors'], tensors: 3, params: 192, analyzedTensors: 3, analyzedParams: 192, totals: {} },
  layers: [
    layer('model.layers.10.mlp.up_proj.weight', 'model.layers.10', { int4: err(1e-3, 4.25), int2: err(1e-1, 2.5) }, { stats: { kurtosis: 5, outlierShare: 0, maxOverStd: 9, mean: 0, std: 1, maxAbs: 9, superWeights: [] } }),
    layer('model.layers.2.mlp.up_proj.weight', 'model.layers.2', { int4: err(1e-2, 4.25), int2: err(0, 2.5) }, { stats: { kurtosis: 1, outlierShare: 0, maxOverStd: 4, mean: 0, std: 1, maxAbs: 4, superWeights: [] } }),
    layer('model.layers.2.attn.q_proj.weight', 'model.layers.2', { int4: err(1e-4, 4.25), int2: err(1e-2, 2.625) }, { stats: { kurtosis: 2, outlierShare: 0, maxOverStd: 6, mean: 0, std: 1, maxAbs: 6, superWeights: [] } }),
  ],
  skipped: { count: 0, params: 0, byReason: {}, tensors: [] },
};

const DEPTH = ['model.layers.2.attn.q_proj.weight', 'model.layers.2.mlp.up_proj.weight', 'model.layers.10.mlp.up_proj.weight'];

test('depth order inside a block follows the data flow: q, k, v, o, then gate, up, down', () => {
  const names = ['mlp.down_proj', 'self_attn.o_proj', 'mlp.up_proj', 'self_attn.k_proj', 'mlp.gate_proj', 'self_attn.v_proj', 'self_attn.q_proj'].map((n) => `model.layers.0.${n}.weight`);
  const order = depthOrder(names.map((n) => layer(n, 'model.layers.0', {}))).map((l) => l.name.split('.').slice(3, 5).join('.'));
  assert.deepEqual(order, ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']);
});

test('depth order: blocks numerically, then names; the lowest-bit format is the default', () => {
  assert.deepEqual(depthOrder(report.layers).map((l) => l.name), DEPTH);
  // Outside the numbered blocks: embeddings first, the head after the last block.
  const head = layer('lm_head.weight', '(root)', {});
  const embed = layer('model.embed_tokens.weight', '(root)', {});
  assert.deepEqual(depthOrder([head, ...report.layers, embed]).map((l) => l.name), ['model.embed_tokens.weight', ...DEPTH, 'lm_head.weight']);
  assert.equal(lowestBitFormat(report), 'int2');
});

test('bits chart without an allocation: one bar trace of the format bits, in the format\'s colour', () => {
  const c = bitsChart(report);
  assert.equal(c.data.length, 1);
  assert.deepEqual(c.data[0], { type: 'bar', name: 'int2', x: DEPTH, y: [2.625, 2.5, 2.5], marker: { color: '#f58518' } });
  assert.deepEqual(bitsChart(report, { format: 'int4' }).data[0], { type: 'bar', name: 'int4', x: DEPTH, y: [4.25, 4.25, 4.25], marker: { color: '#4c78a8' } });
});

test('bits chart with a high-impact allocation: one stacked trace per format used + the kept share at b_hi', () => {
  const c = bitsChart(report, {
    allocation: {
      'model.layers.2.attn.q_proj.weight': { format: 'int2', bits: 2.625 + 0.01 * 48, highImpactRatio: 0.01, hiBits: 48 },
      'model.layers.2.mlp.up_proj.weight': { format: 'int4', bits: 4.25 },
      // layers.10 is not allocated: no bar.
    },
  });
  assert.equal(c.layout.barmode, 'stack');
  const traces = c.data as { x: string[]; y: (number | null)[]; customdata?: number[]; name: string; marker: { color: string } }[];
  assert.deepEqual(traces.map((t) => t.name), ['int4', 'int2', 'high-impact at b_hi']);
  for (const t of traces) assert.deepEqual(t.x, DEPTH);
  assert.deepEqual(traces[0].y, [null, 4.25, null]);
  assert.equal(traces[1].y[0]!.toFixed(12), (2.625).toFixed(12));
  assert.deepEqual(traces[1].y.slice(1), [null, null]);
  assert.deepEqual(traces.map((t) => t.marker.color), ['#4c78a8', '#f58518', '#e45756']);
  assert.deepEqual(traces[2].y, [0.48, 0, 0]);
  assert.deepEqual(traces[2].customdata, [0.01, 0, 0]);
  // No kept weights anywhere: no empty high-impact trace; a format outside the report still gets a bar.
  const plain = bitsChart(report, { allocation: { [DEPTH[0]]: { format: 'fp16', bits: 16 } } }).data as typeof traces;
  assert.deepEqual(plain.map((t) => [t.name, t.y]), [['fp16', [16, null, null]]]);
});

test('heatmap: log10 relMse by depth × format, exact cells empty, raw values for hover', () => {
  const c = heatmapChart(report);
  const t = c.data[0] as { x: string[]; y: string[]; z: (number | null)[][]; customdata: unknown; reversescale: boolean };
  assert.deepEqual(t.x, ['int4', 'int2']);
  assert.deepEqual(t.y, DEPTH);
  assert.deepEqual(t.z, [
    [-4, -2],
    [-2, null],
    [-3, -1],
  ]);
  assert.deepEqual(t.customdata, [
    [1e-4, 1e-2],
    [1e-2, 0],
    [1e-3, 1e-1],
  ]);
  assert.equal(t.reversescale, false);
  const s = heatmapChart(report, 'sqnr').data[0] as typeof t;
  assert.deepEqual(s.z.map((r) => r.map((v) => (v === null ? null : Math.round(v)))), [
    [40, 20],
    [20, null],
    [30, 10],
  ]);
  assert.equal(s.reversescale, true);
});

test('group map: rows × groups of log10 MSE, super weights in the cell that holds them', () => {
  const l = layer('w', 'b', { int4: err(1e-3, 4.25) }, {
    shape: [8, 512],
    // 8 rows → 4 cell rows (2 per cell); 512/64 = 8 groups → 4 cell cols (2 groups per cell).
    groupMaps: { int4: { groupSize: 64, rowsPerCell: 2, groupsPerCell: 2, cellRows: 4, cellCols: 4, mse: [1, 10, 100, 0.1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1000] } },
    stats: {
      kurtosis: 0, outlierShare: 0, maxOverStd: 50, mean: 0, std: 1, maxAbs: 50,
      // row 5, column 300 → cell row 2, group 4 → cell col 2; row 7, column 511 → (3, 3).
      superWeights: [{ coords: [5, 300], value: -50, overMedian: 100 }, { coords: [7, 511], value: 40, overMedian: null }],
    },
  });
  const c = groupMapChart(l, 'int4');
  assert.deepEqual((c.data[0] as { z: unknown }).z, [
    [0, 1, 2, -1],
    [0, 0, 0, 0],
    [null, 0, 0, 0],
    [0, 0, 0, 3],
  ]);
  const m = c.data[1] as { x: number[]; y: number[]; text: string[] };
  assert.deepEqual(m.x, [2, 3]);
  assert.deepEqual(m.y, [2, 3]);
  assert.deepEqual(m.text, ['[5, 300] = -50.00 (100× median)', '[7, 511] = 40.00']);
  // No map for that format: an empty chart, not a crash.
  assert.deepEqual(groupMapChart(l, 'int2').data, []);
});

test('cellOf: in_out swaps the axes; conv flattens the kernel into the row', () => {
  const map = { groupSize: 4, rowsPerCell: 1, groupsPerCell: 1, cellRows: 4, cellCols: 4, mse: [] };
  assert.deepEqual(cellOf(layer('a', 'b', {}, { layout: 'in_out', shape: [16, 4] }), map, [9, 2]), [2, 2]);
  // conv [4, 2, 2, 2]: coords [3, 1, 0, 1] → column 1·4 + 0·2 + 1 = 5 → group 1.
  assert.deepEqual(cellOf(layer('c', 'b', {}, { layout: 'conv', shape: [4, 2, 2, 2] }), map, [3, 1, 0, 1]), [3, 1]);
  assert.equal(cellOf(layer('a', 'b', {}, { shape: [16, 4] }), map, [15, 0]), undefined);
});

test('group map layer: the most sensitive with rows of ≥ 512 weights, else the most sensitive', () => {
  const wide = layer('wide', 'b', { int2: err(0.05, 2.5) }, { shape: [4, 512] });
  const conv = layer('conv', 'b', { int2: err(0.01, 2.5) }, { layout: 'conv', shape: [4, 32, 4, 4] });
  const tall = layer('tall', 'b', { int2: err(0.02, 2.5) }, { layout: 'in_out', shape: [1024, 4] });
  assert.equal(groupMapLayer([...report.layers, wide, conv, tall], 'int2')?.name, 'wide');
  assert.equal(groupMapLayer([...report.layers, conv, tall], 'int2')?.name, 'tall');
  assert.equal(groupMapLayer([...report.layers, conv], 'int2')?.name, 'conv');
  assert.equal(groupMapLayer(report.layers, 'int2')?.name, DEPTH[2]);
  assert.equal(groupMapLayer(report.layers, 'none'), undefined);
});

test('pareto: the frontier and the current budget point', () => {
  const c = paretoChart([{ avgBits: 2.5, totalError: 0.3 }, { avgBits: 4.25, totalError: 0.01 }], { avgBits: 4.25, totalError: 0.01 });
  assert.deepEqual((c.data[0] as { x: number[]; y: number[] }).x, [2.5, 4.25]);
  assert.deepEqual((c.data[0] as { x: number[]; y: number[] }).y, [0.3, 0.01]);
  assert.deepEqual((c.data[1] as { x: number[]; y: number[] }).x, [4.25]);
  assert.equal(c.layout.yaxis?.type, 'log');
  assert.equal(paretoChart([]).data.length, 1);
});

test('agreement: layers both methods scored, Spearman ρ by hand', () => {
  // Ranks a: c=1, a=2, b=3, d=4; b: c=1, b=2, a=3, d=4 → d² = 0+1+1+0 = 2, ρ = 1 − 6·2/(4·15) = 0.8.
  const scores = { m1: { a: 2, b: 3, c: 1, d: 4, only1: 9 }, m2: { a: 30, b: 20, c: 10, d: 40, only2: 1 } };
  const c = agreementChart(scores, 'm1', 'm2');
  assert.equal(c.n, 4);
  assert.ok(Math.abs(c.rho! - 0.8) < 1e-12);
  const t = c.data[0] as { x: number[]; y: number[]; text: string[] };
  assert.deepEqual(t.text, ['a', 'b', 'c', 'd']);
  assert.deepEqual(t.x, [2, 3, 1, 4]);
  assert.deepEqual(t.y, [30, 20, 10, 40]);
  assert.match(String((c.layout.title as { text: string }).text), /ρ = 0\.800 \(4 layers\)/);
  assert.equal(agreementChart(scores, 'm1', 'missing').rho, null);
});

test('report scores: relMse, weight statistics, and the imatrix score only when present', () => {
  const s = reportScores(report, 'int2');
  assert.deepEqual(Object.keys(s), ['relMse', 'kurtosis', 'max/σ']);
  assert.deepEqual(s.relMse, { [DEPTH[2]]: 0.1, [DEPTH[1]]: 0, [DEPTH[0]]: 0.01 });
  assert.deepEqual(s['max/σ'], { [DEPTH[2]]: 9, [DEPTH[1]]: 4, [DEPTH[0]]: 6 });
  // relMse 0.1 > 0.01 > 0 and max/σ 9 > 6 > 4: the same ranking, ρ = 1.
  assert.equal(agreementChart(s, 'relMse', 'max/σ').rho, 1);
  const withH = { ...report, layers: [layer('x', 'b', { int2: err(0.5, 2.5, { hessianDiag: 7 }) })] };
  assert.deepEqual(reportScores(withH, 'int2').imatrix, { x: 7 });
});

test('axis scale: log only for positive values over a decade or more', () => {
  assert.deepEqual(scaleFor([0.055, 0.28]), { type: 'linear' });
  assert.deepEqual(scaleFor([1, 10]), { type: 'log', dtick: 'D2' });
  assert.deepEqual(scaleFor([1e-4, 1e-2]), { type: 'log', dtick: 1 });
  assert.deepEqual(scaleFor([0, 100]), { type: 'linear' });
  assert.deepEqual(scaleFor([]), { type: 'linear' });
});

test('predicted vs measured: finite pairs only, a y = x line over their range', () => {
  const c = predictedMeasuredChart([
    { name: 'q', predicted: 0.01, measured: 0.02 },
    { name: 'bad', predicted: NaN, measured: 1 },
    { name: 'k', predicted: 0.5, measured: 0.25 },
  ]);
  const [pts, diag] = c.data as { x: number[]; y: number[]; text?: string[] }[];
  assert.deepEqual(pts.x, [0.01, 0.5]);
  assert.deepEqual(pts.y, [0.02, 0.25]);
  assert.deepEqual(pts.text, ['q', 'k']);
  assert.deepEqual(diag.x, [0.01, 0.5]);
  assert.deepEqual(diag.y, [0.01, 0.5]);
  // 0.01 … 0.5: 1.7 decades → log with 1-2-5 labels.
  assert.deepEqual([c.layout.xaxis?.type, c.layout.xaxis?.dtick], ['log', 'D2']);
  assert.equal(predictedMeasuredChart([]).data.length, 1);
});
