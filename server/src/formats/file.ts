// Bounds-checked random access to a file: readers never trust an offset or length from a header.
import { promises as fsp } from 'node:fs';
import { check } from './errors';

export class RandomAccessFile {
  private constructor(
    readonly path: string,
    readonly size: number,
    private handle: fsp.FileHandle | undefined,
  ) {}

  static async open(path: string): Promise<RandomAccessFile> {
    const handle = await fsp.open(path, 'r');
    try {
      const st = await handle.stat();
      check(st.isFile(), 'not-a-file', 'not a regular file', { file: path });
      return new RandomAccessFile(path, st.size, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /**
   * Read exactly `length` bytes at `offset` (into `into` when it is long enough); a range outside the file is a
   * located error, never a short read.
   */
  async read(offset: number, length: number, what = 'data', into?: Uint8Array): Promise<Uint8Array> {
    this.checkRange(offset, length, what);
    const buf = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh().read(buf, done, length - done, offset + done);
      check(bytesRead > 0, 'truncated', `file ended while reading ${what} (${length} bytes expected)`, {
        file: this.path,
        offset: offset + done,
      });
      done += bytesRead;
    }
    return buf;
  }

  /** Read up to `length` bytes at `offset` (clipped at end of file). For sniffing headers. */
  async readUpTo(offset: number, length: number): Promise<Uint8Array> {
    const n = Math.max(0, Math.min(length, this.size - offset));
    return n === 0 ? new Uint8Array(0) : this.read(offset, n);
  }

  checkRange(offset: number, length: number, what: string): void {
    check(
      Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0,
      'bad-range',
      `invalid byte range for ${what}: offset ${offset}, length ${length}`,
      { file: this.path },
    );
    check(
      offset + length <= this.size,
      'out-of-range',
      () => `${what} spans bytes ${offset}..${offset + length} but the file has ${this.size} bytes`,
      { file: this.path, offset },
    );
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }

  private fh(): fsp.FileHandle {
    check(this.handle, 'closed', 'file already closed', { file: this.path });
    return this.handle;
  }
}

/** Caches open files of one checkpoint (shards, external data) and closes them together. */
export class FilePool {
  private files = new Map<string, Promise<RandomAccessFile>>();

  get(path: string): Promise<RandomAccessFile> {
    let f = this.files.get(path);
    if (!f) {
      f = RandomAccessFile.open(path);
      this.files.set(path, f);
      f.catch(() => this.files.delete(path));
    }
    return f;
  }

  async closeAll(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    await Promise.all(all.map(async (f) => (await f.catch(() => undefined))?.close()));
  }
}
