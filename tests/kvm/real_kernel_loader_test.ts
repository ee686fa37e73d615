/**
 * Checks the loader (`src/loader/`) against uhyve's real sample Hermit kernels
 * (hermit-abi.md §9) found in the directory named by `HERMIT_IMAGES`. Needs
 * `--allow-env` and `--allow-read`, but not KVM; without the variable it prints
 * a SKIP line and registers the tests as ignored. The kernels are never copied
 * into the repository.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path/posix";
import { type KernelImage, parseKernel, R_X86_64_RELATIVE } from "../../src/loader/elf.ts";
import { ImageFormatError } from "../../src/loader/errors.ts";
import { chooseLayout } from "../../src/loader/layout.ts";
import { loadKernel } from "../../src/loader/load.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";

const MIB = 0x10_0000;

/** The directory of sample kernels, or why the checks are skipped. */
function imagesDir(): { dir: string } | { skip: string } {
  const env = Deno.permissions.querySync({ name: "env", variable: "HERMIT_IMAGES" });
  if (env.state !== "granted") {
    return { skip: "no --allow-env for HERMIT_IMAGES; real Hermit kernel loader checks skipped" };
  }
  const dir = Deno.env.get("HERMIT_IMAGES");
  if (dir === undefined || dir === "") {
    return { skip: "HERMIT_IMAGES is not set; real Hermit kernel loader checks skipped" };
  }
  return { dir };
}

const where = imagesDir();

