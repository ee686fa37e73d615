/**
 * Unit tests of `src/loader/load.ts`: segment copying and zeroing, relocation
 * application checked byte by byte in a GuestMemory over a plain ArrayBuffer,
 * entry and TLS, and every error path (never a GuestMemoryError). Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  type KernelImage,
  parseKernel,
  R_X86_64_64,
  R_X86_64_GLOB_DAT,
  R_X86_64_RELATIVE,
} from "../../../src/loader/elf.ts";
import { ImageFormatError, LayoutError } from "../../../src/loader/errors.ts";
import { chooseLayout } from "../../../src/loader/layout.ts";
import { loadKernel } from "../../../src/loader/load.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import {
  buildElf,
  buildElfLayout,
  type ElfOptions,
  gnuNote,
  hermitNote,
  PF,
  STB,
  uhyveIfNote,
} from "../../_helpers/elf_builder.ts";
import { prng } from "../../_helpers/prng.ts";

const MIB = 0x10_0000;

/** Guest RAM of `size` bytes at `base`, filled with 0xAA so untouched bytes show. */
function ram(size = 2 * MIB, base = 0): GuestMemory {
  const mem = new GuestMemory(new ArrayBuffer(size), base);
  mem.u8.fill(0xaa);
  return mem;
}

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 13 + seed) & 0xff || 1);
}

function build(opts: ElfOptions): { bytes: Uint8Array; image: KernelImage } {
  const bytes = buildElf(opts);
  return { bytes, image: parseKernel(bytes) };
}

/** Asserts that `fn` throws `cls` (and so never a GuestMemoryError) with `message`. */
function assertThrowsClass(
  fn: () => unknown,
  cls: typeof ImageFormatError | typeof LayoutError,
  message: string | RegExp,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

Deno.test("loadKernel() copies p_filesz bytes, zeroes the tail and leaves gaps alone", () => {
  const code = pattern(0x40, 3);
  const data = pattern(0x10, 5);
  const b = buildElfLayout({
    entry: 0x1010,
    loads: [
      { vaddr: 0x1000, data: code, memsz: 0x2000, flags: PF.R | PF.X },
      { vaddr: 0x4000, data, memsz: 0x100 },
    ],
  });
  const image = parseKernel(b.bytes);
  const mem = ram();
  const k = 0x40000;
  const out = loadKernel(mem, b.bytes, image, k);
  assert.deepEqual(out, { entry: k + 0x1010, tls: null, relocationsApplied: 0 });
  const metaSize = image.segments[0]!.filesz;
  assert.deepEqual(mem.bytes(k, metaSize), b.bytes.subarray(0, metaSize));
  assert.ok(mem.bytes(k + metaSize, 0x1000 - metaSize).every((x) => x === 0xaa), "gap");
  assert.deepEqual(mem.bytes(k + 0x1000, 0x40), code);
  assert.ok(mem.bytes(k + 0x1040, 0x2000 - 0x40).every((x) => x === 0), "bss zeroed");
  assert.ok(mem.bytes(k + 0x3000, 0x1000).every((x) => x === 0xaa), "gap");
  assert.deepEqual(mem.bytes(k + 0x4000, 0x10), data);
  assert.ok(mem.bytes(k + 0x4010, 0xf0).every((x) => x === 0), "tail zeroed");
  assert.ok(mem.bytes(0, k).every((x) => x === 0xaa), "nothing below the kernel");
  assert.ok(mem.bytes(k + 0x4100, 0x1000).every((x) => x === 0xaa), "nothing above it");
});

Deno.test("loadKernel() with zeroed RAM leaves a .bss untouched but still zeroes an overlap", () => {
  const code = pattern(0x40, 3);
  const first = pattern(0x100, 7);
  const second = pattern(0x10, 9);
  const b = buildElfLayout({
    entry: 0x1010,
    loads: [
      { vaddr: 0x1000, data: code, memsz: 0x2000, flags: PF.R | PF.X },
      // A malformed image: the second segment's tail covers the end of the first's bytes.
      { vaddr: 0x4000, data: first, memsz: 0x100 },
      { vaddr: 0x4080, data: second, memsz: 0x100 },
    ],
  });
  const image = parseKernel(b.bytes);
  const k = 0x40000;
  const zeroed = ram();
  loadKernel(zeroed, b.bytes, image, k, { zeroed: true });
  assert.deepEqual(zeroed.bytes(k + 0x1000, 0x40), code);
  // The caller promised zeros: the 0xaa pattern shows which bytes were never written.
  assert.ok(zeroed.bytes(k + 0x1040, 0x2000 - 0x40).every((x) => x === 0xaa), ".bss untouched");
  assert.deepEqual(zeroed.bytes(k + 0x4000, 0x80), first.subarray(0, 0x80));
  assert.deepEqual(zeroed.bytes(k + 0x4080, 0x10), second);
  assert.ok(zeroed.bytes(k + 0x4090, 0x70).every((x) => x === 0), "overlap zeroed");
  assert.ok(zeroed.bytes(k + 0x4100, 0x80).every((x) => x === 0xaa), "rest of the tail untouched");
  // Without the promise, every tail is zeroed, and the overlap ends the same.
  const plain = ram();
  loadKernel(plain, b.bytes, image, k);
  assert.ok(plain.bytes(k + 0x1040, 0x2000 - 0x40).every((x) => x === 0), ".bss zeroed");
  assert.deepEqual(plain.bytes(k + 0x4000, 0x90), zeroed.bytes(k + 0x4000, 0x90));
  assert.ok(plain.bytes(k + 0x4090, 0xf0).every((x) => x === 0), "tail zeroed");
});

Deno.test("loadKernel() applies R_X86_64_RELATIVE as base + addend, little-endian", () => {
  const { bytes, image } = build({
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1234 },
      { offset: 0x1008, type: R_X86_64_RELATIVE, addend: 0 },
      { offset: 0x2ff8, type: R_X86_64_RELATIVE, addend: 0x2ff8 },
    ],
  });
  const mem = ram();
  const out = loadKernel(mem, bytes, image, 0x40000);
  assert.equal(out.relocationsApplied, 3);
  assert.deepEqual([...mem.bytes(0x41000, 8)], [0x34, 0x12, 0x04, 0, 0, 0, 0, 0]);
  assert.equal(mem.readU64(0x41008), 0x40000);
  assert.equal(mem.readU64(0x42ff8), 0x42ff8);
});

