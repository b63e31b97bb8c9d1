// Image calibration data: PNG (pngjs) and JPEG (jpeg-js) decoded to RGBA, resized bilinearly (half-pixel centers,
// as OpenCV/PIL/PyTorch without antialiasing), normalized (x·scale − mean) / std per channel and laid out as one
// sample [1, C, H, W] (NCHW) or [1, H, W, C] (NHWC) in the model input's dtype.
import { promises as fsp } from 'node:fs';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { check, QuantLensError } from '../formats/errors';
import type { ArrayValue, ModelInput } from './types';
import { allocate, f16Bits, shapeText } from './values';

export interface ImageOptions {
  /** Target [height, width]. Default: the input's fixed H and W; a symbolic one keeps the image's aspect ratio. */
  size?: [number, number];
  /** Multiplies the 0..255 pixel values before mean/std; default 1/255. */
  scale?: number;
  /** Per channel, in the order of `channels`; default ImageNet's (0.485, 0.456, 0.406), gray 0.449. */
  mean?: number[];
  /** Per channel; default ImageNet's (0.229, 0.224, 0.225), gray 0.226. */
  std?: number[];
  /** Default: NCHW unless only axis 3 is a channel count (1 or 3). */
  layout?: 'NCHW' | 'NHWC';
  /** Channel order for 3-channel inputs; default RGB. A 1-channel input gets luma (BT.601). */
  channels?: 'RGB' | 'BGR';
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];
const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;
const MAX_MEGAPIXELS = 64;
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/** What every image of a set shares: settled once from the model input and the options. */
export interface ImagePlan {
  input: ModelInput;
  layout: 'NCHW' | 'NHWC';
  channels: 1 | 3;
  order: 'RGB' | 'BGR';
  scale: number;
  mean: number[];
  std: number[];
  size?: [number, number];
}

export function planImages(input: ModelInput, opts: ImageOptions, file: string): ImagePlan {
  const bad = (detail: string): never => {
    throw new QuantLensError('calib-image', detail, { file });
  };
  const dims = input.dims;
  if (dims.length !== 4) bad(`images feed a 4-D input (N, C, H, W or N, H, W, C); input '${input.name}' has shape ${shapeText(dims)}`);
  if (!['float32', 'float16', 'float64', 'uint8'].includes(input.dtype)) bad(`images feed float or uint8 inputs; input '${input.name}' is ${input.dtype}`);
  if (opts.layout !== undefined && opts.layout !== 'NCHW' && opts.layout !== 'NHWC') bad(`layout must be NCHW or NHWC, found ${opts.layout}`);
  if (opts.channels !== undefined && opts.channels !== 'RGB' && opts.channels !== 'BGR') bad(`channels must be RGB or BGR, found ${opts.channels}`);
  const isC = (d: number | string) => d === 1 || d === 3;
  const layout = opts.layout ?? (!isC(dims[1]) && isC(dims[3]) ? 'NHWC' : 'NCHW');
  const c = dims[layout === 'NCHW' ? 1 : 3];
  if (typeof c === 'number' && !isC(c) && c !== -1) bad(`input '${input.name}' ${shapeText(dims)} has ${c} channels in ${layout} layout; images give 1 or 3`);
  const channels = c === 1 ? 1 : 3;
  const mean = opts.mean ?? (channels === 3 ? IMAGENET_MEAN : [0.449]);
  const std = opts.std ?? (channels === 3 ? IMAGENET_STD : [0.226]);
  for (const [what, v] of [['mean', mean], ['std', std]] as const) {
    if (v.length !== channels || !v.every(Number.isFinite)) bad(`${what} needs ${channels} finite number(s), found [${v.join(', ')}]`);
  }
  if (std.some((s) => s === 0)) bad('std must not contain 0');
  const scale = opts.scale ?? 1 / 255;
  if (!Number.isFinite(scale)) bad(`scale must be a finite number, found ${scale}`);
  if (opts.size && !opts.size.every((s) => Number.isInteger(s) && s >= 1 && s <= 1 << 15)) {
    bad(`size must be [height, width] in pixels (1..32768), found [${opts.size.join(', ')}]`);
  }
  return { input, layout, channels, order: opts.channels ?? 'RGB', scale, mean, std, size: opts.size };
}

/** One image file as a one-sample array for the plan's input. */
export async function readImage(path: string, plan: ImagePlan): Promise<ArrayValue> {
  const { size: bytes } = await fsp.stat(path);
  check(bytes <= MAX_IMAGE_FILE_BYTES, 'too-large', `image file has ${bytes} bytes, more than the ${MAX_IMAGE_FILE_BYTES}-byte limit`, { file: path });
  const img = decode(await fsp.readFile(path), path);
  const [h, w] = plan.size ?? targetSize(plan, img);
  check(h * w <= MAX_MEGAPIXELS * 1e6, 'too-large', `resizing to ${h}×${w} pixels exceeds ${MAX_MEGAPIXELS} megapixels`, { file: path });
  return layOut(resizeBilinear(img, h, w), h, w, plan);
}

