// Which model a plan is about, by path alone (no vscode import, so it is unit-tested).
import * as path from 'node:path';

/**
 * Whether a plan's `model:` (a checkpoint file or a folder of shards) names the explorer's model: the same path, a
 * shard inside the model's folder, or (for a file model) the folder holding it.
 */
export function namesModel(planModel: string, model: { path: string; kind: 'folder' | 'file' | 'config' }): boolean {
  const m = path.resolve(model.path);
  const p = path.resolve(planModel);
  return p === m || (model.kind === 'folder' && path.dirname(p) === m) || (model.kind !== 'folder' && p === path.dirname(m));
}
