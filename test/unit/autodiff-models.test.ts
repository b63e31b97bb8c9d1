// The gradient-graph builder on whole models: the generated MLP, transformer block and CNN against central
// finite differences, loss values against float64 references, probability outputs, an opset-9 export with
// weights in Constant nodes, path selection, and the errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { buildGradientModel, GradientUnsupportedError, type LossSpec } from '../../server/src/autodiff';
import type { Feeds } from '../../server/src/calib/types';
import { float, GraphBuilder } from '../../server/src/runtime/graph';
import { randn } from '../fixtures/common';
import { checkGradients, normalFeed, tinyCnn, tinyFeeds, tinyMlp, tinyTransformer, type GradientCheck } from '../fixtures/tiny-models';

ort.env.logLevel = 'error';

function assertClose(checks: GradientCheck[], rel = 1e-2, abs = 2e-3): void {
  for (const c of checks) {
    for (let k = 0; k < c.analytic.length; k++) {
      assert.ok(Math.abs(c.analytic[k] - c.numeric[k]) <= abs + rel * Math.abs(c.numeric[k]), `${c.weight}: analytic ${c.analytic[k]} vs finite difference ${c.numeric[k]}`);
    }
  }
  assert.ok(checks.some((c) => c.analytic.some((a) => Math.abs(a) > 1e-3)), 'all gradients are zero');
}

const labels = (dims: number[], classes: number, seed: number): Feeds[string] => {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'int64', dims, data: BigInt64Array.from(randn(n, seed, 1), (v) => BigInt(Math.floor(Math.abs(v) * 997) % classes)) };
};

const ceLabels: LossSpec = { kind: 'ce-labels' };

test('MLP (Softmax output): cross-entropy against labels and against its own top-1', async () => {
  const m = tinyMlp({ softmax: true });
  const feeds = tinyFeeds(m, 3, 1);
  assertClose(await checkGradients(m.bytes, m.weights, feeds, ceLabels, { 'quantlens.labels': labels([3], 5, 2) }));
  assertClose(await checkGradients(m.bytes, m.weights, feeds, { kind: 'ce-top1' }));
});

test('transformer block: per-position cross-entropy on [N, T, C] logits', async () => {
  const m = tinyTransformer();
  const checks = await checkGradients(m.bytes, m.weights, tinyFeeds(m, 2, 3), ceLabels, { 'quantlens.labels': labels([2, 4], 6, 4) });
  assert.equal(checks.length, 18);
  assertClose(checks);
});

test('CNN: conv/batchnorm/pooling stack, cross-entropy and MSE to a target', async () => {
  const m = tinyCnn();
  const feeds = tinyFeeds(m, 2, 5);
  // A small step: Relu and MaxPool kinks make larger central differences straddle a switch.
  const h = 1e-4;
  assertClose(await checkGradients(m.bytes, m.weights, feeds, ceLabels, { 'quantlens.labels': labels([2], 6, 6) }, {}, h));
  assertClose(await checkGradients(m.bytes, m.weights, feeds, { kind: 'mse-target' }, { 'quantlens.target': normalFeed([2, 6], 7) }, {}, h));
});

/** Runs the gradient model once; returns loss, output and gradients. */
async function runOnce(bytes: Uint8Array, weights: string[], loss: LossSpec, feeds: Feeds, opts: { probabilities?: boolean } = {}) {
  const gm = buildGradientModel(bytes, { weights, loss, ...opts });
  const s = await ort.InferenceSession.create(gm.model);
  const t: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) t[k] = new ort.Tensor(v.dtype, v.data as Float32Array, v.dims);
  const r = await s.run(t);
  await s.release();
  return {
    loss: (r[gm.lossOutput].data as Float32Array)[0],
    output: r[gm.output].data as Float32Array,
    grads: new Map([...gm.gradients].map(([w, o]) => [w, r[o].data as Float32Array])),
  };
}

test('loss values equal a float64 cross-entropy computed from the model output', async () => {
  const m = tinyTransformer();
  const feeds = tinyFeeds(m, 2, 8);
  const y = labels([2, 4], 6, 9);
  const r = await runOnce(m.bytes, m.weights, ceLabels, { ...feeds, 'quantlens.labels': y });
  let ref = 0;
  for (let p = 0; p < 8; p++) {
    const row = Array.from(r.output.subarray(p * 6, p * 6 + 6));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    ref += (lse - row[Number((y.data as BigInt64Array)[p])]) / 8;
  }
  assert.ok(Math.abs(r.loss - ref) < 1e-5 * Math.max(1, ref), `loss ${r.loss} vs ${ref}`);

  const mlp = tinyMlp({ softmax: true });
  const f2 = tinyFeeds(mlp, 3, 10);
  const y2 = labels([3], 5, 11);
  const r2 = await runOnce(mlp.bytes, mlp.weights, ceLabels, { ...f2, 'quantlens.labels': y2 });
  let ref2 = 0;
  for (let n = 0; n < 3; n++) ref2 -= Math.log(r2.output[n * 5 + Number((y2.data as BigInt64Array)[n])]) / 3;
  assert.ok(Math.abs(r2.loss - ref2) < 1e-5 * Math.max(1, ref2), `loss ${r2.loss} vs ${ref2}`);
});

