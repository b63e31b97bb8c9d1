// The plan's second diagnostics pass over LSP: calibration data checked against the ONNX model's inputs, and
// a model without analysis flagged as information (diagnostics never wait for an analysis).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { writeNpy } from '../../server/src/calib';
import { randn, tempDir } from '../fixtures/common';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { bundle, LspClient, writeSafetensors, type LspDiagnostic } from '../helpers/lsp-client';

const { dir, cleanup } = tempDir();
let lsp: LspClient;
const at = (diags: LspDiagnostic[], code: string) => diags.filter((d) => d.code === code).map((d) => [d.range.start.line, d.severity]);

before(async () => {
  writeTinyModel(tinyMlp(), dir, 'mlp.onnx');
  writeFileSync(path.join(dir, 'good.npy'), writeNpy({ dtype: 'float32', dims: [4, 8], data: randn(32, 1, 1) }));
  writeFileSync(path.join(dir, 'bad.npy'), writeNpy({ dtype: 'float32', dims: [4, 9], data: randn(36, 1, 1) }));
  writeSafetensors(path.join(dir, 'llm.safetensors'), [{ name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [8, 8] }]);
  lsp = LspClient.spawn(await bundle('server/src/server.ts', 'lsp-data'), ['--stdio'], { XDG_CACHE_HOME: path.join(dir, 'cache') });
  await lsp.initialize();
});
after(() => {
  lsp?.kill();
  cleanup();
});

test('calibration that does not fit the ONNX inputs is an error at the calibration value; fitting data is silent', async () => {
  const plan = (calib: string) => `model: ./mlp.onnx\ncalibration: ./${calib}\nmethod: hessian\ndefaults: { format: int4_g32_sym }\n`;
  const bad = await secondPass('bad.quant.yaml', plan('bad.npy'));
  assert.deepEqual(at(bad, 'calibration-mismatch'), [[1, 1]]);
  assert.match(bad.find((d) => d.code === 'calibration-mismatch')!.message, /bad\.npy: input 'x' expects shape \[N, 8\] \(float32\), found \[4, 9\]/);
  // No analysis in the (empty) cache: an information diagnostic at the model value.
  assert.deepEqual(at(bad, 'not-analyzed'), [[0, 3]]);
  const good = await secondPass('good.quant.yaml', plan('good.npy'));
  assert.deepEqual(at(good, 'calibration-mismatch'), []);
});

test('calibration next to a safetensors model is a warning pointing to imatrix', async () => {
  const d = await secondPass('llm.quant.yaml', 'model: ./llm.safetensors\ncalibration: ./good.npy\ndefaults: { format: int4_g32_sym }\n');
  assert.deepEqual(at(d, 'calibration-unused'), [[1, 2]]);
  assert.match(d.find((x) => x.code === 'calibration-unused')!.message, /imatrix/);
});

/** The second diagnostics publication of a freshly opened plan (fast checks first, then the data checks). */
async function secondPass(name: string, text: string): Promise<LspDiagnostic[]> {
  const uri = pathToFileURL(path.join(dir, name)).href;
  const first = lsp.nextDiagnostics(uri, 1);
  const second = first.then(() => lsp.nextDiagnostics(uri, 1));
  await lsp.rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'quantplan', version: 1, text } });
  const fast = await first;
  assert.deepEqual(at(fast, 'calibration-mismatch'), [], 'the fast pass never reads calibration data');
  return second;
}
