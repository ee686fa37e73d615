/**
 * SSE/SSE2 (and a few SSE3/SSSE3/SSE4.1/4.2) instructions executed in
 * software, for hosts whose KVM cannot run them (on kvm_pvm the guest runs in
 * KVM's instruction emulator, which fails on every SSE instruction but the
 * plain moves). {@linkcode decodeSse} reads the legacy encoding
 * (prefixes 66/F2/F3, REX, the 0F/0F38/0F3A maps, ModRM/SIB, RIP-relative
 * and segment-relative operands) and {@linkcode executeSse} runs it against
 * an {@linkcode SseState} and an {@linkcode VirtualMemory}, as the CPU would:
 * #GP for a misaligned 16-byte operand, page faults from the memory accessor,
 * MXCSR flags, and nothing changed when the instruction faults.
 * Pure: no KVM imports.
 * @module
 */

import {
  fastPathAllowed,
  fpArith,
  fpCompare,
  fpConvert,
  type FpEnv,
  type FpFormat,
  fpFromInt,
  fpMinMax,
  type FpOp,
  fpSqrt,
  fpToInt,
  MXCSR_FLAGS,
  MXCSR_MASK_SHIFT,
} from "./sse_float.ts";
import {
  decodeModrm,
  decodeOpcode,
  effectiveAddress,
  takeImmediate,
  X86Instruction,
} from "./decode.ts";
import { hex } from "../hex.ts";
import type { MemoryFault, VirtualMemory } from "../memory/guest_virtual.ts";

/**
 * The register file an SSE instruction sees. {@linkcode executeSse} updates
 * it in place (only when the instruction completes) and advances `rip`.
 */
export interface SseState {
  /** XMM0–XMM15, 16 bytes each, little-endian (the XSAVE image's bytes 160–415). */
  readonly xmm: Uint8Array;
  /** MXCSR. */
  mxcsr: number;
  /** RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8–R15 (encoding order). */
  readonly gpr: BigUint64Array;
  /** RFLAGS. */
  rflags: number;
  /** RIP of the instruction; advanced past it on completion. */
  rip: bigint;
  /** FS base (for an FS segment override). */
  fsBase: bigint;
  /** GS base (for a GS segment override). */
  gsBase: bigint;
}

/** Bits of {@linkcode SseResult} `changed`: what the instruction wrote. */
export const SSE_CHANGED = {
  /** An XMM register. */
  XMM: 1,
  /** MXCSR (flags or, for LDMXCSR, the whole register). */
  MXCSR: 2,
  /** A general register. */
  GPR: 4,
  /** RFLAGS. */
  RFLAGS: 8,
  /** Memory. */
  MEMORY: 16,
} as const;

/** What {@linkcode executeSse} did. */
export type SseResult =
  | { readonly kind: "done"; readonly changed: number }
  | {
    readonly kind: "exception";
    /** 13 (#GP) or 14 (#PF). */
    readonly vector: number;
    readonly errorCode: number;
    /** The faulting address for #PF (the value for CR2). */
    readonly address?: bigint;
  }
  | { readonly kind: "unsupported"; readonly reason: string };

/** A decoded SSE instruction. */
export interface SseInstruction {
  /** Mnemonic, e.g. `"movaps"`. */
  readonly mnemonic: string;
  /** Length in bytes. */
  readonly length: number;
  /** Mandatory prefix: 0, 0x66, 0xF3 or 0xF2. */
  readonly prefix: number;
  /** REX.W. */
  readonly rexW: boolean;
  /** ModRM.reg extended by REX.R. */
  readonly reg: number;
  /** ModRM.rm extended by REX.B (a register number when `memory` is false). */
  readonly rm: number;
  /** True when the r/m operand is in memory. */
  readonly memory: boolean;
  /** Linear address of the memory operand (segment base included), else 0n. */
  readonly address: bigint;
  /** The immediate byte, or 0. */
  readonly imm8: number;
}

/** A decoded instruction with its operation (what decodeSse really returns). */
interface Decoded extends SseInstruction {
  readonly op: Op;
}

/** How one instruction form runs. */
interface Op {
  /** Mnemonic. */
  readonly mnemonic: string;
  /** Mnemonic when REX.W is set, if different. */
  readonly mnemonicW?: string;
  /** Bytes read from or written to memory for the memory form (by REX.W when a pair). */
  readonly size: number | readonly [number, number];
  /** 16-byte alignment required for the memory form. */
  readonly aligned: boolean;
  /** Takes an imm8. */
  readonly imm: boolean;
  /** 1: register form only; 2: memory form only. */
  readonly only: 0 | 1 | 2;
  /** Runs the instruction; returns a fault/unsupported result or null. */
  readonly run: (x: Exec) => SseResult | null;
  /** For opcode groups: the operation by ModRM.reg. */
  readonly group?: Partial<Record<number, Op>>;
}

const MASK64 = (1n << 64n) - 1n;
const RFLAGS_CF = 0x1;
const RFLAGS_PF = 0x4;
const RFLAGS_AF = 0x10;
const RFLAGS_ZF = 0x40;
const RFLAGS_SF = 0x80;
const RFLAGS_OF = 0x800;
const VECTOR_GP = 13;
const VECTOR_PF = 14;

// ---------------------------------------------------------------------------
// Execution context
// ---------------------------------------------------------------------------

/** Everything an operation needs; one instance, reused. */
class Exec {
  insn!: Decoded;
  state!: SseState;
  mem!: VirtualMemory;
  /** Source operand (16 bytes; memory operands are read here, zero-padded). */
  readonly src: Uint8Array = new Uint8Array(16);
  readonly srcView: DataView = new DataView(this.src.buffer);
  /** Result, copied to the destination at the end. */
  readonly out: Uint8Array = new Uint8Array(16);
  readonly outView: DataView = new DataView(this.out.buffer);
  /** The destination register's current value (copy). */
  readonly dst: Uint8Array = new Uint8Array(16);
  readonly dstView: DataView = new DataView(this.dst.buffer);
  readonly env: FpEnv = { mxcsr: 0, flags: 0 };
  /** SSE_CHANGED bits of what the instruction writes. */
  changed = 0;
  /** XMM register that receives `out` at commit, or -1. */
  outReg = -1;
  /** General register written at commit, or -1. */
  gprReg = -1;
  /** Its new value. */
  gprValue = 0n;
  /** New RFLAGS at commit. */
  newRflags = 0;
  /** New MXCSR (LDMXCSR) at commit, or -1. */
  newMxcsr = -1;
  readonly #sized: Uint8Array[] = Array.from({ length: 17 }, (_, n) => this.src.subarray(0, n));

