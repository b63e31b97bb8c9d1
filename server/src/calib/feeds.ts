// Checking loaded arrays against the model's inputs, and regrouping them into batches along axis 0.
import { QuantLensError } from '../formats/errors';
import type { ArrayValue, Feeds, ModelInput } from './types';
import { concatRows, elementCount, shapeText, sliceRows } from './values';

const symbolic = (d: number | string): boolean => typeof d === 'string' || d < 0;

const expectText = (input: ModelInput) => `input '${input.name}' expects shape ${shapeText(input.dims)} (${input.dtype})`;

/**
 * One loaded unit (a file, an archive, a JSON object) made to fit the model: every input present and no other
 * name; dtype equal, or float64 → float32 / int32 → int64 (the only conversions, both exact or rounding once);
 * rank equal, or one less when axis 0 is a batch axis (symbolic or 1): a single sample gets a leading axis of 1;
 * fixed dims equal; a symbolic dim named in several inputs has one size throughout the unit.
 */
export function conform(raw: Feeds, inputs: readonly ModelInput[], file: string): Feeds {
  const names = inputs.map((i) => i.name);
  for (const name of Object.keys(raw)) {
    if (!names.includes(name)) fail(file, `array '${name}' matches no model input (inputs: ${names.join(', ')})`);
  }
  const out: [string, ArrayValue][] = [];
  const seen = new Map<string, { size: number; input: string }>();
  for (const input of inputs) {
    const v = Object.hasOwn(raw, input.name) ? raw[input.name] : undefined;
    if (!v) fail(file, `input '${input.name}' is missing (found: ${Object.keys(raw).join(', ') || 'nothing'}); ${expectText(input)}`);
    const found = `found ${shapeText(v.dims)} (${v.dtype})`;
    const data = convert(v, input, file);
    let dims = v.dims;
    const d0 = input.dims[0];
    if (dims.length === input.dims.length - 1 && (symbolic(d0) || d0 === 1)) dims = [1, ...dims];
    const fits = dims.length === input.dims.length && input.dims.every((d, k) => symbolic(d) || d === dims[k]);
    if (!fits) fail(file, `${expectText(input)}, ${found}`);
    if (elementCount(dims) === 0) fail(file, `input '${input.name}' holds no elements: ${found}`);
    input.dims.forEach((d, k) => {
      if (typeof d !== 'string') return;
      const prev = seen.get(d);
      if (!prev) seen.set(d, { size: dims[k], input: input.name });
      else if (prev.size !== dims[k]) {
        fail(file, `dimension '${d}' is ${prev.size} in input '${prev.input}' but ${dims[k]} in input '${input.name}' (${expectText(input)}, ${found})`);
      }
    });
    out.push([input.name, { dtype: input.dtype, dims, data }]);
  }
  return Object.fromEntries(out);
}

function convert(v: ArrayValue, input: ModelInput, file: string): ArrayValue['data'] {
  if (v.dtype === input.dtype) return v.data;
  if (v.dtype === 'float64' && input.dtype === 'float32') return Float32Array.from(v.data as Float64Array);
  if (v.dtype === 'int32' && input.dtype === 'int64') {
    const src = v.data as Int32Array;
    const out = new BigInt64Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = BigInt(src[i]);
    return out;
  }
  return fail(file, `input '${input.name}' expects ${input.dtype}, found ${v.dtype} (only float64→float32 and int32→int64 are converted)`);
}

function fail(file: string, detail: string): never {
  throw new QuantLensError('calib-mismatch', detail, { file });
}

/**
 * Samples can be split and merged along axis 0 only when every input's axis 0 is one batch dimension: symbolic,
 * the same name in every input (or unnamed), and that name used on no other axis.
 */
export function batchable(inputs: readonly ModelInput[]): boolean {
  if (inputs.some((i) => i.dims.length === 0 || !symbolic(i.dims[0]))) return false;
  const named = new Set(inputs.map((i) => i.dims[0]).filter((d) => typeof d === 'string'));
  if (named.size > 1) return false;
  const [name] = named;
  return name === undefined || inputs.every((i) => !i.dims.slice(1).includes(name));
}

/** Samples in a batch: the size of the first input's axis 0 (1 for a scalar input). */
export function samplesOf(feeds: Feeds, inputs: readonly ModelInput[]): number {
  const v = feeds[inputs[0].name];
  return v.dims.length ? v.dims[0] : 1;
}

export interface Regrouped {
  batches: Feeds[];
  samples: number;
}

/**
 * Batches from conformed units, reading no further than `maxSamples` needs. Without `batchSize` every unit is one
 * batch; with it (and a batch axis) units are cut and concatenated into batches of up to `batchSize`, a new batch
 * starting wherever the shapes after axis 0 change. Without a batch axis units stay whole.
 */
export async function regroup(units: AsyncIterable<Feeds>, inputs: readonly ModelInput[], opts: { batchSize?: number; maxSamples?: number }): Promise<Regrouped> {
  const split = batchable(inputs);
  const limit = opts.maxSamples ?? Infinity;
  const size = split ? opts.batchSize : undefined;
  const batches: Feeds[] = [];
  let samples = 0;
  let pending: Feeds[] = [];
  let pendingN = 0;
  const flush = () => {
    if (!pendingN) return;
    batches.push(Object.fromEntries(inputs.map((i) => [i.name, concatRows(pending.map((p) => p[i.name]))])));
    samples += pendingN;
    pending = [];
    pendingN = 0;
  };
  for await (const unit of units) {
    const n = samplesOf(unit, inputs);
    if (size === undefined) {
      const take = split ? Math.min(n, limit - samples) : n;
      batches.push(take === n ? unit : sliceFeeds(unit, 0, take));
      samples += take;
    } else {
      for (let off = 0; off < n && samples + pendingN < limit; ) {
        if (pendingN && !sameRows(pending[0], unit)) flush();
        const take = Math.min(n - off, size - pendingN, limit - samples - pendingN);
        pending.push(sliceFeeds(unit, off, take));
        pendingN += take;
        off += take;
        if (pendingN === size) flush();
      }
    }
    if (samples + pendingN >= limit) break;
  }
  flush();
  return { batches, samples };
}

function sliceFeeds(f: Feeds, start: number, count: number): Feeds {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, sliceRows(v, start, count)]));
}

/** Same dims after axis 0 for every input: the two can be concatenated. */
function sameRows(a: Feeds, b: Feeds): boolean {
  return Object.keys(a).every((k) => a[k].dims.every((d, i) => i === 0 || d === b[k].dims[i]));
}
