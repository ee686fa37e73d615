/**
 * Guest-virtual accesses with the CPU's checks (src/memory/guest_virtual.ts):
 * 4 KiB, 2 MiB and 1 GiB pages, the upper half, read-only and user pages,
 * non-canonical addresses, page-crossing accesses and the TLB. No VM.
 * @module
 */

import assert from "node:assert/strict";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { GuestVirtualMemory, isCanonical } from "../../../src/memory/guest_virtual.ts";
import { PageWalk, PF_ERROR, walkPage } from "../../../src/memory/paging.ts";

const P = 1;
const W = 2;
const U = 4;
const PS = 0x80;

/** 4 MiB of RAM; tables at 0x1000.. ; returns helpers to map pages. */
function setup(): {
  ram: GuestMemory;
  vm: GuestVirtualMemory;
  map4k: (va: bigint, gpa: number, flags: number) => void;
} {
  const ram = new GuestMemory(new ArrayBuffer(0x40_0000));
  let next = 0x2000;
  const pml4 = 0x1000;
  const table = (at: number, index: number, flags: number): number => {
    const entry = at + index * 8;
    const cur = ram.readU32(entry);
    if (cur & P) return cur & ~0xfff;
    const t = next;
    next += 0x1000;
    ram.writeU32(entry, t | flags);
    return t;
  };
  const idx = (va: bigint, shift: bigint): number => Number((va >> shift) & 511n);
  const map4k = (va: bigint, gpa: number, flags: number): void => {
    const pdpt = table(pml4, idx(va, 39n), P | W | U);
    const pd = table(pdpt, idx(va, 30n), P | W | U);
    const pt = table(pd, idx(va, 21n), P | W | U);
    ram.writeU64(pt + idx(va, 12n) * 8, gpa | flags);
  };
  const vm = new GuestVirtualMemory(ram);
  vm.cr3 = pml4;
  return { ram, vm, map4k };
}

Deno.test("isCanonical() accepts both halves of the 48-bit space only", () => {
  assert.equal(isCanonical(0n), true);
  assert.equal(isCanonical(0x7fff_ffff_ffffn), true);
  assert.equal(isCanonical(0x8000_0000_0000n), false);
  assert.equal(isCanonical(0xffff_8000_0000_0000n), true);
  assert.equal(isCanonical(0x8000_0000_0000_0000n), false);
});

Deno.test("GuestVirtualMemory reads and writes through 4 KiB pages, across a page boundary", () => {
  const { ram, vm, map4k } = setup();
  map4k(0x40_0000n, 0x20_0000, P | W);
  map4k(0x40_1000n, 0x30_0000, P | W); // not physically contiguous
  ram.u8.set([1, 2, 3, 4], 0x20_0ffe);
  ram.u8.set([5, 6], 0x30_0000);
  const buf = new Uint8Array(6);
  assert.equal(vm.read(0x40_0ffen, buf.subarray(0, 4)), null);
  assert.deepEqual(Array.from(buf.subarray(0, 4)), [1, 2, 5, 6]);
  assert.equal(vm.write(0x40_0fffn, new Uint8Array([9, 9])), null);
  assert.equal(ram.u8[0x20_0fff], 9);
  assert.equal(ram.u8[0x30_0000], 9);
});

Deno.test("GuestVirtualMemory reports #PF with the CPU's address and error code", () => {
  const { vm, map4k } = setup();
  map4k(0x40_0000n, 0x20_0000, P); // read-only
  const buf = new Uint8Array(16);
  assert.deepEqual(vm.read(0x40_0ff8n, buf), { pageFault: 0x40_1000n, errorCode: 0 });
  assert.deepEqual(vm.write(0x40_0000n, buf), {
    pageFault: 0x40_0000n,
    errorCode: PF_ERROR.PRESENT | PF_ERROR.WRITE,
  });
  vm.wp = false; // supervisor writes ignore R/W without CR0.WP
  assert.equal(vm.write(0x40_0000n, buf), null);
  vm.user = true; // user mode needs U/S
  assert.deepEqual(vm.read(0x40_0000n, buf), {
    pageFault: 0x40_0000n,
    errorCode: PF_ERROR.PRESENT | PF_ERROR.USER,
  });
});

Deno.test("GuestVirtualMemory refuses non-canonical addresses with #GP and non-RAM as not RAM", () => {
  const { vm, map4k } = setup();
  map4k(0x40_0000n, 0x7000_0000, P | W); // far beyond the 4 MiB of RAM
  const buf = new Uint8Array(8);
  assert.deepEqual(vm.read(0x8000_0000_0000n, buf), { gp: true });
  assert.deepEqual(vm.read(0x7fff_ffff_fffcn, buf), { gp: true }, "the last byte is non-canonical");
  assert.deepEqual(vm.read(0x40_0000n, buf), { notRam: 0x40_0000n });
});

Deno.test("walkPage() honours 2 MiB and 1 GiB pages and the upper half", () => {
  const { ram } = setup();
  const pml4 = 0x1000;
  // PML4[511] -> PDPT at 0x10000; PDPT[510] = 1 GiB page at 0; PDPT[0] -> PD with a 2 MiB page.
  ram.writeU64(pml4 + 511 * 8, 0x10000 | P | W);
  ram.writeU64(0x10000 + 510 * 8, 0 | P | W | PS);
  ram.writeU64(0x10000 + 0, 0x11000 | P | W);
  ram.writeU64(0x11000 + 8, 0x20_0000 | P | W | PS);
  const mode = { write: false, user: false, wp: true };
  const walk = new PageWalk();
  const linear = (va: bigint): number => Number(va & 0xffff_ffff_ffffn);
  assert.equal(walkPage(ram, pml4, linear(0xffff_ffff_8012_3456n), mode, walk), true);
  assert.deepEqual([walk.gpa, walk.pageSize], [0x12_3456, 0x4000_0000]);
  assert.equal(walkPage(ram, pml4, linear(0xffff_ff80_0020_0010n), mode, walk), true);
  assert.deepEqual([walk.gpa, walk.pageSize], [0x20_0010, 0x20_0000]);
});

Deno.test("GuestVirtualMemory's TLB follows the page tables after flush() and after its own writes to them", () => {
  const { ram, vm, map4k } = setup();
  map4k(0x40_0000n, 0x20_0000, P | W);
  ram.u8[0x20_0000] = 1;
  ram.u8[0x30_0000] = 2;
  const b = new Uint8Array(1);
  vm.read(0x40_0000n, b);
  assert.equal(b[0], 1);
  // The guest remaps the page behind the accessor's back: stale until flush().
  map4k(0x40_0000n, 0x30_0000, P | W);
  vm.read(0x40_0000n, b);
  assert.equal(b[0], 1, "cached");
  vm.flush();
  vm.read(0x40_0000n, b);
  assert.equal(b[0], 2);
  // A write through the accessor into a page table it walked flushes by itself.
  map4k(0x50_0000n, 0x4000, P | W); // the PT page of 0x40_0000 (0x4000) mapped at 0x50_0000
  const pte = new Uint8Array(8);
  new DataView(pte.buffer).setUint32(0, 0x20_0000 | P | W, true);
  assert.equal(vm.write(0x50_0000n, pte), null);
  vm.read(0x40_0000n, b);
  assert.equal(b[0], 1);
});
