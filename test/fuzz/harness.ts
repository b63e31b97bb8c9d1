// One fuzz case: derive it from (run seed, format, index), write it to a folder, run the target and
// classify what happened. Shared by the worker processes and by the parent (to save hang/OOM inputs).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from '../../server/src/formats/errors';
import { caseSeed, mutateBytes, Rand, type SeedFile } from './mutators';
import type { FuzzTarget, Seed } from './target';

export interface FuzzCase {
  seed: Seed;
  files: Map<string, Uint8Array>;
  desc: string[];
}

/** Pick a seed and apply a structure-aware mutation, some byte-level ones, or both. */
export function makeCase(seeds: readonly Seed[], runSeed: number, format: string, index: number): FuzzCase {
  const r = new Rand(caseSeed(runSeed, format, index));
  const seed = r.pick(seeds);
  const files = new Map(seed.files.map((f) => [f.name, f.bytes]));
  const desc = [seed.label];
  const touched = new Set<string>();
  if (seed.structured.length > 0 && r.chance(0.4)) {
    const total = seed.structured.reduce((s, m) => s + (m.weight ?? 1), 0);
    let x = r.float() * total;
    const m = seed.structured.find((s) => (x -= s.weight ?? 1) < 0) ?? seed.structured[0];
    const out = m.run(r);
    for (const [name, bytes] of Object.entries(out.files)) {
      files.set(name, bytes);
      touched.add(name);
    }
    desc.push(`${m.name}: ${out.desc}`);
    if (!r.chance(0.2)) return { seed, files, desc };
  }
  const mutable = seed.files.filter((f) => (f.weight ?? 1) > 0);
  const total = mutable.reduce((s, f) => s + (f.weight ?? 1), 0);
  // Mostly one to three edits; sometimes a havoc of up to ten.
  for (let n = r.chance(0.1) ? r.range(4, 10) : r.pick([1, 1, 1, 2, 3]); n > 0 && mutable.length > 0; n--) {
    let x = r.float() * total;
    const f = mutable.find((m) => (x -= m.weight ?? 1) < 0) ?? mutable[0];
    // After a structural rewrite the seed's field map no longer matches the bytes.
    const map: SeedFile = touched.has(f.name) ? { ...f, fields: [], points: [] } : f;
    const out = mutateBytes(r, map, files.get(f.name)!);
    files.set(f.name, out.bytes);
    touched.add(f.name);
    desc.push(out.desc);
  }
  return { seed, files, desc };
}

/** Write a case under `root/<seed label>/` (replacing the previous case there); returns what to open. */
export function writeCase(root: string, c: FuzzCase): { dir: string; target: string } {
  const dir = path.join(root, c.seed.label);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of c.files) writeFileSync(path.join(dir, name), bytes);
  return { dir, target: c.seed.open === '' ? dir : path.join(dir, c.seed.open) };
}

export type OutcomeKind = 'ok' | 'clean' | 'crash';

export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

export interface Outcome {
  kind: OutcomeKind;
  /** Clean errors only: the location names a byte offset, a tensor or a line. */
  located?: boolean;
  error?: ErrorInfo;
}

const info = (e: unknown): ErrorInfo =>
  e instanceof Error
    ? { name: e.name, message: e.message.slice(0, 2000), stack: e.stack?.slice(0, 4000), ...(e instanceof QuantLensError ? { code: e.code } : {}) }
    : { name: typeof e, message: String(e).slice(0, 2000) };

/**
 * Run the target on a written case. A QuantLensError is clean only if its message names a file of
 * the case (the folder is part of every such path); anything else thrown is a crash.
 */
export async function runCase(target: FuzzTarget, dir: string, open: string): Promise<Outcome> {
  try {
    await target.run(open);
    return { kind: 'ok' };
  } catch (e) {
    if (e instanceof QuantLensError && e.message.includes(dir)) {
      const w = e.where;
      return { kind: 'clean', located: w.offset !== undefined || w.tensor !== undefined || w.line !== undefined, error: info(e) };
    }
    const err = info(e);
    if (e instanceof QuantLensError) err.name = 'QuantLensError without the file path';
    return { kind: 'crash', error: err };
  }
}
