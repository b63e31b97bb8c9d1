// Activation capture: a second session whose outputs are the inputs of the analyzed layers, streamed over the
// calibration batches into layer Hessians H = (2/N) Σ x xᵀ (DESIGN.md §4), summed on onnxruntime.
//
// Rows x, per op: MatMul — the activation's last axis (leading axes flattened); Gemm — rows of A, or of Aᵀ when
// transA = 1; Conv (1-D and 2-D) — unfolded patches: per output position the C_in/group·kh·kw input values the
// kernel sees, in the weight's [C_in/group, kh, kw] order, zeros where padding is, honouring strides, pads,
// auto_pad, dilations and group. A grouped conv keeps ONE HESSIAN PER GROUP: group g's output channels only see
// group g's input channels, so tr(ΔW H ΔWᵀ) is exact as the sum over groups (and cheap: each is (C_in/group·k)²).
//
// Layers with d ≤ 64 (depthwise and small grouped convs, d = k² per group) sum all their groups' Hessians with one
// batched onnxruntime MatMul per chunk (GroupedGram); larger d uses one GramAccumulator per group.
//
// Memory: batches are processed one at a time; the layers are split into passes over the calibration set so that
// one pass holds at most `memoryBytes` of Hessian sums and row chunks, and each layer's Hessians are handed to
// `onLayer` and dropped at the end of its pass. Layers with d > maxDim (default 4096: a 4096² float64 H is
// 128 MiB) are refused and reported as skipped, as are Conv layers of rank other than 1-D/2-D. A pass also holds
// its layers' captured inputs for one batch (not counted in memoryBytes: keep batches modest for big models);
// conv patches are unfolded at most 16 MiB at a time.
import * as ort from 'onnxruntime-node';
import type { Feeds } from '../calib/types';
import { check, QuantLensError, type Location } from '../formats/errors';
import { GramAccumulator, type GramOptions } from './gram';
import { GraphBuilder } from './graph';
import type { KernelOptions } from './kernels';
import { fetchOutputs, type ModelRunner, type OutputTensor, type RunnerWeight } from './model-runner';
import { cachedSession, createSession } from './session';

export interface LayerHessian {
  weight: RunnerWeight;
  /** Length of one row x: in-features (MatMul/Gemm) or C_in/group·kh·kw (Conv). */
  d: number;
  /** Hessians (one per conv group, otherwise one), each d×d row-major. */
  H: Float64Array[];
  /** Rows accumulated into each Hessian. */
  rows: number;
}

export interface SkippedLayer {
  weight: string;
  reason: string;
}

export interface CaptureProgress {
  pass: number;
  passes: number;
  batch: number;
  batches: number;
}

export interface CaptureOptions {
  /** Weights to analyze (default: all of the runner's). */
  weights?: readonly string[];
  /** Largest accepted d (default 4096). */
  maxDim?: number;
  /** Hessian sums + row chunks held at once (default 1 GiB). */
  memoryBytes?: number;
  onProgress?: (p: CaptureProgress) => void;
  signal?: AbortSignal;
}

export const MAX_HESSIAN_DIM = 4096;
const DEFAULT_MEMORY = 2 ** 30;
/** Row-chunk bytes per layer (shared by its groups). */
const CHUNK_BYTES = 8 * 2 ** 20;

/** Conv geometry in 2-D form (1-D convs have inH = kh = 1). */
export interface ConvGeometry {
  n: number;
  c: number;
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilH: number;
  dilW: number;
  padTop: number;
  padLeft: number;
  group: number;
  /** Input channels per group. */
  cg: number;
}

/** Bound on conv strides, dilations, pads and kernel sizes (real models stay far below). */
const MAX_CONV_ATTR = 65536;

function ints(v: number | number[] | string | undefined, rank: number, fallback: number): number[] {
  return Array.isArray(v) ? v : new Array<number>(rank).fill(fallback);
}

