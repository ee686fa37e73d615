/**
 * Where guest RAM and the kernel go (hermit-abi.md §2.1, §1.7): picks the
 * guest-physical base of RAM and the kernel's load address from the uhyve
 * interface version, the kernel kind and ASLR. Pure; must not import
 * `kvm.ts`, `libc.ts` or anything doing I/O.
 * @module
 */

import { KERNEL_OFFSET } from "../boot/layout.ts";
import { LayoutError } from "./errors.ts";
import { type InterfaceVersion, type KernelImage, unsupportedInterfaceMessage } from "./elf.ts";
import { hex } from "../hex.ts";

const MIB = 0x10_0000;

/** Offset of a PIE kernel from the start of guest RAM (the boot layout's one value). */
export const PIE_KERNEL_OFFSET = KERNEL_OFFSET;
/** Lowest offset from the start of RAM an EXEC kernel may be linked at: its
 * boot stack (`kernel − 0x8000`) must not reach the page tables below 0x30000. */
export const MIN_KERNEL_OFFSET = 0x38000;
/** Alignment of a randomly chosen (ASLR) guest RAM base: 2 MiB. */
export const GUEST_ADDRESS_ALIGN = 0x20_0000;
/** The 3–4 GiB gap that guest RAM must not overlap: `[start, end)`. */
export const PCI_GAP: { readonly start: number; readonly end: number } = {
  start: 0xc000_0000,
  end: 0x1_0000_0000,
};
const V2_RANGE = { lo: 0x1_0000_0000, hi: 0x10_0000_0000 } as const;
/** Address range `[lo, hi]` (both inclusive) for placing RAM, per uhyve
 * interface version; v3 kernels get v2's range (uhyve 0.9.1 `vm.rs`). */
export const INTERFACE_RANGES: {
  readonly [V in InterfaceVersion]: { readonly lo: number; readonly hi: number };
} = {
  1: { lo: 0x0, hi: 0xbfff_ffff },
  2: V2_RANGE,
  3: V2_RANGE,
};

/** Inputs of {@linkcode chooseLayout} besides the kernel. */
export interface LayoutOptions {
  /** Guest RAM size in bytes. */
  memorySize: number;
  /** Randomise the guest address (PIE kernels only; ignored for EXEC). */
  aslr: boolean;
  /** Source of randomness in `[0, 1)`; defaults to `Math.random`. */
  random?: () => number;
}

/** Where the guest's RAM and kernel are placed. */
export interface Layout {
  /** Guest-physical address of the first byte of RAM. */
  guestAddress: number;
  /** Guest-physical address the kernel image is loaded at. */
  kernelAddress: number;
  /** `kernelAddress + memSize`: the first byte after the kernel image. */
  kernelEnd: number;
  /** ASLR was asked for but the kernel is not relocatable (EXEC): warn the user. */
  aslrIgnored: boolean;
}

/** `n` bytes as `"N MiB"` when whole, else `"N bytes"`. */
function size(n: number): string {
  return n % MIB === 0 ? `${n / MIB} MiB` : `${n} bytes`;
}

/**
 * Chooses the guest RAM base and the kernel address, as uhyve 0.8 does but
 * with clear errors instead of panics (hermit-abi.md §2.1, §1.7):
 * - RAM goes in `[lo, hi − need]` of the interface's range, where
 *   `need = memSize + memorySize + 0x40000`;
 * - PIE + ASLR: a uniform random base there, rounded down to 2 MiB; PIE
 *   without ASLR: `lo`. A PIE kernel goes at `guestAddress + 0x40000`;
 * - EXEC: RAM at `lo`, the kernel at its link address, which must lie in
 *   that range, at least 0x38000 above the start of RAM and wholly in RAM.
 *
 * Unlike uhyve 0.8, the 3–4 GiB gap check excludes 4 GiB itself, so a v2
 * kernel at exactly 4 GiB is accepted.
 * @throws {LayoutError} when a rule is violated; the message names the rule.
 */
