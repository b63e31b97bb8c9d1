// safetensors seeds: a single F32 file, a mixed-dtype file (F16/BF16/F8/I64/BOOL, empty and scalar
// tensors) and a 3-shard checkpoint with its index. Structure: the u64 header length at byte 0, the
// header/data boundary, every tensor's begin/middle/end; JSON mutations of the header and the index.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { tinyLlamaTensors } from '../../fixtures/common';
import { encodeFloats, layoutTensors, safetensorsBytes, toRaw, writeShardedSafetensors, type RawTensor } from '../../fixtures/safetensors';
import { mutateJson, stringifyJson, type Json, type SeedFile } from '../mutators';
import { openAndRead, type FuzzTarget, type Seed, type Structured } from '../target';

interface Header {
  [name: string]: Json;
}

/** The seed file plus the header object and data buffer it was framed from. */
function seedFile(name: string, header: Header, data: Uint8Array, weight = 1): { file: SeedFile; header: Header; data: Uint8Array } {
  const bytes = safetensorsBytes(header, data);
  return { file: { name, bytes, ...structureOf(bytes), weight }, header, data };
}

/** The header length field and the offsets where the JSON ends and each tensor begins, middles and ends. */
export function structureOf(bytes: Uint8Array): Pick<SeedFile, 'fields' | 'points'> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { data_offsets?: [number, number] }>;
  const points = [0, 8, 8 + n, bytes.length];
  for (const v of Object.values(header)) {
    const o = v.data_offsets;
    if (o) points.push(8 + n + o[0], 8 + n + Math.floor((o[0] + o[1]) / 2), 8 + n + o[1]);
  }
  // The header length, and its high word alone (a length ≥ 4 GiB with a plausible low word).
  return { fields: [{ at: 0, width: 8, label: 'header_len' }, { at: 4, width: 4, label: 'header_len.hi' }], points };
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Free-form JSON mutations of the header, re-framed with a correct length so the JSON is what is tested. */
function jsonHeader(name: string, header: Header, data: Uint8Array): Structured {
  return {
    name: 'json-header',
    weight: 2,
    run(r) {
      const h = clone(header);
      const desc = [mutateJson(r, h)];
      if (r.chance(0.3)) desc.push(mutateJson(r, h));
      return { files: { [name]: safetensorsBytes(stringifyJson(r, h), data) }, desc: `${name} header: ${desc.join('; ')}` };
    },
  };
}

const HUGE = [2 ** 40, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e300];
const ODD_DTYPES = ['F4', 'Q4_0', 'f32', '', 'F32 ', 'UNKNOWN_x', 'I4', 'STRING', 'F8_E4M3FNUZ', 'C64'];

