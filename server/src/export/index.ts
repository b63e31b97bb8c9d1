// Plan exports (issue 7, point 5): the plan resolved against its model, written in the dialect of the tool the
// user deploys with. Warnings say which rules the dialect cannot express, at the rule's range in the plan.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from '../formats/errors';
import type { TensorInfo } from '../formats/types';
import { contextFor, type ExportContext, type ExportWarning, loadContext } from './context';
import { gptqModel } from './gptqmodel';
import { hqq } from './hqq';
import { llamaCpp } from './llamacpp';
import { llmCompressor } from './llmcompressor';
import { modelOpt } from './modelopt';
import { ortMatMulNBits } from './ort';
import type { Dialect, DialectId, ExportFile } from './types';

export const DIALECTS: readonly Dialect[] = [llamaCpp, gptqModel, hqq, ortMatMulNBits, llmCompressor, modelOpt];
export const DIALECT_IDS = DIALECTS.map((d) => d.id);

export interface ExportResult {
  files: ExportFile[];
  /** For llama.cpp: the llama-quantize command that applies the files; `{file}` stands for the first file's path. */
  commandLine?: string;
  warnings: ExportWarning[];
  /** The plan and the model's files (what an output must never replace). */
  inputs: string[];
}

export function dialect(id: string): Dialect {
  const d = DIALECTS.find((x) => x.id === id);
  if (!d) throw new QuantLensError('unknown-dialect', `unknown export dialect '${id}' (expected one of: ${DIALECT_IDS.join(', ')})`, { file: '--to' });
  return d;
}

/** `llama.quant.yaml` → `llama`. */
export const planStem = (planPath: string): string => path.basename(planPath).replace(/(\.quant)?\.ya?ml$/i, '');

function run(ctx: ExportContext, id: DialectId | string): ExportResult {
  const d = dialect(id);
  const out = d.export(ctx);
  if (out.files.length === 0) {
    throw new QuantLensError('nothing-to-export', `no rule of the plan can be expressed for ${d.id}${ctx.warnings[0] ? `: ${ctx.warnings[0].message}` : ''}`, { file: ctx.planPath });
  }
  const stem = planStem(ctx.planPath);
  const files = out.files.map((f) => ({ name: `${stem}${f.suffix}`, text: f.text }));
  return { files, ...(out.commandLine ? { commandLine: out.commandLine } : {}), warnings: byLine(ctx.warnings), inputs: ctx.inputs };
}

/** Warnings in plan order (those without a place first). */
const byLine = (ws: ExportWarning[]) =>
  [...ws].sort((a, b) => (a.range?.start.line ?? -1) - (b.range?.start.line ?? -1) || (a.range?.start.character ?? -1) - (b.range?.start.character ?? -1));

export interface ExportOptions {
  /** The plan's text (default: read from planPath), e.g. an unsaved editor buffer. */
  text?: string;
}

/** Export the plan at `planPath` (its model is opened, header only). Nothing is written. */
export async function exportPlan(planPath: string, dialectId: DialectId | string, opts: ExportOptions = {}): Promise<ExportResult> {
  dialect(dialectId);
  const text = opts.text ?? (await fsp.readFile(planPath, 'utf8'));
  return run(await loadContext(text, planPath), dialectId);
}

/** The warnings an export would give, for diagnostics; `tensors` (the model's listing) skips re-opening the model. */
export async function exportWarnings(
  planText: string,
  planPath: string,
  dialectId: DialectId | string,
  model?: { format: string; path: string; tensors: readonly TensorInfo[] },
): Promise<ExportWarning[]> {
  const ctx = model ? contextFor(planText, planPath, model.format, model.path, model.tensors) : await loadContext(planText, planPath);
  dialect(dialectId).export(ctx);
  return byLine(ctx.warnings);
}

export { importPlan, importPlanDetailed, IMPORT_DIALECTS, type ImportOptions } from './import';
export type { ExportWarning } from './context';
export type { DialectId, ExportFile } from './types';
