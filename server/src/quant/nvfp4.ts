// NVFP4: E2M1 elements in blocks of 16 with an E4M3 block scale, under an FP32 per-tensor scale.
// s_t = fp32(amax_tensor / (448·6)); block scale s_b = E4M3(amax_block / 6 / s_t) (round half to even, saturating
// at 448; a block whose s_b rounds to 0 dequantizes to zeros); element = E2M1(w / (s_b·s_t)) saturating at ±6;
// deq = element·s_b·s_t. Bits: 4 per element + 8 per block of 16 (a partial last block pays a full scale)
// + 32 per tensor.
import type { FormatDef } from './define';
import * as fp from './fp';
import { groupCount, mapGroups } from './grid';
import { E2M1, E4M3 } from './minifloat';
import * as minifloat from './minifloat';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element and per-block loops.
const { absMax, qdqMinifloatRun } = fp;
const { roundMinifloat } = minifloat;

export const NVFP4_BLOCK = 16;

export function nvfp4Def(): FormatDef {
  return {
    id: 'nvfp4',
    family: 'nvfp4',
    description: 'NVFP4: E2M1 elements, E4M3 scale per block of 16 along the input axis, fp32 tensor scale amax/(448*6), round half to even, saturating',
    granularity: NVFP4_BLOCK,
    bits: (grid) => 4 * grid.numel + 8 * groupCount(grid, NVFP4_BLOCK) + (grid.numel > 0 ? 32 : 0),
    qdq(w, grid, out, codes) {
      const st = Math.fround(absMax(w, 0, w.length) / (448 * 6));
      mapGroups(w, out, codes, grid, NVFP4_BLOCK, (src, dst, c, off, n) => {
        const sb = st > 0 ? roundMinifloat(E4M3, absMax(src, off, n) / 6 / st) : 0;
        qdqMinifloatRun(src, dst, c, off, n, E2M1, sb * st);
      });
    },
  };
}
