// Gradient-based sensitivity (DESIGN.md §4) on onnxruntime: per-sample gradients gₙ from the generated
// gradient model (one run per sample, batch 1), the empirical/true Fisher F = (1/N) Σ gₙ², the layer score
// Σ F ⊙ ΔW² per format (SqueezeLLM-style), and GWQ: saliency |ḡ ⊙ w| with ḡ the gradient of the mean loss,
// scored per format as the first-order loss change bound Σ |ḡ ⊙ ΔW|. HAWQ traces/eigenvalues come from hawq.ts.
import { readFile } from 'node:fs/promises';
import { onnx } from 'onnx-proto';
import type * as ort from 'onnxruntime-node';
import { buildGradientModel, LOSS_INPUTS, type LossSpec } from '../autodiff';
import { num } from '../autodiff/rule';
import { toOrtFeeds } from '../calib/inputs';
import type { ArrayValue, CalibrationSet, Feeds } from '../calib/types';
import { sliceRows } from '../calib/values';
import { QuantLensError } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import { getFormat, UnknownFormatError, type NumberFormat } from '../quant';
import { createSession } from '../runtime/session';
import { hawqScores, type HawqOptions } from './hawq';

export type GradientMethod = 'fisher' | 'gwq' | 'hawq';

export interface GradientAnalysisOptions {
  methods: GradientMethod[];
  /** Number-format ids scored for fisher/gwq. */
  formats: string[];
  providers?: readonly string[];
  /**
   * Per-sample targets aligned with the calibration samples (axis 0): int64 class indices ([N] or [N, T])
   * give cross-entropy against them; float values shaped like the output give MSE to them.
   */
  labels?: ArrayValue;
  /** Without labels: 'top1' (default; empirical Fisher) or 'sampled' (true Fisher) for class outputs. */
  unlabeled?: 'top1' | 'sampled';
  /** Model output to differentiate (the first one by default). */
  output?: string;
  /** Weights to score; by default every float weight consumed by MatMul, Gemm or Conv. */
  weights?: string[];
  /** Seed of the sampled labels / MSE perturbations and of the HAWQ probes. */
  seed?: number;
  hawq?: HawqOptions;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, stage: string) => void;
}

export interface GradientWeightResult {
  name: string;
  /** The node consuming the weight (MatMul/Gemm/Conv). */
  node?: string;
  scores: { fisher?: Record<string, number>; gwq?: Record<string, number> };
  /** Loss-Hessian trace of this weight's block (Hutchinson) and its standard error. */
  hessianTrace?: number;
  hessianTraceStdError?: number;
  /** Largest-magnitude eigenvalue of the block (power iteration). */
  hessianTopEig?: number;
}

export interface GradientAnalysisResult {
  weights: GradientWeightResult[];
  executionProvider: string;
  /** The loss the gradients are of, in words. */
  loss: string;
  samples: number;
  /** HAWQ settings actually used. */
  hawq?: { probes: number; iterations: number; samples: number; probing: 'joint' | 'per-block' };
}

export interface ScoredWeight {
  name: string;
  node: string;
  dims: number[];
  layout: WeightLayout;
}

const SCORED_OPS: Record<string, (n: onnx.INodeProto) => WeightLayout> = {
  MatMul: () => 'in_out',
  Gemm: (n) => (num(n.attribute?.find((a) => a.name === 'transB')?.i ?? 0) === 1 ? 'out_in' : 'in_out'),
  Conv: () => 'conv',
};

/** Float weights (initializers or Constant outputs, rank ≥ 2) feeding the B/W slot of MatMul, Gemm or Conv. */
export function scoredWeights(model: onnx.IModelProto): ScoredWeight[] {
  const graph = model.graph ?? {};
  const tensors = new Map<string, onnx.ITensorProto>();
  for (const t of graph.initializer ?? []) tensors.set(t.name ?? '', t);
  for (const n of graph.node ?? []) {
    const t = n.opType === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (t && n.output?.[0]) tensors.set(n.output[0], t);
  }
  const out: ScoredWeight[] = [];
  const seen = new Set<string>();
  for (const n of graph.node ?? []) {
    const layout = SCORED_OPS[n.opType ?? ''];
    const w = n.input?.[1];
    const t = w ? tensors.get(w) : undefined;
    if (!layout || !w || !t || t.dataType !== 1 || (t.dims ?? []).length < 2 || seen.has(w)) continue;
    seen.add(w);
    out.push({ name: w, node: n.name || n.opType || '', dims: (t.dims ?? []).map(num), layout: layout(n) });
  }
  return out;
}

