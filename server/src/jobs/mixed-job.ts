// The mixed high-impact step of a quantize job (`quantlens quantize --ratios file | --mixed hi,lo,budget`):
//   1. saliency: |w|, or the OBS saliency from the layer Hessians on the calibration data (ratios-saliency.ts);
//   2. ratios: read from a `quantlens ratios --json` report (one strategy's r_l), or solved here exactly as the
//      ratios command solves them (curves, co-perturbation interactions through the model, the four strategies);
//   3. quantization: every layer's top r_l at b_hi, the rest at b_lo (jobs/mixed.ts) — GPTQ rounding with error
//      feedback when the job is `--method gptq` (Hessians captured again: one layer's at a time in memory), else RTN.
// Layers are written fake-quantized (simulated: onnxruntime has no kernel for a sparse high-precision part); the
// exact storage bits, sparse index included, are reported per layer and on average. The time of each step is
// reported (the pipeline adds the evaluation's).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadCalibration } from '../calib';
import type { CalibrationSet } from '../calib/types';
import { check, QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { resolveHi, resolveLo } from '../allocate/ratios-curve';
import { OutputErrorProbe, runnerSource } from '../allocate/ratios-probe';
import { runRatios, STRATEGIES, type RatiosReport, type StrategyId } from '../allocate/ratios-run';
import { dataSaliency, SALIENCY_KINDS, type SaliencyKind } from '../allocate/ratios-saliency';
import { didYouMean } from '../plan/suggest';
import { captureHessians } from '../runtime/capture';
import type { ModelRunner, RunnerWeight } from '../runtime/model-runner';
import { traceScore } from '../sensitivity/hessian';
import { mixedGptqBlocker, quantizeMixedLayer } from './mixed';
import type { JobHooks, QuantizeRequest } from './pipeline';
import type { QuantizedTensor } from './quantize';

export interface MixedRequest {
  /** A `quantlens ratios --json` report: its hi/lo formats and the per-layer ratios of `strategy`. */
  ratiosFile?: string;
  /** Otherwise the formats and the average-bits budget the ratios are solved for here. */
  hi?: string;
  lo?: string;
  budgetBits?: number;
  /** Largest ratio per layer when solving (default 0.1). */
  rMax?: number;
  /** Default full-qp. */
  strategy?: StrategyId;
  /** Default: the ratios file's; else hessian for GPTQ jobs, magnitude for RTN ones. */
  saliency?: SaliencyKind;
}

export interface MixedLayerReport {
  name: string;
  params: number;
  ratio: number;
  kept: number;
  /** Exact storage bits per weight (b_lo codes and scales, kept values, b_hi scales, the cheaper sparse index). */
  bitsPerWeight: number;
  rounding: 'rtn' | 'gptq';
}

export interface MixedSummary {
  hi: string;
  lo: string;
  strategy: StrategyId;
  /** Where the ratios came from; when solved here, the four strategies' predictions and measured ΔL. */
  ratios: { source: 'file'; file: string } | { source: 'solved'; budgetBits: number; strategies: RatiosReport['strategies']; interactions: RatiosReport['interactions'] };
  saliency: SaliencyKind;
  /** Layers ranked by |w| or rounded by RTN although more was asked for, with the reason. */
  fallback: { name: string; reason: string }[];
  /** Exact storage bits per weight over the mixed layers. */
  avgBits: number;
  layers: MixedLayerReport[];
  /** Wall time per step (ms); `evaluate` is added by the pipeline. */
  timings: { saliency: number; ratios: number; quantize: number; evaluate?: number };
}

export interface MixedOutput {
  tensors: QuantizedTensor[];
  /** tr(ΔW H ΔWᵀ) of the weights whose Hessian was captured (GPTQ jobs). */
  hessian: Map<string, number>;
  summary: MixedSummary;
  /** Layers of a ratios file left as stored. */
  skipped: { name: string; reason: string }[];
}

/** Runs steps 1–3 on the job's runner. */
export async function quantizeMixed(req: QuantizeRequest, m: MixedRequest, runner: ModelRunner, hooks: JobHooks = {}): Promise<MixedOutput> {
  const { signal } = hooks;
  const progress = hooks.onProgress ?? (() => undefined);
  const gptq = req.method === 'gptq';
  const fromFile = m.ratiosFile ? await readRatiosFile(m.ratiosFile, m.strategy ?? 'full-qp', runner) : undefined;
  const hi = resolveHi(fromFile?.hi ?? m.hi ?? '8');
  const lo = resolveLo(fromFile?.lo ?? m.lo ?? '2');
  if (gptq) check(!mixedGptqBlocker(lo), 'bad-option', () => mixedGptqBlocker(lo)!, { file: '--method' });
  const saliencyKind: SaliencyKind = m.saliency ?? fromFile?.saliency ?? (gptq ? 'hessian' : 'magnitude');
  const listed = fromFile && new Set(fromFile.layers.map((l) => l.name));
  const weights = listed ? runner.weights.filter((w) => listed.has(w.name)) : runner.weights;
  const names = weights.map((w) => w.name);
  const fallback: MixedSummary['fallback'] = [];
  let calib: CalibrationSet | undefined;
  const calibration = async () =>
    (calib ??= await loadCalibration(req.calib ?? (req.eval === false ? undefined : req.eval), runner.inputs, { maxSamples: req.samples, batchSize: req.batchSize, seed: req.seed }));

  let t = Date.now();
  progress(0.02, `saliency (${saliencyKind})`);
  let saliency = new Map<string, Float32Array>();
  if (saliencyKind !== 'magnitude') {
    const h = await dataSaliency(saliencyKind, runner, await calibration(), names, signal);
    saliency = h.saliency;
    fallback.push(...h.fallback.map((f) => ({ ...f, reason: `ranked by |w|: ${f.reason}` })));
  }
  const timings: MixedSummary['timings'] = { saliency: Date.now() - t, ratios: 0, quantize: 0 };

  t = Date.now();
  let ratioOf: Map<string, number>;
  let ratios: MixedSummary['ratios'];
  const strategy = m.strategy ?? 'full-qp';
  if (fromFile) {
    ratioOf = new Map(fromFile.layers.map((l) => [l.name, l.ratio]));
    ratios = { source: 'file', file: path.resolve(m.ratiosFile!) };
  } else {
    check(m.budgetBits !== undefined, 'bad-option', 'the mixed quantizer needs a budget (average bits per weight) or a ratios file', { file: '--mixed' });
    progress(0.05, 'solving the high-impact ratios');
    const src = { ...runnerSource(runner), close: async () => undefined }; // the job closes the runner
    const probe = new OutputErrorProbe(runner, (await calibration()).batches);
    const report = await runRatios(src, {
      hi: hi.id,
      lo: lo.id,
      budgetBits: m.budgetBits,
      rMax: m.rMax ?? 0.1,
      fixedRatio: 0.01,
      seed: req.seed,
      probe,
      signal,
      onProgress: (phase, done, total) => progress(0.05 + (0.05 * done) / Math.max(1, total), `ratios: ${phase} ${done}/${total}`),
      ...(saliencyKind !== 'magnitude' ? { saliency: (n: string) => saliency.get(n), saliencyKind } : {}),
    });
    ratioOf = new Map(report.layers.map((l) => [l.name, l.ratio[strategy]]));
    ratios = { source: 'solved', budgetBits: report.budgetBits, strategies: report.strategies, interactions: report.interactions };
  }
  timings.ratios = Date.now() - t;

  t = Date.now();
  const tensors: QuantizedTensor[] = [];
  const hessian = new Map<string, number>();
  const layers: MixedLayerReport[] = [];
  const one = async (w: RunnerWeight, H?: Float64Array[]) => {
    signal?.throwIfAborted();
    const values = runner.read(w.name);
    const where = { file: runner.file, tensor: w.name };
    const ratio = ratioOf.get(w.name) ?? 0;
    const kept = Math.min(values.length, Math.floor(ratio * values.length + 1e-9));
    const r = quantizeMixedLayer({ w: values, shape: w.shape, layout: w.layout, lo, hi, kept, saliency: saliency.get(w.name), H, damp: req.damp, where });
    const label = kept > 0 ? `${lo.id} + ${(100 * ratio).toFixed(2)}% ${hi.id}` : lo.id;
    tensors.push({ name: w.name, shape: w.shape, layout: w.layout, format: lo, values: r.values, simulated: { format: label, reason: 'mixed b_hi/b_lo with a sparse index: onnxruntime has no kernel for it' } });
    if (H) {
      const delta = Float32Array.from(r.values, (v, i) => v - values[i]);
      hessian.set(w.name, await traceScore({ values, shape: w.shape, layout: w.layout, H, where }, delta, { providers: req.providers, threads: req.threads }));
    }
    layers.push({ name: w.name, params: values.length, ratio, kept, bitsPerWeight: r.bits / values.length, rounding: r.rounding });
    progress(0.1 + 0.5 * (layers.length / weights.length), `quantized ${w.name}`);
  };
  if (gptq) {
    const skipped = await captureHessians(runner, (await calibration()).batches, (h) => one(h.weight, h.H), { weights: names, signal });
    for (const s of skipped) {
      fallback.push({ name: s.weight, reason: `rounded by RTN: ${s.reason}` });
      await one(runner.weight(s.weight));
    }
  } else {
    for (const w of weights) await one(w);
  }
  timings.quantize = Date.now() - t;
  // Model order, whatever order the capture passes produced.
  const order = new Map(names.map((n, i) => [n, i]));
  layers.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  tensors.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  const params = layers.reduce((s, l) => s + l.params, 0);
  const avgBits = layers.reduce((s, l) => s + l.bitsPerWeight * l.params, 0) / params;
  return { tensors, hessian, summary: { hi: hi.id, lo: lo.id, strategy, ratios, saliency: saliencyKind, fallback, avgBits, layers, timings }, skipped: fromFile?.skipped ?? [] };
}

interface RatiosFile {
  hi: string;
  lo: string;
  saliency?: SaliencyKind;
  layers: { name: string; ratio: number }[];
  /** Tensors of the model the report lists that the job cannot rewrite (embeddings of a weights-only report). */
  skipped: { name: string; reason: string }[];
}

/** The hi/lo formats and one strategy's per-layer ratios of a `quantlens ratios --json` report. */
export async function readRatiosFile(file: string, strategy: StrategyId, runner: Pick<ModelRunner, 'weights' | 'file'>): Promise<RatiosFile> {
  const where = { file: path.resolve(file) };
  const text = await fsp.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'ratios file not found' : e.message, where);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new QuantLensError('bad-json', `not JSON (${(e as Error).message}); expected the output of quantlens ratios --json`, where);
  }
  const o = json as Partial<RatiosReport>;
  const bad = (at: string, expected: string, found: unknown) =>
    new QuantLensError('bad-ratios', `${at}: expected ${expected}, found ${JSON.stringify(found)?.slice(0, 60)} (the output of quantlens ratios --json)`, where);
  if (typeof json !== 'object' || json === null) throw bad('the file', 'an object', json);
  if (typeof o.hi !== 'string') throw bad('hi', 'a format id', o.hi);
  if (typeof o.lo !== 'string') throw bad('lo', 'a format id', o.lo);
  if (!Array.isArray(o.layers)) throw bad('layers', 'an array', o.layers);
  const known = new Set(runner.weights.map((w) => w.name));
  const ckpt = await openCheckpoint(runner.file);
  const inModel = new Set(ckpt.tensors.map((t) => t.name));
  await ckpt.close();
  const skipped: RatiosFile['skipped'] = [];
  const listed = o.layers.map((l: unknown, i) => {
    const x = l as { name?: unknown; ratio?: Record<string, unknown> };
    if (typeof x?.name !== 'string') throw bad(`layers[${i}].name`, 'a weight name', x?.name);
    const r = x.ratio?.[strategy];
    if (typeof r !== 'number' || !(r >= 0 && r <= 1)) throw bad(`layers[${i}].ratio["${strategy}"]`, `a ratio in [0, 1] (strategies: ${STRATEGIES.join(', ')})`, r);
    if (!known.has(x.name) && inModel.has(x.name)) {
      skipped.push({ name: x.name, reason: 'not a MatMul/Gemm/Conv weight of the main graph (only those are rewritten)' });
      return undefined;
    }
    if (!known.has(x.name)) {
      const near = didYouMean(x.name, [...known]);
      throw new QuantLensError('unknown-layer', `layers[${i}]: "${x.name}" is not a MatMul/Gemm/Conv weight of ${path.basename(runner.file)}${near ? ` (did you mean ${near}?)` : ''}`, where);
    }
    return { name: x.name, ratio: r };
  });
  const saliency = (SALIENCY_KINDS as readonly unknown[]).includes(o.saliency) ? (o.saliency as SaliencyKind) : undefined;
  return { hi: o.hi, lo: o.lo, saliency, layers: listed.filter((l) => l !== undefined), skipped };
}
