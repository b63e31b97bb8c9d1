// Training loop of the tiny LM: seeded random windows of the training bytes, forward + backward by the autodiff
// gradient model of the fixed-shape forward graph (weights fed as inputs) on onnxruntime, then global grad-norm
// clipping and AdamW (decoupled weight decay on matrices only) with linear warm-up and cosine decay, in
// Float32Array loops. Weights live in the graph layout during training (Linear transposed) and come back in
// Hugging Face layouts.
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { buildGradientModel, LOSS_INPUTS } from '../autodiff';
import { check } from '../formats/errors';
import { rng } from '../random';
import { createSession } from '../runtime/session';
import type { TinyLlamaConfig, TinyWeights } from './config';
import { buildForwardModel, fromGraphLayout, INPUT_IDS, toGraphLayout } from './graph';

export interface TrainOptions {
  steps: number;
  seed: number;
  batch: number;
  seqLen: number;
  /** Peak learning rate (after warm-up). */
  lr: number;
  /** Learning rate at the end of the cosine, as a fraction of the peak. */
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Global gradient-norm bound. */
  clip: number;
  providers?: readonly string[];
  /** onnxruntime intra-op threads (its default when absent). */
  threads?: number;
  /** Called after every step (for printing and logs). */
  onStep?: (s: StepInfo) => void;
}

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

export interface TrainResult {
  weights: TinyWeights;
  steps: StepInfo[];
  provider: string;
}

export const DEFAULT_TRAIN: Omit<TrainOptions, 'steps' | 'seed'> = {
  batch: 8,
  seqLen: 128,
  lr: 2e-3,
  minLrRatio: 0.1,
  warmupSteps: 30,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clip: 1,
};

/** Linear warm-up to the peak, then cosine decay to minLrRatio·peak at the last step. */
export function learningRate(step: number, o: Pick<TrainOptions, 'steps' | 'lr' | 'minLrRatio' | 'warmupSteps'>): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  const span = Math.max(1, o.steps - 1 - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / span);
  return o.lr * (o.minLrRatio + (1 - o.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Batch of random windows: inputs text[s … s+T), labels text[s+1 … s+T]. */
export function sampleBatch(text: Uint8Array, batch: number, seqLen: number, next: () => number): { ids: BigInt64Array; labels: BigInt64Array } {
  const ids = new BigInt64Array(batch * seqLen);
  const labels = new BigInt64Array(batch * seqLen);
  const starts = text.length - seqLen;
  for (let b = 0; b < batch; b++) {
    const s = Math.floor(next() * starts);
    for (let t = 0; t < seqLen; t++) {
      ids[b * seqLen + t] = BigInt(text[s + t]);
      labels[b * seqLen + t] = BigInt(text[s + t + 1]);
    }
  }
  return { ids, labels };
}

/** AdamW state for one tensor. */
interface Slot {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
  decay: boolean;
  dims: number[];
}

export async function trainTinyLm(c: TinyLlamaConfig, init: TinyWeights, text: Uint8Array, o: TrainOptions): Promise<TrainResult> {
  const where = { file: '<tiny LM training>' };
  check(Number.isInteger(o.steps) && o.steps >= 1, 'bad-train-option', `steps must be a positive integer, found ${o.steps}`, where);
  check(text.length > o.seqLen + 1, 'bad-train-option', `the training text (${text.length} bytes) must be longer than a window (${o.seqLen + 1})`, where);
  const gm = buildGradientModel(buildForwardModel(c, init, { batch: o.batch, seqLen: o.seqLen }), {
    weights: [...init.keys()],
    loss: { kind: 'ce-labels' },
    weightInputs: true,
  });
  const { session, provider } = await createSession(gm.model, { providers: o.providers, threads: o.threads });
  const slots = new Map<string, Slot>();
  for (const [name, t] of toGraphLayout(init)) {
    slots.set(name, { p: Float32Array.from(t.data), m: new Float32Array(t.data.length), v: new Float32Array(t.data.length), decay: t.dims.length === 2, dims: t.dims });
  }
  const fetches = [gm.lossOutput, ...gm.gradients.values()];
  const next = rng(o.seed);
  const steps: StepInfo[] = [];
  try {
    for (let step = 0; step < o.steps; step++) {
      const t0 = performance.now();
      const { ids, labels } = sampleBatch(text, o.batch, o.seqLen, next);
      const feeds: Record<string, ort.Tensor> = {
        [INPUT_IDS]: new Tensor('int64', ids, [o.batch, o.seqLen]),
        [LOSS_INPUTS.labels]: new Tensor('int64', labels, [o.batch, o.seqLen]),
      };
      for (const [name, s] of slots) feeds[name] = new Tensor('float32', s.p, s.dims);
      const out = await session.run(feeds, fetches);
      const loss = (out[gm.lossOutput].data as Float32Array)[0];
      check(Number.isFinite(loss), 'training-diverged', `the loss became ${loss} at step ${step} (lower the learning rate)`, where);

      const grads = new Map([...slots.keys()].map((name) => [name, out[gm.gradients.get(name)!].data as Float32Array]));
      let sq = 0;
      for (const g of grads.values()) for (let k = 0; k < g.length; k++) sq += g[k] * g[k];
      const gradNorm = Math.sqrt(sq);
      const gscale = gradNorm > o.clip ? o.clip / gradNorm : 1;
      const lr = learningRate(step, o);
      const bc1 = 1 - Math.pow(o.beta1, step + 1);
      const bc2 = 1 - Math.pow(o.beta2, step + 1);
      for (const [name, s] of slots) {
        const g = grads.get(name)!;
        const { p, m, v } = s;
        const shrink = s.decay ? 1 - lr * o.weightDecay : 1;
        for (let k = 0; k < p.length; k++) {
          const gk = g[k] * gscale;
          m[k] = o.beta1 * m[k] + (1 - o.beta1) * gk;
          v[k] = o.beta2 * v[k] + (1 - o.beta2) * gk * gk;
          p[k] = p[k] * shrink - (lr * (m[k] / bc1)) / (Math.sqrt(v[k] / bc2) + 1e-8);
        }
      }
      const info = { step, loss, lr, gradNorm, seconds: (performance.now() - t0) / 1000 };
      steps.push(info);
      o.onStep?.(info);
    }
  } finally {
    await session.release();
  }
  const trained: TinyWeights = new Map([...slots].map(([name, s]) => [name, { dims: s.dims, data: s.p }]));
  return { weights: fromGraphLayout(trained), steps, provider };
}
