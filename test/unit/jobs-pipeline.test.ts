import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { writeNpy } from '../../server/src/calib';
import { QuantLensError } from '../../server/src/formats/errors';
import { evaluateFiles, ModelPair } from '../../server/src/jobs/evaluate';
import { runQuantize } from '../../server/src/jobs/pipeline';
import { getFormat } from '../../server/src/quant';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { captureHessians } from '../../server/src/runtime/capture';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { traceScore } from '../../server/src/sensitivity/hessian';
import { randn, tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, tinyTransformer, writeTinyModel } from '../fixtures/tiny-models';

const tmp = tempDir('jobs-pipeline');
after(() => tmp.cleanup());
ort.env.logLevel = 'error';

const mlp = tinyMlp();
const mlpFile = writeTinyModel(mlp, tmp.dir, 'mlp.onnx');
/** 12 evaluation samples in one .npy (first axis = batch). */
const evalFile = path.join(tmp.dir, 'eval.npy');
writeFileSync(evalFile, writeNpy(tinyFeeds(mlp, 12, 77).x));

/** Logits of `file` on the evaluation samples (run here, independently of the evaluator). */
async function logits(file: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' });
  const f = tinyFeeds(mlp, 12, 77).x;
  const y = (await s.run({ x: new ort.Tensor('float32', f.data as Float32Array, f.dims) }))[mlp.output].data as Float32Array;
  await s.release();
  return y;
}

function argmaxRows(y: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < y.length; o += cols) {
    let b = 0;
    for (let j = 1; j < cols; j++) if (y[o + j] > y[o + b]) b = j;
    out.push(b);
  }
  return out;
}

/** Mean KL(softmax(a) ‖ softmax(b)) over rows, by the textbook formula. */
function klRef(a: Float32Array, b: Float32Array, cols: number): number {
  let sum = 0;
  for (let o = 0; o < a.length; o += cols) {
    const p = Array.from(a.slice(o, o + cols), Math.exp);
    const q = Array.from(b.slice(o, o + cols), Math.exp);
    const sp = p.reduce((x, y) => x + y);
    const sq = q.reduce((x, y) => x + y);
    for (let j = 0; j < cols; j++) sum += (p[j] / sp) * Math.log(p[j] / sp / (q[j] / sq));
  }
  return sum / (a.length / cols);
}

describe('evaluation', () => {
  it('identity quantization: KL 0, top-1 agreement 1, SQNR +∞; accuracy from labels', async () => {
    const copy = path.join(tmp.dir, 'copy.onnx');
    writeFileSync(copy, readFileSync(mlpFile));
    const labels = argmaxRows(await logits(mlpFile), 5);
    labels[0] = (labels[0] + 1) % 5; // one wrong label: accuracy 11/12 for both models
    const labelFile = path.join(tmp.dir, 'labels.npy');
    writeFileSync(labelFile, writeNpy({ dtype: 'int64', dims: [12], data: BigInt64Array.from(labels, BigInt) }));
    const r = await evaluateFiles(mlpFile, copy, evalFile, { batchSize: 4, labelsFile: labelFile });
    assert.deepEqual(r.metrics, { kl: 0, top1: 1, sqnrDb: Infinity });
    assert.deepEqual(r.accuracy, { original: 11 / 12, quantized: 11 / 12 });
    assert.equal(r.batches, 3);
    assert.equal(r.rows, 12);
    assert.equal(r.executionProvider, 'cpu');
    assert.ok(r.latencyMs.original > 0 && r.latencyMs.quantized > 0);
    assert.equal(r.sizeBytes.original, readFileSync(mlpFile).length);
  });

  it('measures KL / top-1 / SQNR against outputs computed here', async () => {
    const res = await runQuantize({ model: mlpFile, layer: 'fc2.weight', format: 'int2_ch_sym', out: path.join(tmp.dir, 'mlp.int2.onnx'), eval: evalFile });
    const [a, b] = [await logits(mlpFile), await logits(res.output)];
    let sig = 0;
    let noise = 0;
    for (let i = 0; i < a.length; i++) [sig, noise] = [sig + a[i] * a[i], noise + (b[i] - a[i]) ** 2];
    const agree = argmaxRows(a, 5).filter((c, i) => c === argmaxRows(b, 5)[i]).length / 12;
    assert.ok(Math.abs(res.metrics!.kl - klRef(a, b, 5)) < 1e-5 * Math.max(1, klRef(a, b, 5)));
    assert.ok(res.metrics!.kl > 0);
    assert.equal(res.metrics!.top1, agree);
    assert.ok(Math.abs(res.metrics!.sqnrDb - 10 * Math.log10(sig / noise)) < 1e-3);
  });

  it('quantizes a layer named by its path (as the explorer names it): its matrix, not its bias', async () => {
    const res = await runQuantize({ model: mlpFile, layer: 'fc1', format: 'int4_g4_sym', out: path.join(tmp.dir, 'mlp.fc1.onnx') });
    assert.deepEqual(res.weights.map((w) => w.name), ['fc1.weight']);
  });

  it('names the input and its expected shape when the data does not fit', async () => {
    const bad = path.join(tmp.dir, 'bad.npy');
    writeFileSync(bad, writeNpy({ dtype: 'float32', dims: [4, 7], data: new Float32Array(28) }));
    const pair = await ModelPair.open(mlpFile, mlpFile);
    await assert.rejects(pair.load(bad), (e: unknown) => e instanceof QuantLensError && /input 'x' expects shape \[N, 8\]/.test(e.message));
    await pair.close();
  });
});

