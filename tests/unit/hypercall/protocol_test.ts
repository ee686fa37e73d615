/**
 * Unit tests of `src/hypercall/protocol.ts`: the one-line protocol-error
 * stops every handler builds. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../../src/exit_codes.ts";
import { VmStop } from "../../../src/hypercall/context.ts";
import { hex } from "../../../src/hex.ts";
import { badParameterBlock, protocolError } from "../../../src/hypercall/protocol.ts";

Deno.test("hex() formats addresses as lowercase 0x… up to 2^53", () => {
  assert.equal(hex(0), "0x0");
  assert.equal(hex(0x1030), "0x1030");
  assert.equal(hex(0xdead_beef), "0xdeadbeef");
  assert.equal(hex(2 ** 52 + 0xabc), "0x10000000000abc");
});

Deno.test("protocolError() builds an error stop with GUEST_PROTOCOL naming call and port", () => {
  const stop = protocolError("Cmdval", 0x780, "did something odd");
  assert.ok(stop instanceof VmStop);
  assert.equal(stop.kind, "error");
  assert.equal(stop.code, EXIT_CODE.GUEST_PROTOCOL);
  assert.equal(stop.message, "Guest hypercall Cmdval (port 0x780) did something odd");
  assert.equal(stop.detail, "");
});

Deno.test("badParameterBlock() says where the block was and how big", () => {
  const stop = badParameterBlock("Exit", 0x540, 0x1234, 4);
  assert.equal(
    stop.message,
    "Guest hypercall Exit (port 0x540) passed a parameter block at 0x1234 (4 bytes) " +
      "outside guest memory",
  );
  assert.equal(stop.code, EXIT_CODE.GUEST_PROTOCOL);
});
