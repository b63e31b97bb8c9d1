// ONNX: a protobuf ModelProto. With in-file weights it is under 2 GiB (protobuf's limit), so open()
// decodes the whole file from one buffer, records where each tensor's bytes sit (raw_data is a view of
// that buffer, so its offset is exact), then drops the decoded model: read() goes back to disk by offset.
// Weights are found in graph initializers, Constant nodes, sparse initializers (listed, not decoded)
// and, recursively, the subgraphs of If/Loop/Scan; external data is resolved inside the model folder.
//
// Storage labels: `initializer`, `constant`, `sparse_initializer`, `external`, or `subgraph:<path>`
// for tensors inside subgraphs; a suffix names a typed field (`initializer (float_data)`,
// `constant (value_floats)`) or external data in a subgraph (`subgraph:If_0/then_branch (external)`).
// Typed-field tensors have no contiguous bytes in the file: they are kept as a small decoded copy,
// their byteOffset is 0 and byteLength their logical size (params × element size).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { check, LIMITS, QuantLensError, type Location } from './errors';
import { FilePool } from './file';
import { FLOAT_DTYPES, readPlainTensor, shapeSize } from './dtypes';
import { ExternalFiles } from './onnx-external';
import { ConsumerIndex, walkGraph, type GraphWalk, type WeightSource } from './onnx-graph';
import { layerFor, layoutOf, QUANT_ROLES, quantRoleOf } from './onnx-roles';
import { decodeTensor, dtypeOf, int64, storageBytes } from './onnx-tensor';
import { looksLikeOnnx } from './onnx-sniff';
import type { Checkpoint, CheckpointReader, Consumer, ElementRange, TensorInfo } from './types';

/** Protobuf messages are limited to 2 GiB; bigger models must keep their weights in external data. */
const MAX_PROTO_BYTES = 2 ** 31 - 1;

export const onnxReader: CheckpointReader = {
  format: 'onnx',
  match(p) {
    try {
      return looksLikeOnnx(p.head, p.size, /\.onnx$/i.test(p.path));
    } catch {
      return false;
    }
  },
  open: openOnnx,
};

async function openOnnx(p: string): Promise<Checkpoint> {
  const file = path.resolve(p);
  const bytes = await loadModelBytes(file);
  const model = decodeModel(bytes, file);
  const g = model.graph;
  check(g, 'bad-model', 'not a valid ONNX model: the ModelProto has no graph', { file });
  const walk = walkGraph(g, { file });
  check(walk.sources.length <= LIMITS.maxTensors, 'too-many-tensors', `model holds ${walk.sources.length} tensors (limit ${LIMITS.maxTensors})`, { file });
  const index = new ConsumerIndex(walk.nodes);
  const external = new ExternalFiles(file);
  const copies = new Map<string, Float32Array>();
  const tensors: TensorInfo[] = [];
  const bySource = new Map<string, TensorInfo>();
  const names = new UniqueNames();
  for (const src of walk.sources) {
    const t = await tensorInfo(src, names.take(src), { file, bytes, index, external, copies });
    tensors.push(t);
    if (!bySource.has(src.name)) bySource.set(src.name, t);
  }
  inheritQuantLayers(walk, bySource);
  sortByDepth(tensors, walk, index);
  const metadata = metadataOf(model, g, walk, file);
  // `model` and `bytes` go out of scope here: nothing kept below references the file buffer.
  return checkpoint(file, [file, ...external.files], tensors, copies, metadata);
}

/**
 * List tensors in model depth order (position of their first consuming node), not storage order:
 * exporters such as Paddle's put every Constant first, sorted by name. Unconsumed tensors go last.
 */
function sortByDepth(tensors: TensorInfo[], walk: GraphWalk, index: ConsumerIndex): void {
  const position = new Map(walk.nodes.map((n, i) => [n, i]));
  const depth = new Map<TensorInfo, number>();
  for (const t of tensors) {
    const uses = t.consumers?.length ? index.uses(t.name) : [];
    depth.set(t, Math.min(Infinity, ...uses.map((u) => position.get(u.node) ?? Infinity)));
  }
  tensors.sort((a, b) => depth.get(a)! - depth.get(b)!); // stable: ties keep storage order
}

