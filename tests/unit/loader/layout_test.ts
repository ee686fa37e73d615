/**
 * Unit tests of `src/loader/layout.ts`: interface address ranges, PIE with and
 * without ASLR (injected randomness), EXEC placement rules, the v1 memory limit
 * and the 3–4 GiB gap. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import type { KernelImage } from "../../../src/loader/elf.ts";
import { LayoutError } from "../../../src/loader/errors.ts";
import {
  chooseLayout,
  GUEST_ADDRESS_ALIGN,
  INTERFACE_RANGES,
  MIN_KERNEL_OFFSET,
  PCI_GAP,
  PIE_KERNEL_OFFSET,
} from "../../../src/loader/layout.ts";
import { prng } from "../../_helpers/prng.ts";

type Placement = Pick<KernelImage, "kind" | "interfaceVersion" | "firstVaddr" | "memSize">;

const MIB = 0x10_0000;
const GIB = 1024 * MIB;
/** hello_world's shape (hermit-abi.md §9). */
const PIE_V1: Placement = { kind: "pie", interfaceVersion: 1, firstVaddr: 0, memSize: 0x9c600 };
const PIE_V2: Placement = { ...PIE_V1, interfaceVersion: 2 };
/** hello_c's shape. */
const EXEC_V1: Placement = {
  kind: "fixed",
  interfaceVersion: 1,
  firstVaddr: 0x800000,
  memSize: 0x147480,
};

/** Asserts that `fn` throws a LayoutError whose message is or matches `message`. */
function assertLayoutError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LayoutError, `expected LayoutError, got ${String(e)}`);
    assert.ok(e instanceof RangeError);
    assert.equal(e.name, "LayoutError");
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.endsWith("."), "no final period");
    return true;
  });
}

/** The highest guest address uhyve's formula allows, rounded down to 2 MiB. */
function topGuest(p: Placement, memorySize: number, unit = 0.999999): number {
  const { lo, hi } = INTERFACE_RANGES[p.interfaceVersion];
  const ub = hi - (p.memSize + memorySize + PIE_KERNEL_OFFSET);
  const pick = lo + Math.floor(unit * (ub - lo + 1));
  return pick - (pick % GUEST_ADDRESS_ALIGN);
}

Deno.test("chooseLayout() puts a v1 PIE without ASLR at guest 0, kernel 0x40000", () => {
  assert.deepEqual(chooseLayout(PIE_V1, { memorySize: 64 * MIB, aslr: false }), {
    guestAddress: 0,
    kernelAddress: 0x40000,
    kernelEnd: 0x40000 + 0x9c600,
    aslrIgnored: false,
  });
});

Deno.test("chooseLayout() accepts a v2 PIE at exactly 4 GiB (uhyve 0.8's gap check is wrong)", () => {
  assert.deepEqual(chooseLayout(PIE_V2, { memorySize: 64 * MIB, aslr: false }), {
    guestAddress: 0x1_0000_0000,
    kernelAddress: 0x1_0004_0000,
    kernelEnd: 0x1_0004_0000 + 0x9c600,
    aslrIgnored: false,
  });
});

Deno.test("chooseLayout() with ASLR and random 0 picks the bottom of the range", () => {
  const v1 = chooseLayout(PIE_V1, { memorySize: 64 * MIB, aslr: true, random: () => 0 });
  assert.equal(v1.guestAddress, 0);
  const v2 = chooseLayout(PIE_V2, { memorySize: 64 * MIB, aslr: true, random: () => 0 });
  assert.equal(v2.guestAddress, 0x1_0000_0000);
  assert.equal(v2.kernelAddress, 0x1_0004_0000);
});

Deno.test("chooseLayout() with ASLR and random 0.999999 stays inside the range, 2 MiB aligned", () => {
  for (const p of [PIE_V1, PIE_V2]) {
    for (const memorySize of [16 * MIB, 64 * MIB, 1024 * MIB]) {
      const l = chooseLayout(p, { memorySize, aslr: true, random: () => 0.999999 });
      const { lo, hi } = INTERFACE_RANGES[p.interfaceVersion];
      assert.equal(l.guestAddress, topGuest(p, memorySize));
      assert.equal(l.guestAddress % (2 * MIB), 0);
      assert.ok(l.guestAddress >= lo);
      assert.ok(l.guestAddress + p.memSize + memorySize + PIE_KERNEL_OFFSET <= hi);
      assert.equal(l.kernelAddress, l.guestAddress + 0x40000);
      assert.equal(l.kernelEnd, l.kernelAddress + p.memSize);
      assert.ok(l.guestAddress > lo + (hi - lo) / 2, "0.999999 lands in the upper half");
    }
  }
  // v1 with 64 MiB: ub = 0xBFFFFFFF - 0x40dc600 = 0xBBF239FF; 0.999999 of it → 0xBBE00000.
  const l = chooseLayout(PIE_V1, { memorySize: 64 * MIB, aslr: true, random: () => 0.999999 });
  assert.equal(l.guestAddress, 0xbbe0_0000);
});

