/**
 * Unit tests of `src/hypercall/exit.ts`: v1 Exit reads an i32 through a
 * pointer, v2 Exit takes the code from RDI. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_V1, V1 } from "../../../src/hypercall/abi.ts";
import { VmStop } from "../../../src/hypercall/context.ts";
import { exitV1, exitV2 } from "../../../src/hypercall/exit.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  fakeContext,
} from "../../_helpers/hypercall_context.ts";

Deno.test("exitV1() stops the VM with the i32 its parameter points to", () => {
  const { ctx, mem } = fakeContext();
  const arg = FAKE_RAM_BASE + 0x100;
  for (const code of [0, 7, 255, 300, -1, -2147483648, 2147483647]) {
    mem.writeI32(arg + EXIT_V1.arg, code);
    const stop = exitV1(ctx, arg);
    assert.ok(stop instanceof VmStop);
    assert.equal(stop.kind, "exit");
    assert.equal(stop.code, code);
  }
});

Deno.test("exitV1() accepts a parameter in the last 4 bytes of guest RAM", () => {
  const { ctx, mem } = fakeContext();
  mem.writeI32(mem.end - 4, 9);
  const stop = exitV1(ctx, mem.end - 4);
  assert.ok(stop instanceof VmStop);
  assert.deepEqual([stop.kind, stop.code], ["exit", 9]);
});

Deno.test("exitV1() stops with a protocol error for a parameter outside guest RAM", () => {
  const { ctx, mem } = fakeContext();
  for (const arg of [0, 0x100, FAKE_RAM_BASE - 1, mem.end - 3, mem.end, 0xffff_ffff]) {
    assertProtocolStop(exitV1(ctx, arg), {
      call: "Exit",
      port: V1.EXIT,
      mentions: [`0x${arg.toString(16)}`, "outside guest memory"],
    });
  }
});

Deno.test("exitV2() takes the low 32 bits of RDI as a signed exit code", () => {
  const { ctx } = fakeContext();
  const cases: [number, number][] = [
    [0, 0],
    [7, 7],
    [255, 255],
    [0xffff_ffff, -1], // (u32)-1 in EDI
    [0xffff_fff9, -7],
    [0x1_0000_0005, 5], // high half ignored
    [0x8000_0000, -2147483648],
  ];
  for (const [rdi, code] of cases) {
    const stop = exitV2(ctx, rdi);
    assert.ok(stop instanceof VmStop);
    assert.deepEqual([stop.kind, stop.code], ["exit", code], `RDI 0x${rdi.toString(16)}`);
  }
});

Deno.test("exitV2() takes a sign-extended negative RDI as that exit code", () => {
  // How a run loop may hand over RDI = 0xffff_ffff_ffff_fff9 (-7 sign-extended) exactly.
  const { ctx } = fakeContext();
  const stop = exitV2(ctx, -7);
  assert.ok(stop instanceof VmStop);
  assert.deepEqual([stop.kind, stop.code], ["exit", -7]);
});

Deno.test("exitV2() never reads guest memory", () => {
  const { ctx } = fakeContext();
  // Any address-looking value is a code, not a pointer: no protocol error.
  const stop = exitV2(ctx, 3);
  assert.ok(stop instanceof VmStop);
  assert.equal(stop.kind, "exit");
  assert.equal(stop.message, "");
});
