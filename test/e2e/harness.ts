// What every end-to-end launch shares: the slice of playwright-core used (it lives in the tools cache, not in the
// project), code-server started in its own process group and stopped as one, polling, and check records.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Tools } from './tools';

// ---- playwright-core, as far as the scenarios use it ----
export interface Locator {
  click(o?: { button?: 'left' | 'right'; timeout?: number }): Promise<void>;
  hover(o?: { timeout?: number }): Promise<void>;
  waitFor(o?: { state?: 'visible' | 'attached' | 'hidden'; timeout?: number }): Promise<void>;
  first(): Locator;
  last(): Locator;
  count(): Promise<number>;
  innerText(): Promise<string>;
  allInnerTexts(): Promise<string[]>;
  boundingBox(): Promise<{ x: number; y: number; width: number; height: number } | null>;
  evaluate<R, A = undefined>(fn: (el: HTMLElement, arg: A) => R, arg?: A): Promise<R>;
  locator(selector: string, o?: { hasText?: string | RegExp }): Locator;
}
export interface FrameLocator {
  locator(selector: string, o?: { hasText?: string | RegExp }): Locator;
  frameLocator(selector: string): FrameLocator;
}
export interface Request {
  url(): string;
}
export interface Response {
  url(): string;
  fromServiceWorker(): boolean;
}
export interface Page {
  exposeFunction(name: string, fn: (...args: unknown[]) => unknown): Promise<void>;
  goto(url: string, o?: { timeout?: number }): Promise<unknown>;
  locator(selector: string, o?: { hasText?: string | RegExp }): Locator;
  frameLocator(selector: string): FrameLocator;
  screenshot(o: { path: string }): Promise<unknown>;
  keyboard: { press(key: string): Promise<void>; type(text: string): Promise<void> };
  mouse: { move(x: number, y: number, o?: { steps?: number }): Promise<void>; down(): Promise<void>; up(): Promise<void> };
  on(event: 'console', fn: (m: { type(): string; text(): string }) => void): void;
  on(event: 'request', fn: (r: Request) => void): void;
  on(event: 'response', fn: (r: Response) => void): void;
  close(): Promise<void>;
}
export interface Browser {
  newContext(o: { viewport: { width: number; height: number } }): Promise<{ newPage(): Promise<Page>; close(): Promise<void> }>;
  close(): Promise<void>;
}
export interface Playwright {
  chromium: { launch(o: { executablePath: string; headless: boolean; args: string[] }): Promise<Browser> };
}

export const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const VIEWPORT = { width: 1440, height: 860 };

/** Every request a page made, and which of them VS Code's webview service worker answered. */
export interface Traffic {
  requests: string[];
  fromServiceWorker: Set<string>;
}

export function recordTraffic(page: Page): Traffic {
  const t: Traffic = { requests: [], fromServiceWorker: new Set() };
  page.on('request', (r) => void t.requests.push(r.url()));
  page.on('response', (r) => void (r.fromServiceWorker() && t.fromServiceWorker.add(r.url())));
  return t;
}

/**
 * Requests that left the VS Code host (code-server on loopback). Webview resources have URLs on
 * `*.vscode-resource.vscode-cdn.net`, but the webview's service worker answers them from the extension host: they
 * count as local only when the service worker did answer them.
 */
