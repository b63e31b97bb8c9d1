// Byte-level writers for calibration fixtures, built from the specs (NumPy's .npy format description and the
// PKWARE zip APPNOTE), independent of the readers under test.
import * as zlib from 'node:zlib';

/** A .npy from its header dict text and raw data: magic, version, little-endian header length, padded dict, data. */
export function npyBytes(dict: string, data: Uint8Array, version = 1, pad = true): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let header = dict;
  if (pad) while ((pre + header.length + 1) % 64) header += ' ';
  header += '\n';
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), pre);
  out.set(data, pre + header.length);
  return out;
}

/** A C-order .npy of a typed array (host order is little-endian on every platform Node supports). */
export function npyOf(descr: string, dims: number[], data: ArrayBufferView): Uint8Array {
  const shape = `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
  return npyBytes(`{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export interface ZipMember {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  method?: number;
  /** Uncompressed size written in the headers (a lie when it differs from data.length). */
  declared?: number;
}

/** A plain zip (no zip64): local headers + data, central directory, end record. */
export function zip(members: ZipMember[]): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let at = 0;
  for (const m of members) {
    const body = m.deflate ? zlib.deflateRawSync(m.data) : Buffer.from(m.data);
    const method = m.method ?? (m.deflate ? 8 : 0);
    const name = Buffer.from(m.name);
    const crc = zlib.crc32(m.data);
    const size = m.declared ?? m.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(at, 42);
    parts.push(local, name, body);
    central.push(cd, name);
    at += 30 + name.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(at, 16);
  return Buffer.concat([...parts, cdBytes, end]);
}
