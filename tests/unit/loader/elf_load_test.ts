/**
 * Unit tests of `src/loader/elf.ts`: the PT_LOAD checks (at least one, PIE at
 * vaddr 0, sizes, file bounds, 2^53, span). Runs with no permissions.
 * @module
 */

import { parseKernel } from "../../../src/loader/elf.ts";
import { buildElf, buildElfLayout, patchU16, patchU64 } from "../../_helpers/elf_builder.ts";
import { assertFormatError, CODE, parse } from "../../_helpers/elf_parse.ts";

Deno.test("parseKernel() requires at least one PT_LOAD", () => {
  assertFormatError(
    () => parse({ metaLoad: false, loads: [] }),
    "Not a loadable kernel: the ELF has no PT_LOAD segment",
  );
  const bytes = buildElf();
  patchU16(bytes, 56, 0); // e_phnum = 0
  assertFormatError(() => parseKernel(bytes), /no PT_LOAD segment/);
});

Deno.test("parseKernel() rejects a PIE whose first PT_LOAD is not at vaddr 0", () => {
  assertFormatError(
    () => parse({ base: 0x200000 }),
    "Unsupported PIE kernel: its first PT_LOAD segment is at 0x200000, dhyve loads relocatable kernels only when it is at 0",
  );
});

Deno.test("parseKernel() rejects a PT_LOAD with p_filesz > p_memsz", () => {
  assertFormatError(
    () => parse({ loads: [{ vaddr: 0x1000, data: CODE, memsz: 0x20 }] }),
    "Malformed ELF: PT_LOAD segment (program header 1) has p_filesz 0x40 larger than p_memsz 0x20",
  );
});

Deno.test("parseKernel() rejects a PT_LOAD whose file data runs past the end", () => {
  const b = buildElfLayout();
  patchU64(b.bytes, b.phoff + 56 + 32, 0x10000); // p_filesz of the code load
  patchU64(b.bytes, b.phoff + 56 + 40, 0x10000);
  assertFormatError(
    () => parseKernel(b.bytes),
    /^Truncated ELF: the file data of PT_LOAD segment \(program header 1\) \(0x[0-9a-f]+\+0x10000\) runs past the end of the file/,
  );
});

Deno.test("parseKernel() rejects a PT_LOAD whose end lies above 2^53", () => {
  assertFormatError(
    () =>
      parse({
        type: 2,
        metaLoad: false,
        loads: [{ vaddr: Number.MAX_SAFE_INTEGER - 0x100, memsz: 0x1000 }],
      }),
    /^Malformed ELF: the end of PT_LOAD segment \(program header 0\) lies above the largest address/,
  );
  assertFormatError(
    () => parse({ entry: 0x1000, loads: [{ vaddr: 1n << 60n, memsz: 0x10 }] }),
    /p_vaddr of program header 1 is 0x1000000000000000, above the largest value/,
  );
});

Deno.test("parseKernel() rejects PT_LOADs outside the span of the first and last one", () => {
  assertFormatError(
    () =>
      parse({
        type: 2,
        metaLoad: false,
        loads: [
          { vaddr: 0x400000, memsz: 0x1000 },
          { vaddr: 0x200000, memsz: 0x1000 },
          { vaddr: 0x500000, memsz: 0x1000 },
        ],
      }),
    "Malformed ELF: PT_LOAD segment 1 (0x200000-0x201000) lies outside the kernel image " +
      "0x400000-0x501000 spanned by the first and last PT_LOAD",
  );
  assertFormatError(
    () =>
      parse({
        type: 2,
        metaLoad: false,
        loads: [
          { vaddr: 0x200000, memsz: 0x1000 },
          { vaddr: 0x300000, memsz: 0x100000 },
          { vaddr: 0x300000, memsz: 0x1000 },
        ],
      }),
    /^Malformed ELF: PT_LOAD segment 1 .* lies outside the kernel image 0x200000-0x301000/,
  );
});

Deno.test("parseKernel() rejects a last PT_LOAD that ends below the first one", () => {
  assertFormatError(
    () =>
      parse({
        type: 2,
        metaLoad: false,
        loads: [{ vaddr: 0x400000, memsz: 0x1000 }, { vaddr: 0x100000, memsz: 0x10 }],
      }),
    "Malformed ELF: the last PT_LOAD ends at 0x100010, below the start of the first one " +
      "(0x400000); PT_LOAD segments must be in ascending order",
  );
});
