// Ordered rules → one decision per tensor. The first rule whose pattern matches a tensor's name or layer path
// decides it; fields a rule leaves out come from `defaults`; tensors no rule matches take `defaults`. Reports
// what each rule decides, rules that can never apply (dead or fully shadowed), and fused groups whose members
// end up in different formats (deployment kernels quantize q/k/v, gate/up, experts together).
//
// Work per call is the sum of the rules' match counts plus a few typed-array passes over the tensors; matches
// come from the index's cache for patterns seen before, so a keystroke re-matches only the edited rule.
import { compilePattern, isRegexPattern, type CompiledPattern, type TensorIndex } from './match';
import type { Plan, PlanDiagnostic, Range, Ratio, Rule } from './schema';

export interface TensorAssignment {
  /** Format id, or null: keep the original precision (`skip: true`, or no rule and no defaults). */
  readonly format: string | null;
  /** Index (in the `rules` list) of the deciding rule; -1 for defaults. */
  readonly rule: number;
  readonly ratio?: Ratio;
}

export interface RuleReport {
  index: number;
  range: Range;
  matchRange?: Range;
  pattern?: string;
  /** Tensors this rule decides (matched and not taken by an earlier rule), in model order. */
  tensors: string[];
  /** Parameters of those tensors. */
  params: number;
  /** Every tensor the pattern matches, earlier rules' included. */
  matched: number;
  /** The pattern matches no tensor. */
  dead: boolean;
  /** When the rule decides nothing though it matches: the earlier rules (indices) that take its tensors. */
  shadowedBy: number[];
}

export interface Resolution {
  rules: RuleReport[];
  /** Analyzable tensor name → decision (a read-only view over the resolution: nothing is copied per tensor). */
  assignment: ReadonlyMap<string, TensorAssignment>;
  /** Tensors and parameters left to `defaults`. */
  defaults: { tensors: number; params: number };
  /** Tensors that cannot be quantized (non-float storage): never assigned. */
  notAnalyzable: number;
  diagnostics: PlanDiagnostic[];
  /** Per tensor id of the index: position in `plan.rules` of the deciding rule, -1 for defaults. */
  owner: Int32Array;
  /** Decision per slot: slot 0 is defaults, slot k + 1 is `plan.rules[k]` (index with owner[id] + 1). */
  decisions: readonly TensorAssignment[];
}

/**
 * Resolve the rules over the indexed tensors. `patterns[k]` is the compiled pattern of `plan.rules[k]`
 * (undefined: the rule takes part in nothing).
 */
export function resolvePlan(plan: Plan, patterns: readonly (CompiledPattern | undefined)[], index: TensorIndex): Resolution {
  const n = index.tensors.length;
  const rules = plan.rules;
  const owner = new Int32Array(n).fill(-1); // position in plan.rules of the deciding rule
  const reports: RuleReport[] = [];
  const diagnostics: PlanDiagnostic[] = [];
  const label = (k: number) => `rules[${rules[k].index}]${rules[k].match ? ` ("${rules[k].match!.value}")` : ''}`;
  const shadow = new Uint8Array(rules.length);

  rules.forEach((rule, k) => {
    const report: RuleReport = { index: rule.index, range: rule.range, tensors: [], params: 0, matched: 0, dead: false, shadowedBy: [] };
    if (rule.match) {
      report.matchRange = rule.match.range;
      report.pattern = rule.match.value;
    }
    reports.push(report);
    const p = patterns[k];
    if (!p) return;
    const ids = index.matches(p);
    shadow.fill(0);
    for (let j = 0; j < ids.length; j++) {
      const id = ids[j];
      if (owner[id] === -1) {
        owner[id] = k;
        report.tensors.push(index.tensors[id].name);
        report.params += index.params[id];
      } else shadow[owner[id]] = 1;
    }
    report.matched = ids.length;
    if (ids.length === 0) {
      report.dead = true;
      diagnostics.push({ range: rule.match!.range, severity: 'warning', code: 'dead-rule', message: `${label(k)} matches no tensor${deadHint(p, index)}` });
    } else if (report.tensors.length === 0) {
      const by = [...shadow.keys()].filter((s) => shadow[s]);
      report.shadowedBy = by.map((s) => rules[s].index);
      diagnostics.push({
        range: rule.match!.range, severity: 'warning', code: 'shadowed-rule',
        message: `${label(k)} never applies: all ${ids.length} tensors it matches are taken first by ${by.map(label).join(', ')}`,
        related: by.map((s) => ({ range: rules[s].match!.range, message: `${label(s)} takes them first` })),
      });
    }
  });

  // One shared decision object per rule; slot 0 is defaults, slot k + 1 is plan.rules[k].
  const def = plan.defaults?.value;
  const decide = (rule: Rule | undefined): TensorAssignment => {
    const format = rule?.skip?.value ? null : (rule?.format?.value ?? def?.format?.value ?? null);
    const ratio = rule?.ratio?.value ?? def?.ratio?.value;
    return Object.freeze(ratio !== undefined && format !== null ? { format, rule: rule?.index ?? -1, ratio } : { format, rule: rule?.index ?? -1 });
  };
  const decisions = [decide(undefined), ...rules.map(decide)];

  const defaults = { tensors: 0, params: 0 };
  for (let id = 0; id < n; id++) {
    if (owner[id] === -1) {
      defaults.tensors++;
      defaults.params += index.params[id];
    }
  }
  diagnostics.push(...splitGroups(plan, index, owner, decisions, label));
  return { rules: reports, assignment: new Assignment(index, owner, decisions), defaults, notAnalyzable: index.notAnalyzable, diagnostics, owner, decisions };
}

