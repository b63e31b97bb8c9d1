// A small typed builder for ONNX compute graphs over onnx-proto: inputs/outputs with symbolic dims,
// initializers from typed arrays, nodes with typed attributes, opset imports per domain.
import { onnx } from 'onnx-proto';

/** Default `ai.onnx` opset (onnxruntime-node 1.30 loads 21–24) and the IR version that goes with it. */
export const DEFAULT_OPSET = 21;
const IR_VERSION = 10;
export const MS_DOMAIN = 'com.microsoft';

/** ONNX TensorProto.DataType codes (onnx-proto's enum predates the 4-bit and 8-bit float types). */
export const DTYPES = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9,
  float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16, float8e4m3fn: 17, float8e5m2: 19, uint4: 21, int4: 22,
} as const;
export type DType = keyof typeof DTYPES;

/** A dimension: a fixed size or a symbolic name shared by every tensor that uses it. */
export type Dim = number | string;

/** Float attributes must be marked (a JS number is ambiguous); plain numbers are INT attributes. */
export interface FloatAttr { readonly float: number }
export interface FloatsAttr { readonly floats: readonly number[] }
export const float = (x: number): FloatAttr => ({ float: x });
export const floats = (xs: readonly number[]): FloatsAttr => ({ floats: xs });
export type AttrValue = number | readonly number[] | string | readonly string[] | FloatAttr | FloatsAttr | onnx.ITensorProto;

type InitData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array;
const INIT_DTYPE = new Map<string, DType>([
  ['Float32Array', 'float32'], ['Float64Array', 'float64'], ['Int32Array', 'int32'], ['BigInt64Array', 'int64'],
  ['Uint8Array', 'uint8'], ['Int8Array', 'int8'], ['Uint16Array', 'uint16'],
]);
/** Array types that may carry another dtype's bits: fp16/bf16 in Uint16Array, fp8 and packed 4-bit in Uint8Array. */
const REINTERPRET: Partial<Record<DType, string>> = {
  float16: 'Uint16Array', bfloat16: 'Uint16Array', float8e4m3fn: 'Uint8Array', float8e5m2: 'Uint8Array', uint4: 'Uint8Array', int4: 'Uint8Array',
};

function valueInfo(name: string, dtype: DType, dims: readonly Dim[]): onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: DTYPES[dtype], shape: { dim } } } };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer (wrap floats in float())`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) return { name, type: T.STRINGS, strings: v.map((s: string) => new TextEncoder().encode(s)) };
    if (!v.every((x) => Number.isSafeInteger(x))) throw new Error(`attribute ${name}: not all integers (wrap floats in floats())`);
    return { name, type: T.INTS, ints: [...v] };
  }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: [...v.floats] };
  return { name, type: T.TENSOR, t: v as onnx.ITensorProto };
}

export class GraphBuilder {
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly inits: onnx.ITensorProto[] = [];
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly opsets = new Map<string, number>();
  private readonly names = new Set<string>();

  constructor(
    private readonly name = 'quantlens',
    opset = DEFAULT_OPSET,
  ) {
    this.opsets.set('', opset);
  }

  /** Imports `domain` (e.g. com.microsoft, version 1); nodes of that domain do it implicitly. */
  useDomain(domain: string, version = 1): this {
    if (!this.opsets.has(domain)) this.opsets.set(domain, version);
    return this;
  }

  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), dtype, dims));
    return name;
  }

  /** Declares an existing value (a node output or input) as a graph output. */
  output(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /**
   * A constant tensor stored in the model (little-endian raw bytes, as ONNX requires). The dtype
   * follows the array type unless `as` names one whose bits it carries (4-bit: two per byte, low nibble first).
   */
  initializer(name: string, data: InitData, dims: readonly number[], as?: DType): string {
    const kind = data.constructor.name;
    const dtype = as ?? INIT_DTYPE.get(kind);
    if (dtype === undefined || (as !== undefined && REINTERPRET[as] !== kind && INIT_DTYPE.get(kind) !== as)) {
      throw new Error(`initializer ${name}: cannot store ${kind} as ${as ?? 'an ONNX tensor'}`);
    }
    const count = dims.reduce((a, b) => a * b, 1);
    const stored = dtype === 'int4' || dtype === 'uint4' ? Math.ceil(count / 2) : count;
    if (stored !== data.length) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(', ')}] of ${dtype}`);
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.inits.push({ name: this.claim(name), dataType: DTYPES[dtype], dims: [...dims], rawData });
    return name;
  }

  /** An int64 vector initializer (axes, shapes, split sizes: inputs since opset 13/18). */
  int64s(name: string, values: readonly number[]): string {
    return this.initializer(name, BigInt64Array.from(values, (v) => BigInt(v)), [values.length]);
  }

  /** Adds a node; returns its output names. */
  node(op: string, inputs: readonly string[], outputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    if (domain !== '') this.useDomain(domain);
    for (const o of outputs) this.claim(o);
    this.nodes.push({
      opType: op,
      domain,
      name: `${op}_${this.nodes.length}`,
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return [...outputs];
  }

  model(): onnx.ModelProto {
    return onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'quantlens',
      opsetImport: [...this.opsets].map(([domain, version]) => ({ domain, version })),
      graph: { name: this.name, input: this.inputs, output: this.outputs, initializer: this.inits, node: this.nodes },
    });
  }

  build(): Uint8Array {
    return onnx.ModelProto.encode(this.model()).finish();
  }

  /** Value names are single-assignment in ONNX: a duplicate is a builder bug, caught here rather than by ORT. */
  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: value '${name}' is defined twice`);
    this.names.add(name);
    return name;
  }
}
