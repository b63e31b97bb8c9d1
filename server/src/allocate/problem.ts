// The stable `quantlens allocate --problem problem.json --budget-bits B` contract.
//
// problem.json:
//   {
//     "layers": [ { "name": "blk.0.attn_q", "params": 16777216,
//                   "minBits": 3, "maxBits": 8,                          (optional)
//                   "options": [ { "id": "q4_k", "bits": 4.5, "error": 0.0123,
//                                  "latency": 1.7, "memory": 9437184 } ] } ],   (latency/memory optional)
//     "groups": [ ["blk.0.attn_q", "blk.0.attn_k", "blk.0.attn_v"] ],      (optional; members pick one id)
//     "limits": { "latency": 250, "memory": 4.2e9 }                       (optional second budgets)
//   }
// `bits` is bits per weight including scales/zeros/index overhead. `error` is the layer's TOTAL predicted
// error for that option (already summed over the layer, not per weight): the objective is Σ error.
// `latency`/`memory` are layer totals too; each limit present bounds their sum (and then every option
// must give that field). Group members must offer the same option ids. Unknown fields are ignored.
//
// Budget: Σ params_l · bits_l ≤ B · Σ params_l. Output (JSON):
//   { feasible, minAvgBits, avgBits, totalError, choice: { layer: optionId },
//     solver, optimal, gap, lowerBound?, binding?, discretization? }
// An impossible budget is a result, not an error: { feasible: false, minAvgBits, binding: [...] }.
import { promises as fsp } from 'node:fs';
import { check, LIMITS, QuantLensError } from '../formats/errors';
import { solveMip, type MipOptions } from './mip';
import { Allocator, type AllocatorOptions, type SolverKind } from './pareto';
import { RESOURCES, type AllocLayer, type AllocOption, type AllocProblem, type AllocResult } from './types';

export interface SolveOptions extends AllocatorOptions, MipOptions {
  /** File name used in error locations. */
  file?: string;
  /** auto: MIP when limits are set, else the exact DP. */
  solver?: SolverKind | 'mip';
}

const MAX_OPTIONS = 65535; // option indices are stored as uint16

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v)?.slice(0, 80) ?? String(v));

