/**
 * The KVM boundary: typed wrappers for every ioctl dhyve uses, one class per
 * kind of fd (`Kvm`, `VmFd`, `VcpuFd`), plus the anonymous mapping that backs
 * guest RAM. It returns numbers and views, never raw pointers, and turns a
 * failed call into a {@linkcode KvmError} naming the operation and the errno.
 *
 * Only `src/vcpu/`, `src/vm.ts` and the GDB stub's KVM side
 * (`src/gdb/kvm_target.ts`, `src/gdb/run.ts`) import this module; it is the only
 * importer of `src/libc.ts`.
 * @module
 */

import {
  CAP,
  KVM_CPUID2_HEADER_SIZE,
  KVM_CPUID_ENTRY2_SIZE,
  KVM_ENABLE_CAP_SIZE,
  KVM_GUEST_DEBUG_SIZE,
  KVM_MSR_ENTRY_SIZE,
  KVM_MSR_LIST_HEADER_SIZE,
  KVM_MSRS_HEADER_SIZE,
  KVM_PIT_CONFIG_SIZE,
  KVM_REGS_SIZE,
  KVM_SREGS_SIZE,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
  MP_STATE_RUNNABLE,
  type RegName,
  REGS,
  RUN,
  SEGMENT,
  SYNC_REGS,
} from "./abi/kvm.ts";
import { KVM_IOCTL } from "./abi/ioctl.ts";
import type { CpuidEntry } from "./boot/cpuid.ts";
import type { MsrEntry } from "./boot/registers.ts";
import { ERRNO, errnoName } from "./errno.ts";
import {
  cString,
  errno,
  libc,
  MADV_HUGEPAGE,
  MADV_MERGEABLE,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";

/** KVM_RUN as a bigint, made once: see `ioctl_big` in libc.ts (no deopts on the hot path). */
const KVM_RUN_REQUEST = BigInt(KVM_IOCTL.RUN);

/** A failed KVM or memory call: which operation, and the errno it returned. */
export class KvmError extends Error {
  /** The operation that failed, e.g. "create VM". */
  readonly op: string;
  /** The errno value. */
  readonly errno: number;

  /** Builds "Cannot <op>: <ENAME> (<n>)". */
  constructor(op: string, errnoValue: number, options?: ErrorOptions) {
    super(`Cannot ${op}: ${errnoName(errnoValue)} (${errnoValue})`, options);
    this.op = op;
    this.errno = errnoValue;
  }
  /** Error name. */
  override name = "KvmError";
}

/** `/dev/kvm` cannot be used; the message says why and how to fix it. */
export class KvmUnavailableError extends Error {
  /** The errno from open(2). */
  readonly errno: number;
  /** Builds the error from the errno of the failed open. */
  constructor(path: string, errnoValue: number) {
    super(kvmUnavailableMessage(path, errnoValue));
    this.errno = errnoValue;
  }
  /** Error name. */
  override name = "KvmUnavailableError";
}

function kvmUnavailableMessage(path: string, errnoValue: number): string {
  switch (errnoValue) {
    case ERRNO.ENOENT:
      return `${path} does not exist: enable virtualization and load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd)";
    case ERRNO.EACCES:
    case ERRNO.EPERM:
      return `Permission denied opening ${path}: add your user to the kvm group ` +
        "(sudo usermod -aG kvm $USER, then log in again) or run as root";
    case ERRNO.ENXIO:
    case ERRNO.ENODEV:
      return `${path} has no KVM driver behind it: load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd)";
    default:
      return `Cannot open ${path}: ${errnoName(errnoValue)} (${errnoValue})`;
  }
}

function check(result: number, op: string): number {
  if (result < 0) throw new KvmError(op, errno());
  return result;
}

function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** Maps `[ptr, ptr + size)` of host memory as an ArrayBuffer (no copy). */
function viewOf(address: number, size: number): ArrayBuffer {
  const ptr = Deno.UnsafePointer.create(BigInt(address));
  if (ptr === null) throw new KvmError("map a null pointer", ERRNO.EFAULT);
  // UNSAFE: the caller keeps the mapping alive for as long as the view is used.
  return Deno.UnsafePointerView.getArrayBuffer(ptr, size);
}

