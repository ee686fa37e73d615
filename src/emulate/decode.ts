/**
 * The one x86-64 instruction front end of dhyve's userspace emulation: legacy
 * prefixes, REX, the opcode maps (one byte, 0F, 0F 38, 0F 3A), ModRM, SIB,
 * displacements, immediates, operand size and the effective address of a
 * memory operand. The SSE executor (sse.ts), the integer subset (int.ts), the
 * run-ahead (run_ahead.ts) and the FXSAVE/XSAVE family (vcpu/emulate.ts) all
 * decode through it, so they agree on what the bytes mean.
 *
 * Prefix semantics in 64-bit mode (checked on the host CPU with the native
 * helper of tests/_helpers/sse_native.c and by hand; see
 * tests/unit/emulate/decode_test.ts):
 * - Legacy prefixes (F0, F2, F3, 26, 2E, 36, 3E, 64, 65, 66, 67) may come in
 *   any order and may repeat; an instruction is at most 15 bytes long.
 * - F2/F3: the last one wins. As a mandatory (SIMD) prefix it beats 66
 *   wherever 66 stands; 66 is mandatory only without F2/F3.
 * - Segment overrides: 26/2E/36/3E are ignored (they do not cancel an FS or
 *   GS override either); of 64 (FS) and 65 (GS) the last one wins, and its
 *   base is added to memory operands (not to LEA's result).
 * - 66 makes the operand size 16 bits unless REX.W makes it 64.
 * - 67 makes addressing 32-bit: base and index registers are read as 32
 *   bits and the address (RIP-relative included) wraps at 4 GiB before the
 *   segment base is added.
 * - REX counts only when it is the last byte before the opcode: a REX that
 *   a legacy prefix or another REX follows is ignored.
 * - RIP-relative operands are relative to the end of the whole instruction,
 *   immediates included.
 *
 * Allocation-free: the caller owns the {@linkcode X86Instruction} it fills.
 * Pure: input is instruction bytes and a register file; no KVM imports.
 * @module
 */

/** General registers in encoding order (rax=0 … r15=15). */
export const GPR_ORDER = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;

/** A general register name. */
export type GprName = typeof GPR_ORDER[number];

/** The longest x86 instruction, in bytes. */
export const MAX_INSTRUCTION_LENGTH = 15;

/** The registers a memory operand's address is computed from. */
export interface AddressingRegisters {
  /** RAX … R15 in encoding order. */
  readonly gpr: BigUint64Array;
  /** RIP of the instruction (its first prefix byte). */
  readonly rip: bigint;
  /** FS base (for a 64 override). */
  readonly fsBase: bigint;
  /** GS base (for a 65 override). */
  readonly gsBase: bigint;
}

/** One decoded instruction; made once by the caller and refilled by each decode. */
export class X86Instruction {
  /** A 66 prefix was seen. */
  opsize = false;
  /** The last of F2/F3, or 0. */
  repeat: 0 | 0xf2 | 0xf3 = 0;
  /** A LOCK (F0) prefix was seen. */
  lock = false;
  /** The segment override that applies: 0x64 (FS), 0x65 (GS) or 0. */
  segment: 0 | 0x64 | 0x65 = 0;
  /** A 67 prefix (32-bit addressing) was seen. */
  addr32 = false;
  /** The REX byte that applies, or 0. */
  rex = 0;
  /** Offset of the opcode's first byte (prefixes and REX end here). */
  opcodeStart = 0;
  /** Opcode map: 1 (one byte), 2 (0F), 3 (0F 38), 4 (0F 3A). */
  map: 1 | 2 | 3 | 4 = 1;
  /** The opcode byte within its map. */
  opcode = 0;
  /** Offset just past the opcode (where ModRM or an immediate starts). */
  opcodeEnd = 0;
  /** ModRM.mod (3: register operand). */
  mod = 3;
  /** ModRM.reg without REX.R (the opcode extension of group opcodes). */
  reg7 = 0;
  /** ModRM.reg extended by REX.R. */
  reg = 0;
  /** ModRM.rm extended by REX.B (the register when `mod` is 3, else the SIB base). */
  rm = 0;
  /** Memory forms: base register, or -1 (none, or RIP-relative). */
  base = -1;
  /** Memory forms: index register, or -1. */
  index = -1;
  /** Memory forms: log2 of the index scale. */
  scale = 0;
  /** Memory forms: the sign-extended displacement. */
  disp = 0;
  /** Memory forms: the operand is RIP-relative. */
  ripRelative = false;
  /** Bytes decoded so far: the instruction's length once its immediates are taken. */
  length = 0;

