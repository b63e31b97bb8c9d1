// Every file QuantLens writes (reports, plans, exports, quantized models) goes through here: written to a temp file
// in the target's folder, then renamed over the target, so a crash or a full disk never leaves a half-written file;
// the user's inputs are never the target.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from './formats/errors';

export interface OutputOptions {
  /** Replace an existing file (default: refuse, naming the flag that allows it). */
  overwrite?: boolean;
  /** The flag a user passes to allow overwriting, for the message (default `--force`). */
  overwriteFlag?: string;
  /** Files this command reads (model files, the plan): the output may never be one of them, under any name. */
  inputs?: readonly string[];
}

/** Same file on disk (hard links and symlinks included), or false when either does not exist. */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

export async function writeOutputFile(target: string, data: string | Uint8Array, opts: OutputOptions = {}): Promise<void> {
  const file = path.resolve(target);
  const existing = await fsp.stat(file).catch(() => undefined);
  if (existing) {
    for (const input of opts.inputs ?? []) {
      if (await sameFile(file, input)) throw new QuantLensError('output-is-input', `refusing to write over an input of this command (${input})`, { file });
    }
    if (!existing.isFile()) throw new QuantLensError('output-not-file', 'the output path exists and is not a regular file', { file });
    if (!opts.overwrite) throw new QuantLensError('output-exists', `the file exists; pass ${opts.overwriteFlag ?? '--force'} to replace it`, { file });
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, data, { flag: 'wx' });
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string') throw new QuantLensError('output-write', `could not write the output: ${err.code} (${err.message})`, { file });
    throw e;
  }
}
