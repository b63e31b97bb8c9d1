// ONNX external data: `location` is a path relative to the model's folder. A hostile model could point
// it anywhere (absolute paths, `..`, symlinks), so every location must stay inside that folder, and
// every (offset, length) must fit the file it names.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { check, QuantLensError, type Location } from './errors';
import type { ExternalRef } from './onnx-tensor';

export interface ExternalSpan {
  file: string;
  offset: number;
  length: number;
}

export class ExternalFiles {
  private readonly dir: string;
  private realDir: Promise<string> | undefined;
  private readonly sizes = new Map<string, Promise<number>>();

  constructor(modelFile: string) {
    this.dir = path.dirname(modelFile);
  }

  /** Files resolved so far, in first-use order. */
  get files(): string[] {
    return [...this.sizes.keys()];
  }

  /** Resolve and bounds-check one tensor's external data; `need` is params × element size when known. */
  async resolve(ref: ExternalRef, need: number | undefined, where: Location & { tensor: string }): Promise<ExternalSpan> {
    const file = this.locate(ref.location, where);
    let size = this.sizes.get(file);
    if (!size) {
      size = this.sizeOf(file, ref.location, where);
      this.sizes.set(file, size);
      size.catch(() => this.sizes.delete(file));
    }
    const fileSize = await size;
    const length = ref.length ?? need;
    check(length !== undefined, 'bad-external', 'external data has no "length" and the dtype has no fixed size', where);
    check(need === undefined || length === need, 'bad-size', () => `external data length is ${length} bytes but the shape needs ${need}`, where);
    check(
      ref.offset + length <= fileSize,
      'out-of-range',
      () => `external data spans bytes ${ref.offset}..${ref.offset + length} of ${file}, which has ${fileSize} bytes`,
      { ...where, offset: ref.offset },
    );
    return { file, offset: ref.offset, length };
  }

  /** Lexical checks: relative, no `..` component (either separator: models travel between OSes). */
  private locate(location: string, where: Location): string {
    const escape = (why: string) => new QuantLensError('external-escape', `external data location "${location}" ${why}`, where);
    if (location.includes('\0')) throw escape('contains a NUL byte');
    if (path.posix.isAbsolute(location) || path.win32.isAbsolute(location)) throw escape('is absolute; it must be relative to the model folder');
    const parts = location.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw escape('leaves the model folder (".." component)');
    if (parts.length === 0) throw escape('names no file');
    return path.join(this.dir, ...parts);
  }

  /** Size of an external file, after checking that symlinks do not lead outside the model folder. */
  private async sizeOf(file: string, location: string, where: Location): Promise<number> {
    let real: string;
    try {
      real = await fsp.realpath(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new QuantLensError('not-found', code === 'ENOENT' ? `external data file not found: ${file}` : `cannot open external data ${file}: ${String(e)}`, where);
    }
    const dir = await (this.realDir ??= fsp.realpath(this.dir));
    const rel = path.relative(dir, real);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new QuantLensError('external-escape', `external data location "${location}" resolves to ${real}, outside the model folder ${dir}`, where);
    }
    const st = await fsp.stat(real);
    check(st.isFile(), 'not-a-file', `external data ${file} is not a regular file`, where);
    return st.size;
  }
}