/** mulberry32 uniforms in (0, 1), and normals by Box–Muller: reproducible noise for losses and probes. */
export function seededRandom(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/** The single samples of a calibration set, in order. */
export function* samplesOf(calib: CalibrationSet): Generator<Feeds> {
  for (const batch of calib.batches) {
    const names = Object.keys(batch);
    const n = names.length === 0 ? 0 : batch[names[0]].dims[0];
    for (let i = 0; i < n; i++) {
      const one: Feeds = {};
      for (const k of names) one[k] = sliceRows(batch[k], i, 1);
      yield one;
    }
  }
}

export interface Prepared {
  session: ort.InferenceSession;
  provider: string;
  gradients: Map<string, string>;
  lossOutput: string;
  output: string;
  weightValues: Map<string, { dims: number[]; data: Float32Array }>;
  /** Loss inputs for sample i (labels, targets), as ORT tensors. */
  extraFeeds: (sample: number) => Record<string, ort.Tensor>;
  describe: string;
  spec: LossSpec;
}

/** Builds and opens the gradient model for `spec` (labels/targets indexed by sample). */
export async function prepareGradientSession(
  bytes: Uint8Array,
  weights: string[],
  spec: LossSpec,
  opts: { output?: string; providers?: readonly string[]; labels?: ArrayValue },
): Promise<Prepared> {
  const gm = buildGradientModel(bytes, { weights, loss: spec, output: opts.output, weightInputs: true });
  const { session, provider } = await createSession(gm.model, { providers: opts.providers });
  // Class labels go in as int64 whatever integer type they were stored as.
  const labels = spec.kind === 'ce-labels' && opts.labels && opts.labels.dtype !== 'int64'
    ? { dtype: 'int64' as const, dims: opts.labels.dims, data: BigInt64Array.from(opts.labels.data as Int32Array, (v) => BigInt(v)) }
    : opts.labels;
  const extraFeeds = (sample: number): Record<string, ort.Tensor> => {
    const feeds: Feeds = {};
    if (spec.kind === 'ce-labels') feeds[LOSS_INPUTS.labels] = sliceRows(labels!, sample, 1);
    if (spec.kind === 'mse-target') feeds[LOSS_INPUTS.target] = sliceRows(opts.labels!, sample, 1);
    return toOrtFeeds(feeds);
  };
  return {
    session, provider, gradients: gm.gradients, lossOutput: gm.lossOutput, output: gm.output, weightValues: gm.weightValues,
    extraFeeds, describe: describeLoss(spec), spec,
  };
}

export function describeLoss(spec: LossSpec): string {
  switch (spec.kind) {
    case 'ce-labels': return 'cross-entropy against the given labels';
    case 'ce-top1': return "cross-entropy against the model's own top-1 prediction (empirical Fisher)";
    case 'ce-sampled': return "cross-entropy against labels sampled from the model's output distribution (seeded; true Fisher)";
    case 'mse-target': return 'mean squared error to the given targets';
    case 'mse-perturbed': return 'mean squared error to the output plus seeded N(0, 1) noise, held constant (Gaussian-likelihood Fisher)';
  }
}

/** Picks the loss: given labels decide; otherwise class outputs ([N, C], or a final Softmax/LogSoftmax) get cross-entropy. */
export function chooseLoss(model: onnx.IModelProto, output: string | undefined, labels: ArrayValue | undefined, unlabeled: 'top1' | 'sampled', seed = 1): LossSpec {
  if (labels) return labels.dtype === 'float32' ? { kind: 'mse-target' } : { kind: 'ce-labels' };
  const graph = model.graph ?? {};
  const out = output ?? graph.output?.[0]?.name ?? '';
  const producer = (graph.node ?? []).find((n) => n.output?.includes(out));
  const rank = graph.output?.find((o) => o.name === out)?.type?.tensorType?.shape?.dim?.length;
  // Token models (integer ids in, [batch, T, vocab] logits out) are classifiers at every position.
  const ids = graph.input?.some((i) => i.type?.tensorType?.elemType === onnx.TensorProto.DataType.INT64 || i.type?.tensorType?.elemType === onnx.TensorProto.DataType.INT32);
  const classes = producer?.opType === 'Softmax' || producer?.opType === 'LogSoftmax' || rank === 2 || (rank === 3 && ids);
  if (!classes) return { kind: 'mse-perturbed', seed };
  return unlabeled === 'sampled' ? { kind: 'ce-sampled', seed } : { kind: 'ce-top1' };
}

/** The weights fed at their stored values plus the sample's inputs. */
export function baseFeeds(p: Prepared, sample: Feeds): Record<string, ort.Tensor> {
  const feeds = toOrtFeeds(sample);
  for (const [w, v] of p.weightValues) feeds[w] = toOrtFeeds({ [w]: { dtype: 'float32', dims: v.dims, data: v.data } })[w];
  return feeds;
}

export async function gradientAnalysis(modelPath: string, calib: CalibrationSet, opts: GradientAnalysisOptions): Promise<GradientAnalysisResult> {
  const bytes = await readFile(modelPath);
  const model = onnx.ModelProto.decode(bytes);
  const all = scoredWeights(model);
  const chosen = opts.weights ? all.filter((w) => opts.weights!.includes(w.name)) : all;
  if (opts.weights) {
    const missing = opts.weights.filter((w) => !chosen.some((c) => c.name === w));
    if (missing.length > 0) throw new QuantLensError('gradient-weights', `not float MatMul/Gemm/Conv weights of the model: ${missing.join(', ')}`, { file: modelPath });
  }
  if (calib.samples < 1) throw new QuantLensError('gradient-calibration', 'gradient scores need at least one calibration sample', { file: calib.source });
  if (opts.labels && opts.labels.dims[0] !== calib.samples) {
    throw new QuantLensError('gradient-labels', `labels have ${opts.labels.dims[0]} rows, expected one per calibration sample (${calib.samples})`, { file: calib.source });
  }
  if (opts.labels && !['int64', 'int32', 'int8', 'uint8', 'float32'].includes(opts.labels.dtype)) {
    throw new QuantLensError('gradient-labels', `labels must be integer class indices or float32 targets, found ${opts.labels.dtype}`, { file: calib.source });
  }
  const formats = opts.formats.map((id): [string, NumberFormat] => {
    try {
      return [id, getFormat(id)];
    } catch (e) {
      throw e instanceof UnknownFormatError ? new QuantLensError('unknown-format', e.message, { file: modelPath }) : e;
    }
  });
  const spec = chooseLoss(model, opts.output, opts.labels, opts.unlabeled ?? 'top1', opts.seed);
  const names = chosen.map((w) => w.name);
  const p = await prepareGradientSession(bytes, names, spec, { output: opts.output, providers: opts.providers, labels: opts.labels });
  const wantFisher = opts.methods.includes('fisher');
  const wantGwq = opts.methods.includes('gwq');
  const results: GradientWeightResult[] = chosen.map((w) => ({ name: w.name, node: w.node, scores: {} }));
  try {
    if (wantFisher || wantGwq) {
      const { fisher, mean } = await accumulate(p, calib, opts);
      chosen.forEach((w, i) => {
        const data = p.weightValues.get(w.name)!.data;
        for (const [fmt, format] of formats) {
          const q = format.quantizeDequantize(data, w.dims, w.layout);
          let f = 0;
          let g1 = 0;
          const F = fisher.get(w.name)!;
          const G = mean.get(w.name)!;
          for (let j = 0; j < data.length; j++) {
            const d = q[j] - data[j];
            f += F[j] * d * d;
            g1 += Math.abs(G[j] * d);
          }
          if (wantFisher) (results[i].scores.fisher ??= {})[fmt] = f;
          if (wantGwq) (results[i].scores.gwq ??= {})[fmt] = g1;
        }
      });
    }
    let hawq: GradientAnalysisResult['hawq'];
    if (opts.methods.includes('hawq')) {
      const h = await hawqScores(bytes, model, calib, names, spec, { ...opts.hawq, providers: opts.providers, labels: opts.labels, output: opts.output, seed: opts.seed, signal: opts.signal, onProgress: opts.onProgress });
      results.forEach((r) => {
        const s = h.perWeight.get(r.name)!;
        r.hessianTrace = s.trace;
        r.hessianTraceStdError = s.traceStdError;
        if (s.topEig !== undefined) r.hessianTopEig = s.topEig;
      });
      hawq = h.settings;
    }
    return { weights: results, executionProvider: p.provider, loss: p.describe, samples: calib.samples, ...(hawq ? { hawq } : {}) };
  } finally {
    await p.session.release();
  }
}

/**
 * The Fisher diagonal and mean gradient of the named weights over the calibration samples (storage order), with the
 * weights' values; the loss is chosen as for the gradient scores without labels (chooseLoss).
 */
export async function gradientStatistics(modelPath: string, calib: CalibrationSet, weights: string[], opts: { providers?: readonly string[]; signal?: AbortSignal } = {}) {
  const bytes = await readFile(modelPath);
  const spec = chooseLoss(onnx.ModelProto.decode(bytes), undefined, undefined, 'top1');
  const p = await prepareGradientSession(bytes, weights, spec, { providers: opts.providers });
  try {
    return { ...(await accumulate(p, calib, opts)), values: p.weightValues };
  } finally {
    await p.session.release();
  }
}

/** Runs every sample once: Fisher diagonal (1/N) Σ gₙ² and the mean gradient (1/N) Σ gₙ, in float64. */
async function accumulate(p: Prepared, calib: CalibrationSet, opts: Pick<GradientAnalysisOptions, 'signal' | 'onProgress'>) {
  const fisher = new Map<string, Float64Array>();
  const mean = new Map<string, Float64Array>();
  for (const [w, v] of p.weightValues) {
    fisher.set(w, new Float64Array(v.data.length));
    mean.set(w, new Float64Array(v.data.length));
  }
  let n = 0;
  for (const sample of samplesOf(calib)) {
    if (opts.signal?.aborted) throw new QuantLensError('cancelled', 'gradient analysis was cancelled', { file: calib.source });
    const feeds = { ...baseFeeds(p, sample), ...p.extraFeeds(n) };
    const r = await p.session.run(feeds);
    for (const [w, out] of p.gradients) {
      const g = r[out].data as Float32Array;
      const F = fisher.get(w)!;
      const M = mean.get(w)!;
      for (let j = 0; j < g.length; j++) {
        F[j] += g[j] * g[j];
        M[j] += g[j];
      }
    }
    n++;
    opts.onProgress?.(n, calib.samples, 'gradients');
  }
  for (const F of [...fisher.values(), ...mean.values()]) for (let j = 0; j < F.length; j++) F[j] /= n;
  return { fisher, mean };
}
