// Every custom LSP request/notification and its types, declared once.
// Imported by the client (extension host), the server and the webview — keep it free of runtime dependencies.
import type { AnalysisReport, LayerReport } from './analysis/types';
import type { LayerSummary } from './formats/layers';
import type { SensitivityMethod, SensitivityReport } from './sensitivity/combined';
import type { QuantizeReport } from './jobs/pipeline';
import type { RatiosReport } from './allocate/ratios-run';
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
  | { type: 'select'; layer: string }
  /** Finished quantize jobs of the model (predicted vs measured chart). */
  | { type: 'jobs'; jobs: JobResult[] };
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

/** Where a plan decides a layer (Reveal in Plan). */
export interface RuleForParams {
  /** URI of an open plan document. */
  uri: string;
  /** The layer's tensors (or one tensor); the first one the plan assigns decides the answer. */
  tensors: string[];
  /** Written into the suggested new rule's `match:` (default: the first tensor). */
  layer?: string;
}

export interface RuleForResult {
  /** The model the plan names (absolute path), so callers can check it is the model they mean. */
  modelPath?: string;
  /** The tensor the answer is about (absent: the plan assigns none of them). */
  tensor?: string;
  /** Index of the deciding rule; -1: no rule matches, `defaults` decides. */
  rule: number;
  /** The deciding rule's `match:` value, or `defaults:` (absent when the plan has neither). */
  range?: TextRange;
  pattern?: string;
  /** The decided format (null: kept in original precision). */
  format?: string | null;
  /** When no rule matches: the edit that appends a rule for the layer; its text is `before + <format> + after`. */
  newRule?: { range: TextRange; before: string; after: string };
}

/** 0-based line/character range (LSP's). */
export interface TextRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

/** A finished quantize job as its JSON report on disk states it (predicted vs measured). */
export interface JobResult {
  /** The report file (`<output>.report.json`). */
  report: string;
  output: string;
  /** `layer → format` for one-weight jobs, `N weights` for plans. */
  name: string;
  weights: number;
  /** Predicted: params-weighted ‖ΔW‖² / ‖W‖² of the quantized weights. */
  predictedRelMse: number;
  /** Measured: the output's relative squared error 10^(−SQNR/10), KL (nats) and top-1 agreement; null: not evaluated. */
  measured: { relMse: number; kl: number; top1: number } | null;
  /** Report file modification time (ms since the epoch). */
  mtimeMs: number;
}

export interface JobResultsParams {
  /** Absolute path or `file://` URI of the original model. */
  path: string;
}

/** Quantize a whole model with a plan (`quantlens quantize --plan`), on the job queue. */
export interface QuantizeModelParams {
  /** Absolute path or `file://` URI of the ONNX model. */
  model: string;
  /** Plan file (absolute path or URI). */
  plan: string;
  /** The plan's text when the editor holds unsaved changes. */
  planText?: string;
  method?: 'rtn' | 'gptq';
  eval?: string;
  labels?: string;
  /** Output model; default `<model>.quant.onnx`. */
  out?: string;
  /** Replace an existing output (never an input). */
  force?: boolean;
  maxSamples?: number;
  providers?: string[];
  workDoneToken?: string | number;
}

export interface QuantizeModelResult {
  report: QuantizeReport;
  cached: boolean;
  ms: number;
}

export interface ExportPlanParams {
  /** URI of the plan (its open buffer is exported when open). */
  uri: string;
  dialect: string;
  /** Output folder (default: beside the plan). */
  outDir?: string;
  force?: boolean;
}

export interface ExportPlanResult {
  /** Absolute paths of the files written. */
  files: string[];
  commandLine?: string;
  warnings: { message: string; line?: number }[];
}

/** Per-layer high-impact ratios under a budget: the four strategies of `quantlens ratios` (same defaults). */
export interface RatiosParams {
  /** Absolute path or `file://` URI of a checkpoint (ONNX models run for interactions and measured ΔL). */
  path: string;
  /** Average bits per weight; default: the bits of `fixedRatio` on every layer. */
  budgetBits?: number;
  /** Kept weights' format (fp16, int<b>_ch_sym or a bit width; default 8) and the others' (default 2). */
  hi?: string;
  lo?: string;
  rMax?: number;
  fixedRatio?: number;
  /** Only the weights whose name matches this regular expression. */
  only?: string;
  /** Calibration data (absolute path); default: synthetic. */
  calib?: string;
  maxSamples?: number;
  /** Weights only, even for a runnable model. */
  datafree?: boolean;
  /** Ranks each layer's weights: |w| (default), or from the calibration data: OBS (Hessian), F·w² (Fisher), |ḡ·w| (GWQ). */
  saliency?: 'magnitude' | 'hessian' | 'fisher' | 'gwq';
  seed?: number;
  providers?: string[];
  workDoneToken?: string | number;
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
  /** High-impact ratios per layer under a budget (four strategies) on the job worker, queued; `$/progress`, cancellable. */
  ratios: request<RatiosParams, RatiosReport>('quantlens/ratios'),
  /** The rule (or defaults) of an open plan that decides a layer, or an edit adding one (Reveal in Plan). */
  ruleFor: request<RuleForParams, RuleForResult>('quantlens/ruleFor'),
  /** Finished quantize jobs of a model, read from their JSON reports beside it (predicted vs measured). */
  jobResults: request<JobResultsParams, JobResult[]>('quantlens/jobResults'),
  /** Quantize a whole model with a plan on the job queue, evaluate, write the model and its report; `$/progress`, cancellable. */
  quantizeModel: request<QuantizeModelParams, QuantizeModelResult>('quantlens/quantizeModel'),
  /** The export dialects (id and what each writes). */
  exportDialects: request<Record<string, never>, { id: string; describes: string }[]>('quantlens/exportDialects'),
  /** Write a plan in a tool's dialect beside it (new files only unless `force`). */
  exportPlan: request<ExportPlanParams, ExportPlanResult>('quantlens/exportPlan'),
} as const;
