// The report panel's stylesheet (no VS Code import, so screenshot harnesses can load it too).

/** Theme-aware through VS Code's CSS variables (light, dark and high contrast alike). */
export const PANEL_CSS = `
body { color: var(--vscode-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 16px 16px; }
h1 { font-size: 1.4em; margin: 12px 0 2px; font-weight: 600; } h2 { font-size: 1.05em; margin: 0; font-weight: 600; }
.status { color: var(--vscode-descriptionForeground); min-height: 1.4em; } .status.error { color: var(--vscode-errorForeground); }
.controls { display: flex; align-items: center; gap: 12px; margin: 8px 0 12px; flex-wrap: wrap; }
#budget { width: min(480px, 60vw); accent-color: var(--vscode-button-background); }
.muted, .note { color: var(--vscode-descriptionForeground); } .note { font-style: italic; padding: 24px 8px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--vscode-panel-border, var(--vscode-contrastBorder, transparent)); border-radius: 4px; padding: 8px 10px; background: var(--vscode-sideBar-background, transparent); min-width: 0; }
.card-head { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; } .card-head h2 { margin-right: auto; }
.chart { height: 380px; }
select { background: var(--vscode-dropdown-background); color: var(--vscode-dropdown-foreground); border: 1px solid var(--vscode-dropdown-border, transparent); padding: 2px 4px; max-width: 320px; }
label { color: var(--vscode-descriptionForeground); }
`;
