// The exporter contract: one module per dialect turns a resolved plan (ExportContext) into file texts.
import type { ExportContext } from './context';

export type DialectId = 'llama.cpp' | 'gptqmodel' | 'hqq' | 'ort-matmulnbits' | 'llm-compressor' | 'modelopt';

export interface ExportFile {
  /** File name (no folder): `<plan stem><suffix>`. */
  name: string;
  text: string;
}

export interface DialectOutput {
  /** Texts by file-name suffix (appended to the plan's stem). */
  files: { suffix: string; text: string }[];
  /** A command line that uses the files; `{file}` stands for the first file's path. */
  commandLine?: string;
}

export interface Dialect {
  id: DialectId;
  /** One line: the tool and the documentation/version the output follows. */
  describes: string;
  export(ctx: ExportContext): DialectOutput;
}
