// `inspect`: what a checkpoint holds — shared by the CLI and the language server.
import { openCheckpoint } from './formats/registry';
import { summarizeLayers } from './formats/layers';
import type { InspectResult } from './protocol';

export async function inspectCheckpoint(target: string): Promise<InspectResult> {
  const ckpt = await openCheckpoint(target);
  try {
    const dtypes: InspectResult['dtypes'] = {};
    let params = 0;
    for (const t of ckpt.tensors) {
      const d = (dtypes[t.dtype] ??= { tensors: 0, params: 0 });
      d.tensors++;
      d.params += t.params;
      params += t.params;
    }
    const layers = summarizeLayers(ckpt.tensors);
    const blocks = new Map<string, { block: string; layers: number; params: number }>();
    for (const l of layers) {
      const b = blocks.get(l.block) ?? { block: l.block, layers: 0, params: 0 };
      b.layers++;
      b.params += l.params;
      blocks.set(l.block, b);
    }
    return {
      format: ckpt.format,
      path: ckpt.path,
      files: ckpt.files,
      tensorCount: ckpt.tensors.length,
      params,
      dtypes,
      tensors: ckpt.tensors.map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        params: t.params,
        layer: t.layer.layer,
        block: t.layer.block,
        ...(t.layer.fusedGroup ? { fusedGroup: t.layer.fusedGroup } : {}),
        layout: t.layout,
        analyzable: t.analyzable,
        ...(t.reason ? { reason: t.reason } : {}),
        ...(t.storage ? { storage: t.storage } : {}),
        ...(t.quantForm ? { quantForm: t.quantForm } : {}),
        ...(t.consumers?.length ? { consumers: t.consumers.map((c) => `${c.op}:${c.node}`) } : {}),
      })),
      layers,
      blocks: [...blocks.values()],
      metadata: ckpt.metadata,
      ...(ckpt.config ? { config: ckpt.config } : {}),
    };
  } finally {
    await ckpt.close();
  }
}
