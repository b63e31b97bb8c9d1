// Which loss the gradient scores use when no labels are given: cross-entropy on the model's own top-1 class for
// classifiers (token models included, at every position), output noise (MSE) for anything else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { onnx } from 'onnx-proto';
import { chooseLoss } from '../../server/src/sensitivity/gradient';
import { initWeights, TINY_LLAMA, type TinyLlamaConfig } from '../../server/src/tinylm/config';
import { buildForwardModel } from '../../server/src/tinylm/graph';
import { GraphBuilder } from '../../server/src/runtime/graph';

const TINY: TinyLlamaConfig = { ...TINY_LLAMA, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, maxPositions: 8 };

test('a token model (int64 ids → [batch, T, vocab] logits) is scored with next-token cross-entropy on its top-1', () => {
  const model = onnx.ModelProto.decode(buildForwardModel(TINY, initWeights(TINY, 1)));
  assert.deepEqual(chooseLoss(model, undefined, undefined, 'top1'), { kind: 'ce-top1' });
  assert.deepEqual(chooseLoss(model, undefined, undefined, 'sampled', 3), { kind: 'ce-sampled', seed: 3 });
});

test('a float-in rank-3 output (not token logits) falls back to the output-noise loss', () => {
  const g = new GraphBuilder();
  g.input('x', 'float32', [1, 4, 8]);
  g.node('Identity', ['x'], ['y']);
  g.output('y', 'float32', [1, 4, 8]);
  const model = onnx.ModelProto.decode(g.build());
  assert.deepEqual(chooseLoss(model, undefined, undefined, 'top1', 5), { kind: 'mse-perturbed', seed: 5 });
});
