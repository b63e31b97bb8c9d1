// Fisher / GWQ / HAWQ scores against closed forms and exhaustive finite differences.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientUnsupportedError } from '../../server/src/autodiff';
import type { CalibrationSet } from '../../server/src/calib/types';
import { getFormat } from '../../server/src/quant';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { baseFeeds, gradientAnalysis, prepareGradientSession, samplesOf } from '../../server/src/sensitivity/gradient';
import { randn, tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

ort.env.logLevel = 'error';
const dir = tempDir('ql-grad-');
after(() => dir.cleanup());

const IN = 4;
const OUT = 3;
const N = 5;
const W = randn(IN * OUT, 11, 0.7);
const B = randn(OUT, 12, 0.1);
const X = randn(N * IN, 13, 1);
const T = randn(N * OUT, 14, 1);

/** y = x·W + b, W [4, 3] as a MatMul initializer. */
function linearModel(): string {
  const g = new GraphBuilder('linear');
  g.input('x', 'float32', ['N', IN]);
  g.initializer('W', W, [IN, OUT]);
  g.initializer('b', B, [OUT]);
  g.node('MatMul', ['x', 'W'], ['xw']);
  g.node('Add', ['xw', 'b'], ['y']);
  g.output('y', 'float32', ['N', OUT]);
  return writeTinyModel({ bytes: g.build(), weights: [], inputs: [], output: 'y', inputDims: () => [] }, dir.dir, 'linear.onnx');
}

const calib = (x: Float32Array, dims: number[]): CalibrationSet => ({ batches: [{ x: { dtype: 'float32', dims, data: x } }], samples: dims[0], synthetic: false, source: 'test' });

test('Fisher and GWQ on one linear layer with MSE to given targets match the hand formula', async () => {
  const file = linearModel();
  const formats = ['int4_ch_sym', 'int3_ch_asym'];
  const r = await gradientAnalysis(file, calib(X, [N, IN]), {
    methods: ['fisher', 'gwq'], formats, providers: ['cpu'], labels: { dtype: 'float32', dims: [N, OUT], data: T },
  });
  assert.equal(r.executionProvider, 'cpu');
  assert.match(r.loss, /mean squared error to the given targets/);
  assert.equal(r.samples, N);
  assert.deepEqual(r.weights.map((w) => w.name), ['W']);
  // Per sample L = (1/3) Σ_j (x·W + b − t)_j², so ∂L/∂W_ij = (2/3) x_i (x·W + b − t)_j.
  const F = new Float64Array(IN * OUT);
  const G = new Float64Array(IN * OUT);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < OUT; j++) {
      let y = B[j];
      for (let i = 0; i < IN; i++) y += X[n * IN + i] * W[i * OUT + j];
      const r = (2 / OUT) * (y - T[n * OUT + j]);
      for (let i = 0; i < IN; i++) {
        const g = X[n * IN + i] * r;
        F[i * OUT + j] += (g * g) / N;
        G[i * OUT + j] += g / N;
      }
    }
  }
  for (const fmt of formats) {
    const q = getFormat(fmt).quantizeDequantize(W, [IN, OUT], 'in_out');
    let fisher = 0;
    let gwq = 0;
    for (let k = 0; k < W.length; k++) {
      fisher += F[k] * (q[k] - W[k]) ** 2;
      gwq += Math.abs(G[k] * (q[k] - W[k]));
    }
    assert.ok(fisher > 0 && gwq > 0);
    const got = r.weights[0].scores;
    assert.ok(Math.abs(got.fisher![fmt] - fisher) <= 1e-4 * fisher, `${fmt} fisher ${got.fisher![fmt]} vs ${fisher}`);
    assert.ok(Math.abs(got.gwq![fmt] - gwq) <= 1e-4 * gwq, `${fmt} gwq ${got.gwq![fmt]} vs ${gwq}`);
  }
});

