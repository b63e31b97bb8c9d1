// Calibration data as JSON: an object mapping input names to (nested) arrays or scalars, or a list of such objects
// (one per sample or batch). JSON has no dtypes: values are stored in the dtype of the model input they feed.
import { promises as fsp } from 'node:fs';
import { check, LIMITS, QuantLensError } from '../formats/errors';
import { isObject, jsonSyntaxError } from '../formats/json';
import type { ArrayValue, Feeds, InputDType, ModelInput } from './types';
import { allocate, f16Bits } from './values';

export const MAX_JSON_BYTES = 256 * 1024 * 1024;

export interface JsonUnit {
  /** Names the file and, for a list, the entry: what errors about this unit point at. */
  label: string;
  raw: Feeds;
}

export async function readCalibJson(path: string, inputs: readonly ModelInput[]): Promise<JsonUnit[]> {
  const { size } = await fsp.stat(path);
  check(size <= MAX_JSON_BYTES, 'too-large', `calibration JSON has ${size} bytes, more than the ${MAX_JSON_BYTES}-byte limit`, { file: path });
  const bytes = await fsp.readFile(path);
  let top: unknown;
  try {
    top = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    const err = jsonSyntaxError(bytes);
    throw new QuantLensError('bad-json', `invalid JSON: expected ${err?.expected ?? 'valid JSON'} (${(e as Error).message})`, { file: path, offset: err?.offset ?? 0 });
  }
  const list = Array.isArray(top) ? top : [top];
  check(list.length > 0, 'bad-json', 'expected at least one object mapping input names to arrays, found an empty list', { file: path });
  const dtypes = new Map(inputs.map((i) => [i.name, i.dtype]));
  return list.map((entry, n) => {
    const label = Array.isArray(top) ? `${path}[${n}]` : path;
    check(isObject(entry), 'bad-json', () => `expected an object mapping input names to arrays, found ${Array.isArray(entry) ? 'an array' : typeof entry}`, { file: label });
    // An unknown name is decoded as float64 so that the model check reports it with the other names.
    const raw: Feeds = Object.fromEntries(Object.entries(entry).map(([name, v]) => [name, toArray(v, dtypes.get(name) ?? 'float64', name, label)]));
    return { label, raw };
  });
}

/** A nested JSON array (or a scalar) as a C-order array; ragged rows and non-numbers are located errors. */
function toArray(v: unknown, dtype: InputDType, name: string, file: string): ArrayValue {
  const dims: number[] = [];
  for (let cur = v; Array.isArray(cur); cur = cur[0]) {
    check(dims.length < LIMITS.maxDims, 'bad-json', `'${name}' nests deeper than ${LIMITS.maxDims} levels`, { file });
    dims.push(cur.length);
    if (cur.length === 0) break;
  }
  const count = dims.reduce((a, b) => a * b, 1);
  check(count <= LIMITS.maxArrayElements, 'too-large', `'${name}' holds more than ${LIMITS.maxArrayElements} elements`, { file });
  const data = allocate(dtype, count);
  const put = leafWriter(dtype, data);
  const path: number[] = [];
  const at = () => `${name}${path.map((i) => `[${i}]`).join('')}`;
  let next = 0;
  const walk = (a: unknown, depth: number): void => {
    if (depth === dims.length) {
      check(!Array.isArray(a), 'bad-json', () => `ragged array: ${at()} is an array where ${name}${'[0]'.repeat(depth)} is a number`, { file });
      check(put(next++, a), 'bad-json', () => `input '${name}' is ${dtype} but ${at()} is ${JSON.stringify(a)}`, { file });
      return;
    }
    check(
      Array.isArray(a) && a.length === dims[depth],
      'bad-json',
      () => `ragged array: ${at()} has ${Array.isArray(a) ? `${a.length} elements` : `the value ${JSON.stringify(a)}`} where ${name}${'[0]'.repeat(depth)} has ${dims[depth]}`,
      { file },
    );
    for (let i = 0; i < a.length; i++) {
      path.push(i);
      walk(a[i], depth + 1);
      path.pop();
    }
  };
  walk(v, 0);
  return { dtype, dims, data };
}

const INT_RANGE: Partial<Record<InputDType, [number, number]>> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int8: [-128, 127],
  uint8: [0, 255],
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** Stores one JSON leaf; false when it does not fit the dtype. */
function leafWriter(dtype: InputDType, data: ArrayValue['data']): (i: number, x: unknown) => boolean {
  if (dtype === 'bool') {
    const d = data as Uint8Array;
    return (i, x) => {
      if (x !== true && x !== false && x !== 0 && x !== 1) return false;
      d[i] = x === true || x === 1 ? 1 : 0;
      return true;
    };
  }
  if (dtype === 'float16') {
    const d = data as Uint16Array;
    return (i, x) => typeof x === 'number' && ((d[i] = f16Bits(x)), true);
  }
  const range = INT_RANGE[dtype];
  if (!range) {
    const d = data as Float32Array | Float64Array;
    return (i, x) => typeof x === 'number' && ((d[i] = x), true);
  }
  const ok = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= range[0] && (x as number) <= range[1];
  if (dtype === 'int64') {
    const d = data as BigInt64Array;
    return (i, x) => ok(x) && ((d[i] = BigInt(x)), true);
  }
  const d = data as Int32Array | Int8Array | Uint8Array;
  return (i, x) => ok(x) && ((d[i] = x), true);
}