/** Row length and number of Hessians of a layer, or why it cannot be captured. */
export function layerDims(w: RunnerWeight): { d: number; groups: number } | { reason: string } {
  if (w.op === 'MatMul') return { d: w.shape[0], groups: 1 };
  if (w.op === 'Gemm') return { d: w.layout === 'out_in' ? w.shape[1] : w.shape[0], groups: 1 };
  const spatial = w.shape.length - 2;
  if (spatial < 1 || spatial > 2) return { reason: `${spatial}-D convolution: only 1-D and 2-D Conv layers are captured` };
  const group = typeof w.attrs.group === 'number' ? w.attrs.group : 1;
  if (!(group >= 1 && w.shape[0] % group === 0)) return { reason: `group = ${group} does not divide the ${w.shape[0]} output channels` };
  return { d: w.shape.slice(1).reduce((a, b) => a * b, 1), groups: group };
}

/** Output size and leading pad of one spatial axis (ONNX Conv rules, auto_pad included). */
function axis(inSize: number, k: number, stride: number, dil: number, padBegin: number, padEnd: number, autoPad: string): { out: number; pad: number } {
  const span = (k - 1) * dil + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(inSize / stride);
    const total = Math.max(0, (out - 1) * stride + span - inSize);
    return { out, pad: autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2) };
  }
  if (autoPad === 'VALID') return { out: Math.floor((inSize - span) / stride) + 1, pad: 0 };
  return { out: Math.floor((inSize + padBegin + padEnd - span) / stride) + 1, pad: padBegin };
}

export function convGeometry(w: RunnerWeight, dims: readonly number[], where: Location): ConvGeometry {
  const spatial = w.shape.length - 2;
  check(dims.length === spatial + 2, 'bad-activation', () => `Conv input has shape [${dims.join(', ')}]; expected rank ${spatial + 2}`, where);
  const group = typeof w.attrs.group === 'number' ? w.attrs.group : 1;
  const cg = w.shape[1];
  check(dims[1] === cg * group, 'bad-activation', () => `Conv input has ${dims[1]} channels; the weight expects ${cg}·${group}`, where);
  const k = w.shape.slice(2);
  const strides = ints(w.attrs.strides, spatial, 1);
  const dil = ints(w.attrs.dilations, spatial, 1);
  const pads = ints(w.attrs.pads, 2 * spatial, 0);
  const autoPad = typeof w.attrs.auto_pad === 'string' ? w.attrs.auto_pad : 'NOTSET';
  // The model ran with these attributes, but they drive loops here: check them before trusting them.
  const attrWhere = { ...where, tensor: `${w.name} (node ${w.node})` };
  const valid = (xs: number[], n: number, min: number) => xs.length === n && xs.every((v) => Number.isSafeInteger(v) && v >= min && v <= MAX_CONV_ATTR);
  check(valid(strides, spatial, 1) && valid(dil, spatial, 1) && valid(pads, 2 * spatial, 0) && valid(k, spatial, 1), 'bad-attribute', () => `expected ${spatial} strides and dilations ≥ 1, ${2 * spatial} pads ≥ 0 and kernel sizes ≥ 1 (each ≤ ${MAX_CONV_ATTR}); found strides [${strides.join(', ')}], dilations [${dil.join(', ')}], pads [${pads.join(', ')}], kernel [${k.join(', ')}]`, attrWhere);
  const inSizes = dims.slice(2);
  const ax = inSizes.map((s, i) => axis(s, k[i], strides[i], dil[i], pads[i], pads[i + spatial], autoPad));
  const two = spatial === 2;
  const geo: ConvGeometry = {
    n: dims[0], c: dims[1], group, cg,
    inH: two ? inSizes[0] : 1, inW: inSizes[spatial - 1],
    outH: two ? ax[0].out : 1, outW: ax[spatial - 1].out,
    kh: two ? k[0] : 1, kw: k[spatial - 1],
    strideH: two ? strides[0] : 1, strideW: strides[spatial - 1],
    dilH: two ? dil[0] : 1, dilW: dil[spatial - 1],
    padTop: two ? ax[0].pad : 0, padLeft: ax[spatial - 1].pad,
  };
  check(geo.outH >= 1 && geo.outW >= 1, 'bad-activation', () => `Conv input [${dims.join(', ')}] is smaller than the kernel`, where);
  return geo;
}

