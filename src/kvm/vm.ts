/**
 * A VM fd: guest memory slots, the in-kernel interrupt controller and PIT,
 * interrupt routing, irqfd/ioeventfd, capabilities, and vCPU creation.
 * @module
 */

import {
  CAP,
  KVM_ENABLE_CAP_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
} from "../abi/kvm.ts";
import { KVM_IOCTL } from "../abi/ioctl.ts";
import { errno, libc } from "../host/libc.ts";
import { check, closeFd, KvmError } from "./errors.ts";
import type { Kvm } from "./system.ts";
import { VcpuFd } from "./vcpu.ts";

/** A memory slot: `size` bytes of host memory at `hostAddress`, seen by the guest at `guestPhysAddr`. */
export interface MemoryRegion {
  /** The slot's number. */
  slot: number;
  /** Guest-physical address of the first byte. */
  guestPhysAddr: number;
  /** Length in bytes. */
  size: number;
  /** Host address of the first byte. */
  hostAddress: number;
}

/** `struct kvm_userspace_memory_region` for `region` (no flags). */
function memoryRegionStruct(region: MemoryRegion): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(KVM_USERSPACE_MEMORY_REGION_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(0, region.slot, true);
  view.setUint32(4, 0, true);
  view.setBigUint64(8, BigInt(region.guestPhysAddr), true);
  view.setBigUint64(16, BigInt(region.size), true);
  view.setBigUint64(24, BigInt(region.hostAddress), true);
  return buf;
}

/** A VM fd. */
export class VmFd implements Disposable {
  /** The open file descriptor. */
  readonly fd: number;
  /** The system fd it came from. */
  readonly kvm: Kvm;
  #closed = false;

  /** Wraps an fd returned by KVM_CREATE_VM. */
  constructor(fd: number, kvm: Kvm) {
    this.fd = fd;
    this.kvm = kvm;
  }

  /** KVM_CHECK_EXTENSION on the VM fd. */
  checkExtension(cap: number): number {
    return Math.max(0, libc().ioctl_val(this.fd, KVM_IOCTL.CHECK_EXTENSION, cap));
  }

  /** KVM_SET_USER_MEMORY_REGION: maps host memory at a guest-physical address. */
  setUserMemoryRegion(region: MemoryRegion): void {
    check(
      libc().ioctl_buf(this.fd, KVM_IOCTL.SET_USER_MEMORY_REGION, memoryRegionStruct(region)),
      `map guest memory at 0x${region.guestPhysAddr.toString(16)}`,
    );
  }

  /**
   * {@linkcode VmFd.setUserMemoryRegion} on Deno's blocking thread pool:
   * the Promise settles when the slot is in place, and this thread goes on
   * meanwhile. Worth it for a large slot: KVM allocates its per-page
   * metadata then (~2.3 ms for 4 GiB on kvm_pvm), and with KVM's own
   * irqchip the change first waits for an SRCU grace period. Rejects with
   * the same {@linkcode KvmError} as the blocking call (which it repeats on
   * failure, for errno). Close the VM only after it settled.
   */
  async setUserMemoryRegionAsync(region: MemoryRegion): Promise<void> {
    const struct = memoryRegionStruct(region);
    const request = BigInt(KVM_IOCTL.SET_USER_MEMORY_REGION);
    if (await libc().ioctl_async(this.fd, request, struct) === -1) {
      this.setUserMemoryRegion(region); // the same call again: errno is this thread's now
    }
  }

