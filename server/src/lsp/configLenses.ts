// Code lenses on Hugging Face `config.json` and GPTQ-style `quantize_config.json`: what the fields imply for
// this model (parameters, size at the plan's or a default format, experts), the format a quantization_config
// declares, and whether the checkpoint beside the file holds weights quantized that way.
import type { CodeLens } from 'vscode-languageserver';
import { estimateParams, parseHfConfig } from '../formats/hfconfig';
import type { ModelConfig } from '../formats/types';
import { classBits, shapeClass } from '../plan/cost';
import { indexFor } from '../plan/match';
import type { Range } from '../plan/schema';
import type { ModelInfo, PlanState } from '../plan/service';
import { fmtBits, fmtBytes, fmtError, fmtParams } from '../plan/text';
import { getFormat } from '../quant/registry';
import { gptqDynamicLenses } from './gptqLenses';

/** Format used for sizes when no plan names the model. */
export const DEFAULT_SIZE_FORMAT = 'int4_g128_asym';

/** Ranges of the keys of the root object (and of `text_config`, for multimodal configs), by key name. */
export function jsonKeyRanges(text: string): Map<string, Range> {
  const out = new Map<string, Range>();
  let line = 0;
  let col = 0;
  let depth = 0;
  let inTextConfig = -1; // depth of the text_config object while inside it
  let lastKey = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = { line, character: col };
      let j = i + 1;
      while (j < text.length && text[j] !== '"' && text[j] !== '\n') j += text[j] === '\\' ? 2 : 1;
      const raw = text.slice(i + 1, j);
      col += j - i + 1;
      i = j;
      let k = i + 1;
      while (k < text.length && /[ \t\r\n]/.test(text[k])) k++;
      if (text[k] === ':') {
        lastKey = raw;
        if ((depth === 1 || (depth === 2 && inTextConfig === 2)) && !out.has(raw)) out.set(raw, { start, end: { line, character: col } });
      }
      continue;
    }
    if (c === '\n') {
      line++;
      col = 0;
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      if (c === '{' && depth === 2 && lastKey === 'text_config') inTextConfig = 2;
    } else if (c === '}' || c === ']') {
      if (depth === inTextConfig) inTextConfig = -1;
      depth--;
    }
    col++;
  }
  return out;
}

