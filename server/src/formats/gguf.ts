// GGUF (llama.cpp) reader, versions 2 and 3. Little-endian layout: magic "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, kv_count × (string key, u32 value type, value), tensor_count × (string name, u32 n_dims,
// n_dims × u64 ne, u32 ggml type, u64 offset), padding to general.alignment (default 32), then the data section
// that tensor offsets are relative to. Strings are a u64 length + UTF-8 bytes. ne[0] is the innermost dimension,
// so shapes are reported reversed (PyTorch order: a Linear weight is [out, in], as in HF checkpoints).
//
// Own parser rather than @huggingface/gguf: that one materializes every metadata array (150k-entry vocabularies)
// and its errors carry no byte offsets. This one streams the header through RandomAccessFile in chunks, checks
// every count and length against LIMITS and the bytes left in the file before it loops or allocates, locates
// every rejection, and summarizes large arrays while skipping over them.
import * as path from 'node:path';
import { check, LIMITS, QuantLensError, type Location } from './errors';
import { FilePool, RandomAccessFile } from './file';
import { readPlainTensor, shapeSize } from './dtypes';
import { GGML_TYPES, type GgmlType } from './gguf-dequant';
import { describe } from './json';
import { guessLayout, layerOf } from './layers';
import type { Checkpoint, CheckpointReader, ElementRange, TensorInfo, WeightLayout } from './types';

const MAGIC = [0x47, 0x47, 0x55, 0x46]; // "GGUF"
const GGML_MAX_DIMS = 4;
const DEFAULT_ALIGNMENT = 32;
/** Metadata arrays longer than this are summarized as {type, length, first} instead of copied. */
const INLINE_ARRAY = 256;
const SUMMARY_ITEMS = 5;
/** Array items kept in memory across all metadata; past it arrays are summarized with fewer (or no) items. */
const INLINE_BUDGET = 65_536;
/** The spec allows nested arrays (llama.cpp refuses them); the depth bound keeps recursion shallow. */
const MAX_ARRAY_DEPTH = 4;
/** Header bytes fetched per read. */
const CHUNK = 1 << 20;

/** GGUF metadata value types, indexed by their u32 id. */
const VALUE_TYPES = ['UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY', 'UINT64', 'INT64', 'FLOAT64'];
const UINT32 = 4;
const STRING = 8;
const ARRAY = 9;
/** Encoded size of each value type; for STRING and ARRAY the smallest possible encoding (empty). */
const MIN_VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
/** Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8). Smallest KV: empty key + type + u8. */
const MIN_TENSOR_INFO_BYTES = 24;
const MIN_KV_BYTES = 13;

export const ggufReader: CheckpointReader = {
  format: 'gguf',
  match: (p) => p.head.length >= 4 && MAGIC.every((b, i) => p.head[i] === b),
  open: openGguf,
};

// ---------------------------------------------------------------------------------------------
// Header cursor

const utf8 = new TextDecoder();

