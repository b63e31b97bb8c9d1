// Code lenses on a llama.cpp tensor-type file (`pattern=type` tokens, as `llama-quantize --tensor-type-file`
// reads them; `quantlens export --to llama.cpp` writes `<plan>.tensor-types.txt`): per entry, which tensors of
// the model it decides, the QuantLens format its GGML type is, their size and predicted error.
//
// llama-quantize semantics: patterns are lower-cased and searched (std::regex_search, ECMAScript grammar) in GGUF
// tensor names; the first matching entry decides a tensor; only tensors with two or more axes are quantized.
import type { CodeLens } from 'vscode-languageserver';
import { FROM_GGML, ggufName } from '../export/ggml';
import { indexFor } from '../plan/match';
import type { Range } from '../plan/schema';
import type { ModelInfo } from '../plan/service';
import { entrySummary } from './entrySummary';

const MAX_ENTRIES = 10_000;
const MAX_PATTERN = 4096;
/** A quantified group holding a quantifier, e.g. `(a+)+`: exponential backtracking on hostile patterns. */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]/;

interface Entry {
  range: Range;
  pattern: string;
  type: string;
  /** Compiled pattern, or why it is not. */
  re: RegExp | string;
}

/** Whitespace-separated `pattern=type` tokens; a `#` at the start of a line comments the line out. */
export function parseTensorTypeFile(text: string): Entry[] {
  const out: Entry[] = [];
  const lines = text.split('\n');
  for (let line = 0; line < lines.length && out.length < MAX_ENTRIES; line++) {
    if (lines[line].startsWith('#')) continue;
    for (const m of lines[line].matchAll(/\S+/g)) {
      const tok = m[0];
      const eq = tok.indexOf('=');
      const range = { start: { line, character: m.index! }, end: { line, character: m.index! + tok.length } };
      if (eq <= 0) {
        out.push({ range, pattern: tok, type: '', re: 'expected pattern=type' });
        continue;
      }
      const pattern = tok.slice(0, eq).toLowerCase();
      let re: RegExp | string;
      if (pattern.length > MAX_PATTERN) re = `pattern longer than ${MAX_PATTERN} characters`;
      else if (NESTED_QUANTIFIER.test(pattern)) re = 'nested quantifiers (exponential backtracking): not evaluated';
      else {
        try {
          re = new RegExp(pattern);
        } catch (e) {
          re = `invalid regex: ${(e as Error).message}`;
        }
      }
      out.push({ range, pattern, type: tok.slice(eq + 1), re });
    }
  }
  return out;
}

const label = (range: Range, title: string): CodeLens => ({ range, command: { title, command: '' } });

export function tensorTypeLenses(text: string, model: ModelInfo | undefined): CodeLens[] {
  const entries = parseTensorTypeFile(text);
  if (!model?.tensors?.length) return entries.slice(0, 1).map((e) => label(e.range, 'no checkpoint found beside this file or its plan: matches unknown'));
  const index = indexFor(model.tensors);
  // GGUF names of the tensors llama-quantize would quantize, with their ids in the plan index.
  const names: string[] = [];
  const ids: number[] = [];
  index.tensors.forEach((t, id) => {
    if ((t.shape?.length ?? 2) < 2) return;
    const n = model.format === 'gguf' ? t.name : ggufName(t.name);
    if (n === undefined) return;
    names.push(n);
    ids.push(id);
  });
  const taken = new Uint8Array(names.length);
  return entries.map((e) => {
    if (typeof e.re === 'string') return label(e.range, e.re);
    const format = FROM_GGML[e.type.toLowerCase()];
    if (format === undefined) return label(e.range, `unknown GGML type '${e.type}'`);
    let matched = 0;
    const decided: number[] = [];
    let first = '';
    for (let k = 0; k < names.length; k++) {
      if (!e.re.test(names[k])) continue;
      matched++;
      if (taken[k]) continue;
      taken[k] = 1;
      first ||= names[k];
      decided.push(ids[k]);
    }
    if (matched === 0) return label(e.range, 'matches no tensor');
    if (decided.length === 0) return label(e.range, `never applies: earlier entries take its ${matched} tensors`);
    const what = format === null ? `${e.type}: kept in float` : `${e.type} ≈ ${format}`;
    const n = decided.length;
    return label(e.range, `${n} tensor${n === 1 ? '' : 's'} (${first}${n > 1 ? ', …' : ''}) · ${what} · ${entrySummary(index, model.report, decided, format)}`);
  });
}
