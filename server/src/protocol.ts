// Every custom LSP request/notification and its types, declared once.
// Imported by the client (extension host), the server and the webview — keep it free of runtime dependencies.
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
} as const;