export function foreignRequests(t: Traffic, port: number): string[] {
  const host = `http://127.0.0.1:${port}/`;
  return t.requests.filter(
    (u) =>
      !u.startsWith(host) &&
      !/^(data|blob):/.test(u) &&
      !(/^https:\/\/[^/]+\.vscode-resource\.vscode-cdn\.net\//.test(u) && t.fromServiceWorker.has(u)),
  );
}

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

export const log = (s: string) => process.stderr.write(`[e2e] ${s}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const firstLine = (e: unknown) => (e instanceof Error ? e.message.split('\n')[0] : String(e));

export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(150);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Launch {
  /** Run folder: code-server's config, user data, extensions, log, and the files the in-host suite shares. */
  run: string;
  port: number;
  child: ChildProcess;
  /** The page URL that opens `folder`, with an optional smoke-test payload (paths on code-server's side). */
  url(folder: string, payload?: string[][]): string;
}

/** A quiet window: no chat side bar or AI menu entries, no welcome page, so screenshots show the extension. */
const SETTINGS = {
  'chat.disableAIFeatures': true,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  // Restricted mode without the modal trust prompt: an untrusted folder opens in restricted mode directly.
  'security.workspace.trust.startupPrompt': 'never',
};

/**
 * code-server on a loopback port with a fresh user-data and extensions folder, in its own process group (server,
 * extension host, file watcher, language server): stopped as one by stopCodeServer.
 * `trusted: false` keeps workspace trust on, so the folder opens in restricted mode.
 */
export async function startCodeServer(tools: Tools, run: string, opts: { trusted: boolean; env?: NodeJS.ProcessEnv }): Promise<Launch> {
  const port = await freePort();
  writeFileSync(path.join(run, 'config.yaml'), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  mkdirSync(path.join(run, 'ud', 'User'), { recursive: true });
  writeFileSync(path.join(run, 'ud', 'User', 'settings.json'), JSON.stringify(SETTINGS));
  const out = openSync(path.join(run, 'code-server.log'), 'a');
  const args = [
    tools.codeServer,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--config', path.join(run, 'config.yaml'),
    '--disable-telemetry',
    '--disable-update-check',
    ...(opts.trusted ? ['--disable-workspace-trust'] : []),
    '--disable-getting-started-override',
    '--vscode-option', 'enable-smoke-test-driver',
    '--extensions-dir', path.join(run, 'ext'),
    '--user-data-dir', path.join(run, 'ud'),
  ];
  const child = spawn(tools.node, args, { detached: true, stdio: ['ignore', out, out], env: { ...codeServerEnv(run), ...opts.env } });
  const launch: Launch = {
    run,
    port,
    child,
    url: (folder, payload) =>
      `http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}` +
      (payload ? `&payload=${encodeURIComponent(JSON.stringify(payload.map(([k, p]) => [k, `vscode-remote://localhost:${port}${p}`])))}` : ''),
  };
  try {
    await waitFor('code-server /healthz', 30_000, async () => {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return r?.ok ? true : undefined;
    });
  } catch (e) {
    await stopCodeServer(launch);
    throw e;
  }
  log(`code-server on 127.0.0.1:${port} (log: ${path.join(run, 'code-server.log')})`);
  return launch;
}

/** No marketplace lookups, no writes into the home folder, a private analysis/job cache, no onnxruntime telemetry. */
function codeServerEnv(run: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    EXTENSIONS_GALLERY: '{}',
    XDG_DATA_HOME: path.join(run, 'xdg'),
    XDG_CONFIG_HOME: path.join(run, 'xdgc'),
    XDG_CACHE_HOME: path.join(run, 'xdg-cache'),
    QUANTLENS_E2E_DIR: run,
    ORT_DISABLE_TELEMETRY: '1',
  };
}

/** Installs a packaged extension with code-server's own CLI into the run's fresh extensions folder. */
export function installVsix(tools: Tools, run: string, vsix: string): void {
  const r = spawnSync(tools.node, [tools.codeServer, '--extensions-dir', path.join(run, 'ext'), '--user-data-dir', path.join(run, 'ud'), '--install-extension', vsix], {
    env: codeServerEnv(run),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`code-server --install-extension ${vsix} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
}

/** SIGTERM the whole group, wait until every member is gone (signal 0 fails), SIGKILL what remains after 5 s. */
export async function stopCodeServer(launch: Launch | undefined): Promise<void> {
  const pid = launch?.child.pid;
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

/** Runs checks in order, each recorded pass/fail; a failure leaves a screenshot named after it. */
export function stepper(page: Page, shots: string, checks: Check[]) {
  return async (name: string, body: () => Promise<string | void>): Promise<boolean> => {
    try {
      checks.push({ name, ok: true, detail: (await body()) || undefined });
      return true;
    } catch (e) {
      checks.push({ name, ok: false, detail: firstLine(e) });
      await page.screenshot({ path: path.join(shots, `failed-${checks.length}.png`) }).catch(() => undefined);
      return false;
    }
  };
}
