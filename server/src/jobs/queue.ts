// One heavy job at a time: quantize-and-evaluate jobs fill the machine (onnxruntime uses every core), so later
// jobs wait in order and are told their place; a job cancelled while waiting leaves the queue without running.
import { QuantLensError } from '../formats/errors';

export interface QueuedJob<T> {
  /** Called while the job waits: how many jobs are ahead of it (0 once it starts). */
  onWait?: (ahead: number) => void;
  signal?: AbortSignal;
  run: () => Promise<T>;
}

interface Entry {
  start: () => void;
  onWait?: (ahead: number) => void;
}

export class JobQueue {
  private running = false;
  private readonly waiting: Entry[] = [];

  /** Jobs waiting (not counting the one running). */
  get pending(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running;
  }

  add<T>(job: QueuedJob<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = {
        onWait: job.onWait,
        start: () => {
          job.signal?.removeEventListener('abort', onAbort);
          this.running = true;
          job.onWait?.(0);
          job.run().then(resolve, reject).finally(() => this.next());
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        this.notify();
        reject(job.signal!.reason ?? new QuantLensError('cancelled', 'job cancelled while waiting', { file: '<job queue>' }));
      };
      if (job.signal?.aborted) return onAbort();
      job.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      if (this.running) this.notify();
      else this.next();
    });
  }

  private next(): void {
    this.running = false;
    const e = this.waiting.shift();
    this.notify();
    e?.start();
  }

  /** Tells every waiting job its place (1 = the running job only is ahead). */
  private notify(): void {
    this.waiting.forEach((e, i) => e.onWait?.(i + 1));
  }
}
