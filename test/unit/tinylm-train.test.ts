// Training of the tiny LM (a tiny config, 200 steps: the loss falls), the count-based baselines against
// perplexities worked out by hand, the schedule, the batches, the corpus split and the perplexity evaluation.
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { rng } from '../../server/src/random';
import { baselinePerplexities } from '../../server/src/tinylm/baselines';
import { initWeights, TINY_LLAMA, type TinyLlamaConfig } from '../../server/src/tinylm/config';
import { loadCorpus } from '../../server/src/tinylm/corpus';
import { evaluationWindows, modelPerplexity } from '../../server/src/tinylm/perplexity';
import { DEFAULT_TRAIN, learningRate, sampleBatch, trainTinyLm } from '../../server/src/tinylm/train';
import { tempDir } from '../fixtures/common';

const TINY: TinyLlamaConfig = { ...TINY_LLAMA, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, maxPositions: 16 };
const bytes = (s: string) => new TextEncoder().encode(s);

test('unigram and bigram baselines give the hand-computed perplexities', () => {
  // Train "aab": c(a) = 2, c(b) = 1 of 3 bytes; add-one over 256 bytes → p(a) = 3/259, p(b) = 2/259.
  // Bigram (Witten–Bell): after 'a' the pairs aa, ab (2 seen, 2 distinct): p(b|a) = (1 + 2·2/259)/(2 + 2) = 263/1036;
  // nothing follows 'b' in training → p(a|b) = p(a) = 3/259. Held-out "aba" predicts b from a, then a from b.
  const r = baselinePerplexities(bytes('aab'), bytes('aba'));
  assert.ok(Math.abs(r.unigram - 259 / Math.sqrt(6)) < 1e-9, `unigram ${r.unigram}`);
  assert.ok(Math.abs(r.bigram - Math.sqrt((1036 / 263) * (259 / 3))) < 1e-9, `bigram ${r.bigram}`);
});

test('learning-rate schedule: linear warm-up, cosine to the floor', () => {
  const o = { steps: 110, lr: 2e-3, minLrRatio: 0.1, warmupSteps: 10 };
  assert.ok(Math.abs(learningRate(0, o) - 2e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(9, o) - 2e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(10, o) - 2e-3) < 1e-12);
  // Halfway through the cosine: floor + (peak − floor)/2.
  assert.ok(Math.abs(learningRate(10 + 99 / 2, o) - 1.1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(109, o) - 2e-4) < 1e-12);
});

test('batches are windows of the text with labels shifted by one', () => {
  const text = Uint8Array.from({ length: 100 }, (_, i) => i);
  const { ids, labels } = sampleBatch(text, 4, 10, rng(3));
  for (let b = 0; b < 4; b++) {
    const s = Number(ids[b * 10]);
    assert.ok(s >= 0 && s <= 90);
    for (let t = 0; t < 10; t++) {
      assert.equal(ids[b * 10 + t], BigInt(s + t));
      assert.equal(labels[b * 10 + t], BigInt(s + t + 1));
    }
  }
});

test('corpus split: every 10th chapter held out; bad chapter files are located errors', async () => {
  const real = await loadCorpus();
  assert.deepEqual(real.heldoutChapters, ['10', '20', '30', '40', '50', '60', '70', '80', '90', '100', '110', '120', '130']);
  assert.equal(real.trainChapters.length, 135 - 13 + 1);
  assert.equal(new TextDecoder().decode(real.train.subarray(0, 16)), 'Call me Ishmael.');
  const { dir, cleanup } = tempDir();
  try {
    await fsp.writeFile(path.join(dir, 'chapter_3.json'), JSON.stringify({ chapter: '3', title: '', text: 'three' }));
    await fsp.writeFile(path.join(dir, 'chapter_20.json'), JSON.stringify({ chapter: '20', title: '', text: 'twenty' }));
    await fsp.writeFile(path.join(dir, 'chapter_1.json'), JSON.stringify({ chapter: '1', title: '', text: 'one' }));
    const c = await loadCorpus(dir);
    assert.equal(new TextDecoder().decode(c.train), 'one\n\nthree');
    assert.equal(new TextDecoder().decode(c.heldout), 'twenty');
    await fsp.writeFile(path.join(dir, 'chapter_4.json'), '{"chapter": 4}');
    await assert.rejects(loadCorpus(dir), (e: unknown) => e instanceof QuantLensError && /chapter_4\.json.*expected \{chapter, title, text\}/.test(e.message));
  } finally {
    cleanup();
  }
  await assert.rejects(loadCorpus(path.join(dir, 'missing')), QuantLensError);
});

test('a model with a zero lm_head predicts uniformly: perplexity = vocabulary size', async () => {
  const w = initWeights(TINY, 2);
  w.get('lm_head.weight')!.data.fill(0);
  const windows = evaluationWindows(bytes('the whale, the whale, the white whale'), 8);
  assert.equal(windows.rows, 4);
  assert.equal(windows.length, 9);
  const r = await modelPerplexity(TINY, w, windows);
  assert.equal(r.tokens, 4 * 8);
  assert.ok(Math.abs(r.perplexity - TINY.vocabSize) < 1e-3, `perplexity ${r.perplexity}`);
});

test('200 training steps of a tiny config lower the loss steadily and beat the unigram baseline', async () => {
  const corpus = await loadCorpus();
  const train = corpus.train.subarray(0, 200_000);
  const steps = 200;
  const r = await trainTinyLm(TINY, initWeights(TINY, 5), train, { ...DEFAULT_TRAIN, steps, seed: 5, batch: 8, seqLen: 16, warmupSteps: 10, providers: ['cpu'], threads: 1 });
  const losses = r.steps.map((s) => s.loss);
  assert.equal(losses.length, steps);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const block = (k: number) => losses.slice(k * 20, k * 20 + 20);
  const blocks = Array.from({ length: 10 }, (_, k) => mean(block(k)));
  const variance = (k: number) => mean(block(k).map((x) => (x - blocks[k]) ** 2));
  // ln 258 ≈ 5.55 at the start; a byte model that learned the letter statistics is below ~3.
  assert.ok(blocks[0] - blocks[9] > 1.5, `first 20 steps ${blocks[0]}, last 20 ${blocks[9]}`);
  // Non-increasing within noise: no 20-step mean exceeds the previous one by 3 standard errors of their difference.
  for (let k = 1; k < blocks.length; k++) {
    const noise = 3 * Math.sqrt((variance(k) + variance(k - 1)) / 20);
    assert.ok(blocks[k] <= blocks[k - 1] + noise, `20-step means rose beyond noise (${noise.toFixed(3)}): ${blocks.map((b) => b.toFixed(3)).join(' ')}`);
  }
  const held = corpus.heldout.subarray(0, 4 * 16 + 1);
  const ppl = await modelPerplexity(TINY, r.weights, evaluationWindows(held, 16));
  const base = baselinePerplexities(train, held);
  assert.ok(ppl.perplexity < base.unigram, `model ${ppl.perplexity} vs unigram ${base.unigram}`);
});
