// The QuantLens language server: LSP wiring only — every request delegates to the engine.
// Transport comes from argv (`--node-ipc` from the extension, `--stdio` for other editors and tests).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createConnection,
  ErrorCodes as RpcErrorCodes,
  ProposedFeatures,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  type CancellationToken,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { QuantLensError } from './formats/errors';
import { inspectCheckpoint } from './inspect';
import { ErrorCodes, Requests, type InspectParams, type LocatedErrorData, type RequestType } from './protocol';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);

connection.onInitialize(() => ({
  capabilities: { textDocumentSync: TextDocumentSyncKind.Incremental },
  serverInfo: { name: 'quantlens', version: process.env.QUANTLENS_VERSION ?? '0.1.0' },
}));

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

// A stray rejection must not take the server (and every open editor's features) down.
process.on('unhandledRejection', (e) => connection.console.error(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));

documents.listen(connection);
connection.listen();
