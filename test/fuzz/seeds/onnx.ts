// ONNX seeds: the storage zoo (raw, typed fields, fp16 bits, Constant nodes, If subgraphs,
// DequantizeLinear/MatMulNBits, external data in zoo.onnx.data) and the extras model (bf16/fp8/double,
// sparse, Loop body, MatMulInteger). Structure: every protobuf varint (values and lengths) found by
// walking the wire format; message-level mutations decode, edit and re-encode with onnx-proto.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { T, writeExtras, writeZoo } from '../../fixtures/onnx';
import type { IntField, Rand, SeedFile } from '../mutators';
import { openAndRead, type FuzzTarget, type Seed, type Structured } from '../target';

// ---------------------------------------------------------------------------------------------
// Wire format

/** A varint's value and byte length at `at`; undefined if it does not end within 10 bytes / `end`. */
function varintAt(b: Uint8Array, at: number, end: number): { value: number; len: number } | undefined {
  let value = 0;
  for (let i = 0; i < 10 && at + i < end; i++) {
    value += (b[at + i] & 0x7f) * 2 ** (7 * i);
    if (b[at + i] < 0x80) return { value, len: i + 1 };
  }
  return undefined;
}

/**
 * Every varint field and length prefix of a protobuf message in b[start, end), recursing into
 * length-delimited payloads that themselves parse as messages. Labels are field-number paths
 * (`7.5.9` = graph.initializer.raw_data). Returns false (adding nothing) if the range is not a message.
 */
function walkProto(b: Uint8Array, start: number, end: number, prefix: string, depth: number, fields: IntField[], points: number[]): boolean {
  const f: IntField[] = [];
  const p: number[] = [];
  let pos = start;
  while (pos < end) {
    const tag = varintAt(b, pos, end);
    if (!tag || tag.value < 8) return false;
    const num = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    const label = prefix ? `${prefix}.${num}` : String(num);
    p.push(pos);
    pos += tag.len;
    if (wire === 0) {
      const v = varintAt(b, pos, end);
      if (!v) return false;
      f.push({ at: pos, width: v.len, varint: true, label });
      pos += v.len;
    } else if (wire === 2) {
      const n = varintAt(b, pos, end);
      if (!n || pos + n.len + n.value > end) return false;
      f.push({ at: pos, width: n.len, varint: true, label: `${label}.len` });
      pos += n.len;
      p.push(pos, pos + n.value);
      if (depth < 12 && n.value >= 2) walkProto(b, pos, pos + n.value, label, depth + 1, f, p);
      pos += n.value;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else return false;
  }
  if (pos !== end) return false;
  fields.push(...f);
  points.push(...p);
  return true;
}

export function protoStructure(bytes: Uint8Array): Pick<SeedFile, 'fields' | 'points'> {
  const fields: IntField[] = [];
  const points: number[] = [];
  walkProto(bytes, 0, bytes.length, '', 0, fields, points);
  return { fields, points: [...points, bytes.length] };
}

/** Hand-built protobuf: tag + payload, for shapes onnx-proto will not encode (hostile lengths, deep nesting). */
export const pb = {
  varint(v: bigint | number): Uint8Array {
    const out: number[] = [];
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      const byte = Number(x & 0x7fn);
      x >>= 7n;
      out.push(x > 0n ? byte | 0x80 : byte);
    } while (x > 0n);
    return Uint8Array.from(out);
  },
  cat(...parts: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(parts.reduce((s, q) => s + q.length, 0));
    let at = 0;
    for (const q of parts) {
      out.set(q, at);
      at += q.length;
    }
    return out;
  },
  /** Field `num` as a varint value. */
  int(num: number, v: bigint | number): Uint8Array {
    return pb.cat(pb.varint(num * 8), pb.varint(v));
  },
  /** Field `num` length-delimited; `declared` overrides the length prefix (a lie). */
  bytes(num: number, payload: Uint8Array, declared?: bigint | number): Uint8Array {
    return pb.cat(pb.varint(num * 8 + 2), pb.varint(declared ?? payload.length), payload);
  },
  str(num: number, s: string): Uint8Array {
    return pb.bytes(num, new TextEncoder().encode(s));
  },
};