/** Reads a sample kernel, or returns null (with a SKIP line) when it is absent. */
function readKernel(name: string): Uint8Array | null {
  if (!("dir" in where)) return null;
  try {
    return Deno.readFileSync(join(where.dir, name));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

if ("skip" in where) {
  // deno-lint-ignore no-console
  console.warn(`SKIP: ${where.skip}`);
}

const kernels = {
  helloWorld: readKernel("hello_world"),
  helloC: readKernel("hello_c"),
  rustyDemo: readKernel("rusty_demo"),
};
if ("dir" in where) {
  for (const [name, bytes] of Object.entries(kernels)) {
    if (bytes === null) {
      // deno-lint-ignore no-console
      console.warn(`SKIP: ${name} not found in ${where.dir}; its loader checks skipped`);
    }
  }
}

/** Loads `bytes` into a fresh `memorySize` guest RAM as chooseLayout says. */
function loadFresh(
  bytes: Uint8Array,
  image: KernelImage,
  opts: { memorySize: number; random?: () => number },
): { mem: GuestMemory; kernelAddress: number; entry: number; relocationsApplied: number } {
  const layout = chooseLayout(image, {
    memorySize: opts.memorySize,
    aslr: opts.random !== undefined,
    ...(opts.random === undefined ? {} : { random: opts.random }),
  });
  const mem = new GuestMemory(new ArrayBuffer(opts.memorySize), layout.guestAddress);
  const out = loadKernel(mem, bytes, image, layout.kernelAddress);
  return { mem, kernelAddress: layout.kernelAddress, ...out };
}

/** Checks that every RELATIVE relocation wrote `kernelAddress + addend`. */
function assertRelocated(mem: GuestMemory, image: KernelImage, kernelAddress: number): void {
  for (const r of image.relocations) {
    assert.equal(r.type, R_X86_64_RELATIVE);
    assert.equal(mem.readU64(kernelAddress + r.offset), kernelAddress + r.addend);
  }
}

Deno.test({
  name: "parseKernel() reads hello_world as a v1 legacy PIE with 2245 RELATIVE relocations",
  ignore: kernels.helloWorld === null,
  fn(): void {
    const img = parseKernel(kernels.helloWorld!);
    assert.equal(img.kind, "pie");
    assert.equal(img.entry, 0x360e0);
    assert.equal(img.memSize, 0x9c600);
    assert.equal(img.firstVaddr, 0);
    assert.equal(img.interfaceVersion, 1);
    assert.equal(img.hermitVersion, null);
    assert.equal(img.legacyMapping, true);
    assert.deepEqual(img.warnings, []);
    assert.equal(img.relocations.length, 2245);
    assert.ok(img.relocations.every((r) => r.type === R_X86_64_RELATIVE));
    assert.deepEqual(img.tls, { vaddr: 0x906f8, filesz: 0x20, memsz: 0x81, align: 8 });
    assert.equal(img.segments.length, 4);
  },
});

Deno.test({
  name: "loadKernel() loads hello_world at 0x40000 with entry 0x760e0 and relocates it",
  ignore: kernels.helloWorld === null,
  fn(): void {
    const bytes = kernels.helloWorld!;
    const img = parseKernel(bytes);
    const out = loadFresh(bytes, img, { memorySize: 64 * MIB });
    assert.equal(out.kernelAddress, 0x40000);
    assert.equal(out.entry, 0x760e0);
    assert.equal(out.relocationsApplied, 2245);
    assertRelocated(out.mem, img, 0x40000);
    const text = img.segments[1]!;
    assert.deepEqual(
      out.mem.bytes(0x40000 + text.vaddr, 256),
      bytes.subarray(text.offset, text.offset + 256),
    );
  },
});

Deno.test({
  name: "loadKernel() relocates hello_world at an ASLR address",
  ignore: kernels.helloWorld === null,
  fn(): void {
    const bytes = kernels.helloWorld!;
    const img = parseKernel(bytes);
    const out = loadFresh(bytes, img, { memorySize: 64 * MIB, random: () => 0.37 });
    assert.equal((out.kernelAddress - 0x40000) % (2 * MIB), 0);
    assert.ok(out.kernelAddress > 0x40000);
    assert.equal(out.entry, out.kernelAddress + 0x360e0);
    assertRelocated(out.mem, img, out.kernelAddress);
  },
});

Deno.test({
  name: "parseKernel() and loadKernel() handle hello_c as an EXEC kernel at 0x800000",
  ignore: kernels.helloC === null,
  fn(): void {
    const bytes = kernels.helloC!;
    const img = parseKernel(bytes);
    assert.equal(img.kind, "fixed");
    assert.equal(img.firstVaddr, 0x800000);
    assert.equal(img.entry, 0x8422a0);
    assert.equal(img.memSize, 0x147480);
    assert.equal(img.interfaceVersion, 1);
    assert.equal(img.legacyMapping, true);
    assert.deepEqual(img.relocations, []);
    assert.deepEqual(img.tls, { vaddr: 0x8ca000, filesz: 0, memsz: 4, align: 4 });
    const layout = chooseLayout(img, { memorySize: 64 * MIB, aslr: true });
    assert.deepEqual(layout, {
      guestAddress: 0,
      kernelAddress: 0x800000,
      kernelEnd: 0x947480,
      aslrIgnored: true,
    });
    const mem = new GuestMemory(new ArrayBuffer(64 * MIB));
    const out = loadKernel(mem, bytes, img, 0x800000);
    assert.deepEqual(out, {
      entry: 0x8422a0,
      tls: { start: 0x8ca000, filesz: 0, memsz: 4, align: 4 },
      relocationsApplied: 0,
    });
    assert.deepEqual(mem.bytes(0x800000, 64), bytes.subarray(0, 64));
  },
});

Deno.test({
  name: "parseKernel() and loadKernel() handle rusty_demo (2687 relocations, entry 0x94c10)",
  ignore: kernels.rustyDemo === null,
  fn(): void {
    const bytes = kernels.rustyDemo!;
    const img = parseKernel(bytes);
    assert.equal(img.kind, "pie");
    assert.equal(img.entry, 0x54c10);
    assert.equal(img.memSize, 0xd9d18);
    assert.equal(img.relocations.length, 2687);
    assert.equal(img.interfaceVersion, 1);
    const out = loadFresh(bytes, img, { memorySize: 64 * MIB });
    assert.equal(out.entry, 0x94c10);
    assert.equal(out.relocationsApplied, 2687);
    assertRelocated(out.mem, img, 0x40000);
  },
});

Deno.test({
  name: "parseKernel() throws only ImageFormatError for truncated real kernels",
  ignore: kernels.helloWorld === null || kernels.helloC === null,
  fn(): void {
    for (const bytes of [kernels.helloWorld!, kernels.helloC!]) {
      // Every length in the headers, then a sample through the rest of the file.
      const lengths: number[] = [];
      for (let n = 0; n < 0x1000; n++) lengths.push(n);
      for (let n = 0x1000; n < bytes.length; n += 997) lengths.push(n);
      for (const n of lengths) {
        try {
          parseKernel(bytes.subarray(0, n));
        } catch (e) {
          if (!(e instanceof ImageFormatError)) {
            throw new Error(`length ${n}: ${String(e)}`, { cause: e });
          }
        }
      }
    }
  },
});
