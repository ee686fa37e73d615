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

function readImm(bytes: Uint8Array, at: number, size: 1 | 4): number | null {
  if (at + size > bytes.length) return null;
  if (size === 1) return (bytes[at]! << 24) >> 24;
  return bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 | bytes[at + 3]! << 24;
}

/**
 * Runs the instruction at the start of `bytes` against `state` (GPRs,
 * RFLAGS, RIP) when it is in the supported set; returns its mnemonic and
 * length, or null with `state` unchanged. A branch to a non-canonical
 * address is declined (the CPU would raise #GP there).
 */
export function runInteger(bytes: Uint8Array, state: SseState): IntegerStep | null {
  let i = 0;
  let rex = 0;
  for (; i < bytes.length && i < 4; i++) {
    const b = bytes[i]!;
    // Segment overrides and branch hints change nothing without a memory operand.
    if (b === 0x2e || b === 0x3e || b === 0x26 || b === 0x36 || b === 0x64 || b === 0x65) continue;
    break;
  }
  if (i < bytes.length && (bytes[i]! & 0xf0) === 0x40) rex = bytes[i++]!;
  const opcode = bytes[i++];
  if (opcode === undefined) return null;
  const w = (rex & 8) !== 0 ? 64 : 32;
  const gpr = state.gpr;
  const next = (len: number): bigint => (state.rip + BigInt(len)) & MASK64;

  // Opcodes without ModRM.
  if (opcode === 0x90 && rex === 0) return done("nop", i);
  if (opcode >= 0xb8 && opcode <= 0xbf) {
    const reg = (opcode & 7) | ((rex & 1) << 3);
    if (w === 64) {
      if (i + 8 > bytes.length) return null;
      let v = 0n;
      for (let k = 7; k >= 0; k--) v = v << 8n | BigInt(bytes[i + k]!);
      gpr[reg] = v;
      return done("mov", i + 8);
    }
    const imm = readImm(bytes, i, 4);
    if (imm === null) return null;
    gpr[reg] = BigInt(imm >>> 0);
    return done("mov", i + 4);
  }
  if ((opcode >= 0x70 && opcode <= 0x7f) || opcode === 0xeb) {
    const rel = readImm(bytes, i, 1);
    if (rel === null) return null;
    const taken = opcode === 0xeb || condition(opcode & 0xf, state.rflags);
    return branch(opcode === 0xeb ? "jmp" : `j${CC_NAMES[opcode & 0xf]}`, i + 1, taken, rel);
  }
  if (opcode === 0xe9) {
    const rel = readImm(bytes, i, 4);
    if (rel === null) return null;
    return branch("jmp", i + 4, true, rel);
  }
  if (opcode === 0x0f) {
    const op2 = bytes[i++];
    if (op2 === undefined) return null;
    if (op2 >= 0x80 && op2 <= 0x8f) {
      const rel = readImm(bytes, i, 4);
      if (rel === null) return null;
      return branch(`j${CC_NAMES[op2 & 0xf]}`, i + 4, condition(op2 & 0xf, state.rflags), rel);
    }
    const m = modrm(bytes, i, rex);
    if (m === null) return null;
    if (op2 === 0x1f && m.reg7 === 0) return done("nop", m.end); // the address is not accessed
    if (!m.register) return null;
    i = m.end;
    if (op2 >= 0x40 && op2 <= 0x4f) {
      // CMOVcc: a 32-bit destination is zero-extended even when the move is not taken.
      const v = condition(op2 & 0xf, state.rflags) ? gpr[m.rm]! : gpr[m.reg]!;
      gpr[m.reg] = v & maskOf(w);
      return done(`cmov${CC_NAMES[op2 & 0xf]}`, i);
    }
    if (op2 === 0xaf) {
      const a = BigInt.asIntN(w, gpr[m.reg]!);
      const b = BigInt.asIntN(w, gpr[m.rm]!);
      const full = a * b;
      const r = BigInt.asUintN(w, full);
      gpr[m.reg] = r;
      const overflow = BigInt.asIntN(w, r) !== full;
      // SF, ZF, AF and PF are undefined; set them from the result like current CPUs.
      let f = zsp(r, w);
      if (overflow) f |= CF | OF;
      setFlags(f);
      return done("imul", i);
    }
    if (op2 === 0xb6 || op2 === 0xb7 || op2 === 0xbe || op2 === 0xbf) {
      const bits = op2 & 1 ? 16 : 8;
      const src = bits === 8 ? byteReg(gpr, m.rm, rex) : gpr[m.rm]! & 0xffffn;
      const v = op2 >= 0xbe ? BigInt.asUintN(64, BigInt.asIntN(bits, src)) : src;
      gpr[m.reg] = v & maskOf(w);
      return done(op2 >= 0xbe ? "movsx" : "movzx", i);
    }
    return null;
  }

  // One-byte opcodes with ModRM.
  const m = modrm(bytes, i, rex);
  if (m === null) return null;
  if (opcode === 0x8d) {
    if (m.register) return null;
    const ea = effectiveAddress(m, state, next(m.end));
    gpr[m.reg] = ea & maskOf(w);
    return done("lea", m.end);
  }
  if (!m.register) return null; // everything else here would touch memory
  i = m.end;
  const mask = maskOf(w);
  if ((opcode & 0xc7) <= 0x03 && (opcode & 1) === 1 && opcode < 0x40) {
    // ALU r/m, r (01, 09, 11, 19, 21, 29, 31, 39) and r, r/m (03, 0B, ...).
    const kind = opcode >> 3;
    if (kind === 2 || kind === 3) return null; // ADC/SBB: not needed
    const toReg = (opcode & 2) !== 0;
    const dst = toReg ? m.reg : m.rm;
    const src = toReg ? m.rm : m.reg;
    alu(kind, dst, gpr[dst]! & mask, gpr[src]! & mask);
    return done(ALU_NAMES[kind]!, i);
  }
  switch (opcode) {
    case 0x81:
    case 0x83: {
      const kind = m.reg7;
      if (kind === 2 || kind === 3) return null;
      const imm = readImm(bytes, i, opcode === 0x81 ? 4 : 1);
      if (imm === null) return null;
      alu(kind, m.rm, gpr[m.rm]! & mask, BigInt.asUintN(w, signExtend(imm, 32)));
      return done(ALU_NAMES[kind]!, i + (opcode === 0x81 ? 4 : 1));
    }
    case 0x85: {
      const r = gpr[m.rm]! & gpr[m.reg]! & mask;
      setFlags(logic(r, w));
      return done("test", i);
    }
    case 0x89:
    case 0x8b: {
      const dst = opcode === 0x89 ? m.rm : m.reg;
      const src = opcode === 0x89 ? m.reg : m.rm;
      gpr[dst] = gpr[src]! & mask;
      return done("mov", i);
    }
    case 0x63: {
      if (w !== 64) return null;
      gpr[m.reg] = BigInt.asUintN(64, BigInt.asIntN(32, gpr[m.rm]!));
      return done("movsxd", i);
    }
    case 0xc7: {
      if (m.reg7 !== 0) return null;
      const imm = readImm(bytes, i, 4);
      if (imm === null) return null;
      gpr[m.rm] = BigInt.asUintN(w, signExtend(imm, 32));
      return done("mov", i + 4);
    }
    case 0xc1: {
      const kind = m.reg7;
      if (kind !== 4 && kind !== 5 && kind !== 7) return null;
      const count = bytes[i];
      if (count === undefined) return null;
      const n = count & (w === 64 ? 63 : 31);
      if (n === 0) return null; // flags untouched: a rare corner left to the CPU
      shift(kind, m.rm, gpr[m.rm]! & mask, n);
      return done(kind === 4 ? "shl" : kind === 5 ? "shr" : "sar", i + 1);
    }
    case 0xd1: {
      const kind = m.reg7;
      if (kind !== 4 && kind !== 5 && kind !== 7) return null;
      shift(kind, m.rm, gpr[m.rm]! & mask, 1);
      return done(kind === 4 ? "shl" : kind === 5 ? "shr" : "sar", i);
    }
    case 0xff: {
      const kind = m.reg7;
      if (kind !== 0 && kind !== 1) return null;
      const keepCf = state.rflags & CF;
      gpr[m.rm] = kind === 0 ? add(gpr[m.rm]! & mask, 1n, w) : sub(gpr[m.rm]! & mask, 1n, w);
      setFlags((lastFlags & ~CF) | keepCf);
      return done(kind === 0 ? "inc" : "dec", i);
    }
    case 0xf7: {
      const kind = m.reg7;
      const v = gpr[m.rm]! & mask;
      if (kind === 2) {
        gpr[m.rm] = ~v & mask;
        return done("not", i);
      }
      if (kind === 3) {
        gpr[m.rm] = sub(0n, v, w);
        setFlags(lastFlags);
        return done("neg", i);
      }
      return null;
    }
  }
  return null;

  function done(mnemonic: string, length: number): IntegerStep {
    state.rip = next(length);
    return { mnemonic, length };
  }

  function branch(
    mnemonic: string,
    length: number,
    taken: boolean,
    rel: number,
  ): IntegerStep | null {
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

/** A decoded ModRM (one object, reused: {@linkcode modrm} overwrites it). */
interface ModRm {
  /** mod = 3. */
  register: boolean;
  /** ModRM.reg + REX.R. */
  reg: number;
  /** ModRM.reg without REX (opcode extension). */
  reg7: number;
  /** ModRM.rm + REX.B (register forms). */
  rm: number;
  /** Bytes consumed up to the end of ModRM/SIB/displacement. */
  end: number;
  /** Memory forms: base register or -1, index register or -1, log2 scale, displacement. */
  base: number;
  index: number;
  scale: number;
  disp: number;
  ripRelative: boolean;
}

const decoded: ModRm = {
  register: false,
  reg: 0,
  reg7: 0,
  rm: 0,
  end: 0,
  base: -1,
  index: -1,
  scale: 0,
  disp: 0,
  ripRelative: false,
};

/** The effective address of a memory ModRM; `next` is the following instruction's RIP. */
function effectiveAddress(m: ModRm, state: SseState, next: bigint): bigint {
  let a = BigInt(m.disp);
  if (m.ripRelative) a += next;
  if (m.base >= 0) a += state.gpr[m.base]!;
  if (m.index >= 0) a += state.gpr[m.index]! << BigInt(m.scale);
  return a & MASK64;
}

function modrm(bytes: Uint8Array, at: number, rex: number): ModRm | null {
  const b = bytes[at];
  if (b === undefined) return null;
  const mod = b >> 6;
  const reg7 = (b >> 3) & 7;
  const m = decoded;
  m.reg7 = reg7;
  m.reg = reg7 | ((rex & 4) << 1);
  m.rm = (b & 7) | ((rex & 1) << 3);
  let i = at + 1;
  if (mod === 3) {
    m.register = true;
    m.end = i;
    return m;
  }
  const rm = m.rm;
  let base = -1;
  let index = -1;
  let scale = 0;
  let ripRelative = false;
  if ((b & 7) === 4) {
    const sib = bytes[i++];
    if (sib === undefined) return null;
    scale = sib >> 6;
    const idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
    if (idx !== 4) index = idx;
    if ((sib & 7) === 5 && mod === 0) base = -1;
    else base = (sib & 7) | ((rex & 1) << 3);
  } else if ((b & 7) === 5 && mod === 0) {
    ripRelative = true;
  } else {
    base = rm;
  }
  let disp = 0;
  const needs32 = mod === 2 || ripRelative || (mod === 0 && base === -1);
  if (mod === 1) {
    const d = readImm(bytes, i, 1);
    if (d === null) return null;
    disp = d;
    i += 1;
  } else if (needs32) {
    const d = readImm(bytes, i, 4);
    if (d === null) return null;
    disp = d;
    i += 4;
  }
  m.register = false;
  m.end = i;
  m.base = base;
  m.index = index;
  m.scale = scale;
  m.disp = disp;
  m.ripRelative = ripRelative;
  return m;
}
