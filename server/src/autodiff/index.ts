// Reverse-mode differentiation of an ONNX model into a gradient model run on onnxruntime: the forward graph
// (upgraded to opset 21), a loss on one output, and per-weight gradient outputs. Only nodes on a path from a
// requested weight to the loss are differentiated; an op there without a rule raises GradientUnsupportedError.
// With `weightInputs`, every requested weight becomes a required graph input (onnxruntime-node feeds only
// declared inputs, not overridable initializers), so callers can feed perturbed weights (finite-difference
// Hessian-vector products); its stored value comes back in `weightValues`.
import { onnx } from 'onnx-proto';
import type { ModelInput } from '../calib/types';
import { Emitter } from './emit';
import { GradientUnsupportedError, gradientInputError } from './errors';
import { appendLoss, type LossSpec, type OutputKind } from './loss';
import { num, type NodeView, type Rule } from './rule';
import { CONV_RULES } from './rules-conv';
import { ELEMENTWISE_RULES } from './rules-elementwise';
import { LINEAR_RULES } from './rules-linear';
import { NORM_RULES } from './rules-norm';
import { SHAPE_RULES } from './rules-shape';
import { inferShapes, type SymShape } from './shapes';
import { TARGET_OPSET, upgradeNodes } from './upgrade';

export { GradientUnsupportedError } from './errors';
export { LOSS_INPUTS, type LossSpec } from './loss';

export interface GradientModel {
  model: Uint8Array;
  /** Weight name → graph output holding ∂loss/∂weight (weight-shaped). */
  gradients: Map<string, string>;
  /** Scalar graph output with the loss value. */
  lossOutput: string;
  /** The differentiated model output, also a graph output (for targets computed from it). */
  output: string;
  /** Inputs the loss adds (labels, noise): the caller must feed them. */
  extraInputs: ModelInput[];
  /** With `weightInputs`: each weight's stored value, to feed when not perturbing it. */
  weightValues: Map<string, { dims: number[]; data: Float32Array }>;
}

export interface GradientOptions {
  weights: string[];
  loss: LossSpec;
  /** Model output the loss applies to; the first graph output when absent. */
  output?: string;
  /** Treat the output as probabilities even when no final Softmax/LogSoftmax shows it. */
  probabilities?: boolean;
  /** Turn the weights into required graph inputs (see above). */
  weightInputs?: boolean;
}

const RULES: Record<string, Rule> = { ...ELEMENTWISE_RULES, ...LINEAR_RULES, ...SHAPE_RULES, ...NORM_RULES, ...CONV_RULES };

/** Ops whose outputs carry no gradient (shapes, indices, comparisons, step functions). */
const NON_DIFF_OPS = new Set([
  'Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero', 'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or',
  'Xor', 'IsNaN', 'IsInf', 'ConstantOfShape', 'Range', 'Floor', 'Ceil', 'Round', 'Sign', 'OneHot', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike',
]);
/** Input slots that are indices, shapes, axes or bounds rather than differentiable data. */
const NON_DIFF_SLOTS: Record<string, number[]> = {
  Reshape: [1], Expand: [1], Squeeze: [1], Unsqueeze: [1], Split: [1], Slice: [1, 2, 3, 4], Gather: [1], Where: [0], Clip: [1, 2],
  ReduceMean: [1], ReduceSum: [1], Dropout: [1, 2],
};
const FLOAT_TYPES = new Set([1, 10, 11, 16]);
const GRAD_SUFFIX = '::grad';

