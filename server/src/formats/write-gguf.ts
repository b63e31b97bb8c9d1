// GGUF writer (versions 2 and 3), from the format description: magic "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, typed KV pairs, tensor infos (name, n_dims, ne in ggml order — ne[0] the innermost, fastest
// dimension —, ggml type, data offset), padding to general.alignment (default 32), then the data section with every
// tensor starting at a multiple of the alignment. Strings are a u64 byte length + UTF-8; everything little-endian.
// The layout it returns gives the byte offset of every header field (tests corrupt exactly one of them).
import { writeOutputFile, type OutputOptions } from '../output';
import { check } from './errors';
import { GGML_TYPES } from './gguf-dequant';

export type GgufValueType =
  | 'UINT8' | 'INT8' | 'UINT16' | 'INT16' | 'UINT32' | 'INT32' | 'FLOAT32' | 'BOOL'
  | 'STRING' | 'ARRAY' | 'UINT64' | 'INT64' | 'FLOAT64';

export const GGUF_VALUE_TYPE_ID: Record<GgufValueType, number> = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
};

export type GgufScalar = number | bigint | boolean | string;

/** A typed metadata value; array items are scalars of `itemType`, or ARRAY values when nested. */
export type GgufValue =
  | { type: Exclude<GgufValueType, 'ARRAY'>; value: GgufScalar }
  | { type: 'ARRAY'; itemType: GgufValueType; items: (GgufScalar | GgufValue)[] };