test('HAWQ on a linear layer: trace and top eigenvalue of H = (2/3)·mean(x xᵀ) ⊗ I', async () => {
  const file = linearModel();
  const r = await gradientAnalysis(file, calib(X, [N, IN]), {
    methods: ['hawq'], formats: [], providers: ['cpu'], labels: { dtype: 'float32', dims: [N, OUT], data: T }, hawq: { probes: 48, iterations: 60, samples: N },
  });
  // Exact: C = (2/3)·(1/N) Σ x xᵀ; tr(H) = 3·tr(C), λmax(H) = λmax(C).
  const C = new Float64Array(IN * IN);
  for (let n = 0; n < N; n++) for (let a = 0; a < IN; a++) for (let b = 0; b < IN; b++) C[a * IN + b] += ((2 / OUT) * X[n * IN + a] * X[n * IN + b]) / N;
  let trace = 0;
  for (let a = 0; a < IN; a++) trace += OUT * C[a * IN + a];
  const w = r.weights[0];
  assert.ok(w.hessianTraceStdError! > 0);
  assert.ok(Math.abs(w.hessianTrace! - trace) <= 4 * w.hessianTraceStdError! + 1e-3 * trace, `trace ${w.hessianTrace} ± ${w.hessianTraceStdError} vs ${trace}`);
  const top = topEigen(C, IN);
  assert.ok(Math.abs(w.hessianTopEig! - top) <= 1e-2 * top, `top eigenvalue ${w.hessianTopEig} vs ${top}`);
  assert.deepEqual(r.hawq, { probes: 48, iterations: 60, samples: N, probing: 'joint' });

  const traceOnly = await gradientAnalysis(file, calib(X, [N, IN]), {
    methods: ['hawq'], formats: [], providers: ['cpu'], labels: { dtype: 'float32', dims: [N, OUT], data: T }, hawq: { probes: 8, topEigen: false },
  });
  assert.equal(traceOnly.weights[0].hessianTopEig, undefined);
  assert.ok(traceOnly.weights[0].hessianTrace! > 0);
  assert.deepEqual(traceOnly.hawq, { probes: 8, iterations: 0, samples: 4, probing: 'joint' });
});

test('Hutchinson trace and power iteration match the exhaustive finite-difference Hessian of an MLP layer', async () => {
  const m = tinyMlp({ softmax: true });
  const file = writeTinyModel(m, dir.dir, 'mlp.onnx');
  const x = tinyFeeds(m, 3, 5).x;
  const labels = { dtype: 'int64' as const, dims: [3], data: BigInt64Array.from([0n, 3n, 1n]) };
  const set = calib(x.data as Float32Array, x.dims);
  const r = await gradientAnalysis(file, set, {
    methods: ['hawq'], formats: [], providers: ['cpu'], labels, weights: ['fc2.weight'], hawq: { probes: 64, iterations: 80, samples: 3 }, seed: 3,
  });
  // Exact block Hessian, column by column: H e_i = (∇L(w + h e_i) − ∇L(w − h e_i)) / 2h, loss averaged over the samples.
  const p = await prepareGradientSession(m.bytes, ['fc2.weight'], { kind: 'ce-labels' }, { labels, providers: ['cpu'] });
  const w0 = p.weightValues.get('fc2.weight')!;
  const n = w0.data.length;
  const grad = async (data: Float32Array) => {
    const acc = new Float64Array(n);
    let i = 0;
    for (const s of samplesOf(set)) {
      const feeds = { ...baseFeeds(p, s), ...p.extraFeeds(i++), 'fc2.weight': new ort.Tensor('float32', data, w0.dims) };
      const g = (await p.session.run(feeds))[p.gradients.get('fc2.weight')!].data as Float32Array;
      for (let j = 0; j < n; j++) acc[j] += g[j] / 3;
    }
    return acc;
  };
  const h = 1e-2;
  const H = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const plus = Float32Array.from(w0.data);
    const minus = Float32Array.from(w0.data);
    plus[i] += h;
    minus[i] -= h;
    const [gp, gm] = [await grad(plus), await grad(minus)];
    for (let j = 0; j < n; j++) H[j * n + i] = (gp[j] - gm[j]) / (2 * h);
  }
  await p.session.release();
  let trace = 0;
  for (let i = 0; i < n; i++) trace += H[i * n + i];
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) H[i * n + j] = H[j * n + i] = (H[i * n + j] + H[j * n + i]) / 2;
  const res = r.weights[0];
  assert.ok(trace > 0);
  assert.ok(Math.abs(res.hessianTrace! - trace) <= 4 * res.hessianTraceStdError! + 0.02 * trace, `trace ${res.hessianTrace} ± ${res.hessianTraceStdError} vs exact ${trace}`);
  assert.ok(res.hessianTraceStdError! < 0.25 * trace);
  const top = topEigen(H, n);
  assert.ok(Math.abs(res.hessianTopEig! - top) <= 0.03 * top, `top eigenvalue ${res.hessianTopEig} vs exact ${top}`);

  // All three layers probed at once: cross-layer terms only add variance.
  const all = await gradientAnalysis(file, set, {
    methods: ['hawq'], formats: [], providers: ['cpu'], labels, hawq: { probes: 96, samples: 3, topEigen: false }, seed: 5,
  });
  const fc2 = all.weights.find((w) => w.name === 'fc2.weight')!;
  assert.equal(all.weights.length, 3);
  assert.ok(Math.abs(fc2.hessianTrace! - trace) <= 4 * fc2.hessianTraceStdError! + 0.02 * trace, `joint trace ${fc2.hessianTrace} ± ${fc2.hessianTraceStdError} vs exact ${trace}`);
  const blocks = await gradientAnalysis(file, set, {
    methods: ['hawq'], formats: [], providers: ['cpu'], labels, hawq: { probes: 64, samples: 3, topEigen: false, probing: 'per-block' }, seed: 6,
  });
  const fc2b = blocks.weights.find((w) => w.name === 'fc2.weight')!;
  assert.equal(blocks.hawq?.probing, 'per-block');
  assert.ok(Math.abs(fc2b.hessianTrace! - trace) <= 4 * fc2b.hessianTraceStdError! + 0.02 * trace, `per-block trace ${fc2b.hessianTrace} ± ${fc2b.hessianTraceStdError} vs exact ${trace}`);
});

