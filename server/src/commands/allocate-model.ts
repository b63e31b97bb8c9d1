// `quantlens allocate <model> --budget <avg bits | size>`: one format per layer from the data-free analysis.
// Each layer × format costs its exact bits per weight and predicts the error ‖ΔW‖² = relMse·‖W‖² (the relative
// error weighted by the layer's energy, so the objective is the model's total squared weight error); members of a
// fused group (q/k/v, gate/up, experts) share one format. The exact knapsack (allocate/problem.ts) picks the formats.
// A size budget counts the whole checkpoint: tensors that are not analyzed (norms, biases, integer buffers) stay
// in their stored precision and their bytes come off the budget first.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { analyzeCheckpoint, DEFAULT_FORMATS, OptionError, resolveOptions, type AnalysisReport } from '../analysis';
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import { parseSize } from '../plan/size';
import { solveProblem } from '../allocate/problem';
import type { AllocProblem, AllocResult } from '../allocate/types';
import { formatTable, humanBytes, humanCount } from '../report/table';

export interface AllocateModelFlags {
  budget?: string;
  budgetBits?: string;
  method?: string;
  formats?: string;
  plan?: string;
  force?: boolean;
  groups?: boolean;
  json?: boolean;
  solver?: 'auto' | 'dp' | 'lagrange' | 'mip';
  cache?: boolean;
}

export const METHODS = ['datafree', 'hessian', 'fisher', 'gwq', 'empirical'] as const;

/** A budget: a bare number is average bits per weight, a number with a unit (3.9GB, 512MiB, 1200000B) a size. */
export type Budget = { avgBits: number } | { bytes: number; text: string };

export function parseBudget(text: string): Budget {
  const where = { file: '--budget' };
  const t = text.trim();
  if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) {
    const x = Number(t);
    if (!(x > 0)) throw new QuantLensError('bad-budget', `expected a positive average bits per weight or a size like 3.9GB, found '${text}'`, where);
    if (x > 64) throw new QuantLensError('bad-budget', `${t} bits per weight is more than any format stores; for a size add a unit (${t}B, 3.9GB, 512MiB)`, where);
    return { avgBits: x };
  }
  const s = parseSize(t);
  if ('error' in s) throw new QuantLensError('bad-budget', `expected average bits per weight (4.5) or a size (3.9GB, 512MiB): ${s.error}`, where);
  return { bytes: s.bytes, text: t };
}

export interface ModelAllocation {
  model: string;
  method: 'datafree';
  formats: string[];
  budget: { avgBits: number; bytes?: number; text?: string };
  /** Analyzed weights, and the bytes of everything else (kept as stored). */
  params: number;
  keptBytes: number;
  result: AllocResult;
  /** Σ‖ΔW‖² / Σ‖W‖² of the chosen formats. */
  relError?: number;
  /** Whole-checkpoint size with the chosen formats. */
  bytes?: number;
  groups: string[][];
  layers: { name: string; params: number; format: string; bits: number; relMse: number }[];
  plan?: string;
}

export async function allocateModel(model: string, flags: AllocateModelFlags): Promise<ModelAllocation> {
  const method = flags.method ?? 'datafree';
  if (!(METHODS as readonly string[]).includes(method)) throw new QuantLensError('bad-option', `--method: expected one of ${METHODS.join(', ')}, found '${method}'`, { file: '--method' });
  if (method !== 'datafree') {
    throw new QuantLensError('not-available', `'${method}' needs calibration-based layer scores, which allocate cannot use yet; use --method datafree`, { file: '--method' });
  }
  if (flags.budget !== undefined && flags.budgetBits !== undefined) throw new QuantLensError('bad-budget', 'give --budget or --budget-bits, not both', { file: '--budget' });
  const budgetText = flags.budget ?? flags.budgetBits;
  if (budgetText === undefined) throw new QuantLensError('bad-budget', 'missing --budget <avg bits | size>, e.g. --budget 4.5 or --budget 3.9GB', { file: model });
  const budget = parseBudget(budgetText);
  let formats: string[];
  try {
    formats = resolveOptions({ formats: flags.formats?.split(',').map((s) => s.trim()).filter(Boolean) ?? DEFAULT_FORMATS }).formats;
  } catch (e) {
    if (e instanceof OptionError) throw new QuantLensError('bad-option', e.message, { file: '--formats' });
    throw e;
  }
  if (flags.plan) await refuseOverwrite(path.resolve(flags.plan), flags.force);

  const { report } = await analyzeCheckpoint(model, { formats, highImpact: false }, { cacheDir: flags.cache === false ? false : undefined });
  const { groups, keptBytes } = await checkpointFacts(model, report, flags.groups !== false);
  const params = report.model.analyzedParams;
  if (report.layers.length === 0) throw new QuantLensError('no-layers', 'no quantizable weight (float tensor with ≥ 2 axes longer than 1) to allocate', { file: model });
  const problem: AllocProblem = {
    layers: report.layers.map((l) => ({
      name: l.name,
      params: l.params,
      options: formats.map((id) => ({ id, bits: l.errors[id].bitsPerWeight, error: l.errors[id].relMse * l.sumSq })),
    })),
    groups,
    limits: {},
  };
  const avgBits = 'avgBits' in budget ? budget.avgBits : (8 * budget.bytes - 8 * keptBytes) / params;
  const result = await solveProblem(problem, Math.max(avgBits, Number.MIN_VALUE), { file: model, solver: flags.solver });
  if (!result.feasible) {
    const min = result.minAvgBits;
    const minBytes = min === null ? null : Math.ceil((min * params) / 8) + keptBytes;
    const what = 'avgBits' in budget ? `${budget.avgBits} bits/weight` : `${budget.text} (${budget.bytes} bytes; ${avgBits.toFixed(4)} bits/weight for the ${humanCount(params)} analyzed weights after ${keptBytes} bytes kept as stored)`;
    throw new QuantLensError(
      'infeasible-budget',
      min === null
        ? `budget ${what}: no choice of formats satisfies the constraints`
        : `budget ${what} is infeasible: the minimum achievable with formats ${formats.join(', ')} is ${min.toFixed(4)} bits/weight (${minBytes} bytes, ${humanBytes(minBytes!)})`,
      { file: model },
    );
  }
  const sumSq = report.layers.reduce((s, l) => s + l.sumSq, 0);
  const out: ModelAllocation = {
    model: report.model.path,
    method: 'datafree',
    formats,
    budget: 'avgBits' in budget ? { avgBits } : { avgBits, bytes: budget.bytes, text: budget.text },
    params,
    keptBytes,
    result,
    relError: sumSq > 0 ? result.totalError! / sumSq : 0,
    bytes: Math.ceil((result.avgBits! * params) / 8) + keptBytes,
    groups,
    layers: report.layers.map((l) => {
      const id = result.choice![l.name];
      return { name: l.name, params: l.params, format: id, bits: l.errors[id].bitsPerWeight, relMse: l.errors[id].relMse };
    }),
  };
  if (flags.plan) out.plan = await writePlan(path.resolve(flags.plan), out, flags.force === true);
  return out;
}

