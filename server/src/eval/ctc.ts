// Greedy CTC decoding for PaddleOCR-style recognizers, and their character dictionary.
//
// Index mapping (PaddleOCR BaseRecLabelDecode + CTCLabelDecode): class 0 is the CTC blank, class i (1 ≤ i ≤ K)
// is line i of the dictionary file (a trailing "\n" or "\r\n" stripped), and with use_space_char a space is
// class K + 1. PP-OCRv4's recognizer has 6625 classes = blank + 6623 keys of ppocr_keys_v1.txt + space.
import { promises as fsp } from 'node:fs';
import { check, QuantLensError, type Location } from '../formats/errors';

/** A dictionary far larger than any OCR alphabet is a wrong file, not a vocabulary. */
const MAX_DICT_BYTES = 16 * 1024 * 1024;

export interface CtcVocab {
  /** labels[c] is the text of class c; labels[0] (the blank) is ''. */
  labels: string[];
}

/** Dictionary text → vocabulary. Every line is one class, so an empty line inside the file is an error. */
export function parseDictionary(text: string, file = '<dictionary>', useSpaceChar = true): CtcVocab {
  const lines = text.split('\n');
  // Like Python's readlines(): a final newline ends the last line instead of starting an empty one.
  if (lines[lines.length - 1] === '') lines.pop();
  const labels = [''];
  let offset = 0;
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    check(line.length > 0, 'bad-dictionary', () => `expected one character (or token) per line, found an empty line (class ${labels.length})`, { file, offset });
    labels.push(line);
    offset += Buffer.byteLength(raw, 'utf8') + 1;
  }
  check(labels.length > 1, 'bad-dictionary', 'expected at least one dictionary line, found none', { file, offset: 0 });
  if (useSpaceChar) labels.push(' ');
  return { labels };
}

export async function loadDictionary(file: string, useSpaceChar = true): Promise<CtcVocab> {
  const st = await fsp.stat(file).catch(() => {
    throw new QuantLensError('not-found', 'dictionary file not found', { file });
  });
  check(st.size <= MAX_DICT_BYTES, 'bad-dictionary', () => `expected a dictionary of at most ${MAX_DICT_BYTES} bytes, found ${st.size}`, { file, offset: 0 });
  const bytes = await fsp.readFile(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new QuantLensError('bad-dictionary', 'expected UTF-8 text, found invalid byte sequences', { file, offset: 0 });
  }
  return parseDictionary(text, file, useSpaceChar);
}

/** Best class per step of one sequence [T, C] stored row-major in `probs` from `base`. */
export function argmaxSteps(probs: Float32Array, base: number, steps: number, classes: number): { index: Int32Array; prob: Float32Array } {
  const index = new Int32Array(steps);
  const prob = new Float32Array(steps);
  for (let t = 0; t < steps; t++) {
    const row = base + t * classes;
    let best = 0;
    let bestV = probs[row];
    for (let c = 1; c < classes; c++) {
      const v = probs[row + c];
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    index[t] = best;
    prob[t] = bestV;
  }
  return { index, prob };
}

/** Positions kept by greedy CTC: a step survives when it is not the blank and differs from the step before. */
export function collapse(index: ArrayLike<number>): number[] {
  const kept: number[] = [];
  for (let t = 0; t < index.length; t++) {
    if (index[t] !== 0 && (t === 0 || index[t] !== index[t - 1])) kept.push(t);
  }
  return kept;
}

export interface Decoded {
  text: string;
  /** Mean probability of the kept steps (PaddleOCR's score); 0 for an empty reading. */
  score: number;
}

/**
 * Greedy decode of a batch of per-step class scores `dims` = [N, T, C] (probabilities or logits: argmax is
 * the same). C must equal the vocabulary size.
 */
export function ctcDecode(probs: Float32Array, dims: readonly number[], vocab: CtcVocab, where: Location = { file: '<model output>' }): Decoded[] {
  check(dims.length === 3, 'bad-output', () => `expected recognizer output [N, T, C], found rank ${dims.length} [${dims.join(', ')}]`, where);
  const [n, steps, classes] = dims;
  check(classes === vocab.labels.length, 'bad-output', () => `expected ${vocab.labels.length} classes (blank + dictionary${vocab.labels[vocab.labels.length - 1] === ' ' ? ' + space' : ''}), found ${classes}`, where);
  check(n * steps * classes === probs.length, 'bad-output', () => `shape [${dims.join(', ')}] needs ${n * steps * classes} values, found ${probs.length}`, where);
  const out: Decoded[] = [];
  for (let i = 0; i < n; i++) {
    const { index, prob } = argmaxSteps(probs, i * steps * classes, steps, classes);
    const kept = collapse(index);
    let sum = 0;
    for (const t of kept) sum += prob[t];
    out.push({ text: kept.map((t) => vocab.labels[index[t]]).join(''), score: kept.length ? sum / kept.length : 0 });
  }
  return out;
}
