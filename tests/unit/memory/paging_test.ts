import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import {
  buildIdentityMap,
  LOWER_HALF_END,
  PAGE_2M_ENTRY_FLAGS,
  PAGE_SIZE_1G,
  PAGE_SIZE_2M,
  TABLE_ENTRY_FLAGS,
  translate,
  translateRange,
} from "../../../src/memory/paging.ts";

const GIB = 0x4000_0000;
const MIB2 = 0x20_0000;

/** RAM of `size` bytes at `base`, every byte set to `fill`. */
function ram(base: number, size: number, fill = 0): GuestMemory {
  const mem = new GuestMemory(new ArrayBuffer(size), base);
  mem.u8.fill(fill);
  return mem;
}

/** Reads the 8-byte entry `index` of the table at `table` as a bigint. */
function entry(mem: GuestMemory, table: number, index: number): bigint {
  return mem.readU64Big(table + index * 8);
}

/** Writes a raw 64-bit entry. */
function setEntry(mem: GuestMemory, table: number, index: number, value: bigint): void {
  mem.writeU64Big(table + index * 8, value);
}

/** Indices of a lower-half virtual address (PML4, PDPT, PD, PT). */
function indices(vaddr: number): [number, number, number, number] {
  const v = BigInt(vaddr);
  return [
    Number((v >> 39n) & 511n),
    Number((v >> 30n) & 511n),
    Number((v >> 21n) & 511n),
    Number((v >> 12n) & 511n),
  ];
}

/** Non-zero entries of a 512-entry table, as [index, value]. */
function nonZero(mem: GuestMemory, table: number): [number, bigint][] {
  const out: [number, bigint][] = [];
  for (let i = 0; i < 512; i++) {
    const e = entry(mem, table, i);
    if (e !== 0n) out.push([i, e]);
  }
  return out;
}

Deno.test("buildIdentityMap() maps a v1 PIE kernel at guest 0 (non-legacy)", () => {
  const mem = ram(0, 0x100000, 0xaa);
  // kernel at 0x40000, mem_size 3 MiB → end 0x340000: pages 0 and 0x200000
  const map = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x340000, legacy: false });
  assert.deepEqual(map, { pml4: 0x10000, pages2m: 2, framesUsed: 2 });
  assert.deepEqual(nonZero(mem, 0x10000), [[0, 0x11003n], [511, 0x10003n]]);
  assert.deepEqual(nonZero(mem, 0x11000), [[0, 0x12003n]]);
  assert.deepEqual(nonZero(mem, 0x12000), [[0, 0x83n], [1, 0x200083n]]);
});

Deno.test("buildIdentityMap() includes the page at the kernel end (inclusive range)", () => {
  const mem = ram(0, 0x100000);
  const map = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x400000, legacy: false });
  assert.equal(map.pages2m, 3);
  assert.deepEqual(nonZero(mem, 0x12000), [[0, 0x83n], [1, 0x200083n], [2, 0x400083n]]);
  // a kernel end exactly at the guest address still maps one page
  const mem2 = ram(0, 0x100000);
  assert.equal(
    buildIdentityMap(mem2, { guestAddress: 0, kernelEnd: 0, legacy: false }).pages2m,
    1,
  );
});

Deno.test("buildIdentityMap() maps a v2 kernel at 4 GiB with frames relative to the guest", () => {
  const guest = 0x1_0000_0000;
  const mem = ram(guest, 0x40000, 0xaa);
  const map = buildIdentityMap(mem, {
    guestAddress: guest,
    kernelEnd: guest + 0x40000 + 0x180000,
    legacy: false,
  });
  assert.deepEqual(map, { pml4: guest + 0x10000, pages2m: 1, framesUsed: 2 });
  assert.deepEqual(nonZero(mem, guest + 0x10000), [
    [0, BigInt(guest + 0x11000) | 3n],
    [511, BigInt(guest + 0x10000) | 3n],
  ]);
  assert.deepEqual(nonZero(mem, guest + 0x11000), [[4, BigInt(guest + 0x12000) | 3n]]);
  assert.deepEqual(nonZero(mem, guest + 0x12000), [[0, 0x1_0000_0083n]]);
  // raw halves: low word carries the flags, high word the address bit 32
  assert.equal(mem.readU32(guest + 0x12000), 0x83);
  assert.equal(mem.readU32(guest + 0x12004), 1);
});