/** ModelProto { ir_version 8, opset 17, graph } around a GraphProto payload. */
export const modelAround = (graph: Uint8Array): Uint8Array => pb.cat(pb.int(1, 8), pb.bytes(8, pb.int(2, 17)), pb.bytes(7, graph));

/**
 * A main graph whose only node is an If nested `depth` deep through then_branch. Every nested message is
 * the last field of its parent, so each level is a prefix: lengths are summed inner to outer, then the
 * prefixes are written outer to inner (linear, where concatenating level by level would be quadratic).
 */
export function nestedIf(depth: number): Uint8Array {
  const leaf = pb.cat(pb.str(2, 'leaf'), pb.bytes(5, pb.cat(pb.int(1, 4), pb.int(2, T.FLOAT), pb.str(8, 'w'), pb.bytes(9, new Uint8Array(16)))));
  const prefixes: Uint8Array[] = [];
  let inner = leaf.length;
  for (let i = 0; i < depth; i++) {
    const attrHead = pb.cat(pb.str(1, 'then_branch'), pb.int(20, 5), pb.varint(6 * 8 + 2), pb.varint(inner));
    const attrLen = attrHead.length + inner;
    const nodeHead = pb.cat(pb.str(1, 'cond'), pb.str(2, `y${i}`), pb.str(3, `If_${i}`), pb.str(4, 'If'), pb.varint(5 * 8 + 2), pb.varint(attrLen));
    const nodeLen = nodeHead.length + attrLen;
    const graphHead = pb.cat(pb.str(2, `g${i}`), pb.varint(1 * 8 + 2), pb.varint(nodeLen));
    prefixes.push(pb.cat(graphHead, nodeHead, attrHead));
    inner = graphHead.length + nodeLen;
  }
  return modelAround(pb.cat(...prefixes.reverse(), leaf));
}

// ---------------------------------------------------------------------------------------------
// Message-level mutations

interface Located<T> {
  v: T;
  where: string;
}

/** Every TensorProto in a model (initializers, Constant/attribute tensors, sparse values/indices, subgraphs). */
function tensorsOf(g: onnx.IGraphProto, where = 'graph', out: Located<onnx.ITensorProto>[] = [], depth = 0): Located<onnx.ITensorProto>[] {
  if (depth > 8) return out;
  (g.initializer ?? []).forEach((t, i) => out.push({ v: t, where: `${where}.initializer[${i}] ${t.name}` }));
  (g.sparseInitializer ?? []).forEach((s, i) => {
    if (s.values) out.push({ v: s.values, where: `${where}.sparse[${i}].values` });
    if (s.indices) out.push({ v: s.indices, where: `${where}.sparse[${i}].indices` });
  });
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) out.push({ v: a.t, where: `${where}/${n.name}.${a.name}` });
      (a.tensors ?? []).forEach((t, i) => out.push({ v: t, where: `${where}/${n.name}.${a.name}[${i}]` }));
      if (a.g) tensorsOf(a.g, `${where}/${n.name}.${a.name}`, out, depth + 1);
      (a.graphs ?? []).forEach((sg, i) => tensorsOf(sg, `${where}/${n.name}.${a.name}[${i}]`, out, depth + 1));
    }
  }
  return out;
}

function nodesOf(g: onnx.IGraphProto, out: onnx.INodeProto[] = [], depth = 0): onnx.INodeProto[] {
  if (depth > 8) return out;
  for (const n of g.node ?? []) {
    out.push(n);
    for (const a of n.attribute ?? []) {
      if (a.g) nodesOf(a.g, out, depth + 1);
      for (const sg of a.graphs ?? []) nodesOf(sg, out, depth + 1);
    }
  }
  return out;
}

const HUGE_DIMS = [-1, 0, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 2 ** 62];

