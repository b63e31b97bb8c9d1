// Public surface of the data-free analysis engine.
export { analyzeCheckpoint, OptionError, resolveOptions, skipReason, type AnalyzeResult, type AnalyzeRun } from './engine';
export { analyzeTensor, BLOCK_ELEMS } from './datafree';
export { defaultCacheDir } from './cache';
export { defaultThreads } from './pool';
export * from './types';
