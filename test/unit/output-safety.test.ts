// Full disks and read-only folders: every output is a clear located error, nothing partial is left (no target, no
// temp file, an existing target keeps its old bytes) and the inputs stay byte-identical. Each case runs on every
// "disk" this machine offers: a real 64 KiB tmpfs, filled up or remounted read-only (needs root and mount), a folder
// without write permission (non-root), and always a failure injected into fs.promises.writeFile (preload script)
// that writes half the data and then fails, as a disk that fills up mid-write does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { QuantLensError } from '../../server/src/formats/errors';
import { writeOutputFile, writeOutputFiles } from '../../server/src/output';
import { tempDir } from '../fixtures/common';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir('quantlens-disk-');
const mounts: string[] = [];
after(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  cleanup();
});

// The injection: a preload that fails writes under $QUANTLENS_TEST_FAIL_DIR with $QUANTLENS_TEST_FAIL_CODE after
// writing half the data. Loaded here (for in-process calls) and by the CLI processes (NODE_OPTIONS --require).
const PRELOAD = path.join(dir, 'fail-writes.cjs');
writeFileSync(
  PRELOAD,
  `const fsp = require('node:fs').promises;
const real = fsp.writeFile;
fsp.writeFile = async function (file, data, opts) {
  const under = process.env.QUANTLENS_TEST_FAIL_DIR;
  if (!under || typeof file !== 'string' || !file.startsWith(under + '/')) return real.call(this, file, data, opts);
  await real.call(this, file, typeof data === 'string' ? data.slice(0, data.length >> 1) : data.subarray(0, data.length >> 1), opts);
  const code = process.env.QUANTLENS_TEST_FAIL_CODE;
  throw Object.assign(new Error(code + ': injected failure, write'), { code, errno: -28, syscall: 'write' });
};
`,
);
before(() => import(pathToFileURL(PRELOAD).href));

interface Disk {
  kind: string;
  folder: string;
  /** The error code the platform gives. */
  code: RegExp;
  /** Environment for CLI processes (the injection), applied around in-process calls too. */
  env: Record<string, string>;
}

const isRoot = process.getuid?.() === 0;

function tmpfs(name: string, size: string): string | undefined {
  const m = path.join(dir, name);
  mkdirSync(m);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', m]).status !== 0) return undefined;
  mounts.push(m);
  return m;
}

function injected(name: string, code: string): Disk {
  const folder = path.join(dir, name);
  mkdirSync(folder);
  return { kind: `injected ${code}`, folder, code: new RegExp(code), env: { QUANTLENS_TEST_FAIL_DIR: folder, QUANTLENS_TEST_FAIL_CODE: code, NODE_OPTIONS: `--require ${PRELOAD}` } };
}

