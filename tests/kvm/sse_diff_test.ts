/**
 * Differential tests of the SSE emulator (src/emulate/sse.ts) against the
 * host CPU: for every supported instruction and operand form (register and
 * memory, every addressing mode, REX-extended registers), random register and
 * memory inputs — rich in ±0, NaNs (quiet and signalling), ±∞, denormals and
 * integer-conversion boundaries, under random MXCSR rounding/DAZ/FTZ/flags —
 * are run natively by `tests/_helpers/sse_native.c` and in the emulator, and
 * must match bit for bit: XMM registers, general registers, the arithmetic
 * RFLAGS, MXCSR, the memory window, and faults (#GP, #PF address, unmasked
 * SIMD exceptions). Guest memory goes through {@linkcode GuestVirtualMemory}
 * over real page tables. The register-only integer subset of the run-ahead
 * (src/emulate/int.ts) is compared the same way (general registers and the
 * defined RFLAGS bits). Needs gcc and `--allow-run --allow-read --allow-write`.
 * `SSE_DIFF_CASES` scales the case count (default 1), `SSE_DIFF_SEED` fixes the seed,
 * `SSE_DIFF_ONLY` keeps the forms whose name starts with it.
 * @module
 */

import assert from "node:assert/strict";
import { type SseState, supportedMnemonics } from "../../src/emulate/sse.ts";
import { runInteger } from "../../src/emulate/int.ts";
import {
  buildSseNative,
  type CpuFeatures,
  gccAvailable,
  NATIVE_CODE_ADDRESS,
  NATIVE_DATA_ADDRESS,
  type NativeCase,
  runNative,
  WINDOW,
} from "../_helpers/sse_native.ts";
import { encode, type MemOperand } from "../_helpers/x86_encode.ts";
import {
  compare,
  emulate,
  emulatorMemory,
  FLAGS_MASK,
  hexBytes,
} from "../_helpers/sse_emulated.ts";

// ---------------------------------------------------------------------------
// The forms under test
// ---------------------------------------------------------------------------

type Data = "f32" | "f64" | "i";
type Feature = "sse3" | "ssse3" | "sse41" | "sse42";

interface Form {
  mnemonic: string;
  prefix: number;
  map: 2 | 3 | 4;
  opcode: number;
  /** r/m kind: xmm or memory, xmm only, memory only, GPR or memory, GPR only. */
  rm: "x" | "xr" | "m" | "g" | "gr";
  /** ModRM.reg kind. */
  reg: "x" | "g";
  /** Memory operand size. */
  mem: number;
  imm: boolean;
  /** Fixed ModRM.reg (opcode groups). */
  group?: number;
  w?: boolean;
  data: Data;
  feature?: Feature;
  /** Relative weight of this form's case count. */
  weight: number;
}

const FORMS: Form[] = [];

function add(
  mnemonic: string,
  prefix: number,
  map: 2 | 3 | 4,
  opcode: number,
  o: Partial<Omit<Form, "mnemonic" | "prefix" | "map" | "opcode">> = {},
): void {
  const form: Form = {
    mnemonic,
    prefix,
    map,
    opcode,
    rm: o.rm ?? "x",
    reg: o.reg ?? "x",
    mem: o.mem ?? 16,
    imm: o.imm ?? false,
    data: o.data ?? "i",
    weight: o.weight ?? 1,
  };
  if (o.group !== undefined) form.group = o.group;
  if (o.w !== undefined) form.w = o.w;
  if (o.feature !== undefined) form.feature = o.feature;
  FORMS.push(form);
}

