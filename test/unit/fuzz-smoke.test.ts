// The reader fuzzer inside `npm test`: its own parts against hand-computed references (structure maps,
// varints, determinism, failure classification), a deterministic few-hundred-case run per checkpoint format (side
// inputs: fuzz-smoke-inputs.test.ts), and
// headers claiming 1 TiB, which every reader must refuse without allocating.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { inTempDir, tempDir } from '../fixtures/common';
import { encodeF32, GGML, ggufBytes, type GgufSpec } from '../fixtures/gguf';
import { PickleWriter, statePickle, writeTorchArchive, writeZip } from '../fixtures/pytorch';
import { safetensorsBytes } from '../fixtures/safetensors';
import { runCampaign } from '../fuzz/campaign';
import { caseSeed, readUint, readVarint, varintBytes } from '../fuzz/mutators';
import { ggufStructure } from '../fuzz/seeds/gguf';
import { modelAround, pb, protoStructure } from '../fuzz/seeds/onnx';
import { pickleOps, zipStructure } from '../fuzz/seeds/pytorch';
import { SELFTEST_ALLOC } from '../fuzz/selftest';
import { openAndRead } from '../fuzz/target';
import { casesRebuild, seedsAreValid, smokeRun } from '../fuzz/smoke';
import { CHECKPOINT_TARGETS } from '../fuzz/targets';

const TIB = 2 ** 40;
const MiB = 2 ** 20;

// ---------------------------------------------------------------------------------------------
// The fuzzer's own parts