export function chooseLayout(
  image: Pick<KernelImage, "kind" | "interfaceVersion" | "firstVaddr" | "memSize">,
  opts: LayoutOptions,
): Layout {
  const { memorySize, aslr } = opts;
  if (!Number.isSafeInteger(memorySize) || memorySize <= 0) {
    throw new LayoutError(`Invalid guest memory size: ${memorySize}`);
  }
  const version = image.interfaceVersion;
  const range = INTERFACE_RANGES[version];
  if (range === undefined) {
    throw new LayoutError(unsupportedInterfaceMessage(version));
  }
  const { lo, hi } = range;
  const need = image.memSize + memorySize + PIE_KERNEL_OFFSET;
  if (need > hi - lo) {
    const room = hi - lo - image.memSize - PIE_KERNEL_OFFSET;
    const most = Math.max(0, Math.floor(room / GUEST_ADDRESS_ALIGN) * 2);
    const where = version === 1
      ? "below 3 GiB for a uhyve interface v1 kernel"
      : `in the uhyve interface v${version} range ${hex(lo)}-${hex(hi)}`;
    throw new LayoutError(
      `Guest memory of ${size(memorySize)} does not fit ${where}; use at most ${most} MiB`,
    );
  }
  const ub = hi - need;

  let guestAddress: number;
  let kernelAddress: number;
  if (image.kind === "pie") {
    guestAddress = lo;
    if (aslr) {
      const x = (opts.random ?? Math.random)();
      const unit = Number.isFinite(x) && x > 0 ? x : 0;
      const pick = Math.min(ub, lo + Math.floor(unit * (ub - lo + 1)));
      guestAddress = pick - (pick % GUEST_ADDRESS_ALIGN);
    }
    kernelAddress = guestAddress + PIE_KERNEL_OFFSET;
  } else {
    guestAddress = lo;
    kernelAddress = image.firstVaddr;
    if (kernelAddress < lo || kernelAddress > ub) {
      throw new LayoutError(
        `Cannot place the fixed-address kernel linked at ${hex(kernelAddress)}: with ` +
          `${size(memorySize)} of guest memory a uhyve interface v${version} kernel must ` +
          `start within ${hex(lo)}-${hex(ub)}`,
      );
    }
    const lowest = guestAddress + MIN_KERNEL_OFFSET;
    if (kernelAddress < lowest) {
      throw new LayoutError(
        `Cannot place the fixed-address kernel linked at ${hex(kernelAddress)}: its boot ` +
          `stack would overlap the page tables; it must be linked at ${hex(lowest)} or higher`,
      );
    }
  }
  const kernelEnd = kernelAddress + image.memSize;
  if (kernelEnd > guestAddress + memorySize) {
    const least = Math.ceil((kernelEnd - guestAddress) / GUEST_ADDRESS_ALIGN) * 2;
    throw new LayoutError(
      `The kernel (${hex(kernelAddress)}-${hex(kernelEnd)}) does not fit in ` +
        `${size(memorySize)} of guest memory at ${hex(guestAddress)}; use at least ${least} MiB`,
    );
  }
  if (guestAddress < PCI_GAP.end && guestAddress + memorySize > PCI_GAP.start) {
    throw new LayoutError(
      `Guest memory ${hex(guestAddress)}-${hex(guestAddress + memorySize)} overlaps the ` +
        `3-4 GiB gap ${hex(PCI_GAP.start)}-${hex(PCI_GAP.end)}`,
    );
  }
  return { guestAddress, kernelAddress, kernelEnd, aslrIgnored: image.kind === "fixed" && aslr };
}

/** Alignment of an initrd's start in guest memory (a 4 KiB page, as uhyve 0.9.1). */
export const INITRD_ALIGN = 0x1000;

/**
 * Places an initrd of `length` bytes (a Hermit image in `--hermit-image-mode
 * internal`) right after the kernel, at the next 4 KiB page, as uhyve 0.9.1
 * does. Returns its guest-physical `[start, end)`, `end` exact.
 * @throws {LayoutError} when it is empty or its pages do not fit in guest RAM
 *   (uhyve panics), naming the memory size that would do.
 */
export function placeInitrd(
  layout: Pick<Layout, "guestAddress" | "kernelEnd">,
  memorySize: number,
  length: number,
): { start: number; end: number } {
  if (!Number.isSafeInteger(length) || length <= 0) {
    throw new LayoutError(`Cannot hand an empty Hermit image to the kernel (${length} bytes)`);
  }
  const start = Math.ceil(layout.kernelEnd / INITRD_ALIGN) * INITRD_ALIGN;
  const end = start + length;
  const pagesEnd = Math.ceil(end / INITRD_ALIGN) * INITRD_ALIGN;
  const ramEnd = layout.guestAddress + memorySize;
  if (pagesEnd > ramEnd) {
    const need = Math.ceil((pagesEnd - layout.guestAddress) / GUEST_ADDRESS_ALIGN) * 2;
    throw new LayoutError(
      `The Hermit image (${size(length)}) does not fit in ${size(memorySize)} of guest memory ` +
        `after the kernel with --hermit-image-mode internal; use -m ${need}MiB or more, or ` +
        "--hermit-image-mode external",
    );
  }
  return { start, end };
}
