// Per-weight saliency that ranks a layer's high-impact weights (the ratio curves of `quantlens ratios` and the
// mixed quantizer of `quantlens quantize --mixed/--ratios` use the same one):
//   magnitude  |w| — no data needed;
//   hessian    the OBS/GPTQ saliency w² / [(H + λ·mean diag H·I)⁻¹]_jj with H the layer Hessian on calibration
//              data (sensitivity/hessian.ts), i.e. the loss increase of zeroing that weight alone;
//   fisher     F·w² with F the diagonal Fisher (mean squared per-sample gradient, sensitivity/gradient.ts): the same
//              loss increase under the Fisher approximation of the Hessian, whole-model rather than per layer;
//   gwq        |ḡ·w| with ḡ the mean gradient: GWQ's first-order saliency.
// Layers whose Hessian cannot be captured (sensitivity's limits) keep |w|, listed in `fallback`.
import type { CalibrationSet, Feeds } from '../calib/types';
import { QuantLensError } from '../formats/errors';
import { gridOf } from '../quant/grid';
import { captureHessians } from '../runtime/capture';
import type { ModelRunner } from '../runtime/model-runner';
import { gradientStatistics } from '../sensitivity/gradient';
import { obsSaliency } from '../sensitivity/hessian';

export type SaliencyKind = 'magnitude' | 'hessian' | 'fisher' | 'gwq';
export const SALIENCY_KINDS: readonly SaliencyKind[] = ['magnitude', 'hessian', 'fisher', 'gwq'];

export function parseSaliency(text: string, flag = '--saliency'): SaliencyKind {
  if ((SALIENCY_KINDS as readonly string[]).includes(text)) return text as SaliencyKind;
  throw new QuantLensError('bad-option', `expected ${SALIENCY_KINDS.join(', ')}, found '${text}'`, { file: flag });
}

export interface Saliency {
  /** Weight name → saliency in the weight's storage order. */
  saliency: Map<string, Float32Array>;
  /** Layers left at |w|, with the reason. */
  fallback: { name: string; reason: string }[];
}

/** The data-driven saliency `kind` of the named weights of `runner` on the calibration data. */
export async function dataSaliency(kind: Exclude<SaliencyKind, 'magnitude'>, runner: ModelRunner, calib: CalibrationSet, names: readonly string[], signal?: AbortSignal): Promise<Saliency> {
  if (kind === 'hessian') return hessianSaliency(runner, calib.batches, names, signal);
  const { fisher, mean, values } = await gradientStatistics(runner.file, calib, [...names], { signal });
  const saliency = new Map<string, Float32Array>();
  for (const name of names) {
    const w = values.get(name)!.data;
    const F = fisher.get(name)!;
    const G = mean.get(name)!;
    const s = new Float32Array(w.length);
    for (let j = 0; j < w.length; j++) s[j] = kind === 'fisher' ? F[j] * w[j] * w[j] : Math.abs(G[j] * w[j]);
    saliency.set(name, s);
  }
  return { saliency, fallback: [] };
}

/** OBS saliency of the named weights of `runner` from the Hessians on `batches`. */
export async function hessianSaliency(runner: ModelRunner, batches: readonly Feeds[], names: readonly string[], signal?: AbortSignal): Promise<Saliency> {
  const saliency = new Map<string, Float32Array>();
  const fallback: Saliency['fallback'] = [];
  const skipped = await captureHessians(
    runner,
    batches,
    (layer) => {
      const w = layer.weight;
      const where = { file: runner.file, tensor: w.name };
      try {
        const view = obsSaliency({ values: runner.read(w.name), shape: w.shape, layout: w.layout, H: layer.H, where }, undefined, 1).saliency;
        saliency.set(w.name, toStorageOrder(view, w.shape, w.layout));
      } catch (e) {
        // A Hessian that stays singular after damping (dead inputs everywhere) ranks by |w| instead.
        if (!(e instanceof QuantLensError)) throw e;
        fallback.push({ name: w.name, reason: e.detail });
      }
    },
    { weights: names, signal },
  );
  for (const s of skipped) fallback.push({ name: s.weight, reason: s.reason });
  return { saliency, fallback };
}

/** An [out, in]-view array of a weight in the weight's own storage order. */
export function toStorageOrder(view: Float32Array, shape: readonly number[], layout: Parameters<typeof gridOf>[1]): Float32Array {
  const { rows, cols, rowStride, colStride } = gridOf(shape, layout);
  const out = new Float32Array(view.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * rowStride + c * colStride] = view[r * cols + c];
  return out;
}
