// What a resolved plan costs and predicts: storage bits per rule, defaults and total, and the predicted error
// from a cached data-free analysis. Bits are exact (the format's storageBits for the tensor's shape and layout,
// scales and zero points included); a rule's predicted error is Σ‖ΔW‖² / Σ‖W‖² over its analyzed tensors, so
// rules and totals combine the same way the analysis totals do.
//
// Everything per tensor lives in typed arrays cached with the TensorIndex (bits per shape class and format,
// errors per format), so a keystroke costs one pass over the owner array.
import type { AnalysisReport } from '../analysis/types';
import { getFormat } from '../quant/registry';
import type { TensorAssignment } from './resolve';
import type { PlanTensor, TensorIndex } from './match';

/** Tensors with one shape and layout cost the same bits in every format. */
interface ShapeClasses {
  /** Class per tensor id. */
  cls: Int32Array;
  /** A representative tensor per class. */
  reps: PlanTensor[];
  /** Bits per class, per format id (NaN: the format id is unknown). */
  bits: Map<string, Float64Array>;
  /** Bits of each tensor kept in its original precision. */
  original: Float64Array;
}

const CLASSES = new WeakMap<TensorIndex, ShapeClasses>();

function classesOf(index: TensorIndex): ShapeClasses {
  let c = CLASSES.get(index);
  if (c) return c;
  const ids = new Map<string, number>();
  const reps: PlanTensor[] = [];
  const n = index.tensors.length;
  const cls = new Int32Array(n);
  const original = new Float64Array(n);
  for (let id = 0; id < n; id++) {
    const t = index.tensors[id];
    const key = t.shape ? `${t.shape.join('x')}/${t.layout ?? 'out_in'}` : `p${t.params}`;
    let k = ids.get(key);
    if (k === undefined) {
      ids.set(key, (k = reps.length));
      reps.push(t);
    }
    cls[id] = k;
    original[id] = t.bytes !== undefined ? t.bytes * 8 : t.params * 16;
  }
  c = { cls, reps, bits: new Map(), original };
  CLASSES.set(index, c);
  return c;
}

/** Storage bits of one tensor shaped like `t` in format `id` (NaN for an unknown id). */
function tensorBits(t: PlanTensor, id: string): number {
  let f;
  try {
    f = getFormat(id);
  } catch {
    return NaN;
  }
  try {
    // Without a shape (tensor lists built by hand), the 4096² rate is the best estimate there is.
    return t.shape ? f.storageBits(t.shape, t.layout ?? 'out_in') : f.bitsPerWeight([4096, 4096], 'out_in') * t.params;
  } catch {
    return NaN;
  }
}

/** Bits per shape class in format `id`. */
export function classBits(index: TensorIndex, id: string): Float64Array {
  const c = classesOf(index);
  let b = c.bits.get(id);
  if (!b) c.bits.set(id, (b = Float64Array.from(c.reps, (t) => tensorBits(t, id))));
  return b;
}

/** Storage bits of tensor `id` under `format` (null: original precision). */
export function bitsOf(index: TensorIndex, id: number, format: string | null): number {
  const c = classesOf(index);
  return format === null ? c.original[id] : classBits(index, format)[c.cls[id]];
}

export function shapeClass(index: TensorIndex): Int32Array {
  return classesOf(index).cls;
}

/** Σw² and ‖ΔW‖² per tensor id from one analysis report (NaN where the report has no entry). */
interface ErrorTable {
  sumSq: Float64Array;
  sq: Map<string, Float64Array>;
  report: AnalysisReport;
}

const ERRORS = new WeakMap<TensorIndex, ErrorTable>();

function errorTable(index: TensorIndex, report: AnalysisReport): ErrorTable {
  let e = ERRORS.get(index);
  if (e?.report === report) return e;
  const sumSq = new Float64Array(index.tensors.length).fill(NaN);
  for (const l of report.layers) {
    const id = index.idOf(l.name);
    if (id !== undefined) sumSq[id] = l.sumSq;
  }
  e = { sumSq, sq: new Map(), report };
  ERRORS.set(index, e);
  return e;
}

