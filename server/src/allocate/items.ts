// Turns a problem into knapsack "items": groups merged into super-layers, options outside a layer's
// bit range dropped, and every option's size converted to integer cost units (exactly when possible).
import type { AllocProblem, Binding, Discretization } from './types';

/** One multiple-choice class: a layer, or a group of layers that share one option id. */
export interface Item {
  name: string;
  /** Indices into problem.layers. */
  layers: number[];
  ids: string[];
  /** optionIndex[o][m]: index of option ids[o] in the options of the item's m-th layer. */
  optionIndex: number[][];
  /** Integer cost units per option (Σ params · bits over the item's layers, in units). */
  cost: number[];
  /** Σ error over the item's layers. */
  err: number[];
}

export interface Prepared {
  problem: AllocProblem;
  items: Item[];
  totalParams: number;
  disc: Discretization;
  /** Σ of each item's cheapest allowed cost (units); Infinity when some item has no allowed option. */
  minCost: number;
  /** Reasons some item has no allowed option at all (infeasible for every budget). */
  impossible: Binding[];
  /** Cost units a budget of `avgBits` bits per weight allows. */
  capacity(avgBits: number): number;
}

export interface PrepareOptions {
  /** Force approximate units of this many bits (coarser units shrink the frontier); default: exact if possible. */
  resolutionBits?: number;
}

const MAX_DEN = 1 << 20;

/** p/q with q ≤ maxDen whose double value is exactly x (continued-fraction convergents), else null. */
export function rational(x: number, maxDen = MAX_DEN): [number, number] | null {
  let [h0, h1, k0, k1] = [0, 1, 1, 0];
  let v = x;
  for (let i = 0; i < 64; i++) {
    const a = Math.floor(v);
    const h2 = a * h1 + h0;
    const k2 = a * k1 + k0;
    if (k2 > maxDen || !Number.isSafeInteger(h2)) return null;
    if (h2 / k2 === x) return [h2, k2];
    [h0, h1, k0, k1] = [h1, h2, k1, k2];
    const f = v - a;
    if (f === 0) return null;
    v = 1 / f;
  }
  return null;
}

const gcd = (a: number, b: number): number => {
  while (b) [a, b] = [b, a % b];
  return a;
};

/** Union-find over layer indices so overlapping groups merge transitively. */
function groupRoots(problem: AllocProblem): number[] {
  const parent = problem.layers.map((_, i) => i);
  const find = (i: number): number => {
    let r = i;
    while (parent[r] !== r) r = parent[r];
    while (parent[i] !== r) [i, parent[i]] = [parent[i], r];
    return r;
  };
  const index = new Map(problem.layers.map((l, i) => [l.name, i]));
  for (const g of problem.groups) {
    const idx = g.map((n) => index.get(n)).filter((i): i is number => i !== undefined);
    for (const i of idx.slice(1)) parent[find(i)] = find(idx[0]);
  }
  return problem.layers.map((_, i) => find(i));
}

export function allowed(layer: AllocProblem['layers'][number], bits: number): boolean {
  return (layer.minBits === undefined || bits >= layer.minBits) && (layer.maxBits === undefined || bits <= layer.maxBits);
}

