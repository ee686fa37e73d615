/**
 * A small x86-64 instruction decoder for the instructions dhyve must run in
 * userspace: legacy prefixes, REX, the 0F map, ModRM/SIB, displacements and
 * RIP-relative addressing, and the effective address of a memory operand.
 * Pure: input is instruction bytes plus a register reader; no KVM imports.
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

/** Reads a register as an unsigned 64-bit bigint. */
export type RegisterReader = (name: GprName) => bigint;

/** A decoded ModRM-form instruction. */
export interface DecodedInstruction {
  /** Total length in bytes. */
  length: number;
  /** Operand-size/SIMD prefixes seen (0x66, 0xF2, 0xF3), last one wins for SIMD. */
  simdPrefix: 0 | 0x66 | 0xf2 | 0xf3;
  /** REX byte (0 if none). */
  rex: number;
  /** Segment override (0x64 FS, 0x65 GS) or 0. */
  segment: 0 | 0x64 | 0x65;
  /** Opcode map: 1 (one byte), 2 (0F), 3 (0F 38), 4 (0F 3A). */
  map: 1 | 2 | 3 | 4;
  /** The opcode byte within its map. */
  opcode: number;
  /** ModRM.mod. */
  mod: number;
  /** ModRM.reg extended by REX.R. */
  reg: number;
  /** ModRM.rm extended by REX.B (for mod = 3, a register number). */
  rm: number;
  /** Immediate byte for 0F 3A / imm8 forms, when `imm8Follows` was asked for. */
  imm8: number;
  /** Effective address (without segment base) for memory forms, else 0n. */
  address: bigint;
  /** True when the operand is RIP-relative. */
  ripRelative: boolean;
}

/** Decoding failed: too short, or not a ModRM-form instruction we know. */
export class DecodeError extends SyntaxError {
  /** Error name. */
  override name = "DecodeError";
}

const MASK64 = (1n << 64n) - 1n;

function signExtend(value: number, bits: number): bigint {
  const shift = 32 - bits;
  return BigInt((value << shift) >> shift);
}

/**
 * Decodes a ModRM-form instruction at `rip` from `bytes`.
 * @param imm8 true when the opcode takes an 8-bit immediate after ModRM.
 * @throws {DecodeError} when the bytes are truncated or not ModRM-form.
 */
export function decodeModrm(
  bytes: Uint8Array,
  rip: bigint,
  regs: RegisterReader,
  imm8 = false,
): DecodedInstruction {
  let i = 0;
  const at = (): number => {
    const b = bytes[i];
    if (b === undefined) throw new DecodeError("Instruction bytes end too early");
    return b;
  };
  let simdPrefix: DecodedInstruction["simdPrefix"] = 0;
  let segment: DecodedInstruction["segment"] = 0;
  let addressSize32 = false;
  for (;;) {
    const b = at();
    if (b === 0x66 || b === 0xf2 || b === 0xf3) simdPrefix = b;
    else if (b === 0x64 || b === 0x65) segment = b;
    else if (b === 0x67) addressSize32 = true;
    else if (b === 0x2e || b === 0x3e || b === 0x26 || b === 0x36 || b === 0xf0) {
      // CS/DS/ES/SS overrides are ignored in 64-bit mode; LOCK changes nothing here
    } else break;
    i++;
    if (i > 14) throw new DecodeError("Too many prefixes");
  }
  let rex = 0;
  if ((at() & 0xf0) === 0x40) rex = bytes[i++]!;
  let map: DecodedInstruction["map"] = 1;
  let opcode = bytes[i++]!;
  if (opcode === 0x0f) {
    map = 2;
    opcode = at();
    i++;
    if (opcode === 0x38 || opcode === 0x3a) {
      map = opcode === 0x38 ? 3 : 4;
      opcode = at();
      i++;
    }
  }
  const modrm = at();
  i++;
  const mod = modrm >> 6;
  const reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
  let rm = (modrm & 7) | ((rex & 1) << 3);
  let address = 0n;
  let ripRelative = false;
  if (mod !== 3) {
    if ((modrm & 7) === 4) {
      const sib = at();
      i++;
      const scale = BigInt(sib >> 6);
      const index = ((sib >> 3) & 7) | ((rex & 2) << 2);
      const base = (sib & 7) | ((rex & 1) << 3);
      if (index !== 4) address += regs(GPR_ORDER[index]!) << scale;
      if ((sib & 7) === 5 && mod === 0) {
        address += readDisp32();
      } else {
        address += regs(GPR_ORDER[base]!);
      }
      rm = base;
    } else if ((modrm & 7) === 5 && mod === 0) {
      ripRelative = true;
      address = readDisp32(); // relative to the next instruction, fixed below
    } else {
      address = regs(GPR_ORDER[rm]!);
    }
    if (mod === 1) {
      address += signExtend(at(), 8);
      i++;
    } else if (mod === 2) {
      address += readDisp32();
    }
  }
  let imm = 0;
  if (imm8) {
    imm = at();
    i++;
  }
  if (ripRelative) address += rip + BigInt(i);
  address &= addressSize32 ? 0xffff_ffffn : MASK64;
  return {
    length: i,
    simdPrefix,
    rex,
    segment,
    map,
    opcode,
    mod,
    reg,
    rm,
    imm8: imm,
    address,
    ripRelative,
  };

  function readDisp32(): bigint {
    if (i + 4 > bytes.length) throw new DecodeError("Instruction bytes end too early");
    const v = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    i += 4;
    return BigInt(v); // `v` is already a signed 32-bit number
  }
}
