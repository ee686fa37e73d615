/**
 * The one page walker (src/memory/paging.ts walkPage) as its three users see
 * it: translate()/translateRange() (v1 buffers, the GDB stub) without access
 * checks, GuestVirtualMemory (the SSE and XSAVE emulation) with them, and
 * GuestVirtualMemory.probe(), which XSAVE uses to fault as a write before it
 * reads anything. Also the GuestMemory accessors that replaced hand-computed
 * offsets into `u8`. No VM.
 * @module
 */

import assert from "node:assert/strict";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { GuestVirtualMemory } from "../../../src/memory/guest_virtual.ts";
import {
  PageWalk,
  PF_ERROR,
  translate,
  translateRange,
  walkPage,
} from "../../../src/memory/paging.ts";

const P = 1;
const W = 2;
const PML4 = 0x1000;
const VA = 0x40_0000;

/** RAM with 0x40_0000 mapped read-only to 0x20_0000 through 4 KiB tables at 0x1000..0x4000. */
function readOnlyPage(): GuestMemory {
  const ram = new GuestMemory(new ArrayBuffer(0x40_0000));
  ram.writeU64(PML4, 0x2000 | P | W);
  ram.writeU64(0x2000, 0x3000 | P | W);
  ram.writeU64(0x3000 + 2 * 8, 0x4000 | P | W); // PD[2] covers 0x40_0000
  ram.writeU64(0x4000, 0x20_0000 | P); // read-only
  return ram;
}

Deno.test("walkPage() checks access only when asked; one #PF error code for every user", () => {
  const ram = readOnlyPage();
  const walk = new PageWalk();
  assert.equal(walkPage(ram, PML4, VA + 0x10, null, walk), true);
  assert.deepEqual([walk.gpa, walk.pageSize], [0x20_0010, 0x1000]);
  const write = { write: true, user: false, wp: true };
  assert.equal(walkPage(ram, PML4, VA, write, walk), false);
  assert.equal(walk.errorCode, PF_ERROR.PRESENT | PF_ERROR.WRITE);
  assert.equal(walkPage(ram, PML4, VA + 0x1000, write, walk), false, "the next page is not mapped");
  assert.equal(walk.errorCode, PF_ERROR.WRITE);
  // translate() and translateRange() walk the same tables, without access checks.
  assert.equal(translate(ram, PML4, VA + 0x10), 0x20_0010);
  assert.equal(translate(ram, PML4, VA + 0x1000), -1);
  const pieces: number[] = [];
  assert.equal(translateRange(ram, PML4, VA + 0xff0, 0x10, (gpa, n) => pieces.push(gpa, n)), true);
  assert.deepEqual(pieces, [0x20_0ff0, 0x10]);
  assert.equal(translateRange(ram, PML4, VA + 0xff0, 0x20, () => {}), false);
});

Deno.test("GuestVirtualMemory.probe() reports the fault an access would raise, touching nothing", () => {
  const ram = readOnlyPage();
  const vm = new GuestVirtualMemory(ram);
  vm.cr3 = PML4;
  ram.u8.fill(0x5a, 0x20_0000, 0x20_1000);
  assert.equal(vm.probe(BigInt(VA), 0x100, false), null);
  assert.deepEqual(vm.probe(BigInt(VA), 0x100, true), {
    pageFault: BigInt(VA),
    errorCode: PF_ERROR.PRESENT | PF_ERROR.WRITE,
  });
  assert.deepEqual(vm.probe(BigInt(VA + 0xf00), 0x200, false), {
    pageFault: BigInt(VA + 0x1000),
    errorCode: 0,
  });
  assert.deepEqual(vm.probe(0x8000_0000_0000n, 1, false), { gp: true });
  assert.ok(ram.bytes(0x20_0000, 0x1000).every((b) => b === 0x5a), "nothing written");
});

Deno.test("GuestMemory.readInto() and addressOf() check their ranges", () => {
  const ram = new GuestMemory(new ArrayBuffer(0x2000), 0x10_0000);
  ram.write(0x10_0ffe, new Uint8Array([1, 2, 3, 4]));
  const small = new Uint8Array(4);
  ram.readInto(0x10_0ffe, small);
  assert.deepEqual(Array.from(small), [1, 2, 3, 4]);
  const big = new Uint8Array(0x100);
  ram.readInto(0x10_0f00, big);
  assert.deepEqual(Array.from(big.subarray(0xfe, 0x102)), [1, 2]);
  assert.throws(() => ram.readInto(0x10_1ffe, small), RangeError);
  assert.equal(ram.addressOf(ram.bytes(0x10_0ffe, 2)), 0x10_0ffe);
  assert.throws(() => ram.addressOf(new Uint8Array(2)), TypeError);
  // An overlapping copy inside guest RAM comes out right (set(), not a forward loop).
  ram.write(0x10_0fff, ram.bytes(0x10_0ffe, 3));
  assert.deepEqual(Array.from(ram.bytes(0x10_0ffe, 4)), [1, 1, 2, 3]);
});
