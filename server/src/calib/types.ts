// Calibration data as every consumer sees it: plain typed arrays keyed by model input name, independent of
// onnxruntime's Tensor class so loaders, workers and tests can build and pass them around freely.

/** Element types a model input can take (ONNX names). */
export type InputDType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

export type ArrayData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int8Array | Uint8Array | Uint16Array;

/** One input value: float16 holds its bit patterns in a Uint16Array, bool one byte per element. */
export interface ArrayValue {
  dtype: InputDType;
  dims: number[];
  data: ArrayData;
}

/** One batch: a value for every model input. */
export type Feeds = Record<string, ArrayValue>;

/** A model input as declared by the graph: symbolic dims are strings (or -1 when unnamed). */
export interface ModelInput {
  name: string;
  dtype: InputDType;
  dims: (number | string)[];
}

export interface CalibrationSet {
  /** Batches in a fixed order; every batch has every model input. */
  batches: Feeds[];
  /** Samples over all batches (the size of axis 0 summed). */
  samples: number;
  /** True when the deterministic synthetic generator made the data (reports must say so). */
  synthetic: boolean;
  /** Where the data came from, for reports: a path, or a description of the synthetic generator. */
  source: string;
}