describe('quantize job', () => {
  const planFile = path.join(tmp.dir, 'mlp.quant.yaml');
  writeFileSync(planFile, 'model: ./elsewhere.onnx\ndefaults: { format: int4_g4_asym }\nrules:\n  - match: fc2\n    format: nf4_g64\n  - match: fc1.weight\n    format: int8_ch_sym\n  - match: bn.weight\n    format: int8_ch_sym\n');

  it('applies a plan (the positional model replaces the plan\'s), reports measured and predicted error, writes the model', async () => {
    const r = await runQuantize({ model: mlpFile, plan: planFile, eval: evalFile });
    assert.equal(r.output, path.join(tmp.dir, 'mlp.quant.onnx'));
    assert.ok(existsSync(r.output));
    assert.deepEqual(r.weights.map((w) => [w.name, w.format, w.storage, w.simulated]), [
      ['fc0.weight', 'int4_g4_asym', 'uint4', false],
      ['fc1.weight', 'int8_ch_sym', 'int8', false],
      ['fc2.weight', 'nf4_g64', 'float32', true],
    ]);
    assert.equal(r.simulated, true);
    // The fc2 rule also reaches fc2.bias (a vector: not listed); the rule for a missing matrix matches nothing.
    assert.deepEqual(r.skipped, []);
    // Predicted relMse: recomputed here from the formats module.
    const runner = await ModelRunner.open(mlpFile);
    let num = 0;
    let den = 0;
    for (const w of r.weights) {
      const v = runner.read(w.name);
      const q = getFormat(w.format).quantizeDequantize(v, runner.weight(w.name).shape, runner.weight(w.name).layout);
      let n = 0;
      let d = 0;
      for (let i = 0; i < v.length; i++) [n, d] = [n + (q[i] - v[i]) ** 2, d + v[i] ** 2];
      assert.ok(Math.abs(w.relMse - n / d) < 1e-12 * Math.max(1, n / d), w.name);
      num += (n / d) * v.length;
      den += v.length;
    }
    await runner.close();
    assert.ok(Math.abs(r.predicted.relMse - num / den) < 1e-12);
    assert.ok(r.metrics!.kl > 0 && r.metrics!.top1 > 0.5 && r.metrics!.sqnrDb > 5);
    assert.equal(r.sizeBytes.quantized, readFileSync(r.output).length);
    assert.equal(r.evaluation!.data.samples, 12);
    // An existing output needs force.
    await assert.rejects(runQuantize({ model: mlpFile, plan: planFile }), /--force/);
  });

  it('GPTQ with captured Hessians: packed weights, and a layer-output error tr(ΔW H ΔWᵀ) below RTN\'s', async () => {
    const tf = tinyTransformer();
    const file = writeTinyModel(tf, tmp.dir, 'tf.onnx');
    const calib = path.join(tmp.dir, 'tf.npy');
    writeFileSync(calib, writeNpy(tinyFeeds(tf, 16, 5).x));
    const plan = path.join(tmp.dir, 'tf.quant.yaml');
    writeFileSync(plan, 'model: ./tf.onnx\ndefaults: { format: int3_g4_sym }\n');
    const g = await runQuantize({ model: file, plan, method: 'gptq', eval: calib, out: path.join(tmp.dir, 'tf.gptq.onnx') });
    assert.equal(g.weights.length, 7);
    assert.ok(g.weights.every((w) => !w.simulated && w.storage === 'int4' && w.hessian! >= 0));
    assert.ok(g.predicted.hessian! > 0);
    // RTN's layer-output error with the same Hessians, captured and scored here.
    const runner = await ModelRunner.open(file);
    let rtn = 0;
    await captureHessians(runner, [tinyFeeds(tf, 16, 5)], async (l) => {
      const w = runner.read(l.weight.name);
      const q = getFormat('int3_g4_sym').quantizeDequantize(w, l.weight.shape, l.weight.layout);
      const where = { file, tensor: l.weight.name };
      rtn += await traceScore({ values: w, shape: l.weight.shape, layout: l.weight.layout, H: l.H, where }, q.map((v, i) => v - w[i]));
    });
    await runner.close();
    assert.ok(g.predicted.hessian! < rtn, `GPTQ ${g.predicted.hessian} vs RTN ${rtn}`);
  });

  it('a cancelled job leaves no output', async () => {
    const ac = new AbortController();
    const out = path.join(tmp.dir, 'cancelled.onnx');
    const job = runQuantize({ model: mlpFile, plan: planFile, out, eval: evalFile, batchSize: 1 }, {
      signal: ac.signal,
      onProgress: (f) => {
        if (f > 0.7) ac.abort();
      },
    });
    await assert.rejects(job, (e: unknown) => (e as Error).name === 'AbortError');
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp')), []);
  });

  it('a model onnxruntime cannot load fails with onnxruntime\'s message', async () => {
    const g = new GraphBuilder('bad');
    g.input('x', 'float32', ['N', 4]);
    g.initializer('W', randn(8, 1, 1), [4, 2]);
    g.node('MatMul', ['x', 'W'], ['h']);
    g.node('NoSuchOp', ['h'], ['y']);
    g.output('y', 'float32', ['N', 2]);
    const file = path.join(tmp.dir, 'bad.onnx');
    writeFileSync(file, onnx.ModelProto.encode(g.model()).finish());
    await assert.rejects(runQuantize({ model: file, layer: 'W', format: 'int4_g2_sym' }), (e: unknown) => e instanceof QuantLensError && /NoSuchOp/.test(e.message));
    await assert.rejects(runQuantize({ model: mlpFile, layer: 'fc9.weight', format: 'int4_g2_sym', out: path.join(tmp.dir, 'x.onnx') }), /did you mean fc[0-2]\.weight/);
  });
});

