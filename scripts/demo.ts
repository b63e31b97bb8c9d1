// The README's main command (`npm run demo`, after `npm run build`): QuantLens on its own tiny LLaMA-style language
// model (models/tiny-llama, written by `npm run train:tiny-lm`), in five CLI steps a new user can re-run one by one:
//   1. inspect   the Hugging Face checkpoint: blocks, layers, fused q/k/v and gate/up groups
//   2. analyze   per-layer sensitivity on the calibration windows (data-free, Fisher, and measured KL per layer)
//   3. allocate  one format per layer under a bits-per-weight budget → a plan
//   4. quantize  the ONNX model with that plan; held-out perplexity original vs quantized, predicted vs measured
//   5. report    the HTML report with the plan's bits per layer
// Outputs go to out/demo/ and quantlens-report.html (both git-ignored); models/ is only read.
//   node --import tsx scripts/demo.ts [--model DIR] [--budget BITS]
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const CLI = 'dist/cli.js';
const OUT = 'out/demo';
/** Formats onnxruntime executes (DequantizeLinear int2–int8), so the measured perplexity is a real quantized run. */
const FORMATS = 'int2_g64_asym,int3_g128_asym,int4_g128_asym,int4_g32_asym,int8_ch_sym';

function main(): void {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'models/tiny-llama' }, budget: { type: 'string', default: '4' } } });
  const dir = values.model;
  const onnx = path.join(dir, 'model.onnx');
  const calib = path.join(dir, 'calib.npy');
  const heldout = path.join(dir, 'heldout.npy');
  const missing = [CLI, onnx, calib, heldout].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    console.error(`demo: missing ${missing.join(', ')} (run \`npm run build\`; the model comes from \`npm run train:tiny-lm\`)`);
    process.exitCode = 2;
    return;
  }
  mkdirSync(OUT, { recursive: true });
  const plan = path.join(OUT, 'tiny-llama.quant.yaml');
  const steps: [string, string[]][] = [
    ['The model: a Hugging Face Llama checkpoint (fp16 safetensors + config.json)', ['inspect', dir]],
    ['Which layers are sensitive: measured on 8 calibration windows', ['analyze', onnx, '--calib', calib, '--methods', 'datafree,fisher,empirical', '--formats', 'int4_g128_asym', '--samples', '8']],
    [`Bits per layer under a ${values.budget}-bit budget`, ['allocate', onnx, '--budget', values.budget, '--formats', FORMATS, '--plan', plan, '--force']],
    ['What it costs: quantize with the plan, perplexity on held-out text', ['quantize', onnx, '--plan', plan, '--out', path.join(OUT, 'tiny-llama.quant.onnx'), '--eval', heldout, '--force']],
    ['The charts', ['report', onnx, '--plan', plan, '--formats', FORMATS, '--html', 'quantlens-report.html', '--force']],
  ];
  const t0 = performance.now();
  for (const [k, [title, args]] of steps.entries()) {
    console.log(`\n━━ ${k + 1}/${steps.length} ${title}\n$ quantlens ${args.join(' ')}\n`);
    const r = spawnSync(process.execPath, [CLI, ...args], { stdio: 'inherit' });
    if (r.status !== 0) {
      process.exitCode = r.status ?? 1;
      return;
    }
  }
  console.log(`\ndemo finished in ${((performance.now() - t0) / 1000).toFixed(1)} s · open quantlens-report.html`);
}

main();