export function parseProblem(input: unknown, file = 'problem.json'): AllocProblem {
  let root = input;
  if (typeof input === 'string') {
    try {
      root = JSON.parse(input);
    } catch (e) {
      const m = /position (\d+)/.exec(String((e as Error).message));
      throw new QuantLensError('bad-json', `invalid JSON: ${(e as Error).message}`, { file, offset: m ? Number(m[1]) : undefined });
    }
  }
  const fail = (path: string, expected: string, found: unknown): never => {
    throw new QuantLensError('bad-problem', `${path}: expected ${expected}, found ${show(found)}`, { file });
  };
  const num = (v: unknown, path: string, what: string, ok: (x: number) => boolean): number =>
    typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : fail(path, what, v);
  const optNum = (o: Json, key: string, path: string, what: string, ok: (x: number) => boolean): number | undefined =>
    o[key] === undefined ? undefined : num(o[key], `${path}.${key}`, what, ok);
  if (!isObj(root)) return fail('(root)', 'an object with "layers"', root);
  const rawLayers = root.layers;
  if (!Array.isArray(rawLayers) || rawLayers.length === 0) return fail('layers', 'a non-empty array', rawLayers);
  check(rawLayers.length <= LIMITS.maxTensors, 'bad-problem', `layers: ${rawLayers.length} layers exceed the limit ${LIMITS.maxTensors}`, { file });

  const byName = new Map<string, number>();
  const layers: AllocLayer[] = rawLayers.map((l: unknown, i): AllocLayer => {
    const at = `layers[${i}]`;
    if (!isObj(l)) return fail(at, 'an object', l);
    const name = typeof l.name === 'string' && l.name !== '' ? l.name : fail(`${at}.name`, 'a non-empty string', l.name);
    if (byName.has(name)) fail(`${at}.name`, `a unique layer name ("${name}" is already layers[${byName.get(name)}])`, name);
    byName.set(name, i);
    const params = num(l.params, `${at}.params`, 'a positive integer number of weights', (x) => Number.isSafeInteger(x) && x > 0);
    const rawOpts = l.options;
    if (!Array.isArray(rawOpts) || rawOpts.length === 0) return fail(`${at}.options`, 'a non-empty array of options', rawOpts);
    if (rawOpts.length > MAX_OPTIONS) fail(`${at}.options`, `at most ${MAX_OPTIONS} options`, `${rawOpts.length} options`);
    const ids = new Set<string>();
    const options = rawOpts.map((o: unknown, j): AllocOption => {
      const p = `${at}.options[${j}]`;
      if (!isObj(o)) return fail(p, 'an object', o);
      const id = typeof o.id === 'string' && o.id !== '' ? o.id : fail(`${p}.id`, 'a non-empty string', o.id);
      if (ids.has(id)) fail(`${p}.id`, `an option id unique within ${name}`, id);
      ids.add(id);
      const opt: AllocOption = {
        id,
        bits: num(o.bits, `${p}.bits`, 'a positive number', (x) => x > 0),
        error: num(o.error, `${p}.error`, 'a finite number (the layer total)', () => true),
      };
      for (const r of RESOURCES) {
        const v = optNum(o, r, p, 'a non-negative number', (x) => x >= 0);
        if (v !== undefined) opt[r] = v;
      }
      return opt;
    });
    const layer: AllocLayer = { name, params, options };
    const minBits = optNum(l, 'minBits', at, 'a positive number', (x) => x > 0);
    const maxBits = optNum(l, 'maxBits', at, 'a positive number', (x) => x > 0);
    if (minBits !== undefined) layer.minBits = minBits;
    if (maxBits !== undefined) layer.maxBits = maxBits;
    if (minBits !== undefined && maxBits !== undefined && maxBits < minBits) fail(`${at}.maxBits`, `a number ≥ minBits ${minBits}`, maxBits);
    return layer;
  });

  const groups: string[][] = [];
  if (root.groups !== undefined) {
    if (!Array.isArray(root.groups)) fail('groups', 'an array of arrays of layer names', root.groups);
    (root.groups as unknown[]).forEach((g, gi) => {
      if (!Array.isArray(g) || g.length === 0) return fail(`groups[${gi}]`, 'a non-empty array of layer names', g);
      const names = g.map((n: unknown, k) => {
        if (typeof n !== 'string') return fail(`groups[${gi}][${k}]`, 'a layer name', n);
        if (!byName.has(n)) return fail(`groups[${gi}][${k}]`, 'the name of a layer in "layers"', n);
        return n;
      });
      const first = layers[byName.get(names[0])!];
      const key = (l: AllocLayer) => l.options.map((o) => o.id).sort().join('\u0000');
      names.forEach((n, k) => {
        const l = layers[byName.get(n)!];
        if (key(l) !== key(first)) {
          fail(`groups[${gi}][${k}]`, `a layer with the same option ids as ${first.name} (${first.options.map((o) => o.id).join(', ')})`, `${n} with ${l.options.map((o) => o.id).join(', ')}`);
        }
      });
      groups.push(names);
    });
  }

  const limits: AllocProblem['limits'] = {};
  if (root.limits !== undefined) {
    if (!isObj(root.limits)) fail('limits', 'an object like { "latency": 250 }', root.limits);
    const lim = root.limits as Json;
    for (const key of Object.keys(lim)) {
      if (!(RESOURCES as readonly string[]).includes(key)) fail(`limits.${key}`, `one of ${RESOURCES.join(', ')}`, key);
    }
    for (const r of RESOURCES) {
      const v = optNum(lim, r, 'limits', 'a non-negative number', (x) => x >= 0);
      if (v === undefined) continue;
      limits[r] = v;
      layers.forEach((l, i) =>
        l.options.forEach((o, j) => {
          if (o[r] === undefined) fail(`layers[${i}].options[${j}].${r}`, `a number (limits.${r} is set)`, undefined);
        }),
      );
    }
  }
  return { layers, groups, limits };
}

/** Read and validate a problem file (size-checked before reading). */
export async function readProblemFile(file: string): Promise<AllocProblem> {
  const st = await fsp.stat(file);
  check(st.size <= LIMITS.maxHeaderBytes, 'too-large', `problem file of ${st.size} bytes exceeds ${LIMITS.maxHeaderBytes}`, { file });
  return parseProblem(await fsp.readFile(file, 'utf8'), file);
}

/** `quantlens allocate`: parse (text or parsed JSON), validate, solve for one budget. */
export async function solveProblem(problemJson: unknown, budgetAvgBits: number, opts: SolveOptions = {}): Promise<AllocResult> {
  const file = opts.file ?? 'problem.json';
  const problem = parseProblem(problemJson, file);
  check(
    typeof budgetAvgBits === 'number' && Number.isFinite(budgetAvgBits) && budgetAvgBits > 0,
    'bad-budget',
    () => `--budget-bits: expected a positive number of bits per weight, found ${show(budgetAvgBits)}`,
    { file },
  );
  const hasLimits = Object.keys(problem.limits).length > 0;
  const solver = opts.solver ?? 'auto';
  if (solver === 'mip' || (solver === 'auto' && hasLimits)) return solveMip(problem, budgetAvgBits, opts);
  check(!hasLimits, 'bad-solver', `solver "${solver}" cannot honour limits (${Object.keys(problem.limits).join(', ')}); use "mip" or "auto"`, { file });
  return Allocator.create(problem, { ...opts, precomputeFrontier: false }).solve(budgetAvgBits, solver);
}