function mmapResult(result: number | bigint, op: string): number {
  // A successful mapping lies below 2^47; MAP_FAILED is (void *)-1.
  if (BigInt(result) === MAP_FAILED) throw new KvmError(op, errno());
  return Number(result);
}

/** An anonymous host mapping, viewed as an ArrayBuffer. */
export class HostMapping {
  /** Host virtual address of the first byte. */
  readonly address: number;
  /** Size in bytes. */
  readonly size: number;
  /** The mapped bytes; invalid after {@linkcode HostMapping.unmap}. */
  readonly buffer: ArrayBuffer;
  #mapped = true;

  /** Wraps a mapping made by {@linkcode mapGuestMemory}. */
  constructor(address: number, size: number) {
    this.address = address;
    this.size = size;
    this.buffer = viewOf(address, size);
  }

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

export type { CpuidEntry, MsrEntry };

/** The system fd: `/dev/kvm` itself. */
export class Kvm {
  /** The open file descriptor. */
  readonly fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Opens `/dev/kvm` (or `path`).
   * @throws {KvmUnavailableError} with a message that says how to fix it.
   */
  static open(path = "/dev/kvm"): Kvm {
    const fd = libc().open(cString(path), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) throw new KvmUnavailableError(path, errno());
    return new Kvm(fd);
  }

  /** KVM_GET_API_VERSION. */
  apiVersion(): number {
    return check(
      libc().ioctl_val(this.fd, KVM_IOCTL.GET_API_VERSION, 0),
      "get the KVM API version",
    );
  }

  /** KVM_CHECK_EXTENSION: 0 when unsupported, else a capability-specific value. */
  checkExtension(cap: number): number {
    return Math.max(0, libc().ioctl_val(this.fd, KVM_IOCTL.CHECK_EXTENSION, cap));
  }

  /** Size of the per-vCPU `kvm_run` mapping. */
  vcpuMmapSize(): number {
    return check(
      libc().ioctl_val(this.fd, KVM_IOCTL.GET_VCPU_MMAP_SIZE, 0),
      "get the vCPU mmap size",
    );
  }

  /** KVM_GET_SUPPORTED_CPUID: every leaf KVM can expose. */
  supportedCpuid(): CpuidEntry[] {
    const max = 256;
    const buf = new Uint8Array(KVM_CPUID2_HEADER_SIZE + max * KVM_CPUID_ENTRY2_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint32(0, max, true);
    check(
      libc().ioctl_buf(this.fd, KVM_IOCTL.GET_SUPPORTED_CPUID, buf),
      "get the supported CPUID leaves",
    );
    const n = view.getUint32(0, true);
    const entries: CpuidEntry[] = [];
    for (let i = 0; i < n; i++) {
      const o = KVM_CPUID2_HEADER_SIZE + i * KVM_CPUID_ENTRY2_SIZE;
      entries.push({
        function: view.getUint32(o, true),
        index: view.getUint32(o + 4, true),
        flags: view.getUint32(o + 8, true),
        eax: view.getUint32(o + 12, true),
        ebx: view.getUint32(o + 16, true),
        ecx: view.getUint32(o + 20, true),
        edx: view.getUint32(o + 24, true),
      });
    }
    return entries;
  }

  /** KVM_GET_MSR_INDEX_LIST. */
  msrIndexList(): number[] {
    const max = 1024;
    const buf = new Uint8Array(KVM_MSR_LIST_HEADER_SIZE + 4 * max);
    const view = new DataView(buf.buffer);
    view.setUint32(0, max, true);
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.GET_MSR_INDEX_LIST, buf), "get the MSR index list");
    const n = view.getUint32(0, true);
    return Array.from({ length: n }, (_, i) => view.getUint32(4 + 4 * i, true));
  }

  /** KVM_CREATE_VM. */
  createVm(): VmFd {
    const fd = check(libc().ioctl_val(this.fd, KVM_IOCTL.CREATE_VM, 0), "create a VM");
    return new VmFd(fd, this);
  }

  /** Closes the fd. */
  close(): void {
    closeFd(this.fd);
  }
}

