// `quantlens ratios`: measure every layer's high-impact curve, (with a runnable model) the inter-layer
// interactions, then compare four strategies at one average-bits budget: uniform bits, one fixed ratio for all
// layers, per-layer ratios without interactions (diagonal QP) and with them (full QP). Predicted errors come from
// the fitted model (ratios.ts); measured ones are the data-free weight error and, when a LossProbe is given, ΔL
// through the model with every layer at its chosen ratio.
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { skipReason } from '../analysis/engine';
import { DEFAULT_RATIOS } from '../analysis/types';
import type { Kkt } from './qp';
import { interactionModel, measureInteractions, projectPsd, samplePairs, type LossProbe } from './interactions';
import {
  bitsAt, errorAt, keptCount, measureLayer, mixedWeights, resolveHi, resolveLo,
  type LayerCurve, type LayerGeometry, type LayerQuant,
} from './ratios-curve';
import type { SaliencyKind } from './ratios-saliency';
import { effectiveRatio, fitConvex, fixedRatioFor, modelAvgBits, optimizeRatios, predictedLoss, uniformBits, type QpRatios, type RatioLayer } from './ratios';

/** Where the weights come from: a checkpoint, or a runnable model's weights. */
export interface WeightSource {
  path: string;
  layers: LayerGeometry[];
  read(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function checkpointSource(target: string, only?: RegExp): Promise<WeightSource> {
  const ckpt = await openCheckpoint(target);
  const layers = ckpt.tensors
    .filter((t) => skipReason(t) === undefined && (!only || only.test(t.name)))
    .map((t) => ({ name: t.name, shape: t.shape, layout: t.layout }));
  return { path: ckpt.path, layers, read: (name) => ckpt.read(name), close: () => ckpt.close() };
}

export interface RatiosOptions {
  hi: string;
  lo: string;
  /** Average bits per weight; default: the modelled bits of `fixedRatio` on every layer. */
  budgetBits?: number;
  rMax: number;
  /** The fixed-ratio strategy's ratio when no budget is given (GWQ/SpQR keep about 1 %). */
  fixedRatio: number;
  /** Ratios the curves are measured at (r = 0 and r_max are always added). */
  ratios?: readonly number[];
  seed?: number;
  /** Per-weight saliency for a layer (storage order; ratios-saliency.ts); |w| when absent or undefined for it. */
  saliency?: (name: string) => Float32Array | undefined;
  /** What `saliency` is (default: hessian when given), and the layers it left at |w|. */
  saliencyKind?: SaliencyKind;
  saliencyFallback?: { name: string; reason: string }[];
  signal?: AbortSignal;
  /** A runnable model: interactions by co-perturbation and measured ΔL. */
  probe?: LossProbe;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** Defaults of the CLI and the language server's request. */
export const RATIOS_DEFAULTS = { hi: '8', lo: '2', rMax: 0.1, fixedRatio: 0.01, samples: 8 } as const;

/** Layers the dense ratio QP takes (G and the QP matrices are L×L). */
export const MAX_LAYERS = 2048;

export type StrategyId = 'uniform-bits' | 'fixed-ratio' | 'diagonal' | 'full-qp';
export const STRATEGIES: readonly StrategyId[] = ['uniform-bits', 'fixed-ratio', 'diagonal', 'full-qp'];

export interface StrategyResult {
  id: StrategyId;
  /** Exact average bits per weight (the cheaper of CSR and bitmask index per layer). */
  avgBits: number;
  /** Bits of the optimizer's linear model (≥ avgBits; what the budget constrains). */
  modelAvgBits: number;
  /** ½σ̂ᵀGσ̂ with the full (PSD-projected) G, and with its diagonal only. */
  predicted: number;
  predictedDiagonal: number;
  /** Σ‖ΔW_l(r_l)‖² / Σ‖W_l‖², measured on the weights. */
  weightError: number;
  /** ΔL through the model with every layer at its ratio (null without a runnable model). */
  measured: number | null;
  /** fixed-ratio: the one ratio used. */
  ratio?: number;
  kkt?: Kkt;
  /** Budget multiplier: predicted-loss decrease per extra average bit (QP strategies, last round). */
  mu?: number;
  /** QP rounds solved and layers pinned at r = 0 (ratios.ts). */
  rounds?: number;
  pinned?: number;
}

export interface RatiosReport {
  model: string;
  hi: string;
  lo: string;
  rMax: number;
  params: number;
  budgetBits: number;
  /** Every layer at b_lo, nothing kept (exact); and the modelled bits with r_max everywhere. */
  minAvgBits: number;
  maxAvgBits: number;
  saliency: SaliencyKind;
  /** Layers ranked by |w| although another saliency was asked for, with the reason. */
  saliencyFallback?: { name: string; reason: string }[];
  /** What the predicted loss is: the relative weight error (data-free) or the probe's ΔL. */
  lossModel: 'datafree-weight-error' | 'co-perturbation';
  interactions: { measured: boolean; description: string; runs: number; clippedEigenvalues: number; projectionChange: number };
  strategies: StrategyResult[];
  /** Where it ran and on which data (null: weights only). */
  runtime?: string | null;
  layers: {
    name: string;
    params: number;
    /** Relative error at b_lo and at each fit ratio. */
    fit: { ratios: number[]; relError: number[]; segments: number };
    ratio: Record<StrategyId, number>;
    bits: Record<StrategyId, number>;
  }[];
}

export async function runRatios(src: WeightSource, o: RatiosOptions): Promise<RatiosReport> {
  const where = { file: src.path };
  const lo = resolveLo(o.lo);
  const hi = resolveHi(o.hi);
  const loBits = lo.bitsPerWeight([4096, 4096], 'out_in');
  if (loBits >= hi.elemBits) {
    throw new QuantLensError('bad-option', `--lo ${lo.id} (${loBits.toFixed(3)} bits/weight) must be cheaper than --hi ${hi.id} (${hi.elemBits} bits)`, { file: '--lo' });
  }
  if (src.layers.length === 0) throw new QuantLensError('no-layers', 'no quantizable weight (float tensor with ≥ 2 axes longer than 1) to optimize', where);
  if (src.layers.length > MAX_LAYERS) {
    throw new QuantLensError('too-many-layers', `${src.layers.length} weights exceed the ${MAX_LAYERS} the ratio QP takes (dense L×L interactions); select some with --only`, where);
  }
  const curves: LayerCurve[] = [];
  const quants: LayerQuant[] = [];
  for (const [i, g] of src.layers.entries()) {
    o.signal?.throwIfAborted();
    const w = await src.read(g.name);
    const m = measureLayer(g, w, { lo, hi, rMax: o.rMax, ratios: o.ratios ?? DEFAULT_RATIOS, saliency: o.saliency?.(g.name) });
    curves.push(m.curve);
    if (o.probe) quants.push(m.quant); // perturbations reuse them; without a probe nothing is kept
    o.onProgress?.('curves', i + 1, src.layers.length);
  }
  const layers: RatioLayer[] = curves.map((c) => ({
    name: c.name,
    params: c.params,
    base: c.lowBits / c.params,
    fixed: c.fixedBits / c.params,
    alpha: c.perKeptBits,
    sigma0: c.errLow > 0 ? 1 : 0,
    segments: c.errLow > 0 ? fitConvex(c.ratios, c.errors.map((e) => Math.sqrt(e / c.errLow))) : [],
  }));
  const L = layers.length;
  const N = curves.reduce((s, c) => s + c.params, 0);
  const sumSq = curves.reduce((s, c) => s + c.sumSq, 0);

  // G: co-perturbation through the probe, else the data-free diagonal.
  let G: Float64Array = new Float64Array(L * L);
  let interactions: RatiosReport['interactions'];
  if (o.probe) {
    const sample = samplePairs(L, o.seed ?? 0);
    const x = await measureInteractions(o.probe, L, (l) => new Map([[curves[l].name, quants[l].low]]), sample, (d, t) => o.onProgress?.('interactions', d, t));
    const proj = projectPsd(interactionModel(x), L);
    G = proj.matrix;
    interactions = { measured: true, description: sample.description, runs: x.runs, clippedEigenvalues: proj.clipped, projectionChange: proj.change };
  } else {
    curves.forEach((c, l) => (G[l * L + l] = sumSq > 0 ? (2 * c.errLow) / sumSq : 0));
    interactions = {
      measured: false,
      description: 'none: the model is not runnable here (weights only), so C is diagonal and the full QP equals the diagonal one',
      runs: 0,
      clippedEigenvalues: 0,
      projectionChange: 0,
    };
  }
  const Gd = new Float64Array(L * L);
  for (let l = 0; l < L; l++) Gd[l * L + l] = G[l * L + l];

  const minAvgBits = curves.reduce((s, c) => s + c.lowBits, 0) / N;
  const maxAvgBits = modelAvgBits(layers, new Float64Array(L).fill(o.rMax));
  const budget = o.budgetBits ?? modelAvgBits(layers, new Float64Array(L).fill(o.fixedRatio));
  if (budget < minAvgBits) {
    throw new QuantLensError(
      'infeasible-budget',
      `--budget-bits ${budget}: below the minimum achievable ${minAvgBits.toFixed(4)} bits/weight (every layer at ${lo.id}, nothing kept)`,
      where,
    );
  }

  const fixed = fixedRatioFor(layers, budget, o.rMax);
  const diag = await optimizeRatios(layers, G, budget, true);
  const full = await optimizeRatios(layers, G, budget, false);
  const qpInfo = (q: QpRatios) => ({ kkt: q.kkt, mu: q.mu, rounds: q.rounds, pinned: q.pinned });
  const choices: [StrategyId, Float64Array, Partial<StrategyResult>][] = [
    ['uniform-bits', uniformBits(layers, budget, o.rMax), {}],
    ['fixed-ratio', Float64Array.from(layers, (l) => effectiveRatio(l, fixed)), { ratio: fixed }],
    ['diagonal', diag.r, qpInfo(diag)],
    ['full-qp', full.r, qpInfo(full)],
  ];
  const strategies: StrategyResult[] = [];
  for (const [id, r, extra] of choices) {
    o.signal?.throwIfAborted();
    let bits = 0;
    let err = 0;
    curves.forEach((c, l) => {
      bits += bitsAt(c, r[l]);
      err += errorAt(c, r[l]);
    });
    let measured: number | null = null;
    if (o.probe) {
      const perturb = new Map(curves.map((c, l) => [c.name, mixedWeights(quants[l], keptCount(c, r[l]))]));
      measured = await o.probe.deltaLoss(perturb);
    }
    strategies.push({
      id,
      avgBits: bits / N,
      modelAvgBits: modelAvgBits(layers, r),
      predicted: predictedLoss(layers, G, r),
      predictedDiagonal: predictedLoss(layers, Gd, r),
      weightError: sumSq > 0 ? err / sumSq : 0,
      measured,
      ...extra,
    });
  }
  const rel = (c: LayerCurve, e: number) => (c.sumSq > 0 ? e / c.sumSq : 0);
  return {
    model: src.path,
    hi: hi.id,
    lo: lo.id,
    rMax: o.rMax,
    params: N,
    budgetBits: budget,
    minAvgBits,
    maxAvgBits,
    saliency: o.saliency ? (o.saliencyKind ?? 'hessian') : 'magnitude',
    ...(o.saliencyFallback?.length ? { saliencyFallback: o.saliencyFallback } : {}),
    lossModel: o.probe ? 'co-perturbation' : 'datafree-weight-error',
    interactions,
    strategies,
    layers: curves.map((c, l) => ({
      name: c.name,
      params: c.params,
      fit: { ratios: c.ratios, relError: c.errors.map((e) => rel(c, e)), segments: layers[l].segments.length },
      ratio: Object.fromEntries(choices.map(([id, r]) => [id, r[l]])) as Record<StrategyId, number>,
      bits: Object.fromEntries(choices.map(([id, r]) => [id, bitsAt(c, r[l]) / c.params])) as Record<StrategyId, number>,
    })),
  };
}
