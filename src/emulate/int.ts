/**
 * A small set of general-purpose x86-64 instructions that never touch
 * memory, so that dhyve's SSE emulation can keep running a guest's loop in
 * userspace past the integer bookkeeping between SSE instructions (counters,
 * index arithmetic, LEA, compares and branches) instead of paying a KVM round
 * trip for each iteration. Register-to-register ALU operations with exact
 * RFLAGS, MOV/MOVZX/MOVSX/MOVSXD/CMOVcc/LEA, shifts by an immediate, IMUL,
 * Jcc/JMP and NOP; 32- and 64-bit operands only. Anything else (memory
 * operands, 8/16-bit operands, other prefixes) is declined, and the caller
 * hands the instruction back to KVM. Pure: no KVM imports.
 * @module
 */

import {
  decodeModrm,
  decodeOpcode,
  effectiveAddress,
  takeImmediate,
  X86Instruction,
} from "./decode.ts";
import type { SseState } from "./sse.ts";

const MASK64 = (1n << 64n) - 1n;
const MASK32 = 0xffff_ffffn;
const CF = 0x1;
const PF = 0x4;
const AF = 0x10;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;

/** What {@linkcode runInteger} did: the mnemonic and length, or null (declined, nothing changed). */
export interface IntegerStep {
  /** Mnemonic, e.g. `"add"`. */
  readonly mnemonic: string;
  /** Instruction length in bytes. */
  readonly length: number;
}

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let v = i;
  v ^= v >> 4;
  v ^= v >> 2;
  v ^= v >> 1;
  PARITY[i] = (v & 1) === 0 ? PF : 0;
}

/** ZF, SF and PF of `r` (already masked to `w` bits). */
function zsp(r: bigint, w: number): number {
  let f = PARITY[Number(r & 0xffn)]!;
  if (r === 0n) f |= ZF;
  if ((r >> (w === 64 ? SIGN_SHIFT_64 : SIGN_SHIFT_32)) & 1n) f |= SF;
  return f;
}

function maskOf(w: number): bigint {
  return w === 64 ? MASK64 : MASK32;
}

/** The flags of the last {@linkcode add} or {@linkcode sub}. */
let lastFlags = 0;

const SIGN_SHIFT_32 = 31n;
const SIGN_SHIFT_64 = 63n;

/** a + b; the six flags go to `lastFlags`. */
function add(a: bigint, b: bigint, w: number): bigint {
  const m = maskOf(w);
  const full = a + b;
  const r = full & m;
  let f = zsp(r, w);
  if (full > m) f |= CF;
  if (((a ^ r) & (b ^ r)) >> (w === 64 ? SIGN_SHIFT_64 : SIGN_SHIFT_32) & 1n) f |= OF;
  if ((a ^ b ^ r) & 0x10n) f |= AF;
  lastFlags = f;
  return r;
}

/** a - b (also CMP); the six flags go to `lastFlags`. */
function sub(a: bigint, b: bigint, w: number): bigint {
  const m = maskOf(w);
  const r = (a - b) & m;
  let f = zsp(r, w);
  if (a < b) f |= CF;
  if (((a ^ b) & (a ^ r)) >> (w === 64 ? SIGN_SHIFT_64 : SIGN_SHIFT_32) & 1n) f |= OF;
  if ((a ^ b ^ r) & 0x10n) f |= AF;
  lastFlags = f;
  return r;
}

/** Flags of AND/OR/XOR/TEST: CF = OF = AF = 0. */
function logic(r: bigint, w: number): number {
  return zsp(r, w);
}

/** The Jcc/CMOVcc/SETcc condition `cc` (0–15) under `flags`. */
export function condition(cc: number, flags: number): boolean {
  const cf = (flags & CF) !== 0;
  const zf = (flags & ZF) !== 0;
  const sf = (flags & SF) !== 0;
  const of = (flags & OF) !== 0;
  const pf = (flags & PF) !== 0;
  let t: boolean;
  switch (cc >> 1) {
    case 0:
      t = of;
      break;
    case 1:
      t = cf;
      break;
    case 2:
      t = zf;
      break;
    case 3:
      t = cf || zf;
      break;
    case 4:
      t = sf;
      break;
    case 5:
      t = pf;
      break;
    case 6:
      t = sf !== of;
      break;
    default:
      t = zf || sf !== of;
  }
  return (cc & 1) === 0 ? t : !t;
}

