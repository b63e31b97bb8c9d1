// Scaled minifloat formats: fp8_e4m3, fp8_e5m2 (per tensor), fp8_*_ch (per output channel), fp6_e3m2, fp6_e2m3
// (per tensor) and fp4_e2m1_g32 (per group of 32).
// scale = amax / max-finite, element = ExMy round-to-nearest-even of w/scale saturating at ±max-finite
// (subnormals kept), deq = element·scale. Scales: fp32 per tensor and per channel (as deployed FP8 checkpoints
// store them; in fp16, amax/57344 would be an fp16 subnormal with few significant bits for every row with
// amax < 3.5), fp16 per group.
import type { FormatDef } from './define';
import { groupCount, type Grid, mapGroups } from './grid';
import * as minifloat from './minifloat';
import type { Minifloat } from './minifloat';
import * as roundTables from './round-table';
import * as rounding from './rounding';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element loops.
const { toFp16 } = minifloat;
const { roundTable } = roundTables;

/** amax of w[off … off+n). */
export function absMax(w: Float32Array, off: number, n: number): number {
  const end = off + n;
  let amax = 0;
  for (let i = off; i < end; i++) {
    const v = w[i];
    const a = v < 0 ? -v : v;
    if (a > amax) amax = a;
  }
  return amax;
}

// Elements round by table lookup (round-table.ts) on the bits of w/scale as a double, chunk by chunk: the definition
// rounds the double, and for scales that are not powers of two w/scale is not exact in float32.
const CHUNK = 1024;
const scaled = new Float64Array(CHUNK);
const scaledBits = new Uint32Array(scaled.buffer);
const { HI_WORD } = rounding;

/** w[off … off+n) as `f` values times `scale` (scale 0: all zero). */
export function qdqMinifloatRun(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, f: Minifloat, scale: number): void {
  const { shift, low, up, tie, value, signShift } = roundTable(f, 'f64');
  const inv = scale > 0 ? 1 / scale : 0;
  const hiAt = HI_WORD;
  for (let start = off; start < off + n; start += CHUNK) {
    const m = Math.min(CHUNK, off + n - start);
    for (let k = 0; k < m; k++) scaled[k] = w[start + k] * inv;
    for (let k = 0; k < m; k++) {
      const hi = scaledBits[2 * k + hiAt];
      const mag = hi & 0x7fffffff;
      const i = mag >>> shift;
      const c = (((mag & low) | scaledBits[2 * k + 1 - hiAt]) === 0 ? tie[i] : up[i]) | ((hi >>> 31) << signShift);
      out[start + k] = value[c] * scale;
      if (codes) codes[start + k] = c;
    }
  }
}

export type FpScaling = 'tensor' | 'channel' | number;

export function fpDef(f: Minifloat, scaling: FpScaling): FormatDef {
  const id = `fp${f.bits}_${f.name}${scaling === 'tensor' ? '' : scaling === 'channel' ? '_ch' : `_g${scaling}`}`;
  const where = scaling === 'tensor' ? 'fp32 scale per tensor' : scaling === 'channel' ? 'fp32 scale per output channel' : `fp16 scale per group of ${scaling}`;
  const rowLen = (grid: Grid) => (typeof scaling === 'number' ? scaling : Math.max(grid.cols, 1));
  return {
    id,
    family: 'fp',
    description: `FP${f.bits} ${f.name.toUpperCase()} elements (round half to even, saturating at ±${f.maxFinite}, subnormals kept), ${where} = amax/${f.maxFinite}`,
    granularity: scaling,
    bits(grid) {
      if (scaling === 'tensor') return f.bits * grid.numel + (grid.numel > 0 ? 32 : 0);
      return f.bits * grid.numel + (scaling === 'channel' ? 32 : 16) * groupCount(grid, rowLen(grid));
    },
    qdq(w, grid, out, codes) {
      if (scaling === 'tensor') {
        qdqMinifloatRun(w, out, codes, 0, w.length, f, Math.fround(absMax(w, 0, w.length) / f.maxFinite));
        return;
      }
      const round = scaling === 'channel' ? Math.fround : toFp16;
      mapGroups(w, out, codes, grid, rowLen(grid), (src, dst, c, off, n) => {
        qdqMinifloatRun(src, dst, c, off, n, f, round(absMax(src, off, n) / f.maxFinite));
      });
    },
  };
}
