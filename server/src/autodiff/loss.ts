// Losses appended to the model output, with their gradient w.r.t. the output (or the logits feeding a final
// Softmax/LogSoftmax) written in closed form as the seed of the backward pass.
//
//   ce-labels   cross-entropy against class labels fed as the extra int64 input `quantlens.labels`
//               ([N] for [N, C] outputs, [N, T] for per-position [N, T, C] outputs).
//   ce-top1     cross-entropy against the model's own top-1 class (argmax in the graph): the empirical Fisher.
//   ce-sampled  cross-entropy against classes sampled from the model's output distribution by the Gumbel-max
//               trick (the true Fisher). The uniform noise comes from RandomUniformLike seeded with `seed`: the
//               k-th run of a session draws the k-th values, so a fixed sample order reproduces the labels.
//   mse-target  mean squared error to a target fed as `quantlens.target` (output-shaped).
//   mse-perturbed  mean squared error to T = y + δ, δ ~ N(0, 1) from RandomNormalLike seeded like ce-sampled, with T
//               held constant, so the output gradient is −2δ/size(y): the sampled Fisher of a unit-variance Gaussian
//               likelihood, for outputs that are not class scores. (The loss value itself is mean δ².)
//
// Every loss is the mean over positions (all axes but the last for cross-entropy, all elements for MSE).
// A probability output (produced by a Softmax over the last axis) differentiates log softmax of that Softmax's
// input, which equals the log of the output without its float underflow; a LogSoftmax output likewise.
// Other outputs declared as probabilities use log(max(p, 1e-30)).
import type { ModelInput } from '../calib/types';
import type { Emitter } from './emit';

export type LossSpec =
  | { kind: 'ce-labels' }
  | { kind: 'ce-top1' }
  | { kind: 'ce-sampled'; seed?: number }
  | { kind: 'mse-target' }
  | { kind: 'mse-perturbed'; seed?: number };

export const LOSS_INPUTS = { labels: 'quantlens.labels', target: 'quantlens.target' } as const;

/** How the output relates to class scores. */
export type OutputKind =
  | { kind: 'logits' }
  | { kind: 'softmax'; logits: string }
  | { kind: 'log-softmax'; logits: string }
  | { kind: 'probabilities' };

export interface LossGraph {
  loss: string;
  /** Where the backward pass starts and the gradient there. */
  seed: { value: string; grad: string };
  extraInputs: ModelInput[];
}

const PROB_FLOOR = 1e-30;

export function appendLoss(e: Emitter, y: string, dims: (number | string)[], out: OutputKind, spec: LossSpec): LossGraph {
  if (spec.kind === 'mse-target' || spec.kind === 'mse-perturbed') {
    const target = spec.kind === 'mse-target';
    const diff = target ? e.one('Sub', [y, LOSS_INPUTS.target]) : e.neg(e.one('RandomNormalLike', [y], { seed: { float: spec.seed ?? 1 } }));
    const n = e.sizeF(y);
    const loss = e.one('Div', [e.one('ReduceSum', [e.mul(diff, diff)], { keepdims: 0 }), n]);
    const grad = e.one('Div', [e.mul(diff, e.scalar(2)), n]);
    return { loss, seed: { value: y, grad }, extraInputs: target ? [{ name: LOSS_INPUTS.target, dtype: 'float32', dims: [...dims] }] : [] };
  }

  const extraInputs: ModelInput[] = [];
  const logits = out.kind === 'softmax' || out.kind === 'log-softmax' ? out.logits : out.kind === 'logits' ? y : undefined;
  const clamped = logits === undefined ? e.one('Max', [y, e.scalar(PROB_FLOOR)]) : undefined;
  const logp = logits !== undefined ? e.one('LogSoftmax', [logits], { axis: -1 }) : e.one('Log', [clamped!]);

  let labels: string;
  if (spec.kind === 'ce-labels') {
    labels = LOSS_INPUTS.labels;
    extraInputs.push({ name: labels, dtype: 'int64', dims: dims.slice(0, -1) });
  } else if (spec.kind === 'ce-top1') {
    labels = e.one('ArgMax', [logp], { axis: -1, keepdims: 0 });
  } else {
    // Gumbel-max: argmax(log p − log(−log U)) is a sample from p.
    const u = e.one('RandomUniformLike', [logp], { seed: { float: spec.seed ?? 1 } });
    const gumbel = e.neg(e.one('Log', [e.neg(e.one('Log', [u]))]));
    labels = e.one('ArgMax', [e.add(logp, gumbel)], { axis: -1, keepdims: 0 });
  }
  const depth = e.shapeSlice(y, -1);
  const onehot = e.one('OneHot', [labels, depth, e.floats([0, 1])], { axis: -1 });
  const positions = e.one('Div', [e.sizeF(y), e.one('Cast', [e.one('Gather', [e.shape(y), e.int(-1)], { axis: 0 })], { to: 1 })]);
  const loss = e.one('Div', [e.neg(e.one('ReduceSum', [e.mul(onehot, logp)], { keepdims: 0 })), positions]);

  if (logits !== undefined) {
    // d/dz of −log softmax(z)[label] = softmax(z) − onehot.
    const p = out.kind === 'softmax' ? y : e.one('Softmax', [logits], { axis: -1 });
    return { loss, seed: { value: logits, grad: e.one('Div', [e.one('Sub', [p, onehot]), positions]) }, extraInputs };
  }
  // d/dp of −log max(p, floor) at the label = −1/p where p > floor.
  const grad = e.one('Div', [e.neg(e.one('Div', [onehot, clamped!])), positions]);
  return { loss, seed: { value: y, grad: e.mask(e.one('Greater', [y, e.scalar(PROB_FLOOR)]), grad) }, extraInputs };
}