export function prepare(problem: AllocProblem, opts: PrepareOptions = {}): Prepared {
  const { layers } = problem;
  const roots = groupRoots(problem);
  const members = new Map<number, number[]>();
  roots.forEach((r, i) => {
    const m = members.get(r);
    if (m) m.push(i);
    else members.set(r, [i]);
  });
  const impossible: Binding[] = [];
  const raw: { name: string; layers: number[]; ids: string[] }[] = [];
  for (const ls of members.values()) {
    const ids = layers[ls[0]].options
      .map((o) => o.id)
      .filter((id) => ls.every((i) => layers[i].options.some((o) => o.id === id && allowed(layers[i], o.bits))));
    const name = ls.length === 1 ? layers[ls[0]].name : `group(${ls.map((i) => layers[i].name).join(', ')})`;
    if (ids.length === 0) impossible.push(noOptionReason(problem, ls));
    raw.push({ name, layers: ls, ids });
  }
  const optionOf = (li: number, id: string) => layers[li].options.find((o) => o.id === id)!;
  const totalParams = layers.reduce((s, l) => s + l.params, 0);

  // Exact units: every bits value is p/q with small q → unit = 1/lcm(q) bit, then divide by the gcd of all costs.
  let den = 1;
  let exact = opts.resolutionBits === undefined;
  for (const r of raw) {
    for (const id of r.ids) {
      for (const li of r.layers) {
        const pq = exact ? rational(optionOf(li, id).bits) : null;
        if (!pq) exact = false;
        else den = (den / gcd(den, pq[1])) * pq[1];
        if (den > MAX_DEN) exact = false;
      }
    }
  }
  let costs: number[][] = [];
  let unitBits = 1;
  let g = 1;
  if (exact) {
    costs = raw.map((r) => r.ids.map((id) => r.layers.reduce((s, li) => s + layers[li].params * Math.round(optionOf(li, id).bits * den), 0)));
    exact = costs.every((c) => c.every(Number.isSafeInteger)) && Number.isSafeInteger(sumMax(costs));
    if (exact) {
      g = costs.flat().reduce(gcd, 0) || 1;
      costs = costs.map((c) => c.map((v) => v / g));
      unitBits = g / den;
    }
  }
  if (!exact) {
    // Approximate: round every cost UP to whole units so any solution that fits in units fits for real.
    const realMax = raw.reduce((s, r) => s + Math.max(0, ...r.ids.map((id) => realCost(problem, r.layers, id))), 0);
    // Default: ~2^40 units over the whole range (round-off negligible); never so fine that sums leave 2^53.
    unitBits = Math.max(opts.resolutionBits ?? realMax / 2 ** 40, realMax / 2 ** 50, Number.MIN_VALUE);
    costs = raw.map((r) =>
      r.ids.map((id) => {
        const real = realCost(problem, r.layers, id);
        let u = Math.ceil(real / unitBits);
        if (u * unitBits < real) u += 1;
        return u;
      }),
    );
  }
  const items: Item[] = raw.map((r, k) => ({
    ...r,
    optionIndex: r.ids.map((id) => r.layers.map((li) => layers[li].options.findIndex((o) => o.id === id))),
    cost: costs[k],
    err: r.ids.map((id) => r.layers.reduce((s, li) => s + optionOf(li, id).error, 0)),
  }));
  const minCost = items.reduce((s, it) => s + Math.min(...it.cost), 0);
  const budgetRational = exact && Number.isSafeInteger(totalParams);
  return {
    problem,
    items,
    totalParams,
    disc: { exact, unitBits, maxSlackAvgBits: exact ? 0 : (items.length * unitBits) / totalParams },
    minCost,
    impossible,
    capacity(avgBits) {
      // Budget in bits = avgBits · P; in units floor(avgBits · P / unitBits), exact in BigInt when avgBits is p/q.
      const pq = budgetRational ? rational(avgBits) : null;
      if (pq) {
        const capUnits = (BigInt(pq[0]) * BigInt(totalParams) * BigInt(den)) / (BigInt(pq[1]) * BigInt(g));
        return capUnits > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(capUnits);
      }
      return Math.floor((avgBits * totalParams) / unitBits);
    },
  };
}

function sumMax(costs: number[][]): number {
  return costs.reduce((s, c) => s + Math.max(0, ...c), 0);
}

export function realCost(problem: AllocProblem, layerIdx: number[], id: string): number {
  return layerIdx.reduce((s, li) => s + problem.layers[li].params * problem.layers[li].options.find((o) => o.id === id)!.bits, 0);
}

/** Why a group/layer has no allowed option: its own bit range, or members whose ranges do not overlap. */
function noOptionReason(problem: AllocProblem, ls: number[]): Binding {
  const names = ls.map((i) => problem.layers[i].name);
  const empty = ls.find((i) => !problem.layers[i].options.some((o) => allowed(problem.layers[i], o.bits)));
  if (empty !== undefined) {
    const l = problem.layers[empty];
    const constraint = l.minBits !== undefined && l.options.every((o) => o.bits < l.minBits!) ? 'minBits' : 'maxBits';
    return { constraint, layer: l.name, detail: `no option of layer ${l.name} lies within bits [${l.minBits ?? 0}, ${l.maxBits ?? '∞'}]` };
  }
  return { constraint: 'group', group: names, detail: `no option id is allowed for every member of group [${names.join(', ')}]` };
}
