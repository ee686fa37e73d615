/**
 * Unit tests of `src/loader/elf.ts`: a rich synthetic kernel parses, and every
 * truncation and random corruption of it throws only `ImageFormatError`. Runs
 * with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  parseKernel,
  R_X86_64_64,
  R_X86_64_GLOB_DAT,
  R_X86_64_RELATIVE,
} from "../../../src/loader/elf.ts";
import { ImageFormatError } from "../../../src/loader/errors.ts";
import {
  buildElf,
  buildElfLayout,
  gnuNote,
  hermitNote,
  patchU16,
  patchU64,
  STB,
  uhyveIfNote,
} from "../../_helpers/elf_builder.ts";
import { assertFormatError } from "../../_helpers/elf_parse.ts";
import { prng } from "../../_helpers/prng.ts";

/** A rich valid kernel: all note kinds, all relocation kinds, symbols, TLS. */
function richKernel(): Uint8Array {
  return buildElf({
    osabi: 0,
    notes: [gnuNote([0, 12, 0]), hermitNote(), uhyveIfNote(2)],
    tls: { vaddr: 0x1000, filesz: 0x10, memsz: 0x40, align: 16 },
    symbols: [{ value: 0x1020 }, { value: 0, bind: STB.WEAK, shndx: 0 }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1010 },
      { offset: 0x1008, type: R_X86_64_64, sym: 1, addend: 2 },
      { offset: 0x1040, type: R_X86_64_64, sym: 2 },
      { offset: 0x1010, type: R_X86_64_GLOB_DAT, sym: 1 },
    ],
    loads: [{ vaddr: 0x1000, data: new Uint8Array(0x40).fill(0), memsz: 0x2000 }],
  });
}

/** Calls `fn`; anything but success or an ImageFormatError fails the test. */
function onlyFormatErrors(fn: () => unknown, what: string): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (e instanceof ImageFormatError) return false;
    throw new Error(`${what}: threw ${String(e)}`, { cause: e });
  }
}

Deno.test("parseKernel() on the rich test kernel succeeds", () => {
  const img = parseKernel(richKernel());
  assert.equal(img.relocations.length, 4);
  assert.equal(img.interfaceVersion, 2);
  assert.equal(img.warnings.length, 1);
});

Deno.test("parseKernel() throws only ImageFormatError for every truncation", () => {
  const full = richKernel();
  let ok = 0;
  for (let n = 0; n < full.length; n++) {
    if (onlyFormatErrors(() => parseKernel(full.subarray(0, n)), `length ${n}`)) ok++;
  }
  // Cutting the section headers at the end is harmless: DT_SYMTAB is used.
  assert.ok(ok < full.length / 2, `${ok} truncations parsed`);
});

Deno.test("parseKernel() throws only ImageFormatError for random byte corruption", () => {
  const full = richKernel();
  const rand = prng(0xd15ea5e);
  let parsed = 0;
  for (let i = 0; i < 4000; i++) {
    const bytes = full.slice();
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) {
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    }
    if (onlyFormatErrors(() => parseKernel(bytes), `iteration ${i}`)) parsed++;
  }
  assert.ok(parsed > 0);
});

Deno.test("parseKernel() throws only ImageFormatError for random 64-bit fields", () => {
  const b = buildElfLayout({
    notes: [hermitNote(), uhyveIfNote(2)],
    symbols: [{ value: 0x1020 }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1010 },
      { offset: 0x1008, type: R_X86_64_64, sym: 1, addend: 2 },
    ],
  });
  // Every 8-byte-aligned slot in the headers, tables and dynamic section.
  const slots: number[] = [];
  for (let at = 16; at + 8 <= b.loadOffsets[0]!; at += 8) slots.push(at);
  const rand = prng(42);
  const interesting = [
    0n,
    1n,
    0xffff_ffffn,
    1n << 32n,
    (1n << 53n) - 1n,
    1n << 53n,
    (1n << 63n) - 1n,
    1n << 63n,
    (1n << 64n) - 1n,
  ];
  for (const at of slots) {
    for (const value of interesting) {
      const bytes = b.bytes.slice();
      patchU64(bytes, at, value);
      onlyFormatErrors(() => parseKernel(bytes), `slot ${at} = ${value}`);
    }
    for (let i = 0; i < 10; i++) {
      const bytes = b.bytes.slice();
      const value = BigInt(Math.floor(rand() * 2 ** 32)) << BigInt(Math.floor(rand() * 33));
      patchU64(bytes, at, value);
      onlyFormatErrors(() => parseKernel(bytes), `slot ${at} = ${value}`);
    }
  }
});

Deno.test("parseKernel() handles 65535 program headers without hanging", () => {
  // A file whose e_phnum is the maximum and whose table is really there.
  const b = buildElfLayout();
  const big = new Uint8Array(64 + 0xffff * 56);
  big.set(b.bytes.subarray(0, 64));
  patchU16(big, 56, 0xffff);
  const t0 = performance.now();
  assertFormatError(() => parseKernel(big), /no PT_LOAD segment/);
  assert.ok(performance.now() - t0 < 2000);
});
