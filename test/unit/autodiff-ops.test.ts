// Every gradient rule against central finite differences: one tiny graph per op (or op variant), whose
// weights flow through the op into an MSE loss against a fixed random target.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { float, GraphBuilder } from '../../server/src/runtime/graph';
import { randn } from '../fixtures/common';
import { checkGradients, normalFeed } from '../fixtures/tiny-models';

type Weight = (name: string, dims: number[], opts?: { offset?: number; std?: number }) => string;
type Build = (g: GraphBuilder, x: string, w: Weight) => string;

let seed = 1000;

/** Builds x → build(…) → y, checks every weight's gradient; `yDims` is y's shape (for the target). */
async function gradcheck(xDims: number[], yDims: number[], build: Build, opset = 21): Promise<void> {
  const g = new GraphBuilder('op', opset);
  const weights: string[] = [];
  const w: Weight = (name, dims, o = {}) => {
    const data = randn(dims.reduce((a, b) => a * b, 1), seed++, o.std ?? 0.5);
    for (let i = 0; i < data.length; i++) data[i] += o.offset ?? 0;
    weights.push(g.initializer(name, data, dims));
    return name;
  };
  g.input('x', 'float32', xDims);
  const y = build(g, 'x', w);
  g.output(y, 'float32', yDims);
  const checks = await checkGradients(g.build(), weights, { x: normalFeed(xDims, seed++) }, { kind: 'mse-target' }, {
    'quantlens.target': normalFeed(yDims, seed++),
  });
  assert.equal(checks.length, weights.length);
  for (const c of checks) {
    for (let k = 0; k < c.analytic.length; k++) {
      const tol = 2e-3 + 1e-2 * Math.abs(c.numeric[k]);
      assert.ok(Math.abs(c.analytic[k] - c.numeric[k]) <= tol, `${c.weight}: analytic ${c.analytic[k]} vs finite difference ${c.numeric[k]}`);
    }
    assert.ok(c.analytic.some((a) => Math.abs(a) > 1e-4), `${c.weight}: gradient is zero, the check proves nothing`);
  }
}

const X = [2, 3, 4];

test('binary element-wise ops with broadcasting', async () => {
  await gradcheck(X, X, (g, x, w) => g.node('Add', [x, w('b', [4])], ['y'])[0]);
  await gradcheck(X, X, (g, x, w) => g.node('Sub', [w('a', [3, 1]), x], ['y'])[0]);
  await gradcheck(X, X, (g, x, w) => g.node('Mul', [g.node('Mul', [x, w('a', [3, 1])], ['m'])[0], w('b', [1, 4])], ['y'])[0]);
  await gradcheck(X, X, (g, x, w) => g.node('Div', [g.node('Mul', [x, w('a', [4])], ['m'])[0], w('b', [3, 1], { offset: 2 })], ['y'])[0]);
  await gradcheck(X, X, (g, x, w) => {
    g.node('Pow', [w('base', [4], { offset: 2, std: 0.3 }), w('exp', [3, 1], { offset: 1.5, std: 0.3 })], ['p']);
    return g.node('Mul', [x, 'p'], ['y'])[0];
  });
  await gradcheck(X, X, (g, x, w) => {
    g.node('Mul', [x, w('a', [4])], ['m']);
    g.node('Max', ['m', w('b', [3, 1])], ['hi']);
    return g.node('Min', ['hi', w('c', [4], { offset: 0.5 })], ['y'])[0];
  });
});

test('unary ops', async () => {
  const unary = (op: string, attrs: Record<string, number | string | ReturnType<typeof float>> = {}, prep?: string) =>
    gradcheck(X, X, (g, x, w) => {
      g.node('Mul', [x, w('a', [4])], ['m']);
      let z = g.node('Add', ['m', w('b', [3, 1])], ['z'])[0];
      if (prep === 'positive') z = g.node('Add', [g.node('Mul', [z, z], ['sq'])[0], w('c', [1], { offset: 1, std: 0.1 })], ['pos'])[0];
      return g.node(op, [z], ['y'], attrs)[0];
    });
  await unary('Neg');
  await unary('Relu');
  await unary('LeakyRelu', { alpha: float(0.1) });
  await unary('Sigmoid');
  await unary('Tanh');
  await unary('Erf');
  await unary('Gelu');
  await unary('Gelu', { approximate: 'tanh' });
  await unary('Exp');
  await unary('Sqrt', {}, 'positive');
  await unary('Log', {}, 'positive');
  await unary('Reciprocal', {}, 'positive');
  await unary('HardSigmoid', { alpha: float(0.4), beta: float(0.5) });
  await unary('HardSwish');
  await unary('Identity');
});