function mutateTensor(r: Rand, t: onnx.ITensorProto, names: string[]): string {
  const dims = (t.dims ?? []).map(Number);
  const edits: [string, () => void][] = [
    ['dims huge/negative', () => (t.dims = dims.length ? dims.map((d, i) => (i === r.int(dims.length) ? r.pick(HUGE_DIMS) : d)) : [r.pick(HUGE_DIMS)])],
    ['dims product overflows', () => (t.dims = [2 ** 30, 2 ** 30, 2 ** 30])],
    ['17 dims', () => (t.dims = new Array<number>(17).fill(1))],
    ['dims dropped', () => (t.dims = [])],
    ['dims doubled', () => (t.dims = [...dims, 2])],
    ['dataType odd', () => (t.dataType = r.pick([0, 8, 14, 15, 18, 20, 21, 22, 23, 24, 25, 999, -1, 2 ** 31 - 1]))],
    ['dataType swapped', () => (t.dataType = r.pick([T.FLOAT, T.FLOAT16, T.BFLOAT16, T.DOUBLE, T.UINT8, T.INT64, T.FLOAT8E4M3FN, T.BOOL]))],
    ['raw_data truncated', () => (t.rawData = (t.rawData ?? new Uint8Array(8)).subarray(0, r.int((t.rawData?.length ?? 8) + 1)))],
    ['raw_data extended', () => (t.rawData = new Uint8Array((t.rawData?.length ?? 0) + r.range(1, 64)))],
    ['raw_data beside a typed field', () => (t.rawData = new Uint8Array(4 * Math.min(4096, Math.max(1, dims.reduce((a, b) => a * b, 1)))))],
    ['float_data short', () => (t.floatData = (t.floatData ?? [1, 2, 3]).slice(1))],
    ['int32_data for a float', () => (t.int32Data = Array.from({ length: r.range(0, 300) }, () => r.int(2 ** 31)))],
    ['double_data', () => (t.doubleData = [1.5, 2.5])],
    ['string_data', () => (t.stringData = [new Uint8Array(3)])],
    ['all data dropped', () => ((t.rawData = new Uint8Array(0)), (t.floatData = []), (t.int32Data = []), (t.doubleData = []))],
    ['external without entries', () => ((t.dataLocation = 1), (t.externalData = []))],
    ['data_location odd', () => (t.dataLocation = r.pick([1, 2, 99, -1]) as onnx.TensorProto.DataLocation)],
    ['segment', () => (t.segment = { begin: 0, end: r.pick([1, 2 ** 40]) })],
    ['name duplicated', () => (t.name = r.pick(names))],
    ['name emptied', () => (t.name = '')],
  ];
  const [what, edit] = r.pick(edits);
  edit();
  return what;
}

const LOCATIONS = [
  '../zoo.onnx.data', '/etc/passwd', 'C:\\zoo.onnx.data', 'a/../../zoo.onnx.data', '', '.', './', 'zoo.onnx', 'missing.bin',
  'zoo.onnx.data\u0000x', '\\\\server\\share\\x', 'sub/../zoo.onnx.data', './zoo.onnx.data',
];
const NUMBERS = ['0', '1', '-1', '', ' 64', '1e3', '0x40', '4096', '18446744073709551616', '9007199254740993', '1099511627776', 'NaN', '64.0', '00000000000000064'];

function mutateExternal(r: Rand, t: onnx.ITensorProto): string {
  t.dataLocation = 1;
  const kv = (t.externalData ??= []);
  const set = (key: string, value: string) => {
    const e = kv.find((x) => x.key === key);
    if (e) e.value = value;
    else kv.push({ key, value });
  };
  const edits: [string, () => void][] = [
    ['location', () => set('location', r.pick(LOCATIONS))],
    ['offset', () => set('offset', r.pick(NUMBERS))],
    ['length', () => set('length', r.pick(NUMBERS))],
    ['location removed', () => (t.externalData = kv.filter((e) => e.key !== 'location'))],
    ['duplicate key', () => kv.push({ key: r.pick(['location', 'offset', 'length']), value: r.pick([...NUMBERS, ...LOCATIONS]) })],
    ['checksum/odd key', () => kv.push({ key: r.pick(['checksum', '', 'basepath']), value: 'x' })],
    ['into the data file', () => (t.externalData = [{ key: 'location', value: 'zoo.onnx.data' }, { key: 'offset', value: String(r.int(1200)) }])],
  ];
  const [what, edit] = r.pick(edits);
  edit();
  return `external ${what}`;
}

