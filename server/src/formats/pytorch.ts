// PyTorch checkpoints (`torch.save` since 1.6): a zip archive holding `<prefix>/data.pkl` (a pickle of the
// saved object, whose tensors name storages by persistent id), `<prefix>/data/<key>` (each storage's raw
// little-endian bytes, stored uncompressed), `<prefix>/version` and optionally `<prefix>/byteorder`.
// The pickle goes through the allow-listed VM in pickle.ts: nothing in a checkpoint is ever executed.
// Sharded checkpoints add `pytorch_model.bin.index.json` with a `weight_map`.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import * as yauzl from 'yauzl';
import { check, LIMITS, QuantLensError, type Location } from './errors';
import { isObject, parseJsonObject, type JsonObject } from './json';
import { zipCursor } from './zip-cursor';
import { checkShardInside, plainCheckpoint } from './plain-checkpoint';
import { RandomAccessFile } from './file';
import { FLOAT_DTYPES, shapeSize } from './dtypes';
import { guessLayout, layerOf } from './layers';
import { describeValue, MAX_PICKLE_DEPTH, STORAGE_TYPES, TORCH_DTYPES, unpickle, type PickleValue, type TensorRef } from './pickle';
import type { Checkpoint, CheckpointReader, TensorInfo } from './types';

/** What `torch.save(..., _use_new_zipfile_serialization=False)` writes first: pickle protocol 2, LONG1 of the magic 0x1950a86a20f9469cfc6c. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_MESSAGE = 'unsupported legacy (pre-1.6, non-zip) PyTorch format: re-save with torch.save(..., _use_new_zipfile_serialization=True)';

const LOCAL_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
/** Dict keys under which training scripts nest the weights; unwrapped so names look like HF names. */
const WRAPPERS = ['state_dict', 'model_state_dict', 'model', 'module'];
/** Longest top-level string copied into metadata (epoch, arch name — not an embedded blob). */
const MAX_SCALAR_CHARS = 1024;

export const pytorchReader: CheckpointReader = {
  format: 'pytorch',
  match(p) {
    try {
      if (startsWith(p.head, LEGACY_MAGIC)) return true; // open() explains how to convert it
      if (isIndexPath(p.path)) return looksLikeBinIndex(p.head);
      return looksLikeTorchZip(p.head, p.path);
    } catch {
      return false;
    }
  },
  open(p) {
    return isIndexPath(p) ? openIndex(p) : openSingle(p);
  },
};

const isIndexPath = (p: string): boolean => /\.json$/i.test(p);

function startsWith(head: Uint8Array, sig: readonly number[]): boolean {
  return head.length >= sig.length && sig.every((b, i) => head[i] === b);
}

/** A zip whose first entry is a torch record (`…/data.pkl`, `…/data/…`, `…/version`), or any zip named like a torch file. */
function looksLikeTorchZip(head: Uint8Array, file: string): boolean {
  if (!startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || head.length < 30) return false;
  const n = head[26] | (head[27] << 8);
  const name = new TextDecoder('latin1').decode(head.subarray(30, Math.min(head.length, 30 + n)));
  return /(^|\/)data\.pkl$/.test(name) || /^[^/]+\/(data\/|\.data\/|version$|byteorder$|\.format_version$)/.test(name) || /\.(pt|pth|bin|ckpt)$/i.test(file);
}

/** A JSON object with a `weight_map` whose values (as far as the head shows) name `.bin`/`.pt` files. */
function looksLikeBinIndex(head: Uint8Array): boolean {
  const text = new TextDecoder().decode(head);
  const open = /"weight_map"\s*:\s*\{/.exec(text);
  if (!/^\s*\{/.test(text) || !open) return false;
  const body = text.slice(open.index + open[0].length);
  const first = /^\s*"(?:[^"\\]|\\.)*"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(body);
  return first !== null && /\.(bin|pt|pth)$/.test(first[1]);
}

// ---------------------------------------------------------------------------------------------
// Zip central directory (yauzl over our bounds-checked file)

