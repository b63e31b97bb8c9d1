// PyTorch seeds: torch.save-style zips (stored F32; deflated data.pkl with F16; zip64 with a wrapped
// state dict in BF16; UntypedStorage/_rebuild_tensor_v3 with shared and strided views) and a 2-shard
// checkpoint with its index. Structure: every size/offset/count of the local headers, central directory,
// end records and zip64 extras; pickle mutations (opcode arguments, opcodes, tensor specs) are re-zipped
// with a correct CRC so that the pickle VM, not the CRC check, meets them.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { tinyLlamaTensors } from '../../fixtures/common';
import {
  encodeTorch, statePickle, STORAGE_OF, writeTorchArchive, writeTorchCheckpoint,
  type ArchiveOptions, type StateDictOptions, type StorageType, type TensorSpec,
} from '../../fixtures/pytorch';
import { mutateBytes, mutateJson, stringifyJson, type IntField, type Json, type Rand, type SeedFile } from '../mutators';
import { openAndRead, type FuzzTarget, type Seed, type Structured } from '../target';

// ---------------------------------------------------------------------------------------------
// Zip structure

const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
const u64 = (b: Uint8Array, at: number) => u32(b, at) + 2 ** 32 * u32(b, at + 4);

/** Fields of a zip written by our fixture writer (no comment): end records, central entries, local headers, zip64 extras. */
export function zipStructure(b: Uint8Array): Pick<SeedFile, 'fields' | 'points'> {
  const fields: IntField[] = [];
  const points: number[] = [0, b.length];
  const F = (at: number, width: number, label: string) => fields.push({ at, width, label });
  const eocd = b.length - 22;
  if (u32(b, eocd) !== 0x06054b50) return { fields, points };
  F(eocd + 8, 2, 'eocd.disk_entries');
  F(eocd + 10, 2, 'eocd.entries');
  F(eocd + 12, 4, 'eocd.cd_size');
  F(eocd + 16, 4, 'eocd.cd_offset');
  F(eocd + 20, 2, 'eocd.comment_len');
  points.push(eocd);
  let cd = u32(b, eocd + 16);
  let count = u16(b, eocd + 10);
  const loc = eocd - 20;
  if (loc >= 0 && u32(b, loc) === 0x07064b50) {
    F(loc + 8, 8, 'zip64loc.record_offset');
    const rec = u64(b, loc + 8);
    F(rec + 4, 8, 'zip64.record_size');
    F(rec + 24, 8, 'zip64.disk_entries');
    F(rec + 32, 8, 'zip64.entries');
    F(rec + 40, 8, 'zip64.cd_size');
    F(rec + 48, 8, 'zip64.cd_offset');
    points.push(loc, rec);
    cd = u64(b, rec + 48);
    count = u64(b, rec + 32);
  }
  points.push(cd);
  for (let i = 0, at = cd; i < count && u32(b, at) === 0x02014b50; i++) {
    const n = u16(b, at + 28);
    const m = u16(b, at + 30);
    const local = u32(b, at + 42);
    F(at + 20, 4, `cd[${i}].csize`);
    F(at + 24, 4, `cd[${i}].usize`);
    F(at + 28, 2, `cd[${i}].name_len`);
    F(at + 30, 2, `cd[${i}].extra_len`);
    F(at + 32, 2, `cd[${i}].comment_len`);
    F(at + 42, 4, `cd[${i}].local_offset`);
    points.push(at);
    extraFields(b, at + 46 + n, m, `cd[${i}]`, F);
    const lh = local === 0xffffffff ? zip64LocalOffset(b, at + 46 + n, m) : local;
    if (lh !== undefined && u32(b, lh) === 0x04034b50) {
      const ln = u16(b, lh + 26);
      const lm = u16(b, lh + 28);
      F(lh + 18, 4, `local[${i}].csize`);
      F(lh + 22, 4, `local[${i}].usize`);
      F(lh + 26, 2, `local[${i}].name_len`);
      F(lh + 28, 2, `local[${i}].extra_len`);
      extraFields(b, lh + 30 + ln, lm, `local[${i}]`, F);
      const data = lh + 30 + ln + lm;
      const size = u32(b, at + 20) === 0xffffffff ? 0 : u32(b, at + 20);
      points.push(lh, data, data + (size >> 1), data + size);
    }
    at += 46 + n + m + u16(b, at + 32);
  }
  return { fields, points };
}

