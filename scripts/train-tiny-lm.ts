// Trains QuantLens's own tiny LLaMA-style LM on Moby Dick and writes its artifacts (npm run train:tiny-lm):
// the training log with the loss curve and held-out perplexity vs unigram/bigram baselines, fixed token windows
// for calibration (train split) and evaluation (held-out split), and the exported checkpoint.
//   --steps N   optimizer steps (default 400)      --seed S   seed of the weights and batches (default 1)
//   --out DIR   artifact folder (default models/tiny-llama)
//   --tiny      a tiny config and short windows (seconds; for quick checks)
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeNpy } from '../server/src/calib/npy';
import { QuantLensError } from '../server/src/formats/errors';
import { writeOutputFile } from '../server/src/output';
import { rng } from '../server/src/random';
import { baselinePerplexities } from '../server/src/tinylm/baselines';
import { hfConfigJson, initWeights, TINY_LLAMA, type TinyLlamaConfig } from '../server/src/tinylm/config';
import { CORPUS_PACKAGE, HELDOUT_EVERY, loadCorpus } from '../server/src/tinylm/corpus';
import { exportTinyLlama } from '../server/src/tinylm/export';
import { evaluationWindows, modelPerplexity, type TokenWindows } from '../server/src/tinylm/perplexity';
import { DEFAULT_TRAIN, trainTinyLm, type StepInfo, type TrainOptions } from '../server/src/tinylm/train';

const TINY: TinyLlamaConfig = { ...TINY_LLAMA, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, maxPositions: 32 };
const WINDOW_ROWS = 32;

interface Args {
  steps: number;
  seed: number;
  out: string;
  tiny: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { steps: 400, seed: 1, out: 'models/tiny-llama', tiny: false };
  const where = { file: '<command line>' };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    if (flag === '--tiny') args.tiny = true;
    else if (flag === '--steps' || flag === '--seed') {
      const v = Number(argv[++k]);
      if (!Number.isInteger(v) || v < (flag === '--steps' ? 1 : 0)) throw new QuantLensError('bad-argument', `${flag} expects a ${flag === '--steps' ? 'positive' : 'non-negative'} integer, found ${argv[k]}`, where);
      args[flag === '--steps' ? 'steps' : 'seed'] = v;
    } else if (flag === '--out') {
      if (argv[k + 1] === undefined) throw new QuantLensError('bad-argument', '--out expects a folder', where);
      args.out = argv[++k];
    } else throw new QuantLensError('bad-argument', `expected --steps, --seed, --out or --tiny, found ${flag}`, where);
  }
  return args;
}

