// Where yauzl stands in a zip's central directory: the byte offset of the record it failed to parse, so that a
// corrupt directory is a located error. yauzl keeps it as `readEntryCursor` (@types/yauzl types it as boolean).
import type { ZipFile } from 'yauzl';

export function zipCursor(zip: ZipFile): number | undefined {
  const cursor = (zip as unknown as { readEntryCursor: unknown }).readEntryCursor;
  return typeof cursor === 'number' ? cursor : undefined;
}
