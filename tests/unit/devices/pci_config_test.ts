/**
 * PCI configuration mechanism #1 (ports 0xCF8–0xCFF) over the virtio-net
 * register file: the latched address belongs to the device, decoding of
 * enable/bus/device/function, empty slots reading all ones, and the card's
 * identity (revision and subsystem IDs as virtio 1.x asks of a modern device).
 * @module
 */

import assert from "node:assert/strict";
import { busZero, PciConfigSpace, type PciFunction } from "../../../src/devices/pci_config.ts";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { NetRegisters } from "../../../src/virtio/net_registers.ts";
import { createNetState } from "../../../src/virtio/net_state.ts";

function netFunction(): NetRegisters {
  const mem = new GuestMemory(new ArrayBuffer(0x10_0000), 0x20_0000);
  const nothing = (): void => {};
  return new NetRegisters(createNetState(new Uint8Array(6)), mem, {
    wake: nothing,
    interrupt: nothing,
    notify: nothing,
  });
}

const buf = new Uint8Array(8);
const view = new DataView(buf.buffer);

function out32(pci: PciConfigSpace, port: number, value: number): void {
  view.setUint32(0, value, true);
  pci.write(port, 4, buf, 0);
}

function in32(pci: PciConfigSpace, port: number): number {
  buf.fill(0xaa);
  pci.read(port, 4, 4, buf, 0);
  return view.getUint32(0, true);
}

function in8(pci: PciConfigSpace, port: number): number {
  buf.fill(0xaa);
  pci.read(port, 1, 1, buf, 0);
  return buf[0]!;
}

/** CONFIG_ADDRESS for bus 0, `device`, function 0, register `reg`. */
const address = (reg: number, device = 0): number => (0x8000_0000 | device << 11 | reg) >>> 0;

Deno.test("PciConfigSpace: the latched address reads back and survives any number of data reads", () => {
  const pci = busZero(netFunction());
  out32(pci, 0xcf8, address(0));
  assert.equal(in32(pci, 0xcf8), address(0));
  for (let i = 0; i < 10_000; i++) assert.equal(in32(pci, 0xcfc), 0x1041_1af4);
});

Deno.test("PciConfigSpace: byte reads through 0xCFD–0xCFF select bytes of the dword", () => {
  const pci = busZero(netFunction());
  out32(pci, 0xcf8, address(0));
  assert.deepEqual([0xcfc, 0xcfd, 0xcfe, 0xcff].map((p) => in8(pci, p)), [0xf4, 0x1a, 0x41, 0x10]);
});

Deno.test("PciConfigSpace: the virtio-net card has revision >= 1 and subsystem IDs of a modern device", () => {
  const pci = busZero(netFunction());
  out32(pci, 0xcf8, address(0x08));
  const classRev = in32(pci, 0xcfc);
  assert.ok((classRev & 0xff) >= 1, `revision ${classRev & 0xff}`);
  assert.equal(classRev >>> 8, 0x02_00_00, "class: network / Ethernet");
  out32(pci, 0xcf8, address(0x2c));
  const sub = in32(pci, 0xcfc);
  assert.equal(sub & 0xffff, 0x1af4, "subsystem vendor");
  assert.ok(sub >>> 16 >= 0x40, `subsystem ID 0x${(sub >>> 16).toString(16)}`);
});

Deno.test("PciConfigSpace: disabled addresses, other buses and empty slots read all ones", () => {
  const pci = busZero(netFunction());
  for (const a of [0x0000_0000, address(0, 1), 0x8001_0000, 0x8000_0100]) {
    out32(pci, 0xcf8, a);
    assert.equal(in32(pci, 0xcfc), 0xffff_ffff, `address 0x${a.toString(16)}`);
  }
  const empty = busZero(null);
  out32(empty, 0xcf8, address(0));
  assert.equal(in32(empty, 0xcfc), 0xffff_ffff);
});

Deno.test("PciConfigSpace: data writes reach the selected function at the latched register", () => {
  const seen: string[] = [];
  const fn: PciFunction = {
    read: (_o, n, out, at) => void out.fill(0, at, at + n),
    write: (offset, size, src, at) => void seen.push(`${offset}:${size}:${src[at]}`),
  };
  const pci = new PciConfigSpace();
  pci.attach(3, 0, fn);
  out32(pci, 0xcf8, address(0x04, 3));
  buf[0] = 7;
  pci.write(0xcfe, 2, buf, 0);
  assert.deepEqual(seen, ["6:2:7"]);
  assert.throws(() => pci.attach(32, 0, fn), RangeError);
});
