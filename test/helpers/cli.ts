// Run the built CLI as a user would: a real process, its exit code and output.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const CLI = path.resolve('dist/cli.js');

export function runCli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