interface ZipEntry {
  name: string;
  /** The name's bytes as stored (the local header must repeat them). */
  nameRaw: Uint8Array;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  headerOffset: number;
  crc32: number;
  encrypted: boolean;
}

/** Lets yauzl read through a RandomAccessFile: every read is range-checked with a located error. */
class FileReader extends yauzl.RandomAccessReader {
  constructor(private readonly f: RandomAccessFile) {
    super();
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
    const done = callback as (err: Error | null, bytesRead?: number) => void;
    this.f.read(position, length, 'zip central directory').then(
      (bytes) => {
        buffer.set(bytes, offset);
        done(null, length);
      },
      (e: Error) => done(e),
    );
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const f = this.f;
    return Readable.from(
      (async function* () {
        yield Buffer.from(await f.read(start, end - start, 'zip entry'));
      })(),
    );
  }
}

async function listZip(f: RandomAccessFile): Promise<ZipEntry[]> {
  const where: Location = { file: f.path };
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new FileReader(f), f.size, { autoClose: false, validateEntrySizes: true, strictFileNames: false });
  } catch (e) {
    // yauzl scans the last 64 KiB for the end-of-central-directory record: a truncated archive fails there.
    const tail = Math.max(0, f.size - 22 - 0xffff);
    throw zipError(e, { ...where, offset: tail }, `cannot read the zip directory (searched bytes ${tail}..${f.size}; truncated or not a zip archive)`);
  }
  try {
    // Each central directory record takes at least 46 bytes: a count the file cannot hold is a lie.
    check(
      zip.entryCount <= LIMITS.maxTensors && zip.entryCount * 46 <= f.size,
      'bad-zip',
      `zip directory declares ${zip.entryCount} entries, more than a ${f.size}-byte file can hold (limit ${LIMITS.maxTensors})`,
      where,
    );
    const out: ZipEntry[] = [];
    for await (const e of zip.eachEntry()) {
      out.push({
        name: e.fileName,
        nameRaw: e.fileNameRaw,
        method: e.compressionMethod,
        compressedSize: e.compressedSize,
        uncompressedSize: e.uncompressedSize,
        headerOffset: e.relativeOffsetOfLocalHeader,
        crc32: e.crc32,
        encrypted: e.isEncrypted(),
      });
    }
    return out;
  } catch (e) {
    throw zipError(e, { ...where, offset: zipCursor(zip) }, 'invalid zip directory');
  } finally {
    zip.on('error', () => undefined); // nothing left to report after close
    zip.close();
  }
}

function zipError(e: unknown, where: Location, what: string): QuantLensError {
  if (e instanceof QuantLensError) return e;
  return new QuantLensError('bad-zip', `${what}: ${(e as Error).message}`, where);
}

/** Absolute offset of an entry's data: after its local header (30 bytes + name + extra), which must name the same file. */
async function dataStartOf(f: RandomAccessFile, e: ZipEntry): Promise<number> {
  const where: Location = { file: f.path, offset: e.headerOffset };
  const h = await f.read(e.headerOffset, 30, `zip local header of ${e.name}`);
  const dv = new DataView(h.buffer, h.byteOffset, 30);
  check(dv.getUint32(0, true) === LOCAL_HEADER, 'bad-zip', () => `expected a zip local header (PK\\x03\\x04) for ${e.name}, found 0x${dv.getUint32(0, true).toString(16)}`, where);
  const n = dv.getUint16(26, true);
  const m = dv.getUint16(28, true);
  const raw = await f.read(e.headerOffset + 30, n, `zip local header name of ${e.name}`);
  check(
    Buffer.from(raw).equals(e.nameRaw),
    'bad-zip',
    () => `local header names ${JSON.stringify(new TextDecoder().decode(raw))} but the central directory says ${JSON.stringify(e.name)}`,
    where,
  );
  const start = e.headerOffset + 30 + n + m;
  f.checkRange(start, e.compressedSize, `zip entry ${e.name}`);
  return start;
}

