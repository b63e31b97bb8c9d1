// Did-you-mean: the closest candidate by edit distance, when it is close enough to be a plausible typo.

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const n = b.length;
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  let cur = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[n];
}

const normalize = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');

/** The candidate `word` most likely meant, or undefined when none is within max(1, ⌊length/3⌋) edits. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  if (word.length > 100) return undefined; // no typo is that long; keeps the quadratic distance cheap
  let best: string | undefined;
  let bestD = Infinity;
  const w = normalize(word);
  for (const c of candidates) {
    if (c === word) continue;
    // Spelling variants (avg-bits, highImpact, AVG_BITS) count as exact.
    const d = normalize(c) === w ? 0 : editDistance(word, c);
    if (d < bestD && d <= Math.max(1, Math.floor(c.length / 3))) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
