// Agreement between sensitivity methods: Spearman rank correlation of their layer rankings, per format.
// Ties get the average of the ranks they span; rho is the Pearson correlation of the two rank vectors (exact
// with ties, unlike the 1 − 6Σd²/(n(n²−1)) shortcut). Layers where either score is NaN are left out.
import type { AgreementEntry, CalibratedLayer } from './types';

/** 1-based ranks of `values` (ascending), ties sharing their average rank. */
export function ranks(values: readonly number[]): number[] {
  const order = values.map((_, i) => i).sort((a, b) => values[a] - values[b] || a - b);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i + 1;
    while (j < order.length && values[order[j]] === values[order[i]]) j++;
    const avg = (i + 1 + j) / 2; // ranks i+1 … j
    for (let k = i; k < j; k++) out[order[k]] = avg;
    i = j;
  }
  return out;
}

/** Spearman's rho of paired scores; null with fewer than 2 pairs or when a ranking is constant. */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} vs ${b.length} values`);
  const keep = a.map((_, i) => i).filter((i) => !Number.isNaN(a[i]) && !Number.isNaN(b[i]));
  if (keep.length < 2) return null;
  const ra = ranks(keep.map((i) => a[i]));
  const rb = ranks(keep.map((i) => b[i]));
  const mean = (keep.length + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < keep.length; i++) {
    const x = ra[i] - mean;
    const y = rb[i] - mean;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return saa === 0 || sbb === 0 ? null : sab / Math.sqrt(saa * sbb);
}

/**
 * Score series oriented so that larger = more sensitive: data-free relMse, the Hessian trace, the Fisher and GWQ
 * scores, empirical KL, −SQNR and 1 − top-1. A layer without a score in a series gets NaN there.
 */
function series(layers: readonly CalibratedLayer[], format: string): Record<string, number[]> {
  const pick = (f: (l: CalibratedLayer) => number | undefined) => layers.map((l) => f(l) ?? NaN);
  const out: Record<string, number[]> = {};
  for (const m of ['datafree', 'hessian', 'fisher', 'gwq'] as const) {
    if (layers.some((l) => l.scores[m]?.[format] !== undefined)) out[m] = pick((l) => l.scores[m]?.[format]);
  }
  if (layers.some((l) => l.scores.empirical?.[format] !== undefined)) {
    out['empirical.kl'] = pick((l) => l.scores.empirical?.[format]?.kl);
    out['empirical.sqnr'] = pick((l) => {
      const s = l.scores.empirical?.[format]?.sqnrDb;
      return s === undefined ? undefined : -s;
    });
    out['empirical.top1'] = pick((l) => {
      const s = l.scores.empirical?.[format]?.top1;
      return s === undefined ? undefined : 1 - s;
    });
  }
  return out;
}

/** Spearman rho between every pair of available rankings, for each format. */
export function methodAgreement(layers: readonly CalibratedLayer[], formats: readonly string[]): AgreementEntry[] {
  const out: AgreementEntry[] = [];
  for (const format of formats) {
    const s = Object.entries(series(layers, format));
    for (let i = 0; i < s.length; i++) {
      for (let j = i + 1; j < s.length; j++) {
        const [a, va] = s[i];
        const [b, vb] = s[j];
        const layersUsed = va.filter((v, k) => !Number.isNaN(v) && !Number.isNaN(vb[k])).length;
        out.push({ format, a, b, rho: spearman(va, vb), layers: layersUsed });
      }
    }
  }
  return out;
}
