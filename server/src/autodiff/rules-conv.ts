// Gradient rules of convolution and pooling. Input gradients use ConvTranspose (the adjoint of Conv) on the
// padded frame and crop it back to the input; the weight gradient is itself a convolution of the input with
// the output gradient (batch and channel axes swapped, stride and dilation exchanged), grouped per conv group.
import type { Emitter } from './emit';
import { attrInt, attrInts, attrString, unsupported, type NodeView, type Rule, type RuleArgs } from './rule';

interface Geometry {
  /** Spatial rank. */
  r: number;
  k: number[];
  strides: number[];
  dilations: number[];
  begin: number[];
  end: number[];
}

function geometry(node: NodeView, kernel: number[] | undefined): Geometry {
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw unsupported(node, `uses auto_pad=${autoPad}`);
  const k = attrInts(node, 'kernel_shape') ?? kernel;
  if (k === undefined) throw unsupported(node, 'has no kernel_shape and a weight whose shape is not fixed in the model');
  const r = k.length;
  const ones = new Array<number>(r).fill(1);
  const pads = autoPad === 'VALID' ? undefined : attrInts(node, 'pads');
  return {
    r, k,
    strides: attrInts(node, 'strides') ?? ones,
    dilations: attrInts(node, 'dilations') ?? ones,
    begin: pads?.slice(0, r) ?? new Array<number>(r).fill(0),
    end: pads?.slice(r) ?? new Array<number>(r).fill(0),
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/**
 * Cuts the input-frame gradient out of `full`, which starts at padded coordinate 0 along each spatial axis:
 * zero-extend the end by a stride (a floor-mode output leaves at most that uncovered), then take [begin, begin + L).
 */
function crop(e: Emitter, full: string, x: string, geo: Geometry): string {
  const pads = [0, 0, ...new Array<number>(geo.r).fill(0), 0, 0, ...geo.strides];
  const padded = e.one('Pad', [full, e.ints(pads)]);
  const begin = e.ints(geo.begin);
  const end = e.add(e.shapeSlice(x, 2), begin);
  return e.one('Slice', [padded, begin, end, e.ints(range(2, 2 + geo.r))]);
}

const conv: Rule = ({ e, node, dY, need, staticDims }: RuleArgs) => {
  const [x, w, b] = node.inputs;
  const wDims = staticDims(w);
  const geo = geometry(node, wDims?.slice(2));
  const group = attrInt(node, 'group', 1);
  const g = dY[0]!;
  const spatial = range(2, 2 + geo.r);
  let gx: string | undefined;
  let gw: string | undefined;
  if (need[0]) {
    const full = e.one('ConvTranspose', [g, w], { group, strides: geo.strides, dilations: geo.dilations });
    gx = crop(e, full, x, geo);
  }
  if (need[1]) {
    // x[N, G·Cg, …] → [Cg, G·N, …]: each group's input channels become the batch, its samples the channels.
    const split = e.one('Concat', [e.shapeSlice(x, 0, 1), e.ints([group, -1]), e.shapeSlice(x, 2)], { axis: 0 });
    const xt = e.one('Transpose', [e.one('Reshape', [x, split])], { perm: [2, 1, 0, ...range(3, 3 + geo.r)] });
    const xg = e.one('Reshape', [xt, e.one('Concat', [e.ints([0, -1]), e.shapeSlice(x, 2)], { axis: 0 })]);
    const gt = e.one('Transpose', [g], { perm: [1, 0, ...spatial] });
    const corr = e.one('Conv', [xg, gt], { group, pads: [...geo.begin, ...geo.end], strides: geo.dilations, dilations: geo.strides });
    const full = e.one('Transpose', [corr], { perm: [1, 0, ...spatial] });
    gw = e.one('Slice', [full, e.ints(new Array<number>(geo.r).fill(0)), e.ints(geo.k), e.ints(spatial)]);
  }
  const gb = need[2] && b ? e.one('ReduceSum', [g, e.ints([0, ...spatial])], { keepdims: 0 }) : undefined;
  return [gx, gw, gb];
};

// MaxPool: replay it with the Indices output (flat positions in x) and scatter the gradient there.
const maxPool: Rule = ({ e, node, dY }) => {
  if (attrInt(node, 'storage_order', 0) !== 0) throw unsupported(node, 'uses storage_order=1');
  const x = node.inputs[0];
  const [, indices] = e.replay(node, [x], 2);
  const zeros = e.one('ConstantOfShape', [e.one('Reshape', [e.one('Size', [x]), e.ints([1])])]);
  const flat = e.one('ScatterElements', [zeros, e.one('Reshape', [indices, e.ints([-1])]), e.one('Reshape', [dY[0]!, e.ints([-1])])], {
    axis: 0,
    reduction: 'add',
  });
  return [e.reshapeLike(flat, x)];
};

// AveragePool: y = window sum / D with D per output position (window size, or its count of non-pad cells).
// 1/D comes from pooling ones (R = valid/D) divided by the valid count (a ones-kernel conv); the window sums
// go back through ConvTranspose with the ones kernel, channels folded into the batch.
const averagePool: Rule = ({ e, node, dY }) => {
  const x = node.inputs[0];
  const geo = geometry(node, undefined);
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const kernel = e.ones([1, 1, ...geo.k]);
  const frame = e.one('ConstantOfShape', [e.one('Concat', [e.ints([1, 1]), e.shapeSlice(x, 2)], { axis: 0 })], {
    value: { tensor: { dataType: 1, dims: [1], rawData: new Uint8Array(Float32Array.of(1).buffer) } },
  });
  const endPads = geo.end.map((p, i) => p + (ceil ? geo.strides[i] - 1 : 0));
  const valid = e.one('Conv', [frame, kernel], { pads: [...geo.begin, ...endPads], strides: geo.strides, dilations: geo.dilations });
  const invD = e.one('Div', [e.replay(node, [frame])[0], e.one('Max', [valid, e.scalar(1)])]);
  const folded = e.one('Reshape', [dY[0]!, e.one('Concat', [e.ints([-1, 1]), e.shapeSlice(dY[0]!, 2)], { axis: 0 })]);
  const full = e.one('ConvTranspose', [e.mul(folded, invD), kernel], { strides: geo.strides, dilations: geo.dilations });
  return [e.reshapeLike(crop(e, full, x, geo), x)];
};

const globalAveragePool: Rule = ({ e, node, dY }) => {
  const x = node.inputs[0];
  const spread = e.one('Expand', [dY[0]!, e.shape(x)]);
  return [e.one('Div', [spread, e.one('Div', [e.sizeF(x), e.sizeF(node.outputs[0])])])];
};

export const CONV_RULES: Record<string, Rule> = {
  Conv: conv, MaxPool: maxPool, AveragePool: averagePool, GlobalAveragePool: globalAveragePool,
};
