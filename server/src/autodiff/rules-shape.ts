// Gradient rules of ops that move values without changing them: reshapes, transposes, concatenation and
// the selecting ops (Split, Slice, Gather), whose gradients scatter back through a flat index map.
import type { Emitter } from './emit';
import { attrInt, attrInts, type Rule } from './rule';

const reshapeBack: Rule = ({ e, node, dY }) => [e.reshapeLike(dY[0]!, node.inputs[0])];

// Float→float casts only (integer casts are cut in the path analysis): cast the gradient back.
const cast: Rule = ({ e, node, dY }) => [e.one('CastLike', [dY[0]!, node.inputs[0]])];

const identity: Rule = ({ dY }) => [dY[0]];

const transpose: Rule = ({ e, node, dY }) => {
  const perm = attrInts(node, 'perm');
  if (perm === undefined) return [e.one('Transpose', [dY[0]!])]; // reversing the axes is its own inverse
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return [e.one('Transpose', [dY[0]!], { perm: inv })];
};

const expand: Rule = ({ e, node, dY }) => [e.unbroadcast(dY[0]!, node.inputs[0], e.shapeOf(node.outputs[0]))];

// Concat: split the gradient at the input sizes along the axis.
const concat: Rule = ({ e, node, dY, need }) => {
  const axis = attrInt(node, 'axis', 0);
  const sizes = node.inputs.map((x) => e.one('Gather', [e.shape(x), e.ints([axis])], { axis: 0 }));
  const parts = e.op('Split', [dY[0]!, e.one('Concat', sizes, { axis: 0 })], { axis }, node.inputs.length);
  return parts.map((p, i) => (need[i] ? p : undefined));
};

// Split: concatenate the output gradients, zeros for outputs no gradient reached.
const split: Rule = ({ e, node, dY }) => {
  const parts = node.outputs.map((y, i) => dY[i] ?? e.zerosLike(y));
  return [e.one('Concat', parts, { axis: attrInt(node, 'axis', 0) })];
};

/** Flat element positions of x arranged in x's shape (int64), for selecting ops to replay on. */
function positions(e: Emitter, x: string): string {
  return e.one('Reshape', [e.one('Range', [e.int(0), e.one('Size', [x]), e.int(1)]), e.shape(x)]);
}

/** Adds g's values into a zero tensor shaped like x at the flat positions `at` (repeats accumulate). */
export function scatterAdd(e: Emitter, x: string, at: string, g: string): string {
  const zeros = e.one('ConstantOfShape', [e.one('Reshape', [e.one('Size', [x]), e.ints([1])])]);
  const flat = e.one('ScatterElements', [zeros, e.one('Reshape', [at, e.ints([-1])]), e.one('Reshape', [g, e.ints([-1])])], {
    axis: 0,
    reduction: 'add',
  });
  return e.reshapeLike(flat, x);
}

// Slice and Gather select elements: replay the op on the position map, scatter the gradient there.
const slice: Rule = ({ e, node, dY }) => {
  const x = node.inputs[0];
  return [scatterAdd(e, x, e.one('Slice', [positions(e, x), ...node.inputs.slice(1)]), dY[0]!)];
};

const gather: Rule = ({ e, node, dY }) => {
  const x = node.inputs[0];
  const at = e.one('Gather', [positions(e, x), node.inputs[1]], { axis: attrInt(node, 'axis', 0) });
  return [scatterAdd(e, x, at, dY[0]!), undefined];
};

export const SHAPE_RULES: Record<string, Rule> = {
  Reshape: reshapeBack, Flatten: reshapeBack, Squeeze: reshapeBack, Unsqueeze: reshapeBack,
  Identity: identity, Dropout: identity, Cast: cast, Transpose: transpose, Expand: expand,
  Concat: concat, Split: split, Slice: slice, Gather: gather,
};
