// Runs inside VS Code's extension host (extensionTestsPath): checks the extension through the real API, and between
// checks hands the window to the harness for UI phases (it writes ready-<phase>, the harness answers ack-<phase>).
// Returns when done — the extension host shuts down as soon as run() settles. QUANTLENS_E2E_MODE=restricted runs
// the untrusted-workspace checks instead.
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AnalyzeResponse } from '../../server/src/protocol';
import { LAYER_PARAMS, MATRICES } from './fixture';

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
    if (Date.now() - t0 > 150_000) throw new Error(`the harness never finished phase ${phase}`);
  }
}

function expect(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(200)) {
    const v = await probe();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function workspaceUri(rel: string): vscode.Uri {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  expect(root, 'no workspace folder open');
  return vscode.Uri.joinPath(root, ...rel.split('/'));
}

/** Opens a workspace file with `text` (its first occurrence) selected; returns the editor and that position. */
async function openAt(rel: string, text: string): Promise<{ editor: vscode.TextEditor; at: vscode.Position }> {
  const doc = await vscode.workspace.openTextDocument(workspaceUri(rel));
  const offset = doc.getText().indexOf(text);
  expect(offset >= 0, `${rel} does not contain ${text}`);
  const start = doc.positionAt(offset);
  const editor = await vscode.window.showTextDocument(doc, { preview: false });
  editor.selection = new vscode.Selection(start, doc.positionAt(offset + text.length));
  editor.revealRange(editor.selection, vscode.TextEditorRevealType.InCenter);
  return { editor, at: start.translate(0, 1) };
}

const hoverText = (hs: vscode.Hover[]) =>
  hs.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : ''))).join('\n');

/** Code lens titles by line, waiting until the server has resolved the model (lenses with numbers appear). */
async function lensTitles(uri: vscode.Uri, ready: (titles: string[]) => boolean): Promise<Map<number, string[]>> {
  return until(`code lenses of ${path.basename(uri.path)}`, 30_000, async () => {
    const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri, 100)) ?? [];
    const titles = lenses.map((l) => l.command?.title ?? '');
    if (!ready(titles)) return undefined;
    const byLine = new Map<number, string[]>();
    for (const l of lenses) byLine.set(l.range.start.line, [...(byLine.get(l.range.start.line) ?? []), l.command?.title ?? '']);
    return byLine;
  });
}

const lineOf = (doc: vscode.TextDocument, text: string) => doc.positionAt(doc.getText().indexOf(text)).line;

