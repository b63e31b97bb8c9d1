// One quantize-and-evaluate job (DESIGN.md §6), shared by the CLI and the job worker: resolve which weights get
// which format (a plan, or one layer + one format), quantize them (round-to-nearest, or GPTQ with the layer
// Hessians captured on calibration data), build the new ONNX model, evaluate it against the original, and only
// then write it (temp + rename): a failure or a cancel at any step leaves no output behind.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadCalibration } from '../calib';
import { check, QuantLensError } from '../formats/errors';
import { layerPath } from '../formats/layers';
import { openCheckpoint } from '../formats/registry';
import { writeOutputFiles } from '../output';
import type { TensorAssignment } from '../plan';
import { PlanService, planState } from '../plan/service';
import { didYouMean } from '../plan/suggest';
import { getFormat, QuantInputError, UnknownFormatError, type NumberFormat } from '../quant';
import { jobHtmlPath, jobReportHtml } from '../report/job-html';
import { captureHessians } from '../runtime/capture';
import { ModelRunner, type RunnerWeight } from '../runtime/model-runner';
import { traceScore } from '../sensitivity/hessian';
import { ModelPair, readLabels, type EvalMetrics, type EvalResult } from './evaluate';
import { gptqQuantize } from './gptq';
import { quantizeMixed, type MixedRequest, type MixedSummary } from './mixed-job';
import { buildQuantizedModel, defaultOutputPath, type QuantizedTensor, type WrittenWeight } from './quantize';

export type QuantMethod = 'rtn' | 'gptq';

export interface QuantizeRequest {
  model: string;
  /** Plan file; its `model:` is replaced by `model`. */
  plan?: string;
  /** The plan's text when it differs from the file (an unsaved editor buffer). */
  planText?: string;
  /** One weight (tensor name or consuming node name), with `format` or the plan's decision for it. */
  layer?: string;
  format?: string;
  out?: string;
  force?: boolean;
  method?: QuantMethod;
  /** The mixed high-impact quantizer (b_hi/b_lo with per-layer ratios; jobs/mixed-job.ts) instead of a plan or layer. */
  mixed?: MixedRequest;
  /** Evaluation data (any calibration form); absent: the synthetic generator; false: no evaluation. */
  eval?: string | false;
  /** Class ids (.npy) for accuracy. */
  labels?: string;
  /** Calibration data for GPTQ's Hessians (default: the evaluation data). */
  calib?: string;
  samples?: number;
  batchSize?: number;
  seed?: number;
  damp?: number;
  providers?: readonly string[];
  threads?: number;
}

export interface WeightReport extends WrittenWeight {
  params: number;
  /** Data-free prediction: ‖ΔW‖² / ‖W‖². */
  relMse: number;
  /** tr(ΔW H ΔWᵀ) with the calibration Hessian (GPTQ jobs). */
  hessian?: number;
}

export interface QuantizeReport {
  model: string;
  output: string;
  method: QuantMethod;
  executionProvider: string;
  /** True when any weight is stored fake-quantized (its format has no onnxruntime kernel). */
  simulated: boolean;
  weights: WeightReport[];
  /** Weights the plan assigned that cannot be quantized here, with the reason. */
  skipped: { name: string; reason: string }[];
  /** Mixed high-impact jobs: formats, ratios, exact bits, the time of each step. */
  mixed?: MixedSummary;
  /** Measured: original vs quantized outputs (null when evaluation was turned off). */
  metrics: EvalMetrics | null;
  /** Predicted from the weights (and Hessians where captured). */
  predicted: { relMse: number; hessian?: number };
  sizeBytes: { original: number; quantized: number };
  evaluation?: Omit<EvalResult, 'metrics' | 'sizeBytes'> & { data: { source: string; synthetic: boolean; samples: number } };
  /** The JSON report written beside the output. */
  report?: string;
  /** The HTML report beside it (tables and charts, opens offline). */
  reportHtml?: string;
}

/** `<output without .onnx>.report.json`. */
export function reportPath(output: string): string {
  return `${output.replace(/\.onnx$/i, '')}.report.json`;
}

export interface JobHooks {
  signal?: AbortSignal;
  /** Fraction done in [0, 1] and what is happening. */
  onProgress?: (fraction: number, message: string) => void;
}

