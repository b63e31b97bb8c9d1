// analyzeSensitivity on a worker thread, for callers whose thread must stay free (the language server).
// Cancellation terminates the worker; onnxruntime's native work stops with it.
import * as path from 'node:path';
import { QuantLensError } from '../formats/errors';
import { deserializeError, startWorker, type SerializedError } from '../worker-entry';
import type { SensitivityOptions, SensitivityReport } from './combined';

export type SensitivityWorkerOptions = Omit<SensitivityOptions, 'onProgress' | 'signal'>;

export interface SensitivityWorkerInit {
  target: string;
  options: SensitivityWorkerOptions;
}

export type SensitivityFromWorker =
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'result'; report: SensitivityReport }
  | { type: 'error'; error: SerializedError };

export function analyzeSensitivityInWorker(
  target: string,
  options: SensitivityWorkerOptions,
  run: { onProgress?: SensitivityOptions['onProgress']; signal?: AbortSignal } = {},
): Promise<SensitivityReport> {
  return new Promise((resolve, reject) => {
    const init: SensitivityWorkerInit = { target, options };
    const worker = startWorker('sensitivity-worker', path.join(__dirname, 'worker.ts'), { workerData: init });
    let settled = false;
    const finish = (err: unknown, report?: SensitivityReport) => {
      if (settled) return;
      settled = true;
      run.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err !== undefined) reject(err);
      else resolve(report!);
    };
    const onAbort = () => finish(run.signal!.reason ?? new QuantLensError('cancelled', 'analysis cancelled', { file: target }));
    if (run.signal?.aborted) return onAbort();
    run.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: SensitivityFromWorker) => {
      if (m.type === 'progress') run.onProgress?.(m.stage, m.done, m.total);
      else if (m.type === 'result') finish(undefined, m.report);
      else finish(deserializeError(m.error));
    });
    worker.on('error', (e) => finish(e));
    worker.on('exit', (code) => finish(new Error(`sensitivity worker exited with code ${code}`)));
  });
}
