// The QuantLens language server: LSP wiring only — every request delegates to the engine.
// Transport comes from argv (`--node-ipc` from the extension, `--stdio` for other editors and tests).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createConnection,
  ErrorCodes as RpcErrorCodes,
  LSPErrorCodes,
  ProposedFeatures,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  type CancellationToken,
  WorkDoneProgress,
  type ProgressToken,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { analyzeCheckpoint, DEFAULT_FORMATS, defaultThreads, OptionError } from './analysis';
import { parseMethods } from './commands/sensitivity';
import { analyzeSensitivityInWorker } from './sensitivity/run';
import { jobs, quantizeLayer } from './jobs/layer';
import { runRatiosInWorker } from './jobs/run';
import type { RatiosReport } from './allocate/ratios-run';
import type { SensitivityReport } from './sensitivity/combined';
import { QuantLensError } from './formats/errors';
import { inspectCheckpoint } from './inspect';
import { PLAN_CAPABILITIES, registerPlanFeatures } from './lsp/register';
import { PlanService } from './plan/service';
import { ErrorCodes, Requests, type AllocateParams, type AllocateResponse, type AnalyzeParams, type AnalyzeResponse, type InspectParams, type PlanSummary, type PlanSummaryParams, type QuantizeLayerParams, type QuantizeLayerResult, type SensitivityParams, type LocatedErrorData, type RequestType, type RuleForParams, type RuleForResult, type JobResultsParams, type QuantizeModelParams, type QuantizeModelResult, type ExportPlanParams, type ExportPlanResult, type RatiosParams } from './protocol';
import { SolverCache } from './report/allocation';
import { findJobResults } from './report/jobs';
import { exportDialects, exportPlanFiles, quantizeModel } from './lsp/editorJobs';
import { ruleFor } from './lsp/ruleFor';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);

/** Whether the client accepts server-created progress (`window/workDoneProgress/create`). */
let clientCreatesProgress = false;

connection.onInitialize((params) => {
  clientCreatesProgress = params.capabilities.window?.workDoneProgress === true;
  // Where plan lenses look for cached analyses (the `quantlens.cacheFolder` setting, when the client sends it).
  const cacheFolder = (params.initializationOptions as { cacheFolder?: unknown } | undefined)?.cacheFolder;
  if (typeof cacheFolder === 'string' && path.isAbsolute(cacheFolder)) plans.cacheDir = cacheFolder;
  return {
    capabilities: { textDocumentSync: TextDocumentSyncKind.Incremental, ...PLAN_CAPABILITIES },
    serverInfo: { name: 'quantlens', version: process.env.QUANTLENS_VERSION ?? '0.1.0' },
  };
});

/** A checkpoint location from a request: an absolute path or a `file://` URI, nothing else. */
function toFsPath(value: unknown, param = 'path'): string {
  if (typeof value !== 'string' || value === '') {
    throw new ResponseError(RpcErrorCodes.InvalidParams, `expected \`${param}\`: an absolute path or file:// URI`);
  }
  if (/^file:/i.test(value)) return fileURLToPath(value);
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(value)) {
    throw new ResponseError(RpcErrorCodes.InvalidParams, `only file:// URIs can be read, got ${value}`);
  }
  if (!path.isAbsolute(value)) throw new ResponseError(RpcErrorCodes.InvalidParams, `expected \`${param}\`: an absolute path, got ${value}`);
  return value;
}

/**
 * Errors become a ResponseError for that request only: located user errors keep their location in
 * `data`; file-system errors are user errors too; anything else is a bug, logged with its stack.
 */
