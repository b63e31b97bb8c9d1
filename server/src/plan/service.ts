// Plan analysis for the language server: loads the plan's model header (cached by file identity) so rules
// resolve against real tensor names, picks up a cached data-free analysis of that model when one exists (never
// runs one), then runs the pure plan engine and the cost/budget checks. No LSP types here.
import { promises as fsp } from 'node:fs';
import { cacheKey, defaultCacheDir, readCache } from '../analysis/cache';
import { DEFAULT_OPTIONS, type AnalysisReport } from '../analysis/types';
import { openCheckpoint } from '../formats/registry';
import type { TensorInfo } from '../formats/types';
import { FORMAT_CATALOG } from '../quant/registry';
import { budgetDiagnostics, fitFormats, type Resolved } from './budget';
import { planCost, type PlanCost } from './cost';
import { analyzePlan, parsePlan, pathExists, type PlanAnalysis, type PlanTensor } from './index';
import type { PlanDiagnostic } from './schema';
import type { ModelInput } from '../calib/types';
import { onnxInputs } from '../calib/inputs';

/** A model as plans see it: its tensors (header only), and the analysis report when one is cached. */
export interface ModelInfo {
  path: string;
  /** size + mtime: a changed checkpoint is re-read. */
  stamp: string;
  tensors?: PlanTensor[];
  /** The reader's listing (exporters need dtypes and layouts). */
  infos?: TensorInfo[];
  /** Bytes of tensors that cannot be quantized (kept as stored). */
  fixedBytes: number;
  format?: string;
  error?: string;
  report?: AnalysisReport;
  /** Key of this model's analysis in the on-disk cache (default options). */
  cacheKey?: string;
  /** ONNX graph inputs (what calibration data must fit). */
  inputs?: ModelInput[];
}

export interface PlanState {
  text: string;
  planPath: string;
  analysis: PlanAnalysis;
  model?: ModelInfo;
  /** Present when the rules resolved against the model. */
  cost?: PlanCost;
  resolved?: Resolved;
  /** Formats Fit budget may choose. */
  formats: string[];
  /** The analysis' diagnostics plus the budget's, sorted by position. */
  diagnostics: PlanDiagnostic[];
}

/** Everything the language server shows for one plan text, from a loaded model (no I/O): the bench calls this. */
export function planState(text: string, planPath: string, model: ModelInfo | undefined): PlanState {
  const modelPath = model?.path;
  const analysis = analyzePlan(text, planPath, {
    ...FORMAT_CATALOG,
    tensors: model?.tensors,
    // The model's problem is the reader's located message; other paths only need to exist.
    checkPath: (p, key) => (key === 'model' && p === modelPath && model?.error ? model.error : pathExists(p, key)),
  });
  const formats = fitFormats(analysis.plan, FORMAT_CATALOG.isFormat);
  const state: PlanState = { text, planPath, analysis, model, formats, diagnostics: analysis.diagnostics };
  const r = analysis.resolution;
  if (r && model) {
    state.resolved = r;
    state.cost = planCost(r.index, r.owner, r.decisions, model.fixedBytes, model.report);
    const extra = budgetDiagnostics(analysis.plan, r, state.cost, formats);
    if (extra.length) {
      state.diagnostics = [...analysis.diagnostics, ...extra].sort(
        (a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character,
      );
    }
  }
  return state;
}

/** Look for a newly written analysis at most this often per model. */
const REPORT_RETRY_MS = 2000;

export class PlanService {
  private readonly models = new Map<string, Promise<ModelInfo>>();
  private readonly reportChecked = new Map<string, number>();

  /** `cacheDir`: where `quantlens analyze` / the extension cache analysis reports (default: the platform cache). */
  constructor(public cacheDir: string = defaultCacheDir()) {}

  /** Parse, validate, resolve and cost `text` (the plan at `planPath`). Never throws. */
  async analyze(text: string, planPath: string): Promise<PlanState> {
    const modelPath = parsePlan(text, planPath).plan.model?.value.path;
    const model = modelPath ? await this.model(modelPath) : undefined;
    return planState(text, planPath, model);
  }

  /** Use this report for the model at `modelPath` (e.g. right after an analysis ran in this process). */
  async useReport(modelPath: string, report: AnalysisReport): Promise<void> {
    const m = await this.model(modelPath);
    m.report = report;
  }

  /** The model at `file` (cached by size and mtime; a cached analysis is looked up again every few seconds). */
  async model(file: string): Promise<ModelInfo> {
    const stamp = await fsp.stat(file).then((s) => `${s.size}:${s.mtimeMs}`, () => 'missing');
    const cached = this.models.get(file);
    let entry = cached && (await cached).stamp === stamp ? cached : undefined;
    if (!entry) {
      entry = this.load(file, stamp);
      this.models.set(file, entry);
      this.reportChecked.delete(file);
    }
    const m = await entry;
    const last = this.reportChecked.get(file) ?? -Infinity;
    if (m.cacheKey && !m.report && Date.now() - last >= REPORT_RETRY_MS) {
      this.reportChecked.set(file, Date.now());
      const r = await readCache(this.cacheDir, m.cacheKey).catch(() => undefined);
      if (r && Array.isArray(r.layers) && Array.isArray(r.formats)) m.report = r;
    }
    return m;
  }

  private async load(file: string, stamp: string): Promise<ModelInfo> {
    if (stamp === 'missing') return { path: file, stamp, fixedBytes: 0 };
    try {
      const ck = await openCheckpoint(file);
      await ck.close();
      let fixedBytes = 0;
      const tensors = ck.tensors.map((t): PlanTensor => {
        if (!t.analyzable) fixedBytes += t.byteLength;
        return { name: t.name, layer: t.layer, params: t.params, analyzable: t.analyzable, shape: t.shape, layout: t.layout, bytes: t.byteLength };
      });
      const key = ck.tensors.length > 0 ? await cacheKey(ck.path, ck.files, DEFAULT_OPTIONS).catch(() => undefined) : undefined;
      const inputs = ck.format === 'onnx' ? onnxInputs(ck.metadata) : undefined;
      return { path: file, stamp, tensors, infos: ck.tensors, fixedBytes, format: ck.format, cacheKey: key, ...(inputs ? { inputs } : {}) };
    } catch (e) {
      return { path: file, stamp, fixedBytes: 0, error: `model cannot be read: ${(e as Error).message}` };
    }
  }
}
