// Finished quantize jobs of a model, from the JSON reports the jobs write beside their outputs
// (`<output>.report.json`, see jobs/pipeline.ts): what was predicted from the weights vs what the evaluation measured.
// Feeds the "Predicted vs measured" chart of the report panel and the HTML report.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { QuantizeReport } from '../jobs/pipeline';
import type { JobResult } from '../protocol';

/** A report is a few KiB per weight; larger `.report.json` files are something else. */
const MAX_REPORT_BYTES = 16 << 20;
/** Reports read per folder (newest first): a chart of more points says nothing more. */
const MAX_REPORTS = 200;

/** One job's report as a chart point; undefined when the JSON is not a quantize report. */
export function jobResult(r: QuantizeReport, report: string, mtimeMs: number): JobResult | undefined {
  if (!r || typeof r.output !== 'string' || !Array.isArray(r.weights) || typeof r.predicted?.relMse !== 'number') return undefined;
  const m = r.metrics;
  const one = r.weights.length === 1 ? r.weights[0] : undefined;
  return {
    report,
    output: r.output,
    name: one ? `${one.name} → ${one.format}` : `${r.weights.length} weights (${path.basename(r.output)})`,
    weights: r.weights.length,
    predictedRelMse: r.predicted.relMse,
    // SQNR = 10·log10(‖y‖² / ‖ŷ − y‖²): the output's relative squared error is 10^(−SQNR/10) (0 when exact).
    measured: m ? { relMse: Math.pow(10, -m.sqnrDb / 10), kl: m.kl, top1: m.top1 } : null,
    mtimeMs,
  };
}

/** The jobs whose report names `model` as their source, from the model's folder, newest first. */
export async function findJobResults(model: string): Promise<JobResult[]> {
  const abs = path.resolve(model);
  const dir = path.dirname(abs);
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.report.json'));
  const stats = await Promise.all(
    names.map(async (n) => {
      const file = path.join(dir, n);
      const st = await fsp.stat(file).catch(() => undefined);
      return st?.isFile() && st.size <= MAX_REPORT_BYTES ? { file, mtimeMs: st.mtimeMs } : undefined;
    }),
  );
  const files = stats.filter((s) => s !== undefined).sort((a, b) => b.mtimeMs - a.mtimeMs).slice(0, MAX_REPORTS);
  const out: JobResult[] = [];
  for (const f of files) {
    let parsed: QuantizeReport;
    try {
      parsed = JSON.parse(await fsp.readFile(f.file, 'utf8')) as QuantizeReport;
    } catch {
      continue; // unreadable or not JSON: not a job report
    }
    if (typeof parsed?.model !== 'string' || path.resolve(dir, parsed.model) !== abs) continue;
    const r = jobResult(parsed, f.file, f.mtimeMs);
    if (r) out.push(r);
  }
  return out;
}
