// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the data buffer
// (offsets relative to byte 8 + N). Sharded checkpoints add `*.safetensors.index.json` with a `weight_map`.
// Every header-declared size and offset is checked against the file before anything is read.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { check, LIMITS, QuantLensError, type Location } from './errors';
import { checkShardInside, plainCheckpoint } from './plain-checkpoint';
import { RandomAccessFile } from './file';
import { FLOAT_DTYPES, PLAIN_DTYPE_BYTES, shapeSize } from './dtypes';
import { describe, isObject, parseJsonObject, type JsonObject } from './json';
import { guessLayout, layerOf } from './layers';
import type { Checkpoint, CheckpointReader, DType, TensorInfo } from './types';

/** The dtypes this reader accepts (the safetensors names we can size and, for floats, decode). */
const DTYPES: ReadonlySet<string> = new Set<DType>([
  'F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2',
  'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL',
]);

export const safetensorsReader: CheckpointReader = {
  format: 'safetensors',
  match(p) {
    try {
      return isIndexPath(p.path) ? looksLikeIndex(p.head) : looksLikeSafetensors(p.head, p.size);
    } catch {
      return false;
    }
  },
  open(p) {
    return isIndexPath(p) ? openIndex(p) : openSingle(p);
  },
};

const isIndexPath = (p: string): boolean => /\.json$/i.test(p);

/** Header length sane and the JSON header starts with `{`. */
function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 9) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(4, true) !== 0) return false; // high word: ≥ 4 GiB header
  const n = dv.getUint32(0, true);
  return n >= 2 && n <= LIMITS.maxHeaderBytes && n <= size - 8 && head[8] === 0x7b;
}

