// Timing of plan resolution at scale (run by hand, not a test):
//   node --import tsx server/src/plan/bench.ts
// 60 000 tensors (60 MoE blocks × 330 experts) × 50 rules (globs, classes, `**`, regexes, dead and shadowed
// rules). Prints the index build, a cold resolve (no cached matches), a warm one (one rule edited, as after a
// keystroke) and the full analyzePlan, each against a naive every-tensor-every-rule loop over the same RegExps.
// Times are process CPU time (medians), so a busy machine does not inflate them.
import { analyzePlan } from './index';
import { compilePattern, layerPath, TensorIndex, type CompiledPattern, type PlanTensor } from './match';
import { parsePlan } from './parse';
import { resolvePlan } from './resolve';

function model(): PlanTensor[] {
  const out: PlanTensor[] = [];
  const add = (name: string, block: string, layer: string, params: number, fusedGroup?: string) =>
    out.push({ name, layer: fusedGroup ? { block, layer, fusedGroup } : { block, layer }, params, analyzable: true });
  for (let b = 0; b < 60; b++) {
    const blk = `model.layers.${b}`;
    for (const p of ['q', 'k', 'v']) {
      add(`${blk}.self_attn.${p}_proj.weight`, blk, `self_attn.${p}_proj`, 1 << 22, `${blk}.self_attn.qkv`);
      add(`${blk}.self_attn.${p}_proj.bias`, blk, `self_attn.${p}_proj`, 1 << 11, `${blk}.self_attn.qkv`);
    }
    add(`${blk}.self_attn.o_proj.weight`, blk, 'self_attn.o_proj', 1 << 22);
    add(`${blk}.input_layernorm.weight`, blk, 'input_layernorm', 1 << 11);
    add(`${blk}.post_attention_layernorm.weight`, blk, 'post_attention_layernorm', 1 << 11);
    add(`${blk}.mlp.gate.weight`, blk, 'mlp.gate', 1 << 19);
    for (let e = 0; e < 330; e++) {
      for (const p of ['gate_proj', 'up_proj', 'down_proj']) {
        const g = p === 'down_proj' ? `${blk}.mlp.experts.*.down_proj` : `${blk}.mlp.experts.*.gate_up`;
        add(`${blk}.mlp.experts.${e}.${p}.weight`, blk, `mlp.experts.${e}.${p}`, 1 << 21, g);
      }
    }
  }
  return out;
}

function plan(): string {
  const rules: string[] = [];
  for (let b = 0; b < 30; b++) rules.push(`model.layers.${b}.mlp.experts.*.down_proj`);
  rules.push(
    'model.layers.*.self_attn.[qkv]_proj', 'model.layers.*.self_attn.o_proj.weight', '**.experts.1??.up_proj',
    'model.layers.[4-5]?.mlp.experts.*.gate_proj', 'model.layers.*.mlp.gate', '**layernorm*',
    '/experts\\.(3|4)\\d\\.up_proj/', '/^model\\.layers\\.5\\d\\.mlp\\.experts\\.7\\./', '/down_proj\\.weight$/',
    'model.layers.1.mlp.experts.2.down_proj', // shadowed by rule 1
    'model.layers.*.attn.q_proj', 'lm_head', // dead
    'model.layers.3?.mlp.experts.[0-4]*.up_proj', '**.experts.29?.gate_proj', 'model.layers.*.mlp.experts.33?.*',
    '/gate_proj/', 'model.layers.5?.self_attn.*', 'model.layers.1?.mlp.experts.*.*', '**', 'model.**.weight',
  );
  return `model: ./m.safetensors\ndefaults: { format: int4_g128_asym }\nrules:\n${rules.map((r) => `  - match: "${r.replace(/\\/g, '\\\\')}"\n    format: int8_ch_sym\n`).join('')}`;
}

/** Median CPU milliseconds of `f` (process CPU time, so other load on the machine does not inflate it). */
function median(f: () => void, reps: number): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = process.cpuUsage();
    f();
    const d = process.cpuUsage(s);
    t.push((d.user + d.system) / 1000);
  }
  return t.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

const tensors = model();
const text = plan();
const parsed = parsePlan(text, '/tmp/bench.quant.yaml').plan;
const patterns = parsed.rules.map((r) => compilePattern(r.match!.value) as CompiledPattern);
console.log(`${tensors.length} tensors × ${patterns.length} rules`);

const build = median(() => new TensorIndex(tensors), 5);
const fresh = Array.from({ length: 5 }, () => new TensorIndex(tensors));
const cold = median(() => resolvePlan(parsed, patterns, fresh.pop()!), 5);
const ix = new TensorIndex(tensors);
resolvePlan(parsed, patterns, ix);
let edit = 0;
const warm = median(() => {
  // One edited pattern per run, as after a keystroke: everything else comes from the cache.
  const p = [...patterns];
  p[3] = compilePattern(`model.layers.${3 + (edit++ % 20)}.mlp.experts.*.down_proj`) as CompiledPattern;
  resolvePlan(parsed, p, ix);
}, 21);
const analyze = median(() => analyzePlan(text, '/tmp/bench.quant.yaml', { isFormat: () => true, formatIds: () => [], tensors: ix, checkPath: false }), 21);
const naive = median(() => {
  const owner = new Int32Array(tensors.length).fill(-1);
  tensors.forEach((t, i) => {
    const path = layerPath(t.layer);
    owner[i] = patterns.findIndex((p) => p.re.test(t.name) || p.re.test(path));
  });
}, 3);
console.log(`index build ${build.toFixed(1)} ms (once per tensor list)`);
console.log(`resolve, cold ${cold.toFixed(1)} ms; warm (one rule edited) ${warm.toFixed(1)} ms; analyzePlan warm ${analyze.toFixed(1)} ms`);
console.log(`naive first-match loop ${naive.toFixed(1)} ms (${(naive / cold).toFixed(1)}× the cold resolve)`);
