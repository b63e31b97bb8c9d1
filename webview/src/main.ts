// Webview entry (placeholder until the report views land): renders what the host sends, says when it is ready.
import type { HostToWebview, WebviewToHost } from '../../server/src/protocol';

interface VsCodeApi {
  postMessage(message: WebviewToHost): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const root = document.getElementById('root') ?? document.body;

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const msg = event.data;
  if (msg?.type !== 'show') return;
  const title = document.createElement('h2');
  title.textContent = msg.title;
  const body = document.createElement('pre');
  body.textContent = msg.text;
  root.replaceChildren(title, body);
});

vscode.postMessage({ type: 'ready' });