const CC_NAMES = [
  "o",
  "no",
  "b",
  "ae",
  "e",
  "ne",
  "be",
  "a",
  "s",
  "ns",
  "p",
  "np",
  "l",
  "ge",
  "le",
  "g",
];
const ALU_NAMES = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];

function signExtend(v: number, bits: number): bigint {
  return BigInt.asIntN(bits, BigInt(v));
}

/** The front end's scratch instruction (decoding allocates nothing else). */
const scratch = new X86Instruction();

/**
 * Runs the instruction at the start of `bytes` against `state` (GPRs,
 * RFLAGS, RIP) when it is in the supported set; returns its mnemonic and
 * length, or null with `state` unchanged. A branch to a non-canonical
 * address is declined (the CPU would raise #GP there).
 */
export function runInteger(bytes: Uint8Array, state: SseState): IntegerStep | null {
  return decodeOpcode(bytes, scratch) ? runIntegerOperands(bytes, scratch, state) : null;
}

/**
 * {@linkcode runInteger} for `bytes` whose prefixes and opcode `insn` already
 * holds ({@linkcode decodeOpcode}); reads the rest of `bytes` into `insn`.
 */
export function runIntegerOperands(
  bytes: Uint8Array,
  insn: X86Instruction,
  state: SseState,
): IntegerStep | null {
  if (insn.lock || insn.repeat !== 0) return null;
  insn.length = insn.opcodeEnd; // an earlier reader may have gone past the opcode
  insn.mod = 3;
  const rex = insn.rex;
  const opcode = insn.opcode;
  const map = insn.map;
  // 66 is taken only by the NOP forms (66 90, 66 0F 1F /0: common code padding).
  const nop = (map === 1 && opcode === 0x90 && rex === 0) || (map === 2 && opcode === 0x1f);
  if ((insn.opsize || insn.addr32) && !nop) return null;
  const w = insn.rexW ? 64 : 32;
  const gpr = state.gpr;
  const next = (len: number): bigint => (state.rip + BigInt(len)) & MASK64;

  if (map === 1) {
    // Opcodes without ModRM.
    if (opcode === 0x90 && rex === 0) return done("nop", insn.length);
    if (opcode >= 0xb8 && opcode <= 0xbf) {
      const reg = (opcode & 7) | ((rex & 1) << 3);
      const i = insn.length;
      if (w === 64) {
        if (i + 8 > bytes.length) return null;
        let v = 0n;
        for (let k = 7; k >= 0; k--) v = v << 8n | BigInt(bytes[i + k]!);
        gpr[reg] = v;
        return done("mov", i + 8);
      }
      const imm = takeImmediate(bytes, insn, 4);
      if (imm === null) return null;
      gpr[reg] = BigInt(imm >>> 0);
      return done("mov", insn.length);
    }
    if ((opcode >= 0x70 && opcode <= 0x7f) || opcode === 0xeb) {
      const rel = takeImmediate(bytes, insn, 1);
      if (rel === null) return null;
      const taken = opcode === 0xeb || condition(opcode & 0xf, state.rflags);
      return branch(opcode === 0xeb ? "jmp" : `j${CC_NAMES[opcode & 0xf]}`, taken, rel);
    }
    if (opcode === 0xe9) {
      const rel = takeImmediate(bytes, insn, 4);
      if (rel === null) return null;
      return branch("jmp", true, rel);
    }
  } else if (map === 2 && opcode >= 0x80 && opcode <= 0x8f) {
    const rel = takeImmediate(bytes, insn, 4);
    if (rel === null) return null;
    return branch(`j${CC_NAMES[opcode & 0xf]}`, condition(opcode & 0xf, state.rflags), rel);
  }
  if (map > 2 || !decodeModrm(bytes, insn)) return null;
  const rm = insn.rm;
  const reg = insn.reg;
  if (map === 2) {
    if (opcode === 0x1f && insn.reg7 === 0) return done("nop", insn.length); // no access
    if (insn.memory) return null;
    if (opcode >= 0x40 && opcode <= 0x4f) {
      // CMOVcc: a 32-bit destination is zero-extended even when the move is not taken.
      const v = condition(opcode & 0xf, state.rflags) ? gpr[rm]! : gpr[reg]!;
      gpr[reg] = v & maskOf(w);
      return done(`cmov${CC_NAMES[opcode & 0xf]}`, insn.length);
    }
    if (opcode === 0xaf) {
      const a = BigInt.asIntN(w, gpr[reg]!);
      const b = BigInt.asIntN(w, gpr[rm]!);
      const full = a * b;
      const r = BigInt.asUintN(w, full);
      gpr[reg] = r;
      const overflow = BigInt.asIntN(w, r) !== full;
      // SF, ZF, AF and PF are undefined; set them from the result like current CPUs.
      let f = zsp(r, w);
      if (overflow) f |= CF | OF;
      setFlags(f);
      return done("imul", insn.length);
    }
    if (opcode === 0xb6 || opcode === 0xb7 || opcode === 0xbe || opcode === 0xbf) {
      const bits = opcode & 1 ? 16 : 8;
      const src = bits === 8 ? byteReg(gpr, rm, rex) : gpr[rm]! & 0xffffn;
      const v = opcode >= 0xbe ? BigInt.asUintN(64, BigInt.asIntN(bits, src)) : src;
      gpr[reg] = v & maskOf(w);
      return done(opcode >= 0xbe ? "movsx" : "movzx", insn.length);
    }
    return null;
  }

  // One-byte opcodes with ModRM.
  if (opcode === 0x8d) {
    if (!insn.memory) return null;
    // LEA: the address from the end of the instruction, without a segment base.
    const ea = effectiveAddress(insn, state, false);
    gpr[reg] = ea & maskOf(w);
    return done("lea", insn.length);
  }
  if (insn.memory) return null; // everything else here would touch memory
  const mask = maskOf(w);
  if ((opcode & 0xc7) <= 0x03 && (opcode & 1) === 1 && opcode < 0x40) {
    // ALU r/m, r (01, 09, 11, 19, 21, 29, 31, 39) and r, r/m (03, 0B, ...).
    const kind = opcode >> 3;
    if (kind === 2 || kind === 3) return null; // ADC/SBB: not needed
    const toReg = (opcode & 2) !== 0;
    const dst = toReg ? reg : rm;
    const src = toReg ? rm : reg;
    alu(kind, dst, gpr[dst]! & mask, gpr[src]! & mask);
    return done(ALU_NAMES[kind]!, insn.length);
  }
  const kind = insn.reg7;
  switch (opcode) {
    case 0x81:
    case 0x83: {
      if (kind === 2 || kind === 3) return null;
      const imm = takeImmediate(bytes, insn, opcode === 0x81 ? 4 : 1);
      if (imm === null) return null;
      alu(kind, rm, gpr[rm]! & mask, BigInt.asUintN(w, signExtend(imm, 32)));
      return done(ALU_NAMES[kind]!, insn.length);
    }
    case 0x85: {
      setFlags(logic(gpr[rm]! & gpr[reg]! & mask, w));
      return done("test", insn.length);
    }
    case 0x89:
    case 0x8b: {
      const dst = opcode === 0x89 ? rm : reg;
      const src = opcode === 0x89 ? reg : rm;
      gpr[dst] = gpr[src]! & mask;
      return done("mov", insn.length);
    }
    case 0x63: {
      if (w !== 64) return null;
      gpr[reg] = BigInt.asUintN(64, BigInt.asIntN(32, gpr[rm]!));
      return done("movsxd", insn.length);
    }
    case 0xc7: {
      if (kind !== 0) return null;
      const imm = takeImmediate(bytes, insn, 4);
      if (imm === null) return null;
      gpr[rm] = BigInt.asUintN(w, signExtend(imm, 32));
      return done("mov", insn.length);
    }
    case 0xc1: {
      if (kind !== 4 && kind !== 5 && kind !== 7) return null;
      const count = takeImmediate(bytes, insn, 1);
      if (count === null) return null;
      const n = count & (w === 64 ? 63 : 31);
      if (n === 0) return null; // flags untouched: a rare corner left to the CPU
      shift(kind, rm, gpr[rm]! & mask, n);
      return done(kind === 4 ? "shl" : kind === 5 ? "shr" : "sar", insn.length);
    }
    case 0xd1: {
      if (kind !== 4 && kind !== 5 && kind !== 7) return null;
      shift(kind, rm, gpr[rm]! & mask, 1);
      return done(kind === 4 ? "shl" : kind === 5 ? "shr" : "sar", insn.length);
    }
    case 0xff: {
      if (kind !== 0 && kind !== 1) return null;
      const keepCf = state.rflags & CF;
      gpr[rm] = kind === 0 ? add(gpr[rm]! & mask, 1n, w) : sub(gpr[rm]! & mask, 1n, w);
      setFlags((lastFlags & ~CF) | keepCf);
      return done(kind === 0 ? "inc" : "dec", insn.length);
    }
    case 0xf7: {
      const v = gpr[rm]! & mask;
      if (kind === 2) {
        gpr[rm] = ~v & mask;
        return done("not", insn.length);
      }
      if (kind === 3) {
        gpr[rm] = sub(0n, v, w);
        setFlags(lastFlags);
        return done("neg", insn.length);
      }
      return null;
    }
  }
  return null;

  function done(mnemonic: string, length: number): IntegerStep {
    state.rip = next(length);
    return { mnemonic, length };
  }

  /** Jcc/JMP: `rel` counts from the end of the instruction (`insn.length`). */
  function branch(mnemonic: string, taken: boolean, rel: number): IntegerStep | null {
    const length = insn.length;
    if (!taken) return done(mnemonic, length);
    const target = (next(length) + BigInt(rel)) & MASK64;
    const top = target >> 47n;
    if (top !== 0n && top !== 0x1_ffffn) return null;
    state.rip = target;
    return { mnemonic, length };
  }

  function setFlags(f: number): void {
    state.rflags = (state.rflags & ~ARITH_FLAGS) | f;
  }

  function alu(kind: number, dst: number, a: bigint, b: bigint): void {
    let r: bigint;
    let f: number;
    switch (kind) {
      case 0:
        r = add(a, b, w);
        f = lastFlags;
        break;
      case 5:
      case 7:
        r = sub(a, b, w);
        f = lastFlags;
        break;
      case 1:
        r = a | b;
        f = logic(r, w);
        break;
      case 4:
        r = a & b;
        f = logic(r, w);
        break;
      default: // 6: xor
        r = a ^ b;
        f = logic(r, w);
    }
    if (kind !== 7) gpr[dst] = r;
    setFlags(f);
  }

  function shift(kind: number, dst: number, v: bigint, n: number): void {
    const bn = BigInt(n);
    const top = BigInt(w - 1);
    let r: bigint;
    let cf: bigint;
    let of: bigint;
    if (kind === 4) {
      r = (v << bn) & mask;
      cf = (v >> BigInt(w - n)) & 1n;
      of = ((r >> top) & 1n) ^ cf;
    } else if (kind === 5) {
      r = v >> bn;
      cf = (v >> (bn - 1n)) & 1n;
      of = (v >> top) & 1n;
    } else {
      r = BigInt.asUintN(w, BigInt.asIntN(w, v) >> bn);
      cf = (BigInt.asIntN(w, v) >> (bn - 1n)) & 1n;
      of = 0n;
    }
    gpr[dst] = r;
    // OF is defined for one-bit shifts only, AF never; this is what current CPUs leave.
    let f = zsp(r, w);
    if (cf) f |= CF;
    if (of && n === 1) f |= OF;
    setFlags(f);
  }
}

/** The byte register `n`: AH–BH for 4–7 without a REX prefix, else the low byte. */
function byteReg(gpr: BigUint64Array, n: number, rex: number): bigint {
  if (rex === 0 && n >= 4 && n < 8) return (gpr[n - 4]! >> 8n) & 0xffn;
  return gpr[n]! & 0xffn;
}