export function buildGradientModel(bytes: Uint8Array, opts: GradientOptions): GradientModel {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw gradientInputError('the model has no graph');
  const version = num((model.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? TARGET_OPSET);

  // Value ranks and dims known from the model, for the upgrade and the conv rules.
  const dims = new Map<string, number[]>();
  const ranks = new Map<string, number>();
  for (const vi of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    const d = vi.type?.tensorType?.shape?.dim;
    if (vi.name && d) ranks.set(vi.name, d.length);
  }
  const inits = [...(graph.initializer ?? [])];
  const constants = new Map<string, onnx.ITensorProto>();
  for (const n of graph.node ?? []) {
    const t = n.opType === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (t && n.output?.[0]) constants.set(n.output[0], { ...t, name: n.output[0] });
  }
  for (const t of [...inits, ...constants.values()]) {
    const d = (t.dims ?? []).map(num);
    dims.set(t.name ?? '', d);
    ranks.set(t.name ?? '', d.length);
  }

  // Weights: each must be a float initializer or Constant; Constant weights become initializers (or inputs).
  const weightSet = new Set(opts.weights);
  const initByName = new Map(inits.map((t) => [t.name ?? '', t]));
  const newInputs = (graph.input ?? []).filter((i) => !(opts.weightInputs && weightSet.has(i.name ?? '')));
  const weightValues = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const w of opts.weights) {
    const t = initByName.get(w) ?? constants.get(w);
    if (t === undefined) throw gradientInputError(`weight '${w}' is neither an initializer nor a Constant node output of the model`, w);
    if (!FLOAT_TYPES.has(t.dataType ?? 0)) throw gradientInputError(`weight '${w}' has element type ${t.dataType}, expected a float type`, w);
    if (opts.weightInputs) {
      weightValues.set(w, { dims: dims.get(w)!, data: float32Values(t) });
      newInputs.push({ name: w, type: { tensorType: { elemType: 1, shape: { dim: dims.get(w)!.map((v) => ({ dimValue: v })) } } } });
    } else if (!initByName.has(w)) {
      inits.push(t);
      initByName.set(w, t);
    }
  }
  const keptInits = opts.weightInputs ? inits.filter((t) => !weightSet.has(t.name ?? '')) : inits;
  const forwardNodes = (graph.node ?? []).filter((n) => !(n.opType === 'Constant' && weightSet.has(n.output?.[0] ?? '')));
  const up = upgradeNodes(forwardNodes, version, (v) => ranks.get(v));
  const nodes: NodeView[] = up.nodes.map((n, i) => ({
    op: n.opType ?? '',
    name: n.name || `${n.opType}#${i}`,
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs: new Map((n.attribute ?? []).map((a) => [a.name ?? '', a])),
  }));

  const outInfo = opts.output === undefined ? graph.output?.[0] : graph.output?.find((o) => o.name === opts.output);
  if (!outInfo?.name) throw gradientInputError(opts.output === undefined ? 'the model has no output' : `the model has no output named '${opts.output}'`);
  const y = outInfo.name;
  const yDims = (outInfo.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null ? num(d.dimValue) : d.dimParam || -1));

  const e = new Emitter('qlg', inferShapes(nodes, knownShapes(graph.input ?? [], dims, up.initializers), intConstants([...inits, ...constants.values(), ...up.initializers])));
  const lossGraph = appendLoss(e, y, yDims, outputKind(nodes, y, ranks.get(y), opts.probabilities === true), opts.loss);

  const reach = pathValues(nodes, weightSet, lossGraph.seed.value);
  const grads = new Map<string, string[]>();
  const contribute = (v: string, g: string) => (grads.has(v) ? grads.get(v)!.push(g) : grads.set(v, [g]));
  const total = (v: string): string | undefined => {
    const parts = grads.get(v);
    if (parts === undefined) return undefined;
    return parts.length === 1 ? parts[0] : e.one('Sum', parts);
  };
  if (reach.has(lossGraph.seed.value)) contribute(lossGraph.seed.value, lossGraph.seed.grad);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!node.outputs.some((o) => grads.has(o))) continue;
    const need = node.inputs.map((x, slot) => x !== '' && reach.has(x) && !(NON_DIFF_SLOTS[node.op] ?? []).includes(slot));
    if (!need.some(Boolean)) continue;
    const rule = RULES[node.op];
    const domain = up.nodes[i].domain ?? '';
    if (rule === undefined || (domain !== '' && domain !== 'ai.onnx')) throw new GradientUnsupportedError(domain ? `${domain}.${node.op}` : node.op, node.name);
    const dY = node.outputs.map(total);
    const dX = rule({ e, node, dY, need, staticDims: (v) => dims.get(v) });
    node.inputs.forEach((x, slot) => {
      if (need[slot] && dX[slot] !== undefined) contribute(x, dX[slot]!);
    });
  }

  const gradients = new Map<string, string>();
  const outputs: onnx.IValueInfoProto[] = [floatOutput(lossGraph.loss), outInfo];
  for (const w of opts.weights) {
    const name = `${w}${GRAD_SUFFIX}`;
    const g = total(w) ?? e.zerosLike(w);
    e.nodes.push({ opType: 'Identity', domain: '', name: `${name}/node`, input: [g], output: [name], attribute: [] });
    gradients.set(w, name);
    outputs.push(floatOutput(name));
  }
  for (const x of lossGraph.extraInputs) {
    newInputs.push({ name: x.name, type: { tensorType: { elemType: x.dtype === 'int64' ? 7 : 1, shape: { dim: x.dims.map((d) => (typeof d === 'number' && d >= 0 ? { dimValue: d } : { dimParam: String(d) })) } } } });
  }

  const outModel = onnx.ModelProto.create({
    ...model,
    irVersion: Math.max(num(model.irVersion ?? 0), 10),
    opsetImport: [
      ...(model.opsetImport ?? []).filter((o) => (o.domain ?? '') !== '' && o.domain !== 'ai.onnx'),
      { domain: '', version: Math.max(version, TARGET_OPSET) },
    ],
    graph: {
      ...graph,
      node: [...up.nodes, ...e.nodes],
      initializer: [...keptInits, ...up.initializers, ...e.inits],
      input: newInputs,
      output: outputs,
      valueInfo: [],
    },
  });
  return {
    model: onnx.ModelProto.encode(outModel).finish(),
    gradients,
    lossOutput: lossGraph.loss,
    output: y,
    extraInputs: lossGraph.extraInputs,
    weightValues,
  };
}

