// Session creation with an explicit provider fallback chain, and a cache of sessions for built graphs.
import * as ort from 'onnxruntime-node';
import { QuantLensError } from '../formats/errors';
import { DEFAULT_PROVIDERS, explainFailure, knownFailure, missingLibraries, normalizeProviders, oneLine, rememberFailure, unavailableReason } from './providers';

export interface SessionOptions {
  /** Provider names in order of preference (the `quantlens.executionProviders` setting). CPU is always the last resort. */
  providers?: readonly string[];
  /** Intra-op threads; onnxruntime's default (one per physical core) when absent. */
  threads?: number;
}

export interface ProviderAttempt {
  provider: string;
  ok: boolean;
  /** Why it failed or was skipped, one line in plain words. */
  error?: string;
  /** Not tried: unknown name, not in this build, or failed earlier in this process. */
  skipped?: boolean;
  ms: number;
}

export interface SessionResult {
  session: ort.InferenceSession;
  /** The provider the session runs on. */
  provider: string;
  attempts: ProviderAttempt[];
}

/**
 * Opens `model` (bytes or a file path) on the first provider of `opts.providers` that starts,
 * each tried in its own session creation, then on CPU. Throws only when CPU fails too (the model
 * itself is the problem); providers that failed while CPU worked are not tried again in this process.
 */
export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<SessionResult> {
  const where = { file: typeof model === 'string' ? model : '<generated graph>' };
  const threads = opts.threads;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 1024)) {
    throw new QuantLensError('bad-threads', `thread count must be an integer in 1..1024, found ${threads}`, where);
  }
  const wanted = normalizeProviders(opts.providers ?? DEFAULT_PROVIDERS);
  if (!wanted.includes('cpu')) wanted.push('cpu');
  const attempts: ProviderAttempt[] = [];
  const failedHere: ProviderAttempt[] = [];
  for (const provider of wanted) {
    const reason = unavailableReason(provider) ?? missingLibraries(provider);
    const cached = reason === undefined && provider !== 'cpu' ? knownFailure(provider) : undefined;
    if (reason !== undefined || cached !== undefined) {
      attempts.push({ provider, ok: false, skipped: true, error: reason ?? `${cached} (failed earlier in this process; not retried)`, ms: 0 });
      continue;
    }
    const t0 = performance.now();
    try {
      const options: ort.InferenceSession.SessionOptions = { executionProviders: [provider], ...(threads !== undefined ? { intraOpNumThreads: threads } : {}) };
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      attempts.push({ provider, ok: true, ms: performance.now() - t0 });
      // A provider that failed where this one loaded the same model cannot start at all: remember that.
      for (const f of failedHere) rememberFailure(f.provider, f.error ?? 'failed to start');
      return { session, provider, attempts };
    } catch (e) {
      const raw = e instanceof Error ? e.message : String(e);
      const attempt = { provider, ok: false, error: provider === 'cpu' ? oneLine(raw) : explainFailure(provider, raw), ms: performance.now() - t0 };
      attempts.push(attempt);
      if (provider !== 'cpu') failedHere.push(attempt);
    }
  }
  const tried = attempts.map((a) => `${a.provider}: ${a.error}`).join('; ');
  throw new QuantLensError('session-failed', `onnxruntime could not load the model (${tried})`, where);
}

const cache = new Map<string, Promise<SessionResult>>();

/**
 * A session for a graph built in code, created once per (key, providers, threads). `key` must
 * name everything that shapes the graph (e.g. `gram:d=4096:blocks=256,…`); `build` runs only on a miss.
 */
export function cachedSession(key: string, build: () => Uint8Array, opts: SessionOptions = {}): Promise<SessionResult> {
  const full = `${key}|${normalizeProviders(opts.providers ?? DEFAULT_PROVIDERS).join(',')}|${opts.threads ?? ''}`;
  let hit = cache.get(full);
  if (hit === undefined) {
    hit = createSession(build(), opts);
    hit.catch(() => cache.delete(full));
    cache.set(full, hit);
  }
  return hit;
}

/** Releases every cached session (native memory) — for shutdown and tests. */
export async function releaseSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    const r = await p.catch(() => undefined);
    await r?.session.release();
  }
}
