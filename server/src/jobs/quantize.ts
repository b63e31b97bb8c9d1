// The quantized-model writer (DESIGN.md §6): a NEW ONNX file in which every quantized weight is
//   - stored as integer codes + group scales (+ zero points) feeding a DequantizeLinear (opset ≥ 21, `block_size`
//     for grouped formats, per-axis for per-channel ones) whose output keeps the weight's name, so every consumer
//     (and a weight shared by several nodes) reads it unchanged; conv and [out, in] weights of rank > 2 are
//     dequantized in their [out, in·kh·kw] view and reshaped back; or
//   - below opset 21 (where that DequantizeLinear does not exist and raising the opset would change other ops),
//     for [in, out] MatMul weights with power-of-two blocks ≥ 16: com.microsoft MatMulNBits nodes in place of the
//     MatMuls (4- or 8-bit codes, scales [N, blocks], packed zero points); or
//   - stored as its fake-quantized float values in the original dtype, marked `simulated` with the reason
//     (a format onnxruntime has no kernel for, an old opset where MatMulNBits does not apply, float64 weights).
// Weights held in initializers and in Constant nodes are both rewritten. Tensors that stay in external data keep
// their relative references, so the output must sit in the source's folder then. The source is never modified;
// the output goes through writeOutputFile (temp file + rename, never over an input).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { f16Bits } from '../calib/values';
import { check, QuantLensError } from '../formats/errors';
import { walkGraph } from '../formats/onnx-graph';
import { dtypeOf, int64 } from '../formats/onnx-tensor';
import type { WeightLayout } from '../formats/types';
import { writeOutputFile } from '../output';
import type { NumberFormat } from '../quant';
import { DTYPES, MS_DOMAIN } from '../runtime/graph';
import { intFormatInfo, packable, packNibbles, packWeight, type PackedWeight } from './pack';

const MAX_PROTO_BYTES = 2 ** 31 - 1;
const MIN_QDQ_OPSET = 21;
/** int4/uint4 tensors need IR version 10. */
const INT4_IR = 10;

export interface QuantizedTensor {
  name: string;
  shape: number[];
  layout: WeightLayout;
  format: NumberFormat;
  /** Dequantized values in storage order. */
  values: Float32Array;
  /** Integer codes as the formats module reports them; without them the weight is written simulated. */
  codes?: Int32Array;
  /** Written as fake-quantized floats whatever the format (mixed-precision layers): the label and why. */
  simulated?: { format: string; reason: string };
}

export interface WrittenWeight {
  name: string;
  format: string;
  /** How it is stored: a DequantizeLinear code type, or the float dtype of fake-quantized values. */
  storage: string;
  simulated: boolean;
  /** Why it is simulated. */
  reason?: string;
}

export interface WriteOptions {
  overwrite?: boolean;
  /** Other files the command reads (never written over). */
  inputs?: readonly string[];
}

export interface WriteResult {
  output: string;
  bytes: number;
  weights: WrittenWeight[];
}

/** `<model>.quant.onnx` beside the source. */
export function defaultOutputPath(model: string): string {
  const abs = path.resolve(model);
  return path.join(path.dirname(abs), `${path.basename(abs, path.extname(abs))}.quant.onnx`);
}

export async function readModel(file: string): Promise<onnx.ModelProto> {
  const st = await fsp.stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'no such file' : e.message, { file });
  });
  check(st.isFile() && st.size > 0 && st.size <= MAX_PROTO_BYTES, 'bad-size', `expected an ONNX file of 1 byte to 2 GiB, found ${st.size} bytes`, { file });
  try {
    return onnx.ModelProto.decode(await fsp.readFile(file));
  } catch (e) {
    throw new QuantLensError('bad-protobuf', `not a valid ONNX protobuf (${e instanceof Error ? e.message : String(e)})`, { file });
  }
}

export interface BuiltModel {
  bytes: Uint8Array;
  weights: WrittenWeight[];
}

