// HAWQ-style loss curvature per weight block from Hessian-vector products, each a central finite difference of
// exact gradients: H·u ≈ (∇L(w + u) − ∇L(w − u)) / 2, with the perturbed weights fed as graph inputs.
//
// Trace (Hutchinson): by default all blocks are probed at once with independent Rademacher vectors v_l, scaled per
// block by ε_l = eps·rms(w_l); the estimate of tr(H_ll) from one probe is v_lᵀ(H u)_l / ε_l. Cross-block terms have
// zero mean, so this stays unbiased (they only add variance, which the reported standard error includes).
// Top eigenvalue: power iteration on each block alone (H_ll v, step eps·‖w_l‖ along the unit vector v); the
// Rayleigh quotient vᵀH_ll v of the last iterate is the eigenvalue of largest magnitude.
//
// The loss is held fixed across perturbations: labels (or MSE targets) come from the caller or from one forward
// run at the unperturbed weights (top-1 or seeded samples; output + seeded N(0, 1) noise for MSE).
import type { onnx } from 'onnx-proto';
import type * as ort from 'onnxruntime-node';
import type { LossSpec } from '../autodiff';
import { toOrtFeeds } from '../calib/inputs';
import type { ArrayValue, CalibrationSet, Feeds } from '../calib/types';
import { concatRows } from '../calib/values';
import { QuantLensError } from '../formats/errors';
import { createSession } from '../runtime/session';
import { baseFeeds, prepareGradientSession, samplesOf, seededRandom, type Prepared } from './gradient';

export interface HawqOptions {
  /** Hutchinson probes (default 16). */
  probes?: number;
  /** Power-iteration steps per block (default 10; stops earlier at relative change 1e-3). */
  iterations?: number;
  /** Calibration samples the loss averages over (default 4, at most all). */
  samples?: number;
  /** Relative finite-difference step (default 1e-3). */
  epsilon?: number;
  /**
   * Run the per-block power iteration (default true). It costs 2·iterations·samples gradient runs per weight,
   * against 2·probes·samples for all traces together: turn it off on large models to keep the traces.
   */
  topEigen?: boolean;
  /**
   * 'joint' (default): one probe perturbs every block (2·probes·samples runs in all). 'per-block': each probe
   * perturbs one block (×blocks the runs), without the cross-block variance; worth it on non-smooth
   * (ReLU/hard-swish) networks, where the cross terms of large blocks dominate the standard error.
   */
  probing?: 'joint' | 'per-block';
}

interface Context extends HawqOptions {
  providers?: readonly string[];
  labels?: ArrayValue;
  output?: string;
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, stage: string) => void;
}

export interface HawqResult {
  perWeight: Map<string, { trace: number; traceStdError: number; topEig?: number }>;
  settings: { probes: number; iterations: number; samples: number; probing: 'joint' | 'per-block' };
}

type Grads = Map<string, Float64Array>;

export async function hawqScores(
  bytes: Uint8Array,
  model: onnx.IModelProto,
  calib: CalibrationSet,
  weights: string[],
  spec: LossSpec,
  ctx: Context,
): Promise<HawqResult> {
  const probes = ctx.probes ?? 16;
  const iterations = ctx.topEigen === false ? 0 : (ctx.iterations ?? 10);
  const eps = ctx.epsilon ?? 1e-3;
  const samples = [...samplesOf(calib)].slice(0, Math.max(1, ctx.samples ?? 4));
  const rnd = seededRandom((ctx.seed ?? 1) * 7919 + 17);
  const fixed = await fixedTargets(bytes, model, samples, spec, ctx, rnd);
  const p = await prepareGradientSession(bytes, weights, fixed.spec, { output: ctx.output, providers: ctx.providers, labels: fixed.labels });
  const groups = ctx.probing === 'per-block' ? weights.map((w) => [w]) : [weights];
  const total = probes * groups.length + weights.length * iterations;
  let done = 0;
  const step = (stage: string) => {
    if (ctx.signal?.aborted) throw new QuantLensError('cancelled', 'HAWQ analysis was cancelled', { file: calib.source });
    ctx.onProgress?.(++done, total, stage);
  };
  try {
    const w0 = p.weightValues;
    const grad = (over: Map<string, Float32Array>) => meanGradient(p, samples, over);

    // Hutchinson, over all blocks at once or block by block.
    const estimates = new Map(weights.map((w) => [w, [] as number[]]));
    for (let k = 0; k < probes * groups.length; k++) {
      const group = groups[k % groups.length];
      const v = new Map<string, Float32Array>();
      const scale = new Map<string, number>();
      for (const w of group) {
        const data = w0.get(w)!.data;
        v.set(w, Float32Array.from(data, () => (rnd.uniform() < 0.5 ? -1 : 1)));
        scale.set(w, eps * (Math.sqrt(sumSq(data) / Math.max(1, data.length)) || 1));
      }
      const [gp, gm] = await Promise.all([grad(shifted(w0, v, scale, 1)), grad(shifted(w0, v, scale, -1))]);
      for (const w of group) {
        const vw = v.get(w)!;
        const a = gp.get(w)!;
        const b = gm.get(w)!;
        let s = 0;
        for (let j = 0; j < vw.length; j++) s += vw[j] * (a[j] - b[j]);
        estimates.get(w)!.push(s / (2 * scale.get(w)!));
      }
      step('hutchinson');
    }

    // Power iteration per block.
    const perWeight: HawqResult['perWeight'] = new Map();
    for (const w of weights) {
      const data = w0.get(w)!.data;
      const h = eps * (Math.sqrt(sumSq(data)) || 1);
      let v = Float64Array.from(data, () => rnd.normal());
      normalize(v);
      let lambda = 0;
      for (let it = 0; it < iterations; it++) {
        const dir = new Map([[w, Float32Array.from(v)]]);
        const scale = new Map([[w, h]]);
        const [gp, gm] = await Promise.all([grad(shifted(w0, dir, scale, 1)), grad(shifted(w0, dir, scale, -1))]);
        const a = gp.get(w)!;
        const b = gm.get(w)!;
        const hv = Float64Array.from(a, (x, j) => (x - b[j]) / (2 * h));
        let next = 0;
        for (let j = 0; j < v.length; j++) next += v[j] * hv[j];
        step('power-iteration');
        const converged = it > 0 && Math.abs(next - lambda) <= 1e-3 * Math.abs(next);
        lambda = next;
        if (normalize(hv) === 0) break;
        v = hv;
        if (converged) {
          done += iterations - it - 1;
          break;
        }
      }
      const est = estimates.get(w)!;
      const mean = est.reduce((s, x) => s + x, 0) / est.length;
      const variance = est.length > 1 ? est.reduce((s, x) => s + (x - mean) ** 2, 0) / (est.length - 1) : 0;
      perWeight.set(w, { trace: mean, traceStdError: Math.sqrt(variance / est.length), ...(iterations > 0 ? { topEig: lambda } : {}) });
    }
    return { perWeight, settings: { probes, iterations, samples: samples.length, probing: ctx.probing ?? 'joint' } };
  } finally {
    await p.session.release();
  }
}