  /** REX.W. */
  get rexW(): boolean {
    return (this.rex & 8) !== 0;
  }

  /** The operand is in memory (ModRM.mod is not 3). */
  get memory(): boolean {
    return this.mod !== 3;
  }

  /** The mandatory (SIMD) prefix: the last F2/F3, else 66, else 0. */
  get mandatoryPrefix(): 0 | 0x66 | 0xf2 | 0xf3 {
    return this.repeat !== 0 ? this.repeat : this.opsize ? 0x66 : 0;
  }

  /** Operand size in bits: 64 with REX.W, else 16 with 66, else 32. */
  get operandSize(): 16 | 32 | 64 {
    return this.rexW ? 64 : this.opsize ? 16 : 32;
  }
}

/**
 * Reads the prefixes, REX and opcode (with its 0F / 0F 38 / 0F 3A escape)
 * at the start of `bytes` into `insn`; `insn.length` ends after the opcode.
 * Returns false when the bytes end first or the prefixes alone fill 15 bytes.
 */
export function decodeOpcode(bytes: Uint8Array, insn: X86Instruction): boolean {
  insn.opsize = false;
  insn.repeat = 0;
  insn.lock = false;
  insn.segment = 0;
  insn.addr32 = false;
  let rex = 0;
  let i = 0;
  const n = bytes.length < MAX_INSTRUCTION_LENGTH ? bytes.length : MAX_INSTRUCTION_LENGTH;
  for (; i < n; i++) {
    const b = bytes[i]!;
    if ((b & 0xf0) === 0x40) {
      rex = b; // counts only if the opcode follows (reset below otherwise)
      continue;
    }
    if (b === 0x66) insn.opsize = true;
    else if (b === 0xf2 || b === 0xf3) insn.repeat = b;
    else if (b === 0x64 || b === 0x65) insn.segment = b;
    else if (b === 0xf0) insn.lock = true;
    else if (b === 0x67) insn.addr32 = true;
    else if (b !== 0x2e && b !== 0x3e && b !== 0x26 && b !== 0x36) break; // the opcode
    // (26/2E/36/3E: null segments in 64-bit mode, no effect at all)
    rex = 0;
  }
  if (i === n) return false; // only prefixes
  insn.rex = rex;
  insn.opcodeStart = i;
  let opcode = bytes[i++]!;
  let map: X86Instruction["map"] = 1;
  if (opcode === 0x0f) {
    const second = bytes[i++];
    if (second === undefined) return false;
    map = 2;
    opcode = second;
    if (second === 0x38 || second === 0x3a) {
      const third = bytes[i++];
      if (third === undefined) return false;
      map = second === 0x38 ? 3 : 4;
      opcode = third;
    }
  }
  if (i > MAX_INSTRUCTION_LENGTH) return false;
  insn.map = map;
  insn.opcode = opcode;
  insn.opcodeEnd = i;
  insn.length = i;
  insn.mod = 3;
  return true;
}

/**
 * Reads the ModRM byte after the opcode, and for a memory operand its SIB
 * byte and displacement, into `insn`; `insn.length` ends after them. Call
 * after {@linkcode decodeOpcode}. Returns false when the bytes end first.
 */
