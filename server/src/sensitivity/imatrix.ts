// llama.cpp importance matrices as the diagonal of the layer Hessian, for checkpoints QuantLens cannot run
// (safetensors/GGUF LLMs). An imatrix holds, per weight matrix, the mean squared activation E[x_j²] of every input
// column j over the calibration tokens; H = (2/N) Σ x xᵀ has diagonal H_jj = 2·E[x_j²] (DESIGN.md §4).
// Two layouts (llama.cpp tools/imatrix, common/imatrix-loader):
//   GGUF (current): general.type = "imatrix"; per matrix `<name>.in_sum2` F32 ne = [n_per_row, n_mat] holding
//     Σ x_j² and `<name>.counts` F32 ne = [1, n_mat] holding the token count of each matrix (n_mat > 1: MoE experts).
//   legacy .dat: i32 n_entries; per entry i32 name_len, name bytes, i32 ncall, i32 nval, f32 values[nval] where
//     values = E[x_j²]·ncall; then optionally i32 last_call, i32 len, dataset file name.
// Names are GGUF tensor names (blk.0.attn_q.weight); Hugging Face names are mapped with the llama.cpp converter's
// table.
import { ggufName } from '../export/ggml';
import { check, LIMITS, QuantLensError } from '../formats/errors';
import { RandomAccessFile } from '../formats/file';
import { openCheckpoint } from '../formats/registry';

export interface ImatrixEntry {
  nPerRow: number;
  nMat: number;
  /** E[x_j²] per matrix: nMat × nPerRow, row-major. */
  meanSq: Float32Array;
}

