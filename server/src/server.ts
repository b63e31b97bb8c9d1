// Language server placeholder: replaced by the LSP wiring.
export {};
