// The CLI as a user runs it: built bundle, real process, exit codes, stdout/stderr.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../fixtures/common';
import { runCli } from '../helpers/cli';

test('inspect config.json --json prints the architecture', () => {
  const { dir, cleanup } = tempDir();
  try {
    const cfg = path.join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 4, hidden_size: 256 }));
    const r = runCli('inspect', cfg, '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.format, 'hf-config');
    assert.equal(j.config.numLayers, 4);
    assert.equal(j.params, 0);
  } finally {
    cleanup();
  }
});

test('bad input exits 2 with one located line on stderr', () => {
  const { dir, cleanup } = tempDir();
  try {
    const missing = path.join(dir, 'nope.safetensors');
    let r = runCli('inspect', missing);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope\.safetensors: no such file or folder/);
    assert.equal(r.stderr.trim().split('\n').length, 1);

    const junk = path.join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.from('this is not a model at all, just text'));
    r = runCli('inspect', junk);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /junk\.bin @ byte 0: not a recognized checkpoint/);

    r = runCli('inspect');
    assert.equal(r.code, 2, 'missing argument is a usage error');
  } finally {
    cleanup();
  }
});
