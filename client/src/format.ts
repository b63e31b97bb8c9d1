// Small text helpers shared by the tree, the status and the inspect report.

/** 1234567 → "1.23M" (parameters and tensor counts, as model cards write them). */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, u] of units) if (n >= v) return `${(n / v).toPrecision(3).replace(/\.?0+$/, '')}${u}`;
  return String(n);
}

/** Markdown table cell: pipes and newlines would break the row. */
export function cell(s: string | number): string {
  return String(s).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** 1536 → "1.50 KiB" (binary units, as file sizes are shown). */
export function formatBytes(n: number): string {
  const units: [number, string][] = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
  for (const [v, u] of units) if (n >= v) return `${(n / v).toFixed(2)} ${u}`;
  return `${n} B`;
}
