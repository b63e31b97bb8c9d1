// Data-free analysis: options and the report every consumer (CLI, language server, webview) reads.
// Definitions (DESIGN.md §4): W a layer's weight viewed as [out, in] (groups along `in`), Q quantize-dequantize.
import type { WeightLayout } from '../formats/types';

/** The formats `quantlens analyze` scores by default (same list as the `quantlens.defaultFormats` setting). */
export const DEFAULT_FORMATS = [
  'int4_g128_asym', 'int3_g128_asym', 'int2_g64_asym', 'int8_ch_sym', 'nf4_g64', 'fp8_e4m3', 'mxfp4', 'nvfp4',
];

/** Ratios of kept weights reported by the high-impact analysis. */
export const DEFAULT_RATIOS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1];

/** Formats that keep the high-impact weights: fp16 values, or int8 with one fp16 scale per output channel. */
export const KEEP_FORMATS = ['fp16', 'int8_ch_sym'] as const;
export type KeepFormat = (typeof KEEP_FORMATS)[number];

export interface DatafreeOptions {
  /** Format ids (see `quantlens formats`). */
  formats: string[];
  /** Outlier threshold k: |w − μ_c| > k·σ_c within output channel c. */
  sigma: number;
  /** Sampled mode: the fraction of output channels (rows) scored; undefined = full scan. */
  sample?: number;
  /** Seed of the row sample (each tensor mixes in a hash of its name). */
  seed: number;
  /** Two-sided confidence level of the sampled relMse interval. */
  confidence: number;
  /** Compute the downsampled group-error map of every layer × format. */
  groupMaps: boolean;
  /** Largest map side (cells per axis). */
  mapSize: number;
  /** High-impact ratio curves and group promotion for the low-bit formats (< 5 bits/weight). */
  highImpact: boolean;
  ratios: number[];
  /** Analyze only tensors whose name matches this regular expression (the others are skipped as `filtered`). */
  only?: string;
  /** A llama.cpp imatrix file (GGUF or legacy .dat): adds `hessianDiag` per layer × format. */
  imatrix?: string;
}

export const DEFAULT_OPTIONS: DatafreeOptions = {
  formats: DEFAULT_FORMATS,
  sigma: 6,
  seed: 0,
  confidence: 0.95,
  groupMaps: false,
  mapSize: 256,
  highImpact: true,
  ratios: DEFAULT_RATIOS,
};

export interface SuperWeight {
  /** Coordinates in the tensor's logical shape (as stored: [out, in] for out_in, [in, out] for in_out). */
  coords: number[];
  value: number;
  /** |value| / median |w| of the layer (null when the median is 0). */
  overMedian: number | null;
}

export interface WeightStats {
  /** Excess kurtosis m4/m2² − 3 over all weights (0 for a Gaussian, > 0 heavy tails). */
  kurtosis: number;
  /** Share of weights with |w − μ_c| > k·σ_c, μ_c/σ_c the mean/std of the weight's output channel. */
  outlierShare: number;
  /** max |w| / σ, σ the standard deviation over all weights. */
  maxOverStd: number;
  mean: number;
  std: number;
  maxAbs: number;
  superWeights: SuperWeight[];
}

export interface FormatErrors {
  /** ‖Q(W) − W‖² / ‖W‖² (0 when W = 0). */
  relMse: number;
  /** −10·log10(relMse); null when the format is exact on this layer (relMse = 0). */
  sqnrDb: number | null;
  maxAbsErr: number;
  /** Empirical Shannon entropy of the stored element codes, bits per weight (scales not included). */
  entropyBits: number;
  /** Exact storage per weight for this tensor's shape, scales and zero points included. */
  bitsPerWeight: number;
  /** Sampled mode: confidence interval of relMse (ratio estimator over sampled rows, CLT). */
  ci?: [number, number];
  /**
   * With an imatrix: tr(ΔW H ΔWᵀ) for the diagonal Hessian H_jj = 2·E[x_j²] = Σ_ij ΔW_ij² H_jj — twice the
   * expected increase of the layer's squared output error when inputs are uncorrelated (sampled mode: estimated).
   */
  hessianDiag?: number;
}

/** Mean squared error of `cellRows × cellCols` cells; cell (i, j) covers rows i·rowsPerCell… and groups j·groupsPerCell…. */
export interface GroupMap {
  groupSize: number;
  rowsPerCell: number;
  groupsPerCell: number;
  cellRows: number;
  cellCols: number;
  /** Row-major cell values (4 significant digits). */
  mse: number[];
}

/** Error of a low format with the top-r weights kept at a higher format, vs bits per weight. */
export interface HighImpactCurve {
  keep: KeepFormat;
  ratios: number[];
  bitsPerWeight: number[];
  /** Weights ranked by |w|. */
  byMagnitude: number[];
  /** Weights ranked by their squared quantization error (w − Q(w))². */
  byError: number[];
  /** Which sparse-index encoding each bit count uses. */
  index: ('csr' | 'bitmask')[];
}

/** Error vs average bits when the worst groups of a low format are promoted to `high`. */
export interface PromotionCurve {
  high: string;
  bitsPerWeight: number[];
  relMse: number[];
  promotedShare: number[];
}

export interface LayerReport {
  /** Tensor name. */
  name: string;
  block: string;
  layer: string;
  params: number;
  shape: number[];
  layout: WeightLayout;
  dtype: string;
  /** Σ w² (estimated from the sampled rows in sampled mode). */
  sumSq: number;
  stats: WeightStats;
  errors: Record<string, FormatErrors>;
  /** Sampled mode: rows scored out of all rows (absent: full scan). */
  sampled?: { rows: number; of: number };
  groupMaps?: Record<string, GroupMap>;
  highImpact?: Record<string, HighImpactCurve[]>;
  promotion?: Record<string, PromotionCurve>;
}

export interface ModelTotals {
  relMse: number;
  sqnrDb: number | null;
  bitsPerWeight: number;
  bytes: number;
}

export interface AnalysisReport {
  /** Bumped whenever a metric definition changes (part of the cache key). */
  version: string;
  formats: { id: string; bitsPerWeight: number }[];
  options: { sigma: number; sample: number | null; confidence: number | null; ratios: number[] };
  /** The imatrix the `hessianDiag` scores come from: its layout and how many analyzed tensors it covers. */
  imatrix?: { file: string; layout: 'gguf' | 'legacy'; entries: number; matched: number; chunks: number | null; datasets: string[] };
  model: {
    path: string;
    format: string;
    files: string[];
    tensors: number;
    params: number;
    analyzedTensors: number;
    analyzedParams: number;
    /** Over analyzed layers: Σ‖ΔW‖² / Σ‖W‖², storage of the analyzed weights. */
    totals: Record<string, ModelTotals>;
  };
  layers: LayerReport[];
  skipped: { count: number; params: number; byReason: Record<string, number>; tensors: { name: string; reason: string }[] };
}

/** Part of the cache key: bump when the same inputs give different results (2: sampled-mode estimator, no curves when sampling). */
export const ANALYSIS_VERSION = 'datafree-2';
