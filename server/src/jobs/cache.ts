// Finished quantize jobs, remembered by what determines their result: the request's options, the model file's
// identity (device, inode, size, mtime), a hash of the plan text and the identity of the data files. An entry is
// used only while its output file is still the one the job wrote (same size and mtime).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { QuantizeRequest } from './pipeline';

async function identity(file: string | undefined): Promise<string> {
  if (!file) return '-';
  const st = await fsp.stat(file).catch(() => undefined);
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : 'missing';
}

async function planHash(req: QuantizeRequest): Promise<string> {
  if (!req.plan) return '-';
  const text = req.planText ?? (await fsp.readFile(req.plan, 'utf8').catch(() => undefined));
  return text === undefined ? 'missing' : createHash('sha256').update(text).digest('hex');
}

export class JobCache<T> {
  private readonly entries = new Map<string, { output: string; stamp: string; value: T }>();

  /** The cache key of `req` (reads file metadata and the plan text). */
  async key(req: QuantizeRequest): Promise<string> {
    const evalSpec = req.eval === false ? undefined : req.eval;
    const files = await Promise.all([req.model, evalSpec, req.labels, req.calib].map((f) => identity(f && path.resolve(f))));
    const options = { ...req, model: path.resolve(req.model), planText: undefined, out: req.out && path.resolve(req.out) };
    return JSON.stringify([options, files, await planHash(req)]);
  }

  async get(key: string): Promise<T | undefined> {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if ((await identity(e.output)) === e.stamp) return e.value;
    this.entries.delete(key);
    return undefined;
  }

  async set(key: string, output: string, value: T): Promise<void> {
    this.entries.set(key, { output, stamp: await identity(output), value });
  }
}
