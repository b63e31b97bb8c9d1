// JSON with located syntax errors: V8's messages do not always carry a position, so a small RFC 8259
// scanner finds the exact byte offset of the first error after JSON.parse has failed.
import { check, QuantLensError } from './errors';

export type JsonObject = Record<string, unknown>;

export const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * A short rendering of a JSON value for "found …" in messages. JSON.parse accepts nesting deeper than
 * JSON.stringify can recurse, so hostile values are described by kind instead of crashing the message.
 */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    return Array.isArray(v) ? 'a deeply nested array' : 'a deeply nested object';
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Parse a JSON object; a syntax error names the absolute byte offset (`base` + offset in `bytes`). */
export function parseJsonObject(bytes: Uint8Array, file: string, base: number, what: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    const err = jsonSyntaxError(bytes);
    throw new QuantLensError('bad-json', `invalid JSON in ${what}: expected ${err?.expected ?? 'valid JSON'} (${(e as Error).message})`, {
      file,
      offset: base + (err?.offset ?? 0),
    });
  }
  check(isObject(v), 'bad-json', () => `${what} must be a JSON object, found ${describe(v)}`, { file, offset: base });
  return v;
}

/** Bytes allowed after a backslash in a JSON string (besides `u`). */
const ESCAPES: ReadonlySet<number | undefined> = new Set([...'"\\/bfnrt'].map((ch) => ch.charCodeAt(0)));

/**
 * Byte offset of the first JSON syntax error (RFC 8259) and what was expected there; undefined when valid.
 * Run only after JSON.parse failed, because V8's messages do not always carry a position. Iterative, so
 * hostile nesting cannot overflow the stack.
 */
export function jsonSyntaxError(b: Uint8Array): { offset: number; expected: string } | undefined {
  let i = 0;
  const closers: number[] = []; // 0x7d '}' or 0x5d ']' for each open container
  const skipWs = () => {
    while (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d) i++;
  };
  const digits = () => {
    const s = i;
    while (b[i] >= 0x30 && b[i] <= 0x39) i++;
    return i > s;
  };
  const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
  /** Scan a string at b[i] === '"'; returns what was expected on failure. */
  const str = (): string | undefined => {
    i++;
    for (;;) {
      const c = b[i];
      if (c === undefined) return 'a closing quote';
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return 'no control characters in a string';
      i++;
      if (c !== 0x5c) continue;
      if (b[i] === 0x75) {
        i++;
        for (let k = 0; k < 4; k++, i++) if (!isHex(b[i])) return 'four hex digits after \\u';
      } else if (ESCAPES.has(b[i])) i++;
      else return 'a valid escape';
    }
  };
  /** After '{' or ',' in an object: a key and a colon. */
  const key = (): string | undefined => {
    skipWs();
    if (b[i] !== 0x22) return 'a double-quoted property name';
    const e = str();
    if (e) return e;
    skipWs();
    if (b[i] !== 0x3a) return "':' after the property name";
    i++;
  };
  for (;;) {
    // A value.
    skipWs();
    const c = b[i];
    let e: string | undefined;
    if (c === 0x7b) {
      i++;
      skipWs();
      if (b[i] === 0x7d) i++;
      else {
        if ((e = key())) return { offset: i, expected: e };
        closers.push(0x7d);
        continue;
      }
    } else if (c === 0x5b) {
      i++;
      skipWs();
      if (b[i] === 0x5d) i++;
      else {
        closers.push(0x5d);
        continue;
      }
    } else if (c === 0x22) {
      if ((e = str())) return { offset: i, expected: e };
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      if (c === 0x2d) i++;
      if (b[i] === 0x30) i++;
      else if (!digits()) return { offset: i, expected: 'a digit' };
      if (b[i] === 0x2e && (i++, !digits())) return { offset: i, expected: 'a digit after the decimal point' };
      if ((b[i] | 0x20) === 0x65) {
        i++;
        if (b[i] === 0x2b || b[i] === 0x2d) i++;
        if (!digits()) return { offset: i, expected: 'a digit in the exponent' };
      }
    } else {
      const lit = ['true', 'false', 'null'].find((w) => w.charCodeAt(0) === c);
      if (!lit) return { offset: i, expected: 'a JSON value' };
      for (let k = 0; k < lit.length; k++, i++) if (b[i] !== lit.charCodeAt(k)) return { offset: i, expected: `'${lit}'` };
    }
    // After a value: close containers until a ',' starts the next value.
    for (;;) {
      skipWs();
      const closer = closers[closers.length - 1];
      if (closer === undefined) return i === b.length ? undefined : { offset: i, expected: 'the end of the JSON text' };
      if (b[i] === closer) {
        i++;
        closers.pop();
        continue;
      }
      if (b[i] !== 0x2c) return { offset: i, expected: `',' or '${String.fromCharCode(closer)}'` };
      i++;
      if (closer === 0x7d && (e = key())) return { offset: i, expected: e };
      break;
    }
  }
}
