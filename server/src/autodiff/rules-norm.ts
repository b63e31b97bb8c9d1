// Gradient rules of normalizations and reductions (opset 18+ semantics: axes are an input).
import type { Emitter } from './emit';
import { attrFloat, attrInt, unsupported, type Rule } from './rule';

// y = softmax(x): dx = y ⊙ (dy − Σ_axis dy ⊙ y).
const softmax: Rule = ({ e, node, dY }) => {
  const y = node.outputs[0];
  const g = dY[0]!;
  const s = e.one('ReduceSum', [e.mul(g, y), e.ints([attrInt(node, 'axis', -1)])], { keepdims: 1 });
  return [e.mul(y, e.one('Sub', [g, s]))];
};

// y = log softmax(x): dx = dy − exp(y) ⊙ Σ_axis dy.
const logSoftmax: Rule = ({ e, node, dY }) => {
  const g = dY[0]!;
  const s = e.one('ReduceSum', [g, e.ints([attrInt(node, 'axis', -1)])], { keepdims: 1 });
  return [e.one('Sub', [g, e.mul(e.one('Exp', [node.outputs[0]]), s)])];
};

/** Broadcasts a reduced gradient back over the reduced axes of x. */
function spread(e: Emitter, g: string, x: string, axes: string | undefined, keepdims: number): string {
  const kept = keepdims === 0 && axes ? e.one('Unsqueeze', [g, axes]) : g;
  return e.one('Expand', [kept, e.shape(x)]);
}

function reduce(mean: boolean): Rule {
  return ({ e, node, dY }) => {
    const [x, axes] = node.inputs;
    if (!axes && attrInt(node, 'noop_with_empty_axes', 0) === 1) return [dY[0]];
    const g = spread(e, dY[0]!, x, axes || undefined, attrInt(node, 'keepdims', 1));
    return [mean ? e.one('Div', [g, e.one('Div', [e.sizeF(x), e.sizeF(node.outputs[0])])]) : g, undefined];
  };
}

// LayerNormalization over axes [axis, rank): with x̂ = (x − μ)/σ and h = dy ⊙ scale,
// dx = (h − mean(h) − x̂ ⊙ mean(h ⊙ x̂)) / σ, dscale = Σ dy ⊙ x̂, dbias = Σ dy.
const layerNorm: Rule = ({ e, node, dY, need }) => {
  const [x, scale, bias] = node.inputs;
  if (attrInt(node, 'stash_type', 1) !== 1) throw unsupported(node, 'has stash_type other than float32');
  const axis = attrInt(node, 'axis', -1);
  const axes = e.one('Range', [e.int(axis), axis < 0 ? e.int(0) : e.one('Size', [e.shape(x)]), e.int(1)]);
  const mean = (v: string) => e.one('ReduceMean', [v, axes], { keepdims: 1 });
  const xc = e.one('Sub', [x, mean(x)]);
  const inv = e.one('Reciprocal', [e.one('Sqrt', [e.add(mean(e.mul(xc, xc)), e.scalar(attrFloat(node, 'epsilon', 1e-5)))])]);
  const xhat = e.mul(xc, inv);
  const g = dY[0]!;
  let gx: string | undefined;
  if (need[0]) {
    const h = e.mul(g, scale);
    gx = e.mul(inv, e.one('Sub', [e.one('Sub', [h, mean(h)]), e.mul(xhat, mean(e.mul(h, xhat)))]));
  }
  const y = e.shapeOf(node.outputs[0]);
  return [gx, need[1] ? e.unbroadcast(e.mul(g, xhat), scale, y) : undefined, need[2] && bias ? e.unbroadcast(g, bias, y) : undefined];
};

// Inference-mode BatchNormalization y = (x − mean)·s + bias with s = scale/√(var + ε), per channel (axis 1).
const batchNorm: Rule = ({ e, node, dY, need }) => {
  if (attrInt(node, 'training_mode', 0) !== 0) throw unsupported(node, 'runs in training mode');
  const [x, scale, , mu, variance] = node.inputs;
  const g = dY[0]!;
  const ch = (v: string) => e.channelView(v, x);
  const inv = e.one('Reciprocal', [e.one('Sqrt', [e.add(variance, e.scalar(attrFloat(node, 'epsilon', 1e-5)))])]);
  const rank = e.shapeOf(x)?.length;
  // Sum over every axis but the channel axis 1 (fixed axes when the rank is known).
  const perChannel = (v: string) =>
    rank !== undefined
      ? e.one('ReduceSum', [v, e.ints([0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)])], { keepdims: 0 })
      : e.one('Reshape', [e.unbroadcast(v, ch(scale), undefined), e.shape(scale)]);
  const xc = e.one('Sub', [x, ch(mu)]);
  const sumG = need[2] || need[3] ? perChannel(g) : undefined;
  const sumGxc = need[1] || need[4] ? perChannel(e.mul(g, xc)) : undefined;
  return [
    need[0] ? e.mul(g, ch(e.mul(scale, inv))) : undefined,
    need[1] ? e.mul(sumGxc!, inv) : undefined,
    need[2] ? sumG : undefined,
    need[3] ? e.neg(e.mul(sumG!, e.mul(scale, inv))) : undefined,
    // d/dvar of (x−mean)·scale·(var+ε)^(−1/2) = −½·(x−mean)·scale·inv³
    need[4] ? e.mul(sumGxc!, e.mul(scale, e.mul(e.scalar(-0.5), e.mul(inv, e.mul(inv, inv))))) : undefined,
  ];
};

export const NORM_RULES: Record<string, Rule> = {
  Softmax: softmax, LogSoftmax: logSoftmax, LayerNormalization: layerNorm, BatchNormalization: batchNorm,
  ReduceMean: reduce(true), ReduceSum: reduce(false),
};
