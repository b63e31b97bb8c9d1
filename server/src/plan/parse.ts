// Plan text → Plan with the source range of every key and value. Never throws: YAML syntax errors, unknown keys
// (with did-you-mean), wrong types, bad enum values and bad sizes all become diagnostics, and whatever part of
// the plan is well-formed is still returned so the editor keeps its lenses and hovers while the user types.
import * as nodePath from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import {
  METHODS, PLAN_SCHEMA, TARGETS,
  type Budget, type Defaults, type Field, type HighImpact, type Method, type PathValue, type Plan, type PlanDiagnostic,
  type Range, type Ratio, type Rule, type Severity, type Spanned, type Target,
} from './schema';
import { parseSize, sizeFromNumber } from './size';
import { didYouMean } from './suggest';

export interface ParsedPlan {
  plan: Plan;
  diagnostics: PlanDiagnostic[];
  /** The YAML had syntax errors (so "missing key" checks are held back: the key may be hidden by the error). */
  syntaxErrors: boolean;
}

const KEYS = {
  top: Object.keys(PLAN_SCHEMA.properties),
  budget: Object.keys(PLAN_SCHEMA.properties.budget.properties),
  defaults: Object.keys(PLAN_SCHEMA.properties.defaults.properties),
  highImpact: Object.keys(PLAN_SCHEMA.properties.high_impact.properties),
  rule: Object.keys(PLAN_SCHEMA.definitions.rule.properties),
};

/** A key and its value node (aliases resolved). */
type Entry = { key: string; keyRange: Range; node: Node | undefined; range: Range };

class Walker {
  readonly diagnostics: PlanDiagnostic[] = [];
  private readonly lc = new LineCounter();
  readonly doc: Document.Parsed;

  constructor(text: string) {
    this.doc = parseDocument(text, { lineCounter: this.lc, prettyErrors: false, uniqueKeys: true });
  }

  rangeOf(start: number, end: number): Range {
    const a = this.lc.linePos(start);
    const b = this.lc.linePos(end);
    return { start: { line: a.line - 1, character: a.col - 1 }, end: { line: b.line - 1, character: b.col - 1 } };
  }

  range(node: { range?: readonly number[] | null }): Range {
    const r = node.range ?? [0, 0];
    return this.rangeOf(r[0], r[1]);
  }

  add(range: Range, severity: Severity, code: string, message: string, suggestion?: string): void {
    this.diagnostics.push(suggestion === undefined ? { range, severity, code, message } : { range, severity, code, message, suggestion });
  }

  wrongType(e: Entry, expected: string): undefined {
    this.add(e.range, 'error', 'wrong-type', `${e.key}: expected ${expected}, found ${describe(e.node)}`);
    return undefined;
  }

  /** Entries of a mapping, reporting unknown keys (with a suggestion); keys left empty map to null. */
  entries(node: Node, known: readonly string[], where: string): Map<string, Entry | null> {
    const out = new Map<string, Entry | null>();
    if (!isMap(node)) return out;
    for (const pair of node.items as Pair<Node | null, Node | null>[]) {
      const keyNode = pair.key;
      const keyRange = keyNode ? this.range(keyNode) : this.range(node);
      // A collection used as a key is named, never stringified: rendering a deeply nested key is exponential in its depth.
      const key = isScalar(keyNode) ? String(keyNode.value) : keyNode ? `<${isSeq(keyNode) ? 'sequence' : 'mapping'} key>` : '';
      if (!known.includes(key)) {
        const s = didYouMean(key, known);
        this.add(keyRange, 'warning', 'unknown-key',
          `unknown key '${clip(key)}' in ${where}${s ? ` — did you mean '${s}'?` : ` (expected one of: ${known.join(', ')})`}`, s);
        continue;
      }
      let value: Node | null | undefined = pair.value;
      if (isAlias(value)) value = value.resolve(this.doc) as Node | undefined;
      const empty = value == null || (isScalar(value) && value.value === null && !value.source);
      if (empty) {
        this.add(keyRange, 'error', 'missing-value', `${key} has no value`);
        out.set(key, null);
        continue;
      }
      out.set(key, { key, keyRange, node: value as Node, range: this.range(pair.value ?? node) });
    }
    return out;
  }

  field<T>(e: Entry, value: T): Field<T> {
    return { value, range: e.range, keyRange: e.keyRange };
  }

  string(e: Entry, expected = 'a string'): Field<string> | undefined {
    if (!isScalar(e.node) || typeof e.node.value !== 'string' || e.node.value === '') return this.wrongType(e, expected);
    return this.field(e, e.node.value);
  }

