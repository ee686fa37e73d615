/**
 * The ELF interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) of a
 * Linux program: the container needs it to start Deno. Pure.
 * @module
 */

const PT_INTERP = 3;

/** The PT_INTERP path of the ELF64 little-endian program in `bytes`, or null (static, not ELF64). */
export function elfInterpreter(bytes: Uint8Array): string | null {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c) return null;
  if (bytes[3] !== 0x46 || bytes[4] !== 2 || bytes[5] !== 1) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  if (phentsize < 56) return null;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 56 > bytes.length) return null;
    if (view.getUint32(at, true) !== PT_INTERP) continue;
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    if (size === 0 || offset + size > bytes.length) return null;
    const raw = bytes.subarray(offset, offset + size);
    const end = raw.indexOf(0);
    return new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
  }
  return null;
}