/** Shorthands for the value types model metadata uses. */
export const kv = {
  u32: (value: number): GgufValue => ({ type: 'UINT32', value }),
  i32: (value: number): GgufValue => ({ type: 'INT32', value }),
  f32: (value: number): GgufValue => ({ type: 'FLOAT32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'BOOL', value }),
  str: (value: string): GgufValue => ({ type: 'STRING', value }),
  strings: (items: readonly string[]): GgufValue => ({ type: 'ARRAY', itemType: 'STRING', items: [...items] }),
  f32s: (items: ArrayLike<number>): GgufValue => ({ type: 'ARRAY', itemType: 'FLOAT32', items: Array.from(items) }),
  i32s: (items: ArrayLike<number>): GgufValue => ({ type: 'ARRAY', itemType: 'INT32', items: Array.from(items) }),
};

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the innermost (contiguous) dimension, i.e. the reverse of the PyTorch shape. */
  ne: number[];
  /** ggml type id (ggml.h `enum ggml_type`: F32 = 0, F16 = 1, …). */
  type: number;
  data: Uint8Array;
}

export interface GgufSpec {
  version?: number;
  kv?: [string, GgufValue][];
  tensors?: GgufTensor[];
}

export interface GgufLayout {
  bytes: Uint8Array;
  alignment: number;
  dataStart: number;
  /** Per KV: `at` = its key's length field, `typeAt` = its value type field. */
  kv: { key: string; at: number; typeAt: number }[];
  /** Per tensor: offsets of its info fields, its relative data offset and absolute data position. */
  tensors: { name: string; at: number; nDimsAt: number; typeAt: number; offsetAt: number; offset: number; dataAt: number }[];
}

export const GGUF_DEFAULT_ALIGNMENT = 32;

const utf8 = new TextEncoder();

/** Little-endian writes into a growing buffer. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  /** Room for `n` more bytes; returns where they start. */
  private grow(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(2 * this.buf.length, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  raw(b: Uint8Array): void {
    const at = this.grow(b.length);
    this.buf.set(b, at);
  }

  private fixed(n: number, set: (dv: DataView, at: number) => void): void {
    const at = this.grow(n); // before reading this.dv or this.buf: growing replaces them
    set(this.dv, at);
  }

  u32(v: number): void {
    this.fixed(4, (dv, at) => dv.setUint32(at, v, true));
  }

  u64(v: number | bigint): void {
    this.fixed(8, (dv, at) => dv.setBigUint64(at, BigInt(v), true));
  }

  str(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.raw(b);
  }

  scalar(type: GgufValueType, v: GgufScalar): void {
    const n = Number(v);
    switch (type) {
      case 'UINT8': return this.fixed(1, (dv, at) => dv.setUint8(at, n));
      case 'INT8': return this.fixed(1, (dv, at) => dv.setInt8(at, n));
      case 'UINT16': return this.fixed(2, (dv, at) => dv.setUint16(at, n, true));
      case 'INT16': return this.fixed(2, (dv, at) => dv.setInt16(at, n, true));
      case 'UINT32': return this.u32(n);
      case 'INT32': return this.fixed(4, (dv, at) => dv.setInt32(at, n, true));
      case 'FLOAT32': return this.fixed(4, (dv, at) => dv.setFloat32(at, n, true));
      case 'BOOL': return this.fixed(1, (dv, at) => dv.setUint8(at, v ? 1 : 0));
      case 'STRING': return this.str(String(v));
      case 'UINT64': return this.u64(BigInt(v));
      case 'INT64': return this.fixed(8, (dv, at) => dv.setBigInt64(at, BigInt(v), true));
      case 'FLOAT64': return this.fixed(8, (dv, at) => dv.setFloat64(at, n, true));
      default: throw new Error(`not a scalar type: ${type}`);
    }
  }

  value(v: GgufValue): void {
    if (v.type !== 'ARRAY') return this.scalar(v.type, v.value);
    this.u32(GGUF_VALUE_TYPE_ID[v.itemType]);
    this.u64(v.items.length);
    for (const item of v.items) {
      if (v.itemType === 'ARRAY') this.value(item as GgufValue);
      else this.scalar(v.itemType, item as GgufScalar);
    }
  }

  pad(alignment: number): void {
    this.grow((alignment - (this.length % alignment)) % alignment); // fresh bytes are zero
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** The file's bytes as given (no validation: tests write malformed files with it); tensors in order, each aligned. */
export function ggufBytes(spec: GgufSpec): GgufLayout {
  const kvs = spec.kv ?? [];
  const tensors = spec.tensors ?? [];
  const alignKv = kvs.find(([k, v]) => k === 'general.alignment' && v.type === 'UINT32');
  const alignment = alignKv && alignKv[1].type === 'UINT32' ? Number(alignKv[1].value) : GGUF_DEFAULT_ALIGNMENT;

  const s = new ByteSink();
  s.raw(utf8.encode('GGUF'));
  s.u32(spec.version ?? 3);
  s.u64(tensors.length);
  s.u64(kvs.length);
  const kvLayout: GgufLayout['kv'] = [];
  for (const [key, v] of kvs) {
    const at = s.length;
    s.str(key);
    const typeAt = s.length;
    s.u32(GGUF_VALUE_TYPE_ID[v.type]);
    s.value(v);
    kvLayout.push({ key, at, typeAt });
  }
  const tLayout: GgufLayout['tensors'] = [];
  let offset = 0;
  for (const t of tensors) {
    const at = s.length;
    s.str(t.name);
    const nDimsAt = s.length;
    s.u32(t.ne.length);
    for (const d of t.ne) s.u64(d);
    const typeAt = s.length;
    s.u32(t.type);
    const offsetAt = s.length;
    s.u64(offset);
    tLayout.push({ name: t.name, at, nDimsAt, typeAt, offsetAt, offset, dataAt: 0 });
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  s.pad(alignment);
  const dataStart = s.length;
  tensors.forEach((t, i) => {
    tLayout[i].dataAt = s.length;
    s.raw(t.data);
    s.pad(alignment);
  });
  return { bytes: s.bytes(), alignment, dataStart, kv: kvLayout, tensors: tLayout };
}

/** What llama.cpp's loader would refuse: duplicate keys or names, a bad alignment, data that does not fit ne × type. */
function validate(file: string, spec: GgufSpec): void {
  const keys = new Set<string>();
  for (const [key, v] of spec.kv ?? []) {
    check(!keys.has(key), 'bad-metadata', `duplicate metadata key ${key}`, { file });
    keys.add(key);
    if (key === 'general.alignment') {
      const ok = v.type === 'UINT32' && Number.isInteger(Number(v.value)) && Number(v.value) > 0 && (Number(v.value) & (Number(v.value) - 1)) === 0;
      check(ok, 'bad-metadata', 'general.alignment must be a UINT32 power of two', { file });
    }
  }
  const names = new Set<string>();
  for (const t of spec.tensors ?? []) {
    const where = { file, tensor: t.name };
    check(!names.has(t.name), 'bad-tensor', 'duplicate tensor name', where);
    names.add(t.name);
    check(t.ne.length <= 4 && t.ne.every((d) => Number.isSafeInteger(d) && d >= 0), 'bad-shape', `expected at most 4 dimensions of size ≥ 0, found [${t.ne.join(', ')}]`, where);
    const type = GGML_TYPES.get(t.type);
    check(type, 'bad-dtype', `unknown ggml type ${t.type}`, where);
    const n = t.ne.reduce((a, b) => a * b, 1);
    check((t.ne[0] ?? 1) % type.blockSize === 0, 'bad-shape', `ne[0] = ${t.ne[0] ?? 1} is not a multiple of the ${type.name} block of ${type.blockSize}`, where);
    const bytes = (n / type.blockSize) * type.typeSize;
    check(bytes === t.data.length, 'bad-shape', `ne [${t.ne.join(', ')}] of ${type.name} needs ${bytes} bytes, found ${t.data.length}`, where);
  }
}

/** Writes a GGUF file atomically (temp file + rename, never over an input: see output.ts). */
export async function writeGgufFile(target: string, spec: GgufSpec, opts: OutputOptions = {}): Promise<void> {
  validate(target, spec);
  await writeOutputFile(target, ggufBytes(spec).bytes, opts);
}