/** Folders where writing fails for lack of space. */
function fullDisks(): Disk[] {
  const out = [injected('inject-full', 'ENOSPC')];
  const m = tmpfs('full', '64k');
  if (m) {
    // Fill it: the write fails with ENOSPC once the 64 KiB are used, leaving the filler in place.
    try {
      writeFileSync(path.join(m, 'filler'), Buffer.alloc(256 * 1024, 1));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    out.push({ kind: 'tmpfs full', folder: m, code: /ENOSPC/, env: {} });
  }
  return out;
}

/** Folders that cannot be written to. */
function readOnlyFolders(): Disk[] {
  const out = [injected('inject-rofs', 'EROFS')];
  const m = tmpfs('ro', '64k');
  if (m && spawnSync('mount', ['-o', 'remount,ro', m]).status === 0) out.push({ kind: 'tmpfs read-only', folder: m, code: /EROFS/, env: {} });
  if (!isRoot) {
    const f = path.join(dir, 'no-write');
    mkdirSync(f);
    chmodSync(f, 0o555);
    out.push({ kind: 'chmod 555', folder: f, code: /EACCES/, env: {} });
  }
  return out;
}

/** Run `body` with `env` set (NODE_OPTIONS only matters to the CLI processes runCli starts), then restore. */
async function withEnv<T>(env: Record<string, string>, body: () => Promise<T> | T): Promise<T> {
  const had = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await body();
  } finally {
    for (const [k, v] of Object.entries(had)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const FULL = fullDisks();
const READ_ONLY = readOnlyFolders();

/** What is in `folder` besides the tmpfs filler. */
const contents = (folder: string) => readdirSync(folder).filter((f) => f !== 'filler');

async function refusedWrite(disk: Disk, body: () => Promise<void>, file: string): Promise<void> {
  const err = await withEnv(disk.env, () => body().then(() => undefined, (e: unknown) => e));
  assert.ok(err instanceof QuantLensError, `${disk.kind}: expected a QuantLensError, got ${String(err)}`);
  assert.equal(err.code, 'output-write', disk.kind);
  assert.equal(err.where.file, file, disk.kind);
  assert.match(err.message, /could not write the output/, disk.kind);
  assert.match(err.message, disk.code, disk.kind);
}

test('the disks under test: the injection always, a real tmpfs where this machine can mount one', () => {
  assert.ok(FULL.length >= 1 && READ_ONLY.length >= 1);
  // The injection really fails writes under its folder only.
  const d = FULL[0];
  return withEnv(d.env, async () => {
    await assert.rejects(import('node:fs').then((fs) => fs.promises.writeFile(path.join(d.folder, 'x'), 'abcd')), /ENOSPC/);
    assert.equal(readFileSync(path.join(d.folder, 'x'), 'utf8'), 'ab'); // half written, as a disk filling up
    await import('node:fs').then((fs) => fs.promises.writeFile(path.join(dir, 'elsewhere'), 'abcd'));
    assert.equal(readFileSync(path.join(dir, 'elsewhere'), 'utf8'), 'abcd');
    (await import('node:fs')).rmSync(path.join(d.folder, 'x'));
  });
});

test('full disk: writeOutputFile fails cleanly, leaves no file and no temp, keeps an existing target intact', async () => {
  for (const disk of FULL) {
    const file = path.join(disk.folder, 'report.json');
    await refusedWrite(disk, () => writeOutputFile(file, 'x'.repeat(200_000)), file);
    assert.deepEqual(contents(disk.folder), [], disk.kind);
  }
  // An existing target (written before the disk filled up) keeps its bytes when replacing it fails.
  const disk = injected('inject-existing', 'ENOSPC');
  const file = path.join(disk.folder, 'plan.quant.yaml');
  writeFileSync(file, 'old contents\n');
  await refusedWrite(disk, () => writeOutputFile(file, 'new contents '.repeat(1000), { overwrite: true }), file);
  assert.equal(readFileSync(file, 'utf8'), 'old contents\n');
  assert.deepEqual(contents(disk.folder), ['plan.quant.yaml']);
});

test('read-only folder: writeOutputFile fails cleanly and creates nothing', async () => {
  for (const disk of READ_ONLY) {
    const file = path.join(disk.folder, 'out.onnx');
    await refusedWrite(disk, () => writeOutputFile(file, new Uint8Array(100)), file);
    assert.deepEqual(contents(disk.folder), [], disk.kind);
  }
});

test('writeOutputFiles: all or none — when the second output does not fit, the first is not left behind', async () => {
  // One output in a writable folder, the next on the full disk: the first must not survive the failure.
  const ok = path.join(dir, 'outputs-a');
  mkdirSync(ok);
  for (const disk of FULL) {
    const first = path.join(ok, 'model.onnx');
    const second = path.join(disk.folder, 'model.report.html');
    await refusedWrite(disk, () => writeOutputFiles([{ target: first, data: new Uint8Array(1000) }, { target: second, data: 'y'.repeat(300_000) }]), second);
    assert.deepEqual(readdirSync(ok), [], disk.kind);
    assert.deepEqual(contents(disk.folder), [], disk.kind);
  }
  // The same call with room for both writes both.
  await writeOutputFiles([{ target: path.join(ok, 'a'), data: 'a' }, { target: path.join(ok, 'b'), data: 'b' }]);
  assert.deepEqual(readdirSync(ok).sort(), ['a', 'b']);
  // A target checked as existing (no overwrite) refuses the whole set before anything is written.
  await assert.rejects(writeOutputFiles([{ target: path.join(ok, 'c'), data: 'c' }, { target: path.join(ok, 'a'), data: 'x' }]), /the file exists; pass --force/);
  assert.deepEqual(readdirSync(ok).sort(), ['a', 'b']);
});

// ---------------------------------------------------------------------------------------------
// The CLI commands that write files, as a user runs them

const inputs = path.join(dir, 'inputs');
mkdirSync(inputs);
const model = writeTinyModel(tinyMlp(), inputs, 'mlp.onnx');
const plan = path.join(inputs, 'mlp.quant.yaml');
writeFileSync(plan, 'model: ./mlp.onnx\ndefaults: { format: int4_g16_asym }\n');

function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(inputs).sort()) out[f] = createHash('sha256').update(readFileSync(path.join(inputs, f))).digest('hex');
  return out;
}

const COMMANDS: [string, (out: string) => string[]][] = [
  ['quantize', (out) => ['quantize', model, '--layer', 'fc1.weight', '--format', 'int4_g4_asym', '--out', path.join(out, 'q.onnx'), '--no-eval']],
  ['report', (out) => ['report', model, '--formats', 'int8_ch_sym', '--no-cache', '--budget', '10', '--html', path.join(out, 'report.html')]],
  ['export', (out) => ['export', '--to', 'ort-matmulnbits', plan, '--out', path.join(out, 'ort.json')]],
];

test('CLI quantize, report and export on a full disk or a read-only folder: exit 2, one located line, nothing written', async () => {
  const before = snapshot();
  // Each command succeeds in a writable folder (so the failures below are the disk's).
  const fine = path.join(dir, 'outputs-fine');
  mkdirSync(fine);
  for (const [name, args] of COMMANDS) assert.equal(runCli(...args(fine)).code, 0, name);
  // The most real disk of each kind (a tmpfs where there is one; the injection is covered in-process above).
  for (const disk of [FULL[FULL.length - 1], READ_ONLY[READ_ONLY.length - 1]]) {
    for (const [name, args] of COMMANDS) {
      const r = await withEnv(disk.env, () => runCli(...args(disk.folder)));
      assert.equal(r.code, 2, `${name} on ${disk.kind}: ${r.stderr}`);
      const line = r.stderr.trim().split('\n').pop()!;
      assert.match(line, new RegExp(`${disk.folder}/\\S+: could not write the output: ${disk.code.source}`), `${name} on ${disk.kind}`);
      assert.deepEqual(contents(disk.folder), [], `${name} on ${disk.kind} left files`);
      assert.deepEqual(snapshot(), before, `${name} on ${disk.kind} changed its inputs`);
    }
  }
});

test('the preload really runs in the CLI process: an injected EDQUOT is the error the user sees', async () => {
  const disk = injected('inject-check', 'EDQUOT');
  const r = await withEnv(disk.env, () => runCli('export', '--to', 'ort-matmulnbits', plan, '--out', path.join(disk.folder, 'x.json')));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /could not write the output: EDQUOT/);
  assert.ok(!existsSync(path.join(disk.folder, 'x.json')));
});