/** A loss curve in one line of block characters, each the mean of an equal share of the steps. */
function sparkline(values: number[], width = 60): string {
  const n = Math.min(width, values.length);
  const means = Array.from({ length: n }, (_, i) => {
    const part = values.slice(Math.floor((i * values.length) / n), Math.floor(((i + 1) * values.length) / n));
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
  const lo = Math.min(...means);
  const hi = Math.max(...means);
  const bars = '▁▂▃▄▅▆▇█';
  return means.map((m) => bars[hi === lo ? 0 : Math.round(((m - lo) / (hi - lo)) * (bars.length - 1))]).join('');
}

/** `rows` windows of `length` tokens: evenly spaced, or at seeded random starts. */
function windows(text: Uint8Array, rows: number, length: number, seed?: number): TokenWindows {
  const data = new BigInt64Array(rows * length);
  const next = seed === undefined ? undefined : rng(seed);
  const span = text.length - length;
  for (let r = 0; r < rows; r++) {
    const s = next ? Math.floor(next() * span) : Math.floor((r * span) / Math.max(1, rows - 1));
    for (let t = 0; t < length; t++) data[r * length + t] = BigInt(text[s + t]);
  }
  return { data: Array.from(data, Number), rows, length };
}

const npy = (w: TokenWindows) => writeNpy({ dtype: 'int64', dims: [w.rows, w.length], data: BigInt64Array.from(w.data as number[], BigInt) });

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const c = args.tiny ? TINY : TINY_LLAMA;
  const opts: TrainOptions = { ...DEFAULT_TRAIN, steps: args.steps, seed: args.seed, ...(args.tiny ? { batch: 8, seqLen: 32 } : {}) };
  opts.warmupSteps = Math.min(opts.warmupSteps, Math.max(1, Math.floor(opts.steps / 10)));
  const t0 = performance.now();
  const corpus = await loadCorpus();
  console.log(`corpus: ${CORPUS_PACKAGE} (Moby Dick), train ${corpus.train.length} bytes (${corpus.trainChapters.length} chapters), held out ${corpus.heldout.length} bytes (every ${HELDOUT_EVERY}th chapter: ${corpus.heldoutChapters.join(', ')})`);
  const init = initWeights(c, args.seed);
  const params = [...init.values()].reduce((a, t) => a + t.data.length, 0);
  console.log(`model: ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads, MLP ${c.intermediateSize}, vocab ${c.vocabSize}: ${params} parameters`);
  console.log(`training: ${opts.steps} steps × ${opts.batch} windows of ${opts.seqLen} bytes, AdamW lr ${opts.lr} (warm-up ${opts.warmupSteps}, cosine to ${opts.minLrRatio}×), seed ${args.seed}`);

  const every = Math.max(1, Math.floor(opts.steps / 30));
  let interval: StepInfo[] = [];
  const result = await trainTinyLm(c, init, corpus.train, {
    ...opts,
    onStep: (s) => {
      interval.push(s);
      if (interval.length < every && s.step !== opts.steps - 1) return;
      const mean = (f: (x: StepInfo) => number) => interval.reduce((a, x) => a + f(x), 0) / interval.length;
      const perStep = mean((x) => x.seconds);
      const eta = Math.round(perStep * (opts.steps - 1 - s.step));
      console.log(`step ${String(s.step + 1).padStart(5)}  loss ${mean((x) => x.loss).toFixed(4)}  lr ${s.lr.toExponential(2)}  |g| ${mean((x) => x.gradNorm).toFixed(3)}  ${perStep.toFixed(2)} s/step  eta ${eta} s`);
      interval = [];
    },
  });
  const trainSeconds = result.steps.reduce((a, s) => a + s.seconds, 0);
  const losses = result.steps.map((s) => s.loss);
  console.log(`loss curve (${losses[0].toFixed(2)} → ${losses[losses.length - 1].toFixed(2)}): ${sparkline(losses)}`);

  const T = opts.seqLen;
  const evalWindows = evaluationWindows(corpus.heldout, T);
  const model = await modelPerplexity(c, result.weights, evalWindows, { providers: opts.providers });
  const baselines = baselinePerplexities(corpus.train, corpus.heldout.subarray(0, evalWindows.rows * T + 1));
  const calib = windows(corpus.train, WINDOW_ROWS, T, args.seed + 1);
  const heldoutRows = windows(corpus.heldout, WINDOW_ROWS, T);
  const fixed = await modelPerplexity(c, result.weights, heldoutRows, { providers: opts.providers });
  const table = [
    ['model', 'held-out perplexity (per byte)'],
    ['tiny LM', model.perplexity.toFixed(3)],
    ['bigram (Witten–Bell)', baselines.bigram.toFixed(3)],
    ['unigram (add-one)', baselines.unigram.toFixed(3)],
  ];
  for (const [a, b] of table) console.log(`${a.padEnd(24)}${b}`);
  console.log(`(${model.tokens} held-out tokens; on heldout.npy's ${WINDOW_ROWS}×${T} windows: ${fixed.perplexity.toFixed(3)})`);

  await fsp.mkdir(args.out, { recursive: true });
  const write = (name: string, data: string | Uint8Array) => writeOutputFile(path.join(args.out, name), data, { overwrite: true });
  await write('calib.npy', npy(calib));
  await write('heldout.npy', npy(heldoutRows));
  const round = (x: number) => Number(x.toPrecision(5));
  const log = {
    corpus: { package: CORPUS_PACKAGE, license: 'PDDL-1.0 AND CC0-1.0 (text: public domain)', trainBytes: corpus.train.length, heldoutBytes: corpus.heldout.length, heldoutChapters: corpus.heldoutChapters },
    config: hfConfigJson(c),
    parameters: params,
    training: { ...opts, onStep: undefined, provider: result.provider, trainSeconds: round(trainSeconds), secondsPerStep: round(trainSeconds / opts.steps) },
    loss: losses.map(round),
    lr: result.steps.map((s) => round(s.lr)),
    gradNorm: result.steps.map((s) => round(s.gradNorm)),
    heldout: {
      tokens: model.tokens,
      perplexity: round(model.perplexity),
      unigramPerplexity: round(baselines.unigram),
      bigramPerplexity: round(baselines.bigram),
      heldoutNpyPerplexity: round(fixed.perplexity),
    },
    files: { calib: `calib.npy int64 [${WINDOW_ROWS}, ${T}] (train split)`, heldout: `heldout.npy int64 [${WINDOW_ROWS}, ${T}] (held-out split)` },
    wallSeconds: round((performance.now() - t0) / 1000),
  };
  await write('training-log.json', `${JSON.stringify(log, null, 1)}\n`);
  const note = `trained by scripts/train-tiny-lm.ts (seed ${args.seed}, ${opts.steps} steps) on Moby Dick (${CORPUS_PACKAGE})`;
  const exported = await exportTinyLlama(args.out, c, result.weights, { heldoutPerplexity: model.perplexity, note });
  for (const f of [...['training-log.json', 'calib.npy', 'heldout.npy'].map((n) => path.join(args.out, n)), ...exported]) {
    console.log(`wrote ${f} (${(await fsp.stat(f)).size} bytes)`);
  }
  console.log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((e: unknown) => {
  console.error(e instanceof QuantLensError ? `error: ${e.message}` : e);
  process.exitCode = 1;
});
