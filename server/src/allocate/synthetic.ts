// Deterministic synthetic allocation problems (tests, `npm run bench`) and the incremental re-solve benchmark.
import { performance } from 'node:perf_hooks';
import { Allocator } from './pareto';
import type { AllocProblem } from './types';

/** Bits per weight of common formats, overhead included (GGUF K-quants, int4 g128 + fp16 scale, fp8, fp16). */
const FORMAT_BITS = [2.625, 3.4375, 4.125, 4.5, 5.5, 6.5625, 8.5, 8, 16, 2.125];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface SyntheticOptions {
  layers: number;
  options: number;
  seed?: number;
  /** Layer shapes cycle through these (rows × cols); default: a Llama-style block (q, k, v, o, gate, up, down). */
  shapes?: [number, number][];
  /** Put every `groupEvery` consecutive layers into one group (fused projections). */
  groupEvery?: number;
}

/**
 * Error model: sensitivity · params · 2^(−2·bits) · (1 ± 20 % noise), with log-normal sensitivity per layer —
 * convex, decreasing in bits, like measured quantization error.
 */
export function syntheticProblem(o: SyntheticOptions): AllocProblem {
  const rnd = lcg(o.seed ?? 1);
  const shapes = o.shapes ?? [[4096, 4096], [1024, 4096], [1024, 4096], [4096, 4096], [11008, 4096], [11008, 4096], [4096, 11008]];
  const bits = FORMAT_BITS.slice(0, o.options);
  const layers = Array.from({ length: o.layers }, (_, l) => {
    const [r, c] = shapes[l % shapes.length];
    const params = r * c;
    const sens = Math.exp(1.5 * (rnd() + rnd() + rnd() - 1.5));
    return {
      name: `layer${l}`,
      params,
      options: bits.map((b, k) => ({ id: `f${k}`, bits: b, error: sens * params * 2 ** (-2 * b) * (0.8 + 0.4 * rnd()) })),
    };
  });
  const groups: string[][] = [];
  if (o.groupEvery && o.groupEvery > 1) {
    for (let l = 0; l + o.groupEvery <= o.layers; l += o.groupEvery) groups.push(layers.slice(l, l + o.groupEvery).map((x) => x.name));
  }
  return { layers, groups, limits: {} };
}

export interface IncrementalBench {
  mode: 'frontier' | 'per-budget';
  firstMs: number;
  resolveMeanMs: number;
  resolveMedianMs: number;
  resolveMaxMs: number;
  budgets: number;
}

/** Build an allocator once (first solve included), then re-solve `budgets` budgets across the feasible range. */
export function benchIncremental(o: SyntheticOptions & { budgets?: number }): IncrementalBench {
  const problem = syntheticProblem(o);
  const n = o.budgets ?? 50;
  const lo = Math.min(...FORMAT_BITS.slice(0, o.options));
  const hi = Math.max(...FORMAT_BITS.slice(0, o.options));
  const t0 = performance.now();
  const alloc = Allocator.create(problem);
  alloc.solve((lo + hi) / 2);
  const firstMs = performance.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = lo + ((hi - lo) * (i + 0.5)) / n;
    const t = performance.now();
    alloc.solve(b);
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const mean = times.reduce((s, x) => s + x, 0) / n;
  return { mode: alloc.mode, firstMs, resolveMeanMs: mean, resolveMedianMs: times[n >> 1], resolveMaxMs: times[n - 1], budgets: n };
}
