// Execution providers: which names this onnxruntime-node build offers, which failed already in this
// process, and what a failure means in plain words.
//
// onnxruntime-node has no silent fallback: asking for an EP it cannot start makes session creation
// throw. session.ts therefore tries one provider per session creation and falls back to CPU itself.
//
// Making the GPU providers work on a user's machine (onnxruntime-node 1.30, linux/x64):
// - cuda / tensorrt: the npm package does not ship the provider libraries. Its postinstall
//   (script/install.js) downloads `libonnxruntime_providers_{shared,cuda,tensorrt}.so` from the NuGet
//   package Microsoft.ML.OnnxRuntime.Gpu.Linux (same version) into bin/napi-v6/linux/x64/. It runs by
//   default on linux/x64 when those files are missing; `ONNXRUNTIME_NODE_INSTALL=cuda12` (or the
//   deprecated `ONNXRUNTIME_NODE_INSTALL_CUDA=v12`) forces it, `=skip` or an `.npmrc` line
//   `onnxruntime-node-install=skip` disables it. After the download the system still needs the CUDA 12
//   runtime, cuBLAS and cuDNN 9 on the library path (and TensorRT 10 for tensorrt). Other platforms
//   have no CUDA download in 1.30.
// - webgpu: bundled (Dawn). It needs a GPU adapter: Vulkan on Linux (libvulkan.so.1 plus a Vulkan
//   driver, e.g. mesa-vulkan-drivers or the NVIDIA driver's ICD), Metal on macOS, D3D12 on Windows.
// - dml (Windows) and coreml (macOS) exist only in those platforms' builds.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';

// The native environment is created with the first session, after every module here has loaded.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** Provider names onnxruntime knows on some platform; anything else in a setting is a typo. */
const ORT_PROVIDER_NAMES = new Set(['cpu', 'cuda', 'tensorrt', 'webgpu', 'dml', 'coreml', 'qnn', 'xnnpack', 'nnapi', 'webnn', 'wasm', 'webgl']);

/** Default of the `quantlens.executionProviders` setting. */
export const DEFAULT_PROVIDERS: readonly string[] = ['cuda', 'webgpu', 'cpu'];

/** Names this onnxruntime-node build offers (`cpu`, `webgpu`, `cuda`, `tensorrt` on linux/x64). */
export function offeredProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

/** Why a requested name cannot be tried at all, or undefined when it can. */
export function unavailableReason(name: string): string | undefined {
  const offered = offeredProviders();
  if (offered.includes(name)) return undefined;
  const list = offered.join(', ');
  return ORT_PROVIDER_NAMES.has(name)
    ? `'${name}' is not part of onnxruntime-node on ${process.platform}/${process.arch} (offered: ${list})`
    : `unknown execution provider '${name}' (offered: ${list})`;
}

/** Provider → plain-words failure, kept for the process lifetime so a missing GPU is probed once. */
const failed = new Map<string, string>();

export function knownFailure(name: string): string | undefined {
  return failed.get(name);
}

export function rememberFailure(name: string, message: string): void {
  failed.set(name, message);
}

/** Test hook: forget cached failures. */
export function clearFailures(): void {
  failed.clear();
}

/** Lower-case, trimmed, de-duplicated, empty entries dropped. */
export function normalizeProviders(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.trim().toLowerCase()).filter((n) => n.length > 0))];
}

function nativeDir(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

const SHARED_LIB = process.platform === 'win32' ? 'onnxruntime_providers_shared.dll' : 'libonnxruntime_providers_shared.so';

function providerLib(name: string): string {
  return process.platform === 'win32' ? `onnxruntime_providers_${name}.dll` : `libonnxruntime_providers_${name}.so`;
}

/** Is a shared library findable by the dynamic loader (LD_LIBRARY_PATH, the ld.so cache, the usual folders)? */
function loaderFinds(lib: string): boolean {
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/lib/x86_64-linux-gnu'];
  if (dirs.some((d) => existsSync(path.join(d, lib)))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes(lib);
  } catch {
    return false;
  }
}

/**
 * Why a provider offered by this build cannot start here, known without trying: its libraries are absent.
 * Trying anyway costs a session creation and prints onnxruntime's and Dawn's native errors on stderr.
 */
export function missingLibraries(name: string): string | undefined {
  if (name === 'cuda' || name === 'tensorrt') {
    const dir = nativeDir();
    const label = name === 'cuda' ? 'CUDA' : 'TensorRT';
    if (dir !== undefined && !existsSync(path.join(dir, SHARED_LIB))) return `${label} provider library not found (${SHARED_LIB})`;
    if (dir !== undefined && !existsSync(path.join(dir, providerLib(name)))) return `${label} provider library not found (${providerLib(name)})`;
  }
  if (name === 'webgpu' && process.platform === 'linux' && !loaderFinds('libvulkan.so.1')) {
    return 'no WebGPU adapter: the Vulkan loader (libvulkan.so.1) is not installed';
  }
  return undefined;
}

/** The first line of an onnxruntime error without source paths, at most 200 characters. */
export function oneLine(message: string): string {
  const first = message.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown error';
  const clean = first.replace(/\/onnxruntime_src\/\S+:\d+\s+/g, '').replace(/\s+/g, ' ');
  return clean.length > 200 ? `${clean.slice(0, 197)}...` : clean;
}

/** Known failures of provider start-up in plain words; anything else as its first line. */
export function explainFailure(provider: string, message: string): string {
  if (/Failed to load shared library|Failed to load library/i.test(message) && (provider === 'cuda' || provider === 'tensorrt')) {
    const label = provider === 'cuda' ? 'CUDA' : 'TensorRT';
    const dir = nativeDir();
    if (dir !== undefined && !existsSync(path.join(dir, SHARED_LIB))) return `${label} provider library not found (${SHARED_LIB})`;
    if (dir !== undefined && !existsSync(path.join(dir, providerLib(provider)))) return `${label} provider library not found (${providerLib(provider)})`;
    return `${label} provider libraries are installed but failed to load (${provider === 'cuda' ? 'CUDA 12 runtime, cuBLAS or cuDNN 9' : 'TensorRT 10 or CUDA 12'} missing from the library path, or no usable GPU driver)`;
  }
  if (/WebGPU adapter/i.test(message)) return 'no WebGPU adapter (Vulkan/Metal/D3D12 not available)';
  if (/backend not found/i.test(message)) return `'${provider}' is not available in this onnxruntime-node build`;
  return oneLine(message);
}
