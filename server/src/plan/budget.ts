// The budget against the resolved plan: over-budget and infeasible-budget diagnostics, and "Fit budget", which
// re-solves the allocation with the exact allocator and rewrites the rules.
//
// Allocation units: one per layer kind (the layer path with its numeric parts as `*`, e.g.
// `model.layers.*.mlp.down_proj`), so the rewritten plan stays a short list of rules. Kinds whose members share
// a fused group (q/k/v, gate/up, the experts of one projection) are tied to one format. Tensors the plan keeps
// in original precision (`skip: true`) stay fixed. The minimum achievable size uses the same units and
// candidate formats, so "infeasible" and "Fit budget" always agree.
import { DEFAULT_FORMATS, type AnalysisReport } from '../analysis/types';
import { solveProblem } from '../allocate/problem';
import type { AllocLayer } from '../allocate/types';
import { bitsOf, classBits, shapeClass, squaredErrors } from './cost';
import type { PlanCost } from './cost';
import { compilePattern, layerPath, type TensorIndex } from './match';
import type { TensorAssignment } from './resolve';
import type { Plan, PlanDiagnostic } from './schema';
import { fmtBits, fmtBytes } from './text';

export interface Resolved {
  index: TensorIndex;
  owner: Int32Array;
  decisions: readonly TensorAssignment[];
}

/** Bits the budget allows for the analyzable tensors, or undefined without a usable budget. */
export function allowedBits(plan: Plan, cost: PlanCost): number | undefined {
  const b = plan.budget?.value;
  if (b?.avgBits) return b.avgBits.value * cost.total.params;
  if (b?.size) return (b.size.value - cost.fixedBytes) * 8;
  return undefined;
}

/** Formats Fit budget chooses from: the analysis defaults plus every valid format the plan names. */
export function fitFormats(plan: Plan, isFormat: (id: string) => boolean): string[] {
  const named = [plan.defaults?.value.format, plan.highImpact?.value.hi, plan.highImpact?.value.lo, ...plan.rules.map((r) => r.format)];
  const ids = new Set(DEFAULT_FORMATS);
  for (const f of named) if (f && isFormat(f.value)) ids.add(f.value);
  return [...ids];
}

/** Layer kinds of one index: computed once, shared by every plan over that model. */
interface Kinds {
  /** Kind id per tensor id. */
  kind: Int32Array;
  keys: string[];
  /** Kinds joined by fused groups: a representative kind per kind. */
  tie: Int32Array;
  /** Σ bits of every tensor of a kind, per format. */
  bits: Map<string, Float64Array>;
}

const KINDS = new WeakMap<TensorIndex, Kinds>();

