// `npm run fuzz [-- --cases N] [--format name[,name]] [--seed S] [--workers W] [--timeout ms] [--case i]`
// Mutates valid checkpoints and checks that every reader either reads them or refuses them with a
// located QuantLensError: no other exception, no hang, no huge allocation. Exit code 1 on any failure.
// `--case i` replays one case in this process and prints its mutation and outcome.
// (`npm run fuzz --cases 100` also works: npm passes unknown flags as npm_config_* variables.)
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatTable, runCampaign } from './campaign';
import { makeCase, runCase, writeCase } from './harness';
import { TARGETS, targetByName } from './targets';

function args(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['cases', 'format', 'seed', 'workers', 'timeout', 'case']) {
    const env = process.env[`npm_config_${k}`];
    if (env !== undefined && env !== '' && env !== 'true') out[k] = env;
  }
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i];
  }
  return out;
}

const int = (v: string | undefined, fallback: number, what: string): number => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
};

async function replay(format: string, runSeed: number, index: number): Promise<number> {
  const target = targetByName(format);
  const work = mkdtempSync(path.join(os.tmpdir(), 'quantlens-fuzz-replay-'));
  try {
    const c = makeCase(await target.seeds(path.join(work)), runSeed, format, index);
    const { dir, target: open } = writeCase(path.join(work, 'case'), c);
    console.log(`case ${format} seed ${runSeed} #${index}: ${c.desc.join(' | ')}`);
    const out = await runCase(target, dir, open);
    console.log(`outcome: ${out.kind}${out.located !== undefined ? (out.located ? ' (located)' : ' (not located)') : ''}`);
    if (out.error) console.log(out.kind === 'crash' ? (out.error.stack ?? out.error.message) : `${out.error.code}: ${out.error.message}`);
    return out.kind === 'crash' ? 1 : 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const a = args();
  const runSeed = int(a.seed, 1, 'seed');
  const formats = a.format ? a.format.split(',') : TARGETS.map((t) => t.name);
  if (a.case !== undefined) {
    if (formats.length !== 1) throw new Error('--case needs exactly one --format');
    return replay(formats[0], runSeed, int(a.case, 0, 'case'));
  }
  const cases = int(a.cases, 10_000, 'cases');
  const saveDir = path.resolve(import.meta.dirname, '../../.cache/fuzz-crashes');
  console.log(`fuzz: ${cases} cases per format, formats ${formats.join(', ')}, seed ${runSeed}`);
  let last = 0;
  const { rows, failures } = await runCampaign({
    formats,
    cases,
    runSeed,
    workers: int(a.workers, 2, 'workers'),
    timeoutMs: int(a.timeout, 5000, 'timeout'),
    growthLimit: 512 * 2 ** 20,
    killRss: 3 * 2 ** 30,
    saveDir,
    onProgress: (row) => {
      const now = performance.now();
      if (row.cases === cases) process.stderr.write(`  ${row.format}: done: ${row.ok} ok, ${row.clean} clean, ${row.crashes} crashes, ${row.hangs} hangs, ${row.memory} huge alloc\n`);
      else if (now - last > 5000) {
        last = now;
        process.stderr.write(`  ${row.format}: ${row.cases}/${cases}\n`);
      }
    },
  });
  console.log(`\n${formatTable(rows)}\n`);
  for (const r of rows) {
    const codes = Object.entries(r.unlocatedCodes).sort((a, b) => b[1] - a[1]);
    if (codes.length) console.log(`${r.format}: clean errors without offset or tensor, by code: ${codes.map(([c, n]) => `${c} ×${n}`).join(', ')}`);
  }
  for (const f of failures) {
    const e = f.example;
    console.log(`FAILURE ×${f.count}: ${f.signature}`);
    console.log(`  first: --format ${e.format} --seed ${runSeed} --case ${e.index}`);
    console.log(`  mutation: ${f.desc.join(' | ')}`);
    console.log(`  ${(e.error?.stack ?? `${e.error?.name}: ${e.error?.message}`).split('\n').slice(0, 12).join('\n  ')}`);
    if (f.variants.length > 1) console.log(`  also from: ${f.variants.slice(1).join('\n             ')}`);
    if (f.saved.length) console.log(`  saved: ${f.saved.join(', ')}`);
  }
  const bad = rows.some((r) => r.crashes + r.hangs + r.memory > 0);
  console.log(bad ? 'fuzz: FAILED' : 'fuzz: no crash, hang or huge allocation');
  return bad ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(2);
  },
);
