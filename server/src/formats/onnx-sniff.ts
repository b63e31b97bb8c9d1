// ONNX has no magic number: recognise a ModelProto by walking the top-level protobuf fields in the
// file head. Every field must be a known ModelProto field with its declared wire type, lengths must
// fit the file, and string fields must be UTF-8. Other formats fail at once: GGUF's "G" (0x47) and
// zip's "P" (0x50) are unknown fields, pickle's 0x80 opens field 32, safetensors' zero length bytes
// are field 0. The head must show ir_version or the graph field; without the .onnx extension, both.

/** ModelProto field number → wire type (0 varint, 2 length-delimited), from onnx.proto. */
const MODEL_FIELDS: Record<number, number> = {
  1: 0, // ir_version
  2: 2, // producer_name
  3: 2, // producer_version
  4: 2, // domain
  5: 0, // model_version
  6: 2, // doc_string
  7: 2, // graph
  8: 2, // opset_import
  14: 2, // metadata_props
  20: 2, // training_info
  25: 2, // functions
};
const STRING_FIELDS = new Set([2, 3, 4, 6]);
const MAX_IR_VERSION = 100;

/** A varint at `pos`; undefined when the head ends inside it or it runs past 10 bytes. */
function varint(b: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 10 && pos + i < b.length; i++) {
    const byte = b[pos + i];
    value += (byte & 0x7f) * 2 ** (7 * i); // arithmetic, not bit ops: lengths may exceed 2^31
    if (byte < 0x80) return { value, next: pos + i + 1 };
  }
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(b: Uint8Array): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

export function looksLikeOnnx(head: Uint8Array, size: number, onnxExtension: boolean): boolean {
  if (head.length < 2) return false;
  let pos = 0;
  let irVersion = 0;
  let graph = false;
  while (pos < head.length) {
    const tag = varint(head, pos);
    if (!tag) break;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (MODEL_FIELDS[field] !== wire) return false;
    const v = varint(head, tag.next);
    if (!v) break;
    pos = v.next;
    if (wire === 0) {
      if (field === 1) {
        if (v.value < 1 || v.value > MAX_IR_VERSION) return false;
        irVersion = v.value;
      }
    } else {
      if (pos + v.value > size) return false;
      if (field === 7) graph = true;
      if (STRING_FIELDS.has(field) && pos + v.value <= head.length && !isUtf8(head.subarray(pos, pos + v.value))) return false;
      pos += v.value;
    }
  }
  // A model has an ir_version and a graph; a head showing neither is text or another format that
  // happens to parse. Without the extension as tie-breaker, both must show.
  return onnxExtension ? irVersion > 0 || graph : irVersion > 0 && graph;
}
