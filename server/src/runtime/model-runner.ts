// Runs an ONNX model on onnxruntime with any of its analyzable weights replaced at run time.
//
// The model is decoded once. Every analyzable weight (MatMul B, Gemm B, Conv W in the main graph, held in an
// initializer or a Constant node, float32/float16/float64) is moved out of the graph and declared as a graph
// input, and the runner feeds it on every run: its own values by default, or an override. So ONE session
// serves the unperturbed model and every perturbation. (An initializer that is also a graph input is not
// enough: onnxruntime-node feeds only the session's true inputs and silently ignores the rest — verified.)
// External data of main-graph tensors is read (inside the model folder, bounds-checked) and inlined, because a
// session created from bytes cannot resolve relative paths; the rewritten model must stay under protobuf's
// 2 GiB, and external data inside subgraphs is refused. The file on disk is never modified.
// Memory: one decoded copy of the analyzable weights (in their stored dtype) lives in the runner; the file buffer
// is released once the session exists (the remaining small tensors are copied out of it).
// Weights reached only through other ops (Cast, Transpose, DequantizeLinear) or inside subgraphs are not listed.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import type { ArrayValue, Feeds, InputDType, ModelInput } from '../calib/types';
import { decodePlain, f16ToNumber, shapeSize } from '../formats/dtypes';
import { check, LIMITS, QuantLensError, type Location } from '../formats/errors';
import { FilePool } from '../formats/file';
import { ExternalFiles } from '../formats/onnx-external';
import { walkGraph } from '../formats/onnx-graph';
import { decodeTensor, dtypeOf, int64, storageBytes } from '../formats/onnx-tensor';
import type { DType, WeightLayout } from '../formats/types';
import { FP16, minifloatCode, roundMinifloat } from '../quant/minifloat';
import { createSession, type ProviderAttempt } from './session';

export interface RunnerOptions {
  providers?: readonly string[];
  threads?: number;
}

/** Attribute values of the consuming node that analyses need (ints, int lists, strings). */
export type NodeAttrs = Record<string, number | number[] | string>;

export interface RunnerWeight {
  name: string;
  shape: number[];
  /** The consuming node (its name, or `#index` when unnamed); the first one when a weight is shared. */
  node: string;
  op: string;
  layout: WeightLayout;
  /** The value the node multiplies the weight with (its input 0): the layer's activation. */
  activation: string;
  attrs: NodeAttrs;
  dtype: DType;
}

/** A run's output with its shape. */
export interface OutputTensor {
  data: Float32Array;
  dims: number[];
}

const MAX_PROTO_BYTES = 2 ** 31 - 1;
const ANALYZED_OPS = new Set(['MatMul', 'Gemm', 'Conv']);
const WEIGHT_DTYPES = new Set<DType>(['F32', 'F16', 'F64']);
const ORT_WEIGHT_TYPE: Record<string, 'float32' | 'float16' | 'float64'> = { F32: 'float32', F16: 'float16', F64: 'float64' };
const ONNX_WEIGHT_TYPE: Record<string, number> = { F32: 1, F16: 10, F64: 11 };
const INPUT_DTYPES: Record<number, InputDType> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64' };

export class ModelRunner {
  private readonly byName: Map<string, RunnerWeight>;

  private constructor(
    readonly file: string,
    private readonly model: onnx.ModelProto,
    private readonly session: ort.InferenceSession,
    readonly inputs: ModelInput[],
    readonly outputs: string[],
    readonly provider: string,
    readonly attempts: ProviderAttempt[],
    readonly weights: RunnerWeight[],
    /** The weights' own values, fed whenever a run does not override them. */
    private readonly defaults: Map<string, ort.Tensor>,
    private readonly opts: RunnerOptions,
  ) {
    this.byName = new Map(weights.map((w) => [w.name, w]));
  }

  static async open(modelPath: string, opts: RunnerOptions = {}): Promise<ModelRunner> {
    const file = path.resolve(modelPath);
    const bytes = await loadBytes(file);
    const model = decode(bytes, file);
    const g = model.graph;
    check(g, 'bad-model', 'not a valid ONNX model: the ModelProto has no graph', { file });
    await inlineExternal(g, file);
    const inputs = modelInputs(g, file);
    const { weights, defaults } = liftWeights(g, file);
    detach(g, file);
    const outputs = (g.output ?? []).map((v) => v.name ?? '');
    const encoded = onnx.ModelProto.encode(model).finish();
    const { session, provider, attempts } = await createSession(encoded, opts);
    return new ModelRunner(file, model, session, inputs, outputs, provider, attempts, weights, defaults, opts);
  }

