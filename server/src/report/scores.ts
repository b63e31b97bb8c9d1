// Sensitivity scores as the explorer shows them: the SQNR of a layer (all its analyzed tensors together) at one
// format, and a four-step colour band relative to the model's other layers. Pure, so the client and tests share it.
import type { AnalysisReport } from '../analysis/types';

export interface LayerScore {
  /** −10·log10(Σ‖ΔW‖² / Σ‖W‖²) over the layer's analyzed tensors; null when exact (no error). */
  sqnrDb: number | null;
  /** Σ‖ΔW‖² / Σ‖W‖². */
  relMse: number;
  /** Bits per weight of the analyzed tensors (parameter-weighted). */
  bits: number;
  /** 0 = most sensitive quarter of the model's layers … 3 = least sensitive quarter. */
  band: 0 | 1 | 2 | 3;
}

/** Scores of layers (each a list of tensor names) at `format`; layers with no analyzed tensor get none. */
export function layerScores(report: AnalysisReport, format: string, layers: ReadonlyMap<string, readonly string[]>): Map<string, LayerScore> {
  const byName = new Map(report.layers.map((l) => [l.name, l]));
  const raw: [string, Omit<LayerScore, 'band'>][] = [];
  for (const [key, tensors] of layers) {
    let err = 0;
    let energy = 0;
    let bits = 0;
    let params = 0;
    for (const t of tensors) {
      const l = byName.get(t);
      const e = l?.errors[format];
      if (!l || !e) continue;
      err += e.relMse * l.sumSq;
      energy += l.sumSq;
      bits += e.bitsPerWeight * l.params;
      params += l.params;
    }
    if (params === 0) continue;
    const relMse = energy > 0 ? err / energy : 0;
    raw.push([key, { relMse, sqnrDb: relMse > 0 ? -10 * Math.log10(relMse) : null, bits: bits / params }]);
  }
  // Bands by rank among the scored layers (quartiles), so every model uses the whole scale.
  const order = raw.map((_, i) => i).sort((a, b) => raw[b][1].relMse - raw[a][1].relMse);
  const out = new Map<string, LayerScore>();
  order.forEach((i, rank) => out.set(raw[i][0], { ...raw[i][1], band: Math.min(3, Math.floor((4 * rank) / raw.length)) as LayerScore['band'] }));
  return out;
}
