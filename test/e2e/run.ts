// End-to-end tests in a real VS Code (code-server + headless Chromium), three launches:
//   main        trusted workspace: the in-host suite (suite.ts) and the UI phases (ui.ts), then an empty workspace
//   restricted  the same workspace untrusted: quantize commands refuse and say why, inspection still works
//   vsix        the packaged .vsix (npm run package) installed into a fresh extensions folder: activation + explorer
//
// Usage (from the repository root):
//   node --import tsx test/e2e/run.ts [--only main,restricted,vsix] [--vsix file] [--update-media]
//     --vsix file     install this package instead of building one
//     --update-media  copy the README screenshots (explorer, plan, report panel) to media/screenshots/
//   node --import tsx test/e2e/run.ts --prepare   only build the extension + in-host suite and write the fixture
//                                                 workspace (for the "Extension Tests" launch config)
// Environment: QUANTLENS_E2E_CACHE (tools and runs; default <repo>/.cache/e2e),
//              QUANTLENS_E2E_CHROMIUM (browser binary; default: chromium on PATH, apt-installed when missing).
// Screenshots: test/e2e/screenshots/. Exit status 0 when every check of every launch passed.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { writeFixtureWorkspace } from './fixture';
import {
  BROWSER_ARGS,
  VIEWPORT,
  firstLine,
  foreignRequests,
  installVsix,
  recordTraffic,
  log,
  sleep,
  startCodeServer,
  stepper,
  stopCodeServer,
  waitFor,
  type Browser,
  type Check,
  type Launch,
  type Page,
  type Playwright,
  type Traffic,
} from './harness';
import { ensureTools, type Tools } from './tools';
import { driveUi, expandTinyLlama, openQuantLens } from './ui';

const ROOT = findRoot(path.dirname(path.resolve(process.argv[1] ?? 'test/e2e/run.ts')));
const CACHE = path.resolve(process.env.QUANTLENS_E2E_CACHE ?? path.join(ROOT, '.cache', 'e2e'));
const SHOTS = path.join(ROOT, 'test', 'e2e', 'screenshots');
/** The screenshots the README shows, and their names under media/screenshots/. */
const MEDIA: Record<string, string> = { 'explorer.png': 'explorer.png', 'plan.png': 'plan.png', 'webview-slider.png': 'vscode-panel.png' };

function findRoot(from: string): string {
  for (let d = from; ; d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'quantlens') return d;
    if (path.dirname(d) === d) throw new Error('run this from the QuantLens repository');
  }
}

/** The extension bundle, plus the in-host suite (built here: it is test code, not part of dist/). */
async function build(): Promise<string> {
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build failed');
  const suite = path.join(CACHE, 'suite', 'suite.js');
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'test/e2e/suite.ts')],
    outfile: suite,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    external: ['vscode'],
    logLevel: 'warning',
  });
  return suite;
}

interface Env {
  tools: Tools;
  browser: Browser;
  suite: string;
}

/** One code-server launch with one page; always stopped, by process group, whatever happens inside. */
async function withLaunch(
  env: Env,
  opts: { trusted: boolean; mode?: string; vsix?: string },
  body: (launch: Launch, page: Page, traffic: Traffic) => Promise<void>,
): Promise<string> {
  const run = mkdtempSync(path.join(CACHE, 'run-'));
  if (opts.vsix) installVsix(env.tools, run, opts.vsix);
  let launch: Launch | undefined;
  const context = await env.browser.newContext({ viewport: VIEWPORT });
  try {
    launch = await startCodeServer(env.tools, run, { trusted: opts.trusted, env: opts.mode ? { QUANTLENS_E2E_MODE: opts.mode } : {} });
    const page = await context.newPage();
    await body(launch, page, recordTraffic(page));
  } finally {
    await context.close().catch(() => undefined);
    await stopCodeServer(launch);
  }
  return run;
}

