// GPTQ benchmark (`--only gptq`): a 4096×4096 layer with the Hessian of 2048 correlated calibration rows, QuantLens
// (server/src/jobs/gptq.ts) against the numpy reference test/bench/gptq_ref.py on the same W, H and settings
// (int4_g128_asym, block 128, damping 0.01, no act-order) in the same run. Agreement first, on a small layer where
// both sides compute in float64 (the codes must be identical, else the bench fails), then on the big one
// (QuantLens's lazy update runs in float32 there: rounding flips are possible) with the layer-output error
// tr(ΔW H ΔWᵀ) of both and of round-to-nearest.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { blockedInverseUpperFactor, gptqQuantize } from '../../server/src/jobs/gptq';
import { getFormat } from '../../server/src/quant';
import { gram } from '../../server/src/runtime/kernels';
import { traceScore } from '../../server/src/sensitivity/hessian';
import { randn } from '../fixtures/common';

const SIZE = 4096;
const CALIB_ROWS = 2048;
const SMALL = { rows: 192, cols: 256 };
const BLOCK = 128;
const DAMP = 0.01;
const FORMAT = 'int4_g128_asym';

interface RefRun {
  codes: Int32Array;
  values: Float32Array;
  seconds: { factor: number; quantize: number; total: number };
  version: string;
}

/** H = (2/N)·XᵀX of N rows with per-input scales and a shared factor (inputs correlated, as activations are). */
async function hessian(d: number, n: number, seed: number): Promise<Float64Array> {
  const x = randn(n * d, seed, 1);
  const shared = randn(n, seed + 1, 1);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) x[r * d + j] = x[r * d + j] * (0.5 + (j % 7) / 4) + 0.8 * shared[r];
  const g = await gram(x, n, d);
  return Float64Array.from(g, (v) => (2 / n) * v);
}

/** The numpy reference on (W [rows, cols] out×in, H), or why it did not run. */
function numpyGptq(w: Float32Array, h: Float64Array, rows: number, cols: number, format: { bits: number; group: number; sym: boolean }): RefRun | string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quantlens-gptq-'));
  try {
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ rows, cols, ...format, block: BLOCK, damp: DAMP }));
    writeFileSync(path.join(dir, 'w.bin'), w);
    writeFileSync(path.join(dir, 'h.bin'), h);
    const r = spawnSync('python3', [path.resolve('test/bench/gptq_ref.py'), dir], { encoding: 'utf8' });
    if (r.error) return `python3 not runnable (${r.error.message})`;
    if (r.status !== 0) return /No module named .?numpy/.test(r.stderr) ? 'numpy is not installed' : `python3 failed: ${r.stderr.trim().split('\n').pop()}`;
    const out = JSON.parse(r.stdout) as Omit<RefRun, 'codes' | 'values'>;
    const codes = readFileSync(path.join(dir, 'codes.bin'));
    const values = readFileSync(path.join(dir, 'values.bin'));
    return { ...out, codes: new Int32Array(codes.buffer, codes.byteOffset, codes.length / 4), values: new Float32Array(values.buffer, values.byteOffset, values.length / 4) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const same = (a: Int32Array, b: Int32Array) => a.reduce((n, c, i) => n + (c === b[i] ? 1 : 0), 0);

async function outputError(w: Float32Array, q: Float32Array, h: Float64Array, n: number): Promise<number> {
  const delta = Float32Array.from(q, (v, i) => v - w[i]);
  return traceScore({ values: w, shape: [n, n], layout: 'out_in', H: [h], where: { file: '<bench>' } }, delta);
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
}

export async function benchGptq(): Promise<void> {
  console.log(`gptq: ${FORMAT}, block ${BLOCK}, damping ${DAMP}, no act-order; ${os.availableParallelism()} cores`);
  const settings = [
    { id: FORMAT, bits: 4, group: 128, sym: false },
    { id: 'int4_ch_sym', bits: 4, group: 0, sym: true },
  ];
  // Small layer: float64 factorization and lazy update on both sides (QuantLens's JS paths).
  const hs = await hessian(SMALL.cols, 512, 11);
  const ws = randn(SMALL.rows * SMALL.cols, 12, 0.02);
  for (const s of settings) {
    const js = await gptqQuantize(ws, [SMALL.rows, SMALL.cols], 'out_in', getFormat(s.id), [hs], { blockSize: BLOCK, damp: DAMP });
    const ref = numpyGptq(ws, hs, SMALL.rows, SMALL.cols, s);
    if (typeof ref === 'string') {
      console.log(`  numpy reference not run: ${ref}`);
      break;
    }
    let maxDiff = 0;
    for (let i = 0; i < js.values.length; i++) maxDiff = Math.max(maxDiff, Math.abs(js.values[i] - ref.values[i]));
    const n = same(js.codes, ref.codes);
    console.log(`  agreement ${SMALL.rows}×${SMALL.cols} ${s.id.padEnd(14)} identical codes ${n}/${js.codes.length}, max |Δ value| ${maxDiff.toExponential(1)}`);
    if (n !== js.codes.length) throw new Error(`GPTQ disagrees with the numpy reference on ${js.codes.length - n} codes (${s.id}, float64 on both sides)`);
  }

  const [h, hS] = await timed(() => hessian(SIZE, CALIB_ROWS, 21));
  const w = randn(SIZE * SIZE, 22, 0.02);
  console.log(`  layer ${SIZE}×${SIZE}, H from ${CALIB_ROWS} rows (built in ${hS.toFixed(1)} s)`);
  const [, factorS] = await timed(() => blockedInverseUpperFactor(h, SIZE, DAMP, {}, { file: '<bench>' }));
  const [js, jsS] = await timed(() => gptqQuantize(w, [SIZE, SIZE], 'out_in', getFormat(FORMAT), [h], { blockSize: BLOCK, damp: DAMP }));
  console.log(`  QuantLens  ${jsS.toFixed(2)} s (factorization alone ${factorS.toFixed(2)} s)`);
  const ref = numpyGptq(w, h, SIZE, SIZE, settings[0]);
  const rtn = getFormat(FORMAT).quantizeDequantize(w, [SIZE, SIZE], 'out_in');
  const errJs = await outputError(w, js.values, h, SIZE);
  const errRtn = await outputError(w, rtn, h, SIZE);
  if (typeof ref === 'string') {
    console.log(`  numpy reference not run: ${ref}`);
    console.log(`  layer-output error tr(ΔW H ΔWᵀ): GPTQ ${errJs.toExponential(3)}, RTN ${errRtn.toExponential(3)}`);
    return;
  }
  const t = ref.seconds;
  console.log(`  numpy ${ref.version}  ${t.total.toFixed(2)} s (factorization ${t.factor.toFixed(2)} s, quantize ${t.quantize.toFixed(2)} s) → QuantLens ${(t.total / jsS).toFixed(2)}× numpy's speed`);
  const errRef = await outputError(w, ref.values, h, SIZE);
  const n = same(js.codes, ref.codes);
  console.log(`  identical codes ${n}/${js.codes.length} (${((100 * n) / js.codes.length).toFixed(3)} %)`);
  console.log(`  layer-output error tr(ΔW H ΔWᵀ): QuantLens ${errJs.toExponential(4)}, numpy ${errRef.toExponential(4)} (rel. diff ${(Math.abs(errJs - errRef) / errRef).toExponential(1)}), RTN ${errRtn.toExponential(4)}`);
}
