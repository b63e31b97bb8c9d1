// Symbolic shape inference for the forward graph, so the backward pass can skip reducing a gradient back to
// an operand's shape when the shapes are provably equal, or do it with fixed axes. A dim is a number (known),
// or a token string: two equal tokens are provably the same size; a fresh token is a size nothing is known about.
// Unknown shapes (undefined) are always safe: the emitter then reduces with shapes read at run time.
import type { NodeView } from './rule';
import { attrInt, attrInts } from './rule';

export type SymDim = number | string;
export type SymShape = SymDim[] | undefined;

const SAME_SHAPE = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Erf', 'Gelu', 'Exp', 'Log', 'Sqrt', 'Neg', 'Reciprocal', 'Abs', 'Identity', 'Dropout',
  'Cast', 'CastLike', 'Clip', 'HardSigmoid', 'HardSwish', 'Softmax', 'LogSoftmax', 'LayerNormalization', 'BatchNormalization',
  'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Where', 'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or']);

export function sameShape(a: SymShape, b: SymShape): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
}

export function inferShapes(nodes: readonly NodeView[], known: Map<string, SymShape>, ints: Map<string, number[]>): Map<string, SymShape> {
  const shapes = new Map(known);
  let count = 0;
  const fresh = (): string => `?${count++}`;
  const of = (v: string) => shapes.get(v);

  const broadcast = (parts: SymShape[]): SymShape => {
    if (parts.some((p) => p === undefined)) return undefined;
    const rank = Math.max(...parts.map((p) => p!.length));
    const out: SymDim[] = [];
    for (let i = 0; i < rank; i++) {
      const dims = parts.map((p) => p![p!.length - rank + i]).filter((d) => d !== undefined && d !== 1);
      const uniq = [...new Set(dims)];
      const num = uniq.filter((d) => typeof d === 'number');
      if (uniq.length === 0) out.push(1);
      else if (uniq.length === 1) out.push(uniq[0]);
      else if (num.length === 1) out.push(num[0]); // a token broadcast against n is 1 or n: the result is n
      else out.push(fresh());
    }
    return out;
  };

  const pooled = (n: NodeView, x: SymShape, channels: SymDim, kernel?: SymDim[]): SymShape => {
    if (x === undefined) return undefined;
    const k = attrInts(n, 'kernel_shape') ?? (kernel?.every((d) => typeof d === 'number') ? (kernel as number[]) : undefined);
    const r = x.length - 2;
    const strides = attrInts(n, 'strides') ?? new Array<number>(r).fill(1);
    const dil = attrInts(n, 'dilations') ?? new Array<number>(r).fill(1);
    const pads = attrInts(n, 'pads') ?? new Array<number>(2 * r).fill(0);
    const auto = n.attrs.get('auto_pad')?.s;
    const ceil = attrInt(n, 'ceil_mode', 0) === 1;
    const spatial = x.slice(2).map((L, i) => {
      if (typeof L !== 'number' || k === undefined || (auto && auto.length > 0 && new TextDecoder().decode(auto) !== 'NOTSET')) return fresh();
      const span = L + pads[i] + pads[i + r] - ((k[i] - 1) * dil[i] + 1);
      return (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
    });
    return [x[0], channels, ...spatial];
  };

  for (const n of nodes) {
    const x = of(n.inputs[0]);
    let out: SymShape[] = [];
    if (SAME_SHAPE.has(n.op)) out = [x];
    else if (BROADCAST.has(n.op)) out = [broadcast(n.inputs.map(of))];
    else if (n.op === 'MatMul') {
      const b = of(n.inputs[1]);
      if (x && b && x.length >= 2 && b.length >= 2) {
        const batch = broadcast([x.slice(0, -2), b.slice(0, -2)]);
        out = [batch && [...batch, x[x.length - 2], b[b.length - 1]]];
      }
    } else if (n.op === 'Gemm') {
      const b = of(n.inputs[1]);
      if (x && b) out = [[x[attrInt(n, 'transA', 0)], b[1 - attrInt(n, 'transB', 0)]]];
    } else if (n.op === 'Conv') {
      const w = of(n.inputs[1]);
      if (w) out = [pooled(n, x, w[0], w.slice(2))];
    } else if (n.op === 'MaxPool' || n.op === 'AveragePool') {
      out = [pooled(n, x, x?.[1] ?? fresh())];
    } else if (n.op === 'GlobalAveragePool' || n.op === 'GlobalMaxPool') {
      out = [x && [x[0], x[1], ...x.slice(2).map(() => 1)]];
    } else if (n.op === 'Transpose') {
      const perm = attrInts(n, 'perm');
      out = [x && (perm ? perm.map((p) => x[p]) : [...x].reverse())];
    } else if (n.op === 'Reshape') {
      const target = ints.get(n.inputs[1]);
      const len = of(n.inputs[1])?.[0];
      if (target) out = [target.map((d, i) => (d === 0 && attrInt(n, 'allowzero', 0) === 0 ? (x?.[i] ?? fresh()) : d === -1 ? fresh() : d))];
      else if (typeof len === 'number') out = [Array.from({ length: len }, fresh)];
    } else if (n.op === 'Unsqueeze' || n.op === 'Squeeze') {
      const axes = ints.get(n.inputs[1]);
      if (x && axes) {
        if (n.op === 'Squeeze') {
          const norm = axes.map((a) => (a < 0 ? a + x.length : a));
          out = [x.filter((_, i) => !norm.includes(i))];
        } else {
          const rank = x.length + axes.length;
          const norm = axes.map((a) => (a < 0 ? a + rank : a));
          const rest = [...x];
          out = [Array.from({ length: rank }, (_, i) => (norm.includes(i) ? 1 : rest.shift()!))];
        }
      }
    } else if (n.op === 'Shape') {
      out = [x && [n.attrs.size === 0 ? x.length : fresh()]];
    } else if (n.op === 'Size') out = [[]];
    else if (n.op === 'ReduceMean' || n.op === 'ReduceSum' || n.op === 'ReduceMax') {
      const axes = n.inputs[1] ? ints.get(n.inputs[1]) : undefined;
      if (x && axes) {
        const norm = axes.map((a) => (a < 0 ? a + x.length : a));
        const keep = attrInt(n, 'keepdims', 1) === 1;
        out = [x.flatMap((d, i) => (norm.includes(i) ? (keep ? [1] : []) : [d]))];
      }
    } else if (n.op === 'Slice') {
      const axes = n.inputs[3] ? ints.get(n.inputs[3]) : undefined;
      if (x && (axes || !n.inputs[3])) {
        const norm = (axes ?? x.map((_, i) => i)).map((a) => (a < 0 ? a + x.length : a));
        const [starts, ends, steps] = [ints.get(n.inputs[1]), ints.get(n.inputs[2]), n.inputs[4] ? ints.get(n.inputs[4]) : norm.map(() => 1)];
        out = [x.map((d, i) => {
          const k = norm.indexOf(i);
          if (k < 0) return d;
          return typeof d === 'number' && starts && ends && steps ? sliceLength(d, starts[k], ends[k], steps[k]) : fresh();
        })];
      }
    } else if (n.op === 'Concat' || n.op === 'Split') {
      const axis = attrInt(n, 'axis', 0);
      const a = x && (axis < 0 ? axis + x.length : axis);
      const cut = (s: SymShape) => s && s.map((d, i) => (i === a ? fresh() : d));
      const parts = n.inputs.map(of);
      const sizes = parts.map((p) => p?.[a ?? -1]);
      const total = sizes.every((d) => typeof d === 'number') ? (sizes as number[]).reduce((u, v) => u + v, 0) : undefined;
      out = n.op === 'Concat' ? [total !== undefined && x ? x.map((d, i) => (i === a ? total : d)) : cut(x)] : n.outputs.map(() => cut(x));
    } else if (n.op === 'Flatten') out = [x && [fresh(), fresh()]];
    // Constant outputs (and other values fixed in the model) keep their known shapes.
    for (let i = 0; i < n.outputs.length; i++) if (out[i] !== undefined || !shapes.has(n.outputs[i])) shapes.set(n.outputs[i], out[i]);
  }
  return shapes;
}

/** Elements a Slice keeps along one axis of length L (ONNX clamping rules). */
function sliceLength(L: number, start: number, end: number, step: number): number {
  const s0 = start < 0 ? start + L : start;
  const e0 = end < 0 ? end + L : end;
  if (step > 0) {
    const s = Math.min(Math.max(s0, 0), L);
    const e = Math.min(Math.max(e0, 0), L);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  const s = Math.min(Math.max(s0, -1), L - 1);
  const e = Math.min(Math.max(e0, -1), L - 1);
  return Math.max(0, Math.ceil((s - e) / -step));
}
