// Seeded text lines for OCR recognizers: short strings of common English words and numbers, rendered black-ish on
// white with @napi-rs/canvas and DejaVu fonts (both devDependencies, loaded lazily so the extension bundle runs
// without them), then preprocessed as PaddleOCR's recognizer expects (RecResizeImg / resize_norm_img):
// height 48, width ceil(48·w/h) capped at the target width, bilinear resize, x/255 → (x − 0.5)/0.5, CHW in
// BGR order (cv2 decodes BGR), right-padded with 0 to the fixed width so lines batch together.
import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as Canvas from '@napi-rs/canvas';
import { PNG } from 'pngjs';
import { writeNpy } from '../calib/npy';
import { check, QuantLensError } from '../formats/errors';

/** An RGBA image, 4 bytes per pixel, row-major. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

export interface TextLineOptions {
  count: number;
  seed?: number;
  /** Model input size; PP-OCRv4 rec: 48 × 320. */
  height?: number;
  width?: number;
  /** Font families to draw from (default all three DejaVu faces). */
  fonts?: readonly FontFace[];
  /** Also return the rendered images (before preprocessing), e.g. to write PNGs. */
  keepRendered?: boolean;
}

export type FontFace = 'DejaVuSans' | 'DejaVuSerif' | 'DejaVuSansMono';

export interface TextLineSet {
  /** Preprocessed batch, float32 [N, 3, height, width]. */
  images: Float32Array;
  dims: [number, 3, number, number];
  texts: string[];
  seed: number;
  rendered?: Rgba[];
}

const FONT_FILES: Record<FontFace, string> = { DejaVuSans: 'DejaVuSans.ttf', DejaVuSerif: 'DejaVuSerif.ttf', DejaVuSansMono: 'DejaVuSansMono.ttf' };
const ALL_FACES = Object.keys(FONT_FILES) as FontFace[];
/** Longest line in characters: at 34 px even the widest face stays near 320 px, so few lines get squeezed. */
const MAX_CHARS = 16;
const MAX_LINES = 100_000;

// Everyday English words, written for this generator.
const WORDS = (
  'the and for you with this that from have will your are not but all can more one time new about out day ' +
  'year work home page next back open save file name date city road book table water light green black white ' +
  'north south east west price total order paper train money music store phone small large early late first ' +
  'last right left hotel room floor door window house market garden river bridge station coffee bread ' +
  'sugar apple lemon orange blue red yellow summer winter spring autumn monday friday sunday morning evening ' +
  'ticket number model layer value check print start stop close help world people little great public ' +
  'school office island street center report member energy family simple quick bright silver golden'
).split(' ');

/** Deterministic uniform [0, 1): xorshift32 after a splitmix-style scramble of the seed. */
function seeded(seed: number): () => number {
  let s = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** One line of text: 1–3 words, sometimes a number, in lower, Capitalized or UPPER case. */
export function makeText(rand: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  for (;;) {
    const parts: string[] = [];
    const words = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < words; i++) parts.push(pick(WORDS));
    if (rand() < 0.5) parts.splice(Math.floor(rand() * (parts.length + 1)), 0, String(Math.floor(rand() ** 2 * 10000)));
    const c = rand();
    const text = parts.map((w) => (c < 0.5 ? w : c < 0.8 ? w[0].toUpperCase() + w.slice(1) : w.toUpperCase())).join(' ');
    if (text.length <= MAX_CHARS) return text;
  }
}

type CanvasModule = typeof Canvas;
let canvasModule: CanvasModule | undefined;

