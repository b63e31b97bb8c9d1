// The formats under fuzz. Adding a format = one FuzzTarget here (name, seeds, open+read).
import { imatrixTarget, npyTarget, npzTarget } from './seeds/calib';
import { ggufTarget } from './seeds/gguf';
import { hfConfigTarget } from './seeds/hfconfig';
import { onnxTarget } from './seeds/onnx';
import { planTarget } from './seeds/plan';
import { pytorchTarget } from './seeds/pytorch';
import { safetensorsTarget } from './seeds/safetensors';
import { SELFTEST_TARGETS } from './selftest';
import type { FuzzTarget } from './target';

/** Model checkpoints and their config. */
export const CHECKPOINT_TARGETS: readonly FuzzTarget[] = [safetensorsTarget, onnxTarget, ggufTarget, pytorchTarget, hfConfigTarget];
/** Side inputs a user points QuantLens at: importance matrices, calibration arrays, plan files. */
export const INPUT_TARGETS: readonly FuzzTarget[] = [imatrixTarget, npyTarget, npzTarget, planTarget];
export const TARGETS: readonly FuzzTarget[] = [...CHECKPOINT_TARGETS, ...INPUT_TARGETS];


/** A target by name; the harness self-tests are found too, though not run by default. */
export function targetByName(name: string): FuzzTarget {
  const t = [...TARGETS, ...SELFTEST_TARGETS].find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz format ${JSON.stringify(name)} (known: ${TARGETS.map((x) => x.name).join(', ')})`);
  return t;
}
