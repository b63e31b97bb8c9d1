// Placeholder until the pytorch reader lands: matches nothing.
import type { CheckpointReader } from './types';

export const pytorchReader: CheckpointReader = {
  format: 'pytorch',
  match: () => false,
  open: async (p) => {
    throw new Error(`${p}: pytorch reader not implemented`);
  },
};