function sumSq(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}

function normalize(v: Float64Array): number {
  const n = Math.sqrt(sumSq(v));
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return n;
}

/** w + sign·scale_l·dir_l for the blocks in `dir`. */
function shifted(w0: Prepared['weightValues'], dir: Map<string, Float32Array>, scale: Map<string, number>, sign: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [w, d] of dir) {
    const base = w0.get(w)!.data;
    const s = sign * scale.get(w)!;
    out.set(w, Float32Array.from(base, (x, j) => x + s * d[j]));
  }
  return out;
}

/** Gradient of the mean loss over `samples` with some weights overridden, accumulated in float64. */
async function meanGradient(p: Prepared, samples: Feeds[], over: Map<string, Float32Array>): Promise<Grads> {
  const acc: Grads = new Map();
  for (const [w, v] of p.weightValues) acc.set(w, new Float64Array(v.data.length));
  for (let i = 0; i < samples.length; i++) {
    const feeds: Record<string, ort.Tensor> = { ...baseFeeds(p, samples[i]), ...p.extraFeeds(i) };
    for (const [w, data] of over) feeds[w] = toOrtFeeds({ [w]: { dtype: 'float32', dims: p.weightValues.get(w)!.dims, data } })[w];
    const r = await p.session.run(feeds);
    for (const [w, out] of p.gradients) {
      const g = r[out].data as Float32Array;
      const a = acc.get(w)!;
      for (let j = 0; j < g.length; j++) a[j] += g[j] / samples.length;
    }
  }
  return acc;
}

/** Labels or targets that keep the loss fixed while the weights move. */
async function fixedTargets(
  bytes: Uint8Array,
  model: onnx.IModelProto,
  samples: Feeds[],
  spec: LossSpec,
  ctx: Context,
  rnd: ReturnType<typeof seededRandom>,
): Promise<{ spec: LossSpec; labels?: ArrayValue }> {
  if (spec.kind === 'ce-labels' || spec.kind === 'mse-target') {
    const rows = ctx.labels!.dims[0] === samples.length ? ctx.labels! : { ...ctx.labels!, dims: [samples.length, ...ctx.labels!.dims.slice(1)], data: ctx.labels!.data.subarray(0, (ctx.labels!.data.length / ctx.labels!.dims[0]) * samples.length) };
    return { spec, labels: rows as ArrayValue };
  }
  const { session } = await createSession(bytes, { providers: ctx.providers });
  const output = ctx.output ?? model.graph?.output?.[0]?.name ?? '';
  const producer = (model.graph?.node ?? []).find((n) => n.output?.includes(output))?.opType;
  try {
    const parts: ArrayValue[] = [];
    for (const s of samples) {
      const y = (await session.run(toOrtFeeds(s)))[output];
      const data = y.data as Float32Array;
      const dims = [...y.dims].map(Number);
      if (spec.kind === 'mse-perturbed') {
        parts.push({ dtype: 'float32', dims, data: Float32Array.from(data, (x) => x + rnd.normal()) });
        continue;
      }
      const c = dims[dims.length - 1];
      const labels = new BigInt64Array(data.length / c);
      for (let r = 0; r < labels.length; r++) {
        const row = Float64Array.from(data.subarray(r * c, (r + 1) * c));
        labels[r] = BigInt(spec.kind === 'ce-top1' ? argmax(row) : sample(producer === 'Softmax' ? row : softmax(row, producer === 'LogSoftmax'), rnd.uniform()));
      }
      parts.push({ dtype: 'int64', dims: dims.slice(0, -1), data: labels });
    }
    return { spec: spec.kind === 'mse-perturbed' ? { kind: 'mse-target' } : { kind: 'ce-labels' }, labels: concatRows(parts) };
  } finally {
    await session.release();
  }
}

function argmax(row: Float64Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Softmax of logits (or exp of log-probabilities). */
function softmax(row: Float64Array, logProbs: boolean): Float64Array {
  const m = logProbs ? 0 : Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function sample(p: Float64Array, u: number): number {
  let acc = 0;
  for (let i = 0; i < p.length; i++) {
    acc += p[i];
    if (u < acc) return i;
  }
  return p.length - 1;
}
