// `quantlens lsp --stdio`: the CLI runs the same language server over stdio (for Neovim, Helix, Emacs…).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundle, LspClient } from '../helpers/lsp-client';

test('quantlens lsp --stdio answers initialize with the plan features, then shuts down cleanly', async () => {
  const cli = await bundle('server/src/cli.ts', 'lsp-cli');
  const lsp = LspClient.spawn(cli, ['lsp', '--stdio']);
  try {
    const init = await lsp.initialize();
    assert.equal(init.serverInfo.name, 'quantlens');
    assert.equal(init.capabilities.textDocumentSync, 2);
    assert.deepEqual(init.capabilities.executeCommandProvider, { commands: ['quantlens.fitBudget'] });
    assert.equal(init.capabilities.hoverProvider, true);
    assert.equal(await lsp.shutdown(), 0, lsp.stderr);
  } finally {
    lsp.kill();
  }
});
