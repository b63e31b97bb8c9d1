// `quantlens analyze <model.onnx> --calib … --methods …`: every sensitivity method on one ONNX model and one
// calibration set, merged per weight, with the Spearman agreement of their layer rankings (DESIGN.md §4).
// The data-free scores come from the analysis engine, the Hessian and empirical ones from calibratedAnalysis, the
// gradient ones (Fisher, GWQ, HAWQ) from the gradient graph; a model whose ops have no gradient rule falls back to
// the other methods and the report says why.
import { analyzeCheckpoint } from '../analysis';
import { loadCalibration, readNpyFile, type CalibrationOptions } from '../calib';
import { GradientUnsupportedError } from '../autodiff/errors';
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { ModelRunner } from '../runtime/model-runner';
import { methodAgreement } from './agreement';
import { gradientAnalysis } from './gradient';
import { calibratedAnalysis } from './index';
import type { AgreementEntry, CalibratedLayer } from './types';
import type { ProviderAttempt } from '../runtime/session';

export const SENSITIVITY_METHODS = ['datafree', 'hessian', 'fisher', 'gwq', 'empirical', 'hawq'] as const;
export type SensitivityMethod = (typeof SENSITIVITY_METHODS)[number];
/** What `--calib` runs when `--methods` is not given (HAWQ is opt-in: it costs many gradient runs per layer). */
export const DEFAULT_CALIBRATED_METHODS: SensitivityMethod[] = ['datafree', 'hessian', 'fisher', 'gwq', 'empirical'];

export interface SensitivityOptions {
  methods: SensitivityMethod[];
  formats: string[];
  /** Calibration data (file or folder); undefined: the synthetic generator (reported). */
  calib?: string;
  calibration?: CalibrationOptions;
  /** A .npy of class indices (or float targets) aligned with the calibration samples. */
  labels?: string;
  providers?: readonly string[];
  threads?: number;
  /** Data-free analysis cache folder (false: none). */
  cacheDir?: string | false;
  onProgress?: (stage: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface SensitivityLayer extends CalibratedLayer {
  hessianTrace?: number;
  hessianTraceStdError?: number;
  hessianTopEig?: number;
}

export interface SensitivityReport {
  version: 'sensitivity-1';
  model: string;
  executionProvider: string;
  attempts: ProviderAttempt[];
  calibration: { samples: number; synthetic: boolean; source: string };
  methods: SensitivityMethod[];
  formats: string[];
  /** The loss the gradient methods differentiate, in words. */
  loss?: string;
  layers: SensitivityLayer[];
  agreement: AgreementEntry[];
  /** Methods that could not run on this model, and why (the others still ran). */
  fallbacks: { method: SensitivityMethod; reason: string }[];
}

export async function analyzeSensitivity(target: string, opts: SensitivityOptions): Promise<SensitivityReport> {
  const methods = [...new Set(opts.methods)];
  const ckpt = await openCheckpoint(target);
  const modelFile = ckpt.files[0] ?? target;
  await ckpt.close();
  if (ckpt.format !== 'onnx' && methods.some((m) => m !== 'datafree')) {
    throw new QuantLensError(
      'needs-onnx',
      `calibration methods run the model, which needs ONNX (this is ${ckpt.format}); for safetensors/GGUF use the data-free scores with --imatrix <llama.cpp imatrix>`,
      { file: target },
    );
  }
  const progress = (stage: string) => (done: number, total: number) => opts.onProgress?.(stage, done, total);

  // The runner's inputs are the model's true inputs (its weights become fed inputs too).
  const probe = await ModelRunner.open(modelFile, { providers: opts.providers, threads: opts.threads });
  const inputs = probe.inputs;
  await probe.close();
  const calib = await loadCalibration(opts.calib, inputs, opts.calibration);
  const labels = opts.labels !== undefined ? await readNpyFile(opts.labels) : undefined;

  const calibrated = methods.filter((m): m is 'hessian' | 'empirical' => m === 'hessian' || m === 'empirical');
  const base = await calibratedAnalysis(modelFile, calib, {
    methods: calibrated,
    formats: opts.formats,
    providers: opts.providers,
    threads: opts.threads,
    signal: opts.signal,
    onProgress: (p) => opts.onProgress?.(p.phase, p.done, p.total),
  });
  const layers: SensitivityLayer[] = base.layers;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const fallbacks: SensitivityReport['fallbacks'] = [];

  if (methods.includes('datafree')) {
    const { report } = await analyzeCheckpoint(modelFile, { formats: opts.formats, highImpact: false }, { cacheDir: opts.cacheDir, signal: opts.signal, onProgress: progress('datafree') });
    for (const l of report.layers) {
      const layer = byName.get(l.name);
      if (layer) layer.scores.datafree = Object.fromEntries(Object.entries(l.errors).map(([id, e]) => [id, e.relMse]));
    }
  }

  let loss: string | undefined;
  const gradientMethods = methods.filter((m): m is 'fisher' | 'gwq' | 'hawq' => m === 'fisher' || m === 'gwq' || m === 'hawq');
  if (gradientMethods.length > 0) {
    try {
      const g = await gradientAnalysis(modelFile, calib, {
        methods: gradientMethods,
        formats: opts.formats,
        providers: opts.providers,
        labels,
        weights: layers.map((l) => l.name),
        signal: opts.signal,
        onProgress: (done, total, stage) => opts.onProgress?.(stage, done, total),
      });
      loss = g.loss;
      for (const w of g.weights) {
        const layer = byName.get(w.name);
        if (!layer) continue;
        if (w.scores.fisher) layer.scores.fisher = w.scores.fisher;
        if (w.scores.gwq) layer.scores.gwq = w.scores.gwq;
        if (w.hessianTrace !== undefined) layer.hessianTrace = w.hessianTrace;
        if (w.hessianTraceStdError !== undefined) layer.hessianTraceStdError = w.hessianTraceStdError;
        if (w.hessianTopEig !== undefined) layer.hessianTopEig = w.hessianTopEig;
      }
    } catch (e) {
      if (!(e instanceof GradientUnsupportedError)) throw e;
      for (const m of gradientMethods) fallbacks.push({ method: m, reason: e.message });
    }
  }

  return {
    version: 'sensitivity-1',
    model: base.model,
    executionProvider: base.executionProvider,
    attempts: base.attempts,
    calibration: base.calibration,
    methods,
    formats: base.formats,
    ...(loss !== undefined ? { loss } : {}),
    layers,
    agreement: methodAgreement(layers, base.formats),
    fallbacks,
  };
}
