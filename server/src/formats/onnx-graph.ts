// Walks an ONNX graph and, recursively, the subgraphs held in node attributes (If then/else, Loop and
// Scan bodies): every node with its graph path, every weight source (initializers, sparse initializers,
// Constant nodes), and an index from value names to the node inputs consuming them.
import type { onnx } from 'onnx-proto';
import { check, LIMITS, type Location } from './errors';
import type { Int64 } from './onnx-tensor';

export interface GraphNode {
  /** Op type, domain-qualified when not ai.onnx (`com.microsoft.MatMulNBits`). */
  op: string;
  opType: string;
  /** Node name, or `#index` within its graph when unnamed. */
  name: string;
  /** '' for the main graph, else the path of attributes leading here (`If_0/then_branch`). */
  graph: string;
  inputs: string[];
  outputs: string[];
  attrs: onnx.IAttributeProto[];
}

export type SourceKind = 'initializer' | 'constant' | 'sparse_initializer';

export interface WeightSource {
  name: string;
  kind: SourceKind;
  graph: string;
  tensor: onnx.ITensorProto;
  /** Constant nodes: the attribute that held the value when it is not `value` (e.g. `value_floats`). */
  attr?: string;
  /** Sparse tensors: the dense shape (the values tensor holds only the non-zeros). */
  sparseDims?: Int64[];
}

export interface GraphWalk {
  nodes: GraphNode[];
  sources: WeightSource[];
  subgraphs: number;
}

/** Subgraph nesting beyond this is hostile rather than a real model. */
const MAX_DEPTH = 64;

export function qualifiedOp(n: onnx.INodeProto): string {
  const domain = n.domain ?? '';
  const op = n.opType ?? '';
  return domain === '' || domain === 'ai.onnx' ? op : `${domain}.${op}`;
}

export function walkGraph(main: onnx.IGraphProto, where: Location): GraphWalk {
  const out: GraphWalk = { nodes: [], sources: [], subgraphs: 0 };
  const visit = (g: onnx.IGraphProto, graph: string, depth: number): void => {
    check(depth <= MAX_DEPTH, 'too-deep', `subgraphs nested more than ${MAX_DEPTH} deep at ${graph}`, { ...where, tensor: graph });
    for (const t of g.initializer ?? []) out.sources.push({ name: t.name ?? '', kind: 'initializer', graph, tensor: t });
    for (const s of g.sparseInitializer ?? []) out.sources.push(sparseSource(s, 'sparse_initializer', graph));
    (g.node ?? []).forEach((n, i) => {
      const node: GraphNode = {
        op: qualifiedOp(n),
        opType: n.opType ?? '',
        name: n.name || `#${i}`,
        graph,
        inputs: n.input ?? [],
        outputs: n.output ?? [],
        attrs: n.attribute ?? [],
      };
      check(out.nodes.length < LIMITS.maxTensors, 'too-many-nodes', `more than ${LIMITS.maxTensors} nodes`, where);
      out.nodes.push(node);
      if (node.op === 'Constant') {
        const src = constantSource(node);
        if (src) out.sources.push(src);
      }
      const prefix = graph ? `${graph}/${node.name}` : node.name;
      for (const a of node.attrs) {
        if (a.g) {
          out.subgraphs++;
          visit(a.g, `${prefix}/${a.name}`, depth + 1);
        }
        (a.graphs ?? []).forEach((sg, j) => {
          out.subgraphs++;
          visit(sg, `${prefix}/${a.name}[${j}]`, depth + 1);
        });
      }
    });
  };
  visit(main, '', 0);
  return out;
}

function sparseSource(s: onnx.ISparseTensorProto, kind: SourceKind, graph: string, name?: string): WeightSource {
  const values = s.values ?? {};
  return { name: name ?? values.name ?? '', kind, graph, tensor: values, sparseDims: s.dims ?? [] };
}

