// Pattern synthesis: names → compact exact regexes / fnmatch wildcards (expected strings written by hand).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exactRegex, fnmatch, pieces, pythonMatch } from '../../server/src/export/patterns';

const U = ['a.0.x.w', 'a.0.y.w', 'a.1.x.w', 'a.1.y.w', 'a.2.x.w', 'a.2.y.w', 'head.w'];
const search = (p: string) => (n: string) => new RegExp(p).test(n);

test('names differing only in the block number fold to \\d+ when every block is covered', () => {
  assert.deepEqual(pieces(['a.0.x.w', 'a.1.x.w', 'a.2.x.w'], U), [{ pre: 'a', blocks: 'all', posts: ['x.w'] }]);
  assert.equal(exactRegex(['a.0.x.w', 'a.1.x.w', 'a.2.x.w'], U, search), '^a\\.\\d+\\.x\\.w$');
  assert.equal(exactRegex(['a.0.x.w', 'a.0.y.w', 'a.1.x.w', 'a.1.y.w', 'a.2.x.w', 'a.2.y.w'], U, search), '^a\\.\\d+\\.(?:x|y)\\.w$');
});

test('a subset of blocks is listed; unrelated names are alternatives', () => {
  assert.equal(exactRegex(['a.0.x.w', 'a.2.x.w', 'head.w'], U, search), '^(?:a\\.(?:0|2)\\.x\\.w|head\\.w)$');
});

test('when the compact form selects more than asked, the explicit list is used', () => {
  // Under a "matches everything" rule no compact form is exact: the names are listed.
  assert.equal(exactRegex(['a.0.x.w'], U, (p) => () => p.length > 0 && !p.includes('(?:')), '^a\\.0\\.x\\.w$');
  assert.equal(exactRegex(['a.0.x.w', 'head.w'], ['a.0.x.w', 'head.w', 'other'], () => () => false), '^(?:a\\.0\\.x\\.w|head\\.w)$');
});

test('python re.match anchors the start only; fnmatch * crosses dots', () => {
  assert.equal(pythonMatch('a\\.0')('a.0.x.w'), true);
  assert.equal(pythonMatch('0\\.x')('a.0.x.w'), false);
  assert.equal(fnmatch('a.*.w')('a.0.x.w'), true);
  assert.equal(fnmatch('a.?.x.w')('a.1.x.w'), true);
  assert.equal(fnmatch('a.[!0].x.w')('a.0.x.w'), false);
  assert.equal(fnmatch('a.*.w')('b.0.w'), false);
});
