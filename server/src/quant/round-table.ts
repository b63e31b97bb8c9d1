// Round-to-nearest-even onto a minifloat element type as table lookups on a number's bit pattern.
//
// Index: the exponent and the top m+1 mantissa bits of the input (sign cleared), for a float32 or for the high word
// of a double. Every rounding midpoint of the element type (a grid value plus half its spacing, in the subnormal
// range too) has at most m+1 significant bits, so it falls on an index boundary: the inputs of one index either all
// round alike (`up`) or, when every bit below the index is zero, sit exactly on a possible midpoint (`tie`). Both
// tables are filled by `roundMinifloat` itself, so lookups equal it bit for bit; values beyond maxFinite saturate
// as it does. test/unit/quant-minifloat-table.test.ts checks grid values, midpoints and neighbours.
import { minifloatCode, roundMinifloat, type Minifloat } from './minifloat';
import { HI_WORD } from './rounding';

export interface RoundTable {
  /** Right shift of the (high) word giving the index. */
  shift: number;
  /** Word bits below the index. */
  low: number;
  /** Index bits per binade (m + 1): an exponent change of k moves the index by k << binadeBits. */
  binadeBits: number;
  /** Magnitude code when some bit below the index is set / when all are zero. */
  up: Uint8Array;
  tie: Uint8Array;
  /** Value of each full code (sign bit at signShift); −0 codes give +0, as roundMinifloat does. */
  value: Float64Array;
  signShift: number;
}

/** 'f32': index of a float32's bits; 'f64': index of a double's high word (the low word joins the sticky bits). */
export type WordLayout = 'f32' | 'f64';

const cache = new Map<string, RoundTable>();

export function roundTable(f: Minifloat, layout: WordLayout): RoundTable {
  const key = `${f.name}:${layout}`;
  const hit = cache.get(key);
  if (hit) return hit;
  if (f.bits > 8) throw new Error(`no rounding table for ${f.name}: codes wider than 8 bits`);
  const [expBits, fracBits] = layout === 'f32' ? [8, 23] : [11, 20];
  const binadeBits = f.mbits + 1;
  const shift = fracBits - binadeBits;
  const size = 1 << (expBits + binadeBits);
  const d = new Float64Array(1);
  const f32 = new Float32Array(1);
  const word = layout === 'f32' ? new Uint32Array(f32.buffer) : new Uint32Array(d.buffer);
  const hi = layout === 'f32' ? 0 : HI_WORD;
  const at = (index: number): number => {
    word.fill(0);
    word[hi] = index << shift;
    return layout === 'f32' ? f32[0] : d[0];
  };
  const code = (x: number) => minifloatCode(f, roundMinifloat(f, x), false);
  const up = new Uint8Array(size);
  const tie = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const v = at(i);
    const next = i + 1 < size ? at(i + 1) : Infinity;
    // Inf/NaN patterns (never looked up: inputs are checked finite) saturate like the largest finite values.
    tie[i] = code(Number.isFinite(v) ? v : f.maxFinite);
    up[i] = code(Number.isFinite(next) ? v + (next - v) / 2 : f.maxFinite);
  }
  const signShift = f.ebits + f.mbits;
  const value = new Float64Array(1 << f.bits);
  for (let c = 0; c < 1 << signShift; c++) {
    const e = c < 1 << f.mbits ? c * f.minQuantum : 2 ** ((c >> f.mbits) - f.bias) * (1 + (c & ((1 << f.mbits) - 1)) * f.ulpScale);
    value[c] = e;
    value[c | (1 << signShift)] = e === 0 ? 0 : -e;
  }
  const t = { shift, low: (1 << shift) - 1, binadeBits, up, tie, value, signShift };
  cache.set(key, t);
  return t;
}