  /** Reads the r/m operand (register or `bytes` of memory) into `src`. */
  loadSrc(bytes: number): SseResult | null {
    const { insn, state } = this;
    const src = this.src;
    if (!insn.memory) {
      const xmm = state.xmm;
      const from = insn.rm * 16;
      for (let i = 0; i < 16; i++) src[i] = xmm[from + i]!;
      return null;
    }
    src.fill(0);
    return this.read(this.#sized[bytes] ?? src.subarray(0, bytes));
  }

  /** Reads memory at the operand address, with the alignment check. */
  read(into: Uint8Array): SseResult | null {
    const fault = this.alignment();
    if (fault !== null) return fault;
    return memoryFault(this.mem.read(this.insn.address, into));
  }

  /** Writes memory at the operand address, with the alignment check. */
  write(data: Uint8Array): SseResult | null {
    const fault = this.alignment();
    if (fault !== null) return fault;
    const f = memoryFault(this.mem.write(this.insn.address, data));
    if (f === null) this.changed |= SSE_CHANGED.MEMORY;
    return f;
  }

  alignment(): SseResult | null {
    if (this.insn.op.aligned && (this.insn.address & 15n) !== 0n) {
      return { kind: "exception", vector: VECTOR_GP, errorCode: 0 };
    }
    return null;
  }

  /** Loads the destination register (ModRM.reg) into `dst` and `out`. */
  loadDst(): void {
    const r = this.insn.reg * 16;
    const xmm = this.state.xmm;
    const dst = this.dst;
    const out = this.out;
    for (let i = 0; i < 16; i++) out[i] = dst[i] = xmm[r + i]!;
  }

  /** Makes `out` the new value of XMM register `n` (at commit). */
  storeXmm(n: number): void {
    this.outReg = n;
    this.changed |= SSE_CHANGED.XMM;
  }

  /** Makes `flags` the new RFLAGS (at commit). */
  setRflags(flags: number): void {
    this.newRflags = flags;
    this.changed |= SSE_CHANGED.RFLAGS;
  }

  /** Reads general register `n` (64 bits). */
  gpr(n: number): bigint {
    return this.state.gpr[n]!;
  }

  /** Writes general register `n` (at commit): 32-bit writes zero-extend. */
  setGpr(n: number, value: bigint, width: 32 | 64): void {
    this.gprReg = n;
    this.gprValue = width === 32 ? value & 0xffff_ffffn : value & MASK64;
    this.changed |= SSE_CHANGED.GPR;
  }
}

function memoryFault(f: MemoryFault | null): SseResult | null {
  if (f === null) return null;
  if ("gp" in f) return { kind: "exception", vector: VECTOR_GP, errorCode: 0 };
  if ("notRam" in f) {
    return {
      kind: "unsupported",
      reason: `its memory operand at ${hex(f.notRam)} is not guest RAM`,
    };
  }
  return { kind: "exception", vector: VECTOR_PF, errorCode: f.errorCode, address: f.pageFault };
}

// ---------------------------------------------------------------------------
// Operation builders
// ---------------------------------------------------------------------------

function op(
  mnemonic: string,
  size: Op["size"],
  run: Op["run"],
  options: { aligned?: boolean; imm?: boolean; only?: 0 | 1 | 2; mnemonicW?: string } = {},
): Op {
  const o: Op = {
    mnemonic,
    size,
    aligned: options.aligned ?? false,
    imm: options.imm ?? false,
    only: options.only ?? 0,
    run,
  };
  return options.mnemonicW === undefined ? o : { ...o, mnemonicW: options.mnemonicW };
}

/** xmm ← f(xmm, xmm/m128), aligned memory operand. */
function vec(mnemonic: string, f: (x: Exec) => void, aligned = true, size = 16): Op {
  return op(mnemonic, size, (x) => {
    const fault = x.loadSrc(size);
    if (fault !== null) return fault;
    x.loadDst();
    f(x);
    x.storeXmm(x.insn.reg);
    return null;
  }, { aligned: aligned && size === 16 });
}

/** Packed integer lanes of `bytes` bytes: out[i] = f(dst[i], src[i]). */
function intLanes(mnemonic: string, bytes: 1 | 2 | 4, f: (a: number, b: number) => number): Op {
  return vec(mnemonic, (x) => {
    for (let i = 0; i < 16; i += bytes) {
      const a = lane(x.dstView, i, bytes);
      const b = lane(x.srcView, i, bytes);
      setLane(x.outView, i, bytes, f(a, b));
    }
  });
}

function lane(v: DataView, at: number, bytes: 1 | 2 | 4): number {
  return bytes === 1 ? v.getUint8(at) : bytes === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
}

function setLane(v: DataView, at: number, bytes: 1 | 2 | 4, value: number): void {
  if (bytes === 1) v.setUint8(at, value);
  else if (bytes === 2) v.setUint16(at, value, true);
  else v.setUint32(at, value >>> 0, true);
}

function signed(v: number, bytes: 1 | 2 | 4): number {
  const shift = 32 - bytes * 8;
  return (v << shift) >> shift;
}

function qLanes(mnemonic: string, f: (a: bigint, b: bigint) => bigint): Op {
  return vec(mnemonic, (x) => {
    for (let i = 0; i < 16; i += 8) {
      const r = f(x.dstView.getBigUint64(i, true), x.srcView.getBigUint64(i, true));
      x.outView.setBigUint64(i, r & MASK64, true);
    }
  });
}

function saturate(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

function fpGet(v: DataView, at: number, fmt: FpFormat): bigint {
  return fmt === 64 ? v.getBigUint64(at, true) : BigInt(v.getUint32(at, true));
}

function fpSet(v: DataView, at: number, fmt: FpFormat, bits: bigint): void {
  if (fmt === 64) v.setBigUint64(at, bits, true);
  else v.setUint32(at, Number(bits), true);
}

/**
 * Floating-point lanes: `lanes` lanes of `fmt` (1 = scalar: the upper part
 * of the destination is kept), out = f(dst lane, src lane).
 */
function fpLanes(
  mnemonic: string,
  fmt: FpFormat,
  scalar: boolean,
  f: (a: bigint, b: bigint, env: FpEnv, x: Exec) => bigint,
  imm = false,
  fast?: FastLane,
): Op {
  const width = fmt / 8;
  const size = scalar ? width : 16;
  const n = scalar ? 1 : 16 / width;
  return op(mnemonic, size, (x) => {
    const fault = x.loadSrc(size);
    if (fault !== null) return fault;
    x.loadDst();
    const useFast = fast !== undefined && fastPathAllowed(x.env.mxcsr);
    for (let i = 0; i < n; i++) {
      const at = i * width;
      if (useFast && fastLane(x, at, fmt, fast)) continue;
      const r = f(fpGet(x.dstView, at, fmt), fpGet(x.srcView, at, fmt), x.env, x);
      fpSet(x.outView, at, fmt, r);
    }
    x.storeXmm(x.insn.reg);
    return null;
  }, { aligned: !scalar, imm });
}

/** A lane operation on doubles for the fast path, and whether it reads only the source. */
interface FastLane {
  readonly unary: boolean;
  readonly op: (a: number, b: number) => number;
}

/**
 * The lane on plain doubles when the operands are normal numbers and the
 * (rounded) result is a normal number too: then no exception flag but PE can
 * arise, and {@linkcode fastPathAllowed} made sure PE is already set.
 * Returns false (nothing written) when the lane needs the exact path.
 */
function fastLane(x: Exec, at: number, fmt: FpFormat, fast: FastLane): boolean {
  const dv = x.dstView;
  const sv = x.srcView;
  if (fmt === 64) {
    const eb = (sv.getUint32(at + 4, true) >>> 20) & 0x7ff;
    if (eb === 0 || eb === 0x7ff) return false;
    if (!fast.unary) {
      const ea = (dv.getUint32(at + 4, true) >>> 20) & 0x7ff;
      if (ea === 0 || ea === 0x7ff) return false;
    }
    const r = fast.op(dv.getFloat64(at, true), sv.getFloat64(at, true));
    const m = Math.abs(r);
    if (!(m > F64_MIN_NORMAL && m < Infinity)) return false;
    x.outView.setFloat64(at, r, true);
    return true;
  }
  const eb = (sv.getUint32(at, true) >>> 23) & 0xff;
  if (eb === 0 || eb === 0xff) return false;
  if (!fast.unary) {
    const ea = (dv.getUint32(at, true) >>> 23) & 0xff;
    if (ea === 0 || ea === 0xff) return false;
  }
  // Double rounding through binary64 is exact for +, -, ×, ÷ and √ of binary32 values.
  const r = Math.fround(fast.op(dv.getFloat32(at, true), sv.getFloat32(at, true)));
  const m = Math.abs(r);
  if (!(m > F32_MIN_NORMAL && m < Infinity)) return false;
  x.outView.setFloat32(at, r, true);
  return true;
}

const F64_MIN_NORMAL = 2 ** -1022;
const F32_MIN_NORMAL = 2 ** -126;

const FAST: Readonly<Record<FpOp | "sqrt", FastLane>> = {
  add: { unary: false, op: (a, b) => a + b },
  sub: { unary: false, op: (a, b) => a - b },
  mul: { unary: false, op: (a, b) => a * b },
  div: { unary: false, op: (a, b) => a / b },
  // A negative operand gives NaN, which the range check turns away.
  sqrt: { unary: true, op: (_a, b) => Math.sqrt(b) },
};

function arith(name: string, fop: FpOp): Op[] {
  const fast = FAST[fop];
  return [
    fpLanes(`${name}ps`, 32, false, (a, b, env) => fpArith(fop, a, b, 32, env), false, fast),
    fpLanes(`${name}pd`, 64, false, (a, b, env) => fpArith(fop, a, b, 64, env), false, fast),
    fpLanes(`${name}ss`, 32, true, (a, b, env) => fpArith(fop, a, b, 32, env), false, fast),
    fpLanes(`${name}sd`, 64, true, (a, b, env) => fpArith(fop, a, b, 64, env), false, fast),
  ];
}

function minMax(name: string, max: boolean): Op[] {
  return [
    fpLanes(`${name}ps`, 32, false, (a, b, env) => fpMinMax(max, a, b, 32, env)),
    fpLanes(`${name}pd`, 64, false, (a, b, env) => fpMinMax(max, a, b, 64, env)),
    fpLanes(`${name}ss`, 32, true, (a, b, env) => fpMinMax(max, a, b, 32, env)),
    fpLanes(`${name}sd`, 64, true, (a, b, env) => fpMinMax(max, a, b, 64, env)),
  ];
}

const CMP_SIGNALING = [false, true, true, false, false, true, true, false];

function cmpPredicate(a: bigint, b: bigint, fmt: FpFormat, env: FpEnv, imm: number): bigint {
  const p = imm & 7;
  const order = fpCompare(a, b, fmt, CMP_SIGNALING[p]!, env);
  let t: boolean;
  switch (p) {
    case 0:
      t = order === "eq";
      break;
    case 1:
      t = order === "lt";
      break;
    case 2:
      t = order === "lt" || order === "eq";
      break;
    case 3:
      t = order === "un";
      break;
    case 4:
      t = order !== "eq";
      break;
    case 5:
      t = order !== "lt";
      break;
    case 6:
      t = order !== "lt" && order !== "eq";
      break;
    default:
      t = order !== "un";
  }
  return t ? (fmt === 64 ? MASK64 : 0xffff_ffffn) : 0n;
}

function cmpOps(): Op[] {
  const names = ["cmpps", "cmppd", "cmpss", "cmpsd"];
  return names.map((name, i) => {
    const fmt: FpFormat = i % 2 === 0 ? 32 : 64;
    return fpLanes(
      name,
      fmt,
      i >= 2,
      (a, b, env, x) => cmpPredicate(a, b, fmt, env, x.insn.imm8),
      true,
    );
  });
}

/** UCOMISS/UCOMISD/COMISS/COMISD: ZF, PF, CF from the comparison; OF, SF, AF cleared. */
function comis(mnemonic: string, fmt: FpFormat, signaling: boolean): Op {
  return op(mnemonic, fmt / 8, (x) => {
    const fault = x.loadSrc(fmt / 8);
    if (fault !== null) return fault;
    const r = x.insn.reg * 16;
    const a = fmt === 64
      ? new DataView(x.state.xmm.buffer, x.state.xmm.byteOffset + r, 8).getBigUint64(0, true)
      : BigInt(new DataView(x.state.xmm.buffer, x.state.xmm.byteOffset + r, 4).getUint32(0, true));
    const order = fpCompare(a, fpGet(x.srcView, 0, fmt), fmt, signaling, x.env);
    let f = x.state.rflags &
      ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
    if (order === "un") f |= RFLAGS_ZF | RFLAGS_PF | RFLAGS_CF;
    else if (order === "eq") f |= RFLAGS_ZF;
    else if (order === "lt") f |= RFLAGS_CF;
    x.setRflags(f);
    return null;
  });
}

/** xmm ← xmm/m (moves) of `size` bytes; `merge`: the register form keeps the upper bytes. */
function moveLoad(mnemonic: string, size: number, aligned: boolean, merge: boolean): Op {
  return op(mnemonic, size, (x) => {
    const fault = x.loadSrc(size);
    if (fault !== null) return fault;
    x.loadDst();
    // The register form of MOVSS/MOVSD merges; everything else zero-extends.
    if (x.insn.memory || !merge) x.out.fill(0);
    x.out.set(x.src.subarray(0, size));
    x.storeXmm(x.insn.reg);
    return null;
  }, { aligned });
}

/** xmm/m ← xmm (stores); the register form writes the whole (or low, merging) register. */
function moveStore(mnemonic: string, size: number, aligned: boolean, merge: boolean): Op {
  return op(mnemonic, size, (x) => {
    const r = x.insn.reg * 16;
    const value = x.state.xmm.slice(r, r + size);
    if (x.insn.memory) return x.write(value);
    const d = x.insn.rm * 16;
    x.out.set(x.state.xmm.subarray(d, d + 16));
    if (!merge) x.out.fill(0);
    x.out.set(value);
    x.storeXmm(x.insn.rm);
    return null;
  }, { aligned });
}

/** Shuffles the destination and source by a rule giving each output lane's source. */
function shuffle(mnemonic: string, f: (x: Exec) => void, imm = false, size = 16): Op {
  return op(mnemonic, size, (x) => {
    const fault = x.loadSrc(size);
    if (fault !== null) return fault;
    x.loadDst();
    f(x);
    x.storeXmm(x.insn.reg);
    return null;
  }, { aligned: size === 16, imm });
}

function unpack(bytes: 1 | 2 | 4 | 8, high: boolean): (x: Exec) => void {
  return (x) => {
    const base = high ? 8 : 0;
    for (let i = 0; i < 8 / bytes; i++) {
      x.out.set(x.dst.subarray(base + i * bytes, base + (i + 1) * bytes), 2 * i * bytes);
      x.out.set(x.src.subarray(base + i * bytes, base + (i + 1) * bytes), (2 * i + 1) * bytes);
    }
  };
}

/** Shift counts from an immediate (group 71/72/73) or from the low quadword of xmm/m128. */
function shiftOp(
  mnemonic: string,
  bytes: 2 | 4 | 8,
  kind: "l" | "rl" | "ra",
  fromImm: boolean,
): Op {
  const run = (x: Exec): SseResult | null => {
    let count: bigint;
    let target: number;
    if (fromImm) {
      count = BigInt(x.insn.imm8);
      target = x.insn.rm;
    } else {
      const fault = x.loadSrc(16);
      if (fault !== null) return fault;
      count = x.srcView.getBigUint64(0, true);
      target = x.insn.reg;
    }
    const t = target * 16;
    x.dst.set(x.state.xmm.subarray(t, t + 16));
    const bits = BigInt(bytes * 8);
    for (let i = 0; i < 16; i += bytes) {
      const v = bytes === 8
        ? x.dstView.getBigUint64(i, true)
        : BigInt(lane(x.dstView, i, bytes as 2 | 4));
      let r: bigint;
      if (count >= bits) {
        r = kind === "ra" ? (v >> (bits - 1n) & 1n ? (1n << bits) - 1n : 0n) : 0n;
      } else if (kind === "l") {
        r = (v << count) & ((1n << bits) - 1n);
      } else if (kind === "rl") {
        r = v >> count;
      } else {
        r = BigInt.asUintN(Number(bits), BigInt.asIntN(Number(bits), v) >> count);
      }
      if (bytes === 8) x.outView.setBigUint64(i, r, true);
      else setLane(x.outView, i, bytes, Number(r));
    }
    x.storeXmm(target);
    return null;
  };
  return op(mnemonic, fromImm ? 0 : 16, run, {
    aligned: !fromImm,
    imm: fromImm,
    only: fromImm ? 1 : 0,
  });
}

/** PSRLDQ/PSLLDQ: byte shifts of the whole register by imm8. */
function byteShift(mnemonic: string, left: boolean): Op {
  return op(mnemonic, 0, (x) => {
    const t = x.insn.rm * 16;
    x.dst.set(x.state.xmm.subarray(t, t + 16));
    const n = Math.min(x.insn.imm8, 16);
    x.out.fill(0);
    for (let i = 0; i < 16; i++) {
      const from = left ? i - n : i + n;
      if (from >= 0 && from < 16) x.out[i] = x.dst[from]!;
    }
    x.storeXmm(x.insn.rm);
    return null;
  }, { imm: true, only: 1 });
}

/** Group 0F 71/72/73 (by ModRM.reg). */
function group(entries: Partial<Record<number, Op>>): Op {
  return {
    mnemonic: "(group)",
    size: 0,
    aligned: false,
    imm: false, // each member says
    only: 0,
    run: (): SseResult | null => null,
    group: entries,
  };
}

/** MOVMSKPS / MOVMSKPD / PMOVMSKB: sign bits to a general register. */
function moveMask(mnemonic: string, bytes: 1 | 4 | 8): Op {
  return op(mnemonic, 0, (x) => {
    const s = x.insn.rm * 16;
    let mask = 0;
    for (let i = 0; i < 16 / bytes; i++) {
      if (x.state.xmm[s + i * bytes + bytes - 1]! & 0x80) mask |= 1 << i;
    }
    x.setGpr(x.insn.reg, BigInt(mask), 64);
    return null;
  }, { only: 1 });
}

/** The integer width of a REX.W-dependent operand. */
function width(x: Exec): 32 | 64 {
  return x.insn.rexW ? 64 : 32;
}

/** Reads a 32/64-bit integer r/m operand (general register or memory). */
function intSrc(x: Exec): bigint | SseResult {
  const w = width(x);
  if (!x.insn.memory) {
    const v = x.gpr(x.insn.rm);
    return w === 32 ? v & 0xffff_ffffn : v;
  }
  x.src.fill(0);
  const fault = x.read(x.src.subarray(0, w / 8));
  if (fault !== null) return fault;
  return x.srcView.getBigUint64(0, true);
}

/** CVTSI2SS/CVTSI2SD. */
function cvtFromInt(mnemonic: string, fmt: FpFormat): Op {
  return op(mnemonic, [4, 8], (x) => {
    const v = intSrc(x);
    if (typeof v !== "bigint") return v;
    x.loadDst();
    const n = BigInt.asIntN(width(x), v);
    fpSet(x.outView, 0, fmt, fpFromInt(n, fmt, x.env));
    x.storeXmm(x.insn.reg);
    return null;
  });
}

/** CVT(T)SS2SI/CVT(T)SD2SI: to a 32/64-bit general register. */
function cvtToInt(mnemonic: string, fmt: FpFormat, truncate: boolean): Op {
  return op(mnemonic, fmt / 8, (x) => {
    const fault = x.loadSrc(fmt / 8);
    if (fault !== null) return fault;
    const w = width(x);
    x.setGpr(x.insn.reg, fpToInt(fpGet(x.srcView, 0, fmt), fmt, w, truncate, x.env), w);
    return null;
  });
}

/** Packed conversions between lanes of different sizes. */
function cvtPacked(
  mnemonic: string,
  size: number,
  aligned: boolean,
  f: (x: Exec) => void,
): Op {
  return op(mnemonic, size, (x) => {
    const fault = x.loadSrc(size);
    if (fault !== null) return fault;
    x.loadDst();
    f(x);
    x.storeXmm(x.insn.reg);
    return null;
  }, { aligned });
}

function cvtFloatToInt32Lanes(fmt: FpFormat, truncate: boolean): (x: Exec) => void {
  return (x) => {
    const w = fmt / 8;
    const n = 16 / w;
    x.out.fill(0);
    for (let i = 0; i < n; i++) {
      const r = fpToInt(fpGet(x.srcView, i * w, fmt), fmt, 32, truncate, x.env);
      x.outView.setUint32(i * 4, Number(r), true);
    }
  };
}

/** MOVD/MOVQ xmm, r/m32/64. */
const movdLoad = op("movd", [4, 8], (x) => {
  const v = intSrc(x);
  if (typeof v !== "bigint") return v;
  x.out.fill(0);
  x.outView.setBigUint64(0, v, true);
  x.storeXmm(x.insn.reg);
  return null;
}, { mnemonicW: "movq" });

/** MOVD/MOVQ r/m32/64, xmm. */
const movdStore = op("movd", [4, 8], (x) => {
  const r = x.insn.reg * 16;
  const bytes = width(x) / 8;
  if (x.insn.memory) return x.write(x.state.xmm.slice(r, r + bytes));
  const v = new DataView(x.state.xmm.buffer, x.state.xmm.byteOffset + r, 8).getBigUint64(0, true);
  x.setGpr(x.insn.rm, v, width(x));
  return null;
}, { mnemonicW: "movq" });

const ldmxcsr = op("ldmxcsr", 4, (x) => {
  x.src.fill(0);
  const fault = memoryFault(x.mem.read(x.insn.address, x.src.subarray(0, 4)));
  if (fault !== null) return fault;
  const v = x.srcView.getUint32(0, true);
  if ((v & 0xffff_0000) !== 0) return { kind: "exception", vector: VECTOR_GP, errorCode: 0 };
  x.newMxcsr = v;
  x.changed |= SSE_CHANGED.MXCSR;
  return null;
}, { only: 2 });

const stmxcsr = op("stmxcsr", 4, (x) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x.state.mxcsr, true);
  return x.write(b);
}, { only: 2 });

