// Plan diagnostics that need I/O beyond the model header, published in the second pass (after the fast ones):
// calibration data that does not fit the model's inputs, and a model without analysis yet (an information
// diagnostic: predicted errors appear once it is analyzed — diagnostics never wait for it).
import { promises as fsp } from 'node:fs';
import { loadCalibration } from '../calib';
import type { ModelInput } from '../calib/types';
import { QuantLensError } from '../formats/errors';
import type { PlanDiagnostic } from '../plan';
import type { PlanState } from '../plan/service';

/** One check per (calibration path, its mtime, model stamp): a keystroke elsewhere in the plan reads nothing. */
const checked = new Map<string, Promise<string | undefined>>();

async function calibrationProblem(calib: string, model: string, modelStamp: string, inputs: ModelInput[]): Promise<string | undefined> {
  const st = await fsp.stat(calib).catch(() => undefined);
  if (!st) return undefined; // a missing path is already reported by the plan checks
  const key = `${calib}|${st.mtimeMs}|${model}|${modelStamp}`;
  let p = checked.get(key);
  if (!p) {
    p = loadCalibration(calib, inputs, { maxSamples: 1 }).then(
      () => undefined,
      (e: unknown) => (e instanceof QuantLensError ? e.message : `calibration data cannot be read: ${(e as Error).message}`),
    );
    checked.set(key, p);
  }
  return p;
}

export async function dataDiagnostics(state: PlanState): Promise<PlanDiagnostic[]> {
  const out: PlanDiagnostic[] = [];
  const plan = state.analysis.plan;
  const m = state.model;
  if (!m || m.error || !m.tensors || !plan.model) return out;
  if (!m.report) {
    out.push({
      range: plan.model.range,
      severity: 'information',
      code: 'not-analyzed',
      message: 'not analyzed yet: run Analyze (the lens above) or `quantlens analyze` on this model to see each rule\'s predicted error',
    });
  }
  const calib = plan.calibration;
  if (calib && m.format === 'onnx' && m.inputs) {
    const problem = await calibrationProblem(calib.value.path, m.path, m.stamp, m.inputs);
    if (problem) out.push({ range: calib.range, severity: 'error', code: 'calibration-mismatch', message: problem });
  } else if (calib && m.format && m.format !== 'onnx') {
    out.push({
      range: calib.range,
      severity: 'warning',
      code: 'calibration-unused',
      message: `calibration data runs ONNX models; this model is ${m.format}: its Hessian-weighted scores come from a llama.cpp imatrix (quantlens analyze --imatrix)`,
    });
  }
  return out;
}
