// Builds the extension and packs it into an offline .vsix (linux-x64): the esbuild bundles plus the runtime files of
// the packages the bundles keep external, as .vscodeignore lists them. Usage: node scripts/package-vsix.mjs [--out file]
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { name, version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const at = process.argv.indexOf('--out');
const out = path.resolve(at > 0 && process.argv[at + 1] ? process.argv[at + 1] : path.join(root, `${name}-${version}.vsix`));

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`package: ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

run(process.execPath, ['scripts/build.mjs']);
// --target linux-x64: the package carries onnxruntime-node's linux-x64 binding only, so VS Code must not offer it
// elsewhere. No repository/LICENSE file in the manifest yet, and README images stay relative (local install).
run(process.execPath, [
  path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce'),
  'package',
  '--target', 'linux-x64',
  '--skip-license',
  '--allow-missing-repository',
  '--no-rewrite-relative-links',
  '--out', out,
]);
console.log(`package: ${out} (${(statSync(out).size / 2 ** 20).toFixed(1)} MiB)`);
