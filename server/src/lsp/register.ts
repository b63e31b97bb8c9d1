// Plan and config-file features of the language server: diagnostics as you type, code lenses, hovers,
// completion, code actions and the server-side Fit budget command. Every request answers from one PlanState per
// document version (computed once, shared by diagnostics and all requests); a failing handler fails only its
// own request, and is logged.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  CodeActionKind,
  DiagnosticSeverity,
  ErrorCodes,
  ResponseError,
  type CodeLens,
  type Connection,
  type Diagnostic,
  type ServerCapabilities,
  type TextDocuments,
} from 'vscode-languageserver/node';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { PlanDiagnostic } from '../plan';
import { parsePlan } from '../plan/parse';
import type { ModelInfo, PlanService, PlanState } from '../plan/service';
import { fitBudgetAction, planCodeActions } from './codeActions';
import { planCompletion } from './completion';
import { configLenses, type ConfigContext } from './configLenses';
import { planHover } from './hover';
import { LensCommands, planLenses } from './lenses';
import { dataDiagnostics } from './dataDiagnostics';
import { targetDiagnostics } from './targets';
import { isRecipe, recipeLenses } from './recipeLenses';
import { tensorTypeLenses } from './tensorTypes';

export const PLAN_DEBOUNCE_MS = 150;
/** Plans beside a config.json are read for its lenses only up to this size. */
const MAX_PLAN_BYTES = 1 << 20;

export const isPlan = (uri: string) => /\.quant\.ya?ml$/i.test(uri) && uri.startsWith('file:');
const configKind = (uri: string): 'hf' | 'gptq' | undefined =>
  !uri.startsWith('file:') ? undefined : /\/config\.json$/i.test(uri) ? 'hf' : /\/quantize_config\.json$/i.test(uri) ? 'gptq' : undefined;

const isTensorTypes = (uri: string) => uri.startsWith('file:') && /\.tensor-types\.txt$/i.test(uri);
const isYaml = (uri: string) => uri.startsWith('file:') && /\.ya?ml$/i.test(uri) && !isPlan(uri);

/** A plan file's text from disk, when it exists and is of plausible size. */
async function readSmall(file: string): Promise<string | undefined> {
  const st = await fsp.stat(file).catch(() => undefined);
  return st?.isFile() && st.size <= MAX_PLAN_BYTES ? fsp.readFile(file, 'utf8').catch(() => undefined) : undefined;
}

export const PLAN_CAPABILITIES: ServerCapabilities = {
  codeLensProvider: { resolveProvider: false },
  hoverProvider: true,
  completionProvider: { triggerCharacters: ['.', ':', ' ', '"', '*', '_'] },
  codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix, CodeActionKind.Source] },
  executeCommandProvider: { commands: [LensCommands.fitBudget] },
};

const SEVERITY = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, information: DiagnosticSeverity.Information, hint: DiagnosticSeverity.Hint };

export function toLspDiagnostic(d: PlanDiagnostic, uri: string): Diagnostic {
  return {
    range: d.range,
    severity: SEVERITY[d.severity],
    code: d.code,
    source: 'quantlens',
    message: d.suggestion ? `${d.message} (did you mean '${d.suggestion}'?)` : d.message,
    ...(d.related?.length ? { relatedInformation: d.related.map((r) => ({ location: { uri, range: r.range }, message: r.message })) } : {}),
  };
}

export interface PlanFeatures {
  /** Forget cached states (e.g. after an analysis report arrived) and republish open plans' diagnostics. */
  refresh(): void;
}