export function decodeModrm(bytes: Uint8Array, insn: X86Instruction): boolean {
  let i = insn.opcodeEnd;
  const b = bytes[i++];
  if (b === undefined) return false;
  const rex = insn.rex;
  const mod = b >> 6;
  insn.mod = mod;
  insn.reg7 = (b >> 3) & 7;
  insn.reg = insn.reg7 | ((rex & 4) << 1);
  insn.rm = (b & 7) | ((rex & 1) << 3);
  insn.base = -1;
  insn.index = -1;
  insn.scale = 0;
  insn.disp = 0;
  insn.ripRelative = false;
  if (mod !== 3) {
    let disp32 = mod === 2;
    if ((b & 7) === 4) {
      const sib = bytes[i++];
      if (sib === undefined) return false;
      insn.scale = sib >> 6;
      const index = ((sib >> 3) & 7) | ((rex & 2) << 2);
      if (index !== 4) insn.index = index;
      const base = (sib & 7) | ((rex & 1) << 3);
      insn.rm = base;
      if ((sib & 7) === 5 && mod === 0) disp32 = true;
      else insn.base = base;
    } else if ((b & 7) === 5 && mod === 0) {
      insn.ripRelative = true;
      disp32 = true;
    } else {
      insn.base = insn.rm;
    }
    if (mod === 1) {
      const d = bytes[i++];
      if (d === undefined) return false;
      insn.disp = (d << 24) >> 24;
    } else if (disp32) {
      if (i + 4 > bytes.length) return false;
      insn.disp = bytes[i]! | bytes[i + 1]! << 8 | bytes[i + 2]! << 16 | bytes[i + 3]! << 24;
      i += 4;
    }
  }
  if (i > MAX_INSTRUCTION_LENGTH) return false;
  insn.length = i;
  return true;
}

/**
 * Takes a `size`-byte little-endian immediate at `insn.length`, sign-extended
 * to a number, and moves `insn.length` past it; null when the bytes end
 * first or the instruction would pass 15 bytes.
 */
export function takeImmediate(
  bytes: Uint8Array,
  insn: X86Instruction,
  size: 1 | 2 | 4,
): number | null {
  const i = insn.length;
  if (i + size > bytes.length || i + size > MAX_INSTRUCTION_LENGTH) return null;
  insn.length = i + size;
  if (size === 1) return (bytes[i]! << 24) >> 24;
  if (size === 2) return ((bytes[i]! | bytes[i + 1]! << 8) << 16) >> 16;
  return bytes[i]! | bytes[i + 1]! << 8 | bytes[i + 2]! << 16 | bytes[i + 3]! << 24;
}

const MASK64 = (1n << 64n) - 1n;
const MASK32 = 0xffff_ffffn;

/**
 * The effective address of `insn`'s memory operand: base + index × scale +
 * displacement (RIP-relative: from the end of the instruction, so take the
 * immediates first), wrapped at 4 GiB under a 67 prefix, plus the FS/GS base
 * when `withSegment` (false for LEA) and an override applies.
 */
export function effectiveAddress(
  insn: X86Instruction,
  regs: AddressingRegisters,
  withSegment = true,
): bigint {
  const gpr = regs.gpr;
  let a = BigInt(insn.disp);
  if (insn.ripRelative) a += regs.rip + BigInt(insn.length);
  if (insn.addr32) {
    if (insn.base >= 0) a += gpr[insn.base]! & MASK32;
    if (insn.index >= 0) a += (gpr[insn.index]! & MASK32) << BigInt(insn.scale);
    a &= MASK32;
  } else {
    if (insn.base >= 0) a += gpr[insn.base]!;
    if (insn.index >= 0) a += gpr[insn.index]! << BigInt(insn.scale);
  }
  if (withSegment) {
    if (insn.segment === 0x64) a += regs.fsBase;
    else if (insn.segment === 0x65) a += regs.gsBase;
  }
  return a & MASK64;
}
