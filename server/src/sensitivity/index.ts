// Calibration-based sensitivity of an ONNX model (DESIGN.md §4): layer Hessians from captured activations
// (tr(ΔW H ΔWᵀ) per format, OBS saliency) and empirical output scores, with the agreement of their rankings.
import type { CalibrationSet } from '../calib/types';
import { QuantLensError } from '../formats/errors';
import { shapeSize } from '../formats/dtypes';
import { getFormat, UnknownFormatError, type NumberFormat } from '../quant';
import { captureHessians } from '../runtime/capture';
import { ModelRunner } from '../runtime/model-runner';
import { methodAgreement } from './agreement';
import { empiricalScores } from './empirical';
import { hessianScores, obsSaliency } from './hessian';
import type { CalibratedLayer, CalibratedMethod, CalibratedProgress, CalibratedReport } from './types';

export type * from './types';

export interface CalibratedOptions {
  methods: readonly CalibratedMethod[];
  /** Number-format ids (quant/getFormat). */
  formats: readonly string[];
  providers?: readonly string[];
  threads?: number;
  /** Weights to analyze (default: every MatMul/Gemm/Conv weight of the main graph). */
  weights?: readonly string[];
  /** Model output the empirical scores compare (default: the first). */
  output?: string;
  /** Keep each layer's full OBS saliency array in the report (for the high-impact ranking). */
  keepSaliency?: boolean;
  onProgress?: (p: CalibratedProgress) => void;
  signal?: AbortSignal;
}

function formatsOf(ids: readonly string[], file: string): NumberFormat[] {
  return ids.map((id) => {
    try {
      return getFormat(id);
    } catch (e) {
      if (e instanceof UnknownFormatError) throw new QuantLensError('unknown-format', e.message, { file });
      throw e;
    }
  });
}

export async function calibratedAnalysis(modelPath: string, calib: CalibrationSet, opts: CalibratedOptions): Promise<CalibratedReport> {
  const formats = formatsOf(opts.formats, modelPath);
  const methods = [...new Set(opts.methods)];
  opts.onProgress?.({ phase: 'open', done: 0, total: 1 });
  const runner = await ModelRunner.open(modelPath, { providers: opts.providers, threads: opts.threads });
  try {
    const selected = opts.weights ? new Set(opts.weights) : undefined;
    for (const name of selected ?? []) runner.weight(name);
    const layers: CalibratedLayer[] = runner.weights
      .filter((w) => !selected || selected.has(w.name))
      .map((w) => ({ name: w.name, node: w.node, op: w.op, shape: w.shape, layout: w.layout, params: shapeSize(w.shape), scores: {} }));
    const byName = new Map(layers.map((l) => [l.name, l]));
    const note = (l: CalibratedLayer, text: string) => (l.notes ??= []).push(text);
    const saliency = opts.keepSaliency ? new Map<string, Float32Array>() : undefined;
    const names = layers.map((l) => l.name);

    if (methods.includes('hessian')) {
      let done = 0;
      const skipped = await captureHessians(
        runner,
        calib.batches,
        async (lh) => {
          const l = byName.get(lh.weight.name)!;
          const where = { file: runner.file, tensor: l.name };
          const layer = { values: runner.read(l.name), shape: l.shape, layout: l.layout, H: lh.H, where };
          l.hessian = { d: lh.d, groups: lh.H.length, rows: lh.rows };
          l.scores.hessian = await hessianScores(layer, formats, { providers: opts.providers, threads: opts.threads });
          try {
            const obs = obsSaliency(layer);
            l.obs = obs.summary;
            saliency?.set(l.name, obs.saliency);
          } catch (e) {
            if (!(e instanceof QuantLensError)) throw e;
            note(l, `OBS saliency: ${e.detail}`);
          }
          opts.onProgress?.({ phase: 'hessian', done: ++done, total: layers.length, message: l.name });
        },
        {
          weights: names,
          signal: opts.signal,
          onProgress: (p) => opts.onProgress?.({ phase: 'hessian', done, total: layers.length, message: `pass ${p.pass + 1}/${p.passes}, batch ${p.batch}/${p.batches}` }),
        },
      );
      for (const s of skipped) note(byName.get(s.weight)!, `Hessian: ${s.reason}`);
    }

    const output = opts.output ?? runner.outputs[0];
    if (methods.includes('empirical')) {
      const scores = await empiricalScores(runner, calib.batches, formats, {
        weights: names,
        output,
        signal: opts.signal,
        onProgress: (done, total, weight) => opts.onProgress?.({ phase: 'empirical', done, total, message: weight }),
      });
      for (const [name, s] of scores) byName.get(name)!.scores.empirical = s;
    }

    return {
      model: runner.file,
      executionProvider: runner.provider,
      attempts: runner.attempts,
      calibration: { samples: calib.samples, synthetic: calib.synthetic, source: calib.source },
      methods,
      formats: formats.map((f) => f.id),
      ...(methods.includes('empirical') ? { output } : {}),
      layers,
      agreement: methodAgreement(layers, formats.map((f) => f.id)),
      ...(saliency ? { saliency } : {}),
    };
  } finally {
    await runner.close();
  }
}
