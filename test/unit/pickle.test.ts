// The pickle VM against hand-written opcode streams (byte values from the pickle spec / pickletools).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { MAX_PICKLE_DEPTH, unpickle, type PickleValue, type TensorRef } from '../../server/src/formats/pickle';
import { tempDir } from '../fixtures/common';

type Part = number | string | readonly number[] | Uint8Array;

/** Concatenate opcode bytes: numbers are bytes, strings are latin-1 characters. */
function seq(...parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const u64 = (n: bigint) => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const utf8 = (s: string) => [...new TextEncoder().encode(s)];
/** BINUNICODE (X, u32 length, UTF-8). */
const X = (s: string) => seq('X', u32(utf8(s).length), utf8(s));
/** SHORT_BINUNICODE (0x8c, u8 length, UTF-8). */
const S = (s: string) => seq(0x8c, utf8(s).length, utf8(s));
/** GLOBAL (c module\nname\n). */
const G = (module: string, name: string) => seq('c', `${module}\n${name}\n`);

const PROTO2 = [0x80, 2];
const PROTO4 = [0x80, 4];
const STOP = '.';
const MARK = '(';
const REDUCE = 'R';
const EMPTY_TUPLE = ')';
const TUPLE1 = 0x85;
const BINPERSID = 'Q';

const FILE = '/models/evil.pt';
const BASE = 1000;

const run = (bytes: Uint8Array): PickleValue => unpickle(bytes, { file: FILE, label: 'archive/data.pkl', base: BASE }).value;

/** Expect a located refusal: code, message parts, and the absolute offset of the opcode at `at`. */
function refused(bytes: Uint8Array, code: string, parts: string[], at: number): void {
  assert.throws(
    () => run(bytes),
    (e: unknown) => {
      assert.ok(e instanceof QuantLensError, `expected a QuantLensError, got ${String(e)}`);
      assert.equal(e.code, code, e.message);
      assert.equal(e.where.file, FILE);
      assert.equal(e.where.offset, BASE + at, e.message);
      assert.ok(e.message.includes(`archive/data.pkl byte ${at}`), e.message);
      for (const p of parts) assert.ok(e.message.includes(p), `message should contain ${JSON.stringify(p)}: ${e.message}`);
      return true;
    },
  );
}

test('scalars, strings and bytes decode to hand-computed values', () => {
  const bytes = seq(
    PROTO2, ']', MARK,
    0x4b, 255, // BININT1
    0x4d, 0xcd, 0xab, // BININT2 0xabcd
    'J', 0xfe, 0xff, 0xff, 0xff, // BININT -2
    0x8a, 0, // LONG1 of zero bytes = 0
    0x8a, 2, 0x00, 0x80, // LONG1 -32768
    0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, // LONG1 2^64
    0x8b, u32(1), 0x7f, // LONG4 127
    'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, // BINFLOAT 1.5 (big-endian)
    'N', 0x88, 0x89, // None, True, False
    X('héllo'), S('a'), 0x8d, u64(2n), 'xy', // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
    'B', u32(3), 1, 2, 3, 'C', 0, // BINBYTES, SHORT_BINBYTES
    'U', 2, 'ab', 'T', u32(1), 0xe9, // SHORT_BINSTRING, BINSTRING (latin-1)
    'e', STOP, // APPENDS
  );
  assert.deepEqual(run(bytes), [
    255, 0xabcd, -2, 0, -32768, 18446744073709551616n, 127, 1.5, null, true, false,
    'héllo', 'a', 'xy', Uint8Array.of(1, 2, 3), new Uint8Array(0), 'ab', 'é',
  ]);
});

test('containers, memo and stack opcodes (protocol 4 with FRAME)', () => {
  const body = seq(
    '}', 0x94, // EMPTY_DICT, MEMOIZE → memo 0
    MARK,
    S('t1'), 'K', 1, TUPLE1,
    S('t2'), 'K', 1, 'K', 2, 0x86,
    S('t3'), 'K', 1, 'K', 2, 'K', 3, 0x87,
    S('t4'), MARK, 'K', 1, 'K', 2, 'K', 3, 'K', 4, 't',
    S('e'), EMPTY_TUPLE,
    S('l'), MARK, 'K', 9, 'l', // LIST
    S('d'), MARK, S('k'), 'K', 7, 'd', // DICT
    S('s'), 0x8f, MARK, 'K', 5, 'K', 5, 'K', 6, 0x90, // EMPTY_SET, ADDITEMS
    S('f'), MARK, 'K', 8, 0x91, // FROZENSET
    S('self'), 'h', 0, // BINGET 0: the dict itself
    S('self2'), 'j', u32(0), // LONG_BINGET 0
    S('dup'), 'K', 3, '2', '0', // DUP then POP
    S('pm'), 'K', 4, MARK, 'K', 99, 'K', 98, '1', // POP_MARK drops 99, 98
    'u', // SETITEMS
    S('one'), 'K', 1, 's', // SETITEM
    STOP,
  );
  const bytes = seq(PROTO4, 0x95, u64(BigInt(body.length)), body);
  const d = run(bytes) as Map<PickleValue, PickleValue>;
  assert.ok(d instanceof Map);
  assert.deepEqual([...d.keys()], ['t1', 't2', 't3', 't4', 'e', 'l', 'd', 's', 'f', 'self', 'self2', 'dup', 'pm', 'one']);
  assert.deepEqual(d.get('t1'), [1]);
  assert.deepEqual(d.get('t2'), [1, 2]);
  assert.deepEqual(d.get('t3'), [1, 2, 3]);
  assert.deepEqual(d.get('t4'), [1, 2, 3, 4]);
  assert.deepEqual(d.get('e'), []);
  assert.deepEqual(d.get('l'), [9]);
  assert.deepEqual(d.get('d'), new Map([['k', 7]]));
  assert.deepEqual(d.get('s'), new Set([5, 6]));
  assert.deepEqual(d.get('f'), new Set([8]));
  assert.equal(d.get('self'), d);
  assert.equal(d.get('self2'), d);
  assert.equal(d.get('dup'), 3);
  assert.equal(d.get('pm'), 4);
  assert.equal(d.get('one'), 1);
  assert.ok(Object.isFrozen(d.get('t2')), 'tuples are frozen');
  assert.equal(unpickle(bytes, { file: FILE }).protocol, 4);
});

test('OrderedDict via STACK_GLOBAL, REDUCE and BUILD (attributes are not items)', () => {
  const bytes = seq(
    PROTO4, S('collections'), S('OrderedDict'), 0x93, EMPTY_TUPLE, REDUCE,
    MARK, S('a'), 'K', 1, S('b'), 'K', 2, 'u',
    '}', S('_metadata'), '}', 's', 'b', // BUILD with {'_metadata': {}}
    STOP,
  );
  assert.deepEqual(run(bytes), new Map([['a', 1], ['b', 2]]));
});

test('torch rebuilders produce tensor records; set and _codecs.encode are data', () => {
  const pid = seq(MARK, X('storage'), G('torch', 'HalfStorage'), X('7'), X('cuda:0'), 'K', 12, 't', BINPERSID);
  const od = seq(G('collections', 'OrderedDict'), EMPTY_TUPLE, REDUCE);
  const v2 = seq(G('torch._utils', '_rebuild_tensor_v2'), MARK, pid, 'K', 2, 'K', 2, 'K', 5, 0x86, 'K', 5, 'K', 1, 0x86, 0x88, od, 't', REDUCE);
  const tensor: TensorRef = {
    kind: 'tensor',
    storage: { kind: 'storage', type: 'HalfStorage', key: '7', location: 'cuda:0', numel: 12 },
    dtype: 'float16',
    offset: 2,
    size: [2, 5],
    stride: [5, 1],
    requiresGrad: true,
    parameter: false,
  };
  assert.deepEqual(run(seq(PROTO2, v2, STOP)), tensor);

  const param = seq(PROTO2, G('torch._utils', '_rebuild_parameter'), v2, 0x89, od, 0x87, REDUCE, STOP);
  assert.deepEqual(run(param), { ...tensor, parameter: true, requiresGrad: false });

  const untyped = seq(MARK, X('storage'), G('torch', 'UntypedStorage'), X('0'), X('cpu'), 'K', 4, 't', BINPERSID);
  const v3 = seq(PROTO2, G('torch._utils', '_rebuild_tensor_v3'), MARK, untyped, 'K', 0, 'K', 4, TUPLE1, 'K', 1, TUPLE1, 0x89, od, G('torch', 'float8_e5m2'), 't', REDUCE, STOP);
  const r3 = run(v3) as TensorRef;
  assert.equal(r3.dtype, 'float8_e5m2');
  assert.deepEqual([r3.storage.type, r3.storage.numel, r3.size, r3.stride], ['UntypedStorage', 4, [4], [1]]);

  const legacy = seq(PROTO2, G('torch._utils', '_rebuild_tensor'), MARK, pid, 'K', 0, 'K', 12, TUPLE1, 'K', 1, TUPLE1, 't', REDUCE, STOP);
  assert.deepEqual((run(legacy) as TensorRef).size, [12]);

  assert.deepEqual(run(seq(PROTO2, G('_codecs', 'encode'), X('ab\u00ff'), X('latin1'), 0x86, REDUCE, STOP)), Uint8Array.of(0x61, 0x62, 0xff));
  assert.deepEqual(run(seq(PROTO2, G('__builtin__', 'set'), ']', MARK, 'K', 1, 'K', 2, 'e', TUPLE1, REDUCE, STOP)), new Set([1, 2]));
});

// ---------------------------------------------------------------------------------------------
// Security: every global outside the allow-list is refused where it is named, before anything else.

const FORBIDDEN: [string, string][] = [
  ['os', 'system'],
  ['posix', 'system'],
  ['nt', 'system'],
  ['builtins', 'eval'],
  ['builtins', 'exec'],
  ['builtins', 'getattr'],
  ['builtins', '__import__'],
  ['__builtin__', 'eval'],
  ['subprocess', 'Popen'],
  ['subprocess', 'call'],
  ['numpy.core.multiarray', '_reconstruct'],
  ['torch.storage', '_load_from_bytes'],
  ['torch', 'load'],
  ['torch.serialization', 'load'],
  ['torch._utils', '_rebuild_tensor_v2 '],
  ['collections', 'OrderedDict.__class__'],
  ['copyreg', '_reconstructor'],
  // JavaScript prototype names must not slip through the allow-list lookups.
  ['torch', '__proto__'],
  ['torch', 'constructor'],
  ['torch', 'toString'],
  ['torch', 'hasOwnProperty'],
];

for (const [module, name] of FORBIDDEN) {
  test(`forbidden global ${module}.${name}: GLOBAL + REDUCE refused at the GLOBAL`, () => {
    refused(seq(PROTO2, G(module, name), X('touch /tmp/x'), TUPLE1, REDUCE, STOP), 'forbidden-global', [`forbidden pickle global ${module}.${name}`], 2);
  });
}

test('a whole pickled model (torch.save(model)) is refused with a hint to save the state_dict', () => {
  refused(seq(PROTO2, G('torch.nn.modules.linear', 'Linear'), ')', 0x81, STOP), 'forbidden-global', [
    'forbidden pickle global torch.nn.modules.linear.Linear',
    'save model.state_dict() instead',
  ], 2);
});

test('forbidden globals through STACK_GLOBAL: inline, memoized and protocol-2 strings', () => {
  refused(seq(PROTO4, S('os'), S('system'), 0x93, S('id'), TUPLE1, REDUCE, STOP), 'forbidden-global', ['forbidden pickle global os.system'], 2 + 4 + 8);
  // Names fetched back from the memo.
  const memo = seq(PROTO4, S('builtins'), 0x94, S('eval'), 0x94, '0', '0', 'h', 0, 'h', 1);
  refused(seq(memo, 0x93, STOP), 'forbidden-global', ['forbidden pickle global builtins.eval'], memo.length);
  const p2 = seq(PROTO2, X('subprocess'), X('Popen'));
  refused(seq(p2, 0x93, STOP), 'forbidden-global', ['forbidden pickle global subprocess.Popen'], p2.length);
  // STACK_GLOBAL needs strings.
  const bad = seq(PROTO4, 'K', 1, S('system'));
  refused(seq(bad, 0x93, STOP), 'bad-pickle', ['STACK_GLOBAL needs two strings'], bad.length);
});

test('NEWOBJ/REDUCE/BUILD apply only allowed constructors', () => {
  // __reduce__-style NEWOBJ of a forbidden class: refused where the class is named.
  refused(seq(PROTO2, G('subprocess', 'Popen'), EMPTY_TUPLE, 0x81, STOP), 'forbidden-global', ['subprocess.Popen'], 2);
  // An allowed tag is not a class to instantiate or a function to call.
  const tag = seq(PROTO2, G('torch', 'FloatStorage'), EMPTY_TUPLE);
  refused(seq(tag, 0x81, STOP), 'forbidden-call', ['NEWOBJ', 'torch.FloatStorage'], tag.length);
  refused(seq(tag, REDUCE, STOP), 'forbidden-call', ['REDUCE', 'torch.FloatStorage'], tag.length);
  // REDUCE of something that is not a global at all.
  const str = seq(PROTO2, X('os.system'), EMPTY_TUPLE);
  refused(seq(str, REDUCE, STOP), 'forbidden-call', ['REDUCE', '"os.system"'], str.length);
  // BUILD only sets dict attributes.
  const list = seq(PROTO2, ']', '}');
  refused(seq(list, 'b', STOP), 'forbidden-call', ['BUILD', 'list'], list.length);
  // _codecs.encode only as latin-1.
  const enc = seq(PROTO2, G('_codecs', 'encode'), X('x'), X('rot13'), 0x86);
  refused(seq(enc, REDUCE, STOP), 'forbidden-call', ['_codecs.encode', 'latin1'], enc.length);
  // NEWOBJ_EX with keyword arguments.
  const ex = seq(PROTO4, G('collections', 'OrderedDict'), EMPTY_TUPLE, '}', S('k'), 'K', 1, 's');
  refused(seq(ex, 0x92, STOP), 'bad-pickle', ['NEWOBJ_EX keyword arguments'], ex.length);
});

test('opcodes that instantiate by name, use the extension registry or text persistent ids are refused', () => {
  // [what precedes the opcode, the opcode and its operands, its name]
  const cases: [Part[], Part[], string][] = [
    [[], ['i', 'os\nsystem\n'], 'INST (0x69)'],
    [[MARK, G('collections', 'OrderedDict')], ['o'], 'OBJ (0x6f)'],
    [[], [0x82, 1], 'EXT1 (0x82)'],
    [[], [0x83, 1, 0], 'EXT2 (0x83)'],
    [[], [0x84, 1, 0, 0, 0], 'EXT4 (0x84)'],
    [[], ['P', '0\n'], 'PERSID (0x50)'],
    [[], ['I', '1\n'], 'INT (0x49)'],
    [[], [0x97], 'NEXT_BUFFER (0x97)'],
  ];
  for (const [before, op, name] of cases) {
    refused(seq(PROTO2, ...before, ...op, STOP), 'forbidden-opcode', [name, 'not allowed'], seq(PROTO2, ...before).length);
  }
});

test('unknown opcodes are named with their byte value and offset', () => {
  refused(seq(PROTO2, 'K', 1, 0xff, STOP), 'unknown-opcode', ['unknown pickle opcode 0xff'], 4);
  refused(seq(PROTO2, 0x00), 'unknown-opcode', ['0x00'], 2);
  refused(seq(0x80, 6, STOP), 'bad-pickle', ['protocol 6'], 0);
  refused(seq(0x80, 1, STOP), 'bad-pickle', ['protocol 1'], 0);
});

test('memo: a huge index is refused, an unset index is refused', () => {
  refused(seq(PROTO2, 'N', 'r', 0xff, 0xff, 0xff, 0xff, STOP), 'memo-limit', ['memo index 4294967295'], 3);
  refused(seq(PROTO2, 'h', 5, STOP), 'bad-pickle', ['memo index 5 was never stored'], 2);
  refused(seq(PROTO2, 'j', u32(70000), STOP), 'bad-pickle', ['memo index 70000'], 2);
});

test(`nesting: 100 000 MARKs are refused at MARK number ${MAX_PICKLE_DEPTH + 1}`, () => {
  const marks = new Uint8Array(100_000).fill(0x28);
  refused(seq(PROTO2, marks, STOP), 'too-deep', [`deeper than ${MAX_PICKLE_DEPTH}`], 2 + MAX_PICKLE_DEPTH);
  // Exactly the limit is fine.
  const ok = seq(PROTO2, new Uint8Array(MAX_PICKLE_DEPTH).fill(0x28), new Uint8Array(MAX_PICKLE_DEPTH).fill(0x6c), STOP);
  let v = run(ok);
  let depth = 0;
  while (Array.isArray(v) && v.length > 0) {
    v = v[0];
    depth++;
  }
  assert.equal(depth, MAX_PICKLE_DEPTH - 1);
});

test('truncated streams are refused without allocating the declared sizes', () => {
  refused(seq(PROTO2, 'X', u32(10), 'abc'), 'truncated', ['ended inside BINUNICODE', '10 bytes needed, 3 left'], 2);
  refused(seq(PROTO2, 'X', u32(0xffffffff), STOP), 'truncated', ['4294967295 bytes needed'], 2);
  refused(seq(PROTO4, 0x8e, u64(1n << 62n), STOP), 'truncated', ['BINBYTES8'], 2);
  refused(seq(PROTO4, 0x95, u64(1000n), 'N', STOP), 'truncated', ['FRAME declares 1000 bytes'], 2);
  refused(seq(PROTO2, 'c', 'os'), 'truncated', ['inside GLOBAL module'], 2);
  refused(seq(PROTO2, 'J', 1, 2), 'truncated', ['BININT'], 2);
  refused(seq(PROTO2, 'N'), 'truncated', ['without a STOP'], 3);
  refused(seq(PROTO2, 0x8b, u32(1 << 30), STOP), 'bad-pickle', ['LONG4 of 1073741824 bytes'], 2);
});

test('stack underflow and misuse are refused', () => {
  refused(seq(PROTO2, REDUCE, STOP), 'stack-underflow', ['REDUCE needs 1 item'], 2);
  refused(seq(PROTO2, 'K', 1, 'K', 2, 0x87, STOP), 'stack-underflow', ['TUPLE3 needs 3'], 6);
  refused(seq(PROTO2, ']', MARK, 'K', 1, 'a', STOP), 'stack-underflow', ['APPEND needs 1 item(s) above the last MARK'], 6);
  refused(seq(PROTO2, 't', STOP), 'stack-underflow', ['TUPLE without a matching MARK'], 2);
  refused(seq(PROTO2, STOP), 'stack-underflow', ['STOP'], 2);
  refused(seq(PROTO2, EMPTY_TUPLE, 'K', 1, 'a', STOP), 'bad-pickle', ['APPEND needs a list', 'tuple'], 5);
  refused(seq(PROTO2, '}', MARK, 'K', 1, 'u', STOP), 'bad-pickle', ['key/value pairs'], 6);
  refused(seq(PROTO2, ']', 'K', 1, 'K', 2, 's', STOP), 'bad-pickle', ['SETITEM needs a dict'], 7);
});

test('malformed torch records are refused', () => {
  const pid = (type: Part, numel: Part) => seq(MARK, X('storage'), type, X('0'), X('cpu'), numel, 't');
  const bad1 = seq(PROTO2, pid(X('FloatStorage'), seq('K', 4)));
  refused(seq(bad1, BINPERSID, STOP), 'bad-pickle', ['storage type must be a torch storage class'], bad1.length);
  const bad2 = seq(PROTO2, pid(G('torch', 'FloatStorage'), seq('J', u32(0xffffffff))));
  refused(seq(bad2, BINPERSID, STOP), 'bad-pickle', ['numel must be a non-negative integer', '-1'], bad2.length);
  const bad3 = seq(PROTO2, X('module'), TUPLE1);
  refused(seq(bad3, BINPERSID, STOP), 'bad-pickle', ["('storage', type, key, location, numel)"], bad3.length);
  const good = pid(G('torch', 'FloatStorage'), seq('K', 4));
  const args = (size: Part, stride: Part) => seq(G('torch._utils', '_rebuild_tensor_v2'), MARK, good, BINPERSID, 'K', 0, size, stride, 0x89, '}', 't');
  const neg = seq(PROTO2, args(seq('J', u32(0xfffffffe), TUPLE1), seq('K', 1, TUPLE1)));
  refused(seq(neg, REDUCE, STOP), 'bad-pickle', ['size must be a tuple', 'non-negative'], neg.length);
  const mismatch = seq(PROTO2, args(seq('K', 2, 'K', 2, 0x86), seq('K', 1, TUPLE1)));
  refused(seq(mismatch, REDUCE, STOP), 'bad-pickle', ['size has 2 dims but stride has 1'], mismatch.length);
  const untyped = seq(PROTO2, G('torch._utils', '_rebuild_tensor_v2'), MARK, pid(G('torch', 'UntypedStorage'), seq('K', 4)), BINPERSID, 'K', 0, 'K', 4, TUPLE1, 'K', 1, TUPLE1, 0x89, '}', 't');
  refused(seq(untyped, REDUCE, STOP), 'bad-pickle', ['UntypedStorage needs _rebuild_tensor_v3'], untyped.length);
});

test('no side effects: pickles that would create a marker file are refused and the file never appears', () => {
  const { dir, cleanup } = tempDir('quantlens-pickle-');
  try {
    const marker = path.join(dir, 'pwned');
    const cmd = `touch ${marker}`;
    const attempts = [
      seq(PROTO2, G('os', 'system'), X(cmd), TUPLE1, REDUCE, STOP),
      seq(PROTO2, G('posix', 'system'), X(cmd), TUPLE1, REDUCE, STOP),
      seq(PROTO4, S('subprocess'), S('call'), 0x93, S('touch'), S(marker), 0x86, TUPLE1, REDUCE, STOP),
      seq(PROTO2, G('builtins', 'exec'), X(`open(${JSON.stringify(marker)}, 'w').close()`), TUPLE1, REDUCE, STOP),
      seq(PROTO2, 'i', 'os\nsystem\n', X(cmd), STOP),
      seq(PROTO2, MARK, G('os', 'system'), X(cmd), 'o', STOP),
    ];
    for (const bytes of attempts) {
      assert.throws(() => run(bytes), QuantLensError);
      assert.equal(existsSync(marker), false);
    }
  } finally {
    cleanup();
  }
});
