// The language server as an editor sees it: a real process over stdio, JSON-RPC framing, the
// `quantlens/inspect` request on files this test writes, located errors, and a clean shutdown.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import * as esbuild from 'esbuild';
import { createMessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import { ErrorCodes, Requests, type InspectResult, type LocatedErrorData } from '../../server/src/protocol';
import { tempDir } from '../fixtures/common';

/** Built from the current sources (dist may be stale when this file runs alone); inside the repo so onnxruntime-node resolves. */
const OUT = path.resolve('test/.tmp/lsp');
const SERVER = path.join(OUT, 'server.js');

/** safetensors straight from the format description: u64 LE header length, JSON header, raw little-endian data. */
function writeSafetensors(file: string, tensors: { name: string; dtype: 'F32' | 'F16'; shape: number[] }[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let end = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [end, end + bytes] };
    end += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(end)]));
}

let server: ChildProcessWithoutNullStreams;
let rpc: MessageConnection;
let stderr = '';
const { dir, cleanup } = tempDir();
const model = path.join(dir, 'tiny-llama');

before(async () => {
  mkdirSync(OUT, { recursive: true });
  await esbuild.build({
    entryPoints: ['server/src/server.ts'],
    outfile: SERVER,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode', 'onnxruntime-node', 'highs'],
    logLevel: 'error',
  });
  mkdirSync(model);
  writeSafetensors(path.join(model, 'model.safetensors'), [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [16, 4] },
    { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F16', shape: [4, 4] },
    { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [4, 8] },
    { name: 'model.layers.1.self_attn.q_proj.weight', dtype: 'F16', shape: [4, 4] },
    { name: 'model.norm.weight', dtype: 'F32', shape: [4] },
  ]);
  writeFileSync(
    path.join(model, 'config.json'),
    JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 2, hidden_size: 4, vocab_size: 16 }),
  );

  server = spawn(process.execPath, [SERVER, '--stdio'], { stdio: 'pipe' });
  server.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  rpc = createMessageConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
  rpc.listen();
});

after(() => {
  rpc?.dispose();
  if (server && server.exitCode === null) server.kill('SIGKILL');
  cleanup();
});

const inspect = (p: string) => rpc.sendRequest<InspectResult>(Requests.inspect.method, { path: p });

/** The ResponseError a request fails with (fails the test when it succeeds). */
async function rejection(p: Promise<unknown>): Promise<ResponseError<unknown>> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ResponseError, `expected a ResponseError, got ${String(e)}`);
    return e;
  }
  assert.fail('request succeeded, expected an error');
}

test('initialize: incremental document sync and server info', async () => {
  const init = await rpc.sendRequest<{ capabilities: { textDocumentSync: number }; serverInfo: { name: string } }>('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
  });
  assert.equal(init.capabilities.textDocumentSync, 2); // TextDocumentSyncKind.Incremental
  assert.equal(init.serverInfo.name, 'quantlens');
  await rpc.sendNotification('initialized', {});
});

test('quantlens/inspect on a model folder: the tensors, dtypes and blocks this test wrote', async () => {
  const r = await inspect(model);
  assert.equal(r.format, 'safetensors');
  assert.equal(r.tensorCount, 5);
  assert.equal(r.params, 64 + 16 + 32 + 16 + 4);
  assert.deepEqual(r.dtypes, { F32: { tensors: 3, params: 100 }, F16: { tensors: 2, params: 32 } });
  const blocks = Object.fromEntries(r.blocks.map((b) => [b.block, [b.layers, b.params]]));
  assert.deepEqual(blocks, { '(root)': [2, 68], 'model.layers.0': [2, 48], 'model.layers.1': [1, 16] });
  assert.deepEqual(r.tensors.find((t) => t.name === 'model.layers.0.mlp.down_proj.weight')?.shape, [4, 8]);
  assert.equal(r.config?.numLayers, 2);
  assert.deepEqual(r.config?.architectures, ['LlamaForCausalLM']);
});

test('quantlens/inspect accepts a file:// URI (config.json alone: architecture, no weights)', async () => {
  const r = await inspect(pathToFileURL(path.join(model, 'config.json')).href);
  assert.equal(r.format, 'hf-config');
  assert.equal(r.tensorCount, 0);
  assert.equal(r.config?.hiddenSize, 4);
  assert.equal(r.config?.vocabSize, 16);
});