test('a Softmax output differentiates like its logits; a declared probability output uses the clamped log', async () => {
  const feeds = tinyFeeds(tinyMlp(), 3, 12);
  const y = { 'quantlens.labels': labels([3], 5, 13) };
  const probs = tinyMlp({ softmax: true });
  const logits = tinyMlp();
  const a = await runOnce(probs.bytes, probs.weights, ceLabels, { ...feeds, ...y });
  const b = await runOnce(logits.bytes, logits.weights, ceLabels, { ...feeds, ...y });
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5);
  for (const [w, g] of a.grads) {
    const h = b.grads.get(w)!;
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i] - h[i]) < 1e-5, `${w}[${i}]`);
  }
  // Softmax then Identity: not recognized structurally, so `probabilities` selects −log max(p, floor).
  const g = new GraphBuilder('probs');
  g.input('x', 'float32', ['N', 4]);
  g.initializer('W', randn(12, 14, 0.8), [4, 3]);
  g.node('MatMul', ['x', 'W'], ['z']);
  g.node('Softmax', ['z'], ['p'], { axis: -1 });
  g.node('Identity', ['p'], ['y']);
  g.output('y', 'float32', ['N', 3]);
  const bytes = g.build();
  const x = { x: normalFeed([3, 4], 15) };
  const lab = { 'quantlens.labels': labels([3], 3, 16) };
  assertClose(await checkGradients(bytes, ['W'], x, ceLabels, lab, { probabilities: true }));
  const r = await runOnce(bytes, ['W'], ceLabels, { ...x, ...lab }, { probabilities: true });
  let ref = 0;
  for (let n = 0; n < 3; n++) ref -= Math.log(r.output[n * 3 + Number((lab['quantlens.labels'].data as BigInt64Array)[n])]) / 3;
  assert.ok(Math.abs(r.loss - ref) < 1e-5, `loss ${r.loss} vs ${ref}`);
});

const T = onnx.TensorProto.DataType;
const constantWeight = (name: string, dims: number[], seed: number, std: number, offset = 0): onnx.ITensorProto => {
  const v = randn(dims.reduce((a, b) => a * b, 1), seed, std).map((x) => x + offset);
  return { name, dataType: T.FLOAT, dims, rawData: new Uint8Array(v.buffer) };
};

