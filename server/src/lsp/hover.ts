// Hovers in a plan: a rule pattern shows what it matches (and, for a single layer, its analysis per format);
// a format id shows its definition and bits per weight.
import type { Hover, Position } from 'vscode-languageserver';
import { bitsOf } from '../plan/cost';
import { compilePattern, layerPath } from '../plan/match';
import type { Field, Range } from '../plan/schema';
import type { PlanState } from '../plan/service';
import { fmtBits, fmtBytes, fmtError, fmtParams } from '../plan/text';
import { getFormat } from '../quant/registry';

/** Names listed in a pattern hover. */
export const HOVER_NAMES = 10;

export function inRange(r: Range, p: Position): boolean {
  const afterStart = p.line > r.start.line || (p.line === r.start.line && p.character >= r.start.character);
  const beforeEnd = p.line < r.end.line || (p.line === r.end.line && p.character <= r.end.character);
  return afterStart && beforeEnd;
}

export function planHover(state: PlanState, pos: Position): Hover | null {
  const { plan } = state.analysis;
  const formats: [Field<string> | undefined, number][] = [
    [plan.defaults?.value.format, -1],
    [plan.highImpact?.value.hi, -2],
    [plan.highImpact?.value.lo, -2],
    ...plan.rules.map((r, k): [Field<string> | undefined, number] => [r.format, k]),
  ];
  for (const [f, k] of formats) if (f && inRange(f.range, pos)) return { range: f.range, contents: { kind: 'markdown', value: formatHover(state, f.value, k) } };
  for (let k = 0; k < plan.rules.length; k++) {
    const m = plan.rules[k].match;
    if (m && inRange(m.range, pos)) return { range: m.range, contents: { kind: 'markdown', value: patternHover(state, k) } };
  }
  return null;
}

function formatHover(state: PlanState, id: string, slot: number): string {
  let f;
  try {
    f = getFormat(id);
  } catch (e) {
    return `**${id}**: ${(e as Error).message}`;
  }
  const lines = [`**${f.id}** (${f.family})`, '', f.description, '', `${fmtBits(f.bitsPerWeight([4096, 4096], 'out_in'))} bits/weight on a 4096×4096 matrix, scales and zero points included.`];
  const cost = state.cost;
  if (cost && slot >= -1) {
    const c = cost.slots[slot + 1];
    const who = slot === -1 ? 'defaults' : `rules[${state.analysis.plan.rules[slot].index}]`;
    if (c.params > 0) lines.push('', `Here (${who}): ${fmtBits(c.bits / c.params)} bits/weight over ${c.tensors} tensors, ${fmtBytes(c.bits / 8)}.`);
  }
  return lines.join('\n');
}

function patternHover(state: PlanState, k: number): string {
  const rule = state.analysis.plan.rules[k];
  const text = rule.match!.value;
  const p = compilePattern(text);
  if ('error' in p) return `\`${text}\`: ${p.error}`;
  const r = state.resolved;
  if (!r) return `\`${text}\` (${p.kind}) — the model is not loaded, so matches are unknown.`;
  const ids = r.index.matches(p);
  const report = state.analysis.rules[k];
  const lines = [`\`${text}\` (${p.kind}) matches **${ids.length}** tensor${ids.length === 1 ? '' : 's'}; this rule decides ${report?.tensors.length ?? 0}.`];
  if (ids.length) lines.push('');
  for (let j = 0; j < Math.min(ids.length, HOVER_NAMES); j++) {
    const t = r.index.tensors[ids[j]];
    const owner = r.owner[ids[j]];
    const by = owner === k ? '' : owner === -1 ? ' — defaults' : ` — taken by rules[${state.analysis.plan.rules[owner].index}]`;
    lines.push(`- \`${t.name}\` ${t.shape ? `[${t.shape.join('×')}]` : `${fmtParams(t.params)} params`}${by}`);
  }
  if (ids.length > HOVER_NAMES) lines.push(`- … and ${ids.length - HOVER_NAMES} more`);
  const layers = new Set<string>();
  for (const id of ids) if (layers.add(layerPath(r.index.tensors[id].layer)).size > 1) break;
  if (layers.size === 1) lines.push('', layerDetail(state, [...layers][0], ids));
  return lines.join('\n');
}

/** One layer: its allocated format and bits, and the cached analysis per format when there is one. */
function layerDetail(state: PlanState, path: string, ids: Int32Array): string {
  const r = state.resolved!;
  const weight = [...ids].find((id) => (r.index.tensors[id].shape?.length ?? 0) >= 2) ?? ids[0];
  const t = r.index.tensors[weight];
  const d = r.decisions[r.owner[weight] + 1];
  const bits = bitsOf(r.index, weight, d.format);
  const lines = [`**Layer \`${path}\`**: ${d.format ?? 'original precision'}, ${fmtBits(bits / t.params)} bits/weight${d.ratio !== undefined ? `, high-impact ratio ${d.ratio}` : ''}.`];
  const layer = state.model?.report?.layers.find((l) => l.name === t.name);
  if (!layer) {
    lines.push('', 'Sensitivity: not analyzed (run *Analyze*).');
    return lines.join('\n');
  }
  lines.push('', `Data-free sensitivity of \`${t.name}\`:`, '', '| format | bits/weight | error |', '|---|---|---|');
  for (const [f, e] of Object.entries(layer.errors)) lines.push(`| ${f}${f === d.format ? ' (plan)' : ''} | ${fmtBits(e.bitsPerWeight)} | ${fmtError(e.relMse)} |`);
  lines.push('', `kurtosis ${layer.stats.kurtosis.toFixed(2)}, outliers ${(100 * layer.stats.outlierShare).toFixed(3)}%, max/σ ${layer.stats.maxOverStd.toFixed(1)}`);
  return lines.join('\n');
}
