// `quantlens allocate --problem problem.json --budget-bits B`: the solver's stable contract (README).
// `quantlens allocate <model> --budget …`: formats per layer from the model's analysis (allocate-model.ts).
import type { Command } from 'commander';
import { allocateModel, formatAllocation, type AllocateModelFlags } from './allocate-model';
import { QuantLensError } from '../formats/errors';
import { readProblemFile, solveProblem } from '../allocate/problem';
import { formatTable } from '../report/table';

interface AllocateOptions extends AllocateModelFlags {
  problem?: string;
  budgetBits?: string;
  solver?: 'auto' | 'dp' | 'lagrange' | 'mip';
  json?: boolean;
}

export function registerAllocate(program: Command): void {
  program
    .command('allocate')
    .description('choose one option (format) per layer minimizing total predicted error under an average-bits budget')
    .argument('[model]', 'model to allocate from its analysis (use --problem for a given instance)')
    .option('--problem <file>', 'problem.json: {layers: [{name, params, options: [{id, bits, error}]}], groups}')
    .option('--budget-bits <bits>', 'budget as average bits per weight (incl. scales and indexes)')
    .option('--budget <bits|size>', 'with <model>: average bits per weight (4.5) or a size (3.9GB, 512MiB)')
    .option('--method <id>', 'with <model>: layer scores datafree | hessian | fisher | gwq | empirical', 'datafree')
    .option('--formats <ids>', 'with <model>: candidate formats, comma-separated (see `quantlens formats`)')
    .option('--plan <file>', 'with <model>: write the allocation as a new *.quant.yaml plan')
    .option('--force', 'overwrite an existing --plan file')
    .option('--no-groups', 'with <model>: let fused groups (q/k/v, gate/up, experts) take different formats')
    .option('--no-cache', 'with <model>: neither read nor write the analysis cache')
    .option('--solver <kind>', 'auto | dp | lagrange | mip', 'auto')
    .option('--json', 'print the result as JSON')
    .action(async (model: string | undefined, opts: AllocateOptions) => {
      if (!opts.problem) {
        if (model === undefined) throw new QuantLensError('missing-model', 'pass a model (allocate <model> --budget 4.5) or --problem problem.json', { file: '(no model)' });
        const a = await allocateModel(model, opts);
        process.stdout.write(opts.json ? `${JSON.stringify(a, null, 1)}\n` : formatAllocation(a));
        return;
      }
      const budget = Number(opts.budgetBits);
      if (opts.budgetBits === undefined || !Number.isFinite(budget) || budget <= 0) {
        throw new QuantLensError('bad-budget', `--budget-bits: expected a positive number of bits per weight, found ${opts.budgetBits ?? 'nothing'}`, {
          file: opts.problem,
        });
      }
      const problem = await readProblemFile(opts.problem);
      const result = await solveProblem(problem, budget, { file: opts.problem, solver: opts.solver });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
        return;
      }
      const head = result.feasible
        ? `feasible · avg ${result.avgBits?.toFixed(4)} bits/weight (budget ${budget}) · total error ${result.totalError} · ${result.solver}${result.optimal ? ', optimal' : `, gap ${result.gap}`}`
        : `infeasible: the minimum achievable is ${result.minAvgBits ?? '(none)'} bits/weight (budget ${budget})`;
      process.stdout.write(`${head}\n`);
      if (result.feasible) {
        const rows = Object.entries(result.choice ?? {}).map(([layer, id]) => [layer, String(id)]);
        process.stdout.write(`\n${formatTable(['layer', 'option'], rows)}`);
      } else if (result.binding?.length) {
        process.stdout.write(`binding: ${result.binding.map((b) => JSON.stringify(b)).join(', ')}\n`);
      }
    });
}