function pshufLanes(x: Exec, base: number, count: number, bytes: number): void {
  for (let i = 0; i < count; i++) {
    const sel = (x.insn.imm8 >> (2 * i)) & 3;
    x.out.set(
      x.src.subarray(base + sel * bytes, base + (sel + 1) * bytes),
      base + i * bytes,
    );
  }
}

function pcmp(mnemonic: string, bytes: 1 | 2 | 4, gt: boolean): Op {
  const ones = bytes === 4 ? 0xffff_ffff : (1 << (bytes * 8)) - 1;
  return intLanes(mnemonic, bytes, (a, b) => {
    const t = gt ? signed(a, bytes) > signed(b, bytes) : a === b;
    return t ? ones : 0;
  });
}

function addSub(mnemonic: string, bytes: 1 | 2 | 4, sub: boolean): Op {
  const m = bytes === 4 ? 0x1_0000_0000 : 1 << (bytes * 8);
  return intLanes(mnemonic, bytes, (a, b) => {
    const r = sub ? a - b : a + b;
    return ((r % m) + m) % m;
  });
}

function satAddSub(mnemonic: string, bytes: 1 | 2, sub: boolean, isSigned: boolean): Op {
  const bits = bytes * 8;
  const lo = isSigned ? -(1 << (bits - 1)) : 0;
  const hi = isSigned ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  return intLanes(mnemonic, bytes, (a, b) => {
    const x = isSigned ? signed(a, bytes) : a;
    const y = isSigned ? signed(b, bytes) : b;
    const r = saturate(sub ? x - y : x + y, lo, hi);
    return r & ((1 << bits) - 1);
  });
}

