// Every custom LSP request/notification and its types, declared once.
// Imported by the client (extension host), the server and the webview — keep it free of runtime dependencies.
import type { AnalysisReport } from './analysis/types';
import type { LayerSummary } from './formats/layers';
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

/** Messages between the webview and the extension host (the webview never talks to the server directly). */
export type HostToWebview = { type: 'show'; title: string; text: string };
export type WebviewToHost = { type: 'ready' };

export const Requests = {
  inspect: request<InspectParams, InspectResult>('quantlens/inspect'),
  /** Data-free analysis, run on worker threads; reports `$/progress` and honours `$/cancelRequest`. */
  analyze: request<AnalyzeParams, AnalyzeResponse>('quantlens/analyze'),
} as const;
