// Uniform integer formats int{b}_g{g}_{sym,asym} and int{b}_ch_{sym,asym} with fp16 scales (and b-bit zero points).
//
// Symmetric: scale = fp16(max|w| / (2^(b−1) − 1)), q = clamp(rne(w/scale), −2^(b−1), 2^(b−1) − 1), deq = q·scale.
//   The code −2^(b−1) is only reached when the fp16 rounding shrinks the scale by more than a factor
//   1 + 1/(2^b − 2), i.e. for fp16-subnormal scales of a few ulps (int4: group amax below ~7.5·7·2^−24 ≈ 3e−6);
//   otherwise |w/scale| stays within half a step of 2^(b−1) − 1 (normal fp16 scales round by ≤ 2^−11).
// Asymmetric: the range is widened to contain 0 (min ← min(min, 0), max ← max(max, 0), as GPTQ does) so that
//   0 is exact and a group of one sign is not clipped by a clamped zero point;
//   scale = fp16((max − min)/(2^b − 1)), zero = clamp(rne(−min/scale), 0, 2^b − 1),
//   q = clamp(rne(w/scale) + zero, 0, 2^b − 1), deq = (q − zero)·scale.
// A group whose fp16 scale is 0 (all zeros, or a range below fp16's smallest subnormal·qmax) dequantizes to 0.
// Bits: b per element + 16 per group (sym) or 16 + b per group (asym); a partial last group pays a full scale.
import type { Grid } from './grid';
import { groupCount, mapGroups } from './grid';
import * as minifloat from './minifloat';
import * as rounding from './rounding';
import type { FormatDef } from './define';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element and per-block loops.
const { MAGIC } = rounding;
const { toFp16 } = minifloat;

function qdqSym(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, bits: number): void {
  const end = off + n;
  let amax = 0;
  for (let i = off; i < end; i++) {
    const v = w[i];
    const a = v < 0 ? -v : v;
    if (a > amax) amax = a;
  }
  const qmax = 2 ** (bits - 1) - 1;
  const qmin = -qmax - 1;
  const scale = toFp16(amax / qmax);
  const inv = scale > 0 ? 1 / scale : 0; // scale 0: every q is 0
  for (let i = off; i < end; i++) {
    let x = w[i] * inv;
    x = x < qmin ? qmin : x > qmax ? qmax : x;
    const q = x + MAGIC - MAGIC;
    out[i] = q * scale;
    if (codes) codes[i] = q;
  }
}

function qdqAsym(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, bits: number): void {
  const end = off + n;
  let mn = 0;
  let mx = 0;
  for (let i = off; i < end; i++) {
    const v = w[i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const qmax = 2 ** bits - 1;
  const scale = toFp16((mx - mn) / qmax);
  const inv = scale > 0 ? 1 / scale : 0;
  let zero = -mn * inv + MAGIC - MAGIC;
  zero = zero < 0 ? 0 : zero > qmax ? qmax : zero;
  const lo = -zero;
  const hi = qmax - zero;
  for (let i = off; i < end; i++) {
    let x = w[i] * inv;
    x = x < lo ? lo : x > hi ? hi : x;
    const q = x + MAGIC - MAGIC; // rne(w/scale) clamped so that q + zero ∈ [0, qmax]
    out[i] = q * scale;
    if (codes) codes[i] = q + zero;
  }
}

export function intDef(bits: number, group: number | 'channel', sym: boolean): FormatDef {
  const kind = sym ? 'sym' : 'asym';
  const id = `int${bits}_${group === 'channel' ? 'ch' : `g${group}`}_${kind}`;
  const per = group === 'channel' ? 'per output channel' : `per group of ${group} along the input axis`;
  const description = sym
    ? `${bits}-bit symmetric integer, fp16 scale max|w|/${2 ** (bits - 1) - 1} ${per}, q=clamp(rne(w/s),-${2 ** (bits - 1)},${2 ** (bits - 1) - 1})`
    : `${bits}-bit asymmetric integer, fp16 scale (max-min)/${2 ** bits - 1} and ${bits}-bit zero point ${per} (range widened to include 0), round half to even`;
  const len = (grid: Grid) => (group === 'channel' ? Math.max(grid.cols, 1) : group);
  const kernel = sym ? qdqSym : qdqAsym;
  return {
    id,
    family: 'int',
    description,
    granularity: group,
    bits: (grid) => bits * grid.numel + (sym ? 16 : 16 + bits) * groupCount(grid, len(grid)),
    qdq(w, grid, out, codes) {
      mapGroups(w, out, codes, grid, len(grid), (src, dst, c, off, n) => kernel(src, dst, c, off, n, bits));
    },
  };
}