Deno.test("buildIdentityMap() legacy at guest 0 maps 512 pages 0..0x3FE00000", () => {
  const mem = ram(0, 0x100000);
  const map = buildIdentityMap(mem, {
    guestAddress: 0,
    kernelEnd: 0x40000 + 0x1e000,
    legacy: true,
  });
  assert.deepEqual(map, { pml4: 0x10000, pages2m: 512, framesUsed: 2 });
  const pd = nonZero(mem, 0x12000);
  assert.equal(pd.length, 512);
  pd.forEach(([i, e]) => assert.equal(e, BigInt(i * MIB2) | 0x83n));
  assert.equal(entry(mem, 0x12000, 511), 0x3fe00083n);
});

Deno.test("buildIdentityMap() legacy uses the kernel end when it lies beyond the GiB", () => {
  const mem = ram(0, 0x100000);
  const map = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: GIB + 0x300000, legacy: true });
  assert.equal(map.pages2m, 512 + 2);
  assert.equal(map.framesUsed, 3);
  assert.deepEqual(nonZero(mem, 0x11000), [[0, 0x12003n], [1, 0x13003n]]);
  assert.deepEqual(nonZero(mem, 0x13000), [[0, 0x4000_0083n], [1, 0x4020_0083n]]);
});

Deno.test("buildIdentityMap() legacy at the ASLR base 0x44e00000 maps to the end of its GiB", () => {
  const guest = 0x44e0_0000;
  const mem = ram(guest, 0x40000);
  const map = buildIdentityMap(mem, {
    guestAddress: guest,
    kernelEnd: guest + 0x200000,
    legacy: true,
  });
  // 0x44e00000 ..= 0x7FE00000 in 2 MiB steps
  assert.equal(map.pages2m, (0x7fe0_0000 - guest) / MIB2 + 1);
  assert.equal(map.pages2m, 473);
  assert.equal(map.framesUsed, 2);
  assert.deepEqual(nonZero(mem, guest + 0x11000), [[1, BigInt(guest + 0x12000) | 3n]]);
  const pd = guest + 0x12000;
  assert.equal(entry(mem, pd, 38), 0n);
  assert.equal(entry(mem, pd, 39), 0x44e0_0083n);
  assert.equal(entry(mem, pd, 511), 0x7fe0_0083n);
  assert.equal(nonZero(mem, pd).length, 473);
});

Deno.test("buildIdentityMap() non-legacy at the ASLR base maps only up to the kernel end", () => {
  const guest = 0x44e0_0000;
  const mem = ram(guest, 0x40000);
  const map = buildIdentityMap(mem, {
    guestAddress: guest,
    kernelEnd: guest + 0x40000 + 0x1c0000,
    legacy: false,
  });
  assert.deepEqual(map, { pml4: guest + 0x10000, pages2m: 2, framesUsed: 2 });
  assert.deepEqual(nonZero(mem, guest + 0x12000), [[39, 0x44e0_0083n], [40, 0x4500_0083n]]);
});

Deno.test("buildIdentityMap() takes a new PD per GiB and a new PDPT per 512 GiB", () => {
  const guest = GIB - MIB2;
  const mem = ram(guest, 0x40000);
  const map = buildIdentityMap(mem, {
    guestAddress: guest,
    kernelEnd: guest + 0x440000,
    legacy: false,
  });
  assert.deepEqual(map, { pml4: guest + 0x10000, pages2m: 3, framesUsed: 3 });
  assert.deepEqual(nonZero(mem, guest + 0x11000), [
    [0, BigInt(guest + 0x12000) | 3n],
    [1, BigInt(guest + 0x13000) | 3n],
  ]);
  assert.deepEqual(nonZero(mem, guest + 0x12000), [[511, BigInt(guest) | 0x83n]]);
  assert.deepEqual(nonZero(mem, guest + 0x13000), [[0, BigInt(GIB) | 0x83n], [
    1,
    BigInt(GIB + MIB2) | 0x83n,
  ]]);

  const g2 = 512 * GIB - MIB2;
  const mem2 = ram(g2, 0x40000);
  const map2 = buildIdentityMap(mem2, { guestAddress: g2, kernelEnd: g2 + MIB2, legacy: false });
  assert.deepEqual(map2, { pml4: g2 + 0x10000, pages2m: 2, framesUsed: 4 });
  assert.deepEqual(nonZero(mem2, g2 + 0x10000), [
    [0, BigInt(g2 + 0x11000) | 3n],
    [1, BigInt(g2 + 0x13000) | 3n],
    [511, BigInt(g2 + 0x10000) | 3n],
  ]);
  assert.equal(translate(mem2, map2.pml4, 512 * GIB + 0x1234), 512 * GIB + 0x1234);
  assert.equal(translate(mem2, map2.pml4, g2 + 0x1234), g2 + 0x1234);
});