function minMaxInt(mnemonic: string, bytes: 1 | 2 | 4, isSigned: boolean, max: boolean): Op {
  return intLanes(mnemonic, bytes, (a, b) => {
    const x = isSigned ? signed(a, bytes) : a;
    const y = isSigned ? signed(b, bytes) : b;
    return (max ? x >= y : x <= y) ? a : b;
  });
}

function pack(mnemonic: string, from: 2 | 4, isSigned: boolean): Op {
  const to = (from / 2) as 1 | 2;
  const bits = to * 8;
  const lo = isSigned ? -(1 << (bits - 1)) : 0;
  const hi = isSigned ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  return vec(mnemonic, (x) => {
    const n = 16 / from;
    for (let i = 0; i < n; i++) {
      const a = signed(lane(x.dstView, i * from, from), from);
      const b = signed(lane(x.srcView, i * from, from), from);
      setLane(x.outView, i * to, to, saturate(a, lo, hi) & ((1 << bits) - 1));
      setLane(x.outView, (n + i) * to, to, saturate(b, lo, hi) & ((1 << bits) - 1));
    }
  });
}

const bitwise = (name: string, f: (a: bigint, b: bigint) => bigint): Op => qLanes(name, f);

// ---------------------------------------------------------------------------
// Opcode tables: key = map << 10 | prefix index << 8 | opcode
// ---------------------------------------------------------------------------

const P_NONE = 0;
const P_66 = 1;
const P_F3 = 2;
const P_F2 = 3;

const TABLE = new Map<number, Op>();

function def(map: 2 | 3 | 4, prefix: number, opcode: number, entry: Op): void {
  TABLE.set(map << 10 | prefix << 8 | opcode, entry);
}

