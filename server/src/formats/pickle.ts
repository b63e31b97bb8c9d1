// A pickle VM for PyTorch checkpoints (protocols 2–5) that never executes anything.
// It interprets the opcode stream as data: GLOBAL/STACK_GLOBAL resolve only against an allow-list of
// inert tags (storage types, dtypes) and a few constructors this module implements itself
// (OrderedDict, set, the torch tensor rebuilders). Every other global, every opcode that would call or
// instantiate arbitrary code (INST, OBJ, EXT*, PERSID text), and every malformed stream is a located
// QuantLensError. The VM is iterative: one step per opcode, every opcode consumes at least one byte,
// so work is linear in the stream length.
import { LIMITS, QuantLensError, type Location } from './errors';
import type { DType } from './types';

/** A reference to an allowed global: an inert tag; calling one is done by this module, by name. */
export interface PyGlobal {
  kind: 'global';
  module: string;
  name: string;
}

/** A storage named by a torch persistent id `('storage', torch.<Type>Storage, key, location, numel)`. */
export interface StorageRef {
  kind: 'storage';
  /** Storage class name: `FloatStorage`, `HalfStorage`, …, `UntypedStorage` (numel then counts bytes). */
  type: string;
  key: string;
  location: string;
  numel: number;
}

/** A tensor rebuilt by `torch._utils._rebuild_tensor*`: a strided view of a storage. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  /** torch dtype name (`float32`, `float16`, `float8_e4m3fn`, …). */
  dtype: string;
  /** Offset into the storage, in elements of `dtype`. */
  offset: number;
  size: number[];
  stride: number[];
  requiresGrad: boolean;
  /** Wrapped by `_rebuild_parameter` (an nn.Parameter). */
  parameter: boolean;
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | Set<PickleValue>
  | PyGlobal
  | StorageRef
  | TensorRef;

export interface DTypeInfo {
  dtype: DType;
  bytes: number;
}

/** Legacy typed storage classes → element dtype (what `torch.save` writes for classic dtypes). */
export const STORAGE_TYPES: Readonly<Record<string, DTypeInfo & { torch: string }>> = {
  DoubleStorage: { dtype: 'F64', bytes: 8, torch: 'float64' },
  FloatStorage: { dtype: 'F32', bytes: 4, torch: 'float32' },
  HalfStorage: { dtype: 'F16', bytes: 2, torch: 'float16' },
  BFloat16Storage: { dtype: 'BF16', bytes: 2, torch: 'bfloat16' },
  LongStorage: { dtype: 'I64', bytes: 8, torch: 'int64' },
  IntStorage: { dtype: 'I32', bytes: 4, torch: 'int32' },
  ShortStorage: { dtype: 'I16', bytes: 2, torch: 'int16' },
  CharStorage: { dtype: 'I8', bytes: 1, torch: 'int8' },
  ByteStorage: { dtype: 'U8', bytes: 1, torch: 'uint8' },
  BoolStorage: { dtype: 'BOOL', bytes: 1, torch: 'bool' },
  ComplexFloatStorage: { dtype: 'UNKNOWN_complex64', bytes: 8, torch: 'complex64' },
  ComplexDoubleStorage: { dtype: 'UNKNOWN_complex128', bytes: 16, torch: 'complex128' },
  // Newer dtypes are saved as raw bytes plus a dtype argument to _rebuild_tensor_v3.
  UntypedStorage: { dtype: 'U8', bytes: 1, torch: 'uint8' },
};

