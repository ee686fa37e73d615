/**
 * The port/MMIO bus: range checks at registration (no empty range, no
 * overflow past the space, no overlap), lookups by address, and dhyve's
 * board layout (hypercall region around the PCI ports, MP-table holes, the
 * net window only with --net).
 * @module
 */

import assert from "node:assert/strict";
import { Bus, type BusDevice, BusError, PORT_SPACE_END } from "../../../src/bus/bus.ts";
import { buildBuses } from "../../../src/devices/board.ts";
import { HypercallPorts } from "../../../src/devices/hypercall_ports.ts";
import { busZero } from "../../../src/devices/pci_config.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import { buildHypercallTable } from "../../../src/hypercall/table.ts";
import { fakeContext } from "../../_helpers/hypercall_context.ts";

const device = (name: string): BusDevice => ({
  name,
  read: () => RESUME,
  write: () => RESUME,
});

Deno.test("Bus.register() refuses empty, negative, overflowing and overlapping ranges", () => {
  const bus = new Bus("port", PORT_SPACE_END);
  const a = device("a");
  bus.register(0x100, 0x10, a);
  assert.throws(() => bus.register(0x200, 0, a), BusError, "zero length");
  assert.throws(() => bus.register(-1, 2, a), BusError, "negative start");
  assert.throws(() => bus.register(0xfff0, 0x20, a), BusError, "past the end");
  assert.throws(() => bus.register(0x10f, 1, a), /overlaps a/, "last byte");
  assert.throws(() => bus.register(0xf0, 0x11, a), /overlaps a/, "first byte");
  assert.throws(() => bus.register(0x80, 0x200, a), /overlaps a/, "around it");
  bus.register(0x110, 1, device("b")); // adjacent is fine
  bus.register(0xffff, 1, device("c")); // the last port
});

Deno.test("Bus.find() returns the device of the range that holds the address, else null", () => {
  const bus = new Bus("mmio", 2 ** 52);
  const low = device("low");
  const high = device("high");
  bus.register(0xfe00_0000, 0x100_0000, high);
  bus.register(0x9_f000, 0x1000, low);
  assert.equal(bus.find(0x9_f000), low);
  assert.equal(bus.find(0x9_ffff), low);
  assert.equal(bus.find(0xa_0000), null);
  assert.equal(bus.find(0xfeff_ffff), high);
  assert.equal(bus.find(0xff00_0000), null);
  assert.equal(bus.find(0), null);
  assert.deepEqual(bus.ranges().map((r) => r.device), ["low", "high"], "kept in address order");
});

Deno.test("buildBuses(): hypercalls around the PCI ports, MP-table holes, net window only with --net", () => {
  const { ctx } = fakeContext();
  const hypercalls = new HypercallPorts(buildHypercallTable(), ctx, new Float64Array(0x1300), {
    rdi: () => 0,
  });
  const buses = buildBuses({ hypercalls, pci: busZero(null), net: null, ioapic: null });
  assert.deepEqual(
    buses.ports.ranges().map((r) => [r.start, r.end, r.device]),
    [[0x400, 0xcf8, "hypercalls"], [0xcf8, 0xd00, "pci-config"], [0xd00, 0x1300, "hypercalls"]],
  );
  assert.deepEqual(
    buses.mmio.ranges().map((r) => [r.start, r.end, r.device]),
    [[0x9_f000, 0xa_0000, "mp-table-hole"], [0xf_0000, 0x10_0000, "mp-table-hole"]],
  );
  assert.equal(buses.hypercalls, hypercalls);
});