/**
 * Patches of group `g` for output positions [start, start + count) (positions run over batch, then output rows,
 * then columns): [count, cg·kh·kw] row-major, in the weight's (channel, kh, kw) order, zeros where padding is.
 */
export function im2col(
  x: Float32Array,
  geo: ConvGeometry,
  g: number,
  start = 0,
  count = geo.n * geo.outH * geo.outW,
  out = new Float32Array(count * geo.cg * geo.kh * geo.kw),
  offset = 0,
): Float32Array {
  const { c, inH, inW, outH, outW, kh, kw, strideH, strideW, dilH, dilW, padTop, padLeft, cg } = geo;
  // `out` must be zero-filled: padding needs no writes.
  const perImage = outH * outW;
  let at = offset;
  for (let p = start; p < start + count; p++) {
    const b = Math.floor(p / perImage);
    const oh = Math.floor((p - b * perImage) / outW);
    const h0 = oh * strideH - padTop;
    const w0 = (p - b * perImage - oh * outW) * strideW - padLeft;
    for (let ci = 0; ci < cg; ci++) {
      const plane = (b * c + g * cg + ci) * inH * inW;
      for (let ki = 0; ki < kh; ki++) {
        const ih = h0 + ki * dilH;
        if (ih < 0 || ih >= inH) {
          at += kw;
          continue;
        }
        const row = plane + ih * inW;
        for (let kj = 0; kj < kw; kj++, at++) {
          const iw = w0 + kj * dilW;
          if (iw >= 0 && iw < inW) out[at] = x[row + iw];
        }
      }
    }
  }
  return out;
}

/** Values per unfolded-patch chunk: bounds the im2col copy of a big feature map (16 MiB of float32). */
const PATCH_CHUNK = 4 * 2 ** 20;

/** Rows for Hessians g0 … g0 + groups − 1: data is [groups, count, d] (each group's `count` rows contiguous). */
export interface RowChunk {
  g0: number;
  groups: number;
  count: number;
  data: Float32Array;
}

/**
 * The calibration rows of one layer from its captured input, in chunks. Conv patches are unfolded at most
 * PATCH_CHUNK values at a time: all groups per chunk when `allGroups`, else one group per chunk.
 */
export function* layerRows(w: RunnerWeight, act: OutputTensor, d: number, groups: number, allGroups: boolean, where: Location): Generator<RowChunk> {
  const dims = act.dims;
  if (w.op === 'MatMul') {
    check(dims.length >= 1 && dims[dims.length - 1] === d, 'bad-activation', () => `MatMul input has shape [${dims.join(', ')}]; expected last axis ${d}`, where);
    yield { g0: 0, groups: 1, count: act.data.length / d, data: act.data };
    return;
  }
  if (w.op === 'Gemm') {
    check(dims.length === 2, 'bad-activation', () => `Gemm input A has shape [${dims.join(', ')}]; expected rank 2`, where);
    if (w.attrs.transA !== 1) {
      check(dims[1] === d, 'bad-activation', () => `Gemm input A has shape [${dims.join(', ')}]; expected ${d} columns`, where);
      yield { g0: 0, groups: 1, count: dims[0], data: act.data };
      return;
    }
    check(dims[0] === d, 'bad-activation', () => `Gemm input A (transA=1) has shape [${dims.join(', ')}]; expected ${d} rows`, where);
    const m = dims[1];
    const rows = new Float32Array(m * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < m; j++) rows[j * d + i] = act.data[i * m + j];
    yield { g0: 0, groups: 1, count: m, data: rows };
    return;
  }
  const geo = convGeometry(w, dims, where);
  const positions = geo.n * geo.outH * geo.outW;
  const per = allGroups ? groups : 1;
  const step = Math.max(1, Math.floor(PATCH_CHUNK / (d * per)));
  for (let g0 = 0; g0 < groups; g0 += per) {
    for (let p = 0; p < positions; p += step) {
      const count = Math.min(step, positions - p);
      const data = new Float32Array(per * count * d);
      for (let k = 0; k < per; k++) im2col(act.data, geo, g0 + k, p, count, data, k * count * d);
      yield { g0, groups: per, count, data };
    }
  }
}

