// Placeholder until the onnx reader lands: matches nothing.
import type { CheckpointReader } from './types';

export const onnxReader: CheckpointReader = {
  format: 'onnx',
  match: () => false,
  open: async (p) => {
    throw new Error(`${p}: onnx reader not implemented`);
  },
};