/** @napi-rs/canvas with the DejaVu faces registered; loaded on first use only. */
function loadCanvas(): CanvasModule {
  if (canvasModule) return canvasModule;
  const req = createRequire(__filename);
  // Names held in variables so bundlers leave these development-only packages out.
  const canvasPkg = '@napi-rs/canvas';
  const fontsPkg = 'dejavu-fonts-ttf';
  let mod: CanvasModule;
  try {
    mod = req(canvasPkg) as CanvasModule;
  } catch (e) {
    throw new QuantLensError('missing-dependency', `rendering text lines needs the development package ${canvasPkg} (npm install --save-dev ${canvasPkg}): ${(e as Error).message}`, { file: canvasPkg });
  }
  for (const [face, file] of Object.entries(FONT_FILES)) {
    let fontPath: string;
    try {
      fontPath = req.resolve(`${fontsPkg}/ttf/${file}`);
    } catch {
      throw new QuantLensError('missing-dependency', `rendering text lines needs the font package ${fontsPkg} (npm install --save-dev ${fontsPkg})`, { file: `${fontsPkg}/ttf/${file}` });
    }
    check(mod.GlobalFonts.registerFromPath(fontPath, face), 'font-failed', `could not register font ${face}`, { file: fontPath });
  }
  canvasModule = mod;
  return mod;
}

interface Style {
  face: FontFace;
  size: number;
  x: number;
  dy: number;
  ink: number;
  paper: number;
}

function makeStyle(rand: () => number, faces: readonly FontFace[]): Style {
  return {
    face: faces[Math.floor(rand() * faces.length)],
    size: 26 + Math.floor(rand() * 9),
    x: 2 + Math.floor(rand() * 15),
    dy: Math.floor(rand() * 5) - 2,
    ink: Math.floor(rand() * 70),
    paper: 235 + Math.floor(rand() * 21),
  };
}

/** Draws `text` on a canvas of the given height, as wide as the text needs plus the left offset and a margin. */
function render(cv: CanvasModule, text: string, style: Style, height: number): Rgba {
  const font = `${style.size}px ${style.face}`;
  const probe = cv.createCanvas(1, 1).getContext('2d');
  probe.font = font;
  const width = Math.ceil(style.x + probe.measureText(text).width + 4 + (style.x >> 1));
  const canvas = cv.createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = `rgb(${style.paper},${style.paper},${style.paper})`;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = `rgb(${style.ink},${style.ink},${style.ink})`;
  ctx.font = font;
  ctx.textBaseline = 'middle';
  ctx.fillText(text, style.x, height / 2 + style.dy);
  const img = ctx.getImageData(0, 0, width, height);
  return { width, height, data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength) };
}

/** 8-bit level → normalized value, rounded at each step as numpy does in float32: (v/255 − 0.5)/0.5. */
const LEVEL = Float32Array.from({ length: 256 }, (_, v) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5));

/**
 * PaddleOCR's recognizer preprocessing of one image into `out` (3 × height × width floats from `base`):
 * resize to height × min(width, ceil(height · w/h)) with OpenCV-style bilinear sampling (half-pixel centers,
 * edges clamped, result rounded to 8 bits as cv2 does for uint8 images), normalize to [−1, 1], pad right with 0.
 * Channels in BGR order. Returns the resized width.
 */
export function preprocessLine(img: Rgba, out: Float32Array, base: number, height: number, width: number): number {
  check(img.width >= 1 && img.height >= 1 && img.data.length === img.width * img.height * 4, 'bad-image', () => `expected ${img.width}×${img.height} RGBA pixels (${img.width * img.height * 4} bytes), found ${img.data.length} bytes`, { file: '<image>' });
  const ratio = img.width / img.height;
  const rw = Math.ceil(height * ratio) > width ? width : Math.ceil(height * ratio);
  const xs = taps(img.width, rw);
  const ys = taps(img.height, height);
  const plane = height * width;
  out.fill(0, base, base + 3 * plane);
  const src = img.data;
  const stride = img.width * 4;
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y] * stride;
    const r1 = ys.i1[y] * stride;
    const fy = ys.f[y];
    for (let x = 0; x < rw; x++) {
      const c0 = xs.i0[x] * 4;
      const c1 = xs.i1[x] * 4;
      const fx = xs.f[x];
      for (let ch = 0; ch < 3; ch++) {
        const top = src[r0 + c0 + ch] * (1 - fx) + src[r0 + c1 + ch] * fx;
        const bottom = src[r1 + c0 + ch] * (1 - fx) + src[r1 + c1 + ch] * fx;
        // RGBA channel ch goes to plane 2 − ch (BGR).
        out[base + (2 - ch) * plane + y * width + x] = LEVEL[Math.round(top * (1 - fy) + bottom * fy)];
      }
    }
  }
  return rw;
}

