// Rule patterns over tensor names and layer paths, and an index that finds a pattern's matches without testing
// every tensor.
//
// Globs match the WHOLE name and are dot-aware: `*` and `?` stay inside one dotted part, `**` crosses dots,
// `[abc]` / `[a-z]` / `[!abc]` match one character (never a dot), `\x` is a literal x, everything else (dots
// included) is literal. `/regex/flags` is a JavaScript regex searched anywhere in the name, as llama.cpp's
// `--tensor-type` patterns are; anchor it with ^…$ for whole names (GPTQModel `dynamic` keys are anchored at
// the start only).
//
// The index splits every name and layer path into dotted parts (the vocabulary) with posting lists. A glob part
// without `**` always matches exactly one name part, so each such part narrows the candidates to the tensors
// holding a matching part; the candidate lists are intersected and only the survivors run the full RegExp.

import { layerPath } from '../formats/layers';
import type { WeightLayout } from '../formats/types';

export interface PlanTensor {
  name: string;
  layer: { block: string; layer: string; fusedGroup?: string };
  params: number;
  analyzable: boolean;
  /** Shape and layout give exact storage bits per format (see cost.ts); without them bits are estimated. */
  shape?: readonly number[];
  layout?: WeightLayout;
  /** Stored bytes (the cost of keeping the tensor in its original precision). */
  bytes?: number;
}

/** A prefilter: some name part equals `exact`, satisfies `re`, or contains `contains`. */
type PartFilter = { exact: string } | { re: RegExp } | { contains: string };

export interface CompiledPattern {
  text: string;
  kind: 'glob' | 'regex';
  re: RegExp;
  /** Conditions on name parts that every match meets; they narrow the candidates before `re` runs. */
  filters: PartFilter[];
}

export interface PatternError {
  error: string;
}

const REGEX_FORM = /^\/(.+)\/([a-z]*)$/s;

export function isRegexPattern(text: string): boolean {
  return REGEX_FORM.test(text);
}

/** Compile a rule pattern once; errors say what is wrong, for a diagnostic at the pattern. */
export function compilePattern(text: string): CompiledPattern | PatternError {
  if (text.length === 0) return { error: 'empty pattern' };
  const rx = REGEX_FORM.exec(text);
  if (rx) return compileRegex(text, rx[1], rx[2]);
  try {
    return compileGlob(text);
  } catch (e) {
    return { error: `invalid pattern: ${(e as Error).message}` }; // escaping should make this unreachable
  }
}

function compileRegex(text: string, source: string, flags: string): CompiledPattern | PatternError {
  const bad = flags.replace(/[imsuvd]/g, '');
  if (bad) return { error: `regex flag '${bad[0]}' is not allowed here (use i, m, s, u or v)` };
  try {
    const re = new RegExp(source, flags);
    return { text, kind: 'regex', re, filters: /[iv]/.test(flags) ? [] : regexFilters(source) };
  } catch (e) {
    return { error: `invalid regex: ${(e as Error).message}` };
  }
}

const escapeRe = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

function compileGlob(text: string): CompiledPattern | PatternError {
  let full = '';
  let part = ''; // RegExp source of the current dotted part
  let run = ''; // its current literal run
  let runs: string[] = [];
  let wild = false; // the part has a wildcard or class
  let crosses = false; // … and it is `**`
  const filters: PartFilter[] = [];
  const endRun = () => {
    if (run) runs.push(run);
    run = '';
  };
  const endPart = () => {
    endRun();
    if (!wild) filters.push({ exact: runs[0] ?? '' });
    else if (!crosses) {
      if (part !== '[^.]*') filters.push({ re: new RegExp(`^${part}$`) }); // a bare `*` says nothing
    } else {
      // `**` may span parts, but each literal run still lies inside one name part.
      for (const r of runs) if (r.length >= 2) filters.push({ contains: r });
    }
    part = '';
    runs = [];
    wild = crosses = false;
  };
  const emit = (re: string) => {
    endRun();
    wild = true;
    full += re;
    part += re;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '*') {
      if (text[i + 1] === '*') {
        while (text[i + 1] === '*') i++;
        emit('.*');
        crosses = true;
      } else emit('[^.]*');
    } else if (c === '?') emit('[^.]');
    else if (c === '[') {
      const cls = globClass(text, i);
      if ('error' in cls) return cls;
      emit(cls.re);
      i = cls.end;
    } else if (c === '.' || (c === '\\' && text[i + 1] === '.')) {
      // `\.` (regex habit) means the same as `.`: a dot always separates name parts.
      if (c === '\\') i++;
      full += '\\.';
      endPart();
    } else {
      let ch = c;
      if (c === '\\') {
        if (i + 1 >= text.length) return { error: 'pattern ends with a lone \\' };
        ch = text[++i];
      }
      full += escapeRe(ch);
      part += escapeRe(ch);
      run += ch;
    }
  }
  endPart();
  return { text, kind: 'glob', re: new RegExp(`^${full}$`), filters };
}

