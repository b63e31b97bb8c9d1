// Number formatting shared by diagnostics, lenses and hovers: fixed rules so messages are stable and testable.

/** Bits per weight: 3 decimals, trailing zeros dropped (4.5, 4.156, 16). */
export function fmtBits(b: number): string {
  return Number.isFinite(b) ? String(Number(b.toFixed(3))) : '?';
}

/** Bytes: exact below 1 KiB, else 3 significant digits in IEC units (1.50 KiB, 3.63 GiB). */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '? B';
  if (Math.abs(n) < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = -1;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toPrecision(3)} ${units[u]}`;
}

/** Parameter counts: exact below 10 000, else 3 significant digits with K/M/B. */
export function fmtParams(n: number): string {
  if (n < 1e4) return String(n);
  const [d, s] = n >= 1e9 ? [1e9, 'B'] : n >= 1e6 ? [1e6, 'M'] : [1e3, 'K'];
  return `${(n / d).toPrecision(3)}${s}`;
}

/** A relative squared error, with its SQNR in dB: `relMSE 1.23e-3 (29.1 dB)`. */
export function fmtError(rel: number): string {
  if (rel === 0) return 'relMSE 0 (exact)';
  return `relMSE ${rel.toExponential(2)} (${(-10 * Math.log10(rel)).toFixed(1)} dB)`;
}
