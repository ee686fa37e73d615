/**
 * The one x86 front end (src/emulate/decode.ts) and its users where dhyve's
 * three old decoders disagreed: the order of legacy prefixes, REX that is not
 * last, 66/F2/F3 as mandatory prefixes with REX, segment overrides, the
 * address-size override, RIP-relative operands and immediates, and the
 * 15-byte limit. The same rules are checked against the host CPU in
 * tests/kvm/sse_prefix_diff_test.ts.
 * @module
 */

import assert from "node:assert/strict";
import {
  type AddressingRegisters,
  decodeModrm,
  decodeOpcode,
  effectiveAddress,
  takeImmediate,
  X86Instruction,
} from "../../../src/emulate/decode.ts";
import { runInteger } from "../../../src/emulate/int.ts";
import { decodeSse, type SseState } from "../../../src/emulate/sse.ts";
import { looksLikeSse } from "../../../src/vcpu/emulate.ts";

const RAX = 0;
const RCX = 1;
const RBX = 3;
const R8 = 8;

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

function decode(...b: number[]): X86Instruction {
  const insn = new X86Instruction();
  assert.equal(decodeOpcode(bytes(...b), insn), true, "decodeOpcode");
  return insn;
}

function decodeFull(...b: number[]): X86Instruction {
  const insn = decode(...b);
  assert.equal(decodeModrm(bytes(...b), insn), true, "decodeModrm");
  return insn;
}

function registers(init: Partial<Omit<SseState, "gpr" | "xmm">> = {}): SseState {
  return {
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
    gpr: new BigUint64Array(16),
    rflags: 2,
    rip: 0x1000n,
    fsBase: 0n,
    gsBase: 0n,
    ...init,
  };
}