export interface Imatrix {
  file: string;
  layout: 'gguf' | 'legacy';
  entries: Map<string, ImatrixEntry>;
  /** Calibration chunks (GGUF `imatrix.chunk_count`, legacy `last_call`), when recorded. */
  chunks?: number;
  datasets: string[];
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian

export async function readImatrix(file: string): Promise<Imatrix> {
  const f = await RandomAccessFile.open(file);
  let magic: number;
  try {
    check(f.size >= 4, 'imatrix-truncated', 'an imatrix file has at least 4 bytes', { file, offset: 0 });
    magic = new DataView((await f.read(0, 4, 'magic')).buffer).getUint32(0, true);
    if (magic !== GGUF_MAGIC) return await readLegacy(f);
  } finally {
    await f.close();
  }
  return readGgufImatrix(file);
}

async function readGgufImatrix(file: string): Promise<Imatrix> {
  const ckpt = await openCheckpoint(file);
  try {
    const type = ckpt.metadata['general.type'];
    check(type === undefined || type === 'imatrix', 'imatrix-type', `expected a GGUF imatrix (general.type "imatrix"), found general.type "${String(type)}"`, { file, tensor: 'general.type' });
    const byName = new Map(ckpt.tensors.map((t) => [t.name, t]));
    const entries = new Map<string, ImatrixEntry>();
    for (const t of ckpt.tensors) {
      if (!t.name.endsWith('.in_sum2')) continue;
      const base = t.name.slice(0, -'.in_sum2'.length);
      const c = byName.get(`${base}.counts`);
      check(c !== undefined, 'imatrix-counts', `${t.name} has no matching ${base}.counts tensor`, { file, tensor: t.name });
      // Shapes in QuantLens order (ggml ne reversed): in_sum2 [n_mat, n_per_row], counts [n_mat, 1].
      const nPerRow = t.shape[t.shape.length - 1];
      const nMat = t.params / nPerRow;
      check(c.params === nMat, 'imatrix-counts', `${c.name} has ${c.params} values, expected one per matrix (${nMat})`, { file, tensor: c.name });
      const sums = await ckpt.read(t.name);
      const counts = await ckpt.read(c.name);
      const meanSq = new Float32Array(sums.length);
      for (let m = 0; m < nMat; m++) {
        const n = counts[m];
        check(Number.isFinite(n) && n >= 0, 'imatrix-counts', `${c.name}[${m}] = ${n} is not a token count`, { file, tensor: c.name });
        // A matrix that saw no tokens (an unused expert) has no information: its columns weigh 0.
        if (n > 0) for (let j = 0; j < nPerRow; j++) meanSq[m * nPerRow + j] = sums[m * nPerRow + j] / n;
      }
      entries.set(base, { nPerRow, nMat, meanSq });
    }
    check(entries.size > 0, 'imatrix-empty', 'no `<name>.in_sum2` tensors: not an imatrix', { file });
    const chunks = ckpt.metadata['imatrix.chunk_count'];
    const datasets = ckpt.metadata['imatrix.datasets'];
    return {
      file,
      layout: 'gguf',
      entries,
      chunks: typeof chunks === 'number' ? chunks : undefined,
      datasets: Array.isArray(datasets) ? datasets.filter((d): d is string => typeof d === 'string') : [],
    };
  } finally {
    await ckpt.close();
  }
}

/** Bounded sequential reader over the legacy layout: every count is checked against the bytes left. */
async function readLegacy(f: RandomAccessFile): Promise<Imatrix> {
  const file = f.path;
  let pos = 0;
  const i32 = async (what: string) => {
    check(pos + 4 <= f.size, 'imatrix-truncated', `file ends inside ${what}`, { file, offset: pos });
    const v = new DataView((await f.read(pos, 4, what)).buffer).getInt32(0, true);
    pos += 4;
    return v;
  };
  const n = await i32('the entry count');
  // Each entry needs ≥ 12 bytes: a bound that refuses absurd counts before any loop.
  check(n > 0 && n <= Math.min(LIMITS.maxTensors, (f.size - 4) / 12), 'imatrix-format', `entry count ${n} does not fit a ${f.size}-byte legacy imatrix (and the file does not start with GGUF)`, { file, offset: 0 });
  const entries = new Map<string, ImatrixEntry>();
  for (let e = 0; e < n; e++) {
    const at = pos;
    const len = await i32('a name length');
    check(len > 0 && len <= 4096 && pos + len <= f.size, 'imatrix-format', `entry ${e}: name length ${len} is not plausible`, { file, offset: at });
    const name = new TextDecoder('utf-8', { fatal: false }).decode(await f.read(pos, len, 'a tensor name'));
    pos += len;
    const ncall = await i32('a call count');
    const nval = await i32('a value count');
    check(ncall >= 0, 'imatrix-format', `${name}: negative call count ${ncall}`, { file, offset: pos - 8 });
    check(nval > 0 && pos + nval * 4 <= f.size, 'imatrix-format', `${name}: ${nval} values do not fit in the ${f.size - pos} bytes left`, { file, offset: pos - 4 });
    const raw = await f.read(pos, nval * 4, `the values of ${name}`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const meanSq = new Float32Array(nval);
    if (ncall > 0) for (let j = 0; j < nval; j++) meanSq[j] = dv.getFloat32(4 * j, true) / ncall;
    pos += nval * 4;
    // The value count is n_per_row × n_mat; the row length is only known from the weight it is matched with.
    entries.set(name, { nPerRow: nval, nMat: 1, meanSq });
  }
  let chunks: number | undefined;
  const datasets: string[] = [];
  if (pos + 8 <= f.size) {
    chunks = await i32('the chunk count');
    const len = await i32('the dataset name length');
    if (len > 0 && pos + len <= f.size) datasets.push(new TextDecoder().decode(await f.read(pos, len, 'the dataset name')));
  }
  return { file, layout: 'legacy', entries, chunks, datasets };
}

/** The expert index in a Hugging Face per-expert name (…experts.7.up_proj.weight), if any. */
const expertOf = (name: string) => /\.experts\.(\d+)\./.exec(name)?.[1];

/**
 * H_jj = 2·E[x_j²] for a weight viewed as [rows, cols] (rows = output channels, or the experts of a GGUF 3-D
 * tensor; cols = inputs, or outputs × inputs): per matrix one `cols`-long vector (the input pattern repeats when
 * cols spans several output channels). Undefined when the imatrix has no entry for the tensor. `matOfRow(r)` picks
 * the matrix of view row r; a Hugging Face per-expert tensor (…experts.7.up_proj.weight) uses its expert's entry.
 */
export function hessianDiagonal(im: Imatrix, tensor: string, rows: number, cols: number): { diag: Float32Array; matOfRow: (r: number) => number } | undefined {
  const gguf = ggufName(tensor);
  const key = im.entries.has(tensor) ? tensor : gguf;
  const e = key !== undefined ? im.entries.get(key) : undefined;
  if (!e) return undefined;
  let { nPerRow, nMat } = e;
  // Legacy entries store n_per_row × n_mat values without saying which is which: experts stack along view rows.
  if (im.layout === 'legacy' && rows > 1 && nPerRow % rows === 0 && cols % (nPerRow / rows) === 0 && expertOf(tensor) === undefined && cols % nPerRow !== 0) {
    [nPerRow, nMat] = [nPerRow / rows, rows];
  }
  const shape = (what: string) => new QuantLensError('imatrix-shape', `imatrix entry ${key} (${nMat} × ${nPerRow} inputs) does not fit the tensor: ${what}`, { file: im.file, tensor });
  if (cols % nPerRow !== 0) throw shape(`${cols} input columns`);
  let first = 0;
  let mats = nMat;
  const expert = expertOf(tensor);
  if (expert !== undefined && nMat > 1) {
    first = Number(expert);
    if (first >= nMat) throw shape(`expert ${first}`);
    mats = 1;
  } else if (rows % nMat !== 0) {
    throw shape(`${rows} rows`);
  }
  const diag = new Float32Array(mats * cols);
  for (let m = 0; m < mats; m++) {
    for (let c = 0; c < cols; c++) diag[m * cols + c] = 2 * e.meanSq[(first + m) * nPerRow + (c % nPerRow)];
  }
  const per = rows / mats;
  return { diag, matOfRow: mats > 1 ? (r) => Math.floor(r / per) : () => 0 };
}

const loaded = new Map<string, Promise<Imatrix>>();

/** readImatrix once per process (each analysis worker reads it on its first tensor). */
export function cachedImatrix(file: string): Promise<Imatrix> {
  let p = loaded.get(file);
  if (!p) {
    p = readImatrix(file);
    loaded.set(file, p);
    p.catch(() => loaded.delete(file));
  }
  return p;
}
