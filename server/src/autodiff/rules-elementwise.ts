// Gradient rules of element-wise ops. Binary ops broadcast (numpy rules), so each operand's gradient is
// summed back to its own shape.
import { attrFloat, attrString, unsupported, type Rule } from './rule';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const BOOL = 9;

const add: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  return [need[0] ? e.unbroadcast(dY[0]!, a, e.shapeOf(node.outputs[0])) : undefined, need[1] ? e.unbroadcast(dY[0]!, b, e.shapeOf(node.outputs[0])) : undefined];
};

const sub: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  return [need[0] ? e.unbroadcast(dY[0]!, a, e.shapeOf(node.outputs[0])) : undefined, need[1] ? e.unbroadcast(e.neg(dY[0]!), b, e.shapeOf(node.outputs[0])) : undefined];
};

const mul: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  const g = dY[0]!;
  const out = e.shapeOf(node.outputs[0]);
  return [need[0] ? e.unbroadcast(e.mul(g, b), a, out) : undefined, need[1] ? e.unbroadcast(e.mul(g, a), b, out) : undefined];
};

// y = a / b: dy/da = 1/b, dy/db = −y/b.
const div: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  const g = dY[0]!;
  const ga = need[0] ? e.unbroadcast(e.one('Div', [g, b]), a, e.shapeOf(node.outputs[0])) : undefined;
  const gb = need[1] ? e.unbroadcast(e.neg(e.one('Div', [e.mul(g, node.outputs[0]), b])), b, e.shapeOf(node.outputs[0])) : undefined;
  return [ga, gb];
};

// y = a^b: dy/da = b·a^(b−1), dy/db = y·ln a.
const pow: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  const g = dY[0]!;
  let ga: string | undefined;
  if (need[0]) {
    const bf = e.one('CastLike', [b, a]);
    const d = e.mul(bf, e.one('Pow', [a, e.one('Sub', [bf, e.scalar(1)])]));
    ga = e.unbroadcast(e.mul(g, d), a, e.shapeOf(node.outputs[0]));
  }
  const gb = need[1] ? e.unbroadcast(e.mul(g, e.mul(node.outputs[0], e.one('Log', [a]))), b, e.shapeOf(node.outputs[0])) : undefined;
  return [ga, gb];
};

/** Rules of unary ops y = f(x) as dx = dy · f'(x, y). */
function unary(deriv: (e: Parameters<Rule>[0]['e'], x: string, y: string, n: Parameters<Rule>[0]['node']) => string): Rule {
  return ({ e, node, dY }) => [e.mul(dY[0]!, deriv(e, node.inputs[0], node.outputs[0], node))];
}

const neg: Rule = ({ e, dY }) => [e.neg(dY[0]!)];
const sqrt = unary((e, _x, y) => e.one('Div', [e.scalar(0.5), y]));
const exp = unary((_e, _x, y) => y);
const log = unary((e, x) => e.one('Reciprocal', [x]));
const reciprocal = unary((e, _x, y) => e.neg(e.mul(y, y)));
const sigmoid = unary((e, _x, y) => e.mul(y, e.one('Sub', [e.scalar(1), y])));
const tanh = unary((e, _x, y) => e.one('Sub', [e.scalar(1), e.mul(y, y)]));
const erf = unary((e, x) => e.mul(e.scalar(2 / Math.sqrt(Math.PI)), e.one('Exp', [e.neg(e.mul(x, x))])));

const relu: Rule = ({ e, node, dY }) => [e.mask(e.one('Greater', [node.inputs[0], e.scalar(0)]), dY[0]!)];

const leakyRelu: Rule = ({ e, node, dY }) => {
  const alpha = attrFloat(node, 'alpha', 0.01);
  const g = dY[0]!;
  return [e.one('Where', [e.one('Greater', [node.inputs[0], e.scalar(0)]), g, e.mul(g, e.scalar(alpha))])];
};

