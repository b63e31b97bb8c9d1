// Public surface of the number-format library.
export { allFormats, describeFormats, formatIds, getFormat, type FormatSummary } from './registry';
export { OUTLIER_CODE, QuantInputError, UnknownFormatError } from './types';
export type { FormatFamily, FormatModifier, Granularity, NumberFormat, QdqOptions } from './types';
