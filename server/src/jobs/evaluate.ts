// Evaluation (DESIGN.md §6): the original and the quantized model run on the same evaluation batches; one output
// is compared with the sensitivity module's OutputComparer (KL, SQNR, top-1 agreement), task accuracy is computed
// when class-id labels are given, perplexity for token-in/logits-out models, and each model's latency per batch
// and size on disk are measured.
//
// The original opens with the configured provider list (CPU fallback); the quantized model runs on the provider
// that ran the original. onnxruntime fuses DequantizeLinear(4-bit, block_size) + MatMul into MatMulNBits and by
// default computes it with int8-quantized activations (accuracy level 4): that error belongs to the kernel, not
// to the weight format, and is 0.5 % of the output on a tiny MLP. The quantized session therefore asks for fp32
// compute (session.qdq_matmulnbits_accuracy_level = 1): measured outputs then equal the original run with the
// fake-quantized weights up to fp32 summation order.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadCalibration, modelInputs, readNpyFile, toOrtFeeds, type CalibrationOptions } from '../calib';
import type { CalibrationSet, Feeds, ModelInput } from '../calib/types';
import { check, QuantLensError } from '../formats/errors';
import { fetchOutputs, type OutputTensor } from '../runtime/model-runner';
import { createSession, type ProviderAttempt, type SessionOptions } from '../runtime/session';
import { argmax, logSoftmax, OutputComparer } from '../sensitivity/empirical';

/** Session config: MatMulNBits computes in fp32 (see the header). */
const FP32_MATMULNBITS = { session: { qdq_matmulnbits_accuracy_level: '1' } };

export interface EvalOptions extends SessionOptions {
  /** Output to compare (default: the original's first). */
  output?: string;
  /** Class id per evaluation row (rows = the output's leading axes flattened), in batch order. */
  labels?: ArrayLike<number>;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalMetrics {
  kl: number;
  top1: number;
  sqnrDb: number;
}

export interface EvalResult {
  executionProvider: string;
  attempts: ProviderAttempt[];
  output: string;
  batches: number;
  rows: number;
  metrics: EvalMetrics;
  /** Share of rows whose argmax equals the label, per model (with labels only). */
  accuracy?: { original: number; quantized: number };
  /**
   * Token models (an integer input [batch, T] and logits [batch, T, V]): exp of the mean next-token negative
   * log-likelihood, position t predicting token t + 1.
   */
  perplexity?: { original: number; quantized: number };
  /** Mean wall time of one batch (after one warm-up run), milliseconds. */
  latencyMs: { original: number; quantized: number };
  sizeBytes: { original: number; quantized: number };
}

/** An open pair of sessions, their inputs checked to agree. */
export class ModelPair {
  private constructor(
    readonly original: string,
    /** The quantized model's path, or a label when it was opened from bytes not yet written. */
    readonly quantized: string,
    private readonly quantizedBytes: number | undefined,
    private readonly a: ort.InferenceSession,
    private readonly b: ort.InferenceSession,
    readonly inputs: ModelInput[],
    readonly provider: string,
    readonly attempts: ProviderAttempt[],
  ) {}

  /** `quantized`: a path, or the model's bytes with a name for messages. */
  static async open(original: string, quantized: string | { bytes: Uint8Array; name: string }, opts: SessionOptions = {}): Promise<ModelPair> {
    const { session: a, provider, attempts } = await createSession(path.resolve(original), opts);
    const qname = typeof quantized === 'string' ? path.resolve(quantized) : quantized.name;
    let b: ort.InferenceSession;
    try {
      const options: ort.InferenceSession.SessionOptions = {
        executionProviders: [provider],
        extra: FP32_MATMULNBITS,
        ...(opts.threads !== undefined ? { intraOpNumThreads: opts.threads } : {}),
      };
      b = typeof quantized === 'string' ? await ort.InferenceSession.create(qname, options) : await ort.InferenceSession.create(quantized.bytes, options);
    } catch (e) {
      await a.release();
      const msg = e instanceof Error ? e.message : String(e);
      throw new QuantLensError('session-failed', `onnxruntime could not load the quantized model on ${provider}: ${msg}`, { file: qname });
    }
    const inputs = modelInputs(a, original);
    const other = modelInputs(b, qname);
    const sig = (xs: ModelInput[]) => xs.map((i) => `${i.name}:${i.dtype}`).join(',');
    if (sig(inputs) !== sig(other)) {
      await Promise.all([a.release(), b.release()]);
      throw new QuantLensError('model-mismatch', `the models take different inputs: ${sig(inputs)} vs ${sig(other)}`, { file: qname });
    }
    return new ModelPair(path.resolve(original), qname, typeof quantized === 'string' ? undefined : quantized.bytes.length, a, b, inputs, provider, attempts);
  }

  get outputs(): readonly string[] {
    return this.a.outputNames;
  }

  /** Evaluation data in any calibration form, checked against the inputs. */
  load(spec: string | undefined, opts: CalibrationOptions = {}): Promise<CalibrationSet> {
    return loadCalibration(spec, this.inputs, opts);
  }

