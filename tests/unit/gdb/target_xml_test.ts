/**
 * Unit tests of `src/gdb/target_xml.ts` and `src/gdb/breakpoints.ts`: the
 * target description and the `g` packet agree register by register, in
 * GDB's standard x86-64 order; DR7 encoding. No permissions.
 * @module
 */

import assert from "node:assert/strict";
import { Breakpoints } from "../../../src/gdb/breakpoints.ts";
import {
  GDB_REGISTERS,
  REGISTER_FILE_SIZE,
  REGISTER_OFFSETS,
  TARGET_XML,
} from "../../../src/gdb/target_xml.ts";

/** The <reg> elements of the XML, parsed independently of the table. */
function xmlRegisters(): { name: string; bits: number; regnum: number }[] {
  return [...TARGET_XML.matchAll(/<reg name="([^"]+)" bitsize="(\d+)"[^>]*regnum="(\d+)"/g)].map((
    m,
  ) => ({ name: m[1]!, bits: Number(m[2]), regnum: Number(m[3]) }));
}

Deno.test("TARGET_XML is x86-64 with the core and SSE features", () => {
  assert.match(TARGET_XML, /<architecture>i386:x86-64<\/architecture>/);
  assert.match(TARGET_XML, /<feature name="org.gnu.gdb.i386.core">/);
  assert.match(TARGET_XML, /<feature name="org.gnu.gdb.i386.sse">/);
  assert.match(TARGET_XML, /<feature name="org.gnu.gdb.i386.segments">/);
  // Every type a register names is built in or defined in the document.
  const builtIn = new Set(["int64", "int32", "int", "data_ptr", "code_ptr", "i387_ext"]);
  for (const [, type] of TARGET_XML.matchAll(/<reg [^>]*type="([^"]+)"/g)) {
    assert.ok(builtIn.has(type!) || TARGET_XML.includes(`id="${type}"`), `type ${type}`);
  }
});

Deno.test("TARGET_XML lists the registers in GDB's order, numbered 0..n-1", () => {
  const names = xmlRegisters().map((r) => r.name);
  assert.deepEqual(names, [
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    ...Array.from({ length: 8 }, (_, i) => `r${i + 8}`),
    "rip",
    "eflags",
    "cs",
    "ss",
    "ds",
    "es",
    "fs",
    "gs",
    ...Array.from({ length: 8 }, (_, i) => `st${i}`),
    "fctrl",
    "fstat",
    "ftag",
    "fiseg",
    "fioff",
    "foseg",
    "fooff",
    "fop",
    ...Array.from({ length: 16 }, (_, i) => `xmm${i}`),
    "mxcsr",
    "fs_base",
    "gs_base",
  ]);
  assert.deepEqual(xmlRegisters().map((r) => r.regnum), names.map((_, i) => i));
});

Deno.test("the g packet size is the sum of the XML's register sizes (552 bytes)", () => {
  const xmlBytes = xmlRegisters().reduce((n, r) => n + r.bits / 8, 0);
  assert.equal(REGISTER_FILE_SIZE, xmlBytes);
  assert.equal(REGISTER_FILE_SIZE, 536 + 16, "core + SSE, then fs_base and gs_base");
  // Offsets are the running sum of the widths, register by register.
  xmlRegisters().forEach((r, i) => {
    assert.equal(GDB_REGISTERS[i]!.bits, r.bits, r.name);
    if (i > 0) {
      assert.equal(REGISTER_OFFSETS[i], REGISTER_OFFSETS[i - 1]! + GDB_REGISTERS[i - 1]!.bits / 8);
    }
  });
});

Deno.test("Breakpoints.debugRegisters() encodes DR7 enable, RW and LEN bits per slot", () => {
  const bp = new Breakpoints();
  assert.deepEqual(bp.debugRegisters(), [0n, 0n, 0n, 0n, 0n, 0x400n]);
  assert.ok(bp.insertHardware("exec", 0x1000, 1));
  assert.ok(bp.insertHardware("write", 0x2000, 8));
  assert.ok(bp.insertHardware("read", 0x3000, 4));
  assert.ok(bp.insertHardware("access", 0x4002, 2));
  const [dr0, dr1, dr2, dr3, dr6, dr7] = bp.debugRegisters();
  assert.deepEqual([dr0, dr1, dr2, dr3, dr6], [0x1000n, 0x2000n, 0x3000n, 0x4002n, 0n]);
  // L0..L3 = 0x55; slot 0: RW 00 LEN 00; 1: RW 01 LEN 10 (8); 2: RW 11 LEN 11 (4); 3: RW 11 LEN 01 (2).
  const expected = 0x400n | 0x55n | (0b1001n << 20n) | (0b1111n << 24n) | (0b0111n << 28n);
  assert.equal(dr7, expected);
  // Exec slots can be left out (to step off a hardware breakpoint).
  assert.equal(bp.debugRegisters(true)[0], 0n);
  assert.equal(bp.slotFromDr6(0xffff0ff2), 1);
  assert.equal(bp.slotFromDr6(0xffff4ff0), -1, "single step: no slot");
  assert.equal(bp.execSlotAt(0x1000), 0);
  assert.ok(!bp.insertHardware("write", 0x5000, 8), "no fifth slot");
  assert.ok(!bp.insertHardware("write", 0x5000, 3), "bad length");
});