test('unlabeled class outputs: empirical (top-1) and seeded sampled Fisher, reproducible', async () => {
  const m = tinyMlp({ softmax: true });
  const file = writeTinyModel(m, dir.dir, 'mlp2.onnx');
  const x = tinyFeeds(m, 4, 9).x;
  const set = calib(x.data as Float32Array, x.dims);
  const top1 = await gradientAnalysis(file, set, { methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'] });
  assert.match(top1.loss, /top-1/);
  assert.deepEqual(top1.weights.map((w) => w.name), ['fc0.weight', 'fc1.weight', 'fc2.weight']);
  for (const w of top1.weights) assert.ok(w.scores.fisher!.int4_ch_sym > 0 && w.scores.gwq === undefined);
  const a = await gradientAnalysis(file, set, { methods: ['fisher', 'gwq'], formats: ['int4_ch_sym'], unlabeled: 'sampled', seed: 4, providers: ['cpu'] });
  const b = await gradientAnalysis(file, set, { methods: ['fisher', 'gwq'], formats: ['int4_ch_sym'], unlabeled: 'sampled', seed: 4, providers: ['cpu'] });
  assert.match(a.loss, /sampled/);
  assert.deepEqual(a.weights, b.weights);
});

test('int32 labels, progress per sample, cancellation', async () => {
  const m = tinyMlp();
  const file = writeTinyModel(m, dir.dir, 'mlp3.onnx');
  const x = tinyFeeds(m, 3, 17).x;
  const set = calib(x.data as Float32Array, x.dims);
  const seen: number[] = [];
  const a = await gradientAnalysis(file, set, {
    methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'], labels: { dtype: 'int32', dims: [3], data: Int32Array.of(1, 4, 0) },
    onProgress: (done, total, stage) => stage === 'gradients' && total === 3 && seen.push(done),
  });
  const b = await gradientAnalysis(file, set, {
    methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'], labels: { dtype: 'int64', dims: [3], data: BigInt64Array.of(1n, 4n, 0n) },
  });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.match(a.loss, /given labels/);
  assert.deepEqual(a.weights, b.weights);
  await assert.rejects(
    gradientAnalysis(file, set, { methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'], signal: AbortSignal.abort() }),
    /cancelled/,
  );
  await assert.rejects(
    gradientAnalysis(file, set, { methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'], labels: { dtype: 'int64', dims: [2], data: BigInt64Array.of(1n, 2n) } }),
    /labels have 2 rows, expected one per calibration sample \(3\)/,
  );
});

test('a model with an op that has no gradient rule fails with the named error', async () => {
  const g = new GraphBuilder('sin');
  g.input('x', 'float32', ['N', 4]);
  g.initializer('W', randn(12, 1, 0.5), [4, 3]);
  g.node('MatMul', ['x', 'W'], ['xw']);
  g.node('Sin', ['xw'], ['y']);
  g.output('y', 'float32', ['N', 3]);
  const file = writeTinyModel({ bytes: g.build(), weights: [], inputs: [], output: 'y', inputDims: () => [] }, dir.dir, 'sin.onnx');
  await assert.rejects(gradientAnalysis(file, calib(X, [N, IN]), { methods: ['fisher'], formats: ['int4_ch_sym'], providers: ['cpu'] }), (e: unknown) => {
    assert.ok(e instanceof GradientUnsupportedError);
    assert.equal(e.opType, 'Sin');
    assert.equal(e.nodeName, 'Sin_1');
    assert.match(e.message, /Sin.*Sin_1/);
    return true;
  });
});

/** Largest-magnitude eigenvalue of a symmetric matrix by many power-iteration steps in float64. */
function topEigen(A: Float64Array, n: number): number {
  let v = Float64Array.from({ length: n }, (_, i) => 1 + i / n);
  let lambda = 0;
  for (let it = 0; it < 5000; it++) {
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] += A[i * n + j] * v[j];
    let dot = 0;
    let norm = 0;
    for (let i = 0; i < n; i++) {
      dot += v[i] * w[i];
      norm += w[i] * w[i];
    }
    lambda = dot;
    norm = Math.sqrt(norm);
    v = w.map((x) => x / norm);
  }
  return lambda;
}
