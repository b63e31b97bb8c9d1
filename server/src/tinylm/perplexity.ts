// Held-out perplexity of the tiny LM: each row of token windows predicts its own tokens 1 … L−1 from the tokens
// before them (the row is the whole context), by the forward graph on onnxruntime; perplexity = exp(mean NLL).
import { Tensor } from 'onnxruntime-node';
import { check } from '../formats/errors';
import { createSession } from '../runtime/session';
import type { TinyLlamaConfig, TinyWeights } from './config';
import { buildForwardModel, INPUT_IDS, LOGITS } from './graph';

export interface TokenWindows {
  /** Row-major [rows, length] token ids. */
  data: ArrayLike<number>;
  rows: number;
  length: number;
}

/** Rows of length T+1 every T tokens: every token after the first is predicted exactly once (baselines: text[0 … rows·T]). */
export function evaluationWindows(text: Uint8Array, T: number): TokenWindows {
  const rows = Math.floor((text.length - 1) / T);
  const data = new Uint8Array(rows * (T + 1));
  for (let r = 0; r < rows; r++) data.set(text.subarray(r * T, r * T + T + 1), r * (T + 1));
  return { data, rows, length: T + 1 };
}

export async function modelPerplexity(c: TinyLlamaConfig, w: TinyWeights, windows: TokenWindows, opts: { batch?: number; providers?: readonly string[] } = {}): Promise<{ perplexity: number; tokens: number }> {
  const L = windows.length;
  check(L >= 2 && L - 1 <= c.maxPositions && windows.data.length === windows.rows * L, 'bad-windows', `expected [rows, 2…${c.maxPositions + 1}] token windows, found ${windows.rows} rows of ${L}`, { file: '<evaluation windows>' });
  const { session } = await createSession(buildForwardModel(c, w), { providers: opts.providers });
  const V = c.vocabSize;
  const T = L - 1;
  const batch = opts.batch ?? 16;
  let nll = 0;
  let count = 0;
  try {
    for (let r0 = 0; r0 < windows.rows; r0 += batch) {
      const n = Math.min(batch, windows.rows - r0);
      const ids = new BigInt64Array(n * T);
      for (let r = 0; r < n; r++) for (let t = 0; t < T; t++) ids[r * T + t] = BigInt(windows.data[(r0 + r) * L + t]);
      const logits = (await session.run({ [INPUT_IDS]: new Tensor('int64', ids, [n, T]) }))[LOGITS].data as Float32Array;
      for (let r = 0; r < n; r++) {
        for (let t = 0; t < T; t++) {
          const at = (r * T + t) * V;
          let m = -Infinity;
          for (let k = 0; k < V; k++) m = Math.max(m, logits[at + k]);
          let z = 0;
          for (let k = 0; k < V; k++) z += Math.exp(logits[at + k] - m);
          nll += m + Math.log(z) - logits[at + windows.data[(r0 + r) * L + t + 1]];
          count++;
        }
      }
    }
  } finally {
    await session.release();
  }
  return { perplexity: Math.exp(nll / count), tokens: count };
}
