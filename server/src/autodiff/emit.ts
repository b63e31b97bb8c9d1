// Appends gradient nodes to a graph: fresh value names, cached constants, and the dynamic-shape helpers
// (shape slices, reduce-to-operand-shape) every rule needs. Shapes are read at run time with Shape/Size
// so one gradient model serves every batch size and sequence length the forward model accepts.
import { onnx } from 'onnx-proto';
import { sameShape, type SymShape } from './shapes';

export type Attr = number | readonly number[] | string | { float: number } | { floats: readonly number[] } | { tensor: onnx.ITensorProto };

const AT = onnx.AttributeProto.AttributeType;

function encodeAttr(name: string, v: Attr): onnx.IAttributeProto {
  if (typeof v === 'number') return { name, type: AT.INT, i: v };
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AT.INTS, ints: [...(v as number[])] };
  if ('float' in v) return { name, type: AT.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: AT.FLOATS, floats: [...v.floats] };
  return { name, type: AT.TENSOR, t: (v as { tensor: onnx.ITensorProto }).tensor };
}

const FLOAT = 1;
const INT64 = 7;

export class Emitter {
  readonly nodes: onnx.INodeProto[] = [];
  readonly inits: onnx.ITensorProto[] = [];
  private count = 0;
  private readonly consts = new Map<string, string>();
  private readonly shapeNodes = new Map<string, string>();

  constructor(
    private readonly prefix: string,
    private readonly shapes: ReadonlyMap<string, SymShape> = new Map(),
  ) {}

  /** The inferred shape of a forward value (undefined when unknown or not a forward value). */
  shapeOf(v: string): SymShape {
    return this.shapes.get(v);
  }

  fresh(hint: string): string {
    return `${this.prefix}/${hint}_${this.count++}`;
  }

  /** Adds a node; returns its `outputs` fresh output names. */
  op(type: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const out = Array.from({ length: outputs }, () => this.fresh(type));
    this.nodes.push({
      opType: type,
      domain: '',
      name: this.fresh(`${type}_node`),
      input: [...inputs],
      output: out,
      attribute: Object.entries(attrs).map(([k, v]) => encodeAttr(k, v)),
    });
    return out;
  }

  /** Re-emits a forward node's op with its own attributes on new inputs (e.g. MaxPool again, with indices). */
  replay(node: { op: string; attrs: Map<string, onnx.IAttributeProto> }, inputs: readonly string[], outputs = 1): string[] {
    const out = Array.from({ length: outputs }, () => this.fresh(node.op));
    this.nodes.push({ opType: node.op, domain: '', name: this.fresh(`${node.op}_node`), input: [...inputs], output: out, attribute: [...node.attrs.values()] });
    return out;
  }

  one(type: string, inputs: readonly string[], attrs: Record<string, Attr> = {}): string {
    return this.op(type, inputs, attrs)[0];
  }

  /** A 1-D int64 constant (axes, shapes, pads). */
  ints(values: readonly number[]): string {
    return this.constant(`i[${values.join(',')}]`, INT64, [values.length], BigInt64Array.from(values, BigInt));
  }

  /** A scalar int64 constant. */
  int(value: number): string {
    return this.constant(`i${value}`, INT64, [], BigInt64Array.of(BigInt(value)));
  }

  /** A 1-D float32 constant. */
  floats(values: readonly number[]): string {
    return this.constant(`f[${values.join(',')}]`, FLOAT, [values.length], Float32Array.from(values));
  }

  /** A scalar float32 constant. */
  scalar(value: number): string {
    return this.constant(`f${value}`, FLOAT, [], Float32Array.of(value));
  }

  private constant(key: string, dataType: number, dims: number[], data: BigInt64Array | Float32Array): string {
    let name = this.consts.get(key);
    if (name === undefined) {
      name = this.fresh('const');
      this.inits.push({ name, dataType, dims, rawData: new Uint8Array(data.buffer.slice(0)) });
      this.consts.set(key, name);
    }
    return name;
  }

