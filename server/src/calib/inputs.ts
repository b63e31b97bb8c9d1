// Between onnxruntime and the calibration types: a session's declared inputs, and feeds as ort Tensors.
import * as ort from 'onnxruntime-node';
import { QuantLensError } from '../formats/errors';
import type { Feeds, InputDType, ModelInput } from './types';
import { DTYPE_BYTES } from './values';

/** The session's inputs; a non-tensor input or an element type QuantLens cannot feed is an error naming it. */
export function modelInputs(session: ort.InferenceSession, file = '<model>'): ModelInput[] {
  return session.inputMetadata.map((m) => {
    if (!m.isTensor) throw new QuantLensError('unsupported-input', `input '${m.name}' is not a tensor (sequences and maps cannot be fed)`, { file });
    if (!Object.hasOwn(DTYPE_BYTES, m.type)) {
      throw new QuantLensError('unsupported-input', `input '${m.name}' has element type ${m.type}; calibration feeds ${Object.keys(DTYPE_BYTES).join(', ')}`, { file });
    }
    // onnxruntime reports an unnamed dynamic dim as -1 or an empty name: both become -1.
    const dims = m.shape.map((d) => (typeof d === 'string' ? d || -1 : d < 0 ? -1 : d));
    return { name: m.name, dtype: m.type as InputDType, dims };
  });
}

export function toOrtFeeds(feeds: Feeds): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, v] of Object.entries(feeds)) out[name] = new ort.Tensor(v.dtype, v.data, v.dims);
  return out;
}

/** ONNX value-info element types (the reader's names) → calibration input types; others cannot be fed. */
const INPUT_TYPES: Record<string, InputDType> = { F32: 'float32', F16: 'float16', F64: 'float64', I64: 'int64', I32: 'int32', I8: 'int8', U8: 'uint8', BOOL: 'bool' };

/** The graph inputs of an ONNX model as its reader lists them in `metadata.inputs`, or undefined. */
export function onnxInputs(metadata: Record<string, unknown> | undefined): ModelInput[] | undefined {
  const list = metadata?.inputs;
  if (!Array.isArray(list)) return undefined;
  const out: ModelInput[] = [];
  for (const v of list as { name: string; type: string; shape?: (number | string)[] }[]) {
    const dtype = INPUT_TYPES[v.type];
    if (!dtype || !v.shape) return undefined;
    out.push({ name: v.name, dtype, dims: v.shape.map((d) => (d === '?' ? -1 : d)) });
  }
  return out;
}
