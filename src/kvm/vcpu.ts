/**
 * A vCPU fd with its `kvm_run` (read only through {@linkcode KvmRun}):
 * KVM_RUN, registers, CPUID, MSRs, FPU state, events and guest debugging.
 * @module
 */

import {
  KVM_CPUID2_HEADER_SIZE,
  KVM_CPUID_ENTRY2_SIZE,
  KVM_GUEST_DEBUG_SIZE,
  KVM_MSR_ENTRY_SIZE,
  KVM_MSRS_HEADER_SIZE,
  KVM_VCPU_EVENTS_SIZE,
  KVM_XCRS_SIZE,
  KVM_XSAVE_SIZE,
  MP_STATE_RUNNABLE,
  VCPU_EVENTS,
} from "../abi/kvm.ts";
import type { CpuidEntry, MsrEntry } from "../abi/kvm.ts";
import { KVM_IOCTL } from "../abi/ioctl.ts";
import { mmapResult, viewOf } from "../host/mappings.ts";
import {
  errno,
  type FastIoctl,
  fastIoctl,
  libc,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../host/libc.ts";
import { traceMark } from "../startup_trace.ts";
import { check, closeFd } from "./errors.ts";
import { Regs, type Sregs } from "./regs.ts";
import { KvmRun } from "./run.ts";

/** KVM_RUN as a bigint, made once: see `ioctl_big` in libc.ts (no deopts on the hot path). */
const KVM_RUN_REQUEST = BigInt(KVM_IOCTL.RUN);

/**
 * KVM_RUNs made through libc's cold `ioctl_big` before {@linkcode fastIoctl}
 * is bound: the fast call saves ~0.1 µs per exit and costs ~0.7 ms (and ~2.5
 * MiB of Deno's code) to bind, so it pays from ~10 000 exits on. A short
 * run (a noop guest makes 3 exits, uhyve's `hello_c` ~4 450) never binds it.
 */
export const COLD_RUNS = 10_000;

/**
 * A vCPU fd with its mapped `kvm_run`. {@linkcode VcpuFd.run} is the hot path:
 * one synchronous ioctl, no allocation, errors returned as an errno.
 */
export class VcpuFd implements Disposable {
  /** The open file descriptor. */
  readonly fd: number;
  /** The vCPU id (0 is the boot CPU). */
  readonly id: number;
  /** `kvm_run`, mapped once: exits, synced registers and I/O data are read through it. */
  readonly kvmRun: KvmRun;
  #syncRegs = false;
  readonly #runMapping: { address: number; size: number };
  readonly #coldIoctl: (fd: number, request: bigint, arg: bigint) => number;
  /** The fast ioctl once bound; KVM_RUN calls it at a call site of its own (see `run`). */
  #fastIoctl: FastIoctl | null = null;
  /** KVM_RUNs left before the fast ioctl is bound ({@linkcode COLD_RUNS}). */
  #coldRunsLeft = COLD_RUNS;
  readonly #xcrs = new Uint8Array(KVM_XCRS_SIZE);
  readonly #guestDebug = new Uint8Array(KVM_GUEST_DEBUG_SIZE);
  readonly #mpState = new Uint8Array(4);
  readonly #events = new Uint8Array(KVM_VCPU_EVENTS_SIZE);

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
    this.kvmRun = new KvmRun(new DataView(buffer));
    this.#coldIoctl = libc().ioctl_big;
  }

  /**
   * Asks KVM to copy the general registers into `kvm_run` on every exit, so
   * that RDI is a plain read. Returns whether it is in effect.
   */
  enableSyncRegs(supported: boolean): boolean {
    if (!supported) return false;
    this.kvmRun.syncOut(false);
    this.#syncRegs = true;
    return true;
  }

  /** True when KVM copies the general registers into `kvm_run` on every exit. */
  get syncRegs(): boolean {
    return this.#syncRegs;
  }

  /** KVM_RUN once. Returns 0, or the errno (EINTR when kicked). No allocation. */
  run(): number {
    // Two call sites, each seeing one function: V8 makes a fast call only where the
    // callee never changed (one site for both measured ~1 µs per exit slower).
    const fast = this.#fastIoctl;
    if (fast !== null) return fast(this.fd, KVM_RUN_REQUEST, 0n) < 0 ? errno() : 0;
    if (--this.#coldRunsLeft === 0) this.#bindFastIoctl();
    return this.#coldIoctl(this.fd, KVM_RUN_REQUEST, 0n) < 0 ? errno() : 0;
  }

  #bindFastIoctl(): void {
    this.#fastIoctl = fastIoctl(); // null: the cold call stays
    if (this.#fastIoctl !== null) traceMark("fastrun");
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

  /** KVM_GET_MP_STATE: `MP_STATE_RUNNABLE`, `MP_STATE_HALTED`, … */
  mpState(): number {
    const buf = this.#mpState;
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.GET_MP_STATE, buf), "read the vCPU's run state");
    return new DataView(buf.buffer).getUint32(0, true);
  }

  /**
   * KVM_GET_VCPU_EVENTS: true when an exception, interrupt, NMI or SMI is
   * injected or pending, i.e. something will run on this vCPU.
   */
  eventsPending(): boolean {
    const buf = this.#events;
    check(libc().ioctl_buf(this.fd, KVM_IOCTL.GET_VCPU_EVENTS, buf), "read the vCPU's events");
    for (const at of Object.values(VCPU_EVENTS)) if (buf[at] !== 0) return true;
    return false;
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
    const run = this.kvmRun;
    if (!run.regsDirty) return;
    const regs = new Regs();
    regs.bytes.set(run.regsBytes());
    this.setRegs(regs);
    run.markRegsDirty(false);
  }

  /** Requests that the next (or current) KVM_RUN return at once with EINTR. */
  setImmediateExit(on: boolean): void {
    this.kvmRun.setImmediateExit(on);
  }

  /** Host address and size of the `kvm_run` mapping (for a vCPU Worker). */
  get runMapping(): { address: number; size: number } {
    return { ...this.#runMapping };
  }

  /** Same as {@linkcode VcpuFd.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Unmaps `kvm_run` and closes the fd (only the thread that created them). */
  close(): void {
    if (!this.#ownsMapping) return;
    libc().munmap(this.#runMapping.address, this.#runMapping.size);
    closeFd(this.fd);
  }
}
