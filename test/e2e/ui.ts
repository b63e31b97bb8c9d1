// The UI checks through Chromium, in the order a user would do them: the explorer with scores, the report panel's
// charts inside its iframe, the plan with lenses and diagnostics, Quantize Layer jobs from the tree, context menus.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { LAYER_PARAMS, MATRICES } from './fixture';
import { foreignRequests, stepper, waitFor, type Check, type Locator, type Page, type Traffic } from './harness';

/** A Plotly trace as the page holds it (`div.data`). */
interface Trace {
  name?: string;
  type?: string;
  x?: unknown[];
  y?: unknown[];
  z?: unknown[][];
}

const row = (page: Page, text: string | RegExp) => page.locator('.part.sidebar .monaco-list-row', { hasText: text }).first();
const menuItem = (page: Page, label: string) => page.locator('.monaco-menu .action-item', { hasText: label }).first();
/**
 * Runs a context-menu entry. A click on a monaco menu item is sometimes swallowed (the menu stays open, its item
 * highlighted) while the tree behind it re-renders; hovering focuses the item, and Enter runs it then.
 */
async function chooseMenuItem(page: Page, label: string): Promise<void> {
  const item = menuItem(page, label);
  await item.hover();
  await item.click();
  const stillOpen = await page.locator('.monaco-menu').first().waitFor({ state: 'hidden', timeout: 1_500 }).then(() => false, () => true);
  if (stillOpen) {
    await item.hover();
    await page.keyboard.press('Enter');
  }
}
const notification = (page: Page, text: string | RegExp) => page.locator('.notifications-center .notification-list-item', { hasText: text }).first();

/** The smoke-test driver suppresses toasts (VS Code's addToast checks enableSmokeTestDriver): notifications are read in the center. */
async function openNotificationCenter(page: Page): Promise<void> {
  if (await page.locator('.notifications-center.visible').count()) return;
  await page.locator('.statusbar [id="status.notifications"] a, .statusbar [aria-label*="Notifications"]').first().click();
  await page.locator('.notifications-center.visible').first().waitFor({ timeout: 5_000 });
}

