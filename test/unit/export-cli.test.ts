// `quantlens export` / `quantlens import` as a user runs them: outputs are new files (temp + atomic link), the
// plan and the model are byte-identical afterwards, existing files are refused without --force, and nothing is
// ever written over an input, even with --force.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { registerExport } from '../../server/src/commands/export';
import { QuantLensError } from '../../server/src/formats/errors';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const ROOT = path.resolve(__dirname, '../..');
const GOLDEN = path.join(ROOT, 'test/fixtures/golden/export');

/** The real CLI in a child process (slow under tsx: used once, for exit codes and wiring). */
function spawnCli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/src/cli.ts'), ...args], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same commands in this process: exit code 2 for a QuantLensError, as cli.ts maps it. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  let stdout = '';
  let stderr = '';
  registerExport(program, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  try {
    await program.parseAsync(['node', 'quantlens', ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (!(e instanceof QuantLensError)) throw e;
    return { code: 2, stdout, stderr: `${stderr}quantlens: ${e.message}\n` };
  }
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

let dir: string;
let cleanup: () => void;
let plan: string;
let model: string;
let hashes: () => string[];

before(() => {
  ({ dir, cleanup } = tempDir('quantlens-export-cli-'));
  model = path.join(dir, 'model.safetensors');
  writeFixtureSafetensors(model, tinyLlamaTensors(), 'F16');
  plan = path.join(dir, 'golden.quant.yaml');
  copyFileSync(path.join(GOLDEN, 'golden.quant.yaml'), plan);
  const start = [sha(plan), sha(model)];
  hashes = () => {
    assert.deepEqual([sha(plan), sha(model)], start, 'the plan and the model must never change');
    return start;
  };
});
after(() => cleanup());

test('the quantlens binary: export writes a new file, a second run exits 2 and leaves it alone', () => {
  const out = path.join(dir, 'golden.recipe.yaml');
  let r = spawnCli('export', '--to', 'llm-compressor', plan);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${out}\n`);
  writeFileSync(out, 'edited by hand\n');
  r = spawnCli('export', '--to', 'llm-compressor', plan);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /golden\.recipe\.yaml: the file exists; pass --force to replace it/);
  assert.equal(readFileSync(out, 'utf8'), 'edited by hand\n');
  hashes();
});

test('export writes a new file beside the plan, prints its path, refuses to overwrite without --force', async () => {
  const out = path.join(dir, 'golden.gptqmodel.json');
  let r = await cli('export', '--to', 'gptqmodel', plan);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${out}\n`);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(path.join(GOLDEN, 'golden.gptqmodel.json'), 'utf8'));
  hashes();

  writeFileSync(out, 'edited by hand\n');
  r = await cli('export', '--to', 'gptqmodel', plan);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /golden\.gptqmodel\.json: the file exists; pass --force to replace it/);
  assert.equal(readFileSync(out, 'utf8'), 'edited by hand\n');

  r = await cli('export', '--to', 'gptqmodel', plan, '--force');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(path.join(GOLDEN, 'golden.gptqmodel.json'), 'utf8'));
  hashes();
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file is left behind');
});

test('export --to llama.cpp --out <folder> prints the file and the llama-quantize command; inputs are never targets', async () => {
  const sub = path.join(dir, 'out');
  mkdirSync(sub);
  let r = await cli('export', '--to', 'llama.cpp', plan, '--out', sub);
  assert.equal(r.code, 0, r.stderr);
  const file = path.join(sub, 'golden.tensor-types.txt');
  assert.equal(r.stdout, `${file}\nllama-quantize --tensor-type-file ${file} model-f16.gguf model-quantlens.gguf Q4_0\n`);
  assert.equal(readFileSync(file, 'utf8'), readFileSync(path.join(GOLDEN, 'golden.tensor-types.txt'), 'utf8'));

  for (const target of [plan, model]) {
    r = await cli('export', '--to', 'llama.cpp', plan, '--out', target, '--force');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to write over an input of this command/);
  }
  hashes();
});

test('import writes a new plan (or prints it) and refuses to overwrite', async () => {
  const cfg = path.join(GOLDEN, 'golden.gptqmodel.json');
  let r = await cli('import', '--from', 'gptqmodel', cfg, '--model', model);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^# Imported by QuantLens from GPTQModel config golden\.gptqmodel\.json\n/);
  const out = path.join(dir, 'imported.quant.yaml');
  r = await cli('import', '--from', 'gptqmodel', cfg, '--model', model, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${out}\n`);
  assert.match(readFileSync(out, 'utf8'), /^model: '\.\/model\.safetensors'\ndefaults: \{ format: int4_g32_sym \}\n/m);
  r = await cli('import', '--from', 'gptqmodel', cfg, '--model', model, '--out', out);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /the file exists/);
  hashes();
});
