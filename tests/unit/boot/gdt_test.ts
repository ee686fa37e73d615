import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "../../../src/memory/guest_memory.ts";
import {
  CODE_SEGMENT,
  DATA_SEGMENT,
  GDT_ENTRIES,
  GDT_LIMIT,
  writeGdt,
} from "../../../src/boot/gdt.ts";

/** The raw descriptors of hermit-abi.md §3.1. */
const RAW = [0x0000000000000000n, 0x00AF9B000000FFFFn, 0x00CF93000000FFFFn];

Deno.test("writeGdt() writes the three raw descriptors of §3.1 at guest+0x1000", () => {
  const mem = new GuestMemory(new ArrayBuffer(0x2000));
  mem.u8.fill(0xaa);
  const gdtr = writeGdt(mem, 0);
  assert.deepEqual(gdtr, { base: 0x1000, limit: 23 });
  assert.deepEqual([0, 1, 2].map((i) => mem.readU64Big(0x1000 + i * 8)), RAW);
  // nothing around the table is touched
  assert.ok(mem.bytes(0, 0x1000).every((b) => b === 0xaa));
  assert.ok(mem.bytes(0x1018, 0x2000 - 0x1018).every((b) => b === 0xaa));
});

Deno.test("writeGdt() places the table relative to a non-zero guest address", () => {
  const guest = 0x1_0000_0000;
  const mem = new GuestMemory(new ArrayBuffer(0x2000), guest);
  const gdtr = writeGdt(mem, guest);
  assert.deepEqual(gdtr, { base: guest + 0x1000, limit: GDT_LIMIT });
  assert.deepEqual([0, 1, 2].map((i) => mem.readU64Big(guest + 0x1000 + i * 8)), RAW);
});

Deno.test("writeGdt() throws GuestMemoryError and writes nothing when the table does not fit", () => {
  const mem = new GuestMemory(new ArrayBuffer(0x1010));
  assert.throws(() => writeGdt(mem, 0), GuestMemoryError);
  assert.ok(mem.u8.every((b) => b === 0));
});

Deno.test("CODE_SEGMENT and DATA_SEGMENT hold the sregs values of §3.3", () => {
  assert.equal(GDT_ENTRIES, 3);
  assert.deepEqual(CODE_SEGMENT, {
    base: 0,
    limit: 0xffffffff,
    selector: 0x08,
    type: 11,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 1,
    g: 1,
    avl: 0,
  });
  assert.deepEqual(DATA_SEGMENT, {
    base: 0,
    limit: 0xffffffff,
    selector: 0x10,
    type: 3,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
  });
  assert.ok(Object.isFrozen(CODE_SEGMENT) && Object.isFrozen(DATA_SEGMENT));
});

Deno.test("the GDT descriptors agree with the segment data (type, selector, L, G)", () => {
  const mem = new GuestMemory(new ArrayBuffer(0x2000));
  writeGdt(mem, 0);
  for (const seg of [CODE_SEGMENT, DATA_SEGMENT]) {
    const raw = mem.readU64Big(0x1000 + seg.selector);
    assert.equal(Number((raw >> 40n) & 0xfn), seg.type);
    assert.equal(Number((raw >> 44n) & 1n), seg.s);
    assert.equal(Number((raw >> 45n) & 3n), seg.dpl);
    assert.equal(Number((raw >> 47n) & 1n), seg.present);
    assert.equal(Number((raw >> 53n) & 1n), seg.l);
    assert.equal(Number((raw >> 55n) & 1n), seg.g);
  }
});