Deno.test("buildIdentityMap() maps exactly guest..end, identity, wherever ASLR puts RAM", () => {
  // RAM anywhere 2 MiB-aligned in the lower half (above 2^30 too, where the old per-address loop
  // boxed every number), maps of up to 2 100 pages (over four page directories).
  const cases = fc.record({
    page: fc.integer({ min: 0, max: 2 ** 25 }),
    pages: fc.integer({ min: 1, max: 2100 }),
    offset: fc.integer({ min: 0, max: MIB2 - 1 }),
  });
  fc.assert(
    fc.property(cases, ({ page, pages, offset }) => {
      const guest = page * MIB2;
      const end = guest + (pages - 1) * MIB2 + offset; // the last mapped page holds `end`
      const mem = ram(guest, 0x40000);
      const map = buildIdentityMap(mem, { guestAddress: guest, kernelEnd: end, legacy: false });
      const gibs = Math.floor(end / GIB) - Math.floor(guest / GIB) + 1;
      const pml4s = Math.floor(end / (512 * GIB)) - Math.floor(guest / (512 * GIB)) + 1;
      assert.deepEqual(map, { pml4: guest + 0x10000, pages2m: pages, framesUsed: gibs + pml4s });
      for (
        const i of new Set(
          [0, 1, pages >> 1, pages - 2, pages - 1].filter((i) => i >= 0 && i < pages),
        )
      ) {
        const va = guest + i * MIB2 + (i * 0x1235) % MIB2;
        assert.equal(translate(mem, map.pml4, va), va, `page ${i}`);
      }
      const after = guest + pages * MIB2;
      if (after < LOWER_HALF_END) assert.equal(translate(mem, map.pml4, after), -1);
      if (guest > 0) assert.equal(translate(mem, map.pml4, guest - 1), -1);
    }),
    { numRuns: 300 },
  );
});

Deno.test("buildIdentityMap() zeroes the PML4 and every frame it takes, and nothing else", () => {
  const mem = ram(0, 0x40000, 0xaa);
  const map = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: GIB + MIB2, legacy: false });
  assert.equal(map.framesUsed, 3);
  assert.equal(nonZero(mem, 0x10000).length, 2);
  assert.equal(nonZero(mem, 0x11000).length, 2);
  assert.equal(nonZero(mem, 0x12000).length, 512);
  assert.equal(nonZero(mem, 0x13000).length, 2);
  // untouched: everything below the PML4 and the frames not taken
  assert.ok(mem.bytes(0, 0x10000).every((b) => b === 0xaa));
  assert.ok(mem.bytes(0x14000, 0x40000 - 0x14000).every((b) => b === 0xaa));
});

Deno.test("buildIdentityMap() uses all 31 frames, then fails with a RangeError", () => {
  // 30 GiB need 1 PDPT + 30 PDs = 31 frames: the last one fits
  const mem = ram(0, 0x40000);
  const map = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 30 * GIB - MIB2, legacy: false });
  assert.equal(map.framesUsed, 31);
  assert.equal(map.pages2m, 30 * 512);
  assert.equal(entry(mem, 0x11000, 29), 0x2f003n);
  // one page more needs a 32nd frame
  assert.throws(
    () =>
      buildIdentityMap(ram(0, 0x40000), { guestAddress: 0, kernelEnd: 30 * GIB, legacy: false }),
    (e: unknown) => e instanceof RangeError && /out of table frames/.test(e.message),
  );
});

