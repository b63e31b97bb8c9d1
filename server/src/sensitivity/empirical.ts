// Empirical scores (DESIGN.md §4): quantize only layer l with one format, run the model on the calibration
// batches, and compare one model output with the full-precision run. Rows are the output's last axis
// (leading axes flattened):
//   KL    mean over rows of KL(p ‖ q) = Σ p (ln p − ln q), in nats. When every reference row is non-negative and
//         sums to 1 (± 1e-3) the outputs are taken as probabilities (q floored at 1e-12, terms with p = 0 add 0);
//         otherwise both are treated as logits and log-softmaxed first. Decided per batch from the reference.
//   SQNR  10·log10(Σ y² / Σ (ŷ − y)²) over all elements of all batches (+Infinity when identical).
//   top-1 share of rows whose first argmax is unchanged.
// The full-precision outputs are computed once and kept while they fit `refCacheBytes`; the rest are recomputed.
import type { Feeds } from '../calib/types';
import { QuantLensError } from '../formats/errors';
import { QuantInputError, type NumberFormat } from '../quant';
import type { ModelRunner, OutputTensor } from '../runtime/model-runner';
import type { EmpiricalScore } from './types';

const PROB_TOL = 1e-3;
const Q_FLOOR = 1e-12;
const REF_CACHE_BYTES = 256 * 2 ** 20;

function isDistribution(x: Float32Array, cols: number): boolean {
  for (let o = 0; o < x.length; o += cols) {
    let s = 0;
    for (let j = o; j < o + cols; j++) {
      if (!(x[j] >= 0)) return false;
      s += x[j];
    }
    if (Math.abs(s - 1) > PROB_TOL) return false;
  }
  return true;
}

/** log-softmax of x[o … o + cols) into out[0 … cols). */
export function logSoftmax(x: Float32Array, o: number, cols: number, out: Float64Array): void {
  let m = -Infinity;
  for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]);
  let s = 0;
  for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - m);
  const lse = m + Math.log(s);
  for (let j = 0; j < cols; j++) out[j] = x[o + j] - lse;
}

/** Index of the largest of x[o … o + cols) (the first on ties). */
export function argmax(x: Float32Array, o: number, cols: number): number {
  let best = 0;
  for (let j = 1; j < cols; j++) if (x[o + j] > x[o + best]) best = j;
  return best;
}

/** Accumulates KL, SQNR and top-1 agreement of test outputs against reference outputs, batch by batch. */
export class OutputComparer {
  private klSum = 0;
  private rows = 0;
  private agree = 0;
  private signal = 0;
  private noise = 0;

  add(ref: OutputTensor, test: OutputTensor, where = { file: '<outputs>' }): void {
    const n = ref.data.length;
    if (test.data.length !== n || test.dims.join() !== ref.dims.join()) {
      throw new QuantLensError('bad-output', `outputs differ in shape: [${ref.dims.join(', ')}] vs [${test.dims.join(', ')}]`, where);
    }
    const cols = ref.dims.length > 0 ? ref.dims[ref.dims.length - 1] : 1;
    if (n === 0 || cols === 0) return;
    const y = ref.data;
    const t = test.data;
    for (let i = 0; i < n; i++) {
      const e = t[i] - y[i];
      this.signal += y[i] * y[i];
      this.noise += e * e;
    }
    const probs = isDistribution(y, cols);
    const lp = new Float64Array(cols);
    const lq = new Float64Array(cols);
    for (let o = 0; o < n; o += cols) {
      let kl = 0;
      if (probs) {
        for (let j = 0; j < cols; j++) {
          const p = y[o + j];
          if (p > 0) kl += p * (Math.log(p) - Math.log(Math.max(t[o + j], Q_FLOOR)));
        }
      } else {
        logSoftmax(y, o, cols, lp);
        logSoftmax(t, o, cols, lq);
        for (let j = 0; j < cols; j++) kl += Math.exp(lp[j]) * (lp[j] - lq[j]);
      }
      this.klSum += kl;
      if (argmax(y, o, cols) === argmax(t, o, cols)) this.agree++;
      this.rows++;
    }
  }

  result(): EmpiricalScore {
    const sqnrDb = this.noise === 0 ? Infinity : 10 * Math.log10(this.signal / this.noise);
    return { kl: this.rows > 0 ? this.klSum / this.rows : 0, sqnrDb, top1: this.rows > 0 ? this.agree / this.rows : 1 };
  }
}

export interface EmpiricalOptions {
  /** Weights to score (default: all of the runner's), in the runner's order. */
  weights?: readonly string[];
  /** The model output to compare (default: the first). */
  output?: string;
  refCacheBytes?: number;
  /** Called after each (layer, format) with the number done and the total. */
  onProgress?: (done: number, total: number, weight: string) => void;
  signal?: AbortSignal;
}

/** Per weight, per format id: the output scores with only that weight quantized. */
export async function empiricalScores(
  runner: ModelRunner,
  batches: readonly Feeds[],
  formats: readonly NumberFormat[],
  opts: EmpiricalOptions = {},
): Promise<Map<string, Record<string, EmpiricalScore>>> {
  const output = opts.output ?? runner.outputs[0];
  const file = runner.file;
  if (!runner.outputs.includes(output)) {
    throw new QuantLensError('unknown-output', `model has no output "${output}" (outputs: ${runner.outputs.join(', ')})`, { file });
  }
  if (batches.length === 0) throw new QuantLensError('no-calibration', 'no calibration batches: empirical scores need at least one', { file });
  const names = opts.weights ?? runner.weights.map((w) => w.name);
  const refs: (OutputTensor | undefined)[] = [];
  let cached = 0;
  const reference = async (b: number): Promise<OutputTensor> => {
    const hit = refs[b];
    if (hit) return hit;
    const y = (await runner.runTensors(batches[b]))[output];
    if (cached + y.data.byteLength <= (opts.refCacheBytes ?? REF_CACHE_BYTES)) {
      refs[b] = { data: y.data.slice(), dims: y.dims };
      cached += y.data.byteLength;
    }
    return y;
  };
  const out = new Map<string, Record<string, EmpiricalScore>>();
  const total = names.length * formats.length;
  let done = 0;
  for (const name of names) {
    const w = runner.weight(name);
    const where = { file, tensor: name };
    const values = runner.read(name);
    const scores: Record<string, EmpiricalScore> = {};
    for (const f of formats) {
      let q: Float32Array;
      try {
        q = f.quantizeDequantize(values, w.shape, w.layout);
      } catch (e) {
        if (e instanceof QuantInputError) throw new QuantLensError('non-finite-weight', e.message, where);
        throw e;
      }
      const cmp = new OutputComparer();
      const override = new Map([[name, q]]);
      for (let b = 0; b < batches.length; b++) {
        opts.signal?.throwIfAborted();
        const ref = await reference(b);
        cmp.add(ref, (await runner.runTensors(batches[b], override))[output], where);
      }
      scores[f.id] = cmp.result();
      opts.onProgress?.(++done, total, name);
    }
    out.set(name, scores);
  }
  return out;
}