// Moves (both directions share the encoding shape).
for (const [op, dir] of [[0x10, "load"], [0x11, "store"]] as const) {
  add(`movups/${dir}`, 0, 2, op, { data: "f32" });
  add(`movupd/${dir}`, 0x66, 2, op, { data: "f64" });
  add(`movss/${dir}`, 0xf3, 2, op, { mem: 4, data: "f32" });
  add(`movsd/${dir}`, 0xf2, 2, op, { mem: 8, data: "f64" });
}
for (const [op, dir] of [[0x28, "load"], [0x29, "store"]] as const) {
  add(`movaps/${dir}`, 0, 2, op, { data: "f32" });
  add(`movapd/${dir}`, 0x66, 2, op, { data: "f64" });
}
add("movntps", 0, 2, 0x2b, { rm: "m" });
add("movntpd", 0x66, 2, 0x2b, { rm: "m" });
add("movntdq", 0x66, 2, 0xe7, { rm: "m" });
add("movdqa/load", 0x66, 2, 0x6f);
add("movdqa/store", 0x66, 2, 0x7f);
add("movdqu/load", 0xf3, 2, 0x6f);
add("movdqu/store", 0xf3, 2, 0x7f);
add("lddqu", 0xf2, 2, 0xf0, { rm: "m", feature: "sse3" });
add("movd/load", 0x66, 2, 0x6e, { rm: "g", mem: 4 });
add("movq/load", 0x66, 2, 0x6e, { rm: "g", mem: 8, w: true });
add("movd/store", 0x66, 2, 0x7e, { rm: "g", mem: 4 });
add("movq/store", 0x66, 2, 0x7e, { rm: "g", mem: 8, w: true });
add("movq xmm, xmm/m64", 0xf3, 2, 0x7e, { mem: 8 });
add("movq xmm/m64, xmm", 0x66, 2, 0xd6, { mem: 8 });
add("movlps/movhlps", 0, 2, 0x12, { mem: 8, data: "f32" });
add("movhps/movlhps", 0, 2, 0x16, { mem: 8, data: "f32" });
add("movlpd", 0x66, 2, 0x12, { rm: "m", mem: 8, data: "f64" });
add("movhpd", 0x66, 2, 0x16, { rm: "m", mem: 8, data: "f64" });
add("movlps/store", 0, 2, 0x13, { rm: "m", mem: 8 });
add("movlpd/store", 0x66, 2, 0x13, { rm: "m", mem: 8 });
add("movhps/store", 0, 2, 0x17, { rm: "m", mem: 8 });
add("movhpd/store", 0x66, 2, 0x17, { rm: "m", mem: 8 });
add("movsldup", 0xf3, 2, 0x12, { feature: "sse3" });
add("movshdup", 0xf3, 2, 0x16, { feature: "sse3" });
add("movddup", 0xf2, 2, 0x12, { mem: 8, feature: "sse3" });
// Shuffles and unpacks.
add("unpcklps", 0, 2, 0x14, { data: "f32" });
add("unpcklpd", 0x66, 2, 0x14, { data: "f64" });
add("unpckhps", 0, 2, 0x15, { data: "f32" });
add("unpckhpd", 0x66, 2, 0x15, { data: "f64" });
for (
  const [name, op] of [
    ["punpcklbw", 0x60],
    ["punpcklwd", 0x61],
    ["punpckldq", 0x62],
    ["punpcklqdq", 0x6c],
    ["punpckhbw", 0x68],
    ["punpckhwd", 0x69],
    ["punpckhdq", 0x6a],
    ["punpckhqdq", 0x6d],
  ] as const
) add(name, 0x66, 2, op);
add("shufps", 0, 2, 0xc6, { imm: true, data: "f32" });
add("shufpd", 0x66, 2, 0xc6, { imm: true, data: "f64" });
add("pshufd", 0x66, 2, 0x70, { imm: true });
add("pshuflw", 0xf2, 2, 0x70, { imm: true });
add("pshufhw", 0xf3, 2, 0x70, { imm: true });
add("pshufb", 0x66, 3, 0x00, { feature: "ssse3" });
add("palignr", 0x66, 4, 0x0f, { imm: true, feature: "ssse3" });
// Bitwise.
for (const [name, op] of [["and", 0x54], ["andn", 0x55], ["or", 0x56], ["xor", 0x57]] as const) {
  add(`${name}ps`, 0, 2, op, { data: "f32" });
  add(`${name}pd`, 0x66, 2, op, { data: "f64" });
}
for (
  const [name, op] of [["pand", 0xdb], ["pandn", 0xdf], ["por", 0xeb], ["pxor", 0xef]] as const
) {
  add(name, 0x66, 2, op);
}
// Integer arithmetic.
for (
  const [name, op] of [
    ["paddb", 0xfc],
    ["paddw", 0xfd],
    ["paddd", 0xfe],
    ["paddq", 0xd4],
    ["psubb", 0xf8],
    ["psubw", 0xf9],
    ["psubd", 0xfa],
    ["psubq", 0xfb],
    ["paddsb", 0xec],
    ["paddsw", 0xed],
    ["paddusb", 0xdc],
    ["paddusw", 0xdd],
    ["psubsb", 0xe8],
    ["psubsw", 0xe9],
    ["psubusb", 0xd8],
    ["psubusw", 0xd9],
    ["pcmpeqb", 0x74],
    ["pcmpeqw", 0x75],
    ["pcmpeqd", 0x76],
    ["pcmpgtb", 0x64],
    ["pcmpgtw", 0x65],
    ["pcmpgtd", 0x66],
    ["pminub", 0xda],
    ["pmaxub", 0xde],
    ["pminsw", 0xea],
    ["pmaxsw", 0xee],
    ["pavgb", 0xe0],
    ["pavgw", 0xe3],
    ["pmullw", 0xd5],
    ["pmulhw", 0xe5],
    ["pmulhuw", 0xe4],
    ["pmuludq", 0xf4],
    ["pmaddwd", 0xf5],
    ["psadbw", 0xf6],
    ["packsswb", 0x63],
    ["packuswb", 0x67],
    ["packssdw", 0x6b],
    ["psrlw", 0xd1],
    ["psrld", 0xd2],
    ["psrlq", 0xd3],
    ["psraw", 0xe1],
    ["psrad", 0xe2],
    ["psllw", 0xf1],
    ["pslld", 0xf2],
    ["psllq", 0xf3],
  ] as const
) add(name, 0x66, 2, op);
for (
  const [name, op] of [
    ["pcmpeqq", 0x29],
    ["pminsb", 0x38],
    ["pminsd", 0x39],
    ["pminuw", 0x3a],
    ["pminud", 0x3b],
    ["pmaxsb", 0x3c],
    ["pmaxsd", 0x3d],
    ["pmaxuw", 0x3e],
    ["pmaxud", 0x3f],
    ["pmulld", 0x40],
    ["packusdw", 0x2b],
    ["ptest", 0x17],
  ] as const
) add(name, 0x66, 3, op, { feature: "sse41" });
add("pcmpgtq", 0x66, 3, 0x37, { feature: "sse42" });
for (
  const [name, op, group] of [
    ["psrlw imm", 0x71, 2],
    ["psraw imm", 0x71, 4],
    ["psllw imm", 0x71, 6],
    ["psrld imm", 0x72, 2],
    ["psrad imm", 0x72, 4],
    ["pslld imm", 0x72, 6],
    ["psrlq imm", 0x73, 2],
    ["psrldq", 0x73, 3],
    ["psllq imm", 0x73, 6],
    ["pslldq", 0x73, 7],
  ] as const
) add(name, 0x66, 2, op, { rm: "xr", imm: true, group });
add("pmovmskb", 0x66, 2, 0xd7, { reg: "g", rm: "xr" });
add("movmskps", 0, 2, 0x50, { reg: "g", rm: "xr", data: "f32" });
add("movmskpd", 0x66, 2, 0x50, { reg: "g", rm: "xr", data: "f64" });
add("pextrw", 0x66, 2, 0xc5, { reg: "g", rm: "xr", imm: true });
add("pinsrw", 0x66, 2, 0xc4, { rm: "g", mem: 2, imm: true });
add("pextrd", 0x66, 4, 0x16, { rm: "g", mem: 4, imm: true, feature: "sse41" });
add("pextrq", 0x66, 4, 0x16, { rm: "g", mem: 8, imm: true, w: true, feature: "sse41" });
add("pinsrd", 0x66, 4, 0x22, { rm: "g", mem: 4, imm: true, feature: "sse41" });
add("pinsrq", 0x66, 4, 0x22, { rm: "g", mem: 8, imm: true, w: true, feature: "sse41" });
add("ldmxcsr", 0, 2, 0xae, { rm: "m", mem: 4, group: 2 });
add("stmxcsr", 0, 2, 0xae, { rm: "m", mem: 4, group: 3 });
// Floating point.
for (
  const [name, op] of [
    ["add", 0x58],
    ["mul", 0x59],
    ["sub", 0x5c],
    ["div", 0x5e],
    ["min", 0x5d],
    ["max", 0x5f],
    ["sqrt", 0x51],
  ] as const
) {
  add(`${name}ps`, 0, 2, op, { data: "f32", weight: 4 });
  add(`${name}pd`, 0x66, 2, op, { data: "f64", weight: 4 });
  add(`${name}ss`, 0xf3, 2, op, { mem: 4, data: "f32", weight: 4 });
  add(`${name}sd`, 0xf2, 2, op, { mem: 8, data: "f64", weight: 4 });
}
add("cmpps", 0, 2, 0xc2, { imm: true, data: "f32", weight: 3 });
add("cmppd", 0x66, 2, 0xc2, { imm: true, data: "f64", weight: 3 });
add("cmpss", 0xf3, 2, 0xc2, { mem: 4, imm: true, data: "f32", weight: 3 });
add("cmpsd", 0xf2, 2, 0xc2, { mem: 8, imm: true, data: "f64", weight: 3 });
add("ucomiss", 0, 2, 0x2e, { mem: 4, data: "f32", weight: 3 });
add("ucomisd", 0x66, 2, 0x2e, { mem: 8, data: "f64", weight: 3 });
add("comiss", 0, 2, 0x2f, { mem: 4, data: "f32", weight: 3 });
add("comisd", 0x66, 2, 0x2f, { mem: 8, data: "f64", weight: 3 });
add("cvtsi2ss r32", 0xf3, 2, 0x2a, { rm: "g", mem: 4, data: "f32", weight: 2 });
add("cvtsi2ss r64", 0xf3, 2, 0x2a, { rm: "g", mem: 8, w: true, data: "f32", weight: 2 });
add("cvtsi2sd r32", 0xf2, 2, 0x2a, { rm: "g", mem: 4, data: "f64", weight: 2 });
add("cvtsi2sd r64", 0xf2, 2, 0x2a, { rm: "g", mem: 8, w: true, data: "f64", weight: 2 });
for (const [name, op] of [["cvtt", 0x2c], ["cvt", 0x2d]] as const) {
  add(`${name}ss2si r32`, 0xf3, 2, op, { reg: "g", mem: 4, data: "f32", weight: 2 });
  add(`${name}ss2si r64`, 0xf3, 2, op, { reg: "g", mem: 4, w: true, data: "f32", weight: 2 });
  add(`${name}sd2si r32`, 0xf2, 2, op, { reg: "g", mem: 8, data: "f64", weight: 2 });
  add(`${name}sd2si r64`, 0xf2, 2, op, { reg: "g", mem: 8, w: true, data: "f64", weight: 2 });
}
add("cvtss2sd", 0xf3, 2, 0x5a, { mem: 4, data: "f32", weight: 3 });
add("cvtsd2ss", 0xf2, 2, 0x5a, { mem: 8, data: "f64", weight: 3 });
add("cvtps2pd", 0, 2, 0x5a, { mem: 8, data: "f32", weight: 2 });
add("cvtpd2ps", 0x66, 2, 0x5a, { data: "f64", weight: 2 });
add("cvtdq2ps", 0, 2, 0x5b, { weight: 2 });
add("cvtps2dq", 0x66, 2, 0x5b, { data: "f32", weight: 2 });
add("cvttps2dq", 0xf3, 2, 0x5b, { data: "f32", weight: 2 });
add("cvttpd2dq", 0x66, 2, 0xe6, { data: "f64", weight: 2 });
add("cvtpd2dq", 0xf2, 2, 0xe6, { data: "f64", weight: 2 });
add("cvtdq2pd", 0xf3, 2, 0xe6, { mem: 8 });

