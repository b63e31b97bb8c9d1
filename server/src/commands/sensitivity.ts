// The calibrated branch of `quantlens analyze` (--calib / --methods): options, progress, table and JSON.
import * as path from 'node:path';
import { ProgressLine } from '../analysis/progress';
import { QuantLensError } from '../formats/errors';
import { writeOutputFile } from '../output';
import { analyzeSensitivity, DEFAULT_CALIBRATED_METHODS, SENSITIVITY_METHODS, type SensitivityMethod, type SensitivityReport } from '../sensitivity/combined';

export interface SensitivityFlags {
  calib?: string;
  labels?: string;
  methods?: string;
  providers?: string;
  samples?: string;
  batchSize?: string;
  json?: boolean;
  out?: string;
  cache: boolean;
  cacheDir?: string;
}

const list = (s: string | undefined) => s?.split(',').map((x) => x.trim()).filter(Boolean);

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new QuantLensError('bad-option', `--${flag} expects a whole number ≥ 1, got '${value}'`, { file: `--${flag}` });
  return n;
}

export function parseMethods(value: string | undefined): SensitivityMethod[] {
  const methods = list(value) ?? DEFAULT_CALIBRATED_METHODS;
  for (const m of methods) {
    if (!(SENSITIVITY_METHODS as readonly string[]).includes(m)) {
      throw new QuantLensError('bad-option', `unknown method '${m}'; expected some of ${SENSITIVITY_METHODS.join(', ')}`, { file: '--methods' });
    }
  }
  return methods as SensitivityMethod[];
}

export async function runSensitivity(target: string, formats: string[], flags: SensitivityFlags): Promise<void> {
  const methods = parseMethods(flags.methods);
  const abort = new AbortController();
  const onSigint = () => abort.abort(new QuantLensError('cancelled', 'analysis cancelled', { file: path.resolve(target) }));
  process.once('SIGINT', onSigint);
  const bar = process.stderr.isTTY ? new ProgressLine(process.stderr, 'analyze', { name: '', scale: 1 }) : undefined;
  let stage = '';
  try {
    const report = await analyzeSensitivity(target, {
      methods,
      formats,
      calib: flags.calib,
      calibration: { maxSamples: count('samples', flags.samples), batchSize: count('batch-size', flags.batchSize) },
      labels: flags.labels,
      providers: list(flags.providers),
      cacheDir: flags.cache ? (flags.cacheDir ? path.resolve(flags.cacheDir) : undefined) : false,
      signal: abort.signal,
      onProgress: bar && ((s, done, total) => {
        if (s !== stage) bar.stage(s, s === 'datafree' ? { name: 'M weights', scale: 1e6 } : { name: 'steps', scale: 1 });
        stage = s;
        bar.update(done, total);
      }),
    });
    bar?.done();
    const json = `${JSON.stringify(report, null, 1)}\n`;
    if (flags.out) await writeOutputFile(flags.out, json, { overwrite: true, inputs: [report.model, ...(flags.calib ? [flags.calib] : [])] });
    process.stdout.write(flags.json ? json : formatSensitivityTable(report));
  } finally {
    bar?.done();
    process.off('SIGINT', onSigint);
  }
}

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toPrecision(3));

/** Layers × methods at the first format, most sensitive first by the first method that scored them, then the agreement. */
export function formatSensitivityTable(r: SensitivityReport): string {
  const f = r.formats[0];
  const cols: [string, (l: SensitivityReport['layers'][number]) => number | undefined][] = [];
  if (r.methods.includes('datafree')) cols.push(['datafree relMse', (l) => l.scores.datafree?.[f]]);
  if (r.methods.includes('hessian')) cols.push(['hessian tr', (l) => l.scores.hessian?.[f]]);
  if (r.methods.includes('fisher')) cols.push(['fisher', (l) => l.scores.fisher?.[f]]);
  if (r.methods.includes('gwq')) cols.push(['gwq', (l) => l.scores.gwq?.[f]]);
  if (r.methods.includes('empirical')) {
    cols.push(['emp KL', (l) => l.scores.empirical?.[f]?.kl], ['emp top-1', (l) => l.scores.empirical?.[f]?.top1]);
  }
  if (r.methods.includes('hawq')) cols.push(['hawq trace', (l) => l.hessianTrace], ['hawq λmax', (l) => l.hessianTopEig]);
  const key = cols.find(([, get]) => r.layers.some((l) => get(l) !== undefined));
  const layers = key ? [...r.layers].sort((a, b) => (key[1](b) ?? -Infinity) - (key[1](a) ?? -Infinity)) : r.layers;
  const rows = [['layer', 'op', ...cols.map(([h]) => h)], ...layers.map((l) => [l.name, l.op, ...cols.map(([, get]) => fmt(get(l)))])];
  const width = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((c, i) => (i < 2 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  '));
  const out = [
    `${r.model} · ${r.layers.length} layers · format ${f} · execution provider ${r.executionProvider}`,
    `calibration: ${r.calibration.samples} samples from ${r.calibration.source}${r.calibration.synthetic ? ' (SYNTHETIC: no --calib given)' : ''}${r.loss ? ` · gradient loss: ${r.loss}` : ''}`,
    '',
    lines[0],
    ...lines.slice(1),
    '',
    `Spearman rank agreement at ${f}:`,
    ...r.agreement.filter((a) => a.format === f).map((a) => `  ${a.a} vs ${a.b}: ${a.rho === null ? 'undefined' : a.rho.toFixed(3)} (${a.layers} layers)`),
    ...r.fallbacks.map((fb) => `not run: ${fb.method}: ${fb.reason}`),
    '',
  ];
  return out.join('\n');
}