test('Clip, Where, Expand and float casts', async () => {
  await gradcheck(X, X, (g, x, w) => {
    g.initializer('lo', Float32Array.of(-0.3), []);
    g.initializer('hi', Float32Array.of(0.4), []);
    g.node('Mul', [x, w('a', [4])], ['m']);
    return g.node('Clip', ['m', 'lo', 'hi'], ['y'])[0];
  });
  await gradcheck(X, X, (g, x, w) => {
    g.initializer('zero', Float32Array.of(0), []);
    g.node('Greater', [x, 'zero'], ['c']);
    return g.node('Where', ['c', w('a', [4]), w('b', [3, 1])], ['y'])[0];
  });
  await gradcheck(X, X, (g, x, w) => {
    g.int64s('shape', X);
    g.node('Expand', [w('a', [3, 1]), 'shape'], ['e']);
    return g.node('Mul', [x, 'e'], ['y'])[0];
  });
  await gradcheck(X, X, (g, x, w) => {
    g.node('Cast', [w('a', [4])], ['a64'], { to: 11 });
    g.node('Mul', ['a64', 'a64'], ['sq64']);
    g.node('Cast', ['sq64'], ['sq'], { to: 1 });
    return g.node('Mul', [x, 'sq'], ['y'])[0];
  });
});

test('MatMul (batched, broadcasting both ways) and Gemm in all transpose modes', async () => {
  await gradcheck(X, [2, 3, 5], (g, x, w) => g.node('MatMul', [x, w('b', [4, 5])], ['y'])[0]);
  await gradcheck([2, 1, 3, 4], [2, 5, 3, 6], (g, x, w) => {
    g.node('Mul', [x, w('s', [4])], ['xs']);
    return g.node('MatMul', ['xs', w('b', [5, 4, 6])], ['y'])[0];
  });
  await gradcheck(X, [2, 5, 4], (g, x, w) => g.node('MatMul', [w('a', [5, 3]), x], ['y'])[0]);
  for (const [transA, transB] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    await gradcheck([3, 4], [transA ? 4 : 3, 5], (g, x, w) => {
      const k = transA ? 3 : 4;
      g.node('Mul', [x, w('s', [4])], ['xs']);
      return g.node('Gemm', ['xs', w('b', transB ? [5, k] : [k, 5]), w('c', [5])], ['y'], {
        transA, transB, alpha: float(0.7), beta: float(1.3),
      })[0];
    });
  }
});

test('Softmax, LogSoftmax, LayerNormalization, BatchNormalization, reductions', async () => {
  const scaled = (g: GraphBuilder, x: string, w: Weight) => g.node('Mul', [x, w('a', [4])], ['xs'])[0];
  await gradcheck(X, X, (g, x, w) => g.node('Softmax', [scaled(g, x, w)], ['y'], { axis: 1 })[0]);
  await gradcheck(X, X, (g, x, w) => g.node('LogSoftmax', [scaled(g, x, w)], ['y'], { axis: -1 })[0]);
  await gradcheck(X, X, (g, x, w) =>
    g.node('LayerNormalization', [scaled(g, x, w), w('scale', [4], { offset: 1 }), w('bias', [4])], ['y'], { axis: -1, epsilon: float(1e-5) })[0]);
  await gradcheck(X, X, (g, x, w) =>
    g.node('LayerNormalization', [scaled(g, x, w), w('scale', [3, 4], { offset: 1 })], ['y'], { axis: 1 })[0]);
  await gradcheck([2, 3, 5], [2, 3, 5], (g, x, w) => {
    const p = (n: string, offset: number) => w(n, [3], { offset, std: 0.2 });
    return g.node('BatchNormalization', [x, p('scale', 1), p('bias', 0), p('mean', 0), p('var', 1)], ['y'], { epsilon: float(1e-3) })[0];
  });
  await gradcheck(X, [2, 4], (g, x, w) => {
    g.int64s('axes', [1]);
    return g.node('ReduceMean', [scaled(g, x, w), 'axes'], ['y'], { keepdims: 0 })[0];
  });
  await gradcheck(X, [2, 3, 1], (g, x, w) => {
    g.int64s('axes', [-1]);
    g.node('ReduceSum', [scaled(g, x, w), 'axes'], ['r'], { keepdims: 1 });
    return g.node('Mul', ['r', 'r'], ['y'])[0];
  });
  await gradcheck(X, X, (g, x, w) => {
    g.node('ReduceSum', [w('a', [4])], ['total'], { keepdims: 0 });
    return g.node('Mul', [x, 'total'], ['y'])[0];
  });
});

