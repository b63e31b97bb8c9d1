// Format ids → NumberFormat. `allFormats()` is the listed catalogue (`quantlens formats`); `getFormat(id)` also
// accepts any other well-formed id: other group/block sizes, any base with modifiers chained left to right
// (`<base>+had64+ol2` = outliers kept first, the rest rotated and quantized), each modifier at most once.
import { bfpDef } from './bfp';
import { defineFormat, type FormatDef } from './define';
import { fpDef } from './fp';
import { withHadamard } from './hadamard';
import { intDef } from './int';
import { E2M1, E2M3, E3M2, E4M3, E5M2, type Minifloat } from './minifloat';
import { mxDef } from './mx';
import { nfDef } from './nf';
import { nvfp4Def } from './nvfp4';
import { withOutliers, withReorder } from './outliers';
import { type FormatFamily, type NumberFormat, UnknownFormatError } from './types';

const ELEMENTS: Record<string, Minifloat> = { e4m3: E4M3, e5m2: E5M2, e3m2: E3M2, e2m3: E2M3, e2m1: E2M1 };
const MX: Record<string, Minifloat | 'int8'> = { mxfp4: E2M1, mxfp6_e3m2: E3M2, mxfp6_e2m3: E2M3, mxfp8_e4m3: E4M3, mxfp8_e5m2: E5M2, mxint8: 'int8' };
const MAX_GROUP = 1 << 16;

function size(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} ${text} is outside ${min}…${max}`);
  return n;
}

function parseBase(id: string): FormatDef {
  let m: RegExpExecArray | null;
  if ((m = /^int(\d+)_(?:ch|g(\d+))_(sym|asym)$/.exec(id))) {
    const bits = size(m[1], 'bit width', 2, 8);
    return intDef(bits, m[2] === undefined ? 'channel' : size(m[2], 'group size', 2, MAX_GROUP), m[3] === 'sym');
  }
  if ((m = /^nf([34])_g(\d+)$/.exec(id))) return nfDef(m[1] === '4' ? 4 : 3, size(m[2], 'group size', 2, MAX_GROUP));
  if ((m = /^fp(\d)_(e\dm\d)(?:_(ch|g\d+))?$/.exec(id))) {
    const f = ELEMENTS[m[2]];
    if (!f || f.bits !== Number(m[1])) throw new Error(`no ${m[1]}-bit element type ${m[2]}`);
    const scaling = m[3] === undefined ? 'tensor' : m[3] === 'ch' ? 'channel' : size(m[3].slice(1), 'group size', 2, MAX_GROUP);
    return fpDef(f, scaling);
  }
  if (id in MX) return mxDef(MX[id]);
  if (id === 'nvfp4') return nvfp4Def();
  if ((m = /^bfp(\d+)_b(\d+)$/.exec(id))) return bfpDef(size(m[1], 'element width', 2, 16), size(m[2], 'block size', 2, MAX_GROUP));
  throw new Error('not a known format family (int, nf, fp, mx, nvfp4, bfp)');
}

function parse(id: string): FormatDef {
  const [baseId, ...mods] = id.split('+');
  let def = parseBase(baseId);
  const seen = new Set<string>();
  for (const mod of mods) {
    const m = /^(ol(\d+)|reorder|had(\d+))$/.exec(mod);
    if (!m) throw new Error(`unknown modifier '+${mod}' (expected +ol<k>, +reorder, +had<h>)`);
    const kind = mod.replace(/\d+$/, '');
    if (seen.has(kind)) throw new Error(`modifier +${kind} given twice`);
    seen.add(kind);
    if (m[2] !== undefined) def = withOutliers(def, size(m[2], 'outlier count', 1, 64));
    else if (m[3] !== undefined) {
      const h = size(m[3], 'Hadamard size', 2, 4096);
      if ((h & (h - 1)) !== 0) throw new Error(`Hadamard size ${h} is not a power of two`);
      def = withHadamard(def, h);
    } else def = withReorder(def);
  }
  return def;
}

const cache = new Map<string, NumberFormat>();

/** The format with this id; throws UnknownFormatError saying what is wrong with it. */
export function getFormat(id: string): NumberFormat {
  let f = cache.get(id);
  if (!f) {
    try {
      f = defineFormat(parse(id));
    } catch (e) {
      throw new UnknownFormatError(id, (e as Error).message);
    }
    cache.set(id, f);
  }
  return f;
}

/** Ids of the catalogue, in display order. */
export function formatIds(): string[] {
  const ids: string[] = [];
  for (let b = 2; b <= 8; b++) {
    for (const kind of ['sym', 'asym']) {
      for (const g of [32, 64, 128]) ids.push(`int${b}_g${g}_${kind}`);
      ids.push(`int${b}_ch_${kind}`);
    }
  }
  ids.push('nf4_g64', 'nf3_g64');
  ids.push('fp8_e4m3', 'fp8_e5m2', 'fp8_e4m3_ch', 'fp8_e5m2_ch', 'fp6_e3m2', 'fp6_e2m3', 'fp4_e2m1_g32');
  ids.push(...Object.keys(MX), 'nvfp4');
  for (const m of [4, 6, 8]) for (const b of [16, 32]) ids.push(`bfp${m}_b${b}`);
  for (const base of ['int2_g128_asym', 'int3_g128_asym', 'int4_g128_asym']) {
    for (const k of [1, 2, 4]) ids.push(`${base}+ol${k}`);
  }
  for (const base of ['int2_g128_asym', 'int3_g128_asym', 'int4_g128_asym', 'int4_g128_sym']) ids.push(`${base}+reorder`);
  for (const base of ['mxfp4', 'nvfp4', 'int4_g128_sym', 'int4_g128_asym']) {
    for (const h of [16, 32, 64, 128]) ids.push(`${base}+had${h}`);
  }
  return ids;
}

/** What plan validation needs to know about format ids (plan/validate.ts FormatCatalog). */
export const FORMAT_CATALOG = {
  isFormat(id: string): boolean {
    try {
      getFormat(id);
      return true;
    } catch {
      return false;
    }
  },
  formatIds,
};

export function allFormats(): NumberFormat[] {
  return formatIds().map(getFormat);
}

export interface FormatSummary {
  id: string;
  family: FormatFamily;
  /** For a 4096×4096 out_in matrix. */
  bitsPerWeight: number;
  description: string;
}

/** The catalogue as `quantlens formats --json` prints it. */
export function describeFormats(): FormatSummary[] {
  return allFormats().map((f) => ({
    id: f.id,
    family: f.family,
    bitsPerWeight: f.bitsPerWeight([4096, 4096], 'out_in'),
    description: f.description,
  }));
}
