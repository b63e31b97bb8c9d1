// Patterns synthesized from sets of names, not translated from the plan's globs: every dialect matches a
// different namespace (GGUF tensor names, module names, quantizer names) with different semantics (search vs
// prefix match, first vs last match wins), so each exported pattern is built to select EXACTLY the names its unit
// decides among all the dialect's names, checked against the dialect's own matching rule, and replaced by an
// explicit list of names when the compact form would select anything else. Disjoint exact patterns make the
// export independent of the tool's rule order.

/** Names sharing a prefix and suffix around one block number: `pre.<block>.post`. */
export type Piece = { pre: string; blocks: number[] | 'all'; posts: string[] } | { name: string };

const BLOCK = /^(.*?)\.(\d+)\.(.+)$/;

/**
 * `chosen` (a subset of `universe`) as pieces: names that differ only in their block number become one piece, with
 * `all` when the piece covers every block the universe has for that prefix/suffix; pieces with the same prefix
 * and blocks merge their suffixes. Order follows `chosen`.
 */
export function pieces(chosen: readonly string[], universe: readonly string[]): Piece[] {
  const full = new Map<string, Set<number>>();
  for (const n of universe) {
    const m = BLOCK.exec(n);
    if (!m) continue;
    const key = `${m[1]}\u0000${m[3]}`;
    let s = full.get(key);
    if (!s) full.set(key, (s = new Set()));
    s.add(+m[2]);
  }
  const groups = new Map<string, { pre: string; post: string; blocks: number[] } | { name: string }>();
  for (const n of chosen) {
    const m = BLOCK.exec(n);
    if (!m) {
      groups.set(`\u0001${n}`, { name: n });
      continue;
    }
    const key = `${m[1]}\u0000${m[3]}`;
    const g = groups.get(key);
    if (g && 'blocks' in g) g.blocks.push(+m[2]);
    else groups.set(key, { pre: m[1], post: m[3], blocks: [+m[2]] });
  }
  const merged = new Map<string, Piece>();
  for (const [key, g] of groups) {
    if ('name' in g) {
      merged.set(key, g);
      continue;
    }
    const blocks = [...new Set(g.blocks)].sort((a, b) => a - b);
    const all = blocks.length === full.get(key)!.size;
    const mkey = `${g.pre}\u0000${all ? 'all' : blocks.join(',')}`;
    const p = merged.get(mkey);
    if (p && 'posts' in p) p.posts.push(g.post);
    else merged.set(mkey, { pre: g.pre, blocks: all ? 'all' : blocks, posts: [g.post] });
  }
  return [...merged.values()];
}

export const escapeRegex = (s: string): string => s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');

const alt = (xs: readonly string[]) => (xs.length === 1 ? xs[0] : `(?:${xs.join('|')})`);

/** Alternatives sharing leading / trailing dotted parts, with those parts factored out: `self_attn\.(?:q_proj|k_proj)`. */
function altParts(names: readonly string[]): string {
  if (names.length === 1) return escapeRegex(names[0]);
  const split = names.map((n) => n.split('.'));
  const min = Math.min(...split.map((s) => s.length));
  let head = 0;
  while (head < min - 1 && split.every((s) => s[head] === split[0][head])) head++;
  let tail = 0;
  while (head + tail < min - 1 && split.every((s) => s[s.length - 1 - tail] === split[0][split[0].length - 1 - tail])) tail++;
  const first = split[0];
  const mids = split.map((s) => s.slice(head, s.length - tail).map(escapeRegex).join('\\.'));
  return [...first.slice(0, head).map(escapeRegex), alt(mids), ...first.slice(first.length - tail).map(escapeRegex)].join('\\.');
}

/** One unanchored regex (ECMAScript / Python `re` syntax) for the pieces. */
export function piecesRegex(ps: readonly Piece[]): string {
  return alt(ps.map((p) => ('name' in p
    ? escapeRegex(p.name)
    : `${escapeRegex(p.pre)}\\.${p.blocks === 'all' ? '\\d+' : alt(p.blocks.map(String))}\\.${altParts(p.posts)}`)));
}

/** A dialect's matching rule: compile a pattern once, then test names. */
export type Matcher = (pattern: string) => (name: string) => boolean;

/**
 * An anchored regex selecting exactly `chosen` within `universe` under `matches` (the dialect's own rule), or,
 * when the compact form does not, the explicit alternation of the names.
 */
export function exactRegex(chosen: readonly string[], universe: readonly string[], matches: Matcher): string {
  const compact = `^${piecesRegex(pieces(chosen, universe))}$`;
  if (selectsExactly(compact, chosen, universe, matches)) return compact;
  return `^${alt([...new Set(chosen)].map(escapeRegex))}$`;
}

export function selectsExactly(pattern: string, chosen: readonly string[], universe: readonly string[], matches: Matcher): boolean {
  const want = new Set(chosen);
  const test = matches(pattern);
  return universe.every((n) => test(n) === want.has(n));
}

/** Python `re.match` (anchored at the start) approximated by a JavaScript RegExp: the syntax used here is common to both. */
export const pythonMatch: Matcher = (pattern) => {
  const re = new RegExp(`^(?:${pattern})`);
  return (name) => re.test(name);
};

/** Python `fnmatch.fnmatch` on POSIX (case-sensitive): `*` any run (dots included), `?` one character, `[...]` classes. */
export const fnmatch: Matcher = (pattern) => {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body[0] === '!') body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += escapeRegex(c);
  }
  const rx = new RegExp(`^${re}$`, 's');
  return (name) => rx.test(name);
};
