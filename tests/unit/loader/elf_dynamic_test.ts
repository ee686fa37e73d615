/**
 * Unit tests of `src/loader/elf.ts`: PT_DYNAMIC (no shared libraries, DT_RELA
 * checks) and relocations (RELATIVE, R_X86_64_64, GLOB_DAT, symbols, bounds).
 * Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_RELATIVE } from "../../../src/loader/elf.ts";
import { buildElfLayout, DT, PT, STB } from "../../_helpers/elf_builder.ts";
import { assertFormatError, parse } from "../../_helpers/elf_parse.ts";

Deno.test("parseKernel() rejects kernels linked against dynamic libraries", () => {
  assertFormatError(
    () => parse({ extraDynamic: [[DT.NEEDED, 1]] }),
    "Unsupported kernel: it is linked against dynamic libraries (DT_NEEDED)",
  );
});

Deno.test("parseKernel() rejects a non-zero DT_RELCOUNT and REL tables", () => {
  assertFormatError(
    () => parse({ extraDynamic: [[DT.RELCOUNT, 3]] }),
    "Unsupported kernel: it has REL relocations (DT_RELCOUNT = 3), dhyve applies only RELA relocations",
  );
  assertFormatError(
    () => parse({ extraDynamic: [[DT.REL, 0x100], [DT.RELSZ, 16]] }),
    "Unsupported kernel: it has REL relocations (DT_RELSZ = 16), dhyve applies only RELA relocations",
  );
  // Zero counts are fine, and so is DT_RELACOUNT.
  const img = parse({
    extraDynamic: [[DT.RELCOUNT, 0], [DT.RELSZ, 0]],
    relocations: [{ offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0 }],
  });
  assert.equal(img.relocations.length, 1);
});

Deno.test("parseKernel() stops reading dynamic entries at DT_NULL", () => {
  const img = parse({ extraDynamic: [[DT.NULL, 0], [DT.NEEDED, 1]] });
  assert.deepEqual(img.relocations, []);
});

Deno.test("parseKernel() ignores dynamic tags with a non-zero high word", () => {
  const img = parse({ extraDynamic: [[(1n << 32n) | 1n, 1]] });
  assert.deepEqual(img.relocations, []);
});

Deno.test("parseKernel() rejects a PT_DYNAMIC that runs past the end of the file", () => {
  assertFormatError(
    () =>
      parse({
        dynamic: true,
        editPhdrs: (ph) => ph.map((p) => (p.type === PT.DYNAMIC ? { ...p, filesz: 0x7fff0 } : p)),
      }),
    /^Truncated ELF: the PT_DYNAMIC segment/,
  );
});

Deno.test("parseKernel() checks DT_RELA, DT_RELASZ and DT_RELAENT", () => {
  const relocations = [{ offset: 0x1000, type: R_X86_64_RELATIVE, addend: 1 }];
  assertFormatError(
    () => parse({ relocations, extraDynamic: [[DT.RELAENT, 16]] }),
    "Malformed dynamic section: DT_RELAENT is 16, expected 24",
  );
  assertFormatError(
    () => parse({ relocations, editDynamic: (d) => d.filter(([t]) => t !== DT.RELASZ) }),
    "Malformed dynamic section: it has DT_RELA without DT_RELASZ",
  );
  assertFormatError(
    () => parse({ relocations, editDynamic: (d) => d.filter(([t]) => t !== DT.RELA) }),
    "Malformed dynamic section: it has DT_RELASZ without DT_RELA",
  );
  assertFormatError(
    () => parse({ relocations, extraDynamic: [[DT.RELASZ, 25]] }),
    "Malformed dynamic section: DT_RELASZ (25) is not a multiple of 24",
  );
  assertFormatError(
    () => parse({ relocations, extraDynamic: [[DT.RELA, 0x1030]] }),
    "Malformed dynamic section: the RELA table at 0x1030 (24 bytes) is not inside the file data of a PT_LOAD segment",
  );
  assertFormatError(
    () => parse({ relocations, extraDynamic: [[DT.RELASZ, 24 * 1000]] }),
    /the RELA table at 0x[0-9a-f]+ \(24000 bytes\) is not inside the file data/,
  );
  // Without DT_RELAENT the entry size defaults to 24.
  const img = parse({ relocations, editDynamic: (d) => d.filter(([t]) => t !== DT.RELAENT) });
  assert.equal(img.relocations.length, 1);
});

Deno.test("parseKernel() maps DT_RELA through the PT_LOAD that contains it", () => {
  // The RELA table lives in a second PT_LOAD whose vaddr differs from its file offset.
  const b = buildElfLayout({ relocations: [{ offset: 0x10, type: R_X86_64_RELATIVE, addend: 7 }] });
  const relaBytes = b.bytes.subarray(b.relaOffset, b.relaOffset + 24).slice();
  const moved = parse({
    relocations: [{ offset: 0x10, type: R_X86_64_RELATIVE, addend: 0 }],
    loads: [{ vaddr: 0x7000, data: relaBytes, memsz: 0x100 }],
    extraDynamic: [[DT.RELA, 0x7000]],
  });
  assert.deepEqual(moved.relocations, [
    { offset: 0x10, type: R_X86_64_RELATIVE, addend: 7, symbolValue: 0, weakUndefined: false },
  ]);
});

Deno.test("parseKernel() reads RELATIVE relocations with signed addends", () => {
  const img = parse({
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1234 },
      { offset: 0x1008, type: R_X86_64_RELATIVE, addend: -0x10 },
      { offset: 0x2ff8, type: R_X86_64_RELATIVE, addend: Number.MAX_SAFE_INTEGER },
    ],
  });
  assert.deepEqual(img.relocations.map((r) => [r.offset, r.type, r.addend]), [
    [0x1000, 8, 0x1234],
    [0x1008, 8, -0x10],
    [0x2ff8, 8, Number.MAX_SAFE_INTEGER],
  ]);
});

Deno.test("parseKernel() rejects addends outside ±(2^53 - 1)", () => {
  assertFormatError(
    () =>
      parse({ relocations: [{ offset: 0x1000, type: R_X86_64_RELATIVE, addend: -(1n << 60n) }] }),
    "Malformed ELF: r_addend of relocation 0 is -1152921504606846976, outside the range dhyve handles (±(2^53 - 1))",
  );
});

Deno.test("parseKernel() resolves R_X86_64_64 and GLOB_DAT symbols through DT_SYMTAB", () => {
  const img = parse({
    symbols: [{ value: 0x1500 }, { value: 0, bind: STB.WEAK, shndx: 0 }, {
      value: 0x1600,
      bind: STB.WEAK,
    }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_64, sym: 1, addend: 8 },
      { offset: 0x1008, type: R_X86_64_GLOB_DAT, sym: 3 },
      { offset: 0x1010, type: R_X86_64_64, sym: 2, addend: 4 },
      { offset: 0x1018, type: R_X86_64_64, sym: 0, addend: 0x44 },
    ],
    dynsymSection: false,
  });
  assert.deepEqual(img.relocations, [
    { offset: 0x1000, type: 1, addend: 8, symbolValue: 0x1500, weakUndefined: false },
    { offset: 0x1008, type: 6, addend: 0, symbolValue: 0x1600, weakUndefined: false },
    { offset: 0x1010, type: 1, addend: 4, symbolValue: 0, weakUndefined: true },
    { offset: 0x1018, type: 1, addend: 0x44, symbolValue: 0, weakUndefined: false },
  ]);
});

Deno.test("parseKernel() falls back to the SHT_DYNSYM section without DT_SYMTAB", () => {
  const img = parse({
    symbols: [{ value: 0x1500 }, { value: 0x1700 }],
    relocations: [{ offset: 0x1000, type: R_X86_64_64, sym: 2, addend: 1 }],
    dtSymtab: false,
  });
  assert.equal(img.relocations[0]!.symbolValue, 0x1700);
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0x1500 }],
        relocations: [{ offset: 0x1000, type: R_X86_64_64, sym: 2 }],
        dtSymtab: false,
      }),
    "Relocation at offset 0x1000 refers to symbol 2, which lies outside the .dynsym section (2 symbols)",
  );
});

Deno.test("parseKernel() rejects a symbol reference without a symbol table", () => {
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0x1500 }],
        relocations: [{ offset: 0x1000, type: R_X86_64_64, sym: 1 }],
        dtSymtab: false,
        dynsymSection: false,
      }),
    "Relocation at offset 0x1000 refers to symbol 1, but the kernel has no dynamic symbol table (neither DT_SYMTAB nor a SHT_DYNSYM section)",
  );
});

Deno.test("parseKernel() rejects a symbol index outside the mapped DT_SYMTAB", () => {
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0x1500 }],
        relocations: [{ offset: 0x1000, type: R_X86_64_GLOB_DAT, sym: 0xfffffff }],
        dynsymSection: false,
      }),
    /^Relocation at offset 0x1000 refers to symbol 268435455, which lies outside the DT_SYMTAB table at 0x/,
  );
});

Deno.test("parseKernel() checks DT_SYMENT and a symbol's st_value", () => {
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0x1500 }],
        relocations: [{ offset: 0x1000, type: R_X86_64_64, sym: 1 }],
        extraDynamic: [[DT.SYMENT, 16]],
      }),
    "Malformed dynamic section: DT_SYMENT is 16, expected 24",
  );
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0xffff_ffff_ffff_0000n }],
        relocations: [{ offset: 0x1000, type: R_X86_64_64, sym: 1 }],
      }),
    /^Malformed ELF: st_value of symbol 1 is 0xffffffffffff0000/,
  );
});

Deno.test("parseKernel() needs no symbol table for RELATIVE-only kernels", () => {
  const img = parse({
    relocations: [{ offset: 0x1000, type: R_X86_64_RELATIVE, sym: 5, addend: 3 }],
  });
  assert.equal(img.relocations[0]!.symbolValue, 0);
});

Deno.test("parseKernel() rejects GLOB_DAT relocations with a non-zero addend", () => {
  assertFormatError(
    () =>
      parse({
        symbols: [{ value: 0x1500 }],
        relocations: [{ offset: 0x1000, type: R_X86_64_GLOB_DAT, sym: 1, addend: 8 }],
      }),
    "Malformed relocation at offset 0x1000: R_X86_64_GLOB_DAT with a non-zero addend (8)",
  );
});

Deno.test("parseKernel() names unsupported relocation types", () => {
  assertFormatError(
    () => parse({ relocations: [{ offset: 0x1008, type: 18 }] }),
    "Unsupported relocation R_X86_64_TPOFF64 (18) at offset 0x1008: dhyve applies only R_X86_64_RELATIVE, R_X86_64_64 and R_X86_64_GLOB_DAT",
  );
  assertFormatError(
    () => parse({ relocations: [{ offset: 0x1008, type: 0 }] }),
    /^Unsupported relocation R_X86_64_NONE \(0\)/,
  );
  assertFormatError(
    () => parse({ relocations: [{ offset: 0x1008, type: 7 }] }),
    /^Unsupported relocation R_X86_64_JUMP_SLOT \(7\)/,
  );
  assertFormatError(
    () => parse({ relocations: [{ offset: 0x1008, type: 999 }] }),
    /^Unsupported relocation type 999 at offset 0x1008/,
  );
});

Deno.test("parseKernel() rejects relocations outside the kernel image", () => {
  // memSize is 0x3000: the last 8-byte slot starts at 0x2ff8.
  assert.equal(
    parse({ relocations: [{ offset: 0x2ff8, type: R_X86_64_RELATIVE }] }).relocations.length,
    1,
  );
  for (const offset of [0x2ff9, 0x3000, 0x10_0000_0000]) {
    assertFormatError(
      () => parse({ relocations: [{ offset, type: R_X86_64_RELATIVE }] }),
      `Relocation at offset 0x${offset.toString(16)} lies outside the kernel image (0x0-0x3000)`,
    );
  }
  assertFormatError(
    () => parse({ relocations: [{ offset: 1n << 63n, type: R_X86_64_RELATIVE }] }),
    /^Malformed ELF: r_offset of relocation 0 is 0x8000000000000000/,
  );
});

Deno.test("parseKernel() ignores the relocations of an EXEC kernel with a warning", () => {
  const img = parse({
    type: 2,
    base: 0x800000,
    relocations: [{ offset: 0x801000, type: 18 }, { offset: 0x801008, type: 8 }],
  });
  assert.deepEqual(img.relocations, []);
  assert.deepEqual(img.warnings, [
    "The kernel has 2 RELA relocations, which are ignored for a fixed-address (EXEC) kernel",
  ]);
  // DT_NEEDED and DT_RELCOUNT are still checked.
  assertFormatError(
    () => parse({ type: 2, extraDynamic: [[DT.NEEDED, 1]] }),
    /linked against dynamic libraries/,
  );
});