function toResponseError(method: string, e: unknown): ResponseError<unknown> {
  if (e instanceof ResponseError) return e;
  if (e instanceof OptionError) return new ResponseError(RpcErrorCodes.InvalidParams, `${e.option}: ${e.message}`);
  if (e instanceof QuantLensError && e.code === 'cancelled') return new ResponseError(LSPErrorCodes.RequestCancelled, e.message);
  if (e instanceof QuantLensError) {
    const data: LocatedErrorData = { code: e.code, ...e.where };
    return new ResponseError(ErrorCodes.located, e.message, data);
  }
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && typeof err.path === 'string') {
    const data: LocatedErrorData = { code: err.code, file: err.path };
    return new ResponseError(ErrorCodes.located, `${err.path}: ${err.message}`, data);
  }
  connection.console.error(`${method} failed: ${err?.stack ?? String(e)}`);
  return new ResponseError(RpcErrorCodes.InternalError, `internal error in ${method}: ${err?.message ?? String(e)}`);
}

function handle<P, R>(type: RequestType<P, R>, run: (params: P, token: CancellationToken) => Promise<R>): void {
  connection.onRequest(type.method, async (params: P, token: CancellationToken) => {
    try {
      return await run(params, token);
    } catch (e) {
      const re = toResponseError(type.method, e);
      if (re.code !== RpcErrorCodes.InternalError) connection.console.info(`${type.method}: ${re.message}`);
      return re;
    }
  });
}

handle(Requests.inspect, (p: InspectParams) => inspectCheckpoint(toFsPath(p?.path)));