test('shape ops: Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Concat, Split, Slice, Gather', async () => {
  const scaled = (g: GraphBuilder, x: string, w: Weight) => g.node('Mul', [x, w('a', [4])], ['xs'])[0];
  await gradcheck(X, [6, 4], (g, x, w) => {
    g.int64s('shape', [6, 4]);
    return g.node('Reshape', [scaled(g, x, w), 'shape'], ['y'])[0];
  });
  await gradcheck(X, [4, 2, 3], (g, x, w) => g.node('Transpose', [scaled(g, x, w)], ['y'], { perm: [2, 0, 1] })[0]);
  await gradcheck(X, [4, 3, 2], (g, x, w) => g.node('Transpose', [scaled(g, x, w)], ['y'])[0]);
  await gradcheck(X, [2, 3, 4], (g, x, w) => {
    g.int64s('ax', [0]);
    g.node('Unsqueeze', [w('a', [4]), 'ax'], ['u']);
    g.node('Mul', [x, 'u'], ['m']);
    g.int64s('ax2', [1]);
    g.node('Unsqueeze', ['m', 'ax2'], ['m4']);
    return g.node('Squeeze', ['m4', 'ax2'], ['y'])[0];
  });
  await gradcheck(X, [2, 12], (g, x, w) => g.node('Flatten', [scaled(g, x, w)], ['y'], { axis: 1 })[0]);
  await gradcheck(X, [2, 8, 4], (g, x, w) => {
    g.node('Mul', [x, x], ['x2']);
    return g.node('Concat', [scaled(g, x, w), w('c', [2, 2, 4]), 'x2'], ['y'], { axis: 1 })[0];
  });
  await gradcheck([2, 3, 5], [2, 3, 2], (g, x, w) => {
    g.node('Mul', [x, w('a', [5])], ['xs']);
    g.int64s('sizes', [1, 2, 2]);
    g.node('Split', ['xs', 'sizes'], ['s0', 's1', 's2'], { axis: -1 });
    return g.node('Mul', ['s1', 's2'], ['y'])[0];
  });
  await gradcheck([2, 6, 4], [2, 2, 4], (g, x, w) => {
    g.node('Mul', [x, w('a', [4])], ['xs']);
    g.int64s('starts', [-1, 0]);
    g.int64s('ends', [-6, 10]);
    g.int64s('axes', [1, 2]);
    g.int64s('steps', [-3, 1]);
    return g.node('Slice', ['xs', 'starts', 'ends', 'axes', 'steps'], ['y'])[0];
  });
  await gradcheck([2, 2, 4], [2, 2, 4], (g, x, w) => {
    g.initializer('ids', BigInt64Array.from([1n, 3n, 3n, -1n]), [2, 2]);
    g.node('Gather', [w('table', [5, 4]), 'ids'], ['emb'], { axis: 0 });
    return g.node('Mul', [x, 'emb'], ['y'])[0];
  });
  await gradcheck([2, 3], [2, 3], (g, x, w) => {
    g.initializer('col', BigInt64Array.from([2n, 0n, 2n]), [3]);
    g.node('Gather', [w('m', [2, 4]), 'col'], ['picked'], { axis: 1 });
    return g.node('Mul', [x, 'picked'], ['y'])[0];
  });
});

test('Conv (grouped, strided, padded, dilated, 1-D and 2-D) and pooling', async () => {
  // 2-D, groups 2, stride 2 on an odd size (the last rows are not covered), asymmetric pads.
  await gradcheck([2, 4, 7, 6], [2, 6, 4, 3], (g, x, w) =>
    g.node('Conv', [x, w('w', [6, 2, 3, 3]), w('b', [6])], ['y'], { group: 2, strides: [2, 2], pads: [1, 0, 1, 1] })[0]);
  // 1-D depthwise with dilation 2 and stride 2.
  await gradcheck([1, 3, 9], [1, 3, 5], (g, x, w) =>
    g.node('Conv', [x, w('w', [3, 1, 3])], ['y'], { group: 3, strides: [2], pads: [2, 2], dilations: [2] })[0]);
  // Gradient w.r.t. the conv input, through a weight feeding it.
  await gradcheck([1, 2, 5, 5], [1, 3, 5, 5], (g, x, w) => {
    g.node('Mul', [x, w('s', [5])], ['xs']);
    g.initializer('k', randn(3 * 2 * 9, 77, 0.5), [3, 2, 3, 3]);
    return g.node('Conv', ['xs', 'k'], ['y'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] })[0];
  });
  const scaled = (g: GraphBuilder, x: string, w: Weight) => g.node('Mul', [x, w('s', [6])], ['xs'])[0];
  await gradcheck([2, 3, 6, 6], [2, 3, 3, 3], (g, x, w) => g.node('MaxPool', [scaled(g, x, w)], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })[0]);
  await gradcheck([2, 3, 6, 6], [2, 3, 4, 4], (g, x, w) =>
    g.node('AveragePool', [scaled(g, x, w)], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 0, ceil_mode: 1 })[0]);
  await gradcheck([2, 3, 6, 6], [2, 3, 3, 3], (g, x, w) =>
    g.node('AveragePool', [scaled(g, x, w)], ['y'], { kernel_shape: [2, 3], strides: [2, 2], pads: [0, 1, 0, 1], count_include_pad: 1 })[0]);
  await gradcheck([2, 3, 6, 6], [2, 3, 1, 1], (g, x, w) => g.node('GlobalAveragePool', [scaled(g, x, w)], ['y'])[0]);
});
