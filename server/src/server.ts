// The QuantLens language server: LSP wiring only — every request delegates to the engine.
// Transport comes from argv (`--node-ipc` from the extension, `--stdio` for other editors and tests).
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
import { analyzeCheckpoint, OptionError } from './analysis';
import { QuantLensError } from './formats/errors';
import { inspectCheckpoint } from './inspect';
import { PLAN_CAPABILITIES, registerPlanFeatures } from './lsp/register';
import { PlanService } from './plan/service';
import { ErrorCodes, Requests, type AnalyzeParams, type AnalyzeResponse, type InspectParams, type LocatedErrorData, type RequestType } from './protocol';

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
function toFsPath(value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new ResponseError(RpcErrorCodes.InvalidParams, 'expected `path`: an absolute path or file:// URI');
  }
  if (/^file:/i.test(value)) return fileURLToPath(value);
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(value)) {
    throw new ResponseError(RpcErrorCodes.InvalidParams, `only file:// URIs can be read, got ${value}`);
  }
  if (!path.isAbsolute(value)) throw new ResponseError(RpcErrorCodes.InvalidParams, `expected an absolute path, got ${value}`);
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

handle(Requests.analyze, async (p: AnalyzeParams, token): Promise<AnalyzeResponse> => {
  const target = toFsPath(p?.path);
  if (p.formats !== undefined && !(Array.isArray(p.formats) && p.formats.every((f) => typeof f === 'string'))) {
    throw new ResponseError(RpcErrorCodes.InvalidParams, 'expected `formats`: an array of format ids');
  }
  if (p.cacheDir !== undefined && p.cacheDir !== '' && !(typeof p.cacheDir === 'string' && path.isAbsolute(p.cacheDir))) {
    throw new ResponseError(RpcErrorCodes.InvalidParams, 'expected `cacheDir`: an absolute folder path, or "" for no cache');
  }
  const start = Date.now();
  const abort = new AbortController();
  const cancel = () => abort.abort(new QuantLensError('cancelled', 'analysis cancelled', { file: target }));
  const sub = token.onCancellationRequested(cancel);
  const progress = await requestProgress(p.workDoneToken, cancel);
  progress.begin(`Analyzing ${path.basename(target)}`);
  let lastPct = -1;
  try {
    const result = await analyzeCheckpoint(
      target,
      { formats: p.formats, sample: p.sample, only: p.only, groupMaps: p.groupMaps },
      {
        signal: abort.signal,
        cacheDir: p.cacheDir === '' ? false : p.cacheDir,
        onProgress: (done, total) => {
          const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
          if (pct === lastPct) return;
          lastPct = pct;
          progress.report(pct, `${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} M weights`);
        },
      },
    );
    // Open plans on this model show the new predictions.
    void plans.useReport(target, result.report).then(() => planFeatures.refresh(), () => undefined);
    return { ...result, ms: Date.now() - start };
  } finally {
    sub.dispose();
    progress.done();
  }
});

// ---- Plan files (*.quant.yaml) and config files: diagnostics, lenses, hovers, completion, code actions ----

const plans = new PlanService();
const planFeatures = registerPlanFeatures(connection, documents, plans);

// A stray rejection must not take the server (and every open editor's features) down.
process.on('unhandledRejection', (e) => connection.console.error(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));

documents.listen(connection);
connection.listen();
