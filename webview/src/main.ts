// Webview placeholder.
export {};
