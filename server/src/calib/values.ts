// Typed-array plumbing for calibration values: element sizes, allocation, slicing and concatenation along axis 0.
import { FP16, minifloatCode, roundMinifloat } from '../quant/minifloat';
import type { ArrayData, ArrayValue, InputDType } from './types';

export const DTYPE_BYTES: Record<InputDType, number> = {
  float32: 4, float16: 2, float64: 8, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1,
};

export const FLOAT_INPUTS: ReadonlySet<InputDType> = new Set<InputDType>(['float32', 'float16', 'float64']);

/** A zeroed array of `count` elements in the storage class ArrayValue uses for `dtype`. */
export function allocate(dtype: InputDType, count: number): ArrayData {
  switch (dtype) {
    case 'float32': return new Float32Array(count);
    case 'float64': return new Float64Array(count);
    case 'float16': return new Uint16Array(count);
    case 'int64': return new BigInt64Array(count);
    case 'int32': return new Int32Array(count);
    case 'int8': return new Int8Array(count);
    case 'uint8':
    case 'bool': return new Uint8Array(count);
  }
}

/** View little-endian bytes (whose buffer offset is aligned to the element size) as the dtype's array. */
export function viewBytes(dtype: InputDType, bytes: Uint8Array, count: number): ArrayData {
  const b = bytes.buffer;
  const o = bytes.byteOffset;
  switch (dtype) {
    case 'float32': return new Float32Array(b, o, count);
    case 'float64': return new Float64Array(b, o, count);
    case 'float16': return new Uint16Array(b, o, count);
    case 'int64': return new BigInt64Array(b, o, count);
    case 'int32': return new Int32Array(b, o, count);
    case 'int8': return new Int8Array(b, o, count);
    case 'uint8':
    case 'bool': return new Uint8Array(b, o, count);
  }
}

export const elementCount = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function shapeText(dims: readonly (number | string)[]): string {
  return `[${dims.map((d) => (d === -1 ? '?' : String(d))).join(', ')}]`;
}

/** IEEE half bits of a finite number (round to nearest even, saturating at ±65504). */
export function f16Bits(x: number): number {
  const r = roundMinifloat(FP16, x);
  return minifloatCode(FP16, Math.abs(r), r < 0 || Object.is(r, -0));
}

/** Rows [start, start + count) along axis 0 (a view: C order keeps them contiguous). */
export function sliceRows(v: ArrayValue, start: number, count: number): ArrayValue {
  if (start === 0 && count === v.dims[0]) return v;
  const row = elementCount(v.dims.slice(1));
  return { dtype: v.dtype, dims: [count, ...v.dims.slice(1)], data: v.data.subarray(start * row, (start + count) * row) };
}

/** Concatenate values of equal dtype and equal dims after axis 0 along axis 0. */
export function concatRows(parts: readonly ArrayValue[]): ArrayValue {
  if (parts.length === 1) return parts[0];
  const first = parts[0];
  const rows = parts.reduce((n, p) => n + p.dims[0], 0);
  const dims = [rows, ...first.dims.slice(1)];
  const data = allocate(first.dtype, elementCount(dims));
  let at = 0;
  for (const p of parts) {
    (data as Float32Array).set(p.data as Float32Array, at);
    at += p.data.length;
  }
  return { dtype: first.dtype, dims, data };
}