  weight(name: string): RunnerWeight {
    const w = this.byName.get(name);
    check(w, 'unknown-weight', () => `no analyzable weight named "${name}" (MatMul/Gemm/Conv weights of the main graph)`, { file: this.file, tensor: name });
    return w;
  }

  /** The weight's values as float32, in storage order (a fresh copy). */
  read(name: string): Float32Array {
    this.weight(name);
    return toFloat32(this.defaults.get(name)!, { file: this.file, tensor: name }).slice();
  }

  /** Model outputs as float32, with the named weights replaced by the given values (storage order). */
  async run(feeds: Feeds, overrides?: ReadonlyMap<string, Float32Array>): Promise<Record<string, Float32Array>> {
    const out = await this.runTensors(feeds, overrides);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data]));
  }

  /** Like run(), with output shapes. */
  runTensors(feeds: Feeds, overrides?: ReadonlyMap<string, Float32Array>): Promise<Record<string, OutputTensor>> {
    return fetchOutputs(this.session, this.ortFeeds(feeds, overrides), this.outputs, this.file);
  }

  /**
   * The model bytes with `outputs` as its graph outputs (for a capture session; untyped outputs are fine
   * for onnxruntime, and graph inputs may be outputs). Its inputs are the same: feed it ortFeeds().
   */
  modelWithOutputs(outputs: readonly string[]): Uint8Array {
    const g = this.model.graph!;
    const graph = onnx.GraphProto.create({ ...g, output: outputs.map((name) => ({ name })) });
    return onnx.ModelProto.encode(onnx.ModelProto.create({ ...this.model, graph })).finish();
  }

  /** Options the runner was opened with (the capture session uses the same providers). */
  get options(): RunnerOptions {
    return this.opts;
  }

  /** Every session input as an onnxruntime tensor: model inputs checked against their declarations, then the weights. */
  ortFeeds(feeds: Feeds, overrides?: ReadonlyMap<string, Float32Array>): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    for (const input of this.inputs) {
      const v = feeds[input.name];
      const where = { file: this.file, tensor: input.name };
      check(v, 'missing-input', () => `no value for model input "${input.name}" (${input.dtype} [${input.dims.join(', ')}])`, where);
      out[input.name] = arrayTensor(v, input, where);
    }
    for (const [name, t] of this.defaults) out[name] = t;
    for (const [name, values] of overrides ?? []) {
      const w = this.weight(name);
      const params = shapeSize(w.shape);
      check(values.length === params, 'bad-override', () => `override holds ${values.length} values; the weight's shape [${w.shape.join(', ')}] has ${params}`, { file: this.file, tensor: name });
      out[name] = weightTensor(w.dtype, w.shape, values);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Runs `session` and returns the named outputs as float32 with their shapes. */
export async function fetchOutputs(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, names: readonly string[], file: string): Promise<Record<string, OutputTensor>> {
  let res: ort.InferenceSession.ReturnType;
  try {
    res = await session.run(feeds, [...names]);
  } catch (e) {
    throw new QuantLensError('run-failed', `onnxruntime failed to run the model: ${e instanceof Error ? e.message : String(e)}`, { file });
  }
  const out: Record<string, OutputTensor> = {};
  for (const name of names) {
    const t = res[name];
    out[name] = { data: toFloat32(t, { file, tensor: name }), dims: [...t.dims] };
  }
  return out;
}

function toFloat32(t: ort.Tensor, where: Location): Float32Array {
  const data = t.data;
  if (data instanceof Float32Array) return data;
  if (t.type === 'float16' && data instanceof Uint16Array) return Float32Array.from(data, f16ToNumber);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data, Number);
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) return Float32Array.from(data as ArrayLike<number>);
  throw new QuantLensError('bad-output', `output of type ${t.type} cannot be compared as numbers`, where);
}

function arrayTensor(v: ArrayValue, input: ModelInput, where: Location): ort.Tensor {
  check(v.dtype === input.dtype, 'bad-input', () => `expected ${input.dtype}, found ${v.dtype}`, where);
  check(v.dims.length === input.dims.length, 'bad-input', () => `expected rank ${input.dims.length} [${input.dims.join(', ')}], found [${v.dims.join(', ')}]`, where);
  input.dims.forEach((d, i) => {
    check(typeof d !== 'number' || d < 0 || d === v.dims[i], 'bad-input', () => `expected shape [${input.dims.join(', ')}], found [${v.dims.join(', ')}] (axis ${i})`, where);
  });
  check(shapeSize(v.dims) === v.data.length, 'bad-input', () => `shape [${v.dims.join(', ')}] needs ${shapeSize(v.dims)} values, found ${v.data.length}`, where);
  return new ort.Tensor(v.dtype, v.data as ort.Tensor.DataType, v.dims);
}