/** `[abc]`, `[a-z]`, `[!abc]` / `[^abc]` starting at `start`: a one-character RegExp that never matches a dot. */
function globClass(text: string, start: number): { re: string; end: number } | PatternError {
  let i = start + 1;
  const negate = text[i] === '!' || text[i] === '^';
  if (negate) i++;
  let body = '';
  for (let first = true; ; first = false, i++) {
    if (i >= text.length) return { error: `unclosed '[' at character ${start + 1}` };
    let c = text[i];
    if (c === ']' && !first) break;
    if (c === '\\' && i + 1 < text.length) c = text[++i];
    if (c === '.' && !negate) return { error: "'.' cannot be in a [...] class: dots separate name parts (use ** to cross them)" };
    if (text[i + 1] === '-' && i + 2 < text.length && text[i + 2] !== ']') {
      const hi = text[i + 2];
      if (hi < c) return { error: `bad range '${c}-${hi}' in [...]` };
      body += `${escapeRe(c)}-${escapeRe(hi)}`;
      i += 2;
    } else body += escapeRe(c);
  }
  // A range such as [+-/] spans '.', so positive classes exclude it explicitly.
  return { re: negate ? `[^.${body}]` : `(?!\\.)[${body}]`, end: i };
}

/**
 * Name parts every match of a regex must contain, read conservatively off its literal runs (outside groups and
 * without a top-level `|`): inside a run such as `\.7\.`, a piece between two dots is a whole name part; the
 * pieces at a run's ends may be part of a longer name part. Empty when the source is too clever to read.
 */
function regexFilters(src: string): PartFilter[] {
  if (/\\[uxpPck0-9]/.test(src)) return [];
  const runs: string[] = [];
  let run = '';
  const cut = () => {
    if (run) runs.push(run);
    run = '';
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    let lit: string | undefined;
    if (c === '|') return []; // top level: any branch may match
    if (c === '\\') {
      const n = src[++i];
      if (n !== undefined && '.*+?()[]{}|^$/\\-'.includes(n)) lit = n;
    } else if (c === '[') i = skipClass(src, i);
    else if (c === '(') {
      for (let depth = 0; i < src.length; i++) {
        if (src[i] === '\\') i++;
        else if (src[i] === '[') i = skipClass(src, i);
        else if (src[i] === '(') depth++;
        else if (src[i] === ')' && --depth === 0) break;
      }
    } else if (!'.^$*+?{}'.includes(c)) lit = c;
    const q = src[i + 1];
    if (q === '*' || q === '?' || q === '{') lit = undefined; // the atom may be absent
    if (lit === undefined) cut();
    else {
      run += lit;
      if (q === '+') cut(); // the character may repeat: what follows is not adjacent to it
    }
    // Skip the quantifier (and a lazy '?') so it is not read as an atom.
    if (q === '{') {
      while (i < src.length && src[i] !== '}') i++;
      if (src[i + 1] === '?') i++;
    } else if (q === '*' || q === '+' || q === '?') {
      i++;
      if (src[i + 1] === '?') i++;
    }
  }
  cut();
  const out: PartFilter[] = [];
  for (const r of runs) {
    const pieces = r.split('.');
    pieces.forEach((p, k) => {
      if (k > 0 && k < pieces.length - 1) out.push({ exact: p });
      else if (p.length >= 2) out.push({ contains: p });
    });
  }
  return out;
}

/** Index of the `]` closing the class that opens at `i`. */
function skipClass(src: string, i: number): number {
  for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
  return i;
}

export { layerPath };

