/**
 * The fixed guest-physical layout of a uhyve-compatible VM (hermit-abi.md §2).
 *
 * Owns the offsets from `guest_address` (the first byte of guest RAM) at which
 * the boot structures live, plus the RAM placement ranges. Constants only: no
 * imports, no I/O; must not import kvm.ts or libc.ts.
 * @module
 */

/** Offset of the boot GDT (3 entries, 24 bytes). */
export const GDT_OFFSET = 0x1000;

/** Offset of the flattened device tree blob. */
export const FDT_OFFSET = 0x5000;

/**
 * Room for the FDT blob: a blob must be strictly smaller than this
 * (uhyve asserts `len < 0x4000`, the distance to the boot info).
 */
export const FDT_MAX_SIZE = 0x4000;

/** Offset of `RawBootInfo` (128 bytes); the boot vCPU receives it in RDI. */
export const BOOT_INFO_OFFSET = 0x9000;

/** Size in bytes of `RawBootInfo`. */
export const BOOT_INFO_SIZE = 0x80;

/** Offset of the PML4 (CR3 points here). */
export const PML4_OFFSET = 0x10000;

/** Offset of the first bump-allocated page-table frame (PDPT, PD, …). */
export const PAGE_TABLES_OFFSET = 0x11000;

/** End (exclusive) of the page-table frame area: 31 frames of 4 KiB. */
export const PAGE_TABLES_END = 0x30000;

/** Offset at which a PIE kernel is loaded (`kernel_address = guest_address + this`). */
export const KERNEL_OFFSET = 0x40000;

/**
 * Size of the boot stack region right below the kernel. RSP starts at the
 * region's *lowest* address, `kernel_address - BOOT_STACK_SIZE` (§3.3).
 */
export const BOOT_STACK_SIZE = 0x8000;

/** Highest guest-physical address (inclusive) for RAM of a v1 kernel. */
export const V1_RAM_HIGHEST = 0xbfff_ffff;
/** Lowest guest-physical address for RAM of a uhyve-interface v2 kernel. */
export const V2_RAM_LOWEST = 0x1_0000_0000;

/** Start of the 3–4 GiB hole KVM keeps free of RAM. */
export const KVM_32BIT_GAP_START = 0xc000_0000;
/** End (exclusive) of the 3–4 GiB hole. */
export const KVM_32BIT_GAP_END = 0x1_0000_0000;
