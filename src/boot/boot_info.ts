/**
 * `RawBootInfo` (hermit-entry 0.10.x, 128 bytes at guest+0x9000; hermit-abi.md §4).
 *
 * Owns the byte layout the kernel reads at entry (RDI points at it). Pure:
 * writes through {@linkcode GuestMemory} only; must not import kvm.ts or libc.ts.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { BOOT_INFO_SIZE } from "./layout.ts";

/** Byte offsets of the `RawBootInfo` fields (all little-endian). */
export const BOOT_INFO_FIELDS = {
  /** u64: first guest-physical RAM address. */
  physAddrStart: 0x00,
  /** u64: end (exclusive) of guest RAM. */
  physAddrEnd: 0x08,
  /** u16: serial port (`Option<NonZeroU16>`, 0 = none). */
  serialPortBase: 0x10,
  /** u64: FDT address (`Option<NonZeroU64>`, 0 = none). */
  deviceTree: 0x18,
  /** u64: first address of the loaded kernel image. */
  kernelImageStart: 0x20,
  /** u64: end (exclusive) of the loaded kernel image. */
  kernelImageEnd: 0x28,
  /** u64: TLS template start (0 = no TLS). */
  tlsStart: 0x30,
  /** u64: TLS initialised size. */
  tlsFilesz: 0x38,
  /** u64: TLS total size. */
  tlsMemsz: 0x40,
  /** u64: TLS alignment. */
  tlsAlign: 0x48,
  /** u32: platform-info discriminant ({@linkcode PLATFORM_UHYVE}). */
  platformTag: 0x50,
  /** u8 (bool): PCI bus present. */
  hasPci: 0x58,
  /** u64: number of vCPUs (non-zero). */
  numCpus: 0x60,
  /** u32: TSC frequency in kHz (`Option<NonZeroU32>`, 0 = none). */
  cpuFreqKhz: 0x68,
  /** i128: Unix time of VM creation in nanoseconds, two's complement. */
  bootTimeNs: 0x70,
} as const;

/** Platform-info tag for uhyve (x86_64: 0 Multiboot, 1 Uhyve, 2 LinuxBootParams, 3 Fdt). */
export const PLATFORM_UHYVE = 1;

/** The kernel's TLS template, from its PT_TLS segment. */
export interface TlsInfo {
  /** Guest address of the template. */
  start: number;
  /** Bytes initialised from the image. */
  filesz: number;
  /** Total size of the TLS block. */
  memsz: number;
  /** Alignment of the TLS block. */
  align: number;
}

/** Values for {@linkcode writeBootInfo}. */
export interface BootInfo {
  /** Guest-physical start of RAM (`guest_address`). */
  physAddrStart: number;
  /** Guest-physical end of RAM (`guest_address + memory_size`). */
  physAddrEnd: number;
  /** Serial port: 0x800 for v1 kernels, 0x1030 for v2 (0 = none, fatal to Hermit). */
  serialPortBase: number;
  /** FDT address (`guest_address + 0x5000`), 0 = none. */
  deviceTree: number;
  /** Kernel image start (`kernel_address`). */
  kernelImageStart: number;
  /** Kernel image end (`kernel_address + mem_size`). */
  kernelImageEnd: number;
  /** TLS template, or null when the kernel has none (written as zeros). */
  tls: TlsInfo | null;
  /** Number of vCPUs (at least 1). */
  numCpus: number;
  /** TSC frequency in kHz (0 = unknown). */
  cpuFreqKhz: number;
  /** Boot time: Unix time in nanoseconds (any i128). */
  bootTimeNs: bigint;
}

const I128_MIN = -(1n << 127n);
const I128_MAX = (1n << 127n) - 1n;

function checkU64(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot write boot info: ${name} is not a valid address: ${value}`);
  }
}

function checkRange(name: string, value: number, max: number, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot write boot info: ${name} must be an integer in ${min}..${max}: ${value}`,
    );
  }
}

/**
 * Writes the 128-byte `RawBootInfo` at `addr` (normally guest+0x9000): every
 * field of §4, the uhyve platform tag (1) with `has_pci = 1`, and zeroed
 * padding. All values are validated before any byte is written.
 *
 * @param mem guest RAM
 * @param addr guest-physical address of the structure (8-byte aligned)
 * @param info the field values
 * @throws {RangeError} if a value does not fit its field (`numCpus` must be ≥ 1)
 * @throws {GuestMemoryError} if the 128 bytes do not fit in guest RAM
 */
export function writeBootInfo(mem: GuestMemory, addr: number, info: BootInfo): void {
  checkU64("physAddrStart", info.physAddrStart);
  checkU64("physAddrEnd", info.physAddrEnd);
  checkRange("serialPortBase", info.serialPortBase, 0xffff);
  checkU64("deviceTree", info.deviceTree);
  checkU64("kernelImageStart", info.kernelImageStart);
  checkU64("kernelImageEnd", info.kernelImageEnd);
  const tls = info.tls ?? { start: 0, filesz: 0, memsz: 0, align: 0 };
  checkU64("tls.start", tls.start);
  checkU64("tls.filesz", tls.filesz);
  checkU64("tls.memsz", tls.memsz);
  checkU64("tls.align", tls.align);
  checkRange("numCpus", info.numCpus, Number.MAX_SAFE_INTEGER, 1);
  checkRange("cpuFreqKhz", info.cpuFreqKhz, 0xffff_ffff);
  if (info.bootTimeNs < I128_MIN || info.bootTimeNs > I128_MAX) {
    throw new RangeError(`Cannot write boot info: bootTimeNs does not fit in an i128`);
  }

  const o = BOOT_INFO_FIELDS;
  mem.fill(addr, BOOT_INFO_SIZE);
  mem.writeU64(addr + o.physAddrStart, info.physAddrStart);
  mem.writeU64(addr + o.physAddrEnd, info.physAddrEnd);
  mem.writeU16(addr + o.serialPortBase, info.serialPortBase);
  mem.writeU64(addr + o.deviceTree, info.deviceTree);
  mem.writeU64(addr + o.kernelImageStart, info.kernelImageStart);
  mem.writeU64(addr + o.kernelImageEnd, info.kernelImageEnd);
  mem.writeU64(addr + o.tlsStart, tls.start);
  mem.writeU64(addr + o.tlsFilesz, tls.filesz);
  mem.writeU64(addr + o.tlsMemsz, tls.memsz);
  mem.writeU64(addr + o.tlsAlign, tls.align);
  mem.writeU32(addr + o.platformTag, PLATFORM_UHYVE);
  mem.writeU8(addr + o.hasPci, 1);
  mem.writeU64(addr + o.numCpus, info.numCpus);
  mem.writeU32(addr + o.cpuFreqKhz, info.cpuFreqKhz);
  // i128 little-endian: low u64 first, then the sign-extended high u64.
  mem.writeU64Big(addr + o.bootTimeNs, BigInt.asUintN(64, info.bootTimeNs));
  mem.writeU64Big(addr + o.bootTimeNs + 8, BigInt.asUintN(64, info.bootTimeNs >> 64n));
}
