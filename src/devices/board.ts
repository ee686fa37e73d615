/**
 * dhyve's board: which device answers which ports and guest-physical
 * addresses, as uhyve 0.8 lays them out (and the IOAPIC, when KVM does not
 * hold it: `src/machine/irqchip.ts`). One board per thread that runs
 * vCPUs (the devices' state is per thread or shared through their own
 * SharedArrayBuffers). A new device goes here: make it a `BusDevice` and
 * register its range. Pure.
 * @module
 */

import {
  Bus,
  type BusDevice,
  type DeviceResult,
  MMIO_SPACE_END,
  PORT_SPACE_END,
} from "../bus/bus.ts";
import { RESUME } from "../hypercall/context.ts";
import type { NetRegisters } from "../virtio/net_registers.ts";
import { NET_MMIO_BASE, NET_MMIO_SIZE } from "../virtio/layout.ts";
import {
  HYPERCALL_REGION_END,
  HYPERCALL_REGION_START,
  type HypercallPorts,
} from "./hypercall_ports.ts";
import { IOAPIC_MMIO } from "./ioapic.ts";
import { PCI_CONFIG_PORTS, type PciConfigSpace } from "./pci_config.ts";

/** The two address spaces of one vCPU thread. */
export interface Buses {
  /** Port I/O. An IN nobody answers reads all ones; an OUT nobody answers is ignored. */
  readonly ports: Bus;
  /** MMIO outside RAM. An access nobody answers stops the VM. */
  readonly mmio: Bus;
  /** The hypercall device (its exits are counted as hypercalls, not port accesses). */
  readonly hypercalls: BusDevice;
}

/**
 * Guest-physical ranges Hermit scans for an MP table (the last KiB of base
 * memory's page and the BIOS area): reads give zeroes, writes vanish.
 */
export const MP_TABLE_HOLES = [
  { start: 0x9_f000, length: 0x1000 },
  { start: 0xf_0000, length: 0x1_0000 },
] as const;

/** Reads as zeroes, ignores writes. */
const zeroes: BusDevice = {
  name: "mp-table-hole",
  read(_addr, _size, n, data, at): DeviceResult {
    data.fill(0, at, at + n);
    return RESUME;
  },
  write: (): DeviceResult => RESUME,
};

/** The virtio-net BAR 0 window: the same registers as its PCI configuration space. */
function netWindow(net: NetRegisters): BusDevice {
  return {
    name: "virtio-net",
    read(addr, _size, n, data, at): DeviceResult {
      net.read(addr - NET_MMIO_BASE, n, data, at);
      return RESUME;
    },
    write(addr, size, data, at): DeviceResult {
      net.write(addr - NET_MMIO_BASE, size, data, at);
      return RESUME;
    },
  };
}

/** What the board is built from. */
export interface BoardDevices {
  /** This vCPU's hypercall ports. */
  readonly hypercalls: HypercallPorts;
  /** The PCI configuration ports (kept for the whole run: the latched address is state). */
  readonly pci: PciConfigSpace;
  /** The virtio-net registers (`--net`), or null. */
  readonly net: NetRegisters | null;
  /** The IOAPIC's window when the VM's interrupt controller is split, else null (KVM's). */
  readonly ioapic: BusDevice | null;
}

/** Registers every device of the board on fresh buses. */
export function buildBuses(devices: BoardDevices): Buses {
  const ports = new Bus("port", PORT_SPACE_END);
  const mmio = new Bus("mmio", MMIO_SPACE_END);
  const pciEnd = PCI_CONFIG_PORTS.start + PCI_CONFIG_PORTS.length;
  ports.register(PCI_CONFIG_PORTS.start, PCI_CONFIG_PORTS.length, devices.pci);
  // The hypercall region surrounds the PCI ports.
  ports.register(
    HYPERCALL_REGION_START,
    PCI_CONFIG_PORTS.start - HYPERCALL_REGION_START,
    devices.hypercalls,
  );
  ports.register(pciEnd, HYPERCALL_REGION_END - pciEnd, devices.hypercalls);
  for (const hole of MP_TABLE_HOLES) mmio.register(hole.start, hole.length, zeroes);
  if (devices.net !== null) mmio.register(NET_MMIO_BASE, NET_MMIO_SIZE, netWindow(devices.net));
  if (devices.ioapic !== null) mmio.register(IOAPIC_MMIO.start, IOAPIC_MMIO.length, devices.ioapic);
  return { ports, mmio, hypercalls: devices.hypercalls };
}