/** Source indices and weights for each destination pixel along one axis (cv2 INTER_LINEAR geometry). */
function taps(src: number, dst: number): { i0: Int32Array; i1: Int32Array; f: Float64Array } {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const f = new Float64Array(dst);
  const scale = src / dst;
  for (let d = 0; d < dst; d++) {
    const pos = (d + 0.5) * scale - 0.5;
    let s = Math.floor(pos);
    let w = pos - s;
    if (s < 0) [s, w] = [0, 0];
    if (s >= src - 1) [s, w] = [src - 1, 0];
    i0[d] = s;
    i1[d] = Math.min(s + 1, src - 1);
    f[d] = w;
  }
  return { i0, i1, f };
}

/** `count` rendered and preprocessed lines; the same options give the same bytes. */
export function generateTextLines(opts: TextLineOptions): TextLineSet {
  const { count, seed = 0, height = 48, width = 320 } = opts;
  const where = { file: '<text-line options>' };
  check(Number.isInteger(count) && count >= 1 && count <= MAX_LINES, 'bad-option', `count must be an integer in 1..${MAX_LINES}, found ${count}`, where);
  check(Number.isInteger(seed), 'bad-option', `seed must be an integer, found ${seed}`, where);
  for (const [k, v] of [['height', height], ['width', width]] as const) {
    check(Number.isInteger(v) && v >= 8 && v <= 4096, 'bad-option', `${k} must be an integer in 8..4096, found ${v}`, where);
  }
  const faces = opts.fonts ?? ALL_FACES;
  check(faces.length > 0 && faces.every((f) => Object.hasOwn(FONT_FILES, f)), 'bad-option', () => `fonts must be among ${ALL_FACES.join(', ')}, found [${faces.join(', ')}]`, where);
  const cv = loadCanvas();
  const rand = seeded(seed);
  const images = new Float32Array(count * 3 * height * width);
  const texts: string[] = [];
  const rendered: Rgba[] = [];
  for (let i = 0; i < count; i++) {
    const text = makeText(rand);
    const img = render(cv, text, makeStyle(rand, faces), height);
    preprocessLine(img, images, i * 3 * height * width, height, width);
    texts.push(text);
    if (opts.keepRendered) rendered.push(img);
  }
  return { images, dims: [count, 3, height, width], texts, seed, ...(opts.keepRendered ? { rendered } : {}) };
}

export interface WrittenLines {
  npy: string;
  labels: string;
  pngs: string[];
}

/**
 * Writes `lines.npy` (the preprocessed batch, for `--calib <dir>/lines.npy`), `labels.json` (texts in the same
 * order) and, when the set kept its renderings, `png/line-NNNN.png`. Files go to temp names, then are renamed.
 */
export async function writeTextLines(dir: string, set: TextLineSet): Promise<WrittenLines> {
  await fsp.mkdir(dir, { recursive: true });
  const npy = path.join(dir, 'lines.npy');
  const labels = path.join(dir, 'labels.json');
  await atomicWrite(npy, writeNpy({ dtype: 'float32', dims: [...set.dims], data: set.images }));
  const meta = {
    generator: 'quantlens textlines',
    seed: set.seed,
    input: 'lines.npy',
    shape: set.dims,
    preprocess: 'PaddleOCR rec: resize to height, keep aspect, (x/255 - 0.5)/0.5, BGR CHW, right-pad 0',
    texts: set.texts,
  };
  await atomicWrite(labels, new TextEncoder().encode(`${JSON.stringify(meta, null, 2)}\n`));
  const pngs: string[] = [];
  if (set.rendered) {
    const pngDir = path.join(dir, 'png');
    await fsp.mkdir(pngDir, { recursive: true });
    for (const [i, img] of set.rendered.entries()) {
      const file = path.join(pngDir, `line-${String(i).padStart(4, '0')}.png`);
      const png = PNG.sync.write({ width: img.width, height: img.height, data: Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength) } as PNG);
      await atomicWrite(file, png);
      pngs.push(file);
    }
  }
  return { npy, labels, pngs };
}

async function atomicWrite(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, bytes);
  await fsp.rename(tmp, file);
}