describe('token models', () => {
  it('perplexity of next-token predictions, per model, as computed here from the logits', async () => {
    // ids[N, T] → Gather(embedding [V, D]) → MatMul [D, V] → logits [N, T, V].
    const V = 11;
    const D = 6;
    const g = new GraphBuilder('lm');
    g.input('ids', 'int64', ['N', 'T']);
    g.initializer('emb', randn(V * D, 41, 1), [V, D]);
    g.initializer('head', randn(D * V, 42, 0.7), [D, V]);
    g.node('Gather', ['emb', 'ids'], ['h']);
    g.node('MatMul', ['h', 'head'], ['logits']);
    g.output('logits', 'float32', ['N', 'T', V]);
    const file = path.join(tmp.dir, 'lm.onnx');
    writeFileSync(file, g.build());
    const ids = BigInt64Array.from({ length: 3 * 5 }, (_, i) => BigInt((i * 7 + 3) % V));
    const data = path.join(tmp.dir, 'ids.npy');
    writeFileSync(data, writeNpy({ dtype: 'int64', dims: [3, 5], data: ids }));
    const r = await runQuantize({ model: file, layer: 'head', format: 'int2_ch_sym', eval: data, out: path.join(tmp.dir, 'lm.q.onnx') });
    const ppl = async (f: string) => {
      const s = await ort.InferenceSession.create(f, { graphOptimizationLevel: 'disabled' });
      const y = (await s.run({ ids: new ort.Tensor('int64', ids, [3, 5]) })).logits.data as Float32Array;
      await s.release();
      let nll = 0;
      for (let b = 0; b < 3; b++) {
        for (let t = 0; t < 4; t++) {
          const row = Array.from(y.slice((b * 5 + t) * V, (b * 5 + t + 1) * V));
          const lse = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
          nll -= row[Number(ids[b * 5 + t + 1])] - lse;
        }
      }
      return Math.exp(nll / 12);
    };
    const p = r.evaluation!.perplexity!;
    assert.ok(Math.abs(p.original - (await ppl(file))) < 1e-4 * p.original);
    assert.ok(Math.abs(p.quantized - (await ppl(r.output))) < 1e-4 * p.quantized);
    assert.notEqual(p.original, p.quantized);
  });
});