// ---------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------

/** xorshift128+: fast, seedable, good enough for test inputs. */
class Rng {
  #s0: bigint;
  #s1: bigint;
  constructor(seed: number) {
    this.#s0 = BigInt(seed) * 0x9e3779b97f4a7c15n & 0xffff_ffff_ffff_ffffn | 1n;
    this.#s1 = (BigInt(seed) ^ 0xdeadbeefn) * 0xbf58476d1ce4e5b9n & 0xffff_ffff_ffff_ffffn | 1n;
    for (let i = 0; i < 8; i++) this.u64();
  }
  u64(): bigint {
    let x = this.#s0;
    const y = this.#s1;
    this.#s0 = y;
    x ^= (x << 23n) & 0xffff_ffff_ffff_ffffn;
    this.#s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.#s1 + y) & 0xffff_ffff_ffff_ffffn;
  }
  u32(): number {
    return Number(this.u64() >> 32n);
  }
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const F64_SPECIAL: readonly bigint[] = [
  0n,
  0x8000_0000_0000_0000n, // -0
  0x3ff0_0000_0000_0000n, // 1
  0xbff0_0000_0000_0000n, // -1
  0x3fe0_0000_0000_0000n, // 0.5
  0x4004_0000_0000_0000n, // 2.5 (a tie for rounding to integer)
  0x7ff0_0000_0000_0000n, // +inf
  0xfff0_0000_0000_0000n, // -inf
  0x7ff8_0000_0000_0000n, // qNaN
  0xfff8_0000_0000_0000n, // default NaN
  0x7ff8_0000_dead_beefn, // qNaN with payload
  0x7ff0_0000_0000_0001n, // sNaN
  0xfff4_0000_1234_5678n, // -sNaN with payload
  0x0000_0000_0000_0001n, // smallest denormal
  0x800f_ffff_ffff_ffffn, // largest negative denormal
  0x0010_0000_0000_0000n, // smallest normal
  0x7fef_ffff_ffff_ffffn, // largest finite
  0xffef_ffff_ffff_ffffn,
  0x41e0_0000_0000_0000n, // 2^31
  0xc1e0_0000_0000_0000n, // -2^31
  0x41df_ffff_ffe0_0000n, // 2^31 - 1
  0xc1e0_0000_0010_0000n, // -2^31 - 0.5
  0x43e0_0000_0000_0000n, // 2^63
  0xc3e0_0000_0000_0000n, // -2^63
  0xc3e0_0000_0000_0001n, // just below -2^63
  0x4340_0000_0000_0000n, // 2^53
  0x3ca0_0000_0000_0000n, // 2^-53
];
const F32_SPECIAL: readonly number[] = [
  0,
  0x8000_0000,
  0x3f80_0000,
  0xbf80_0000,
  0x3f00_0000,
  0x4020_0000,
  0x7f80_0000,
  0xff80_0000,
  0x7fc0_0000,
  0xffc0_0000,
  0x7fc0_beef,
  0x7f80_0001,
  0xffa0_1234,
  0x0000_0001,
  0x807f_ffff,
  0x0080_0000,
  0x7f7f_ffff,
  0xff7f_ffff,
  0x4f00_0000, // 2^31
  0xcf00_0000,
  0x5f00_0000, // 2^63
  0xdf00_0000,
  0x4b80_0000, // 2^24
  0x3380_0000, // 2^-24
];

function randomF64(r: Rng): bigint {
  const k = r.int(10);
  if (k < 3) return r.pick(F64_SPECIAL);
  const sign = r.chance(0.5) ? 0x8000_0000_0000_0000n : 0n;
  const frac = r.u64() & 0x000f_ffff_ffff_ffffn;
  let exp: number;
  if (k === 3) exp = 0; // denormal
  else if (k === 4) exp = r.pick([1, 2, 3, 0x7fd, 0x7fe]); // near the range ends
  else if (k === 5) exp = 1023 + r.int(70) - 5; // integers near conversion limits
  else if (k === 6) return r.u64(); // any bits
  else exp = 1023 + r.int(120) - 60;
  return sign | BigInt(exp) << 52n | frac;
}

function randomF32(r: Rng): number {
  const k = r.int(10);
  if (k < 3) return r.pick(F32_SPECIAL);
  const sign = r.chance(0.5) ? 0x8000_0000 : 0;
  const frac = r.u32() & 0x7f_ffff;
  let exp: number;
  if (k === 3) exp = 0;
  else if (k === 4) exp = r.pick([1, 2, 3, 0xfd, 0xfe]);
  else if (k === 5) exp = 127 + r.int(70) - 5;
  else if (k === 6) return r.u32();
  else exp = 127 + r.int(40) - 20;
  return (sign | exp << 23 | frac) >>> 0;
}

function randomInt64(r: Rng): bigint {
  const k = r.int(8);
  if (k === 0) {
    return r.pick([
      0n,
      1n,
      0xffff_ffff_ffff_ffffn,
      0x7fff_ffffn,
      0x8000_0000n,
      0xffff_ffffn,
      0x7fff_ffff_ffff_ffffn,
      0x8000_0000_0000_0000n,
      (1n << 53n) + 1n,
      (1n << 24n) + 1n,
    ]);
  }
  if (k === 1) return r.u64() >> BigInt(r.int(64)); // small magnitudes
  if (k === 2) return BigInt.asUintN(64, -(r.u64() >> BigInt(r.int(64))));
  return r.u64();
}

/** Fills 16 bytes with lanes of `data`; sometimes copies lanes of `like` (equal/negated/nearby). */
function fillLanes(
  r: Rng,
  out: DataView,
  at: number,
  data: Data,
  like?: DataView,
  likeAt = 0,
): void {
  if (data === "f64") {
    for (let i = 0; i < 16; i += 8) {
      let v = randomF64(r);
      if (like !== undefined && r.chance(0.2)) {
        const l = like.getBigUint64(likeAt + i, true);
        v = r.pick([
          l,
          l ^ 0x8000_0000_0000_0000n,
          (l + 1n) & 0xffff_ffff_ffff_ffffn,
          l - 1n & 0xffff_ffff_ffff_ffffn,
        ]);
      }
      out.setBigUint64(at + i, v, true);
    }
  } else if (data === "f32") {
    for (let i = 0; i < 16; i += 4) {
      let v = randomF32(r);
      if (like !== undefined && r.chance(0.2)) {
        const l = like.getUint32(likeAt + i, true);
        v = r.pick([l, (l ^ 0x8000_0000) >>> 0, (l + 1) >>> 0, (l - 1) >>> 0]);
      }
      out.setUint32(at + i, v, true);
    }
  } else {
    const kind = r.int(4);
    for (let i = 0; i < 16; i += 8) {
      let v = r.u64();
      if (kind === 0) v = randomInt64(r);
      if (kind === 1) v = r.chance(0.5) ? 0n : 0xffff_ffff_ffff_ffffn; // masks
      if (kind === 2) v = r.u64() & 0x7f7f_7f7f_7f7f_7f7fn; // ASCII-like bytes
      out.setBigUint64(at + i, v, true);
    }
    if (kind === 3 && r.chance(0.5)) out.setUint8(at + r.int(16), 0); // a zero byte (strlen-like)
  }
}

function randomMxcsr(r: Rng): number {
  let m = 0x1f80;
  if (r.chance(0.5)) m |= r.int(4) << 13; // rounding control
  if (r.chance(0.2)) m |= 0x40; // DAZ
  if (r.chance(0.2)) m |= 0x8000; // FTZ
  if (r.chance(0.5)) m |= r.int(64); // sticky flags
  if (r.chance(0.04)) m &= ~((1 << r.int(6)) << 7); // one exception unmasked
  return m;
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

interface Case {
  form: Form;
  native: NativeCase;
}

const CODE = NATIVE_CODE_ADDRESS;
const DATA = NATIVE_DATA_ADDRESS;
const MASK64 = 0xffff_ffff_ffff_ffffn;

function makeCase(r: Rng, form: Form): Case {
  const gpr = new BigUint64Array(16);
  for (let i = 0; i < 16; i++) gpr[i] = randomInt64(r);
  const xmm = new Uint8Array(256);
  const xv = new DataView(xmm.buffer);
  for (let i = 0; i < 16; i++) fillLanes(r, xv, i * 16, form.data, i > 0 ? xv : undefined, 0);
  const mem = new Uint8Array(WINDOW);
  const mv = new DataView(mem.buffer);
  for (let i = 0; i < WINDOW; i += 16) fillLanes(r, mv, i, form.data, xv, 16 * r.int(16));
  if (form.mnemonic === "ldmxcsr") {
    for (let i = 0; i < WINDOW; i += 4) {
      mv.setUint32(i, r.chance(0.9) ? randomMxcsr(r) : r.u32(), true);
    }
  }
  const reg = form.group ?? r.int(16);
  const useMem = form.rm === "m" || ((form.rm === "x" || form.rm === "g") && r.chance(0.5));
  let rm: number | MemOperand = r.int(16);
  let memOffset = 0;
  const imm8 = form.imm ? imm8For(r, form) : undefined;
  const extraPrefixes = r.chance(0.05) ? [r.pick([0x2e, 0x3e, 0x26, 0x36])] : [];
  const forceRex = r.chance(0.1);
  let code: Uint8Array;
  if (useMem) {
    const size = form.mem;
    let k: number;
    if (r.chance(0.75)) {
      memOffset = 0;
      k = r.chance(0.8) ? 16 * r.int(4) : r.int(WINDOW - size + 1);
      k = Math.min(k, WINDOW - size);
    } else {
      memOffset = 4096 - WINDOW;
      k = r.chance(0.6) && size > 1
        ? WINDOW - size + 1 + r.int(size - 1)
        : r.int(WINDOW - size + 1);
    }
    const address = DATA + BigInt(memOffset + k);
    const m = memoryOperand(r, gpr, address);
    const spec = {
      prefix: form.prefix,
      map: form.map,
      opcode: form.opcode,
      reg,
      rm: m,
      w: form.w ?? false,
      forceRex,
      extraPrefixes,
      ...(imm8 !== undefined ? { imm8 } : {}),
    };
    code = encode(spec);
    if (m.base === "rip") {
      m.disp = Number(BigInt.asIntN(32, address - (CODE + BigInt(code.length))));
      code = encode(spec);
    }
    rm = m;
  } else {
    code = encode({
      prefix: form.prefix,
      map: form.map,
      opcode: form.opcode,
      reg,
      rm,
      w: form.w ?? false,
      forceRex,
      extraPrefixes,
      ...(imm8 !== undefined ? { imm8 } : {}),
    });
  }
  const rflags = 0x2n | (r.u64() & 0x8d5n);
  return { form, native: { code, mxcsr: randomMxcsr(r), memOffset, rflags, gpr, xmm, mem } };
}

function imm8For(r: Rng, form: Form): number {
  if (form.opcode === 0xc2) return r.chance(0.9) ? r.int(8) : r.int(256);
  if (form.opcode >= 0x71 && form.opcode <= 0x73 && form.map === 2) {
    return r.chance(0.8) ? r.int(form.opcode === 0x73 ? 20 : 34) : r.int(256);
  }
  if (form.map === 4 && form.opcode === 0x0f) return r.chance(0.8) ? r.int(33) : r.int(256);
  return r.int(256);
}

/** A random addressing mode whose effective address is `address`; sets the registers it uses. */
function memoryOperand(r: Rng, gpr: BigUint64Array, address: bigint): MemOperand {
  const mode = r.int(5);
  const dispSize = r.pick([0, 1, 4] as const);
  const disp = dispSize === 0 ? 0 : dispSize === 1 ? r.int(256) - 128 : r.int(1 << 20) - (1 << 19);
  if (mode === 0) return { base: "rip", disp: 0, dispSize: 4 };
  if (mode === 1) {
    const base = r.int(16);
    gpr[base] = (address - BigInt(disp)) & MASK64;
    return { base, disp, dispSize };
  }
  if (mode === 2 || mode === 3) {
    const base = r.int(16);
    let index = r.int(15);
    if (index >= 4) index++; // never RSP
    if (index === base) return { base, disp: 0, dispSize: 0, ...setOnly(gpr, base, address) };
    const scale = r.int(4) as 0 | 1 | 2 | 3;
    const iv = mode === 2 ? BigInt(r.int(64)) : randomInt64(r);
    gpr[index] = iv;
    gpr[base] = (address - (iv << BigInt(scale)) - BigInt(disp)) & MASK64;
    return { base, index, scale, disp, dispSize };
  }
  // No base: index × scale + disp32.
  let index = r.int(15);
  if (index >= 4) index++;
  const d = r.int(1 << 16);
  gpr[index] = address - BigInt(d);
  return { base: null, index, scale: 0, disp: d, dispSize: 4 };
}

function setOnly(gpr: BigUint64Array, base: number, address: bigint): Record<string, never> {
  gpr[base] = address;
  return {};
}

function featureMissing(f: Feature | undefined, cpu: CpuFeatures): boolean {
  if (f === undefined) return false;
  const bit = { sse3: 0, ssse3: 9, sse41: 19, sse42: 20 }[f];
  return ((cpu.ecx1 >>> bit) & 1) === 0;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/** An environment variable, or undefined (also without --allow-env for it). */
function env(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

const SCALE = Number(env("SSE_DIFF_CASES") ?? "1");
const SEED = Number(env("SSE_DIFF_SEED") ?? "20261125");
const ONLY = env("SSE_DIFF_ONLY");
const CASES_PER_WEIGHT = Math.max(1, Math.round(250 * (Number.isFinite(SCALE) ? SCALE : 1)));

const haveGcc = await gccAvailable();
if (!haveGcc) {
  // deno-lint-ignore no-console
  console.error("SKIP: gcc is not available: SSE differential tests skipped");
}

Deno.test("the differential forms cover every mnemonic the SSE emulator supports", () => {
  const tested = new Set(FORMS.map((f) => f.mnemonic.split(/[ /]/)[0]!));
  for (const alias of ["movhlps", "movlhps"]) tested.add(alias);
  const missing = supportedMnemonics().filter((m) => !tested.has(m));
  assert.deepEqual(missing, [], `forms missing for: ${missing.join(", ")}`);
});

Deno.test({
  name: "executeSse() matches the host CPU bit for bit on random inputs for every form",
  ignore: !haveGcc,
  async fn(): Promise<void> {
    const binary = await buildSseNative();
    const r = new Rng(SEED);
    const cases: Case[] = [];
    for (const form of FORMS) {
      if (ONLY !== undefined && !form.mnemonic.startsWith(ONLY)) continue;
      for (let i = 0; i < CASES_PER_WEIGHT * form.weight; i++) cases.push(makeCase(r, form));
    }
    const { features, results } = await runNative(binary, cases.map((c) => c.native));
    const { ram, vm } = emulatorMemory();
    const failures: string[] = [];
    const failedForms = new Map<string, number>();
    let ran = 0;
    let skipped = 0;
    const outcomes = new Map<string, number>();
    cases.forEach((c, i) => {
      if (featureMissing(c.form.feature, features)) {
        skipped++;
        return;
      }
      ran++;
      const n = results[i]!;
      const key = ["ok", "#GP", "#PF", "#XM"][n.status] ?? `status ${n.status}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      const problem = compare(c.form.mnemonic, c.native, n, emulate(c.native, ram, vm));
      if (problem !== null) {
        failedForms.set(c.form.mnemonic, (failedForms.get(c.form.mnemonic) ?? 0) + 1);
        if (failures.length < 12) failures.push(problem);
      }
    });
    // deno-lint-ignore no-console
    console.log(
      `SSE differential: ${ran} cases over ${FORMS.length} forms (seed ${SEED}; ` +
        `${[...outcomes].map(([k, v]) => `${k} ${v}`).join(", ")}${
          skipped ? `; ${skipped} skipped: CPU lacks the feature` : ""
        })`,
    );
    assert.equal(
      failedForms.size,
      0,
      `mismatches by form: ${[...failedForms].map(([k, v]) => `${k}: ${v}`).join(", ")}\n\n${
        failures.join("\n\n")
      }`,
    );
  },
});

// ---------------------------------------------------------------------------
// The integer run-ahead subset (src/emulate/int.ts): register forms, LEA and
// NOP with any addressing mode (nothing is accessed), MOV immediates.
// ---------------------------------------------------------------------------

interface IntForm {
  name: string;
  /** Encodes one random instance. */
  make: (r: Rng, w: boolean) => Uint8Array;
  /** Whether REX.W varies (else 32-bit only or fixed by `make`). */
  wide: boolean;
  /** RFLAGS bits the CPU leaves undefined for this form (not compared). */
  undefinedFlags: (code: Uint8Array) => bigint;
}

const AF_ = 0x10n;
const OF_ = 0x800n;

function regForm(opcode: number, map: 1 | 2, group?: number, imm?: "8" | "32"): IntForm["make"] {
  return (r, w) =>
    encode({
      prefix: 0,
      map,
      opcode,
      reg: group ?? r.int(16),
      rm: r.int(16),
      w,
      forceRex: r.chance(0.2),
      ...(imm === "8" ? { imm8: r.int(256) } : {}),
      ...(imm === "32" ? { imm32: r.u32() | 0 } : {}),
    });
}

const INT_FORMS: IntForm[] = [];
for (
  const [name, op] of [["add", 0], ["or", 1], ["and", 4], ["sub", 5], ["xor", 6], [
    "cmp",
    7,
  ]] as const
) {
  const logic = name === "or" || name === "and" || name === "xor";
  const undef = (): bigint => (logic ? AF_ : 0n);
  INT_FORMS.push({
    name: `${name} r/m, r`,
    make: regForm(op * 8 + 1, 1),
    wide: true,
    undefinedFlags: undef,
  });
  INT_FORMS.push({
    name: `${name} r, r/m`,
    make: regForm(op * 8 + 3, 1),
    wide: true,
    undefinedFlags: undef,
  });
  INT_FORMS.push({
    name: `${name} r/m, imm8`,
    make: regForm(0x83, 1, op, "8"),
    wide: true,
    undefinedFlags: undef,
  });
  INT_FORMS.push({
    name: `${name} r/m, imm32`,
    make: regForm(0x81, 1, op, "32"),
    wide: true,
    undefinedFlags: undef,
  });
}
INT_FORMS.push({ name: "test", make: regForm(0x85, 1), wide: true, undefinedFlags: () => AF_ });
INT_FORMS.push({
  name: "mov r/m, r",
  make: regForm(0x89, 1),
  wide: true,
  undefinedFlags: () => 0n,
});
INT_FORMS.push({
  name: "mov r, r/m",
  make: regForm(0x8b, 1),
  wide: true,
  undefinedFlags: () => 0n,
});
INT_FORMS.push({
  name: "mov r/m, imm32",
  make: regForm(0xc7, 1, 0, "32"),
  wide: true,
  undefinedFlags: () => 0n,
});
INT_FORMS.push({
  name: "movsxd",
  make: (r) => encode({ prefix: 0, map: 1, opcode: 0x63, reg: r.int(16), rm: r.int(16), w: true }),
  wide: false,
  undefinedFlags: () => 0n,
});
for (const [name, group] of [["inc", 0], ["dec", 1]] as const) {
  INT_FORMS.push({ name, make: regForm(0xff, 1, group), wide: true, undefinedFlags: () => 0n });
}
for (const [name, group] of [["not", 2], ["neg", 3]] as const) {
  INT_FORMS.push({ name, make: regForm(0xf7, 1, group), wide: true, undefinedFlags: () => 0n });
}
for (const [name, group] of [["shl", 4], ["shr", 5], ["sar", 7]] as const) {
  INT_FORMS.push({
    name: `${name} imm8`,
    make: (r, w) =>
      encode({
        prefix: 0,
        map: 1,
        opcode: 0xc1,
        reg: group,
        rm: r.int(16),
        w,
        imm8: 1 + r.int(w ? 63 : 31),
      }),
    wide: true,
    undefinedFlags: (code) => (code[code.length - 1] === 1 ? AF_ : AF_ | OF_),
  });
  INT_FORMS.push({
    name: `${name} 1`,
    make: regForm(0xd1, 1, group),
    wide: true,
    undefinedFlags: () => AF_,
  });
}
INT_FORMS.push({ name: "imul", make: regForm(0xaf, 2), wide: true, undefinedFlags: () => 0xd4n });
for (
  const [name, op] of [["movzx r8", 0xb6], ["movzx r16", 0xb7], ["movsx r8", 0xbe], [
    "movsx r16",
    0xbf,
  ]] as const
) {
  INT_FORMS.push({ name, make: regForm(op, 2), wide: true, undefinedFlags: () => 0n });
}
for (let cc = 0; cc < 16; cc++) {
  INT_FORMS.push({
    name: `cmov${cc}`,
    make: regForm(0x40 + cc, 2),
    wide: true,
    undefinedFlags: () => 0n,
  });
}
INT_FORMS.push({
  name: "lea",
  make: (r, w) => {
    const m = memoryOperand(r, new BigUint64Array(16), 0n);
    if (m.base === "rip") m.disp = r.int(1 << 20) - (1 << 19);
    return encode({ prefix: 0, map: 1, opcode: 0x8d, reg: r.int(16), rm: m, w });
  },
  wide: true,
  undefinedFlags: () => 0n,
});
INT_FORMS.push({
  name: "nop r/m",
  make: (r) =>
    encode({
      prefix: 0,
      map: 2,
      opcode: 0x1f,
      reg: 0,
      rm: memoryOperand(r, new BigUint64Array(16), 0n),
    }),
  wide: false,
  undefinedFlags: () => 0n,
});
INT_FORMS.push({
  name: "mov r, imm",
  make: (r, w) => {
    const reg = r.int(16);
    const out = [...(reg >= 8 || w ? [0x40 | (w ? 8 : 0) | (reg >> 3)] : []), 0xb8 + (reg & 7)];
    for (let i = 0; i < (w ? 8 : 4); i++) out.push(r.int(256));
    return new Uint8Array(out);
  },
  wide: true,
  undefinedFlags: () => 0n,
});

Deno.test({
  name: "runInteger() matches the host CPU on random inputs for every supported integer form",
  ignore: !haveGcc,
  async fn(): Promise<void> {
    const binary = await buildSseNative();
    const r = new Rng(SEED ^ 0x5a5a);
    const cases: { form: IntForm; native: NativeCase }[] = [];
    for (const form of INT_FORMS) {
      for (let i = 0; i < CASES_PER_WEIGHT * 2; i++) {
        const gpr = new BigUint64Array(16);
        for (let k = 0; k < 16; k++) gpr[k] = randomInt64(r);
        gpr[4] = DATA + 0x800n; // keep RSP pointing somewhere harmless
        const code = form.make(r, form.wide && r.chance(0.5));
        cases.push({
          form,
          native: {
            code,
            mxcsr: 0x1f80,
            memOffset: 0,
            rflags: 0x2n | (r.u64() & 0x8d5n),
            gpr,
            xmm: new Uint8Array(256),
            mem: new Uint8Array(WINDOW),
          },
        });
      }
    }
    const { results } = await runNative(binary, cases.map((c) => c.native));
    const failures: string[] = [];
    const failedForms = new Map<string, number>();
    cases.forEach((c, i) => {
      const n = results[i]!;
      const nc = c.native;
      const state: SseState = {
        xmm: nc.xmm.slice(),
        mxcsr: nc.mxcsr,
        gpr: nc.gpr.slice(),
        rflags: Number(nc.rflags),
        rip: CODE,
        fsBase: 0n,
        gsBase: 0n,
      };
      const step = runInteger(nc.code, state);
      const problems: string[] = [];
      if (n.status !== 0) problems.push(`native status ${n.status}`);
      if (step === null) {
        problems.push("declined");
      } else {
        if (step.length !== nc.code.length) problems.push(`length ${step.length}`);
        if (state.rip !== CODE + BigInt(nc.code.length)) problems.push("RIP");
        for (let k = 0; k < 16; k++) {
          if (n.gpr[k] !== state.gpr[k]) {
            problems.push(
              `gpr${k}: native ${n.gpr[k]!.toString(16)} emulated ${state.gpr[k]!.toString(16)}`,
            );
          }
        }
        const care = FLAGS_MASK & ~c.form.undefinedFlags(nc.code);
        if ((n.rflags & care) !== (BigInt(state.rflags) & care)) {
          problems.push(
            `rflags: native ${(n.rflags & care).toString(16)} emulated ${
              (BigInt(state.rflags) & care).toString(16)
            }`,
          );
        }
      }
      if (problems.length > 0) {
        failedForms.set(c.form.name, (failedForms.get(c.form.name) ?? 0) + 1);
        if (failures.length < 12) {
          failures.push(
            `${c.form.name} [${hexBytes(nc.code)}] rflags ${nc.rflags.toString(16)}\n  in gpr: ${
              Array.from(nc.gpr, (v) => v.toString(16)).join(" ")
            }\n  ${problems.join("\n  ")}`,
          );
        }
      }
    });
    // deno-lint-ignore no-console
    console.log(
      `integer run-ahead differential: ${cases.length} cases over ${INT_FORMS.length} forms`,
    );
    assert.equal(
      failedForms.size,
      0,
      `mismatches by form: ${[...failedForms].map(([k, v]) => `${k}: ${v}`).join(", ")}\n\n${
        failures.join("\n\n")
      }`,
    );
  },
});