interface Assignment {
  weight: RunnerWeight;
  format: NumberFormat;
}

export async function runQuantize(req: QuantizeRequest, hooks: JobHooks = {}): Promise<QuantizeReport> {
  const { signal } = hooks;
  const progress = hooks.onProgress ?? (() => undefined);
  const model = path.resolve(req.model);
  const out = path.resolve(req.out ?? defaultOutputPath(model));
  const method = req.method ?? 'rtn';
  // Fail before any heavy work when the output cannot be written.
  if (!req.force && (await fsp.stat(out).catch(() => undefined))) {
    throw new QuantLensError('output-exists', 'the file exists; pass --force to replace it', { file: out });
  }
  progress(0, 'opening the model');
  const runner = await ModelRunner.open(model, { providers: req.providers, threads: req.threads });
  let built: Awaited<ReturnType<typeof buildQuantizedModel>>;
  const reports = new Map<string, { relMse: number; hessian?: number; params: number }>();
  let skipped: { name: string; reason: string }[];
  let mixed: MixedSummary | undefined;
  try {
    const resolved = req.mixed ? { list: [], skipped: [] } : await assignments(req, runner);
    skipped = resolved.skipped;
    progress(0, 'quantizing');
    check(req.mixed || resolved.list.length > 0, 'nothing-to-do', 'no weight to quantize: the plan assigns no format to any MatMul/Gemm/Conv weight', { file: req.plan ?? model });
    const tensors: QuantizedTensor[] = [];
    const quantized = (a: Assignment, values: Float32Array, codes: Int32Array | undefined, w: Float32Array, hessian?: number) => {
      tensors.push({ name: a.weight.name, shape: a.weight.shape, layout: a.weight.layout, format: a.format, values, codes });
      reports.set(a.weight.name, { relMse: relMse(w, values), params: w.length, ...(hessian !== undefined ? { hessian } : {}) });
      progress(0.6 * (tensors.length / resolved.list.length), `quantized ${a.weight.name}`);
    };
    if (req.mixed) {
      const mx = await quantizeMixed(req, req.mixed, runner, hooks);
      tensors.push(...mx.tensors);
      for (const t of mx.tensors) reports.set(t.name, { relMse: relMse(runner.read(t.name), t.values), params: t.values.length, ...(mx.hessian.has(t.name) ? { hessian: mx.hessian.get(t.name)! } : {}) });
      mixed = mx.summary;
      skipped.push(...mx.skipped);
    } else if (method === 'gptq') await gptqAll(req, runner, resolved.list, quantized, hooks);
    else {
      for (const a of resolved.list) {
        signal?.throwIfAborted();
        const w = runner.read(a.weight.name);
        const codes = new Int32Array(w.length);
        quantized(a, qdq(a, w, codes), codes, w);
      }
    }
    signal?.throwIfAborted();
    progress(0.6, 'writing the model');
    built = await buildQuantizedModel(model, path.dirname(out), tensors);
  } finally {
    await runner.close();
  }
  const weights: WeightReport[] = built.weights.map((w) => ({ ...w, ...reports.get(w.name)! }));
  const totalParams = weights.reduce((s, w) => s + w.params, 0);
  const predicted: QuantizeReport['predicted'] = { relMse: weights.reduce((s, w) => s + w.relMse * w.params, 0) / totalParams };
  if (weights.every((w) => w.hessian !== undefined)) predicted.hessian = weights.reduce((s, w) => s + w.hessian!, 0);
  const report: QuantizeReport = {
    model,
    output: out,
    method,
    executionProvider: runner.provider,
    simulated: weights.some((w) => w.simulated),
    weights,
    skipped,
    ...(mixed ? { mixed } : {}),
    metrics: null,
    predicted,
    sizeBytes: { original: (await fsp.stat(model)).size, quantized: built.bytes.length },
  };
  if (req.eval !== false) {
    signal?.throwIfAborted();
    progress(0.65, 'evaluating');
    const evalStart = Date.now();
    const pair = await ModelPair.open(model, { bytes: built.bytes, name: out }, { providers: req.providers, threads: req.threads });
    try {
      const data = await pair.load(req.eval, { maxSamples: req.samples, batchSize: req.batchSize, seed: req.seed });
      const labels = req.labels ? await readLabels(req.labels) : undefined;
      const { metrics, sizeBytes: _sizes, ...rest } = await pair.evaluate(data.batches, {
        labels,
        signal,
        onProgress: (d, n) => progress(0.65 + 0.3 * (d / n), `evaluated batch ${d}/${n}`),
      });
      report.metrics = metrics;
      report.executionProvider = rest.executionProvider;
      report.evaluation = { ...rest, data: { source: data.source, synthetic: data.synthetic, samples: data.samples } };
      if (mixed) mixed.timings.evaluate = Date.now() - evalStart;
    } finally {
      await pair.close();
    }
  }
  signal?.throwIfAborted();
  progress(0.97, 'writing the output');
  const inputs = [model, ...[req.plan, req.mixed?.ratiosFile].filter((f) => f !== undefined).map((f) => path.resolve(f))];
  // The reports accompany the model written here: they replace earlier reports of that output. The HTML is
  // rendered first so that a failure there leaves no output either.
  report.report = reportPath(out);
  const html = await jobReportHtml(report);
  if (html !== undefined) report.reportHtml = jobHtmlPath(out);
  // All or nothing: a full disk on the (large) HTML report must not leave the model and JSON behind.
  await writeOutputFiles([
    { target: out, data: built.bytes, opts: { overwrite: req.force, inputs } },
    { target: report.report, data: `${JSON.stringify(report, null, 1)}\n`, opts: { overwrite: true, inputs } },
    ...(html !== undefined ? [{ target: jobHtmlPath(out), data: html, opts: { overwrite: true, inputs } }] : []),
  ]);
  progress(1, 'done');
  return report;
}

