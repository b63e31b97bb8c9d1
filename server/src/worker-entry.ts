// Where a worker thread's script is: its TypeScript source through tsx when running from source (tests), else
// the esbuild bundle named `bundle` next to the running bundle or one folder up (dist/ holds cli.js and the worker
// bundles; dist/server/server.js is one level down). See scripts/build.mjs.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { QuantLensError, type Location } from './formats/errors';

const TSX_REGISTER = 'tsx/cjs';

/** A worker running `source` (absolute .ts path) from source, or `<bundle>.js` from the bundles. */
export function startWorker(bundle: string, source: string, options: WorkerOptions, override?: string): Worker {
  if (override) return new Worker(override, options);
  if (__filename.endsWith('.ts')) {
    // Resolved at run time only (tests run from source); the bundles never take this branch.
    const tsx = require.resolve(TSX_REGISTER);
    return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(source)});`, { ...options, eval: true });
  }
  for (const dir of [__dirname, path.dirname(__dirname)]) {
    const f = path.join(dir, `${bundle}.js`);
    if (existsSync(f)) return new Worker(f, options);
  }
  throw new Error(`${bundle}.js not found next to ${__filename}`);
}

export type SerializedError =
  | { kind: 'located'; code: string; detail: string; where: Location }
  | { kind: 'other'; message: string; stack?: string };

/** Errors cross the thread boundary as plain data; located errors stay QuantLensErrors. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof QuantLensError) return { kind: 'located', code: e.code, detail: e.detail, where: e.where };
  const err = e as Error;
  return { kind: 'other', message: err?.message ?? String(e), stack: err?.stack };
}

export function deserializeError(s: SerializedError): Error {
  if (s.kind === 'located') return new QuantLensError(s.code, s.detail, s.where);
  const e = new Error(s.message);
  if (s.stack) e.stack = s.stack;
  return e;
}
