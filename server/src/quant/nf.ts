// NormalFloat code books (QLoRA, Dettmers et al. 2023) with an fp16 absmax scale per group.
// Element: index of the nearest code-book value to w/scale (w/scale ∈ [−1, 1] up to the fp16 rounding of the
// scale); an exact tie between two codes goes to the lower index.
import type { FormatDef } from './define';
import { groupCount, mapGroups } from './grid';
import * as minifloat from './minifloat';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element and per-block loops.
const { toFp16 } = minifloat;

/** NF4 exactly as bitsandbytes stores it (float32 values of its create_normal_map(0.9677083) table). */
export const NF4 = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * Standard normal quantile, Wichura's AS 241 (Appl. Statist. 37(3), 1988), central and intermediate regions
 * (|z| ≤ ~5, relative accuracy ~1e-16) — all the code-book construction needs.
 */
export function normalQuantile(p: number): number {
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q *
        (((((((2509.0809287301227 * r + 33430.57558358813) * r + 67265.7709270087) * r + 45921.95393154987) * r +
          13731.69376550946) * r + 1971.5909503065513) * r + 133.14166789178438) * r + 3.3871328727963665)) /
      (((((((5226.495278852854 * r + 28729.085735721943) * r + 39307.89580009271) * r + 21213.794301586597) * r +
        5394.196021424751) * r + 687.1870074920579) * r + 42.31333070160091) * r + 1)
    );
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  if (!(r <= 5)) throw new Error(`normalQuantile(${p}): outside the supported range`);
  r -= 1.6;
  const z =
    (((((((0.0007745450142783414 * r + 0.022723844989269184) * r + 0.2417807251774506) * r + 1.2704582524523684) * r +
      3.6478483247632045) * r + 5.769497221460691) * r + 4.630337846156546) * r + 1.4234371107496835) /
    (((((((1.0507500716444169e-09 * r + 0.0005475938084995345) * r + 0.015198666563616457) * r + 0.14810397642748008) * r +
      0.6897673349851) * r + 1.6763848301838038) * r + 2.053191626637759) * r + 1);
  return q < 0 ? -z : z;
}

/**
 * The QLoRA construction for k bits: 2^(k−1) positive quantiles Φ⁻¹(linspace(offset, ½, 2^(k−1)+1)[:−1]),
 * 2^(k−1) − 1 negative ones −Φ⁻¹(linspace(offset, ½, 2^(k−1))[:−1]), and an exact 0, sorted and divided by the
 * largest. The default offset averages the two half-bin offsets as QLoRA does for 16 codes:
 * ½((1 − 1/(2(2^k − 1))) + (1 − 1/(2·2^k))) (= 0.96770833 for k = 4, 0.93303571 for k = 3).
 */
export function normalFloatCodebook(k: number, offset = 0.5 * (2 - 1 / (2 * (2 ** k - 1)) - 1 / (2 * 2 ** k))): Float32Array {
  const h = 2 ** (k - 1);
  const linspace = (n: number) => Array.from({ length: n - 1 }, (_, i) => offset + (i * (0.5 - offset)) / (n - 1));
  const pos = linspace(h + 1).map(normalQuantile);
  const neg = linspace(h).map((p) => -normalQuantile(p));
  const top = pos[0];
  return Float32Array.from([...neg, 0, ...pos].sort((a, b) => a - b).map((v) => v / top));
}

/** NF3: not published as a table anywhere authoritative; derived with the NF4 construction (see normalFloatCodebook). */
export const NF3 = normalFloatCodebook(3);

/**
 * Nearest-code lookup: midpoints between neighbouring codes, plus a table over 256 equal buckets of [−1, 1] giving
 * the number of midpoints below each bucket. The buckets are narrower than the gaps between NF3/NF4 midpoints, so
 * the table guess is almost always right or one off, and the correcting walk is a predictable branch rather than a
 * data-dependent binary search (2–3× faster).
 */
interface Lookup {
  book: Float32Array;
  mids: Float64Array;
  below: Int32Array;
}

const BUCKETS = 256;

function lookupFor(book: Float32Array): Lookup {
  const mids = new Float64Array(book.length - 1);
  for (let i = 0; i < mids.length; i++) mids[i] = (book[i] + book[i + 1]) / 2;
  const below = new Int32Array(BUCKETS);
  for (let b = 0; b < BUCKETS; b++) {
    const lo = -1 + (2 * b) / BUCKETS;
    let c = 0;
    while (c < mids.length && mids[c] < lo) c++;
    below[b] = c;
  }
  return { book, mids, below };
}

function qdqNfGroup(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, lk: Lookup): void {
  const { book, mids, below } = lk;
  const end = off + n;
  let amax = 0;
  for (let i = off; i < end; i++) {
    const v = w[i];
    const a = v < 0 ? -v : v;
    if (a > amax) amax = a;
  }
  const scale = toFp16(amax);
  const inv = scale > 0 ? 1 / scale : 0;
  const lastMid = mids.length - 1;
  for (let i = off; i < end; i++) {
    const x = w[i] * inv;
    let b = ((x + 1) * (BUCKETS / 2)) | 0;
    b = b < 0 ? 0 : b >= BUCKETS ? BUCKETS - 1 : b;
    let c = below[b];
    // Code c is right when mids[c−1] < x ≤ mids[c]; x on a midpoint stays with the lower code.
    while (c > 0 && x <= mids[c - 1]) c--;
    while (c <= lastMid && x > mids[c]) c++;
    out[i] = book[c] * scale;
    if (codes) codes[i] = c;
  }
}

export function nfDef(k: 3 | 4, group: number): FormatDef {
  const lk = lookupFor(k === 4 ? NF4 : NF3);
  return {
    id: `nf${k}_g${group}`,
    family: 'nf',
    description: `NormalFloat${k} (${k === 4 ? 'QLoRA/bitsandbytes' : 'QLoRA construction, 8 codes'}) code book, fp16 absmax scale per group of ${group}, nearest code (ties to the lower index)`,
    granularity: group,
    bits: (grid) => k * grid.numel + 16 * groupCount(grid, group),
    qdq(w, grid, out, codes) {
      mapGroups(w, out, codes, grid, group, (src, dst, c, off, n) => qdqNfGroup(src, dst, c, off, n, lk));
    },
  };
}