Deno.test("buildIdentityMap() rejects bad inputs with a RangeError", () => {
  const mem = ram(0, 0x40000);
  const cases: [number, number, GuestMemory][] = [
    [0x1000, 0x400000, mem], // unaligned guest address
    [-MIB2, 0, mem],
    [MIB2, 0, ram(MIB2, 0x40000)], // kernel end below the guest
    [0, LOWER_HALF_END, mem], // leaves the lower half
    [0, 0x400000, ram(0, 0x2ffff)], // frame area not in RAM
    [MIB2, MIB2 + 0x400000, mem], // tables not in RAM (RAM at 0)
  ];
  for (const [guestAddress, kernelEnd, m] of cases) {
    assert.throws(
      () => buildIdentityMap(m, { guestAddress, kernelEnd, legacy: false }),
      RangeError,
      `guest ${guestAddress}, end ${kernelEnd}`,
    );
  }
});

Deno.test("translate() is the identity on the boot map", () => {
  const mem = ram(0, 0x40000);
  const { pml4 } = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x40000, legacy: true });
  for (const va of [0, 1, 0xfff, 0x1000, 0x123456, 0x1f_ffff, 0x20_0000, GIB - 1]) {
    assert.equal(translate(mem, pml4, va), va);
  }
  assert.equal(translate(mem, pml4, GIB), -1); // PDPT[1] not present
  assert.equal(translate(mem, pml4, 512 * GIB), -1); // PML4[1] not present
});

Deno.test("translate() walks a hand-built 4-level map with 4 KiB pages", () => {
  const mem = ram(0, 0x100000);
  const va = 0x7f12_3456_7abc;
  const [i4, i3, i2, i1] = indices(va);
  // low flag bits, NX (bit 63) and software bits must not leak into addresses
  setEntry(mem, 0x1000, i4, 0x8000_0000_0000_2007n);
  setEntry(mem, 0x2000, i3, 0x0000_0000_0000_3023n);
  setEntry(mem, 0x3000, i2, 0x8000_0000_0000_4063n);
  setEntry(mem, 0x4000, i1, 0x8000_0000_0009_8f63n); // bit 7 at PT level is PAT, not PS
  assert.equal(translate(mem, 0x1000, va), 0x9_8000 + 0xabc);
  // CR3 low bits (PWT, PCD, PCID) are ignored
  assert.equal(translate(mem, 0x1000 | 0x18 | 0x5, va), 0x9_8abc);
  // neighbours are not mapped
  assert.equal(translate(mem, 0x1000, va + 0x1000 - 0xabc), -1);
  assert.equal(translate(mem, 0x1000, va - 0xabc - 1), -1);
});

Deno.test("translate() honours 1 GiB and 2 MiB pages and high physical addresses", () => {
  const mem = ram(0, 0x100000);
  setEntry(mem, 0x1000, 0, 0x2003n);
  // PDPT[4]: 1 GiB page at 0x4_0000_0000, with PAT (bit 12) set
  setEntry(mem, 0x2000, 4, 0x4_0000_1083n);
  assert.equal(translate(mem, 0x1000, 4 * GIB + 0x1234_5678), 0x4_1234_5678);
  // PDPT[5] → PD; PD[3]: 2 MiB page at 0xF_FFFF_FFE0_0000 (top of the 52-bit space), PAT set
  setEntry(mem, 0x2000, 5, 0x3003n);
  setEntry(mem, 0x3000, 3, 0x000f_ffff_ffe0_1083n);
  assert.equal(
    translate(mem, 0x1000, 5 * GIB + 3 * MIB2 + 0x1_2345),
    0xf_ffff_ffe0_0000 + 0x1_2345,
  );
  // PD[4]: 2 MiB page at 0x12_3460_0000
  setEntry(mem, 0x3000, 4, 0x12_3460_0083n);
  assert.equal(translate(mem, 0x1000, 5 * GIB + 4 * MIB2 + 0x1f_ffff), 0x12_347f_ffff);
});

