// End-to-end smoke test in real VS Code (code-server 4.139.1 + headless Chromium).
//
// Usage (from the repository root):
//   node --import tsx test/e2e/run.ts                 build, install tools if missing, run, print a summary
//   node --import tsx test/e2e/run.ts --update-media  also copy the screenshots to media/screenshots/
//   node --import tsx test/e2e/run.ts --prepare       only build the extension + in-host suite and write the
//                                                     fixture workspace (the "Extension Tests" launch config)
// Environment: QUANTLENS_E2E_CACHE (tools, screenshots, runs; default <repo>/.cache/e2e),
//              QUANTLENS_E2E_CHROMIUM (browser binary; default: chromium on PATH, apt-installed when missing).
// Exit status 0 when the in-host suite and every UI check passed. Screenshots: <cache>/screenshots/.
//
// What it proves: the extension loads, the QuantLens activity-bar container shows the Sensitivity Explorer
// listing the fixture models down to layers, and "Quantize Layer" is in the editor and tree context menus.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { writeFixtureWorkspace } from './fixture';
import { ensureTools, type Tools } from './tools';

// ---- the slice of playwright-core used here (it is installed in the cache, not in the project) ----
interface Locator {
  click(o?: { button?: 'left' | 'right'; timeout?: number }): Promise<void>;
  waitFor(o?: { state?: 'visible' | 'attached' | 'hidden'; timeout?: number }): Promise<void>;
  first(): Locator;
  last(): Locator;
  innerText(): Promise<string>;
  boundingBox(): Promise<{ x: number; y: number; width: number; height: number } | null>;
}
interface Page {
  exposeFunction(name: string, fn: (...args: unknown[]) => unknown): Promise<void>;
  goto(url: string, o?: { timeout?: number }): Promise<unknown>;
  locator(selector: string, o?: { hasText?: string | RegExp }): Locator;
  screenshot(o: { path: string }): Promise<unknown>;
  keyboard: { press(key: string): Promise<void> };
  mouse: { move(x: number, y: number, o?: { steps?: number }): Promise<void>; down(): Promise<void>; up(): Promise<void> };
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
}
interface Browser {
  newContext(o: { viewport: { width: number; height: number } }): Promise<{ newPage(): Promise<Page> }>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launch(o: { executablePath: string; headless: boolean; args: string[] }): Promise<Browser> };
}

const ROOT = findRoot(path.dirname(path.resolve(process.argv[1] ?? 'test/e2e/run.ts')));
const CACHE = path.resolve(process.env.QUANTLENS_E2E_CACHE ?? path.join(ROOT, '.cache', 'e2e'));
const SHOTS = path.join(CACHE, 'screenshots');
const log = (s: string) => process.stderr.write(`[e2e] ${s}\n`);

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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(150);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** code-server in its own process group (server, extension host, watcher, language server): killed as one. */
function startCodeServer(tools: Tools, port: number, run: string): ChildProcess {
  writeFileSync(path.join(run, 'config.yaml'), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  // A quiet window: no chat side bar or AI menu entries, no welcome page, so screenshots show the extension.
  mkdirSync(path.join(run, 'ud', 'User'), { recursive: true });
  writeFileSync(
    path.join(run, 'ud', 'User', 'settings.json'),
    JSON.stringify({
      'chat.disableAIFeatures': true,
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
    }),
  );
  const out = openSync(path.join(run, 'code-server.log'), 'a');
  const args = [
    tools.codeServer,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--config', path.join(run, 'config.yaml'),
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--vscode-option', 'enable-smoke-test-driver',
    '--extensions-dir', path.join(run, 'ext'),
    '--user-data-dir', path.join(run, 'ud'),
  ];
  return spawn(tools.node, args, {
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      EXTENSIONS_GALLERY: '{}',
      XDG_DATA_HOME: path.join(run, 'xdg'),
      XDG_CONFIG_HOME: path.join(run, 'xdgc'),
      QUANTLENS_E2E_DIR: run,
      ORT_DISABLE_TELEMETRY: '1',
    },
  });
}

/** SIGTERM the whole group, wait until every member is gone (signal 0 fails), SIGKILL what remains after 5 s. */
async function stopGroup(child: ChildProcess | undefined): Promise<void> {
  const pid = child?.pid;
  if (!pid) return;
  const signal = (sig: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pid, sig);
      return true;
    } catch {
      return false; // ESRCH: nobody left in the group
    }
  };
  if (!signal('SIGTERM')) return;
  for (const t0 = Date.now(); Date.now() - t0 < 5000; await sleep(100)) if (!signal(0)) return;
  signal('SIGKILL');
}

