// `quantlens quantize <model.onnx> (--plan plan.quant.yaml | --layer <name> --format <id>)`: writes a quantized
// ONNX next to the model (or --out), evaluates it against the original and prints measured vs predicted error.
// Ctrl-C cancels: nothing is written until the evaluation is done.
import * as path from 'node:path';
import type { Command } from 'commander';
import { QuantLensError } from '../formats/errors';
import { STRATEGIES, type StrategyId } from '../allocate/ratios-run';
import { parseSaliency } from '../allocate/ratios-saliency';
import type { MixedRequest, MixedSummary } from '../jobs/mixed-job';
import { runQuantize, type QuantizeReport } from '../jobs/pipeline';
import { formatTable, humanBytes } from '../report/table';

interface QuantizeFlags {
  plan?: string;
  layer?: string;
  ratios?: string;
  mixed?: string;
  strategy: string;
  saliency?: string;
  rMax?: string;
  format?: string;
  out?: string;
  force?: boolean;
  method: string;
  eval?: string | boolean;
  labels?: string;
  calib?: string;
  samples?: string;
  batchSize?: string;
  seed: string;
  damp?: string;
  providers?: string;
  threads?: string;
  json?: boolean;
}

/** A positive integer flag (or a number in a range), or a located option error. */
export function intFlag(flag: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const x = Number(text);
  if (text.trim() === '' || !Number.isInteger(x) || x < min) throw new QuantLensError('bad-option', `--${flag}: expected an integer ≥ ${min}, found '${text}'`, { file: `--${flag}` });
  return x;
}

export function providerList(text: string | undefined): string[] | undefined {
  return text?.split(',').map((s) => s.trim()).filter(Boolean);
}

/** An AbortSignal that SIGINT fires (with a located "cancelled" error), and its cleanup. */
export function cancelOnSigint(file: string, what: string): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSigint = () => ac.abort(new QuantLensError('cancelled', `${what} cancelled; nothing was written`, { file: path.resolve(file) }));
  process.once('SIGINT', onSigint);
  return { signal: ac.signal, dispose: () => process.off('SIGINT', onSigint) };
}

const db = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : x > 0 ? '∞' : '-∞');

export function formatQuantizeReport(r: QuantizeReport): string {
  const rows = r.weights.map((w) => [w.name, w.format, w.storage + (w.simulated ? ' (simulated)' : ''), w.relMse.toExponential(3), w.hessian === undefined ? '-' : w.hessian.toExponential(3)]);
  const out = [formatTable(['weight', 'format', 'stored as', 'pred. relMse', 'pred. tr(ΔWHΔWᵀ)'], rows)];
  const why = new Map<string, string[]>();
  for (const w of r.weights) if (w.simulated) why.set(w.reason ?? '', [...(why.get(w.reason ?? '') ?? []), w.name]);
  for (const [reason, names] of why) out.push(`simulated (fake-quantized floats) ${names.length === 1 ? names[0] : `${names.length} weights`}: ${reason}\n`);
  const skipped = new Map<string, string[]>();
  for (const s of r.skipped) skipped.set(s.reason, [...(skipped.get(s.reason) ?? []), s.name]);
  for (const [reason, names] of skipped) out.push(`skipped ${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}: ${reason}\n`);
  if (r.mixed) out.push(formatMixed(r.mixed));
  out.push(`wrote ${r.output} (${humanBytes(r.sizeBytes.quantized)}; original ${humanBytes(r.sizeBytes.original)}), method ${r.method}\n`);
  out.push(`predicted: relMse ${r.predicted.relMse.toExponential(3)} (parameter-weighted)${r.predicted.hessian !== undefined ? `, Σ tr(ΔWHΔWᵀ) ${r.predicted.hessian.toExponential(3)}` : ''}\n`);
  const e = r.evaluation;
  if (r.metrics && e) {
    out.push(`measured on ${e.data.samples} samples (${e.data.synthetic ? 'synthetic: ' : ''}${e.data.source}), output ${e.output}, ${e.executionProvider}:\n`);
    out.push(`  KL ${r.metrics.kl.toExponential(3)} nats · top-1 agreement ${(100 * r.metrics.top1).toFixed(2)} % · SQNR ${db(r.metrics.sqnrDb)} dB\n`);
    if (e.accuracy) out.push(`  accuracy ${(100 * e.accuracy.original).toFixed(2)} % → ${(100 * e.accuracy.quantized).toFixed(2)} %\n`);
    if (e.perplexity) out.push(`  perplexity ${e.perplexity.original.toFixed(3)} → ${e.perplexity.quantized.toFixed(3)}\n`);
    out.push(`  latency per batch ${e.latencyMs.original.toFixed(2)} ms → ${e.latencyMs.quantized.toFixed(2)} ms\n`);
  }
  if (r.report) out.push(`report ${r.report}\n`);
  if (r.reportHtml) out.push(`report ${r.reportHtml}\n`);
  return out.join('');
}