function weightTensor(dtype: DType, shape: number[], values: Float32Array | Float64Array): ort.Tensor {
  const type = ORT_WEIGHT_TYPE[dtype];
  if (type === 'float16') {
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = roundMinifloat(FP16, values[i]);
      bits[i] = minifloatCode(FP16, Math.abs(v), v < 0 || Object.is(v, -0));
    }
    return new ort.Tensor('float16', bits, shape);
  }
  return new ort.Tensor(type, type === 'float64' ? Float64Array.from(values) : Float32Array.from(values), shape);
}

async function loadBytes(file: string): Promise<Buffer> {
  const st = await fsp.stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'no such file' : e.message, { file });
  });
  check(st.isFile(), 'not-a-file', 'not a regular file', { file });
  check(st.size > 0 && st.size <= MAX_PROTO_BYTES, 'bad-size', `expected an ONNX protobuf of 1 byte to 2 GiB, found ${st.size} bytes`, { file });
  return fsp.readFile(file);
}

function decode(bytes: Uint8Array, file: string): onnx.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /index out of range: (\d+)|at offset (\d+)/.exec(msg);
    throw new QuantLensError('bad-protobuf', `not a valid ONNX protobuf (${msg})`, m ? { file, offset: Number(m[1] ?? m[2]) } : { file });
  }
}

/** Reads external data of main-graph tensors into raw_data; refuses subgraph external data and > 2 GiB in total. */
async function inlineExternal(g: onnx.IGraphProto, file: string): Promise<void> {
  const walk = walkGraph(g, { file });
  const ext = walk.sources.filter((s) => s.tensor.dataLocation === 1);
  if (ext.length === 0) return;
  const sub = ext.find((s) => s.graph !== '');
  check(!sub, 'unsupported', () => `external data inside a subgraph (${sub!.graph}) is not supported by the model runner`, { file, tensor: sub?.name });
  const external = new ExternalFiles(file);
  const pool = new FilePool();
  try {
    const st = await fsp.stat(file);
    let total = st.size;
    const spans = [];
    for (const s of ext) {
      const where = { file, tensor: s.name };
      const d = decodeTensor(s.tensor, new Uint8Array(0), where);
      check(d.data.kind === 'external', 'internal', 'expected an external-data tensor', where);
      const span = await external.resolve(d.data.ref, storageBytes(d.dtype, d.params), where);
      total += span.length;
      check(total <= MAX_PROTO_BYTES, 'too-large', () => `the model with its external data exceeds ${MAX_PROTO_BYTES} bytes (protobuf's 2 GiB limit); the model runner cannot load it`, where);
      spans.push({ s, span });
    }
    for (const { s, span } of spans) {
      s.tensor.rawData = await (await pool.get(span.file)).read(span.offset, span.length, `external data of ${s.name}`);
      s.tensor.dataLocation = 0;
      s.tensor.externalData = [];
    }
  } finally {
    await pool.closeAll();
  }
}

function attrsOf(n: onnx.INodeProto, where: Location): NodeAttrs {
  const out: NodeAttrs = {};
  for (const a of n.attribute ?? []) {
    const name = a.name ?? '';
    if (a.ints && a.ints.length > 0) out[name] = a.ints.map((v, i) => int64(v, `attribute ${name}[${i}]`, where));
    else if (a.s && a.s.length > 0) out[name] = new TextDecoder().decode(a.s);
    else if (a.type === onnx.AttributeProto.AttributeType.INT) out[name] = int64(a.i, `attribute ${name}`, where);
  }
  return out;
}

function layoutFor(op: string, attrs: NodeAttrs): WeightLayout {
  if (op === 'Conv') return 'conv';
  if (op === 'Gemm') return attrs.transB === 1 ? 'out_in' : 'in_out';
  return 'in_out';
}

