// `quantlens export --to <dialect> plan.quant.yaml` and `quantlens import --from <dialect> <file> --model <path>`:
// outputs go through the shared writer (temp file + rename): never over the plan or the model, and never over an
// existing file without --force.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { QuantLensError } from '../formats/errors';
import { DIALECT_IDS, exportPlan, IMPORT_DIALECTS, importPlanDetailed } from '../export/index';
import { quoteArg } from '../export/llamacpp';
import { writeOutputFile, writeOutputFiles } from '../output';

async function isDir(p: string): Promise<boolean> {
  return fsp.stat(p).then((s) => s.isDirectory(), () => false);
}

interface ExportFlags {
  to?: string;
  out?: string;
  force?: boolean;
}

interface ImportFlags {
  from?: string;
  model?: string;
  out?: string;
  default?: string;
  force?: boolean;
}

/** Where the commands print (tests pass their own). */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

const STDIO: CommandIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export function registerExport(program: Command, io: CommandIo = STDIO): void {
  program
    .command('export')
    .description('write the plan in the dialect of a deployment tool (new files only; prints their paths)')
    .argument('<plan>', 'plan file (*.quant.yaml)')
    .requiredOption('--to <dialect>', DIALECT_IDS.join(' | '))
    .option('--out <file|dir>', 'output file, or folder for the default names (default: beside the plan)')
    .option('--force', 'replace existing output files')
    .action(async (plan: string, flags: ExportFlags) => {
      const result = await exportPlan(path.resolve(plan), flags.to!);
      for (const w of result.warnings) {
        const at = w.range ? `:${w.range.start.line + 1}:${w.range.start.character + 1}` : '';
        io.err(`quantlens: warning: ${path.resolve(plan)}${at}: ${w.message}\n`);
      }
      const outDir = flags.out && !(await isDir(flags.out)) && !flags.out.endsWith(path.sep) ? undefined : path.resolve(flags.out ?? path.dirname(path.resolve(plan)));
      if (!outDir && result.files.length > 1) {
        throw new QuantLensError('bad-option', `${flags.to} writes ${result.files.length} files: --out must be a folder`, { file: '--out' });
      }
      const targets = result.files.map((f) => (outDir ? path.join(outDir, f.name) : path.resolve(flags.out!)));
      await writeOutputFiles(result.files.map((f, i) => ({ target: targets[i], data: f.text, opts: { overwrite: flags.force ?? false, inputs: result.inputs } })));
      for (const t of targets) io.out(`${t}\n`);
      if (result.commandLine) io.out(`${result.commandLine.replace('{file}', quoteArg(targets[0]))}\n`);
    });

  program
    .command('import')
    .description('turn a deployment tool config into a plan (llama.cpp tensor-type file, GPTQModel dynamic config)')
    .argument('<file>', 'the config to import')
    .requiredOption('--from <dialect>', IMPORT_DIALECTS.join(' | '))
    .requiredOption('--model <path>', 'the checkpoint the config is for')
    .option('--out <file>', 'write the plan here (default: print it)')
    .option('--default <type>', "llama.cpp: llama-quantize's type argument (GGML type or format id) for tensors no line matches")
    .option('--force', 'replace an existing --out file')
    .action(async (file: string, flags: ImportFlags) => {
      const out = flags.out && path.resolve(flags.out);
      const { text, inputs } = await importPlanDetailed(file, flags.from!, { model: flags.model!, planPath: out, defaultType: flags.default });
      if (!out) {
        io.out(text);
        return;
      }
      await writeOutputFile(out, text, { overwrite: flags.force ?? false, inputs });
      io.out(`${out}\n`);
    });
}
