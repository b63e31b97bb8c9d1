// The runnable-model side of `quantlens ratios`: a ModelRunner's weights as a WeightSource, and a LossProbe whose
// loss is the relative output error against the full-precision model on the calibration batches,
//   ΔL(perturbation) = Σ_batches Σ_outputs ‖y − y₀‖² / Σ_batches Σ_outputs ‖y₀‖²,
// zero with zero gradient at the unperturbed weights, so the quadratic model of interactions.ts is its
// second-order (Gauss–Newton) expansion.
import type { Feeds } from '../calib/types';
import { check, QuantLensError } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import type { LossProbe } from './interactions';
import type { WeightSource } from './ratios-run';

/** What the probe needs of a ModelRunner. */
export interface Runnable {
  readonly file: string;
  readonly weights: readonly { name: string; shape: number[]; layout: WeightLayout }[];
  read(name: string): Float32Array;
  run(feeds: Feeds, overrides?: ReadonlyMap<string, Float32Array>): Promise<Record<string, Float32Array>>;
  close(): Promise<void>;
}

export function runnerSource(r: Runnable): WeightSource {
  return {
    path: r.file,
    layers: r.weights.map((w) => ({ name: w.name, shape: w.shape, layout: w.layout })),
    read: async (name) => r.read(name),
    close: () => r.close(),
  };
}

export class OutputErrorProbe implements LossProbe {
  private reference: Record<string, Float32Array>[] = [];
  private den = 0;

  constructor(
    private readonly runner: Runnable,
    private readonly batches: readonly Feeds[],
  ) {
    check(batches.length > 0, 'no-calibration', 'the loss probe needs at least one calibration batch', { file: runner.file });
  }

  async baseline(): Promise<void> {
    this.reference = [];
    this.den = 0;
    for (const feeds of this.batches) {
      const out = await this.runner.run(feeds);
      this.reference.push(out);
      for (const [name, y] of Object.entries(out)) {
        for (let i = 0; i < y.length; i++) {
          if (!Number.isFinite(y[i])) throw new QuantLensError('non-finite-output', `the full-precision model outputs ${y[i]} at index ${i}`, { file: this.runner.file, tensor: name });
          this.den += y[i] * y[i];
        }
      }
    }
    check(this.den > 0, 'zero-output', 'the full-precision outputs are all zero on the calibration data: no relative error can be measured', { file: this.runner.file });
  }

  async deltaLoss(perturb: Map<string, Float32Array>): Promise<number> {
    check(this.reference.length === this.batches.length, 'internal', 'deltaLoss before baseline', { file: this.runner.file });
    let num = 0;
    for (const [b, feeds] of this.batches.entries()) {
      const out = await this.runner.run(feeds, perturb);
      for (const [name, y0] of Object.entries(this.reference[b])) {
        const y = out[name];
        for (let i = 0; i < y0.length; i++) {
          const d = y[i] - y0[i];
          num += d * d;
        }
      }
    }
    // A perturbation that drives an output to NaN/∞ is an infinite loss, not a crash.
    return Number.isFinite(num) ? num / this.den : Infinity;
  }
}
