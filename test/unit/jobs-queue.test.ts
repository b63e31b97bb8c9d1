import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobQueue } from '../../server/src/jobs/queue';

/** A job that finishes when its `release` is called, recording start/end into `log`. */
function gate(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return { release, run: async () => (log.push(`start ${name}`), await done, log.push(`end ${name}`), name) };
}

describe('job queue', () => {
  it('runs one job at a time in order and tells waiting jobs their place', async () => {
    const q = new JobQueue();
    const log: string[] = [];
    const places: Record<string, number[]> = { b: [], c: [] };
    const a = gate(log, 'a');
    const b = gate(log, 'b');
    const c = gate(log, 'c');
    const pa = q.add({ run: a.run });
    const pb = q.add({ run: b.run, onWait: (n) => places.b.push(n) });
    const pc = q.add({ run: c.run, onWait: (n) => places.c.push(n) });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, ['start a']);
    assert.equal(q.pending, 2);
    a.release();
    assert.equal(await pa, 'a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, ['start a', 'end a', 'start b']);
    b.release();
    c.release();
    assert.deepEqual(await Promise.all([pb, pc]), ['b', 'c']);
    assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    assert.deepEqual(places, { b: [1, 1, 0], c: [2, 1, 0] });
    assert.equal(q.busy, false);
  });

  it('a job cancelled while waiting never runs; a failed job does not stop the queue', async () => {
    const q = new JobQueue();
    const log: string[] = [];
    const a = gate(log, 'a');
    const pa = q.add({ run: a.run });
    const ac = new AbortController();
    const pb = q.add({ run: async () => (log.push('b ran'), 'b'), signal: ac.signal });
    const pc = q.add({ run: async () => Promise.reject(new Error('c failed')) });
    const pd = q.add({ run: async () => 'd' });
    ac.abort(new Error('cancelled b'));
    await assert.rejects(pb, /cancelled b/);
    assert.equal(q.pending, 2);
    a.release();
    await pa;
    await assert.rejects(pc, /c failed/);
    assert.equal(await pd, 'd');
    assert.ok(!log.includes('b ran'));
  });
});
