// Located errors: every rejection of user input says which file, where, and what was expected.

export interface Location {
  file: string;
  /** Byte offset in the file, when the problem has one. */
  offset?: number;
  /** Tensor (or pickle global, graph node, …) the problem concerns. */
  tensor?: string;
  /** 1-based line/column for text inputs (YAML, JSON). */
  line?: number;
  column?: number;
}

export class QuantLensError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly where: Location,
  ) {
    super(formatLocated(where, detail));
    this.name = 'QuantLensError';
  }
}

export function formatLocated(where: Location, detail: string): string {
  let at = where.file;
  if (where.line !== undefined) at += `:${where.line}${where.column !== undefined ? `:${where.column}` : ''}`;
  if (where.offset !== undefined) at += ` @ byte ${where.offset}`;
  if (where.tensor !== undefined) at += ` [${where.tensor}]`;
  return `${at}: ${detail}`;
}

/** Throw a located error unless `cond` holds. */
export function check(cond: unknown, code: string, detail: string | (() => string), where: Location): asserts cond {
  if (!cond) throw new QuantLensError(code, typeof detail === 'function' ? detail() : detail, where);
}

/** Bounds that protect every loop and allocation driven by header-declared counts (hostile input). */
export const LIMITS = {
  maxHeaderBytes: 100 * 1024 * 1024, // safetensors JSON header, GGUF KV section
  maxTensors: 10_000_000,
  maxDims: 16,
  maxStringBytes: 64 * 1024 * 1024,
  maxMetadataEntries: 1_000_000,
  maxArrayElements: 100_000_000,
};