/** Largest d whose Hessians of all groups are summed together by one batched product per chunk. */
const SMALL_DIM = 64;

/**
 * Σ x xᵀ for every group of a layer with small d (depthwise and small grouped convs: d = k² per group) as ONE
 * batched onnxruntime MatMul per chunk ([G, d, n]·[G, n, d]), summed in float64 across chunks. One
 * GramAccumulator per group would cost one onnxruntime call per group and chunk, which dominated (seconds for a
 * 480-group depthwise layer); the precision is the same (float32 within a chunk, float64 across chunks).
 */
class GroupedGram {
  private readonly sum: Float64Array;
  private n = 0;

  constructor(
    private readonly d: number,
    private readonly groups: number,
    private readonly opts: KernelOptions & { where: Location },
  ) {
    this.sum = new Float64Array(groups * d * d);
  }

  async add(chunk: RowChunk): Promise<void> {
    const { d, groups, sum } = this;
    const x = chunk.data;
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        throw new QuantLensError('non-finite', `activation value ${x[i]} (row ${this.n + (Math.floor(i / d) % chunk.count)}); expected finite activations`, this.opts.where);
      }
    }
    const { session } = await cachedSession('capture:grouped-gram', buildGroupedGram, this.opts);
    const out = await session.run({ X: new ort.Tensor('float32', x, [groups, chunk.count, d]) });
    const g = out.G.data as Float32Array;
    for (let i = 0; i < g.length; i++) sum[i] += g[i];
    this.n += chunk.count;
  }

  /** One (2/N) Σ x xᵀ per group, exactly symmetric. */
  result(): { H: Float64Array[]; n: number } {
    const { d, n } = this;
    if (n === 0) throw new QuantLensError('no-rows', 'no calibration rows were added: H is undefined', this.opts.where);
    const H = Array.from({ length: this.groups }, (_, g) => {
      const h = new Float64Array(d * d);
      const base = g * d * d;
      for (let i = 0; i < d; i++) {
        for (let j = 0; j <= i; j++) {
          const v = (this.sum[base + i * d + j] + this.sum[base + j * d + i]) / n; // 2/N · (the two halves' mean)
          h[i * d + j] = v;
          h[j * d + i] = v;
        }
      }
      return h;
    });
    return { H, n };
  }
}

function buildGroupedGram(): Uint8Array {
  const g = new GraphBuilder('grouped-gram');
  g.input('X', 'float32', ['g', 'n', 'd']);
  g.node('Transpose', ['X'], ['Xt'], { perm: [0, 2, 1] });
  g.node('MatMul', ['Xt', 'X'], ['G']);
  g.output('G', 'float32', ['g', 'd', 'd']);
  return g.build();
}

/** Per-group GramAccumulators for d > SMALL_DIM. */
class PerGroupGram {
  private readonly accs: GramAccumulator[];

  constructor(d: number, groups: number, opts: GramOptions) {
    this.accs = Array.from({ length: groups }, () => new GramAccumulator(d, opts));
  }

  async add(chunk: RowChunk): Promise<void> {
    await this.accs[chunk.g0].add(chunk.data);
  }

  async result(): Promise<{ H: Float64Array[]; n: number }> {
    const results = [];
    for (const a of this.accs) results.push(await a.result());
    return { H: results.map((r) => r.H), n: results[0].n };
  }
}

interface Planned {
  weight: RunnerWeight;
  d: number;
  groups: number;
  bytes: number;
}

