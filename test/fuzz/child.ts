// A fuzz worker process: builds the seeds of its formats once, then runs the cases the parent sends
// and reports each outcome with its memory figures. Running in its own process lets the parent kill
// a hung or ballooning case and measure RSS per worker.
import { mkdtempSync } from 'node:fs';
import * as path from 'node:path';
import { makeCase, runCase, writeCase, type Outcome } from './harness';
import type { Seed } from './target';
import { targetByName } from './targets';

export interface ChildInit {
  formats: string[];
  runSeed: number;
  /** This worker's scratch folder (the parent removes it: a killed worker cannot). */
  work: string;
}

export type ToChild = { type: 'case'; format: string; index: number };

export type FromChild =
  | { type: 'ready' }
  | { type: 'result'; format: string; index: number; outcome: Outcome; ms: number; rssBefore: number; rssAfter: number; maxRssBefore: number; maxRssAfter: number }
  | { type: 'stray'; error: string };

const send = (m: FromChild) => process.send!(m);
const maxRss = () => process.resourceUsage().maxRSS * 1024;

async function main(): Promise<void> {
  const init = JSON.parse(process.argv[2]) as ChildInit;
  const work = init.work;
  const seeds = new Map<string, Seed[]>();
  for (const f of init.formats) {
    seeds.set(f, await targetByName(f).seeds(mkdtempSync(path.join(work, `seed-${f}-`))));
  }

  // An exception that escapes a case (an emitter's 'error' with no listener, a stray rejection)
  // is charged to the case in flight, or reported on its own.
  let fail: ((e: unknown) => void) | undefined;
  const stray = (e: unknown) => (fail ? fail(e) : send({ type: 'stray', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);

  process.on('message', (m: ToChild) => {
    void runOne(m).catch((e: unknown) => {
      // The fuzzer itself failed (building or writing the case): report it rather than time out.
      const error = { name: 'FuzzerError', message: String(e instanceof Error ? e.message : e), stack: e instanceof Error ? e.stack : undefined };
      send({ type: 'result', format: m.format, index: m.index, outcome: { kind: 'crash', error }, ms: 0, rssBefore: 0, rssAfter: 0, maxRssBefore: 0, maxRssAfter: 0 });
    });
  });

  async function runOne(m: ToChild): Promise<void> {
    const target = targetByName(m.format);
    const c = makeCase(seeds.get(m.format)!, init.runSeed, m.format, m.index);
    const { dir, target: open } = writeCase(path.join(work, 'cases', m.format), c);
    const rssBefore = process.memoryUsage.rss();
    const maxRssBefore = maxRss();
    const t0 = performance.now();
    const outcome = await new Promise<Outcome>((resolve) => {
      fail = (e) => resolve({ kind: 'crash', error: { name: `uncaught ${e instanceof Error ? e.name : typeof e}`, message: String(e instanceof Error ? e.message : e), stack: e instanceof Error ? e.stack : undefined } });
      runCase(target, dir, open).then(resolve, fail);
    });
    fail = undefined;
    const ms = performance.now() - t0;
    send({ type: 'result', format: m.format, index: m.index, outcome, ms, rssBefore, rssAfter: process.memoryUsage.rss(), maxRssBefore, maxRssAfter: maxRss() });
  }
  send({ type: 'ready' });
}

void main();
