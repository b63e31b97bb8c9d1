// Starts the QuantLens language server (dist/server/server.js) over Node IPC and types its custom requests.
import * as vscode from 'vscode';
import { CloseAction, ErrorAction, LanguageClient, WorkDoneProgress, LSPErrorCodes, ResponseError, TransportKind, type ErrorHandler, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { ErrorCodes, type LocatedErrorData, type RequestType } from '../../server/src/protocol';
import { RestartPolicy } from './restart';
import { analysisSettings } from './settings';

/** Crashes the client restarts the server after, within three minutes; the next one stops it (Restart Server revives it). */
export const restarts = new RestartPolicy(4, 3 * 60_000);

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
    errorHandler: serverErrorHandler(log),
  };
  // The id matches the `quantlens.trace.server` setting, which the client reads by convention.
  return new LanguageClient('quantlens', 'QuantLens Language Server', serverOptions, clientOptions);
}

/**
 * A dead server is restarted (bounded by `restarts`); after the last retry a notification offers the log and a
 * manual restart. Connection errors keep the connection unless they repeat (as vscode-languageclient's default).
 */
function serverErrorHandler(log: vscode.LogOutputChannel): ErrorHandler {
  return {
    error: (_e, _m, count) => ({ action: (count ?? 1) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true }),
    // The client logs the returned message; `handled`: the notification below is the only one shown.
    closed: () => {
      const d = restarts.crashed(Date.now());
      const span = `${restarts.windowMs / 60_000} minutes`;
      if (d.restart) return { action: CloseAction.Restart, message: `QuantLens language server stopped; restarting it (${d.crashes} of ${restarts.max} restarts in ${span}).`, handled: true };
      const message = `QuantLens language server stopped ${d.crashes} times in ${span} and was not restarted.`;
      void vscode.window.showErrorMessage(message, 'Show Log', 'Restart Server').then((pick) => {
        if (pick === 'Show Log') log.show(true);
        if (pick === 'Restart Server') void vscode.commands.executeCommand('quantlens.restartServer');
      });
      return { action: CloseAction.DoNotRestart, message, handled: true };
    },
  };
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

/** A request refused because its output file exists (the caller may ask the user and send it again with `force`). */
export function existingOutput(e: unknown): string | undefined {
  if (!(e instanceof ResponseError) || e.code !== ErrorCodes.located) return undefined;
  const data = e.data as LocatedErrorData | undefined;
  return data?.code === 'output-exists' ? data.file : undefined;
}

let progressTokens = 0;

/**
 * A long server request behind a cancellable notification fed by the server's `$/progress` on a fresh token.
 * Resolves undefined when the user cancels (the server answers RequestCancelled and writes nothing).
 */
export async function withRequestProgress<R>(
  client: LanguageClient,
  title: string,
  send: (workDoneToken: string, cancel: vscode.CancellationToken) => Promise<R>,
): Promise<R | undefined> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, cancel) => {
    const workDoneToken = `quantlens-${++progressTokens}`;
    let shown = 0;
    const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
      if (v.kind !== 'report') return;
      const pct = v.percentage ?? shown;
      progress.report({ increment: pct - shown, message: v.message });
      shown = pct;
    });
    try {
      return await send(workDoneToken, cancel);
    } catch (e) {
      if (isCancelled(e)) return undefined;
      throw e;
    } finally {
      sub.dispose();
    }
  });
}
