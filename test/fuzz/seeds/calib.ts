// Seeds for the side inputs a user points QuantLens at: llama.cpp imatrix files (GGUF layout with in_sum2/counts
// pairs, an MoE entry with two matrices; legacy .dat with its trailer), NumPy .npy arrays (versions 1.0 and 2.0,
// C and Fortran order, big-endian) and .npz archives (stored and deflated members). Structure: the legacy .dat
// counts and lengths, the .npy preamble and header length, and the zip fields of the .npz (shared with the
// PyTorch seeds); structured edits rewrite the .npy header dict or rebuild a file from a changed spec.
import { readNpyFile, readNpz } from '../../../server/src/calib';
import { hessianDiagonal, readImatrix } from '../../../server/src/sensitivity/imatrix';
import { randn } from '../../fixtures/common';
import { encodeF32, GGML, type GgufSpec } from '../../fixtures/gguf';
import { npyBytes, npyOf, zip, type ZipMember } from '../../unit/calib-fixtures';
import type { IntField, Rand, SeedFile } from '../mutators';
import type { FuzzTarget, Seed } from '../target';
import { ggufStructure } from './gguf';
import { zipStructure } from './pytorch';

const HUGE = [-1, 0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 40, 2 ** 53];

// ---------------------------------------------------------------------------------------------
// imatrix

interface ImSpec {
  /** GGUF tensor base name → n_per_row, n_mat and the token count per matrix. */
  entries: { name: string; nPerRow: number; nMat: number; counts: number[] }[];
}

const IM_SPEC: ImSpec = {
  entries: [
    { name: 'blk.0.attn_q.weight', nPerRow: 8, nMat: 1, counts: [512] },
    { name: 'blk.0.ffn_up_exps.weight', nPerRow: 8, nMat: 2, counts: [300, 0] },
  ],
};

function imatrixGguf(s: ImSpec): GgufSpec {
  return {
    kv: [
      ['general.type', { type: 'STRING', value: 'imatrix' }],
      ['imatrix.chunk_count', { type: 'UINT32', value: 4 }],
      ['imatrix.datasets', { type: 'ARRAY', itemType: 'STRING', items: ['wiki.train.raw'] }],
    ],
    tensors: s.entries.flatMap((e, i) => [
      { name: `${e.name}.in_sum2`, ne: [e.nPerRow, e.nMat], type: GGML.F32, data: encodeF32(randn(e.nPerRow * e.nMat, 40 + i, 1).map((x) => x * x)) },
      { name: `${e.name}.counts`, ne: [1, e.nMat], type: GGML.F32, data: encodeF32(Float32Array.from(e.counts)) },
    ]),
  };
}

function imatrixGgufSeed(): Seed {
  return {
    label: 'imatrix-gguf',
    files: [{ ...ggufStructure(imatrixGguf(IM_SPEC)), name: 'imatrix.gguf' }],
    open: 'imatrix.gguf',
    structured: [
      {
        name: 'spec',
        run(r) {
          const s: ImSpec = JSON.parse(JSON.stringify(IM_SPEC)) as ImSpec;
          const e = r.pick(s.entries);
          let dropCounts = false;
          const edits: [string, () => void][] = [
            ['n_per_row', () => (e.nPerRow = r.pick([0, 1, 3, 4096]))],
            ['n_mat', () => (e.nMat = r.pick([0, 3, 64]))],
            ['counts', () => (e.counts = e.counts.map(() => r.pick([-1, 0, 0.5, NaN, Infinity, 1e38])))],
            ['counts missing', () => (dropCounts = true)],
          ];
          const [what, edit] = r.pick(edits);
          edit();
          e.counts = Array.from({ length: e.nMat }, (_, i) => e.counts[i] ?? 1);
          const spec = imatrixGguf(s);
          if (dropCounts) spec.tensors = spec.tensors!.filter((t) => t.name !== `${e.name}.counts`);
          return { files: { 'imatrix.gguf': ggufStructure(spec).bytes }, desc: `${e.name}: ${what}` };
        },
      },
    ],
  };
}

