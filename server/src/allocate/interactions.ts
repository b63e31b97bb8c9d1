// Inter-layer interactions by co-perturbation (DESIGN.md §4). Each layer l is perturbed by its b_lo quantization
// error δ_l (W_l → Q_lo(W_l)); with the loss quadratic around the full-precision weights,
//   ΔL(σ) = ½ σᵀ G σ   for per-layer error magnitudes σ_l (σ_l = 1: the whole δ_l),
//   G_ll = 2 ΔL(l),   G_lm = C_lm = ΔL(l,m) − ΔL(l) − ΔL(m).
// Pairs: all when there are ≤ 40 layers; else neighbours (|l − m| ≤ 2) plus a seeded random subset of 2·L other
// pairs (C = 0 for pairs not measured). G is then projected to the PSD cone (negative eigenvalues clipped) so the
// ratio QP stays convex.
import { check } from '../formats/errors';
import { rng } from '../random';

/** Loss through the model: `deltaLoss` replaces the named weights and returns L(perturbed) − L(full precision). */
export interface LossProbe {
  baseline(): Promise<void>;
  deltaLoss(perturb: Map<string, Float32Array>): Promise<number>;
}

export const ALL_PAIRS_UP_TO = 40;
export const NEIGHBOUR_SPAN = 2;

export interface PairSample {
  pairs: [number, number][];
  mode: 'all' | 'sampled';
  /** Pairs with |l − m| ≤ NEIGHBOUR_SPAN (sampled mode), and the random others. */
  neighbours: number;
  random: number;
  /** All pairs there are: n(n − 1)/2. */
  total: number;
  /** One line for reports. */
  description: string;
}

export function samplePairs(n: number, seed = 0): PairSample {
  const total = (n * (n - 1)) / 2;
  const pairs: [number, number][] = [];
  if (n <= ALL_PAIRS_UP_TO) {
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([i, j]);
    return { pairs, mode: 'all', neighbours: 0, random: 0, total, description: `all ${total} pairs of ${n} layers` };
  }
  for (let d = 1; d <= NEIGHBOUR_SPAN; d++) for (let i = 0; i + d < n; i++) pairs.push([i, i + d]);
  const neighbours = pairs.length;
  const want = Math.min(2 * n, total - neighbours);
  const seen = new Set(pairs.map(([i, j]) => i * n + j));
  const next = rng(seed);
  // Rejection sampling: for n > 40 at most 2n of the ≥ n²/2 − 2n other pairs are taken, so few draws repeat.
  while (pairs.length < neighbours + want) {
    const a = Math.floor(next() * n);
    const b = Math.floor(next() * n);
    const [i, j] = a < b ? [a, b] : [b, a];
    if (j - i <= NEIGHBOUR_SPAN || seen.has(i * n + j)) continue;
    seen.add(i * n + j);
    pairs.push([i, j]);
  }
  return {
    pairs,
    mode: 'sampled',
    neighbours,
    random: want,
    total,
    description: `${pairs.length} of ${total} pairs: ${neighbours} neighbours (|l − m| ≤ ${NEIGHBOUR_SPAN}) + ${want} random (seed ${seed}); C = 0 for the rest`,
  };
}

export interface Interactions {
  /** ΔL(l): layer l alone at b_lo. */
  single: Float64Array;
  /** n×n row-major, symmetric, zero diagonal and zero for unmeasured pairs. */
  C: Float64Array;
  sample: PairSample;
  /** Model evaluations made (baseline included). */
  runs: number;
}

export async function measureInteractions(
  probe: LossProbe,
  n: number,
  perturbation: (l: number) => Map<string, Float32Array>,
  sample: PairSample,
  onProgress?: (done: number, total: number) => void,
): Promise<Interactions> {
  await probe.baseline();
  const total = n + sample.pairs.length;
  const measure = async (p: Map<string, Float32Array>) => {
    const d = await probe.deltaLoss(p);
    check(Number.isFinite(d), 'non-finite-loss', () => `perturbing ${[...p.keys()].join(' and ')} at b_lo gives a loss change of ${d}: the quadratic model does not apply`, { file: 'interactions' });
    return d;
  };
  const single = new Float64Array(n);
  for (let l = 0; l < n; l++) {
    single[l] = await measure(perturbation(l));
    onProgress?.(l + 1, total);
  }
  const C = new Float64Array(n * n);
  let done = n;
  for (const [l, m] of sample.pairs) {
    const both = new Map([...perturbation(l), ...perturbation(m)]);
    const c = (await measure(both)) - single[l] - single[m];
    C[l * n + m] = c;
    C[m * n + l] = c;
    onProgress?.(++done, total);
  }
  return { single, C, sample, runs: 1 + total };
}

/** G of the quadratic model: 2ΔL(l) on the diagonal (negative measurements clipped to 0), C off it. */
export function interactionModel(x: Interactions): Float64Array {
  const n = x.single.length;
  const G = Float64Array.from(x.C);
  for (let l = 0; l < n; l++) G[l * n + l] = 2 * Math.max(0, x.single[l]);
  return G;
}

export interface Eigen {
  values: Float64Array;
  /** Column j is the eigenvector of values[j] (n×n row-major). */
  vectors: Float64Array;
}

/** Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (small matrices: one row per layer). */
export function symmetricEigen(A: ArrayLike<number>, n: number): Eigen {
  const a = Float64Array.from(A);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i] * a[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        // Rotation zeroing a_pq: t = tan φ, the smaller root of t² + 2θt − 1 = 0.
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

export interface PsdProjection {
  /** The nearest PSD matrix in the Frobenius norm: V·max(Λ, 0)·Vᵀ. */
  matrix: Float64Array;
  eigenvalues: Float64Array;
  /** Eigenvalues below zero that were clipped. */
  clipped: number;
  /** ‖A − P‖_F = √Σ (clipped eigenvalues)². */
  change: number;
}

export function projectPsd(A: ArrayLike<number>, n: number): PsdProjection {
  const sym = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i * n + j] = 0.5 * (A[i * n + j] + A[j * n + i]);
  const { values, vectors: v } = symmetricEigen(sym, n);
  const matrix = new Float64Array(n * n);
  let clipped = 0;
  let change = 0;
  for (let k = 0; k < n; k++) {
    const lam = values[k];
    if (lam < 0) {
      clipped++;
      change += lam * lam;
      continue;
    }
    for (let i = 0; i < n; i++) {
      const vi = lam * v[i * n + k];
      if (vi === 0) continue;
      for (let j = 0; j < n; j++) matrix[i * n + j] += vi * v[j * n + k];
    }
  }
  return { matrix, eigenvalues: values, clipped, change: Math.sqrt(change) };
}
