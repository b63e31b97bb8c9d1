// `npm run bench`: speed and memory targets as ratios against a reference measured in the same run.
// Usage: node dist/bench.js [--only read|analysis|gram|sensitivity|allocate|lsp|gptq|jobs] [--keep]   (data lives in bench-data/, git-ignored)
import { statSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { openCheckpoint } from '../../server/src/formats/registry';
import { benchAllocate } from './allocate.bench';
import { benchDatafree } from './analysis.bench';
import { ensureFp16Checkpoint, BENCH_DATA } from './fixtures';
import { benchGptq } from './gptq.bench';
import { benchJobs } from './jobs.bench';
import { benchLsp } from './lsp.bench';
import { benchGram } from './runtime.bench';
import { benchSensitivity } from './sensitivity.bench';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const fmt = (x: number, d = 2) => x.toFixed(d);

/** 32 tensors of 4096×4096 fp16 = 1.07 GB. Values: a cheap deterministic pattern of finite halves with exponent
 * 0x20..0x3f (mostly small normal numbers), varied per tensor. */
function ensureReadCheckpoint(): string {
  return ensureFp16Checkpoint('read-1gb-f16.safetensors', 32, 4096, 4096, (i, bits) => {
    for (let j = 0; j < bits.length; j++) bits[j] = ((j * 2654435761 + i * 97) >>> 16) & 0xbfff;
  });
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
  const file = ensureReadCheckpoint();
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

const BENCHES: Record<string, () => Promise<void>> = { read: benchRead, analysis: benchDatafree, gram: benchGram, sensitivity: benchSensitivity, allocate: benchAllocate, lsp: benchLsp, gptq: benchGptq, jobs: benchJobs };

async function main(): Promise<void> {
  for (const [name, run] of Object.entries(BENCHES)) {
    if (only && only !== name) continue;
    await run();
  }
  if (!args.includes('--keep') && process.env.QUANTLENS_BENCH_KEEP !== '1') rmSync(BENCH_DATA, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
