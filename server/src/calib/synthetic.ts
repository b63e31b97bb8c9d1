// The last resort when no calibration data is given: deterministic seeded inputs that at least exercise every
// path of the model. Reports must say the data was synthetic (CalibrationSet.synthetic).
import { LIMITS, QuantLensError } from '../formats/errors';
import { batchable } from './feeds';
import type { ArrayValue, CalibrationSet, Feeds, ModelInput } from './types';
import { allocate, elementCount, f16Bits, FLOAT_INPUTS, shapeText } from './values';
import { rng } from '../random';

export interface SyntheticOptions {
  /** Integer inputs (token ids) are uniform in [0, vocab); default 100. */
  vocab?: number;
  /** Sizes of symbolic dims by name. Defaults: batch (axis 0) 1, sequence-like names 16, others 32. */
  dims?: Record<string, number>;
}

export interface SyntheticRequest extends SyntheticOptions {
  seed?: number;
  /** Size of the batch axis; default `dims[name]` or 1. */
  batchSize?: number;
  /** Samples to generate; default 8. */
  maxSamples?: number;
}

export const DEFAULT_SYNTHETIC_SAMPLES = 8;
const SEQUENCE_NAME = /seq|len|token|time|sentence|past/i;


export function syntheticCalibration(inputs: readonly ModelInput[], req: SyntheticRequest = {}): CalibrationSet {
  const where = { file: '<synthetic calibration>' };
  const seed = req.seed ?? 0;
  const vocab = req.vocab ?? 100;
  const positive = (v: number) => Number.isInteger(v) && v >= 1 && v <= 2 ** 31;
  if (!Number.isSafeInteger(seed)) throw new QuantLensError('bad-option', `seed must be an integer, found ${seed}`, where);
  if (!positive(vocab)) throw new QuantLensError('bad-option', `vocab must be an integer in 1..2^31, found ${vocab}`, where);
  for (const [k, v] of Object.entries(req.dims ?? {})) {
    if (!positive(v)) throw new QuantLensError('bad-option', `dimension '${k}' must be a positive integer, found ${v}`, where);
  }
  const sizes = new Map<string, number>(Object.entries(req.dims ?? {}));
  const split = batchable(inputs);
  const batchName = split ? inputs.map((i) => i.dims[0]).find((d) => typeof d === 'string') : undefined;
  const perBatch = split ? (req.batchSize ?? (batchName !== undefined ? sizes.get(batchName) : undefined) ?? 1) : undefined;
  // Every symbolic dim gets one size (the batch axis is set per batch below).
  const resolve = (input: ModelInput): number[] =>
    input.dims.map((d, k) => {
      if (typeof d === 'number' && d >= 0) return d;
      if (k === 0 && split) return perBatch!;
      const name = typeof d === 'string' ? d : `${input.name}:${k}`;
      let size = sizes.get(name);
      if (size === undefined) {
        const seqLike = typeof d === 'string' ? SEQUENCE_NAME.test(d) : k === 1 && !FLOAT_INPUTS.has(input.dtype);
        size = k === 0 ? 1 : seqLike ? 16 : 32;
        sizes.set(name, size);
      }
      return size;
    });
  const shapes = inputs.map(resolve);
  inputs.forEach((input, i) => {
    const count = elementCount(shapes[i]);
    if (count === 0 || count > LIMITS.maxArrayElements) {
      throw new QuantLensError('bad-option', `input '${input.name}' would get shape ${shapeText(shapes[i])}: ${count} elements (expected 1..${LIMITS.maxArrayElements})`, where);
    }
  });
  const total = req.maxSamples ?? DEFAULT_SYNTHETIC_SAMPLES;
  const step = shapes[0].length ? shapes[0][0] : 1;
  const next = rng(seed);
  const batches: Feeds[] = [];
  let samples = 0;
  while (samples < total) {
    const n = split ? Math.min(step, total - samples) : step;
    batches.push(Object.fromEntries(inputs.map((input, i) => [input.name, generate(input, split ? [n, ...shapes[i].slice(1)] : shapes[i], next, vocab)])));
    samples += n;
  }
  const parts = inputs.map((input, i) => `${input.name} ${input.dtype} ${shapeText(split ? [perBatch!, ...shapes[i].slice(1)] : shapes[i])} ${describe(input, shapes[i].length, vocab)}`);
  return { batches, samples, synthetic: true, source: `synthetic data (seeded generator, seed ${seed}, ${samples} samples): ${parts.join('; ')}` };
}

type Kind = 'uniform' | 'normal' | 'ones' | 'zeros' | 'positions' | 'ids';

/** How an input is filled: images uniform, other floats normal; integer inputs by their usual meaning. */
function kindOf(input: ModelInput, rank: number): Kind {
  if (FLOAT_INPUTS.has(input.dtype)) return rank === 4 ? 'uniform' : 'normal';
  if (/mask/i.test(input.name)) return 'ones';
  if (/position/i.test(input.name)) return 'positions';
  if (/token_type|segment/i.test(input.name)) return 'zeros';
  return 'ids';
}

/** Exclusive upper bound of the ids: vocab, within what the dtype holds from 0. */
function idBound(input: ModelInput, vocab: number): number {
  return Math.min(vocab, input.dtype === 'bool' ? 2 : input.dtype === 'int8' ? 128 : input.dtype === 'uint8' ? 256 : 2 ** 31);
}

function describe(input: ModelInput, rank: number, vocab: number): string {
  const kind = kindOf(input, rank);
  if (kind === 'ids') return `uniform integers in [0, ${idBound(input, vocab)})`;
  return { uniform: 'uniform 0..1', normal: '~ N(0, 1)', ones: 'all ones', zeros: 'all zeros', positions: '0, 1, 2, … along the last axis' }[kind];
}

function generate(input: ModelInput, dims: number[], next: () => number, vocab: number): ArrayValue {
  const count = elementCount(dims);
  const data = allocate(input.dtype, count);
  const kind = kindOf(input, dims.length);
  if (kind === 'uniform' || kind === 'normal') {
    const d = data as Float32Array | Float64Array | Uint16Array;
    const f16 = input.dtype === 'float16';
    for (let i = 0; i < count; i++) {
      // Box–Muller, one normal per pair of uniforms: simple and the same on every machine.
      const v = kind === 'uniform' ? next() : Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
      d[i] = f16 ? f16Bits(v) : v;
    }
    return { dtype: input.dtype, dims, data };
  }
  const last = dims.length ? dims[dims.length - 1] : 1;
  const hi = idBound(input, vocab);
  const value = (i: number): number => (kind === 'ones' ? 1 : kind === 'zeros' ? 0 : kind === 'positions' ? i % last : Math.floor(next() * hi));
  if (input.dtype === 'int64') {
    const d = data as BigInt64Array;
    for (let i = 0; i < count; i++) d[i] = BigInt(value(i));
  } else {
    const d = data as Int32Array | Int8Array | Uint8Array;
    for (let i = 0; i < count; i++) d[i] = value(i);
  }
  return { dtype: input.dtype, dims, data };
}