/** The mutations the format invites: data_offsets swapped/overlapping/huge, unknown dtypes, bad shapes. */
function targetedHeader(name: string, header: Header, data: Uint8Array): Structured {
  return {
    name: 'targeted-header',
    weight: 3,
    run(r) {
      const h = clone(header);
      const names = Object.keys(h).filter((k) => k !== '__metadata__');
      const t = r.pick(names);
      const e = h[t] as { dtype: Json; shape: Json; data_offsets: Json };
      const [b, end] = e.data_offsets as [number, number];
      const other = h[r.pick(names)] as { data_offsets: [number, number] };
      const dims = e.shape as number[];
      const edits: [string, () => void][] = [
        ['swap data_offsets', () => (e.data_offsets = [end, b])],
        ['overlap another tensor', () => (e.data_offsets = [other.data_offsets[0] + 1, other.data_offsets[0] + 1 + (end - b)])],
        ['same offsets as another tensor', () => (e.data_offsets = [...other.data_offsets])],
        ['end := huge', () => (e.data_offsets = [b, r.pick(HUGE)])],
        ['begin and end := 2^40', () => (e.data_offsets = [2 ** 40, 2 ** 40 + (end - b)])],
        ['offsets negative', () => (e.data_offsets = [-(end - b), 0])],
        ['offsets fractional', () => (e.data_offsets = [b + 0.5, end + 0.5])],
        ['offsets as strings', () => (e.data_offsets = [String(b), String(end)])],
        ['three offsets', () => (e.data_offsets = [b, end, end])],
        ['dtype unknown', () => (e.dtype = r.pick(ODD_DTYPES))],
        ['dtype not a string', () => (e.dtype = r.pick<Json>([4, null, ['F32'], { F32: 1 }]))],
        ['shape negative', () => (e.shape = dims.length ? dims.map((d, i) => (i === 0 ? -d : d)) : [-1])],
        ['shape huge', () => (e.shape = [2 ** 40, ...dims])],
        ['shape overflows 2^53', () => (e.shape = [2 ** 30, 2 ** 30, 2 ** 30])],
        ['shape of 17 dims', () => (e.shape = new Array<number>(17).fill(1))],
        ['shape of 100000 dims', () => (e.shape = new Array<number>(100000).fill(1))],
        ['shape fractional', () => (e.shape = dims.map((d) => d + 0.5))],
        ['shape not an array', () => (e.shape = r.pick<Json>([8, '8', null, { 0: 8 }]))],
        ['shape has a zero', () => (e.shape = [0, ...dims])],
        ['entry not an object', () => (h[t] = r.pick<Json>([null, 1, 'x', []]))],
        ['__metadata__ odd', () => (h.__metadata__ = r.pick<Json>([null, [], 'x', { k: 1 }, { k: { deep: 'x' } }]))],
        ['__metadata__ as a tensor', () => (h.__metadata__ = clone(e))],
        ['many tensors', () => { for (let i = 0; i < 20000; i++) h[`extra.${i}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] }; }],
      ];
      const [what, edit] = r.pick(edits);
      edit();
      return { files: { [name]: safetensorsBytes(h, data) }, desc: `${name} [${t}]: ${what}` };
    },
  };
}

/** A header length that disagrees with the JSON it frames (short, long, or past the end). */
function headerLength(name: string, header: Header, data: Uint8Array): Structured {
  return {
    name: 'header-length',
    run(r) {
      const bytes = safetensorsBytes(header, data);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const v = r.pick([n - 1, n + 1, n - 8, n + 8, Math.floor(n / 2), bytes.length - 8, bytes.length - 7, 2 ** 32 + n, 2 ** 40]);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(Math.max(0, v)), true);
      return { files: { [name]: bytes }, desc: `${name}: header length ${n} := ${v}` };
    },
  };
}

function singleSeed(label: string, tensors: RawTensor[], metadata?: Record<string, string>): Seed {
  const { header, data } = layoutTensors(tensors, metadata);
  const s = seedFile('model.safetensors', header as Header, data);
  return {
    label,
    files: [s.file],
    open: 'model.safetensors',
    structured: [jsonHeader(s.file.name, s.header, s.data), targetedHeader(s.file.name, s.header, s.data), headerLength(s.file.name, s.header, s.data)],
  };
}

function mixedTensors(): RawTensor[] {
  const base = tinyLlamaTensors();
  const f16 = toRaw(base.slice(0, 4), 'F16');
  const bf16 = toRaw(base.slice(4, 8), 'BF16');
  const u8 = (n: number, k: number) => Uint8Array.from({ length: n }, (_, i) => (i * k + 3) & 0xff);
  return [
    ...f16,
    ...bf16,
    { name: 'model.layers.0.fp8.weight', dtype: 'F8_E4M3', shape: [4, 4], bytes: u8(16, 37) },
    { name: 'model.layers.0.fp8b.weight', dtype: 'F8_E5M2', shape: [16], bytes: u8(16, 11) },
    { name: 'model.position_ids', dtype: 'I64', shape: [1, 4], bytes: u8(32, 0) },
    { name: 'model.mask', dtype: 'BOOL', shape: [8], bytes: u8(8, 1).map((b) => b & 1) },
    { name: 'model.empty', dtype: 'F32', shape: [0, 8], bytes: new Uint8Array(0) },
    { name: 'model.scalar', dtype: 'F64', shape: [], bytes: new Uint8Array(new Float64Array([1.5]).buffer) },
    { name: 'lm_head.weight', dtype: 'F32', shape: [4, 8], bytes: encodeFloats(base[base.length - 1].data.subarray(0, 32), 'F32') },
  ];
}

/** 3 shards + index; the index gets JSON mutations and path attacks, the shards everything above. */
function shardedSeed(scratch: string): Seed {
  const { index, shards } = writeShardedSafetensors(scratch, tinyLlamaTensors(), 3, 'F16');
  const indexName = path.basename(index);
  const indexBytes = new Uint8Array(readFileSync(index));
  const files: SeedFile[] = [{ name: indexName, bytes: indexBytes, fields: [], points: [0, indexBytes.length], weight: 2 }];
  const structured: Structured[] = [];
  for (const shard of shards) {
    const bytes = new Uint8Array(readFileSync(path.join(scratch, shard)));
    files.push({ name: shard, bytes, ...structureOf(bytes) });
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Header;
    structured.push({ ...targetedHeader(shard, header, bytes.slice(8 + n)), weight: 1 });
  }
  const root = JSON.parse(new TextDecoder().decode(indexBytes)) as { weight_map: Record<string, string> };
  structured.push(
    {
      name: 'json-index',
      weight: 3,
      run(r) {
        const j = clone(root) as unknown as Json;
        const desc = mutateJson(r, j);
        return { files: { [indexName]: new TextEncoder().encode(stringifyJson(r, j, 2)) }, desc: `index: ${desc}` };
      },
    },
    {
      name: 'index-paths',
      weight: 2,
      run(r) {
        const j = clone(root);
        const names = Object.keys(j.weight_map);
        const t = r.pick(names);
        const edits: [string, () => void][] = [
          ['shard path escapes', () => (j.weight_map[t] = r.pick(['../model.safetensors', '/etc/passwd', 'C:\\w.safetensors', 'a/../../x.safetensors', '\u0000.safetensors']))],
          ['shard missing', () => (j.weight_map[t] = 'model-00009-of-00009.safetensors')],
          ['tensor moved to another shard', () => (j.weight_map[t] = r.pick(shards))],
          ['tensor dropped', () => delete j.weight_map[t]],
          ['tensor added', () => (j.weight_map[`${t}.extra`] = r.pick(shards))],
          ['shard is the index itself', () => (j.weight_map[t] = indexName)],
          ['shard is the folder', () => (j.weight_map[t] = '.')],
          ['empty weight_map', () => (j.weight_map = {})],
        ];
        const [what, edit] = r.pick(edits);
        edit();
        return { files: { [indexName]: new TextEncoder().encode(JSON.stringify(j)) }, desc: `index [${t}]: ${what}` };
      },
    },
  );
  return { label: 'st-sharded', files, open: indexName, structured };
}

export const safetensorsTarget: FuzzTarget = {
  name: 'safetensors',
  seeds: (dir) => [
    singleSeed('st-f32', toRaw(tinyLlamaTensors(), 'F32'), { format: 'pt' }),
    singleSeed('st-mixed', mixedTensors()),
    shardedSeed(dir),
  ],
  run: openAndRead,
};