  /**
   * KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP): the LAPICs in KVM, no PIC, and
   * the IOAPIC left to userspace with `pins` routes reserved for it. Before
   * any vCPU exists.
   */
  enableSplitIrqchip(pins: number): void {
    const err = this.enableCap(CAP.SPLIT_IRQCHIP, [pins]);
    if (err !== 0) throw new KvmError("split the interrupt controller", err);
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and LAPIC. */
  createIrqchip(): void {
    check(
      libc().ioctl_val(this.fd, KVM_IOCTL.CREATE_IRQCHIP, 0),
      "create the interrupt controller",
    );
  }

  /**
   * KVM_IOEVENTFD: a guest write of any width to `address` (MMIO) signals
   * `eventfd` inside the kernel, without an exit to dhyve. Returns 0 or the
   * errno (callers fall back to handling the write as an exit).
   */
  ioeventfd(address: number, eventfd: number): number {
    const buf = new Uint8Array(64);
    const view = new DataView(buf.buffer);
    view.setBigUint64(8, BigInt(address), true); // addr; datamatch unused
    view.setUint32(16, 0, true); // len 0: any width
    view.setInt32(20, eventfd, true);
    return libc().ioctl_buf(this.fd, KVM_IOCTL.IOEVENTFD, buf) < 0 ? errno() : 0;
  }

  /**
   * KVM_SET_GSI_ROUTING with KVM's default x86 table (GSI n → IOAPIC pin n
   * for 0–23, and the PIC for 0–15) except that GSIs in `ioapicOnly` reach the
   * IOAPIC alone. A device interrupt then never reaches the guest's 8259 PIC,
   * which a guest that only programs the IOAPIC leaves pointing at CPU
   * exception vectors (uhyve routes its network interrupt the same way).
   */
  setIoapicOnlyRouting(ioapicOnly: readonly number[]): void {
    const entries: [number, number, number][] = []; // [gsi, irqchip, pin]
    for (let gsi = 0; gsi < 24; gsi++) {
      entries.push([gsi, 2, gsi]); // KVM_IRQCHIP_IOAPIC
      if (gsi < 16 && !ioapicOnly.includes(gsi)) {
        entries.push([gsi, gsi < 8 ? 0 : 1, gsi % 8]); // PIC master / slave
      }
    }
    const buf = new Uint8Array(8 + 48 * entries.length);
    const view = new DataView(buf.buffer);
    view.setUint32(0, entries.length, true);
    entries.forEach(([gsi, chip, pin], i) => {
      const e = 8 + 48 * i;
      view.setUint32(e, gsi, true);
      view.setUint32(e + 4, 1, true); // KVM_IRQ_ROUTING_IRQCHIP
      view.setUint32(e + 16, chip, true);
      view.setUint32(e + 20, pin, true);
    });
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.SET_GSI_ROUTING, buf), "set the interrupt routing");
  }

  /**
   * KVM_IRQFD: a write to `eventfd` raises GSI `gsi` (with the default
   * routing, IOAPIC pin `gsi`) inside the kernel.
   */
  irqfd(eventfd: number, gsi: number): void {
    const buf = new Uint8Array(32);
    const view = new DataView(buf.buffer);
    view.setUint32(0, eventfd, true);
    view.setUint32(4, gsi, true);
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.IRQFD, buf), `route an eventfd to IRQ ${gsi}`);
  }

  /** KVM_CREATE_PIT2 with a zeroed configuration. */
  createPit2(): void {
    const buf = new Uint8Array(KVM_PIT_CONFIG_SIZE);
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.CREATE_PIT2, buf), "create the PIT");
  }

  /** KVM_ENABLE_CAP; returns 0 on success or the errno (callers decide). */
  enableCap(cap: number, args: readonly number[] = []): number {
    const buf = new Uint8Array(KVM_ENABLE_CAP_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint32(0, cap, true);
    args.forEach((a, i) => view.setBigUint64(8 + 8 * i, BigInt(a), true));
    return libc().ioctl_buf(this.fd, KVM_IOCTL.ENABLE_CAP, buf) < 0 ? errno() : 0;
  }

  /** KVM_CREATE_VCPU and the mapping of its `kvm_run`. */
  createVcpu(id: number): VcpuFd {
    const fd = check(libc().ioctl_val(this.fd, KVM_IOCTL.CREATE_VCPU, id), `create vCPU ${id}`);
    return new VcpuFd(fd, id, this.kvm.vcpuMmapSize());
  }

  /** Same as {@linkcode VmFd.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the fd (once: a second call does nothing, so no later fd of that number is hit). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.fd);
  }
}