Deno.test("translate() returns -1 for a not-present entry at every level", () => {
  const mem = ram(0, 0x100000);
  const va = 0x1234_5678_9000;
  const [i4, i3, i2, i1] = indices(va);
  setEntry(mem, 0x1000, i4, 0x2003n);
  setEntry(mem, 0x2000, i3, 0x3003n);
  setEntry(mem, 0x3000, i2, 0x4003n);
  setEntry(mem, 0x4000, i1, 0x5003n);
  assert.equal(translate(mem, 0x1000, va), 0x5000);
  for (const [table, index] of [[0x4000, i1], [0x3000, i2], [0x2000, i3], [0x1000, i4]] as const) {
    mem.writeU32(table + index * 8, mem.readU32(table + index * 8) & ~1); // clear P
    assert.equal(translate(mem, 0x1000, va), -1);
  }
});

Deno.test("translate() returns -1 when a table lies outside RAM", () => {
  const base = 0x10_0000;
  const mem = ram(base, 0x10_0000);
  const pml4 = base + 0x1000;
  setEntry(mem, pml4, 0, BigInt(base + 0x2000) | 3n);
  setEntry(mem, base + 0x2000, 0, 0x1_0000_0003n); // PD far beyond RAM
  setEntry(mem, base + 0x2000, 1, 0x3n); // PD at 0, below RAM
  setEntry(mem, base + 0x2000, 2, BigInt(base + 0x3000) | 3n);
  setEntry(mem, base + 0x3000, 0, BigInt(base + 0x10_0000 - 0x1000) | 3n); // PT: last page of RAM
  setEntry(mem, base + 0x3000, 1, BigInt(base + 0x10_0000) | 3n); // PT: just past RAM
  setEntry(mem, base + 0x10_0000 - 0x1000, 0, 0x7000n | 3n);
  assert.equal(translate(mem, pml4, 0), -1);
  assert.equal(translate(mem, pml4, GIB), -1);
  assert.equal(translate(mem, pml4, 2 * GIB + 0x123), 0x7123);
  assert.equal(translate(mem, pml4, 2 * GIB + MIB2), -1);
  // CR3 itself outside RAM
  assert.equal(translate(mem, 0x1000, 0), -1);
  assert.equal(translate(mem, base + 0x10_0000, 0), -1);
});

Deno.test("translate() rejects addresses outside the lower canonical half and junk", () => {
  const mem = ram(0, 0x40000);
  const { pml4 } = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x40000, legacy: true });
  for (
    const va of [-1, LOWER_HALF_END, 2 ** 53, 0xffff_ffff_ffff_f000, NaN, Infinity, 0.5, -0]
  ) {
    const expected = Object.is(va, -0) ? 0 : -1;
    assert.equal(translate(mem, pml4, va), expected, String(va));
  }
  assert.equal(translate(mem, NaN, 0), -1);
  assert.equal(translate(mem, -4096, 0), -1);
  assert.equal(translate(mem, 2 ** 64, 0), -1);
});

Deno.test("translateRange() splits at the page size of each mapping (4 KiB → 2 MiB)", () => {
  const mem = ram(0, 0x80_0000);
  setEntry(mem, 0x1000, 0, 0x2003n);
  setEntry(mem, 0x2000, 0, 0x3003n);
  setEntry(mem, 0x3000, 0, 0x4003n); // PD[0] → PT: [0, 2 MiB) in 4 KiB pages
  setEntry(mem, 0x4000, 511, 0x5003n); // 0x1FF000 → 0x5000
  setEntry(mem, 0x3000, 1, 0x60_0083n); // [2 MiB, 4 MiB) → 0x600000 (2 MiB page)
  const pieces: [number, number][] = [];
  assert.ok(translateRange(mem, 0x1000, 0x1f_f800, 0x1000, (g, l) => pieces.push([g, l])));
  assert.deepEqual(pieces, [[0x5800, 0x800], [0x60_0000, 0x800]]);

  // a range inside one 2 MiB page is one piece, however long
  pieces.length = 0;
  assert.ok(translateRange(mem, 0x1000, 0x20_0010, 0x1f_fff0, (g, l) => pieces.push([g, l])));
  assert.deepEqual(pieces, [[0x60_0010, 0x1f_fff0]]);
});