Deno.test("loadKernel() writes all 64 bits above 4 GiB and two's complement below 0", () => {
  const { bytes, image } = build({
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1234 },
      { offset: 0x1008, type: R_X86_64_RELATIVE, addend: -0x1_0005_0000 },
    ],
  });
  const base = 0x1_0000_0000;
  const mem = ram(MIB, base);
  loadKernel(mem, bytes, image, base + 0x40000);
  assert.deepEqual([...mem.bytes(base + 0x41000, 8)], [0x34, 0x12, 0x04, 0, 1, 0, 0, 0]);
  assert.equal(mem.readU64Big(base + 0x41008), (1n << 64n) - 0x10000n);
});

Deno.test("loadKernel() applies R_X86_64_64 and GLOB_DAT as base + symbol + addend", () => {
  const { bytes, image } = build({
    symbols: [{ value: 0x1500 }, { value: 0x1600, bind: STB.WEAK }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_64, sym: 1, addend: 8 },
      { offset: 0x1008, type: R_X86_64_GLOB_DAT, sym: 2 },
      { offset: 0x1010, type: R_X86_64_64, sym: 0, addend: 0x10 },
    ],
  });
  const mem = ram(4 * MIB);
  const out = loadKernel(mem, bytes, image, 0x20_0000);
  assert.equal(out.relocationsApplied, 3);
  assert.equal(mem.readU64(0x20_1000), 0x20_1508);
  assert.equal(mem.readU64(0x20_1008), 0x20_1600);
  assert.equal(mem.readU64(0x20_1010), 0x20_0010);
});

