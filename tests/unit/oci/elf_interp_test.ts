/**
 * `elfInterpreter()`: the PT_INTERP path of a Linux program.
 * @module
 */

import assert from "node:assert/strict";
import { elfInterpreter } from "../../../src/oci/elf_interp.ts";
import { buildElf } from "../../_helpers/elf_builder.ts";

/** A minimal ELF64 with one PT_INTERP program header naming `interp`. */
function withInterp(interp: string): Uint8Array {
  const path = new TextEncoder().encode(`${interp}\0`);
  const bytes = new Uint8Array(64 + 56 + path.length);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  v.setBigUint64(0x20, 64n, true); // e_phoff
  v.setUint16(0x36, 56, true); // e_phentsize
  v.setUint16(0x38, 1, true); // e_phnum
  v.setUint32(64, 3, true); // PT_INTERP
  v.setBigUint64(64 + 8, 120n, true); // p_offset
  v.setBigUint64(64 + 32, BigInt(path.length), true); // p_filesz
  bytes.set(path, 120);
  return bytes;
}

Deno.test("elfInterpreter() reads PT_INTERP", () => {
  assert.equal(
    elfInterpreter(withInterp("/lib64/ld-linux-x86-64.so.2")),
    "/lib64/ld-linux-x86-64.so.2",
  );
});

Deno.test("elfInterpreter() is null for a static program, a truncated one, or not an ELF", () => {
  assert.equal(elfInterpreter(buildElf()), null);
  assert.equal(elfInterpreter(withInterp("/lib64/ld.so").subarray(0, 130)), null);
  assert.equal(elfInterpreter(new TextEncoder().encode("#!/bin/sh\n".padEnd(80))), null);
});
