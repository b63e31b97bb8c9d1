// Bundles the extension client, language server, CLI, benchmarks and webview with esbuild.
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // Native addon, WebAssembly loader (locates its .wasm beside itself) and the VS Code API stay external.
  external: ['vscode', 'onnxruntime-node', 'highs'],
  logLevel: 'warning',
};
const builds = [
  { ...node, entryPoints: { 'client/extension': 'client/src/extension.ts' } },
  { ...node, entryPoints: { 'server/server': 'server/src/server.ts' } },
  { ...node, entryPoints: { cli: 'server/src/cli.ts' }, banner: { js: '#!/usr/bin/env node' } },
  { ...node, entryPoints: { bench: 'test/bench/bench.ts' } },
  // Worker-thread entries (found next to cli.js, or one folder up from server/server.js): server/src/worker-entry.ts.
  { ...node, entryPoints: { 'analysis-worker': 'server/src/analysis/worker.ts' } },
  { ...node, entryPoints: { 'sensitivity-worker': 'server/src/sensitivity/worker.ts' } },
  { ...node, entryPoints: { 'quantize-worker': 'server/src/jobs/worker.ts' } },
  { bundle: true, platform: 'browser', target: 'es2022', format: 'iife', sourcemap: true, logLevel: 'warning',
    entryPoints: { 'webview/main': 'webview/src/main.ts' } },
].map((b) => ({ ...b, outdir: 'dist' }));

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
