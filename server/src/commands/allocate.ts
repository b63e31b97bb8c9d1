// `quantlens allocate --problem problem.json --budget-bits B`: the solver's stable contract (README).
import type { Command } from 'commander';
import { QuantLensError } from '../formats/errors';
import { readProblemFile, solveProblem } from '../allocate/problem';
import { formatTable } from '../report/table';

interface AllocateOptions {
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
    .option('--solver <kind>', 'auto | dp | lagrange | mip', 'auto')
    .option('--json', 'print the result as JSON')
    .action(async (model: string | undefined, opts: AllocateOptions) => {
      if (!opts.problem) {
        throw new QuantLensError(
          'not-available',
          'allocating directly from a model is not available in this build yet: pass --problem problem.json',
          { file: model ?? '(no model)' },
        );
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
