import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Feeds } from '../../server/src/calib/types';
import { QuantLensError } from '../../server/src/formats/errors';
import type { WeightLayout } from '../../server/src/formats/types';
import { getFormat } from '../../server/src/quant';
import { captureHessians, convGeometry, im2col, type LayerHessian } from '../../server/src/runtime/capture';
import { GraphBuilder, type AttrValue } from '../../server/src/runtime/graph';
import { ModelRunner, type NodeAttrs } from '../../server/src/runtime/model-runner';
import { hessianScores, obsSaliency, traceScore } from '../../server/src/sensitivity/hessian';
import { randn, tempDir } from '../fixtures/common';

const tmp = tempDir('sens-hessian');
after(() => tmp.cleanup());

function save(name: string, g: GraphBuilder): string {
  const file = path.join(tmp.dir, name);
  writeFileSync(file, g.build());
  return file;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= rel * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** 2/N Σ x xᵀ by a plain double loop over rows. */
function refGram(rows: Float32Array[], d: number): Float64Array {
  const h = new Float64Array(d * d);
  let n = 0;
  for (const x of rows) {
    for (let o = 0; o < x.length; o += d, n++) {
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) h[i * d + j] += x[o + i] * x[o + j];
    }
  }
  return h.map((v) => (2 * v) / n);
}

/** Rows of x [*, k] times w [k, n]. */
function matmulRows(x: Float32Array, w: Float32Array, k: number, n: number): Float32Array {
  const m = x.length / k;
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) y[i * n + j] += x[i * k + t] * w[t * n + j];
  return y;
}

async function capture(file: string, batches: Feeds[], opts: { maxDim?: number } = {}) {
  const r = await ModelRunner.open(file, { providers: ['cpu'] });
  const got = new Map<string, LayerHessian>();
  const skipped = await captureHessians(r, batches, (h) => void got.set(h.weight.name, h), opts);
  return { r, got, skipped };
}

/** Σ over every output element of (ŷ − y)² with `weight` replaced by `q`. */
async function outputSqErr(r: ModelRunner, batches: Feeds[], weight: string, q: Float32Array): Promise<number> {
  let s = 0;
  for (const b of batches) {
    const y = Object.values(await r.run(b))[0];
    const yq = Object.values(await r.run(b, new Map([[weight, q]])))[0];
    for (let i = 0; i < y.length; i++) s += (yq[i] - y[i]) ** 2;
  }
  return s;
}

