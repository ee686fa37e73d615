/**
 * The SSE decoder and executor (src/emulate/sse.ts) without a VM: decoding of
 * every operand form (prefixes, REX, SIB, RIP-relative, segment overrides,
 * address-size override), and hand-checked executions, faults and flags.
 * The bit-exact comparison against the host CPU is tests/kvm/sse_diff_test.ts.
 * @module
 */

import assert from "node:assert/strict";
import {
  decodeSse,
  emulateSse,
  SSE_CHANGED,
  sseMnemonic,
  type SseResult,
  type SseState,
  supportedMnemonics,
} from "../../../src/emulate/sse.ts";
import type { MemoryFault, VirtualMemory } from "../../../src/memory/guest_virtual.ts";
import { encode } from "../../_helpers/x86_encode.ts";

const RAX = 0;
const RCX = 1;
const RSP = 4;
const RBP = 5;
const R12 = 12;
const R13 = 13;

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

function state(init: Partial<Omit<SseState, "xmm" | "gpr">> = {}): SseState {
  return {
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
    gpr: new BigUint64Array(16),
    rflags: 0x2,
    rip: 0x1000n,
    fsBase: 0n,
    gsBase: 0n,
    ...init,
  };
}

/** Flat memory at [base, base + size); anything else page-faults. */
class FlatMemory implements VirtualMemory {
  readonly data: Uint8Array;
  constructor(readonly base: bigint, size: number) {
    this.data = new Uint8Array(size);
  }
  #check(address: bigint, len: number, write: boolean): MemoryFault | null {
    if (address < this.base) return { pageFault: address, errorCode: write ? 2 : 0 };
    const end = address + BigInt(len);
    if (end > this.base + BigInt(this.data.length)) {
      const first = address > this.base + BigInt(this.data.length)
        ? address
        : this.base + BigInt(this.data.length);
      return { pageFault: first, errorCode: write ? 2 : 0 };
    }
    return null;
  }
  read(address: bigint, into: Uint8Array): MemoryFault | null {
    const f = this.#check(address, into.length, false);
    if (f !== null) return f;
    const at = Number(address - this.base);
    into.set(this.data.subarray(at, at + into.length));
    return null;
  }
  write(address: bigint, data: Uint8Array): MemoryFault | null {
    const f = this.#check(address, data.length, true);
    if (f !== null) return f;
    this.data.set(data, Number(address - this.base));
    return null;
  }
}

const NO_MEMORY: VirtualMemory = {
  read: (address) => ({ pageFault: address, errorCode: 0 }),
  write: (address) => ({ pageFault: address, errorCode: 2 }),
};

function setF64(s: SseState, reg: number, lane: number, v: number): void {
  new DataView(s.xmm.buffer).setFloat64(reg * 16 + lane * 8, v, true);
}
function getF64(s: SseState, reg: number, lane: number): number {
  return new DataView(s.xmm.buffer).getFloat64(reg * 16 + lane * 8, true);
}
function getU64(s: SseState, reg: number, lane: number): bigint {
  return new DataView(s.xmm.buffer).getBigUint64(reg * 16 + lane * 8, true);
}
function setU64(s: SseState, reg: number, lane: number, v: bigint): void {
  new DataView(s.xmm.buffer).setBigUint64(reg * 16 + lane * 8, v, true);
}

function run(code: Uint8Array, s: SseState, mem: VirtualMemory = NO_MEMORY): SseResult {
  const r = emulateSse(code, s, mem);
  assert.notEqual(r, null, "decoded");
  return r!.result;
}

Deno.test("decodeSse() reads mnemonic, operands and length of register forms", () => {
  const s = state();
  const i = decodeSse(bytes(0xf2, 0x44, 0x0f, 0x58, 0xc5), s)!; // addsd xmm8, xmm5
  assert.equal(i.mnemonic, "addsd");
  assert.equal(i.length, 5);
  assert.equal(i.reg, 8);
  assert.equal(i.rm, 5);
  assert.equal(i.memory, false);
  const j = decodeSse(bytes(0x66, 0x41, 0x0f, 0xd7, 0xc7), s)!; // pmovmskb eax, xmm15
  assert.equal(j.mnemonic, "pmovmskb");
  assert.equal(j.rm, 15);
  assert.equal(decodeSse(bytes(0x66, 0x48, 0x0f, 0x6e, 0xc1), s)!.mnemonic, "movq"); // REX.W
  assert.equal(decodeSse(bytes(0x66, 0x0f, 0x6e, 0xc1), s)!.mnemonic, "movd");
  assert.equal(decodeSse(bytes(0x66, 0x0f, 0x73, 0xd8, 0x04), s)!.mnemonic, "psrldq");
  const k = decodeSse(bytes(0x66, 0x0f, 0x70, 0xc1, 0x1b), s)!; // pshufd xmm0, xmm1, 0x1b
  assert.equal(k.imm8, 0x1b);
  assert.equal(k.length, 5);
});