/** Length of the name prefix that equals the layer path (ending at a dot or the end), or -1. */
function pathPrefixLength(t: PlanTensor): number {
  const { name } = t;
  const { block, layer } = t.layer;
  let at = 0;
  if (block !== '(root)') {
    if (!name.startsWith(block) || name.charCodeAt(block.length) !== 46) return -1;
    at = block.length + 1;
  }
  if (!name.startsWith(layer, at)) return -1;
  const end = at + layer.length;
  return end === name.length || name.charCodeAt(end) === 46 ? end : -1;
}

const MATCH_CACHE = 1024;
const PART_CACHE = 4096;

/**
 * The analyzable tensors of one model, indexed for pattern matching. Build it once per tensor list (see
 * `indexFor`); match results are cached by pattern text, so re-analysing an edited plan only matches the
 * patterns that changed.
 */
export class TensorIndex {
  /** Analyzable tensors, in model order; indices into this array identify tensors. */
  readonly tensors: PlanTensor[] = [];
  readonly notAnalyzable: number;
  /** Parameters per tensor id. */
  readonly params: Float64Array;
  /** Fused group per tensor id (index into `groups`), -1 for none. */
  readonly group: Int32Array;
  readonly groups: string[] = [];
  private ids: Map<string, number> | undefined;
  private readonly names: string[] = [];
  private readonly paths: string[] = [];
  private readonly postings = new Map<string, Int32Array>();
  private readonly partCache = new Map<string, Int32Array>();
  private readonly matchCache = new Map<string, Int32Array>();

  constructor(all: readonly PlanTensor[]) {
    const lists = new Map<string, number[]>();
    // Consecutive names share their leading parts (`model.layers.7.mlp.experts.`): those parts' lists are
    // reused from the previous name instead of being sliced and hashed again.
    let prev = '';
    let prevEnds: number[] = [];
    let prevLists: number[][] = [];
    const postName = (s: string, id: number) => {
      let common = 0;
      const max = Math.min(s.length, prev.length);
      while (common < max && s.charCodeAt(common) === prev.charCodeAt(common)) common++;
      const ends: number[] = [];
      const partLists: number[][] = [];
      let start = 0;
      for (let k = 0; k < prevEnds.length && prevEnds[k] < common; k++) {
        ends.push(prevEnds[k]);
        partLists.push(prevLists[k]);
        if (prevLists[k][prevLists[k].length - 1] !== id) prevLists[k].push(id);
        start = prevEnds[k] + 1;
      }
      while (start <= s.length) {
        let end = s.indexOf('.', start);
        if (end < 0) end = s.length;
        const l = post(s.slice(start, end), id);
        ends.push(end);
        partLists.push(l);
        start = end + 1;
      }
      prev = s;
      prevEnds = ends;
      prevLists = partLists;
    };
    const post = (part: string, id: number): number[] => {
      let l = lists.get(part);
      if (!l) lists.set(part, (l = []));
      if (l[l.length - 1] !== id) l.push(id);
      return l;
    };
    const groupIds = new Map<string, number>();
    const group: number[] = [];
    const params: number[] = [];
    let skipped = 0;
    for (const t of all) {
      if (!t.analyzable) {
        skipped++;
        continue;
      }
      const id = this.tensors.length;
      this.tensors.push(t);
      this.names.push(t.name);
      params.push(t.params);
      postName(t.name, id);
      // Usually the layer path starts the name: then it is a slice of it and adds no parts of its own.
      const within = pathPrefixLength(t);
      if (within >= 0) this.paths.push(t.name.slice(0, within));
      else {
        const path = layerPath(t.layer);
        this.paths.push(path);
        for (const part of path.split('.')) post(part, id);
      }
      const g = t.layer.fusedGroup;
      let gi = -1;
      if (g !== undefined) {
        gi = groupIds.get(g) ?? -1;
        if (gi < 0) groupIds.set(g, (gi = this.groups.push(g) - 1));
      }
      group.push(gi);
    }
    this.notAnalyzable = skipped;
    this.params = Float64Array.from(params);
    this.group = Int32Array.from(group);
    for (const [p, l] of lists) this.postings.set(p, Int32Array.from(l));
  }

