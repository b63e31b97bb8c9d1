// NumPy .npz: a zip archive of .npy members, one per array (np.savez / np.savez_compressed). Member names are
// array names only, never used as paths. Declared sizes are checked before a member is read or inflated, and
// yauzl refuses members whose data does not match their declared sizes.
import { promises as fsp } from 'node:fs';
import * as yauzl from 'yauzl';
import { check, LIMITS, QuantLensError, type Location } from '../formats/errors';
import { zipCursor } from '../formats/zip-cursor';
import { memorySource, readNpy } from './npy';
import type { ArrayValue } from './types';

export interface NamedArray {
  name: string;
  value: ArrayValue;
}

/** Bytes of all members together: the element limit at 8 bytes each. */
export const MAX_NPZ_BYTES = LIMITS.maxArrayElements * 8;
const MAX_MEMBERS = 100_000;
/** deflate cannot expand more than ~1032:1; a larger declared ratio is a lie. */
const MAX_DEFLATE_RATIO = 1032;

export async function readNpz(path: string): Promise<NamedArray[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
  } catch (e) {
    // yauzl scans the last 64 KiB for the end-of-central-directory record: a truncated archive fails there.
    const size = (await fsp.stat(path).catch(() => undefined))?.size;
    const tail = size === undefined ? undefined : Math.max(0, size - 22 - 0xffff);
    throw new QuantLensError('bad-npz', `expected a .npz (zip) archive: ${(e as Error).message}`, { file: path, offset: tail });
  }
  try {
    check(
      zip.entryCount <= MAX_MEMBERS && zip.entryCount * 46 <= zip.fileSize, // a central directory record takes ≥ 46 bytes
      'bad-npz',
      `zip directory declares ${zip.entryCount} members, more than a ${zip.fileSize}-byte file can hold (limit ${MAX_MEMBERS})`,
      { file: path },
    );
    const out: NamedArray[] = [];
    let total = 0;
    for await (const e of zip.eachEntry()) {
      // Raw names (decodeStrings off): yauzl's path checks would refuse keys such as '../x' that numpy allows.
      const member = e.fileNameRaw.toString('utf8');
      const where: Location = { file: path, offset: e.relativeOffsetOfLocalHeader, tensor: member };
      check(member.endsWith('.npy'), 'bad-npz', `expected only .npy members, found '${member}'`, where);
      check(!e.isEncrypted(), 'bad-npz', `member '${member}' is encrypted`, where);
      check(e.compressionMethod === 0 || e.compressionMethod === 8, 'bad-npz', `member '${member}' uses compression method ${e.compressionMethod} (expected 0 stored or 8 deflate)`, where);
      check(
        e.compressionMethod === 0 || e.uncompressedSize <= Math.max(1024, e.compressedSize * MAX_DEFLATE_RATIO),
        'bad-npz',
        () => `member '${member}' declares ${e.uncompressedSize} bytes from ${e.compressedSize} deflated bytes, beyond deflate's maximum ratio`,
        where,
      );
      total += e.uncompressedSize;
      check(total <= MAX_NPZ_BYTES, 'too-large', `members up to '${member}' declare ${total} bytes, more than the ${MAX_NPZ_BYTES}-byte limit`, where);
      const name = member.slice(0, -4);
      check(!out.some((a) => a.name === name), 'bad-npz', `array '${name}' appears twice`, where);
      const bytes = await readMember(zip, e, member, where);
      out.push({ name, value: await readNpy(memorySource(bytes, `${path}!/${member}`)) });
    }
    return out;
  } catch (e) {
    if (e instanceof QuantLensError) throw e;
    throw new QuantLensError('bad-npz', `invalid .npz archive: ${(e as Error).message}`, { file: path, offset: zipCursor(zip) });
  } finally {
    zip.on('error', () => undefined); // nothing left to report after close
    zip.close();
  }
}

/** A member's bytes, inflated when deflated; never more than its declared size is kept. */
async function readMember(zip: yauzl.ZipFile, e: yauzl.Entry, member: string, where: Location): Promise<Uint8Array> {
  const out = new Uint8Array(e.uncompressedSize);
  let at = 0;
  try {
    for await (const chunk of await zip.openReadStreamPromise(e)) {
      const c = chunk as Buffer;
      check(at + c.length <= out.length, 'bad-npz', `member '${member}' inflates beyond its declared ${out.length} bytes`, where);
      out.set(c, at);
      at += c.length;
    }
  } catch (err) {
    if (err instanceof QuantLensError) throw err;
    throw new QuantLensError('bad-npz', `cannot read member '${member}': ${(err as Error).message}`, where);
  }
  check(at === out.length, 'truncated', `member '${member}' holds ${at} bytes, its header declares ${out.length}`, where);
  return out;
}