/** A Constant node's value as a TensorProto (the scalar/list attributes are wrapped into one). */
function constantSource(node: GraphNode): WeightSource | undefined {
  const a = node.attrs[0];
  const name = node.outputs[0] || node.name;
  if (!a) return undefined;
  const base = { name, kind: 'constant' as const, graph: node.graph };
  switch (a.name) {
    case 'value':
      return a.t ? { ...base, tensor: a.t } : undefined;
    case 'sparse_value':
      return a.sparseTensor ? sparseSource(a.sparseTensor, 'constant', node.graph, name) : undefined;
    case 'value_float':
      return { ...base, attr: a.name, tensor: { dataType: 1, dims: [], floatData: [a.f ?? 0] } };
    case 'value_floats':
      return { ...base, attr: a.name, tensor: { dataType: 1, dims: [a.floats?.length ?? 0], floatData: a.floats } };
    case 'value_int':
      return { ...base, attr: a.name, tensor: { dataType: 7, dims: [], int64Data: [a.i ?? 0] } };
    case 'value_ints':
      return { ...base, attr: a.name, tensor: { dataType: 7, dims: [a.ints?.length ?? 0], int64Data: a.ints } };
    case 'value_string':
      return { ...base, attr: a.name, tensor: { dataType: 8, dims: [], stringData: [a.s ?? new Uint8Array(0)] } };
    case 'value_strings':
      return { ...base, attr: a.name, tensor: { dataType: 8, dims: [a.strings?.length ?? 0], stringData: a.strings } };
    default:
      return undefined;
  }
}

export interface Use {
  node: GraphNode;
  slot: number;
  /** Reached through a Transpose that swaps the last two axes (flips in_out ↔ out_in). */
  transposed: boolean;
  /** Reached directly (false: through a Cast/Identity/Transpose/DequantizeLinear chain). */
  direct: boolean;
}

/** Ops a weight passes through on its way to the op that really uses it (input 0 only). */
const PASS_THROUGH = new Set(['Cast', 'Identity', 'Transpose', 'DequantizeLinear', 'com.microsoft.DequantizeLinear']);
const MAX_CHAIN = 8;

/**
 * Value name → consuming node inputs, across all graphs: subgraphs read outer-scope values by name.
 * A subgraph value that shadows an outer name shares its consumers (rare; exporters use unique names).
 */
export class ConsumerIndex {
  private readonly byValue = new Map<string, { node: GraphNode; slot: number }[]>();

  constructor(nodes: readonly GraphNode[]) {
    for (const node of nodes) {
      node.inputs.forEach((v, slot) => {
        if (!v) return; // omitted optional input
        let list = this.byValue.get(v);
        if (!list) this.byValue.set(v, (list = []));
        list.push({ node, slot });
      });
    }
  }

  /** Direct consumers first, then the ones reached through pass-through chains (breadth first). */
  uses(name: string): Use[] {
    const out: Use[] = [];
    const seen = new Set([name]);
    let frontier = [{ value: name, transposed: false }];
    for (let hop = 0; hop <= MAX_CHAIN && frontier.length > 0; hop++) {
      const next: typeof frontier = [];
      for (const { value, transposed } of frontier) {
        for (const { node, slot } of this.byValue.get(value) ?? []) {
          out.push({ node, slot, transposed, direct: hop === 0 });
          const outValue = node.outputs[0];
          if (slot === 0 && PASS_THROUGH.has(node.op) && outValue && !seen.has(outValue)) {
            seen.add(outValue);
            next.push({ value: outValue, transposed: transposed !== swapsLastAxes(node) });
          }
        }
      }
      frontier = next;
    }
    return out;
  }
}

export const isPassThrough = (u: Use): boolean => u.slot === 0 && PASS_THROUGH.has(u.node.op);

/** Transpose without `perm` reverses all axes; with one, it matters whether the last two swap. */
function swapsLastAxes(node: GraphNode): boolean {
  if (node.op !== 'Transpose') return false;
  const perm = node.attrs.find((a) => a.name === 'perm')?.ints?.map(Number);
  if (!perm || perm.length === 0) return true;
  const n = perm.length;
  return n >= 2 && perm[n - 1] === n - 2 && perm[n - 2] === n - 1;
}

/** An integer attribute (Gemm transB, …) as a number; absent → `fallback`. */
export function intAttr(node: GraphNode, name: string, fallback: number): number {
  const a = node.attrs.find((x) => x.name === name);
  return a?.i === undefined || a.i === null ? fallback : Number(a.i);
}
