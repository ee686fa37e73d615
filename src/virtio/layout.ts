/**
 * The virtio-net PCI function as uhyve 0.8 presents it, as data: one
 * 256-byte register space that is both the PCI configuration space (reached
 * through ports 0xCF8/0xCFC) and the BAR 0 window at 0xFE000000 (reached by
 * MMIO). Offsets 0x00–0x3F are the type-0 PCI header, then four virtio
 * vendor capabilities, then the virtio structures they point at. Facts
 * (offsets, IDs, features, queue size, IRQ line) follow uhyve v0.8.0's
 * `src/virtio/` and `src/pci.rs`; pure constants, no imports.
 * @module
 */

/** Guest-physical base of the device window (uhyve's `IOBASE`). */
export const NET_MMIO_BASE = 0xfe00_0000;
/** Size of the MMIO window uhyve routes to the device (16 MiB). */
export const NET_MMIO_SIZE = 0x100_0000;
/** Size of BAR 0 as the guest sees it when sizing it (one page). */
export const NET_BAR_SIZE = 0x1000;

/** PCI identity of the function. */
export const PCI_ID = {
  /** Red Hat / virtio vendor. */
  VENDOR: 0x1af4,
  /** Modern (virtio 1.x) network device: 0x1040 + device type 1. */
  DEVICE: 0x1041,
  /** Class 02 (network), subclass 00 (Ethernet), prog-if 00. */
  CLASS: 0x02,
  /** PCI status bit 4: the capability list is valid. */
  STATUS_CAPABILITIES: 0x0010,
  /** BAR 0 flags: 64-bit (bits 2:1 = 10), prefetchable (bit 3). */
  BAR_FLAGS: 0b1100,
  /** Interrupt pin INTA#. */
  INTERRUPT_PIN: 1,
  /** A modern (non-transitional) device has revision 1 or higher (virtio 1.x §4.1.2.1). */
  REVISION: 1,
  /** Subsystem vendor: the environment (virtio, as QEMU's modern devices). */
  SUBSYSTEM_VENDOR: 0x1af4,
  /** Subsystem ID: 0x40 or higher for a non-transitional device (§4.1.2.1); QEMU's value. */
  SUBSYSTEM: 0x1100,
} as const;

/** IOAPIC pin (and GSI) the device interrupts on; the PCI interrupt line register says so. */
export const NET_IRQ_LINE = 11;

/** Offsets in the type-0 PCI header. */
export const PCI_HEADER = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS_PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  BAR1: 0x14,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITIES_PTR: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  /** End of the header (exclusive). */
  END: 0x40,
} as const;

/** virtio_pci_cap `cfg_type` values. */
export const CAP_TYPE = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4 } as const;

/** Where each capability and each structure lives (uhyve's `HeaderConf`). */
export const REGION = {
  COMMON_CAP: 0x40,
  ISR_CAP: 0x50,
  NOTIFY_CAP: 0x60,
  DEVICE_CAP: 0x78,
  COMMON_CFG: 0x88,
  COMMON_CFG_SIZE: 64,
  ISR: 0xc8,
  NOTIFY: 0xd0,
  /** Two queues × 4 bytes (`notify_off_multiplier` 4). */
  NOTIFY_SIZE: 8,
  DEVICE_CFG: 0xd8,
  DEVICE_CFG_SIZE: 24,
  /** End of everything the device defines (exclusive). */
  END: 0xf0,
} as const;

/** `notify_off_multiplier`: queue n notifies at NOTIFY + 4·n. */
export const NOTIFY_OFF_MULTIPLIER = 4;