function defAll(map: 2 | 3 | 4, opcode: number, entries: readonly Op[]): void {
  // Order: none (ps), 66 (pd), F3 (ss), F2 (sd).
  entries.forEach((e, i) => def(map, [P_NONE, P_66, P_F3, P_F2][i]!, opcode, e));
}

// Moves.
def(2, P_NONE, 0x10, moveLoad("movups", 16, false, false));
def(2, P_66, 0x10, moveLoad("movupd", 16, false, false));
def(2, P_F3, 0x10, moveLoad("movss", 4, false, true));
def(2, P_F2, 0x10, moveLoad("movsd", 8, false, true));
def(2, P_NONE, 0x11, moveStore("movups", 16, false, false));
def(2, P_66, 0x11, moveStore("movupd", 16, false, false));
def(2, P_F3, 0x11, moveStore("movss", 4, false, true));
def(2, P_F2, 0x11, moveStore("movsd", 8, false, true));
def(2, P_NONE, 0x28, moveLoad("movaps", 16, true, false));
def(2, P_66, 0x28, moveLoad("movapd", 16, true, false));
def(2, P_NONE, 0x29, moveStore("movaps", 16, true, false));
def(2, P_66, 0x29, moveStore("movapd", 16, true, false));
def(2, P_NONE, 0x2b, op("movntps", 16, (x) => movntStore(x), { aligned: true, only: 2 }));
def(2, P_66, 0x2b, op("movntpd", 16, (x) => movntStore(x), { aligned: true, only: 2 }));
def(2, P_66, 0xe7, op("movntdq", 16, (x) => movntStore(x), { aligned: true, only: 2 }));
def(2, P_66, 0x6f, moveLoad("movdqa", 16, true, false));
def(2, P_F3, 0x6f, moveLoad("movdqu", 16, false, false));
def(2, P_66, 0x7f, moveStore("movdqa", 16, true, false));
def(2, P_F3, 0x7f, moveStore("movdqu", 16, false, false));
def(
  2,
  P_F2,
  0xf0,
  op("lddqu", 16, (x) => {
    const fault = x.loadSrc(16);
    if (fault !== null) return fault;
    x.out.set(x.src);
    x.storeXmm(x.insn.reg);
    return null;
  }, { only: 2 }),
);
def(2, P_66, 0x6e, movdLoad);
def(2, P_66, 0x7e, movdStore);
// MOVQ xmm, xmm/m64 (F3 0F 7E) and MOVQ xmm/m64, xmm (66 0F D6): the register forms zero bits 64–127.
def(2, P_F3, 0x7e, moveLoad("movq", 8, false, false));
def(
  2,
  P_66,
  0xd6,
  op("movq", 8, (x) => {
    const r = x.insn.reg * 16;
    const value = x.state.xmm.slice(r, r + 8);
    if (x.insn.memory) return x.write(value);
    x.out.fill(0);
    x.out.set(value);
    x.storeXmm(x.insn.rm);
    return null;
  }),
);
// MOVLPS/MOVHLPS, MOVHPS/MOVLHPS, MOVLPD, MOVHPD.
def(
  2,
  P_NONE,
  0x12,
  shuffle(
    "movlps",
    (x) => {
      if (x.insn.memory) x.out.set(x.src.subarray(0, 8), 0);
      else x.out.set(x.src.subarray(8, 16), 0);
    },
    false,
    8,
  ),
);
def(2, P_NONE, 0x16, shuffle("movhps", (x) => x.out.set(x.src.subarray(0, 8), 8), false, 8));
def(2, P_66, 0x12, memOnly(shuffle("movlpd", (x) => x.out.set(x.src.subarray(0, 8), 0), false, 8)));
def(2, P_66, 0x16, memOnly(shuffle("movhpd", (x) => x.out.set(x.src.subarray(0, 8), 8), false, 8)));
def(2, P_NONE, 0x13, storeHalf("movlps", 0));
def(2, P_66, 0x13, storeHalf("movlpd", 0));
def(2, P_NONE, 0x17, storeHalf("movhps", 8));
def(2, P_66, 0x17, storeHalf("movhpd", 8));
def(
  2,
  P_F3,
  0x12,
  shuffle("movsldup", (x) => {
    for (let i = 0; i < 4; i += 2) {
      x.out.set(x.src.subarray(i * 4, i * 4 + 4), i * 4);
      x.out.set(x.src.subarray(i * 4, i * 4 + 4), i * 4 + 4);
    }
  }),
);
def(
  2,
  P_F3,
  0x16,
  shuffle("movshdup", (x) => {
    for (let i = 0; i < 4; i += 2) {
      x.out.set(x.src.subarray(i * 4 + 4, i * 4 + 8), i * 4);
      x.out.set(x.src.subarray(i * 4 + 4, i * 4 + 8), i * 4 + 4);
    }
  }),
);
def(
  2,
  P_F2,
  0x12,
  shuffle(
    "movddup",
    (x) => {
      x.out.set(x.src.subarray(0, 8), 0);
      x.out.set(x.src.subarray(0, 8), 8);
    },
    false,
    8,
  ),
);

function memOnly(o: Op): Op {
  return { ...o, only: 2 };
}

function storeHalf(mnemonic: string, from: number): Op {
  return op(mnemonic, 8, (x) => {
    const r = x.insn.reg * 16 + from;
    return x.write(x.state.xmm.slice(r, r + 8));
  }, { only: 2 });
}

function movntStore(x: Exec): SseResult | null {
  const r = x.insn.reg * 16;
  return x.write(x.state.xmm.slice(r, r + 16));
}

// Unpacks and shuffles.
def(2, P_NONE, 0x14, shuffle("unpcklps", unpack(4, false)));
def(2, P_66, 0x14, shuffle("unpcklpd", unpack(8, false)));
def(2, P_NONE, 0x15, shuffle("unpckhps", unpack(4, true)));
def(2, P_66, 0x15, shuffle("unpckhpd", unpack(8, true)));
def(2, P_66, 0x60, shuffle("punpcklbw", unpack(1, false)));
def(2, P_66, 0x61, shuffle("punpcklwd", unpack(2, false)));
def(2, P_66, 0x62, shuffle("punpckldq", unpack(4, false)));
def(2, P_66, 0x6c, shuffle("punpcklqdq", unpack(8, false)));
def(2, P_66, 0x68, shuffle("punpckhbw", unpack(1, true)));
def(2, P_66, 0x69, shuffle("punpckhwd", unpack(2, true)));
def(2, P_66, 0x6a, shuffle("punpckhdq", unpack(4, true)));
def(2, P_66, 0x6d, shuffle("punpckhqdq", unpack(8, true)));
def(
  2,
  P_NONE,
  0xc6,
  shuffle("shufps", (x) => {
    const imm = x.insn.imm8;
    for (let i = 0; i < 4; i++) {
      const from = i < 2 ? x.dst : x.src;
      const sel = (imm >> (2 * i)) & 3;
      x.out.set(from.subarray(sel * 4, sel * 4 + 4), i * 4);
    }
  }, true),
);
def(
  2,
  P_66,
  0xc6,
  shuffle("shufpd", (x) => {
    const imm = x.insn.imm8;
    x.out.set(x.dst.subarray((imm & 1) * 8, (imm & 1) * 8 + 8), 0);
    x.out.set(x.src.subarray((imm >> 1 & 1) * 8, (imm >> 1 & 1) * 8 + 8), 8);
  }, true),
);
def(2, P_66, 0x70, shuffle("pshufd", (x) => pshufLanes(x, 0, 4, 4), true));
def(
  2,
  P_F2,
  0x70,
  shuffle("pshuflw", (x) => {
    x.out.set(x.src.subarray(8, 16), 8);
    pshufLanes(x, 0, 4, 2);
  }, true),
);
def(
  2,
  P_F3,
  0x70,
  shuffle("pshufhw", (x) => {
    x.out.set(x.src.subarray(0, 8), 0);
    pshufLanes(x, 8, 4, 2);
  }, true),
);
def(
  3,
  P_66,
  0x00,
  shuffle("pshufb", (x) => {
    for (let i = 0; i < 16; i++) {
      const s = x.src[i]!;
      x.out[i] = s & 0x80 ? 0 : x.dst[s & 15]!;
    }
  }),
);
def(
  4,
  P_66,
  0x0f,
  shuffle("palignr", (x) => {
    const n = x.insn.imm8;
    for (let i = 0; i < 16; i++) {
      const k = i + n; // index into the 32-byte dst:src concatenation (src low)
      x.out[i] = k < 16 ? x.src[k]! : k < 32 ? x.dst[k - 16]! : 0;
    }
  }, true),
);