test('an opset-9 export with weights in Constant nodes (PaddleOCR style) is upgraded and differentiated', async () => {
  const g = new GraphBuilder('paddle', 9);
  g.input('x', 'float32', ['N', 2, 6, 8]);
  const c = (name: string, dims: number[], seed: number, std: number, offset = 0) => g.node('Constant', [], [name], { value: constantWeight(name, dims, seed, std, offset) })[0];
  const weights = [
    c('conv.w', [4, 2, 3, 3], 1, 0.3), c('bn.s', [4], 2, 0.1, 1), c('bn.b', [4], 3, 0.1), c('bn.m', [4], 4, 0.1), c('bn.v', [4], 5, 0.1, 1),
    c('fc.w', [4, 5], 6, 0.5),
  ];
  g.node('Conv', ['x', 'conv.w'], ['conv'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
  g.node('BatchNormalization', ['conv', 'bn.s', 'bn.b', 'bn.m', 'bn.v'], ['bn'], { epsilon: float(1e-5) });
  g.node('HardSigmoid', ['bn'], ['gate'], { alpha: float(0.2), beta: float(0.5) });
  g.node('Mul', ['bn', 'gate'], ['act']);
  g.node('Clip', ['act'], ['clipped'], { min: float(-1), max: float(1.5) });
  g.node('Slice', ['clipped'], ['rows'], { starts: [1], ends: [5], axes: [2] });
  g.node('ReduceMean', ['rows'], ['pooled'], { axes: [2], keepdims: 1 });
  g.node('Squeeze', ['pooled'], ['seq'], { axes: [2] });
  g.node('Transpose', ['seq'], ['tokens'], { perm: [0, 2, 1] });
  g.node('MatMul', ['tokens', 'fc.w'], ['logits']);
  g.node('Unsqueeze', ['logits'], ['logits4'], { axes: [1] });
  g.node('Softmax', ['logits4'], ['p4'], { axis: 2 }); // pre-13: normalizes over the flattened axes 2..3
  g.node('Squeeze', ['p4'], ['probs'], { axes: [1] });
  g.output('probs', 'float32', ['N', 8, 5]);
  const bytes = g.build();
  const feeds = { x: normalFeed([2, 2, 6, 8], 20) };
  assertClose(await checkGradients(bytes, weights, feeds, { kind: 'mse-target' }, { 'quantlens.target': normalFeed([2, 8, 5], 21, 0.1) }));
});

test('opset 11 and 13 forms: Split sizes as attribute or equal split, Dropout, ReduceSum axes attribute, LogSoftmax', async () => {
  for (const opset of [11, 13]) {
    const g = new GraphBuilder('old', opset);
    g.input('x', 'float32', ['N', 6]);
    g.initializer('W', randn(36, 50 + opset, 0.5), [6, 6]);
    g.node('MatMul', ['x', 'W'], ['h']);
    if (opset === 11) g.node('Split', ['h'], ['a', 'b'], { axis: 1, split: [2, 4] });
    else g.node('Split', ['h'], ['a', 'b', 'c'], { axis: 1 });
    g.node('Dropout', ['b'], ['bd']);
    g.node(opset === 11 ? 'ReduceSum' : 'ReduceMean', ['bd'], ['s'], { axes: [1], keepdims: 1 });
    g.node('Mul', ['a', 's'], ['z']);
    g.node('LogSoftmax', ['z'], ['y'], { axis: 1 });
    g.output('y', 'float32', ['N', 2]);
    assertClose(await checkGradients(g.build(), ['W'], { x: normalFeed([3, 6], 60) }, ceLabels, { 'quantlens.labels': labels([3], 2, 61) }));
  }
});

test('only weight→loss paths are differentiated: off-path ops need no rule, unreachable weights get zeros', async () => {
  const g = new GraphBuilder('paths');
  g.input('x', 'float32', ['N', 4]);
  g.initializer('W', randn(12, 30, 0.5), [4, 3]);
  g.initializer('unused', randn(3, 31, 0.5), [3]);
  g.node('Sin', ['x'], ['sx']); // no rule, but no weight reaches it
  g.node('MatMul', ['sx', 'W'], ['y']);
  g.node('Cos', ['unused'], ['dead']);
  g.output('y', 'float32', ['N', 3]);
  const r = await runOnce(g.build(), ['W', 'unused'], { kind: 'ce-top1' }, { x: normalFeed([2, 4], 32) });
  assert.deepEqual(Array.from(r.grads.get('unused')!), [0, 0, 0]);
  assert.ok(r.grads.get('W')!.some((v) => v !== 0));
});

test('errors: op without a rule, custom-domain op, unknown weight, non-float weight', () => {
  const g = new GraphBuilder('bad');
  g.input('x', 'float32', ['N', 4]);
  g.initializer('W', randn(12, 40, 0.5), [4, 3]);
  g.initializer('ids', BigInt64Array.of(1n), [1]);
  g.node('MatMul', ['x', 'W'], ['xw']);
  g.node('Sin', ['xw'], ['y']);
  g.output('y', 'float32', ['N', 3]);
  const bytes = g.build();
  assert.throws(() => buildGradientModel(bytes, { weights: ['W'], loss: ceLabels }), (e: unknown) =>
    e instanceof GradientUnsupportedError && e.opType === 'Sin' && e.nodeName === 'Sin_1' && /op Sin \(node 'Sin_1'\) has no gradient rule/.test(e.message));
  assert.throws(() => buildGradientModel(bytes, { weights: ['nope'], loss: ceLabels }), /weight 'nope' is neither an initializer nor a Constant/);
  assert.throws(() => buildGradientModel(bytes, { weights: ['ids'], loss: ceLabels }), /expected a float type/);
  assert.throws(() => buildGradientModel(bytes, { weights: ['W'], loss: ceLabels, output: 'zz' }), /no output named 'zz'/);

  const h = new GraphBuilder('custom');
  h.input('x', 'float32', ['N', 4]);
  h.initializer('W', randn(12, 41, 0.5), [4, 3]);
  h.node('MatMul', ['x', 'W'], ['xw']);
  h.node('FastGelu', ['xw'], ['y'], {}, 'com.microsoft');
  h.output('y', 'float32', ['N', 3]);
  assert.throws(() => buildGradientModel(h.build(), { weights: ['W'], loss: ceLabels }), (e: unknown) =>
    e instanceof GradientUnsupportedError && e.opType === 'com.microsoft.FastGelu' && e.nodeName === 'FastGelu_1');
});
