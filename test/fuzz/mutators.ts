// Format-agnostic mutations for the reader fuzzer: byte-level edits of valid seeds, overwrites of known
// header integer fields with hostile values, and JSON-level edits. Every mutation is a pure function of
// a seeded PRNG, and returns a short description so a failing case can be read without a debugger.
import * as fc from 'fast-check';
import { rng } from '../fixtures/common';

/** Seeded randomness (mulberry32 underneath, the fixtures' PRNG). */
export class Rand {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = rng(seed);
  }

  float(): number {
    return this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** A 32-bit seed for a sub-generator (fast-check, nested Rand). */
  seed(): number {
    return this.int(2 ** 31);
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Deterministic per-case seed from (run seed, format, case index): any case replays on its own. */
export function caseSeed(runSeed: number, format: string, index: number): number {
  let h = 2166136261 ^ runSeed;
  for (const ch of `${format}#${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return (h ^ (h >>> 15)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Structure maps the seed builders provide

/** An integer field of a header: little-endian fixed width, or a protobuf varint (`width` = its byte length). */
export interface IntField {
  at: number;
  width: 1 | 2 | 4 | 8 | number;
  varint?: boolean;
  label: string;
}

export interface SeedFile {
  name: string;
  bytes: Uint8Array;
  /** Header integer fields worth overwriting with hostile values. */
  fields: IntField[];
  /** Structurally interesting offsets: header/data boundaries, tensor starts and middles. */
  points: number[];
  /** Relative chance that byte-level mutations pick this file (default 1; 0 = never mutated). */
  weight?: number;
}

/** One mutation applied; `files` are the mutated contents by file name. */
export interface Mutated {
  files: Map<string, Uint8Array>;
  desc: string[];
}

// ---------------------------------------------------------------------------------------------
// Byte-level

/** Values that break size arithmetic: 0, ±1, sign bits, 32/53/64-bit edges, 1 TiB. */
export const HOSTILE_INTS: readonly bigint[] = [
  0n, 1n, 2n, 7n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n,
  2n ** 40n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
];

function hostileValue(r: Rand, f: IntField, fileSize: number, others: readonly IntField[], bytes: Uint8Array): bigint {
  const bits = f.varint ? 64n : BigInt(8 * f.width);
  const mask = (1n << bits) - 1n;
  const current = f.varint ? readVarint(bytes, f.at) : readUint(bytes, f.at, f.width);
  const choice = r.int(7);
  let v: bigint;
  if (choice === 0) v = BigInt(fileSize) + BigInt(r.range(-2, 2)); // just past / just before the end
  else if (choice === 1 && others.length > 0) {
    const o = r.pick(others); // another field's value: overlapping offsets, swapped sizes
    v = o.varint ? readVarint(bytes, o.at) : readUint(bytes, o.at, o.width);
  } else if (choice === 2) v = current + BigInt(r.range(-3, 3)); // off by a few
  else if (choice === 3) v = -BigInt(r.range(1, 1000)); // negative (two's complement)
  else if (choice === 4) v = current * 2n ** BigInt(r.range(1, 40));
  else v = r.pick(HOSTILE_INTS);
  return v & mask;
}

export function readUint(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  return v;
}

function writeUint(b: Uint8Array, at: number, width: number, v: bigint): void {
  for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

export function readVarint(b: Uint8Array, at: number): bigint {
  let v = 0n;
  for (let i = 0; i < 10 && at + i < b.length; i++) {
    v |= BigInt(b[at + i] & 0x7f) << BigInt(7 * i);
    if (b[at + i] < 0x80) break;
  }
  return v;
}

export function varintBytes(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x > 0n ? b | 0x80 : b);
  } while (x > 0n);
  return Uint8Array.from(out);
}

/** A copy (Buffer#slice would return a view and let a mutation write into the seed). */
const copy = (b: Uint8Array, end = b.length): Uint8Array => new Uint8Array(b.subarray(0, end));

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at), 0);
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
};

type ByteMutation = (r: Rand, f: SeedFile, b: Uint8Array) => { bytes: Uint8Array; desc: string };

const nearPoint = (r: Rand, f: SeedFile, len: number): number => {
  const p = f.points.length > 0 && r.chance(0.7) ? r.pick(f.points) + r.range(-4, 4) : r.int(len + 1);
  return Math.max(0, Math.min(len, p));
};

const BYTE_MUTATIONS: Record<string, { weight: number; run: ByteMutation }> = {
  'truncate-random': { weight: 2, run: (r, _f, b) => { const n = r.int(b.length); return { bytes: copy(b, n), desc: `truncate to ${n}` }; } },
  'truncate-point': {
    weight: 3,
    run: (r, f, b) => { const n = nearPoint(r, f, b.length); return { bytes: copy(b, n), desc: `truncate at structural point ${n}` }; },
  },
  'bit-flip': {
    weight: 3,
    run: (r, f, b) => {
      const out = copy(b);
      const n = r.range(1, 8);
      const at: number[] = [];
      for (let i = 0; i < n && out.length > 0; i++) {
        const p = r.chance(0.5) ? Math.min(out.length - 1, nearPoint(r, f, out.length - 1)) : r.int(out.length);
        out[p] ^= 1 << r.int(8);
        at.push(p);
      }
      return { bytes: out, desc: `flip bits at ${at.join(',')}` };
    },
  },
  'set-bytes': {
    weight: 3,
    run: (r, f, b) => {
      const out = copy(b);
      if (out.length === 0) return { bytes: out, desc: 'set nothing (empty)' };
      const at = Math.min(out.length - 1, nearPoint(r, f, out.length - 1));
      const n = Math.min(out.length - at, r.pick([1, 1, 2, 4, 8, 16, 64]));
      const kind = r.pick(['0x00', '0xff', 'random'] as const);
      for (let i = 0; i < n; i++) out[at + i] = kind === '0x00' ? 0 : kind === '0xff' ? 0xff : r.int(256);
      return { bytes: out, desc: `set ${n} bytes at ${at} to ${kind}` };
    },
  },
  insert: {
    weight: 2,
    run: (r, f, b) => {
      const at = nearPoint(r, f, b.length);
      const n = r.pick([1, 2, 3, 4, 8, 17, 64, 1000]);
      const fill = r.chance(0.5) ? r.bytes(n) : new Uint8Array(n).fill(r.pick([0, 0xff, 0x7b, 0x5b]));
      return { bytes: splice(b, at, 0, fill), desc: `insert ${n} bytes at ${at}` };
    },
  },
  delete: {
    weight: 2,
    run: (r, f, b) => {
      const at = nearPoint(r, f, b.length);
      const n = Math.min(b.length - at, r.pick([1, 2, 4, 8, 30, 100, 1000]));
      return { bytes: splice(b, at, n, new Uint8Array(0)), desc: `delete ${n} bytes at ${at}` };
    },
  },
  'copy-run': {
    weight: 1,
    run: (r, f, b) => {
      if (b.length < 2) return { bytes: copy(b), desc: 'copy nothing (tiny)' };
      const from = r.int(b.length);
      const to = nearPoint(r, f, b.length - 1);
      const n = Math.min(b.length - from, b.length - to, r.pick([4, 8, 30, 64, 256]));
      const out = copy(b);
      out.set(b.subarray(from, from + n), to);
      return { bytes: out, desc: `copy ${n} bytes from ${from} over ${to}` };
    },
  },
  'int-field': {
    weight: 6,
    run: (r, f, b) => {
      if (f.fields.length === 0) return BYTE_MUTATIONS['set-bytes'].run(r, f, b);
      const field = r.pick(f.fields);
      const v = hostileValue(r, field, b.length, f.fields, b);
      if (field.varint) {
        const enc = varintBytes(v);
        return { bytes: splice(b, field.at, field.width, enc), desc: `varint ${field.label}@${field.at} := ${v}` };
      }
      const out = copy(b);
      writeUint(out, field.at, field.width, v);
      return { bytes: out, desc: `${field.label}@${field.at} (u${8 * field.width}) := ${v}` };
    },
  },
};

const TOTAL_WEIGHT = Object.values(BYTE_MUTATIONS).reduce((s, m) => s + m.weight, 0);

/** One weighted byte-level mutation of `b` (the current contents of seed file `f`). */
export function mutateBytes(r: Rand, f: SeedFile, b: Uint8Array): { bytes: Uint8Array; desc: string } {
  let x = r.float() * TOTAL_WEIGHT;
  for (const m of Object.values(BYTE_MUTATIONS)) {
    x -= m.weight;
    if (x < 0) {
      const out = m.run(r, f, b);
      return { bytes: out.bytes, desc: `${f.name}: ${out.desc}` };
    }
  }
  throw new Error('unreachable');
}

// ---------------------------------------------------------------------------------------------
// JSON-level

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Placeholder replaced by raw nesting text after JSON.stringify (our own stringify must not recurse that deep). */
const DEEP = '\u0000quantlens-deep\u0000';

/** Hostile JSON values: huge/negative/fractional numbers, odd strings, wrong types. */
function hostileJson(r: Rand): Json {
  switch (r.int(9)) {
    case 0:
      return r.pick([-1, -(2 ** 53), 2 ** 40, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, 0.5, -0.0, 3.000000001, 1e-320]);
    case 1:
      return r.pick(['', 'x'.repeat(r.pick([1, 100, 70000])), '..', '../../etc/passwd', '/etc/passwd', 'C:\\x', '\u0000', '\ud800', 'F32', '__proto__']);
    case 2:
      return r.pick([null, true, false]);
    case 3:
      return [];
    case 4:
      return {};
    case 5:
      return Array.from({ length: r.pick([1, 3, 17, 1000]) }, () => r.pick([0, -1, 2 ** 40, 1e9]));
    case 6:
      return DEEP; // deep nesting, expanded in stringifyJson
    default:
      // Arbitrary JSON from fast-check (seeded: replayable).
      return fc.sample(fc.jsonValue({ maxDepth: 4 }), { seed: r.seed(), numRuns: 1 })[0] as Json;
  }
}

interface JsonSlot {
  parent: Json[] | { [k: string]: Json };
  key: string | number;
}

/** Every (container, key) slot of a JSON tree, breadth-first, capped. */
function slotsOf(root: Json): JsonSlot[] {
  const out: JsonSlot[] = [];
  const todo: Json[] = [root];
  while (todo.length > 0 && out.length < 5000) {
    const v = todo.shift()!;
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        out.push({ parent: v, key: i });
        todo.push(c);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, c] of Object.entries(v)) {
        out.push({ parent: v, key: k });
        todo.push(c);
      }
    }
  }
  return out;
}

const get = (s: JsonSlot): Json => (s.parent as Record<string | number, Json>)[s.key];
const set = (s: JsonSlot, v: Json) => ((s.parent as Record<string | number, Json>)[s.key] = v);

/** Mutate a parsed JSON tree in place (it is the caller's copy); returns what was done. */
export function mutateJson(r: Rand, root: Json): string {
  const slots = slotsOf(root);
  if (slots.length === 0) return 'no slots';
  const s = r.pick(slots);
  const v = get(s);
  const at = typeof s.key === 'number' ? `[${s.key}]` : `.${s.key}`;
  switch (r.int(8)) {
    case 0:
    case 1: {
      const h = hostileJson(r);
      set(s, h);
      return `${at} := ${h === DEEP ? 'deep nesting' : JSON.stringify(h)?.slice(0, 60)}`;
    }
    case 2:
      if (typeof v === 'number') {
        const n = r.pick([v + 1, v - 1, -v, v * 2 ** 20, v * 2 ** 40, v + 0.5]);
        set(s, n);
        return `${at} := ${n}`;
      }
      set(s, String(v));
      return `${at} := string`;
    case 3:
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
      else delete s.parent[s.key as string];
      return `delete ${at}`;
    case 4: {
      const o = r.pick(slots);
      const ov = get(o);
      set(o, v);
      set(s, ov);
      return `swap ${at} with ${typeof o.key === 'number' ? `[${o.key}]` : `.${o.key}`}`;
    }
    case 5:
      if (Array.isArray(v)) {
        if (r.chance(0.5)) v.reverse();
        else v.push(...v.slice(0, r.range(1, 4)));
        return `${at} reorder/extend array`;
      }
      if (v !== null && typeof v === 'object') {
        v[r.pick(['__proto__', 'constructor', '__metadata__', 'weight_map', 'dtype', 'x'.repeat(300)])] = hostileJson(r);
        return `${at} add key`;
      }
      set(s, [v]);
      return `${at} wrapped in array`;
    case 6: {
      // Rename a key: a different tensor name, a duplicate of another, or an odd string.
      if (Array.isArray(s.parent)) return mutateJson(r, root);
      const name = r.pick(['', '__proto__', '..', 'a/../../b', '\u202e', 'model.layers.0.x', Object.keys(s.parent)[0] + ' ']);
      delete s.parent[s.key as string];
      s.parent[name] = v;
      return `rename key ${at} to ${JSON.stringify(name)}`;
    }
    default:
      set(s, DEEP);
      return `${at} := deep nesting`;
  }
}

/** JSON text of a (mutated) tree; DEEP placeholders become `[[[…]]]` nesting of a random depth. */
export function stringifyJson(r: Rand, root: Json, indent?: number): string {
  const text = JSON.stringify(root, null, indent);
  if (!text.includes(JSON.stringify(DEEP))) return text;
  return text.split(JSON.stringify(DEEP)).reduce((acc, part) => {
    const d = r.pick([100, 5000, 200000]);
    return `${acc}${'['.repeat(d)}${']'.repeat(d)}${part}`;
  });
}

export type { Json };
