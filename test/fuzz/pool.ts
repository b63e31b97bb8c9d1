// Runs fuzz cases on worker processes with a watchdog: a case over the time limit, or a worker whose
// RSS runs away, is killed and recorded (hang / memory); the worker is replaced and the run goes on.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildInit, FromChild, ToChild } from './child';
import type { ErrorInfo } from './harness';

export type ResultKind = 'ok' | 'clean' | 'crash' | 'hang' | 'memory';

export interface CaseResult {
  format: string;
  index: number;
  kind: ResultKind;
  located?: boolean;
  error?: ErrorInfo;
  ms: number;
  /** RSS growth the case caused (peak during the case minus RSS before it), bytes. */
  growth: number;
}

export interface PoolOptions {
  runSeed: number;
  workers: number;
  /** Per-case wall-clock limit. */
  timeoutMs: number;
  /** A case growing RSS by more than this is a 'memory' failure (huge allocation). */
  growthLimit: number;
  /** A worker above this RSS is killed mid-case (protects the machine). */
  killRss: number;
}

export interface PoolSummary {
  /** Highest RSS any worker reached, bytes. */
  peakRss: number;
}

const CHILD = path.join(import.meta.dirname, 'child.ts');

/** Resident and peak resident set of a process (Linux /proc), bytes; undefined once it is gone. */
function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

interface Worker {
  proc: ChildProcess;
  ready: boolean;
  job?: { format: string; index: number; timer: NodeJS.Timeout; started: number };
  done: boolean;
}

/** Run `jobs` (format, case index) on `opts.workers` processes; `onResult` sees every case once. */
export async function runPool(formats: string[], jobs: readonly { format: string; index: number }[], opts: PoolOptions, onResult: (r: CaseResult) => void): Promise<PoolSummary> {
  let next = 0;
  let peakRss = 0;
  const workers = new Set<Worker>();
  let finish!: () => void;
  let abort!: (e: Error) => void;
  const finished = new Promise<void>((resolve, reject) => ((finish = resolve), (abort = reject)));
  let pending = jobs.length;
  if (pending === 0) return { peakRss };
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'quantlens-fuzz-'));

  const settle = (w: Worker, r: CaseResult) => {
    if (w.job) clearTimeout(w.job.timer);
    w.job = undefined;
    onResult(r);
    if (--pending === 0) finish();
  };

  const feed = (w: Worker) => {
    if (w.done || next >= jobs.length) return;
    const job = jobs[next++];
    const timer = setTimeout(() => fail(w, 'hang', { name: 'Timeout', message: `no result after ${opts.timeoutMs} ms` }), opts.timeoutMs);
    w.job = { ...job, timer, started: performance.now() };
    w.proc.send({ type: 'case', ...job } satisfies ToChild);
  };

  /** Kill a worker charged with its current case and start a replacement. */
  const fail = (w: Worker, kind: ResultKind, error: ErrorInfo) => {
    if (w.done) return;
    w.done = true;
    workers.delete(w);
    const mem = procMemory(w.proc.pid!);
    if (mem) peakRss = Math.max(peakRss, mem.hwm);
    w.proc.kill('SIGKILL');
    const job = w.job;
    if (job) settle(w, { format: job.format, index: job.index, kind, error, ms: performance.now() - job.started, growth: 0 });
    if (next < jobs.length) spawn();
  };

  const spawn = () => {
    const init: ChildInit = { formats, runSeed: opts.runSeed, work: mkdtempSync(path.join(scratch, 'w')) };
    const proc = fork(CHILD, [JSON.stringify(init)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const w: Worker = { proc, ready: false, done: false };
    workers.add(w);
    proc.on('message', (m: FromChild) => {
      if (m.type === 'ready') {
        w.ready = true;
        feed(w);
      } else if (m.type === 'result' && w.job && m.index === w.job.index) {
        peakRss = Math.max(peakRss, m.maxRssAfter);
        // Growth is charged only if this case raised the process's high-water mark.
        const growth = m.maxRssAfter > m.maxRssBefore ? m.maxRssAfter - m.rssBefore : 0;
        const base = { format: m.format, index: m.index, ms: m.ms, growth };
        if (growth > opts.growthLimit) {
          settle(w, { ...base, kind: 'memory', error: { name: 'HugeAllocation', message: `RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB during the case` } });
        } else {
          settle(w, { ...base, kind: m.outcome.kind, located: m.outcome.located, error: m.outcome.error });
        }
        feed(w);
      } else if (m.type === 'stray') {
        process.stderr.write(`fuzz: stray error in a worker after its case: ${m.error}\n`);
      }
    });
    proc.on('exit', (code, signal) => {
      // A worker that cannot even build its seeds would be replaced forever: stop the run instead.
      if (!w.ready && !w.done) abort(new Error(`fuzz worker failed to start (code ${code}, signal ${signal})`));
      else if (!w.done) fail(w, 'crash', { name: 'WorkerDied', message: `worker process exited (code ${code}, signal ${signal}) during the case` });
    });
  };

  for (let i = 0; i < Math.min(opts.workers, jobs.length); i++) spawn();
  const poll = setInterval(() => {
    for (const w of workers) {
      const mem = procMemory(w.proc.pid!);
      if (!mem) continue;
      peakRss = Math.max(peakRss, mem.hwm);
      if (mem.rss > opts.killRss && w.job) fail(w, 'memory', { name: 'HugeAllocation', message: `worker RSS reached ${(mem.rss / 2 ** 20).toFixed(0)} MiB; killed` });
    }
  }, 100);
  try {
    await finished;
  } finally {
    clearInterval(poll);
    await Promise.all(
      [...workers].map((w) => {
        w.done = true;
        const exited = new Promise((r) => w.proc.once('exit', r));
        w.proc.kill('SIGKILL');
        return w.proc.exitCode === null && w.proc.signalCode === null ? exited : undefined;
      }),
    );
    rmSync(scratch, { recursive: true, force: true });
  }
  return { peakRss };
}