Deno.test("decodeSse() computes memory operands: base, SIB, disp8/32, RIP-relative", () => {
  const s = state({ rip: 0x40_0000n });
  s.gpr[RAX] = 0x1000n;
  s.gpr[RCX] = 0x10n;
  s.gpr[RSP] = 0x8000n;
  s.gpr[RBP] = 0x9000n;
  s.gpr[R12] = 0xa000n;
  s.gpr[R13] = 0xb000n;
  const cases: [Parameters<typeof encode>[0]["rm"], bigint][] = [
    [{ base: RAX, disp: 0, dispSize: 0 }, 0x1000n],
    [{ base: RSP, disp: 0x10, dispSize: 1 }, 0x8010n], // needs a SIB byte
    [{ base: R12, disp: -8, dispSize: 1 }, 0x9ff8n], // R12 needs a SIB byte too
    [{ base: RBP, disp: 0, dispSize: 0 }, 0x9000n], // encoded with disp8 = 0
    [{ base: R13, disp: 0x1234, dispSize: 4 }, 0xc234n],
    [{ base: RAX, index: RCX, scale: 3, disp: 4, dispSize: 1 }, 0x1084n],
    [{ base: null, index: RCX, scale: 2, disp: 0x100, dispSize: 4 }, 0x140n],
  ];
  for (const [rm, want] of cases) {
    const code = encode({ prefix: 0, map: 2, opcode: 0x10, reg: 3, rm });
    const i = decodeSse(code, s)!;
    assert.equal(i.memory, true);
    assert.equal(i.length, code.length, JSON.stringify(rm));
    assert.equal(i.address, want, JSON.stringify(rm));
  }
  // RIP-relative: from the end of the instruction (imm8 included).
  const rel = encode({
    prefix: 0x66,
    map: 2,
    opcode: 0x70,
    reg: 1,
    rm: { base: "rip", disp: 0x20, dispSize: 4 },
    imm8: 0,
  });
  const i = decodeSse(rel, s)!;
  assert.equal(i.address, 0x40_0000n + BigInt(rel.length) + 0x20n);
});

Deno.test("decodeSse() applies FS/GS bases, the address-size override and redundant prefixes", () => {
  const s = state({ fsBase: 0x7000_0000n, gsBase: 0x5000_0000n });
  s.gpr[RAX] = 0xffff_ffff_0000_0010n;
  const movups = (prefixes: number[]): Uint8Array => bytes(...prefixes, 0x0f, 0x10, 0x00);
  assert.equal(decodeSse(movups([0x64]), s)!.address, 0xffff_ffff_7000_0010n);
  assert.equal(decodeSse(movups([0x65]), s)!.address, 0xffff_ffff_5000_0010n);
  assert.equal(decodeSse(movups([0x67]), s)!.address, 0x10n); // 32-bit address
  assert.equal(decodeSse(movups([0x3e, 0x2e]), s)!.length, 5); // null segments
  // A REX followed by a legacy prefix is ignored.
  const i = decodeSse(bytes(0x44, 0x66, 0x0f, 0xef, 0xc1), s)!; // pxor xmm0, xmm1
  assert.equal(i.mnemonic, "pxor");
  assert.equal(i.reg, 0);
  // F3/F2 choose the instruction over 66.
  assert.equal(decodeSse(bytes(0x66, 0xf2, 0x0f, 0x58, 0xc1), s)!.mnemonic, "addsd");
});

Deno.test("decodeSse() rejects what it cannot run", () => {
  const s = state();
  assert.equal(decodeSse(bytes(0x48, 0x89, 0xc8), s), null); // mov rax, rcx
  assert.equal(decodeSse(bytes(0x0f, 0x58), s), null); // truncated
  assert.equal(decodeSse(bytes(0x0f, 0x10, 0x84, 0x24), s), null); // truncated SIB/disp
  assert.equal(decodeSse(bytes(0xf0, 0x0f, 0x58, 0xc1), s), null); // LOCK: #UD
  assert.equal(decodeSse(bytes(0x66, 0x0f, 0x12, 0xc1), s), null); // movlpd needs memory
  assert.equal(decodeSse(bytes(0x66, 0x0f, 0xd7, 0x00), s), null); // pmovmskb needs a register
  assert.equal(decodeSse(bytes(0x66, 0x0f, 0x73, 0xe0, 1), s), null); // group 73 /4 is not defined
  assert.equal(decodeSse(bytes(0x0f, 0x52, 0xc0), s), null); // rsqrtps: not emulated
  assert.equal(decodeSse(bytes(0xc5, 0xf8, 0x57, 0xc0), s), null); // VEX vxorps
  assert.equal(decodeSse(bytes(0x0f, 0xae, 0x27), s), null); // xsave: emulated elsewhere
});

