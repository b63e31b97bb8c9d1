// Worker-thread entry of a quantize or ratios job (see run.ts): runs it, relays progress, honours 'cancel'.
import { parentPort, workerData } from 'node:worker_threads';
import { runRatiosJob } from '../allocate/ratios-job';
import { serializeError } from '../worker-entry';
import { runQuantize } from './pipeline';
import type { QuantizeFromWorker, QuantizeToWorker, WorkerJob } from './run';

const port = parentPort!;
const ac = new AbortController();
const post = (m: QuantizeFromWorker) => port.postMessage(m);
port.on('message', (m: QuantizeToWorker) => {
  if (m.type === 'cancel') ac.abort();
});

const job = workerData as WorkerJob;
const hooks = { signal: ac.signal, onProgress: (fraction: number, message: string) => post({ type: 'progress', fraction, message }) };
(job.kind === 'ratios' ? runRatiosJob(job.job, hooks) : runQuantize(job.req, hooks)).then(
  (report) => post({ type: 'result', report }),
  (e: unknown) => post({ type: 'error', error: serializeError(e) }),
).finally(() => port.close());