/** Shapes fixed by the model: graph inputs (named dims as shared tokens) and every stored tensor. */
function knownShapes(inputs: readonly onnx.IValueInfoProto[], dims: ReadonlyMap<string, number[]>, extra: readonly onnx.ITensorProto[]): Map<string, SymShape> {
  const out = new Map<string, SymShape>();
  inputs.forEach((vi, k) => {
    const d = vi.type?.tensorType?.shape?.dim;
    if (vi.name && d) out.set(vi.name, d.map((x, i) => (x.dimValue !== undefined && x.dimValue !== null ? num(x.dimValue) : x.dimParam ? `$${x.dimParam}` : `?input${k}.${i}`)));
  });
  for (const [name, d] of dims) out.set(name, d);
  for (const t of extra) out.set(t.name ?? '', (t.dims ?? []).map(num));
  return out;
}

/** Values of small int64 tensors (shapes, axes) for shape inference. */
function intConstants(tensors: readonly onnx.ITensorProto[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const t of tensors) {
    if (t.dataType !== 7 || (t.dims ?? []).length > 1) continue;
    if (t.rawData && t.rawData.length <= 8 * 64 && t.rawData.length % 8 === 0) {
      const b = Uint8Array.from(t.rawData);
      out.set(t.name ?? '', Array.from(new BigInt64Array(b.buffer), Number));
    } else if (t.int64Data && t.int64Data.length <= 64) out.set(t.name ?? '', t.int64Data.map(num));
  }
  return out;
}

/** A float32 weight's values (raw_data or float_data); other storage cannot be fed as a float32 input. */
function float32Values(t: onnx.ITensorProto): Float32Array {
  const count = (t.dims ?? []).reduce<number>((a, d) => a * num(d), 1);
  if (t.dataType === 1 && t.rawData && t.rawData.length === 4 * count) {
    const bytes = Uint8Array.from(t.rawData);
    return new Float32Array(bytes.buffer, 0, count);
  }
  if (t.dataType === 1 && t.floatData && t.floatData.length === count) return Float32Array.from(t.floatData);
  throw gradientInputError(`weight '${t.name}' is not stored as float32 values in the model (external or fp16 data cannot be fed back)`, t.name ?? undefined);
}

function floatOutput(name: string): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: 1 } } };
}

/** Recognizes a final Softmax/LogSoftmax over the last axis (whose input is then the logits). */
function outputKind(nodes: readonly NodeView[], y: string, rank: number | undefined, probabilities: boolean): OutputKind {
  const producer = nodes.find((n) => n.outputs[0] === y);
  if (producer && (producer.op === 'Softmax' || producer.op === 'LogSoftmax')) {
    const axis = num(producer.attrs.get('axis')?.i ?? -1);
    if (axis === -1 || (rank !== undefined && axis === rank - 1)) {
      return { kind: producer.op === 'Softmax' ? 'softmax' : 'log-softmax', logits: producer.inputs[0] };
    }
  }
  return probabilities || producer?.op === 'Softmax' ? { kind: 'probabilities' } : { kind: 'logits' };
}

/** Values that depend on a weight through differentiable edges and that the seed depends on. */
function pathValues(nodes: readonly NodeView[], weights: ReadonlySet<string>, seed: string): Set<string> {
  const fwd = new Set(weights);
  for (const n of nodes) {
    if (NON_DIFF_OPS.has(n.op) || (n.op === 'Cast' && !castsToFloat(n))) continue;
    const skip = NON_DIFF_SLOTS[n.op] ?? [];
    if (n.inputs.some((x, slot) => x !== '' && fwd.has(x) && !skip.includes(slot))) for (const o of n.outputs) fwd.add(o);
  }
  const reach = new Set<string>();
  if (!fwd.has(seed)) return reach;
  reach.add(seed);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => reach.has(o))) continue;
    for (const x of n.inputs) if (fwd.has(x)) reach.add(x);
  }
  return reach;
}

function castsToFloat(n: NodeView): boolean {
  return FLOAT_TYPES.has(num(n.attrs.get('to')?.i ?? 0));
}
