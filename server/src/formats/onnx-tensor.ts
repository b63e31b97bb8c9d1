// ONNX TensorProto → dtype, shape and where its values live: raw bytes inside the model file
// (recorded as an absolute offset), a typed field (float_data, int32_data holding fp16/bf16/fp8 bits,
// double_data, …) decoded to a compact Float32Array copy, or an external-data file (resolved later).
// Every count in the proto is checked against the shape before anything is trusted.
import type { onnx } from 'onnx-proto';
import { check, LIMITS, type Location } from './errors';
import { decodePlain, FLOAT_DTYPES, PLAIN_DTYPE_BYTES, shapeSize } from './dtypes';
import type { DType } from './types';

/** TensorProto.DataType → our dtype (ONNX enum values from onnx.proto). */
const ONNX_DTYPES: Record<number, DType> = {
  1: 'F32', 2: 'U8', 3: 'I8', 4: 'U16', 5: 'I16', 6: 'I32', 7: 'I64', 8: 'STRING', 9: 'BOOL',
  10: 'F16', 11: 'F64', 12: 'U32', 13: 'U64', 16: 'BF16', 17: 'F8_E4M3', 19: 'F8_E5M2', 21: 'U4', 22: 'I4',
};

/** Names of the ONNX types we list but cannot size or decode. */
const OTHER_ONNX_TYPES: Record<number, string> = {
  0: 'UNDEFINED', 14: 'COMPLEX64', 15: 'COMPLEX128', 18: 'FLOAT8E4M3FNUZ', 20: 'FLOAT8E5M2FNUZ', 23: 'FLOAT4E2M1',
};

export function dtypeOf(onnxType: number): DType {
  return ONNX_DTYPES[onnxType] ?? `UNKNOWN_${OTHER_ONNX_TYPES[onnxType] ?? onnxType}`;
}

/** protobufjs hands int64 fields back as numbers or Long objects (when the `long` package is present). */
export type Int64 = number | { low: number; high: number; unsigned: boolean };

/** An int64 as a plain number; values beyond ±(2^53 − 1) are rejected rather than rounded. */
export function int64(v: Int64 | null | undefined, what: string, where: Location): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : (v.unsigned ? v.high >>> 0 : v.high) * 2 ** 32 + (v.low >>> 0);
  // high·2^32 is exact; adding low can only round when |n| ≥ 2^53, which isSafeInteger rejects.
  check(Number.isSafeInteger(n), 'bad-int64', () => `${what} is ${String(v)}, beyond the exact range of ±2^53`, where);
  return n;
}

/** Bytes a tensor of `params` elements occupies in raw_data / external data; undefined when unknown. */
export function storageBytes(dtype: DType, params: number): number | undefined {
  if (dtype === 'I4' || dtype === 'U4') return Math.ceil(params / 2);
  const size = PLAIN_DTYPE_BYTES[dtype];
  return size === undefined ? undefined : params * size;
}

export interface ExternalRef {
  location: string;
  offset: number;
  /** Declared length; undefined when the entry omits it (then params × size applies). */
  length?: number;
}

export type TensorData =
  | { kind: 'raw'; offset: number; length: number }
  | { kind: 'external'; ref: ExternalRef }
  /** A typed field: `values` is the decoded copy, present for float dtypes only. */
  | { kind: 'field'; field: string; values?: Float32Array }
  | { kind: 'empty' };

export interface DecodedTensor {
  dtype: DType;
  shape: number[];
  params: number;
  data: TensorData;
}

/** Typed fields in the order ONNX assigns them, with the element count each holds per tensor element. */
const TYPED_FIELDS = ['floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data', 'stringData'] as const;
const FIELD_NAMES: Record<(typeof TYPED_FIELDS)[number], string> = {
  floatData: 'float_data', int32Data: 'int32_data', int64Data: 'int64_data',
  doubleData: 'double_data', uint64Data: 'uint64_data', stringData: 'string_data',
};

/**
 * Decode one TensorProto's header and locate its data. `fileBytes` is the buffer the model was
 * decoded from: raw_data is a view into it, so its offset in the file is a pointer difference.
 */