/** The zip64 extra (id 1) fields and every extra's length. */
function extraFields(b: Uint8Array, at: number, len: number, label: string, F: (at: number, w: number, l: string) => void): void {
  for (let p = at; p + 4 <= at + len; ) {
    const id = u16(b, p);
    const n = u16(b, p + 2);
    F(p + 2, 2, `${label}.extra[${id}].len`);
    if (id === 1) for (let k = 0; k + 8 <= n; k += 8) F(p + 4 + k, 8, `${label}.zip64[${k / 8}]`);
    p += 4 + n;
  }
}

function zip64LocalOffset(b: Uint8Array, at: number, len: number): number | undefined {
  for (let p = at; p + 4 <= at + len; p += 4 + u16(b, p + 2)) if (u16(b, p) === 1 && u16(b, p + 2) >= 24) return u64(b, p + 4 + 16);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Pickle structure

/** Argument bytes of the opcodes torch's pickles use: fixed widths, and [length width] for counted ones. */
const FIXED: Record<number, number> = { 0x80: 1, 0x95: 8, 0x4a: 4, 0x4b: 1, 0x4d: 2, 0x47: 8, 0x71: 1, 0x72: 4, 0x68: 1, 0x6a: 4 };
const COUNTED: Record<number, number> = { 0x8a: 1, 0x8b: 4, 0x58: 4, 0x8c: 1, 0x8d: 8, 0x54: 4, 0x55: 1, 0x42: 4, 0x43: 1, 0x8e: 8, 0x96: 8 };
const NAMES: Record<number, string> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x47: 'BINFLOAT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8', 0x96: 'BYTEARRAY8',
};

/** Opcode boundaries and the integer arguments (memo indexes, lengths, ints) of a pickle stream. */
export function pickleOps(b: Uint8Array): { ops: number[]; fields: IntField[] } {
  const ops: number[] = [];
  const fields: IntField[] = [];
  for (let p = 0; p < b.length; ) {
    const op = b[p];
    ops.push(p);
    p++;
    if (FIXED[op] !== undefined) {
      fields.push({ at: p, width: FIXED[op], label: NAMES[op] });
      p += FIXED[op];
    } else if (COUNTED[op] !== undefined) {
      const w = COUNTED[op];
      fields.push({ at: p, width: w, label: `${NAMES[op]}.len` });
      p += w + (w === 8 ? u64(b, p) : w === 4 ? u32(b, p) : b[p]);
    } else if (op === 0x63) {
      for (let lines = 0; lines < 2 && p < b.length; p++) if (b[p] === 0x0a) lines++;
    } else if (op === 0x2e) break;
  }
  return { ops, fields };
}