  async evaluate(batches: readonly Feeds[], opts: EvalOptions = {}): Promise<EvalResult> {
    const output = opts.output ?? this.a.outputNames[0];
    check(this.a.outputNames.includes(output) && this.b.outputNames.includes(output), 'unknown-output', () => `both models need an output "${output}" (original: ${this.a.outputNames.join(', ')}; quantized: ${this.b.outputNames.join(', ')})`, { file: this.quantized });
    check(batches.length > 0, 'no-data', 'no evaluation batches', { file: this.original });
    const cmp = new OutputComparer();
    const time = { original: 0, quantized: 0 };
    const correct = { original: 0, quantized: 0 };
    const nll = { original: 0, quantized: 0, count: 0 };
    const tokens = this.inputs.find((x) => (x.dtype === 'int64' || x.dtype === 'int32') && x.dims.length === 2);
    let rows = 0;
    const run = async (s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, file: string): Promise<[OutputTensor, number]> => {
      const t0 = performance.now();
      const y = (await fetchOutputs(s, feeds, [output], file))[output];
      return [y, performance.now() - t0];
    };
    const warm = toOrtFeeds(batches[0]);
    await run(this.a, warm, this.original);
    await run(this.b, warm, this.quantized);
    for (let i = 0; i < batches.length; i++) {
      opts.signal?.throwIfAborted();
      const feeds = toOrtFeeds(batches[i]);
      const [y, ta] = await run(this.a, feeds, this.original);
      const [yq, tb] = await run(this.b, feeds, this.quantized);
      time.original += ta;
      time.quantized += tb;
      cmp.add(y, yq, { file: this.quantized });
      const cols = y.dims.length ? y.dims[y.dims.length - 1] : 1;
      const n = cols > 0 ? y.data.length / cols : 0;
      if (opts.labels) {
        check(rows + n <= opts.labels.length, 'label-mismatch', () => `the labels hold ${opts.labels!.length} class ids; the evaluation data has more rows (${rows + n} after batch ${i + 1})`, { file: this.original });
        for (let r = 0; r < n; r++) {
          const label = opts.labels[rows + r];
          if (argmax(y.data, r * cols, cols) === label) correct.original++;
          if (argmax(yq.data, r * cols, cols) === label) correct.quantized++;
        }
      }
      const ids = tokens && batches[i][tokens.name];
      if (ids && y.dims.length === 3 && ids.dims[0] === y.dims[0] && ids.dims[1] === y.dims[1]) {
        const [b, t] = ids.dims;
        const lp = new Float64Array(cols);
        const logProb = (x: Float32Array, o: number, k: number): number => {
          logSoftmax(x, o, cols, lp);
          return lp[k];
        };
        for (let r = 0; r < b; r++) {
          for (let p = 0; p + 1 < t; p++) {
            const next = Number(ids.data[r * t + p + 1]);
            if (!(next >= 0 && next < cols)) continue;
            const o = (r * t + p) * cols;
            nll.original -= logProb(y.data, o, next);
            nll.quantized -= logProb(yq.data, o, next);
            nll.count++;
          }
        }
      }
      rows += n;
      opts.onProgress?.(i + 1, batches.length);
    }
    if (opts.labels) {
      check(rows === opts.labels.length, 'label-mismatch', () => `the labels hold ${opts.labels!.length} class ids; the evaluation data has ${rows} rows`, { file: this.original });
    }
    const so = (await fsp.stat(this.original)).size;
    const sq = this.quantizedBytes ?? (await fsp.stat(this.quantized)).size;
    return {
      executionProvider: this.provider,
      attempts: this.attempts,
      output,
      batches: batches.length,
      rows,
      metrics: cmp.result(),
      ...(opts.labels ? { accuracy: { original: correct.original / rows, quantized: correct.quantized / rows } } : {}),
      ...(nll.count > 0 ? { perplexity: { original: Math.exp(nll.original / nll.count), quantized: Math.exp(nll.quantized / nll.count) } } : {}),
      latencyMs: { original: time.original / batches.length, quantized: time.quantized / batches.length },
      sizeBytes: { original: so, quantized: sq },
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.a.release(), this.b.release()]);
  }
}

/** Class ids from a .npy of integers (any shape; read flat). */
export async function readLabels(file: string): Promise<number[]> {
  const v = await readNpyFile(file);
  const ints = ['int64', 'int32', 'int8', 'uint8'];
  check(ints.includes(v.dtype), 'bad-labels', () => `expected a .npy of integer class ids, found ${v.dtype}`, { file });
  return Array.from(v.data as ArrayLike<number | bigint>, Number);
}

/** Opens both models, loads `spec` as evaluation data and evaluates. */
export async function evaluateFiles(original: string, quantized: string, spec: string | undefined, opts: EvalOptions & CalibrationOptions & { labelsFile?: string } = {}): Promise<EvalResult & { data: { source: string; synthetic: boolean; samples: number } }> {
  const pair = await ModelPair.open(original, quantized, opts);
  try {
    const data = await pair.load(spec, opts);
    const labels = opts.labelsFile ? await readLabels(opts.labelsFile) : opts.labels;
    const r = await pair.evaluate(data.batches, { ...opts, labels });
    return { ...r, data: { source: data.source, synthetic: data.synthetic, samples: data.samples } };
  } finally {
    await pair.close();
  }
}
