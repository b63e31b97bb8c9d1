// Checks that need more than the YAML itself: format ids (through the caller's number-format catalogue), rule
// patterns, paths on disk, and how the sections fit together.
import { existsSync } from 'node:fs';
import { compilePattern, type CompiledPattern } from './match';
import type { Field, Plan, PlanDiagnostic, Ratio } from './schema';
import { didYouMean } from './suggest';

/** The number-format registry, as the plan engine sees it (server/src/quant provides one). */
export interface FormatCatalog {
  isFormat(id: string): boolean;
  /** Listed ids, used for did-you-mean suggestions only. */
  formatIds(): readonly string[];
}

/**
 * Checks a resolved `model` / `calibration` path; returns a problem to report at the value, or undefined when
 * the path is usable. The language server passes one that opens the checkpoint and returns the reader's
 * located error message.
 */
export type PathCheck = (absPath: string, key: 'model' | 'calibration') => string | undefined;

export const pathExists: PathCheck = (p, key) => (existsSync(p) ? undefined : `${key} not found: ${p}`);

export interface ValidateOptions extends FormatCatalog {
  /** Default `pathExists`; `false` skips path checks (e.g. for an unsaved plan). */
  checkPath?: PathCheck | false;
}

/** Methods whose scores come from running the model on data. */
const NEEDS_DATA = new Set(['hessian', 'fisher', 'gwq', 'empirical']);

export interface Validation {
  diagnostics: PlanDiagnostic[];
  /** Per `plan.rules` entry: its compiled pattern, or undefined when it has none or it does not compile. */
  patterns: (CompiledPattern | undefined)[];
}

export function validatePlan(plan: Plan, opts: ValidateOptions): Validation {
  const diagnostics: PlanDiagnostic[] = [];
  let ids: readonly string[] | undefined;
  const format = (f: Field<string> | undefined, where: string) => {
    if (!f || opts.isFormat(f.value)) return;
    const s = didYouMean(f.value, (ids ??= opts.formatIds()));
    diagnostics.push({
      range: f.range, severity: 'error', code: 'unknown-format',
      message: `${where}: unknown number format '${f.value.length > 40 ? `${f.value.slice(0, 40)}…` : f.value}'${s ? ` — did you mean '${s}'?` : ''}`,
      ...(s ? { suggestion: s } : {}),
    });
  };
  const ratio = (r: Field<Ratio> | undefined, where: string) => {
    if (!r) return;
    if (!plan.highImpact) {
      diagnostics.push({
        range: r.keyRange, severity: 'warning', code: 'ratio-without-high-impact',
        message: `${where}: ratio has no effect without a high_impact section (it sets the share of weights kept at high_impact.hi)`,
      });
    }
    const rMax = plan.highImpact?.value.rMax;
    if (rMax && typeof r.value === 'number' && r.value > rMax.value) {
      diagnostics.push({
        range: r.range, severity: 'warning', code: 'ratio-above-r-max',
        message: `${where}: ratio ${r.value} is above high_impact.r_max ${rMax.value}`,
        related: [{ range: rMax.range, message: 'r_max is set here' }],
      });
    }
  };

  format(plan.defaults?.value.format, 'defaults.format');
  ratio(plan.defaults?.value.ratio, 'defaults');
  format(plan.highImpact?.value.hi, 'high_impact.hi');
  format(plan.highImpact?.value.lo, 'high_impact.lo');
  ratio(plan.highImpact?.value.ratio, 'high_impact');

  const patterns = plan.rules.map((r) => {
    const where = `rules[${r.index}]`;
    format(r.format, where);
    ratio(r.ratio, where);
    if (r.skip?.value && r.format) {
      diagnostics.push({ range: r.format.keyRange, severity: 'warning', code: 'skip-with-format', message: `${where}: skip: true keeps the original precision, so format is ignored` });
    }
    if (r.match && !r.format && !r.ratio && !r.skip?.value) {
      diagnostics.push({ range: r.match.range, severity: 'warning', code: 'empty-rule', message: `${where} sets nothing: add format, ratio or skip: true` });
    }
    if (!r.match) return undefined;
    const p = compilePattern(r.match.value);
    if ('error' in p) {
      diagnostics.push({ range: r.match.range, severity: 'error', code: 'bad-pattern', message: `${where}: ${p.error}` });
      return undefined;
    }
    return p;
  });

  const seen = new Set<string>();
  for (const t of plan.targets?.value ?? []) {
    if (seen.has(t.value)) diagnostics.push({ range: t.range, severity: 'warning', code: 'duplicate-target', message: `target '${t.value}' is listed twice` });
    seen.add(t.value);
  }

  if (plan.method && NEEDS_DATA.has(plan.method.value) && !plan.calibration) {
    diagnostics.push({
      range: plan.method.range, severity: 'warning', code: 'needs-calibration',
      message: `method '${plan.method.value}' runs the model on data: add calibration: <file or folder>, or use method: datafree`,
    });
  }

  const check = opts.checkPath === undefined ? pathExists : opts.checkPath;
  if (check) {
    for (const key of ['model', 'calibration'] as const) {
      const f = plan[key];
      const problem = f && check(f.value.path, key);
      if (f && problem) diagnostics.push({ range: f.range, severity: 'error', code: `${key}-path`, message: problem });
    }
  }
  return { diagnostics, patterns };
}
