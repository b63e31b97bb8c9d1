// Placeholder until the safetensors reader lands: matches nothing.
import type { CheckpointReader } from './types';

export const safetensorsReader: CheckpointReader = {
  format: 'safetensors',
  match: () => false,
  open: async (p) => {
    throw new Error(`${p}: safetensors reader not implemented`);
  },
};
