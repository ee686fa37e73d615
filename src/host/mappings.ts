/**
 * Host memory mappings: the anonymous mapping that backs guest RAM, and
 * views of mappings made elsewhere (`kvm_run`, a Worker's view of guest RAM)
 * as ArrayBuffers. The only place that turns an address into a buffer.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { KvmError } from "../kvm/errors.ts";
import {
  errno,
  libc,
  MADV_HUGEPAGE,
  MADV_MERGEABLE,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";

/** Maps `[ptr, ptr + size)` of host memory as an ArrayBuffer (no copy). */
export function viewOf(address: number, size: number): ArrayBuffer {
  const ptr = Deno.UnsafePointer.create(BigInt(address));
  if (ptr === null) throw new KvmError("map a null pointer", ERRNO.EFAULT);
  // UNSAFE: the caller keeps the mapping alive for as long as the view is used.
  return Deno.UnsafePointerView.getArrayBuffer(ptr, size);
}

/** The address an mmap returned, or a KvmError naming `op` for MAP_FAILED. */
export function mmapResult(result: number | bigint, op: string): number {
  // A successful mapping lies below 2^47; MAP_FAILED is (void *)-1.
  if (BigInt(result) === MAP_FAILED) throw new KvmError(op, errno());
  return Number(result);
}

/**
 * Host memory at `address` viewed piece by piece (a `RamSource` for
 * `GuestMemory`): guest RAM mapped here, or mapped by the main thread for a
 * Worker. The caller keeps the memory mapped while views are used.
 */
export class HostRam {
  /** Host virtual address of the first byte. */
  readonly address: number;
  /** Size in bytes. */
  readonly size: number;

  /** Views `size` bytes of host memory at `address`. */
  constructor(address: number, size: number) {
    this.address = address;
    this.size = size;
  }

  /** An ArrayBuffer of the `length` bytes at `offset` (checked against the size). */
  view(offset: number, length: number): ArrayBuffer {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`View ${offset}+${length} outside host memory of ${this.size} bytes`);
    }
    return viewOf(this.address + offset, length);
  }
}

/** An anonymous host mapping (guest RAM), viewed piece by piece. */
export class HostMapping extends HostRam {
  #mapped = true;

  /** Unmaps the region. Views over it must not be used afterwards. */
  unmap(): void {
    if (!this.#mapped) return;
    this.#mapped = false;
    libc().munmap(this.address, this.size);
  }
}

/** Options for {@linkcode mapGuestMemory}. */
export interface GuestMemoryOptions {
  /** madvise(MADV_HUGEPAGE): back guest RAM with transparent huge pages. */
  thp?: boolean;
  /** madvise(MADV_MERGEABLE): let KSM merge identical pages. */
  ksm?: boolean;
}

/**
 * Maps `size` bytes of private, anonymous, lazily-allocated memory for guest
 * RAM. Nothing is touched, so the cost does not grow with `size`.
 */
export function mapGuestMemory(size: number, options: GuestMemoryOptions = {}): HostMapping {
  const address = mmapResult(
    libc().mmap(
      0,
      size,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
      -1,
      0n,
    ),
    `map ${size} bytes of guest memory`,
  );
  if (options.thp && libc().madvise(address, size, MADV_HUGEPAGE) < 0) {
    const e = errno();
    libc().munmap(address, size);
    throw new KvmError("enable transparent huge pages (madvise MADV_HUGEPAGE)", e);
  }
  if (options.ksm && libc().madvise(address, size, MADV_MERGEABLE) < 0) {
    const e = errno();
    libc().munmap(address, size);
    throw new KvmError("enable KSM (madvise MADV_MERGEABLE)", e);
  }
  return new HostMapping(address, size);
}