/** A weight's stored values as the tensor onnxruntime expects (float64 decoded without a float32 detour). */
function defaultTensor(t: onnx.ITensorProto, dtype: DType, shape: number[], where: Location & { tensor: string }): ort.Tensor {
  const params = shapeSize(shape);
  const raw = t.rawData;
  const need = storageBytes(dtype, params);
  if (raw && raw.length > 0) {
    check(raw.length === need, 'bad-size', () => `raw_data holds ${raw.length} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${need}`, where);
    if (dtype === 'F64') {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      return new ort.Tensor('float64', Float64Array.from({ length: params }, (_, i) => dv.getFloat64(i * 8, true)), shape);
    }
    return weightTensor(dtype, shape, decodePlain(dtype, raw, params));
  }
  if (dtype === 'F64' && t.doubleData && t.doubleData.length === params) return new ort.Tensor('float64', Float64Array.from(t.doubleData), shape);
  const d = decodeTensor(t, new Uint8Array(0), where);
  check(d.data.kind === 'field' && d.data.values, 'no-data', 'weight has no decodable values', where);
  return weightTensor(dtype, shape, d.data.values);
}

/**
 * Finds the analyzable weights (model order), removes them from the graph (initializers and Constant nodes)
 * and declares each as a graph input; returns their values as default feeds.
 */
function liftWeights(g: onnx.IGraphProto, file: string): { weights: RunnerWeight[]; defaults: Map<string, ort.Tensor> } {
  const nodes = g.node ?? [];
  check(nodes.length <= LIMITS.maxTensors, 'too-many-nodes', `model has ${nodes.length} nodes (limit ${LIMITS.maxTensors})`, { file });
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const constants = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (n.opType === 'Constant' && n.output?.[0] && n.attribute?.[0]?.name === 'value' && n.attribute[0].t) constants.set(n.output[0], i);
  });
  const weights: RunnerWeight[] = [];
  const defaults = new Map<string, ort.Tensor>();
  const dropped = new Set<number>();
  nodes.forEach((n, i) => {
    const op = n.opType ?? '';
    const name = n.input?.[1] ?? '';
    if (!ANALYZED_OPS.has(op) || (n.domain ?? '') !== '' || name === '' || defaults.has(name)) return;
    const ci = constants.get(name);
    const t = inits.get(name) ?? (ci !== undefined ? nodes[ci].attribute![0].t! : undefined);
    if (!t) return;
    const where = { file, tensor: name };
    const dtype = dtypeOf(t.dataType ?? 0);
    const shape = (t.dims ?? []).map((d, k) => int64(d, `dims[${k}]`, where));
    const rankOk = op === 'Conv' ? shape.length >= 3 : shape.length === 2;
    if (!WEIGHT_DTYPES.has(dtype) || !rankOk) return;
    const attrs = attrsOf(n, { file, tensor: n.name || `#${i}` });
    weights.push({ name, shape, node: n.name || `#${i}`, op, layout: layoutFor(op, attrs), activation: n.input?.[0] ?? '', attrs, dtype });
    defaults.set(name, defaultTensor(t, dtype, shape, where));
    if (!inits.has(name)) dropped.add(ci!);
  });
  g.node = nodes.filter((_, i) => !dropped.has(i));
  g.initializer = (g.initializer ?? []).filter((t) => !defaults.has(t.name ?? ''));
  const declared = new Set((g.input ?? []).map((v) => v.name));
  for (const w of weights) {
    if (declared.has(w.name)) continue;
    const elemType = ONNX_WEIGHT_TYPE[w.dtype];
    g.input = [...(g.input ?? []), { name: w.name, type: { tensorType: { elemType, shape: { dim: w.shape.map((d) => ({ dimValue: d })) } } } }];
  }
  return { weights, defaults };
}

/** Copies the raw data still in the graph so the runner does not keep the whole file buffer alive. */
function detach(g: onnx.IGraphProto, file: string): void {
  for (const s of walkGraph(g, { file }).sources) {
    if (s.tensor.rawData && s.tensor.rawData.length > 0) s.tensor.rawData = s.tensor.rawData.slice();
  }
}

/** Graph inputs that are not initializers, with their dtypes and (possibly symbolic) dims. */
function modelInputs(g: onnx.IGraphProto, file: string): ModelInput[] {
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  return (g.input ?? [])
    .filter((v) => !inits.has(v.name))
    .map((v) => {
      const name = v.name ?? '';
      const tt = v.type?.tensorType;
      const dtype = INPUT_DTYPES[tt?.elemType ?? 0];
      check(tt && dtype, 'unsupported', () => `model input "${name}" has element type ${dtypeOf(tt?.elemType ?? 0)}; supported: ${Object.values(INPUT_DTYPES).join(', ')}`, { file, tensor: name });
      const dims = (tt.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int64(d.dimValue, 'dim', { file, tensor: name }) : -1));
      return { name, dtype, dims };
    });
}