Deno.test("sseMnemonic() names supported, known-unsupported and VEX instructions", () => {
  assert.equal(sseMnemonic(bytes(0x0f, 0x57, 0xc0)), "xorps");
  assert.equal(sseMnemonic(bytes(0x0f, 0x52, 0xc0)), "rsqrtps");
  assert.equal(sseMnemonic(bytes(0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0)), "roundsd");
  assert.equal(sseMnemonic(bytes(0xc5, 0xf8, 0x57, 0xc0)), "(VEX-encoded AVX instruction)");
  assert.equal(sseMnemonic(bytes(0x0f, 0xae, 0xd0)), null); // 0F AE /2 with a register: #UD
  assert.equal(sseMnemonic(bytes(0x0f, 0xae, 0xe8)), null); // lfence
  assert.equal(sseMnemonic(bytes(0x0f, 0xae, 0x10)), "ldmxcsr");
  assert.equal(sseMnemonic(bytes(0x90)), null);
});

Deno.test("supportedMnemonics() covers what Hermit's hello_world and rusty_demo use", () => {
  const have = new Set(supportedMnemonics());
  const used = [
    // hello_world (objdump of the sample kernel: 25 mnemonics)
    "movups",
    "movdqa",
    "movdqu",
    "xorps",
    "movaps",
    "paddq",
    "pxor",
    "pmovmskb",
    "pshufd",
    "psrlq",
    "pand",
    "por",
    "pcmpgtb",
    "movd",
    "punpcklbw",
    "pshuflw",
    "pcmpeqb",
    "movq",
    "punpcklqdq",
    "punpckhqdq",
    "pcmpgtd",
    "pcmpeqd",
    "pandn",
    "paddd",
    "movmskps",
    // rusty_demo adds
    "cvtsi2ss",
    "movsd",
    "movss",
    "addss",
    "addsd",
    "mulsd",
    "movapd",
    "unpcklps",
    "subss",
    "xorpd",
    "movlhps",
    "divsd",
    "unpckhpd",
    "ucomisd",
    "subps",
    "subpd",
    "addps",
    "subsd",
    "movupd",
    "punpckldq",
    "ucomiss",
    "divss",
    "unpcklpd",
    "mulpd",
    "cvtsi2sd",
    "addpd",
    "mulss",
    "minsd",
    "maxsd",
    "cvttsd2si",
    "cvtsd2ss",
    "andpd",
  ];
  const missing = used.filter((m) => !have.has(m) && m !== "movlhps");
  assert.deepEqual(missing, []);
  assert.equal(sseMnemonic(bytes(0x0f, 0x16, 0xc1)), "movhps"); // movlhps is movhps' register form
});

Deno.test("executeSse() adds, multiplies and divides scalar doubles, keeping the upper lane", () => {
  const s = state();
  setF64(s, 0, 0, 1.5);
  setU64(s, 0, 1, 0x1234n);
  setF64(s, 1, 0, 2.25);
  const r = run(bytes(0xf2, 0x0f, 0x58, 0xc1), s); // addsd xmm0, xmm1
  assert.deepEqual(r, { kind: "done", changed: SSE_CHANGED.XMM });
  assert.equal(getF64(s, 0, 0), 3.75);
  assert.equal(getU64(s, 0, 1), 0x1234n);
  assert.equal(s.rip, 0x1004n);
  assert.equal(s.mxcsr, 0x1f80, "exact: no flag");
  run(bytes(0xf2, 0x0f, 0x5e, 0xc1), s); // divsd: 3.75 / 2.25
  assert.equal(getF64(s, 0, 0), 3.75 / 2.25);
  assert.equal(s.mxcsr, 0x1fa0, "inexact: PE");
  assert.deepEqual(run(bytes(0xf2, 0x0f, 0x5e, 0xc1), s), {
    kind: "done",
    changed: SSE_CHANGED.XMM,
  }, "PE was already set");
});

