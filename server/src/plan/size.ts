// Size strings → exact byte counts. Decimal mantissas are scaled with BigInt so 3.9GB is 3 900 000 000 bytes
// exactly (3.9 * 1e9 in floating point is not guaranteed to be).
import { SIZE_PATTERN } from './schema';

const SIZE_RE = new RegExp(SIZE_PATTERN);
const PREFIX_POWER: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5 };
/** Mantissa digits and exponent bounds: keep BigInt work tiny on hostile input like 1e999999999. */
const MAX_DIGITS = 40;
const MAX_EXPONENT = 40;

export type SizeResult = { bytes: number } | { error: string };

/** Bytes in `text` (e.g. `3.9GB`, `512MiB`, `1.2e9`, `4096`), rounded to the nearest byte. */
export function parseSize(text: string): SizeResult {
  const m = SIZE_RE.exec(text);
  if (!m) return { error: `expected a size like 3.9GB, 512MiB or 1.2e9, found '${text}'` };
  const [whole, frac = ''] = m[1].split('.');
  const digits = (whole + frac).replace(/^0+(?=.)/, '');
  const exp = Number(m[2] ?? 0) - frac.length;
  if (digits.length > MAX_DIGITS || Math.abs(exp) > MAX_EXPONENT) return { error: `size '${text}' is out of range` };
  let num = BigInt(digits);
  let den = 1n;
  if (m[3] !== undefined) {
    const k = PREFIX_POWER[m[3].toLowerCase()];
    num *= m[4] ? 1n << BigInt(10 * k) : 10n ** BigInt(3 * k);
  }
  if (exp >= 0) num *= 10n ** BigInt(exp);
  else den = 10n ** BigInt(-exp);
  const bytes = (2n * num + den) / (2n * den); // round half up
  if (bytes === 0n) return { error: `size '${text}' must be at least one byte` };
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { error: `size '${text}' exceeds ${Number.MAX_SAFE_INTEGER} bytes` };
  return { bytes: Number(bytes) };
}

/** Bytes for a YAML number: must be positive and finite; fractions round to the nearest byte. */
export function sizeFromNumber(n: number): SizeResult {
  if (!Number.isFinite(n) || n <= 0) return { error: `size must be a positive number of bytes, found ${n}` };
  if (n > Number.MAX_SAFE_INTEGER) return { error: `size ${n} exceeds ${Number.MAX_SAFE_INTEGER} bytes` };
  return { bytes: Math.max(1, Math.round(n)) };
}
