// Pieces shared by the readers whose tensors are plain contiguous bytes in one or more files
// (safetensors, PyTorch zip): the Checkpoint object, and the rule that index entries stay inside the folder.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { check, QuantLensError, type Location } from './errors';
import { FilePool } from './file';
import { readPlainHalf, readPlainTensor } from './dtypes';
import { describe } from './json';
import type { Checkpoint, FormatId, TensorInfo } from './types';

export function plainCheckpoint(format: FormatId, opened: string, files: string[], tensors: TensorInfo[], metadata: Record<string, unknown>): Checkpoint {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const pool = new FilePool();
  let closed = false;
  return {
    format,
    path: opened,
    files,
    tensors,
    metadata,
    async read(name, range, into) {
      check(!closed, 'closed', 'checkpoint already closed', { file: opened, tensor: name });
      const t = byName.get(name);
      check(t, 'unknown-tensor', `no tensor named ${describe(name)} in this checkpoint`, { file: opened, tensor: name });
      return readPlainTensor(await pool.get(t.file), t, range, into);
    },
    async readHalf(name, range, into) {
      check(!closed, 'closed', 'checkpoint already closed', { file: opened, tensor: name });
      const t = byName.get(name);
      check(t, 'unknown-tensor', `no tensor named ${describe(name)} in this checkpoint`, { file: opened, tensor: name });
      return readPlainHalf(await pool.get(t.file), t, range, into);
    },
    async close() {
      closed = true;
      await pool.closeAll();
    },
  };
}

/** The shard must exist and, symlinks resolved, stay inside the (resolved) index folder. */
export async function checkShardInside(realDir: string, shard: string, rel: string, where: Location): Promise<void> {
  let real: string;
  try {
    real = await fsp.realpath(shard);
  } catch (e) {
    throw new QuantLensError('not-found', `shard ${describe(rel)} not found (${(e as NodeJS.ErrnoException).code ?? 'error'})`, where);
  }
  const r = path.relative(realDir, real);
  check(
    r !== '' && r !== '..' && !r.startsWith(`..${path.sep}`) && !path.isAbsolute(r),
    'path-escape',
    `shard ${describe(rel)} resolves to ${real}, which is not inside the index folder ${realDir}`,
    where,
  );
}