Deno.test("loadKernel() leaves a weak undefined symbol's zero target alone", () => {
  const { bytes, image } = build({
    symbols: [{ value: 0, bind: STB.WEAK, shndx: 0 }],
    relocations: [
      { offset: 0x1100, type: R_X86_64_64, sym: 1, addend: 8 },
      { offset: 0x1108, type: R_X86_64_GLOB_DAT, sym: 1 },
    ],
  });
  const mem = ram();
  const out = loadKernel(mem, bytes, image, 0x40000);
  assert.equal(out.relocationsApplied, 2);
  assert.equal(mem.readU64Big(0x41100), 0n);
  assert.equal(mem.readU64Big(0x41108), 0n);
});

Deno.test("loadKernel() rejects a weak undefined symbol whose target is not zero", () => {
  const { bytes, image } = build({
    symbols: [{ value: 0, bind: STB.WEAK, shndx: 0 }],
    relocations: [{ offset: 0x1008, type: R_X86_64_64, sym: 1 }],
    loads: [{ vaddr: 0x1000, data: pattern(0x40, 1), memsz: 0x1000 }],
  });
  assertThrowsClass(
    () => loadKernel(ram(), bytes, image, 0x40000),
    ImageFormatError,
    "Relocation at offset 0x1008 refers to a weak undefined symbol, but its 8 bytes in the " +
      "image are not zero",
  );
});

Deno.test("loadKernel() relocates the entry point and TLS of a PIE kernel", () => {
  const { bytes, image } = build({
    entry: 0x1234,
    tls: { vaddr: 0x1040, filesz: 0x20, memsz: 0x81, align: 8 },
  });
  const out = loadKernel(ram(), bytes, image, 0x40000);
  assert.deepEqual(out, {
    entry: 0x41234,
    tls: { start: 0x41040, filesz: 0x20, memsz: 0x81, align: 8 },
    relocationsApplied: 0,
  });
});

Deno.test("loadKernel() loads an EXEC kernel at its link address without relocating", () => {
  const code = pattern(0x40, 9);
  const { bytes, image } = build({
    type: 2,
    base: 0x80_0000,
    entry: 0x80_1010,
    loads: [{ vaddr: 0x80_1000, data: code, memsz: 0x1000 }],
    tls: { vaddr: 0x80_1800, filesz: 0, memsz: 4, align: 4 },
    relocations: [{ offset: 0x80_1000, type: R_X86_64_RELATIVE, addend: 5 }],
  });
  assert.equal(image.warnings.length, 1);
  const mem = ram(16 * MIB);
  const layout = chooseLayout(image, { memorySize: 16 * MIB, aslr: true });
  assert.equal(layout.aslrIgnored, true);
  const out = loadKernel(mem, bytes, image, layout.kernelAddress);
  assert.deepEqual(out, {
    entry: 0x80_1010,
    tls: { start: 0x80_1800, filesz: 0, memsz: 4, align: 4 },
    relocationsApplied: 0,
  });
  assert.deepEqual(mem.bytes(0x80_1000, 0x40), code, "not relocated");
});

Deno.test("loadKernel() rejects an EXEC kernel loaded away from its link address", () => {
  const { bytes, image } = build({ type: 2, base: 0x80_0000 });
  assertThrowsClass(
    () => loadKernel(ram(16 * MIB), bytes, image, 0x40000),
    LayoutError,
    "A fixed-address kernel must be loaded at its link address 0x800000, not 0x40000",
  );
});

Deno.test("loadKernel() rejects an image that does not fit in guest memory", () => {
  const { bytes, image } = build({});
  for (const k of [2 * MIB - 0x2fff, -0x1000, 0x40000 + 0.5, Number.NaN]) {
    const mem = ram();
    assertThrowsClass(
      () => loadKernel(mem, bytes, image, k),
      LayoutError,
      /^The kernel image .* does not fit in guest memory 0x0-0x200000$/,
    );
    assert.ok(mem.u8.every((x) => x === 0xaa), "nothing written");
  }
  assertThrowsClass(
    () => loadKernel(ram(MIB, 0x1_0000_0000), bytes, image, 0x40000),
    LayoutError,
    "The kernel image 0x40000+0x3000 does not fit in guest memory 0x100000000-0x100100000",
  );
  // The last possible place works.
  assert.equal(loadKernel(ram(), bytes, image, 2 * MIB - 0x3000).relocationsApplied, 0);
});

