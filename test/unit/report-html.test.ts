// `quantlens report`: one self-contained HTML file whose charts carry the model's layers, a budget's exact
// allocation or a plan's formats; the CSP admits exactly the inlined scripts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';
import { writeReport } from '../../server/src/commands/report';
import { QuantLensError } from '../../server/src/formats/errors';

const FORMATS = 'int4_g128_asym,int8_ch_sym';
// Bits per weight of the two formats (hand count, scales included): int8 per channel: 8 + 16/row (one fp16 scale per
// row); int4 asym g128 on rows shorter than 128: one group per row, 4 + (16 + 4)/row (fp16 scale + 4-bit zero).
// Rows of 8: int8 10, int4 6.5; rows of 16 (down_proj): int8 9, int4 5.25.
const BITS = { int8_ch_sym: { 8: 10, 16: 9 }, int4_g128_asym: { 8: 6.5, 16: 5.25 } } as const;

/** Layer → [format, bits] from the bits chart's per-format traces. */
function barsByLayer(chart: ChartJson): Map<string, [string, number]> {
  const out = new Map<string, [string, number]>();
  for (const t of chart.data) (t.x as string[]).forEach((n, i) => t.y![i] !== null && out.set(n, [t.name!, t.y![i]!]));
  return out;
}

interface ChartJson {
  id: string;
  data: { x?: unknown[]; y?: (number | null)[]; text?: string[]; name?: string }[];
  layout: unknown;
}

function parse(html: string): { charts: ChartJson[]; scripts: string[]; csp: string } {
  const json = /<script type="application\/json" id="charts">([\s\S]*?)<\/script>/.exec(html)![1];
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  const csp = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)![1];
  return { charts: JSON.parse(json), scripts, csp };
}

function setup() {
  const t = tempDir();
  const model = path.join(t.dir, 'tiny');
  mkdirSync(model);
  writeFixtureSafetensors(path.join(model, 'model.safetensors'), tinyLlamaTensors());
  const twoD = tinyLlamaTensors().filter((x) => x.shape.length === 2);
  return { ...t, model, twoD };
}

const rowOf = (twoD: ReturnType<typeof setup>['twoD'], name: string) => twoD.find((t) => t.name === name)!.shape[1] as 8 | 16;

test('report: self-contained page, CSP hashes of its own scripts, every 2-D tensor in the charts', async () => {
  const { dir, model, twoD, cleanup } = setup();
  try {
    const out = await writeReport(model, { html: path.join(dir, 'r.html'), formats: FORMATS, cache: false, threads: '0' });
    const html = readFileSync(out, 'utf8');
    const { charts, scripts, csp } = parse(html);
    assert.equal(scripts.length, 2);
    const plotly = readFileSync(require.resolve('plotly.js-dist-min/plotly.min.js'), 'utf8');
    assert.equal(scripts[0], plotly);
    for (const s of scripts) assert.ok(csp.includes(`'sha256-${createHash('sha256').update(s).digest('base64')}'`));
    assert.match(csp, /^default-src 'none';/);
    // Nothing outside Plotly's own source points at the network.
    const page = html.replace(plotly, '');
    assert.doesNotMatch(page, /\b(src|href)=/);
    assert.deepEqual(charts.map((c) => c.id), ['bits', 'heatmap', 'groups', 'pareto', 'agreement']);
    const bits = charts[0].data[0];
    assert.deepEqual([...(bits.x as string[])].sort(), twoD.map((t) => t.name).sort());
    // Depth order: block 0's layers all come before block 1's.
    const x = bits.x as string[];
    const lastOf0 = Math.max(...x.map((n, i) => (n.includes('layers.0.') ? i : -1)));
    assert.ok(lastOf0 >= 0 && lastOf0 < x.findIndex((n) => n.includes('layers.1.')));
    // No plan or budget: the lowest-bit format everywhere.
    assert.deepEqual(bits.y, x.map((n) => BITS.int4_g128_asym[rowOf(twoD, n)]));
    // The group map is the worst layer's; the planted super weight (row 3, col 5 of layers.1 down_proj) is marked
    // when that layer is the one shown.
    const groups = charts.find((c) => c.id === 'groups')!;
    assert.ok(groups.data.length >= 1);
    await assert.rejects(writeReport(model, { html: out, formats: FORMATS, cache: false, threads: '0' }), (e: unknown) => e instanceof QuantLensError && /--force/.test(e.message));
  } finally {
    cleanup();
  }
});

test('report --budget: the exact allocation fits the budget and is marked on the Pareto curve', async () => {
  const { dir, model, twoD, cleanup } = setup();
  try {
    const out = await writeReport(model, { html: path.join(dir, 'r.html'), formats: FORMATS, budget: '8', cache: false, threads: '0' });
    const { charts } = parse(readFileSync(out, 'utf8'));
    const bars = barsByLayer(charts[0]);
    assert.deepEqual([...bars.keys()].sort(), twoD.map((t) => t.name).sort());
    let total = 0;
    let params = 0;
    for (const [n, [fmt, b]] of bars) {
      assert.equal(b, BITS[fmt as keyof typeof BITS][rowOf(twoD, n)], n);
      const t = twoD.find((u) => u.name === n)!;
      total += b * t.data.length;
      params += t.data.length;
    }
    assert.ok(total / params <= 8 + 1e-9, `average ${total / params}`);
    assert.deepEqual(charts[0].data.map((t) => t.name), ['int4_g128_asym', 'int8_ch_sym'], 'a budget of 8 leaves room for some int8 layers');
    const pareto = charts.find((c) => c.id === 'pareto')!;
    assert.equal(pareto.data[1].name, 'current budget');
    await assert.rejects(writeReport(model, { html: path.join(dir, 'x.html'), formats: FORMATS, budget: '1', cache: false, threads: '0' }), /infeasible/);
  } finally {
    cleanup();
  }
});

test('report --plan: the plan\'s formats per layer', async () => {
  const { dir, model, twoD, cleanup } = setup();
  try {
    const plan = path.join(dir, 'p.quant.yaml');
    writeFileSync(plan, ['model: ./tiny', 'defaults: { format: int4_g128_asym }', 'rules:', '  - match: "model.layers.*.self_attn.q_proj"', '    format: int8_ch_sym', ''].join('\n'));
    const out = await writeReport(model, { html: path.join(dir, 'r.html'), formats: FORMATS, plan, cache: false, threads: '0' });
    const bars = barsByLayer(parse(readFileSync(out, 'utf8')).charts[0]);
    assert.deepEqual([...bars.keys()].sort(), twoD.map((t) => t.name).sort());
    for (const [n, got] of bars) {
      const f = n.includes('q_proj') ? 'int8_ch_sym' : 'int4_g128_asym';
      assert.deepEqual(got, [f, BITS[f][rowOf(twoD, n)]], n);
    }
  } finally {
    cleanup();
  }
});