/** Read a small entry whole (data.pkl, version, byteorder); the declared size is checked before any read or inflate. */
async function readEntry(f: RandomAccessFile, e: ZipEntry, limit: number): Promise<{ bytes: Uint8Array; base?: number }> {
  const where: Location = { file: f.path, offset: e.headerOffset };
  check(!e.encrypted, 'bad-zip', `zip entry ${e.name} is encrypted`, where);
  check(
    e.uncompressedSize <= limit,
    'too-large',
    `zip entry ${e.name} declares ${e.uncompressedSize} bytes uncompressed, more than the limit of ${limit} bytes (zip bomb guard)`,
    where,
  );
  const start = await dataStartOf(f, e);
  const at = { ...where, offset: start };
  let bytes: Uint8Array;
  if (e.method === STORED) {
    bytes = await f.read(start, e.uncompressedSize, `zip entry ${e.name}`);
  } else {
    check(e.method === DEFLATED, 'bad-zip', `zip entry ${e.name} uses compression method ${e.method} (expected 0 stored or 8 deflate)`, where);
    check(e.compressedSize <= limit, 'too-large', `zip entry ${e.name} has ${e.compressedSize} compressed bytes, more than the limit of ${limit}`, where);
    const packed = await f.read(start, e.compressedSize, `zip entry ${e.name}`);
    try {
      // Output is capped at the declared size: a stream that produces more is refused, not buffered.
      bytes = zlib.inflateRawSync(packed, { maxOutputLength: Math.max(1, e.uncompressedSize) });
    } catch (err) {
      const over = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw new QuantLensError(
        over ? 'too-large' : 'bad-zip',
        over
          ? `zip entry ${e.name} inflates to more than its declared ${e.uncompressedSize} bytes (zip bomb guard)`
          : `zip entry ${e.name}: invalid deflate data (${(err as Error).message})`,
        at,
      );
    }
    check(
      bytes.length === e.uncompressedSize,
      bytes.length > e.uncompressedSize ? 'too-large' : 'bad-zip',
      `zip entry ${e.name} inflates to ${bytes.length} bytes, but declares ${e.uncompressedSize}`,
      at,
    );
  }
  check(zlib.crc32(bytes) >>> 0 === e.crc32 >>> 0, 'bad-zip', () => `zip entry ${e.name} fails its CRC-32 check (corrupt file?)`, at);
  return e.method === STORED ? { bytes, base: start } : { bytes };
}

// ---------------------------------------------------------------------------------------------
// Single checkpoint

interface Parsed {
  tensors: TensorInfo[];
  metadata: Record<string, unknown>;
}

