// Targets that misbehave on purpose, so the tests can check that the harness classifies each failure
// (crash, located or not, hang, stall, huge allocation, late uncaught error). Not in the default run.
import * as path from 'node:path';
import { QuantLensError } from '../../server/src/formats/errors';
import type { FuzzTarget, Seed } from './target';

const seed = (): Seed[] => [{ label: 'one', files: [{ name: 'x.bin', bytes: new Uint8Array(64), fields: [], points: [] }], open: 'x.bin', structured: [] }];

/** How much the 'selftest-alloc' target allocates and touches. */
export const SELFTEST_ALLOC = 256 * 2 ** 20;

const behave: Record<string, (file: string) => Promise<void>> = {
  'selftest-ok': async () => {},
  'selftest-clean': async (file) => {
    throw new QuantLensError('selftest', 'refused', { file, offset: 3 });
  },
  'selftest-unlocated': async (file) => {
    throw new QuantLensError('selftest', 'refused', { file });
  },
  'selftest-crash': async (file) => {
    (JSON.parse('null') as { x: unknown } | null)!.x = file; // TypeError
  },
  'selftest-pathless': async () => {
    throw new QuantLensError('selftest', 'refused', { file: 'somewhere-else' });
  },
  'selftest-hang': async () => {
    for (;;);
  },
  'selftest-stall': () => new Promise<void>(() => {}),
  'selftest-alloc': async () => {
    Buffer.alloc(SELFTEST_ALLOC, 1);
  },
  'selftest-late': async (file) => {
    setImmediate(() => {
      throw new Error(`late error for ${path.basename(file)}`);
    });
    await new Promise((r) => setTimeout(r, 50));
  },
};

export const SELFTEST_TARGETS: readonly FuzzTarget[] = Object.entries(behave).map(([name, run]) => ({ name, seeds: seed, run }));
