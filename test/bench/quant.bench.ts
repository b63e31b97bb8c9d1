// Microbenchmark of the number formats (run by hand, not a test):
//   node --import tsx test/bench/quant.bench.ts [ids…]
// Times quantize→dequantize of a 4096×4096 Gaussian matrix (single thread) in both layouts and prints the
// relative error ‖ΔW‖²/‖W‖², on data with planted outlier input channels to show what +reorder/+had/+ol buy.
import { getFormat } from '../../server/src/quant/registry';

const ROWS = 4096;
/** Milliseconds of CPU time of this process: on a shared, overloaded machine closer to the real cost than wall time. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const COLS = 4096;

function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const m = 0.02 * Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = m * Math.cos(t);
    if (i + 1 < n) out[i + 1] = m * Math.sin(t);
  }
  return out;
}

function relErr(w: Float32Array, q: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < w.length; i++) {
    num += (q[i] - w[i]) ** 2;
    den += w[i] ** 2;
  }
  return num / den;
}

const ids = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [
  'int4_g128_asym', 'int4_g128_sym', 'int4_ch_asym', 'nf4_g64', 'fp8_e4m3', 'fp4_e2m1_g32', 'mxfp4', 'mxfp8_e4m3', 'mxint8',
  'nvfp4', 'bfp8_b32', 'int4_g128_asym+ol2', 'int4_g128_asym+reorder', 'mxfp4+had64', 'nvfp4+had16',
];
const w = gaussian(ROWS * COLS, 1);
// Planted outliers: every 97th input channel ×8 (the case +reorder and +had are for).
const wOut = Float32Array.from(w);
for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c += 97) wOut[r * COLS + c] *= 8;
const wT = new Float32Array(w.length); // the same matrix stored [in, out]
for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) wT[c * ROWS + r] = w[r * COLS + c];

// Reference in the same process: the bare int4 g128 asym round-trip loop (no fp16 scale, no checks, no strides),
// the floor any JS implementation could reach on this machine at this moment.
function bareInt4(x: Float32Array): number {
  const out = new Float32Array(x.length);
  const t = cpuMs();
  for (let off = 0; off < x.length; off += 128) {
    let mn = 0;
    let mx = 0;
    for (let i = off; i < off + 128; i++) {
      const v = x[i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    const scale = (mx - mn) / 15;
    const inv = 1 / scale;
    const zero = Math.round(-mn * inv);
    for (let i = off; i < off + 128; i++) out[i] = (Math.min(15, Math.max(0, Math.round(x[i] * inv) + zero)) - zero) * scale;
  }
  return cpuMs() - t;
}
const bare = Math.min(bareInt4(w), bareInt4(w), bareInt4(w));
console.log(`${ROWS}x${COLS}, ms = CPU time, best of 3 single-threaded runs; reference bare int4 loop: ${bare.toFixed(1)} ms`);
console.log('id'.padEnd(26), 'bits'.padStart(8), 'out_in ms'.padStart(10), '×bare'.padStart(6), 'in_out ms'.padStart(10), 'relErr'.padStart(10), 'relErr(outlier ch)'.padStart(19));
for (const id of ids) {
  const f = getFormat(id);
  const time = (x: Float32Array, shape: number[], layout: 'out_in' | 'in_out') => {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t = cpuMs();
      f.quantizeDequantize(x, shape, layout);
      best = Math.min(best, cpuMs() - t);
    }
    return best;
  };
  const tOut = time(w, [ROWS, COLS], 'out_in');
  const tIn = time(wT, [COLS, ROWS], 'in_out');
  const e = relErr(w, f.quantizeDequantize(w, [ROWS, COLS], 'out_in'));
  const eOut = relErr(wOut, f.quantizeDequantize(wOut, [ROWS, COLS], 'out_in'));
  console.log(
    id.padEnd(26), f.bitsPerWeight([ROWS, COLS], 'out_in').toFixed(4).padStart(8), tOut.toFixed(1).padStart(10),
    (tOut / bare).toFixed(2).padStart(6), tIn.toFixed(1).padStart(10), e.toExponential(3).padStart(10), eOut.toExponential(3).padStart(19),
  );
}