const ATTR_VALUES = [0, 1, -1, 3, 5, 9, 32, 2 ** 31 - 1, -(2 ** 31), 2 ** 40];

function mutateNode(r: Rand, n: onnx.INodeProto, names: string[]): string {
  const attrs = (n.attribute ??= []);
  const edits: [string, () => void][] = [
    ['int attribute', () => {
      const a = attrs.find((x) => x.type === 2) ?? attrs[0];
      if (a) Object.assign(a, { type: 2, i: r.pick(ATTR_VALUES) });
    }],
    ['MatMulNBits attrs', () => {
      n.domain = 'com.microsoft';
      n.opType = 'MatMulNBits';
      for (const k of ['K', 'N', 'bits', 'block_size']) attrs.push({ name: k, type: 2, i: r.pick(ATTR_VALUES) });
    }],
    ['op type swapped', () => {
      n.opType = r.pick(['MatMul', 'Gemm', 'Conv', 'Gather', 'DequantizeLinear', 'MatMulNBits', 'MatMulInteger', 'Constant', 'If', 'Loop', 'Scan', '']);
      if (r.chance(0.5)) n.domain = r.pick(['', 'com.microsoft', 'ai.onnx', 'x']);
    }],
    ['inputs rewired', () => (n.input = Array.from({ length: r.range(0, 5) }, () => r.pick([...names, '', 'nope'])))],
    ['attributes dropped', () => (n.attribute = [])],
    ['attribute type lies', () => {
      const a = attrs[r.int(Math.max(1, attrs.length))];
      if (a) a.type = r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99]) as onnx.AttributeProto.AttributeType;
    }],
    ['Constant with odd value attribute', () => {
      n.opType = 'Constant';
      n.domain = '';
      n.attribute = [r.pick<onnx.IAttributeProto>([
        { name: 'value_floats', type: 6, floats: [] },
        { name: 'value_ints', type: 7, ints: [2 ** 53 + 2] },
        { name: 'value_string', type: 3 },
        { name: 'sparse_value', type: 11, sparseTensor: { dims: [2 ** 40], values: { dataType: 1, dims: [1], floatData: [1] } } },
        { name: 'value', type: 4 },
        { name: 'value', type: 4, t: { dataType: 1, dims: [2 ** 40] } },
      ])];
    }],
    ['subgraph list', () => attrs.push({ name: 'branches', type: 10, graphs: [{ name: 'sg', node: [{ opType: 'Constant', output: ['c'], attribute: [{ name: 'value', t: { dataType: 1, dims: [1], rawData: new Uint8Array(4) } }] }] }] })],
    ['name/outputs odd', () => ((n.name = r.pick(['', n.name ?? '', 'x'.repeat(5000)])), (n.output = r.chance(0.5) ? [] : [...(n.output ?? []), ...(n.output ?? [])]))],
  ];
  const [what, edit] = r.pick(edits);
  edit();
  return `node ${n.name}: ${what}`;
}

/** nestedIf models by depth, built once per process. */
const nested = new Map<number, Uint8Array>();

