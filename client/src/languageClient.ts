// Starts the QuantLens language server (dist/server/server.js) over Node IPC and types its custom requests.
import * as vscode from 'vscode';
import { LanguageClient, LSPErrorCodes, ResponseError, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { ErrorCodes, type RequestType } from '../../server/src/protocol';
import { analysisSettings } from './settings';

export function createLanguageClient(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): LanguageClient {
  const module = context.asAbsolutePath('dist/server/server.js');
  const env = { ...process.env, ORT_DISABLE_TELEMETRY: '1', QUANTLENS_VERSION: String(context.extension.packageJSON.version) };
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc, options: { env } },
    debug: { module, transport: TransportKind.ipc, options: { env, execArgv: ['--nolazy', '--inspect=6019'] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'quantplan' },
      { scheme: 'file', language: 'json', pattern: '**/config.json' },
      { scheme: 'file', language: 'json', pattern: '**/quantize_config.json' },
      { scheme: 'file', pattern: '**/*.tensor-types.txt' },
      // llm-compressor recipes (the server answers only for files with a QuantizationModifier).
      { scheme: 'file', language: 'yaml' },
    ],
    // Plan lenses read cached analyses from the folder Analyze Sensitivity writes to (absent: the default cache).
    initializationOptions: { cacheFolder: analysisSettings().cacheDir || undefined },
    outputChannel: log,
    traceOutputChannel: log,
  };
  // The id matches the `quantlens.trace.server` setting, which the client reads by convention.
  return new LanguageClient('quantlens', 'QuantLens Language Server', serverOptions, clientOptions);
}

/** A typed custom request, declared once in protocol.ts. */
export function sendRequest<P, R>(client: LanguageClient, type: RequestType<P, R>, params: P, token?: vscode.CancellationToken): Promise<R> {
  // An explicit `undefined` token would be sent as a second positional parameter (params become [params, null]).
  return token ? client.sendRequest<R>(type.method, params, token) : client.sendRequest<R>(type.method, params);
}

/** The user-facing text of a failed request: located errors carry their own message. */
export function describeError(e: unknown): string {
  if (e instanceof ResponseError && e.code === ErrorCodes.located) return e.message;
  if (e instanceof ResponseError) return `${e.message} (code ${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

/** A request the user cancelled (the server answers RequestCancelled). */
export function isCancelled(e: unknown): boolean {
  return e instanceof ResponseError && e.code === LSPErrorCodes.RequestCancelled;
}
