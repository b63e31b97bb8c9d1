// Bit-allocation problem and result shapes (the `--problem` contract; see problem.ts for the file format).

/** One candidate format for a layer. `error` is the layer's TOTAL predicted error (not per weight). */
export interface AllocOption {
  id: string;
  /** Bits per weight, scales/zeros/index overhead included. */
  bits: number;
  error: number;
  /** Optional extra resources, totals for the whole layer; constrained only when the problem sets a limit. */
  latency?: number;
  memory?: number;
}

export interface AllocLayer {
  name: string;
  /** Number of weights; the layer's size in bits is params · bits. */
  params: number;
  options: AllocOption[];
  /** Options with fewer / more bits per weight are not allowed for this layer. */
  minBits?: number;
  maxBits?: number;
}

export type ResourceName = 'latency' | 'memory';
export const RESOURCES: readonly ResourceName[] = ['latency', 'memory'];

export interface AllocProblem {
  layers: AllocLayer[];
  /** Layers in one group must all pick the same option id (fused QKV, gate/up, MoE experts). */
  groups: string[][];
  /** Σ_layers resource(option) ≤ limit, per resource present. */
  limits: Partial<Record<ResourceName, number>>;
}

/** A constraint that makes a budget infeasible (or, for `budget`, the one that is too tight). */
export interface Binding {
  constraint: 'budget' | 'minBits' | 'maxBits' | 'group' | ResourceName;
  layer?: string;
  group?: string[];
  detail: string;
}

export interface Discretization {
  /** True when every cost is an exact integer number of units (then the DP is exact). */
  exact: boolean;
  /** Size of one cost unit in bits. */
  unitBits: number;
  /**
   * Costs were rounded UP to whole units, so every returned solution is feasible; the optimum found is
   * at least as good as the true optimum for a budget smaller by this many average bits (0 when exact).
   */
  maxSlackAvgBits: number;
}

export interface AllocResult {
  feasible: boolean;
  /** Smallest achievable average bits per weight under all constraints (null: no choice satisfies them). */
  minAvgBits: number | null;
  avgBits?: number;
  totalError?: number;
  /** Layer name → option id. */
  choice?: Record<string, string>;
  solver?: 'dp-frontier' | 'dp-exact' | 'lagrange' | 'mip';
  /** True when the solution is proven optimal. */
  optimal?: boolean;
  /** totalError − lower bound (0 when optimal). */
  gap?: number;
  lowerBound?: number;
  binding?: Binding[];
  discretization?: Discretization;
}

export interface ParetoPoint {
  avgBits: number;
  totalError: number;
}
