/**
 * `src/devices/ioapic.ts`: the IOAPIC register file of a split interrupt
 * controller, through its MMIO window as the run loop drives it (KVM's own
 * IOAPIC is the reference in `tests/kvm/irqchip_test.ts`).
 * @module
 */

import assert from "node:assert/strict";
import { Ioapic, IOAPIC_MMIO, IOAPIC_PINS, newIoapicState } from "../../../src/devices/ioapic.ts";

const SELECT = IOAPIC_MMIO.start;
const WINDOW = IOAPIC_MMIO.start + 0x10;

function write(device: Ioapic, addr: number, value: number, size = 4): void {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setUint32(0, value >>> 0, true);
  device.write(addr, size, data, 0);
}

function read(device: Ioapic, addr: number, size = 4): number {
  const data = new Uint8Array(8).fill(0xaa);
  device.read(addr, size, size, data, 0);
  return size === 8
    ? Number(new DataView(data.buffer).getBigUint64(0, true))
    : new DataView(data.buffer).getUint32(0, true) &
      (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1);
}

function register(device: Ioapic, index: number): number {
  write(device, SELECT, index);
  return read(device, WINDOW) >>> 0;
}

Deno.test("ioapic: a fresh one has version 0x11 with 24 pins, ID 0, every pin masked", () => {
  const device = new Ioapic(newIoapicState());
  assert.equal(register(device, 0x01), 0x00170011);
  assert.equal(register(device, 0x00), 0);
  for (let pin = 0; pin < IOAPIC_PINS; pin++) {
    assert.equal(register(device, 0x10 + 2 * pin), 0x10000, `pin ${pin}`);
    assert.equal(register(device, 0x11 + 2 * pin), 0, `pin ${pin} high`);
  }
});

Deno.test("ioapic: the select register keeps 8 bits, and any access size works", () => {
  const device = new Ioapic(newIoapicState());
  write(device, SELECT, 0x1201);
  assert.equal(read(device, SELECT), 0x01);
  // An 8-byte read gives the dword in the low half; a 1-byte write selects too.
  assert.equal(read(device, WINDOW, 8), 0x00170011);
  write(device, SELECT, 0x10, 1);
  assert.equal(read(device, WINDOW, 2), 0x0000);
  assert.equal(read(device, WINDOW, 4), 0x10000);
  // Offsets other than the two registers read 0 and ignore writes.
  write(device, IOAPIC_MMIO.start + 0x40, 0xffffffff);
  assert.equal(read(device, IOAPIC_MMIO.start + 0x20), 0);
  assert.equal(register(device, 0x10), 0x10000);
});

Deno.test("ioapic: writes keep read-only bits and registers; missing registers read all ones", () => {
  const device = new Ioapic(newIoapicState());
  write(device, SELECT, 0x10 + 2 * 7);
  write(device, WINDOW, 0xffffffff);
  assert.equal(register(device, 0x10 + 2 * 7), 0xffffafff, "delivery status and remote IRR stay 0");
  write(device, SELECT, 0x11 + 2 * 7);
  write(device, WINDOW, 0xff000000);
  assert.equal(register(device, 0x11 + 2 * 7), 0xff000000);
  write(device, SELECT, 0x01);
  write(device, WINDOW, 0);
  assert.equal(register(device, 0x01), 0x00170011, "the version is read-only");
  write(device, SELECT, 0x00);
  write(device, WINDOW, 0xfa000000);
  assert.equal(register(device, 0x00), 0x0a000000, "the ID keeps 4 bits");
  assert.equal(register(device, 0x02), 0x0a000000, "arbitration follows the ID");
  for (const missing of [0x03, 0x0f, 0x10 + 2 * IOAPIC_PINS, 0xff]) {
    assert.equal(register(device, missing), 0xffffffff, `register ${missing}`);
  }
});

Deno.test("ioapic: every vCPU thread's window shows the one state", () => {
  const state = newIoapicState();
  const cpu0 = new Ioapic(state);
  const cpu1 = new Ioapic(state);
  write(cpu0, SELECT, 0x10 + 2 * 3);
  write(cpu0, WINDOW, 0x33);
  assert.equal(register(cpu1, 0x10 + 2 * 3), 0x33);
  assert.throws(() => new Ioapic(new SharedArrayBuffer(8)), RangeError);
});
