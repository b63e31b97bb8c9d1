// Errors of the gradient-graph builder: callers catch GradientUnsupportedError to fall back to the Hessian
// and empirical methods for that model.
import { QuantLensError } from '../formats/errors';

/** The model uses an op (or an op variant) on a weight→loss path that has no gradient rule here. */
export class GradientUnsupportedError extends QuantLensError {
  constructor(
    readonly opType: string,
    readonly nodeName: string,
    why = 'has no gradient rule',
  ) {
    super('gradient-unsupported', `op ${opType} (node '${nodeName}') ${why}; gradient methods cannot run on this model`, {
      file: '<model graph>',
      tensor: nodeName,
    });
    this.name = 'GradientUnsupportedError';
  }
}

/** The request itself is wrong (unknown weight, missing output, non-float weight). */
export function gradientInputError(detail: string, tensor?: string): QuantLensError {
  return new QuantLensError('gradient-input', detail, { file: '<model graph>', ...(tensor !== undefined ? { tensor } : {}) });
}