/** The bytes of `src` with `tensors` replaced, for an output in `outDir` (external data references must resolve). */
export async function buildQuantizedModel(src: string, outDir: string, tensors: readonly QuantizedTensor[]): Promise<BuiltModel> {
  const file = path.resolve(src);
  const model = await readModel(file);
  const g = model.graph;
  check(g, 'bad-model', 'not a valid ONNX model: the ModelProto has no graph', { file });
  const external = walkGraph(g, { file }).sources.find((s) => s.tensor.dataLocation === 1);
  check(
    !external || path.resolve(outDir) === path.dirname(file),
    'unsupported',
    () => `the model keeps tensors in external data (e.g. ${external!.name}): write the quantized model into the model's folder so the references resolve`,
    { file: outDir },
  );
  const opsetEntry = (model.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const opset = opsetEntry ? int64(opsetEntry.version, 'opset version', { file }) : 1;
  const rw = new Rewriter(g, file);
  const weights: WrittenWeight[] = [];
  let int4 = false;
  for (const q of tensors) {
    const t = rw.tensor(q.name);
    const dtype = dtypeOf(t.dataType ?? 0);
    if (q.simulated) {
      setFloatData(t, dtype, q.values, { file, tensor: q.name });
      weights.push({ name: q.name, format: q.simulated.format, storage: floatStorage(dtype), simulated: true, reason: q.simulated.reason });
      continue;
    }
    const info = intFormatInfo(q.format);
    let why = packable(q.format, q.shape, q.layout);
    if (!why && dtype !== 'F32' && dtype !== 'F16') why = `${dtype} weights have no DequantizeLinear output type`;
    if (!why && !q.codes) why = 'no integer codes were produced';
    const packed = why || !info ? undefined : packWeight(q.values, q.codes!, q.shape, q.layout, info);
    if (!why && !packed) why = 'the values are not exactly codes × group scales';
    // Below opset 21 a MatMul weight can still run as com.microsoft MatMulNBits.
    const nbits = packed && opset < MIN_QDQ_OPSET ? rw.matMulNBitsBlocker(q.name, packed, q.shape) : undefined;
    if (packed && nbits !== undefined) why = `the model's opset ${opset} is below 21 (DequantizeLinear with block_size and 4-bit types), and MatMulNBits does not apply: ${nbits}`;
    if (packed && opset >= MIN_QDQ_OPSET) {
      rw.dequantize(q.name, packed, dtype === 'F16', q.shape);
      int4 ||= packed.type.endsWith('4');
      weights.push({ name: q.name, format: q.format.id, storage: packed.type, simulated: false });
    } else if (packed && nbits === undefined) {
      rw.matMulNBits(q.name, packed, q.shape, dtype === 'F16');
      weights.push({ name: q.name, format: q.format.id, storage: `MatMulNBits(${packed.type.endsWith('4') ? 4 : 8})`, simulated: false });
    } else {
      setFloatData(t, dtype, q.values, { file, tensor: q.name });
      weights.push({ name: q.name, format: q.format.id, storage: floatStorage(dtype), simulated: true, reason: why });
    }
  }
  rw.finish();
  if (rw.usesMsDomain && !(model.opsetImport ?? []).some((o) => o.domain === MS_DOMAIN)) model.opsetImport = [...(model.opsetImport ?? []), { domain: MS_DOMAIN, version: 1 }];
  if (int4 && int64(model.irVersion ?? 0, 'ir_version', { file }) < INT4_IR) model.irVersion = INT4_IR;
  model.producerName = 'quantlens';
  const bytes = onnx.ModelProto.encode(model).finish();
  check(bytes.length <= MAX_PROTO_BYTES, 'too-large', `the quantized model is ${bytes.length} bytes, over protobuf's 2 GiB`, { file: outDir });
  return { bytes, weights };
}

/** Writes `src` with `tensors` replaced to `out` (atomically; never over an input). */
export async function writeQuantizedModel(src: string, out: string, tensors: readonly QuantizedTensor[], opts: WriteOptions = {}): Promise<WriteResult> {
  const target = path.resolve(out);
  const built = await buildQuantizedModel(src, path.dirname(target), tensors);
  await writeOutputFile(target, built.bytes, { overwrite: opts.overwrite, inputs: [path.resolve(src), ...(opts.inputs ?? [])] });
  return { output: target, bytes: built.bytes.length, weights: built.weights };
}

const floatStorage = (dtype: string) => (dtype === 'F16' ? 'float16' : dtype === 'F64' ? 'float64' : 'float32');

function setFloatData(t: onnx.ITensorProto, dtype: string, values: Float32Array, where: { file: string; tensor: string }): void {
  let raw: Uint8Array;
  if (dtype === 'F32') raw = new Uint8Array(Float32Array.from(values).buffer);
  else if (dtype === 'F64') raw = new Uint8Array(Float64Array.from(values).buffer);
  else if (dtype === 'F16') raw = new Uint8Array(Uint16Array.from(values, f16Bits).buffer);
  else throw new QuantLensError('unsupported', `cannot store fake-quantized values as ${dtype}`, where);
  Object.assign(t, { rawData: raw, floatData: [], doubleData: [], int32Data: [], dataLocation: 0, externalData: [] });
}

/** Edits of the main graph: weights found by name, DequantizeLinear subgraphs added in front of the nodes. */
class Rewriter {
  private readonly inits: Map<string, onnx.ITensorProto>;
  private readonly constants = new Map<string, onnx.INodeProto>();
  private readonly names = new Set<string>();
  private readonly removed = new Set<string>();
  private readonly added: onnx.INodeProto[] = [];
  private readonly newInits: onnx.ITensorProto[] = [];
  /** Main-graph nodes reading each value, with the input slot. */
  private readonly uses = new Map<string, { node: onnx.INodeProto; slot: number }[]>();
  private readonly outputs: Set<string>;
  private readonly subgraphUses = new Set<string>();
  usesMsDomain = false;

  constructor(
    private readonly g: onnx.IGraphProto,
    private readonly file: string,
  ) {
    this.inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
    this.outputs = new Set((g.output ?? []).map((v) => v.name ?? ''));
    for (const n of walkGraph(g, { file }).nodes) if (n.graph !== '') for (const i of n.inputs) this.subgraphUses.add(i);
    for (const n of g.node ?? []) {
      (n.input ?? []).forEach((i, slot) => this.uses.set(i, [...(this.uses.get(i) ?? []), { node: n, slot }]));
      for (const o of n.output ?? []) this.names.add(o);
      const a = n.attribute?.[0];
      if (n.opType === 'Constant' && n.output?.[0] && a?.name === 'value' && a.t) this.constants.set(n.output[0], n);
    }
    for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) this.names.add(v.name ?? '');
    for (const name of this.inits.keys()) this.names.add(name);
  }

  tensor(name: string): onnx.ITensorProto {
    const t = this.inits.get(name) ?? this.constants.get(name)?.attribute?.[0].t;
    check(t, 'unknown-weight', () => `no initializer or Constant node named "${name}" in the main graph`, { file: this.file, tensor: name });
    return t;
  }

  /** Replaces the weight `name` with codes → DequantizeLinear (→ Reshape) producing `name`. */
  dequantize(name: string, p: PackedWeight, half: boolean, shape: readonly number[]): void {
    const scaleType = half ? DTYPES.float16 : DTYPES.float32;
    const codes = this.init(`${name}_quantized`, DTYPES[p.type], p.dims, codeBytes(p.type, p.codes));
    const scaleRaw = half ? new Uint8Array(Uint16Array.from(p.scales, f16Bits).buffer) : new Uint8Array(Float32Array.from(p.scales).buffer);
    const inputs = [codes, this.init(`${name}_scale`, scaleType, p.scaleDims, scaleRaw)];
    if (p.zeros) inputs.push(this.init(`${name}_zero_point`, DTYPES[p.type], p.scaleDims, codeBytes(p.type, p.zeros)));
    const reshape = p.dims.length !== shape.length;
    const dq = reshape ? this.fresh(`${name}_dequantized`) : name;
    const attribute: onnx.IAttributeProto[] = [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: p.axis }];
    if (p.blockSize !== undefined) attribute.push({ name: 'block_size', type: onnx.AttributeProto.AttributeType.INT, i: p.blockSize });
    this.added.push({ opType: 'DequantizeLinear', domain: '', name: this.fresh(`${name}_DequantizeLinear`), input: inputs, output: [dq], attribute });
    if (reshape) {
      const dims = this.init(`${name}_shape`, DTYPES.int64, [shape.length], new Uint8Array(BigInt64Array.from(shape, (d) => BigInt(d)).buffer));
      this.added.push({ opType: 'Reshape', domain: '', name: this.fresh(`${name}_Reshape`), input: [dq, dims], output: [name], attribute: [] });
    }
    this.removed.add(name);
  }

  /** Why `name` cannot become the B input of com.microsoft MatMulNBits nodes, or undefined when it can. */
  matMulNBitsBlocker(name: string, p: PackedWeight, shape: readonly number[]): string | undefined {
    const bs = p.blockSize;
    if (shape.length !== 2 || p.axis !== 0 || bs === undefined) return 'it needs an [in, out] MatMul weight with blocks along the input axis';
    if (bs < 16 || (bs & (bs - 1)) !== 0) return `block size ${bs} is not a power of two ≥ 16`;
    const uses = this.uses.get(name) ?? [];
    if (uses.length === 0 || this.outputs.has(name) || uses.some((u) => u.node.opType !== 'MatMul' || (u.node.domain ?? '') !== '' || u.slot !== 1)) {
      return 'the weight is used by something other than MatMul (as its second input) in the main graph';
    }
    if (this.subgraphUses.has(name)) return 'the weight is used inside a subgraph';
    return undefined;
  }

  /** Replaces every MatMul consuming `name` with MatMulNBits over its codes, scales and zero points. */
  matMulNBits(name: string, p: PackedWeight, shape: readonly number[], half: boolean): void {
    const [K, N] = shape;
    const bs = p.blockSize!;
    const bits = p.type.endsWith('4') ? 4 : 8;
    const nb = Math.ceil(K / bs);
    const blob = (bs * bits) / 8;
    // Codes stored unsigned: signed formats shift by 2^(bits−1), MatMulNBits' default zero point.
    const shift = p.zeros ? 0 : 2 ** (bits - 1);
    const B = new Uint8Array(N * nb * blob);
    const put = (buf: Uint8Array, at: number, v: number) => {
      if (bits === 8) buf[at] = v;
      else buf[at >> 1] |= (v & 15) << ((at & 1) * 4);
    };
    const scales = new Float32Array(N * nb);
    const zpBytes = Math.ceil((nb * bits) / 8);
    const zeros = p.zeros ? new Uint8Array(N * zpBytes) : undefined;
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < nb; b++) {
        const zero = p.zeros ? p.zeros[b * N + n] : shift;
        scales[n * nb + b] = p.scales[b * N + n];
        if (zeros) put(zeros, bits === 8 ? n * zpBytes + b : 2 * n * zpBytes + b, zero);
        // Past K (a partial last block) the code is the zero point: the value 0.
        for (let k = 0; k < bs; k++) put(B, (n * nb + b) * bs + k, b * bs + k < K ? p.codes[(b * bs + k) * N + n] + shift : zero);
      }
    }
    const inputs = [
      this.init(`${name}_MatMulNBits_B`, DTYPES.uint8, [N, nb, blob], B),
      this.init(`${name}_scales`, half ? DTYPES.float16 : DTYPES.float32, [N, nb], half ? new Uint8Array(Uint16Array.from(scales, f16Bits).buffer) : new Uint8Array(scales.buffer)),
    ];
    if (zeros) inputs.push(this.init(`${name}_zero_points`, DTYPES.uint8, [N * zpBytes], zeros));
    const attribute = Object.entries({ K, N, bits, block_size: bs }).map(([k, v]) => ({ name: k, type: onnx.AttributeProto.AttributeType.INT, i: v }));
    for (const { node } of this.uses.get(name)!) {
      Object.assign(node, { opType: 'MatMulNBits', domain: MS_DOMAIN, input: [node.input![0], ...inputs], attribute });
    }
    this.usesMsDomain = true;
    this.removed.add(name);
  }

  finish(): void {
    const g = this.g;
    g.initializer = [...(g.initializer ?? []).filter((t) => !this.removed.has(t.name ?? '')), ...this.newInits];
    // Old exporters also list initializers as graph inputs; a node now produces these values.
    g.input = (g.input ?? []).filter((v) => !this.removed.has(v.name ?? ''));
    g.node = [...this.added, ...(g.node ?? []).filter((n) => !(n.opType === 'Constant' && this.removed.has(n.output?.[0] ?? '')))];
  }

  private init(base: string, dataType: number, dims: readonly number[], rawData: Uint8Array): string {
    const name = this.fresh(base);
    this.newInits.push({ name, dataType, dims: [...dims], rawData });
    return name;
  }

  /** `base`, or `base_1`, `base_2`, … when taken (value names are single-assignment). */
  private fresh(base: string): string {
    let name = base;
    for (let k = 1; this.names.has(name); k++) name = `${base}_${k}`;
    this.names.add(name);
    return name;
  }
}

function codeBytes(type: PackedWeight['type'], codes: Int32Array): Uint8Array {
  if (type === 'int4' || type === 'uint4') return packNibbles(codes);
  return type === 'int8' ? new Uint8Array(Int8Array.from(codes).buffer) : Uint8Array.from(codes);
}