const secs = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

function formatMixed(m: MixedSummary): string {
  const lines = [
    `mixed: top r_l of each layer at ${m.hi}, the rest at ${m.lo} · strategy ${m.strategy} · saliency ${m.saliency} · ${m.avgBits.toFixed(4)} bits/weight exact (sparse index included)`,
    m.ratios.source === 'file' ? `ratios from ${m.ratios.file}` : `ratios solved at ${m.ratios.budgetBits.toFixed(4)} bits/weight (${m.ratios.interactions.description})`,
  ];
  if (m.ratios.source === 'solved') {
    lines.push(formatTable(['strategy', 'avg bits', 'predicted', 'measured ΔL (ratios curves)'], m.ratios.strategies.map((s) => [s.id, s.avgBits.toFixed(4), s.predicted.toPrecision(4), s.measured === null ? '-' : s.measured.toPrecision(4)])).trimEnd());
  }
  for (const f of m.fallback.slice(0, 3)) lines.push(`${f.name}: ${f.reason}`);
  if (m.fallback.length > 3) lines.push(`… and ${m.fallback.length - 3} more layer(s) with a fallback`);
  const t = m.timings;
  lines.push(`time: saliency ${secs(t.saliency)} · ratios (curves, interactions, QP) ${secs(t.ratios)} · quantization ${secs(t.quantize)} · evaluation ${secs(t.evaluate)}`);
  return `${lines.join('\n')}\n`;
}

/** --mixed <hi>,<lo>,<budget bits>, or --ratios <file>, with --strategy/--saliency/--r-max. */
function mixedRequest(flags: QuantizeFlags): MixedRequest | undefined {
  if (flags.ratios === undefined && flags.mixed === undefined) {
    for (const f of ['saliency', 'rMax'] as const) {
      if (flags[f] !== undefined) throw new QuantLensError('bad-option', 'applies to --mixed or --ratios only', { file: `--${f}` });
    }
    return undefined;
  }
  if (!(STRATEGIES as readonly string[]).includes(flags.strategy)) {
    throw new QuantLensError('bad-option', `expected ${STRATEGIES.join(', ')}, found '${flags.strategy}'`, { file: '--strategy' });
  }
  const common = { strategy: flags.strategy as StrategyId, saliency: flags.saliency === undefined ? undefined : parseSaliency(flags.saliency) };
  if (flags.ratios !== undefined) {
    if (flags.mixed !== undefined || flags.rMax !== undefined) throw new QuantLensError('bad-option', 'the formats and ratios come from the file: drop --mixed/--r-max', { file: '--ratios' });
    return { ...common, ratiosFile: flags.ratios };
  }
  const parts = flags.mixed!.split(',').map((x) => x.trim());
  const budgetBits = Number(parts[2]);
  if (parts.length !== 3 || !parts[0] || !parts[1] || !(Number.isFinite(budgetBits) && budgetBits > 0)) {
    throw new QuantLensError('bad-option', `expected <hi>,<lo>,<average bits per weight> (e.g. 8,2,2.6), found '${flags.mixed}'`, { file: '--mixed' });
  }
  const rMax = flags.rMax === undefined ? undefined : Number(flags.rMax);
  if (rMax !== undefined && !(rMax > 0 && rMax <= 1)) throw new QuantLensError('bad-option', `expected a ratio in (0, 1], found '${flags.rMax}'`, { file: '--r-max' });
  return { ...common, hi: parts[0], lo: parts[1], budgetBits, rMax };
}

