// `npm run bench`: speed and memory targets as ratios against a reference measured in the same run.
// Usage: node dist/bench.js [--only read|analysis|gram|sensitivity|allocate|lsp] [--keep]   (data lives in bench-data/, git-ignored)
import { existsSync, mkdirSync, openSync, closeSync, writeSync, statSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { openCheckpoint } from '../../server/src/formats/registry';
import { benchAllocate } from './allocate.bench';
import { benchDatafree } from './analysis.bench';
import { benchLsp } from './lsp.bench';
import { benchGram } from './runtime.bench';
import { benchSensitivity } from './sensitivity.bench';

const DATA = path.resolve(process.env.QUANTLENS_BENCH_DATA ?? 'bench-data');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const fmt = (x: number, d = 2) => x.toFixed(d);

/** 32 tensors of 4096×4096 fp16 = 1.07 GB, written once and reused. Values: a cheap deterministic pattern. */
function ensureFp16Checkpoint(): string {
  const file = path.join(DATA, 'read-1gb-f16.safetensors');
  const n = 32;
  const rows = 4096;
  const cols = 4096;
  const bytesPer = rows * cols * 2;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (let i = 0; i < n; i++) {
    header[`model.layers.${i >> 2}.mlp.proj${i & 3}.weight`] = { dtype: 'F16', shape: [rows, cols], data_offsets: [i * bytesPer, (i + 1) * bytesPer] };
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const expected = 8 + json.length + n * bytesPer;
  if (existsSync(file) && statSync(file).size === expected) return file;
  mkdirSync(DATA, { recursive: true });
  const fd = openSync(file, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, len);
  writeSync(fd, json);
  const chunk = Buffer.alloc(bytesPer);
  const u16 = new Uint16Array(chunk.buffer, chunk.byteOffset, bytesPer / 2);
  for (let i = 0; i < n; i++) {
    // Finite halves with exponent 0x20..0x3f: mostly small normal numbers, varied per tensor.
    for (let j = 0; j < u16.length; j++) u16[j] = ((j * 2654435761 + i * 97) >>> 16) & 0xbfff;
    writeSync(fd, chunk);
  }
  closeSync(fd);
  return file;
}

/** Reference: plain sequential read of the same bytes in 16 MiB chunks (no decoding). */
async function rawRead(file: string): Promise<number> {
  const fh = await open(file, 'r');
  const buf = Buffer.alloc(16 << 20);
  let total = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, total);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  await fh.close();
  return total;
}

/** QuantLens: open via the registry and decode every tensor to float32, one row block at a time (bounded memory). */
async function readerRead(file: string): Promise<number> {
  const ck = await openCheckpoint(file);
  let decoded = 0;
  let checksum = 0;
  for (const t of ck.tensors) {
    const step = 1 << 22; // 4 M elements = 8 MB of fp16 per read
    for (let start = 0; start < t.params; start += step) {
      const x = await ck.read(t.name, { start, count: Math.min(step, t.params - start) });
      checksum += x[0];
      decoded += x.length;
    }
  }
  await ck.close();
  if (!Number.isFinite(checksum)) throw new Error('decoded non-finite values');
  return decoded * 2;
}

async function timeIt<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await f();
  return [r, Number(process.hrtime.bigint() - t0) / 1e9];
}

async function benchRead(): Promise<void> {
  const file = ensureFp16Checkpoint();
  const size = statSync(file).size;
  await rawRead(file); // warm the page cache so both sides read from memory
  const [rawBytes, rawS] = await timeIt(() => rawRead(file));
  const rssBefore = peakRssMiB();
  const [decBytes, decS] = await timeIt(() => readerRead(file));
  const rawGBs = rawBytes / rawS / 1e9;
  const decGBs = decBytes / decS / 1e9;
  console.log(`read: ${fmt(size / 1e9)} GB fp16 safetensors, 32 tensors 4096×4096`);
  console.log(`  raw sequential read        ${fmt(rawGBs)} GB/s  (${fmt(rawS)} s)`);
  console.log(`  QuantLens read → float32   ${fmt(decGBs)} GB/s  (${fmt(decS)} s)`);
  console.log(`  ratio QuantLens / raw      ${fmt(decGBs / rawGBs)}×`);
  console.log(`  peak RSS ${fmt(peakRssMiB(), 0)} MiB (before reader pass ${fmt(rssBefore, 0)} MiB; file ${fmt(size / 2 ** 20, 0)} MiB)`);
}

const BENCHES: Record<string, () => Promise<void>> = { read: benchRead, analysis: benchDatafree, gram: benchGram, sensitivity: benchSensitivity, allocate: benchAllocate, lsp: benchLsp };

async function main(): Promise<void> {
  for (const [name, run] of Object.entries(BENCHES)) {
    if (only && only !== name) continue;
    await run();
  }
  if (!args.includes('--keep') && process.env.QUANTLENS_BENCH_KEEP !== '1') rmSync(DATA, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
