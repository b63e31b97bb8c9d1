// Worker-thread entry of a quantize job (see run.ts): runs the pipeline, relays progress, honours 'cancel'.
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../worker-entry';
import { runQuantize, type QuantizeRequest } from './pipeline';
import type { QuantizeFromWorker, QuantizeToWorker } from './run';

const port = parentPort!;
const ac = new AbortController();
const post = (m: QuantizeFromWorker) => port.postMessage(m);
port.on('message', (m: QuantizeToWorker) => {
  if (m.type === 'cancel') ac.abort();
});

runQuantize(workerData as QuantizeRequest, { signal: ac.signal, onProgress: (fraction, message) => post({ type: 'progress', fraction, message }) }).then(
  (report) => post({ type: 'result', report }),
  (e: unknown) => post({ type: 'error', error: serializeError(e) }),
).finally(() => port.close());