export function decodeTensor(t: onnx.ITensorProto, fileBytes: Uint8Array, where: Location & { tensor: string }): DecodedTensor {
  const dims = t.dims ?? [];
  check(dims.length <= LIMITS.maxDims, 'bad-shape', `tensor has ${dims.length} dims (limit ${LIMITS.maxDims})`, where);
  const shape = dims.map((d, i) => int64(d, `dims[${i}]`, where));
  const params = shapeSize(shape);
  check(Number.isSafeInteger(params), 'bad-shape', () => `shape [${shape.join(', ')}] has a negative dim or more than 2^53 elements`, where);
  const dtype = dtypeOf(t.dataType ?? 0);
  check(!t.segment, 'unsupported', 'segmented tensors (TensorProto.segment) are not supported', where);
  const need = storageBytes(dtype, params);
  const shapeText = () => `shape [${shape.join(', ')}] of ${dtype} needs ${need} bytes`;

  if (t.dataLocation === 1) return { dtype, shape, params, data: { kind: 'external', ref: externalRef(t, where) } };

  const raw = t.rawData;
  if (raw && raw.length > 0) {
    check(need === undefined || raw.length === need, 'bad-size', () => `raw_data holds ${raw.length} bytes but ${shapeText()}`, where);
    // Defensive: the decoder must have handed out a view of the file buffer, not a copy.
    check(raw.buffer === fileBytes.buffer, 'internal', 'raw_data is not a view of the model file', where);
    return { dtype, shape, params, data: { kind: 'raw', offset: raw.byteOffset - fileBytes.byteOffset, length: raw.length } };
  }

  for (const key of TYPED_FIELDS) {
    const arr = t[key];
    if (!arr || arr.length === 0) continue;
    const field = FIELD_NAMES[key];
    const complex = dtype === 'UNKNOWN_COMPLEX64' || dtype === 'UNKNOWN_COMPLEX128';
    // 4-bit types pack two values per int32 element; ONNX is loose about the count there.
    const expected = dtype === 'I4' || dtype === 'U4' ? undefined : complex ? 2 * params : params;
    check(expected === undefined || arr.length === expected, 'bad-size', () => `${field} holds ${arr.length} values but shape [${shape.join(', ')}] has ${expected}`, where);
    const values = FLOAT_DTYPES.has(dtype) ? floatCopy(dtype, key, arr as number[], params, where) : undefined;
    return { dtype, shape, params, data: { kind: 'field', field, values } };
  }
  check(params === 0, 'no-data', () => `tensor has ${params} elements but no raw_data, typed field or external data`, where);
  return { dtype, shape, params, data: { kind: 'empty' } };
}

/** Decoded copy of a float tensor held in a typed field; the field must be the one ONNX assigns to the dtype. */
function floatCopy(dtype: DType, key: (typeof TYPED_FIELDS)[number], arr: number[], params: number, where: Location): Float32Array {
  if (dtype === 'F32' && key === 'floatData') return Float32Array.from(arr);
  if (dtype === 'F64' && key === 'doubleData') return Float32Array.from(arr);
  const size = PLAIN_DTYPE_BYTES[dtype] ?? 0;
  check(key === 'int32Data' && size <= 2, 'bad-field', `${dtype} values must not be stored in ${FIELD_NAMES[key]}`, where);
  // fp16/bf16/fp8 values sit in the low bits of each int32: lay them out as little-endian bytes and decode.
  const bytes = new Uint8Array(params * size);
  for (let i = 0; i < params; i++) {
    bytes[i * size] = arr[i] & 0xff;
    if (size === 2) bytes[i * size + 1] = (arr[i] >> 8) & 0xff;
  }
  return decodePlain(dtype, bytes, params);
}

/** external_data key/value entries → location, offset, length (decimal strings per the ONNX spec). */
function externalRef(t: onnx.ITensorProto, where: Location): ExternalRef {
  const kv = new Map<string, string>();
  for (const e of t.externalData ?? []) kv.set(e.key ?? '', e.value ?? '');
  const location = kv.get('location');
  check(location, 'bad-external', 'external data has no "location" entry', where);
  const num = (key: string): number | undefined => {
    const s = kv.get(key);
    if (s === undefined) return undefined;
    const n = /^\d{1,16}$/.test(s) ? Number(s) : NaN;
    check(Number.isSafeInteger(n), 'bad-external', `external data "${key}" must be a non-negative integer below 2^53, found "${s.slice(0, 40)}"`, where);
    return n;
  };
  return { location, offset: num('offset') ?? 0, length: num('length') };
}
