// What every exporter starts from: the plan resolved against its model, cut into "units" — one per rule that
// decides tensors, then defaults — each with its tensors and its (base) format. Plan features no dialect can
// express (high-impact ratios, format modifiers) are warned about here, once, at their source range.
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import type { Consumer, DType, LayerRef, TensorInfo, WeightLayout } from '../formats/types';
import { analyzePlan, parsePlan, type Plan, type PlanAnalysis, type Range } from '../plan/index';
import { FORMAT_CATALOG } from '../quant/registry';

export interface ExportWarning {
  message: string;
  /** Source range in the plan (0-based, LSP style), when the warning concerns one place. */
  range?: Range;
}

export interface ExportTensor {
  name: string;
  dtype: DType;
  shape: number[];
  layout: WeightLayout;
  layer: LayerRef;
  consumers?: Consumer[];
}

export interface Unit {
  /** Index of the deciding rule in the plan's `rules` list, or -1 for defaults. */
  rule: number;
  /** Where warnings about this unit point: the rule's format (else its match), or defaults.format. */
  range?: Range;
  /** Base format id (modifiers stripped), or null: keep the original precision. */
  format: string | null;
  tensors: ExportTensor[];
}

export interface ExportContext {
  planPath: string;
  plan: Plan;
  analysis: PlanAnalysis;
  modelPath: string;
  modelFormat: string;
  /** The plan and every file of the model: outputs must never replace them. */
  inputs: string[];
  /** Every analyzable tensor of the model, in model order. */
  tensors: ExportTensor[];
  /** Rules in plan order (only those deciding tensors), defaults last. */
  units: Unit[];
  warnings: ExportWarning[];
  warn(range: Range | undefined, message: string): void;
}

/** Parse the plan, open its model (header only) and resolve the rules; plan errors are located QuantLensErrors. */
export async function loadContext(planText: string, planPath: string): Promise<ExportContext> {
  const model = parsePlan(planText, planPath).plan.model;
  if (!model) throw new QuantLensError('plan-error', 'the plan has no `model:` to export against', { file: planPath, line: 1, column: 1 });
  const ck = await openCheckpoint(model.value.path);
  await ck.close();
  const ctx = contextFor(planText, planPath, ck.format, ck.path, ck.tensors);
  ctx.inputs.push(ck.path, ...ck.files);
  return ctx;
}

