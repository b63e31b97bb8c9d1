// Which plans Reveal in Plan and Quantize Model consider: a plan's `model:` against the explorer's model entry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { namesModel } from '../../client/src/modelPaths';

test('a file model: its own path, or the folder holding it', () => {
  const onnx = { path: '/w/ocr/model.onnx', kind: 'file' as const };
  assert.equal(namesModel('/w/ocr/model.onnx', onnx), true);
  assert.equal(namesModel('/w/ocr/./sub/../model.onnx', onnx), true);
  assert.equal(namesModel('/w/ocr', onnx), true);
  assert.equal(namesModel('/w/ocr/other.onnx', onnx), false);
  assert.equal(namesModel('/w', onnx), false);
});

test('a folder of shards: the folder, or any file inside it (not deeper)', () => {
  const llama = { path: '/w/llama', kind: 'folder' as const };
  assert.equal(namesModel('/w/llama', llama), true);
  assert.equal(namesModel('/w/llama/model-00001-of-00002.safetensors', llama), true);
  assert.equal(namesModel('/w/llama/sub/model.safetensors', llama), false);
  assert.equal(namesModel('/w/llama2', llama), false);
  // A config-only entry is a file: its folder names it.
  assert.equal(namesModel('/w/cfg', { path: '/w/cfg/config.json', kind: 'config' }), true);
});