/** A JSON object with a `weight_map` whose values (as far as the head shows) name `.safetensors` files. */
function looksLikeIndex(head: Uint8Array): boolean {
  const text = new TextDecoder().decode(head);
  const open = /"weight_map"\s*:\s*\{/.exec(text);
  if (!/^\s*\{/.test(text) || !open) return false;
  const start = open.index + open[0].length;
  const close = text.indexOf('}', start);
  const body = text.slice(start, close < 0 ? undefined : close);
  let pairs = 0;
  for (const m of body.matchAll(/"(?:[^"\\]|\\.)*"\s*:\s*"((?:[^"\\]|\\.)*)"/g)) {
    if (!m[1].endsWith('.safetensors')) return false;
    pairs++;
  }
  return pairs > 0;
}

// ---------------------------------------------------------------------------------------------
// Single file

async function openSingle(p: string): Promise<Checkpoint> {
  const file = path.resolve(p);
  const parsed = await parseFile(file, { file });
  return plainCheckpoint('safetensors', file, [file], parsed.tensors, parsed.metadata);
}

interface Parsed {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

/** Open a file, turning "not found"-style OS errors into located ones (`where` says who referenced it). */
async function openFile(file: string, where: Location): Promise<RandomAccessFile> {
  try {
    return await RandomAccessFile.open(file);
  } catch (e) {
    if (e instanceof QuantLensError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new QuantLensError('not-found', `no such file: ${file}`, where);
    throw new QuantLensError('io', `cannot open ${file}: ${err.message}`, where);
  }
}

/** List a safetensors file's tensors (in data order) and metadata; reads only the header. */
async function parseFile(file: string, referencedBy: Location, storage?: string): Promise<Parsed> {
  const f = await openFile(file, referencedBy);
  try {
    const { header, dataStart } = await readHeader(f);
    const dataSize = f.size - dataStart;
    const names = Object.keys(header);
    check(names.length <= LIMITS.maxTensors + 1, 'too-many-tensors', `header lists ${names.length} entries (limit ${LIMITS.maxTensors})`, {
      file,
      offset: 8,
    });
    const tensors: TensorInfo[] = [];
    for (const name of names) {
      if (name !== '__metadata__') tensors.push(tensorEntry(name, header[name], file, dataStart, dataSize, storage));
    }
    tensors.sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
    checkNoOverlap(tensors, dataStart);
    return { tensors, metadata: metadataOf(header.__metadata__, file) };
  } finally {
    await f.close();
  }
}

async function readHeader(f: RandomAccessFile): Promise<{ header: JsonObject; dataStart: number }> {
  const file = f.path;
  check(f.size >= 8, 'truncated', `file has ${f.size} bytes; a safetensors file starts with an 8-byte header length`, {
    file,
    offset: 0,
  });
  const n = new DataView((await f.read(0, 8, 'header length')).buffer).getBigUint64(0, true);
  check(n >= 2n && n <= BigInt(LIMITS.maxHeaderBytes), 'bad-header', `header length ${n} is outside 2..${LIMITS.maxHeaderBytes} bytes`, {
    file,
    offset: 0,
  });
  const len = Number(n);
  check(8 + len <= f.size, 'truncated', `header length ${len} runs past the end of the file (${f.size} bytes: ${f.size - 8} after the length)`, {
    file,
    offset: 0,
  });
  const bytes = await f.read(8, len, 'JSON header');
  check(bytes[0] === 0x7b, 'bad-header', `JSON header must start with '{', found byte 0x${bytes[0].toString(16).padStart(2, '0')}`, {
    file,
    offset: 8,
  });
  return { header: parseJsonObject(bytes, file, 8, 'safetensors header'), dataStart: 8 + len };
}

/** Validate one header entry against the data buffer (`dataSize` bytes from `dataStart`). */
function tensorEntry(name: string, v: unknown, file: string, dataStart: number, dataSize: number, storage?: string): TensorInfo {
  const where: Location = { file, tensor: name };
  check(isObject(v), 'bad-entry', () => `expected an object {dtype, shape, data_offsets}, found ${describe(v)}`, where);
  const { dtype, shape, data_offsets: offsets } = v;
  check(typeof dtype === 'string', 'bad-entry', () => `dtype must be a string, found ${describe(dtype)}`, where);
  check(DTYPES.has(dtype), 'unknown-dtype', () => `unknown dtype ${describe(dtype)} (expected one of ${[...DTYPES].join(', ')})`, where);
  check(
    Array.isArray(shape) && shape.length <= LIMITS.maxDims,
    'bad-shape',
    () => `shape must be an array of at most ${LIMITS.maxDims} dims, found ${describe(shape)}`,
    where,
  );
  check(
    shape.every((d) => Number.isSafeInteger(d) && d >= 0),
    'bad-shape',
    () => `shape dims must be non-negative integers, found ${describe(shape)}`,
    where,
  );
  const dims = shape as number[];
  const params = shapeSize(dims);
  check(!Number.isNaN(params), 'bad-shape', () => `element count of shape ${describe(shape)} exceeds 2^53`, where);
  check(
    Array.isArray(offsets) && offsets.length === 2 && offsets.every((o) => Number.isSafeInteger(o) && o >= 0),
    'bad-offsets',
    () => `data_offsets must be two non-negative integers [begin, end], found ${describe(offsets)}`,
    where,
  );
  const [begin, end] = offsets as [number, number];
  const at: Location = { ...where, offset: dataStart + begin };
  check(begin <= end, 'bad-offsets', `data_offsets [${begin}, ${end}]: begin is after end`, at);
  check(
    end <= dataSize,
    'out-of-range',
    () => `data_offsets [${begin}, ${end}] run past the data buffer of ${dataSize} bytes (bytes ${dataStart}..${dataStart + dataSize}; truncated file?)`,
    at,
  );
  const size = PLAIN_DTYPE_BYTES[dtype as DType]!;
  check(
    end - begin === params * size,
    'shape-size-mismatch',
    () => `shape ${describe(shape)} of ${dtype} needs ${params} × ${size} = ${params * size} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`,
    at,
  );
  const float = FLOAT_DTYPES.has(dtype as DType);
  return {
    name,
    dtype: dtype as DType,
    shape: dims,
    params,
    file,
    byteOffset: dataStart + begin,
    byteLength: end - begin,
    analyzable: float,
    ...(float ? {} : { reason: dtype === 'BOOL' ? 'boolean tensor: listed, not analyzed' : 'integer tensor: listed, not analyzed' }),
    layout: guessLayout(name, dims),
    layer: layerOf(name),
    ...(storage ? { storage } : {}),
  };
}

/** `sorted` is in byte order; no two non-empty tensors may share a byte. */
function checkNoOverlap(sorted: readonly TensorInfo[], dataStart: number): void {
  let prev: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.byteLength === 0) continue;
    if (prev) {
      const p = prev;
      check(
        t.byteOffset >= p.byteOffset + p.byteLength,
        'overlap',
        () =>
          `data_offsets [${t.byteOffset - dataStart}, ${t.byteOffset - dataStart + t.byteLength}] overlap tensor ${p.name} ` +
          `[${p.byteOffset - dataStart}, ${p.byteOffset - dataStart + p.byteLength}]`,
        { file: t.file, tensor: t.name, offset: t.byteOffset },
      );
    }
    prev = t;
  }
}

function metadataOf(v: unknown, file: string): Record<string, string> {
  if (v === undefined) return {};
  const where = { file, tensor: '__metadata__' };
  check(isObject(v), 'bad-metadata', () => `__metadata__ must be an object of strings, found ${describe(v)}`, where);
  const entries = Object.entries(v);
  check(entries.length <= LIMITS.maxMetadataEntries, 'bad-metadata', `__metadata__ has ${entries.length} entries (limit ${LIMITS.maxMetadataEntries})`, where);
  for (const [k, s] of entries) {
    check(typeof s === 'string', 'bad-metadata', () => `__metadata__.${k} must be a string, found ${describe(s)}`, where);
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Sharded: `model.safetensors.index.json` → {metadata?, weight_map: {tensor: shard file}}

async function openIndex(p: string): Promise<Checkpoint> {
  const file = path.resolve(p);
  const dir = path.dirname(file);
  const f = await openFile(file, { file });
  let root: JsonObject;
  try {
    check(f.size <= LIMITS.maxHeaderBytes, 'too-large', `index of ${f.size} bytes exceeds ${LIMITS.maxHeaderBytes} bytes`, { file });
    root = parseJsonObject(await f.read(0, f.size, 'index'), file, 0, 'shard index');
  } finally {
    await f.close();
  }
  const map = root.weight_map;
  check(isObject(map), 'bad-index', () => `weight_map must be an object {tensor: shard file}, found ${describe(map)}`, { file });
  check(root.metadata === undefined || isObject(root.metadata), 'bad-index', () => `metadata must be an object, found ${describe(root.metadata)}`, {
    file,
  });
  const entries = Object.entries(map);
  check(entries.length > 0 && entries.length <= LIMITS.maxTensors, 'bad-index', `weight_map lists ${entries.length} tensors (expected 1..${LIMITS.maxTensors})`, {
    file,
  });

  // Group tensor names by shard; refuse any entry that names a path outside the index folder.
  const byShard = new Map<string, { rel: string; names: Set<string> }>();
  for (const [name, rel] of entries) {
    const where = { file, tensor: name };
    check(typeof rel === 'string' && rel.length > 0, 'bad-index', () => `weight_map value must be a shard file name, found ${describe(rel)}`, where);
    check(
      !rel.includes('\0') && !path.isAbsolute(rel) && !path.win32.isAbsolute(rel) && !rel.split(/[\\/]/).includes('..'),
      'path-escape',
      () => `shard path ${describe(rel)} must be relative to the index folder, without '..'`,
      where,
    );
    const shard = path.resolve(dir, rel);
    let g = byShard.get(shard);
    if (!g) byShard.set(shard, (g = { rel, names: new Set() }));
    g.names.add(name);
  }

  const realDir = await fsp.realpath(dir);
  const tensors: TensorInfo[] = [];
  const shardMeta = new Map<string, string>(); // shards usually repeat the same `__metadata__`: first one wins
  const shards = [...byShard.keys()].sort();
  const firstTensor = (shard: string): Location => ({ file, tensor: byShard.get(shard)!.names.values().next().value });
  // Every shard is checked to exist inside the folder before any is read.
  for (const shard of shards) await checkShardInside(realDir, shard, byShard.get(shard)!.rel, firstTensor(shard));
  for (const shard of shards) {
    const { rel, names } = byShard.get(shard)!;
    const parsed = await parseFile(shard, firstTensor(shard), 'shard');
    const held = new Set<string>();
    for (const t of parsed.tensors) {
      const mapped = Object.hasOwn(map, t.name) ? map[t.name] : undefined;
      check(
        names.has(t.name),
        'index-mismatch',
        () => `shard holds this tensor but ${path.basename(file)} ${mapped === undefined ? 'does not list it' : `maps it to ${describe(mapped)}`}`,
        { file: shard, tensor: t.name },
      );
      held.add(t.name);
      tensors.push(t);
    }
    for (const name of names) {
      check(held.has(name), 'index-mismatch', `${file} maps this tensor to ${describe(rel)}, but the shard does not hold it`, {
        file: shard,
        tensor: name,
      });
    }
    for (const [k, v] of Object.entries(parsed.metadata)) if (!shardMeta.has(k)) shardMeta.set(k, v);
  }
  // The index's own metadata (total_size) goes on top.
  const metadata: Record<string, unknown> = Object.fromEntries([...shardMeta, ...Object.entries(root.metadata ?? {})]);
  return plainCheckpoint('safetensors', file, [file, ...shards], tensors, metadata);
}

// ---------------------------------------------------------------------------------------------
// Shared

