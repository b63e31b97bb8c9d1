// The client's restart policy for a dead language server (client/src/restart.ts): restarts while fewer than `max`
// happened within the window, then gives up; old crashes age out; a manual restart starts a fresh count.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RestartPolicy } from '../../client/src/restart';

const MIN = 60_000;

test('four restarts within three minutes, the fifth crash stops', () => {
  const p = new RestartPolicy(4, 3 * MIN);
  const t0 = 1_000_000;
  assert.deepEqual([0, 10, 20, 30].map((s) => p.crashed(t0 + s * 1000)), [
    { restart: true, crashes: 1 },
    { restart: true, crashes: 2 },
    { restart: true, crashes: 3 },
    { restart: true, crashes: 4 },
  ]);
  assert.deepEqual(p.crashed(t0 + 40_000), { restart: false, crashes: 5 });
});

test('crashes older than the window no longer count', () => {
  const p = new RestartPolicy(2, 3 * MIN);
  assert.equal(p.crashed(0).restart, true);
  assert.equal(p.crashed(MIN).restart, true);
  // At 3 min the first crash (t = 0) is exactly one window old: out; the one at 1 min still counts.
  assert.deepEqual(p.crashed(3 * MIN), { restart: true, crashes: 2 });
  assert.deepEqual(p.crashed(3 * MIN + 1), { restart: false, crashes: 3 });
  // Long after: a single crash again.
  assert.deepEqual(p.crashed(20 * MIN), { restart: true, crashes: 1 });
});

test('a manual restart resets the count', () => {
  const p = new RestartPolicy(1, 3 * MIN);
  assert.equal(p.crashed(0).restart, true);
  assert.equal(p.crashed(1).restart, false);
  p.reset();
  assert.deepEqual(p.crashed(2), { restart: true, crashes: 1 });
});