/** ‖ΔW‖² per tensor id for `format` (0 for original precision; NaN where not analyzed in that format). */
export function squaredErrors(index: TensorIndex, report: AnalysisReport, format: string | null): Float64Array {
  const e = errorTable(index, report);
  const key = format ?? '';
  let sq = e.sq.get(key);
  if (sq) return sq;
  sq = new Float64Array(index.tensors.length).fill(NaN);
  for (const l of report.layers) {
    const id = index.idOf(l.name);
    if (id === undefined) continue;
    const rel = format === null ? 0 : l.errors[format]?.relMse;
    if (rel !== undefined && Number.isFinite(rel)) sq[id] = rel * l.sumSq;
  }
  e.sq.set(key, sq);
  return sq;
}

export function sumSquares(index: TensorIndex, report: AnalysisReport): Float64Array {
  return errorTable(index, report).sumSq;
}

export interface Cost {
  tensors: number;
  params: number;
  /** Storage bits (NaN when a format id is unknown). */
  bits: number;
  /** Predicted Σ‖ΔW‖² / Σ‖W‖² over the analyzed tensors; undefined when none is analyzed (or no report). */
  relMse?: number;
  /** Parameters of the tensors the prediction covers. */
  analyzedParams: number;
}

export interface PlanCost {
  /** Slot 0: defaults; slot k + 1: plan.rules[k]. */
  slots: Cost[];
  /** Every analyzable tensor. */
  total: Cost;
  /** Bytes of the tensors the plan cannot quantize (counted in `bytes` as they are). */
  fixedBytes: number;
  /** Total bytes of the quantized checkpoint: ⌈bits / 8⌉ + fixedBytes. */
  bytes: number;
  /** bits / params over the analyzable tensors. */
  avgBits: number;
  /** Whether a report was used. */
  analyzed: boolean;
}

const empty = (): Cost & { sq: number; ss: number } => ({ tensors: 0, params: 0, bits: 0, analyzedParams: 0, sq: 0, ss: 0 });

/** Cost of a resolution: `owner[id] + 1` is the slot of tensor id, `decisions[slot]` its format. */
export function planCost(
  index: TensorIndex,
  owner: Int32Array,
  decisions: readonly TensorAssignment[],
  fixedBytes: number,
  report?: AnalysisReport,
): PlanCost {
  const acc = decisions.map(empty);
  const { cls, original } = classesOf(index);
  const bitsBySlot = decisions.map((d) => (d.format === null ? undefined : classBits(index, d.format)));
  const sqBySlot = report ? decisions.map((d) => squaredErrors(index, report, d.format)) : undefined;
  const sumSq = report ? sumSquares(index, report) : undefined;
  const params = index.params;
  for (let id = 0; id < owner.length; id++) {
    const slot = owner[id] + 1;
    const a = acc[slot];
    a.tensors++;
    a.params += params[id];
    const b = bitsBySlot[slot];
    a.bits += b ? b[cls[id]] : original[id];
    if (sqBySlot) {
      const sq = sqBySlot[slot][id];
      if (sq === sq) {
        a.sq += sq;
        a.ss += sumSq![id];
        a.analyzedParams += params[id];
      }
    }
  }
  const total = empty();
  for (const a of acc) {
    total.tensors += a.tensors;
    total.params += a.params;
    total.bits += a.bits;
    total.sq += a.sq;
    total.ss += a.ss;
    total.analyzedParams += a.analyzedParams;
  }
  const finish = ({ sq, ss, ...c }: ReturnType<typeof empty>): Cost => (c.analyzedParams > 0 ? { ...c, relMse: ss > 0 ? sq / ss : 0 } : c);
  return {
    slots: acc.map(finish),
    total: finish(total),
    fixedBytes,
    bytes: Math.ceil(total.bits / 8) + fixedBytes,
    avgBits: total.params > 0 ? total.bits / total.params : 0,
    analyzed: report !== undefined,
  };
}
