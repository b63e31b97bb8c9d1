// Runs tensor analyses on worker threads (one per core by default). Each worker opens the checkpoint itself and
// takes one tensor at a time, largest first, so memory per worker stays at a few blocks of one tensor.
// Cancellation terminates the workers. threads = 0 runs in this thread (tests, debugging).
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { QuantLensError, type Location } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { analyzeTensor } from './datafree';
import type { DatafreeOptions, LayerReport } from './types';

export interface WorkerInit {
  target: string;
  options: DatafreeOptions;
  blockElems?: number;
}

export type ToWorker = { type: 'task'; task: number; tensor: string };

export type SerializedError =
  | { kind: 'located'; code: string; detail: string; where: Location }
  | { kind: 'other'; message: string; stack?: string };

export type FromWorker =
  | { type: 'progress'; task: number; weights: number }
  | { type: 'result'; task: number; layer: LayerReport }
  | { type: 'error'; task: number; error: SerializedError };

export function serializeError(e: unknown): SerializedError {
  if (e instanceof QuantLensError) return { kind: 'located', code: e.code, detail: e.detail, where: e.where };
  const err = e as Error;
  return { kind: 'other', message: err?.message ?? String(e), stack: err?.stack };
}

function deserializeError(s: SerializedError): Error {
  if (s.kind === 'located') return new QuantLensError(s.code, s.detail, s.where);
  const e = new Error(s.message);
  if (s.stack) e.stack = s.stack;
  return e;
}

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

const TSX_REGISTER = 'tsx/cjs';

/** The worker entry: worker.ts through tsx when running from source, else the bundle next to this one. */
function workerSpec(override?: string): { file: string; evalCode?: string } {
  if (override) return { file: override };
  if (__filename.endsWith('.ts')) {
    const src = path.join(__dirname, 'worker.ts');
    // Resolved at run time only (tests run from source); the bundles never take this branch.
    const tsx = require.resolve(TSX_REGISTER);
    return { file: src, evalCode: `require(${JSON.stringify(tsx)}); require(${JSON.stringify(src)});` };
  }
  for (const dir of [__dirname, path.dirname(__dirname)]) {
    const f = path.join(dir, 'analysis-worker.js');
    if (existsSync(f)) return { file: f };
  }
  throw new Error(`analysis-worker.js not found next to ${__filename}`);
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

  const spec = workerSpec(run.workerScript);
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
      const w = spec.evalCode ? new Worker(spec.evalCode, { eval: true, workerData: init }) : new Worker(spec.file, { workerData: init });
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
