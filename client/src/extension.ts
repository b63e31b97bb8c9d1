// Extension placeholder: replaced by the client wiring.
export function activate(): void {}
export function deactivate(): void {}
