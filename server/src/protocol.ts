// Every custom LSP request/notification and its types, declared once.
// Imported by the client (extension host), the server and the webview — keep it free of runtime dependencies.
import type { AnalysisReport, LayerReport } from './analysis/types';
import type { LayerSummary } from './formats/layers';
import type { SensitivityMethod, SensitivityReport } from './sensitivity/combined';
import type { QuantizeReport } from './jobs/pipeline';
import type { FormatId, ModelConfig, WeightLayout } from './formats/types';

export interface RequestType<P, R> {
  readonly method: string;
  /** Phantom fields carry the types; never read at run time. */
  readonly _params?: P;
  readonly _result?: R;
}
const request = <P, R>(method: string): RequestType<P, R> => ({ method });

export interface InspectParams {
  /** Absolute path or `file://` URI of a checkpoint file or model folder. */
  path: string;
}

export interface InspectTensor {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  layer: string;
  block: string;
  fusedGroup?: string;
  layout: WeightLayout;
  analyzable: boolean;
  reason?: string;
  storage?: string;
  quantForm?: string;
  consumers?: string[];
}

export interface InspectResult {
  format: FormatId;
  path: string;
  files: string[];
  tensorCount: number;
  params: number;
  dtypes: Record<string, { tensors: number; params: number }>;
  tensors: InspectTensor[];
  layers: LayerSummary[];
  blocks: { block: string; layers: number; params: number }[];
  metadata: Record<string, unknown>;
  config?: ModelConfig;
}

export interface AnalyzeParams {
  /** Absolute path or `file://` URI of a checkpoint file or model folder. */
  path: string;
  /** Format ids to score (default: the data-free default set, `quantlens formats`). */
  formats?: string[];
  /** Sampled mode: the fraction of output channels scored, in (0, 1]. */
  sample?: number;
  /** Only tensors whose name matches this regular expression. */
  only?: string;
  /** Compute the group-error maps (heatmap view). */
  groupMaps?: boolean;
  /** Analysis cache folder; absent: the default cache; empty string: no cache. */
  cacheDir?: string;
  /** LSP work-done token: progress is reported on it (`$/progress`). Without one the server creates its own. */
  workDoneToken?: string | number;
}

export interface AnalyzeResponse {
  report: AnalysisReport;
  cache: 'hit' | 'miss' | 'off';
  /** A non-fatal problem, e.g. the cache could not be written. */
  warning?: string;
  /** Wall time of the request on the server. */
  ms: number;
}

export interface SensitivityParams {
  /** Absolute path or `file://` URI of an ONNX model (datafree alone also accepts other formats). */
  path: string;
  /** Calibration data: an absolute path of a .npy/.npz/.json file or a folder; absent: synthetic data (reported). */
  calib?: string;
  /** Absolute path of a .npy of class indices aligned with the calibration samples. */
  labels?: string;
  /** Default: datafree, hessian, fisher, gwq, empirical. */
  methods?: SensitivityMethod[];
  formats?: string[];
  /** Execution providers in order (the `quantlens.executionProviders` setting). */
  providers?: string[];
  maxSamples?: number;
  workDoneToken?: string | number;
}

/** A located error as the server reports it (request errors carry it in `data`). */
export interface LocatedErrorData {
  code: string;
  file: string;
  offset?: number;
  tensor?: string;
  line?: number;
  column?: number;
}

/** JSON-RPC error codes of QuantLens requests (the -32000…-32099 range is reserved for servers). */
export const ErrorCodes = {
  /** Bad user input (file, offset, tensor…): the message is located, `data` is a LocatedErrorData. */
  located: -32001,
} as const;

export interface AllocateParams {
  /** Absolute path or `file://` URI of the analyzed checkpoint. */
  path: string;
  /** The formats the analysis scored (the same list as for `quantlens/analyze`; default: the default set). */
  formats?: string[];
  /** Average bits per weight over the analyzed weights. */
  budget: number;
  /** Analysis cache folder, as for `quantlens/analyze`. */
  cacheDir?: string;
  /** Also return the size-vs-error frontier (once per panel; it does not change with the budget). */
  frontier?: boolean;
}

export interface AllocateResponse {
  feasible: boolean;
  budget: number;
  /** Smallest achievable average bits (null: nothing to allocate). */
  minAvgBits: number | null;
  avgBits?: number;
  /** Σ‖ΔW‖² of the choice, and the same relative to Σ‖W‖². */
  totalError?: number;
  relError?: number;
  /** Tensor name → format id. */
  choice?: Record<string, string>;
  /** The slider's range: cheapest and most precise average bits. */
  range?: { min: number; max: number };
  frontier?: { avgBits: number; totalError: number }[];
  ms: number;
}

