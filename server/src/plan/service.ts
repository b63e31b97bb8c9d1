// Plan analysis for the language server: loads the plan's model header (cached by file identity) so rules
// resolve against real tensor names, then runs the pure plan engine. No LSP types here.
import { promises as fsp } from 'node:fs';
import { openCheckpoint } from '../formats/registry';
import { formatIds, getFormat } from '../quant/registry';
import { analyzePlan, parsePlan, pathExists, type PlanAnalysis, type PlanTensor } from './index';

const catalog = {
  isFormat(id: string): boolean {
    try {
      getFormat(id);
      return true;
    } catch {
      return false;
    }
  },
  formatIds,
};

interface ModelEntry {
  /** size + mtime: a changed checkpoint is re-read. */
  stamp: string;
  tensors?: PlanTensor[];
  error?: string;
}

export class PlanService {
  private readonly models = new Map<string, Promise<ModelEntry>>();

  /** Parse, validate and resolve `text` (the plan at `planPath`). Never throws. */
  async analyze(text: string, planPath: string): Promise<PlanAnalysis> {
    const modelPath = parsePlan(text, planPath).plan.model?.value.path;
    const model = modelPath ? await this.model(modelPath) : undefined;
    return analyzePlan(text, planPath, {
      ...catalog,
      tensors: model?.tensors,
      // The model's problem is the reader's located message; other paths only need to exist.
      checkPath: (p, key) => (key === 'model' && p === modelPath && model?.error ? model.error : pathExists(p, key)),
    });
  }

  private async model(file: string): Promise<ModelEntry> {
    const stamp = await fsp.stat(file).then((s) => `${s.size}:${s.mtimeMs}`, () => 'missing');
    const cached = this.models.get(file);
    if (cached && (await cached).stamp === stamp) return cached;
    const entry = (async (): Promise<ModelEntry> => {
      if (stamp === 'missing') return { stamp };
      try {
        const ck = await openCheckpoint(file);
        await ck.close();
        return { stamp, tensors: ck.tensors.map((t) => ({ name: t.name, layer: t.layer, params: t.params, analyzable: t.analyzable })) };
      } catch (e) {
        return { stamp, error: `model cannot be read: ${(e as Error).message}` };
      }
    })();
    this.models.set(file, entry);
    return entry;
  }
}
