// The `quantlens` CLI: the same engine as the language server, for terminals and CI.
import { Command, CommanderError } from 'commander';
import { QuantLensError } from './formats/errors';
import { inspectCheckpoint } from './inspect';
import { formatInspectTable } from './report/table';
import { registerAllocate } from './commands/allocate';

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

program.parseAsync(process.argv).catch((e) => {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  fail(e);
});