async function loadModelBytes(file: string): Promise<Buffer> {
  const st = await fsp.stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'no such file' : e.message, { file });
  });
  check(st.isFile(), 'not-a-file', 'not a regular file', { file });
  check(st.size > 0, 'truncated', 'empty file: not a valid ONNX protobuf', { file, offset: 0 });
  check(
    st.size <= MAX_PROTO_BYTES,
    'too-large',
    `not a valid ONNX protobuf: ${st.size} bytes exceeds protobuf's 2 GiB limit (larger models keep weights in external data)`,
    { file },
  );
  return fsp.readFile(file);
}

function decodeModel(bytes: Uint8Array, file: string): onnx.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // protobufjs reports `index out of range: <pos> + <n> > <len>` or `invalid wire type <w> at offset <pos>`.
    const m = /index out of range: (\d+)|at offset (\d+)/.exec(msg);
    const where: Location = m ? { file, offset: Number(m[1] ?? m[2]) } : { file };
    throw new QuantLensError('bad-protobuf', `not a valid ONNX protobuf (${msg})`, where);
  }
}

/** Tensor names must be unique for read(name); subgraphs may reuse an outer name, so qualify repeats. */
class UniqueNames {
  private readonly seen = new Set<string>();

  take(src: WeightSource): string {
    let name = src.name || `${src.graph || '(main)'}/(unnamed)`;
    if (this.seen.has(name)) name = `${src.graph || '(main)'}/${name}`;
    for (let k = 2; this.seen.has(name); k++) name = `${name.replace(/#\d+$/, '')}#${k}`;
    this.seen.add(name);
    return name;
  }
}

interface OpenContext {
  file: string;
  bytes: Uint8Array;
  index: ConsumerIndex;
  external: ExternalFiles;
  copies: Map<string, Float32Array>;
}

async function tensorInfo(src: WeightSource, name: string, ctx: OpenContext): Promise<TensorInfo> {
  const where = { file: ctx.file, tensor: name };
  const uses = ctx.index.uses(src.name);
  const consumers: Consumer[] = uses.map((u) => ({ op: u.node.op, node: u.node.name, input: u.slot, ...(u.node.graph ? { graph: u.node.graph } : {}) }));
  const base = src.graph ? `subgraph:${src.graph}` : src.kind;
  const layer = layerFor(src.name, uses);

  if (src.sparseDims) {
    const shape = src.sparseDims.map((d, i) => int64(d, `sparse dims[${i}]`, where));
    const params = shapeSize(shape);
    check(Number.isSafeInteger(params), 'bad-shape', () => `sparse shape [${shape.join(', ')}] is invalid`, where);
    return {
      name, dtype: dtypeOf(src.tensor.dataType ?? 0), shape, params, file: ctx.file, byteOffset: 0, byteLength: 0,
      analyzable: false, reason: 'sparse tensors (values + indices) are not supported',
      layout: layoutOf(shape.length, uses), layer, storage: src.graph || src.kind === 'constant' ? `${base} (sparse)` : base, consumers,
    };
  }

  const d = decodeTensor(src.tensor, ctx.bytes, where);
  const info: TensorInfo = {
    name, dtype: d.dtype, shape: d.shape, params: d.params, file: ctx.file, byteOffset: 0, byteLength: 0,
    analyzable: true, layout: layoutOf(d.shape.length, uses), layer, storage: base, consumers,
  };
  switch (d.data.kind) {
    case 'raw':
      info.byteOffset = d.data.offset;
      info.byteLength = d.data.length;
      break;
    case 'external': {
      const span = await ctx.external.resolve(d.data.ref, storageBytes(d.dtype, d.params), where);
      Object.assign(info, { file: span.file, byteOffset: span.offset, byteLength: span.length });
      info.storage = src.graph ? `${base} (external)` : 'external';
      break;
    }
    case 'field':
      info.byteLength = storageBytes(d.dtype, d.params) ?? 0;
      info.storage = `${base} (${src.attr ?? d.data.field})`;
      if (d.data.values) ctx.copies.set(name, d.data.values);
      break;
    case 'empty':
      break;
  }

  const q = quantRoleOf(uses);
  if (q) info.quantForm = q.form;
  if (!FLOAT_DTYPES.has(d.dtype)) {
    info.analyzable = false;
    info.reason = q
      ? `already quantized (${q.form})`
      : d.dtype === 'I64'
        ? 'INT64 tensor (shape or index constant), not a float weight'
        : `${d.dtype} tensor: only float tensors are analyzed`;
  } else if (q?.packed) {
    info.analyzable = false;
    info.reason = `already quantized (${q.form})`;
  }
  return info;
}