Deno.test("legacy prefixes in any order: the last F2/F3 wins and beats 66 wherever it stands", () => {
  assert.equal(decode(0xf3, 0xf2, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0xf2);
  assert.equal(decode(0xf2, 0xf3, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0xf3);
  assert.equal(decode(0x66, 0xf3, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0xf3);
  assert.equal(decode(0xf3, 0x66, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0xf3);
  assert.equal(decode(0x66, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0x66);
  assert.equal(decode(0x2e, 0x66, 0x3e, 0x0f, 0x58, 0xc1).mandatoryPrefix, 0x66);
  const s = registers();
  assert.equal(decodeSse(bytes(0xf3, 0xf2, 0x0f, 0x58, 0xc1), s)?.mnemonic, "addsd");
  assert.equal(decodeSse(bytes(0xf2, 0x66, 0x0f, 0x58, 0xc1), s)?.mnemonic, "addsd");
  assert.equal(decodeSse(bytes(0x66, 0xf3, 0x0f, 0x58, 0xc1), s)?.mnemonic, "addss");
});

Deno.test("REX counts only as the last byte before the opcode; of two REX the last", () => {
  const ignored = decode(0x48, 0x66, 0x0f, 0x6e, 0xc0);
  assert.deepEqual([ignored.rex, ignored.opsize, ignored.opcodeStart], [0, true, 2]);
  assert.equal(decode(0x66, 0x48, 0x0f, 0x6e, 0xc0).rex, 0x48);
  assert.equal(decode(0x41, 0x44, 0x0f, 0x58, 0xc1).rex, 0x44);
  assert.equal(decode(0x48, 0xf2, 0x2e, 0x0f, 0x2d, 0xc1).rexW, false);
  const s = registers();
  assert.equal(decodeSse(bytes(0x48, 0x66, 0x0f, 0x6e, 0xc0), s)?.mnemonic, "movd");
  assert.equal(decodeSse(bytes(0x66, 0x48, 0x0f, 0x6e, 0xc0), s)?.mnemonic, "movq");
  const last = decodeSse(bytes(0x41, 0x44, 0x0f, 0x58, 0xc1), s);
  assert.deepEqual([last?.reg, last?.rm], [8, 1], "REX.R of the last REX, not REX.B of the first");
  // The mandatory prefix with REX.W between it and the opcode.
  const cvt = decodeSse(bytes(0x66, 0xf2, 0x48, 0x0f, 0x2d, 0xc1), s);
  assert.deepEqual([cvt?.mnemonic, cvt?.prefix, cvt?.rexW], ["cvtsd2si", 0xf2, true]);
});

Deno.test("operand size: 66 gives 16 bits unless REX.W gives 64", () => {
  assert.equal(decode(0x01, 0xc8).operandSize, 32);
  assert.equal(decode(0x66, 0x01, 0xc8).operandSize, 16);
  assert.equal(decode(0x66, 0x48, 0x01, 0xc8).operandSize, 64);
  assert.equal(decode(0x48, 0x66, 0x01, 0xc8).operandSize, 16, "REX before 66 is ignored");
});

Deno.test("segment overrides: CS/DS/ES/SS are ignored, of FS/GS the last applies (not to LEA)", () => {
  assert.equal(decode(0x64, 0x2e, 0x8b, 0x00).segment, 0x64);
  assert.equal(decode(0x2e, 0x64, 0x8b, 0x00).segment, 0x64);
  assert.equal(decode(0x64, 0x65, 0x8b, 0x00).segment, 0x65);
  assert.equal(decode(0x65, 0x64, 0x8b, 0x00).segment, 0x64);
  assert.equal(decode(0x26, 0x36, 0x8b, 0x00).segment, 0);
  const regs = registers({ fsBase: 0x7000_0000n, gsBase: 0x9000_0000n });
  regs.gpr[RAX] = 0x10n;
  const fs = decodeFull(0x64, 0x3e, 0x0f, 0x58, 0x00);
  assert.equal(effectiveAddress(fs, regs), 0x7000_0010n);
  assert.equal(effectiveAddress(fs, regs, false), 0x10n);
  assert.equal(decodeSse(bytes(0x2e, 0x65, 0x0f, 0x58, 0x00), regs)?.address, 0x9000_0010n);
  // LEA ignores the segment: fs: lea rbx, [rax+8] gives 0x18.
  const s = registers({ fsBase: 0x7000_0000n });
  s.gpr[RAX] = 0x10n;
  assert.equal(runInteger(bytes(0x64, 0x48, 0x8d, 0x58, 0x08), s)?.mnemonic, "lea");
  assert.equal(s.gpr[RBX], 0x18n);
});

Deno.test("67: base and index are read as 32 bits and the address wraps at 4 GiB", () => {
  const regs = registers({ fsBase: 0x1_0000_0000n });
  regs.gpr[RAX] = 0xdead_beef_ffff_fff0n;
  regs.gpr[RCX] = 0xffff_0000_0000_0004n;
  const insn = decodeFull(0x67, 0x0f, 0x58, 0x44, 0xc8, 0x30); // [eax+ecx*8+0x30]
  assert.equal(insn.addr32, true);
  assert.equal(effectiveAddress(insn, regs, false), 0x40n);
  // The segment base is added after the wrap.
  const seg = decodeFull(0x64, 0x67, 0x0f, 0x58, 0x44, 0xc8, 0x30);
  assert.equal(effectiveAddress(seg, regs), 0x1_0000_0040n);
});

Deno.test("RIP-relative operands count from the end of the instruction, immediates included", () => {
  const regs = registers({ rip: 0xffff_ffff_8000_0000n });
  // shufps xmm0, [rip+0x100], 0x1b: 8 bytes.
  const code = bytes(0x0f, 0xc6, 0x05, 0x00, 0x01, 0x00, 0x00, 0x1b);
  const insn = decodeFull(...code);
  assert.equal(insn.ripRelative, true);
  assert.equal(insn.length, 7, "ModRM and disp32 taken");
  assert.equal(takeImmediate(code, insn, 1), 0x1b);
  assert.equal(insn.length, 8);
  assert.equal(effectiveAddress(insn, regs), 0xffff_ffff_8000_0108n);
  assert.equal(decodeSse(code, regs)?.address, 0xffff_ffff_8000_0108n);
  // 67 makes it EIP-relative (wraps at 4 GiB).
  const eip = decodeFull(0x67, 0x0f, 0x58, 0x05, 0x00, 0x00, 0x00, 0x80); // disp -2^31
  assert.equal(effectiveAddress(eip, registers({ rip: 0x1_8000_0000n })), 0x0000_0008n);
  // SIB with no base and no index: a plain disp32, not RIP-relative.
  const abs = decodeFull(0x0f, 0x58, 0x04, 0x25, 0x00, 0x20, 0x00, 0x00);
  assert.equal(abs.ripRelative, false);
  assert.equal(effectiveAddress(abs, regs), 0x2000n);
});

Deno.test("REX.X/REX.B extend SIB index and base; RSP as index means none", () => {
  const regs = registers();
  regs.gpr[R8] = 0x1000n;
  regs.gpr[4] = 0x5555n; // RSP: never an index
  regs.gpr[12] = 0x30n; // R12 as index (REX.X + 100b)
  assert.equal(effectiveAddress(decodeFull(0x41, 0x0f, 0x58, 0x04, 0x20), regs), 0x1000n);
  assert.equal(effectiveAddress(decodeFull(0x43, 0x0f, 0x58, 0x04, 0x20), regs), 0x1030n); // +r12
  assert.equal(effectiveAddress(decodeFull(0x43, 0x0f, 0x58, 0x04, 0x60), regs), 0x1060n); // [r8+r12*2]
});

Deno.test("immediates are sign-extended; the 15-byte limit and truncation are refused", () => {
  const insn = decode(0x81, 0xc0, 0xff, 0xff, 0xff, 0xff);
  assert.equal(decodeModrm(bytes(0x81, 0xc0, 0xff, 0xff, 0xff, 0xff), insn), true);
  assert.equal(takeImmediate(bytes(0x81, 0xc0, 0xff, 0xff, 0xff, 0xff), insn, 4), -1);
  assert.equal(takeImmediate(bytes(0x81, 0xc0, 0xff, 0xff, 0xff, 0xff), insn, 1), null);
  const fourteen = new Array<number>(14).fill(0x2e);
  assert.equal(decodeOpcode(bytes(...fourteen, 0x90), new X86Instruction()), true);
  assert.equal(decodeOpcode(bytes(...fourteen, 0x2e, 0x90), new X86Instruction()), false);
  assert.equal(decodeOpcode(bytes(...fourteen, 0x0f, 0x58), new X86Instruction()), false);
  assert.equal(decodeOpcode(bytes(0x66, 0x0f), new X86Instruction()), false, "truncated");
  assert.equal(decodeOpcode(bytes(0x0f, 0x38), new X86Instruction()), false, "truncated");
  const noSib = decode(0x0f, 0x58, 0x04);
  assert.equal(decodeModrm(bytes(0x0f, 0x58, 0x04), noSib), false, "SIB missing");
  const map = decode(0x66, 0x0f, 0x3a, 0x0f, 0xc1, 0x04);
  assert.deepEqual([map.map, map.opcode, map.opcodeEnd], [4, 0x0f, 4]);
});

Deno.test("the users agree: LOCK, NOP forms, null segments before SSE, 67 in the integer subset", () => {
  const s = registers();
  s.gpr[RCX] = 5n;
  assert.equal(decodeSse(bytes(0xf0, 0x0f, 0x58, 0x00), s), null, "LOCK: #UD");
  assert.equal(runInteger(bytes(0xf0, 0x01, 0xc8), s), null, "LOCK: declined");
  assert.deepEqual(runInteger(bytes(0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00), s), {
    mnemonic: "nop",
    length: 6,
  });
  assert.deepEqual(runInteger(bytes(0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0), s), {
    mnemonic: "nop",
    length: 10,
  });
  assert.equal(runInteger(bytes(0x66, 0x01, 0xc8), s), null, "16-bit ALU: declined");
  assert.equal(runInteger(bytes(0x67, 0x8d, 0x04, 0x08), s), null, "32-bit LEA: declined");
  assert.equal(s.gpr[RAX], 0n, "declined instructions change nothing");
  assert.equal(looksLikeSse(bytes(0x2e, 0x0f, 0x58, 0xc1)), true);
  assert.equal(looksLikeSse(bytes(0x48, 0x66, 0x0f, 0x58, 0xc1)), true);
  assert.equal(looksLikeSse(bytes(0x66, 0x01, 0xc8)), false);
});

Deno.test("AddressingRegisters is what SseState provides", () => {
  const regs: AddressingRegisters = registers();
  assert.equal(regs.rip, 0x1000n);
});