/** Greedy split of the layers into passes of at most `budget` bytes (a bigger layer gets a pass of its own). */
function passesOf(layers: Planned[], budget: number): Planned[][] {
  const passes: Planned[][] = [];
  let cur: Planned[] = [];
  let used = 0;
  for (const l of layers) {
    if (cur.length > 0 && used + l.bytes > budget) {
      passes.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(l);
    used += l.bytes;
  }
  if (cur.length > 0) passes.push(cur);
  return passes;
}

/**
 * Streams `batches` through the model, accumulates each selected layer's Hessian(s) and hands them to
 * `onLayer` (model order within a pass). Returns the layers that were refused, with the reason.
 */
export async function captureHessians(
  runner: ModelRunner,
  batches: readonly Feeds[],
  onLayer: (h: LayerHessian) => void | Promise<void>,
  opts: CaptureOptions = {},
): Promise<SkippedLayer[]> {
  const maxDim = opts.maxDim ?? MAX_HESSIAN_DIM;
  const wanted = opts.weights ? new Set(opts.weights) : undefined;
  const skipped: SkippedLayer[] = [];
  const planned: Planned[] = [];
  for (const name of wanted ?? []) runner.weight(name); // unknown names are located errors
  for (const w of runner.weights) {
    if (wanted && !wanted.has(w.name)) continue;
    const dims = layerDims(w);
    if ('reason' in dims) {
      skipped.push({ weight: w.name, reason: dims.reason });
      continue;
    }
    if (dims.d > maxDim) {
      const mib = (8 * dims.d * dims.d) / 2 ** 20;
      skipped.push({ weight: w.name, reason: `input dimension d = ${dims.d} exceeds the Hessian limit of ${maxDim} (H alone would take ${mib.toFixed(0)} MiB of float64); refused` });
      continue;
    }
    planned.push({ weight: w, ...dims, bytes: dims.groups * 8 * dims.d * dims.d + CHUNK_BYTES });
  }
  check(batches.length > 0 || planned.length === 0, 'no-calibration', 'no calibration batches: the layer Hessians need at least one', { file: runner.file });
  const passes = passesOf(planned, opts.memoryBytes ?? DEFAULT_MEMORY);
  for (let p = 0; p < passes.length; p++) {
    await capturePass(runner, batches, passes[p], onLayer, opts, p, passes.length);
  }
  return skipped;
}

async function capturePass(
  runner: ModelRunner,
  batches: readonly Feeds[],
  layers: Planned[],
  onLayer: (h: LayerHessian) => void | Promise<void>,
  opts: CaptureOptions,
  pass: number,
  passes: number,
): Promise<void> {
  const names = [...new Set(layers.map((l) => l.weight.activation))];
  const { session } = await createSession(runner.modelWithOutputs(names), runner.options);
  const results: { H: Float64Array[]; n: number }[] = [];
  try {
    const accs = layers.map((l) => {
      const where = { file: runner.file, tensor: l.weight.name };
      const kernel = { where, providers: runner.options.providers, threads: runner.options.threads };
      if (l.d <= SMALL_DIM) return new GroupedGram(l.d, l.groups, kernel);
      const chunkRows = Math.max(64, Math.min(2048, Math.floor(CHUNK_BYTES / (4 * l.d * l.groups))));
      return new PerGroupGram(l.d, l.groups, { ...kernel, chunkRows });
    });
    for (let b = 0; b < batches.length; b++) {
      opts.signal?.throwIfAborted();
      const acts = await fetchOutputs(session, runner.ortFeeds(batches[b]), names, runner.file);
      for (let i = 0; i < layers.length; i++) {
        const l = layers[i];
        const where = { file: runner.file, tensor: l.weight.name };
        for (const chunk of layerRows(l.weight, acts[l.weight.activation], l.d, l.groups, l.d <= SMALL_DIM, where)) await accs[i].add(chunk);
      }
      opts.onProgress?.({ pass, passes, batch: b + 1, batches: batches.length });
    }
    for (const acc of accs) results.push(await acc.result());
  } catch (e) {
    if (e instanceof QuantLensError || (e instanceof Error && e.name === 'AbortError')) throw e;
    throw new QuantLensError('capture-failed', `activation capture failed: ${e instanceof Error ? e.message : String(e)}`, { file: runner.file });
  } finally {
    await session.release();
  }
  for (let i = 0; i < layers.length; i++) {
    const { H, n } = results[i];
    results[i] = { H: [], n }; // hand each layer's Hessians over, then let them go
    await onLayer({ weight: layers[i].weight, d: layers[i].d, H, rows: n });
  }
}
