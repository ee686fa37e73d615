/**
 * The run-ahead (src/emulate/run_ahead.ts) over guest memory with page
 * tables: rusty_demo's π loop runs whole and bit-exactly, and the run stops
 * where it must (unsupported or faulting instructions, the limits, TF).
 * @module
 */

import assert from "node:assert/strict";
import { runAhead } from "../../../src/emulate/run_ahead.ts";
import type { SseState } from "../../../src/emulate/sse.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { GuestVirtualMemory } from "../../../src/memory/guest_virtual.ts";

/** rusty_demo's sequential π loop (unrolled twice, as compiled), then RET. */
const PI_LOOP = "66480f6ec1660f62c2660f5cc366440f28c066440f15c0f2440f58c0f2440f58c4" +
  "f2440f59c5f2450f59c0f2440f58c6660f28c7f2410f5ec0f20f58c1488d510166480f6eca660f62ca" +
  "660f5ccb66440f28c166440f15c1f2440f58c1f2440f58c4f2440f59c5f2450f59c0f2440f58c6660f28cf" +
  "f2410f5ec8f20f58c84883c1024883c0fe0f8574ffffffc3";

const CODE = 0x8000n;

function hex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
}

/** Guest RAM whose first 2 MiB are mapped at virtual 0, with `code` at CODE. */
function machine(
  code: Uint8Array,
): { state: SseState; memory: GuestVirtualMemory; view: DataView } {
  const ram = new GuestMemory(new ArrayBuffer(0x40_0000));
  ram.writeU64(0x1000, 0x2000 | 3);
  ram.writeU64(0x2000, 0x3000 | 3);
  ram.writeU64(0x3000, 0x20_0000 | 0x83);
  const memory = new GuestVirtualMemory(ram);
  memory.cr3 = 0x1000;
  assert.equal(memory.write(CODE, code), null);
  const state: SseState = {
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
    gpr: new BigUint64Array(16),
    rflags: 0x2,
    rip: CODE,
    fsBase: 0n,
    gsBase: 0n,
  };
  return { state, memory, view: new DataView(state.xmm.buffer) };
}

Deno.test("runAhead() runs rusty_demo's π loop whole, bit for bit like JS doubles", () => {
  const steps = 5e6;
  const passes = 500;
  const m = machine(hex(PI_LOOP));
  const v = m.view;
  v.setUint32(32, 0x4330_0000, true); // xmm2, xmm3: u64 → f64
  v.setUint32(36, 0x4530_0000, true);
  v.setFloat64(48, 2 ** 52, true);
  v.setFloat64(56, 2 ** 84, true);
  v.setFloat64(64, 0.5, true); // xmm4
  v.setFloat64(80, 1 / steps, true); // xmm5
  v.setFloat64(96, 1, true); // xmm6
  v.setFloat64(112, 4, true); // xmm7
  m.state.gpr[0] = BigInt(2 * passes); // rax: steps left
  const r = runAhead(m.state, m.memory, { limit: 1e6, maxIntegerGap: 24 });
  assert.equal(r.count, passes * 30);
  assert.equal(r.integer, passes * 4);
  assert.equal(m.state.rip, CODE + BigInt(hex(PI_LOOP).length - 1), "stopped at RET");
  let sum = 0;
  const step = 1 / steps;
  for (let i = 0; i < 2 * passes; i++) {
    const x = (i + 0.5) * step;
    sum = 4 / (1 + x * x) + sum;
  }
  assert.equal(v.getFloat64(16, true), sum);
  assert.equal(m.state.gpr[1], BigInt(2 * passes)); // rcx
  assert.equal(m.state.mxcsr & 0x20, 0x20, "PE from the inexact divisions");
});

Deno.test("runAhead() stops at its limit with the state of exactly the instructions run", () => {
  const m = machine(hex(PI_LOOP));
  m.state.gpr[0] = 1000n;
  const r = runAhead(m.state, m.memory, { limit: 14, maxIntegerGap: 24 });
  assert.equal(r.count, 14);
  assert.equal(m.state.rip, CODE + 0x3dd91n - 0x3dd50n, "at the second movq");
  assert.equal(m.state.gpr[2], 1n, "lea rdx, [rcx+1] ran");
});

Deno.test("runAhead() leaves faulting and unknown instructions, long integer runs and TF to KVM", () => {
  // movaps xmm0, [rax] with a misaligned rax: not run (KVM fails again, dhyve injects #GP then).
  const a = machine(hex("0f2800c3"));
  a.state.gpr[0] = 0x1001n;
  assert.deepEqual(runAhead(a.state, a.memory, { limit: 100, maxIntegerGap: 24 }), {
    count: 0,
    integer: 0,
    changed: 0,
  });
  assert.equal(a.state.rip, CODE);
  // 30 × inc eax: only 24 integer instructions in a row.
  const b = machine(hex("ffc0".repeat(30) + "c3"));
  assert.equal(runAhead(b.state, b.memory, { limit: 100, maxIntegerGap: 24 }).count, 24);
  assert.equal(b.state.gpr[0], 24n);
  // Single-stepping: nothing.
  const c = machine(hex("ffc0c3"));
  c.state.rflags |= 0x100;
  assert.equal(runAhead(c.state, c.memory, { limit: 100, maxIntegerGap: 24 }).count, 0);
  // Unmapped code: nothing.
  const d = machine(hex("c3"));
  d.state.rip = 0x40_0000n;
  assert.equal(runAhead(d.state, d.memory, { limit: 100, maxIntegerGap: 24 }).count, 0);
});