  number(e: Entry, expected: string, ok: (n: number) => boolean): Field<number> | undefined {
    if (!isScalar(e.node) || typeof e.node.value !== 'number' || !ok(e.node.value)) return this.wrongType(e, expected);
    return this.field(e, e.node.value);
  }

  ratio(e: Entry): Field<Ratio> | undefined {
    if (isScalar(e.node) && e.node.value === 'auto') return this.field(e, 'auto');
    return this.number(e, "'auto' or a number in [0, 1]", (n) => n >= 0 && n <= 1);
  }

  oneOf<T extends string>(e: Entry, allowed: readonly T[], code: string, what: string): Field<T> | undefined {
    const s = this.string(e, `one of ${allowed.join(', ')}`);
    if (!s) return undefined;
    if ((allowed as readonly string[]).includes(s.value)) return s as Field<T>;
    const hint = didYouMean(s.value, allowed);
    this.add(e.range, 'error', code,
      `unknown ${what} '${clip(s.value)}'${hint ? ` — did you mean '${hint}'?` : ''} (expected one of: ${allowed.join(', ')})`, hint);
    return undefined;
  }

  /** Entry for an item of a list (no key: the key range is the item's own). */
  item(node: Node | null, key: string, fallback: Node): Entry {
    let value: Node | null | undefined = node;
    if (isAlias(value)) value = value.resolve(this.doc) as Node | undefined;
    const range = this.range(node ?? fallback);
    return { key, keyRange: range, node: value ?? undefined, range };
  }
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

function describe(node: Node | undefined): string {
  if (node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string '${clip(v)}'`;
    if (typeof v === 'number') return `the number ${v}`;
    return String(v);
  }
  return 'an unsupported YAML node';
}

/** Parse a plan; `planPath` anchors relative paths (`model`, `calibration`). */
export function parsePlan(text: string, planPath: string): ParsedPlan {
  const w = new Walker(text);
  const planDir = nodePath.dirname(nodePath.resolve(planPath));
  for (const e of w.doc.errors) w.add(w.rangeOf(e.pos[0], e.pos[1]), 'error', 'yaml-syntax', e.message);
  for (const e of w.doc.warnings) w.add(w.rangeOf(e.pos[0], e.pos[1]), 'warning', 'yaml', e.message);
  const syntaxErrors = w.doc.errors.length > 0;
  const plan: Plan = { rules: [] };
  const root = w.doc.contents;
  const result: ParsedPlan = { plan, diagnostics: w.diagnostics, syntaxErrors };

  if (root == null || (isScalar(root) && root.value === null)) {
    if (!syntaxErrors) w.add(w.rangeOf(0, 0), 'error', 'missing-key', 'the plan is empty: it needs at least `model:`');
    return result;
  }
  if (!isMap(root)) {
    w.add(w.range(root), 'error', 'wrong-type', `a plan is a mapping of keys (model, budget, rules, …), found ${describe(root)}`);
    return result;
  }
  const top = w.entries(root, KEYS.top, 'the plan');
  const path = (e: Entry): Field<PathValue> | undefined => {
    const s = w.string(e, 'a file or folder path');
    return s && { ...s, value: { text: s.value, path: nodePath.resolve(planDir, s.value) } };
  };

  for (const [key, e] of top) {
    if (!e) continue;
    switch (key) {
      case 'model':
        plan.model = path(e);
        break;
      case 'calibration':
        plan.calibration = path(e);
        break;
      case 'budget':
        plan.budget = budget(w, e);
        break;
      case 'method':
        plan.method = w.oneOf<Method>(e, METHODS, 'unknown-method', 'method');
        break;
      case 'defaults': {
        if (!isMap(e.node)) {
          w.wrongType(e, 'a mapping like { format: int4_g128_asym }');
          break;
        }
        const m = w.entries(e.node, KEYS.defaults, 'defaults');
        const d: Defaults = {};
        const f = m.get('format');
        if (f) d.format = w.string(f, 'a format id');
        else if (f === undefined && !syntaxErrors) w.add(e.keyRange, 'error', 'missing-key', 'defaults needs a `format`');
        const r = m.get('ratio');
        if (r) d.ratio = w.ratio(r);
        plan.defaults = w.field(e, d);
        break;
      }
      case 'high_impact':
        plan.highImpact = highImpact(w, e, syntaxErrors);
        break;
      case 'rules':
        plan.rulesAt = { keyRange: e.keyRange, range: e.range };
        if (!isSeq(e.node)) {
          w.wrongType(e, 'a list of rules (- match: …)');
          break;
        }
        e.node.items.forEach((item, index) => {
          const r = rule(w, w.item(item as Node | null, `rules[${index}]`, e.node!), index, syntaxErrors);
          if (r) plan.rules.push(r);
        });
        break;
      case 'targets': {
        if (!isSeq(e.node)) {
          w.wrongType(e, `a list of backends, e.g. [${TARGETS.slice(0, 2).join(', ')}]`);
          break;
        }
        const list: Spanned<Target>[] = [];
        e.node.items.forEach((item, i) => {
          const t = w.oneOf<Target>(w.item(item as Node | null, `targets[${i}]`, e.node!), TARGETS, 'unknown-target', 'target');
          if (t) list.push({ value: t.value, range: t.range });
        });
        plan.targets = w.field(e, list);
        break;
      }
    }
  }
  if (!top.has('model') && !syntaxErrors) w.add(w.range(root.items[0]?.key ?? root), 'error', 'missing-key', 'the plan needs `model:` (the checkpoint file or folder)');
  return result;
}

function budget(w: Walker, e: Entry): Field<Budget> | undefined {
  if (!isMap(e.node)) {
    let hint = '{ avg_bits: 4.5 } or { size: 3.9GB }';
    if (isScalar(e.node) && typeof e.node.value === 'number') hint = `{ avg_bits: ${e.node.value} }`;
    else if (isScalar(e.node) && typeof e.node.value === 'string' && 'bytes' in parseSize(e.node.value)) hint = `{ size: ${e.node.value} }`;
    return w.wrongType(e, `a mapping: write ${hint}`);
  }
  const m = w.entries(e.node, KEYS.budget, 'budget');
  const b: Budget = {};
  const bits = m.get('avg_bits');
  if (bits) b.avgBits = w.number(bits, 'a number of bits > 0', (n) => n > 0 && Number.isFinite(n));
  const size = m.get('size');
  if (size) {
    const v = isScalar(size.node) ? size.node.value : undefined;
    const r = typeof v === 'number' ? sizeFromNumber(v) : typeof v === 'string' ? parseSize(v) : undefined;
    if (!r) w.wrongType(size, 'a size like 3.9GB, 512MiB or 1.2e9');
    else if ('error' in r) w.add(size.range, 'error', 'bad-size', r.error);
    else b.size = w.field(size, r.bytes);
  }
  if (bits && size) w.add(e.range, 'error', 'budget-conflict', 'budget takes either avg_bits or size, not both');
  else if (!m.has('avg_bits') && !m.has('size')) w.add(e.keyRange, 'error', 'missing-key', 'budget needs avg_bits or size');
  return w.field(e, b);
}

function highImpact(w: Walker, e: Entry, syntaxErrors: boolean): Field<HighImpact> | undefined {
  if (!isMap(e.node)) return w.wrongType(e, 'a mapping like { hi: int8_ch_sym, lo: int2_g64_asym, ratio: auto }');
  const m = w.entries(e.node, KEYS.highImpact, 'high_impact');
  const h: HighImpact = {};
  for (const k of ['hi', 'lo'] as const) {
    const f = m.get(k);
    if (f) h[k] = w.string(f, 'a format id');
    else if (f === undefined && !syntaxErrors) w.add(e.keyRange, 'error', 'missing-key', `high_impact needs \`${k}\` (a format id)`);
  }
  const r = m.get('ratio');
  if (r) h.ratio = w.ratio(r);
  const rMax = m.get('r_max');
  if (rMax) h.rMax = w.number(rMax, 'a number in [0, 1]', (n) => n >= 0 && n <= 1);
  return w.field(e, h);
}

function rule(w: Walker, e: Entry, index: number, syntaxErrors: boolean): Rule | undefined {
  if (!isMap(e.node)) return w.wrongType(e, 'a rule mapping like { match: "model.layers.*.mlp.*", format: int8_ch_sym }');
  const m = w.entries(e.node, KEYS.rule, `rules[${index}]`);
  const r: Rule = { index, range: e.range };
  const match = m.get('match');
  if (match) r.match = w.string(match, 'a glob or /regex/ pattern string');
  else if (match === undefined && !syntaxErrors) w.add(e.range, 'error', 'missing-key', `rules[${index}] needs \`match:\` (a glob or /regex/ over tensor names)`);
  const format = m.get('format');
  if (format) r.format = w.string(format, 'a format id');
  const ratio = m.get('ratio');
  if (ratio) r.ratio = w.ratio(ratio);
  const skip = m.get('skip');
  if (skip) {
    if (isScalar(skip.node) && typeof skip.node.value === 'boolean') r.skip = w.field(skip, skip.node.value);
    else w.wrongType(skip, 'true or false');
  }
  return r;
}
