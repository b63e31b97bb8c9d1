// What the lenses of deployment configs (llama.cpp tensor types, GPTQModel dynamic keys, llm-compressor groups)
// say about the tensors one entry decides: parameters, exact bits in its format, and the predicted error from the
// cached data-free analysis.
import type { AnalysisReport } from '../analysis/types';
import { bitsOf, squaredErrors, sumSquares } from '../plan/cost';
import type { TensorIndex } from '../plan/match';
import { fmtBits, fmtBytes, fmtError, fmtParams } from '../plan/text';

/** "params · bits/weight · size · error" for the tensors `ids` in `format` (null: kept as stored). */
export function entrySummary(index: TensorIndex, report: AnalysisReport | undefined, ids: readonly number[], format: string | null): string {
  const err = report && format !== null ? squaredErrors(index, report, format) : undefined;
  const sumSq = err ? sumSquares(index, report!) : undefined;
  let params = 0;
  let bits = 0;
  let sq = 0;
  let ss = 0;
  let analyzed = 0;
  for (const id of ids) {
    params += index.params[id];
    bits += bitsOf(index, id, format);
    if (err && err[id] === err[id]) {
      sq += err[id];
      ss += sumSq![id];
      analyzed++;
    }
  }
  const error = format === null ? '' : analyzed > 0 ? ` · ${fmtError(ss > 0 ? sq / ss : 0)}` : report ? ' · no analysis for this format' : ' · not analyzed';
  return `${fmtParams(params)} params · ${fmtBits(bits / params)} bits/weight · ${fmtBytes(bits / 8)}${error}`;
}