test('a missing path fails that request only, with a located error; the next request still works', async () => {
  const missing = path.join(dir, 'nope', 'model.safetensors');
  const e = await rejection(inspect(missing));
  assert.equal(e.code, ErrorCodes.located);
  assert.match(e.message, /nope\/model\.safetensors: no such file or folder/);
  const data = e.data as LocatedErrorData;
  assert.equal(data.code, 'not-found');
  assert.equal(data.file, missing);
  assert.equal((await inspect(model)).tensorCount, 5);
});

test('a corrupt header is rejected with file and byte offset in the error data', async () => {
  const bad = path.join(dir, 'bad.safetensors');
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(1n << 40n); // header "length" far beyond the file
  writeFileSync(bad, b);
  const e = await rejection(inspect(bad));
  assert.equal(e.code, ErrorCodes.located);
  const data = e.data as LocatedErrorData;
  assert.equal(data.file, bad);
  assert.equal(typeof data.offset, 'number');
  assert.ok(e.message.startsWith(bad), e.message);
  assert.equal((await inspect(path.join(model, 'config.json'))).format, 'hf-config');
});

test('params that are not an absolute path or file URI are invalid params', async () => {
  for (const p of ['relative/model.onnx', 'https://example.com/model.onnx', '']) {
    const e = await rejection(inspect(p));
    assert.equal(e.code, -32602, p); // JSON-RPC InvalidParams
  }
  const e = await rejection(rpc.sendRequest(Requests.inspect.method, {}));
  assert.equal(e.code, -32602);
});

/** The next publishDiagnostics for `uri` at document `version` (the server debounces edits; a second pass repeats a version). */
function nextDiagnostics(uri: string, version: number): Promise<{ range: { start: { line: number; character: number } }; code: string; severity: number; message: string }[]> {
  return new Promise((resolve) => {
    const sub = rpc.onNotification('textDocument/publishDiagnostics', (p: { uri: string; version?: number; diagnostics: never[] }) => {
      if (p.uri !== uri || p.version !== version) return;
      sub.dispose();
      resolve(p.diagnostics);
    });
  });
}

test('plan file: diagnostics as you type, resolved against the model the plan names', async () => {
  const planFile = path.join(dir, 'model.quant.yaml');
  const uri = pathToFileURL(planFile).href;
  const text = [
    'model: ./tiny-llama', //                                   line 0
    'budgett: { avg_bits: 4.5 }', //                            line 1: unknown key, did you mean budget
    'defaults: { format: int4_g128_asym }',
    'rules:',
    '  - match: "model.layers.*.self_attn.q_proj"', //          line 4: takes both q_proj tensors
    '    format: int8_ch_sym',
    '  - match: "model.layers.0.self_attn.q_proj"', //          line 6: shadowed by rule 1
    '    format: int4_g128_asym',
    '  - match: "model.layers.*.mlp.up_proj"', //               line 8: dead (no up_proj in this model)
    '    format: int9_bogus', //                                line 9: unknown format
    '',
  ].join('\n');
  let published = nextDiagnostics(uri, 1);
  await rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'quantplan', version: 1, text } });
  let diags = await published;
  const at = (code: string) => diags.filter((d) => d.code === code).map((d) => d.range.start.line);
  assert.deepEqual(at('unknown-key'), [1]);
  assert.match(diags.find((d) => d.code === 'unknown-key')!.message, /budget/);
  assert.deepEqual(at('shadowed-rule'), [6]);
  assert.deepEqual(at('dead-rule'), [8]);
  assert.deepEqual(at('unknown-format'), [9]);
  assert.ok(diags.every((d) => d.code !== 'model-path'), 'the model folder opens');

  // Point the plan at a model that does not exist: an error at the model value, on the next keystroke.
  published = nextDiagnostics(uri, 2);
  await rpc.sendNotification('textDocument/didChange', {
    textDocument: { uri, version: 2 },
    contentChanges: [{ range: { start: { line: 0, character: 7 }, end: { line: 0, character: 19 } }, text: './nope' }],
  });
  diags = await published;
  const modelDiag = diags.find((d) => d.range.start.line === 0);
  assert.ok(modelDiag, JSON.stringify(diags));
  assert.equal(modelDiag.severity, 1);
  assert.match(modelDiag.message, /nope/);
  await rpc.sendNotification('textDocument/didClose', { textDocument: { uri } });
});

test('shutdown then exit: the process ends with status 0', async () => {
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  await rpc.sendRequest('shutdown');
  await rpc.sendNotification('exit');
  assert.equal(await exited, 0, stderr);
});
