// Runs tensor analyses on worker threads (one per core by default). Each worker opens the checkpoint itself and
// takes one tensor at a time, largest first, so memory per worker stays at a few blocks of one tensor.
// Cancellation terminates the workers. threads = 0 runs in this thread (tests, debugging).
import * as os from 'node:os';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { openCheckpoint } from '../formats/registry';
import { analyzeTensor } from './datafree';
import type { DatafreeOptions, LayerReport } from './types';
import { deserializeError, startWorker, type SerializedError } from '../worker-entry';

export interface WorkerInit {
  target: string;
  options: DatafreeOptions;
  blockElems?: number;
}

export type ToWorker = { type: 'task'; task: number; tensor: string };

export type FromWorker =
  | { type: 'progress'; task: number; weights: number }
  | { type: 'result'; task: number; layer: LayerReport }
  | { type: 'error'; task: number; error: SerializedError };

export interface PoolTask {
  tensor: string;
  /** Weights the task will score (for progress and scheduling). */
  weights: number;
}

export interface PoolRun {
  threads?: number;
  signal?: AbortSignal;
  blockElems?: number;
  /** Weights scored so far out of the total. */
  onProgress?: (done: number, total: number) => void;
  /** Worker script override (defaults: the bundled `analysis-worker.js`, or worker.ts under tsx). */
  workerScript?: string;
}

export function defaultThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Analyze every task; results keyed by tensor name. Rejects with the first task error or the abort reason. */
export async function runPool(target: string, options: DatafreeOptions, tasks: PoolTask[], run: PoolRun = {}): Promise<Map<string, LayerReport>> {
  const order = [...tasks].sort((a, b) => b.weights - a.weights);
  const total = order.reduce((s, t) => s + t.weights, 0);
  let done = 0;
  const tick = (w: number) => {
    done += w;
    run.onProgress?.(done, total);
  };
  const threads = Math.min(run.threads ?? defaultThreads(), order.length);
  if (threads <= 0) return runInline(target, options, order, run, tick);

  const init: WorkerInit = { target, options, blockElems: run.blockElems };
  const results = new Map<string, LayerReport>();
  const workers: Worker[] = [];
  return new Promise<Map<string, LayerReport>>((resolve, reject) => {
    let next = 0;
    let finished = 0;
    let settled = false;
    const stop = (err?: unknown) => {
      if (settled) return;
      settled = true;
      run.signal?.removeEventListener('abort', onAbort);
      for (const w of workers) void w.terminate();
      if (err === undefined) resolve(results);
      else reject(err);
    };
    const onAbort = () => stop(run.signal!.reason ?? new Error('analysis cancelled'));
    if (run.signal?.aborted) return onAbort();
    run.signal?.addEventListener('abort', onAbort, { once: true });

    const feed = (w: Worker) => {
      if (next < order.length) {
        const task = next++;
        w.postMessage({ type: 'task', task, tensor: order[task].tensor } satisfies ToWorker);
      }
    };
    for (let i = 0; i < threads; i++) {
      const w = startWorker('analysis-worker', path.join(__dirname, 'worker.ts'), { workerData: init }, run.workerScript);
      workers.push(w);
      w.on('message', (m: FromWorker) => {
        if (settled) return;
        if (m.type === 'progress') tick(m.weights);
        else if (m.type === 'error') stop(deserializeError(m.error));
        else {
          results.set(order[m.task].tensor, m.layer);
          if (++finished === order.length) stop();
          else feed(w);
        }
      });
      w.on('error', (e) => stop(e));
      w.on('exit', (code) => {
        if (!settled) stop(new Error(`analysis worker exited with code ${code}`));
      });
      feed(w);
    }
  });
}

async function runInline(target: string, options: DatafreeOptions, order: PoolTask[], run: PoolRun, tick: (w: number) => void): Promise<Map<string, LayerReport>> {
  const ckpt = await openCheckpoint(target);
  try {
    const results = new Map<string, LayerReport>();
    for (const task of order) {
      if (run.signal?.aborted) throw run.signal.reason;
      const t = ckpt.tensors.find((x) => x.name === task.tensor)!;
      results.set(task.tensor, await analyzeTensor(ckpt, t, options, { blockElems: run.blockElems, progress: tick, signal: run.signal }));
    }
    return results;
  } finally {
    await ckpt.close();
  }
}