Deno.test("loadKernel() rejects hand-made relocations outside the image, not a GuestMemoryError", () => {
  const { bytes, image } = build({});
  const cases: [number, string][] = [
    [0x2ff9, "0x2ff9"],
    [0x3000, "0x3000"],
    [-8, "0xfffffffffffffff8"], // shown as the 64-bit pattern, like every hex() in dhyve
    [0x1_0000_0000, "0x100000000"],
    [0.5, "0.5"],
  ];
  for (const [offset, shown] of cases) {
    const bad: KernelImage = {
      ...image,
      relocations: [{
        offset,
        type: R_X86_64_RELATIVE,
        addend: 0,
        symbolValue: 0,
        weakUndefined: false,
      }],
    };
    const mem = ram();
    assertThrowsClass(
      () => loadKernel(mem, bytes, bad, 0x40000),
      ImageFormatError,
      `Relocation at offset ${shown} lies outside the kernel image (0x0-0x3000)`,
    );
    assert.ok(mem.bytes(0x43000, 0x1000).every((x) => x === 0xaa), "nothing past the image");
  }
});

Deno.test("loadKernel() rejects hand-made unsupported relocations", () => {
  const { bytes, image } = build({});
  const rel = { offset: 0x1000, addend: 0, symbolValue: 0, weakUndefined: false };
  assertThrowsClass(
    () => loadKernel(ram(), bytes, { ...image, relocations: [{ ...rel, type: 18 }] }, 0x40000),
    ImageFormatError,
    /^Unsupported relocation R_X86_64_TPOFF64 \(18\) at offset 0x1000: dhyve applies only/,
  );
  assertThrowsClass(
    () =>
      loadKernel(
        ram(),
        bytes,
        { ...image, relocations: [{ ...rel, type: R_X86_64_GLOB_DAT, addend: 4 }] },
        0x40000,
      ),
    ImageFormatError,
    "Malformed relocation at offset 0x1000: R_X86_64_GLOB_DAT with a non-zero addend (4)",
  );
  assertThrowsClass(
    () =>
      loadKernel(
        ram(),
        bytes,
        {
          ...image,
          relocations: [{ ...rel, type: R_X86_64_RELATIVE, addend: Number.MAX_SAFE_INTEGER }],
        },
        0x40000,
      ),
    ImageFormatError,
    "Relocation at offset 0x1000 yields a value outside the range dhyve handles (±(2^53 - 1))",
  );
});

Deno.test("loadKernel() rejects hand-made segments that are truncated or malformed", () => {
  const { bytes, image } = build({});
  const seg = image.segments[1]!;
  const withSeg = (s: Partial<typeof seg>): KernelImage => ({
    ...image,
    segments: [image.segments[0]!, { ...seg, ...s }],
  });
  assertThrowsClass(
    () => loadKernel(ram(), bytes, withSeg({ offset: bytes.length - 8 }), 0x40000),
    ImageFormatError,
    /^Truncated ELF: the file data of PT_LOAD segment 1 \(0x[0-9a-f]+\+0x40\) runs past the end of the file/,
  );
  assertThrowsClass(
    () => loadKernel(ram(), bytes, withSeg({ offset: -1 }), 0x40000),
    ImageFormatError,
    /^Truncated ELF/,
  );
  assertThrowsClass(
    () => loadKernel(ram(), bytes, withSeg({ memsz: 0x20 }), 0x40000),
    ImageFormatError,
    "Malformed ELF: PT_LOAD segment 1 has p_filesz 0x40 larger than p_memsz 0x20",
  );
  for (
    const s of [{ vaddr: 0x2000 }, { vaddr: -0x10 }, { vaddr: 0x1000 + 0.5 }, { memsz: 0x2001 }]
  ) {
    assertThrowsClass(
      () => loadKernel(ram(), bytes, withSeg(s), 0x40000),
      ImageFormatError,
      /^Malformed ELF: PT_LOAD segment 1 .* lies outside the kernel image 0x0\+0x3000$/,
    );
  }
  assertThrowsClass(
    () => loadKernel(ram(), bytes, { ...image, memSize: Number.NaN }, 0x40000),
    ImageFormatError,
    /^Malformed kernel image/,
  );
});