// Bitwise.
for (
  const [opcode, name, f] of [
    [0x54, "and", (a: bigint, b: bigint): bigint => a & b],
    [0x55, "andn", (a: bigint, b: bigint): bigint => ~a & b],
    [0x56, "or", (a: bigint, b: bigint): bigint => a | b],
    [0x57, "xor", (a: bigint, b: bigint): bigint => a ^ b],
  ] as const
) {
  def(2, P_NONE, opcode, bitwise(`${name}ps`, f));
  def(2, P_66, opcode, bitwise(`${name}pd`, f));
}
def(2, P_66, 0xdb, bitwise("pand", (a, b) => a & b));
def(2, P_66, 0xdf, bitwise("pandn", (a, b) => ~a & b));
def(2, P_66, 0xeb, bitwise("por", (a, b) => a | b));
def(2, P_66, 0xef, bitwise("pxor", (a, b) => a ^ b));

// Integer arithmetic and comparisons.
def(2, P_66, 0xfc, addSub("paddb", 1, false));
def(2, P_66, 0xfd, addSub("paddw", 2, false));
def(2, P_66, 0xfe, addSub("paddd", 4, false));
def(2, P_66, 0xd4, qLanes("paddq", (a, b) => a + b));
def(2, P_66, 0xf8, addSub("psubb", 1, true));
def(2, P_66, 0xf9, addSub("psubw", 2, true));
def(2, P_66, 0xfa, addSub("psubd", 4, true));
def(2, P_66, 0xfb, qLanes("psubq", (a, b) => a - b));
def(2, P_66, 0xec, satAddSub("paddsb", 1, false, true));
def(2, P_66, 0xed, satAddSub("paddsw", 2, false, true));
def(2, P_66, 0xdc, satAddSub("paddusb", 1, false, false));
def(2, P_66, 0xdd, satAddSub("paddusw", 2, false, false));
def(2, P_66, 0xe8, satAddSub("psubsb", 1, true, true));
def(2, P_66, 0xe9, satAddSub("psubsw", 2, true, true));
def(2, P_66, 0xd8, satAddSub("psubusb", 1, true, false));
def(2, P_66, 0xd9, satAddSub("psubusw", 2, true, false));
def(2, P_66, 0x74, pcmp("pcmpeqb", 1, false));
def(2, P_66, 0x75, pcmp("pcmpeqw", 2, false));
def(2, P_66, 0x76, pcmp("pcmpeqd", 4, false));
def(2, P_66, 0x64, pcmp("pcmpgtb", 1, true));
def(2, P_66, 0x65, pcmp("pcmpgtw", 2, true));
def(2, P_66, 0x66, pcmp("pcmpgtd", 4, true));
def(3, P_66, 0x29, qLanes("pcmpeqq", (a, b) => a === b ? MASK64 : 0n));
def(
  3,
  P_66,
  0x37,
  qLanes("pcmpgtq", (a, b) => BigInt.asIntN(64, a) > BigInt.asIntN(64, b) ? MASK64 : 0n),
);
def(2, P_66, 0xda, minMaxInt("pminub", 1, false, false));
def(2, P_66, 0xde, minMaxInt("pmaxub", 1, false, true));
def(2, P_66, 0xea, minMaxInt("pminsw", 2, true, false));
def(2, P_66, 0xee, minMaxInt("pmaxsw", 2, true, true));
def(3, P_66, 0x38, minMaxInt("pminsb", 1, true, false));
def(3, P_66, 0x39, minMaxInt("pminsd", 4, true, false));
def(3, P_66, 0x3a, minMaxInt("pminuw", 2, false, false));
def(3, P_66, 0x3b, minMaxInt("pminud", 4, false, false));
def(3, P_66, 0x3c, minMaxInt("pmaxsb", 1, true, true));
def(3, P_66, 0x3d, minMaxInt("pmaxsd", 4, true, true));
def(3, P_66, 0x3e, minMaxInt("pmaxuw", 2, false, true));
def(3, P_66, 0x3f, minMaxInt("pmaxud", 4, false, true));
def(2, P_66, 0xe0, intLanes("pavgb", 1, (a, b) => (a + b + 1) >> 1));
def(2, P_66, 0xe3, intLanes("pavgw", 2, (a, b) => (a + b + 1) >> 1));
def(2, P_66, 0xd5, intLanes("pmullw", 2, (a, b) => Math.imul(a, b) & 0xffff));
def(2, P_66, 0xe5, intLanes("pmulhw", 2, (a, b) => (signed(a, 2) * signed(b, 2)) >> 16 & 0xffff));
def(2, P_66, 0xe4, intLanes("pmulhuw", 2, (a, b) => (a * b) >>> 16));
def(3, P_66, 0x40, intLanes("pmulld", 4, (a, b) => Math.imul(a, b) >>> 0));
def(2, P_66, 0xf4, qLanes("pmuludq", (a, b) => (a & 0xffff_ffffn) * (b & 0xffff_ffffn)));
def(
  2,
  P_66,
  0xf5,
  vec("pmaddwd", (x) => {
    for (let i = 0; i < 16; i += 4) {
      const r = signed(x.dstView.getUint16(i, true), 2) * signed(x.srcView.getUint16(i, true), 2) +
        signed(x.dstView.getUint16(i + 2, true), 2) * signed(x.srcView.getUint16(i + 2, true), 2);
      x.outView.setUint32(i, r >>> 0, true);
    }
  }),
);
def(
  2,
  P_66,
  0xf6,
  vec("psadbw", (x) => {
    x.out.fill(0);
    for (let h = 0; h < 16; h += 8) {
      let s = 0;
      for (let i = h; i < h + 8; i++) s += Math.abs(x.dst[i]! - x.src[i]!);
      x.outView.setUint16(h, s, true);
    }
  }),
);
def(2, P_66, 0x63, pack("packsswb", 2, true));
def(2, P_66, 0x67, pack("packuswb", 2, false));
def(2, P_66, 0x6b, pack("packssdw", 4, true));
def(3, P_66, 0x2b, pack("packusdw", 4, false));
def(2, P_66, 0xd7, moveMask("pmovmskb", 1));
def(2, P_NONE, 0x50, moveMask("movmskps", 4));
def(2, P_66, 0x50, moveMask("movmskpd", 8));
def(
  2,
  P_66,
  0xc5,
  op("pextrw", 0, (x) => {
    const s = x.insn.rm * 16 + (x.insn.imm8 & 7) * 2;
    x.setGpr(x.insn.reg, BigInt(x.state.xmm[s]! | x.state.xmm[s + 1]! << 8), 64);
    return null;
  }, { imm: true, only: 1 }),
);
def(
  2,
  P_66,
  0xc4,
  op("pinsrw", 2, (x) => {
    let v: number;
    if (x.insn.memory) {
      x.src.fill(0);
      const fault = x.read(x.src.subarray(0, 2));
      if (fault !== null) return fault;
      v = x.srcView.getUint16(0, true);
    } else {
      v = Number(x.gpr(x.insn.rm) & 0xffffn);
    }
    x.loadDst();
    x.outView.setUint16((x.insn.imm8 & 7) * 2, v, true);
    x.storeXmm(x.insn.reg);
    return null;
  }, { imm: true }),
);
def(
  4,
  P_66,
  0x16,
  op("pextrd", [4, 8], (x) => {
    const w = width(x);
    const n = w / 8;
    const sel = x.insn.imm8 & (w === 64 ? 1 : 3);
    const r = x.insn.reg * 16 + sel * n;
    const bytes = x.state.xmm.slice(r, r + n);
    if (x.insn.memory) return x.write(bytes);
    const v = w === 64
      ? new DataView(bytes.buffer).getBigUint64(0, true)
      : BigInt(new DataView(bytes.buffer).getUint32(0, true));
    x.setGpr(x.insn.rm, v, w);
    return null;
  }, { imm: true, mnemonicW: "pextrq" }),
);
def(
  4,
  P_66,
  0x22,
  op("pinsrd", [4, 8], (x) => {
    const v = intSrc(x);
    if (typeof v !== "bigint") return v;
    x.loadDst();
    if (x.insn.rexW) x.outView.setBigUint64((x.insn.imm8 & 1) * 8, v, true);
    else x.outView.setUint32((x.insn.imm8 & 3) * 4, Number(v & 0xffff_ffffn), true);
    x.storeXmm(x.insn.reg);
    return null;
  }, { imm: true, mnemonicW: "pinsrq" }),
);
def(
  3,
  P_66,
  0x17,
  op("ptest", 16, (x) => {
    const fault = x.loadSrc(16);
    if (fault !== null) return fault;
    x.loadDst();
    let and = 0n;
    let andn = 0n;
    for (let i = 0; i < 16; i += 8) {
      const a = x.dstView.getBigUint64(i, true);
      const b = x.srcView.getBigUint64(i, true);
      and |= a & b;
      andn |= ~a & b & MASK64;
    }
    let f = x.state.rflags &
      ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
    if (and === 0n) f |= RFLAGS_ZF;
    if (andn === 0n) f |= RFLAGS_CF;
    x.setRflags(f);
    return null;
  }, { aligned: true }),
);

