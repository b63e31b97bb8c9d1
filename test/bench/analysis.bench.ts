// Data-free analysis benchmark: a 1.07 GB fp16 safetensors checkpoint (32 × 4096×4096), the 8 default formats.
// Prints throughput, peak RSS, the sampled-mode speed-up, and the ratio against a numpy reference of the same
// metrics (test/helpers/datafree_ref.py, run here via python3 when numpy is installed).
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { analyzeCheckpoint, defaultThreads, type AnalysisReport, type DatafreeOptions } from '../../server/src/analysis';
import { toF16Bits } from '../fixtures/common';
import { ensureFp16Checkpoint } from './fixtures';

const TENSORS = 32;
const ROWS = 4096;
const COLS = 4096;
/** Tensors the numpy comparison scores (numpy is slow; both sides score the same ones). */
const REF_TENSORS = 8;

const fmt = (x: number, d = 2) => x.toFixed(d);
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;

/**
 * 32 fp16 tensors of 4096×4096, Gaussian-like (σ = 0.02·(1 + i/32)) from a 64 K-entry table of normal quantiles
 * indexed by a hash, with outlier input channels (every 509th column ×12) and one super weight per tensor.
 */
export function ensureAnalysisCheckpoint(): string {
  // 64 K standard normal values: Box–Muller on a fixed lattice of (u, v) pairs.
  const table = new Float64Array(65536);
  for (let k = 0; k < 65536; k += 2) {
    const u = (((k * 40503) & 0xffff) + 0.5) / 65536;
    const v = (k + 0.5) / 65536;
    const m = Math.sqrt(-2 * Math.log(u));
    table[k] = m * Math.cos(2 * Math.PI * v);
    table[k + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return ensureFp16Checkpoint('analysis-1gb-f16.safetensors', TENSORS, ROWS, COLS, (i, u16) => {
    const std = 0.02 * (1 + i / TENSORS);
    const bits = new Uint16Array(65536);
    for (let k = 0; k < 65536; k++) bits[k] = toF16Bits(table[k] * std);
    let s = (i + 1) * 0x9e3779b9;
    for (let j = 0; j < u16.length; j++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      u16[j] = bits[s >>> 16];
    }
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c += 509) u16[r * COLS + c] = toF16Bits(12 * table[(r * 31 + c) & 0xffff] * std);
    u16[((i * 97) % ROWS) * COLS + ((i * 389) % COLS)] = toF16Bits(1000 * std);
  });
}

async function timed(file: string, opts: Partial<DatafreeOptions>): Promise<{ report: AnalysisReport; s: number }> {
  const t0 = process.hrtime.bigint();
  const { report } = await analyzeCheckpoint(file, opts, { cacheDir: false });
  return { report, s: Number(process.hrtime.bigint() - t0) / 1e9 };
}

interface RefResult {
  weights: number;
  seconds: Record<string, number>;
  tensors: { name: string; stats: { kurtosis: number; outlierShare: number; maxOverStd: number }; errors: Record<string, { relMse: number; maxAbsErr: number; entropyBits: number }> }[];
}

function numpyRef(file: string): RefResult | undefined {
  const script = path.resolve('test/helpers/datafree_ref.py');
  const r = spawnSync('python3', [script, file, '--max-tensors', String(REF_TENSORS)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.log(`  numpy reference not run: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`);
    return undefined;
  }
  return JSON.parse(r.stdout) as RefResult;
}

/** Read the file once in 16 MiB chunks (page cache), without holding it. */
function warm(file: string): void {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(16 << 20);
  for (let pos = 0; ; ) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    pos += n;
  }
  closeSync(fd);
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

export async function benchDatafree(): Promise<void> {
  const file = ensureAnalysisCheckpoint();
  const size = statSync(file).size;
  warm(file); // every variant below reads from the page cache
  const weights = TENSORS * ROWS * COLS;
  const threads = defaultThreads();
  console.log(`analysis: ${fmt(size / 1e9)} GB fp16 safetensors, ${TENSORS} tensors ${ROWS}×${COLS}, ${threads} worker threads`);

  const rssBefore = peakRssMiB();
  const full = await timed(file, {});
  const rss = peakRssMiB();
  console.log(`  full scan, 8 default formats + stats + high-impact/promotion curves: ${fmt(full.s, 1)} s`);
  console.log(`    ${fmt(size / full.s / 1e9, 3)} GB/s · ${fmt(weights / full.s / 1e6, 1)} M weights/s`);
  const tensorMiB = (ROWS * COLS * 2) / 2 ** 20;
  console.log(`    peak RSS ${fmt(rss, 0)} MiB (before: ${fmt(rssBefore, 0)} MiB); bound 2 × largest tensor + 300 MiB = ${fmt(2 * tensorMiB + 300, 0)} MiB (fp16) / ${fmt(4 * tensorMiB + 300, 0)} MiB (float32)`);
  const lite = await timed(file, { highImpact: false });
  console.log(`  full scan without high-impact curves: ${fmt(lite.s, 1)} s · ${fmt(weights / lite.s / 1e6, 1)} M weights/s`);

  const sampled = await timed(file, { sample: 0.05 });
  const f0 = full.report.formats[0].id;
  // Coverage over three seeds (the first is the timed run): 96 intervals, ~5 misses expected at 95 %.
  let miss = 0;
  let count = 0;
  const reports = [sampled.report];
  for (const seed of [1, 2]) reports.push((await timed(file, { sample: 0.05, seed })).report);
  for (const report of reports) {
    for (const [i, l] of report.layers.entries()) {
      const [lo, hi] = l.errors[f0].ci!;
      const v = full.report.layers[i].errors[f0].relMse;
      if (v < lo || v > hi) miss++;
      count++;
    }
  }
  console.log(`  sampled 5 %: ${fmt(sampled.s, 2)} s → speed-up ${fmt(full.s / sampled.s, 1)}× over the full scan, ${fmt(lite.s / sampled.s, 1)}× over the full scan without curves (target ≥ 20×)`);
  console.log(`    ${f0} full value outside the 95 % interval in ${miss}/${count} layers × seeds 0, 1, 2 (expected ≈ ${fmt(count * 0.05, 1)})`);

  const ref = numpyRef(file);
  if (!ref) return;
  const names = ref.tensors.map((t) => t.name);
  const only = `^(${names.map((n) => n.replace(/[.]/g, '\\.')).join('|')})$`;
  for (const id of ['int4_g128_asym', 'mxfp4']) {
    const js = await timed(file, { formats: [id], highImpact: false, only });
    const npS = ref.seconds.read + ref.seconds.stats + ref.seconds[id];
    let worst = 0;
    for (const t of ref.tensors) {
      const l = js.report.layers.find((x) => x.name === t.name)!;
      worst = Math.max(worst, relDiff(l.errors[id].relMse, t.errors[id].relMse), relDiff(l.errors[id].entropyBits, t.errors[id].entropyBits));
    }
    console.log(
      `  ${id.padEnd(15)} ${REF_TENSORS} tensors, stats + relMse/maxAbsErr/entropy: QuantLens ${fmt(ref.weights / js.s / 1e6, 1)} M/s, ` +
        `numpy ${fmt(ref.weights / npS / 1e6, 1)} M/s (format alone ${fmt(ref.weights / ref.seconds[id] / 1e6, 1)} M/s) → ${fmt(npS / js.s, 1)}× (target ≥ 4×); max rel. diff ${worst.toExponential(1)}`,
    );
  }
  let statDiff = 0;
  for (const t of ref.tensors) {
    const l = full.report.layers.find((x) => x.name === t.name)!;
    statDiff = Math.max(statDiff, relDiff(l.stats.kurtosis, t.stats.kurtosis), relDiff(l.stats.outlierShare, t.stats.outlierShare), relDiff(l.stats.maxOverStd, t.stats.maxOverStd));
  }
  console.log(`  stats (kurtosis, outlier share, max/σ) vs numpy: max rel. diff ${statDiff.toExponential(1)}`);
}
