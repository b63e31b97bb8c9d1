// `analyzeCheckpoint`: the data-free analysis of a whole checkpoint — tensor selection, cache, worker pool,
// model totals. Shared by the CLI (`quantlens analyze`) and the language server.
import * as path from 'node:path';
import { isWeightUse } from '../formats/onnx-roles';
import { openCheckpoint } from '../formats/registry';
import type { TensorInfo } from '../formats/types';
import { getFormat, UnknownFormatError } from '../quant';
import { gridOf } from '../quant/grid';
import { hessianDiagonal, readImatrix } from '../sensitivity/imatrix';
import { cacheKey, defaultCacheDir, readCache, writeCache } from './cache';
import { runPool, type PoolRun } from './pool';
import { sampleSize } from './sample';
import { ANALYSIS_VERSION, DEFAULT_OPTIONS, type AnalysisReport, type DatafreeOptions, type LayerReport, type ModelTotals } from './types';

/** A bad option value; `option` names it as the CLI spells it. */
export class OptionError extends Error {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
    this.name = 'OptionError';
  }
}

/** Defaults filled in, every value checked. */
export function resolveOptions(partial: Partial<DatafreeOptions> = {}): DatafreeOptions {
  const o: DatafreeOptions = { ...DEFAULT_OPTIONS, ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) };
  if (o.formats.length === 0) throw new OptionError('formats', 'no formats given');
  for (const id of o.formats) {
    try {
      getFormat(id);
    } catch (e) {
      if (e instanceof UnknownFormatError) throw new OptionError('formats', e.message);
      throw e;
    }
  }
  if (new Set(o.formats).size !== o.formats.length) throw new OptionError('formats', 'a format is listed twice');
  if (!(o.sigma > 0 && Number.isFinite(o.sigma))) throw new OptionError('sigma', `outlier threshold ${o.sigma} must be a positive number`);
  if (o.sample !== undefined && !(o.sample > 0 && o.sample <= 1)) throw new OptionError('sample', `sample fraction ${o.sample} must be in (0, 1]`);
  if (!(o.confidence > 0 && o.confidence < 1)) throw new OptionError('confidence', `confidence ${o.confidence} must be in (0, 1)`);
  if (!(Number.isInteger(o.mapSize) && o.mapSize >= 1 && o.mapSize <= 256)) throw new OptionError('map-size', `map size ${o.mapSize} must be an integer in 1…256`);
  if (!o.ratios.every((r) => r >= 0 && r <= 1)) throw new OptionError('ratios', 'high-impact ratios must be in [0, 1]');
  if (!Number.isInteger(o.seed)) throw new OptionError('seed', `seed ${o.seed} must be an integer`);
  if (o.imatrix !== undefined) o.imatrix = path.resolve(o.imatrix);
  if (o.only !== undefined) {
    try {
      new RegExp(o.only);
    } catch (e) {
      throw new OptionError('only', `not a regular expression: ${(e as Error).message}`);
    }
  }
  return o;
}

/** Why a tensor is not analyzed, or undefined when it is: weights are float tensors with ≥ 2 axes longer than 1. */
export function skipReason(t: TensorInfo): string | undefined {
  if (!t.analyzable) return 'not-analyzable';
  if (t.params === 0) return 'empty';
  if (t.layout === 'vector' || t.shape.filter((d) => d > 1).length < 2) return 'vector';
  // ONNX: the graph says how each initializer is used; one no weight-consuming op reads is a constant table.
  if (t.consumers?.length && !t.consumers.some(isWeightUse)) return 'not-a-weight';
  return undefined;
}

export interface AnalyzeRun extends PoolRun {
  /** Cache folder; false disables the cache. Default: defaultCacheDir(). */
  cacheDir?: string | false;
}

export interface AnalyzeResult {
  report: AnalysisReport;
  cache: 'hit' | 'miss' | 'off';
  /** A cache write that failed (the analysis itself succeeded). */
  warning?: string;
}

