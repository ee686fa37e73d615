/**
 * {@linkcode KernelImage} → guest RAM: copies the PT_LOAD segments, applies a
 * PIE kernel's relocations and computes the entry point and TLS block
 * (hermit-abi.md §1.5, §1.6). Pure: writes only through {@linkcode GuestMemory};
 * must not import `kvm.ts`, `libc.ts` or anything doing I/O.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  type KernelImage,
  R_X86_64_64,
  R_X86_64_GLOB_DAT,
  R_X86_64_RELATIVE,
  relocationTypeName,
} from "./elf.ts";
import { ImageFormatError, LayoutError } from "./errors.ts";
import { hex } from "../hex.ts";

/** The kernel's TLS initialisation block, relocated (for boot info). */
export interface TlsInfo {
  /** Guest address of the TLS image (`p_vaddr`, plus the load address for a PIE). */
  start: number;
  /** Size of the initialised part. */
  filesz: number;
  /** Total size of the TLS block. */
  memsz: number;
  /** Alignment of the TLS block. */
  align: number;
}

/** What {@linkcode loadKernel} tells the boot code. */
export interface LoadedKernel {
  /** Guest address of the entry point (`e_entry`, plus the load address for a PIE). */
  entry: number;
  /** The first PT_TLS, relocated, or null (boot info then carries zeros). */
  tls: TlsInfo | null;
  /** Relocation entries processed (weak-undefined ones included); 0 for EXEC. */
  relocationsApplied: number;
}

/**
 * Loads `image` (parsed from `bytes`) into `mem` at guest address
 * `kernelAddress`: each PT_LOAD's `p_filesz` bytes are copied and the rest of
 * its `p_memsz` zeroed; gaps between segments are left alone. For a PIE kernel
 * the relocations are then applied as 8-byte little-endian writes:
 * RELATIVE → `base + addend`, 64/GLOB_DAT → `base + symbol + addend`, and a
 * weak undefined symbol leaves its target alone, which must already be 0.
 *
 * The image's place in `mem` and every segment are checked before any byte
 * is written, and every relocation before its write, so a hostile image can
 * only cause an {@linkcode ImageFormatError} or a {@linkcode LayoutError},
 * never a write outside `[kernelAddress, kernelAddress + memSize)`. After an
 * error the image may be partly loaded; the memory should be discarded.
 * @throws {LayoutError} if the image does not fit in `mem` at `kernelAddress`,
 * or an EXEC kernel is not loaded at its link address.
 * @throws {ImageFormatError} if a segment or relocation is malformed.
 *
 * With `zeroed` (the caller's RAM is freshly mapped, all zero) a segment's
 * tail is zeroed only where an earlier segment's bytes went: the result is
 * the same, and the pages of a large `.bss` stay untouched until the guest
 * uses them (each one the host touches costs a page fault and its zeroing).
 */
