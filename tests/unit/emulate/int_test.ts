/**
 * The register-only integer subset the SSE run-ahead uses
 * (src/emulate/int.ts): branches, conditions, and what it declines. The
 * arithmetic is compared against the host CPU in tests/kvm/sse_diff_test.ts.
 * @module
 */

import assert from "node:assert/strict";
import { condition, runInteger } from "../../../src/emulate/int.ts";
import type { SseState } from "../../../src/emulate/sse.ts";

const CF = 0x1;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;

function state(rip = 0x1000n, rflags = 0x2): SseState {
  return {
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
    gpr: new BigUint64Array(16),
    rflags,
    rip,
    fsBase: 0n,
    gsBase: 0n,
  };
}

function b(...bytes: number[]): Uint8Array {
  return new Uint8Array(bytes);
}

Deno.test("condition() evaluates the 16 x86 condition codes", () => {
  assert.equal(condition(0x4, ZF), true); // e
  assert.equal(condition(0x5, ZF), false); // ne
  assert.equal(condition(0x2, CF), true); // b
  assert.equal(condition(0x7, 0), true); // a
  assert.equal(condition(0x7, CF), false);
  assert.equal(condition(0xc, SF), true); // l: SF != OF
  assert.equal(condition(0xc, SF | OF), false);
  assert.equal(condition(0xf, 0), true); // g
  assert.equal(condition(0xe, ZF), true); // le
});

Deno.test("runInteger() follows Jcc and JMP: taken, not taken, rel8 and rel32", () => {
  const s = state(0x1000n, 0x2 | ZF);
  assert.deepEqual(runInteger(b(0x74, 0x10), s), { mnemonic: "je", length: 2 });
  assert.equal(s.rip, 0x1012n);
  assert.deepEqual(runInteger(b(0x75, 0x10), s), { mnemonic: "jne", length: 2 });
  assert.equal(s.rip, 0x1014n, "not taken");
  runInteger(b(0x0f, 0x84, 0x00, 0xf0, 0xff, 0xff), s); // je -0x1000
  assert.equal(s.rip, 0x1014n + 6n - 0x1000n);
  runInteger(b(0xeb, 0xfe), s); // jmp to itself
  assert.equal(s.rip, 0x1014n + 6n - 0x1000n);
  runInteger(b(0xe9, 0x00, 0x01, 0x00, 0x00), s);
  assert.equal(s.rip, 0x1014n + 6n - 0x1000n + 5n + 0x100n);
});

Deno.test("runInteger() declines a jump to a non-canonical address and leaves the state", () => {
  const s = state(0x7fff_ffff_fff0n);
  assert.equal(runInteger(b(0xe9, 0x00, 0x01, 0x00, 0x00), s), null);
  assert.equal(s.rip, 0x7fff_ffff_fff0n);
});

Deno.test("runInteger() runs a counted loop's bookkeeping: lea, add, cmp", () => {
  const s = state();
  s.gpr[1] = 41n; // rcx
  runInteger(b(0x48, 0x8d, 0x51, 0x01), s); // lea rdx, [rcx+1]
  assert.equal(s.gpr[2], 42n);
  runInteger(b(0x48, 0x83, 0xc1, 0x02), s); // add rcx, 2
  assert.equal(s.gpr[1], 43n);
  runInteger(b(0x48, 0x39, 0xd1), s); // cmp rcx, rdx
  assert.equal(s.rflags & (CF | ZF | SF | OF), 0);
  runInteger(b(0x31, 0xc9), s); // xor ecx, ecx
  assert.equal(s.gpr[1], 0n);
  assert.equal(s.rflags & ZF, ZF);
  assert.equal(s.rip, 0x1000n + 4n + 4n + 3n + 2n);
});

Deno.test("runInteger() reads AH..BH without REX and SPL..DIL with it", () => {
  const s = state();
  s.gpr[0] = 0x1234n; // rax
  s.gpr[4] = 0x56n; // rsp
  runInteger(b(0x0f, 0xb6, 0xcc), s); // movzx ecx, ah
  assert.equal(s.gpr[1], 0x12n);
  runInteger(b(0x40, 0x0f, 0xb6, 0xcc), s); // movzx ecx, spl
  assert.equal(s.gpr[1], 0x56n);
});

Deno.test("runInteger() declines memory operands, 8/16-bit forms and other prefixes", () => {
  const s = state();
  for (
    const code of [
      b(0x48, 0x8b, 0x07), // mov rax, [rdi]
      b(0x48, 0x01, 0x07), // add [rdi], rax
      b(0x66, 0x01, 0xc8), // add ax, cx
      b(0x00, 0xc8), // add al, cl
      b(0xf0, 0x48, 0x01, 0xc8), // lock add
      b(0xf3, 0x90), // pause
      b(0x48, 0x11, 0xc8), // adc
      b(0xc1, 0xe0, 0x00), // shl eax, 0
      b(0x67, 0x8d, 0x00), // lea with a 32-bit address
      b(0xc3), // ret
      b(0xe8, 0, 0, 0, 0), // call
      b(0x48, 0x83), // truncated
    ]
  ) {
    assert.equal(runInteger(code, s), null, Array.from(code, (x) => x.toString(16)).join(" "));
  }
  assert.equal(s.rip, 0x1000n);
  assert.deepEqual(s.gpr, new BigUint64Array(16));
});