/** A VM fd. */
export class VmFd {
  /** The open file descriptor. */
  readonly fd: number;
  /** The system fd it came from. */
  readonly kvm: Kvm;

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
  setUserMemoryRegion(
    region: { slot: number; guestPhysAddr: number; size: number; hostAddress: number },
  ): void {
    const buf = new Uint8Array(KVM_USERSPACE_MEMORY_REGION_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint32(0, region.slot, true);
    view.setUint32(4, 0, true);
    view.setBigUint64(8, BigInt(region.guestPhysAddr), true);
    view.setBigUint64(16, BigInt(region.size), true);
    view.setBigUint64(24, BigInt(region.hostAddress), true);
    check(
      libc().ioctl_buf(this.fd, KVM_IOCTL.SET_USER_MEMORY_REGION, buf),
      `map guest memory at 0x${region.guestPhysAddr.toString(16)}`,
    );
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

  /** Closes the fd. */
  close(): void {
    closeFd(this.fd);
  }
}

/** A segment register as `struct kvm_segment` holds it. */
export interface Segment {
  /** Base address. */
  base: number;
  /** Limit. */
  limit: number;
  /** Selector. */
  selector: number;
  /** Type field. */
  type: number;
  /** Present bit. */
  present: number;
  /** Privilege level. */
  dpl: number;
  /** Default operand size. */
  db: number;
  /** Code/data (1) or system (0). */
  s: number;
  /** 64-bit code. */
  l: number;
  /** Granularity. */
  g: number;
  /** Available bit. */
  avl: number;
}

/** A reusable `struct kvm_regs` buffer. */
export class Regs {
  /** The raw bytes passed to KVM. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_REGS_SIZE);
  readonly #view = new DataView(this.bytes.buffer);

  /** A register as a number (exact below 2^53). */
  get(name: RegName): number {
    const o = REGS[name];
    return this.#view.getUint32(o, true) + this.#view.getUint32(o + 4, true) * 0x1_0000_0000;
  }
  /** A register exactly, as a bigint. */
  getBig(name: RegName): bigint {
    return this.#view.getBigUint64(REGS[name], true);
  }
  /** Sets a register from a number (negative values in two's complement). */
  set(name: RegName, value: number): void {
    this.#view.setBigUint64(REGS[name], BigInt.asUintN(64, BigInt(value)), true);
  }
  /** Sets a register from a bigint. */
  setBig(name: RegName, value: bigint): void {
    this.#view.setBigUint64(REGS[name], BigInt.asUintN(64, value), true);
  }
}

/** A reusable `struct kvm_sregs` buffer. */
export class Sregs {
  /** The raw bytes passed to KVM. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_SREGS_SIZE);
  readonly #view = new DataView(this.bytes.buffer);

  /** A 64-bit field at `offset` (see `SREGS`) as a number. */
  getU64(offset: number): number {
    return Number(this.#view.getBigUint64(offset, true));
  }
  /** Sets a 64-bit field at `offset`. */
  setU64(offset: number, value: number): void {
    this.#view.setBigUint64(offset, BigInt(value), true);
  }
  /** A descriptor table register (`kvm_dtable`) at `offset`. */
  getDtable(offset: number): { base: number; limit: number } {
    return { base: this.getU64(offset), limit: this.#view.getUint16(offset + 8, true) };
  }
  /** Sets a descriptor table register at `offset`. */
  setDtable(offset: number, table: { base: number; limit: number }): void {
    this.setU64(offset, table.base);
    this.#view.setUint16(offset + 8, table.limit, true);
  }
  /** Sets a segment register at `offset`. */
  setSegment(offset: number, seg: Segment): void {
    const v = this.#view;
    this.setU64(offset + SEGMENT.base, seg.base);
    v.setUint32(offset + SEGMENT.limit, seg.limit >>> 0, true);
    v.setUint16(offset + SEGMENT.selector, seg.selector, true);
    v.setUint8(offset + SEGMENT.type, seg.type);
    v.setUint8(offset + SEGMENT.present, seg.present);
    v.setUint8(offset + SEGMENT.dpl, seg.dpl);
    v.setUint8(offset + SEGMENT.db, seg.db);
    v.setUint8(offset + SEGMENT.s, seg.s);
    v.setUint8(offset + SEGMENT.l, seg.l);
    v.setUint8(offset + SEGMENT.g, seg.g);
    v.setUint8(offset + SEGMENT.avl, seg.avl);
    v.setUint8(offset + SEGMENT.unusable, 0);
  }
}

/**
 * A vCPU fd with its mapped `kvm_run`. {@linkcode VcpuFd.run} is the hot path:
 * one synchronous ioctl, no allocation, errors returned as an errno.
 */
export class VcpuFd {
  /** The open file descriptor. */
  readonly fd: number;
  /** The vCPU id (0 is the boot CPU). */
  readonly id: number;
  /** `kvm_run`, mapped once; read exits through this view. */
  readonly runView: DataView;
  /** The same `kvm_run` as bytes (for I/O data). */
  readonly runBytes: Uint8Array;
  #syncRegs = false;
  readonly #runMapping: { address: number; size: number };
  readonly #ioctl: (fd: number, request: bigint, arg: bigint) => number;
  readonly #xcrs = new Uint8Array(KVM_XCRS_SIZE);
  readonly #guestDebug = new Uint8Array(KVM_GUEST_DEBUG_SIZE);

  readonly #ownsMapping: boolean;

  /**
   * Wraps an fd from KVM_CREATE_VCPU and maps its `kvm_run`; or, with
   * `runAddress`, uses a mapping another thread made (a vCPU Worker), which
   * {@linkcode VcpuFd.close} then leaves alone.
   */
  constructor(fd: number, id: number, runSize: number, runAddress?: number) {
    this.fd = fd;
    this.id = id;
    this.#ownsMapping = runAddress === undefined;
    const address = runAddress ?? mmapResult(
      libc().mmap(0, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n),
      `map kvm_run of vCPU ${id}`,
    );
    this.#runMapping = { address, size: runSize };
    const buffer = viewOf(address, runSize);
    this.runView = new DataView(buffer);
    this.runBytes = new Uint8Array(buffer);
    this.#ioctl = libc().ioctl_big;
  }

  /**
   * Asks KVM to copy the general registers into `kvm_run` on every exit, so
   * that RDI is a plain read. Returns whether it is in effect.
   */
  enableSyncRegs(supported: boolean): boolean {
    if (!supported) return false;
    this.runView.setBigUint64(RUN.validRegs, BigInt(SYNC_REGS.REGS), true);
    this.#syncRegs = true;
    return true;
  }

  /** True when KVM copies the general registers into `kvm_run` on every exit. */
  get syncRegs(): boolean {
    return this.#syncRegs;
  }

  /** KVM_RUN once. Returns 0, or the errno (EINTR when kicked). No allocation. */
  run(): number {
    return this.#ioctl(this.fd, KVM_RUN_REQUEST, 0n) < 0 ? errno() : 0;
  }

  /** KVM_GET_REGS into `regs`. */
  getRegs(regs: Regs): void {
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.GET_REGS, regs.bytes), "read the vCPU registers");
  }
  /** KVM_SET_REGS from `regs`. */
  setRegs(regs: Regs): void {
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.SET_REGS, regs.bytes), "set the vCPU registers");
  }
  /** KVM_GET_SREGS into `sregs`. */
  getSregs(sregs: Sregs): void {
    check(
      libc().ioctl_buf(this.fd, KVM_IOCTL.GET_SREGS, sregs.bytes),
      "read the vCPU special registers",
    );
  }
  /** KVM_SET_SREGS from `sregs`. */
  setSregs(sregs: Sregs): void {
    check(
      libc().ioctl_buf(this.fd, KVM_IOCTL.SET_SREGS, sregs.bytes),
      "set the vCPU special registers",
    );
  }

