// The plan engine's entry point for the language server and the CLI: text in, plain data out.
import { indexFor, TensorIndex, type PlanTensor } from './match';
import { parsePlan } from './parse';
import { resolvePlan, type RuleReport, type TensorAssignment } from './resolve';
import type { Plan, PlanDiagnostic } from './schema';
import { validatePlan, type ValidateOptions } from './validate';

export interface AnalyzeOptions extends ValidateOptions {
  /**
   * The model's tensors (pass the same array on every call: its index is cached with it), or a prebuilt
   * TensorIndex. Without it, rules are checked but not resolved.
   */
  tensors?: readonly PlanTensor[] | TensorIndex;
}

export interface PlanAnalysis {
  plan: Plan;
  /** Sorted by position. */
  diagnostics: PlanDiagnostic[];
  /** One per parsed rule, in plan order. */
  rules: RuleReport[];
  /** Analyzable tensor name → decision; empty without tensors. */
  assignment: ReadonlyMap<string, TensorAssignment>;
  /** Whether tensors were given and the rules resolved against them. */
  resolved: boolean;
  defaults: { tensors: number; params: number };
  notAnalyzable: number;
  /** When resolved: the index, the deciding rule per tensor id and the decision per slot (see Resolution). */
  resolution?: { index: TensorIndex; owner: Int32Array; decisions: readonly TensorAssignment[] };
}

/** Parse, validate and (given tensors) resolve a plan. Never throws on any input text. */
export function analyzePlan(text: string, planPath: string, opts: AnalyzeOptions): PlanAnalysis {
  const parsed = parsePlan(text, planPath);
  const { plan } = parsed;
  const v = validatePlan(plan, opts);
  const diagnostics = [...parsed.diagnostics, ...v.diagnostics];
  const out: PlanAnalysis = {
    plan, diagnostics, resolved: false, assignment: new Map(), defaults: { tensors: 0, params: 0 }, notAnalyzable: 0,
    rules: plan.rules.map((r) => ({
      index: r.index, range: r.range, matchRange: r.match?.range, pattern: r.match?.value,
      tensors: [], params: 0, matched: 0, dead: false, shadowedBy: [],
    })),
  };
  if (opts.tensors) {
    const index = opts.tensors instanceof TensorIndex ? opts.tensors : indexFor(opts.tensors);
    const r = resolvePlan(plan, v.patterns, index);
    Object.assign(out, { rules: r.rules, assignment: r.assignment, defaults: r.defaults, notAnalyzable: r.notAnalyzable, resolved: true });
    out.resolution = { index, owner: r.owner, decisions: r.decisions };
    diagnostics.push(...r.diagnostics);
  }
  diagnostics.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  return out;
}

export { parsePlan, type ParsedPlan } from './parse';
export { validatePlan, pathExists, type FormatCatalog, type PathCheck, type ValidateOptions } from './validate';
export { resolvePlan, type Resolution, type RuleReport, type TensorAssignment } from './resolve';
export { compilePattern, indexFor, layerPath, TensorIndex, type CompiledPattern, type PlanTensor } from './match';
export { parseSize } from './size';
export * from './schema';