describe('layer Hessians from captured activations', () => {
  const d = 5;
  const out = 4;
  const linear = () => {
    const g = new GraphBuilder('linear');
    g.input('x', 'float32', ['b', 't', d]);
    g.initializer('W', randn(d * out, 11, 0.5), [d, out]);
    g.node('MatMul', ['x', 'W'], ['y']);
    g.output('y', 'float32', ['b', 't', out]);
    return save('linear.onnx', g);
  };
  const batch = (b: number, t: number, seed: number): Feeds => ({ x: { dtype: 'float32', dims: [b, t, d], data: randn(b * t * d, seed, 1) } });
  const batches = [batch(2, 3, 1), batch(1, 4, 2)];

  it('MatMul: H = 2XᵀX/N over every row of every batch (leading axes flattened)', async () => {
    const { r, got } = await capture(linear(), batches);
    try {
      const h = got.get('W')!;
      assert.equal(h.d, d);
      assert.equal(h.rows, 10);
      assert.equal(h.H.length, 1);
      close(h.H[0], refGram(batches.map((b) => b.x.data as Float32Array), d), 1e-6, 'H');
    } finally {
      await r.close();
    }
  });

  it('MatMul: tr(ΔW H ΔWᵀ) equals 2 × the output squared error per row measured with Q(W)', async () => {
    const { r, got } = await capture(linear(), batches);
    try {
      const h = got.get('W')!;
      const values = r.read('W');
      const layer = { values, shape: [d, out], layout: 'in_out' as WeightLayout, H: h.H, where: { file: 'linear' } };
      for (const id of ['int3_ch_sym', 'int2_ch_asym', 'fp4_e2m1_g32']) {
        const f = getFormat(id);
        const scores = await hessianScores(layer, [f]);
        const sq = await outputSqErr(r, batches, 'W', f.quantizeDequantize(values, [d, out], 'in_out'));
        assert.ok(sq > 0);
        assert.ok(Math.abs(scores[id] - (2 * sq) / h.rows) <= 1e-5 * scores[id], `${id}: ${scores[id]} vs ${(2 * sq) / h.rows}`);
      }
    } finally {
      await r.close();
    }
  });

  it('Gemm transA=1, transB=1: rows are the columns of A, H over the in-features', async () => {
    const g = new GraphBuilder('gemm');
    g.input('a', 'float32', [3, 'm']); // Aᵀ: [K = 3, M]
    g.initializer('B', randn(2 * 3, 5, 0.7), [2, 3]); // [N, K]
    g.initializer('c', new Float32Array([0.5, -1]), [2]);
    g.node('Gemm', ['a', 'B', 'c'], ['y'], { transA: 1, transB: 1 });
    g.output('y', 'float32', ['m', 2]);
    const a = randn(3 * 6, 9, 1);
    const feeds: Feeds[] = [{ a: { dtype: 'float32', dims: [3, 6], data: a } }];
    const { r, got } = await capture(save('gemm.onnx', g), feeds);
    try {
      assert.equal(r.weights[0].layout, 'out_in');
      const h = got.get('B')!;
      const rows = new Float32Array(18);
      for (let k = 0; k < 3; k++) for (let m = 0; m < 6; m++) rows[m * 3 + k] = a[k * 6 + m];
      close(h.H[0], refGram([rows], 3), 1e-6, 'H');
      const f = getFormat('int2_ch_sym');
      const values = r.read('B');
      const score = (await hessianScores({ values, shape: [2, 3], layout: 'out_in', H: h.H, where: { file: 'gemm' } }, [f]))[f.id];
      const sq = await outputSqErr(r, feeds, 'B', f.quantizeDequantize(values, [2, 3], 'out_in'));
      assert.ok(Math.abs(score - (2 * sq) / 6) <= 1e-5 * score, `${score} vs ${(2 * sq) / 6}`);
    } finally {
      await r.close();
    }
  });

  it('MatMul with d = 80 (summed by the onnxruntime GramAccumulator, not in JS): H = 2XᵀX/N', async () => {
    const g = new GraphBuilder('wide');
    g.input('x', 'float32', ['n', 80]);
    g.initializer('W', randn(80 * 3, 4, 0.1), [80, 3]);
    g.node('MatMul', ['x', 'W'], ['y']);
    g.output('y', 'float32', ['n', 3]);
    const wide: Feeds[] = [1, 2].map((s) => ({ x: { dtype: 'float32', dims: [9, 80], data: randn(9 * 80, 60 + s, 1) } }));
    const { r, got } = await capture(save('wide.onnx', g), wide);
    await r.close();
    const h = got.get('W')!;
    assert.equal(h.rows, 18);
    close(h.H[0], refGram(wide.map((b) => b.x.data as Float32Array), 80), 1e-6, 'H');
  });

  it('splits layers into passes under a memory bound without changing any Hessian', async () => {
    const g = new GraphBuilder('two');
    g.input('x', 'float32', ['b', 't', d]);
    g.initializer('W', randn(d * out, 11, 0.5), [d, out]);
    g.initializer('V', randn(out * 2, 12, 0.5), [out, 2]);
    g.node('MatMul', ['x', 'W'], ['y']);
    g.node('MatMul', ['y', 'V'], ['z']);
    g.output('z', 'float32', ['b', 't', 2]);
    const file = save('two.onnx', g);
    const passes = new Set<number>();
    const r = await ModelRunner.open(file, { providers: ['cpu'] });
    try {
      const one = new Map<string, LayerHessian>();
      await captureHessians(r, batches, (h) => void one.set(h.weight.name, h));
      const split = new Map<string, LayerHessian>();
      await captureHessians(r, batches, (h) => void split.set(h.weight.name, h), { memoryBytes: 1, onProgress: (p) => passes.add(p.passes) });
      assert.deepEqual([...passes], [2]);
      for (const name of ['W', 'V']) assert.deepEqual(split.get(name)!.H, one.get(name)!.H);
      // V's rows are y = x·W, taken from the model itself.
      const ys = batches.map((b) => matmulRows(b.x.data as Float32Array, r.read('W'), d, out));
      close(one.get('V')!.H[0], refGram(ys, out), 1e-5, 'H(V)');
    } finally {
      await r.close();
    }
  });

  it('refuses layers whose d exceeds the limit, with the reason', async () => {
    const { r, got, skipped } = await capture(linear(), batches, { maxDim: 4 });
    await r.close();
    assert.equal(got.size, 0);
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].weight, 'W');
    assert.match(skipped[0].reason, /d = 5 exceeds the Hessian limit of 4/);
  });
});

