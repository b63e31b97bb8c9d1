// Result vocabulary of the calibration-based sensitivity methods (DESIGN.md §4), shared by the CLI and the server.
import type { WeightLayout } from '../formats/types';
import type { ProviderAttempt } from '../runtime/session';

export type CalibratedMethod = 'hessian' | 'empirical';

/** Model output with only one layer quantized, against full precision, over the calibration batches. */
export interface EmpiricalScore {
  /** Mean over output rows of KL(full ‖ quantized) in nats, along the last axis (see empirical.ts). */
  kl: number;
  /** 10·log10(Σ y² / Σ (ŷ − y)²) over every output element; Infinity when the outputs are identical. */
  sqnrDb: number;
  /** Share of output rows whose argmax along the last axis is unchanged. */
  top1: number;
}

/** One weight of the OBS/GPTQ saliency ranking. */
export interface SalientWeight {
  /** Row (output channel) and column (input index) of the [out, in] view. */
  row: number;
  col: number;
  /** Coordinates in the weight as stored. */
  coords: number[];
  value: number;
  saliency: number;
}

/** Per-weight saliency w² / [H⁻¹]ⱼⱼ of one layer, summarized. */
export interface ObsSummary {
  /** λ: the fraction of mean diag(H) added to the diagonal before inverting. */
  dampFraction: number;
  /** The absolute amount added to the diagonal (per conv group: the largest). */
  damping: number;
  total: number;
  mean: number;
  max: number;
  /** The most salient weights, largest first. */
  top: SalientWeight[];
}

export interface LayerHessianInfo {
  /** Length of one calibration row (in-features, or C_in/group·kh·kw for Conv). */
  d: number;
  /** Hessians kept: one per conv group, otherwise 1. */
  groups: number;
  /** Calibration rows per Hessian. */
  rows: number;
}

export interface CalibratedLayer {
  /** The weight's name (initializer or Constant output). */
  name: string;
  node: string;
  op: string;
  shape: number[];
  layout: WeightLayout;
  params: number;
  scores: {
    /** tr(ΔW H ΔWᵀ) per format id. */
    hessian?: Record<string, number>;
    empirical?: Record<string, EmpiricalScore>;
    /** Σ F ⊙ ΔW² with the per-sample empirical Fisher diagonal (gradient.ts). */
    fisher?: Record<string, number>;
    /** Σ |ḡ ⊙ ΔW| with the mean-loss gradient (gradient.ts). */
    gwq?: Record<string, number>;
    /** Data-free ‖ΔW‖² / ‖W‖² (analysis/datafree.ts). */
    datafree?: Record<string, number>;
  };
  obs?: ObsSummary;
  hessian?: LayerHessianInfo;
  /** Why a method gave no score for this layer. */
  notes?: string[];
}

/** Spearman rank correlation between two layer rankings for one format. */
export interface AgreementEntry {
  format: string;
  a: string;
  b: string;
  /** null when undefined (fewer than 2 layers, or a constant ranking). */
  rho: number | null;
  layers: number;
}

export interface CalibratedReport {
  model: string;
  executionProvider: string;
  attempts: ProviderAttempt[];
  calibration: { samples: number; synthetic: boolean; source: string };
  methods: CalibratedMethod[];
  formats: string[];
  /** The model output the empirical scores compare. */
  output?: string;
  layers: CalibratedLayer[];
  agreement: AgreementEntry[];
  /** Full per-weight OBS saliency ([out, in] view order) per layer, when asked for (not JSON). */
  saliency?: Map<string, Float32Array>;
}

export interface CalibratedProgress {
  phase: 'open' | 'hessian' | 'empirical';
  done: number;
  total: number;
  message?: string;
}
