import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, beforeEach, test } from 'node:test';
import { clearFailures, explainFailure, knownFailure, offeredProviders, oneLine } from '../../server/src/runtime/providers';
import { createSession, releaseSessions } from '../../server/src/runtime/session';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { QuantLensError } from '../../server/src/formats/errors';

/** y = x + 1 on a float32 vector: the smallest model that proves a session runs. */
function plusOne(): Uint8Array {
  const g = new GraphBuilder('plus-one');
  g.input('x', 'float32', ['n']);
  g.node('Add', ['x', g.initializer('one', new Float32Array([1]), [1])], ['y']);
  g.output('y', 'float32', ['n']);
  return g.build();
}

async function computesPlusOne(session: import('onnxruntime-node').InferenceSession): Promise<void> {
  const ort = await import('onnxruntime-node');
  const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 2.5]), [2]) });
  assert.deepEqual([...(out.y.data as Float32Array)], [2, 3.5]);
}

beforeEach(() => clearFailures());
after(() => releaseSessions());

/** Whether onnxruntime-node's postinstall fetched the CUDA provider libraries (it did not here: offline). */
const cudaLibsInstalled = existsSync(path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_shared.so'));

test('listSupportedBackends in onnxruntime-node 1.30 on linux/x64 offers cpu, webgpu, cuda, tensorrt', () => {
  if (process.platform === 'linux' && process.arch === 'x64') assert.deepEqual(offeredProviders().sort(), ['cpu', 'cuda', 'tensorrt', 'webgpu']);
  else assert.ok(offeredProviders().includes('cpu'));
});

test("['cuda','cpu'] falls back to cpu and says why CUDA failed, in plain words", async () => {
  const r = await createSession(plusOne(), { providers: ['cuda', 'cpu'] });
  if (cudaLibsInstalled) {
    // A CUDA-enabled install: either CUDA runs or its failure is still one plain line.
    assert.ok(r.provider === 'cuda' || /^CUDA /.test(r.attempts[0].error ?? ''));
    await computesPlusOne(r.session);
    return;
  }
  // The provider libraries are not installed: known without trying (no native error on stderr), CPU runs.
  assert.equal(r.provider, 'cpu');
  assert.equal(r.attempts.length, 2);
  assert.deepEqual(r.attempts[0], { provider: 'cuda', ok: false, skipped: true, error: 'CUDA provider library not found (libonnxruntime_providers_shared.so)', ms: 0 });
  assert.deepEqual({ provider: r.attempts[1].provider, ok: r.attempts[1].ok }, { provider: 'cpu', ok: true });
  assert.ok(r.attempts.every((a) => a.ms >= 0 && Number.isFinite(a.ms)));
  await computesPlusOne(r.session);
  await r.session.release();
});

test("['cpu'] only: one attempt, on cpu", async () => {
  const r = await createSession(plusOne(), { providers: ['cpu'], threads: 1 });
  assert.equal(r.provider, 'cpu');
  assert.deepEqual(r.attempts.map((a) => [a.provider, a.ok]), [['cpu', true]]);
  await computesPlusOne(r.session);
  await r.session.release();
});

test("an unknown name 'foo' is reported as unknown and skipped; CPU is appended when missing", async () => {
  const r = await createSession(plusOne(), { providers: [' Foo ', 'dml'] });
  assert.equal(r.provider, 'cpu');
  assert.deepEqual(r.attempts.map((a) => [a.provider, a.ok, a.skipped]), [['foo', false, true], ['dml', false, true], ['cpu', true, undefined]]);
  assert.match(r.attempts[0].error!, /^unknown execution provider 'foo' \(offered: .*cpu/);
  assert.match(r.attempts[1].error!, /^'dml' is not part of onnxruntime-node on /);
  await r.session.release();
});

test('webgpu without an adapter is explained, then cpu runs', async () => {
  const r = await createSession(plusOne(), { providers: ['webgpu'] });
  assert.ok(r.provider === 'webgpu' || r.provider === 'cpu');
  if (r.provider === 'cpu') assert.match(r.attempts[0].error!, /^no WebGPU adapter/);
  await computesPlusOne(r.session);
  await r.session.release();
});

test('a broken model fails with a located error listing every attempt, and is not blamed on the provider', async () => {
  await assert.rejects(createSession(new Uint8Array([1, 2, 3, 4]), { providers: ['cuda', 'cpu'] }), (e: unknown) => {
    assert.ok(e instanceof QuantLensError);
    assert.equal(e.code, 'session-failed');
    assert.match(e.message, /^<generated graph>: onnxruntime could not load the model \(cuda: .*; cpu: /);
    return true;
  });
  // CPU failed too, so the model is at fault: CUDA is not marked as unavailable.
  assert.equal(knownFailure('cuda'), undefined);
  await assert.rejects(createSession(plusOne(), { providers: ['cpu'], threads: 0 }), /thread count must be an integer/);
});

test('failure messages: one line, source paths dropped, known causes translated', () => {
  assert.equal(oneLine('\n  /onnxruntime_src/onnxruntime/core/x.cc:136 Foo   bar\nsecond line'), 'Foo bar');
  assert.equal(oneLine('x'.repeat(300)).length, 200);
  assert.equal(explainFailure('webgpu', 'webgpu_context.cc:136 ... Failed to get a WebGPU adapter: No supported adapters'), 'no WebGPU adapter (Vulkan/Metal/D3D12 not available)');
  assert.equal(explainFailure('qnn', 'no available backend found. ERR: [qnn] backend not found.'), "'qnn' is not available in this onnxruntime-node build");
});
