// A small LSP client for tests: bundles the server (or the CLI) from the current sources, spawns it over stdio
// and talks JSON-RPC to it as an editor does. Also a safetensors writer for the model folders tests point at.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type CancellationToken, type MessageConnection } from 'vscode-jsonrpc/node';

export interface Range {
  start: { line: number; character: number };
  end: { line: number; character: number };
}
export interface LspDiagnostic {
  range: Range;
  code: string;
  severity: number;
  message: string;
  source?: string;
}
export interface LspTextEdit {
  range: Range;
  newText: string;
}

const BUNDLE: esbuild.BuildOptions = {
  bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['vscode', 'onnxruntime-node', 'highs'], logLevel: 'error',
};

/** Bundle `entry` to test/.tmp/<name>/<file> (inside the repo so onnxruntime-node and highs resolve). */
export async function bundle(entry: string, name: string): Promise<string> {
  const out = path.resolve('test/.tmp', name);
  mkdirSync(out, { recursive: true });
  const outfile = path.join(out, `${path.basename(entry, '.ts')}.js`);
  await esbuild.build({ ...BUNDLE, entryPoints: [entry], outfile });
  return outfile;
}

/** The worker-thread bundles, as scripts/build.mjs names them. */
export const WORKERS = {
  'analysis-worker': 'server/src/analysis/worker.ts',
  'sensitivity-worker': 'server/src/sensitivity/worker.ts',
  'quantize-worker': 'server/src/jobs/worker.ts',
} as const;

/**
 * Bundle the language server to test/.tmp/<name>/server/server.js and the given workers to test/.tmp/<name>/<worker>.js,
 * where the server looks for them (one folder up, as in dist/). Returns the server script.
 */
export async function bundleServer(name: string, workers: readonly (keyof typeof WORKERS)[]): Promise<string> {
  const out = path.resolve('test/.tmp', name);
  const server = path.join(out, 'server/server.js');
  await Promise.all([
    esbuild.build({ ...BUNDLE, entryPoints: ['server/src/server.ts'], outfile: server }),
    ...workers.map((w) => esbuild.build({ ...BUNDLE, entryPoints: [WORKERS[w]], outfile: path.join(out, `${w}.js`) })),
  ]);
  return server;
}

export interface Progress {
  token: string | number;
  value: { kind: string; percentage?: number; message?: string };
}

export class LspClient {
  readonly rpc: MessageConnection;
  stderr = '';
  /** Every `$/progress` notification, in order. */
  readonly progress: Progress[] = [];
  private readonly diagnostics = new Map<string, { version?: number; resolve: (d: LspDiagnostic[]) => void }[]>();

  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.rpc = createMessageConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
    // A waiter for a version only takes that version's diagnostics (a slower second pass of an older version is skipped).
    this.rpc.onNotification('textDocument/publishDiagnostics', (p: { uri: string; version?: number; diagnostics: LspDiagnostic[] }) => {
      const waiting = this.diagnostics.get(p.uri) ?? [];
      const i = waiting.findIndex((w) => w.version === undefined || p.version === undefined || w.version === p.version);
      if (i >= 0) waiting.splice(i, 1)[0].resolve(p.diagnostics);
    });
    // Server → client requests an editor answers: applyEdit (recorded), progress creation.
    this.rpc.onRequest('workspace/applyEdit', (p: unknown) => {
      this.applied.push(p);
      return { applied: true };
    });
    this.rpc.onRequest('window/workDoneProgress/create', () => null);
    this.rpc.onNotification('$/progress', (p: Progress) => void this.progress.push(p));
    this.rpc.listen();
  }

  readonly applied: unknown[] = [];

  static spawn(script: string, args: string[] = ['--stdio'], env: Record<string, string> = {}): LspClient {
    return new LspClient(spawn(process.execPath, [script, ...args], { stdio: 'pipe', env: { ...process.env, ...env } }));
  }

  request<R>(method: string, params: unknown, token?: CancellationToken): Promise<R> {
    return token ? this.rpc.sendRequest<R>(method, params, token) : this.rpc.sendRequest<R>(method, params);
  }

  /** The progress values reported on `token`. */
  ofToken(token: string | number): Progress['value'][] {
    return this.progress.filter((p) => p.token === token).map((p) => p.value);
  }

  /** Wait until a progress value on `token` satisfies `pred` (or `ms` pass). */
  async waitForProgress(token: string | number, pred: (v: Progress['value']) => boolean, ms = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!this.ofToken(token).some(pred) && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  }

  async initialize(): Promise<{ capabilities: Record<string, unknown>; serverInfo: { name: string } }> {
    const r = await this.request<{ capabilities: Record<string, unknown>; serverInfo: { name: string } }>('initialize', { processId: process.pid, rootUri: null, capabilities: {} });
    await this.rpc.sendNotification('initialized', {});
    return r;
  }

  /** The next diagnostics published for `uri` (for that document `version`, when given). */
  nextDiagnostics(uri: string, version?: number): Promise<LspDiagnostic[]> {
    return new Promise((resolve) => {
      const l = this.diagnostics.get(uri) ?? [];
      l.push({ version, resolve });
      this.diagnostics.set(uri, l);
    });
  }

  /** Open a document; for plans, resolves with its first diagnostics. */
  async open(uri: string, text: string, languageId = 'quantplan'): Promise<LspDiagnostic[]> {
    const d = this.nextDiagnostics(uri, 1);
    await this.rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version: 1, text } });
    return languageId === 'quantplan' ? d : [];
  }

  async replace(uri: string, version: number, text: string): Promise<LspDiagnostic[]> {
    const d = this.nextDiagnostics(uri, version);
    await this.rpc.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
    return d;
  }

  async close(uri: string): Promise<void> {
    await this.rpc.sendNotification('textDocument/didClose', { textDocument: { uri } });
  }

  async shutdown(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.proc.once('exit', (code) => resolve(code)));
    await this.request('shutdown', null);
    await this.rpc.sendNotification('exit');
    const code = await exited;
    this.rpc.dispose();
    return code;
  }

  kill(): void {
    this.rpc.dispose();
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

export type StDtype = 'F32' | 'F16' | 'I64';
const WIDTH: Record<StDtype, number> = { F32: 4, F16: 2, I64: 8 };

/** safetensors from the format description: u64 LE header length, JSON header, zero-filled data. */
export function writeSafetensors(file: string, tensors: { name: string; dtype: StDtype; shape: number[] }[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let end = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * WIDTH[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [end, end + bytes] };
    end += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(end)]));
}

/** Apply LSP text edits (non-overlapping) to `text`. */
export function applyEdits(text: string, edits: LspTextEdit[]): string {
  const lines = text.split('\n');
  const offset = (p: { line: number; character: number }) => {
    if (p.line >= lines.length) return text.length;
    let o = 0;
    for (let l = 0; l < p.line; l++) o += lines[l].length + 1;
    return o + Math.min(p.character, lines[p.line].length);
  };
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  let out = text;
  for (const e of sorted) out = out.slice(0, offset(e.range.start)) + e.newText + out.slice(offset(e.range.end));
  return out;
}