// Shifts.
def(2, P_66, 0xd1, shiftOp("psrlw", 2, "rl", false));
def(2, P_66, 0xd2, shiftOp("psrld", 4, "rl", false));
def(2, P_66, 0xd3, shiftOp("psrlq", 8, "rl", false));
def(2, P_66, 0xe1, shiftOp("psraw", 2, "ra", false));
def(2, P_66, 0xe2, shiftOp("psrad", 4, "ra", false));
def(2, P_66, 0xf1, shiftOp("psllw", 2, "l", false));
def(2, P_66, 0xf2, shiftOp("pslld", 4, "l", false));
def(2, P_66, 0xf3, shiftOp("psllq", 8, "l", false));
def(
  2,
  P_66,
  0x71,
  group({
    2: shiftOp("psrlw", 2, "rl", true),
    4: shiftOp("psraw", 2, "ra", true),
    6: shiftOp("psllw", 2, "l", true),
  }),
);
def(
  2,
  P_66,
  0x72,
  group({
    2: shiftOp("psrld", 4, "rl", true),
    4: shiftOp("psrad", 4, "ra", true),
    6: shiftOp("pslld", 4, "l", true),
  }),
);
def(
  2,
  P_66,
  0x73,
  group({
    2: shiftOp("psrlq", 8, "rl", true),
    3: byteShift("psrldq", false),
    6: shiftOp("psllq", 8, "l", true),
    7: byteShift("pslldq", true),
  }),
);
def(2, P_NONE, 0xae, group({ 2: ldmxcsr, 3: stmxcsr })); // the rest of 0F AE: emulate.ts

// Floating point.
defAll(2, 0x58, arith("add", "add"));
defAll(2, 0x59, arith("mul", "mul"));
defAll(2, 0x5c, arith("sub", "sub"));
defAll(2, 0x5e, arith("div", "div"));
defAll(2, 0x5d, minMax("min", false));
defAll(2, 0x5f, minMax("max", true));
defAll(2, 0x51, [
  fpLanes("sqrtps", 32, false, (_a, b, env) => fpSqrt(b, 32, env), false, FAST.sqrt),
  fpLanes("sqrtpd", 64, false, (_a, b, env) => fpSqrt(b, 64, env), false, FAST.sqrt),
  fpLanes("sqrtss", 32, true, (_a, b, env) => fpSqrt(b, 32, env), false, FAST.sqrt),
  fpLanes("sqrtsd", 64, true, (_a, b, env) => fpSqrt(b, 64, env), false, FAST.sqrt),
]);
defAll(2, 0xc2, cmpOps());
def(2, P_NONE, 0x2e, comis("ucomiss", 32, false));
def(2, P_66, 0x2e, comis("ucomisd", 64, false));
def(2, P_NONE, 0x2f, comis("comiss", 32, true));
def(2, P_66, 0x2f, comis("comisd", 64, true));
def(2, P_F3, 0x2a, cvtFromInt("cvtsi2ss", 32));
def(2, P_F2, 0x2a, cvtFromInt("cvtsi2sd", 64));
def(2, P_F3, 0x2c, cvtToInt("cvttss2si", 32, true));
def(2, P_F2, 0x2c, cvtToInt("cvttsd2si", 64, true));
def(2, P_F3, 0x2d, cvtToInt("cvtss2si", 32, false));
def(2, P_F2, 0x2d, cvtToInt("cvtsd2si", 64, false));
def(
  2,
  P_F3,
  0x5a,
  cvtPacked("cvtss2sd", 4, false, (x) => {
    fpSet(x.outView, 0, 64, fpConvert(fpGet(x.srcView, 0, 32), 32, 64, x.env));
  }),
);
def(
  2,
  P_F2,
  0x5a,
  cvtPacked("cvtsd2ss", 8, false, (x) => {
    fpSet(x.outView, 0, 32, fpConvert(fpGet(x.srcView, 0, 64), 64, 32, x.env));
  }),
);
def(
  2,
  P_NONE,
  0x5a,
  cvtPacked("cvtps2pd", 8, false, (x) => {
    for (let i = 0; i < 2; i++) {
      fpSet(x.outView, i * 8, 64, fpConvert(fpGet(x.srcView, i * 4, 32), 32, 64, x.env));
    }
  }),
);
def(
  2,
  P_66,
  0x5a,
  cvtPacked("cvtpd2ps", 16, true, (x) => {
    x.out.fill(0);
    for (let i = 0; i < 2; i++) {
      fpSet(x.outView, i * 4, 32, fpConvert(fpGet(x.srcView, i * 8, 64), 64, 32, x.env));
    }
  }),
);
def(
  2,
  P_NONE,
  0x5b,
  cvtPacked("cvtdq2ps", 16, true, (x) => {
    for (let i = 0; i < 4; i++) {
      fpSet(x.outView, i * 4, 32, fpFromInt(BigInt(x.srcView.getInt32(i * 4, true)), 32, x.env));
    }
  }),
);
def(2, P_66, 0x5b, cvtPacked("cvtps2dq", 16, true, cvtFloatToInt32Lanes(32, false)));
def(2, P_F3, 0x5b, cvtPacked("cvttps2dq", 16, true, cvtFloatToInt32Lanes(32, true)));
def(2, P_66, 0xe6, cvtPacked("cvttpd2dq", 16, true, cvtFloatToInt32Lanes(64, true)));
def(2, P_F2, 0xe6, cvtPacked("cvtpd2dq", 16, true, cvtFloatToInt32Lanes(64, false)));
def(
  2,
  P_F3,
  0xe6,
  cvtPacked("cvtdq2pd", 8, false, (x) => {
    for (let i = 0; i < 2; i++) {
      fpSet(x.outView, i * 8, 64, fpFromInt(BigInt(x.srcView.getInt32(i * 4, true)), 64, x.env));
    }
  }),
);

/**
 * Names of instructions in the SSE opcode space that dhyve recognises but
 * does not execute, for the one-line error: the approximations (their
 * results differ between CPU models), rounding and horizontal operations not
 * needed so far, AES, CLMUL and CRC32.
 */