export function registerPlanFeatures(connection: Connection, documents: TextDocuments<TextDocument>, plans: PlanService): PlanFeatures {
  const states = new Map<string, { version: number; state: Promise<PlanState> }>();
  const pending = new Map<string, NodeJS.Timeout>();

  function stateOf(doc: TextDocument): Promise<PlanState> {
    const hit = states.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.state;
    const state = plans.analyze(doc.getText(), fileURLToPath(doc.uri));
    states.set(doc.uri, { version: doc.version, state });
    state.catch(() => states.delete(doc.uri));
    return state;
  }

  function planDoc(uri: unknown): TextDocument | undefined {
    if (typeof uri !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, 'expected textDocument.uri');
    const doc = documents.get(uri);
    return doc && isPlan(uri) ? doc : undefined;
  }

  /** Runs a handler; an exception fails this request only, with the stack in the log. */
  function guard<P, R>(method: string, run: (p: P) => Promise<R> | R): (p: P) => Promise<R | ResponseError<void>> {
    return async (p: P) => {
      try {
        return await run(p);
      } catch (e) {
        if (e instanceof ResponseError) return e;
        connection.console.error(`${method} failed: ${(e as Error)?.stack ?? String(e)}`);
        return new ResponseError(ErrorCodes.InternalError, `internal error in ${method}: ${(e as Error)?.message ?? String(e)}`);
      }
    };
  }

  async function publish(doc: TextDocument): Promise<void> {
    const version = doc.version;
    try {
      const state = await stateOf(doc);
      // A newer edit already scheduled its own run: drop this stale result.
      if (documents.get(doc.uri)?.version !== version) return;
      const base = state.diagnostics.map((d) => toLspDiagnostic(d, doc.uri));
      await connection.sendDiagnostics({ uri: doc.uri, version, diagnostics: base });
      // Backend checks (the exporters), calibration data and analysis state: a second, later pass, so they never
      // delay the diagnostics above.
      await new Promise((resolve) => setImmediate(resolve));
      if (documents.get(doc.uri)?.version !== version) return;
      const failed = (what: string) => (e: unknown) => {
        connection.console.error(`${what} failed for ${doc.uri}: ${(e as Error)?.stack ?? String(e)}`);
        return [];
      };
      const extra = [...(await targetDiagnostics(state).catch(failed('target checks'))), ...(await dataDiagnostics(state).catch(failed('data checks')))];
      if (extra.length && documents.get(doc.uri)?.version === version) {
        await connection.sendDiagnostics({ uri: doc.uri, version, diagnostics: [...base, ...extra.map((d) => toLspDiagnostic(d, doc.uri))] });
      }
    } catch (e) {
      connection.console.error(`plan diagnostics failed for ${doc.uri}: ${(e as Error)?.stack ?? String(e)}`);
    }
  }

  documents.onDidChangeContent(({ document }) => {
    if (!isPlan(document.uri)) return;
    clearTimeout(pending.get(document.uri));
    pending.set(document.uri, setTimeout(() => {
      pending.delete(document.uri);
      void publish(document);
    }, PLAN_DEBOUNCE_MS));
  });
  documents.onDidClose(({ document }) => {
    clearTimeout(pending.get(document.uri));
    pending.delete(document.uri);
    states.delete(document.uri);
    if (isPlan(document.uri)) void connection.sendDiagnostics({ uri: document.uri, diagnostics: [] });
  });

  connection.onCodeLens(guard('textDocument/codeLens', async (p: { textDocument: { uri: string } }): Promise<CodeLens[]> => {
    const uri = p.textDocument.uri;
    const kind = configKind(uri);
    const doc = documents.get(uri);
    if (kind && doc) return configLenses(doc.getText(), fileURLToPath(uri), kind, await configContext(fileURLToPath(uri)));
    if (isTensorTypes(uri) && doc) return tensorTypeLenses(doc.getText(), await tensorTypesModel(fileURLToPath(uri)));
    if (isYaml(uri) && doc && isRecipe(doc.getText())) return recipeLenses(doc.getText(), (await configContext(fileURLToPath(uri))).model);
    const plan = planDoc(uri);
    return plan ? planLenses(await stateOf(plan), uri) : [];
  }));

  connection.onHover(guard('textDocument/hover', async (p: { textDocument: { uri: string }; position: { line: number; character: number } }) => {
    const doc = planDoc(p.textDocument.uri);
    return doc ? planHover(await stateOf(doc), p.position) : null;
  }));

  connection.onCompletion(guard('textDocument/completion', async (p: { textDocument: { uri: string }; position: { line: number; character: number } }) => {
    const doc = planDoc(p.textDocument.uri);
    if (!doc) return null;
    // Completion reads the current text (the state may be one debounce behind for the names, never for the line).
    const state = await stateOf(doc);
    return planCompletion({ ...state, text: doc.getText() }, p.position);
  }));

  connection.onCodeAction(guard('textDocument/codeAction', async (p: { textDocument: { uri: string }; context: { diagnostics: Diagnostic[] } }) => {
    const doc = planDoc(p.textDocument.uri);
    return doc ? planCodeActions(await stateOf(doc), doc.uri, p.context?.diagnostics ?? []) : [];
  }));

  connection.onExecuteCommand(guard('workspace/executeCommand', async (p: { command: string; arguments?: unknown[] }) => {
    if (p.command !== LensCommands.fitBudget) throw new ResponseError(ErrorCodes.InvalidParams, `unknown command ${p.command}`);
    const doc = planDoc(p.arguments?.[0]);
    if (!doc) throw new ResponseError(ErrorCodes.InvalidParams, 'quantlens.fitBudget expects the uri of an open plan');
    const action = await fitBudgetAction(await stateOf(doc), doc.uri);
    if (!action?.edit) {
      void connection.window.showWarningMessage('Fit budget: no assignment of the candidate formats meets the budget (see the budget diagnostic).');
      return { applied: false };
    }
    return connection.workspace.applyEdit({ label: action.title, edit: action.edit });
  }));

  /** The model of the plan the file was exported from (`<stem>.quant.yaml` beside it), else the checkpoint in its folder. */
  async function tensorTypesModel(file: string): Promise<ModelInfo | undefined> {
    const planPath = file.replace(/\.tensor-types\.txt$/i, '.quant.yaml');
    const text = documents.get(pathToFileURL(planPath).href)?.getText() ?? (await readSmall(planPath));
    const target = text === undefined ? undefined : parsePlan(text, planPath).plan.model?.value.path;
    const m = await plans.model(target ?? path.dirname(file));
    return m.tensors?.length ? m : undefined;
  }

  /** The checkpoint in the config's folder and a plan naming it (open or on disk), for the config lenses. */
  async function configContext(file: string): Promise<ConfigContext> {
    const dir = path.dirname(file);
    const model = await plans.model(dir);
    const ctx: ConfigContext = model.tensors?.length ? { model } : {};
    const names = await fsp.readdir(dir).then((all) => all.filter((n) => /\.quant\.ya?ml$/i.test(n)).sort(), () => []);
    for (const name of names) {
      const planPath = path.join(dir, name);
      const open = documents.get(pathToFileURL(planPath).href);
      const text = open?.getText() ?? (await readSmall(planPath));
      if (text === undefined) continue;
      const target = parsePlan(text, planPath).plan.model?.value.path;
      if (target && (target === dir || path.dirname(target) === dir)) {
        ctx.plan = await plans.analyze(text, planPath);
        break;
      }
    }
    return ctx;
  }

  return {
    refresh() {
      states.clear();
      for (const doc of documents.all()) if (isPlan(doc.uri)) void publish(doc);
    },
  };
}
