// `quantlens analyze <model.onnx> --calib … --methods …` as a user runs it: every method on one model and one
// calibration set, the execution provider, the calibration origin, the agreement, and the error paths.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../../server/src/calib';
import { randn, tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir();
after(cleanup);
const model = writeTinyModel(tinyMlp({ softmax: true }), dir, 'mlp.onnx');
const calib = path.join(dir, 'calib.npy');
writeFileSync(calib, writeNpy({ dtype: 'float32', dims: [6, 8], data: randn(48, 7, 1) }));
const labels = path.join(dir, 'labels.npy');
writeFileSync(labels, writeNpy({ dtype: 'int64', dims: [6], data: BigInt64Array.from([0, 1, 2, 3, 4, 0].map(BigInt)) }));
const FORMATS = ['int2_g32_asym', 'int8_ch_sym'];

interface Report {
  executionProvider: string;
  calibration: { samples: number; synthetic: boolean; source: string };
  methods: string[];
  loss: string;
  layers: { name: string; op: string; scores: Record<string, Record<string, number | { kl: number; sqnrDb: number; top1: number }>> }[];
  agreement: { format: string; a: string; b: string; rho: number | null }[];
  fallbacks: unknown[];
}

test('all five methods on an ONNX MLP with labels: every layer × format scored, 8 bits always below 2 bits', () => {
  const r = runCli('analyze', model, '--calib', calib, '--labels', labels, '--methods', 'datafree,hessian,fisher,gwq,empirical', '--formats', FORMATS.join(','), '--json', '--no-cache', '--providers', 'cpu');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Report;
  assert.equal(j.executionProvider, 'cpu');
  assert.deepEqual(j.calibration, { samples: 6, synthetic: false, source: calib });
  assert.match(j.loss, /label/i);
  assert.deepEqual(j.layers.map((l) => [l.name, l.op]), [['fc0.weight', 'MatMul'], ['fc1.weight', 'MatMul'], ['fc2.weight', 'MatMul']]);
  for (const l of j.layers) {
    for (const m of ['datafree', 'hessian', 'fisher', 'gwq']) {
      const lo = l.scores[m][FORMATS[0]] as number;
      const hi = l.scores[m][FORMATS[1]] as number;
      assert.ok(lo > 0 && hi >= 0 && hi < lo, `${l.name} ${m}: int8 ${hi} vs int2 ${lo}`);
    }
    const e = l.scores.empirical as Record<string, { kl: number; top1: number }>;
    assert.ok(e[FORMATS[1]].kl < e[FORMATS[0]].kl, `${l.name}: KL int8 ${e[FORMATS[1]].kl} vs int2 ${e[FORMATS[0]].kl}`);
    assert.ok(e[FORMATS[1]].top1 >= e[FORMATS[0]].top1);
  }
  const pairs = j.agreement.filter((a) => a.format === FORMATS[0]).map((a) => `${a.a}/${a.b}`);
  assert.ok(pairs.includes('hessian/fisher') && pairs.includes('datafree/empirical.kl'), pairs.join(' '));
  for (const a of j.agreement) assert.ok(a.rho === null || (a.rho >= -1 - 1e-12 && a.rho <= 1 + 1e-12));
  assert.deepEqual(j.fallbacks, []);
});

test('without --calib the synthetic generator runs and the table says so', () => {
  const r = runCli('analyze', model, '--methods', 'hessian,empirical', '--formats', 'int4_g32_sym', '--providers', 'cpu');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /SYNTHETIC: no --calib given/);
  assert.match(r.stdout, /fc0\.weight\s+MatMul/);
  assert.match(r.stdout, /Spearman rank agreement at int4_g32_sym:\n {2}hessian vs empirical\.kl: /);
});

test('bad input exits 2 with one located line', () => {
  const st = path.join(dir, 'tiny.safetensors');
  writeFixtureSafetensors(st, tinyLlamaTensors(), 'F16');
  const notOnnx = runCli('analyze', st, '--methods', 'hessian');
  assert.equal(notOnnx.code, 2);
  assert.match(notOnnx.stderr, /tiny\.safetensors: calibration methods run the model, which needs ONNX \(this is safetensors\); .*--imatrix/);

  const method = runCli('analyze', model, '--methods', 'hessian,magic');
  assert.equal(method.code, 2);
  assert.match(method.stderr, /--methods: unknown method 'magic'/);

  const wrong = path.join(dir, 'wrong.npy');
  writeFileSync(wrong, writeNpy({ dtype: 'float32', dims: [6, 7], data: new Float32Array(42) }));
  const shape = runCli('analyze', model, '--calib', wrong, '--methods', 'hessian');
  assert.equal(shape.code, 2);
  assert.match(shape.stderr, /wrong\.npy: input 'x' expects shape \[N, 8\] \(float32\), found \[6, 7\]/);

  const few = path.join(dir, 'few.npy');
  writeFileSync(few, writeNpy({ dtype: 'int64', dims: [2], data: BigInt64Array.from([0n, 1n]) }));
  const labelCount = runCli('analyze', model, '--calib', calib, '--labels', few, '--methods', 'fisher');
  assert.equal(labelCount.code, 2);
  assert.match(labelCount.stderr, /labels have 2 rows, expected one per calibration sample \(6\)/);
});
