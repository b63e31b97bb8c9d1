import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { characterErrorRate, editDistance } from '../../server/src/eval/cer';
import { QuantLensError } from '../../server/src/formats/errors';

describe('edit distance', () => {
  it('counts insertions, deletions and substitutions', () => {
    assert.equal(editDistance('abc', 'abc'), 0);
    assert.equal(editDistance('abc', 'abxc'), 1); // insertion
    assert.equal(editDistance('abc', 'ac'), 1); // deletion
    assert.equal(editDistance('abc', 'abd'), 1); // substitution
    assert.equal(editDistance('kitten', 'sitting'), 3); // k→s, e→i, +g
    assert.equal(editDistance('flaw', 'lawn'), 2); // −f, +n
    assert.equal(editDistance('abcd', 'dcba'), 4);
  });

  it('handles empty strings', () => {
    assert.equal(editDistance('', ''), 0);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('abc', ''), 3);
  });

  it('works on code points, not UTF-16 units', () => {
    assert.equal(editDistance('\u7597a', 'a'), 1);
    assert.equal(editDistance('x\u{1F600}y', 'xy'), 1); // one astral character = two UTF-16 units
  });
});

describe('character error rate', () => {
  it('sums errors and reference lengths over the set', () => {
    // 1 substitution in 'hello' (5), 1 deletion in 'world 42' (8), exact '7' (1): 2 / 14.
    const r = characterErrorRate(['hello', 'world 42', '7'], ['hallo', 'world 2', '7']);
    assert.deepEqual(r, { errors: 2, refChars: 14, cer: 2 / 14 });
  });

  it('can exceed 1 when the reading is much longer', () => {
    assert.deepEqual(characterErrorRate(['ab'], ['xyzab']), { errors: 3, refChars: 2, cer: 1.5 });
  });

  it('empty references: 0 when readings are empty too, Infinity otherwise, and counted in a set', () => {
    assert.deepEqual(characterErrorRate([''], ['']), { errors: 0, refChars: 0, cer: 0 });
    assert.deepEqual(characterErrorRate([''], ['ab']), { errors: 2, refChars: 0, cer: Infinity });
    assert.deepEqual(characterErrorRate(['', 'abcd'], ['x', 'abcd']), { errors: 1, refChars: 4, cer: 0.25 });
    assert.deepEqual(characterErrorRate([], []), { errors: 0, refChars: 0, cer: 0 });
  });

  it('trim ignores margin spaces; ignoreSpace drops every space', () => {
    assert.equal(characterErrorRate(['ab cd'], [' ab cd ']).errors, 2);
    assert.deepEqual(characterErrorRate(['ab cd'], [' ab cd '], { trim: true }), { errors: 0, refChars: 5, cer: 0 });
    assert.deepEqual(characterErrorRate(['ab cd'], ['abc d'], { trim: true }), { errors: 2, refChars: 5, cer: 0.4 });
    assert.deepEqual(characterErrorRate(['ab cd'], ['abc d'], { ignoreSpace: true }), { errors: 0, refChars: 4, cer: 0 });
  });

  it('rejects lists of different lengths', () => {
    assert.throws(() => characterErrorRate(['a', 'b'], ['a'], { file: 'labels.json' }), (e: unknown) => e instanceof QuantLensError && e.where.file === 'labels.json' && /expected as many readings as references \(2\), found 1/.test(e.message));
  });
});
