// Count-based byte language models fitted on the training text, the baselines the tiny LM must beat:
// a unigram with add-one smoothing and a bigram interpolated with it by Witten–Bell
// (p(b|a) = (c(a,b) + u(a)·p(b)) / (c(a) + u(a)), u(a) = number of distinct bytes seen after a).
const BYTES = 256;

/** log p(b) for every byte. */
export function fitUnigram(train: Uint8Array): Float64Array {
  const counts = new Float64Array(BYTES);
  for (const b of train) counts[b]++;
  return counts.map((c) => Math.log((c + 1) / (train.length + BYTES)));
}

/** log p(b | a) at [a·256 + b]. */
export function fitBigram(train: Uint8Array, unigram: Float64Array): Float64Array {
  const pair = new Float64Array(BYTES * BYTES);
  for (let k = 1; k < train.length; k++) pair[train[k - 1] * BYTES + train[k]]++;
  const out = new Float64Array(BYTES * BYTES);
  for (let a = 0; a < BYTES; a++) {
    let total = 0;
    let distinct = 0;
    for (let b = 0; b < BYTES; b++) {
      total += pair[a * BYTES + b];
      if (pair[a * BYTES + b] > 0) distinct++;
    }
    for (let b = 0; b < BYTES; b++) {
      const pu = Math.exp(unigram[b]);
      out[a * BYTES + b] = Math.log(total === 0 ? pu : (pair[a * BYTES + b] + distinct * pu) / (total + distinct));
    }
  }
  return out;
}

/** Perplexities of both baselines on predicting text[k] from text[k−1], k = 1 … length−1. */
export function baselinePerplexities(train: Uint8Array, text: Uint8Array): { unigram: number; bigram: number } {
  const uni = fitUnigram(train);
  const bi = fitBigram(train, uni);
  let nu = 0;
  let nb = 0;
  for (let k = 1; k < text.length; k++) {
    nu -= uni[text[k]];
    nb -= bi[text[k - 1] * BYTES + text[k]];
  }
  const n = text.length - 1;
  return { unigram: Math.exp(nu / n), bigram: Math.exp(nb / n) };
}