export function registerQuantize(program: Command): void {
  program
    .command('quantize')
    .description('write a quantized ONNX model (DequantizeLinear int4/int8, fake-quantized floats for other formats) and evaluate it')
    .argument('<model>', 'ONNX model (replaces the plan\'s model:)')
    .option('--plan <file>', 'quant plan (*.quant.yaml): one format per weight')
    .option('--layer <name>', 'quantize only this weight (tensor or node name)')
    .option('--format <id>', 'format for --layer (default: the plan\'s decision for it)')
    .option('--ratios <file>', 'mixed high-impact quantizer with the per-layer ratios of a `quantlens ratios --json` report')
    .option('--mixed <hi,lo,bits>', 'mixed high-impact quantizer, ratios solved here for an average-bits budget, e.g. 8,2,2.6')
    .option('--strategy <id>', `ratios used by --ratios/--mixed: ${STRATEGIES.join(', ')}`, 'full-qp')
    .option('--saliency <kind>', 'ranks the kept weights: magnitude, hessian, fisher or gwq (default: the ratios file\'s; else hessian with gptq, magnitude with rtn)')
    .option('--r-max <ratio>', 'largest kept share per layer for --mixed (default 0.1)')
    .option('--out <file>', 'output model (default <model>.quant.onnx beside the model)')
    .option('--force', 'replace an existing output')
    .option('--method <rtn|gptq>', 'round-to-nearest, or GPTQ with layer Hessians from --calib', 'rtn')
    .option('--eval <data>', 'evaluation data: .npy/.npz/.json file or a folder of them or of images (default: synthetic)')
    .option('--no-eval', 'skip the evaluation')
    .option('--labels <npy>', 'class ids of the evaluation rows: adds accuracy')
    .option('--calib <data>', 'calibration data for GPTQ (default: the evaluation data)')
    .option('--samples <n>', 'use at most n samples')
    .option('--batch-size <n>', 'samples per batch')
    .option('--seed <n>', 'seed of synthetic data', '0')
    .option('--damp <λ>', 'GPTQ damping, fraction of mean(diag H) (default 0.01)')
    .option('--providers <list>', 'execution providers to try in order, e.g. cuda,webgpu,cpu (CPU is the fallback)')
    .option('--threads <n>', 'onnxruntime intra-op threads')
    .option('--json', 'print the report as JSON')
    .action(async (model: string, flags: QuantizeFlags) => {
      if (flags.method !== 'rtn' && flags.method !== 'gptq') throw new QuantLensError('bad-option', `--method: expected rtn or gptq, found '${flags.method}'`, { file: '--method' });
      const mixed = mixedRequest(flags);
      const sources = [flags.plan !== undefined || flags.layer !== undefined, flags.ratios !== undefined || flags.mixed !== undefined].filter(Boolean).length;
      if (sources === 0) throw new QuantLensError('bad-option', 'give --plan, --layer with --format, --ratios or --mixed', { file: '--plan' });
      if (sources > 1) throw new QuantLensError('bad-option', '--ratios/--mixed replace --plan and --layer: give one of them', { file: flags.ratios !== undefined ? '--ratios' : '--mixed' });
      if (flags.format !== undefined && flags.layer === undefined) throw new QuantLensError('bad-option', '--format applies to --layer', { file: '--format' });
      const damp = flags.damp === undefined ? undefined : Number(flags.damp);
      if (damp !== undefined && !(Number.isFinite(damp) && damp >= 0)) throw new QuantLensError('bad-option', `--damp: expected a number ≥ 0, found '${flags.damp}'`, { file: '--damp' });
      const { signal, dispose } = cancelOnSigint(model, 'quantize');
      try {
        const report = await runQuantize(
          {
            model,
            plan: flags.plan,
            layer: flags.layer,
            format: flags.format,
            mixed,
            out: flags.out,
            force: flags.force,
            method: flags.method,
            eval: flags.eval === false ? false : typeof flags.eval === 'string' ? flags.eval : undefined,
            labels: flags.labels,
            calib: flags.calib,
            samples: intFlag('samples', flags.samples),
            batchSize: intFlag('batch-size', flags.batchSize),
            seed: intFlag('seed', flags.seed, 0),
            damp,
            providers: providerList(flags.providers),
            threads: intFlag('threads', flags.threads),
          },
          { signal },
        );
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 1)}\n` : formatQuantizeReport(report));
      } finally {
        dispose();
      }
    });
}