export interface DeclaredFormat {
  method: string;
  /** Closest QuantLens format id, when there is one. */
  format?: string;
  /** Tensor name parts a checkpoint quantized this way holds. */
  evidence: RegExp;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** What a quantization_config (or a GPTQ quantize_config.json) declares. */
export function declaredFormat(q: Record<string, unknown>): DeclaredFormat {
  const method = typeof q.quant_method === 'string' ? q.quant_method : 'gptq';
  const int = (bits: number | undefined, group: number | undefined, sym: boolean) =>
    bits !== undefined && bits >= 2 && bits <= 8 ? `int${bits}_${group === undefined || group <= 0 ? 'ch' : `g${group}`}_${sym ? 'sym' : 'asym'}` : undefined;
  switch (method) {
    case 'gptq':
    case 'awq': {
      const sym = typeof q.sym === 'boolean' ? q.sym : typeof q.zero_point === 'boolean' ? !q.zero_point : method === 'gptq';
      return { method, format: int(num(q.bits) ?? num(q.w_bit), num(q.group_size) ?? num(q.q_group_size), sym), evidence: /\.(qweight|qzeros)$/ };
    }
    case 'bitsandbytes': {
      if (q.load_in_4bit === true) return { method, format: q.bnb_4bit_quant_type === 'fp4' ? 'fp4_e2m1_g64' : 'nf4_g64', evidence: /\.(absmax|quant_map|quant_state\.[\w]+)$/ };
      return { method, format: q.load_in_8bit === true ? 'int8_ch_sym' : undefined, evidence: /\.SCB$/ };
    }
    case 'fp8':
    case 'fbgemm_fp8':
      return { method, format: 'fp8_e4m3_ch', evidence: /\.weight_scale(_inv)?$/ };
    case 'mxfp4':
      return { method, format: 'mxfp4', evidence: /_blocks$/ };
    case 'compressed-tensors': {
      const groups = q.config_groups && typeof q.config_groups === 'object' ? Object.values(q.config_groups as Record<string, unknown>) : [];
      const w = (groups[0] as { weights?: Record<string, unknown> } | undefined)?.weights;
      let format: string | undefined;
      if (q.format === 'nvfp4-pack-quantized') format = 'nvfp4';
      else if (w && w.type === 'float' && num(w.num_bits) === 8) format = w.strategy === 'tensor' ? 'fp8_e4m3' : 'fp8_e4m3_ch';
      else if (w) format = int(num(w.num_bits), w.strategy === 'group' ? num(w.group_size) : undefined, w.symmetric !== false);
      return { method, format, evidence: /\.(weight_packed|weight_scale)$/ };
    }
    default:
      return { method, evidence: /\.(qweight|weight_scale)$/ };
  }
}

/** Storage of every analyzable tensor of the model in one format, plus the bytes that cannot be quantized. */
export function sizeAt(model: ModelInfo, format: string): number | undefined {
  if (!model.tensors) return undefined;
  const index = indexFor(model.tensors);
  const bits = classBits(index, format);
  const cls = shapeClass(index);
  let total = 0;
  for (let id = 0; id < cls.length; id++) total += bits[cls[id]];
  return Number.isFinite(total) ? Math.ceil(total / 8) + model.fixedBytes : undefined;
}

export interface ConfigContext {
  /** The checkpoint in the same folder, if it could be read. */
  model?: ModelInfo;
  /** A plan naming that checkpoint. */
  plan?: PlanState;
}

const label = (range: Range, title: string): CodeLens => ({ range, command: { title, command: '' } });

/** Lenses for config.json (`kind: 'hf'`) or quantize_config.json (`kind: 'gptq'`). Never throws on bad JSON: no lenses. */
export function configLenses(text: string, file: string, kind: 'hf' | 'gptq', ctx: ConfigContext): CodeLens[] {
  const keys = jsonKeyRanges(text);
  const model = ctx.model?.tensors?.length ? ctx.model : undefined;
  if (kind === 'gptq') {
    let root: unknown;
    try {
      root = JSON.parse(text);
    } catch {
      return [];
    }
    if (!root || typeof root !== 'object' || Array.isArray(root)) return [];
    const at = keys.get('bits') ?? keys.get('w_bit') ?? keys.get('quant_method');
    return [...(at ? quantLenses(at, declaredFormat(root as Record<string, unknown>), model) : []), ...gptqDynamicLenses(text, file, model)];
  }
  let cfg: ModelConfig;
  try {
    cfg = parseHfConfig(text, file);
  } catch {
    return [];
  }
  const out: CodeLens[] = [];
  const L = cfg.numLayers;
  const at = (...names: string[]) => names.map((n) => keys.get(n)).find((r) => r !== undefined);
  const layersAt = at('num_hidden_layers', 'n_layer', 'num_layers', 'n_layers');
  if (layersAt && L) {
    const one = estimateParams({ ...cfg, numLayers: 1 });
    const two = estimateParams({ ...cfg, numLayers: 2 });
    let title = `${L} layers`;
    if (one !== undefined && two !== undefined) title += ` × ${fmtParams(two - one)} params each (estimate)`;
    if (model) {
      const blocks = new Set(model.tensors!.map((t) => t.layer.block).filter((b) => b !== '(root)')).size;
      title += ` · checkpoint: ${blocks} blocks ${blocks === L ? '✓' : '✗ mismatch'}`;
    }
    out.push(label(layersAt, title));
  }
  const hiddenAt = at('hidden_size', 'n_embd', 'd_model', 'dim');
  if (hiddenAt) {
    const format = ctx.plan?.analysis.plan.defaults?.value.format?.value ?? DEFAULT_SIZE_FORMAT;
    let title: string;
    if (model && ctx.plan?.cost) {
      const c = ctx.plan.cost;
      const params = model.tensors!.reduce((s, t) => s + t.params, 0);
      title = `${fmtParams(params)} params in the checkpoint · with the plan: ${fmtBytes(c.bytes)}, ${fmtBits(c.avgBits)} bits/weight`;
    } else if (model) {
      const params = model.tensors!.reduce((s, t) => s + t.params, 0);
      const size = sizeAt(model, format);
      title = `${fmtParams(params)} params in the checkpoint · at ${format}: ${size === undefined ? '?' : fmtBytes(size)}`;
    } else if (cfg.estimatedParams !== undefined) {
      const bits = safeBits(format);
      title = `≈ ${fmtParams(cfg.estimatedParams)} params (estimate from the config)${bits ? ` · at ${format}: ≈ ${fmtBytes((cfg.estimatedParams * bits) / 8)}` : ''}`;
    } else title = `hidden size ${cfg.hiddenSize}`;
    out.push(label(hiddenAt, title));
  }
  const expertsAt = at('num_local_experts', 'num_experts', 'n_routed_experts', 'moe_num_experts');
  if (expertsAt && cfg.numExperts) {
    const { hiddenSize: h, intermediateSize: i } = cfg;
    let title = `${cfg.numExperts} experts${cfg.numExpertsPerToken ? `, ${cfg.numExpertsPerToken} active per token` : ''}`;
    if (h && i && L) {
      const expert = 3 * h * i;
      title += ` · ${fmtParams(expert)} params per expert, ${fmtParams(expert * cfg.numExperts * L)} in all experts`;
      if (cfg.estimatedParams) title += ` (${Math.round((100 * expert * cfg.numExperts * L) / cfg.estimatedParams)}% of the model)`;
    }
    if (model) {
      const ids = new Set<string>();
      for (const t of model.tensors!) {
        const m = /\bexperts\.(\d+)\./.exec(t.name);
        if (m) ids.add(m[1]);
      }
      title += ` · checkpoint: ${ids.size} experts per layer ${ids.size === cfg.numExperts ? '✓' : '✗ mismatch'}`;
    }
    out.push(label(expertsAt, title));
  }
  const qAt = keys.get('quantization_config');
  if (qAt && cfg.quantizationConfig) out.push(...quantLenses(qAt, declaredFormat(cfg.quantizationConfig), model));
  return out;
}

function safeBits(format: string): number | undefined {
  try {
    return getFormat(format).bitsPerWeight([4096, 4096], 'out_in');
  } catch {
    return undefined;
  }
}

function quantLenses(range: Range, d: DeclaredFormat, model: ModelInfo | undefined): CodeLens[] {
  let title = `${d.method}: ${d.format ? `≈ ${d.format} (${fmtBits(safeBits(d.format) ?? NaN)} bits/weight)` : 'no matching QuantLens format'}`;
  if (model && d.format) {
    const size = sizeAt(model, d.format);
    if (size !== undefined) title += ` · this model at ${d.format}: ${fmtBytes(size)}`;
    const total = model.report?.model.totals[d.format];
    title += total ? ` · predicted ${fmtError(total.relMse)}` : ' · not analyzed';
  }
  const out = [label(range, title)];
  if (model) {
    const quantized = model.tensors!.filter((t) => d.evidence.test(t.name));
    out.push(label(range, quantized.length
      ? `checkpoint matches: ${quantized.length} quantized tensors (e.g. ${quantized[0].name})`
      : `checkpoint does not match: no quantized tensors (${model.tensors!.length} tensors, e.g. ${model.tensors![0].name})`));
  }
  return out;
}
