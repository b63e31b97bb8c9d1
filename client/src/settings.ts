// The analysis settings every request about one model shares, so the panel, the explorer and the language server
// agree on one cached analysis (the cache key includes the formats).
import * as vscode from 'vscode';

export interface AnalysisSettings {
  formats?: string[];
  /** Absolute folder, undefined for the default cache, '' for none. */
  cacheDir?: string;
}

export function analysisSettings(): AnalysisSettings {
  const cfg = vscode.workspace.getConfiguration('quantlens');
  // Restricted mode writes nothing, not even the analysis cache ('' = no cache).
  const cacheDir = vscode.workspace.isTrusted ? cfg.get<string>('cacheFolder') || undefined : '';
  return { formats: cfg.get<string[]>('defaultFormats'), cacheDir };
}
