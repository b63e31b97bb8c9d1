// Target backends (`targets:`): what the plan asks of a backend that it cannot run, taken from the exporter
// of that backend's dialect (the same warnings `quantlens export` prints), as diagnostics at the rule.
import { exportWarnings, type DialectId } from '../export';
import type { PlanDiagnostic, Target } from '../plan/schema';
import type { PlanState } from '../plan/service';

/** The export dialect that deploys to each target (vllm loads the llm-compressor format). */
const DIALECT: Record<Target, DialectId> = {
  'llama.cpp': 'llama.cpp',
  onnxruntime: 'ort-matmulnbits',
  gptqmodel: 'gptqmodel',
  hqq: 'hqq',
  'llm-compressor': 'llm-compressor',
  modelopt: 'modelopt',
  vllm: 'llm-compressor',
};

export async function targetDiagnostics(state: PlanState): Promise<PlanDiagnostic[]> {
  const targets = state.analysis.plan.targets?.value ?? [];
  const m = state.model;
  if (!targets.length || !m?.infos || !m.format || !state.resolved) return [];
  const out: PlanDiagnostic[] = [];
  for (const t of targets) {
    const warnings = await exportWarnings(state.text, state.planPath, DIALECT[t.value], { format: m.format, path: m.path, tensors: m.infos });
    for (const w of warnings) out.push({ range: w.range ?? t.range, severity: 'warning', code: 'target-format', message: `${t.value}: ${w.message}` });
  }
  return out;
}
