// Safetensors writer, from the format description: u64 little-endian header length, the JSON header (tensor name →
// {dtype, shape, data_offsets}, plus an optional `__metadata__` of string values) padded with spaces to a multiple of
// 8 bytes as the reference writer does, then the tensors' bytes back to back in header order.
import { writeOutputFile, type OutputOptions } from '../output';
import { PLAIN_DTYPE_BYTES, shapeSize } from './dtypes';
import { check } from './errors';
import type { DType } from './types';

/** A tensor as stored: safetensors dtype name, shape, little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export type FloatDType = 'F32' | 'F16' | 'BF16';

// Half and bfloat16 from the float32 bits, as a float cast does: round to nearest even, overflow to ±∞, NaN stays
// NaN, signed zeros and subnormals kept. Bit arithmetic, not f16Bits (made for scalar scales, it saturates, returns
// +0 and runs ~10× slower): exports encode millions of weights.

/** binary16 bits of the float32 whose bits are `u`. */
function halfOfBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (rem > mid || (rem === mid && half & 1) ? half + 1 : half);
  }
  const half = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  return sign | (rem > 0x1000 || (rem === 0x1000 && half & 1) ? half + 1 : half); // a carry rounds up to the next binade or ∞
}

/** bfloat16 bits of the float32 whose bits are `u`: its top half, rounded to nearest even; NaN stays a quiet NaN. */
function bf16OfBits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of x (x first rounded to float32). */
export function f16BitsOf(x: number): number {
  f32[0] = x;
  return halfOfBits(u32[0]);
}

/** bfloat16 bits of x (x first rounded to float32). */
export function bf16BitsOf(x: number): number {
  f32[0] = x;
  return bf16OfBits(u32[0]);
}

/** Little-endian bytes of `data` in a float dtype. */
export function encodeFloats(data: Float32Array, dtype: FloatDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const bits = new Uint16Array(data.length); // the platform is little-endian (Node on x64/arm64)
  const to = dtype === 'F16' ? halfOfBits : bf16OfBits;
  for (let i = 0; i < src.length; i++) bits[i] = to(src[i]);
  return new Uint8Array(bits.buffer);
}

/** A whole file from a header (an object, or raw text written as given) and the data section. */
export function safetensorsBytes(header: object | string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const enc = new TextEncoder();
  let head = enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  if (head.length % 8) {
    const padded = new Uint8Array(head.length + 8 - (head.length % 8)).fill(0x20);
    padded.set(head);
    head = padded;
  }
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

/** Header (with consecutive data_offsets) and data section for `tensors`, in the given order. */
export function layoutTensors(tensors: readonly RawTensor[], metadata?: Record<string, string>): { header: object; data: Uint8Array } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let end = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [end, end + t.bytes.length] };
    end += t.bytes.length;
  }
  const data = new Uint8Array(end);
  let at = 0;
  for (const t of tensors) {
    data.set(t.bytes, at);
    at += t.bytes.length;
  }
  return { header, data };
}

/** Checks what a reader would reject: unique names, known dtypes, byte counts that match the shapes, string metadata. */
function validate(file: string, tensors: readonly RawTensor[], metadata?: Record<string, unknown>): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = { file, tensor: t.name };
    check(t.name !== '__metadata__' && !seen.has(t.name), 'bad-tensor', `tensor name must be unique and not __metadata__`, where);
    seen.add(t.name);
    const size = PLAIN_DTYPE_BYTES[t.dtype as DType];
    check(size !== undefined, 'bad-dtype', `expected a safetensors dtype (${Object.keys(PLAIN_DTYPE_BYTES).join(', ')}), found ${t.dtype}`, where);
    const n = shapeSize(t.shape);
    check(n * size === t.bytes.length, 'bad-shape', `shape [${t.shape.join(', ')}] of ${t.dtype} needs ${n * size} bytes, found ${t.bytes.length}`, where);
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    check(typeof v === 'string', 'bad-metadata', `__metadata__ values must be strings, found ${typeof v} at ${k}`, { file });
  }
}

/** Writes a safetensors file atomically (temp file + rename, never over an input: see output.ts). */
export async function writeSafetensorsFile(target: string, tensors: readonly RawTensor[], metadata?: Record<string, string>, opts: OutputOptions = {}): Promise<void> {
  validate(target, tensors, metadata);
  const { header, data } = layoutTensors(tensors, metadata);
  await writeOutputFile(target, safetensorsBytes(header, data), opts);
}