function relMse(w: Float32Array, q: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < w.length; i++) {
    const e = q[i] - w[i];
    num += e * e;
    den += w[i] * w[i];
  }
  return den > 0 ? num / den : num > 0 ? Infinity : 0;
}

function qdq(a: Assignment, w: Float32Array, codes?: Int32Array): Float32Array {
  try {
    return a.format.quantizeDequantize(w, a.weight.shape, a.weight.layout, codes ? { codes } : undefined);
  } catch (e) {
    if (e instanceof QuantInputError) throw new QuantLensError('non-finite-weight', e.message, { file: '<model>', tensor: a.weight.name });
    throw e;
  }
}

/** GPTQ per weight with Hessians from the calibration data; layers capture refuses fall back to RTN (noted). */
async function gptqAll(
  req: QuantizeRequest,
  runner: ModelRunner,
  list: Assignment[],
  done: (a: Assignment, values: Float32Array, codes: Int32Array | undefined, w: Float32Array, hessian?: number) => void,
  hooks: JobHooks,
): Promise<void> {
  const spec = req.calib ?? (req.eval === false ? undefined : req.eval);
  const calib = await loadCalibration(spec, runner.inputs, { maxSamples: req.samples, batchSize: req.batchSize, seed: req.seed });
  const byName = new Map(list.map((a) => [a.weight.name, a]));
  const left = new Set(byName.keys());
  const skipped = await captureHessians(
    runner,
    calib.batches,
    async (layer) => {
      const a = byName.get(layer.weight.name)!;
      const w = runner.read(a.weight.name);
      const where = { file: runner.file, tensor: a.weight.name };
      const r = await gptqQuantize(w, a.weight.shape, a.weight.layout, a.format, layer.H, { damp: req.damp, where, providers: req.providers, threads: req.threads });
      const delta = Float32Array.from(r.values, (v, i) => v - w[i]);
      const hessian = await traceScore({ values: w, shape: a.weight.shape, layout: a.weight.layout, H: layer.H, where }, delta, { providers: req.providers, threads: req.threads });
      left.delete(a.weight.name);
      done(a, r.values, r.codes, w, hessian);
    },
    { weights: [...byName.keys()], signal: hooks.signal },
  );
  for (const s of skipped) {
    const a = byName.get(s.weight)!;
    const w = runner.read(s.weight);
    const codes = new Int32Array(w.length);
    done(a, qdq(a, w, codes), codes, w);
    left.delete(s.weight);
  }
  check(left.size === 0, 'internal', () => `GPTQ produced no result for ${[...left].join(', ')}`, { file: runner.file });
}