test('varints encode as the protobuf spec says (7 bits per byte, little end first)', () => {
  assert.deepEqual([...varintBytes(300n)], [0xac, 0x02]);
  assert.deepEqual([...varintBytes(2n ** 40n)], [0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
  assert.equal(varintBytes(-1n).length, 10); // negative int64: ten bytes
  assert.equal(readVarint(Uint8Array.of(0xac, 0x02), 0), 300n);
  assert.equal(readUint(Uint8Array.of(0x01, 0x02, 0x03, 0x04), 0, 4), 0x04030201n);
});

test('case seeds are deterministic and differ between cases and formats', () => {
  assert.equal(caseSeed(1, 'onnx', 5), caseSeed(1, 'onnx', 5));
  const seen = new Set(Array.from({ length: 1000 }, (_, i) => caseSeed(1, 'onnx', i)));
  assert.equal(seen.size, 1000);
  assert.notEqual(caseSeed(1, 'onnx', 5), caseSeed(1, 'gguf', 5));
  assert.notEqual(caseSeed(1, 'onnx', 5), caseSeed(2, 'onnx', 5));
});

test('a case is rebuilt byte for byte from (seed, format, index)', () => casesRebuild(CHECKPOINT_TARGETS));

test('zip field map: local header sizes at +18/+22 and the end record, where writeZip put them', () => {
  const { dir, cleanup } = tempDir('quantlens-fuzz-');
  try {
    const file = path.join(dir, 'a.zip');
    const data = new Uint8Array(100).fill(7);
    const layout = writeZip(file, [{ name: 'a/data.pkl', data: Uint8Array.of(1, 2, 3) }, { name: 'a/data/0', data, align: 64 }]);
    const bytes = new Uint8Array(readFileSync(file));
    const { fields, points } = zipStructure(bytes);
    const at = (label: string) => fields.find((f) => f.label === label)?.at;
    const h1 = layout.get('a/data/0')!.headerOffset;
    assert.equal(at('local[1].csize'), h1 + 18);
    assert.equal(at('local[1].usize'), h1 + 22);
    assert.equal(readUint(bytes, h1 + 22, 4), 100n);
    assert.equal(at('eocd.cd_offset'), bytes.length - 22 + 16);
    assert.ok(points.includes(layout.get('a/data/0')!.dataOffset));

    writeZip(file, [{ name: 'a/data.pkl', data: Uint8Array.of(1) }], { zip64: true });
    const z64 = new Uint8Array(readFileSync(file));
    const labels = zipStructure(z64).fields.map((f) => f.label);
    for (const l of ['zip64.entries', 'zip64.cd_offset', 'zip64loc.record_offset', 'cd[0].zip64[0]', 'local[0].zip64[0]']) assert.ok(labels.includes(l), l);
  } finally {
    cleanup();
  }
});

test('pickle op map: opcode starts and argument fields of a hand-counted stream', () => {
  // PROTO 2 | BINUNICODE 'ab' | BINPUT 0 | BININT2 300 | STOP
  const w = new PickleWriter().proto(2).str('ab').int(300);
  const bytes = w.stop();
  const { ops, fields } = pickleOps(bytes);
  assert.deepEqual(ops, [0, 2, 9, 11, 14]);
  assert.deepEqual(
    fields.map((f) => [f.label, f.at, f.width]),
    [['PROTO', 1, 1], ['BINUNICODE.len', 3, 4], ['BINPUT', 10, 1], ['BININT2', 12, 2]],
  );
});

test('protobuf field map: finds graph.initializer.raw_data length right before its payload', () => {
  const payload = new Uint8Array(16).fill(0xab);
  const model = modelAround(pb.cat(pb.str(2, 'g'), pb.bytes(5, pb.cat(pb.int(1, 4), pb.int(2, 1), pb.str(8, 'w'), pb.bytes(9, payload)))));
  const start = Buffer.from(model).indexOf(Buffer.from(payload));
  const f = protoStructure(model).fields.find((x) => x.label === '7.5.9.len');
  assert.deepEqual(f && [f.at, f.width, f.varint], [start - 1, 1, true]);
});

test('GGUF field map: counts at bytes 8 and 16 (spec) and each dim where the writer put it', () => {
  const spec: GgufSpec = { kv: [['general.architecture', { type: 'STRING', value: 'llama' }]], tensors: [{ name: 't', ne: [3, 5], type: GGML.F32, data: encodeF32(new Float32Array(15)) }] };
  const s = ggufStructure(spec);
  const at = (label: string) => s.fields.find((f) => f.label === label)!.at;
  assert.equal(at('tensor_count'), 8);
  assert.equal(at('kv_count'), 16);
  assert.equal(readUint(s.bytes, at('t.ne[1]'), 8), 5n);
  assert.equal(readUint(s.bytes, at('kv general.architecture.str_len'), 8), 5n);
});

test('every seed is valid: it opens and reads before any mutation', () => seedsAreValid(CHECKPOINT_TARGETS));

// ---------------------------------------------------------------------------------------------
// The harness classifies every kind of failure (targets that misbehave on purpose)

test('harness: crashes, unlocated and path-less errors, hangs, stalls, late errors and huge allocations are caught', async () => {
  const { rows, failures } = await runCampaign({
    formats: ['selftest-ok', 'selftest-clean', 'selftest-unlocated', 'selftest-crash', 'selftest-pathless', 'selftest-late', 'selftest-hang', 'selftest-stall', 'selftest-alloc'],
    cases: 1, runSeed: 1, workers: 2, timeoutMs: 1000, growthLimit: SELFTEST_ALLOC / 2, killRss: 2 ** 32, sharedPool: true,
  });
  const counts = (name: string) => {
    const r = rows.find((x) => x.format === name)!;
    return { ok: r.ok, clean: r.clean, located: r.located, crashes: r.crashes, hangs: r.hangs, memory: r.memory };
  };
  const none = { ok: 0, clean: 0, located: 0, crashes: 0, hangs: 0, memory: 0 };
  assert.deepEqual(counts('selftest-ok'), { ...none, ok: 1 });
  assert.deepEqual(counts('selftest-clean'), { ...none, clean: 1, located: 1 });
  assert.deepEqual(counts('selftest-unlocated'), { ...none, clean: 1 });
  for (const name of ['selftest-crash', 'selftest-pathless', 'selftest-late']) assert.deepEqual(counts(name), { ...none, crashes: 1 }, name);
  for (const name of ['selftest-hang', 'selftest-stall']) assert.deepEqual(counts(name), { ...none, hangs: 1 }, name);
  assert.deepEqual(counts('selftest-alloc'), { ...none, memory: 1 });
  const sigs = failures.map((f) => f.signature).join('\n');
  assert.match(sigs, /selftest-crash crash: TypeError/);
  assert.match(sigs, /selftest-pathless crash: QuantLensError without the file path/);
  assert.match(sigs, /selftest-late crash: uncaught Error: late error/);
});

// ---------------------------------------------------------------------------------------------
// A deterministic run per format

test('fuzz smoke: 200 mutated inputs per checkpoint format, no crash, hang or huge allocation', () => smokeRun(CHECKPOINT_TARGETS, 200));

// ---------------------------------------------------------------------------------------------
// Headers claiming 1 TiB: refused with a located error, nothing allocated

/** Open+read `file` expecting a QuantLensError naming it; returns the error and how much RSS grew meanwhile. */
async function refusal(file: string): Promise<{ err: QuantLensError; growth: number }> {
  const rss = process.memoryUsage.rss();
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  const err = await openAndRead(file).then(
    () => assert.fail(`${file} was accepted`),
    (e: unknown) => e,
  );
  const maxAfter = process.resourceUsage().maxRSS * 1024;
  const growth = Math.max(process.memoryUsage.rss(), maxAfter > maxBefore ? maxAfter : 0) - rss;
  assert.ok(err instanceof QuantLensError, `expected a QuantLensError, got ${String((err as Error)?.stack ?? err)}`);
  assert.ok(err.message.includes(file), err.message);
  assert.ok(growth < 50 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  return { err, growth };
}

const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-fuzz-tib-', body);

test('1 TiB: safetensors header length 2^40 and data_offsets end 2^40 are refused', () =>
  inTemp(async (dir) => {
    const file = path.join(dir, 'len.safetensors');
    const bytes = safetensorsBytes({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
    new DataView(bytes.buffer).setBigUint64(0, BigInt(TIB), true);
    writeFileSync(file, bytes);
    assert.equal((await refusal(file)).err.where.offset, 0);

    const end = path.join(dir, 'end.safetensors');
    writeFileSync(end, safetensorsBytes({ w: { dtype: 'F32', shape: [TIB / 4], data_offsets: [0, TIB] } }, new Uint8Array(4)));
    assert.equal((await refusal(end)).err.where.tensor, 'w');
  }));

test('1 TiB: GGUF tensor count 2^40 and string lengths 2^40 are refused', () =>
  inTemp(async (dir) => {
    const spec: GgufSpec = {
      kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
      tensors: [{ name: 'w', ne: [4], type: GGML.F32, data: encodeF32([1, 2, 3, 4]) }],
    };
    const cases: [string, (b: DataView, layout: ReturnType<typeof ggufBytes>) => void][] = [
      ['count', (b) => b.setBigUint64(8, BigInt(TIB), true)], // tensor_count (spec: after magic and version)
      ['key', (b, l) => b.setBigUint64(l.kv[0].at, BigInt(TIB), true)], // the first key's length
      ['value', (b, l) => b.setBigUint64(l.kv[0].typeAt + 4, BigInt(TIB), true)], // the STRING value's length
      ['name', (b, l) => b.setBigUint64(l.tensors[0].at, BigInt(TIB), true)], // the tensor name's length
    ];
    for (const [what, patch] of cases) {
      const layout = ggufBytes(spec);
      patch(new DataView(layout.bytes.buffer), layout);
      const file = path.join(dir, `${what}.gguf`);
      writeFileSync(file, layout.bytes);
      await refusal(file);
    }
  }));

test('1 TiB: zip entries declaring 2^40 bytes uncompressed (data.pkl, a storage) are refused', () =>
  inTemp(async (dir) => {
    const spec = [{ name: 'w', storage: { key: '0', type: 'FloatStorage' as const, numel: 4 }, shape: [4] }];
    const pkl = statePickle(spec);
    const a = path.join(dir, 'pkl.pt');
    writeTorchArchive(a, pkl, [{ key: '0', bytes: new Uint8Array(16) }], { zip64: true, pklDeclaredSize: TIB });
    await refusal(a);

    const b = path.join(dir, 'storage.pt');
    writeZip(
      b,
      [
        { name: 'archive/data.pkl', data: pkl },
        { name: 'archive/data/0', data: new Uint8Array(16), declaredSize: TIB },
        { name: 'archive/version', data: new TextEncoder().encode('3\n') },
      ],
      { zip64: true },
    );
    await refusal(b);
  }));

test('1 TiB: an ONNX raw_data length varint of 2^40 is refused', () =>
  inTemp(async (dir) => {
    // TensorProto { dims 2, dims 2, data_type FLOAT, name "w", raw_data: length 2^40 (6-byte varint), 16 bytes }
    const tensor = pb.cat(pb.int(1, 2), pb.int(1, 2), pb.int(2, 1), pb.str(8, 'w'), pb.bytes(9, new Uint8Array(16), 2n ** 40n));
    const file = path.join(dir, 'raw.onnx');
    writeFileSync(file, modelAround(pb.cat(pb.str(2, 'g'), pb.bytes(5, tensor))));
    await refusal(file);
  }));
