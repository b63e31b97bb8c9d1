// Results in the problem's own terms (layer names, option ids, real bits), and the explanation of an
// infeasible budget: the minimum achievable average bits and the constraints that push it up.
import { allowed, realCost, type Prepared } from './items';
import type { AllocProblem, AllocResult, Binding } from './types';

/**
 * Sizes and errors recomputed from the problem itself (not from the solver's cost units).
 * `pick[l]` is the index of layer l's chosen option.
 */
export function resultFromChoice(problem: AllocProblem, pick: ArrayLike<number>, minAvgBits: number | null, extra: Partial<AllocResult>): AllocResult {
  let bits = 0;
  let error = 0;
  let params = 0;
  const choice: Record<string, string> = {};
  for (let i = 0; i < problem.layers.length; i++) {
    const l = problem.layers[i];
    const o = l.options[pick[i]];
    bits += l.params * o.bits;
    error += o.error;
    params += l.params;
    choice[l.name] = o.id;
  }
  return { feasible: true, minAvgBits, avgBits: bits / params, totalError: error, choice, ...extra };
}

/** Per-layer option indices from a per-item choice. */
export function layerPicks(prep: Prepared, perItem: ArrayLike<number>): Int32Array {
  const pick = new Int32Array(prep.problem.layers.length);
  prep.items.forEach((it, k) => it.layers.forEach((li, m) => (pick[li] = it.optionIndex[perItem[k]][m])));
  return pick;
}

/** Per item, the option with the smallest real size (ties: least error). */
export function cheapestChoice(prep: Prepared): number[] {
  return prep.items.map((it) => {
    let best = 0;
    const real = it.ids.map((id) => realCost(prep.problem, it.layers, id));
    real.forEach((c, o) => {
      if (c < real[best] || (c === real[best] && it.err[o] < it.err[best])) best = o;
    });
    return best;
  });
}

/** Smallest achievable average bits (groups and bit ranges respected; no extra resources); null if none. */
export function minAvgBits(prep: Prepared): number | null {
  if (prep.impossible.length) return null;
  const ch = cheapestChoice(prep);
  return prep.items.reduce((s, it, k) => s + realCost(prep.problem, it.layers, it.ids[ch[k]]), 0) / prep.totalParams;
}

/** Why the budget is below the minimum: the budget itself, plus every bit range or group that raises the minimum. */
export function budgetBindings(prep: Prepared, budget: number, min: number): Binding[] {
  const { problem } = prep;
  const out: Binding[] = [{ constraint: 'budget', detail: `budget ${budget} bits/weight is below the minimum achievable ${fmt(min)} bits/weight` }];
  const cheapest = (li: number, filter: boolean) => {
    const l = problem.layers[li];
    return Math.min(...l.options.filter((o) => !filter || allowed(l, o.bits)).map((o) => o.bits));
  };
  problem.layers.forEach((l, li) => {
    if (l.minBits !== undefined && cheapest(li, true) > cheapest(li, false)) {
      out.push({ constraint: 'minBits', layer: l.name, detail: `minBits ${l.minBits} of layer ${l.name} excludes its cheaper options (down to ${cheapest(li, false)} bits)` });
    }
  });
  const ch = cheapestChoice(prep);
  prep.items.forEach((it, k) => {
    if (it.layers.length < 2) return;
    const together = realCost(problem, it.layers, it.ids[ch[k]]);
    const apart = it.layers.reduce((s, li) => s + problem.layers[li].params * cheapest(li, true), 0);
    if (together > apart * (1 + 1e-12)) {
      const names = it.layers.map((li) => problem.layers[li].name);
      out.push({ constraint: 'group', group: names, detail: `group [${names.join(', ')}] must share one option, costing ${fmt((together - apart) / prep.totalParams)} more bits/weight than each member's cheapest` });
    }
  });
  return out;
}

export const fmt = (x: number): string => String(Number(x.toPrecision(10)));