Deno.test("translateRange() merges physically adjacent pages", () => {
  const mem = ram(0, 0x10_0000);
  setEntry(mem, 0x1000, 0, 0x2003n);
  setEntry(mem, 0x2000, 0, 0x3003n);
  setEntry(mem, 0x3000, 0, 0x4003n);
  setEntry(mem, 0x4000, 0, 0x8003n);
  setEntry(mem, 0x4000, 1, 0x9003n); // adjacent to the previous page
  setEntry(mem, 0x4000, 2, 0x7003n); // not adjacent
  const pieces: [number, number][] = [];
  assert.ok(translateRange(mem, 0x1000, 0x10, 0x2ff0, (g, l) => pieces.push([g, l])));
  assert.deepEqual(pieces, [[0x8010, 0x1ff0], [0x7000, 0x1000]]);

  // the identity map gives one piece across 2 MiB pages
  const mem2 = ram(0, 0x80_0000);
  const { pml4 } = buildIdentityMap(mem2, { guestAddress: 0, kernelEnd: 0x40000, legacy: true });
  pieces.length = 0;
  assert.ok(translateRange(mem2, pml4, 0x1f_0000, 0x30_0000, (g, l) => pieces.push([g, l])));
  assert.deepEqual(pieces, [[0x1f_0000, 0x30_0000]]);
});

Deno.test("translateRange() fails without visiting anything when a page is missing", () => {
  const mem = ram(0, 0x10_0000);
  setEntry(mem, 0x1000, 0, 0x2003n);
  setEntry(mem, 0x2000, 0, 0x3003n);
  setEntry(mem, 0x3000, 0, 0x4003n);
  setEntry(mem, 0x4000, 0, 0x8003n);
  setEntry(mem, 0x4000, 1, 0x9003n);
  // page 2 not present
  let visits = 0;
  assert.equal(translateRange(mem, 0x1000, 0, 0x2001, () => visits++), false);
  assert.equal(visits, 0);
  assert.equal(translateRange(mem, 0x1000, 0, 0x2000, () => visits++), true);
  assert.equal(visits, 1);
});

Deno.test("translateRange() fails without visiting anything when a page is past RAM", () => {
  // legacy map covers a whole GiB, RAM only 8 MiB
  const mem = ram(0, 0x80_0000);
  const { pml4 } = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x40000, legacy: true });
  let visits = 0;
  assert.equal(translateRange(mem, pml4, 0x7f_f000, 0x1001, () => visits++), false);
  assert.equal(translateRange(mem, pml4, 0x80_0000, 1, () => visits++), false);
  assert.equal(visits, 0);
  assert.equal(translateRange(mem, pml4, 0x7f_f000, 0x1000, () => visits++), true);
  assert.equal(visits, 1);
});

Deno.test("translateRange() handles len 0, bad numbers and vaddr + len overflow", () => {
  const mem = ram(0, 0x40000);
  const { pml4 } = buildIdentityMap(mem, { guestAddress: 0, kernelEnd: 0x40000, legacy: true });
  let visits = 0;
  const visit = (): void => {
    visits++;
  };
  assert.equal(translateRange(mem, pml4, 0x1000, 0, visit), true);
  assert.equal(translateRange(mem, pml4, 0x5000_0000, 0, visit), true); // nothing to access
  assert.equal(translateRange(mem, pml4, -1, 0, visit), false);
  assert.equal(translateRange(mem, pml4, 0, -1, visit), false);
  assert.equal(translateRange(mem, pml4, 0.5, 1, visit), false);
  assert.equal(translateRange(mem, pml4, 0, NaN, visit), false);
  assert.equal(translateRange(mem, pml4, LOWER_HALF_END - 10, 100, visit), false);
  assert.equal(translateRange(mem, pml4, 0x1000, Number.MAX_SAFE_INTEGER, visit), false);
  assert.equal(translateRange(mem, pml4, LOWER_HALF_END, 1, visit), false);
  assert.equal(visits, 0);
});

Deno.test("paging constants match hermit-abi.md §3.2", () => {
  assert.equal(PAGE_2M_ENTRY_FLAGS, 0x83);
  assert.equal(TABLE_ENTRY_FLAGS, 0x3);
  assert.equal(PAGE_SIZE_2M, MIB2);
  assert.equal(PAGE_SIZE_1G, GIB);
});
