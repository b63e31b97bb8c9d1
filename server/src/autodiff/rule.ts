// The contract between the backward pass and the per-op gradient rules.
import type { onnx } from 'onnx-proto';
import { int64, type Int64 } from '../formats/onnx-tensor';
import type { Emitter } from './emit';
import { GradientUnsupportedError } from './errors';

export interface NodeView {
  op: string;
  name: string;
  /** Input names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Map<string, onnx.IAttributeProto>;
}

export interface RuleArgs {
  e: Emitter;
  node: NodeView;
  /** Gradient of the loss w.r.t. each output; undefined where no gradient reaches it. */
  dY: (string | undefined)[];
  /** Which inputs need a gradient (they lie on a weight→loss path). */
  need: boolean[];
  /** Dims of a value fixed in the model (initializers, Constant nodes); undefined otherwise. */
  staticDims: (value: string) => number[] | undefined;
}

/** Returns the gradient w.r.t. each input (undefined where not needed or not differentiable). */
export type Rule = (a: RuleArgs) => (string | undefined)[];

/** An int64 proto field (number or Long) as a number. */
export const num = (v: unknown): number => int64(v as Int64, 'integer field', { file: '<model graph>' });

export function attrInt(n: NodeView, name: string, fallback: number): number {
  const a = n.attrs.get(name);
  return a?.i === undefined || a.i === null ? fallback : num(a.i);
}

export function attrInts(n: NodeView, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  return a?.ints && a.ints.length > 0 ? a.ints.map(num) : undefined;
}

export function attrFloat(n: NodeView, name: string, fallback: number): number {
  const a = n.attrs.get(name);
  return a?.f === undefined || a.f === null ? fallback : a.f;
}

export function attrString(n: NodeView, name: string, fallback: string): string {
  const s = n.attrs.get(name)?.s;
  return s && s.length > 0 ? new TextDecoder().decode(s) : fallback;
}

export function unsupported(n: NodeView, why: string): GradientUnsupportedError {
  return new GradientUnsupportedError(n.op, n.name, why);
}