  /** Id of an analyzable tensor by name (the name map is built on first use). */
  idOf(name: string): number | undefined {
    if (!this.ids) {
      this.ids = new Map();
      for (let i = 0; i < this.names.length; i++) if (!this.ids.has(this.names[i])) this.ids.set(this.names[i], i);
    }
    return this.ids.get(name);
  }

  /** Ids (ascending) of the tensors whose name or layer path the pattern matches. */
  matches(p: CompiledPattern): Int32Array {
    const key = `${p.kind}:${p.text}`;
    const hit = this.matchCache.get(key);
    if (hit) {
      this.matchCache.delete(key); // least-recently-used eviction: Map order is insertion order
      this.matchCache.set(key, hit);
      return hit;
    }
    const { names, paths } = this;
    const re = p.re;
    const out: number[] = [];
    const test = (i: number) => re.test(names[i]) || (paths[i] !== names[i] && re.test(paths[i]));
    const cand = this.candidates(p);
    if (p.kind === 'glob' && /^\*\*+$/.test(p.text)) {
      for (let i = 0; i < names.length; i++) out.push(i); // `**` matches every name
    } else if (cand) {
      for (let k = 0; k < cand.length; k++) if (test(cand[k])) out.push(cand[k]);
    } else {
      for (let i = 0; i < names.length; i++) if (test(i)) out.push(i);
    }
    const ids = Int32Array.from(out);
    if (this.matchCache.size >= MATCH_CACHE) this.matchCache.delete(this.matchCache.keys().next().value!);
    this.matchCache.set(key, ids);
    return ids;
  }

  /** A superset of the matches, or undefined when the pattern gives nothing to narrow by. */
  private candidates(p: CompiledPattern): Int32Array | undefined {
    if (p.filters.length === 0) return undefined;
    const lists = p.filters.map((f) => {
      if ('exact' in f) return this.postings.get(f.exact) ?? new Int32Array(0);
      if ('re' in f) return this.partIds(`r:${f.re.source}`, (w) => f.re.test(w));
      return this.partIds(`s:${f.contains}`, (w) => w.includes(f.contains));
    });
    lists.sort((a, b) => a.length - b.length);
    let cand = lists[0];
    for (let k = 1; k < lists.length && cand.length > 16; k++) cand = intersect(cand, lists[k]);
    return cand;
  }

  /** Tensors holding a vocabulary part that satisfies `keep` (cached by `key`). */
  private partIds(key: string, keep: (part: string) => boolean): Int32Array {
    let ids = this.partCache.get(key);
    if (ids) return ids;
    const hits: Int32Array[] = [];
    for (const [w, l] of this.postings) if (keep(w)) hits.push(l);
    ids = hits.length === 1 ? hits[0] : union(hits, this.tensors.length);
    if (this.partCache.size >= PART_CACHE) this.partCache.clear();
    this.partCache.set(key, ids);
    return ids;
  }
}

/** Sorted intersection; binary search in `b` when `a` is much shorter. */
function intersect(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(Math.min(a.length, b.length));
  let n = 0;
  if (a.length * 16 < b.length) {
    let lo = 0;
    for (let i = 0; i < a.length; i++) {
      let hi = b.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (b[mid] < a[i]) lo = mid + 1;
        else hi = mid;
      }
      if (lo < b.length && b[lo] === a[i]) out[n++] = a[i];
    }
    return out.subarray(0, n);
  }
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    if (a[i] < b[j]) i++;
    else if (a[i] > b[j]) j++;
    else {
      out[n++] = a[i];
      i++;
      j++;
    }
  }
  return out.subarray(0, n);
}

function union(lists: Int32Array[], n: number): Int32Array {
  const mark = new Uint8Array(n);
  let count = 0;
  for (const l of lists) {
    for (let k = 0; k < l.length; k++) {
      if (!mark[l[k]]) count++;
      mark[l[k]] = 1;
    }
  }
  const out = new Int32Array(count);
  for (let i = 0, j = 0; i < n; i++) if (mark[i]) out[j++] = i;
  return out;
}

const INDEXES = new WeakMap<readonly PlanTensor[], TensorIndex>();

/** The index of a tensor list, built on first use and kept while the list object lives. */
export function indexFor(tensors: readonly PlanTensor[]): TensorIndex {
  let ix = INDEXES.get(tensors);
  if (!ix) INDEXES.set(tensors, (ix = new TensorIndex(tensors)));
  return ix;
}
