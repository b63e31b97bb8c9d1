// A fuzz campaign: every requested format in turn on a fresh worker pool (so peak RSS is per format),
// tallied into one row per format; failures grouped by signature, their inputs saved for replay.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCase } from './harness';
import { caseSeed } from './mutators';
import { runPool, type CaseResult, type PoolOptions } from './pool';
import type { Seed } from './target';
import { targetByName } from './targets';

export interface CampaignOptions extends PoolOptions {
  formats: string[];
  cases: number;
  /** Where failing inputs go (one folder per case); none saved when undefined. */
  saveDir?: string;
  /** Inputs saved per failure signature. */
  savePerSignature?: number;
  /** Run every format on one pool (faster start; peak RSS is then not per format). */
  sharedPool?: boolean;
  /** Called after every case with that format's running tally. */
  onProgress?: (row: Readonly<FormatRow>) => void;
}

export interface FormatRow {
  format: string;
  cases: number;
  ok: number;
  clean: number;
  located: number;
  crashes: number;
  hangs: number;
  memory: number;
  peakRssMiB: number;
  seconds: number;
  slowestMs: number;
  /** Clean errors with neither offset, tensor nor line, by error code. */
  unlocatedCodes: Record<string, number>;
}

export interface Failure {
  signature: string;
  count: number;
  /** The first case that showed it. */
  example: CaseResult;
  desc: string[];
  /** Up to 5 distinct mutations (seed + mutator) that led to it. */
  variants: string[];
  saved: string[];
}

/** Error kind + message shape (digits and paths blanked) + the first stack frame in our code. */
export function signatureOf(r: CaseResult): string {
  const e = r.error;
  const msg = (e?.message ?? '').replace(/\/[^\s:'"]+/g, '<path>').replace(/\d+/g, 'N').slice(0, 120);
  const frame = e?.stack?.split('\n').find((l) => /server\/src|node_modules/.test(l))?.trim().replace(/^at /, '').replace(/:\d+\)?$/, '') ?? '';
  return `${r.format} ${r.kind}: ${e?.name ?? '?'}: ${msg}${frame ? ` @ ${frame.replace(/.*\/(server\/src|node_modules)\//, '$1/')}` : ''}`;
}

export async function runCampaign(o: CampaignOptions): Promise<{ rows: FormatRow[]; failures: Failure[] }> {
  for (const format of o.formats) targetByName(format); // fail fast on a typo
  const rows = new Map<string, FormatRow>();
  const failed: CaseResult[] = [];
  const tally = (r: CaseResult) => {
    const row = rows.get(r.format)!;
    row.cases++;
    row.slowestMs = Math.max(row.slowestMs, r.ms);
    if (r.kind === 'ok') row.ok++;
    else if (r.kind === 'clean') {
      row.clean++;
      if (r.located) row.located++;
      else row.unlocatedCodes[r.error?.code ?? '?'] = (row.unlocatedCodes[r.error?.code ?? '?'] ?? 0) + 1;
    } else {
      if (r.kind === 'crash') row.crashes++;
      else if (r.kind === 'hang') row.hangs++;
      else row.memory++;
      failed.push(r);
    }
    o.onProgress?.(row);
  };
  const jobsOf = (format: string) => Array.from({ length: o.cases }, (_, index) => ({ format, index }));
  for (const format of o.formats) rows.set(format, { format, cases: 0, ok: 0, clean: 0, located: 0, crashes: 0, hangs: 0, memory: 0, peakRssMiB: 0, seconds: 0, slowestMs: 0, unlocatedCodes: {} });
  if (o.sharedPool) {
    // One pool for every format (cheaper to start); peak RSS and time are then the pool's, on every row.
    const t0 = performance.now();
    const jobs = o.formats.flatMap(jobsOf);
    const { peakRss } = await runPool(o.formats, jobs, o, tally);
    for (const row of rows.values()) Object.assign(row, { peakRssMiB: peakRss / 2 ** 20, seconds: (performance.now() - t0) / 1000 });
  } else {
    // A fresh pool per format, so peak RSS and time are that format's.
    for (const format of o.formats) {
      const t0 = performance.now();
      const { peakRss } = await runPool([format], jobsOf(format), o, tally);
      Object.assign(rows.get(format)!, { peakRssMiB: peakRss / 2 ** 20, seconds: (performance.now() - t0) / 1000 });
    }
  }
  return { rows: [...rows.values()], failures: await groupFailures(o, failed) };
}

/** Failures grouped by signature, in case order; the first few inputs of each saved for replay. */
async function groupFailures(o: CampaignOptions, failed: CaseResult[]): Promise<Failure[]> {
  const failures = new Map<string, Failure>();
  const seedCache = new Map<string, Seed[]>();
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'quantlens-fuzz-parent-'));
  try {
    failed.sort((a, b) => a.format.localeCompare(b.format) || a.index - b.index);
    for (const r of failed) {
      let seeds = seedCache.get(r.format);
      if (!seeds) seedCache.set(r.format, (seeds = await targetByName(r.format).seeds(mkdtempSync(path.join(scratch, `${r.format}-`)))));
      const sig = signatureOf(r);
      let f = failures.get(sig);
      const desc = describeCase(seeds, o.runSeed, r);
      if (!f) failures.set(sig, (f = { signature: sig, count: 0, example: r, desc, variants: [], saved: [] }));
      f.count++;
      const variant = desc.slice(0, 2).join(' | ').replace(/\d+/g, 'N').slice(0, 160);
      if (f.variants.length < 5 && !f.variants.includes(variant)) f.variants.push(variant);
      if (o.saveDir && f.saved.length < (o.savePerSignature ?? 3) && r.error?.name !== 'FuzzerError') f.saved.push(saveCase(o.saveDir, seeds, o.runSeed, r, sig));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return [...failures.values()];
}

/** The case's mutation, or why it cannot be rebuilt (a FuzzerError: the mutator itself threw). */
function describeCase(seeds: Seed[], runSeed: number, r: CaseResult): string[] {
  try {
    return makeCase(seeds, runSeed, r.format, r.index).desc;
  } catch (e) {
    return [`(case cannot be rebuilt: ${String(e)})`];
  }
}

/** Write a failing case's files and a case.json (how to replay it, what happened) to its own folder. */
function saveCase(root: string, seeds: Seed[], runSeed: number, r: CaseResult, signature: string): string {
  const c = makeCase(seeds, runSeed, r.format, r.index);
  const dir = path.join(root, `${r.format}-s${runSeed}-c${r.index}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of c.files) writeFileSync(path.join(dir, name), bytes);
  const replay = `npm run fuzz -- --format ${r.format} --seed ${runSeed} --case ${r.index}`;
  const meta = { format: r.format, runSeed, index: r.index, caseSeed: caseSeed(runSeed, r.format, r.index), open: c.seed.open, mutation: c.desc, kind: r.kind, signature, error: r.error, replay };
  writeFileSync(path.join(dir, 'case.json'), JSON.stringify(meta, null, 2));
  return dir;
}

/** The per-format table. */
export function formatTable(rows: readonly FormatRow[]): string {
  const head = ['format', 'cases', 'ok', 'clean errors', 'located %', 'crashes', 'hangs', 'huge alloc', 'peak RSS MiB', 'time s', 'slowest ms'];
  const body = rows.map((r) => [
    r.format, String(r.cases), String(r.ok), String(r.clean), r.clean ? ((100 * r.located) / r.clean).toFixed(1) : '-',
    String(r.crashes), String(r.hangs), String(r.memory), r.peakRssMiB.toFixed(0), r.seconds.toFixed(1), r.slowestMs.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
