/**
 * Unit tests of `src/loader/elf.ts` on synthetic ELFs: format detection, valid
 * kernels (PIE and fixed), and the ELF header checks. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { detectFormat, parseKernel } from "../../../src/loader/elf.ts";
import {
  buildElf,
  hermitNote,
  patchU16,
  patchU64,
  PF,
  PT,
  uhyveIfNote,
} from "../../_helpers/elf_builder.ts";
import { assertFormatError, CODE, parse } from "../../_helpers/elf_parse.ts";

Deno.test("detectFormat() recognises the ELF magic", () => {
  assert.equal(detectFormat(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])), "elf");
  assert.equal(detectFormat(buildElf()), "elf");
});

Deno.test("detectFormat() recognises a gzip stream as a Hermit image", () => {
  assert.equal(detectFormat(new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0x00])), "hermit-image");
});

Deno.test("detectFormat() rejects files shorter than 4 bytes", () => {
  for (const n of [0, 1, 2, 3]) {
    assertFormatError(
      () => detectFormat(new Uint8Array([0x7f, 0x45, 0x4c].slice(0, n))),
      `Not a Hermit kernel: the file is only ${n} bytes long`,
    );
  }
});

Deno.test("detectFormat() rejects anything else with one clear line", () => {
  const others = [
    new TextEncoder().encode("#!/bin/sh\n"),
    new Uint8Array([0x50, 0x4b, 0x03, 0x04]), // zip
    new Uint8Array([0x1f, 0x8b, 0x00, 0x00]), // gzip, not deflate
    new Uint8Array([0x7f, 0x45, 0x4c, 0x47]),
  ];
  for (const bytes of others) {
    assertFormatError(
      () => detectFormat(bytes),
      "Not a Hermit kernel: the file does not start with an ELF or gzip header",
    );
  }
});

Deno.test("parseKernel() parses a minimal Hermit PIE", () => {
  const img = parse({});
  assert.deepEqual(img, {
    kind: "pie",
    entry: 0x1000,
    interfaceVersion: 1,
    hermitVersion: null,
    legacyMapping: true,
    segments: [
      {
        vaddr: 0,
        offset: 0,
        filesz: img.segments[0]!.filesz,
        memsz: img.segments[0]!.memsz,
        flags: PF.R,
      },
      {
        vaddr: 0x1000,
        offset: img.segments[1]!.offset,
        filesz: 0x40,
        memsz: 0x2000,
        flags: PF.R | PF.X,
      },
    ],
    firstVaddr: 0,
    memSize: 0x3000,
    tls: null,
    relocations: [],
    warnings: [],
  });
});

Deno.test("parseKernel() parses an EXEC kernel with its fixed first vaddr", () => {
  const img = parse({ type: 2, base: 0x800000, entry: 0x8422a0 });
  assert.equal(img.kind, "fixed");
  assert.equal(img.firstVaddr, 0x800000);
  assert.equal(img.entry, 0x8422a0);
  assert.equal(img.memSize, 0x3000);
});

Deno.test("parseKernel() keeps PT_LOADs in header order and measures memSize first→last", () => {
  const img = parse({
    metaLoad: false,
    loads: [
      { vaddr: 0, data: CODE, memsz: 0x100, flags: PF.R },
      { vaddr: 0x5000, data: CODE, memsz: 0x1800, flags: PF.R | PF.W },
      { vaddr: 0x2000, memsz: 0x10, flags: PF.R | PF.X },
      { vaddr: 0x9000, data: CODE.subarray(0, 8), memsz: 0x123, flags: PF.R },
    ],
  });
  assert.deepEqual(img.segments.map((s) => [s.vaddr, s.filesz, s.memsz, s.flags]), [
    [0, 0x40, 0x100, PF.R],
    [0x5000, 0x40, 0x1800, PF.R | PF.W],
    [0x2000, 0, 0x10, PF.R | PF.X],
    [0x9000, 8, 0x123, PF.R],
  ]);
  assert.equal(img.memSize, 0x9123);
});

Deno.test("parseKernel() takes the first PT_TLS", () => {
  const img = parse({
    tls: { vaddr: 0x1000, filesz: 0x20, memsz: 0x81, align: 8 },
    editPhdrs: (ph) => [...ph, { ...ph.find((p) => p.type === PT.TLS)!, vaddr: 0x1100 }],
  });
  assert.deepEqual(img.tls, { vaddr: 0x1000, filesz: 0x20, memsz: 0x81, align: 8 });
});

Deno.test("parseKernel() warns (does not fail) when OSABI is not 0xFF", () => {
  const img = parse({ osabi: 0 });
  assert.equal(img.warnings.length, 1);
  assert.match(img.warnings[0]!, /OSABI is 0, not 255/);
});

Deno.test("parseKernel() accepts a subarray view of a larger buffer", () => {
  const elf = buildElf({ notes: [hermitNote(), uhyveIfNote(2)] });
  const big = new Uint8Array(elf.length + 100);
  big.set(elf, 37);
  const img = parseKernel(big.subarray(37, 37 + elf.length));
  assert.equal(img.interfaceVersion, 2);
});

Deno.test("parseKernel() rejects a Hermit image with a pointer to unpacking", () => {
  assertFormatError(
    () => parseKernel(new Uint8Array([0x1f, 0x8b, 0x08, 0, 0, 0])),
    /^Not an ELF kernel: the file is a Hermit image/,
  );
});

Deno.test("parseKernel() rejects non-ELF files and files shorter than the ELF header", () => {
  assertFormatError(() => parseKernel(new Uint8Array(2)), /^Not a Hermit kernel/);
  assertFormatError(() => parseKernel(new Uint8Array(100)), /^Not a Hermit kernel/);
  assertFormatError(
    () => parseKernel(buildElf().subarray(0, 63)),
    "Truncated ELF: the file is 63 bytes, shorter than the 64-byte ELF header",
  );
});

Deno.test("parseKernel() rejects 32-bit and unknown ELF classes", () => {
  assertFormatError(
    () => parse({ elfClass: 1 }),
    "Not a 64-bit ELF: the kernel is a 32-bit (ELFCLASS32) object, dhyve runs 64-bit x86_64 kernels",
  );
  assertFormatError(() => parse({ elfClass: 9 }), /^Not a 64-bit ELF: .*ELF class 9/);
});

Deno.test("parseKernel() rejects big-endian ELFs", () => {
  assertFormatError(
    () => parse({ data: 2 }),
    "Not a little-endian ELF: the kernel is big-endian (ELFDATA2MSB), dhyve runs little-endian x86_64 kernels",
  );
  assertFormatError(() => parse({ data: 0 }), /^Not a little-endian ELF: .*data encoding 0/);
});

Deno.test("parseKernel() rejects ELF types other than EXEC and DYN", () => {
  assertFormatError(
    () => parse({ type: 1 }),
    "Unsupported ELF type REL (1): a Hermit kernel is EXEC (2) or DYN (3)",
  );
  assertFormatError(() => parse({ type: 4 }), /^Unsupported ELF type CORE \(4\)/);
  assertFormatError(() => parse({ type: 0xfe00 }), /^Unsupported ELF type unknown \(65024\)/);
});

Deno.test("parseKernel() names the machine of a wrong-architecture kernel", () => {
  assertFormatError(
    () => parse({ machine: 183 }),
    "Wrong architecture: the kernel is built for AArch64 (183), dhyve runs x86_64 kernels",
  );
  assertFormatError(() => parse({ machine: 243 }), /built for RISC-V \(243\)/);
  assertFormatError(() => parse({ machine: 3 }), /built for x86 \(32-bit\) \(3\)/);
  assertFormatError(() => parse({ machine: 4321 }), /built for an unknown machine \(4321\)/);
});

Deno.test("parseKernel() rejects 64-bit header values above 2^53 - 1", () => {
  assertFormatError(
    () => parse({ entry: 0xffff_ffff_8000_0000n }),
    "Malformed ELF: e_entry is 0xffffffff80000000, above the largest value dhyve handles (2^53 - 1)",
  );
  const bytes = buildElf();
  patchU64(bytes, 32, 1n << 53n);
  assertFormatError(() => parseKernel(bytes), /e_phoff is 0x20000000000000/);
  // 2^53 - 1 itself is exact, but then the table lies outside the file.
  patchU64(bytes, 32, Number.MAX_SAFE_INTEGER);
  assertFormatError(() => parseKernel(bytes), /^Truncated ELF: the program header table/);
});

Deno.test("parseKernel() rejects a wrong program header entry size", () => {
  const bytes = buildElf();
  patchU16(bytes, 54, 64);
  assertFormatError(
    () => parseKernel(bytes),
    "Malformed ELF: program header entries are 64 bytes, expected 56",
  );
});

Deno.test("parseKernel() rejects a program header table that runs past the end", () => {
  const bytes = buildElf();
  patchU16(bytes, 56, 0xffff);
  assertFormatError(
    () => parseKernel(bytes),
    /^Truncated ELF: the program header table \(65535 entries\) \(0x40\+0x37ffc8\) runs past the end of the file/,
  );
});