/** The in-host suite's checks (suite.json) and how run() ended (codeAutomationExit: 0 resolved, 1 threw). */
async function runSuite(env: Env, launch: Launch, page: Page, ws: string, ui: (() => Promise<void>) | undefined, checks: Check[]): Promise<void> {
  const exited = new Promise<number>((resolve) => void page.exposeFunction('codeAutomationExit', (code) => resolve(Number(code))));
  await page.goto(launch.url(ws, [['extensionDevelopmentPath', ROOT], ['extensionTestsPath', env.suite]]), { timeout: 60_000 });
  const uiDone = ui?.().catch((e) => void checks.push({ name: 'UI phases', ok: false, detail: firstLine(e) }));
  const code = await Promise.race([exited, sleep(600_000).then(() => undefined)]);
  await uiDone;
  const suiteFile = path.join(launch.run, 'suite.json');
  const inHost: Check[] = existsSync(suiteFile) ? JSON.parse(readFileSync(suiteFile, 'utf8')) : [];
  checks.unshift(...inHost.map((c) => ({ ...c, name: `[host] ${c.name}` })));
  if (code !== 0) checks.push({ name: 'the in-host suite finished', ok: false, detail: code === undefined ? 'timed out' : `run() threw (exit ${code})` });
}

async function mainLaunch(env: Env, checks: Check[]): Promise<string> {
  return withLaunch(env, { trusted: true }, async (launch, page, traffic) => {
    const ws = path.join(launch.run, 'workspace');
    writeFixtureWorkspace(ws, ROOT);
    const errors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    const ui: Check[] = [];
    await runSuite(env, launch, page, ws, () => driveUi({ page, run: launch.run, workspace: ws, shots: SHOTS, port: launch.port, traffic }, ui), checks);
    checks.push(...ui);
    await emptyWorkspace(env, launch, checks);
    if (errors.length) log(`browser console errors (first 5):\n  ${errors.slice(0, 5).join('\n  ')}`);
  });
}

/** A folder without models: the view must explain itself (viewsWelcome) instead of staying blank. */
async function emptyWorkspace(env: Env, launch: Launch, checks: Check[]): Promise<void> {
  const context = await env.browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  try {
    await stepper(page, SHOTS, checks)('an empty workspace shows the "No model found" welcome with its links', async () => {
      const folder = path.join(launch.run, 'empty');
      mkdirSync(folder, { recursive: true });
      await page.goto(launch.url(folder, [['extensionDevelopmentPath', ROOT]]), { timeout: 60_000 });
      const icon = page.locator('.part.activitybar [aria-label^="QuantLens"]').first();
      await icon.waitFor({ timeout: 30_000 });
      await icon.click();
      await page.locator('.part.sidebar .welcome-view-content', { hasText: 'No model found in this workspace' }).first().waitFor({ timeout: 20_000 });
      await page.locator('.part.sidebar .welcome-view-content .monaco-button', { hasText: 'Refresh' }).first().waitFor({ timeout: 5_000 });
      await page.screenshot({ path: path.join(SHOTS, 'welcome-no-model.png') });
    });
  } finally {
    await context.close().catch(() => undefined);
  }
}

async function restrictedLaunch(env: Env, checks: Check[]): Promise<string> {
  return withLaunch(env, { trusted: false, mode: 'restricted' }, async (launch, page) => {
    const ws = path.join(launch.run, 'workspace');
    writeFixtureWorkspace(ws, ROOT);
    const ui: Check[] = [];
    const step = stepper(page, SHOTS, ui);
    const phase = async () => {
      await waitFor('the restricted suite', 150_000, () => (existsSync(path.join(launch.run, 'ready-restricted')) ? true : undefined));
      await step('restricted mode: the window says so, and Quantize Layer explains that it needs a trusted workspace', async () => {
        await page.locator('.statusbar', { hasText: 'Restricted Mode' }).first().waitFor({ timeout: 10_000 });
        await page.locator('.statusbar [id="status.notifications"] a, .statusbar [aria-label*="Notifications"]').first().click();
        const warning = page.locator('.notifications-center .notification-list-item', { hasText: 'Quantize Layer writes new model files' }).first();
        await warning.waitFor({ timeout: 10_000 });
        await page.locator('.notifications-center .notification-list-item', { hasText: 'Quantize Model writes new model files' }).first().waitFor({ timeout: 5_000 });
        await page.screenshot({ path: path.join(SHOTS, 'restricted.png') });
        return (await warning.innerText()).replace(/\s+/g, ' ');
      });
      writeFileSync(path.join(launch.run, 'ack-restricted'), '');
    };
    await runSuite(env, launch, page, ws, phase, checks);
    checks.push(...ui.map((c) => ({ ...c, name: `[restricted] ${c.name}` })));
  });
}

