// Code lenses on the `dynamic` entries of a GPTQModel quantize_config.json: per entry, which modules of the
// model it decides (GPTQModel semantics: re.match on module names, the first matching key wins, `-:` skips), the
// format it means, their size and predicted error — the same reading `quantlens import --from gptqmodel` uses.
import type { CodeLens } from 'vscode-languageserver';
import { parseGptq } from '../export/import';
import { indexFor } from '../plan/match';
import type { ModelInfo } from '../plan/service';
import { entrySummary } from './entrySummary';

const label = (line: number, character: number, title: string): CodeLens => ({
  range: { start: { line, character }, end: { line, character } },
  command: { title, command: '' },
});

export function gptqDynamicLenses(text: string, file: string, model: ModelInfo | undefined): CodeLens[] {
  let parsed: ReturnType<typeof parseGptq>;
  try {
    parsed = parseGptq(text, file);
  } catch {
    return []; // the JSON language service reports syntax; a bad entry shows as no lenses
  }
  if (!model?.infos?.length || !model.tensors?.length || !model.format || parsed.entries.length === 0) return [];
  const index = indexFor(model.tensors);
  const idOf = new Map(index.tensors.map((t, id) => [t.name, id]));
  const decided = parsed.entries.map(() => [] as number[]);
  for (const t of model.infos) {
    const n = parsed.nameOf(t, model.format);
    const id = idOf.get(t.name);
    if (n === undefined || id === undefined) continue;
    const k = parsed.entries.findIndex((e) => e.test(n));
    if (k >= 0) decided[k].push(id);
  }
  const out: CodeLens[] = [];
  parsed.entries.forEach((e, k) => {
    const at = text.indexOf(JSON.stringify(e.label));
    if (at < 0) return;
    const line = text.slice(0, at).split('\n').length - 1;
    const character = at - (text.lastIndexOf('\n', at - 1) + 1);
    const ids = decided[k];
    if (ids.length === 0) return out.push(label(line, character, 'matches no module (or earlier keys take them all)'));
    const what = e.format === null ? 'skipped: kept in float' : e.format;
    const first = index.tensors[ids[0]].name;
    out.push(label(line, character, `${ids.length} module${ids.length === 1 ? '' : 's'} (${first}${ids.length > 1 ? ', …' : ''}) · ${what} · ${entrySummary(index, model.report, ids, e.format)}`));
  });
  return out;
}
