// `quantlens/ratios` for the language server: the same comparison as `quantlens ratios`, run on the jobs worker
// thread (jobs/run.ts; onnxruntime's session.run blocks its thread) and queued behind other heavy jobs.
import { QuantLensError } from '../formats/errors';
import type { RatiosParams } from '../protocol';
import { RATIOS_DEFAULTS, runRatios, type RatiosReport } from './ratios-run';
import { openRatiosSource } from './ratios-source';

/** A ratios request without its progress token (paths already absolute). */
export type RatiosJob = Omit<RatiosParams, 'workDoneToken'>;

export async function runRatiosJob(job: RatiosJob, hooks: { signal?: AbortSignal; onProgress?: (fraction: number, message: string) => void } = {}): Promise<RatiosReport> {
  let only: RegExp | undefined;
  try {
    only = job.only === undefined ? undefined : new RegExp(job.only);
  } catch (e) {
    throw new QuantLensError('bad-option', `only: not a regular expression: ${(e as Error).message}`, { file: 'only' });
  }
  const seed = job.seed ?? 0;
  const opened = await openRatiosSource(job.path, {
    datafree: job.datafree,
    calib: job.calib,
    samples: job.maxSamples ?? RATIOS_DEFAULTS.samples,
    seed,
    providers: job.providers,
    only,
    saliency: job.saliency,
    signal: hooks.signal,
  });
  try {
    const report = await runRatios(opened.src, {
      hi: job.hi ?? RATIOS_DEFAULTS.hi,
      lo: job.lo ?? RATIOS_DEFAULTS.lo,
      budgetBits: job.budgetBits,
      rMax: job.rMax ?? RATIOS_DEFAULTS.rMax,
      fixedRatio: job.fixedRatio ?? RATIOS_DEFAULTS.fixedRatio,
      seed,
      probe: opened.probe,
      signal: hooks.signal,
      onProgress: (phase, done, total) => hooks.onProgress?.(total > 0 ? done / total : 1, `${phase} ${done}/${total}`),
      ...opened.saliency,
    });
    return { ...report, runtime: opened.note ?? null };
  } finally {
    await opened.src.close();
  }
}
