// The `quantlens` CLI: the same engine as the language server, for terminals and CI.
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { analyzeCheckpoint, DEFAULT_FORMATS, OptionError, resolveOptions } from './analysis';
import { ProgressLine } from './analysis/progress';
import { formatAnalysisTable, formatFormatsTable } from './analysis/table';
import { QuantLensError } from './formats/errors';
import { inspectCheckpoint } from './inspect';
import { describeFormats } from './quant';
import { formatInspectTable } from './report/table';
import { registerAllocate } from './commands/allocate';
import { registerRatios } from './commands/ratios';
import { registerExport } from './commands/export';
import { registerQuantize } from './commands/quantize';
import { registerEval } from './commands/eval';
import { registerReport } from './commands/report';
import { writeOutputFile } from './output';
import { runSensitivity } from './commands/sensitivity';
import { DEFAULT_CALIBRATED_METHODS, SENSITIVITY_METHODS } from './sensitivity/combined';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** Bad input (exit 2) vs. a bug (exit 1): user errors are one located line on stderr. */
function fail(e: unknown): never {
  if (e instanceof QuantLensError) {
    process.stderr.write(`quantlens: ${e.message}\n`);
    process.exit(2);
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code && typeof err.path === 'string') {
    process.stderr.write(`quantlens: ${err.path}: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`quantlens: internal error: ${err?.stack ?? String(e)}\n`);
  process.exit(1);
}

const program = new Command()
  .name('quantlens')
  .description('Per-layer quantization sensitivity, bit allocation and quantize-and-evaluate jobs.')
  .version(process.env.QUANTLENS_VERSION ?? '0.1.0')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('inspect')
  .description('list a checkpoint: format, tensors, parameters, dtypes, blocks and layers')
  .argument('<path>', 'checkpoint file (safetensors, ONNX, GGUF, PyTorch zip, config.json) or model folder')
  .option('--json', 'print one JSON object instead of tables')
  .option('--all', 'list every layer, including exporter scalars and short vectors')
  .action(async (target: string, opts: { json?: boolean; all?: boolean }) => {
    const result = await inspectCheckpoint(target);
    process.stdout.write(opts.json ? `${JSON.stringify(result, null, 1)}\n` : formatInspectTable(result, opts));
  });

registerAllocate(program);
registerRatios(program);
registerExport(program);
registerQuantize(program);
registerEval(program);
registerReport(program);

program
  .command('lsp')
  .description('run the QuantLens language server for any LSP editor (plan diagnostics, code lenses, hovers, completion)')
  .option('--stdio', 'speak LSP over stdin/stdout (the default)')
  .action(async () => {
    // The server takes its transport from argv when it loads.
    if (!process.argv.includes('--stdio')) process.argv.push('--stdio');
    await import('./server');
  });

program
  .command('formats')
  .description('list the number formats: id, family, bits per weight (4096×4096, scales included) and definition')
  .option('--json', 'print a JSON array')
  .action((opts: { json?: boolean }) => {
    const list = describeFormats();
    process.stdout.write(opts.json ? `${JSON.stringify(list, null, 1)}\n` : formatFormatsTable(list));
  });

interface AnalyzeFlags {
  formats?: string;
  json?: boolean;
  out?: string;
  sample?: string;
  sigma?: string;
  seed?: string;
  confidence?: string;
  cache: boolean;
  cacheDir?: string;
  groupMaps?: boolean;
  highImpact: boolean;
  threads?: string;
  only?: string;
  imatrix?: string;
  calib?: string;
  methods?: string;
  labels?: string;
  providers?: string;
  samples?: string;
  batchSize?: string;
}

/** A numeric flag, or an OptionError naming it. */
function num(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const x = Number(text);
  if (text.trim() === '' || !Number.isFinite(x)) throw new OptionError(flag, `--${flag} expects a number, got '${text}'`);
  return x;
}

program
  .command('analyze')
  .description('data-free sensitivity: per layer × format relMse/SQNR, max error, code entropy, weight statistics, high-impact curves')
  .argument('<path>', 'checkpoint file or model folder')
  .option('--formats <ids>', `comma-separated format ids (default ${DEFAULT_FORMATS.join(',')}; see \`quantlens formats\`)`)
  .option('--json', 'print the report as JSON instead of a table')
  .option('--out <file>', 'also write the JSON report to this file')
  .option('--sample <fraction>', 'score a random fraction of the output channels; relMse gets a confidence interval (no high-impact curves)')
  .option('--sigma <k>', 'outlier threshold: |w − μ| > k·σ within the output channel (default 6)')
  .option('--seed <n>', 'seed of the --sample row choice (default 0)')
  .option('--confidence <p>', 'confidence level of --sample intervals (default 0.95)')
  .option('--group-maps', 'include the downsampled group-error map of every layer × format (≤ 256×256)')
  .option('--no-high-impact', 'skip the high-impact ratio and group-promotion curves')
  .option('--only <regex>', 'analyze only the tensors whose name matches')
  .option('--imatrix <file>', 'llama.cpp importance matrix (GGUF or legacy .dat): adds the Hessian-diagonal score tr(ΔW H ΔWᵀ)')
  .option('--calib <path>', 'calibration data for ONNX models (.npy/.npz/.json file, or a folder of them or of images): runs the calibrated methods')
  .option('--methods <list>', `sensitivity methods with --calib: ${SENSITIVITY_METHODS.join(',')} (default ${DEFAULT_CALIBRATED_METHODS.join(',')}; without --calib: synthetic data, reported)`)
  .option('--labels <npy>', 'class indices aligned with the calibration samples (cross-entropy loss for fisher/gwq/hawq)')
  .option('--providers <list>', 'execution providers to try in order, e.g. cuda,webgpu,cpu (CPU is always the last resort)')
  .option('--samples <n>', 'use at most n calibration samples')
  .option('--batch-size <n>', 'calibration samples per batch')
  .option('--threads <n>', 'worker threads (default: one per core; 0 = in this thread)')
  .option('--no-cache', 'neither read nor write the result cache')
  .option('--cache-dir <dir>', 'cache folder (default $XDG_CACHE_HOME/quantlens or ~/.cache/quantlens)')
  .action(async (target: string, flags: AnalyzeFlags) => {
    if (flags.calib !== undefined || flags.methods !== undefined) {
      const formats = flags.formats?.split(',').map((x) => x.trim()).filter(Boolean) ?? DEFAULT_FORMATS;
      return runSensitivity(target, formats, flags);
    }
    let options;
    let threads;
    try {
      options = resolveOptions({
        formats: flags.formats?.split(',').map((s) => s.trim()).filter(Boolean),
        sample: num('sample', flags.sample),
        sigma: num('sigma', flags.sigma),
        seed: num('seed', flags.seed),
        confidence: num('confidence', flags.confidence),
        groupMaps: flags.groupMaps ?? false,
        highImpact: flags.highImpact,
        only: flags.only,
        imatrix: flags.imatrix,
      });
      threads = num('threads', flags.threads);
      if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0)) throw new OptionError('threads', `--threads expects a count ≥ 0, got '${flags.threads}'`);
    } catch (e) {
      if (e instanceof OptionError) throw new QuantLensError('bad-option', e.message, { file: `--${e.option}` });
      throw e;
    }
    const abort = new AbortController();
    const onSigint = () => abort.abort(new QuantLensError('cancelled', 'analysis cancelled', { file: path.resolve(target) }));
    process.once('SIGINT', onSigint);
    const bar = process.stderr.isTTY ? new ProgressLine(process.stderr, 'analyze') : undefined;
    try {
      const { report, cache, warning } = await analyzeCheckpoint(target, options, {
        threads,
        signal: abort.signal,
        cacheDir: flags.cache ? (flags.cacheDir ? path.resolve(flags.cacheDir) : undefined) : false,
        onProgress: bar && ((done, total) => bar.update(done, total)),
      });
      bar?.done();
      if (warning) process.stderr.write(`quantlens: warning: ${warning}\n`);
      const json = `${JSON.stringify({ ...report, cache }, null, 1)}\n`;
      // A report may replace an earlier report, never a model file.
      if (flags.out) await writeOutputFile(flags.out, json, { overwrite: true, inputs: report.model.files });
      process.stdout.write(flags.json ? json : formatAnalysisTable(report));
    } finally {
      bar?.done();
      process.off('SIGINT', onSigint);
    }
  });

program.parseAsync(process.argv).catch((e) => {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  fail(e);
});