function decode(buf: Buffer, file: string): Rgba {
  const isPng = PNG_SIGNATURE.every((b, i) => buf[i] === b);
  try {
    if (isPng) {
      // IHDR (width, height: big-endian at bytes 16 and 20) is checked before pngjs allocates anything.
      check(buf.length >= 24, 'bad-image', `PNG ends at byte ${buf.length}, before its IHDR chunk`, { file, offset: buf.length });
      const w = buf.readUInt32BE(16);
      const h = buf.readUInt32BE(20);
      check(w * h <= MAX_MEGAPIXELS * 1e6, 'too-large', `PNG declares ${w}×${h} pixels, more than ${MAX_MEGAPIXELS} megapixels`, { file, offset: 16 });
      return PNG.sync.read(buf);
    }
    check(buf[0] === 0xff && buf[1] === 0xd8, 'bad-image', () => `expected a PNG or JPEG signature, found ${buf.subarray(0, 8).toString('hex')} (hex)`, { file, offset: 0 });
    return jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_MEGAPIXELS, maxMemoryUsageInMB: 1024 });
  } catch (e) {
    if (e instanceof QuantLensError) throw e;
    throw new QuantLensError('bad-image', `cannot decode ${isPng ? 'PNG' : 'JPEG'}: ${(e as Error).message}`, { file });
  }
}

/** The input's fixed H and W; a symbolic one follows the image's aspect ratio; both symbolic: the image's size. */
function targetSize(plan: ImagePlan, img: Rgba): [number, number] {
  const dims = plan.input.dims;
  const [hd, wd] = plan.layout === 'NCHW' ? [dims[2], dims[3]] : [dims[1], dims[2]];
  const fixed = (d: number | string): d is number => typeof d === 'number' && d > 0;
  if (fixed(hd) && fixed(wd)) return [hd, wd];
  if (fixed(hd)) return [hd, Math.max(1, Math.round((img.width * hd) / img.height))];
  if (fixed(wd)) return [Math.max(1, Math.round((img.height * wd) / img.width)), wd];
  return [img.height, img.width];
}

/** RGB planes of h×w, bilinear with half-pixel centers: source coordinate (d + 0.5)·in/out − 0.5, clamped. */
export function resizeBilinear(img: Rgba, h: number, w: number): Float32Array[] {
  const planes = [0, 1, 2].map(() => new Float32Array(h * w));
  const src = img.data;
  const taps = (out: number, len: number) => {
    const lo = new Int32Array(out);
    const hi = new Int32Array(out);
    const frac = new Float32Array(out);
    for (let d = 0; d < out; d++) {
      const s = Math.min(Math.max((d + 0.5) * (len / out) - 0.5, 0), len - 1);
      lo[d] = Math.floor(s);
      hi[d] = Math.min(lo[d] + 1, len - 1);
      frac[d] = s - lo[d];
    }
    return { lo, hi, frac };
  };
  const ty = taps(h, img.height);
  const tx = taps(w, img.width);
  for (let y = 0; y < h; y++) {
    const r0 = ty.lo[y] * img.width;
    const r1 = ty.hi[y] * img.width;
    const fy = ty.frac[y];
    for (let x = 0; x < w; x++) {
      const fx = tx.frac[x];
      const a = (r0 + tx.lo[x]) * 4;
      const b = (r0 + tx.hi[x]) * 4;
      const c = (r1 + tx.lo[x]) * 4;
      const d = (r1 + tx.hi[x]) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[a + ch] + (src[b + ch] - src[a + ch]) * fx;
        const bottom = src[c + ch] + (src[d + ch] - src[c + ch]) * fx;
        planes[ch][y * w + x] = top + (bottom - top) * fy;
      }
    }
  }
  return planes;
}

/** Normalized (or, for uint8 inputs, rounded raw) channels in the plan's order, layout and dtype. */
function layOut(rgb: Float32Array[], h: number, w: number, plan: ImagePlan): ArrayValue {
  const c = plan.channels;
  const n = h * w;
  const sources =
    c === 1
      ? [rgb[0].map((r, i) => 0.299 * r + 0.587 * rgb[1][i] + 0.114 * rgb[2][i])]
      : plan.order === 'BGR' ? [rgb[2], rgb[1], rgb[0]] : rgb;
  const dtype = plan.input.dtype;
  const data = allocate(dtype, c * n) as Float32Array | Float64Array | Uint16Array | Uint8Array;
  for (let ch = 0; ch < c; ch++) {
    const p = sources[ch];
    const m = plan.mean[ch];
    const s = plan.std[ch];
    for (let i = 0; i < n; i++) {
      const at = plan.layout === 'NCHW' ? ch * n + i : i * c + ch;
      if (dtype === 'uint8') data[at] = Math.min(255, Math.max(0, Math.round(p[i])));
      else {
        const v = (p[i] * plan.scale - m) / s;
        data[at] = dtype === 'float16' ? f16Bits(v) : v;
      }
    }
  }
  return { dtype, dims: plan.layout === 'NCHW' ? [1, c, h, w] : [1, h, w, c], data };
}