/** Scales and zero points of a quantized weight belong to that weight's layer. */
function inheritQuantLayers(walk: GraphWalk, bySource: Map<string, TensorInfo>): void {
  for (const node of walk.nodes) {
    const role = QUANT_ROLES[node.op];
    const packed = role && bySource.get(node.inputs[role.packed] ?? '');
    if (!packed) continue;
    for (const slot of role.aux) {
      const aux = bySource.get(node.inputs[slot] ?? '');
      if (aux) aux.layer = { ...packed.layer };
    }
  }
}

function metadataOf(model: onnx.ModelProto, g: onnx.IGraphProto, walk: GraphWalk, file: string): Record<string, unknown> {
  const where = { file };
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport ?? []) opsets[o.domain || 'ai.onnx'] = Number(o.version);
  const opHistogram: Record<string, number> = {};
  for (const n of walk.nodes) opHistogram[n.op] = (opHistogram[n.op] ?? 0) + 1;
  const initNames = new Set((g.initializer ?? []).map((t) => t.name));
  const props: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) props[p.key ?? ''] = p.value ?? '';
  return {
    irVersion: int64(model.irVersion, 'ir_version', where),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: Number(model.modelVersion),
    opsets,
    graphName: g.name,
    nodeCount: (g.node ?? []).length,
    totalNodeCount: walk.nodes.length,
    subgraphCount: walk.subgraphs,
    opHistogram,
    // IR < 4 also lists initializers as graph inputs: those are weights, not inputs.
    inputs: (g.input ?? []).filter((v) => !initNames.has(v.name ?? '')).map(valueInfo),
    outputs: (g.output ?? []).map(valueInfo),
    ...(Object.keys(props).length > 0 ? { metadataProps: props } : {}),
  };
}

function valueInfo(v: onnx.IValueInfoProto): { name: string; type: string; shape?: (number | string)[] } {
  const tt = v.type?.tensorType;
  if (!tt) {
    const kind = v.type ? Object.keys(v.type).find((k) => k.endsWith('Type')) : undefined;
    return { name: v.name ?? '', type: kind ?? 'unknown' };
  }
  const shape = tt.shape ? (tt.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : '?')) : undefined;
  return { name: v.name ?? '', type: dtypeOf(tt.elemType ?? 0), ...(shape ? { shape } : {}) };
}

function checkpoint(file: string, files: string[], tensors: TensorInfo[], copies: Map<string, Float32Array>, metadata: Record<string, unknown>): Checkpoint {
  const pool = new FilePool();
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    format: 'onnx',
    path: file,
    files,
    tensors,
    metadata,
    async read(name: string, range?: ElementRange): Promise<Float32Array> {
      const t = byName.get(name);
      check(t, 'unknown-tensor', `no tensor named "${name}"`, { file });
      const copy = copies.get(name);
      if (!copy) return readPlainTensor(await pool.get(t.file), t, range);
      check(t.analyzable, 'not-analyzable', t.reason ?? 'not analyzable', { file: t.file, tensor: name });
      const start = range?.start ?? 0;
      const count = range?.count ?? t.params;
      check(
        Number.isSafeInteger(start) && Number.isSafeInteger(count) && start >= 0 && count >= 0 && start + count <= t.params,
        'bad-range',
        `element range ${start}+${count} outside tensor of ${t.params} elements`,
        { file: t.file, tensor: name },
      );
      return copy.slice(start, start + count);
    },
    close: () => pool.closeAll(),
  };
}