  /** A float32 tensor of ones with fixed dims (pooling kernels). */
  ones(dims: readonly number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    return this.constant(`ones[${dims.join(',')}]`, FLOAT, [...dims], new Float32Array(n).fill(1));
  }

  shape(x: string): string {
    let s = this.shapeNodes.get(x);
    if (s === undefined) {
      s = this.one('Shape', [x]);
      this.shapeNodes.set(x, s);
    }
    return s;
  }

  /** Shape(x)[start:end] as a 1-D int64 tensor. */
  shapeSlice(x: string, start: number, end?: number): string {
    return this.one('Shape', [x], end === undefined ? { start } : { start, end });
  }

  /** Number of elements of x as a float32 scalar. */
  sizeF(x: string): string {
    return this.one('Cast', [this.one('Size', [x])], { to: FLOAT });
  }

  add(a: string, b: string): string {
    return this.one('Add', [a, b]);
  }

  mul(a: string, b: string): string {
    return this.one('Mul', [a, b]);
  }

  neg(a: string): string {
    return this.one('Neg', [a]);
  }

  zerosLike(x: string): string {
    return this.one('ConstantOfShape', [this.shape(x)]);
  }

  /** Where(cond, g, 0). */
  mask(cond: string, g: string): string {
    return this.one('Where', [cond, g, this.scalar(0)]);
  }

  reshapeLike(g: string, x: string): string {
    return this.one('Reshape', [g, this.shape(x)]);
  }

  /**
   * Sums a broadcast result gradient `g` (of inferred shape `gShape`) back to the shape of operand `x`. Nothing
   * to do when the shapes are provably equal; fixed axes when x's dims are known; otherwise at run time: left-pad
   * Shape(x) with ones to g's rank, sum every axis where the padded shape is 1 (none: a no-op), reshape.
   */
  unbroadcast(g: string, x: string, gShape: SymShape): string {
    const xs = this.shapes.get(x);
    if (sameShape(xs, gShape)) return g;
    if (xs !== undefined && gShape !== undefined && xs.every((d) => typeof d === 'number') && gShape.length >= xs.length) {
      const lead = gShape.length - xs.length;
      const axes = gShape.flatMap((d, i) => (i < lead || (xs[i - lead] === 1 && d !== 1) ? [i] : []));
      if (axes.length === 0 && lead === 0) return g;
      const summed = axes.length === 0 ? g : this.one('ReduceSum', [g, this.ints(axes)], { keepdims: 1 });
      return this.one('Reshape', [summed, this.ints(xs as number[])]);
    }
    const sx = this.shape(x);
    const rankDiff = this.one('Sub', [this.one('Shape', [this.shape(g)]), this.one('Shape', [sx])]);
    const ones = this.one('ConstantOfShape', [rankDiff], { value: { tensor: { dataType: INT64, dims: [1], rawData: new Uint8Array(BigInt64Array.of(1n).buffer) } } });
    const padded = this.one('Concat', [ones, sx], { axis: 0 });
    const axes = this.one('Reshape', [this.one('NonZero', [this.one('Equal', [padded, this.ints([1])])]), this.ints([-1])]);
    const summed = this.one('ReduceSum', [g, axes], { keepdims: 1, noop_with_empty_axes: 1 });
    return this.one('Reshape', [summed, sx]);
  }

  /** Reshapes a per-channel vector v[C] to [C, 1, …] so it broadcasts against x[N, C, …]. */
  channelView(v: string, x: string): string {
    const tail = this.one('Sub', [this.one('Shape', [this.shape(x)]), this.ints([2])]);
    const ones = this.one('ConstantOfShape', [tail], { value: { tensor: { dataType: INT64, dims: [1], rawData: new Uint8Array(BigInt64Array.of(1n).buffer) } } });
    return this.one('Reshape', [v, this.one('Concat', [this.ints([-1]), ones], { axis: 0 })]);
  }
}