Deno.test("executeSse() follows the SSE NaN rules and the default NaN", () => {
  const s = state();
  setU64(s, 0, 0, 0x7ff0_0000_0000_0001n); // sNaN
  setF64(s, 1, 0, 1);
  run(bytes(0xf2, 0x0f, 0x58, 0xc1), s); // addsd: sNaN quieted, IE
  assert.equal(getU64(s, 0, 0), 0x7ff8_0000_0000_0001n);
  assert.equal(s.mxcsr & 1, 1);
  setF64(s, 2, 0, Infinity);
  setF64(s, 3, 0, Infinity);
  run(bytes(0xf2, 0x0f, 0x5c, 0xd3), s); // subsd inf - inf
  assert.equal(getU64(s, 2, 0), 0xfff8_0000_0000_0000n);
  setU64(s, 4, 0, 0x7ff8_0000_0000_0000n);
  setF64(s, 5, 0, -2);
  run(bytes(0xf2, 0x0f, 0x5d, 0xe5), s); // minsd: a NaN gives the second operand
  assert.equal(getF64(s, 4, 0), -2);
});

Deno.test("executeSse() sets ZF/PF/CF for ucomisd and clears OF/SF/AF", () => {
  const s = state({ rflags: 0x2 | 0x800 | 0x80 | 0x10 });
  setF64(s, 0, 0, 1);
  setF64(s, 1, 0, 2);
  run(bytes(0x66, 0x0f, 0x2e, 0xc1), s);
  assert.equal(s.rflags, 0x2 | 0x1);
  setU64(s, 1, 0, 0x7ff8_0000_0000_0000n);
  run(bytes(0x66, 0x0f, 0x2e, 0xc1), s);
  assert.equal(s.rflags, 0x2 | 0x40 | 0x4 | 0x1);
  assert.equal(s.mxcsr & 1, 0, "a quiet NaN is no invalid operation for ucomisd");
  run(bytes(0x66, 0x0f, 0x2f, 0xc1), s); // comisd signals on any NaN
  assert.equal(s.mxcsr & 1, 1);
});

Deno.test("executeSse() converts with truncation, the integer indefinite and IE", () => {
  const s = state();
  setF64(s, 1, 0, -2.75);
  run(bytes(0xf2, 0x48, 0x0f, 0x2c, 0xc1), s); // cvttsd2si rax, xmm1
  assert.equal(s.gpr[RAX], BigInt.asUintN(64, -2n));
  setF64(s, 1, 0, 2 ** 63);
  run(bytes(0xf2, 0x48, 0x0f, 0x2c, 0xc1), s);
  assert.equal(s.gpr[RAX], 0x8000_0000_0000_0000n);
  assert.equal(s.mxcsr & 1, 1);
  s.gpr[RCX] = 0xffff_ffffn; // cvtsi2sd with a 32-bit source: -1
  run(bytes(0xf2, 0x0f, 0x2a, 0xc1), s);
  assert.equal(getF64(s, 0, 0), -1);
});

Deno.test("executeSse() finds bytes like memchr: pcmpeqb + pmovmskb", () => {
  const s = state();
  const text = new TextEncoder().encode("Hello, SSE world");
  s.xmm.set(text, 16);
  s.xmm.fill("o".charCodeAt(0), 0, 16);
  run(bytes(0x66, 0x0f, 0x74, 0xc1), s); // pcmpeqb xmm0, xmm1
  run(bytes(0x66, 0x0f, 0xd7, 0xc0), s); // pmovmskb eax, xmm0
  assert.equal(s.gpr[RAX], BigInt((1 << 4) | (1 << 12)));
});

Deno.test("executeSse() loads and stores through memory, with alignment and page faults", () => {
  const mem = new FlatMemory(0x10000n, 64);
  mem.data.set(Array.from({ length: 64 }, (_, i) => i), 0);
  const s = state();
  s.gpr[RAX] = 0x10010n;
  assert.equal(run(bytes(0x0f, 0x28, 0x00), s, mem).kind, "done"); // movaps xmm0, [rax]
  assert.deepEqual(Array.from(s.xmm.subarray(0, 16)), Array.from({ length: 16 }, (_, i) => i + 16));
  s.gpr[RAX] = 0x10011n;
  const before = s.xmm.slice();
  assert.deepEqual(run(bytes(0x0f, 0x28, 0x00), s, mem), {
    kind: "exception",
    vector: 13,
    errorCode: 0,
  });
  assert.deepEqual(s.xmm, before, "nothing changed");
  assert.equal(s.rip, 0x1003n, "RIP stays at the faulting instruction");
  assert.equal(run(bytes(0x0f, 0x10, 0x00), s, mem).kind, "done"); // movups: no alignment check
  s.gpr[RAX] = 0x10038n; // 16 bytes from here cross the end of the mapped range
  assert.deepEqual(run(bytes(0x0f, 0x11, 0x00), s, mem), {
    kind: "exception",
    vector: 14,
    errorCode: 2,
    address: 0x10040n,
  });
  assert.deepEqual(
    Array.from(mem.data.subarray(56, 64)),
    [56, 57, 58, 59, 60, 61, 62, 63],
    "no partial store",
  );
});