/** torch dtype objects (pickled as `torch.<name>`) → element dtype. */
export const TORCH_DTYPES: Readonly<Record<string, DTypeInfo>> = {
  float64: { dtype: 'F64', bytes: 8 },
  double: { dtype: 'F64', bytes: 8 },
  float32: { dtype: 'F32', bytes: 4 },
  float: { dtype: 'F32', bytes: 4 },
  float16: { dtype: 'F16', bytes: 2 },
  half: { dtype: 'F16', bytes: 2 },
  bfloat16: { dtype: 'BF16', bytes: 2 },
  float8_e4m3fn: { dtype: 'F8_E4M3', bytes: 1 },
  float8_e5m2: { dtype: 'F8_E5M2', bytes: 1 },
  float8_e4m3fnuz: { dtype: 'UNKNOWN_float8_e4m3fnuz', bytes: 1 },
  float8_e5m2fnuz: { dtype: 'UNKNOWN_float8_e5m2fnuz', bytes: 1 },
  float8_e8m0fnu: { dtype: 'UNKNOWN_float8_e8m0fnu', bytes: 1 },
  int64: { dtype: 'I64', bytes: 8 },
  long: { dtype: 'I64', bytes: 8 },
  int32: { dtype: 'I32', bytes: 4 },
  int: { dtype: 'I32', bytes: 4 },
  int16: { dtype: 'I16', bytes: 2 },
  short: { dtype: 'I16', bytes: 2 },
  int8: { dtype: 'I8', bytes: 1 },
  uint8: { dtype: 'U8', bytes: 1 },
  uint16: { dtype: 'U16', bytes: 2 },
  uint32: { dtype: 'U32', bytes: 4 },
  uint64: { dtype: 'U64', bytes: 8 },
  bool: { dtype: 'BOOL', bytes: 1 },
  complex32: { dtype: 'UNKNOWN_complex32', bytes: 4 },
  complex64: { dtype: 'UNKNOWN_complex64', bytes: 8 },
  complex128: { dtype: 'UNKNOWN_complex128', bytes: 16 },
};

/** Globals this VM implements itself when applied with REDUCE (or NEWOBJ for the classes). */
const CONSTRUCTORS: ReadonlySet<string> = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'builtins.set',
  'builtins.frozenset',
  '__builtin__.set', // protocol 2 spells builtins this way
  '__builtin__.frozenset',
  '_codecs.encode', // protocol 2 pickles bytes as _codecs.encode(str, 'latin1')
]);

/** Classes NEWOBJ may instantiate (an empty container, no __init__ code). */
const NEWOBJ_CLASSES: ReadonlySet<string> = new Set(['collections.OrderedDict', 'builtins.set', 'builtins.frozenset']);

/** Is `module.name` on the allow-list (a constructor above or an inert storage/dtype tag)? */
export function isAllowedGlobal(module: string, name: string): boolean {
  const q = `${module}.${name}`;
  if (CONSTRUCTORS.has(q)) return true;
  return module === 'torch' && (Object.hasOwn(STORAGE_TYPES, name) || Object.hasOwn(TORCH_DTYPES, name));
}

/** Mark-stack depth allowed (nested tuples/lists/dicts under construction). */
export const MAX_PICKLE_DEPTH = 1000;

export interface UnpickleOptions {
  /** The file the stream came from (for located errors). */
  file: string;
  /** How messages name the stream, e.g. `archive/data.pkl`. */
  label?: string;
  /** Absolute file offset of the stream's byte 0, when it lies verbatim (uncompressed) in `file`. */
  base?: number;
}

export interface Unpickled {
  value: PickleValue;
  /** Protocol from the PROTO opcode (0 when absent). */
  protocol: number;
}

// Opcode names, for messages about opcodes we refuse or that arrive in the wrong place.
const NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/** Opcodes refused outright: they instantiate classes by name, use the extension registry or text forms. */
const REFUSED: Record<number, string> = {
  0x69: 'instantiates a class by name',
  0x6f: 'instantiates a class',
  0x82: 'uses the copyreg extension registry',
  0x83: 'uses the copyreg extension registry',
  0x84: 'uses the copyreg extension registry',
  0x50: 'is a text persistent id (protocol 0)',
  0x97: 'needs an out-of-band buffer',
  0x46: 'is a protocol-0 text opcode',
  0x49: 'is a protocol-0 text opcode',
  0x4c: 'is a protocol-0 text opcode',
  0x53: 'is a protocol-0 text opcode',
  0x56: 'is a protocol-0 text opcode',
  0x67: 'is a protocol-0 text opcode',
  0x70: 'is a protocol-0 text opcode',
};

const MAX_GLOBAL_NAME = 256;
const MAX_LONG_BYTES = 1024;