export async function openQuantLens(page: Page): Promise<void> {
  const icon = page.locator('.part.activitybar [aria-label^="QuantLens"]').first();
  await icon.waitFor({ timeout: 30_000 });
  // Clicking the icon of the container already shown would close the side bar.
  if (!(await page.locator('.part.activitybar .action-item.checked [aria-label^="QuantLens"]').count())) await icon.click();
  await page.locator('.part.sidebar', { hasText: /Sensitivity Explorer/i }).first().waitFor({ timeout: 10_000 });
  // Widen the side bar (drag its sash) so layer names and descriptions fit in the screenshots.
  const box = await page.locator('.part.sidebar').first().boundingBox();
  if (box && box.width < 440) {
    await page.mouse.move(box.x + box.width + 1, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + 460, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
  }
}

async function collapseAll(page: Page): Promise<void> {
  const collapse = page.locator('.part.sidebar .codicon-collapse-all').first();
  if (await collapse.count()) await collapse.click();
}

/** Expands tiny-llama → model.layers.0 and returns the q_proj row (the server has read the header by then). */
export async function expandTinyLlama(page: Page): Promise<Locator> {
  await row(page, 'safetensors ·').waitFor({ timeout: 30_000 });
  const block = row(page, 'model.layers.0');
  if (!(await block.count())) await row(page, 'tiny-llama').click();
  await block.waitFor({ timeout: 15_000 });
  const q = row(page, 'self_attn.q_proj');
  if (!(await q.count())) await block.click();
  await q.waitFor({ timeout: 10_000 });
  return q;
}

/** Parameter counts of the OCR layers the job scenarios use (`quantlens inspect` on the model). */
const OCR_PARAMS: Record<string, number> = { conv2d_10: 432, conv2d_157: 160, conv2d_158: 544, conv2d_159: 320 };

interface UiContext {
  page: Page;
  /** The run folder (phase files) and the workspace on disk. */
  run: string;
  workspace: string;
  shots: string;
  port: number;
  traffic: Traffic;
}

export async function driveUi(ctx: UiContext, checks: Check[]): Promise<void> {
  const { page, run, shots } = ctx;
  const step = stepper(page, shots, checks);
  const shot = (name: string) => page.screenshot({ path: path.join(shots, name) });
  const phase = (p: string) => waitFor(`the suite to reach phase ${p}`, 150_000, () => (existsSync(path.join(run, `ready-${p}`)) ? true : undefined));
  const ack = (p: string) => writeFileSync(path.join(run, `ack-${p}`), '');

  await phase('explorer');
  await step('the QuantLens container opens on the Sensitivity Explorer, which lists both fixture models', async () => {
    await openQuantLens(page);
    await row(page, 'tiny-llama').waitFor({ timeout: 20_000 });
    await row(page, 'ch_PP-OCRv4_rec_infer.onnx').waitFor({ timeout: 10_000 });
    return (await row(page, 'tiny-llama').innerText()).replace(/\s+/g, ' ');
  });
  await step('after Analyze Sensitivity every layer of a block shows its score (SQNR dB) in the explorer', async () => {
    await expandTinyLlama(page);
    const texts = await waitFor('scored layer rows', 15_000, async () => {
      const t = (await page.locator('.part.sidebar .monaco-list-row').allInnerTexts()).map((s) => s.replace(/\s+/g, ' '));
      const layers = t.filter((s) => /(q|k|v|o|gate|up|down)_proj/.test(s));
      return layers.length >= 7 && layers.every((s) => /-?\d+\.\d dB|exact/.test(s)) ? layers : undefined;
    });
    return texts.slice(0, 2).join(' | ');
  });

  const frame = page.frameLocator('iframe.webview').frameLocator('#active-frame');
  const traces = (id: string) => frame.locator(`#chart-${id}`).evaluate((el) => ((el as unknown as { data?: Trace[] }).data ?? []).map((t) => ({ name: t.name, type: t.type, x: t.x, y: t.y, z: t.z })));
  await step('the report panel draws bits per layer: one bar per analyzed tensor, and the allocation meets the 4.5-bit budget', async () => {
    const data = await waitFor('the bits chart with an allocation', 60_000, async () => {
      const d = await traces('bits').catch(() => []);
      return d.length > 0 && d[0].x?.length && (await frame.locator('#budget').evaluate((el) => !(el as HTMLInputElement).disabled)) ? d : undefined;
    });
    const avg = weightedBits(data);
    const missing = MATRICES.filter((m) => !data[0].x?.includes(m));
    if (missing.length) throw new Error(`no bar for ${missing.join(', ')}`);
    if (!(avg.bits <= 4.5 + 1e-9)) throw new Error(`allocation averages ${avg.bits} bits/weight over a 4.5 budget`);
    // The explorer's scores beside the drawn panel.
    await shot('explorer.png');
    return `${data.length} traces (${data.map((t) => t.name).join(', ')}), ${avg.layers} layers, ${avg.bits.toFixed(3)} bits/weight`;
  });
  await step('the heatmap has a cell per layer × format, and the Pareto chart has a frontier', async () => {
    const [heat] = await traces('heatmap');
    const rows = heat?.z?.length ?? 0;
    const cols = heat?.z?.[0]?.length ?? 0;
    // log10 of the relative error: finite everywhere, and below 0 (no format loses the whole weight).
    const cells = heat?.z?.flat() ?? [];
    if (rows !== MATRICES.length || cols !== 8 || !cells.every((v) => typeof v === 'number' && Number.isFinite(v) && v < 0)) {
      throw new Error(`heatmap ${rows}×${cols}: ${JSON.stringify(cells.slice(0, 8))}`);
    }
    const pareto = await traces('pareto');
    const points = pareto[0]?.x?.length ?? 0;
    if (points < 2) throw new Error(`pareto traces: ${JSON.stringify(pareto.map((t) => ({ name: t.name, x: t.x?.length })))}`);
    return `heatmap ${rows}×${cols}; Pareto ${points} points`;
  });
  await step('the budget slider re-solves: at its top more bits per weight, at its middle fewer, each within its budget', async () => {
    const slider = frame.locator('#budget');
    const { min, max } = await slider.evaluate((el) => ({ min: Number((el as HTMLInputElement).min), max: Number((el as HTMLInputElement).max) }));
    const solveAt = async (budget: number, done: (bits: number) => boolean) => {
      await slider.evaluate((el, b) => {
        const input = el as HTMLInputElement;
        input.value = String(b);
        input.dispatchEvent(new Event('input', { bubbles: true }));
      }, budget);
      return waitFor(`the bits chart solved at ${budget}`, 20_000, async () => {
        const { bits } = weightedBits(await traces('bits'));
        return done(bits) ? bits : undefined;
      });
    };
    // The top of the range affords the most precise formats: the allocation must use most of it.
    const high = await solveAt(max, (b) => b <= max + 1e-9 && b > (min + max) / 2);
    const mid = Math.round(((min + max) / 2) * 100) / 100;
    const low = await solveAt(mid, (b) => b <= mid + 1e-9);
    if (!(low < high)) throw new Error(`at ${mid}: ${low} bits/weight, at ${max}: ${high}`);
    await shot('webview-slider.png');
    return `slider ${min.toFixed(2)}–${max.toFixed(2)}: at ${max.toFixed(2)} → ${high.toFixed(3)} bits/weight, at ${mid} → ${low.toFixed(3)}`;
  });
  await step('the panel\'s CSP is strict: default-src none, nonce-only scripts, no remote source, inline scripts blocked', async () => {
    const csp = await frame.locator('meta[http-equiv="Content-Security-Policy"]').evaluate((el) => el.getAttribute('content') ?? '');
    const dirs = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v]));
    const problems: string[] = [];
    if (dirs.get('default-src')?.join(' ') !== "'none'") problems.push('default-src is not none');
    const scripts = dirs.get('script-src') ?? [];
    if (!(scripts.length === 1 && /^'nonce-[A-Za-z0-9+/=]{16,}'$/.test(scripts[0]))) problems.push(`script-src ${scripts.join(' ')}`);
    if (/unsafe-eval/.test(csp)) problems.push('unsafe-eval');
    // Sources allowed: the webview's own resource origin (cspSource), data:/blob: images; never a bare scheme or *.
    for (const [k, v] of dirs) for (const s of v) if (s === '*' || s === 'http:' || s === 'https:' || /^https?:\/\/(?!.*vscode-cdn\.net|127\.0\.0\.1)/.test(s)) problems.push(`${k} ${s}`);
    if (problems.length) throw new Error(`${problems.join('; ')} in: ${csp}`);
    // An injected inline script must not run (the CSP, not our code, decides).
    const ran = await frame.locator('body').evaluate(async () => {
      const w = window as unknown as { injected?: boolean };
      const s = document.createElement('script');
      s.textContent = 'window.injected = true;';
      document.body.append(s);
      await new Promise((r) => setTimeout(r, 100));
      return w.injected === true;
    });
    if (ran) throw new Error('an inline script without the nonce ran');
    return csp;
  });
  await step('the page (workbench and webview) made no request outside the VS Code host', async () => {
    const foreign = foreignRequests(ctx.traffic, ctx.port);
    if (foreign.length) throw new Error(`${foreign.length} foreign requests: ${foreign.slice(0, 5).join(' ')}`);
    return `${ctx.traffic.requests.length} requests: to 127.0.0.1:${ctx.port}, or webview resources answered by its service worker (${ctx.traffic.fromServiceWorker.size})`;
  });
  ack('explorer');

  await phase('plan');
  await step('the plan editor shows code lenses with numbers and the warning/error squiggles', async () => {
    const lens = page.locator('.editor-instance .codelens-decoration', { hasText: /tensors? · \d+ params/ }).first();
    await lens.waitFor({ timeout: 20_000 });
    await page.locator('.editor-instance .squiggly-warning').first().waitFor({ timeout: 10_000 });
    await page.locator('.editor-instance .squiggly-error, .editor-instance .squiggly-warning').first().waitFor({ timeout: 10_000 });
    const problems = page.locator('.markers-panel .monaco-list-row', { hasText: /no_such_proj|matches no tensor/ }).first();
    await problems.waitFor({ timeout: 10_000 }).catch(() => undefined);
    await shot('plan.png');
    const lenses = await page.locator('.editor-instance .codelens-decoration').allInnerTexts();
    return lenses.filter((t) => t.trim()).slice(0, 3).join(' | ').replace(/\s+/g, ' ');
  });
  ack('plan');

  await phase('jobs');
  const ocrDir = path.join(ctx.workspace, 'ocr');
  const outputs = (layer: string) => readdirSync(ocrDir).filter((f) => f.includes(`.${layer}.`));
  /** Right-click an OCR layer → Quantize Layer → pick the format; the notification center is open. */
  const startJob = async (layer: string, format: string) => {
    // A row's text is its label then its description (parameter count first): exact, where conv2d_15 ≠ conv2d_157.
    await row(page, new RegExp(`^${layer}${OCR_PARAMS[layer]} · `)).click({ button: 'right' });
    await chooseMenuItem(page, 'Quantize Layer');
    const input = page.locator('.quick-input-widget input').first();
    await input.waitFor({ timeout: 10_000 });
    await page.keyboard.type(format);
    await page.keyboard.press('Enter');
  };
  const ocrLayers = async () => {
    await row(page, 'ch_PP-OCRv4_rec_infer.onnx').click();
    await row(page, 'conv2d_157').waitFor({ timeout: 20_000 }).catch(async () => {
      await row(page, '(root)').click();
      await row(page, 'conv2d_157').waitFor({ timeout: 10_000 });
    });
  };
  await step('right-click → Quantize Layer on an ONNX layer runs a job with progress and reports the measured deltas', async () => {
    await openQuantLens(page);
    await collapseAll(page);
    await ocrLayers();
    await openNotificationCenter(page);
    await startJob('conv2d_10', 'int8_ch_sym');
    const progress = notification(page, 'quantizing conv2d_10');
    const sawProgress = await progress.waitFor({ timeout: 10_000 }).then(() => true, () => false);
    if (sawProgress) await shot('job-progress.png');
    const done = notification(page, /Quantize Layer: conv2d_10\S* → int8_ch_sym/);
    await done.waitFor({ timeout: 90_000 });
    await shot('job-result.png');
    const text = (await done.innerText()).replace(/\s+/g, ' ');
    if (!/KL \+\d/.test(text) || !/top-1 -?\d/.test(text) || !/SQNR/.test(text)) throw new Error(`result notification: ${text}`);
    const written = outputs('conv2d_10').filter((f) => f.endsWith('.quant.onnx'));
    if (written.length !== 1) throw new Error(`outputs in ocr/: ${readdirSync(ocrDir).join(', ')}`);
    if (!sawProgress) throw new Error(`no progress notification seen (result: ${text})`);
    return `${text} → ${written[0]}`;
  });
  await step('cancelling another job from its progress notification leaves no output file', async () => {
    const before = readdirSync(ocrDir).sort();
    // A job that finished before the click was not cancelled: try the next layer (at most 3).
    for (const layer of ['conv2d_157', 'conv2d_158', 'conv2d_159']) {
      await startJob(layer, 'int4_g128_asym');
      const progress = notification(page, `quantizing ${layer}`);
      await progress.waitFor({ timeout: 10_000 });
      await progress.locator('.monaco-button', { hasText: 'Cancel' }).first().click({ timeout: 5_000 }).catch(() => undefined);
      const end = notification(page, new RegExp(`Quantize Layer: ${layer}\\S* (—|→)`));
      await end.waitFor({ timeout: 60_000 });
      const text = (await end.innerText()).replace(/\s+/g, ' ');
      if (!text.includes('cancelled')) continue;
      await shot('job-cancelled.png');
      const after = readdirSync(ocrDir).sort();
      if (after.join('\n') !== before.join('\n')) throw new Error(`ocr/ changed: ${after.filter((f) => !before.includes(f)).join(', ')}`);
      return text;
    }
    throw new Error('every job finished before its Cancel click landed');
  });
  await page.keyboard.press('Escape');
  ack('jobs');

  await phase('menus');
  await step('right-clicking a layer in the tree offers Quantize Layer', async () => {
    await collapseAll(page);
    await expandTinyLlama(page);
    await row(page, 'mlp.down_proj').click({ button: 'right' });
    await menuItem(page, 'Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('tree-context-menu.png');
    await page.keyboard.press('Escape');
  });
  await step('right-clicking the layer name in the plan offers Quantize Layer', async () => {
    const text = page.locator('.editor-instance .view-line span', { hasText: 'model.layers.0.self_attn.q_proj' }).last();
    await text.waitFor({ timeout: 10_000 });
    await text.click({ button: 'right' });
    await menuItem(page, 'Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('editor-context-menu.png');
  });
  await step('choosing it names the layer and says jobs run ONNX models (this plan names a safetensors model)', async () => {
    await menuItem(page, 'Quantize Layer').click();
    await openNotificationCenter(page);
    const item = notification(page, 'Quantize Layer: model.layers.0.self_attn.q_proj');
    await item.waitFor({ timeout: 10_000 });
    await shot('quantize-layer-message.png');
    const t = (await item.innerText()).replace(/\s+/g, ' ');
    if (!t.includes('quantize-and-evaluate jobs run ONNX models through onnxruntime')) throw new Error(`notification says: ${t}`);
    await page.keyboard.press('Escape');
    return t;
  });
  ack('menus');

  await phase('config');
  await step('config.json shows its code lenses and offers Quantize Layer in the editor context menu', async () => {
    await page.locator('.editor-instance .codelens-decoration', { hasText: /\d/ }).first().waitFor({ timeout: 20_000 });
    const text = page.locator('.editor-instance .view-line span', { hasText: 'LlamaForCausalLM' }).last();
    await text.waitFor({ timeout: 10_000 });
    await text.click({ button: 'right' });
    await menuItem(page, 'Quantize Layer').waitFor({ timeout: 10_000 });
    await shot('config-context-menu.png');
    await page.keyboard.press('Escape');
  });
  ack('config');
}

/** Params-weighted bits per weight of the allocation drawn in the bits chart (one bar per layer across traces). */
function weightedBits(data: Trace[]): { bits: number; layers: number } {
  const perLayer = new Map<string, number>();
  for (const t of data) {
    (t.x ?? []).forEach((x, i) => {
      const y = t.y?.[i];
      if (typeof x === 'string' && typeof y === 'number') perLayer.set(x, (perLayer.get(x) ?? 0) + y);
    });
  }
  let bits = 0;
  let params = 0;
  for (const [name, b] of perLayer) {
    const n = LAYER_PARAMS[name.split('.').at(-2) ?? ''];
    if (n === undefined) throw new Error(`unexpected layer ${name} in the bits chart`);
    bits += n * b;
    params += n;
  }
  return { bits: params ? bits / params : 0, layers: perLayer.size };
}