/** The (weight, format) pairs of the job, in model order, and the plan's assignments that cannot be applied. */
async function assignments(req: QuantizeRequest, runner: ModelRunner): Promise<{ list: Assignment[]; skipped: { name: string; reason: string }[] }> {
  const format = (id: string, where: string): NumberFormat => {
    try {
      return getFormat(id);
    } catch (e) {
      if (e instanceof UnknownFormatError) throw new QuantLensError('unknown-format', e.message, { file: where });
      throw e;
    }
  };
  const planned = req.plan ? await planAssignment(req, runner.file) : undefined;
  if (req.layer !== undefined) {
    const exact = runner.weights.find((x) => x.name === req.layer) ?? runner.weights.find((x) => x.node === req.layer);
    const chosen = exact ? [exact] : await layerWeights(runner, req.layer);
    if (chosen.length === 0) {
      const near = didYouMean(req.layer, runner.weights.map((x) => x.name));
      throw new QuantLensError('unknown-layer', `no MatMul/Gemm/Conv weight, node or layer named "${req.layer}"${near ? ` (did you mean ${near}?)` : ''}`, { file: runner.file, tensor: req.layer });
    }
    const list = chosen.map((w) => {
      const id = req.format ?? planned?.assignment.get(w.name)?.format ?? undefined;
      if (!id) throw new QuantLensError('no-format', `no format for ${w.name}: pass --format${req.plan ? ', or give it one in the plan' : ' or --plan'}`, { file: req.plan ?? runner.file, tensor: w.name });
      return { weight: w, format: format(id, req.format ? '--format' : req.plan!) };
    });
    return { list, skipped: [] };
  }
  check(planned, 'bad-option', 'give a plan (--plan) or one layer with --layer and --format', { file: runner.file });
  const list: Assignment[] = [];
  const known = new Set(runner.weights.map((w) => w.name));
  for (const w of runner.weights) {
    const id = planned.assignment.get(w.name)?.format;
    if (id) list.push({ weight: w, format: format(id, req.plan!) });
  }
  // Matrices a rule names explicitly but that cannot be rewritten (rules and defaults reach every bias and norm
  // vector too: not worth a line each).
  const skipped = [...planned.assignment.entries()]
    .filter(([name, a]) => a.format && a.rule >= 0 && !known.has(name) && !planned.vectors.has(name))
    .map(([name]) => ({ name, reason: 'not a MatMul/Gemm/Conv weight of the main graph (only those are rewritten)' }));
  return { list, skipped };
}

/** The rewritable weights of a layer named by its path (`block.layer`, as the explorer and outline name it). */
async function layerWeights(runner: ModelRunner, layer: string): Promise<RunnerWeight[]> {
  const ckpt = await openCheckpoint(runner.file);
  try {
    const inLayer = new Set(ckpt.tensors.filter((t) => layerPath(t.layer) === layer).map((t) => t.name));
    return runner.weights.filter((w) => inLayer.has(w.name));
  } finally {
    await ckpt.close();
  }
}

/** Tensor name → decision from the plan, resolved against `model` (which replaces the plan's `model:`); and the tensors of rank < 2. */
async function planAssignment(req: QuantizeRequest, model: string): Promise<{ assignment: ReadonlyMap<string, TensorAssignment>; vectors: Set<string> }> {
  const planPath = path.resolve(req.plan!);
  const text =
    req.planText ??
    (await fsp.readFile(planPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'plan not found' : e.message, { file: planPath });
    }));
  const info = await new PlanService().model(model);
  if (info.error) throw new QuantLensError('bad-model', info.error, { file: model });
  const state = planState(text, planPath, info);
  const modelRange = state.analysis.plan.model?.range;
  const errors = state.analysis.diagnostics.filter((d) => d.severity === 'error' && !(modelRange && d.range.start.line === modelRange.start.line));
  if (errors.length > 0) {
    const d = errors[0];
    throw new QuantLensError('bad-plan', `${d.message} (line ${d.range.start.line + 1}${errors.length > 1 ? `; ${errors.length - 1} more error(s)` : ''})`, { file: planPath });
  }
  const vectors = new Set((info.tensors ?? []).filter((t) => (t.shape?.length ?? 0) < 2).map((t) => t.name));
  return { assignment: state.analysis.assignment, vectors };
}
