/**
 * The system fd (`/dev/kvm`): API version, capabilities, supported CPUID and
 * MSRs, and VM creation.
 * @module
 */

import {
  CAP,
  KVM_API_VERSION,
  KVM_CPUID2_HEADER_SIZE,
  KVM_CPUID_ENTRY2_SIZE,
  KVM_MSR_LIST_HEADER_SIZE,
} from "../abi/kvm.ts";
import { ERRNO } from "../errno.ts";
import { KVM_IOCTL } from "../abi/ioctl.ts";
import type { CpuidEntry } from "../abi/kvm.ts";
import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "../host/libc.ts";
import { check, closeFd, KvmUnavailableError } from "./errors.ts";
import { VmFd } from "./vm.ts";

/** The system fd: `/dev/kvm` itself. */
export class Kvm implements Disposable {
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

  /**
   * What keeps dhyve from using this KVM: an API version other than
   * `KVM_API_VERSION`, or the first of {@linkcode REQUIRED_CAPS} it lacks;
   * null when there is nothing.
   * @throws {KvmError} when the version query fails (not a KVM device).
   */
  missingRequirement(): { version: number } | { capability: string } | null {
    const version = this.apiVersion();
    if (version !== KVM_API_VERSION) return { version };
    const lacking = REQUIRED_CAPS.find(({ cap }) => this.checkExtension(cap) === 0);
    return lacking === undefined ? null : { capability: lacking.name };
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

  /**
   * KVM_CREATE_VM. A signal arriving while the kernel builds the VM (a
   * profiler's SIGPROF, a resized terminal) makes it fail with EINTR; that is
   * retried, not reported.
   */
  createVm(): VmFd {
    let fd: number;
    do fd = libc().ioctl_val(this.fd, KVM_IOCTL.CREATE_VM, 0); while (
      fd < 0 && errno() === ERRNO.EINTR
    );
    return new VmFd(check(fd, "create a VM"), this);
  }

  /** Same as {@linkcode Kvm.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the fd. */
  close(): void {
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