describe('Conv patch Hessians', () => {
  // x [2, 4, 5, 6], W [6, 2, 3, 2], group 2: each group sees 2 input channels and has 3 output channels.
  const [N, C, IH, IW] = [2, 4, 5, 6];
  const [O, CG, KH, KW] = [6, 2, 3, 2];
  const G = 2;

  /** A naive reference: pad the input explicitly, then copy each window (independent of im2col's index math). */
  function naivePatches(x: Float32Array, g: number, s: [number, number], dil: [number, number], pad: [number, number, number, number]): { rows: Float32Array; oh: number; ow: number } {
    const [pt, pl, pb, pr] = pad;
    const PH = IH + pt + pb;
    const PW = IW + pl + pr;
    const padded = new Float32Array(N * C * PH * PW);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < IH; i++) for (let j = 0; j < IW; j++) padded[((n * C + c) * PH + i + pt) * PW + j + pl] = x[((n * C + c) * IH + i) * IW + j];
    const oh = Math.floor((PH - (dil[0] * (KH - 1) + 1)) / s[0]) + 1;
    const ow = Math.floor((PW - (dil[1] * (KW - 1) + 1)) / s[1]) + 1;
    const rows: number[] = [];
    for (let n = 0; n < N; n++) {
      for (let a = 0; a < oh; a++) {
        for (let b = 0; b < ow; b++) {
          for (let c = 0; c < CG; c++) {
            for (let i = 0; i < KH; i++) for (let j = 0; j < KW; j++) rows.push(padded[((n * C + g * CG + c) * PH + a * s[0] + i * dil[0]) * PW + b * s[1] + j * dil[1]]);
          }
        }
      }
    }
    return { rows: Float32Array.from(rows), oh, ow };
  }

  function convModel(name: string, attrs: Record<string, AttrValue>): string {
    const g = new GraphBuilder('conv');
    g.input('x', 'float32', ['n', C, IH, IW]);
    g.initializer('W', randn(O * CG * KH * KW, 21, 0.4), [O, CG, KH, KW]);
    g.initializer('bias', new Float32Array([0.1, 0.2, 0.3, -0.1, 0, 0.5]), [O]);
    g.node('Conv', ['x', 'W', 'bias'], ['y'], { group: G, ...attrs });
    g.output('y', 'float32', ['n', O, 'h', 'w']);
    return save(name, g);
  }

  const x = randn(N * C * IH * IW, 31, 1);
  const feeds: Feeds[] = [{ x: { dtype: 'float32', dims: [N, C, IH, IW], data: x } }];

  for (const [label, attrs, s, dil, pad] of [
    ['strides 2×1, dilations 1×2, asymmetric pads', { strides: [2, 1], dilations: [1, 2], pads: [1, 0, 1, 1] }, [2, 1], [1, 2], [1, 0, 1, 1]],
    // SAME_UPPER, stride 2: rows ceil(5/2) = 3, total pad (3−1)·2 + 3 − 5 = 2 → 1 top, 1 bottom; cols ceil(6/2) = 3, total (3−1)·2 + 2 − 6 = 0.
    ['auto_pad SAME_UPPER, stride 2', { strides: [2, 2], auto_pad: 'SAME_UPPER' }, [2, 2], [1, 1], [1, 0, 1, 0]],
  ] as [string, Record<string, AttrValue>, [number, number], [number, number], [number, number, number, number]][]) {
    it(`one Hessian per group equals the naive im2col Gram (${label}), and the trace matches the output error`, async () => {
      const { r, got } = await capture(convModel(`conv-${label.length}.onnx`, attrs), feeds);
      try {
        const h = got.get('W')!;
        assert.equal(h.d, CG * KH * KW);
        assert.equal(h.H.length, G);
        const W = r.read('W');
        const y = (await r.runTensors(feeds[0])).y;
        for (let g = 0; g < G; g++) {
          const { rows, oh, ow } = naivePatches(x, g, s, dil, pad);
          assert.deepEqual(y.dims, [N, O, oh, ow]);
          assert.equal(h.rows, N * oh * ow);
          close(h.H[g], refGram([rows], h.d), 1e-6, `H[${g}]`);
          // The patches really are what the Conv multiplies: y = W_o · patch + bias (onnxruntime as the reference).
          const d = h.d;
          for (let o = g * 3; o < g * 3 + 3; o += 2) {
            for (let p = 0; p < N * oh * ow; p += 5) {
              const n = Math.floor(p / (oh * ow));
              let s2 = [0.1, 0.2, 0.3, -0.1, 0, 0.5][o];
              for (let k = 0; k < d; k++) s2 += W[o * d + k] * rows[p * d + k];
              const got2 = y.data[(n * O + o) * oh * ow + (p % (oh * ow))];
              assert.ok(Math.abs(got2 - s2) < 1e-4, `y[${n},${o},${p % (oh * ow)}] = ${got2}, patch·W = ${s2}`);
            }
          }
        }
        const f = getFormat('int2_ch_asym');
        const score = (await hessianScores({ values: W, shape: [O, CG, KH, KW], layout: 'conv', H: h.H, where: { file: 'conv' } }, [f]))[f.id];
        const sq = await outputSqErr(r, feeds, 'W', f.quantizeDequantize(W, [O, CG, KH, KW], 'conv'));
        assert.ok(Math.abs(score - (2 * sq) / h.rows) <= 1e-5 * score, `${score} vs ${(2 * sq) / h.rows}`);
      } finally {
        await r.close();
      }
    });
  }
});

