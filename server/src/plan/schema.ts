// The quant plan file (`*.quant.yaml`): its data types and the JSON Schema shipped as
// media/quant-plan.schema.json. The schema object is the single source of the key names and enums the
// parser checks against, so the shipped schema and the validator cannot drift apart.

/** 0-based line / UTF-16 character, as LSP positions are. */
export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type Severity = 'error' | 'warning' | 'information' | 'hint';

export interface PlanDiagnostic {
  range: Range;
  severity: Severity;
  code: string;
  message: string;
  /** Replacement text for `range` (a did-you-mean quick fix), when there is one. */
  suggestion?: string;
  /** Other places the message refers to (e.g. the rules that shadow this one). */
  related?: { range: Range; message: string }[];
}

/** A value read from the plan with the range of its value node (quotes and brackets included). */
export interface Spanned<T> {
  value: T;
  range: Range;
}

/** A mapping entry: its value plus the range of its key. */
export interface Field<T> extends Spanned<T> {
  keyRange: Range;
}

export type Method = 'datafree' | 'hessian' | 'fisher' | 'gwq' | 'empirical';
export type Target = 'llama.cpp' | 'onnxruntime' | 'gptqmodel' | 'hqq' | 'llm-compressor' | 'modelopt' | 'vllm';
/** High-impact ratio: fraction of a layer's weights kept at the `hi` format, or chosen by the optimizer. */
export type Ratio = number | 'auto';

export interface PathValue {
  /** As written in the plan. */
  text: string;
  /** Absolute: resolved against the plan file's folder. */
  path: string;
}

export interface Budget {
  avgBits?: Field<number>;
  /** Bytes (exact integer; unit strings such as `3.9GB` are converted). */
  size?: Field<number>;
}

export interface Defaults {
  format?: Field<string>;
  ratio?: Field<Ratio>;
}

export interface HighImpact {
  hi?: Field<string>;
  lo?: Field<string>;
  ratio?: Field<Ratio>;
  rMax?: Field<number>;
}

export interface Rule {
  /** Position in the `rules` list (0-based), the order rules are tried in. */
  index: number;
  /** The whole list item. */
  range: Range;
  match?: Field<string>;
  format?: Field<string>;
  ratio?: Field<Ratio>;
  skip?: Field<boolean>;
}

export interface Plan {
  model?: Field<PathValue>;
  calibration?: Field<PathValue>;
  budget?: Field<Budget>;
  method?: Field<Method>;
  defaults?: Field<Defaults>;
  highImpact?: Field<HighImpact>;
  rules: Rule[];
  /** Where the `rules:` entry is (quick fixes rewrite it). */
  rulesAt?: { keyRange: Range; range: Range };
  targets?: Field<Spanned<Target>[]>;
}

export const METHODS: readonly Method[] = ['datafree', 'hessian', 'fisher', 'gwq', 'empirical'];
export const TARGETS: readonly Target[] = ['llama.cpp', 'onnxruntime', 'gptqmodel', 'hqq', 'llm-compressor', 'modelopt', 'vllm'];

/**
 * A size: a byte count with an optional SI (kB=1e3, MB, GB, TB, PB) or IEC (KiB=2^10, MiB, GiB, TiB, PiB) unit; the
 * final B is optional and letters are case-insensitive. Groups: mantissa, exponent, prefix, `i`.
 */
export const SIZE_PATTERN = '^\\s*([0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\\s*(?:([kKmMgGtTpP])([iI]?)[bB]?|[bB])?\\s*$';

const ratio = {
  description: 'High-impact ratio: the fraction of weights (by saliency) kept at `high_impact.hi`; `auto` lets the optimizer choose.',
  oneOf: [
    { const: 'auto' },
    { type: 'number', minimum: 0, maximum: 1 },
  ],
};

const format = {
  type: 'string',
  description: 'Number format id, e.g. int4_g128_asym, int8_ch_sym, nf4_g64, fp8_e4m3, mxfp4, nvfp4 (see `quantlens formats`).',
  minLength: 1,
};

const path = { type: 'string', minLength: 1 };

/** JSON Schema (draft-07) of a plan file. Written verbatim to media/quant-plan.schema.json. */
export const PLAN_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'QuantLens quant plan',
  description: 'Which number format each tensor of a model gets, under a size budget (*.quant.yaml).',
  type: 'object',
  additionalProperties: false,
  required: ['model'],
  properties: {
    model: { ...path, description: 'Checkpoint file or folder, relative to the plan file.' },
    calibration: { ...path, description: 'Calibration data file or folder, relative to the plan file.' },
    budget: {
      type: 'object',
      description: 'Size budget: average bits per weight, or total size.',
      additionalProperties: false,
      properties: {
        avg_bits: { type: 'number', exclusiveMinimum: 0, description: 'Average bits per weight, overheads (scales, zeros, indices) included.' },
        size: {
          description: 'Total size: bytes, or a string with an SI (GB = 1e9 bytes) or IEC (GiB = 2^30 bytes) unit, e.g. 3.9GB, 512MiB, 1.2e9.',
          oneOf: [
            { type: 'number', exclusiveMinimum: 0 },
            { type: 'string', pattern: SIZE_PATTERN },
          ],
        },
      },
      oneOf: [{ required: ['avg_bits'] }, { required: ['size'] }],
    },
    method: { enum: [...METHODS], default: 'datafree', description: 'Sensitivity method used to allocate bits.' },
    defaults: {
      type: 'object',
      description: 'What tensors no rule matches get.',
      additionalProperties: false,
      required: ['format'],
      properties: { format, ratio },
    },
    high_impact: {
      type: 'object',
      description: 'Mixed precision inside a layer: the most salient weights at `hi`, the rest at `lo`.',
      additionalProperties: false,
      required: ['hi', 'lo'],
      properties: {
        hi: format,
        lo: format,
        ratio,
        r_max: { type: 'number', minimum: 0, maximum: 1, description: 'Upper bound on any layer\'s ratio.' },
      },
    },
    rules: {
      type: 'array',
      description: 'Ordered rules; the first rule whose pattern matches a tensor (or its layer) decides it.',
      items: { $ref: '#/definitions/rule' },
    },
    targets: {
      type: 'array',
      description: 'Backends the plan is exported to.',
      uniqueItems: true,
      items: { enum: [...TARGETS] },
    },
  },
  definitions: {
    rule: {
      type: 'object',
      additionalProperties: false,
      required: ['match'],
      properties: {
        match: {
          type: 'string',
          minLength: 1,
          description:
            'Glob over dotted names (`*` and `?` stay inside one name part, `**` crosses dots, [abc] / [a-z] / [!abc] classes), ' +
            'matched against the whole tensor name and the whole layer path; or /regex/flags, searched anywhere in the name.',
        },
        format,
        ratio,
        skip: { type: 'boolean', description: 'Keep matched tensors in their original precision.' },
      },
    },
  },
} as const;