export async function analyzeCheckpoint(target: string, partial: Partial<DatafreeOptions>, run: AnalyzeRun = {}): Promise<AnalyzeResult> {
  const opts = resolveOptions(partial);
  const ckpt = await openCheckpoint(target);
  const selected: TensorInfo[] = [];
  let key: string | undefined;
  const cacheDir = run.cacheDir === undefined ? defaultCacheDir() : run.cacheDir;
  const skipped: AnalysisReport['skipped'] = { count: 0, params: 0, byReason: {}, tensors: [] };
  let imatrix: AnalysisReport['imatrix'];
  try {
    const only = opts.only !== undefined ? new RegExp(opts.only) : undefined;
    for (const t of ckpt.tensors) {
      const why = skipReason(t) ?? (only && !only.test(t.name) ? 'filtered' : undefined);
      if (why === undefined) {
        selected.push(t);
        continue;
      }
      skipped.count++;
      skipped.params += t.params;
      skipped.byReason[why] = (skipped.byReason[why] ?? 0) + 1;
      skipped.tensors.push({ name: t.name, reason: why });
    }
    if (opts.imatrix !== undefined) {
      const im = await readImatrix(opts.imatrix);
      // Checks every tensor's column count against its entry now, before any worker starts.
      const matched = selected.filter((t) => {
        const g = gridOf(t.shape, t.layout);
        return hessianDiagonal(im, t.name, g.rows, g.cols) !== undefined;
      }).length;
      imatrix = { file: im.file, layout: im.layout, entries: im.entries.size, matched, chunks: im.chunks ?? null, datasets: im.datasets };
    }
    if (cacheDir !== false) {
      // The imatrix is an input too: its identity is part of the key.
      key = await cacheKey(ckpt.path, opts.imatrix !== undefined ? [...ckpt.files, opts.imatrix] : ckpt.files, opts);
      const hit = await readCache(cacheDir, key);
      if (hit) return { report: hit, cache: 'hit' };
    }
  } finally {
    await ckpt.close();
  }

  const tasks = selected.map((t) => ({ tensor: t.name, weights: scoredWeights(t, opts) }));
  const byName = await runPool(ckpt.path, opts, tasks, run);
  const layers = selected.map((t) => byName.get(t.name)!);
  const report: AnalysisReport = {
    version: ANALYSIS_VERSION,
    formats: [],
    options: { sigma: opts.sigma, sample: opts.sample ?? null, confidence: opts.sample !== undefined ? opts.confidence : null, ratios: opts.ratios },
    model: {
      path: ckpt.path,
      format: ckpt.format,
      files: ckpt.files,
      tensors: ckpt.tensors.length,
      params: ckpt.tensors.reduce((s, t) => s + t.params, 0),
      analyzedTensors: layers.length,
      analyzedParams: layers.reduce((s, l) => s + l.params, 0),
      totals: totals(layers, opts.formats),
    },
    layers,
    skipped,
  };
  if (imatrix) report.imatrix = imatrix;
  report.formats = opts.formats.map((id) => ({ id, bitsPerWeight: report.model.totals[id].bitsPerWeight }));
  if (cacheDir === false || key === undefined) return { report, cache: 'off' };
  try {
    await writeCache(cacheDir, key, report);
    return { report, cache: 'miss' };
  } catch (e) {
    return { report, cache: 'miss', warning: `could not write the analysis cache in ${cacheDir}: ${(e as Error).message}` };
  }
}

/** Weights a tensor's analysis scores (its sampled rows in sampled mode), for progress. */
function scoredWeights(t: TensorInfo, opts: DatafreeOptions): number {
  if (opts.sample === undefined) return t.params;
  const rows = t.layout === 'in_out' ? t.shape[t.shape.length - 1] : t.shape[0];
  return (t.params / rows) * sampleSize(rows, opts.sample);
}

function totals(layers: LayerReport[], formats: string[]): Record<string, ModelTotals> {
  const out: Record<string, ModelTotals> = {};
  const params = layers.reduce((s, l) => s + l.params, 0);
  const den = layers.reduce((s, l) => s + l.sumSq, 0);
  for (const id of formats) {
    const f = getFormat(id);
    let num = 0;
    let bits = 0;
    for (const l of layers) {
      num += l.errors[id].relMse * l.sumSq;
      bits += f.storageBits(l.shape, l.layout);
    }
    const relMse = den > 0 ? num / den : 0;
    out[id] = {
      relMse,
      sqnrDb: relMse > 0 ? -10 * Math.log10(relMse) : null,
      bitsPerWeight: params > 0 ? bits / params : 0,
      bytes: Math.ceil(bits / 8),
    };
  }
  return out;
}