Deno.test("executeSse() reports an unmasked SIMD exception as unsupported and changes nothing", () => {
  const s = state({ mxcsr: 0x1f80 & ~0x200 }); // divide-by-zero unmasked
  setF64(s, 0, 0, 1);
  setF64(s, 1, 0, 0);
  const r = run(bytes(0xf2, 0x0f, 0x5e, 0xc1), s);
  assert.equal(r.kind, "unsupported");
  assert.match(
    (r as { reason: string }).reason,
    /divsd raised an unmasked SIMD floating-point exception/,
  );
  assert.equal(getF64(s, 0, 0), 1);
  assert.equal(s.mxcsr, 0x1f80 & ~0x200);
  assert.equal(s.rip, 0x1000n);
});

Deno.test("executeSse() runs ldmxcsr/stmxcsr and refuses reserved MXCSR bits with #GP", () => {
  const mem = new FlatMemory(0x2000n, 16);
  new DataView(mem.data.buffer).setUint32(0, 0x3fc0, true); // RC down, DAZ
  const s = state();
  s.gpr[RAX] = 0x2000n;
  assert.equal(run(bytes(0x0f, 0xae, 0x10), s, mem).kind, "done");
  assert.equal(s.mxcsr, 0x3fc0);
  run(bytes(0x0f, 0xae, 0x58, 0x04), s, mem); // stmxcsr [rax+4]
  assert.equal(new DataView(mem.data.buffer).getUint32(4, true), 0x3fc0);
  new DataView(mem.data.buffer).setUint32(0, 0x1_0000, true);
  assert.deepEqual(run(bytes(0x0f, 0xae, 0x10), s, mem), {
    kind: "exception",
    vector: 13,
    errorCode: 0,
  });
  assert.equal(s.mxcsr, 0x3fc0);
});

Deno.test("executeSse() rounds by MXCSR.RC and flushes tiny results under FTZ", () => {
  const third = (mxcsr: number): bigint => {
    const s = state({ mxcsr });
    setF64(s, 0, 0, 1);
    setF64(s, 1, 0, 3);
    run(bytes(0xf2, 0x0f, 0x5e, 0xc1), s);
    return getU64(s, 0, 0);
  };
  assert.equal(third(0x1f80), 0x3fd5_5555_5555_5555n); // nearest
  assert.equal(third(0x1f80 | 0x2000), 0x3fd5_5555_5555_5555n); // down
  assert.equal(third(0x1f80 | 0x4000), 0x3fd5_5555_5555_5556n); // up
  assert.equal(third(0x1f80 | 0x6000), 0x3fd5_5555_5555_5555n); // toward zero
  const s = state({ mxcsr: 0x1f80 | 0x8000 });
  setF64(s, 0, 0, 2 ** -1000);
  setF64(s, 1, 0, 2 ** -60);
  run(bytes(0xf2, 0x0f, 0x59, 0xc1), s); // a denormal product: flushed
  assert.equal(getU64(s, 0, 0), 0n);
  assert.equal(s.mxcsr & 0x30, 0x30, "UE and PE");
});

Deno.test("executeSse() writes general registers zero-extended and shuffles by imm8", () => {
  const s = state();
  s.gpr[RAX] = 0xffff_ffff_ffff_ffffn;
  s.xmm.set([1, 2, 3, 4], 16);
  run(bytes(0x66, 0x0f, 0x7e, 0xc8), s); // movd eax, xmm1
  assert.equal(s.gpr[RAX], 0x0403_0201n);
  for (let i = 0; i < 4; i++) new DataView(s.xmm.buffer).setUint32(32 + 4 * i, i + 10, true);
  run(bytes(0x66, 0x0f, 0x70, 0xda, 0x1b), s); // pshufd xmm3, xmm2, 0b00011011 (reverse)
  assert.deepEqual(Array.from(new Uint32Array(s.xmm.buffer, 48, 4)), [13, 12, 11, 10]);
});
