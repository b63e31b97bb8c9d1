// The shared vocabulary of every checkpoint reader (DESIGN.md §3).
// One reader per format implements `CheckpointReader`; the registry picks one by file signature.

/** Storage dtypes. Float/int names follow safetensors; GGUF block types keep their ggml names. */
export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL'
  | 'I4' | 'U4' | 'STRING'
  | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q8_1'
  | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K'
  | 'IQ2_XXS' | 'IQ2_XS' | 'IQ3_XXS' | 'IQ1_S' | 'IQ4_NL' | 'IQ3_S' | 'IQ2_S' | 'IQ4_XS' | 'IQ1_M'
  | 'TQ1_0' | 'TQ2_0' | 'MXFP4' | 'NVFP4' | 'Q1_0'
  | `UNKNOWN_${string}`;

export type FormatId = 'safetensors' | 'onnx' | 'gguf' | 'pytorch' | 'hf-config';

/** Which role a weight plays for its consumer; decides the axis quantization groups run along. */
export type WeightLayout =
  | 'out_in' // PyTorch/HF Linear, Gemm transB=1: [out, in]
  | 'in_out' // ONNX MatMul B, Gemm transB=0: [in, out]
  | 'conv' // [out, in/groups, kh, kw, ...]
  | 'embedding' // [vocab, hidden], rows gathered
  | 'vector' // norms, biases: 1-D
  | 'other';

export interface Consumer {
  op: string; // e.g. MatMul, Gemm, Conv, Gather; domain-qualified when not ai.onnx (com.microsoft.MatMulNBits)
  node: string; // node name (or `#index` when unnamed)
  input: number; // input slot the tensor feeds
  graph?: string; // subgraph path when not the main graph, e.g. `If_3/then_branch`
}

export interface LayerRef {
  block: string; // e.g. `model.layers.3`, or `(root)` for tensors outside repeated blocks
  layer: string; // e.g. `self_attn.q_proj`
  /** Fused group key when the layer belongs to one (q/k/v, gate/up, experts), e.g. `model.layers.3.self_attn.qkv`. */
  fusedGroup?: string;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Number of elements (product of shape). */
  params: number;
  /** File holding the bytes (a shard or an ONNX external-data file). Absolute path. */
  file: string;
  /** Absolute byte offset of the data in `file`. Plain number: exact to 2^53, so > 4 GiB works. */
  byteOffset: number;
  byteLength: number;
  /** Can `read()` decode it to float? Non-float storage (int ids, strings) is listed, not analyzed. */
  analyzable: boolean;
  /** Why it is not analyzable, when it is not. */
  reason?: string;
  layout: WeightLayout;
  layer: LayerRef;
  /** Where the reader found it: `initializer`, `constant`, `external`, `subgraph`, `gguf`, `shard`, … */
  storage?: string;
  /** Already-quantized form, e.g. `DequantizeLinear`, `MatMulNBits`, `MatMulInteger`, or a GGUF block type. */
  quantForm?: string;
  consumers?: Consumer[];
}

/** Element range for streaming reads: `count` elements starting at element `start`. */
export interface HalfBits {
  dtype: 'F16' | 'BF16';
  bits: Uint16Array;
}

export interface ElementRange {
  start: number;
  count: number;
}

export interface Checkpoint {
  format: FormatId;
  /** The path the user opened (file or folder). */
  path: string;
  /** Every file the checkpoint spans (shards, external data). */
  files: string[];
  tensors: TensorInfo[];
  /** Format metadata: safetensors `__metadata__`, GGUF KV, ONNX producer/opsets, … JSON-serializable. */
  metadata: Record<string, unknown>;
  /** HF config.json found beside the weights, if any. */
  config?: ModelConfig;
  /**
   * Decode a tensor (or an element range of it) to float32, reading only those bytes from disk. `into` (length ≥
   * the element count): a buffer the reader may decode into and return a view of, so streaming scans need not
   * allocate per range; readers that ignore it return a fresh array.
   */
  read(name: string, range?: ElementRange, into?: Float32Array): Promise<Float32Array>;
  /**
   * The stored 16-bit patterns of an element range when the tensor is plain F16 or BF16 on disk (undefined for any
   * other storage), for scans that work on bit patterns without decoding (sampled analysis's pre-pass). Read into
   * `into` when it is long enough.
   */
  readHalf?(name: string, range?: ElementRange, into?: Uint16Array): Promise<HalfBits | undefined>;
  /** Release file handles. Safe to call twice. */
  close(): Promise<void>;
}

/** What a reader sees before deciding whether it owns a file. */
export interface Probe {
  path: string;
  size: number;
  /** The first bytes of the file (up to 64 KiB). */
  head: Uint8Array;
}

export interface CheckpointReader {
  format: FormatId;
  /** Sniff the bytes (extension only as a tie-breaker). Must not throw. */
  match(probe: Probe): boolean;
  open(path: string): Promise<Checkpoint>;
}

/** The parts of a Hugging Face config.json that matter for quantization. */
export interface ModelConfig {
  path: string;
  architectures: string[];
  modelType?: string;
  numLayers?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  numHeads?: number;
  numKeyValueHeads?: number;
  vocabSize?: number;
  numExperts?: number;
  numExpertsPerToken?: number;
  torchDtype?: string;
  tieWordEmbeddings?: boolean;
  quantizationConfig?: Record<string, unknown>;
  /** Parameter count implied by the fields (decoder-only transformer estimate), when computable. */
  estimatedParams?: number;
}
