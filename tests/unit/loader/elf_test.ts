/**
 * Unit tests of `src/loader/elf.ts` on synthetic ELFs: format detection, every
 * parse check and error path, note parsing, relocations and symbols, and
 * robustness against truncated and corrupted files. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  detectFormat,
  type KernelImage,
  parseKernel,
  R_X86_64_64,
  R_X86_64_GLOB_DAT,
  R_X86_64_RELATIVE,
} from "../../../src/loader/elf.ts";
import { ImageFormatError } from "../../../src/loader/errors.ts";
import {
  buildElf,
  buildElfLayout,
  DT,
  type ElfOptions,
  encodeNotes,
  gnuNote,
  hermitNote,
  type NoteSpec,
  patchU16,
  patchU64,
  PF,
  PT,
  STB,
  uhyveIfNote,
} from "../../_helpers/elf_builder.ts";

/** Asserts that `fn` throws an ImageFormatError whose message is or matches `message`. */
function assertFormatError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${String(e)}`);
    assert.equal(e.name, "ImageFormatError");
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.ok(!e.message.endsWith("."), "no final period");
    assert.match(e.message, /^[A-Z]/, "capital first letter");
    return true;
  });
}

function parse(opts: ElfOptions): KernelImage {
  return parseKernel(buildElf(opts));
}

const CODE = new Uint8Array(0x40).fill(0x90);

// ---------------------------------------------------------------- detectFormat

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

// ---------------------------------------------------------------- valid kernels

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

// ---------------------------------------------------------------- ELF header checks

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

// ---------------------------------------------------------------- PT_LOAD checks

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

// ---------------------------------------------------------------- notes

Deno.test("parseKernel() requires a PT_NOTE", () => {
  assertFormatError(
    () => parse({ notes: null }),
    "Not a Hermit kernel: the ELF has no PT_NOTE segment, so no HERMIT entry-version note",
  );
});

Deno.test("parseKernel() requires the HERMIT entry-version note", () => {
  const msg = "Not a Hermit kernel: the first PT_NOTE segment has no HERMIT entry-version note";
  assertFormatError(() => parse({ notes: [] }), msg);
  assertFormatError(() => parse({ notes: [gnuNote([0, 12, 0]), uhyveIfNote(2)] }), msg);
  // Right name, wrong type; right type, wrong name.
  assertFormatError(() => parse({ notes: [{ ...hermitNote(), type: 0x5a01 }] }), msg);
  assertFormatError(() => parse({ notes: [{ ...hermitNote(), name: "HERMIX" }] }), msg);
});

Deno.test("parseKernel() requires hermit entry version 4", () => {
  assertFormatError(
    () => parse({ notes: [hermitNote(3)] }),
    "Unsupported hermit entry version 3: dhyve supports entry version 4",
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), desc: new Uint8Array(0) }] }),
    /^Malformed HERMIT note at file offset 0x[0-9a-f]+: its descriptor is empty$/,
  );
});

Deno.test("parseKernel() reads the UHYVEIF version as big-endian", () => {
  assert.equal(parse({ notes: [hermitNote(), uhyveIfNote(2)] }).interfaceVersion, 2);
  assert.equal(parse({ notes: [uhyveIfNote(1), hermitNote()] }).interfaceVersion, 1);
  // A little-endian 2 reads as 0x02000000.
  const le = { ...uhyveIfNote(0), desc: new Uint8Array([2, 0, 0, 0]) };
  assertFormatError(
    () => parse({ notes: [hermitNote(), le] }),
    "Unsupported uhyve interface version 33554432: dhyve supports 1, 2 and 3",
  );
});

Deno.test("parseKernel() rejects uhyve interface versions other than 1, 2 and 3", () => {
  for (const v of [0, 4, 0xffffffff]) {
    assertFormatError(
      () => parse({ notes: [hermitNote(), uhyveIfNote(v)] }),
      `Unsupported uhyve interface version ${v}: dhyve supports 1, 2 and 3`,
    );
  }
});

Deno.test("parseKernel() rejects a UHYVEIF note whose descriptor is not 4 bytes", () => {
  assertFormatError(
    () => parse({ notes: [hermitNote(), { ...uhyveIfNote(2), desc: new Uint8Array(8) }] }),
    /^Malformed UHYVEIF note at file offset 0x[0-9a-f]+: its descriptor is 8 bytes, expected 4$/,
  );
});

Deno.test("parseKernel() reads the Hermit version from a little-endian GNU ABI tag", () => {
  const img = parse({ notes: [gnuNote([0, 12, 3]), hermitNote()] });
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 12, patch: 3 });
  assert.equal(img.legacyMapping, false);
});

Deno.test("parseKernel() sets legacyMapping below Hermit 0.10.0 or without a version", () => {
  const cases: [[number, number, number] | null, boolean][] = [
    [null, true],
    [[0, 9, 99], true],
    [[0, 6, 9], true],
    [[0, 10, 0], false],
    [[0, 13, 2], false],
    [[1, 0, 0], false],
  ];
  for (const [v, legacy] of cases) {
    const notes = v === null ? [hermitNote()] : [hermitNote(), gnuNote(v)];
    const img = parse({ notes });
    assert.equal(img.legacyMapping, legacy, JSON.stringify(v));
  }
});

Deno.test("parseKernel() ignores GNU ABI tags that are not Hermit's", () => {
  const linux = gnuNote([3, 2, 0], 0);
  const short = { ...gnuNote([0, 12, 0]), desc: gnuNote([0, 12, 0]).desc.subarray(0, 12) };
  const otherType = { ...gnuNote([0, 12, 0]), type: 3 }; // NT_GNU_BUILD_ID
  for (const n of [linux, short, otherType]) {
    assert.equal(parse({ notes: [hermitNote(), n] }).hermitVersion, null);
  }
  // The first Hermit one wins, after skipping foreign ones.
  const img = parse({ notes: [linux, hermitNote(), gnuNote([0, 11, 1]), gnuNote([0, 12, 0])] });
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 11, patch: 1 });
});

Deno.test("parseKernel() pads note name and descriptor to 4 bytes from the note start", () => {
  // HERMIT (namesz 7 → 8), GNU (namesz 4), UHYVEIF (namesz 8, no padding) and an
  // odd-sized foreign note (namesz 2, descsz 5) between them.
  const odd: NoteSpec = { name: "X", type: 9, desc: new Uint8Array([1, 2, 3, 4, 5]) };
  const notes = [odd, hermitNote(), odd, uhyveIfNote(2), odd, gnuNote([0, 12, 1])];
  const raw = encodeNotes(notes, 4);
  assert.equal(raw.length % 4, 0);
  const img = parse({ rawNotes: raw, notePAlign: 4 });
  assert.equal(img.interfaceVersion, 2);
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 12, patch: 1 });
});

Deno.test("parseKernel() pads notes to 8 bytes when the PT_NOTE has p_align 8", () => {
  const notes = [hermitNote(), { name: "X", type: 9, desc: new Uint8Array(3) }, uhyveIfNote(2)];
  assert.equal(parse({ notes, noteAlign: 8 }).interfaceVersion, 2);
});

Deno.test("parseKernel() treats p_align 0, 1 and 2 of a PT_NOTE as 4", () => {
  for (const a of [0, 1, 2]) {
    assert.equal(
      parse({ notes: [hermitNote(), uhyveIfNote(2)], notePAlign: a }).interfaceVersion,
      2,
    );
  }
});

Deno.test("parseKernel() reads badly padded notes as misplaced descriptors", () => {
  // Padded to 8 but declared as 4-aligned: the HERMIT descriptor is read from padding.
  assertFormatError(
    () => parse({ notes: [hermitNote()], noteAlign: 8, notePAlign: 4 }),
    "Unsupported hermit entry version 0: dhyve supports entry version 4",
  );
  // No padding at all: the descriptor starts one byte early.
  const raw = new Uint8Array([
    7,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0x5a,
    0,
    0,
    ...new TextEncoder().encode("HERMIT\0"),
    4,
  ]);
  assertFormatError(() => parse({ rawNotes: raw }), /^Malformed note at file offset/);
});

Deno.test("parseKernel() rejects PT_NOTE alignments other than ≤4 and 8", () => {
  assertFormatError(
    () => parse({ notePAlign: 16 }),
    "Malformed ELF: the PT_NOTE segment has alignment 16, expected 4 or 8",
  );
});

Deno.test("parseKernel() rejects notes whose name or descriptor runs past the segment", () => {
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), namesz: 0x1000 }] }),
    /^Malformed note at file offset 0x[0-9a-f]+: its name \(namesz 4096\) runs past the end of the PT_NOTE segment$/,
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), descsz: 0xffffffff }] }),
    /^Malformed note at file offset 0x[0-9a-f]+: its descriptor \(descsz 4294967295\) runs past the end/,
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), namesz: 0xffffffff }] }),
    /its name \(namesz 4294967295\) runs past/,
  );
});

Deno.test("parseKernel() ignores fewer than 12 trailing bytes and empty-named notes", () => {
  const raw = new Uint8Array([
    ...new Uint8Array(12),
    ...encodeNotes([hermitNote()]),
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
  ]);
  const img = parse({ rawNotes: raw });
  assert.equal(img.interfaceVersion, 1);
});

Deno.test("parseKernel() rejects a PT_NOTE that runs past the end of the file", () => {
  assertFormatError(
    () =>
      parse({
        editPhdrs: (ph) => ph.map((p) => (p.type === PT.NOTE ? { ...p, filesz: 0x100000 } : p)),
      }),
    /^Truncated ELF: the PT_NOTE segment \(program header \d\)/,
  );
});

Deno.test("parseKernel() scans only the first PT_NOTE", () => {
  const notes = [hermitNote(), uhyveIfNote(2)];
  const hermitLen = encodeNotes([hermitNote()]).length;
  const ifLen = encodeNotes([uhyveIfNote(2)]).length;
  // First PT_NOTE: only HERMIT; second: UHYVEIF 2, which must be ignored.
  const split = parse({
    notes,
    editPhdrs: (ph) =>
      ph.flatMap((p) =>
        p.type === PT.NOTE
          ? [
            { ...p, filesz: hermitLen, memsz: hermitLen },
            { ...p, offset: Number(p.offset) + hermitLen, filesz: ifLen, memsz: ifLen },
          ]
          : [p]
      ),
  });
  assert.equal(split.interfaceVersion, 1);
  // First PT_NOTE: only UHYVEIF; the HERMIT note in the second one does not count.
  assertFormatError(
    () =>
      parse({
        notes: [uhyveIfNote(2), hermitNote()],
        editPhdrs: (ph) =>
          ph.flatMap((p) =>
            p.type === PT.NOTE
              ? [
                { ...p, filesz: ifLen, memsz: ifLen },
                { ...p, offset: Number(p.offset) + ifLen, filesz: hermitLen, memsz: hermitLen },
              ]
              : [p]
          ),
      }),
    "Not a Hermit kernel: the first PT_NOTE segment has no HERMIT entry-version note",
  );
});

// ---------------------------------------------------------------- PT_DYNAMIC

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

// ---------------------------------------------------------------- relocations

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

// ---------------------------------------------------------------- robustness

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

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
