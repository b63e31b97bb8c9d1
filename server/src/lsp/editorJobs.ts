// The editor's Quantize Model and Export Plan (quantlens/quantizeModel, quantlens/exportPlan): the CLI's
// `quantize --plan` and `export --to` behind requests, with the same output rules (new files only unless asked;
// temp + rename; never over an input).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { DIALECTS, exportPlan } from '../export/index';
import { quoteArg } from '../export/llamacpp';
import { QuantLensError } from '../formats/errors';
import { cachedQuantize, jobRequest, type JobRun } from '../jobs/layer';
import type { QuantizeRequest } from '../jobs/pipeline';
import { writeOutputFile } from '../output';
import type { ExportPlanResult, QuantizeModelParams, QuantizeModelResult } from '../protocol';

/** A quantizeModel request with its paths resolved to absolute ones, without its progress token. */
export type ModelJob = Omit<QuantizeModelParams, 'workDoneToken'>;

export async function quantizeModel(job: ModelJob, run: JobRun = {}): Promise<QuantizeModelResult> {
  const start = Date.now();
  const req: QuantizeRequest = { ...jobRequest(job), planText: job.planText, out: job.out, force: job.force };
  const { report, cached } = await cachedQuantize(req, run);
  return { report, cached, ms: Date.now() - start };
}

export function exportDialects(): { id: string; describes: string }[] {
  return DIALECTS.map((d) => ({ id: d.id, describes: d.describes }));
}

/** Export `planPath` (with `text`, the editor's buffer) into `outDir` (default: beside the plan). */
export async function exportPlanFiles(planPath: string, text: string | undefined, dialect: string, opts: { outDir?: string; force?: boolean } = {}): Promise<ExportPlanResult> {
  const result = await exportPlan(planPath, dialect, { text });
  const dir = opts.outDir ?? path.dirname(planPath);
  const files = result.files.map((f) => path.join(dir, f.name));
  // Existing targets are refused before anything is written (a two-file dialect never half-replaces its pair).
  if (!opts.force) {
    for (const f of files) {
      if (await fsp.stat(f).then(() => true, () => false)) throw new QuantLensError('output-exists', 'the file exists; export again with replace to overwrite it', { file: f });
    }
  }
  for (const [i, f] of result.files.entries()) await writeOutputFile(files[i], f.text, { overwrite: opts.force ?? false, inputs: result.inputs });
  return {
    files,
    ...(result.commandLine ? { commandLine: result.commandLine.replace('{file}', quoteArg(files[0])) } : {}),
    warnings: result.warnings.map((w) => ({ message: w.message, ...(w.range ? { line: w.range.start.line } : {}) })),
  };
}