export interface PlanSummaryParams {
  /** URI of an open plan document (`file://…/x.quant.yaml`). */
  uri: string;
}

/** A plan's totals as its top code lens states them; null when the plan does not resolve against its model. */
export type PlanSummary = null | {
  /** Whole checkpoint with the plan's formats. */
  bytes: number;
  avgBits: number;
  /** Predicted Σ‖ΔW‖² / Σ‖W‖² (absent: not analyzed). */
  relMse?: number;
  budget?: { kind: 'avgBits' | 'size'; value: number; ok: boolean };
  modelPath: string;
};

/** What the report panel shows after a reload (its webview state and the serializer's). */
export interface PanelState {
  path: string;
  label: string;
  budget?: number;
  metric?: 'relMse' | 'sqnr';
  layer?: string;
  agreement?: [string, string];
}

/** Messages between the webview and the extension host (the webview never talks to the server directly). */
export type HostToWebview =
  | { type: 'report'; state: PanelState; report: AnalysisReport }
  | { type: 'allocation'; result: AllocateResponse }
  | { type: 'layerDetail'; layer: string; detail?: LayerReport; error?: string }
  | { type: 'status'; text: string; error?: boolean }
  /** Show this tensor's group-error map (Show Heatmap from the explorer). */
  | { type: 'select'; layer: string };
export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'budget'; budget: number; frontier?: boolean }
  | { type: 'layerDetail'; layer: string }
  | { type: 'reveal'; layer: string };

/** Quantize one layer (a weight, or the node that consumes it), evaluate, and compare with the original. */
export interface QuantizeLayerParams {
  /** Absolute path or `file://` URI of the ONNX model. */
  model: string;
  /** Weight (tensor) name or consuming node name. */
  layer: string;
  /** Format id; default: the plan's decision for the layer. */
  format?: string;
  /** Plan file (absolute path or URI) giving the format when `format` is absent. */
  plan?: string;
  method?: 'rtn' | 'gptq';
  /** Evaluation data (absolute path or URI; any calibration form); default: synthetic. */
  eval?: string;
  /** Class ids (.npy) of the evaluation rows: adds the accuracy delta. */
  labels?: string;
  /** Output model; default `<model>.<layer>.<format>.quant.onnx` beside the model (replaced on a rerun). */
  out?: string;
  maxSamples?: number;
  providers?: string[];
  workDoneToken?: string | number;
}

export interface QuantizeLayerResult {
  output: string;
  layer: string;
  format: string;
  executionProvider: string;
  simulated: boolean;
  /** Quantized minus original: KL divergence (nats), top-1 agreement − 1, SQNR of the output (dB, +∞ = none). */
  delta: { kl: number; top1: number; sqnrDb: number; accuracy?: number; perplexity?: number; latencyMs: number; sizeBytes: number };
  /** Jobs that were ahead of this one in the queue when it was sent. */
  waitedFor: number;
  /** Answered from an earlier identical job (same model file, plan text, data files and options; output unchanged). */
  cached: boolean;
  ms: number;
  report: QuantizeReport;
}

export const Requests = {
  inspect: request<InspectParams, InspectResult>('quantlens/inspect'),
  /** Data-free analysis, run on worker threads; reports `$/progress` and honours `$/cancelRequest`. */
  analyze: request<AnalyzeParams, AnalyzeResponse>('quantlens/analyze'),
  /** Calibrated sensitivity (Hessian, Fisher, GWQ, empirical, HAWQ) on a worker thread; `$/progress`, cancellable. */
  sensitivity: request<SensitivityParams, SensitivityReport>('quantlens/sensitivity'),
  /** One format per layer at a budget from the model's data-free analysis (cached): the report panel's slider. */
  allocate: request<AllocateParams, AllocateResponse>('quantlens/allocate'),
  /** An open plan's size, average bits and budget state (the status bar). */
  planSummary: request<PlanSummaryParams, PlanSummary>('quantlens/planSummary'),
  /** Quantize one layer on a worker thread (one job at a time, queued), evaluate, return the deltas; `$/progress`, cancellable. */
  quantizeLayer: request<QuantizeLayerParams, QuantizeLayerResult>('quantlens/quantizeLayer'),
} as const;