describe('im2col', () => {
  it('unfolds any range of output positions exactly as the whole map', () => {
    const w = { name: 'W', shape: [4, 1, 3, 3], node: 'c', op: 'Conv', layout: 'conv' as WeightLayout, activation: 'x', attrs: { group: 2, pads: [1, 1, 1, 1], strides: [1, 2] }, dtype: 'F32' as const };
    const geo = convGeometry(w, [2, 2, 4, 5], { file: 'c' });
    assert.deepEqual([geo.outH, geo.outW, geo.cg], [4, 3, 1]);
    const x = randn(2 * 2 * 4 * 5, 3, 1);
    const whole = im2col(x, geo, 1);
    const parts = [im2col(x, geo, 1, 0, 7), im2col(x, geo, 1, 7, 10), im2col(x, geo, 1, 17, 7)];
    assert.deepEqual([...parts.flatMap((p) => [...p])], [...whole]);
    // Position 0 of group 1: the top-left 3×3 window of channel 1, padded by one on the top and left.
    assert.deepEqual([...whole.subarray(0, 9)], [0, 0, 0, 0, x[20], x[21], 0, x[25], x[26]]);
    // Hostile attributes are refused before they drive any loop.
    for (const attrs of [{ strides: [0, 1] }, { pads: [1, 1, 1] }, { dilations: [1, 1e9] }] as NodeAttrs[]) {
      assert.throws(() => convGeometry({ ...w, attrs: { ...w.attrs, ...attrs } }, [2, 2, 4, 5], { file: 'c' }), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-attribute' && e.where.tensor === 'W (node c)');
    }
  });
});

describe('Hessian scores', () => {
  // H = [[2, 1, 0], [1, 2, 0], [0, 0, 4]]: H⁻¹ = [[2/3, −1/3, 0], [−1/3, 2/3, 0], [0, 0, 1/4]].
  const H = new Float64Array([2, 1, 0, 1, 2, 0, 0, 0, 4]);
  const W = new Float32Array([1, 2, 3, -1, 0, 2]); // out_in [2, 3]

  it('OBS saliency w²/[H⁻¹]ⱼⱼ on a hand-inverted 3×3 H (no damping)', () => {
    const { saliency, summary } = obsSaliency({ values: W, shape: [2, 3], layout: 'out_in', H: [H], where: { file: 'h' } }, 0, 3);
    close(saliency, [1.5, 6, 36, 1.5, 0, 16], 1e-12, 'saliency');
    assert.deepEqual(summary.top.map((t) => [t.row, t.col, t.value, t.saliency]), [[0, 2, 3, 36], [1, 2, 2, 16], [0, 1, 2, 6]]);
    assert.equal(summary.total, 61);
    assert.equal(summary.damping, 0);
  });

  it('OBS saliency with GPTQ damping λ = 0.01·mean diag(H), and in_out weights viewed as [out, in]', () => {
    const lam = 0.01 * (8 / 3);
    const a = 2 + lam;
    const inv = [a / (a * a - 1), a / (a * a - 1), 1 / (4 + lam)]; // diagonal of (H + λI)⁻¹ by hand
    // The same weights stored transposed ([in, out], MatMul B) must give the same [out, in] saliency.
    const T = new Float32Array([1, -1, 2, 0, 3, 2]);
    const { saliency, summary } = obsSaliency({ values: T, shape: [3, 2], layout: 'in_out', H: [H], where: { file: 'h' } });
    close(saliency, [1 / inv[0], 4 / inv[1], 9 / inv[2], 1 / inv[0], 0, 4 / inv[2]], 1e-7, 'saliency'); // stored as float32
    assert.ok(Math.abs(summary.damping - lam) < 1e-15);
    assert.deepEqual(summary.top[0].coords, [2, 0]);
  });

  it('tr(ΔW H ΔWᵀ) by hand, in JS and through onnxruntime', async () => {
    const delta = new Float32Array([1, 0, -1, 0, 2, 1]); // rows δ0 = [1, 0, −1], δ1 = [0, 2, 1]
    // δ0ᵀHδ0 = 2 + 4 = 6; δ1ᵀHδ1 = 2·4 + 4·1 = 12 → 18.
    const layer = { values: W, shape: [2, 3], layout: 'out_in' as WeightLayout, H: [H], where: { file: 'h' } };
    assert.equal(await traceScore(layer, delta), 18);
    assert.ok(Math.abs((await traceScore(layer, delta, { jsLimit: 0, providers: ['cpu'] })) - 18) < 1e-5);
  });

  it('rejects Hessians that do not fit the weight', async () => {
    const layer = { values: W, shape: [2, 3], layout: 'out_in' as WeightLayout, H: [new Float64Array(4)], where: { file: 'h', tensor: 'W' } };
    await assert.rejects(traceScore(layer, W), /expected 3×3 Hessians/);
  });
});
