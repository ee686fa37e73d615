/**
 * `GuestMemory` on host memory (`mapGuestMemory`, as a run maps guest RAM):
 * viewed in windows made on first use rather than one view of all of RAM
 * (see `WINDOW_STRIDE`). Checked against a `GuestMemory` over a plain buffer
 * doing the same operations, with ranges that straddle windows and ranges
 * longer than a window, and for what it asks of the host: only the windows a
 * run touches. Needs `--allow-ffi` (this group has it), not KVM.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { HostMapping, mapGuestMemory } from "../../src/kvm.ts";
import { GuestMemory, type RamSource, WINDOW_STRIDE } from "../../src/memory/guest_memory.ts";

const BASE = 0x4000_0000;
/** Six windows' worth and a bit: the last window is cut short. */
const SIZE = 6 * WINDOW_STRIDE + 0x3000;

/** Counts the views a GuestMemory asks of the host mapping. */
class Counted implements RamSource {
  readonly views: { offset: number; length: number }[] = [];
  constructor(readonly mapping: HostMapping) {}
  get size(): number {
    return this.mapping.size;
  }
  view(offset: number, length: number): ArrayBuffer {
    this.views.push({ offset, length });
    return this.mapping.view(offset, length);
  }
}

function withRam(fn: (host: GuestMemory, model: GuestMemory, source: Counted) => void): void {
  const mapping = mapGuestMemory(SIZE);
  try {
    const source = new Counted(mapping);
    fn(new GuestMemory(source, BASE), new GuestMemory(new ArrayBuffer(SIZE), BASE), source);
  } finally {
    mapping.unmap();
  }
}

/** An address range near a window edge (or anywhere), inside RAM. */
const rangeArb = (maxLen: number): fc.Arbitrary<{ at: number; len: number }> =>
  fc.record({
    edge: fc.integer({ min: 0, max: 6 }),
    delta: fc.integer({ min: -16, max: 16 }),
    anywhere: fc.nat({ max: SIZE - 1 }),
    useEdge: fc.boolean(),
    len: fc.nat({ max: maxLen }),
  }).map(({ edge, delta, anywhere, useEdge, len }) => {
    const at = Math.min(SIZE - 1, Math.max(0, useEdge ? edge * WINDOW_STRIDE + delta : anywhere));
    return { at: BASE + at, len: Math.min(len, SIZE - at) };
  });

Deno.test("windows: values written across window edges read back the same through every window", () => {
  withRam((host, model) => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            range: rangeArb(8),
            width: fc.constantFrom(1, 2, 4, 8),
            value: fc.nat({ max: 0xffff_ffff }),
            write: fc.boolean(),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        (ops) => {
          for (const { range, width, value, write } of ops) {
            const at = Math.min(range.at, BASE + SIZE - width);
            if (write) {
              for (const m of [host, model]) {
                if (width === 1) m.writeU8(at, value & 0xff);
                else if (width === 2) m.writeU16(at, value & 0xffff);
                else if (width === 4) m.writeU32(at, value);
                else m.writeU64(at, value * 3);
              }
            } else {
              const read = (m: GuestMemory): number =>
                width === 1
                  ? m.readU8(at)
                  : width === 2
                  ? m.readU16(at)
                  : width === 4
                  ? m.readU32(at)
                  : m.readU64(at);
              assert.equal(read(host), read(model), `u${width * 8} at ${at.toString(16)}`);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

Deno.test("windows: long writes, reads, fills, views and strings cross windows like one buffer", () => {
  withRam((host) => {
    const model = new Uint8Array(SIZE); // the plain semantics: one array of bytes
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            range: rangeArb(3 * WINDOW_STRIDE),
            op: fc.constantFrom("write", "fill", "read", "bytes", "cstr"),
            seed: fc.nat({ max: 255 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (ops) => {
          for (const { range: { at, len }, op, seed } of ops) {
            const o = at - BASE;
            if (op === "write") {
              const data = new Uint8Array(len).map((_, i) => (seed + i * 7) & 0xff);
              host.write(at, data);
              model.set(data, o);
            } else if (op === "fill") {
              host.fill(at, len, seed);
              model.fill(seed, o, o + len);
            } else if (op === "read") {
              const into = new Uint8Array(len);
              host.readInto(at, into);
              assert.ok(into.every((b, i) => b === model[o + i]));
            } else if (op === "bytes") {
              const view = host.bytes(at, len);
              assert.ok(view.length === len && view.every((b, i) => b === model[o + i]));
              assert.equal(host.addressOf(view), at);
            } else {
              const expected = model.subarray(o, Math.min(SIZE, o + len)).indexOf(0);
              assert.equal(host.cStringLength(at, len), expected);
            }
          }
          assert.ok(host.bytes(BASE, SIZE).every((b, i) => b === model[i]));
        },
      ),
      { numRuns: 15 },
    );
  });
});

Deno.test("windows: a copy from guest RAM to overlapping guest RAM moves as memmove does", () => {
  withRam((host, model) => {
    for (
      const [from, to, len] of [
        [0x2000, 0x2008, 40], // short (a byte loop), forwards, one window
        [WINDOW_STRIDE - 20, WINDOW_STRIDE - 12, 40], // short, forwards, over a window edge
        [WINDOW_STRIDE + 8, WINDOW_STRIDE - 24, 100], // backwards
        [0x1000, 0x1000 + WINDOW_STRIDE - 3, 3 * WINDOW_STRIDE], // longer than a window, forwards
      ]
    ) {
      const pattern = new Uint8Array(SIZE).map((_, i) => (i * 13) & 0xff);
      const expected = pattern.slice().copyWithin(to!, from!, from! + len!);
      for (const m of [host, model]) {
        m.write(BASE, pattern);
        m.write(BASE + to!, m.bytes(BASE + from!, len!));
        assert.ok(m.bytes(BASE, SIZE).every((b, i) => b === expected[i]), `${from} -> ${to}`);
      }
    }
  });
});

Deno.test("windows: only the windows used are viewed, each once; longer ranges and u8 view all of RAM, once", () => {
  withRam((host, _model, source) => {
    assert.equal(source.views.length, 0); // nothing until used
    host.writeU32(BASE + 0x9000, 1);
    host.readU32(BASE + 0x9004);
    host.write(BASE + 5 * WINDOW_STRIDE + 0x100, new Uint8Array(4096));
    assert.deepEqual(source.views, [
      { offset: 0, length: 2 * WINDOW_STRIDE },
      { offset: 5 * WINDOW_STRIDE, length: SIZE - 5 * WINDOW_STRIDE }, // cut at the end of RAM
    ]);
    host.bytes(BASE + 0x100, WINDOW_STRIDE + 1); // longer than a stride: the view of all of RAM
    assert.deepEqual(source.views.at(-1), { offset: 0, length: SIZE });
    host.bytes(BASE + 0x200, 2 * WINDOW_STRIDE); // made once
    assert.equal(host.u8.length, SIZE);
    assert.equal(source.views.length, 3);
    assert.equal(host.addressOf(host.u8.subarray(0x10)), BASE + 0x10);
    assert.throws(() => host.addressOf(new Uint8Array(8)), TypeError);
  });
});
