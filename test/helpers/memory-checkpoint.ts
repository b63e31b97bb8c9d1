// An in-memory Checkpoint for analysis unit tests: float32 tensors, element-range reads, no files.
import { guessLayout, layerOf } from '../../server/src/formats/layers';
import type { Checkpoint, TensorInfo, WeightLayout } from '../../server/src/formats/types';

export interface MemoryTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  layout?: WeightLayout;
}

export function memoryCheckpoint(tensors: MemoryTensor[], file = '/memory/model.safetensors'): Checkpoint {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const infos: TensorInfo[] = tensors.map((t) => ({
    name: t.name,
    dtype: 'F32',
    shape: t.shape,
    params: t.data.length,
    file,
    byteOffset: 0,
    byteLength: t.data.length * 4,
    analyzable: true,
    layout: t.layout ?? guessLayout(t.name, t.shape),
    layer: layerOf(t.name),
  }));
  return {
    format: 'safetensors',
    path: file,
    files: [file],
    tensors: infos,
    metadata: {},
    async read(name, range) {
      const t = byName.get(name)!;
      const start = range?.start ?? 0;
      const count = range?.count ?? t.data.length;
      if (start < 0 || start + count > t.data.length) throw new Error(`range ${start}+${count} outside ${name}`);
      return t.data.slice(start, start + count);
    },
    async close() {},
  };
}

export function tensorInfo(ckpt: Checkpoint, name: string): TensorInfo {
  const t = ckpt.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}
