// The formats under fuzz. Adding a format = one FuzzTarget here (name, seeds, open+read).
import { ggufTarget } from './seeds/gguf';
import { hfConfigTarget } from './seeds/hfconfig';
import { onnxTarget } from './seeds/onnx';
import { pytorchTarget } from './seeds/pytorch';
import { safetensorsTarget } from './seeds/safetensors';
import { SELFTEST_TARGETS } from './selftest';
import type { FuzzTarget } from './target';

export const TARGETS: readonly FuzzTarget[] = [safetensorsTarget, onnxTarget, ggufTarget, pytorchTarget, hfConfigTarget];

/** A target by name; the harness self-tests are found too, though not run by default. */
export function targetByName(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name) ?? SELFTEST_TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz format ${JSON.stringify(name)} (known: ${TARGETS.map((x) => x.name).join(', ')})`);
  return t;
}