interface UiCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** The UI checks, in the order a user would do them; each failure leaves a screenshot behind. */
async function driveUi(page: Page, run: string, checks: UiCheck[]): Promise<void> {
  const step = async (name: string, body: () => Promise<string | void>) => {
    try {
      checks.push({ name, ok: true, detail: (await body()) || undefined });
    } catch (e) {
      checks.push({ name, ok: false, detail: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      await page.screenshot({ path: path.join(SHOTS, `failed-${checks.length}.png`) }).catch(() => undefined);
    }
  };
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, name) });
  const phase = async (p: string) => waitFor(`the suite to reach phase ${p}`, 90_000, () => (existsSync(path.join(run, `ready-${p}`)) ? true : undefined));
  const ack = (p: string) => writeFileSync(path.join(run, `ack-${p}`), '');
  const menuItem = (label: string) => page.locator('.monaco-menu .action-item', { hasText: label }).first();

  await phase('plan');

  await step('the QuantLens container is in the activity bar and opens', async () => {
    const icon = page.locator('.part.activitybar [aria-label^="QuantLens"]').first();
    await icon.waitFor({ timeout: 20_000 });
    await icon.click();
    // Widen the side bar (drag its sash) so layer names and descriptions fit in the screenshots.
    const box = await page.locator('.part.sidebar').first().boundingBox();
    if (box) {
      await page.mouse.move(box.x + box.width + 1, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + 460, box.y + box.height / 2, { steps: 8 });
      await page.mouse.up();
    }
  });
  await step('the Sensitivity Explorer view is visible and lists the fixture models', async () => {
    await page.locator('.part.sidebar', { hasText: /Sensitivity Explorer/i }).first().waitFor({ timeout: 10_000 });
    const llama = page.locator('.part.sidebar .monaco-list-row', { hasText: 'tiny-llama' }).first();
    await llama.waitFor({ timeout: 20_000 });
    const ocr = page.locator('.part.sidebar .monaco-list-row', { hasText: 'ch_PP-OCRv4_rec_infer.onnx' }).first();
    await ocr.waitFor({ timeout: 10_000 });
    // Descriptions appear once the server has read the headers.
    await page.locator('.part.sidebar .monaco-list-row', { hasText: 'safetensors ·' }).first().waitFor({ timeout: 20_000 });
    return (await llama.innerText()).replace(/\s+/g, ' ');
  });
  await step('expanding the model shows blocks, then layers', async () => {
    await page.locator('.part.sidebar .monaco-list-row', { hasText: 'tiny-llama' }).first().click();
    const block = page.locator('.part.sidebar .monaco-list-row', { hasText: 'model.layers.0' }).first();
    await block.waitFor({ timeout: 15_000 });
    await block.click();
    await page.locator('.part.sidebar .monaco-list-row', { hasText: 'self_attn.q_proj' }).first().waitFor({ timeout: 10_000 });
    await shot('explorer.png');
  });
  await step('right-clicking a layer in the tree offers Quantize Layer', async () => {
    await page.locator('.part.sidebar .monaco-list-row', { hasText: 'mlp.down_proj' }).first().click({ button: 'right' });
    await menuItem('Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('tree-context-menu.png');
    await page.keyboard.press('Escape');
  });
  await step('right-clicking the layer name in the plan offers Quantize Layer', async () => {
    const text = page.locator('.editor-instance .view-line span', { hasText: 'model.layers.0.self_attn.q_proj' }).last();
    await text.waitFor({ timeout: 10_000 });
    await text.click({ button: 'right' });
    await menuItem('Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('editor-context-menu.png');
  });
  await step('choosing it names the layer and says jobs run ONNX models (the fixture plan names a safetensors model)', async () => {
    await menuItem('Quantize Layer').click();
    // The smoke-test driver suppresses toasts (VS Code's addToast checks enableSmokeTestDriver): read the notification center.
    await page.locator('.statusbar [id="status.notifications"] a, .statusbar [aria-label*="Notifications"]').first().click();
    const item = page.locator('.notifications-center .notification-list-item', { hasText: 'Quantize Layer: model.layers.0.self_attn.q_proj' }).first();
    await item.waitFor({ timeout: 10_000 });
    await shot('quantize-layer-message.png');
    const t = (await item.innerText()).replace(/\s+/g, ' ');
    if (!t.includes('quantize-and-evaluate jobs run ONNX models through onnxruntime')) throw new Error(`notification says: ${t}`);
    await page.keyboard.press('Escape');
    return t;
  });
  ack('plan');

  await phase('config');
  await step('config.json offers Quantize Layer in the editor context menu', async () => {
    const text = page.locator('.editor-instance .view-line span', { hasText: 'LlamaForCausalLM' }).last();
    await text.waitFor({ timeout: 10_000 });
    await text.click({ button: 'right' });
    await menuItem('Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('config-context-menu.png');
    await page.keyboard.press('Escape');
  });
  ack('config');
}

/** A folder without models: the view must explain itself (viewsWelcome) instead of staying blank. */
async function emptyWorkspace(browser: Browser, url: (folder: string, payload: string[][]) => string, run: string, checks: UiCheck[]): Promise<void> {
  const name = 'an empty workspace shows the "No model found" welcome with its links';
  const page = await (await browser.newContext({ viewport: { width: 1440, height: 860 } })).newPage();
  try {
    const folder = path.join(run, 'empty');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'README.md'), '# No checkpoints here\n');
    await page.goto(url(folder, [['extensionDevelopmentPath', ROOT]]), { timeout: 60_000 });
    const icon = page.locator('.part.activitybar [aria-label^="QuantLens"]').first();
    await icon.waitFor({ timeout: 30_000 });
    await icon.click();
    const welcome = page.locator('.part.sidebar .welcome-view-content', { hasText: 'No model found in this workspace' }).first();
    await welcome.waitFor({ timeout: 20_000 });
    await page.locator('.part.sidebar .welcome-view-content .monaco-button', { hasText: 'Refresh' }).first().waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(SHOTS, 'welcome-no-model.png') });
    checks.push({ name, ok: true });
  } catch (e) {
    checks.push({ name, ok: false, detail: e instanceof Error ? e.message.split('\n')[0] : String(e) });
    await page.screenshot({ path: path.join(SHOTS, 'failed-welcome.png') }).catch(() => undefined);
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  mkdirSync(CACHE, { recursive: true });
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
  const run = mkdtempSync(path.join(CACHE, 'run-'));
  const ws = path.join(run, 'workspace');
  writeFixtureWorkspace(ws, ROOT);

  let server: ChildProcess | undefined;
  let browser: Browser | undefined;
  const cleanup = async () => {
    await browser?.close().catch(() => undefined);
    await stopGroup(server);
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const ui: UiCheck[] = [];
  let exitCode: number | undefined;
  try {
    const port = await freePort();
    server = startCodeServer(tools, port, run);
    await waitFor('code-server /healthz', 30_000, async () => {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return r?.ok ? true : undefined;
    });
    log(`code-server on 127.0.0.1:${port} (log: ${path.join(run, 'code-server.log')})`);

    const pw = createRequire(path.join(tools.playwright, 'package.json'))(tools.playwright) as Playwright;
    browser = await pw.chromium.launch({
      executablePath: tools.chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 860 } })).newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const exited = new Promise<number>((resolve) => void page.exposeFunction('codeAutomationExit', (code) => resolve(Number(code))));

    // Paths in the payload are URIs on code-server's side of the connection.
    const url = (folder: string, payload: string[][]) =>
      `http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(
        JSON.stringify(payload.map(([k, p]) => [k, `vscode-remote://localhost:${port}${p}`])),
      )}`;
    await page.goto(url(ws, [['extensionDevelopmentPath', ROOT], ['extensionTestsPath', suite]]), { timeout: 60_000 });

    const uiDone = driveUi(page, run, ui).catch((e: Error) => void ui.push({ name: 'UI phases', ok: false, detail: e.message }));
    exitCode = await Promise.race([exited, sleep(180_000).then(() => undefined)]);
    await uiDone;
    await emptyWorkspace(browser, url, run, ui);
    if (errors.length) log(`browser console errors (first 5):\n  ${errors.slice(0, 5).join('\n  ')}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const suiteChecks: UiCheck[] = existsSync(path.join(run, 'suite.json')) ? JSON.parse(readFileSync(path.join(run, 'suite.json'), 'utf8')) : [];
  const print = (title: string, cs: UiCheck[]) => {
    log(title);
    for (const c of cs) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.detail ? ` — ${c.detail}` : ''}`);
  };
  print('in the extension host:', suiteChecks);
  print('in the browser:', ui);
  const ok = exitCode === 0 && suiteChecks.length > 0 && ui.length > 0 && [...suiteChecks, ...ui].every((c) => c.ok);
  log(`suite exit: ${exitCode ?? 'none (timed out)'}; screenshots in ${SHOTS}`);

  if (ok && argv.includes('--update-media')) {
    const media = path.join(ROOT, 'media', 'screenshots');
    mkdirSync(media, { recursive: true });
    for (const f of ['explorer.png', 'editor-context-menu.png']) copyFileSync(path.join(SHOTS, f), path.join(media, f));
    log(`copied screenshots to ${media}`);
  }
  if (ok) rmSync(run, { recursive: true, force: true });
  else log(`kept ${run} for inspection`);
  log(ok ? 'PASS' : 'FAIL');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    log(`error: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
