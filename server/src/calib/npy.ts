// NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0). The header is a Python dict literal, parsed here
// by a small tokenizer (never evaluated); every claim in it is checked against the bytes actually present before
// anything is allocated.
import { check, LIMITS, QuantLensError, type Location } from '../formats/errors';
import { RandomAccessFile } from '../formats/file';
import type { ArrayValue, InputDType } from './types';
import { DTYPE_BYTES, elementCount, viewBytes } from './values';

/** What the reader needs from a file or an in-memory member of an archive. */
export interface ByteSource {
  /** Shown in messages. */
  path: string;
  size: number;
  read(offset: number, length: number, what: string): Promise<Uint8Array>;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** An .npy header is a few hundred bytes; this bounds a hostile header length long before LIMITS.maxHeaderBytes. */
const MAX_NPY_HEADER = 1 << 20;

// descr type codes (after the byte-order character) → dtype.
const CODES: Record<string, InputDType> = {
  f4: 'float32', f2: 'float16', f8: 'float64', i8: 'int64', i4: 'int32', i1: 'int8', u1: 'uint8', b1: 'bool',
};
const DESCR_OF: Record<InputDType, string> = {
  float32: '<f4', float16: '<f2', float64: '<f8', int64: '<i8', int32: '<i4', int8: '|i1', uint8: '|u1', bool: '|b1',
};

export interface NpyHeader {
  dtype: InputDType;
  shape: number[];
  fortranOrder: boolean;
  bigEndian: boolean;
  /** Absolute offset of the first data byte. */
  dataOffset: number;
  dataBytes: number;
}

/** Bytes in memory, owned by the caller's reader, as a ByteSource (an .npz member). */
export function memorySource(bytes: Uint8Array, path: string): ByteSource {
  return {
    path,
    size: bytes.length,
    read: async (offset, length, what) => {
      check(offset + length <= bytes.length, 'truncated', () => `${what} spans bytes ${offset}..${offset + length} but only ${bytes.length} bytes exist`, {
        file: path,
        offset: Math.min(offset, bytes.length),
      });
      // A view when 8-byte aligned (readers may then modify it in place), else an aligned copy.
      const v = bytes.subarray(offset, offset + length);
      return v.byteOffset % 8 === 0 ? v : v.slice();
    },
  };
}

/** Read a whole .npy file (bounded by its header, which must match the file size exactly). */
export async function readNpyFile(path: string): Promise<ArrayValue> {
  const f = await RandomAccessFile.open(path);
  try {
    return await readNpy(f);
  } finally {
    await f.close();
  }
}

export async function readNpy(src: ByteSource): Promise<ArrayValue> {
  const h = await readNpyHeader(src);
  const bytes = await src.read(h.dataOffset, h.dataBytes, 'array data');
  const size = DTYPE_BYTES[h.dtype];
  if (h.bigEndian && size > 1) swapBytes(bytes, size);
  const count = elementCount(h.shape);
  const data = h.fortranOrder && h.shape.length > 1 ? fortranToC(bytes, h.shape, size) : bytes;
  return { dtype: h.dtype, dims: h.shape, data: viewBytes(h.dtype, data, count) };
}

export async function readNpyHeader(src: ByteSource): Promise<NpyHeader> {
  const at = (offset: number): Location => ({ file: src.path, offset });
  check(src.size >= 10, 'bad-npy', `expected a .npy file (at least 10 bytes), found ${src.size} bytes`, at(0));
  const pre = await src.read(0, Math.min(12, src.size), '.npy preamble');
  check(
    MAGIC.every((b, i) => pre[i] === b),
    'bad-npy',
    () => `expected the .npy magic \\x93NUMPY, found ${Buffer.from(pre.subarray(0, 6)).toString('hex')} (hex)`,
    at(0),
  );
  const major = pre[6];
  check(major >= 1 && major <= 3 && pre[7] === 0, 'bad-npy', `expected .npy format version 1.0, 2.0 or 3.0, found ${major}.${pre[7]}`, at(6));
  const dv = new DataView(pre.buffer, pre.byteOffset, pre.length);
  check(major === 1 || src.size >= 12, 'bad-npy', `a version ${major}.0 .npy needs a 12-byte preamble, the file has ${src.size} bytes`, at(0));
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  check(headerLen <= MAX_NPY_HEADER, 'bad-npy', `header length ${headerLen} exceeds the ${MAX_NPY_HEADER}-byte limit`, at(8));
  check(start + headerLen <= src.size, 'truncated', () => `header declares ${headerLen} bytes but only ${src.size - start} follow the preamble`, at(8));
  const raw = await src.read(start, headerLen, '.npy header');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(raw);
  const dict = parseHeaderDict(text, (i) => at(start + (major === 3 ? Buffer.byteLength(text.slice(0, i)) : i)));

  const keys = Object.keys(dict).sort().join(', ');
  check(keys === 'descr, fortran_order, shape', 'bad-npy', `expected header keys descr, fortran_order, shape; found ${keys || 'none'}`, at(start));
  const { descr, fortran_order: fortran, shape } = dict;
  check(typeof descr === 'string', 'bad-npy', () => `expected descr to be a type string such as '<f4', found ${describe(descr)} (structured arrays are not supported)`, at(start));
  const order = descr[0];
  const dtype = CODES[descr.slice(1)];
  check(
    dtype !== undefined && '<>|='.includes(order) && (order !== '|' || DTYPE_BYTES[dtype] === 1),
    'bad-npy',
    () => `unsupported descr '${descr}': expected one of ${Object.values(DESCR_OF).join(' ')} (or the big-endian '>' forms)`,
    at(start),
  );
  check(typeof fortran === 'boolean', 'bad-npy', () => `expected fortran_order True or False, found ${describe(fortran)}`, at(start));
  check(Array.isArray(shape) && shape.every((d) => typeof d === 'number'), 'bad-npy', () => `expected shape to be a tuple of integers, found ${describe(shape)}`, at(start));
  const dims = shape as number[];
  check(dims.length <= LIMITS.maxDims, 'bad-npy', `shape has ${dims.length} dimensions, more than the limit of ${LIMITS.maxDims}`, at(start));
  let count = 1;
  for (const d of dims) {
    check(d >= 0, 'bad-npy', () => `expected non-negative dimensions, found shape ${shapeOf(dims)}`, at(start));
    count *= d;
    check(count <= LIMITS.maxArrayElements, 'too-large', () => `shape ${shapeOf(dims)} holds more than ${LIMITS.maxArrayElements} elements`, at(start));
  }
  const dataOffset = start + headerLen;
  const dataBytes = count * DTYPE_BYTES[dtype];
  check(
    dataOffset + dataBytes === src.size,
    src.size < dataOffset + dataBytes ? 'truncated' : 'bad-npy',
    () => `shape ${shapeOf(dims)} of ${descr} needs ${dataBytes} data bytes, found ${src.size - dataOffset}`,
    at(dataOffset),
  );
  return { dtype, shape: dims, fortranOrder: fortran, bigEndian: order === '>', dataOffset, dataBytes };
}

const shapeOf = (dims: number[]) => `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;

function describe(v: unknown): string {
  if (Array.isArray(v)) return `(${v.map(describe).join(', ')})`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'None';
  if (typeof v === 'object') return 'a dict';
  return String(v);
}

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/**
 * Parse the header: a Python dict literal of strings, integers, True/False/None, tuples and lists, as
 * numpy's `repr` writes it. Anything else is a located error, never evaluated.
 */
export function parseHeaderDict(text: string, at: (index: number) => Location): Record<string, PyValue> {
  let i = 0;
  const fail = (expected: string): never => {
    const found = i < text.length ? JSON.stringify(text.slice(i, i + 12)) : 'the end of the header';
    throw new QuantLensError('bad-npy', `invalid .npy header: expected ${expected}, found ${found}`, at(i));
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const value = (depth: number): PyValue => {
    if (depth > 8) fail('a flatter header (nesting deeper than 8)');
    ws();
    const c = text[i];
    if (c === '{') return dict(depth);
    if (c === '(' || c === '[') return seq(depth, c === '(' ? ')' : ']');
    if (c === "'" || c === '"') return str(c);
    const word = /^(?:True|False|None|-?\d+L?)/.exec(text.slice(i, i + 24));
    if (!word) return fail('a string, integer, True, False, None, tuple, list or dict');
    i += word[0].length;
    if (word[0] === 'True' || word[0] === 'False') return word[0] === 'True';
    if (word[0] === 'None') return null;
    const n = Number(word[0].replace('L', ''));
    if (!Number.isSafeInteger(n)) {
      i -= word[0].length;
      fail('an integer below 2^53');
    }
    return n;
  };
  const str = (q: string): string => {
    let s = '';
    for (i++; text[i] !== q; i++) {
      if (i >= text.length) fail(`a closing ${q}`);
      if (text[i] === '\\') i++;
      s += text[i];
    }
    i++;
    return s;
  };
  const seq = (depth: number, close: string): PyValue[] => {
    const out: PyValue[] = [];
    for (i++; ; ) {
      ws();
      if (text[i] === close) break;
      out.push(value(depth + 1));
      ws();
      if (text[i] === ',') i++;
      else if (text[i] !== close) fail(`',' or '${close}'`);
    }
    i++;
    return out;
  };
  const dict = (depth: number): Record<string, PyValue> => {
    const out: Record<string, PyValue> = {};
    for (i++; ; ) {
      ws();
      if (text[i] === '}') break;
      if (text[i] !== "'" && text[i] !== '"') fail('a quoted key');
      const keyAt = i;
      const key = str(text[i]);
      if (Object.hasOwn(out, key)) {
        i = keyAt;
        fail(`no repeated key '${key}'`);
      }
      ws();
      if (text[i] !== ':') fail("':'");
      i++;
      out[key] = value(depth + 1);
      ws();
      if (text[i] === ',') i++;
      else if (text[i] !== '}') fail("',' or '}'");
    }
    i++;
    return out;
  };
  ws();
  if (text[i] !== '{') fail("the header dict '{'");
  const d = dict(0);
  ws();
  if (i < text.length) fail('only padding after the header dict');
  return d;
}

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
  }
}

/** Reorder column-major elements to row-major: C index (i0..in) reads Fortran offset i0 + d0·(i1 + d1·(…)). */
function fortranToC(src: Uint8Array, dims: number[], size: number): Uint8Array {
  const n = dims.length;
  const strides = new Array<number>(n); // Fortran strides in elements
  for (let k = 0, s = 1; k < n; k++) {
    strides[k] = s;
    s *= dims[k];
  }
  // Copy whole elements as 1-, 2- or 4-byte words (8-byte elements as two words): no per-element subarrays.
  const unit = Math.min(size, 4);
  const per = size / unit;
  const View = unit === 1 ? Uint8Array : unit === 2 ? Uint16Array : Uint32Array;
  const out = new Uint8Array(src.length);
  const aligned = src.byteOffset % unit === 0 ? src : src.slice();
  const from = new View(aligned.buffer as ArrayBuffer, aligned.byteOffset, src.length / unit);
  const to = new View(out.buffer, 0, src.length / unit);
  const idx = new Array<number>(n).fill(0);
  const count = src.length / size;
  let at = 0;
  for (let e = 0; e < count; e++) {
    for (let j = 0; j < per; j++) to[e * per + j] = from[at * per + j];
    // Advance the C-order counter (last axis fastest), tracking the Fortran offset incrementally.
    for (let k = n - 1; k >= 0; k--) {
      idx[k]++;
      at += strides[k];
      if (idx[k] < dims[k]) break;
      at -= strides[k] * dims[k];
      idx[k] = 0;
    }
  }
  return out;
}

/** Serialize a value as a version 1.0 .npy (2.0 when the header outgrows 64 KiB), little-endian, C order. */
export function writeNpy(v: ArrayValue): Uint8Array {
  const shape = `(${v.dims.join(', ')}${v.dims.length === 1 ? ',' : ''})`;
  const dict = `{'descr': '${DESCR_OF[v.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const v2 = dict.length + 11 > 0xffff;
  const pre = v2 ? 12 : 10;
  // numpy pads with spaces so the data starts on a 64-byte boundary, and ends the header with '\n'.
  const headerLen = Math.ceil((pre + dict.length + 1) / 64) * 64 - pre;
  const dataBytes = v.data.byteLength;
  const out = new Uint8Array(pre + headerLen + dataBytes);
  out.set(MAGIC);
  out[6] = v2 ? 2 : 1;
  const dv = new DataView(out.buffer);
  if (v2) dv.setUint32(8, headerLen, true);
  else dv.setUint16(8, headerLen, true);
  const header = dict.padEnd(headerLen - 1, ' ') + '\n';
  for (let k = 0; k < header.length; k++) out[pre + k] = header.charCodeAt(k);
  out.set(new Uint8Array(v.data.buffer, v.data.byteOffset, dataBytes), pre + headerLen);
  return out;
}