/** `$/progress` for one long request: on the client's token when it sent one, else on a server-created one. */
async function requestProgress(token: ProgressToken | undefined, onCancel: () => void) {
  let cancel: { dispose(): void } | undefined;
  if (token === undefined && clientCreatesProgress) {
    const created = await connection.window.createWorkDoneProgress();
    cancel = created.token.onCancellationRequested(onCancel);
    return { begin: (title: string) => created.begin(title, 0, undefined, true), report: (pct: number, message: string) => created.report(pct, message), done: () => (cancel?.dispose(), created.done()) };
  }
  const send = (value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => {
    if (token !== undefined) void connection.sendProgress(WorkDoneProgress.type, token, value);
  };
  return {
    begin: (title: string) => send({ kind: 'begin', title, percentage: 0, cancellable: true }),
    report: (percentage: number, message: string) => send({ kind: 'report', percentage, message }),
    done: () => send({ kind: 'end' }),
  };
}

/**
 * A long request: cancellable by `$/cancelRequest` (and by the progress UI when the server created it), with
 * `$/progress` from begin to end. `report` sends only when `key` (default: the whole percentage) changes.
 */
async function longRequest<T>(
  target: string,
  title: string,
  token: CancellationToken,
  workDoneToken: ProgressToken | undefined,
  run: (signal: AbortSignal, report: (pct: number, message: string, key?: string) => void) => Promise<T>,
): Promise<T> {
  const abort = new AbortController();
  const cancel = () => abort.abort(new QuantLensError('cancelled', `${title} cancelled`, { file: target }));
  const sub = token.onCancellationRequested(cancel);
  const progress = await requestProgress(workDoneToken, cancel);
  progress.begin(`${title}: ${path.basename(target)}`);
  let last: string | undefined;
  try {
    return await run(abort.signal, (pct, message, key = String(Math.floor(pct))) => {
      if (key === last) return;
      last = key;
      progress.report(Math.floor(pct), message);
    });
  } finally {
    sub.dispose();
    progress.done();
  }
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const invalid = (message: string) => new ResponseError(RpcErrorCodes.InvalidParams, message);

handle(Requests.analyze, async (p: AnalyzeParams, token): Promise<AnalyzeResponse> => {
  const target = toFsPath(p?.path);
  if (p.formats !== undefined && !isStringArray(p.formats)) throw invalid('expected `formats`: an array of format ids');
  if (p.cacheDir !== undefined && p.cacheDir !== '' && !(typeof p.cacheDir === 'string' && path.isAbsolute(p.cacheDir))) {
    throw invalid('expected `cacheDir`: an absolute folder path, or "" for no cache');
  }
  const start = Date.now();
  const result = await longRequest(target, 'Analyzing', token, p.workDoneToken, (signal, report) =>
    analyzeCheckpoint(
      target,
      { formats: p.formats, sample: p.sample, only: p.only, groupMaps: p.groupMaps },
      {
        signal,
        // One core stays with this thread, so editing stays responsive while the workers analyze.
        threads: Math.max(1, defaultThreads() - 1),
        cacheDir: p.cacheDir === '' ? false : p.cacheDir,
        onProgress: (done, total) => report(total > 0 ? (100 * done) / total : 100, `${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} M weights`),
      },
    ),
  );
  // Open plans on this model show the new predictions, and the report panel's slider solves on them; a report of
  // some tensors only (`only`) describes no whole model.
  if (p.only === undefined) {
    void plans.useReport(target, result.report).then(() => planFeatures.refresh(), () => undefined);
    if (p.sample === undefined && !p.groupMaps) solvers.set(await solverKey(target, p.formats, p.cacheDir), result.report);
  }
  return { ...result, ms: Date.now() - start };
});

handle(Requests.quantizeLayer, async (p: QuantizeLayerParams, token): Promise<QuantizeLayerResult> => {
  const model = toFsPath(p?.model, 'model');
  const file = (v: unknown, name: string) => (v === undefined ? undefined : toFsPath(v, name));
  if (typeof p.layer !== 'string' || p.layer === '') throw invalid('expected `layer`: a weight or node name');
  if (p.format !== undefined && typeof p.format !== 'string') throw invalid('expected `format`: a format id');
  if (p.method !== undefined && p.method !== 'rtn' && p.method !== 'gptq') throw invalid('expected `method`: rtn or gptq');
  if (p.providers !== undefined && !isStringArray(p.providers)) throw invalid('expected `providers`: an array of execution provider names');
  if (p.maxSamples !== undefined && !(Number.isInteger(p.maxSamples) && p.maxSamples >= 1)) throw invalid('expected `maxSamples`: a whole number ≥ 1');
  const job = { model, layer: p.layer, format: p.format, method: p.method, plan: file(p.plan, 'plan'), eval: file(p.eval, 'eval'), labels: file(p.labels, 'labels'), out: file(p.out, 'out'), maxSamples: p.maxSamples, providers: p.providers };
  return longRequest(model, 'Quantize layer', token, p.workDoneToken, (signal, report) => quantizeLayer(job, { signal, onProgress: (pct, message) => report(pct, message, `${Math.floor(pct)} ${message}`) }));
});

handle(Requests.ratios, async (p: RatiosParams, token): Promise<RatiosReport> => {
  const target = toFsPath(p?.path);
  const num = (v: unknown, name: string, ok: (x: number) => boolean, what: string) => {
    if (v !== undefined && !(typeof v === 'number' && ok(v))) throw invalid(`expected \`${name}\`: ${what}`);
  };
  num(p.budgetBits, 'budgetBits', (x) => x > 0, 'average bits per weight > 0');
  num(p.rMax, 'rMax', (x) => x > 0 && x <= 1, 'a ratio in (0, 1]');
  num(p.fixedRatio, 'fixedRatio', (x) => x >= 0 && x <= 1, 'a ratio in [0, 1]');
  num(p.maxSamples, 'maxSamples', (x) => Number.isInteger(x) && x >= 1, 'a whole number ≥ 1');
  num(p.seed, 'seed', Number.isInteger, 'an integer');
  for (const k of ['hi', 'lo', 'only'] as const) if (p[k] !== undefined && typeof p[k] !== 'string') throw invalid(`expected \`${k}\`: a string`);
  if (p.saliency !== undefined && p.saliency !== 'magnitude' && p.saliency !== 'hessian') throw invalid('expected `saliency`: magnitude or hessian');
  if (p.providers !== undefined && !isStringArray(p.providers)) throw invalid('expected `providers`: an array of execution provider names');
  const { workDoneToken, ...rest } = p;
  const job = { ...rest, path: target, calib: p.calib === undefined ? undefined : toFsPath(p.calib, 'calib') };
  return longRequest(target, 'High-impact ratios', token, workDoneToken, (signal, report) =>
    jobs.add({
      signal,
      onWait: (ahead) => {
        if (ahead > 0) report(0, `waiting for ${ahead} job${ahead > 1 ? 's' : ''} ahead`, `wait ${ahead}`);
      },
      run: () => runRatiosInWorker(job, { signal, onProgress: (f, m) => report(100 * f, m, m.replace(/ \d+\/\d+$/, ` ${Math.floor(100 * f)}`)) }),
    }),
  );
});

handle(Requests.sensitivity, async (p: SensitivityParams, token): Promise<SensitivityReport> => {
  const target = toFsPath(p?.path);
  const file = (v: unknown, name: string) => (v === undefined ? undefined : toFsPath(v, name));
  if (p.methods !== undefined && !isStringArray(p.methods)) throw invalid('expected `methods`: an array of method names');
  if (p.formats !== undefined && !isStringArray(p.formats)) throw invalid('expected `formats`: an array of format ids');
  if (p.providers !== undefined && !isStringArray(p.providers)) throw invalid('expected `providers`: an array of execution provider names');
  if (p.maxSamples !== undefined && !(Number.isInteger(p.maxSamples) && p.maxSamples >= 1)) throw invalid('expected `maxSamples`: a whole number ≥ 1');
  const methods = parseMethods(p.methods?.join(','));
  return longRequest(target, 'Sensitivity', token, p.workDoneToken, (signal, report) =>
    analyzeSensitivityInWorker(
      target,
      {
        methods,
        formats: p.formats ?? DEFAULT_FORMATS,
        calib: file(p.calib, 'calib'),
        labels: file(p.labels, 'labels'),
        providers: p.providers,
        calibration: { maxSamples: p.maxSamples },
      },
      { signal, onProgress: (stage, done, total) => report(total > 0 ? (100 * done) / total : 100, `${stage} ${done}/${total}`, `${stage} ${done}`) },
    ),
  );
});

const solvers = new SolverCache();
/** Keyed by the model file's size and mtime too: a changed checkpoint is analyzed again (through the disk cache). */
async function solverKey(target: string, formats: string[] | undefined, cacheDir: string | undefined): Promise<string> {
  const st = await fsp.stat(target);
  return `${st.size}:${st.mtimeMs}:${SolverCache.key(target, formats, cacheDir === '' ? false : cacheDir)}`;
}

handle(Requests.allocate, async (p: AllocateParams): Promise<AllocateResponse> => {
  const target = toFsPath(p?.path);
  if (p.formats !== undefined && !isStringArray(p.formats)) throw invalid('expected `formats`: an array of format ids');
  if (typeof p.budget !== 'number' || !(p.budget > 0)) throw invalid('expected `budget`: average bits per weight > 0');
  if (p.cacheDir !== undefined && p.cacheDir !== '' && !(typeof p.cacheDir === 'string' && path.isAbsolute(p.cacheDir))) {
    throw invalid('expected `cacheDir`: an absolute folder path, or "" for no cache');
  }
  const start = Date.now();
  const load = async () => (await analyzeCheckpoint(target, { formats: p.formats }, { cacheDir: p.cacheDir === '' ? false : p.cacheDir })).report;
  const solver = await solvers.get(await solverKey(target, p.formats, p.cacheDir), load);
  const { allocation, ...s } = solver.solve(p.budget);
  const choice = allocation && Object.fromEntries(Object.entries(allocation).map(([name, a]) => [name, a.format]));
  return { ...s, choice, range: solver.range(), ...(p.frontier ? { frontier: solver.frontier() } : {}), ms: Date.now() - start };
});

// ---- Plan files (*.quant.yaml) and config files: diagnostics, lenses, hovers, completion, code actions ----

const plans = new PlanService();
const planFeatures = registerPlanFeatures(connection, documents, plans);

handle(Requests.planSummary, async (p: PlanSummaryParams): Promise<PlanSummary> => {
  const doc = typeof p?.uri === 'string' ? documents.get(p.uri) : undefined;
  if (!doc) throw invalid('expected `uri`: an open plan document');
  const state = await plans.analyze(doc.getText(), toFsPath(p.uri, 'uri'));
  const { cost } = state;
  const model = state.analysis.plan.model?.value.path;
  if (!cost || !model) return null;
  const b = state.analysis.plan.budget?.value;
  const budget = b?.avgBits
    ? { kind: 'avgBits' as const, value: b.avgBits.value, ok: cost.avgBits <= b.avgBits.value }
    : b?.size
      ? { kind: 'size' as const, value: b.size.value, ok: cost.bytes <= b.size.value }
      : undefined;
  return { bytes: cost.bytes, avgBits: cost.avgBits, relMse: cost.total.relMse, budget, modelPath: model };
});

handle(Requests.ruleFor, async (p: RuleForParams): Promise<RuleForResult> => {
  const doc = typeof p?.uri === 'string' ? documents.get(p.uri) : undefined;
  if (!doc) throw invalid('expected `uri`: an open plan document');
  if (!isStringArray(p.tensors) || p.tensors.length === 0) throw invalid('expected `tensors`: a non-empty array of tensor names');
  if (p.layer !== undefined && typeof p.layer !== 'string') throw invalid('expected `layer`: a layer name');
  return ruleFor(await plans.analyze(doc.getText(), toFsPath(p.uri, 'uri')), p.tensors, p.layer);
});

handle(Requests.jobResults, (p: JobResultsParams) => findJobResults(toFsPath(p?.path)));

handle(Requests.quantizeModel, async (p: QuantizeModelParams, token): Promise<QuantizeModelResult> => {
  const model = toFsPath(p?.model, 'model');
  const file = (v: unknown, name: string) => (v === undefined ? undefined : toFsPath(v, name));
  if (p.planText !== undefined && typeof p.planText !== 'string') throw invalid('expected `planText`: the plan\'s text');
  if (p.method !== undefined && p.method !== 'rtn' && p.method !== 'gptq') throw invalid('expected `method`: rtn or gptq');
  if (p.providers !== undefined && !isStringArray(p.providers)) throw invalid('expected `providers`: an array of execution provider names');
  if (p.maxSamples !== undefined && !(Number.isInteger(p.maxSamples) && p.maxSamples >= 1)) throw invalid('expected `maxSamples`: a whole number ≥ 1');
  const job = { model, plan: toFsPath(p.plan, 'plan'), planText: p.planText, method: p.method, eval: file(p.eval, 'eval'), labels: file(p.labels, 'labels'), out: file(p.out, 'out'), force: p.force === true, maxSamples: p.maxSamples, providers: p.providers };
  return longRequest(model, 'Quantize model', token, p.workDoneToken, (signal, report) => quantizeModel(job, { signal, onProgress: (pct, message) => report(pct, message, `${Math.floor(pct)} ${message}`) }));
});

handle(Requests.exportDialects, async () => exportDialects());

handle(Requests.exportPlan, async (p: ExportPlanParams): Promise<ExportPlanResult> => {
  const planPath = toFsPath(p?.uri, 'uri');
  if (typeof p.dialect !== 'string') throw invalid('expected `dialect`: an export dialect id');
  const outDir = p.outDir === undefined ? undefined : toFsPath(p.outDir, 'outDir');
  return exportPlanFiles(planPath, documents.get(p.uri)?.getText(), p.dialect, { outDir, force: p.force === true });
});

// A stray rejection must not take the server (and every open editor's features) down.
process.on('unhandledRejection', (e) => connection.console.error(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));

documents.listen(connection);
connection.listen();