async function openFile(file: string, where: Location): Promise<RandomAccessFile> {
  try {
    return await RandomAccessFile.open(file);
  } catch (e) {
    if (e instanceof QuantLensError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new QuantLensError(err.code === 'ENOENT' ? 'not-found' : 'io', err.code === 'ENOENT' ? `no such file: ${file}` : `cannot open ${file}: ${err.message}`, where);
  }
}

async function openSingle(p: string): Promise<Checkpoint> {
  const file = path.resolve(p);
  const parsed = await parseArchive(file, { file });
  return plainCheckpoint('pytorch', file, [file], parsed.tensors, parsed.metadata);
}

async function parseArchive(file: string, referencedBy: Location, storage = 'zip'): Promise<Parsed> {
  const f = await openFile(file, referencedBy);
  try {
    const head = await f.readUpTo(0, LEGACY_MAGIC.length);
    check(!startsWith(head, LEGACY_MAGIC), 'legacy-format', LEGACY_MESSAGE, { file, offset: 0 });
    check(startsWith(head, [0x50, 0x4b]), 'not-pytorch', 'not a PyTorch checkpoint: expected a zip archive (PK) written by torch.save', { file, offset: 0 });
    const entries = new Map<string, ZipEntry>();
    for (const e of await listZip(f)) {
      check(!entries.has(e.name), 'bad-zip', `zip entry ${JSON.stringify(e.name)} appears twice (ambiguous archive)`, { file, offset: e.headerOffset });
      entries.set(e.name, e);
    }
    const pkls = [...entries.keys()].filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
    check(pkls.length > 0, 'not-pytorch', 'zip archive has no data.pkl entry: not a PyTorch checkpoint', { file });
    check(pkls.length === 1, 'bad-zip', `zip archive has ${pkls.length} data.pkl entries (${pkls.slice(0, 3).join(', ')}): expected one`, { file });
    const prefix = pkls[0].slice(0, -'data.pkl'.length);
    check(
      !entries.has(`${prefix}constants.pkl`) && ![...entries.keys()].some((n) => n.startsWith(`${prefix}code/`)),
      'unsupported',
      'TorchScript archive (torch.jit.save) is not supported: save the weights with torch.save(model.state_dict(), path)',
      { file },
    );

    const metadata: Record<string, unknown> = { archive: prefix.replace(/\/$/, '') };
    const version = entries.get(`${prefix}version`) ?? entries.get(`${prefix}.data/version`);
    if (version) metadata.version = await smallText(f, version);
    const order = entries.get(`${prefix}byteorder`);
    const byteorder = order ? await smallText(f, order) : 'little';
    check(byteorder === 'little' || byteorder === 'big', 'bad-entry', `byteorder must be 'little' or 'big', found ${JSON.stringify(byteorder)}`, {
      file,
      offset: order?.headerOffset,
    });
    if (order) metadata.byteorder = byteorder;

    const pkl = entries.get(pkls[0])!;
    const { bytes, base } = await readEntry(f, pkl, LIMITS.maxHeaderBytes);
    const { value, protocol } = unpickle(bytes, { file, label: pkl.name, ...(base !== undefined ? { base } : {}) });
    metadata.pickleProtocol = protocol;

    const found = collectTensors(value, file, metadata);
    const starts = new Map<string, number>();
    const tensors: TensorInfo[] = [];
    for (const { name, ref } of found) {
      const entryName = `${prefix}data/${ref.storage.key}`;
      const e = entries.get(entryName);
      check(e, 'missing-storage', `storage ${JSON.stringify(ref.storage.key)} (zip entry ${entryName}) is not in the archive`, { file, tensor: name });
      let start = starts.get(entryName);
      if (start === undefined) starts.set(entryName, (start = await dataStartOf(f, e)));
      tensors.push(tensorInfo(name, ref, e, start, file, byteorder === 'big', storage));
    }
    return { tensors, metadata };
  } finally {
    await f.close();
  }
}

/** A tiny text record (`version`, `byteorder`). */
async function smallText(f: RandomAccessFile, e: ZipEntry): Promise<string> {
  return new TextDecoder().decode((await readEntry(f, e, 64)).bytes).trim();
}

/**
 * The tensors of the unpickled object, named by their dict path joined with '.'. A state dict nested
 * under a wrapper key (`state_dict`, `model`, `module`) is unwrapped; top-level scalars (epoch, step)
 * go to `metadata.scalars`.
 */
function collectTensors(root: PickleValue, file: string, metadata: Record<string, unknown>): { name: string; ref: TensorRef }[] {
  let top = root;
  const unwrapped: string[] = [];
  if (top instanceof Map) {
    const scalars: Record<string, unknown> = {};
    for (const [k, v] of top) {
      if (typeof k !== 'string') continue;
      if ((typeof v === 'string' && v.length <= MAX_SCALAR_CHARS) || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) scalars[k] = v;
      else if (typeof v === 'bigint') scalars[k] = v.toString();
    }
    if (Object.keys(scalars).length > 0) metadata.scalars = scalars;
  }
  // Unwrap only a dict that holds no tensors itself: a state dict is never mistaken for a wrapper.
  for (;;) {
    if (!(top instanceof Map) || [...top.values()].some(isTensorRef)) break;
    const m = top;
    const key = WRAPPERS.find((w) => m.get(w) instanceof Map && hasTensor(m.get(w)!));
    if (key === undefined) break;
    unwrapped.push(key);
    top = m.get(key)!;
  }
  if (unwrapped.length) metadata.stateDictKey = unwrapped.join('.');

  const out: { name: string; ref: TensorRef }[] = [];
  const names = new Set<string>();
  const seen = new Set<object>();
  // Iterative depth-first walk in dict order; each container is visited once (pickles may share or cycle).
  const todo: { v: PickleValue; name: string; depth: number }[] = [{ v: top, name: '', depth: 0 }];
  while (todo.length) {
    const { v, name, depth } = todo.pop()!;
    if (isTensorRef(v)) {
      const n = name === '' ? 'tensor' : name;
      check(!names.has(n), 'duplicate-tensor', `two tensors flatten to the same name ${JSON.stringify(n)}`, { file, tensor: n });
      check(out.length < LIMITS.maxTensors, 'too-many-tensors', `more than ${LIMITS.maxTensors} tensors`, { file });
      names.add(n);
      out.push({ name: n, ref: v });
      continue;
    }
    const children = childrenOf(v);
    if (!children || seen.has(v as object)) continue;
    seen.add(v as object);
    check(depth < MAX_PICKLE_DEPTH, 'too-deep', `containers nested deeper than ${MAX_PICKLE_DEPTH} levels`, { file, tensor: name });
    for (let i = children.length - 1; i >= 0; i--) {
      const [k, c] = children[i];
      todo.push({ v: c, name: name === '' ? k : `${name}.${k}`, depth: depth + 1 });
    }
  }
  check(out.length > 0, 'no-tensors', `data.pkl holds no tensors (found ${describeValue(root)})`, { file });
  return out;
}

const isTensorRef = (v: PickleValue): v is TensorRef => typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';

/** Named children of a dict or list; undefined for leaves. Non-scalar dict keys are skipped. */
function childrenOf(v: PickleValue): [string, PickleValue][] | undefined {
  if (v instanceof Map) {
    const out: [string, PickleValue][] = [];
    for (const [k, c] of v) if (typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint') out.push([String(k), c]);
    return out;
  }
  if (Array.isArray(v)) return v.map((c, i) => [String(i), c]);
  return undefined;
}

/** Does a container hold a tensor anywhere below it? (Iterative; each container visited once.) */
function hasTensor(root: PickleValue): boolean {
  const seen = new Set<object>();
  const todo: PickleValue[] = [root];
  while (todo.length) {
    const v = todo.pop()!;
    if (isTensorRef(v)) return true;
    const children = childrenOf(v);
    if (!children || seen.has(v as object)) continue;
    seen.add(v as object);
    for (const [, c] of children) todo.push(c);
  }
  return false;
}

/** Row-major strides of a shape. */
function contiguousStrides(size: readonly number[]): number[] {
  const s = new Array<number>(size.length);
  let acc = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= size[i];
  }
  return s;
}

/** A tensor is a view of its storage: validate the view against the storage entry and locate its bytes. */
function tensorInfo(name: string, ref: TensorRef, e: ZipEntry, dataStart: number, file: string, bigEndian: boolean, storage: string): TensorInfo {
  const where: Location = { file, tensor: name, offset: dataStart };
  const st = STORAGE_TYPES[ref.storage.type];
  const dt = TORCH_DTYPES[ref.dtype];
  const storageBytes = ref.storage.numel * st.bytes;
  check(
    Number.isSafeInteger(storageBytes) && storageBytes === e.uncompressedSize,
    'storage-size-mismatch',
    () => `storage ${JSON.stringify(ref.storage.key)} declares ${ref.storage.numel} × ${st.bytes} bytes (${ref.storage.type}) but zip entry ${e.name} holds ${e.uncompressedSize}`,
    where,
  );
  const params = shapeSize(ref.size);
  check(!Number.isNaN(params), 'bad-shape', () => `element count of shape [${ref.size.join(', ')}] exceeds 2^53`, where);
  // Last element the view touches; every element must lie inside the storage.
  let last = ref.offset;
  for (let i = 0; i < ref.size.length; i++) last += (ref.size[i] - 1) * ref.stride[i];
  const end = params === 0 ? ref.offset * dt.bytes : (last + 1) * dt.bytes;
  check(
    Number.isSafeInteger(end) && end <= storageBytes,
    'out-of-range',
    () =>
      `view (offset ${ref.offset}, shape [${ref.size.join(', ')}], stride [${ref.stride.join(', ')}]) of ${ref.dtype} needs ${end} bytes ` +
      `of storage ${JSON.stringify(ref.storage.key)}, which holds ${storageBytes}`,
    where,
  );
  const want = contiguousStrides(ref.size);
  const contiguous = ref.size.every((d, i) => d <= 1 || ref.stride[i] === want[i]);
  const float = FLOAT_DTYPES.has(dt.dtype);
  let reason: string | undefined;
  if (!float) reason = dt.dtype === 'BOOL' ? 'boolean tensor: listed, not analyzed' : `${ref.dtype} tensor: listed, not analyzed`;
  else if (e.method !== STORED) reason = `storage ${e.name} is compressed in the zip (method ${e.method}); torch.save stores tensors uncompressed: re-save it`;
  else if (!contiguous) reason = `non-contiguous view (stride [${ref.stride.join(', ')}] for shape [${ref.size.join(', ')}], contiguous is [${want.join(', ')}])`;
  else if (bigEndian) reason = 'big-endian checkpoint (byteorder = big): bytes are not little-endian';
  return {
    name,
    dtype: dt.dtype,
    shape: [...ref.size],
    params,
    file,
    byteOffset: dataStart + ref.offset * dt.bytes,
    byteLength: params * dt.bytes,
    analyzable: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
    layout: guessLayout(name, ref.size),
    layer: layerOf(name),
    storage,
  };
}

// ---------------------------------------------------------------------------------------------
// Sharded: `pytorch_model.bin.index.json` → {metadata?, weight_map: {tensor: shard file}}


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
  check(isObject(root.weight_map), 'bad-index', 'shard index must be an object with weight_map: {tensor: shard file}', { file });
  const map = root.weight_map as JsonObject;
  const entries = Object.entries(map);
  check(entries.length > 0 && entries.length <= LIMITS.maxTensors, 'bad-index', `weight_map lists ${entries.length} tensors (expected 1..${LIMITS.maxTensors})`, { file });

  const byShard = new Map<string, { rel: string; names: Set<string> }>();
  for (const [name, rel] of entries) {
    const where = { file, tensor: name };
    check(typeof rel === 'string' && rel.length > 0, 'bad-index', 'weight_map value must be a shard file name', where);
    check(
      !rel.includes('\0') && !path.isAbsolute(rel) && !path.win32.isAbsolute(rel) && !rel.split(/[\\/]/).includes('..'),
      'path-escape',
      () => `shard path ${JSON.stringify(rel)} must be relative to the index folder, without '..'`,
      where,
    );
    const shard = path.resolve(dir, rel);
    let g = byShard.get(shard);
    if (!g) byShard.set(shard, (g = { rel, names: new Set() }));
    g.names.add(name);
  }

  const realDir = await fsp.realpath(dir);
  const shards = [...byShard.keys()].sort();
  const firstTensor = (shard: string): Location => ({ file, tensor: byShard.get(shard)!.names.values().next().value });
  for (const shard of shards) await checkShardInside(realDir, shard, byShard.get(shard)!.rel, firstTensor(shard));
  const tensors: TensorInfo[] = [];
  for (const shard of shards) {
    const { rel, names } = byShard.get(shard)!;
    const parsed = await parseArchive(shard, firstTensor(shard), 'shard');
    const held = new Set<string>();
    for (const t of parsed.tensors) {
      check(names.has(t.name), 'index-mismatch', `shard holds this tensor but ${path.basename(file)} does not map it to ${JSON.stringify(rel)}`, {
        file: shard,
        tensor: t.name,
      });
      held.add(t.name);
      tensors.push(t);
    }
    for (const name of names) {
      check(held.has(name), 'index-mismatch', `${path.basename(file)} maps this tensor to ${JSON.stringify(rel)}, but the shard does not hold it`, {
        file: shard,
        tensor: name,
      });
    }
  }
  const metadata: Record<string, unknown> = isObject(root.metadata) ? { ...root.metadata } : {};
  return plainCheckpoint('pytorch', file, [file, ...shards], tensors, metadata);
}

// ---------------------------------------------------------------------------------------------
// Shared

