/**
 * A tiny encoder for legacy-encoded instructions with a ModRM byte
 * (mandatory prefix, REX, one-byte/0F/0F38/0F3A map, ModRM/SIB,
 * displacement, imm8/imm32), for tests of the SSE and integer emulators. Pure.
 * @module
 */

/** A memory operand. `base: "rip"` is RIP-relative (disp32 from the next instruction). */
export interface MemOperand {
  /** Base register (0–15), "rip", or null for SIB without base (disp32 only). */
  base: number | "rip" | null;
  /** Index register (0–15 except 4), if any. */
  index?: number;
  /** log2 of the scale. */
  scale?: 0 | 1 | 2 | 3;
  /** Displacement. */
  disp: number;
  /** Displacement size in bytes (ignored for RIP-relative and base-less: 4). */
  dispSize: 0 | 1 | 4;
}

/** What to encode. */
export interface EncodeSpec {
  /** Mandatory prefix: 0, 0x66, 0xF2 or 0xF3. */
  prefix: number;
  /** Opcode map: 1 (one-byte opcodes), 2 (0F), 3 (0F 38), 4 (0F 3A). */
  map: 1 | 2 | 3 | 4;
  /** Opcode byte. */
  opcode: number;
  /** ModRM.reg (0–15). */
  reg: number;
  /** A register number (0–15) for mod = 3, or a memory operand. */
  rm: number | MemOperand;
  /** REX.W. */
  w?: boolean;
  /** Emit a REX byte even when no bit is needed. */
  forceRex?: boolean;
  /** Prefixes before the mandatory prefix (e.g. 0x3E). */
  extraPrefixes?: readonly number[];
  /** An immediate byte. */
  imm8?: number;
  /** A 32-bit immediate (after `imm8` if both are given). */
  imm32?: number;
}

/** Encodes `spec`. */
export function encode(spec: EncodeSpec): Uint8Array {
  const out: number[] = [...(spec.extraPrefixes ?? [])];
  if (spec.prefix !== 0) out.push(spec.prefix);
  let rex = (spec.w ? 8 : 0) | ((spec.reg >> 3) & 1) << 2;
  const tail: number[] = [];
  let modrm: number;
  if (typeof spec.rm === "number") {
    rex |= (spec.rm >> 3) & 1;
    modrm = 0xc0 | (spec.reg & 7) << 3 | (spec.rm & 7);
  } else {
    const m = spec.rm;
    if (m.base === "rip") {
      modrm = (spec.reg & 7) << 3 | 5;
      pushDisp(tail, m.disp, 4);
    } else if (m.base === null) {
      modrm = (spec.reg & 7) << 3 | 4;
      const index = m.index ?? 4;
      rex |= ((index >> 3) & 1) << 1;
      tail.push((m.scale ?? 0) << 6 | (index & 7) << 3 | 5);
      pushDisp(tail, m.disp, 4);
    } else {
      const base = m.base;
      let dispSize = m.dispSize;
      // mod = 0 with base 5 (RBP/R13) means "no base": use a zero disp8 instead.
      if (dispSize === 0 && (base & 7) === 5) dispSize = 1;
      const mod = dispSize === 0 ? 0 : dispSize === 1 ? 1 : 2;
      rex |= (base >> 3) & 1;
      if (m.index !== undefined || (base & 7) === 4) {
        const index = m.index ?? 4;
        rex |= ((index >> 3) & 1) << 1;
        modrm = mod << 6 | (spec.reg & 7) << 3 | 4;
        tail.push((m.scale ?? 0) << 6 | (index & 7) << 3 | (base & 7));
      } else {
        modrm = mod << 6 | (spec.reg & 7) << 3 | (base & 7);
      }
      if (dispSize !== 0) pushDisp(tail, m.disp, dispSize);
    }
  }
  if (rex !== 0 || spec.forceRex) out.push(0x40 | rex);
  if (spec.map !== 1) out.push(0x0f);
  if (spec.map === 3) out.push(0x38);
  if (spec.map === 4) out.push(0x3a);
  out.push(spec.opcode, modrm, ...tail);
  if (spec.imm8 !== undefined) out.push(spec.imm8 & 0xff);
  if (spec.imm32 !== undefined) pushDisp(out, spec.imm32, 4);
  return new Uint8Array(out);
}

function pushDisp(out: number[], disp: number, size: 1 | 4): void {
  if (size === 1) {
    out.push(disp & 0xff);
  } else {
    const v = disp | 0;
    out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
}