/** Sequential, bounds-checked reads over the header through a chunk buffer; every failure names its byte. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private bufStart = 0;

  /** Read once: the hot paths below run per vocabulary entry. */
  private readonly maxHeader = LIMITS.maxHeaderBytes;
  private readonly maxString = BigInt(LIMITS.maxStringBytes);

  constructor(readonly f: RandomAccessFile) {}

  at(offset = this.pos): Location {
    return { file: this.f.path, offset };
  }

  remaining(): number {
    return this.f.size - this.pos;
  }

  /** `n` bytes from pos must lie in the file and inside the header limit. */
  private checkRoom(n: number, what: string): void {
    const end = this.pos + n;
    if (end > this.f.size) {
      throw new QuantLensError('truncated', `file ends at byte ${this.f.size} inside ${what} (${n} bytes needed at byte ${this.pos})`, this.at());
    }
    if (end > this.maxHeader) {
      throw new QuantLensError('header-too-large', `GGUF header (metadata and tensor infos) runs past the ${this.maxHeader}-byte limit`, this.at());
    }
  }

  /** Buffer `n` bytes at pos; returns their index in the buffer. */
  private async need(n: number, what: string): Promise<number> {
    this.checkRoom(n, what);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      this.buf = await this.f.read(this.pos, Math.min(Math.max(n, CHUNK), this.f.size - this.pos), 'GGUF header');
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.bufStart = this.pos;
    }
    const i = this.pos - this.bufStart;
    this.pos += n;
    return i;
  }

  skip(n: number, what: string): void {
    this.checkRoom(n, what);
    this.pos += n;
  }

  async bytes(n: number, what: string): Promise<Uint8Array> {
    const i = await this.need(n, what);
    return this.buf.subarray(i, i + n);
  }

  // The index is awaited before `this.view` is read: a refill replaces the view.
  async u32(what: string): Promise<number> {
    const i = await this.need(4, what);
    return this.view.getUint32(i, true);
  }

  async u64(what: string): Promise<bigint> {
    const i = await this.need(8, what);
    return this.view.getBigUint64(i, true);
  }

  /** A u64 that must be exact as a JS number. */
  async safeU64(what: string, where: Location): Promise<number> {
    const v = await this.u64(what);
    check(v <= BigInt(Number.MAX_SAFE_INTEGER), 'bad-value', `${what} is ${v}, beyond 2^53`, where);
    return Number(v);
  }

  /** A header count: at most `limit`, and `minBytes` each must fit in the rest of the file. */
  async count(what: string, limit: number, minBytes: number, code: string): Promise<number> {
    const at = this.at();
    const v = await this.u64(what);
    check(v <= BigInt(limit), code, `${what} is ${v}; the limit is ${limit}`, at);
    const n = Number(v);
    check(
      n * minBytes <= this.remaining(),
      'truncated',
      () => `${what} is ${n}, which needs at least ${n * minBytes} bytes, but the file has ${this.remaining()} bytes left`,
      at,
    );
    return n;
  }

  /** A string's length, read at `at`, checked against the limit and the bytes left. */
  private stringLength(len: bigint, at: number, what: string): number {
    if (len > this.maxString) throw new QuantLensError('bad-string', `${what}: length ${len} exceeds the limit of ${this.maxString} bytes`, this.at(at));
    const n = Number(len);
    if (n > this.remaining()) {
      throw new QuantLensError('truncated', `${what}: length ${n} runs past the end of the file (${this.remaining()} bytes left)`, this.at(at));
    }
    return n;
  }

  /** u64 length + bytes; the length is checked before anything is read. */
  async stringBytes(what: string): Promise<Uint8Array> {
    const at = this.pos;
    return this.bytes(this.stringLength(await this.u64(`length of ${what}`), at, what), what);
  }

  /**
   * Skip `count` strings. Lengths already in the buffer are read synchronously: a 150k-entry vocabulary
   * would otherwise pay several promise round trips per entry.
   */
  async skipStrings(count: number, what: string): Promise<void> {
    for (let k = 0; k < count; k++) {
      const at = this.pos;
      const i = at - this.bufStart;
      let len: bigint;
      if (i >= 0 && i + 8 <= this.buf.length && at + 8 <= this.maxHeader) {
        len = this.view.getBigUint64(i, true);
        this.pos += 8;
      } else {
        len = await this.u64(`length of ${what}`);
      }
      this.skip(this.stringLength(len, at, what), what);
    }
  }

  async string(what: string): Promise<string> {
    return utf8.decode(await this.stringBytes(what));
  }

  /** A fixed-size metadata value, made JSON-safe: 64-bit integers beyond 2^53 and non-finite floats become strings. */
  async scalar(type: number, what: string): Promise<unknown> {
    const i = await this.need(MIN_VALUE_BYTES[type], what);
    const v = this.view;
    switch (type) {
      case 0: return v.getUint8(i);
      case 1: return v.getInt8(i);
      case 2: return v.getUint16(i, true);
      case 3: return v.getInt16(i, true);
      case 4: return v.getUint32(i, true);
      case 5: return v.getInt32(i, true);
      case 6: return jsonFloat(v.getFloat32(i, true));
      case 7: return v.getUint8(i) !== 0;
      case 10: return jsonInt(v.getBigUint64(i, true));
      case 11: return jsonInt(v.getBigInt64(i, true));
      default: return jsonFloat(v.getFloat64(i, true));
    }
  }
}

const jsonFloat = (x: number): number | string => (Number.isFinite(x) ? x : String(x));
const jsonInt = (x: bigint): number | string =>
  x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();

// ---------------------------------------------------------------------------------------------
// Metadata