/** Legacy .dat bytes and their field map: i32 count; per entry i32 len, name, i32 ncall, i32 nval, f32 × nval; trailer. */
function legacyImatrix(entries: { name: string; ncall: number; values: Float32Array }[], dataset: string): SeedFile {
  const fields: IntField[] = [{ at: 0, width: 4, label: 'n_entries' }];
  const points: number[] = [0, 4];
  const parts: number[] = [];
  const i32 = (v: number, label?: string) => {
    if (label) fields.push({ at: parts.length, width: 4, label });
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    parts.push(...b);
  };
  i32(entries.length);
  for (const e of entries) {
    points.push(parts.length);
    const name = Buffer.from(e.name);
    i32(name.length, `${e.name}.name_len`);
    parts.push(...name);
    i32(e.ncall, `${e.name}.ncall`);
    i32(e.values.length, `${e.name}.nval`);
    parts.push(...new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength));
  }
  points.push(parts.length);
  i32(10, 'last_call');
  i32(Buffer.byteLength(dataset), 'dataset_len');
  parts.push(...Buffer.from(dataset));
  const bytes = Uint8Array.from(parts);
  points.push(bytes.length);
  return { name: 'imatrix.dat', bytes, fields, points };
}

const legacySeed = (): Seed => ({
  label: 'imatrix-legacy',
  files: [
    legacyImatrix(
      [
        { name: 'blk.0.attn_q.weight', ncall: 4, values: randn(8, 50, 1).map((x) => x * x) },
        { name: 'blk.0.ffn_down.weight', ncall: 0, values: randn(16, 51, 1).map((x) => x * x) },
      ],
      'wiki.train.raw',
    ),
  ],
  open: 'imatrix.dat',
  structured: [],
});

/** Read the imatrix and use every entry the way the Hessian-diagonal score does (one matrix row of its width). */
async function readAndUse(file: string): Promise<void> {
  const im = await readImatrix(file);
  for (const [name, e] of im.entries) {
    const d = hessianDiagonal(im, name, e.nMat, e.nPerRow);
    if (d) for (let r = 0; r < e.nMat; r++) d.matOfRow(r);
  }
}

export const imatrixTarget: FuzzTarget = {
  name: 'imatrix',
  seeds: () => [imatrixGgufSeed(), legacySeed()],
  run: readAndUse,
};

// ---------------------------------------------------------------------------------------------
// .npy

/** The preamble fields of an .npy (magic, version, header length); the header dict starts right after. */
function npyFile(name: string, bytes: Uint8Array): SeedFile {
  const v2 = bytes[6] !== 1;
  const start = v2 ? 12 : 10;
  const headerLen = v2 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true) : bytes[8] | (bytes[9] << 8);
  return {
    name,
    bytes,
    fields: [{ at: 6, width: 1, label: 'major' }, { at: 8, width: v2 ? 4 : 2, label: 'header_len' }],
    points: [0, 6, 8, start, start + headerLen - 1, start + headerLen, bytes.length],
  };
}

const DESCRS = ["'<f4'", "'>f4'", "'<f2'", "'|b1'", "'|u1'", "'<i8'", "'<c8'", "'|O'", "'<U3'", "[('a', '<f4')]", "''", "'<f4 '", '7', "'f4'"];
const SHAPES = ['()', '(0,)', '(-1,)', '(2, 3)', '(3, 2)', '(4294967296,)', '(9007199254740993,)', '(2**40,)', '(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,)', '[2, 3]', "('2', 3)", '(2.0, 3)', '(2 3)', '(', '((2,), 3)', '(True, 3)'];
const ORDERS = ['True', 'False', '0', 'None', "'False'", ''];

/** A 2×3 float32 array under an edited header dict (values chosen to break the tokenizer and the size checks). */
function npyHeaderEdit(r: Rand, version: number): { bytes: Uint8Array; desc: string } {
  let descr = "'<f4'";
  let order = 'False';
  let shape = '(2, 3)';
  let extra = '';
  const which = r.int(6);
  if (which === 0) descr = r.pick(DESCRS);
  else if (which === 1) shape = r.pick(SHAPES);
  else if (which === 2) order = r.pick(ORDERS);
  else if (which === 3) extra = r.pick([", 'x': 1", ", 'shape': (6,)", ", 'descr': '<f8'", ', 1: 2', ", 'a': {'b': [1, (2,)]}", ", 'z': '" + 'q'.repeat(5000) + "'"]);
  else if (which === 4) extra = `, 'n': ${'('.repeat(r.pick([10, 1000, 100_000]))}`;
  const dict = which === 5 ? r.pick(['', '{', '}', "{'descr': '<f4'", '{"descr": "<f4", "fortran_order": false, "shape": [2, 3]}', "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", '\u00ff\u0000']) : `{'descr': ${descr}, 'fortran_order': ${order}, 'shape': ${shape}${extra}, }`;
  const data = new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer);
  return { bytes: npyBytes(dict, data, version), desc: `header ${dict.slice(0, 80)}` };
}