/** Offsets inside the common configuration structure (virtio 1.x §4.1.4.3). */
export const COMMON = {
  DEVICE_FEATURE_SELECT: 0,
  DEVICE_FEATURE: 4,
  DRIVER_FEATURE_SELECT: 8,
  DRIVER_FEATURE: 12,
  CONFIG_MSIX_VECTOR: 16,
  NUM_QUEUES: 18,
  DEVICE_STATUS: 20,
  CONFIG_GENERATION: 21,
  QUEUE_SELECT: 22,
  QUEUE_SIZE: 24,
  QUEUE_MSIX_VECTOR: 26,
  QUEUE_ENABLE: 28,
  QUEUE_NOTIFY_OFF: 30,
  QUEUE_DESC: 32,
  QUEUE_DRIVER: 40,
  QUEUE_DEVICE: 48,
  QUEUE_NOTIFY_DATA: 56,
  QUEUE_RESET: 58,
} as const;

/** Offsets inside the network device configuration. */
export const NET_CFG = { MAC: 0, STATUS: 6, MAX_QUEUE_PAIRS: 8, MTU: 10 } as const;

/** Device status bits (virtio 1.x §2.1). */
export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** ISR bits: a used buffer was added; the configuration (or device state) changed. */
export const ISR = { QUEUE: 1, CONFIG: 2 } as const;

/** Feature bits the device offers: what it implements, nothing more. */
export const FEATURE = {
  /** VIRTIO_NET_F_CSUM (0): the driver may send frames with a partial checksum. */
  CSUM: 1 << 0,
  /** VIRTIO_NET_F_GUEST_CSUM (1): the driver accepts frames with a partial checksum. */
  GUEST_CSUM: 1 << 1,
  /** VIRTIO_NET_F_MTU (3): `mtu` in the device configuration is valid. */
  MTU: 1 << 3,
  /** VIRTIO_NET_F_MAC (5): `mac` is valid. */
  MAC: 1 << 5,
  /** VIRTIO_NET_F_STATUS (16): `status` (link up) is valid. */
  STATUS: 1 << 16,
  /** VIRTIO_F_VERSION_1 (32), as a bit in the high feature word. */
  VERSION_1_HIGH: 1 << 0,
} as const;

/**
 * Offered features, low and high 32-bit words, without offloads; a TAP with a
 * virtio-net header adds {@linkcode CSUM_FEATURES} to the low word.
 */
export const OFFERED_FEATURES: readonly [number, number] = [
  FEATURE.MTU | FEATURE.MAC | FEATURE.STATUS,
  FEATURE.VERSION_1_HIGH,
];

/** Checksum offload both ways, offered where the TAP takes a virtio-net header and TUN_F_CSUM. */
export const CSUM_FEATURES = FEATURE.CSUM | FEATURE.GUEST_CSUM;

/** Queue indices. */
export const QUEUE = { RX: 0, TX: 1 } as const;
/** Number of virtqueues. */
export const NUM_QUEUES = 2;
/** Entries per virtqueue (uhyve's `UHYVE_QUEUE_SIZE`). */
export const QUEUE_SIZE = 256;
/** MTU the device reports by default (a TAP reports its interface's). */
export const NET_MTU = 1500;
/** `struct virtio_net_hdr_v1`: 12 bytes in front of every frame (VERSION_1). */
export const NET_HDR_SIZE = 12;
/** `num_buffers` in the header (u16 at offset 10): always 1, frames never span chains. */
export const NET_HDR_NUM_BUFFERS = 10;
/** Fields of `struct virtio_net_hdr_v1` (byte offsets; u16 fields little-endian). */
export const NET_HDR = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
} as const;
/** Header flag: the checksum at csum_start + csum_offset still has to be completed. */
export const NET_HDR_F_NEEDS_CSUM = 1;
/** Header flag: the checksum was already checked (only with GUEST_CSUM). */
export const NET_HDR_F_DATA_VALID = 2;
/** Smallest frame: an Ethernet header. */
export const ETH_HEADER_SIZE = 14;
/** No MSI-X vector (the device has no MSI-X capability). */
export const NO_VECTOR = 0xffff;
/** Net status bit: link up. */
export const LINK_UP = 1;
