// Quant plan (`*.quant.yaml`) seeds: the documented example and one plan using every key (budget by size, high-impact
// ratios, per-rule methods and modifiers, regex and glob patterns, targets). The plan engine never throws: its
// contract is diagnostics with ranges inside the text. A plan with an error diagnostic counts as a clean (located)
// refusal; a throw, or a diagnostic whose range lies outside the text, is a crash. Rules resolve against the tiny
// LLaMA tensor list, so pattern matching runs on every case.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from '../../../server/src/formats/errors';
import { layerOf } from '../../../server/src/formats/layers';
import { analyzePlan, type PlanTensor } from '../../../server/src/plan/index';
import type { Range } from '../../../server/src/plan/schema';
import { FORMAT_CATALOG } from '../../../server/src/quant/registry';
import { tinyLlamaTensors } from '../../fixtures/common';
import type { Rand } from '../mutators';
import { InvariantError, type FuzzTarget, type Seed } from '../target';

const TENSORS: PlanTensor[] = tinyLlamaTensors().map((t) => ({ name: t.name, layer: layerOf(t.name), params: t.data.length, analyzable: true }));

const FULL = `model: ./model.safetensors
calibration: ./calib
budget: { size: 3.9GB }
method: hessian
defaults: { format: int4_g128_asym }
high_impact: { hi: int8_ch_sym, lo: int2_g64_asym, ratio: auto }
rules:
  - match: "model.layers.*.mlp.down_proj*"
    format: int8_ch_sym
  - match: /self_attn\\.(q|k|v)_proj/
    format: nf4_g64
    method: fisher
  - match: lm_head
    skip: true
  - match: "model.layers.1.**"
    format: fp8_e4m3
targets: [llama.cpp, onnxruntime]
`;

/** Values that stress the parser's types and the matcher's pattern compiler. */
const VALUES = [
  '', '~', 'null', '[]', '{}', '-1', '0', '1e400', '.nan', '0x10', '"', "'", '&a', '*a', '!!binary AA==', '? x', '|', '>',
  '/(a+)+$/', '/[/', '"**.**.**.**.**"', '"model.layers.99999999999999999999.*"', `"${'*'.repeat(1000)}"`, `[${'['.repeat(5000)}`,
  'int4_g0_asym', 'int99_g128_sym', 'mxfp4+had+ol', '12GB', '-3GB', '0.0001 bits',
];
const KEYS = ['model', 'budget', 'defaults', 'rules', 'match', 'format', 'skip', 'method', 'high_impact', 'ratio', 'targets', 'avg_bits', 'size', '<<'];

function mutatePlan(r: Rand, text: string): { text: string; desc: string } {
  const lines = text.split('\n');
  const i = r.int(lines.length);
  const kind = r.int(6);
  if (kind === 0) {
    const m = /^(\s*-?\s*[\w<]+:)\s*(.*)$/.exec(lines[i]);
    const v = r.pick(VALUES);
    if (m) lines[i] = `${m[1]} ${v}`;
    return { text: lines.join('\n'), desc: `line ${i + 1} value := ${v.slice(0, 40)}` };
  }
  if (kind === 1) {
    const k = r.pick(KEYS);
    lines.splice(i, 0, `${' '.repeat(r.pick([0, 2, 4, 3]))}${r.chance(0.3) ? '- ' : ''}${k}: ${r.pick(VALUES)}`);
    return { text: lines.join('\n'), desc: `insert ${k} at line ${i + 1}` };
  }
  if (kind === 2) {
    lines[i] = `${' '.repeat(r.int(9))}${lines[i].trimStart()}`;
    return { text: lines.join('\n'), desc: `reindent line ${i + 1}` };
  }
  if (kind === 3) {
    const n = r.range(1, 3);
    lines.splice(i, n);
    return { text: lines.join('\n'), desc: `delete ${n} lines at ${i + 1}` };
  }
  if (kind === 4) {
    const rules = Array.from({ length: r.pick([200, 1000]) }, (_, k) => `  - match: "model.layers.${k % 3}.*"\n    format: int8_ch_sym`);
    return { text: `${text}${text.includes('rules:') ? '' : 'rules:\n'}${rules.join('\n')}\n`, desc: `${rules.length} extra rules` };
  }
  const at = r.int(text.length + 1);
  const junk = r.pick(['\t', '\u0000', '\ufeff', '\r', ': :', '#', '---\n', '...\n', '%YAML 1.1\n', '\u{1F600}', '\ud800']);
  return { text: text.slice(0, at) + junk + text.slice(at), desc: `insert ${JSON.stringify(junk)} at char ${at}` };
}

function planSeed(label: string, text: string): Seed {
  const bytes = new TextEncoder().encode(text);
  return {
    label,
    files: [{ name: 'model.quant.yaml', bytes, fields: [], points: [0, bytes.length, ...[...text.matchAll(/\n/g)].map((m) => m.index + 1)] }],
    open: 'model.quant.yaml',
    structured: [
      {
        name: 'lines',
        weight: 3,
        run(r) {
          let t = text;
          const desc: string[] = [];
          for (let n = r.range(1, 3); n > 0; n--) {
            const o = mutatePlan(r, t);
            t = o.text;
            desc.push(o.desc);
          }
          return { files: { 'model.quant.yaml': new TextEncoder().encode(t) }, desc: desc.join('; ') };
        },
      },
    ],
  };
}

const inside = (r: Range, lines: string[]) =>
  [r.start, r.end].every((p) => p.line >= 0 && p.character >= 0 && p.line <= lines.length) && (r.end.line > r.start.line || (r.end.line === r.start.line && r.end.character >= r.start.character));

async function analyze(file: string): Promise<void> {
  const text = readFileSync(file, 'utf8');
  const a = analyzePlan(text, file, { ...FORMAT_CATALOG, tensors: TENSORS, checkPath: false });
  const lines = text.split('\n');
  for (const d of a.diagnostics) {
    if (!inside(d.range, lines)) throw new InvariantError(`diagnostic ${d.code} has range ${JSON.stringify(d.range)} outside the ${lines.length}-line text`);
  }
  const err = a.diagnostics.find((d) => d.severity === 'error');
  if (err) throw new QuantLensError(`plan-${err.code}`, err.message, { file, line: err.range.start.line + 1, column: err.range.start.character + 1 });
}

export const planTarget: FuzzTarget = {
  name: 'plan',
  seeds: () => [planSeed('plan-example', readFileSync(path.resolve(import.meta.dirname, '../../fixtures/plans/example.quant.yaml'), 'utf8')), planSeed('plan-full', FULL)],
  run: analyze,
};