export function loadKernel(
  mem: GuestMemory,
  bytes: Uint8Array,
  image: KernelImage,
  kernelAddress: number,
  options: { zeroed?: boolean } = {},
): LoadedKernel {
  const { memSize, firstVaddr } = image;
  const pie = image.kind === "pie";
  if (!(Number.isSafeInteger(firstVaddr) && Number.isSafeInteger(memSize) && memSize >= 0)) {
    throw new ImageFormatError(
      `Malformed kernel image: first vaddr ${firstVaddr} and size ${memSize} must be integers`,
    );
  }
  if (!pie && kernelAddress !== firstVaddr) {
    throw new LayoutError(
      `A fixed-address kernel must be loaded at its link address ${hex(firstVaddr)}, ` +
        `not ${hex(kernelAddress)}`,
    );
  }
  if (!mem.contains(kernelAddress, memSize)) {
    throw new LayoutError(
      `The kernel image ${hex(kernelAddress)}+${hex(memSize)} does not fit in guest memory ` +
        `${hex(mem.base)}-${hex(mem.end)}`,
    );
  }

  for (const [i, s] of image.segments.entries()) {
    const fits = Number.isSafeInteger(s.offset) && Number.isSafeInteger(s.filesz) &&
      s.offset >= 0 && s.filesz >= 0 && s.offset <= bytes.length - s.filesz;
    if (!fits) {
      throw new ImageFormatError(
        `Truncated ELF: the file data of PT_LOAD segment ${i} (${hex(s.offset)}+` +
          `${hex(s.filesz)}) runs past the end of the file (${hex(bytes.length)} bytes)`,
      );
    }
    if (!(s.filesz <= s.memsz)) {
      throw new ImageFormatError(
        `Malformed ELF: PT_LOAD segment ${i} has p_filesz ${hex(s.filesz)} larger than ` +
          `p_memsz ${hex(s.memsz)}`,
      );
    }
    const rel = s.vaddr - firstVaddr;
    const inside = Number.isSafeInteger(s.vaddr) && Number.isSafeInteger(s.memsz) && rel >= 0 &&
      rel <= memSize - s.memsz;
    if (!inside) {
      throw new ImageFormatError(
        `Malformed ELF: PT_LOAD segment ${i} (${hex(s.vaddr)}+${hex(s.memsz)}) lies outside ` +
          `the kernel image ${hex(firstVaddr)}+${hex(memSize)}`,
      );
    }
  }
  const segments = image.segments;
  for (const [i, s] of segments.entries()) {
    const dst = kernelAddress + (s.vaddr - firstVaddr);
    mem.write(dst, bytes.subarray(s.offset, s.offset + s.filesz));
    const tail = { start: dst + s.filesz, end: dst + s.memsz };
    if (options.zeroed !== true) {
      mem.fill(tail.start, tail.end - tail.start, 0);
      continue;
    }
    // Only an earlier segment's file bytes can be non-zero here (a malformed image's overlap).
    for (const earlier of segments.slice(0, i)) {
      const from = kernelAddress + (earlier.vaddr - firstVaddr);
      const start = Math.max(tail.start, from);
      const end = Math.min(tail.end, from + earlier.filesz);
      if (start < end) mem.fill(start, end - start, 0);
    }
  }

  let relocationsApplied = 0;
  if (pie) {
    relocationsApplied = applyRelocations(mem, image, kernelAddress);
  }

  const base = pie ? kernelAddress : 0;
  const tls = image.tls === null ? null : {
    start: image.tls.vaddr + base,
    filesz: image.tls.filesz,
    memsz: image.tls.memsz,
    align: image.tls.align,
  };
  return { entry: image.entry + base, tls, relocationsApplied };
}

/** Applies a PIE kernel's relocations (hermit-abi.md §1.6); returns how many. */
function applyRelocations(mem: GuestMemory, image: KernelImage, kernelAddress: number): number {
  const { memSize, firstVaddr } = image;
  let applied = 0;
  for (const rel of image.relocations) {
    const imageOffset = rel.offset - firstVaddr;
    if (!(Number.isSafeInteger(imageOffset) && imageOffset >= 0 && imageOffset <= memSize - 8)) {
      throw new ImageFormatError(
        `Relocation at offset ${hex(rel.offset)} lies outside the kernel image ` +
          `(${hex(firstVaddr)}-${hex(firstVaddr + memSize)})`,
      );
    }
    const at = kernelAddress + imageOffset;
    let value: number;
    if (rel.type === R_X86_64_RELATIVE) {
      value = kernelAddress + rel.addend;
    } else if (rel.type === R_X86_64_64 || rel.type === R_X86_64_GLOB_DAT) {
      if (rel.type === R_X86_64_GLOB_DAT && rel.addend !== 0) {
        throw new ImageFormatError(
          `Malformed relocation at offset ${hex(rel.offset)}: R_X86_64_GLOB_DAT with a ` +
            `non-zero addend (${rel.addend})`,
        );
      }
      if (rel.weakUndefined) {
        if (mem.readU32(at) !== 0 || mem.readU32(at + 4) !== 0) {
          throw new ImageFormatError(
            `Relocation at offset ${hex(rel.offset)} refers to a weak undefined symbol, but ` +
              `its 8 bytes in the image are not zero`,
          );
        }
        applied++;
        continue;
      }
      value = kernelAddress + rel.symbolValue + rel.addend;
    } else {
      throw new ImageFormatError(
        `Unsupported relocation ${relocationTypeName(rel.type)} at offset ` +
          `${hex(rel.offset)}: dhyve applies only R_X86_64_RELATIVE, R_X86_64_64 and ` +
          `R_X86_64_GLOB_DAT`,
      );
    }
    if (!Number.isSafeInteger(value)) {
      throw new ImageFormatError(
        `Relocation at offset ${hex(rel.offset)} yields a value outside the range dhyve ` +
          `handles (±(2^53 - 1))`,
      );
    }
    mem.writeU64(at, value);
    applied++;
  }
  return applied;
}
