// Runs inside VS Code's extension host (extensionTestsPath): checks the extension through the real API,
// then hands the window to the harness for UI checks (phases), and returns when the harness is done —
// the extension host shuts down as soon as run() settles.
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

/** Folder shared with the harness (unset when launched from .vscode/launch.json: no UI phases then). */
const DIR = process.env.QUANTLENS_E2E_DIR;
const checks: Check[] = [];

function record(name: string, ok: boolean, detail?: string): void {
  checks.push({ name, ok, ...(detail ? { detail } : {}) });
  if (DIR) writeFileSync(path.join(DIR, 'suite.json'), JSON.stringify(checks, null, 1));
}

async function check(name: string, body: () => Promise<string | undefined | void>): Promise<void> {
  try {
    record(name, true, (await body()) || undefined);
  } catch (e) {
    record(name, false, e instanceof Error ? e.message : String(e));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function handoff(phase: string): Promise<void> {
  if (!DIR) return;
  writeFileSync(path.join(DIR, `ready-${phase}`), '');
  const ack = path.join(DIR, `ack-${phase}`);
  for (const t0 = Date.now(); !existsSync(ack); await sleep(100)) {
    if (Date.now() - t0 > 120_000) throw new Error(`the harness never finished phase ${phase}`);
  }
}

function expect(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

/** Opens a workspace file with the cursor inside the first occurrence of `text`. */
async function openAt(rel: string, text: string): Promise<vscode.TextEditor> {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  expect(root, 'no workspace folder open');
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(root, rel));
  const at = doc.getText().indexOf(text);
  expect(at >= 0, `${rel} does not contain ${text}`);
  const start = doc.positionAt(at);
  const editor = await vscode.window.showTextDocument(doc, { preview: false });
  editor.selection = new vscode.Selection(start, doc.positionAt(at + text.length));
  editor.revealRange(editor.selection, vscode.TextEditorRevealType.InCenter);
  return editor;
}

export async function run(): Promise<void> {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  const ext = vscode.extensions.getExtension('quantlens.quantlens');

  await check('extension is installed and activates', async () => {
    expect(ext, 'quantlens.quantlens is not loaded');
    await ext.activate();
    expect(ext.isActive, 'not active after activate()');
    return `version ${ext.packageJSON.version}`;
  });

  await check('every contributed command is registered', async () => {
    const have = new Set(await vscode.commands.getCommands(true));
    const declared: string[] = (ext?.packageJSON.contributes.commands ?? []).map((c: { command: string }) => c.command);
    const missing = declared.filter((c) => !have.has(c));
    expect(declared.length >= 7 && missing.length === 0, `missing: ${missing.join(', ') || 'none declared'}`);
    return `${declared.length} commands`;
  });

  await check('Inspect Model on the safetensors folder opens its layer table', async () => {
    expect(root, 'no workspace');
    await vscode.commands.executeCommand('quantlens.inspectModel', vscode.Uri.joinPath(root, 'tiny-llama', 'model.safetensors'));
    const text = vscode.window.activeTextEditor?.document.getText() ?? '';
    expect(vscode.window.activeTextEditor?.document.languageId === 'markdown', 'no markdown document opened');
    // tinyLlamaTensors: 21 tensors, 1,832 parameters, all written as F16 (hand count: embed 256, 2×656 per block, norm 8, head 256).
    expect(text.includes('| F16 | 21 | 1,832 |'), `dtype row missing:\n${text.slice(0, 600)}`);
    expect(text.includes('| model.layers.1 | mlp.down_proj | 128 |'), 'layer row for model.layers.1 mlp.down_proj missing');
    expect(text.includes('| architectures | LlamaForCausalLM |'), 'config section missing');
  });

  await check('Inspect Model on the PaddleOCR ONNX file', async () => {
    expect(root, 'no workspace');
    await vscode.commands.executeCommand('quantlens.inspectModel', vscode.Uri.joinPath(root, 'ocr', 'ch_PP-OCRv4_rec_infer.onnx'));
    const text = vscode.window.activeTextEditor?.document.getText() ?? '';
    expect(text.includes('- Format: onnx'), `not an ONNX table:\n${text.slice(0, 300)}`);
  });

  await check('Quantize Layer resolves the layer under the cursor; the plan\'s model is not ONNX, so it says jobs run ONNX models', async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await openAt('plan.quant.yaml', 'model.layers.0.self_attn.q_proj');
    const msg = await vscode.commands.executeCommand<string>('quantlens.quantizeLayer');
    expect(
      typeof msg === 'string' && msg.startsWith('Quantize Layer: model.layers.0.self_attn.q_proj — quantize-and-evaluate jobs run ONNX models through onnxruntime'),
      `got ${JSON.stringify(msg)}`,
    );
  });

  // UI phases: the harness looks at the explorer and the editor context menus in this window.
  await vscode.commands.executeCommand('notifications.clearAll');
  await handoff('plan');
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  await openAt('tiny-llama/config.json', 'LlamaForCausalLM');
  await handoff('config');

  const failed = checks.filter((c) => !c.ok);
  if (failed.length) throw new Error(failed.map((c) => `${c.name}: ${c.detail}`).join('\n'));
}