interface Kv {
  type: number;
  value: unknown;
  /** Byte offset of the value type field. */
  at: number;
}

async function valueType(c: Cursor, what: string): Promise<number> {
  const at = c.at();
  const t = await c.u32(what);
  check(t < VALUE_TYPES.length, 'bad-value-type', `${what} is ${t}; GGUF value types are 0..${VALUE_TYPES.length - 1}`, at);
  return t;
}

/** Array items the metadata may still keep in memory (INLINE_BUDGET per file). */
interface Budget {
  left: number;
}

/**
 * One metadata value. Arrays longer than INLINE_ARRAY (or past the budget) come back as {type, length, first}
 * and the rest of their items is skipped without being kept.
 */
async function readValue(c: Cursor, type: number, key: string, depth: number, budget: Budget): Promise<unknown> {
  const what = `metadata ${key}`;
  if (type === STRING) return c.string(what);
  if (type !== ARRAY) return c.scalar(type, what);
  check(depth < MAX_ARRAY_DEPTH, 'bad-value', `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH} levels`, c.at());
  const itemType = await valueType(c, `array item type of ${what}`);
  const n = await c.count(`array length of ${what}`, LIMITS.maxArrayElements, MIN_VALUE_BYTES[itemType], 'too-many-items');
  const whole = n <= INLINE_ARRAY && n <= budget.left;
  const keep = whole ? n : Math.min(n, SUMMARY_ITEMS, budget.left);
  budget.left -= keep;
  const items: unknown[] = [];
  for (let i = 0; i < keep; i++) items.push(await readValue(c, itemType, key, depth + 1, budget));
  if (whole) return items;
  if (itemType === STRING) await c.skipStrings(n - keep, what);
  else if (itemType === ARRAY) for (let i = keep; i < n; i++) await readValue(c, itemType, key, depth + 1, { left: 0 });
  else c.skip((n - keep) * MIN_VALUE_BYTES[itemType], what);
  return { type: VALUE_TYPES[itemType], length: n, first: items };
}

async function readKvs(c: Cursor, count: number): Promise<Map<string, Kv>> {
  const kvs = new Map<string, Kv>();
  const budget: Budget = { left: INLINE_BUDGET };
  for (let i = 0; i < count; i++) {
    const keyAt = c.at();
    const key = await c.string(`metadata key #${i}`);
    check(!kvs.has(key), 'duplicate-key', `metadata key ${describe(key)} appears twice`, keyAt);
    const at = c.pos;
    const type = await valueType(c, `value type of metadata ${key}`);
    kvs.set(key, { type, value: await readValue(c, type, key, 0, budget), at });
  }
  return kvs;
}