Deno.test("chooseLayout() with ASLR never leaves the range for many random values", () => {
  const rand = prng(7);
  for (const p of [PIE_V1, PIE_V2]) {
    const { lo, hi } = INTERFACE_RANGES[p.interfaceVersion];
    for (let i = 0; i < 2000; i++) {
      const memorySize = (8 + Math.floor(rand() * 1000)) * 2 * MIB;
      const l = chooseLayout(p, { memorySize, aslr: true, random: rand });
      assert.equal(l.guestAddress % GUEST_ADDRESS_ALIGN, 0);
      assert.ok(l.guestAddress >= lo && l.guestAddress + memorySize <= hi);
      const ramEnd = l.guestAddress + memorySize;
      assert.ok(ramEnd <= PCI_GAP.start || l.guestAddress >= PCI_GAP.end, "outside the gap");
      assert.ok(l.kernelEnd <= ramEnd);
    }
  }
});

Deno.test("chooseLayout() clamps a misbehaving random source into the range", () => {
  for (const r of [1, 1.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    const l = chooseLayout(PIE_V1, { memorySize: 64 * MIB, aslr: true, random: () => r });
    assert.equal(l.guestAddress % GUEST_ADDRESS_ALIGN, 0);
    assert.ok(l.guestAddress <= topGuest(PIE_V1, 64 * MIB, 1), String(r));
  }
});

Deno.test("chooseLayout() defaults to Math.random", () => {
  const l = chooseLayout(PIE_V1, { memorySize: 64 * MIB, aslr: true });
  assert.equal(l.guestAddress % GUEST_ADDRESS_ALIGN, 0);
  assert.ok(l.guestAddress <= topGuest(PIE_V1, 64 * MIB, 1));
});

Deno.test("chooseLayout() rejects v1 memory that does not fit below 3 GiB", () => {
  assertLayoutError(
    () => chooseLayout(PIE_V1, { memorySize: 3 * GIB, aslr: true }),
    "Guest memory of 3072 MiB does not fit below 3 GiB for a uhyve interface v1 kernel; " +
      "use at most 3070 MiB",
  );
  // The suggested maximum really fits, at both ends of the ASLR range.
  for (const random of [() => 0, () => 0.999999]) {
    const l = chooseLayout(PIE_V1, { memorySize: 3070 * MIB, aslr: true, random });
    assert.ok(l.guestAddress + 3070 * MIB <= PCI_GAP.start);
  }
  assertLayoutError(
    () => chooseLayout(EXEC_V1, { memorySize: 4 * GIB, aslr: false }),
    /^Guest memory of 4096 MiB does not fit below 3 GiB for a uhyve interface v1 kernel; use at most \d+ MiB$/,
  );
  assertLayoutError(
    () => chooseLayout(PIE_V1, { memorySize: 3 * GIB + 12345, aslr: false }),
    /^Guest memory of 3221237817 bytes does not fit below 3 GiB/,
  );
});

Deno.test("chooseLayout() rejects v2 memory that does not fit in the v2 range", () => {
  assertLayoutError(
    () => chooseLayout(PIE_V2, { memorySize: 60 * GIB, aslr: false }),
    "Guest memory of 61440 MiB does not fit in the uhyve interface v2 range " +
      "0x100000000-0x1000000000; use at most 61438 MiB",
  );
  const l = chooseLayout(PIE_V2, { memorySize: 61438 * MIB, aslr: true, random: () => 0.999999 });
  assert.equal(l.guestAddress, 0x1_0000_0000);
});

Deno.test("chooseLayout() rejects a PIE kernel larger than guest memory", () => {
  const big: Placement = { ...PIE_V1, memSize: 20 * MIB };
  assertLayoutError(
    () => chooseLayout(big, { memorySize: 16 * MIB, aslr: false }),
    "The kernel (0x40000-0x1440000) does not fit in 16 MiB of guest memory at 0x0; " +
      "use at least 22 MiB",
  );
  // 0x40000 + memSize must fit exactly.
  const exact: Placement = { ...PIE_V1, memSize: 16 * MIB - 0x40000 };
  assert.equal(chooseLayout(exact, { memorySize: 16 * MIB, aslr: false }).kernelEnd, 16 * MIB);
});

Deno.test("chooseLayout() places an EXEC kernel at its link address and ignores ASLR", () => {
  assert.deepEqual(chooseLayout(EXEC_V1, { memorySize: 64 * MIB, aslr: false }), {
    guestAddress: 0,
    kernelAddress: 0x800000,
    kernelEnd: 0x800000 + 0x147480,
    aslrIgnored: false,
  });
  const l = chooseLayout(EXEC_V1, { memorySize: 64 * MIB, aslr: true, random: () => 0.5 });
  assert.deepEqual(l, { ...l, guestAddress: 0, kernelAddress: 0x800000, aslrIgnored: true });
});

Deno.test("chooseLayout() rejects an EXEC kernel linked below guest + 0x38000", () => {
  const low: Placement = { ...EXEC_V1, firstVaddr: 0x30000, memSize: 0x1000 };
  assertLayoutError(
    () => chooseLayout(low, { memorySize: 64 * MIB, aslr: false }),
    "Cannot place the fixed-address kernel linked at 0x30000: its boot stack would overlap " +
      "the page tables; it must be linked at 0x38000 or higher",
  );
  const edge: Placement = { ...low, firstVaddr: MIN_KERNEL_OFFSET };
  assert.equal(chooseLayout(edge, { memorySize: 64 * MIB, aslr: false }).kernelAddress, 0x38000);
  const v2edge: Placement = { ...edge, interfaceVersion: 2, firstVaddr: 0x1_0003_8000 };
  assert.equal(
    chooseLayout(v2edge, { memorySize: 64 * MIB, aslr: false }).kernelAddress,
    0x1_0003_8000,
  );
  assertLayoutError(
    () =>
      chooseLayout({ ...v2edge, firstVaddr: 0x1_0003_7fff }, { memorySize: 64 * MIB, aslr: false }),
    /must be linked at 0x100038000 or higher$/,
  );
});

Deno.test("chooseLayout() rejects an EXEC kernel outside the interface's range", () => {
  // hello_c is linked for v1; as a v2 kernel it would lie below 4 GiB.
  assertLayoutError(
    () => chooseLayout({ ...EXEC_V1, interfaceVersion: 2 }, { memorySize: 64 * MIB, aslr: false }),
    "Cannot place the fixed-address kernel linked at 0x800000: with 64 MiB of guest memory a " +
      "uhyve interface v2 kernel must start within 0x100000000-0xffbe78b80",
  );
  // Linked above hi - need.
  const high: Placement = { ...EXEC_V1, firstVaddr: 0xbc00_0000 };
  assertLayoutError(
    () => chooseLayout(high, { memorySize: 64 * MIB, aslr: false }),
    /^Cannot place the fixed-address kernel linked at 0xbc000000: .* v1 kernel must start within 0x0-0xbbe78b7f$/,
  );
  const v2: Placement = { ...EXEC_V1, interfaceVersion: 2, firstVaddr: 0x1_0020_0000 };
  assert.deepEqual(chooseLayout(v2, { memorySize: 64 * MIB, aslr: false }), {
    guestAddress: 0x1_0000_0000,
    kernelAddress: 0x1_0020_0000,
    kernelEnd: 0x1_0020_0000 + 0x147480,
    aslrIgnored: false,
  });
});

Deno.test("chooseLayout() rejects an EXEC kernel that does not fit in guest RAM", () => {
  // hello_c at 8 MiB with 8 MiB of RAM ends past RAM.
  assertLayoutError(
    () => chooseLayout(EXEC_V1, { memorySize: 8 * MIB, aslr: false }),
    "The kernel (0x800000-0x947480) does not fit in 8 MiB of guest memory at 0x0; " +
      "use at least 10 MiB",
  );
  const far: Placement = { ...EXEC_V1, firstVaddr: 0x4000_0000 };
  assertLayoutError(
    () => chooseLayout(far, { memorySize: 64 * MIB, aslr: false }),
    /^The kernel \(0x40000000-0x40147480\) does not fit in 64 MiB of guest memory at 0x0; use at least 1026 MiB$/,
  );
  assert.equal(
    chooseLayout(far, { memorySize: 1026 * MIB, aslr: false }).kernelAddress,
    0x4000_0000,
  );
});

Deno.test("chooseLayout() rejects invalid memory sizes and interface versions", () => {
  for (const memorySize of [0, -2 * MIB, 1.5, Number.NaN, 2 ** 60]) {
    assertLayoutError(
      () => chooseLayout(PIE_V1, { memorySize, aslr: false }),
      `Invalid guest memory size: ${memorySize}`,
    );
  }
  const v4 = { ...PIE_V1, interfaceVersion: 4 } as unknown as Placement;
  assertLayoutError(
    () => chooseLayout(v4, { memorySize: 64 * MIB, aslr: false }),
    "Unsupported uhyve interface version 4: dhyve supports 1, 2 and 3",
  );
});

Deno.test("chooseLayout() keeps v1 RAM below the 3 GiB gap at the largest size", () => {
  const l = chooseLayout(PIE_V1, { memorySize: 3070 * MIB, aslr: true, random: () => 0.999999 });
  assert.ok(l.guestAddress + 3070 * MIB <= PCI_GAP.start);
  assert.equal(PCI_GAP.end, 0x1_0000_0000);
  assert.equal(INTERFACE_RANGES[2].lo, PCI_GAP.end, "v2 RAM starts right at the gap's end");
});