/** Opcode sequences a hostile pickle might contain, none of which may execute or blow up. */
const le = (n: number, w: number) => Array.from({ length: w }, (_, i) => Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const EVIL: [string, () => number[]][] = [
  ['GLOBAL os.system', () => [0x63, ...ascii('os\nsystem\n')]],
  ['GLOBAL builtins.eval', () => [0x63, ...ascii('builtins\neval\n')]],
  ['GLOBAL posix.system + REDUCE', () => [0x63, ...ascii('posix\nsystem\n'), 0x58, ...le(2, 4), ...ascii('id'), 0x85, 0x52]],
  ['STACK_GLOBAL subprocess.Popen', () => [0x8c, 10, ...ascii('subprocess'), 0x8c, 5, ...ascii('Popen'), 0x93]],
  ['INST', () => [0x69, ...ascii('os\nsystem\n')]],
  ['OBJ', () => [0x28, 0x6f]],
  ['EXT1', () => [0x82, 1]],
  ['10 000 MARKs', () => new Array<number>(10000).fill(0x28)],
  ['DUP ×100 000', () => [0x5d, ...new Array<number>(100000).fill(0x32)]],
  ['LONG_BINGET 0xffffffff', () => [0x6a, 0xff, 0xff, 0xff, 0xff]],
  ['LONG_BINPUT 2^31', () => [0x4e, 0x72, 0, 0, 0, 0x80]],
  ['MEMOIZE on empty stack', () => [0x94]],
  ['PROTO 9', () => [0x80, 9]],
  ['FRAME 2^40', () => [0x95, ...le(2 ** 40, 8)]],
  ['BINUNICODE8 2^40', () => [0x8d, ...le(2 ** 40, 8)]],
  ['BINBYTES 0xffffffff', () => [0x42, 0xff, 0xff, 0xff, 0xff]],
  ['LONG4 2^31', () => [0x8b, 0, 0, 0, 0x80]],
  ['LONG1 of 255 bytes', () => [0x8a, 255, ...new Array<number>(255).fill(0xff)]],
  ['BINUNICODE invalid UTF-8', () => [0x58, ...le(2, 4), 0xc3, 0x28]],
  ['STOP on empty stack', () => [0x2e]],
  ['POP_MARK without MARK', () => [0x31]],
  ['SETITEMS without dict', () => [0x28, 0x4e, 0x4e, 0x75]],
  ['APPEND to tuple', () => [0x29, 0x4e, 0x61]],
  ['BUILD on a global', () => [0x63, ...ascii('torch\nFloatStorage\n'), 0x7d, 0x62]],
  ['BINPERSID of garbage', () => [0x4e, 0x51]],
  ['REDUCE OrderedDict with args', () => [0x63, ...ascii('collections\nOrderedDict\n'), 0x4b, 1, 0x85, 0x52]],
  ['self-referencing list', () => [0x5d, 0x71, 0, 0x68, 0, 0x61]],
];

// ---------------------------------------------------------------------------------------------
// Seeds

interface ArchiveSeed {
  label: string;
  specs: TensorSpec[];
  storages: { key: string; bytes?: Uint8Array; hole?: number }[];
  opts: ArchiveOptions & StateDictOptions;
}

/** One tensor per storage, as torch.save(model.state_dict()) writes them. */
function plainArchive(label: string, dtype: 'F32' | 'F16' | 'BF16', opts: ArchiveOptions & StateDictOptions = {}): ArchiveSeed {
  const fixture = tinyLlamaTensors();
  return {
    label,
    specs: fixture.map((t, i) => ({ name: t.name, storage: { key: String(i), type: STORAGE_OF[dtype], numel: t.data.length }, shape: t.shape })),
    storages: fixture.map((t, i) => ({ key: String(i), bytes: encodeTorch(t.data, dtype) })),
    opts,
  };
}

/** Shared storages with offset views, a transposed (non-contiguous) view, v3 bf16 over UntypedStorage, int64. */
function viewsArchive(): ArchiveSeed {
  const [embed, , q] = tinyLlamaTensors();
  const f32 = encodeTorch(embed.data, 'F32');
  const bf = encodeTorch(q.data, 'BF16');
  const ids = new Uint8Array(new BigInt64Array([0n, 5n, -1n, 2n ** 40n]).buffer);
  const shared = { key: '0', type: 'FloatStorage' as StorageType, numel: embed.data.length };
  return {
    label: 'pt-views',
    specs: [
      { name: 'model.embed_tokens.weight', storage: shared, shape: [32, 8] },
      { name: 'model.layers.0.half.weight', storage: shared, offset: 128, shape: [16, 8] },
      { name: 'model.layers.0.transposed.weight', storage: shared, shape: [8, 16], stride: [1, 8] },
      { name: 'model.layers.0.self_attn.q_proj.weight', storage: { key: '1', type: 'UntypedStorage', numel: bf.length }, shape: [8, 8], v3dtype: 'bfloat16' },
      { name: 'model.position_ids', storage: { key: '2', type: 'LongStorage', numel: 4 }, shape: [1, 4] },
    ],
    storages: [{ key: '0', bytes: f32 }, { key: '1', bytes: bf }, { key: '2', bytes: ids }],
    opts: { wrap: ['model'], byteorder: 'little' },
  };
}

const HUGE = [-1, 0, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 53, 2 ** 62, 2 ** 64];
const STORAGE_NAMES = ['FloatStorage', 'HalfStorage', 'UntypedStorage', 'LongStorage', 'BoolStorage', 'ComplexFloatStorage', 'EvilStorage', 'float32'];
const V3_DTYPES = ['float32', 'bfloat16', 'float8_e4m3fn', 'float8_e8m0fnu', 'complex64', 'uint64', 'bool', 'quint8', 'Tensor'];

function mutateSpec(r: Rand, specs: TensorSpec[]): string {
  const t = r.pick(specs);
  const dims = t.shape;
  const edits: [string, () => void][] = [
    ['shape huge', () => (t.shape = dims.map((d, i) => (i === r.int(dims.length) ? r.pick(HUGE) : d)))],
    ['shape overflows 2^53', () => (t.shape = [2 ** 30, 2 ** 30, 2 ** 30])],
    ['shape of 100 dims', () => ((t.shape = new Array<number>(100).fill(1)), (t.stride = new Array<number>(100).fill(1)))],
    ['shape/stride rank differ', () => (t.stride = [1])],
    ['stride zero/negative/huge', () => (t.stride = dims.map(() => r.pick([0, -1, 2 ** 40, 1])))],
    ['offset huge/negative', () => (t.offset = r.pick(HUGE))],
    ['numel wrong', () => (t.storage = { ...t.storage, numel: r.pick([...HUGE, t.storage.numel - 1, t.storage.numel + 1]) })],
    ['storage type odd', () => (t.storage = { ...t.storage, type: r.pick(STORAGE_NAMES) as StorageType })],
    ['storage key odd', () => (t.storage = { ...t.storage, key: r.pick(['', '../0', '/etc/passwd', '99', '0/../1', '\u0000']) })],
    ['v3 dtype odd', () => ((t.v3dtype = r.pick(V3_DTYPES)), (t.storage = { ...t.storage, type: 'UntypedStorage' }))],
    ['name duplicated', () => (t.name = r.pick(specs).name)],
    ['name odd', () => (t.name = r.pick(['', '.', 'a..b', '__proto__', 'x'.repeat(10000)]))],
    ['many tensors', () => { for (let i = 0; i < 1000; i++) specs.push({ ...t, name: `${t.name}.${i}` }); }],
  ];
  const [what, edit] = r.pick(edits);
  edit();
  return `${t.name.slice(0, 60)}: ${what}`;
}

function archiveSeed(s: ArchiveSeed, scratch: string): Seed {
  const name = `${s.label}.pt`;
  const file = path.join(scratch, name);
  const pickle = statePickle(s.specs, s.opts);
  writeTorchArchive(file, pickle, s.storages, s.opts);
  const bytes = new Uint8Array(readFileSync(file));
  const tmp = path.join(scratch, `${s.label}.rezip`);
  /** The archive again, around a new pickle and/or storages, with correct sizes and CRCs. */
  const rezip = (pkl: Uint8Array, storages = s.storages, opts = s.opts): Record<string, Uint8Array> => {
    writeTorchArchive(tmp, pkl, storages, opts);
    return { [name]: new Uint8Array(readFileSync(tmp)) };
  };
  const { ops, fields } = pickleOps(pickle);
  const pklFile: SeedFile = { name: 'data.pkl', bytes: pickle, fields, points: ops };
  const structured: Structured[] = [
    {
      name: 'pickle-bytes',
      weight: 3,
      run(r) {
        let pkl = pickle;
        const desc: string[] = [];
        for (let n = r.range(1, 2); n > 0; n--) {
          const m = mutateBytes(r, desc.length ? { ...pklFile, fields: [], points: [] } : pklFile, pkl);
          pkl = m.bytes;
          desc.push(m.desc);
        }
        return { files: rezip(pkl), desc: desc.join('; ') };
      },
    },
    {
      name: 'pickle-ops',
      weight: 2,
      run(r) {
        const at = r.pick(ops);
        const next = ops[ops.indexOf(at) + 1] ?? pickle.length;
        const parts = (insert: number[], cut = 0) => Uint8Array.from([...pickle.subarray(0, at), ...insert, ...pickle.subarray(at + cut)]);
        const kind = r.int(4);
        if (kind === 0) return { files: rezip(parts([], next - at)), desc: `delete op at ${at}` };
        if (kind === 1) return { files: rezip(parts([...pickle.subarray(at, next)])), desc: `duplicate op at ${at}` };
        if (kind === 2) {
          const op = r.pick(Object.keys(NAMES).map(Number).concat([0x28, 0x29, 0x2e, 0x30, 0x31, 0x32, 0x51, 0x52, 0x5d, 0x61, 0x62, 0x65, 0x73, 0x74, 0x75, 0x7d, 0x81, 0x85, 0x93, 0x94, r.int(256)]));
          return { files: rezip(parts([op], 1)), desc: `opcode at ${at} := 0x${op.toString(16)}` };
        }
        const [what, seq] = r.pick(EVIL);
        return { files: rezip(parts(seq())), desc: `insert ${what} at ${at}` };
      },
    },
    {
      name: 'tensor-specs',
      weight: 3,
      run(r) {
        const specs = s.specs.map((t) => ({ ...t, storage: { ...t.storage } }));
        const desc = [mutateSpec(r, specs)];
        if (r.chance(0.3)) desc.push(mutateSpec(r, specs));
        return { files: rezip(statePickle(specs, s.opts)), desc: desc.join('; ') };
      },
    },
    {
      name: 'archive',
      weight: 2,
      run(r) {
        const storages = [...s.storages];
        const opts: ArchiveOptions & StateDictOptions = { ...s.opts };
        let pkl = pickle;
        const edits: [string, () => void][] = [
          ['storage dropped', () => storages.splice(r.int(storages.length), 1)],
          ['storage duplicated', () => storages.push(r.pick(storages))],
          ['storage truncated', () => { const i = r.int(storages.length); const b = storages[i].bytes!; storages[i] = { ...storages[i], bytes: b.subarray(0, r.int(b.length)) }; }],
          ['storage deflated', () => (opts.deflate = [`data/${r.pick(storages).key}`])],
          ['storage as a sparse hole', () => { const i = r.int(storages.length); storages[i] = { key: storages[i].key, hole: storages[i].bytes!.length }; }],
          ['data.pkl declared size lies', () => ((opts.pklDeclaredSize = r.pick([0, 1, pickle.length - 1, pickle.length + 1, 2 ** 31, 2 ** 40])), (opts.zip64 = true))],
          ['prefix odd', () => (opts.prefix = r.pick(['', '..', 'a/b', '/abs', 'x'.repeat(300)]))],
          ['byteorder odd', () => (opts.byteorder = r.pick(['big', 'middle', '', 'little\n'.repeat(20)]))],
          ['zip64 toggled', () => (opts.zip64 = !opts.zip64)],
          ['many storages', () => { for (let i = 0; i < 3000; i++) storages.push({ key: `x${i}`, bytes: new Uint8Array(1) }); }],
          ['pickle is not a pickle', () => (pkl = r.pick([new Uint8Array(0), new TextEncoder().encode('{"a": 1}'), new Uint8Array(100)]))],
        ];
        const [what, edit] = r.pick(edits);
        edit();
        return { files: rezip(pkl, storages, opts), desc: what };
      },
    },
  ];
  return { label: s.label, files: [{ name, bytes, ...zipStructure(bytes) }], open: name, structured };
}

/** pytorch_model.bin.index.json + 2 shards; the index gets JSON mutations, the shards byte-level ones. */
function shardedSeed(scratch: string): Seed {
  const fixture = tinyLlamaTensors();
  const half = Math.ceil(fixture.length / 2);
  const shards = ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'];
  const weightMap: Record<string, string> = {};
  const files: SeedFile[] = [];
  shards.forEach((shard, k) => {
    const part = fixture.slice(k * half, (k + 1) * half);
    const file = path.join(scratch, shard);
    writeTorchCheckpoint(file, part, 'F16');
    for (const t of part) weightMap[t.name] = shard;
    const bytes = new Uint8Array(readFileSync(file));
    files.push({ name: shard, bytes, ...zipStructure(bytes) });
  });
  const indexName = 'pytorch_model.bin.index.json';
  const root = { metadata: { total_size: 0 }, weight_map: weightMap };
  const indexBytes = new TextEncoder().encode(JSON.stringify(root, null, 2));
  files.unshift({ name: indexName, bytes: indexBytes, fields: [], points: [0, indexBytes.length], weight: 2 });
  return {
    label: 'pt-sharded',
    files,
    open: indexName,
    structured: [
      {
        name: 'json-index',
        run(r) {
          const j = JSON.parse(JSON.stringify(root)) as Json;
          const desc = mutateJson(r, j);
          return { files: { [indexName]: new TextEncoder().encode(stringifyJson(r, j)) }, desc: `index: ${desc}` };
        },
      },
    ],
  };
}

export const pytorchTarget: FuzzTarget = {
  name: 'pytorch',
  seeds: (dir) => [
    archiveSeed(plainArchive('pt-f32', 'F32'), dir),
    archiveSeed(plainArchive('pt-f16-deflated', 'F16', { deflate: ['data.pkl'], byteorder: 'little' }), dir),
    archiveSeed(plainArchive('pt-bf16-zip64', 'BF16', { zip64: true, wrap: ['state_dict'], extra: { epoch: 3, arch: 'llama' } }), dir),
    archiveSeed(viewsArchive(), dir),
    shardedSeed(dir),
  ],
  run: openAndRead,
};
