// Gram benchmark: H = XᵀX for X 4096×4096 float32 on onnxruntime (CPU) against numpy/OpenBLAS on the
// same data in the same run. Registered in bench.ts as `gram`.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { gram, resetGramScratch } from '../../server/src/runtime/kernels';
import { createSession, releaseSessions } from '../../server/src/runtime/session';
import { randn } from '../fixtures/common';

const N = 4096;
const D = 4096;
const REPS = 5;
const SETTLE_MS = 300;

/**
 * numpy side: loads X from .npy, warms up, prints version and the requested entries of X.T @ X, then
 * times one X.T @ X per input line — rounds alternate with onnxruntime's so both see the same load.
 */
const NUMPY_SCRIPT = `
import json, sys, time
import numpy as np
X = np.load(sys.argv[1])
H = X.T @ X
print(json.dumps({"version": np.__version__, "dtype": str(H.dtype), "entries": [float(H[i, j]) for i, j in json.loads(sys.argv[2])]}), flush=True)
for _ in sys.stdin:
    t = time.perf_counter(); H = X.T @ X; print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
`;

interface NumpyReady {
  version: string;
  dtype: string;
  entries: number[];
}

/** A python3 process answering one JSON line per request; `failure` says why none came. */
class NumpyWorker {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  /** Settles only if python3 cannot be started. */
  private readonly spawnError: Promise<string>;
  private stderr = '';

  constructor(file: string, idx: [number, number][], threads: number) {
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    this.proc = spawn('python3', ['-c', NUMPY_SCRIPT, file, JSON.stringify(idx)], { env });
    this.spawnError = new Promise((resolve) => this.proc.on('error', (e) => resolve(`python3 not runnable (${e.message})`)));
    this.proc.stdin.on('error', () => undefined); // a dead python is reported by next(), not as EPIPE
    this.proc.stderr.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  /** The next answer, or a string saying why the process gave none. */
  async next<T>(): Promise<T | string> {
    const line = await Promise.race([this.lines.next(), this.spawnError]);
    if (typeof line === 'string') return line;
    if (line.done) return /No module named .?numpy/.test(this.stderr) ? 'numpy is not installed' : `python3 failed: ${this.stderr.trim().split('\n').pop()}`;
    return JSON.parse(line.value) as T;
  }

  async time(): Promise<number> {
    this.proc.stdin.write('run\n');
    const r = await this.next<{ seconds: number }>();
    if (typeof r === 'string') throw new Error(r);
    return r.seconds;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** .npy v1.0: magic, header length, a Python dict literal padded to a 64-byte boundary, raw little-endian data. */
function writeNpy(file: string, data: Float32Array, rows: number, cols: number): void {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function best(f: () => Promise<unknown>): Promise<number> {
  await f();
  let t = Infinity;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await f();
    t = Math.min(t, (performance.now() - t0) / 1000);
  }
  return t;
}

export async function benchGram(): Promise<void> {
  const threads = os.availableParallelism();
  const gflops = (s: number) => ((2 * N * D * D) / s / 1e9).toFixed(1);
  const x = randn(N * D, 7, 1);
  console.log(`gram: H = XᵀX, X ${N}×${D} float32, ${threads} threads (GFLOP/s counted as 2·n·d², symmetry not discounted)`);

  // Plain single-node graph, for reference: Gemm(transA = 1) over the whole matrix.
  const g = new GraphBuilder('gram-plain');
  g.input('X', 'float32', ['n', D]);
  g.node('Gemm', ['X', 'X'], ['H'], { transA: 1 });
  g.output('H', 'float32', [D, D]);
  const plain = await createSession(g.build(), { providers: ['cpu'], threads });
  const feed = { X: new ort.Tensor('float32', x, [N, D]) };
  const plainS = await best(() => plain.session.run(feed));
  await plain.session.release();
  console.log(`  onnxruntime Gemm(transA)           ${plainS.toFixed(3)} s  ${gflops(plainS)} GFLOP/s`);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'quantlens-gram-'));
  try {
    const file = path.join(dir, 'x.npy');
    writeNpy(file, x, N, D);
    const idx: [number, number][] = [[0, 0], [1, 2], [123, D - 7], [D - 1, D - 1], [D / 2, 3], [D - 2, 511], [512, 513]];
    const numpy = new NumpyWorker(file, idx, threads);
    const ready = await numpy.next<NumpyReady>();
    // QuantLens kernel: symmetric column blocks written into a full d×d float32 matrix; one warm-up.
    let h: Float32Array = await gram(x, N, D, { providers: ['cpu'], threads });
    let oursS = Infinity;
    let numpyS = Infinity;
    // Each side starts after a pause: OpenBLAS's idle threads busy-wait ~0.1 s after a call (onnxruntime's briefly),
    // and would otherwise take a core from whichever side runs next.
    const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    for (let r = 0; r < REPS; r++) {
      await settle();
      const t0 = performance.now();
      h = await gram(x, N, D, { providers: ['cpu'], threads });
      oursS = Math.min(oursS, (performance.now() - t0) / 1000);
      await settle();
      if (typeof ready !== 'string') numpyS = Math.min(numpyS, await numpy.time());
    }
    numpy.close();
    resetGramScratch();
    await releaseSessions();
    console.log(`  QuantLens gram (symmetric blocks)  ${oursS.toFixed(3)} s  ${gflops(oursS)} GFLOP/s`);
    if (typeof ready === 'string') {
      console.log(`  numpy reference missing: ${ready}`);
      return;
    }
    console.log(`  numpy ${ready.version} X.T @ X              ${numpyS.toFixed(3)} s  ${gflops(numpyS)} GFLOP/s`);
    // Entries agree up to float32 summation order; the natural scale of H_ij is √(H_ii·H_jj).
    let worst = 0;
    for (const [k, [i, j]] of idx.entries()) {
      const scale = Math.sqrt(h[i * D + i] * h[j * D + j]);
      worst = Math.max(worst, Math.abs(h[i * D + j] - ready.entries[k]) / scale);
    }
    const agree = worst < 1e-4 ? 'agree' : 'DISAGREE';
    console.log(`  ${idx.length} entries vs numpy (${ready.dtype}): max |Δ|/√(HiiHjj) = ${worst.toExponential(2)} → ${agree}`);
    console.log(`  ratio QuantLens / numpy speed      ${(numpyS / oursS).toFixed(2)}×  (target ≥ 0.9×; best of ${REPS} alternating rounds)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
