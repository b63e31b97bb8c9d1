// A quantize job (or a ratios job: allocate/ratios-job.ts) on a worker thread, for callers whose thread must stay
// free (the language server): onnxruntime's session.run blocks the thread it runs on. Cancel is cooperative first (the job stops at its next check and
// writes nothing, since the output is written last); a worker still busy after a grace period is terminated.
import * as path from 'node:path';
import { QuantLensError } from '../formats/errors';
import { deserializeError, startWorker, type SerializedError } from '../worker-entry';
import type { RatiosJob } from '../allocate/ratios-job';
import type { RatiosReport } from '../allocate/ratios-run';
import type { QuantizeReport, QuantizeRequest } from './pipeline';

const TERMINATE_AFTER_MS = 5000;

/** What the worker runs. */
export type WorkerJob = { kind: 'quantize'; req: QuantizeRequest } | { kind: 'ratios'; job: RatiosJob };
export type QuantizeToWorker = { type: 'cancel' };
export type QuantizeFromWorker =
  | { type: 'progress'; fraction: number; message: string }
  | { type: 'result'; report: QuantizeReport | RatiosReport }
  | { type: 'error'; error: SerializedError };

export interface WorkerHooks {
  signal?: AbortSignal;
  onProgress?: (fraction: number, message: string) => void;
}

export function runQuantizeInWorker(req: QuantizeRequest, run: WorkerHooks = {}): Promise<QuantizeReport> {
  return inWorker<QuantizeReport>({ kind: 'quantize', req }, req.model, run);
}

export function runRatiosInWorker(job: RatiosJob, run: WorkerHooks = {}): Promise<RatiosReport> {
  return inWorker<RatiosReport>({ kind: 'ratios', job }, job.path, run);
}

function inWorker<R>(data: WorkerJob, file: string, run: WorkerHooks): Promise<R> {
  return new Promise((resolve, reject) => {
    const worker = startWorker('quantize-worker', path.join(__dirname, 'worker.ts'), { workerData: data });
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown, report?: R) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err !== undefined) reject(err);
      else resolve(report!);
    };
    const cancelled = () => run.signal?.reason ?? new QuantLensError('cancelled', `${data.kind} job cancelled`, { file });
    const onAbort = () => {
      worker.postMessage({ type: 'cancel' } satisfies QuantizeToWorker);
      timer = setTimeout(() => finish(cancelled()), TERMINATE_AFTER_MS);
    };
    if (run.signal?.aborted) return finish(cancelled());
    run.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: QuantizeFromWorker) => {
      if (m.type === 'progress') run.onProgress?.(m.fraction, m.message);
      else if (m.type === 'result') finish(undefined, m.report as R);
      else finish(run.signal?.aborted ? cancelled() : deserializeError(m.error));
    });
    worker.on('error', (e) => finish(e));
    worker.on('exit', (code) => finish(new Error(`${data.kind} worker exited with code ${code}`)));
  });
}