/** The same from an already listed model (tests, the language server's cached header). */
export function contextFor(planText: string, planPath: string, modelFormat: string, modelPath: string, all: readonly TensorInfo[]): ExportContext {
  const infos = all.filter((t) => t.analyzable);
  const analysis = analyzePlan(planText, planPath, {
    ...FORMAT_CATALOG,
    checkPath: false,
    tensors: infos.map((t) => ({ name: t.name, layer: t.layer, params: t.params, analyzable: true })),
  });
  const error = analysis.diagnostics.find((d) => d.severity === 'error');
  if (error) {
    throw new QuantLensError('plan-error', `${error.message} (fix the plan before exporting)`, {
      file: planPath, line: error.range.start.line + 1, column: error.range.start.character + 1,
    });
  }
  const warnings: ExportWarning[] = [];
  const seen = new Set<string>();
  const warn = (range: Range | undefined, message: string) => {
    const key = `${JSON.stringify(range)}|${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    warnings.push(range ? { message, range } : { message });
  };
  const { plan } = analysis;
  const tensors: ExportTensor[] = infos.map((t) => ({
    name: t.name, dtype: t.dtype, shape: t.shape, layout: t.layout, layer: t.layer, ...(t.consumers ? { consumers: t.consumers } : {}),
  }));

  const byRule = new Map<number, Unit>();
  const rules = new Map(plan.rules.map((r) => [r.index, r]));
  for (const t of tensors) {
    const a = analysis.assignment.get(t.name);
    if (!a) continue;
    let unit = byRule.get(a.rule);
    if (!unit) {
      const r = rules.get(a.rule);
      const range = a.rule < 0 ? plan.defaults?.value.format?.range : (r?.format?.range ?? r?.match?.range);
      unit = { rule: a.rule, format: a.format === null ? null : baseFormat(a.format, range, warn), tensors: [] };
      if (range) unit.range = range;
      byRule.set(a.rule, unit);
    }
    unit.tensors.push(t);
  }
  const units = [...byRule.values()].sort((a, b) => (a.rule < 0 ? 1 : b.rule < 0 ? -1 : a.rule - b.rule));
  return { planPath, plan, analysis, modelPath, modelFormat, inputs: [planPath], tensors, units, warnings, warn };
}

/** Warn (for `dialect`) about the plan's high-impact settings, which no deployment tool's config can express. */
export function warnHighImpact(ctx: ExportContext, dialect: string): void {
  const { plan } = ctx;
  const hi = plan.highImpact;
  const why = `${dialect} cannot keep a share of salient weights at a higher precision`;
  if (hi) ctx.warn(hi.keyRange, `high_impact is not exported: ${why}; each tensor gets its base format only`);
  const d = plan.defaults?.value.ratio;
  if (d) ctx.warn(d.keyRange, `defaults.ratio is not exported: ${why}`);
  for (const r of plan.rules) if (r.ratio) ctx.warn(r.ratio.keyRange, `rules[${r.index}].ratio is not exported: ${why}`);
}

/** `<base>+ol2+had64` → `<base>`, warning that the modifiers are dropped. */
function baseFormat(id: string, range: Range | undefined, warn: ExportContext['warn']): string {
  const plus = id.indexOf('+');
  if (plus < 0) return id;
  warn(range, `format modifiers '${id.slice(plus)}' (outliers / reordering / rotation) are not exported: deployment configs take the base format ${id.slice(0, plus)}`);
  return id.slice(0, plus);
}

/** A format id read into its parameters (the dialect mappers' input). */
export type FormatSpec =
  | { kind: 'int'; bits: number; group: number | 'ch'; sym: boolean }
  | { kind: 'nf'; bits: number; group: number }
  | { kind: 'fp'; element: string; bits: number; scaling: number | 'ch' | 'tensor' }
  | { kind: 'mx'; id: string }
  | { kind: 'nvfp4' }
  | { kind: 'bfp'; bits: number; block: number };

export function formatSpec(id: string): FormatSpec | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^int(\d+)_(?:ch|g(\d+))_(sym|asym)$/.exec(id))) return { kind: 'int', bits: +m[1], group: m[2] ? +m[2] : 'ch', sym: m[3] === 'sym' };
  if ((m = /^nf(\d)_g(\d+)$/.exec(id))) return { kind: 'nf', bits: +m[1], group: +m[2] };
  if ((m = /^fp(\d)_(e\dm\d)(?:_(ch|g\d+))?$/.exec(id))) {
    return { kind: 'fp', bits: +m[1], element: m[2], scaling: m[3] === undefined ? 'tensor' : m[3] === 'ch' ? 'ch' : +m[3].slice(1) };
  }
  if (/^mx/.test(id)) return { kind: 'mx', id };
  if (id === 'nvfp4') return { kind: 'nvfp4' };
  if ((m = /^bfp(\d+)_b(\d+)$/.exec(id))) return { kind: 'bfp', bits: +m[1], block: +m[2] };
  return undefined;
}

/** Linear-layer weights: what every weight-only quantizer targets (2-D, not an embedding table). */
export const isLinearWeight = (t: ExportTensor): boolean =>
  t.shape.length === 2 && (t.layout === 'out_in' || t.layout === 'in_out') && /(^|\.)weight$/.test(t.name);

/** `model.layers.3.mlp.down_proj.weight` → `model.layers.3.mlp.down_proj` (the module a quantizer config names). */
export const moduleOf = (name: string): string => name.replace(/\.weight$/, '');

/** The plan's file name, for the header comment of an exported file. */
export const planName = (ctx: ExportContext): string => ctx.planPath.split(/[\\/]/).pop()!;

/** A list of names, shortened for a message. */
export function listNames(names: readonly string[], max = 3): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
