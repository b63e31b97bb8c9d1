// What `quantlens ratios` (the CLI and the language server's quantlens/ratios) runs on: the weights, a loss probe
// when the model runs here (ONNX on onnxruntime), and the per-weight saliency that ranks each layer's weights.
// Other checkpoints, or `datafree`, use the weights only (C diagonal, |w| ranking; the report says so).
import * as path from 'node:path';
import { loadCalibration } from '../calib';
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { ModelRunner } from '../runtime/model-runner';
import type { LossProbe } from './interactions';
import { OutputErrorProbe, runnerSource } from './ratios-probe';
import { checkpointSource, type RatiosOptions, type WeightSource } from './ratios-run';
import { dataSaliency, type SaliencyKind } from './ratios-saliency';

export interface RatiosSourceOptions {
  datafree?: boolean;
  /** Calibration data for a runnable model; default: synthetic. */
  calib?: string;
  samples: number;
  seed: number;
  providers?: string[];
  only?: RegExp;
  /** Default magnitude. `hessian` needs a runnable model. */
  saliency?: SaliencyKind;
  signal?: AbortSignal;
}

export interface RatiosSource {
  src: WeightSource;
  probe?: LossProbe;
  /** What ran, on which data (for the report). */
  note?: string;
  saliency: Pick<RatiosOptions, 'saliency' | 'saliencyKind' | 'saliencyFallback'>;
}

export async function openRatiosSource(model: string, o: RatiosSourceOptions): Promise<RatiosSource> {
  const ckpt = await openCheckpoint(model);
  const onnxFile = ckpt.format === 'onnx' ? (ckpt.files.find((f) => f.endsWith('.onnx')) ?? ckpt.path) : undefined;
  await ckpt.close();
  const weightsOnly = async (note?: string): Promise<RatiosSource> => {
    if (o.saliency === 'hessian') throw new QuantLensError('bad-option', 'hessian needs a runnable ONNX model (and no --datafree)', { file: '--saliency' });
    return { src: await checkpointSource(model, o.only), note, saliency: {} };
  };
  if (!onnxFile || o.datafree) {
    if (o.calib) throw new QuantLensError('bad-option', '--calib needs a runnable ONNX model (and no --datafree)', { file: '--calib' });
    return weightsOnly();
  }
  let runner: ModelRunner;
  try {
    runner = await ModelRunner.open(onnxFile, { providers: o.providers });
  } catch (e) {
    if (!(e instanceof QuantLensError) || o.calib) throw e;
    return weightsOnly(`the model does not run here (${e.message}); weights only, C diagonal`);
  }
  try {
    const calib = await loadCalibration(o.calib, runner.inputs, { maxSamples: o.samples, seed: o.seed });
    const src = runnerSource(runner);
    if (o.only) src.layers = src.layers.filter((l) => o.only!.test(l.name));
    const data = calib.synthetic ? `synthetic calibration data (${calib.source})` : `calibration data ${path.basename(calib.source)}`;
    let saliency: RatiosSource['saliency'] = {};
    if (o.saliency && o.saliency !== 'magnitude') {
      const h = await dataSaliency(o.saliency, runner, calib, src.layers.map((l) => l.name), o.signal);
      saliency = { saliency: (name) => h.saliency.get(name), saliencyKind: o.saliency, saliencyFallback: h.fallback };
    }
    return { src, probe: new OutputErrorProbe(runner, calib.batches), note: `ran on ${runner.provider}; ${data}, ${calib.samples} samples`, saliency };
  } catch (e) {
    await runner.close();
    throw e;
  }
}