function npySeed(label: string, bytes: Uint8Array, version: number): Seed {
  return {
    label,
    files: [npyFile('data.npy', bytes)],
    open: 'data.npy',
    structured: [{ name: 'header dict', run: (r) => { const o = npyHeaderEdit(r, version); return { files: { 'data.npy': o.bytes }, desc: o.desc }; } }],
  };
}

const fortran = () => {
  const data = new Uint8Array(new Float64Array([1, 2, 3, 4, 5, 6]).buffer);
  return npyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", data);
};

const bigEndian = () => {
  const data = Buffer.alloc(4 * 6);
  for (let i = 0; i < 6; i++) data.writeFloatBE(i / 3, 4 * i);
  return npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", data, 2);
};

export const npyTarget: FuzzTarget = {
  name: 'npy',
  seeds: () => [
    npySeed('npy-f32', npyOf('<f4', [4, 8], randn(32, 60, 1)), 1),
    npySeed('npy-f64-fortran', fortran(), 1),
    npySeed('npy-v2-bigendian', bigEndian(), 2),
    npySeed('npy-i64', npyOf('<i8', [5], new BigInt64Array([1n, -2n, 3n, 2n ** 40n, 0n])), 1),
  ],
  run: async (file) => void (await readNpyFile(file)),
};

// ---------------------------------------------------------------------------------------------
// .npz

const NPZ_MEMBERS = (): ZipMember[] => [
  { name: 'input_ids.npy', data: npyOf('<i8', [2, 4], new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n])) },
  { name: 'pixel_values.npy', data: npyOf('<f4', [1, 3, 4, 4], randn(48, 61, 1)), deflate: true },
  { name: 'mask.npy', data: npyOf('|b1', [2, 4], Uint8Array.of(1, 1, 1, 0, 1, 1, 0, 0)) },
];

function npzFile(members: ZipMember[]): SeedFile {
  const bytes = zip(members);
  return { name: 'data.npz', bytes, ...zipStructure(bytes) };
}

function npzSeed(): Seed {
  return {
    label: 'npz',
    files: [npzFile(NPZ_MEMBERS())],
    open: 'data.npz',
    structured: [
      {
        name: 'members',
        run(r) {
          const ms = NPZ_MEMBERS();
          const m = r.pick(ms);
          const edits: [string, () => void][] = [
            ['name', () => (m.name = r.pick(['../x.npy', '/abs.npy', 'a/b.npy', '.npy', 'x.txt', ms[0].name, '\u0000.npy', 'x'.repeat(60000) + '.npy']))],
            ['declared size', () => (m.declared = r.pick(HUGE.filter((h) => h >= 0 && h < 2 ** 32)))],
            ['method', () => (m.method = r.pick([1, 6, 9, 12, 14, 99]))],
            ['deflate flip', () => (m.deflate = !m.deflate)],
            ['member data', () => (m.data = npyHeaderEdit(r, 1).bytes)],
            ['many members', () => { for (let i = 0; i < 500; i++) ms.push({ name: `a${i}.npy`, data: npyOf('<f4', [1], Float32Array.of(i)) }); }],
            ['bomb', () => ms.push({ name: 'bomb.npy', data: npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (4000000,), }", new Uint8Array(4_000_000)), deflate: true })],
          ];
          const [what, edit] = r.pick(edits);
          edit();
          return { files: { 'data.npz': zip(ms) }, desc: `${m.name.slice(0, 40)}: ${what}` };
        },
      },
    ],
  };
}

export const npzTarget: FuzzTarget = {
  name: 'npz',
  seeds: () => [npzSeed()],
  run: async (file) => void (await readNpz(file)),
};
