// `quantlens ratios <model>`: the four-strategy high-impact ratio comparison (allocate/ratios-run.ts).
// ONNX models run on onnxruntime (interactions by co-perturbation, measured ΔL); other checkpoints, or
// --datafree, use the weights only (C diagonal, the report says so).
import type { Command } from 'commander';
import { QuantLensError } from '../formats/errors';
import { RATIOS_DEFAULTS, runRatios, STRATEGIES, type RatiosReport } from '../allocate/ratios-run';
import { parseSaliency } from '../allocate/ratios-saliency';
import { openRatiosSource } from '../allocate/ratios-source';
import { formatTable, humanCount } from '../report/table';

interface RatiosFlags {
  budgetBits?: string;
  hi: string;
  lo: string;
  rMax: string;
  fixedRatio: string;
  only?: string;
  calib?: string;
  samples: string;
  providers?: string;
  datafree?: boolean;
  saliency: string;
  seed: string;
  json?: boolean;
}

function number(flag: string, text: string, ok: (x: number) => boolean, what: string): number {
  const x = Number(text);
  if (text.trim() === '' || !Number.isFinite(x) || !ok(x)) throw new QuantLensError('bad-option', `--${flag}: expected ${what}, found '${text}'`, { file: `--${flag}` });
  return x;
}

export function registerRatios(program: Command): void {
  program
    .command('ratios')
    .description('layer-wise high-impact ratios: uniform bits vs fixed ratio vs per-layer (diagonal) vs per-layer with interactions (full QP)')
    .argument('<model>', 'checkpoint file or folder (ONNX models run for interactions and measured error)')
    .option('--budget-bits <bits>', 'average bits per weight (default: the bits of --fixed-ratio on every layer)')
    .option('--hi <fmt|bits>', 'format of the kept weights: fp16, int<b>_ch_sym, or a bit width', RATIOS_DEFAULTS.hi)
    .option('--lo <fmt|bits>', 'format of the other weights: a format id or a bit width (2, 3, 4)', RATIOS_DEFAULTS.lo)
    .option('--r-max <ratio>', 'largest kept share per layer', String(RATIOS_DEFAULTS.rMax))
    .option('--fixed-ratio <ratio>', 'the fixed-ratio strategy\'s ratio when no budget is given', String(RATIOS_DEFAULTS.fixedRatio))
    .option('--only <regex>', 'only the weights whose name matches')
    .option('--calib <path>', 'calibration data for ONNX models (.npy/.npz/.json/images; default: synthetic)')
    .option('--samples <n>', 'calibration samples used', String(RATIOS_DEFAULTS.samples))
    .option('--providers <list>', 'onnxruntime execution providers to try, comma-separated (CPU is the fallback)')
    .option('--datafree', 'weights only, even for a runnable model')
    .option('--saliency <kind>', 'ranks each layer\'s weights: magnitude (|w|), hessian (OBS w²/[H⁻¹]jj), fisher (F·w²) or gwq (|ḡ·w|), the last three on the calibration data', 'magnitude')
    .option('--seed <n>', 'seed of the sampled interaction pairs and synthetic calibration data', '0')
    .option('--json', 'print the report as JSON')
    .action(async (model: string, flags: RatiosFlags) => {
      const rMax = number('r-max', flags.rMax, (x) => x > 0 && x <= 1, 'a ratio in (0, 1]');
      const fixedRatio = number('fixed-ratio', flags.fixedRatio, (x) => x >= 0 && x <= rMax, `a ratio in [0, r_max = ${rMax}]`);
      const budgetBits = flags.budgetBits === undefined ? undefined : number('budget-bits', flags.budgetBits, (x) => x > 0, 'a positive number of bits per weight');
      const samples = number('samples', flags.samples, (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
      const seed = number('seed', flags.seed, Number.isInteger, 'an integer');
      let only: RegExp | undefined;
      try {
        only = flags.only === undefined ? undefined : new RegExp(flags.only);
      } catch (e) {
        throw new QuantLensError('bad-option', `--only: not a regular expression: ${(e as Error).message}`, { file: '--only' });
      }
      const saliency = parseSaliency(flags.saliency);
      const providers = flags.providers?.split(',').map((s) => s.trim()).filter(Boolean);
      const opened = await openRatiosSource(model, { datafree: flags.datafree, calib: flags.calib, samples, seed, providers, only, saliency });
      const { src, probe, note } = opened;
      if (note) process.stderr.write(`quantlens: ${note}\n`);
      try {
        const report = await runRatios(src, { hi: flags.hi, lo: flags.lo, budgetBits, rMax, fixedRatio, seed, probe, ...opened.saliency });
        process.stdout.write(flags.json ? `${JSON.stringify({ ...report, runtime: note ?? null }, null, 1)}\n` : formatRatios(report));
      } finally {
        await src.close();
      }
    });
}

const g4 = (x: number | null | undefined) => (x === null || x === undefined ? '-' : Number.isFinite(x) ? x.toPrecision(4) : String(x));
const pct = (r: number) => `${(100 * r).toFixed(2)}%`;

export function formatRatios(r: RatiosReport): string {
  const head = [
    `ratios · ${r.model}`,
    `hi ${r.hi}, lo ${r.lo}, r_max ${r.rMax} · budget ${r.budgetBits.toFixed(4)} bits/weight (minimum ${r.minAvgBits.toFixed(4)}, all at r_max ${r.maxAvgBits.toFixed(4)}) · ${r.layers.length} layers, ${humanCount(r.params)} weights`,
    `predicted loss: ${r.lossModel === 'co-perturbation' ? 'relative output error ΔL (quadratic model, co-perturbation)' : 'relative weight error Σ‖ΔW‖²/Σ‖W‖²'} · saliency: ${r.saliency}${r.saliencyFallback ? ` (${r.saliencyFallback.length} layer(s) by |w|: ${r.saliencyFallback[0].reason})` : ''}`,
    `interactions: ${r.interactions.description}${r.interactions.measured ? ` · ${r.interactions.runs} model runs · ${r.interactions.clippedEigenvalues} negative eigenvalue(s) clipped` : ''}`,
  ].join('\n');
  const strat = formatTable(
    ['strategy', 'avg bits', 'predicted', 'predicted (diag)', 'weight error', 'measured ΔL', 'note'],
    r.strategies.map((s) => [
      s.id,
      s.avgBits.toFixed(4),
      g4(s.predicted),
      g4(s.predictedDiagonal),
      g4(s.weightError),
      g4(s.measured),
      s.ratio !== undefined ? `r = ${pct(s.ratio)}` : s.kkt ? `KKT stationarity ${s.kkt.stationarity.toExponential(1)}` : '',
    ]),
  );
  const layers = formatTable(
    ['layer', 'params', 'error at lo', ...STRATEGIES.map((id) => `r ${id}`), 'bits full-qp'],
    r.layers.map((l) => [l.name, humanCount(l.params), g4(l.fit.relError[0]), ...STRATEGIES.map((id) => pct(l.ratio[id])), l.bits['full-qp'].toFixed(3)]),
  );
  return `${head}\n\n${strat}\n${layers}`;
}
