// Result cache: key by file identity + formats + options, checksum-verified entries, atomic writes.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cacheKey, defaultCacheDir, readCache, writeCache } from '../../server/src/analysis/cache';
import { analyzeCheckpoint } from '../../server/src/analysis/engine';
import { DEFAULT_OPTIONS, type AnalysisReport } from '../../server/src/analysis/types';
import { randn, tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

test('cache key follows file identity, formats and options', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'm.safetensors');
    writeFixtureSafetensors(f, tinyLlamaTensors());
    const k = await cacheKey(f, [f], DEFAULT_OPTIONS);
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(await cacheKey(f, [f], { ...DEFAULT_OPTIONS }), k);
    assert.notEqual(await cacheKey(f, [f], { ...DEFAULT_OPTIONS, formats: ['int4_g128_asym'] }), k);
    assert.notEqual(await cacheKey(f, [f], { ...DEFAULT_OPTIONS, sigma: 5 }), k);
    assert.notEqual(await cacheKey(f, [f], { ...DEFAULT_OPTIONS, sample: 0.1 }), k);
    utimesSync(f, new Date(2001, 1, 1), new Date(2001, 1, 1));
    const touched = await cacheKey(f, [f], DEFAULT_OPTIONS);
    assert.notEqual(touched, k, 'mtime is part of the identity');
    writeFixtureSafetensors(f, tinyLlamaTensors().slice(1));
    utimesSync(f, new Date(2001, 1, 1), new Date(2001, 1, 1));
    assert.notEqual(await cacheKey(f, [f], DEFAULT_OPTIONS), touched, 'size is part of the identity');
  } finally {
    cleanup();
  }
});

test('entries round-trip; a corrupt or truncated entry reads as absent; no temp files remain', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const report = { version: 'x', layers: [{ name: 'a', v: 1.5 }] } as unknown as AnalysisReport;
    await writeCache(dir, 'k1', report);
    assert.deepEqual(await readCache(dir, 'k1'), report);
    assert.deepEqual(readdirSync(dir), ['k1.json']);
    const file = path.join(dir, 'k1.json');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('1.5', '2.5')); // same length, different bytes: checksum mismatch
    assert.equal(await readCache(dir, 'k1'), undefined);
    writeFileSync(file, text.slice(0, text.length - 3));
    assert.equal(await readCache(dir, 'k1'), undefined);
    writeFileSync(file, 'garbage');
    assert.equal(await readCache(dir, 'k1'), undefined);
    assert.equal(await readCache(dir, 'missing'), undefined);
  } finally {
    cleanup();
  }
});

test('default cache folder: $XDG_CACHE_HOME/quantlens', () => {
  const saved = process.env.XDG_CACHE_HOME;
  try {
    process.env.XDG_CACHE_HOME = '/somewhere/cache';
    assert.equal(defaultCacheDir(), path.join('/somewhere/cache', 'quantlens'));
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});

test('analyzeCheckpoint: a cached re-run is byte-identical and faster; a corrupt entry is recomputed', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'm.safetensors');
    const tensors = [0, 1, 2, 3].map((i) => ({ name: `model.layers.${i}.mlp.up_proj.weight`, shape: [256, 512], data: randn(256 * 512, i + 1) }));
    writeFixtureSafetensors(f, tensors, 'F16');
    const cacheDir = path.join(dir, 'cache');
    const run = { threads: 0, cacheDir };
    let t0 = performance.now();
    const miss = await analyzeCheckpoint(f, {}, run);
    const missMs = performance.now() - t0;
    assert.equal(miss.cache, 'miss');
    t0 = performance.now();
    const hit = await analyzeCheckpoint(f, {}, run);
    const hitMs = performance.now() - t0;
    assert.equal(hit.cache, 'hit');
    assert.equal(JSON.stringify(hit.report), JSON.stringify(miss.report));
    assert.ok(hitMs * 5 < missMs, `hit ${hitMs.toFixed(0)} ms vs miss ${missMs.toFixed(0)} ms`);

    const [entry] = readdirSync(cacheDir);
    const file = path.join(cacheDir, entry);
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 1;
    writeFileSync(file, bytes);
    const again = await analyzeCheckpoint(f, {}, run);
    assert.equal(again.cache, 'miss', 'corrupt entry recomputed');
    assert.equal(JSON.stringify(again.report), JSON.stringify(miss.report));
    assert.equal((await analyzeCheckpoint(f, {}, run)).cache, 'hit', 'and rewritten');
    assert.equal((await analyzeCheckpoint(f, { sigma: 4 }, run)).cache, 'miss', 'other options, other entry');
    assert.equal((await analyzeCheckpoint(f, {}, { ...run, cacheDir: false })).cache, 'off');
  } finally {
    cleanup();
  }
});
