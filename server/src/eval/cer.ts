// Character error rate: edit distance (insertions + deletions + substitutions) between reading and reference,
// over Unicode code points, summed over a set and divided by the total reference length.
import { check } from '../formats/errors';

/** Levenshtein distance over code points, two rows of memory. */
export function editDistance(ref: string, hyp: string): number {
  const a = Array.from(ref);
  const b = Array.from(hyp);
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur[j] = Math.min(sub, prev[j] + 1, cur[j - 1] + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

export interface CerResult {
  /** Summed edit distance. */
  errors: number;
  /** Summed reference length in code points. */
  refChars: number;
  /** errors / refChars; 0 when both are 0, Infinity when only the references are empty. */
  cer: number;
}

export interface CerOptions {
  /** Compare without leading/trailing whitespace (a CTC reader may emit a space for a blank margin). */
  trim?: boolean;
  /** Compare with every space removed (PaddleOCR's RecMetric default, ignore_space). */
  ignoreSpace?: boolean;
  /** Shown in the error when the lists differ in length. */
  file?: string;
}

/** Corpus CER of `hyps` against `refs` (same length, paired by index); exact comparison unless `opts` says otherwise. */
export function characterErrorRate(refs: readonly string[], hyps: readonly string[], opts: CerOptions = {}): CerResult {
  check(refs.length === hyps.length, 'bad-labels', () => `expected as many readings as references (${refs.length}), found ${hyps.length}`, { file: opts.file ?? '<labels>' });
  const norm = (s: string): string => (opts.ignoreSpace ? s.replace(/ /g, '') : opts.trim ? s.trim() : s);
  let errors = 0;
  let refChars = 0;
  for (let i = 0; i < refs.length; i++) {
    const ref = norm(refs[i]);
    errors += editDistance(ref, norm(hyps[i]));
    refChars += Array.from(ref).length;
  }
  return { errors, refChars, cer: refChars > 0 ? errors / refChars : errors > 0 ? Infinity : 0 };
}
