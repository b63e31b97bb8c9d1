// What the fuzzer needs to know about one input format: valid seeds (files plus structure maps), the
// structure-aware mutators that know the format, and how to open and read what was built.
// A new format is one `FuzzTarget` added to the list in targets.ts.
import { openCheckpoint } from '../../server/src/formats/registry';
import type { Rand, SeedFile } from './mutators';

/** A structure-aware mutation: new contents for some of the seed's files. */
export interface Structured {
  name: string;
  /** Relative chance among this seed's structured mutators (default 1). */
  weight?: number;
  run(r: Rand): { files: Record<string, Uint8Array>; desc: string };
}

export interface Seed {
  /** Unique within the target; also the case folder's name. */
  label: string;
  files: SeedFile[];
  /** What to open, relative to the case folder ('' = the folder itself). */
  open: string;
  structured: Structured[];
}

export interface FuzzTarget {
  name: string;
  /** Build the valid seeds; `dir` is a scratch folder for fixture writers that write files. */
  seeds(dir: string): Seed[] | Promise<Seed[]>;
  /** Open and fully read `target` (a file or folder in the case folder); any rejection is classified. */
  run(target: string): Promise<void>;
}

/** Thrown when a reader returns without an error but breaks its own contract (e.g. a read of the wrong length). */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

/**
 * The checkpoint readers' contract: open, read every analyzable tensor (whole, and one inner range),
 * and close; each read returns exactly the requested element count.
 */
export async function openAndRead(target: string): Promise<void> {
  const ck = await openCheckpoint(target);
  try {
    for (const t of ck.tensors) {
      if (!t.analyzable) continue;
      const all = await ck.read(t.name);
      if (all.length !== t.params) throw new InvariantError(`read(${t.name}) returned ${all.length} elements, tensor has ${t.params}`);
      if (t.params > 2) {
        const part = await ck.read(t.name, { start: 1, count: t.params - 2 });
        if (part.length !== t.params - 2) throw new InvariantError(`read(${t.name}, 1+${t.params - 2}) returned ${part.length} elements`);
      }
    }
  } finally {
    await ck.close();
  }
}
