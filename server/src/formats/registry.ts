// Picks a reader by file signature (the Netron pattern) and opens files or model folders.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from './errors';
import { RandomAccessFile } from './file';
import type { Checkpoint, CheckpointReader, Probe } from './types';
import { safetensorsReader } from './safetensors';
import { onnxReader } from './onnx';
import { ggufReader } from './gguf';
import { pytorchReader } from './pytorch';
import { hfConfigReader, readHfConfig } from './hfconfig';

/** Order matters only for ties: signatures are distinct. */
export const READERS: readonly CheckpointReader[] = [ggufReader, safetensorsReader, pytorchReader, onnxReader, hfConfigReader];

const PROBE_BYTES = 64 * 1024;

export async function probeFile(file: string): Promise<Probe> {
  const f = await RandomAccessFile.open(file);
  try {
    return { path: file, size: f.size, head: await f.readUpTo(0, PROBE_BYTES) };
  } finally {
    await f.close();
  }
}

export async function readerFor(file: string): Promise<CheckpointReader> {
  const probe = await probeFile(file);
  const r = READERS.find((reader) => reader.match(probe));
  if (!r) {
    throw new QuantLensError(
      'unknown-format',
      'not a recognized checkpoint (expected safetensors, ONNX, GGUF, PyTorch zip or HF config.json)',
      { file, offset: 0 },
    );
  }
  return r;
}

/** Weight files a model folder may hold, in order of preference. */
const FOLDER_CANDIDATES: [RegExp, number][] = [
  [/\.safetensors\.index\.json$/, 0],
  [/\.safetensors$/, 1],
  [/\.gguf$/, 2],
  [/\.onnx$/, 3],
  [/^pytorch_model.*\.bin\.index\.json$/, 4],
  [/\.(bin|pt|pth)$/, 5],
];

/**
 * Open a checkpoint from a file or a model folder. A folder opens its preferred weight file
 * (an index for sharded checkpoints) and attaches `config.json` when present.
 */
export async function openCheckpoint(target: string): Promise<Checkpoint> {
  const abs = path.resolve(target);
  const st = await fsp.stat(abs).catch((e: NodeJS.ErrnoException) => {
    throw new QuantLensError('not-found', e.code === 'ENOENT' ? 'no such file or folder' : e.message, { file: abs });
  });
  if (!st.isDirectory()) return (await readerFor(abs)).open(abs);

  const names = (await fsp.readdir(abs)).sort();
  let best: { name: string; rank: number } | undefined;
  for (const name of names) {
    const hit = FOLDER_CANDIDATES.find(([re]) => re.test(name));
    if (hit && (!best || hit[1] < best.rank)) best = { name, rank: hit[1] };
  }
  const configPath = path.join(abs, 'config.json');
  const hasConfig = names.includes('config.json');
  if (!best) {
    if (hasConfig) return hfConfigReader.open(configPath);
    throw new QuantLensError('no-weights', 'folder holds no checkpoint file (*.safetensors, *.gguf, *.onnx, *.bin, *.pt) or config.json', {
      file: abs,
    });
  }
  const ckpt = await (await readerFor(path.join(abs, best.name))).open(path.join(abs, best.name));
  ckpt.path = abs;
  if (hasConfig && !ckpt.config) ckpt.config = await readHfConfig(configPath);
  return ckpt;
}
