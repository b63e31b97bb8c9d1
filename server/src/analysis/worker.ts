// Worker-thread entry of the analysis pool: opens the checkpoint itself (so no tensor data crosses threads) and
// analyzes one tensor per task, streaming it block by block.
import { parentPort, workerData } from 'node:worker_threads';
import { openCheckpoint } from '../formats/registry';
import { analyzeTensor } from './datafree';
import type { FromWorker, ToWorker, WorkerInit } from './pool';
import { serializeError } from '../worker-entry';

const port = parentPort!;
const init = workerData as WorkerInit;
const opened = openCheckpoint(init.target);
const post = (m: FromWorker) => port.postMessage(m);

port.on('message', (m: ToWorker) => {
  void (async () => {
    try {
      const ckpt = await opened;
      const t = ckpt.tensors.find((x) => x.name === m.tensor);
      if (!t) throw new Error(`worker: tensor ${m.tensor} not in the checkpoint`);
      const layer = await analyzeTensor(ckpt, t, init.options, {
        blockElems: init.blockElems,
        progress: (weights) => post({ type: 'progress', task: m.task, weights }),
      });
      post({ type: 'result', task: m.task, layer });
    } catch (e) {
      post({ type: 'error', task: m.task, error: serializeError(e) });
    }
  })();
});