/** Tuples are frozen arrays: readable like lists, but APPEND refuses them as Python would. */
const tuple = (items: PickleValue[]): PickleValue[] => Object.freeze(items) as PickleValue[];

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

const isGlobal = (v: unknown): v is PyGlobal => typeof v === 'object' && v !== null && (v as PyGlobal).kind === 'global';
const isStorage = (v: unknown): v is StorageRef => typeof v === 'object' && v !== null && (v as StorageRef).kind === 'storage';
const isTensor = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';

/** A short rendering of a value for "found …" in messages (never recursive beyond one level). */
export function describeValue(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return `bytes[${v.length}]`;
  if (Array.isArray(v)) return `${Object.isFrozen(v) ? 'tuple' : 'list'} of ${v.length}`;
  if (v instanceof Map) return `dict of ${v.size}`;
  if (v instanceof Set) return `set of ${v.size}`;
  if (isGlobal(v)) return `${v.module}.${v.name}`;
  if (isStorage(v)) return `storage ${v.type} ${JSON.stringify(v.key)}`;
  return `tensor of ${v.dtype}`;
}

/**
 * Interpret a pickle stream as data. Returns the value STOP leaves on the stack.
 * Throws a located QuantLensError for anything outside the allow-list or any malformed input.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): Unpickled {
  return new Machine(bytes, opts).run();
}

class Machine {
  private pos = 0;
  /** Offset of the opcode being executed. */
  private at = 0;
  private op = 0;
  private stack: PickleValue[] = [];
  private marks: PickleValue[][] = [];
  private memo = new Map<number, PickleValue>();
  private protocol = 0;
  private readonly label: string;
  private readonly maxMemo: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly opts: UnpickleOptions,
  ) {
    this.label = opts.label ?? 'pickle';
    // Python numbers memo slots from 0 upwards, one per memoizing opcode, so no valid index exceeds the
    // stream length; the absolute cap bounds the memo map however long the stream is.
    this.maxMemo = Math.min(bytes.length, LIMITS.maxArrayElements);
  }

  run(): Unpickled {
    for (;;) {
      this.at = this.pos;
      if (this.pos >= this.bytes.length) this.fail('truncated', `${this.label} ended without a STOP opcode`);
      this.op = this.bytes[this.pos++];
      if (this.op === 0x2e) {
        const value = this.pop();
        return { value, protocol: this.protocol };
      }
      this.step(this.op);
    }
  }

  private step(op: number): void {
    switch (op) {
      case 0x80: {
        // PROTO
        const v = this.u8();
        if (v < 2 || v > 5) this.fail('bad-pickle', `pickle protocol ${v} is not supported (expected 2..5)`);
        this.protocol = v;
        return;
      }
      case 0x95: {
        // FRAME: a length hint; the frame must fit in what is left.
        const n = this.u64();
        if (n > this.bytes.length - this.pos) this.fail('truncated', `FRAME declares ${n} bytes but only ${this.bytes.length - this.pos} remain`);
        return;
      }
      case 0x28:
        if (this.marks.length >= MAX_PICKLE_DEPTH) this.fail('too-deep', `nesting deeper than ${MAX_PICKLE_DEPTH} MARKs`);
        this.marks.push(this.stack);
        this.stack = [];
        return;
      case 0x30:
        this.pop();
        return;
      case 0x31:
        this.popMark();
        return;
      case 0x32: {
        const v = this.pop();
        this.stack.push(v, v);
        return;
      }
      // Constants and scalars.
      case 0x4e:
        return void this.stack.push(null);
      case 0x88:
        return void this.stack.push(true);
      case 0x89:
        return void this.stack.push(false);
      case 0x4a:
        return void this.stack.push(this.fixed(4).getInt32(0, true));
      case 0x4b:
        return void this.stack.push(this.u8());
      case 0x4d:
        return void this.stack.push(this.fixed(2).getUint16(0, true));
      case 0x8a:
        return void this.stack.push(this.long(this.u8()));
      case 0x8b: {
        const n = this.u32();
        if (n > MAX_LONG_BYTES) this.fail('bad-pickle', `LONG4 of ${n} bytes exceeds ${MAX_LONG_BYTES} bytes`);
        return void this.stack.push(this.long(n));
      }
      case 0x47:
        return void this.stack.push(this.fixed(8).getFloat64(0, false)); // big-endian, per the spec
      // Strings and bytes.
      case 0x58:
        return void this.stack.push(this.utf8(this.u32()));
      case 0x8c:
        return void this.stack.push(this.utf8(this.u8()));
      case 0x8d:
        return void this.stack.push(this.utf8(this.u64()));
      case 0x54:
        return void this.stack.push(this.latin1(this.u32()));
      case 0x55:
        return void this.stack.push(this.latin1(this.u8()));
      case 0x42:
        return void this.stack.push(this.take(this.u32()));
      case 0x43:
        return void this.stack.push(this.take(this.u8()));
      case 0x8e:
      case 0x96:
        return void this.stack.push(this.take(this.u64()));
      case 0x98:
        this.peek(); // READONLY_BUFFER: bytes are already immutable here
        return;
      // Containers.
      case 0x5d:
        return void this.stack.push([]);
      case 0x29:
        return void this.stack.push(tuple([]));
      case 0x7d:
        return void this.stack.push(new Map());
      case 0x8f:
        return void this.stack.push(new Set());
      case 0x85:
      case 0x86:
      case 0x87: {
        const n = op - 0x84;
        const items = this.stack.length >= n ? this.stack.splice(this.stack.length - n, n) : this.underflow(n);
        return void this.stack.push(tuple(items));
      }
      // popMark() swaps this.stack, so take the items before touching the stack.
      case 0x74:
        return this.push(tuple(this.popMark()));
      case 0x6c:
        return this.push(this.popMark());
      case 0x64: {
        const items = this.popMark();
        const d = new Map<PickleValue, PickleValue>();
        this.setItems(d, items);
        return void this.stack.push(d);
      }
      case 0x91:
        return this.push(new Set(this.popMark()));
      case 0x61: {
        const v = this.pop();
        this.appendTo(this.peek(), [v]);
        return;
      }
      case 0x65: {
        const items = this.popMark();
        this.appendTo(this.peek(), items);
        return;
      }
      case 0x73: {
        const v = this.pop();
        const k = this.pop();
        this.setItems(this.dictOnTop(), [k, v]);
        return;
      }
      case 0x75: {
        const items = this.popMark();
        this.setItems(this.dictOnTop(), items);
        return;
      }
      case 0x90: {
        const items = this.popMark();
        const s = this.peek();
        if (!(s instanceof Set)) this.fail('bad-pickle', `ADDITEMS needs a set on the stack, found ${describeValue(s)}`);
        for (const x of items) s.add(x);
        return;
      }
      // Memo.
      case 0x71:
        return this.put(this.u8());
      case 0x72:
        return this.put(this.u32());
      case 0x94:
        return this.put(this.memo.size);
      case 0x68:
        return this.get(this.u8());
      case 0x6a:
        return this.get(this.u32());
      // Globals and calls.
      case 0x63: {
        const module = this.line('module');
        const name = this.line('name');
        return void this.stack.push(this.global(module, name));
      }
      case 0x93: {
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          this.fail('bad-pickle', `STACK_GLOBAL needs two strings, found ${describeValue(module)} and ${describeValue(name)}`);
        }
        return void this.stack.push(this.global(module, name));
      }
      case 0x52: {
        const args = this.pop();
        const fn = this.pop();
        return void this.stack.push(this.call(fn, args));
      }
      case 0x81:
      case 0x92: {
        if (op === 0x92) {
          const kwargs = this.pop();
          if (!(kwargs instanceof Map) || kwargs.size > 0) this.fail('bad-pickle', `NEWOBJ_EX keyword arguments must be empty, found ${describeValue(kwargs)}`);
        }
        const args = this.pop();
        const cls = this.pop();
        return void this.stack.push(this.instantiate(cls, args));
      }
      case 0x62: {
        const state = this.pop();
        this.build(this.peek(), state);
        return;
      }
      case 0x51:
        return void this.stack.push(this.persistent(this.pop()));
      default:
        if (Object.hasOwn(REFUSED, op)) this.fail('forbidden-opcode', `pickle opcode ${NAMES[op]} (${hex(op)}) is not allowed: it ${REFUSED[op]}`);
        this.fail('unknown-opcode', `unknown pickle opcode ${hex(op)}`);
    }
  }

  // ---- stream reads (every length is checked against what remains before any allocation)

  private take(n: number): Uint8Array {
    const left = this.bytes.length - this.pos;
    if (n > left) this.fail('truncated', `${this.label} ended inside ${NAMES[this.op]}: ${n} bytes needed, ${left} left`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A view of the next `n` bytes, for fixed-width numbers. */
  private fixed(n: number): DataView {
    const b = this.take(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  private u8(): number {
    return this.take(1)[0];
  }

  private u32(): number {
    return this.fixed(4).getUint32(0, true);
  }

  /** An 8-byte length: anything past 2^53 cannot fit in what is left, so it reads as truncation. */
  private u64(): number {
    const v = this.fixed(8).getBigUint64(0, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  /** Little-endian two's complement integer of `n` bytes: a number when safe, else a bigint. */
  private long(n: number): number | bigint {
    const b = this.take(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private utf8(n: number): string {
    const b = this.take(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return this.fail('bad-pickle', `${NAMES[this.op]} holds invalid UTF-8`);
    }
  }

  private latin1(n: number): string {
    return new TextDecoder('latin1').decode(this.take(n));
  }

  /** A newline-terminated ASCII identifier (GLOBAL's module and name). */
  private line(what: string): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('truncated', `${this.label} ended inside GLOBAL ${what}`);
    if (end - this.pos > MAX_GLOBAL_NAME) this.fail('bad-pickle', `GLOBAL ${what} longer than ${MAX_GLOBAL_NAME} bytes`);
    const s = new TextDecoder('latin1').decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  // ---- stack

  private push(v: PickleValue): void {
    this.stack.push(v);
  }

  private pop(): PickleValue {
    if (this.stack.length === 0) this.underflow(1);
    return this.stack.pop()!;
  }

  private peek(): PickleValue {
    if (this.stack.length === 0) this.underflow(1);
    return this.stack[this.stack.length - 1];
  }

  private underflow(n: number): never {
    return this.fail('stack-underflow', `stack underflow: ${NAMES[this.op]} needs ${n} item(s) above the last MARK, found ${this.stack.length}`);
  }

  private popMark(): PickleValue[] {
    const items = this.stack;
    const prev = this.marks.pop();
    if (!prev) this.fail('stack-underflow', `${NAMES[this.op]} without a matching MARK`);
    this.stack = prev;
    return items;
  }

  private dictOnTop(): Map<PickleValue, PickleValue> {
    const d = this.peek();
    if (!(d instanceof Map)) this.fail('bad-pickle', `${NAMES[this.op]} needs a dict on the stack, found ${describeValue(d)}`);
    return d;
  }

  private setItems(d: Map<PickleValue, PickleValue>, items: PickleValue[]): void {
    if (items.length % 2 !== 0) this.fail('bad-pickle', `${NAMES[this.op]} needs key/value pairs, found ${items.length} items`);
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  }

  private appendTo(target: PickleValue, items: PickleValue[]): void {
    if (!Array.isArray(target) || Object.isFrozen(target)) {
      this.fail('bad-pickle', `${NAMES[this.op]} needs a list on the stack, found ${describeValue(target)}`);
    }
    for (const x of items) target.push(x);
  }

  private put(i: number): void {
    if (i >= this.maxMemo) this.fail('memo-limit', `memo index ${i} exceeds the limit of ${this.maxMemo} for this stream`);
    this.memo.set(i, this.peek());
  }

  private get(i: number): void {
    if (!this.memo.has(i)) this.fail('bad-pickle', `memo index ${i} was never stored`);
    this.stack.push(this.memo.get(i)!);
  }

  // ---- globals, calls and persistent ids

  private global(module: string, name: string): PyGlobal {
    if (!isAllowedGlobal(module, name)) {
      // torch.save(model) pickles the module's class: the usual way a harmless file lands here.
      const hint = /^(__main__|torch\.nn\.)/.test(module) ? '; this looks like a whole pickled model: save model.state_dict() instead' : '';
      this.fail(
        'forbidden-global',
        `forbidden pickle global ${module}.${name}: a checkpoint may reference only data constructors ` +
          `(collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage, torch dtypes); nothing in it is executed${hint}`,
      );
    }
    return { kind: 'global', module, name };
  }

  private call(fn: PickleValue, args: PickleValue): PickleValue {
    if (!isGlobal(fn) || !CONSTRUCTORS.has(`${fn.module}.${fn.name}`)) {
      this.fail('forbidden-call', `REDUCE may apply only an allowed constructor, found ${describeValue(fn)}`);
    }
    if (!Array.isArray(args)) this.fail('bad-pickle', `REDUCE arguments must be a tuple, found ${describeValue(args)}`);
    const q = `${fn.module}.${fn.name}`;
    switch (q) {
      case 'collections.OrderedDict':
        return this.orderedDict(args);
      case 'builtins.set':
      case 'builtins.frozenset':
      case '__builtin__.set':
      case '__builtin__.frozenset':
        this.arity(q, args, 0, 1);
        if (args.length === 1 && !Array.isArray(args[0])) this.fail('bad-pickle', `${q} expects a list, found ${describeValue(args[0])}`);
        return new Set(args.length ? (args[0] as PickleValue[]) : []);
      case '_codecs.encode':
        return this.encode(args);
      case 'torch._utils._rebuild_parameter': {
        this.arity(q, args, 3, 3);
        const t = args[0];
        if (!isTensor(t)) this.fail('bad-pickle', `${q} expects a tensor, found ${describeValue(t)}`);
        return { ...t, parameter: true, requiresGrad: args[1] === true };
      }
      default:
        return this.tensor(q, args);
    }
  }

  private instantiate(cls: PickleValue, args: PickleValue): PickleValue {
    if (!isGlobal(cls) || !NEWOBJ_CLASSES.has(`${cls.module}.${cls.name}`)) {
      this.fail('forbidden-call', `${NAMES[this.op]} may instantiate only OrderedDict or set, found ${describeValue(cls)}`);
    }
    if (!Array.isArray(args) || args.length > 0) this.fail('bad-pickle', `${NAMES[this.op]} arguments must be an empty tuple, found ${describeValue(args)}`);
    return cls.name === 'OrderedDict' ? new Map() : new Set();
  }

  /** BUILD sets instance state: only an OrderedDict's attributes (e.g. `_metadata`), which are not items. */
  private build(target: PickleValue, state: PickleValue): void {
    if (!(target instanceof Map)) this.fail('forbidden-call', `BUILD may only set a dict's attributes, found ${describeValue(target)}`);
    if (!(state === null || state instanceof Map || (Array.isArray(state) && state.length === 2))) {
      this.fail('bad-pickle', `BUILD state must be a dict or (dict, slots), found ${describeValue(state)}`);
    }
  }

  private orderedDict(args: PickleValue[]): Map<PickleValue, PickleValue> {
    this.arity('collections.OrderedDict', args, 0, 1);
    const d = new Map<PickleValue, PickleValue>();
    if (args.length === 0) return d;
    const src = args[0];
    if (src instanceof Map) return new Map(src);
    if (!Array.isArray(src)) this.fail('bad-pickle', `OrderedDict expects a list of pairs, found ${describeValue(src)}`);
    for (const pair of src) {
      if (!Array.isArray(pair) || pair.length !== 2) this.fail('bad-pickle', `OrderedDict expects (key, value) pairs, found ${describeValue(pair)}`);
      d.set(pair[0], pair[1]);
    }
    return d;
  }

  private encode(args: PickleValue[]): Uint8Array {
    this.arity('_codecs.encode', args, 2, 2);
    const [s, enc] = args;
    if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) {
      this.fail('forbidden-call', `_codecs.encode is allowed only as (str, 'latin1'), found (${describeValue(s)}, ${describeValue(enc)})`);
    }
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) this.fail('bad-pickle', `_codecs.encode: character U+${c.toString(16)} is not latin-1`);
      out[i] = c;
    }
    return out;
  }

  /** `_rebuild_tensor(storage, offset, size, stride)`, `_v2(…, requires_grad, hooks[, metadata])`, `_v3(…, dtype[, metadata])`. */
  private tensor(q: string, args: PickleValue[]): TensorRef {
    const v = q.endsWith('_v3') ? 3 : q.endsWith('_v2') ? 2 : 1;
    if (v === 1) this.arity(q, args, 4, 4);
    else if (v === 2) this.arity(q, args, 6, 7);
    else this.arity(q, args, 7, 8);
    const [storage, offset, size, stride] = args;
    if (!isStorage(storage)) this.fail('bad-pickle', `${q}: argument 1 must be a storage, found ${describeValue(storage)}`);
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
      this.fail('bad-pickle', `${q}: storage offset must be a non-negative integer, found ${describeValue(offset)}`);
    }
    const dims = this.dims(q, 'size', size);
    const strides = this.dims(q, 'stride', stride);
    if (dims.length !== strides.length) this.fail('bad-pickle', `${q}: size has ${dims.length} dims but stride has ${strides.length}`);
    let dtype = STORAGE_TYPES[storage.type].torch;
    if (v === 3) {
      const d = args[6];
      if (!isGlobal(d) || d.module !== 'torch' || !Object.hasOwn(TORCH_DTYPES, d.name)) {
        this.fail('bad-pickle', `${q}: argument 7 must be a torch dtype, found ${describeValue(d)}`);
      }
      dtype = d.name;
    } else if (storage.type === 'UntypedStorage') {
      this.fail('bad-pickle', `${q}: an UntypedStorage needs _rebuild_tensor_v3 with a dtype`);
    }
    return {
      kind: 'tensor',
      storage,
      dtype,
      offset: offset as number,
      size: dims,
      stride: strides,
      requiresGrad: v > 1 && args[4] === true,
      parameter: false,
    };
  }

  private dims(q: string, what: string, v: PickleValue): number[] {
    if (!Array.isArray(v) || v.length > LIMITS.maxDims || !v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      this.fail('bad-pickle', `${q}: ${what} must be a tuple of at most ${LIMITS.maxDims} non-negative integers, found ${describeValue(v)}`);
    }
    return [...(v as number[])];
  }

  private arity(q: string, args: PickleValue[], min: number, max: number): void {
    if (args.length < min || args.length > max) {
      this.fail('bad-pickle', `${q} takes ${min === max ? min : `${min}..${max}`} arguments, found ${args.length}`);
    }
  }

  /** torch's persistent id: `('storage', torch.<Type>Storage, key, location, numel)`. */
  private persistent(pid: PickleValue): StorageRef {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      this.fail('bad-pickle', `persistent id must be ('storage', type, key, location, numel), found ${describeValue(pid)}`);
    }
    const [, type, key, location, numel] = pid;
    if (!isGlobal(type) || type.module !== 'torch' || !Object.hasOwn(STORAGE_TYPES, type.name)) {
      this.fail('bad-pickle', `persistent id storage type must be a torch storage class, found ${describeValue(type)}`);
    }
    if (typeof key !== 'string' || typeof location !== 'string') {
      this.fail('bad-pickle', `persistent id key and location must be strings, found ${describeValue(key)} and ${describeValue(location)}`);
    }
    if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
      this.fail('bad-pickle', `persistent id numel must be a non-negative integer, found ${describeValue(numel)}`);
    }
    return { kind: 'storage', type: type.name, key, location, numel: numel as number };
  }

  private fail(code: string, detail: string): never {
    const where: Location = { file: this.opts.file };
    // Stored pickles have a file offset; a deflated one is located by its member name (the byte is in the message).
    if (this.opts.base !== undefined) where.offset = this.opts.base + this.at;
    else where.tensor = this.label;
    throw new QuantLensError(code, `${detail} (${this.label} byte ${this.at})`, where);
  }
}