/** Fused groups among the analyzed layers (≥ 2 members), and the bytes of the tensors that are not analyzed. */
async function checkpointFacts(model: string, report: AnalysisReport, useGroups: boolean): Promise<{ groups: string[][]; keptBytes: number }> {
  const analyzed = new Set(report.layers.map((l) => l.name));
  const ckpt = await openCheckpoint(model);
  try {
    const byGroup = new Map<string, string[]>();
    let keptBytes = 0;
    for (const t of ckpt.tensors) {
      if (!analyzed.has(t.name)) {
        keptBytes += t.byteLength;
        continue;
      }
      const g = t.layer.fusedGroup;
      if (useGroups && g) byGroup.set(g, [...(byGroup.get(g) ?? []), t.name]);
    }
    return { groups: [...byGroup.values()].filter((g) => g.length > 1), keptBytes };
  } finally {
    await ckpt.close();
  }
}

async function refuseOverwrite(file: string, force?: boolean): Promise<void> {
  if (force) return;
  const exists = await fsp.stat(file).then(() => true, () => false);
  if (exists) throw new QuantLensError('exists', 'the plan file already exists; pass --force to overwrite it', { file });
}

/** A glob that matches exactly this name (the plan's special characters escaped). */
export function literalGlob(name: string): string {
  return name.replace(/[\\*?[\]]/g, (c) => `\\${c}`).replace(/^\//, '\\/');
}

/** The plan in the README's format: one rule per analyzed tensor; other tensors (no rule, no defaults) stay as stored. */
export function planText(a: ModelAllocation, planFile: string): string {
  let rel = path.relative(path.dirname(planFile), a.model).split(path.sep).join('/');
  if (!rel.startsWith('.') && !rel.startsWith('/')) rel = `./${rel}`;
  const q = JSON.stringify;
  const budget = a.budget.bytes !== undefined ? `{ size: ${a.budget.bytes} }` : `{ avg_bits: ${a.budget.avgBits} }`;
  const lines = [
    `# quantlens allocate (data-free): one format per tensor minimizing Σ‖ΔW‖² under the budget;`,
    `# avg ${a.result.avgBits!.toFixed(4)} bits/weight over ${a.params} analyzed weights, relative error ${a.relError!.toPrecision(4)}, ${a.bytes} bytes in all.`,
    `# Tensors without a rule (norms, biases, buffers) keep their stored precision.`,
    `model: ${q(rel)}`,
    `budget: ${budget}`,
    `method: ${a.method}`,
    `rules:`,
    ...a.layers.flatMap((l) => [`  - match: ${q(literalGlob(l.name))}`, `    format: ${l.format}`]),
    '',
  ];
  return lines.join('\n');
}

/** Temp file + link (no overwrite) or rename (--force): the plan appears whole or not at all. */
async function writePlan(file: string, a: ModelAllocation, force: boolean): Promise<string> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, planText(a, file), { flag: 'wx' });
  try {
    if (force) await fsp.rename(tmp, file);
    else {
      await fsp.link(tmp, file).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') throw new QuantLensError('exists', 'the plan file already exists; pass --force to overwrite it', { file });
        throw e;
      });
    }
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  return file;
}

export function formatAllocation(a: ModelAllocation): string {
  const r = a.result;
  const budget = a.budget.bytes !== undefined ? `${a.budget.text} = ${a.budget.avgBits.toFixed(4)} bits/weight for the analyzed weights` : `${a.budget.avgBits} bits/weight`;
  const head = [
    `allocate · ${a.model} · method ${a.method} · budget ${budget}`,
    `avg ${r.avgBits!.toFixed(4)} bits/weight · relative error ${a.relError!.toPrecision(4)} · ${humanBytes(a.bytes!)} in all (${humanBytes(a.keptBytes)} kept as stored) · ${r.solver}${r.optimal ? ', optimal' : `, gap ${r.gap}`}${a.groups.length ? ` · ${a.groups.length} fused group(s) share a format` : ''}`,
    ...(a.plan ? [`plan written to ${a.plan}`] : []),
  ].join('\n');
  const rows = a.layers.map((l) => [l.name, humanCount(l.params), l.format, l.bits.toFixed(3), l.relMse.toPrecision(4)]);
  return `${head}\n\n${formatTable(['tensor', 'params', 'format', 'bits/weight', 'relMse'], rows)}`;
}