// gelu(x) = x·Φ(x): d/dx = Φ(x) + x·φ(x); the tanh form differentiates its own approximation.
const gelu = unary((e, x, _y, node) => {
  const approx = attrString(node, 'approximate', 'none');
  if (approx === 'tanh') {
    const x2 = e.mul(x, x);
    const inner = e.mul(e.scalar(SQRT_2_OVER_PI), e.mul(x, e.add(e.scalar(1), e.mul(e.scalar(0.044715), x2))));
    const t = e.one('Tanh', [inner]);
    const dInner = e.mul(e.scalar(SQRT_2_OVER_PI), e.add(e.scalar(1), e.mul(e.scalar(3 * 0.044715), x2)));
    const sech2 = e.one('Sub', [e.scalar(1), e.mul(t, t)]);
    return e.add(e.mul(e.scalar(0.5), e.add(e.scalar(1), t)), e.mul(e.scalar(0.5), e.mul(x, e.mul(sech2, dInner))));
  }
  if (approx !== 'none') throw unsupported(node, `has approximate='${approx}'`);
  const cdf = e.mul(e.scalar(0.5), e.add(e.scalar(1), e.one('Erf', [e.mul(x, e.scalar(Math.SQRT1_2))])));
  const pdf = e.mul(e.scalar(INV_SQRT_2PI), e.one('Exp', [e.mul(e.scalar(-0.5), e.mul(x, x))]));
  return e.add(cdf, e.mul(x, pdf));
});

// Clip passes the gradient where min ≤ x ≤ max (omitted bounds are open).
const clip: Rule = ({ e, node, dY }) => {
  const [x, lo, hi] = node.inputs;
  let cond: string | undefined;
  if (lo) cond = e.one('GreaterOrEqual', [x, lo]);
  if (hi) {
    const c = e.one('LessOrEqual', [x, hi]);
    cond = cond === undefined ? c : e.one('And', [cond, c]);
  }
  return [cond === undefined ? dY[0] : e.mask(cond, dY[0]!)];
};

// y = max(0, min(1, αx+β)): slope α inside (0, 1), 0 on the flat parts.
const hardSigmoid: Rule = ({ e, node, dY }) => {
  const y = node.outputs[0];
  const inside = e.one('And', [e.one('Greater', [y, e.scalar(0)]), e.one('Less', [y, e.scalar(1)])]);
  return [e.mask(inside, e.mul(dY[0]!, e.scalar(attrFloat(node, 'alpha', 0.2))))];
};

// y = x·hardsigmoid(x; 1/6, 1/2): slope 0 below −3, x/3 + 1/2 on (−3, 3), 1 above 3.
const hardSwish: Rule = ({ e, node, dY }) => {
  const x = node.inputs[0];
  const mid = e.add(e.mul(x, e.scalar(1 / 3)), e.scalar(0.5));
  const slope = e.one('Where', [e.one('Less', [x, e.scalar(-3)]), e.scalar(0), e.one('Where', [e.one('Greater', [x, e.scalar(3)]), e.scalar(1), mid])]);
  return [e.mul(dY[0]!, slope)];
};

const where: Rule = ({ e, node, dY, need }) => {
  const [c, a, b] = node.inputs;
  const g = dY[0]!;
  const z = e.scalar(0);
  return [
    undefined,
    need[1] ? e.unbroadcast(e.one('Where', [c, g, z]), a, e.shapeOf(node.outputs[0])) : undefined,
    need[2] ? e.unbroadcast(e.one('Where', [c, z, g]), b, e.shapeOf(node.outputs[0])) : undefined,
  ];
};

// Binary Max/Min: the gradient goes to the operand that was selected (ties to the first).
function extremum(cmp: 'GreaterOrEqual' | 'LessOrEqual'): Rule {
  return ({ e, node, dY, need }) => {
    if (node.inputs.length !== 2) throw unsupported(node, `has ${node.inputs.length} inputs (the rule covers 2)`);
    const [a, b] = node.inputs;
    const first = e.one('Cast', [e.one(cmp, [a, b])], { to: BOOL });
    const g = dY[0]!;
    const z = e.scalar(0);
    return [
      need[0] ? e.unbroadcast(e.one('Where', [first, g, z]), a, e.shapeOf(node.outputs[0])) : undefined,
      need[1] ? e.unbroadcast(e.one('Where', [first, z, g]), b, e.shapeOf(node.outputs[0])) : undefined,
    ];
  };
}

export const ELEMENTWISE_RULES: Record<string, Rule> = {
  Add: add, Sub: sub, Mul: mul, Div: div, Pow: pow, Neg: neg, Sqrt: sqrt, Exp: exp, Log: log, Reciprocal: reciprocal,
  Relu: relu, LeakyRelu: leakyRelu, Sigmoid: sigmoid, Tanh: tanh, Erf: erf, Gelu: gelu,
  Clip: clip, HardSigmoid: hardSigmoid, HardSwish: hardSwish, Where: where,
  Max: extremum('GreaterOrEqual'), Min: extremum('LessOrEqual'),
};
