// `quantlens report <model> [--plan p.quant.yaml | --budget bits] --html out.html`: the data-free analysis (cached)
// drawn as one self-contained HTML file — the same charts as the editor's panel, for CI and for sharing.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { analyzeCheckpoint, OptionError, resolveOptions, type AnalysisReport } from '../analysis';
import { QuantLensError } from '../formats/errors';
import { writeOutputFile } from '../output';
import { PlanService } from '../plan/service';
import { getFormat } from '../quant/registry';
import { BudgetSolver } from '../report/allocation';
import { predictedMeasured, type Allocation } from '../report/charts';
import { plotlySource, renderReportHtml, solutionInput, type ReportInputs } from '../report/html';
import { findJobResults } from '../report/jobs';

interface ReportFlags {
  html?: string;
  plan?: string;
  budget?: string;
  formats?: string;
  force?: boolean;
  cache: boolean;
  cacheDir?: string;
  /** Analysis worker threads (0: in this thread). */
  threads?: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write the sensitivity charts (bits per layer, layer × format heatmap, group errors, Pareto, agreement) as one offline HTML file')
    .argument('<model>', 'checkpoint file or model folder')
    .requiredOption('--html <file>', 'the HTML file to write')
    .option('--plan <file>', 'draw this *.quant.yaml plan\'s formats in the bits chart and on the Pareto curve')
    .option('--budget <bits>', 'draw the exact allocation at this average bits per weight (instead of a plan)')
    .option('--formats <ids>', 'comma-separated format ids to analyze (default: the data-free default set)')
    .option('--force', 'replace an existing --html file')
    .option('--no-cache', 'neither read nor write the analysis cache')
    .option('--cache-dir <dir>', 'cache folder (default $XDG_CACHE_HOME/quantlens or ~/.cache/quantlens)')
    .option('--threads <n>', 'analysis worker threads (default: one per core; 0 = in this thread)')
    .action(async (model: string, flags: ReportFlags) => {
      const file = await writeReport(model, flags);
      process.stdout.write(`report written to ${file}\n`);
    });
}

export async function writeReport(model: string, flags: ReportFlags): Promise<string> {
  if (flags.plan && flags.budget) throw new QuantLensError('bad-option', 'give --plan or --budget, not both', { file: '--budget' });
  const budget = flags.budget === undefined ? undefined : Number(flags.budget);
  if (budget !== undefined && !(Number.isFinite(budget) && budget > 0 && budget <= 64)) {
    throw new QuantLensError('bad-budget', `--budget: expected average bits per weight in (0, 64], found '${flags.budget}'`, { file: '--budget' });
  }
  const threads = flags.threads === undefined ? undefined : Number(flags.threads);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0)) throw new QuantLensError('bad-option', `--threads expects a count ≥ 0, got '${flags.threads}'`, { file: '--threads' });
  let options;
  try {
    options = resolveOptions({ formats: flags.formats?.split(',').map((s) => s.trim()).filter(Boolean), groupMaps: true, mapSize: 128, highImpact: false });
  } catch (e) {
    if (e instanceof OptionError) throw new QuantLensError('bad-option', e.message, { file: `--${e.option}` });
    throw e;
  }
  // Read Plotly before the analysis: a broken install fails fast.
  const plotly = plotlySource();
  const cacheDir = flags.cache ? (flags.cacheDir ? path.resolve(flags.cacheDir) : undefined) : false;
  const { report, warning } = await analyzeCheckpoint(model, options, { cacheDir, threads });
  if (warning) process.stderr.write(`quantlens: warning: ${warning}\n`);
  const inputs: ReportInputs = { report };
  // Finished quantize jobs of this model (their .report.json beside it) feed the predicted-vs-measured chart.
  inputs.jobs = predictedMeasured(await findJobResults(report.model.path));
  if (report.layers.length) {
    const solver = new BudgetSolver(report);
    inputs.frontier = solver.frontier();
    if (budget !== undefined) {
      const s = solver.solve(budget);
      if (!s.feasible) {
        throw new QuantLensError('infeasible-budget', `--budget ${budget} is infeasible: the minimum achievable is ${s.minAvgBits?.toFixed(4) ?? '(none)'} bits/weight`, { file: '--budget' });
      }
      inputs.allocation = solutionInput(s, `Exact allocation at ${budget} bits/weight`);
    }
  }
  const inputsRead = [...report.model.files];
  if (flags.plan) {
    const planFile = path.resolve(flags.plan);
    inputs.allocation = await planAllocation(planFile, report);
    inputsRead.push(planFile);
  }
  const out = path.resolve(flags.html!);
  await writeOutputFile(out, renderReportHtml(inputs, plotly), { overwrite: flags.force, inputs: inputsRead });
  return out;
}

/** A plan's format per analyzed tensor (resolved like the language server does), its average bits and predicted error. */
async function planAllocation(planFile: string, report: AnalysisReport): Promise<ReportInputs['allocation']> {
  const text = await fsp.readFile(planFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('plan-unreadable', `cannot read the plan: ${e.code ?? e.message}`, { file: planFile });
  });
  const plans = new PlanService();
  const first = await plans.analyze(text, planFile);
  const planModel = first.analysis.plan.model?.value.path;
  if (planModel) await plans.useReport(planModel, report);
  const state = await plans.analyze(text, planFile);
  const errors = state.diagnostics.filter((d) => d.severity === 'error');
  const resolution = state.analysis.resolution;
  if (!resolution || !state.cost) {
    const why = errors[0] ? `line ${errors[0].range.start.line + 1}: ${errors[0].message}` : 'its rules do not resolve against a readable model';
    throw new QuantLensError('bad-plan', `the plan cannot be drawn: ${why}`, { file: planFile });
  }
  const format = new Map<string, string | null>();
  resolution.index.tensors.forEach((t, id) => format.set(t.name, resolution.decisions[resolution.owner[id] + 1].format));
  const allocation: Allocation = {};
  for (const l of report.layers) {
    const f = format.get(l.name);
    if (!f) continue;
    allocation[l.name] = { format: f, bits: l.errors[f]?.bitsPerWeight ?? getFormat(f).bitsPerWeight(l.shape, l.layout) };
  }
  const sumSq = report.layers.reduce((s, l) => s + l.sumSq, 0);
  const rel = state.cost.total.relMse;
  return {
    source: `Plan ${path.basename(planFile)}`,
    allocation,
    avgBits: state.cost.avgBits,
    totalError: rel === undefined ? undefined : rel * sumSq,
  };
}
