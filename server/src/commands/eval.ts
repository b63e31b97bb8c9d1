// `quantlens eval <original.onnx> <quantized.onnx> --data …`: KL, top-1 agreement, SQNR, accuracy with labels,
// latency per batch and size on disk of two models on the same inputs.
import type { Command } from 'commander';
import { evaluateFiles, type EvalResult } from '../jobs/evaluate';
import { humanBytes } from '../report/table';
import { cancelOnSigint, intFlag, providerList } from './quantize';

interface EvalFlags {
  data?: string;
  labels?: string;
  output?: string;
  samples?: string;
  batchSize?: string;
  seed: string;
  providers?: string;
  threads?: string;
  json?: boolean;
}

type Report = EvalResult & { data: { source: string; synthetic: boolean; samples: number } };

function formatEval(r: Report): string {
  const db = Number.isFinite(r.metrics.sqnrDb) ? r.metrics.sqnrDb.toFixed(2) : '∞';
  return [
    `${r.data.samples} samples (${r.data.synthetic ? 'synthetic: ' : ''}${r.data.source}), output ${r.output}, ${r.executionProvider}`,
    `KL ${r.metrics.kl.toExponential(3)} nats · top-1 agreement ${(100 * r.metrics.top1).toFixed(2)} % · SQNR ${db} dB`,
    ...(r.accuracy ? [`accuracy ${(100 * r.accuracy.original).toFixed(2)} % → ${(100 * r.accuracy.quantized).toFixed(2)} %`] : []),
    ...(r.perplexity ? [`perplexity ${r.perplexity.original.toFixed(3)} → ${r.perplexity.quantized.toFixed(3)}`] : []),
    `latency per batch ${r.latencyMs.original.toFixed(2)} ms → ${r.latencyMs.quantized.toFixed(2)} ms`,
    `size ${humanBytes(r.sizeBytes.original)} → ${humanBytes(r.sizeBytes.quantized)}`,
    '',
  ].join('\n');
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('compare a quantized model with its original on the same inputs: KL, top-1 agreement, SQNR, accuracy, latency, size')
    .argument('<original>', 'the full-precision ONNX model')
    .argument('<quantized>', 'the quantized ONNX model')
    .option('--data <path>', 'evaluation data: .npy/.npz/.json file or a folder of them or of images (default: synthetic)')
    .option('--labels <npy>', 'class ids of the evaluation rows: adds accuracy')
    .option('--output <name>', 'model output to compare (default: the first)')
    .option('--samples <n>', 'use at most n samples')
    .option('--batch-size <n>', 'samples per batch')
    .option('--seed <n>', 'seed of synthetic data', '0')
    .option('--providers <list>', 'execution providers to try in order (CPU is the fallback)')
    .option('--threads <n>', 'onnxruntime intra-op threads')
    .option('--json', 'print the result as JSON')
    .action(async (original: string, quantized: string, flags: EvalFlags) => {
      const { signal, dispose } = cancelOnSigint(quantized, 'eval');
      try {
        const r = await evaluateFiles(original, quantized, flags.data, {
          labelsFile: flags.labels,
          output: flags.output,
          maxSamples: intFlag('samples', flags.samples),
          batchSize: intFlag('batch-size', flags.batchSize),
          seed: intFlag('seed', flags.seed, 0),
          providers: providerList(flags.providers),
          threads: intFlag('threads', flags.threads),
          signal,
        });
        process.stdout.write(flags.json ? `${JSON.stringify(r, null, 1)}\n` : formatEval(r));
      } finally {
        dispose();
      }
    });
}
