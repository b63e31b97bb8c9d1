// Worker-thread entry of a calibrated sensitivity analysis: onnxruntime's session.run blocks its thread, so the
// language server runs the whole analysis here and only relays progress and the result.
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../worker-entry';
import { analyzeSensitivity } from './combined';
import type { SensitivityFromWorker, SensitivityWorkerInit } from './run';

const port = parentPort!;
const init = workerData as SensitivityWorkerInit;
const post = (m: SensitivityFromWorker) => port.postMessage(m);

analyzeSensitivity(init.target, { ...init.options, onProgress: (stage, done, total) => post({ type: 'progress', stage, done, total }) }).then(
  (report) => post({ type: 'result', report }),
  (e: unknown) => post({ type: 'error', error: serializeError(e) }),
);