const KNOWN_UNSUPPORTED = new Map<number, string>([
  [2 << 10 | P_NONE << 8 | 0x52, "rsqrtps"],
  [2 << 10 | P_F3 << 8 | 0x52, "rsqrtss"],
  [2 << 10 | P_NONE << 8 | 0x53, "rcpps"],
  [2 << 10 | P_F3 << 8 | 0x53, "rcpss"],
  [4 << 10 | P_66 << 8 | 0x08, "roundps"],
  [4 << 10 | P_66 << 8 | 0x09, "roundpd"],
  [4 << 10 | P_66 << 8 | 0x0a, "roundss"],
  [4 << 10 | P_66 << 8 | 0x0b, "roundsd"],
  [2 << 10 | P_F2 << 8 | 0x7c, "haddps"],
  [2 << 10 | P_66 << 8 | 0x7c, "haddpd"],
  [2 << 10 | P_66 << 8 | 0xd0, "addsubpd"],
  [2 << 10 | P_F2 << 8 | 0xd0, "addsubps"],
  [3 << 10 | P_66 << 8 | 0xdb, "aesimc"],
  [3 << 10 | P_66 << 8 | 0xdc, "aesenc"],
  [3 << 10 | P_66 << 8 | 0xdd, "aesenclast"],
  [3 << 10 | P_66 << 8 | 0xde, "aesdec"],
  [3 << 10 | P_66 << 8 | 0xdf, "aesdeclast"],
  [4 << 10 | P_66 << 8 | 0xdf, "aeskeygenassist"],
  [4 << 10 | P_66 << 8 | 0x44, "pclmulqdq"],
  [3 << 10 | P_F2 << 8 | 0xf0, "crc32"],
  [3 << 10 | P_F2 << 8 | 0xf1, "crc32"],
]);

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

function prefixIndex(p: number): number {
  return p === 0x66 ? P_66 : p === 0xf3 ? P_F3 : p === 0xf2 ? P_F2 : P_NONE;
}

/** The front end's scratch instruction (decoding allocates nothing else). */
const front = new X86Instruction();

/**
 * Decodes the SSE instruction at the start of `bytes` (at most 15 bytes),
 * computing its memory operand's linear address from `state` (GPRs, RIP,
 * FS/GS base). Returns null when the bytes are not a supported SSE
 * instruction or are truncated; {@linkcode sseMnemonic} then names it if it
 * can.
 */
export function decodeSse(bytes: Uint8Array, state: SseState): SseInstruction | null {
  return decodeOpcode(bytes, front) ? decodeSseOperands(bytes, front, state) : null;
}

/**
 * {@linkcode decodeSse} for `bytes` whose prefixes and opcode `insn` already
 * holds ({@linkcode decodeOpcode}), so that a caller that decodes anyway
 * (the run-ahead) reads them once. Reads the rest of `bytes` into `insn`.
 */
export function decodeSseOperands(
  bytes: Uint8Array,
  insn: X86Instruction,
  state: SseState,
): SseInstruction | null {
  if (insn.map === 1) return null;
  const first = TABLE.get(sseKey(insn));
  if (first === undefined || !decodeModrm(bytes, insn)) return null;
  let entry = first;
  const groupEntries = entry.group;
  if (groupEntries !== undefined) {
    const sub = groupEntries[insn.reg7];
    if (sub === undefined) return null;
    entry = sub;
  }
  const mod = insn.mod;
  if ((entry.only === 1 && mod !== 3) || (entry.only === 2 && mod === 3)) return null;
  if (insn.lock) return null; // #UD on real hardware
  let imm8 = 0;
  if (entry.imm) {
    const b = takeImmediate(bytes, insn, 1);
    if (b === null) return null;
    imm8 = b & 0xff;
  }
  const rexW = insn.rexW;
  const decoded: Decoded = {
    mnemonic: rexW && entry.mnemonicW !== undefined ? entry.mnemonicW : entry.mnemonic,
    length: insn.length,
    prefix: insn.mandatoryPrefix,
    rexW,
    reg: insn.reg,
    rm: insn.rm,
    memory: mod !== 3,
    address: mod !== 3 ? effectiveAddress(insn, state) : 0n,
    imm8,
    op: entry,
  };
  return decoded;
}

/** The table key of the 0F-map opcode decoded into `insn`. */
function sseKey(insn: X86Instruction): number {
  return insn.map << 10 | prefixIndex(insn.mandatoryPrefix) << 8 | insn.opcode;
}

/**
 * Best-effort mnemonic of the instruction at the start of `bytes`, for
 * messages: a supported or known-unsupported SSE instruction, "(VEX-encoded
 * AVX instruction)", or null.
 */
export function sseMnemonic(bytes: Uint8Array): string | null {
  const insn = front;
  if (!decodeOpcode(bytes, insn)) return null;
  if (insn.map === 1) {
    if (insn.rex !== 0) return null;
    if (insn.opcode === 0xc4 || insn.opcode === 0xc5) return "(VEX-encoded AVX instruction)";
    if (insn.opcode === 0x62) return "(EVEX-encoded AVX-512 instruction)";
    return null;
  }
  const key = sseKey(insn);
  const found = TABLE.get(key);
  if (found === undefined) return KNOWN_UNSUPPORTED.get(key) ?? null;
  const modrm = bytes[insn.opcodeEnd];
  if (modrm === undefined) return null;
  const groupEntries = found.group;
  const entry = groupEntries !== undefined ? groupEntries[(modrm >> 3) & 7] : found;
  if (entry === undefined) return null;
  const mod = modrm >> 6;
  if ((entry.only === 1 && mod !== 3) || (entry.only === 2 && mod === 3)) return null;
  return insn.rexW && entry.mnemonicW !== undefined ? entry.mnemonicW : entry.mnemonic;
}

/** Every mnemonic {@linkcode executeSse} can run, sorted. */
export function supportedMnemonics(): string[] {
  const names = new Set<string>();
  for (const entry of TABLE.values()) {
    const groupEntries = entry.group;
    for (const e of groupEntries !== undefined ? Object.values(groupEntries) : [entry]) {
      if (e === undefined) continue;
      names.add(e.mnemonic);
      if (e.mnemonicW !== undefined) names.add(e.mnemonicW);
    }
  }
  return [...names].sort();
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

const exec = new Exec();

/**
 * Runs `insn` (as returned by {@linkcode decodeSse}) against `state` and `mem`. On "done", `state` holds the new
 * registers (RIP advanced) and memory was written; on "exception" or
 * "unsupported", neither `state` nor memory changed. An exception that MXCSR
 * leaves unmasked is reported as "unsupported" (dhyve does not deliver #XM).
 */
export function executeSse(insn: SseInstruction, state: SseState, mem: VirtualMemory): SseResult {
  const x = exec;
  x.insn = insn as Decoded;
  x.state = state;
  x.mem = mem;
  x.env.mxcsr = state.mxcsr;
  x.env.flags = 0;
  x.changed = 0;
  x.outReg = -1;
  x.gprReg = -1;
  x.newMxcsr = -1;
  // Operations compute into `x` and write memory last; registers change only here.
  const result = x.insn.op.run(x);
  if (result !== null) return result;
  const unmasked = x.env.flags & ~(state.mxcsr >> MXCSR_MASK_SHIFT) & MXCSR_FLAGS;
  if (unmasked !== 0) {
    return {
      kind: "unsupported",
      reason: `${insn.mnemonic} raised an unmasked SIMD floating-point exception ` +
        `(MXCSR ${hex(state.mxcsr)}, flags ${hex(unmasked)})`,
    };
  }
  if (x.outReg >= 0) {
    const xmm = state.xmm;
    const out = x.out;
    const at = x.outReg * 16;
    for (let i = 0; i < 16; i++) xmm[at + i] = out[i]!;
  }
  if (x.gprReg >= 0) state.gpr[x.gprReg] = x.gprValue;
  if ((x.changed & SSE_CHANGED.RFLAGS) !== 0) state.rflags = x.newRflags;
  if (x.newMxcsr >= 0) {
    state.mxcsr = x.newMxcsr;
  } else if ((state.mxcsr | x.env.flags) !== state.mxcsr) {
    state.mxcsr |= x.env.flags;
    x.changed |= SSE_CHANGED.MXCSR;
  }
  state.rip = (state.rip + BigInt(insn.length)) & MASK64;
  return { kind: "done", changed: x.changed };
}

/** Decodes and executes in one step; null when `bytes` are not a supported instruction. */
export function emulateSse(
  bytes: Uint8Array,
  state: SseState,
  mem: VirtualMemory,
): { insn: SseInstruction; result: SseResult } | null {
  const insn = decodeSse(bytes, state);
  if (insn === null) return null;
  return { insn, result: executeSse(insn, state, mem) };
}
