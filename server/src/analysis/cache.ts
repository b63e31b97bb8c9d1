// On-disk cache of analysis reports. Key: SHA-256 over the identity of every file the checkpoint spans
// (absolute path, size, mtime in ns, inode, device), the formats (id, definition, bits), the options that change
// results and the analysis version. Entry: one line `quantlens-analysis <sha256 of body>` then the JSON body;
// an entry whose checksum or JSON does not verify is treated as absent (and rewritten). Writes go to a temp file
// in the same folder, then rename: readers never see a partial entry.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getFormat } from '../quant';
import { ANALYSIS_VERSION, type AnalysisReport, type DatafreeOptions } from './types';

const MAGIC = 'quantlens-analysis';

/** `$XDG_CACHE_HOME/quantlens`, else the platform cache folder (~/.cache, ~/Library/Caches, %LOCALAPPDATA%). */
export function defaultCacheDir(): string {
  const home = os.homedir();
  let base = process.env.XDG_CACHE_HOME;
  if (!base) {
    if (process.platform === 'darwin') base = path.join(home, 'Library', 'Caches');
    else if (process.platform === 'win32') base = process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local');
    else base = path.join(home, '.cache');
  }
  return path.join(base, 'quantlens');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export async function cacheKey(target: string, files: string[], opts: DatafreeOptions): Promise<string> {
  const identity = [];
  for (const f of [...new Set([path.resolve(target), ...files.map((x) => path.resolve(x))])]) {
    const st = await fsp.stat(f, { bigint: true });
    identity.push([f, st.size.toString(), st.mtimeNs.toString(), st.ino.toString(), st.dev.toString()]);
  }
  const formats = opts.formats.map((id) => {
    const f = getFormat(id);
    return [f.id, f.description, f.bitsPerWeight([4096, 4096], 'out_in')];
  });
  const { sigma, sample, seed, confidence, groupMaps, mapSize, highImpact, ratios, only } = opts;
  const options = { sigma, sample: sample ?? null, seed, confidence, groupMaps, mapSize, highImpact, ratios, only: only ?? null };
  return sha256(JSON.stringify({ version: ANALYSIS_VERSION, identity, formats, options }));
}

const entryPath = (dir: string, key: string) => path.join(dir, `${key}.json`);

/** The cached report, or undefined when absent or corrupt. */
export async function readCache(dir: string, key: string): Promise<AnalysisReport | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(entryPath(dir, key), 'utf8');
  } catch {
    return undefined;
  }
  const nl = text.indexOf('\n');
  const [magic, sum] = text.slice(0, Math.max(nl, 0)).split(' ');
  const body = text.slice(nl + 1);
  if (nl < 0 || magic !== MAGIC || sum !== sha256(body)) return undefined;
  try {
    return JSON.parse(body) as AnalysisReport;
  } catch {
    return undefined;
  }
}

export async function writeCache(dir: string, key: string, report: AnalysisReport): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const body = JSON.stringify(report);
  const tmp = path.join(dir, `.${key}.${process.pid}.${Date.now()}.tmp`);
  await fsp.writeFile(tmp, `${MAGIC} ${sha256(body)}\n${body}`);
  try {
    await fsp.rename(tmp, entryPath(dir, key));
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
