// Gradient rules of MatMul (batched, broadcasting) and Gemm.
import type { Emitter } from './emit';
import { attrFloat, attrInt, type Rule } from './rule';

/** Swaps the last two axes whatever the rank (Einsum's ellipsis covers the batch axes). */
const swapLast = (e: Emitter, x: string): string => e.one('Einsum', [x], { equation: '...ij->...ji' });

// Y = A·B: dA = dY·Bᵀ, dB = Aᵀ·dY, each summed over the batch axes it was broadcast along.
const matmul: Rule = ({ e, node, dY, need }) => {
  const [a, b] = node.inputs;
  const g = dY[0]!;
  const y = e.shapeOf(node.outputs[0]);
  const sa = e.shapeOf(a);
  const sb = e.shapeOf(b);
  // The products have Y's batch axes and the operand's own matrix axes.
  const like = (s: typeof sa) => (y && s && s.length >= 2 ? [...y.slice(0, -2), ...s.slice(-2)] : undefined);
  return [
    need[0] ? e.unbroadcast(e.one('MatMul', [g, swapLast(e, b)]), a, like(sa)) : undefined,
    need[1] ? e.unbroadcast(e.one('MatMul', [swapLast(e, a), g]), b, like(sb)) : undefined,
  ];
};

// Y = α·op(A)·op(B) + β·C with op = transpose when transA/transB.
const gemm: Rule = ({ e, node, dY, need }) => {
  const [a, b, c] = node.inputs;
  const ta = attrInt(node, 'transA', 0);
  const tb = attrInt(node, 'transB', 0);
  const alpha = { float: attrFloat(node, 'alpha', 1) };
  const beta = attrFloat(node, 'beta', 1);
  const g = dY[0]!;
  let ga: string | undefined;
  let gb: string | undefined;
  if (need[0]) {
    // d op(A) = α·dY·op(B)ᵀ; for transA the transpose of it is α·op(B)·dYᵀ.
    ga = ta === 0 ? e.one('Gemm', [g, b], { alpha, transB: 1 - tb }) : e.one('Gemm', [b, g], { alpha, transA: tb, transB: 1 });
  }
  if (need[1]) {
    // d op(B) = α·op(A)ᵀ·dY; for transB the transpose of it is α·dYᵀ·op(A).
    gb = tb === 0 ? e.one('Gemm', [a, g], { alpha, transA: 1 - ta }) : e.one('Gemm', [g, a], { alpha, transA: 1, transB: ta });
  }
  const gc = need[2] && c ? e.unbroadcast(beta === 1 ? g : e.mul(g, e.scalar(beta)), c, e.shapeOf(node.outputs[0])) : undefined;
  return [ga, gb, gc];
};

export const LINEAR_RULES: Record<string, Rule> = { MatMul: matmul, Gemm: gemm };
