// Placeholder until the gguf reader lands: matches nothing.
import type { CheckpointReader } from './types';

export const ggufReader: CheckpointReader = {
  format: 'gguf',
  match: () => false,
  open: async (p) => {
    throw new Error(`${p}: gguf reader not implemented`);
  },
};