  /** KVM_SET_CPUID2. */
  setCpuid(entries: readonly CpuidEntry[]): void {
    const buf = new Uint8Array(KVM_CPUID2_HEADER_SIZE + entries.length * KVM_CPUID_ENTRY2_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint32(0, entries.length, true);
    entries.forEach((e, i) => {
      const o = KVM_CPUID2_HEADER_SIZE + i * KVM_CPUID_ENTRY2_SIZE;
      view.setUint32(o, e.function >>> 0, true);
      view.setUint32(o + 4, e.index >>> 0, true);
      view.setUint32(o + 8, e.flags >>> 0, true);
      view.setUint32(o + 12, e.eax >>> 0, true);
      view.setUint32(o + 16, e.ebx >>> 0, true);
      view.setUint32(o + 20, e.ecx >>> 0, true);
      view.setUint32(o + 24, e.edx >>> 0, true);
    });
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.SET_CPUID2, buf), "set the vCPU CPUID");
  }

  /** KVM_SET_MSRS; returns how many entries KVM accepted (it stops at the first bad one). */
  setMsrs(entries: readonly MsrEntry[]): number {
    const buf = new Uint8Array(KVM_MSRS_HEADER_SIZE + entries.length * KVM_MSR_ENTRY_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint32(0, entries.length, true);
    entries.forEach((e, i) => {
      const o = KVM_MSRS_HEADER_SIZE + i * KVM_MSR_ENTRY_SIZE;
      view.setUint32(o, e.index, true);
      view.setBigUint64(o + 8, BigInt(e.data), true);
    });
    return check(libc().ioctl_buf(this.fd, KVM_IOCTL.SET_MSRS, buf), "set the vCPU MSRs");
  }

  /** KVM_SET_MP_STATE(RUNNABLE): the vCPU starts without waiting for INIT/SIPI. */
  setRunnable(): void {
    const buf = new Uint8Array(4);
    new DataView(buf.buffer).setUint32(0, MP_STATE_RUNNABLE, true);
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.SET_MP_STATE, buf), "make the vCPU runnable");
  }

  /** KVM_GET_TSC_KHZ, or null when KVM cannot tell. */
  tscKhz(): number | null {
    const khz = libc().ioctl_val(this.fd, KVM_IOCTL.GET_TSC_KHZ, 0);
    return khz > 0 ? khz : null;
  }

  /** XCR0 from KVM_GET_XCRS, or null when KVM does not report it. */
  xcr0(): bigint | null {
    const buf = this.#xcrs;
    if (libc().ioctl_buf(this.fd, KVM_IOCTL.GET_XCRS, buf) < 0) return null;
    const view = new DataView(buf.buffer);
    const n = view.getUint32(0, true);
    for (let i = 0; i < n && i < 16; i++) {
      const o = 8 + 16 * i;
      if (view.getUint32(o, true) === 0) return view.getBigUint64(o + 8, true);
    }
    return null;
  }

  /** KVM_GET_XSAVE into `buf` (4096 bytes, standard XSAVE format). */
  getXsave(buf: Uint8Array<ArrayBuffer>): void {
    if (buf.length < KVM_XSAVE_SIZE) {
      throw new RangeError("XSAVE buffer is smaller than 4096 bytes");
    }
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.GET_XSAVE, buf), "read the vCPU FPU/SSE state");
  }

  /** KVM_SET_XSAVE from `buf`; returns 0 or the errno. */
  setXsave(buf: Uint8Array<ArrayBuffer>): number {
    if (buf.length < KVM_XSAVE_SIZE) {
      throw new RangeError("XSAVE buffer is smaller than 4096 bytes");
    }
    return libc().ioctl_buf(this.fd, KVM_IOCTL.SET_XSAVE, buf) < 0 ? errno() : 0;
  }

  /**
   * Injects exception `vector` (with an error code when given) into the
   * guest, delivered when it next runs. Returns 0 or the errno.
   */
  injectException(vector: number, errorCode?: number): number {
    const buf = new Uint8Array(KVM_VCPU_EVENTS_SIZE);
    if (libc().ioctl_buf(this.fd, KVM_IOCTL.GET_VCPU_EVENTS, buf) < 0) return errno();
    const view = new DataView(buf.buffer);
    view.setUint8(0, 1); // exception.injected
    view.setUint8(1, vector);
    view.setUint8(2, errorCode === undefined ? 0 : 1);
    view.setUint8(3, 0); // pending
    view.setUint32(4, errorCode ?? 0, true);
    view.setUint32(20, 0, true); // flags: leave the other event fields alone
    return libc().ioctl_buf(this.fd, KVM_IOCTL.SET_VCPU_EVENTS, buf) < 0 ? errno() : 0;
  }

  /** Sets XCR0 with KVM_SET_XCRS; returns 0 or the errno. */
  setXcr0(value: bigint): number {
    const buf = this.#xcrs;
    buf.fill(0);
    const view = new DataView(buf.buffer);
    view.setUint32(0, 1, true);
    view.setUint32(8, 0, true);
    view.setBigUint64(16, value, true);
    return libc().ioctl_buf(this.fd, KVM_IOCTL.SET_XCRS, buf) < 0 ? errno() : 0;
  }

  /**
   * KVM_SET_GUEST_DEBUG: `control` is a set of `GUESTDBG` flags (0 turns
   * debugging off), `debugRegs` holds DR0-DR3 then DR6 and DR7 (missing
   * entries are 0). Returns 0 or the errno.
   */
  setGuestDebug(control: number, debugRegs: readonly bigint[] = []): number {
    const buf = this.#guestDebug;
    buf.fill(0);
    const view = new DataView(buf.buffer);
    view.setUint32(0, control >>> 0, true);
    // debugreg[8] starts at offset 8: DR0-DR3 in slots 0-3, DR6 in 6, DR7 in 7.
    const slots = [0, 1, 2, 3, 6, 7];
    for (let i = 0; i < debugRegs.length && i < slots.length; i++) {
      view.setBigUint64(8 + 8 * slots[i]!, BigInt.asUintN(64, debugRegs[i]!), true);
    }
    return libc().ioctl_buf(this.fd, KVM_IOCTL.SET_GUEST_DEBUG, buf) < 0 ? errno() : 0;
  }

  /**
   * Applies general registers that wait in `kvm_run`'s sync-regs area for
   * the next KVM_RUN (`kvm_dirty_regs`, as the SSE fallback leaves them)
   * with KVM_SET_REGS now, so that KVM_GET_REGS and KVM_SET_REGS see and
   * keep the current values (a debugger reads them between runs).
   */
  flushDirtyRegs(): void {
    const dirty = this.runView.getUint32(RUN.dirtyRegs, true);
    if ((dirty & SYNC_REGS.REGS) === 0) return;
    const regs = new Regs();
    regs.bytes.set(this.runBytes.subarray(RUN.syncRegs, RUN.syncRegs + KVM_REGS_SIZE));
    this.setRegs(regs);
    this.runView.setUint32(RUN.dirtyRegs, dirty & ~SYNC_REGS.REGS, true);
  }

  /** Requests that the next (or current) KVM_RUN return at once with EINTR. */
  setImmediateExit(on: boolean): void {
    this.runView.setUint8(RUN.immediateExit, on ? 1 : 0);
  }

  /** Host address and size of the `kvm_run` mapping (for a vCPU Worker). */
  get runMapping(): { address: number; size: number } {
    return { ...this.#runMapping };
  }

  /** Unmaps `kvm_run` and closes the fd (only the thread that created them). */
  close(): void {
    if (!this.#ownsMapping) return;
    libc().munmap(this.#runMapping.address, this.#runMapping.size);
    closeFd(this.fd);
  }
}

/** Capabilities dhyve requires, checked up front with a clear message. */
export const REQUIRED_CAPS: readonly { cap: number; name: string }[] = [
  { cap: CAP.USER_MEMORY, name: "KVM_CAP_USER_MEMORY" },
  { cap: CAP.IRQCHIP, name: "KVM_CAP_IRQCHIP" },
  { cap: CAP.MP_STATE, name: "KVM_CAP_MP_STATE" },
  { cap: CAP.EXT_CPUID, name: "KVM_CAP_EXT_CPUID" },
];

/** libc's soname (permission hints) and the error when no libc can be loaded. */
export { LIBC_SONAME, LibcLoadError } from "./libc.ts";

const SYS_GETTID = 186;
const SYS_TGKILL = 234;

/** The kernel thread id of the calling thread (for kicking it out of KVM_RUN). */
export function currentThreadId(): number {
  return Number(libc().syscall_val(SYS_GETTID, 0, 0, 0));
}

/** Sends `signal` to one thread of this process; returns 0 or the errno. */
export function signalThread(tid: number, signal: number): number {
  return Number(libc().syscall_val(SYS_TGKILL, Deno.pid, tid, signal)) < 0 ? errno() : 0;
}

/** Pins the calling thread to host core `core`; returns 0 or the errno. */
export function pinCurrentThread(core: number): number {
  const mask = new Uint8Array(128); // cpu_set_t: 1024 bits
  mask[core >> 3] = 1 << (core & 7);
  return libc().sched_setaffinity(0, mask.length, mask) < 0 ? errno() : 0;
}

/** The calling thread's CPU mask (to restore after pinning), or null. */
export function currentAffinity(): Uint8Array<ArrayBuffer> | null {
  const mask = new Uint8Array(128);
  return libc().sched_getaffinity(0, mask.length, mask) < 0 ? null : mask;
}

/** Restores a mask from {@linkcode currentAffinity}; returns 0 or the errno. */
export function restoreAffinity(mask: Uint8Array<ArrayBuffer>): number {
  return libc().sched_setaffinity(0, mask.length, mask) < 0 ? errno() : 0;
}

const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;
/** The tick's signal; listen for it with `Deno.addSignalListener("SIGALRM", …)`. */
const SIGALRM = 14;
let alarmHandlerKept = false;

/**
 * Keeps a no-op SIGALRM listener for the life of the process. Deno restores
 * SIGALRM's default action (terminate) when its last listener is removed, and
 * a tick still queued when a ticker stops would then kill the process.
 */
function keepAlarmHandler(): void {
  if (alarmHandlerKept) return;
  alarmHandlerKept = true;
  Deno.addSignalListener("SIGALRM", () => {});
}

/**
 * A periodic SIGALRM aimed at one thread (`timer_create` with
 * SIGEV_THREAD_ID). A vCPU running on the main thread uses it so that
 * KVM_RUN returns EINTR regularly even while the guest sits halted: a
 * process-directed signal (SIGINT from the terminal, say) may land on
 * another of Deno's threads and never interrupt KVM_RUN by itself.
 */
export class ThreadTicker {
  readonly #id: bigint;
  #live = true;

  private constructor(id: bigint) {
    this.#id = id;
  }

  /** Starts sending SIGALRM to thread `tid` every `intervalMs`; null if the kernel refuses. */
  static start(tid: number, intervalMs: number): ThreadTicker | null {
    keepAlarmHandler();
    const sev = new Uint8Array(64); // struct sigevent
    const view = new DataView(sev.buffer);
    view.setInt32(8, SIGALRM, true); // sigev_signo
    view.setInt32(12, SIGEV_THREAD_ID, true); // sigev_notify
    view.setInt32(16, tid, true); // _sigev_un._tid
    const id = new Uint8Array(8);
    if (libc().timer_create(CLOCK_MONOTONIC, sev, id) < 0) return null;
    const timerId = new DataView(id.buffer).getBigUint64(0, true);
    const spec = new Uint8Array(32); // struct itimerspec { interval, value }
    const s = new DataView(spec.buffer);
    const sec = BigInt(Math.floor(intervalMs / 1000));
    const nsec = BigInt(Math.round((intervalMs % 1000) * 1e6));
    s.setBigInt64(0, sec, true);
    s.setBigInt64(8, nsec, true);
    s.setBigInt64(16, sec, true);
    s.setBigInt64(24, nsec, true);
    if (libc().timer_settime(timerId, 0, spec, 0) < 0) {
      libc().timer_delete(timerId);
      return null;
    }
    return new ThreadTicker(timerId);
  }

  /** Stops and deletes the timer. */
  stop(): void {
    if (!this.#live) return;
    this.#live = false;
    libc().timer_delete(this.#id);
  }
}

const POLLIN = 1;
const POLLOUT = 4;
const pollBuffer = new Uint8Array(8); // struct pollfd { int fd; short events; short revents; }
const pollView = new DataView(pollBuffer.buffer);

/** poll() of one fd with a zero timeout: 1 ready (or error/hang-up), 0 not, -1 failed. */
function pollNow(fd: number, events: number): number {
  pollView.setInt32(0, fd, true);
  pollView.setInt16(4, events, true);
  pollView.setInt16(6, 0, true);
  return libc().poll(pollBuffer, 1, 0); // an i32 result: no BigInt per call (output flushes)
}

/**
 * True when a read of `fd` would not block: data, end of input, or an error
 * condition is waiting (poll with a zero timeout).
 */
export function fdReadable(fd: number): boolean {
  return pollNow(fd, POLLIN) !== 0; // 1: ready (or POLLHUP/POLLERR); -1: let the read report it
}

/**
 * True when a write of up to PIPE_BUF (4 KiB) bytes to `fd` would not block
 * (poll with a zero timeout). An error condition counts as writable: the
 * write then reports it.
 */
export function fdWritable(fd: number): boolean {
  return pollNow(fd, POLLOUT) !== 0;
}