/** name → decision, computed on lookup from the owner array. */
class Assignment implements ReadonlyMap<string, TensorAssignment> {
  constructor(
    private readonly index: TensorIndex,
    private readonly owner: Int32Array,
    private readonly decisions: readonly TensorAssignment[],
  ) {}

  get size(): number {
    return this.owner.length;
  }

  get(name: string): TensorAssignment | undefined {
    const id = this.index.idOf(name);
    return id === undefined ? undefined : this.decisions[this.owner[id] + 1];
  }

  has(name: string): boolean {
    return this.index.idOf(name) !== undefined;
  }

  *entries(): MapIterator<[string, TensorAssignment]> {
    for (let id = 0; id < this.owner.length; id++) yield [this.index.tensors[id].name, this.decisions[this.owner[id] + 1]];
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<TensorAssignment> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[string, TensorAssignment]> {
    return this.entries();
  }

  forEach(fn: (value: TensorAssignment, key: string, map: ReadonlyMap<string, TensorAssignment>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

/** Why a dead glob may be dead: a variant that crosses dots (or matches inside names) would match. */
function deadHint(p: CompiledPattern, index: TensorIndex): string {
  if (p.kind !== 'glob') return '';
  const crossing = p.text.replace(/(?<![*\\])\*(?!\*)/g, '**');
  for (const [variant, why] of [
    [crossing, '`*` stops at dots'],
    [`**${crossing}**`, 'a glob must match a whole tensor name or layer path'],
  ] as const) {
    if (variant === p.text || isRegexPattern(variant)) continue;
    const v = compilePattern(variant);
    if ('error' in v) continue;
    const hits = index.matches(v).length;
    if (hits > 0) return ` (${why}: '${variant}' would match ${hits})`;
  }
  return '';
}

const describeFormat = (f: string | null) => f ?? 'original precision';

/** One warning per rule (or defaults) that decides members of a fused group split across formats. */
function splitGroups(
  plan: Plan,
  index: TensorIndex,
  owner: Int32Array,
  decisions: readonly TensorAssignment[],
  label: (k: number) => string,
): PlanDiagnostic[] {
  if (index.groups.length === 0) return [];
  // Formats as small integers, so the pass over every tensor touches typed arrays only.
  const formatIds = new Map<string | null, number>();
  const fmt = Int32Array.from(decisions, (d) => {
    let f = formatIds.get(d.format);
    if (f === undefined) formatIds.set(d.format, (f = formatIds.size));
    return f;
  });
  const first = new Int32Array(index.groups.length).fill(-1);
  const split = new Uint8Array(index.groups.length);
  let any = false;
  for (let id = 0; id < owner.length; id++) {
    const g = index.group[id];
    if (g < 0) continue;
    const f = fmt[owner[id] + 1];
    if (first[g] === -1) first[g] = f;
    else if (first[g] !== f) {
      split[g] = 1;
      any = true;
    }
  }
  if (!any) return [];

  // Which split groups each rule slot decides members of (a bitmap: slots × groups).
  const G = index.groups.length;
  const touches = new Uint8Array(decisions.length * G);
  for (let id = 0; id < owner.length; id++) {
    const g = index.group[id];
    if (g >= 0 && split[g]) touches[(owner[id] + 1) * G + g] = 1;
  }
  const groupsBySlot = new Map<number, number[]>();
  for (let slot = 0; slot < decisions.length; slot++) {
    const gs: number[] = [];
    for (let g = 0; g < G; g++) if (touches[slot * G + g]) gs.push(g);
    if (gs.length) groupsBySlot.set(slot, gs);
  }
  // Details (format → layers, slots) only for the groups the messages name: each slot's first.
  const named = new Set([...groupsBySlot.values()].map((gs) => gs[0]));
  const detail = new Map<number, Map<string | null, { layers: Set<string>; slots: Set<number> }>>();
  for (let id = 0; id < owner.length; id++) {
    const g = index.group[id];
    if (g < 0 || !named.has(g)) continue;
    let byFormat = detail.get(g);
    if (!byFormat) detail.set(g, (byFormat = new Map()));
    const slot = owner[id] + 1;
    let d = byFormat.get(decisions[slot].format);
    if (!d) byFormat.set(decisions[slot].format, (d = { layers: new Set(), slots: new Set() }));
    d.layers.add(index.tensors[id].layer.layer);
    d.slots.add(slot);
  }
  const name = (slot: number) => (slot === 0 ? 'defaults' : label(slot - 1));
  const where = (slot: number): Range | undefined => (slot === 0 ? plan.defaults?.value.format?.range : plan.rules[slot - 1].match?.range);
  const out: PlanDiagnostic[] = [];
  for (const [slot, groups] of groupsBySlot) {
    const range = where(slot);
    if (!range) continue; // tensors left unquantized for want of defaults: nowhere to report
    const byFormat = detail.get(groups[0])!;
    const parts = [...byFormat].map(([f, d]) => `${describeFormat(f)} (${[...d.layers].join(', ')})`);
    const others = [...new Set([...byFormat.values()].flatMap((d) => [...d.slots]))].filter((o) => o !== slot);
    const more = groups.length - 1;
    out.push({
      range, severity: 'warning', code: 'split-fused-group',
      message:
        `${name(slot)} splits fused group '${index.groups[groups[0]]}' across formats: ${parts.join(' vs ')}` +
        `${more > 0 ? ` (and ${more} more group${more > 1 ? 's' : ''})` : ''}; kernels that fuse these layers need one format`,
      related: others.flatMap((o) => {
        const r = where(o);
        return r ? [{ range: r, message: `${name(o)} decides other members` }] : [];
      }),
    });
  }
  return out;
}