Deno.test("loadKernel() after parseKernel() and chooseLayout() boots a v2 kernel at 4 GiB", () => {
  const { bytes, image } = build({
    notes: [hermitNote(), uhyveIfNote(2), gnuNote([0, 13, 2])],
    relocations: [{ offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1000 }],
  });
  const layout = chooseLayout(image, { memorySize: 16 * MIB, aslr: false });
  assert.equal(layout.guestAddress, 0x1_0000_0000);
  const mem = ram(16 * MIB, layout.guestAddress);
  const out = loadKernel(mem, bytes, image, layout.kernelAddress);
  assert.equal(out.entry, 0x1_0004_1000);
  assert.equal(mem.readU64(0x1_0004_1000), 0x1_0004_1000);
});

Deno.test("loadKernel() throws only ImageFormatError or LayoutError for corrupted kernels", () => {
  const full = buildElf({
    notes: [hermitNote(), uhyveIfNote(2)],
    tls: { vaddr: 0x1000, filesz: 0x10, memsz: 0x40, align: 16 },
    symbols: [{ value: 0x1020 }, { value: 0, bind: STB.WEAK, shndx: 0 }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1010 },
      { offset: 0x1008, type: R_X86_64_64, sym: 1, addend: 2 },
      { offset: 0x1040, type: R_X86_64_64, sym: 2 },
      { offset: 0x1010, type: R_X86_64_GLOB_DAT, sym: 1 },
    ],
    loads: [{ vaddr: 0x1000, data: new Uint8Array(0x40), memsz: 0x2000 }],
  });
  const rand = prng(1234);
  const mem = ram(4 * MIB);
  let loaded = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = full.slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let f = 0; f < flips; f++) {
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    }
    try {
      const image = parseKernel(bytes);
      const k = image.kind === "pie" ? 0x40000 : image.firstVaddr;
      loadKernel(mem, bytes, image, k);
      loaded++;
    } catch (e) {
      if (!(e instanceof ImageFormatError || e instanceof LayoutError)) {
        throw new Error(`iteration ${i}: ${String(e)}`, { cause: e });
      }
    }
  }
  assert.ok(loaded > 0);
});

Deno.test("loadKernel() throws only ImageFormatError or LayoutError for random images", () => {
  const { bytes, image } = build({
    symbols: [{ value: 0x1020 }],
    relocations: [
      { offset: 0x1000, type: R_X86_64_RELATIVE, addend: 0x1010 },
      { offset: 0x1008, type: R_X86_64_64, sym: 1, addend: 2 },
    ],
  });
  const rand = prng(99);
  const values = [
    0,
    1,
    -1,
    0.5,
    8,
    0x1000,
    0x2ff8,
    0x3000,
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    2 ** 60,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ];
  const pick = (): number => values[Math.floor(rand() * values.length)]!;
  const mem = ram();
  for (let i = 0; i < 3000; i++) {
    const img: KernelImage = structuredClone(image);
    const s = img.segments[Math.floor(rand() * img.segments.length)]!;
    const r = img.relocations[Math.floor(rand() * img.relocations.length)]!;
    switch (Math.floor(rand() * 10)) {
      case 0:
        s.vaddr = pick();
        break;
      case 1:
        s.offset = pick();
        break;
      case 2:
        s.filesz = pick();
        break;
      case 3:
        s.memsz = pick();
        break;
      case 4:
        img.memSize = pick();
        break;
      case 5:
        r.offset = pick();
        break;
      case 6:
        r.addend = pick();
        break;
      case 7:
        r.symbolValue = pick();
        break;
      case 8:
        r.type = Math.floor(rand() * 12);
        r.weakUndefined = rand() < 0.5;
        break;
      case 9:
        img.firstVaddr = pick();
        break;
    }
    const k = rand() < 0.8 ? 0x40000 : pick();
    try {
      loadKernel(mem, bytes, img, k);
    } catch (e) {
      if (!(e instanceof ImageFormatError || e instanceof LayoutError)) {
        throw new Error(`iteration ${i}: ${String(e)} for ${JSON.stringify(img)}`, { cause: e });
      }
    }
  }
});
