// Benchmark data written once into bench-data/ (git-ignored) and reused while its size matches.
import { closeSync, existsSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';

export const BENCH_DATA = path.resolve(process.env.QUANTLENS_BENCH_DATA ?? 'bench-data');

/**
 * `count` fp16 tensors of rows×cols in one safetensors file, named `model.layers.<i/4>.mlp.proj<i%4>.weight`;
 * `fill(i, bits)` writes tensor i's IEEE half bits (row-major). Returns the file's path.
 */
export function ensureFp16Checkpoint(name: string, count: number, rows: number, cols: number, fill: (i: number, bits: Uint16Array) => void): string {
  const file = path.join(BENCH_DATA, name);
  const bytesPer = rows * cols * 2;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (let i = 0; i < count; i++) {
    header[`model.layers.${i >> 2}.mlp.proj${i & 3}.weight`] = { dtype: 'F16', shape: [rows, cols], data_offsets: [i * bytesPer, (i + 1) * bytesPer] };
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  if (existsSync(file) && statSync(file).size === 8 + json.length + count * bytesPer) return file;
  mkdirSync(BENCH_DATA, { recursive: true });
  const fd = openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    const chunk = Buffer.alloc(bytesPer);
    const bits = new Uint16Array(chunk.buffer, chunk.byteOffset, bytesPer / 2);
    for (let i = 0; i < count; i++) {
      fill(i, bits);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return file;
}
