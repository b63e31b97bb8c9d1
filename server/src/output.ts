// Every file QuantLens writes (reports, plans, exports, quantized models) goes through here: written to a temp file
// in the target's folder, then renamed over the target, so a crash or a full disk never leaves a half-written file;
// the user's inputs are never the target. A command that writes several files writes them all or none.
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

export interface OutputFile {
  target: string;
  data: string | Uint8Array;
  opts?: OutputOptions;
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

/** The absolute target, after refusing an input, a non-file or (without overwrite) an existing file; whether it exists. */
async function checkTarget(target: string, opts: OutputOptions): Promise<{ file: string; existed: boolean }> {
  const file = path.resolve(target);
  const existing = await fsp.stat(file).catch(() => undefined);
  if (existing) {
    for (const input of opts.inputs ?? []) {
      if (await sameFile(file, input)) throw new QuantLensError('output-is-input', `refusing to write over an input of this command (${input})`, { file });
    }
    if (!existing.isFile()) throw new QuantLensError('output-not-file', 'the output path exists and is not a regular file', { file });
    if (!opts.overwrite) throw new QuantLensError('output-exists', `the file exists; pass ${opts.overwriteFlag ?? '--force'} to replace it`, { file });
  }
  return { file, existed: existing !== undefined };
}

const writeError = (e: unknown, file: string): unknown => {
  const err = e as NodeJS.ErrnoException;
  return typeof err.code === 'string' ? new QuantLensError('output-write', `could not write the output: ${err.code} (${err.message})`, { file }) : e;
};

export async function writeOutputFile(target: string, data: string | Uint8Array, opts: OutputOptions = {}): Promise<void> {
  await writeOutputFiles([{ target, data, opts }]);
}

/**
 * Write several outputs all or none: every target is checked and every temp file written (the step that needs disk
 * space) before the first rename; if a write or rename fails, the temp files are removed and so are the targets this
 * call created, so a full disk or a read-only folder leaves no partial output.
 */
export async function writeOutputFiles(files: readonly OutputFile[]): Promise<void> {
  const planned = [];
  for (const f of files) planned.push({ ...(await checkTarget(f.target, f.opts ?? {})), data: f.data, tmp: '' });
  const placed: string[] = [];
  let current = '';
  try {
    for (const p of planned) {
      current = p.file;
      p.tmp = path.join(path.dirname(p.file), `.${path.basename(p.file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      await fsp.writeFile(p.tmp, p.data, { flag: 'wx' });
    }
    for (const p of planned) {
      current = p.file;
      await fsp.rename(p.tmp, p.file);
      p.tmp = '';
      if (!p.existed) placed.push(p.file);
    }
  } catch (e) {
    await Promise.all([...planned.filter((p) => p.tmp).map((p) => p.tmp), ...placed].map((f) => fsp.rm(f, { force: true }).catch(() => undefined)));
    throw writeError(e, current);
  }
}
