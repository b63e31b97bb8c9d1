// "Quantize layer" (quantlens/quantizeLayer): one weight, one format, a queued job on a worker thread, and the
// result as deltas against the original model.
import * as path from 'node:path';
import type { QuantizeLayerParams, QuantizeLayerResult } from '../protocol';
import { JobCache } from './cache';
import type { QuantizeReport, QuantizeRequest } from './pipeline';
import { JobQueue } from './queue';
import { runQuantizeInWorker } from './run';

/** The language server's queue: one heavy job at a time. */
export const jobs = new JobQueue();
const results = new JobCache<QuantizeReport>();

/** A quantizeLayer request without its progress token (paths already resolved to absolute ones). */
export type LayerJob = Omit<QuantizeLayerParams, 'workDoneToken'>;

/** `<model>.<layer>.<format>.quant.onnx` beside the model, with path-unsafe characters replaced. */
export function layerOutputPath(model: string, layer: string, format: string | undefined): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');
  const base = path.basename(model, path.extname(model));
  return path.join(path.dirname(model), `${base}.${safe(layer)}.${safe(format ?? 'plan')}.quant.onnx`);
}

export interface JobRun {
  signal?: AbortSignal;
  onProgress?: (pct: number, message: string) => void;
}

/** Runs a quantize job on the queue (a worker thread), answered from the job cache when its inputs are unchanged. */
export async function cachedQuantize(req: QuantizeRequest, run: JobRun): Promise<{ report: QuantizeReport; cached: boolean; waitedFor: number }> {
  let waitedFor = 0;
  const key = await results.key(req);
  const hit = await results.get(key);
  const report =
    hit ??
    (await jobs.add({
      signal: run.signal,
      onWait: (ahead) => {
        waitedFor = Math.max(waitedFor, ahead);
        if (ahead > 0) run.onProgress?.(0, `waiting for ${ahead} job${ahead > 1 ? 's' : ''} ahead`);
      },
      run: () => runQuantizeInWorker(req, { signal: run.signal, onProgress: (f, m) => run.onProgress?.(100 * f, m) }),
    }));
  if (!hit) await results.set(key, report.output, report);
  return { report, cached: hit !== undefined, waitedFor };
}

/** The fields every protocol job passes to the quantize pipeline as they are. */
export function jobRequest(job: Pick<LayerJob, 'model' | 'plan' | 'method' | 'eval' | 'labels' | 'maxSamples' | 'providers'>): QuantizeRequest {
  return { model: job.model, plan: job.plan, method: job.method, eval: job.eval, labels: job.labels, samples: job.maxSamples, providers: job.providers };
}

export async function quantizeLayer(job: LayerJob, run: JobRun = {}): Promise<QuantizeLayerResult> {
  const start = Date.now();
  const req: QuantizeRequest = {
    ...jobRequest(job),
    layer: job.layer,
    format: job.format,
    // The default output belongs to this layer job: a rerun replaces it.
    out: job.out ?? layerOutputPath(job.model, job.layer, job.format),
    force: job.out === undefined,
  };
  const { report, cached, waitedFor } = await cachedQuantize(req, run);
  const w = report.weights[0];
  const e = report.evaluation!;
  const m = report.metrics!;
  return {
    output: report.output,
    layer: w.name,
    format: w.format,
    executionProvider: report.executionProvider,
    simulated: report.simulated,
    delta: {
      kl: m.kl,
      top1: m.top1 - 1,
      sqnrDb: m.sqnrDb,
      ...(e.accuracy ? { accuracy: e.accuracy.quantized - e.accuracy.original } : {}),
      ...(e.perplexity ? { perplexity: e.perplexity.quantized - e.perplexity.original } : {}),
      latencyMs: e.latencyMs.quantized - e.latencyMs.original,
      sizeBytes: report.sizeBytes.quantized - report.sizeBytes.original,
    },
    waitedFor,
    cached,
    ms: Date.now() - start,
    report,
  };
}
