// The checks `npm test` runs on a group of fuzz targets (test/unit/fuzz-smoke*.test.ts): every seed is valid, every
// case rebuilds byte for byte, and a deterministic few-hundred-case run finds no crash, hang or huge allocation.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { inTempDir } from '../fixtures/common';
import { formatTable, runCampaign } from './campaign';
import { makeCase, runCase, writeCase } from './harness';
import type { FuzzTarget } from './target';

const SMOKE_SEED = 20261101;
const MiB = 2 ** 20;

const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-fuzz-', body);

/** Every seed opens and reads before any mutation. */
export const seedsAreValid = (targets: readonly FuzzTarget[]) =>
  inTemp(async (dir) => {
    for (const target of targets) {
      for (const seed of await target.seeds(path.join(dir))) {
        const w = writeCase(path.join(dir, 'cases', target.name), { seed, files: new Map(seed.files.map((f) => [f.name, f.bytes])), desc: [] });
        const out = await runCase(target, w.dir, w.target);
        assert.equal(out.kind, 'ok', `${target.name}/${seed.label}: ${out.error?.message}`);
      }
    }
  });

/** A case is a pure function of (run seed, format, index). */
export const casesRebuild = (targets: readonly FuzzTarget[]) =>
  inTemp(async (dir) => {
    for (const target of targets) {
      const seeds = await target.seeds(dir);
      for (const i of [0, 7, 123]) {
        const a = makeCase(seeds, 9, target.name, i);
        const b = makeCase(seeds, 9, target.name, i);
        assert.deepEqual(a.desc, b.desc);
        assert.deepEqual([...a.files.keys()], [...b.files.keys()]);
        for (const [k, v] of a.files) assert.ok(Buffer.from(v).equals(b.files.get(k)!), `${target.name} #${i} ${k}`);
      }
    }
  });

/** `cases` mutated inputs per target: both outcomes occur, and nothing crashes, hangs or balloons. */
export async function smokeRun(targets: readonly FuzzTarget[], cases: number): Promise<void> {
  const { rows, failures } = await runCampaign({
    formats: targets.map((t) => t.name),
    cases, runSeed: SMOKE_SEED, workers: 2, timeoutMs: 5000, growthLimit: 512 * MiB, killRss: 3 * 2 ** 30, sharedPool: true,
  });
  const report = `\n${formatTable(rows)}\n${failures.map((f) => `×${f.count} ${f.signature}\n  ${f.desc.join(' | ')}\n  replay: npm run fuzz -- --format ${f.example.format} --seed ${SMOKE_SEED} --case ${f.example.index}`).join('\n')}`;
  for (const r of rows) {
    assert.equal(r.cases, cases, report);
    // Both outcomes occur: the mutations reach past the first check, and they do break things.
    assert.ok(r.ok > 0 && r.clean > 0, `${r.format}: ${r.ok} ok, ${r.clean} clean${report}`);
  }
  assert.deepEqual(failures.map((f) => f.signature), [], report);
}
