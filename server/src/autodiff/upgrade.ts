// Brings forward nodes written for an older ai.onnx opset to opset 21 semantics, so the gradient nodes (which
// use opset 21 ops: ScatterElements with reduction, Range, Einsum, axes inputs) can live in the same graph.
// Covers the changes exporters hit in practice: attributes that became inputs (Slice 10, Clip 11, Pad 11,
// Squeeze/Unsqueeze/ReduceSum/Split 13, other reductions 18), Split's num_outputs (18), Dropout's ratio (12)
// and the 2-D coercion of Softmax/LogSoftmax before 13.
import type { onnx } from 'onnx-proto';
import { GradientUnsupportedError } from './errors';
import { num } from './rule';

export const TARGET_OPSET = 21;
const INT64 = 7;
const FLOAT = 1;

const REDUCE = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];
/** Ops whose opset ≤ 20 forms are not rewritten here (control flow: the subgraphs would keep old semantics). */
const NOT_UPGRADABLE = new Set(['Upsample', 'Scatter', 'If', 'Loop', 'Scan']);
const NOT_UPGRADABLE_BEFORE: Record<string, number> = { Resize: 13, TopK: 10, Pad: 11 };

export interface Upgraded {
  nodes: onnx.INodeProto[];
  initializers: onnx.ITensorProto[];
}

export function upgradeNodes(nodes: readonly onnx.INodeProto[], version: number, rankOf: (v: string) => number | undefined): Upgraded {
  if (version >= TARGET_OPSET) return { nodes: [...nodes], initializers: [] };
  const out: onnx.INodeProto[] = [];
  const inits: onnx.ITensorProto[] = [];
  let count = 0;
  const fresh = (hint: string) => `qlu/${hint}_${count++}`;
  const int64s = (values: readonly number[]) => {
    const name = fresh('i64');
    inits.push({ name, dataType: INT64, dims: [values.length], rawData: new Uint8Array(BigInt64Array.from(values, BigInt).buffer) });
    return name;
  };
  const scalarF = (value: number) => {
    const name = fresh('f32');
    inits.push({ name, dataType: FLOAT, dims: [], rawData: new Uint8Array(Float32Array.of(value).buffer) });
    return name;
  };

  for (const n of nodes) {
    const op = n.opType ?? '';
    if ((n.domain ?? '') !== '' && n.domain !== 'ai.onnx') {
      out.push(n);
      continue;
    }
    const name = n.name || op;
    if (version < 7) throw new GradientUnsupportedError(op, name, `is from ai.onnx opset ${version}; gradients need opset 7 or later`);
    if (NOT_UPGRADABLE.has(op) || version < (NOT_UPGRADABLE_BEFORE[op] ?? 0)) {
      throw new GradientUnsupportedError(op, name, `cannot be upgraded from opset ${version} to ${TARGET_OPSET}`);
    }
    const attrs = new Map((n.attribute ?? []).map((a) => [a.name ?? '', a]));
    const ints = (k: string) => attrs.get(k)?.ints?.map(num);
    const without = (...names: string[]) => (n.attribute ?? []).filter((a) => !names.includes(a.name ?? ''));
    const inputs = [...(n.input ?? [])];

    if (op === 'Slice' && version < 10) {
      const axes = ints('axes');
      inputs.push(int64s(ints('starts') ?? []), int64s(ints('ends') ?? []), ...(axes ? [int64s(axes)] : []));
      out.push({ ...n, input: inputs, attribute: without('starts', 'ends', 'axes') });
    } else if (((op === 'Squeeze' || op === 'Unsqueeze' || op === 'ReduceSum') && version < 13) || (REDUCE.includes(op) && version < 18)) {
      const axes = ints('axes');
      out.push({ ...n, input: axes ? [inputs[0], int64s(axes)] : inputs, attribute: without('axes') });
    } else if (op === 'Split' && version < 18) {
      const split = version < 13 ? ints('split') : undefined;
      const sized = split !== undefined || (inputs.length > 1 && inputs[1] !== '');
      const attribute = without('split');
      if (!sized) attribute.push({ name: 'num_outputs', type: 2, i: (n.output ?? []).length });
      out.push({ ...n, input: split ? [inputs[0], int64s(split)] : inputs, attribute });
    } else if (op === 'Clip' && version < 11) {
      const lo = attrs.get('min')?.f;
      const hi = attrs.get('max')?.f;
      out.push({ ...n, input: [inputs[0], lo !== undefined && lo !== null ? scalarF(lo) : '', hi !== undefined && hi !== null ? scalarF(hi) : ''], attribute: without('min', 'max') });
    } else if (op === 'Dropout' && version < 12) {
      if ((n.output ?? []).length > 1 && n.output![1] !== '') throw new GradientUnsupportedError(op, name, 'uses its mask output');
      out.push({ ...n, opType: 'Identity', output: [n.output![0]], attribute: [] });
    } else if ((op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && version < 13) {
      // Before 13 these normalize over the flattened axes [axis, rank): equal to axis −1 when axis is the last one.
      const axis = num(attrs.get('axis')?.i ?? 1);
      const rank = rankOf(inputs[0]);
      if (axis === -1 || (rank !== undefined && axis === rank - 1)) {
        out.push({ ...n, attribute: [{ name: 'axis', type: 2, i: -1 }] });
      } else {
        const flat = fresh('flat');
        const y = fresh('y2d');
        const shape = fresh('shape');
        out.push({ opType: 'Flatten', domain: '', name: fresh('Flatten'), input: [inputs[0]], output: [flat], attribute: [{ name: 'axis', type: 2, i: axis }] });
        out.push({ ...n, input: [flat], output: [y], attribute: [{ name: 'axis', type: 2, i: -1 }] });
        out.push({ opType: 'Shape', domain: '', name: fresh('Shape'), input: [inputs[0]], output: [shape], attribute: [] });
        out.push({ opType: 'Reshape', domain: '', name: fresh('Reshape'), input: [y, shape], output: [...(n.output ?? [])], attribute: [] });
      }
    } else if (op === 'BatchNormalization' && version < 9) {
      out.push({ ...n, attribute: without('spatial', 'is_test', 'consumed_inputs') });
    } else {
      out.push(n);
    }
  }
  return { nodes: out, initializers: inits };
}