async function mainSuite(): Promise<void> {
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

  await check('Inspect Model on the safetensors folder opens its layer table (the language server answers)', async () => {
    await vscode.commands.executeCommand('quantlens.inspectModel', workspaceUri('tiny-llama/model.safetensors'));
    const text = vscode.window.activeTextEditor?.document.getText() ?? '';
    expect(vscode.window.activeTextEditor?.document.languageId === 'markdown', 'no markdown document opened');
    // tinyLlamaTensors: 21 tensors, 1,832 parameters, all written as F16 (hand count: embed 256, 2×656 per block, norm 8, head 256).
    expect(text.includes('| F16 | 21 | 1,832 |'), `dtype row missing:\n${text.slice(0, 600)}`);
    expect(text.includes('| model.layers.1 | mlp.down_proj | 128 |'), 'layer row for model.layers.1 mlp.down_proj missing');
    expect(text.includes('| architectures | LlamaForCausalLM |'), 'config section missing');
  });

  await check('Inspect Model on the PaddleOCR ONNX file', async () => {
    await vscode.commands.executeCommand('quantlens.inspectModel', workspaceUri('ocr/ch_PP-OCRv4_rec_infer.onnx'));
    const text = vscode.window.activeTextEditor?.document.getText() ?? '';
    expect(text.includes('- Format: onnx'), `not an ONNX table:\n${text.slice(0, 300)}`);
  });

  await check('Analyze Sensitivity scores every weight of tiny-llama and opens the report panel', async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    const r = await vscode.commands.executeCommand<AnalyzeResponse | undefined>('quantlens.analyzeSensitivity', workspaceUri('tiny-llama'));
    expect(r, 'no analysis result (failed or cancelled)');
    const names = r.report.layers.map((l) => l.name);
    // Every matrix of the fixture must be scored, with its parameter count.
    const missing = MATRICES.filter((m) => !names.includes(m));
    expect(missing.length === 0, `not analyzed: ${missing.join(', ')}`);
    for (const l of r.report.layers) {
      const expected = LAYER_PARAMS[l.name.split('.').at(-2) ?? ''];
      expect(l.params === expected, `${l.name}: ${l.params} params, expected ${expected}`);
    }
    const panel = await until('the report panel tab', 15_000, () =>
      vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.label.includes('tiny-llama')),
    );
    return `${names.length} tensors, ${r.report.formats.length} formats; panel "${panel.label}"`;
  });

  // UI: the explorer now shows scores; the panel's charts, slider, CSP and network traffic.
  await handoff('explorer');
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');

  const problems = workspaceUri('problems.quant.yaml');
  await check('a plan shows the dead-rule and infeasible-budget diagnostics at the right lines', async () => {
    const { editor } = await openAt('problems.quant.yaml', 'no_such_proj');
    const diags = await until('dead-rule and infeasible-budget diagnostics', 30_000, () => {
      const d = vscode.languages.getDiagnostics(problems);
      const codes = new Set(d.map((x) => String(typeof x.code === 'object' ? x.code.value : x.code)));
      return codes.has('dead-rule') && codes.has('infeasible-budget') ? d : undefined;
    });
    const code = (c: string) => diags.find((x) => String(typeof x.code === 'object' ? x.code.value : x.code) === c)!;
    const dead = code('dead-rule');
    const doc = editor.document;
    expect(dead.range.start.line === lineOf(doc, 'no_such_proj'), `dead-rule on line ${dead.range.start.line + 1}`);
    expect(dead.severity === vscode.DiagnosticSeverity.Warning, 'dead-rule is not a warning');
    const infeasible = code('infeasible-budget');
    expect(infeasible.range.start.line <= lineOf(doc, 'avg_bits') && infeasible.range.end.line >= lineOf(doc, 'avg_bits'), `infeasible-budget not on the budget line: ${JSON.stringify(infeasible.range)}`);
    // The message states the minimum achievable: some number of bits above the asked 0.5.
    const min = [...infeasible.message.matchAll(/(\d+(?:\.\d+)?) bits/g)].map((m) => Number(m[1])).find((b) => b > 0.5);
    expect(min !== undefined, `no minimum bits in: ${infeasible.message}`);
    await vscode.commands.executeCommand('workbench.actions.view.problems');
    return `${dead.message} | ${infeasible.message}`;
  });

  await check('the plan\'s code lenses count the matched tensors and parameters of each rule', async () => {
    const plan = workspaceUri('plan.quant.yaml');
    const doc = await vscode.workspace.openTextDocument(plan);
    const byLine = await lensTitles(plan, (t) => t.some((x) => x.startsWith('Plan:')));
    const at = (text: string) => byLine.get(lineOf(doc, text)) ?? [];
    // Hand counts: q_proj of block 0 is 8×8; down_proj is 8×16 in each of the 2 blocks.
    const q = at('model.layers.0.self_attn.q_proj');
    expect(q.includes('Quantize layer'), 'no Quantize layer lens on the q_proj rule');
    const down = at('mlp.down_proj*');
    // int8_ch_sym: 8 bits per weight plus one fp16 scale per output row — q_proj 8 + 8·16/64 = 10, down_proj (8 rows
    // of 16) 8 + 8·16/128 = 9; sizes 64·10/8 = 80 B and 256·9/8 = 288 B.
    expect(q.some((t) => t.startsWith('1 tensor · 64 params · 10 bits/weight · 80 B')), `q_proj rule lenses: ${JSON.stringify(q)}`);
    expect(down.some((t) => t.startsWith('2 tensors · 256 params · 9 bits/weight · 288 B')), `down_proj rule lenses: ${JSON.stringify(down)}`);
    const top = byLine.get(0) ?? [];
    expect(top.some((t) => /^Plan: .* bits\/weight/.test(t)), `top lenses: ${JSON.stringify(top)}`);
    return [top.find((t) => t.startsWith('Plan:')), q[0], down[0]].join(' | ');
  });

  await check('hovering a rule pattern lists the tensors it matches; hovering a format explains it', async () => {
    const plan = workspaceUri('plan.quant.yaml');
    const doc = await vscode.workspace.openTextDocument(plan);
    const pos = (text: string) => doc.positionAt(doc.getText().indexOf(text) + 2);
    const pattern = hoverText((await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', plan, pos('model.layers.*.mlp.down_proj*'))) ?? []);
    for (const t of ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']) expect(pattern.includes(t), `pattern hover lacks ${t}: ${pattern.slice(0, 300)}`);
    const format = hoverText((await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', plan, pos('int4_g128_asym'))) ?? []);
    expect(/int4_g128_asym/.test(format) && /bits/i.test(format), `format hover: ${format.slice(0, 300)}`);
    return `${pattern.split('\n')[0]} | ${format.split('\n')[0]}`;
  });

  await check('completion offers the model\'s layer paths in match: and format ids in format:', async () => {
    const { editor } = await openAt('plan.quant.yaml', 'rules:');
    const doc = editor.document;
    const end = doc.lineCount - 1;
    await editor.edit((e) => e.insert(doc.lineAt(end).range.end, '  - match: model.layers.1.mlp.\n    format: int\n'));
    const complete = async (line: number) => {
      const list = await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', doc.uri, doc.lineAt(line).range.end);
      return (list?.items ?? []).map((i) => (typeof i.label === 'string' ? i.label : i.label.label));
    };
    const layers = await until('layer completions', 20_000, async () => {
      const items = await complete(end);
      return items.some((i) => i.includes('model.layers.1.mlp.down_proj')) ? items : undefined;
    });
    const formats = await complete(end + 1);
    await vscode.commands.executeCommand('workbench.action.files.revert');
    for (const f of ['int4_g128_asym', 'int8_ch_sym']) expect(formats.includes(f), `format completions lack ${f}: ${formats.slice(0, 20).join(', ')}`);
    return `${layers.filter((i) => i.includes('mlp')).slice(0, 3).join(', ')} | ${formats.length} formats`;
  });

  await check('config.json\'s code lenses state the parameters per block (656, by hand)', async () => {
    const config = workspaceUri('tiny-llama/config.json');
    await vscode.workspace.openTextDocument(config);
    const byLine = await lensTitles(config, (t) => t.length > 0);
    const titles = [...byLine.values()].flat();
    // Per block: 2 norms of 8 + 4 attention matrices of 8×8 + 3 MLP matrices of 16×8 = 656.
    expect(titles.some((t) => /\b656\b/.test(t)), `config.json lenses: ${JSON.stringify(titles)}`);
    return titles.join(' | ');
  });

  // UI: the plan with its lenses and diagnostics (screenshot), context menus of plan and config.json.
  await openAt('problems.quant.yaml', 'no_such_proj');
  await handoff('plan');

  await check('the dead rule\'s quick fix removes exactly that rule', async () => {
    const doc = await vscode.workspace.openTextDocument(problems);
    const before = doc.getText();
    const dead = vscode.languages.getDiagnostics(problems).find((d) => String(typeof d.code === 'object' ? d.code.value : d.code) === 'dead-rule');
    expect(dead, 'no dead-rule diagnostic');
    const actions = (await vscode.commands.executeCommand<vscode.CodeAction[]>('vscode.executeCodeActionProvider', problems, dead.range)) ?? [];
    const fix = actions.find((a) => a.kind?.contains(vscode.CodeActionKind.QuickFix) && /remove/i.test(a.title));
    expect(fix?.edit, `no removal quick fix among: ${actions.map((a) => a.title).join(', ')}`);
    expect(await vscode.workspace.applyEdit(fix.edit), 'applyEdit failed');
    const after = doc.getText();
    const expected = before.replace('  - match: "model.layers.*.mlp.no_such_proj"\n    format: int8_ch_sym\n', '');
    expect(expected !== before && after === expected, `text after the fix:\n${after}`);
    await until('the dead-rule diagnostic to go away', 15_000, () =>
      vscode.languages.getDiagnostics(problems).some((d) => String(typeof d.code === 'object' ? d.code.value : d.code) === 'dead-rule') ? undefined : true,
    );
    await vscode.commands.executeCommand('workbench.action.files.revert');
    return fix.title;
  });

  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  await vscode.commands.executeCommand('notifications.clearAll');
  await vscode.commands.executeCommand('workbench.action.closePanel');
  await vscode.commands.executeCommand('quantlens.explorer.focus');
  // UI: Quantize Layer from the explorer runs a job; another job is cancelled.
  await handoff('jobs');

  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  await openAt('plan.quant.yaml', 'model.layers.0.self_attn.q_proj');
  await handoff('menus');
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  await openAt('tiny-llama/config.json', 'LlamaForCausalLM');
  await handoff('config');
}

/** Restricted mode: inspection works, quantize commands refuse and say why. */
async function restrictedSuite(): Promise<void> {
  await check('the workspace is untrusted (restricted mode) and the extension still activates', async () => {
    expect(!vscode.workspace.isTrusted, 'the workspace is trusted');
    const ext = vscode.extensions.getExtension('quantlens.quantlens');
    expect(ext, 'quantlens.quantlens is not loaded');
    await ext.activate();
    expect(ext.isActive, 'not active');
  });
  await check('Inspect Model still reads the ONNX file in restricted mode', async () => {
    await vscode.commands.executeCommand('quantlens.inspectModel', workspaceUri('ocr/ch_PP-OCRv4_rec_infer.onnx'));
    const text = vscode.window.activeTextEditor?.document.getText() ?? '';
    expect(text.includes('- Format: onnx'), `not an ONNX table:\n${text.slice(0, 300)}`);
  });
  await check('Quantize Layer and Quantize Model refuse and write nothing', async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.commands.executeCommand('notifications.clearAll');
    await openAt('plan.quant.yaml', 'model.layers.0.self_attn.q_proj');
    const layer = await vscode.commands.executeCommand('quantlens.quantizeLayer');
    const model = await vscode.commands.executeCommand('quantlens.quantizeModel', workspaceUri('ocr/ch_PP-OCRv4_rec_infer.onnx'));
    expect(layer === undefined && model === undefined, `commands answered ${JSON.stringify([layer, model])}`);
    const written = (await vscode.workspace.findFiles('**/*.quant.onnx')).map((u) => u.fsPath);
    expect(written.length === 0, `written: ${written.join(', ')}`);
  });
  await handoff('restricted');
}

export async function run(): Promise<void> {
  await (process.env.QUANTLENS_E2E_MODE === 'restricted' ? restrictedSuite() : mainSuite());
  const failed = checks.filter((c) => !c.ok);
  if (failed.length) throw new Error(failed.map((c) => `${c.name}: ${c.detail}`).join('\n'));
}