function messageMutators(name: string, bytes: Uint8Array): Structured[] {
  const decode = () => onnx.ModelProto.decode(bytes);
  const encode = (m: onnx.ModelProto): Record<string, Uint8Array> => ({ [name]: onnx.ModelProto.encode(m).finish() });
  return [
    {
      name: 'tensor',
      weight: 4,
      run(r) {
        const m = decode();
        const all = tensorsOf(m.graph!);
        const names = all.map((t) => t.v.name ?? '');
        const t = r.pick(all);
        const desc = [`${t.where}: ${mutateTensor(r, t.v, names)}`];
        if (r.chance(0.3)) {
          const u = r.pick(all);
          desc.push(`${u.where}: ${mutateTensor(r, u.v, names)}`);
        }
        return { files: encode(m), desc: desc.join('; ') };
      },
    },
    {
      name: 'external',
      weight: 2,
      run(r) {
        const m = decode();
        const all = tensorsOf(m.graph!);
        const ext = all.filter((t) => t.v.dataLocation === 1);
        const t = ext.length > 0 && r.chance(0.7) ? r.pick(ext) : r.pick(all);
        return { files: encode(m), desc: `${t.where}: ${mutateExternal(r, t.v)}` };
      },
    },
    {
      name: 'node',
      weight: 2,
      run(r) {
        const m = decode();
        const names = tensorsOf(m.graph!).map((t) => t.v.name ?? '');
        return { files: encode(m), desc: mutateNode(r, r.pick(nodesOf(m.graph!)), names) };
      },
    },
    {
      name: 'model',
      run(r) {
        const m = decode();
        const edits: [string, () => void][] = [
          ['ir_version huge', () => (m.irVersion = r.pick([2 ** 53 + 2, 2 ** 62, -1, 0]) as unknown as number)],
          ['opset odd', () => (m.opsetImport = [{ domain: r.pick(['', 'com.microsoft', 'x'.repeat(1000)]), version: r.pick([-1, 0, 2 ** 62, 999]) }])],
          ['metadata_props', () => (m.metadataProps = Array.from({ length: r.pick([1, 2, 5000]) }, (_, i) => ({ key: i % 2 ? 'k' : '__proto__', value: 'v' })))],
          ['graph dropped', () => (m.graph = null)],
          ['graph emptied', () => (m.graph = { name: 'empty' })],
          ['many nodes', () => (m.graph!.node = Array.from({ length: 50000 }, (_, i) => ({ opType: 'Identity', input: ['x'], output: [`o${i}`] })))],
          ['training_info/functions', () => (m.functions = [{ name: 'f', domain: 'd', node: [{ opType: 'Constant', output: ['c'] }] }])],
        ];
        const [what, edit] = r.pick(edits);
        edit();
        return { files: encode(m), desc: what };
      },
    },
    {
      name: 'deep-subgraphs',
      weight: 0.3,
      run(r) {
        const depth = r.pick([63, 64, 65, 200, 2000, 20000]);
        let bytes = nested.get(depth);
        if (!bytes) nested.set(depth, (bytes = nestedIf(depth)));
        return { files: { [name]: bytes }, desc: `If nested ${depth} deep` };
      },
    },
    {
      name: 'raw-data-length-lie',
      weight: 0.5,
      run(r) {
        // A raw_data length prefix that runs past its message: the payload is 16 bytes, the claim is hostile.
        const claim = r.pick([17n, 2n ** 31n, 2n ** 32n + 16n, 2n ** 40n, 2n ** 63n]);
        const tensor = pb.cat(pb.int(1, 2), pb.int(1, 2), pb.int(2, T.FLOAT), pb.str(8, 'w'), pb.bytes(9, new Uint8Array(16), claim));
        return { files: { [name]: modelAround(pb.cat(pb.str(2, 'g'), pb.bytes(5, tensor))) }, desc: `raw_data length := ${claim}` };
      },
    },
  ];
}

function seedOf(label: string, modelFile: string, dataFile?: string): Seed {
  const bytes = new Uint8Array(readFileSync(modelFile));
  const name = path.basename(modelFile);
  const files: SeedFile[] = [{ name, bytes, ...protoStructure(bytes), weight: 3 }];
  if (dataFile) {
    const data = new Uint8Array(readFileSync(dataFile));
    files.push({ name: path.basename(dataFile), bytes: data, fields: [], points: [0, 64, data.length / 2, data.length] });
  }
  return { label, files, open: name, structured: messageMutators(name, bytes) };
}

export const onnxTarget: FuzzTarget = {
  name: 'onnx',
  seeds(dir) {
    const zoo = writeZoo(dir);
    const extras = writeExtras(dir);
    return [seedOf('onnx-zoo', zoo.file, zoo.dataFile), seedOf('onnx-extras', extras.file)];
  },
  run: openAndRead,
};
