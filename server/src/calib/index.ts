// loadCalibration: `--calib` in every form (a .npy/.npz/.json file, a folder of .npy/.npz files or of images, or
// nothing: synthetic data), checked against the model's inputs and grouped into batches.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from '../formats/errors';
import { conform, regroup } from './feeds';
import { IMAGE_EXTENSIONS, planImages, readImage, type ImageOptions } from './images';
import { readCalibJson } from './json';
import { readNpyFile } from './npy';
import { readNpz } from './npz';
import { syntheticCalibration, type SyntheticOptions } from './synthetic';
import type { CalibrationSet, Feeds, ModelInput } from './types';

export { modelInputs, toOrtFeeds } from './inputs';
export { readNpy, readNpyFile, writeNpy } from './npy';
export { readNpz } from './npz';
export type { ImageOptions } from './images';
export type { SyntheticOptions } from './synthetic';

export interface CalibrationOptions extends ImageOptions, SyntheticOptions {
  /** Samples per batch (concatenated along axis 0 when the model has a batch axis). Default: one file/object per batch. */
  batchSize?: number;
  /** Stop after this many samples (no further files are read). Default: all; synthetic: 8. */
  maxSamples?: number;
  /** Seed of the synthetic generator; default 0. */
  seed?: number;
}

type Kind = 'npy' | 'npz' | 'json' | 'image';

const KIND_OF: Record<string, Kind> = { '.npy': 'npy', '.npz': 'npz', '.json': 'json', ...Object.fromEntries(IMAGE_EXTENSIONS.map((e) => [e, 'image' as const])) };

/**
 * Calibration batches for a model with `inputs`. `spec`: a .npy file (single-input models), .npz or .json (arrays
 * by input name), an image file or a folder of one of those kinds (sorted by name, one unit per file); no
 * spec: the seeded synthetic generator. Every unit is checked against the inputs (see `conform`).
 */
export async function loadCalibration(spec: string | undefined, inputs: ModelInput[], opts: CalibrationOptions = {}): Promise<CalibrationSet> {
  const where = { file: spec ?? '<calibration options>' };
  if (!inputs.length) throw new QuantLensError('calib-mismatch', 'the model declares no inputs to feed', where);
  for (const key of ['batchSize', 'maxSamples'] as const) {
    const v = opts[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new QuantLensError('bad-option', `${key} must be a positive integer, found ${v}`, where);
  }
  if (spec === undefined) return syntheticCalibration(inputs, opts);

  const st = await fsp.stat(spec).catch(() => {
    throw new QuantLensError('not-found', 'calibration data not found (expected a .npy, .npz or .json file, an image, or a folder of them)', where);
  });
  let files: string[];
  let kind: Kind;
  if (st.isDirectory()) {
    const names = (await fsp.readdir(spec, { withFileTypes: true }))
      // labels.json beside the inputs holds the evaluation labels (e.g. the texts of OCR lines), not inputs.
      .filter((d) => d.isFile() && !d.name.startsWith('.') && d.name !== 'labels.json' && KIND_OF[path.extname(d.name).toLowerCase()] !== undefined)
      .map((d) => d.name)
      .sort(byName);
    const kinds = new Set(names.map((n) => KIND_OF[path.extname(n).toLowerCase()]));
    if (kinds.size !== 1) {
      throw new QuantLensError(
        'calib-folder',
        kinds.size ? `expected one kind of file in a calibration folder, found ${[...kinds].join(' and ')} files` : 'expected .npy, .npz, .json or image files (.png, .jpg, .jpeg) in the folder, found none',
        where,
      );
    }
    [kind] = kinds;
    files = names.map((n) => path.join(spec, n));
  } else {
    const k = KIND_OF[path.extname(spec).toLowerCase()];
    if (!k) throw new QuantLensError('calib-format', `expected a .npy, .npz, .json or image file (.png, .jpg, .jpeg), found '${path.basename(spec)}'`, where);
    kind = k;
    files = [spec];
  }
  if ((kind === 'npy' || kind === 'image') && inputs.length !== 1) {
    throw new QuantLensError(
      'calib-mismatch',
      `${kind === 'npy' ? '.npy files' : 'images'} feed a model with exactly one input; this model has ${inputs.length} (${inputs.map((i) => i.name).join(', ')}): use .npz or .json to map arrays to input names`,
      where,
    );
  }
  const { batches, samples } = await regroup(units(kind, files, inputs, opts), inputs, opts);
  const described = st.isDirectory() ? `${spec} (${files.length} ${kind === 'image' ? 'image' : `.${kind}`} files)` : spec;
  return { batches, samples, synthetic: false, source: described };
}

/** Conformed units, read lazily so that `maxSamples` stops the reading. */
async function* units(kind: Kind, files: string[], inputs: ModelInput[], opts: CalibrationOptions): AsyncGenerator<Feeds> {
  const plan = kind === 'image' ? planImages(inputs[0], opts, files[0]) : undefined;
  for (const file of files) {
    if (kind === 'json') {
      for (const u of await readCalibJson(file, inputs)) yield conform(u.raw, inputs, u.label);
    } else if (kind === 'npz') {
      const arrays = await readNpz(file);
      // np.savez(file, a) names its only array arr_0: accepted for a single-input model.
      const single = inputs.length === 1 && arrays.length === 1 && arrays[0].name === 'arr_0';
      yield conform(Object.fromEntries(arrays.map((a) => [single ? inputs[0].name : a.name, a.value])), inputs, file);
    } else {
      const value = plan ? await readImage(file, plan) : await readNpyFile(file);
      yield conform({ [inputs[0].name]: value }, inputs, file);
    }
  }
}

/** Natural order, so frame2 sorts before frame10. */
function byName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