async function vsixLaunch(env: Env, vsix: string, checks: Check[]): Promise<string> {
  return withLaunch(env, { trusted: true, vsix }, async (launch, page, traffic) => {
    const ws = path.join(launch.run, 'workspace');
    writeFixtureWorkspace(ws, ROOT);
    const step = stepper(page, SHOTS, checks);
    await step('[vsix] the package installed into a fresh extensions folder', async () => {
      const installed = readdirSync(path.join(launch.run, 'ext')).filter((d) => d.startsWith('quantlens.quantlens-'));
      if (installed.length !== 1) throw new Error(`extensions folder: ${readdirSync(path.join(launch.run, 'ext')).join(', ')}`);
      return `${installed[0]} from ${path.basename(vsix)} (${(statSync(vsix).size / 2 ** 20).toFixed(1)} MiB)`;
    });
    await page.goto(launch.url(ws), { timeout: 60_000 });
    await step('[vsix] the installed extension activates and its explorer lists the model down to layers (server read the header)', async () => {
      await openQuantLens(page);
      await expandTinyLlama(page);
      await page.screenshot({ path: path.join(SHOTS, 'vsix-explorer.png') });
      return (await page.locator('.part.sidebar .monaco-list-row', { hasText: 'tiny-llama' }).first().innerText()).replace(/\s+/g, ' ');
    });
    await step('[vsix] no request left the VS Code host', async () => {
      const foreign = foreignRequests(traffic, launch.port);
      if (foreign.length) throw new Error(foreign.slice(0, 5).join(' '));
    });
  });
}

function packageVsix(): string {
  const out = path.join(CACHE, 'quantlens-e2e.vsix');
  const r = spawnSync(process.execPath, ['scripts/package-vsix.mjs', '--out', out], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('npm run package failed');
  return out;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const arg = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const only = new Set((arg('--only') ?? 'main,restricted,vsix').split(','));
  mkdirSync(CACHE, { recursive: true });
  const t0 = Date.now();
  const suite = await build();
  if (argv.includes('--prepare')) {
    const ws = path.join(CACHE, 'workspace');
    rmSync(ws, { recursive: true, force: true });
    writeFixtureWorkspace(ws, ROOT);
    log(`built ${suite}; fixture workspace in ${ws}`);
    return 0;
  }
  const tools = ensureTools(CACHE);
  rmSync(SHOTS, { recursive: true, force: true }); // no stale screenshots from an earlier run
  mkdirSync(SHOTS, { recursive: true });

  const pw = createRequire(path.join(tools.playwright, 'package.json'))(tools.playwright) as Playwright;
  const browser = await pw.chromium.launch({ executablePath: tools.chromium, headless: true, args: BROWSER_ARGS });
  const onSignal = () => void browser.close().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const env: Env = { tools, browser, suite };
  const launches: { name: string; checks: Check[]; run?: string; s?: number }[] = [];
  try {
    const launch = async (name: string, body: (checks: Check[]) => Promise<string>) => {
      if (!only.has(name)) return;
      const l: (typeof launches)[number] = { name, checks: [] };
      launches.push(l);
      const t = Date.now();
      try {
        l.run = await body(l.checks);
      } catch (e) {
        l.checks.push({ name: `${name} launch`, ok: false, detail: firstLine(e) });
      }
      l.s = (Date.now() - t) / 1000;
    };
    await launch('main', (c) => mainLaunch(env, c));
    await launch('restricted', (c) => restrictedLaunch(env, c));
    await launch('vsix', (c) => vsixLaunch(env, arg('--vsix') ?? packageVsix(), c));
  } finally {
    await browser.close().catch(() => undefined);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  let ok = launches.length > 0;
  for (const l of launches) {
    log(`${l.name} (${l.s?.toFixed(0)} s):`);
    for (const c of l.checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.detail ? ` — ${c.detail}` : ''}`);
    const passed = l.checks.length > 0 && l.checks.every((c) => c.ok);
    ok &&= passed;
    if (l.run && passed) rmSync(l.run, { recursive: true, force: true });
    else if (l.run) log(`  kept ${l.run} for inspection`);
  }
  log(`screenshots in ${path.relative(ROOT, SHOTS)}: ${readdirSync(SHOTS).join(', ')}`);
  if (ok && argv.includes('--update-media')) {
    const media = path.join(ROOT, 'media', 'screenshots');
    mkdirSync(media, { recursive: true });
    for (const [from, to] of Object.entries(MEDIA)) copyFileSync(path.join(SHOTS, from), path.join(media, to));
    log(`copied ${Object.keys(MEDIA).join(', ')} to media/screenshots/`);
  }
  log(`${ok ? 'PASS' : 'FAIL'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    log(`error: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