/** general.alignment: a UINT32 power of two (llama.cpp's rule); 32 when absent. */
function alignmentOf(kvs: Map<string, Kv>, file: string): number {
  const kv = kvs.get('general.alignment');
  if (!kv) return DEFAULT_ALIGNMENT;
  const where = { file, offset: kv.at };
  check(kv.type === UINT32, 'bad-alignment', `general.alignment must be a UINT32, found ${VALUE_TYPES[kv.type]}`, where);
  const a = kv.value as number;
  check(a > 0 && (a & (a - 1)) === 0, 'bad-alignment', `general.alignment is ${a}; it must be a power of two`, where);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Tensor infos

interface RawInfo {
  name: string;
  ne: number[];
  typeId: number;
  offset: number;
  /** Byte offsets of the info's fields, for located errors. */
  neAt: number;
  typeAt: number;
  offsetAt: number;
}

async function readInfo(c: Cursor, i: number): Promise<RawInfo> {
  const name = await c.string(`name of tensor #${i}`);
  const where = (offset: number): Location => ({ file: c.f.path, offset, tensor: name });
  const dimsAt = c.pos;
  const nDims = await c.u32(`n_dims of tensor ${name}`);
  check(nDims <= GGML_MAX_DIMS, 'bad-dims', `n_dims is ${nDims}; GGUF tensors have at most ${GGML_MAX_DIMS} dimensions (GGML_MAX_DIMS)`, where(dimsAt));
  const neAt = c.pos;
  const ne: number[] = [];
  for (let k = 0; k < nDims; k++) ne.push(await c.safeU64(`ne[${k}] of tensor ${name}`, where(c.pos)));
  const typeAt = c.pos;
  const typeId = await c.u32(`type of tensor ${name}`);
  const offsetAt = c.pos;
  const offset = await c.safeU64(`data offset of tensor ${name}`, where(offsetAt));
  return { name, ne, typeId, offset, neAt, typeAt, offsetAt };
}

const FLOAT_TYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Validate one info against the data section and describe it. */
function tensorEntry(r: RawInfo, file: string, fileSize: number, dataStart: number, alignment: number): { info: TensorInfo; type: GgmlType } {
  const where = (offset: number): Location => ({ file, offset, tensor: r.name });
  const type = GGML_TYPES.get(r.typeId);
  check(type, 'unknown-ggml-type', `unknown ggml type id ${r.typeId}: without its block size the tensor's bytes cannot be sized or checked`, where(r.typeAt));
  const ne0 = r.ne.length > 0 ? r.ne[0] : 1;
  check(
    ne0 % type.blockSize === 0,
    'bad-shape',
    `ne[0] = ${ne0} is not a multiple of the ${type.name} block size ${type.blockSize}`,
    where(r.neAt),
  );
  const params = shapeSize(r.ne);
  const byteLength = (params / type.blockSize) * type.typeSize;
  check(Number.isSafeInteger(byteLength), 'bad-shape', `ne ${describe(r.ne)} of ${type.name} spans more than 2^53 bytes`, where(r.neAt));
  check(r.offset % alignment === 0, 'misaligned', `data offset ${r.offset} is not a multiple of general.alignment (${alignment})`, where(r.offsetAt));
  const byteOffset = dataStart + r.offset;
  check(
    byteOffset + byteLength <= fileSize,
    'out-of-range',
    () =>
      `${type.name} data of ${byteLength} bytes at data offset ${r.offset} (bytes ${byteOffset}..${byteOffset + byteLength}) ` +
      `runs past the end of the file (${fileSize} bytes; truncated file?)`,
    where(r.offsetAt),
  );
  const shape = [...r.ne].reverse();
  const analyzable = FLOAT_TYPES.has(type.name) || type.dequantize !== undefined;
  let reason: string | undefined;
  if (!analyzable) reason = /^I\d+$/.test(type.name) ? 'integer tensor: listed, not analyzed' : `GGUF type ${type.name} not supported for analysis`;
  const info: TensorInfo = {
    name: r.name,
    dtype: type.dtype,
    shape,
    params,
    file,
    byteOffset,
    byteLength,
    analyzable,
    ...(reason ? { reason } : {}),
    layout: layoutOf(r.name, shape),
    layer: layerOf(r.name),
    storage: 'gguf',
    ...(type.blocked ? { quantForm: type.name } : {}),
  };
  return { info, type };
}

/** ggml quantizes along ne[0], the last PyTorch axis: stacked MoE experts [n_expert, out, in] act like Linear weights. */
function layoutOf(name: string, shape: number[]): WeightLayout {
  if (shape.length === 3 && /_exps(\.|$)/.test(name)) return 'out_in';
  return guessLayout(name, shape);
}

/** No two non-empty tensors may share a byte. */
function checkNoOverlap(entries: readonly { info: TensorInfo; raw: RawInfo }[]): void {
  const sorted = entries.filter((e) => e.info.byteLength > 0).sort((a, b) => a.info.byteOffset - b.info.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    const t = sorted[i];
    check(
      t.info.byteOffset >= p.info.byteOffset + p.info.byteLength,
      'overlap',
      () =>
        `data [${t.raw.offset}, ${t.raw.offset + t.info.byteLength}) overlaps tensor ${p.info.name} ` +
        `[${p.raw.offset}, ${p.raw.offset + p.info.byteLength}) (offsets relative to the data section)`,
      { file: t.info.file, offset: t.raw.offsetAt, tensor: t.info.name },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Open

interface Parsed {
  tensors: { info: TensorInfo; type: GgmlType }[];
  metadata: Record<string, unknown>;
}

async function parseHeader(f: RandomAccessFile): Promise<Parsed> {
  const file = f.path;
  const c = new Cursor(f);
  const magic = await c.bytes(4, 'the magic number');
  check(
    MAGIC.every((b, i) => magic[i] === b),
    'bad-magic',
    () => `expected the magic "GGUF" (47 47 55 46), found ${[...magic].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`,
    c.at(0),
  );
  const version = await c.u32('the version');
  check(version !== 1, 'unsupported-version', 'unsupported GGUF version 1 (32-bit counts, superseded in 2023); expected version 2 or 3', c.at(4));
  check(
    version === 2 || version === 3,
    'unsupported-version',
    version !== 0 && (version & 0xffff) === 0
      ? `version field reads 0x${version.toString(16)}: a big-endian GGUF file, which is not supported`
      : `unsupported GGUF version ${version}; expected 2 or 3`,
    c.at(4),
  );
  const tensorCount = await c.count('tensor_count', LIMITS.maxTensors, MIN_TENSOR_INFO_BYTES, 'too-many-tensors');
  const kvCount = await c.count('kv_count', LIMITS.maxMetadataEntries, MIN_KV_BYTES, 'too-many-kv');
  const kvs = await readKvs(c, kvCount);
  const alignment = alignmentOf(kvs, file);

  const raws: RawInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = c.pos;
    const r = await readInfo(c, i);
    check(!names.has(r.name), 'duplicate-tensor', 'a second tensor info has this name', { file, offset: at, tensor: r.name });
    names.add(r.name);
    raws.push(r);
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const entries = raws.map((raw) => ({ raw, ...tensorEntry(raw, file, f.size, dataStart, alignment) }));
  checkNoOverlap(entries);
  return {
    tensors: entries.map(({ info, type }) => ({ info, type })),
    metadata: Object.fromEntries([...kvs].map(([k, kv]) => [k, kv.value])),
  };
}

async function openGguf(p: string): Promise<Checkpoint> {
  const file = path.resolve(p);
  let f: RandomAccessFile;
  try {
    f = await RandomAccessFile.open(file);
  } catch (e) {
    if (e instanceof QuantLensError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new QuantLensError(err.code === 'ENOENT' ? 'not-found' : 'io', err.code === 'ENOENT' ? 'no such file' : `cannot open: ${err.message}`, { file });
  }
  let parsed: Parsed;
  try {
    parsed = await parseHeader(f);
  } finally {
    await f.close();
  }
  return checkpoint(file, parsed);
}

// ---------------------------------------------------------------------------------------------
// Reading tensors

/** Dequantize the blocks covering an element range (flattened in ne order) and return exactly that range. */
async function readBlocks(f: RandomAccessFile, t: TensorInfo, type: GgmlType, range?: ElementRange): Promise<Float32Array> {
  const where = { file: t.file, tensor: t.name };
  const dequantize = type.dequantize;
  check(dequantize, 'not-analyzable', t.reason ?? `GGUF type ${type.name} not supported for analysis`, where);
  const start = range?.start ?? 0;
  const count = range?.count ?? t.params;
  check(
    Number.isSafeInteger(start) && Number.isSafeInteger(count) && start >= 0 && count >= 0 && start + count <= t.params,
    'bad-range',
    `element range ${start}+${count} outside tensor of ${t.params} elements`,
    where,
  );
  if (count === 0) return new Float32Array(0);
  const bs = type.blockSize;
  const first = Math.floor(start / bs);
  const blocks = Math.ceil((start + count) / bs) - first;
  const bytes = await f.read(t.byteOffset + first * type.typeSize, blocks * type.typeSize, `tensor ${t.name}`);
  const out = new Float32Array(blocks * bs);
  dequantize(bytes, blocks, out);
  const skip = start - first * bs;
  return skip === 0 && count === out.length ? out : out.slice(skip, skip + count);
}

function checkpoint(file: string, parsed: Parsed): Checkpoint {
  const byName = new Map(parsed.tensors.map((e) => [e.info.name, e]));
  const pool = new FilePool();
  let closed = false;
  return {
    format: 'gguf',
    path: file,
    files: [file],
    tensors: parsed.tensors.map((e) => e.info),
    metadata: parsed.metadata,
    async read(name, range) {
      check(!closed, 'closed', 'checkpoint already closed', { file, tensor: name });
      const e = byName.get(name);
      check(e, 'unknown-tensor', `no tensor named ${describe(name)} in this checkpoint`, { file, tensor: name });
      const f = await pool.get(file);
      return e.type.blocked ? readBlocks(f, e.info, e.type, range) : readPlainTensor(f, e.info, range);
    },
    async close() {
      closed = true;
      await pool.closeAll();
    },
  };
}