export function kindsOf(index: TensorIndex): Kinds {
  let k = KINDS.get(index);
  if (k) return k;
  const ids = new Map<string, number>();
  const keys: string[] = [];
  const n = index.tensors.length;
  const kind = new Int32Array(n);
  // Tensors of one layer share the kind: only a new layer path is rewritten.
  let lastPath = '';
  let last = -1;
  for (let id = 0; id < n; id++) {
    const path = layerPath(index.tensors[id].layer);
    if (path !== lastPath) {
      const key = kindOf(path);
      last = ids.get(key) ?? -1;
      if (last < 0) ids.set(key, (last = keys.push(key) - 1));
      lastPath = path;
    }
    kind[id] = last;
  }
  // Union-find over kinds joined by a fused group.
  const parent = Int32Array.from(keys, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const firstOfGroup = new Int32Array(index.groups.length).fill(-1);
  for (let id = 0; id < n; id++) {
    const g = index.group[id];
    if (g < 0) continue;
    if (firstOfGroup[g] < 0) firstOfGroup[g] = kind[id];
    else parent[find(kind[id])] = find(firstOfGroup[g]);
  }
  k = { kind, keys, tie: Int32Array.from(keys, (_, i) => find(i)), bits: new Map() };
  KINDS.set(index, k);
  return k;
}

function kindBits(index: TensorIndex, format: string): Float64Array {
  const k = kindsOf(index);
  let b = k.bits.get(format);
  if (b) return b;
  b = new Float64Array(k.keys.length);
  const cb = classBits(index, format);
  const cls = shapeClass(index);
  for (let id = 0; id < cls.length; id++) b[k.kind[id]] += cb[cls[id]];
  k.bits.set(format, b);
  return b;
}

interface Unit {
  kind: number;
  key: string;
  params: number;
}

/** The kinds the fit may change (tensors kept in original precision are fixed), and their ties. */
function unitsOf(r: Resolved): { units: Unit[]; ties: number[][]; fixed: number[] } {
  const { index, owner, decisions } = r;
  const kinds = kindsOf(index);
  const params = new Float64Array(kinds.keys.length);
  const fixed: number[] = [];
  const keep = decisions.map((d) => d.format === null);
  for (let id = 0; id < owner.length; id++) {
    if (keep[owner[id] + 1]) fixed.push(id);
    else params[kinds.kind[id]] += index.params[id];
  }
  const units: Unit[] = [];
  const unitOfKind = new Int32Array(kinds.keys.length).fill(-1);
  kinds.keys.forEach((key, kind) => {
    if (params[kind] > 0) unitOfKind[kind] = units.push({ kind, key, params: params[kind] }) - 1;
  });
  const byRoot = new Map<number, number[]>();
  for (const [u, unit] of units.entries()) {
    const root = kinds.tie[unit.kind];
    const l = byRoot.get(root);
    if (l) l.push(u);
    else byRoot.set(root, [u]);
  }
  return { units, ties: [...byRoot.values()], fixed };
}

/** `model.layers.12.mlp.experts.3.up_proj` → `model.layers.*.mlp.experts.*.up_proj`. */
export function kindOf(path: string): string {
  return path.replace(/(^|\.)\d+(?=\.|$)/g, '$1*');
}

/** Bits of each unit in each format (NaN where a format cannot store a member): kind totals minus fixed tensors. */
function unitBits(r: Resolved, units: Unit[], fixed: number[], formats: string[]): number[][] {
  const { kind } = kindsOf(r.index);
  const byFormat = formats.map((f) => {
    const b = Float64Array.from(kindBits(r.index, f));
    for (const id of fixed) b[kind[id]] -= bitsOf(r.index, id, f);
    return b;
  });
  return units.map((u) => byFormat.map((b) => b[u.kind]));
}

export interface MinSize {
  bits: number;
  bytes: number;
  avgBits: number;
}

/** The smallest plan the candidate formats allow (fixed tensors and non-analyzable bytes included). */
export function minimumSize(r: Resolved, cost: PlanCost, formats: string[]): MinSize {
  const { units, ties, fixed } = unitsOf(r);
  const ub = unitBits(r, units, fixed, formats);
  let bits = fixed.reduce((s, id) => s + bitsOf(r.index, id, null), 0);
  for (const tie of ties) {
    let best = Infinity;
    for (let f = 0; f < formats.length; f++) {
      const b = tie.reduce((s, u) => s + ub[u][f], 0);
      if (b < best) best = b; // NaN never compares smaller
    }
    bits += best;
  }
  return { bits, bytes: Math.ceil(bits / 8) + cost.fixedBytes, avgBits: cost.total.params > 0 ? bits / cost.total.params : 0 };
}

export function budgetDiagnostics(plan: Plan, r: Resolved, cost: PlanCost, formats: string[]): PlanDiagnostic[] {
  const budget = plan.budget;
  const allowed = allowedBits(plan, cost);
  if (!budget || allowed === undefined || !Number.isFinite(cost.total.bits) || cost.total.params === 0) return [];
  if (cost.total.bits <= allowed) return [];
  const b = budget.value;
  const field = (b.avgBits ?? b.size)!;
  const want = b.avgBits ? `${fmtBits(b.avgBits.value)} bits/weight` : fmtBytes(b.size!.value);
  const min = minimumSize(r, cost, formats);
  if (min.bits > allowed) {
    return [{
      range: field.range, severity: 'error', code: 'infeasible-budget',
      message:
        `budget ${want} cannot be met: the smallest achievable is ${fmtBytes(min.bytes)} (${fmtBits(min.avgBits)} bits/weight) ` +
        `with the formats ${formats.join(', ')}, one per layer kind`,
    }];
  }
  const have = b.avgBits ? `${fmtBits(cost.avgBits)} bits/weight` : fmtBytes(cost.bytes);
  return [{
    range: field.range, severity: 'warning', code: 'over-budget',
    message: `the plan needs ${have} (${fmtBytes(cost.bytes)}), over the budget of ${want}; Fit budget re-solves the rules (smallest achievable: ${fmtBytes(min.bytes)})`,
  }];
}

export interface FitResult {
  feasible: boolean;
  /** New rules (YAML list items, two-space indented), in model order; empty when defaults cover everything. */
  rules: { pattern: string; format: string }[];
  avgBits?: number;
  /** Whether errors came from the analysis (else the 4^-bits noise proxy). */
  analyzed: boolean;
  minAvgBits: number | null;
}

/**
 * Re-solve: one format per layer kind minimizing predicted error (Σ‖ΔW‖² from the report, else the uniform
 * quantization-noise proxy params·4^−bits) under the budget. Rules equal to `defaults.format` are left out.
 */
export async function fitBudget(plan: Plan, r: Resolved, cost: PlanCost, formats: string[], report?: AnalysisReport): Promise<FitResult | undefined> {
  const allowed = allowedBits(plan, cost);
  if (allowed === undefined) return undefined;
  const { units, ties, fixed } = unitsOf(r);
  if (units.length === 0) return undefined;
  const usable = report ? formats.filter((f) => report.formats.some((x) => x.id === f)) : formats;
  const candidates = usable.length > 0 ? usable : formats;
  const analyzed = usable.length > 0 && report !== undefined;
  const ub = unitBits(r, units, fixed, candidates);
  const kinds = kindsOf(r.index);
  const members = units.map((): number[] => []);
  const unitOfKind = new Map(units.map((u, i) => [u.kind, i]));
  for (let id = 0; id < r.owner.length; id++) {
    const u = unitOfKind.get(kinds.kind[id]);
    if (u !== undefined && r.decisions[r.owner[id] + 1].format !== null) members[u].push(id);
  }
  const fixedBits = fixed.reduce((s, id) => s + bitsOf(r.index, id, null), 0);
  const layers: AllocLayer[] = units.map((u, i) => ({
    name: u.key,
    params: u.params,
    options: candidates.flatMap((f, k) => {
      const bits = ub[i][k];
      if (!Number.isFinite(bits)) return [];
      let error = u.params * 4 ** -(bits / u.params);
      if (analyzed) {
        const sq = squaredErrors(r.index, report!, f);
        error = members[i].reduce((s, id) => s + (sq[id] === sq[id] ? sq[id] : 0), 0);
      }
      return [{ id: f, bits: bits / u.params, error }];
    }),
  }));
  // Members of a tie must offer the same options: keep the formats every member can take.
  for (const tie of ties) {
    const common = candidates.filter((f) => tie.every((u) => layers[u].options.some((o) => o.id === f)));
    for (const u of tie) layers[u].options = layers[u].options.filter((o) => common.includes(o.id));
  }
  if (layers.some((l) => l.options.length === 0)) return { feasible: false, rules: [], analyzed, minAvgBits: null };
  const unitParams = units.reduce((s, u) => s + u.params, 0);
  const budgetAvg = (allowed - fixedBits) / unitParams;
  if (!(budgetAvg > 0)) return { feasible: false, rules: [], analyzed, minAvgBits: null };
  const res = await solveProblem({ layers, groups: ties.filter((t) => t.length > 1).map((t) => t.map((u) => units[u].key)) }, budgetAvg);
  if (!res.feasible || !res.choice) return { feasible: false, rules: [], analyzed, minAvgBits: res.minAvgBits };
  const def = plan.defaults?.value.format?.value;
  const rules = units.filter((u) => res.choice![u.key] !== def).map((u) => ({ pattern: u.key, format: res.choice![u.key] }));
  return {
    feasible: true,
    rules: exactRules(r, units, rules),
    avgBits: (fixedBits + units.reduce((s, u, i) => s + ub[i][candidates.indexOf(res.choice![u.key])], 0)) / cost.total.params,
    analyzed,
    minAvgBits: res.minAvgBits,
  };
}

/**
 * A kind pattern must take exactly its own tensors (a `*` could also match a non-numeric part of another
 * layer): kinds whose pattern reaches further are spelled out as one literal rule per layer path.
 */
function exactRules(r: Resolved, units: Unit[], rules: { pattern: string; format: string }[]): { pattern: string; format: string }[] {
  const { index, owner, decisions } = r;
  const byKey = new Map(units.map((u) => [u.key, u]));
  const { kind } = kindsOf(index);
  // Tensors kept by skip rules do not count: those rules stay first.
  const own = (id: number, k: number) => decisions[owner[id] + 1].format === null || kind[id] === k;
  return rules.flatMap((rule) => {
    const u = byKey.get(rule.pattern)!;
    const p = compilePattern(globEscape(u.key).replace(/(^|\.)\\\*(?=\.|$)/g, '$1*'));
    if (!('error' in p) && index.matches(p).every((id) => own(id, u.kind))) return [{ ...rule, pattern: p.text }];
    const paths = new Set<string>();
    for (let id = 0; id < kind.length; id++) {
      if (kind[id] === u.kind && decisions[owner[id] + 1].format !== null) paths.add(layerPath(index.tensors[id].layer));
    }
    return [...paths].map((path) => ({ pattern: globEscape(path), format: rule.format }));
  });
}

/** A name as a glob that matches only itself. */
export function globEscape(name: string): string {
  return name.replace(/[*?[\]\\]/g, '\\$&');
}
