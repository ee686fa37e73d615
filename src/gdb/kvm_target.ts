/**
 * The GDB target over KVM: registers from KVM_GET_REGS/SREGS/XSAVE in GDB's
 * order, guest-virtual memory through the guest's own page tables (bounded to
 * guest RAM), and the debug state (KVM_SET_GUEST_DEBUG) a resume needs. The
 * thin KVM-facing half of the stub; the protocol itself is in `protocol.ts`.
 * @module
 */

import { GUESTDBG, KVM_XSAVE_SIZE, REGS, SEGMENT, SREGS } from "../abi/kvm.ts";
import { FXSAVE } from "../emulate/xsave.ts";
import { Regs, Sregs, type VcpuFd } from "../kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { translateRange } from "../memory/paging.ts";
import type { Breakpoints, VirtualMemory } from "./breakpoints.ts";
import type { GdbTarget } from "./protocol.ts";
import { REGISTER_FILE_SIZE, REGISTER_NUMBER, REGISTER_OFFSETS } from "./target_xml.ts";

/** `kvm_regs` offsets of RAX..R15 in GDB's order (rax rbx rcx rdx rsi rdi rbp rsp r8..r15). */
const GENERAL_ORDER = [
  REGS.rax,
  REGS.rbx,
  REGS.rcx,
  REGS.rdx,
  REGS.rsi,
  REGS.rdi,
  REGS.rbp,
  REGS.rsp,
  REGS.r8,
  REGS.r9,
  REGS.r10,
  REGS.r11,
  REGS.r12,
  REGS.r13,
  REGS.r14,
  REGS.r15,
] as const;

/** `kvm_sregs` segment offsets in GDB's order (cs ss ds es fs gs). */
const SEGMENT_ORDER = [SREGS.cs, SREGS.ss, SREGS.ds, SREGS.es, SREGS.fs, SREGS.gs] as const;

/** RFLAGS bit 1 always reads as one. */
const RFLAGS_FIXED = 0x2;

/** Reads and writes one vCPU's registers in GDB's layout. */
class VcpuRegisters {
  readonly #regs = new Regs();
  readonly #sregs = new Sregs();
  readonly #xsave = new Uint8Array(KVM_XSAVE_SIZE);

  /** Fills `into` from KVM. */
  read(vcpu: VcpuFd, into: Uint8Array): void {
    vcpu.flushDirtyRegs();
    vcpu.getRegs(this.#regs);
    vcpu.getSregs(this.#sregs);
    vcpu.getXsave(this.#xsave);
    const out = new DataView(into.buffer, into.byteOffset, into.byteLength);
    const regs = new DataView(this.#regs.bytes.buffer);
    const sregs = new DataView(this.#sregs.bytes.buffer);
    const fx = new DataView(this.#xsave.buffer);
    into.fill(0);
    GENERAL_ORDER.forEach((off, i) => {
      out.setBigUint64(REGISTER_OFFSETS[i]!, regs.getBigUint64(off, true), true);
    });
    out.setBigUint64(at("rip"), regs.getBigUint64(REGS.rip, true), true);
    out.setUint32(at("eflags"), regs.getUint32(REGS.rflags, true), true);
    SEGMENT_ORDER.forEach((off, i) => {
      out.setUint32(at("cs") + 4 * i, sregs.getUint16(off + SEGMENT.selector, true), true);
    });
    for (let i = 0; i < 8; i++) {
      into.set(this.#xsave.subarray(FXSAVE.st0 + 16 * i, FXSAVE.st0 + 16 * i + 10), at(`st${i}`));
    }
    out.setUint32(at("fctrl"), fx.getUint16(FXSAVE.fcw, true), true);
    out.setUint32(at("fstat"), fx.getUint16(FXSAVE.fsw, true), true);
    out.setUint32(at("ftag"), fullTagWord(fx.getUint8(FXSAVE.ftwAbridged)), true);
    out.setUint32(at("fiseg"), fx.getUint32(FXSAVE.fip + 4, true) & 0xffff, true);
    out.setUint32(at("fioff"), fx.getUint32(FXSAVE.fip, true), true);
    out.setUint32(at("foseg"), fx.getUint32(FXSAVE.fdp + 4, true) & 0xffff, true);
    out.setUint32(at("fooff"), fx.getUint32(FXSAVE.fdp, true), true);
    out.setUint32(at("fop"), fx.getUint16(FXSAVE.fop, true), true);
    into.set(this.#xsave.subarray(FXSAVE.xmm0, FXSAVE.xmmEnd), at("xmm0"));
    out.setUint32(at("mxcsr"), fx.getUint32(FXSAVE.mxcsr, true), true);
    out.setBigUint64(at("fs_base"), sregs.getBigUint64(SREGS.fs + SEGMENT.base, true), true);
    out.setBigUint64(at("gs_base"), sregs.getBigUint64(SREGS.gs + SEGMENT.base, true), true);
  }

  /**
   * Writes general registers, RIP, RFLAGS, the FP/SSE state and the FS/GS
   * bases. Segment selectors are left alone: a selector without its
   * descriptor would break the guest.
   */
  write(vcpu: VcpuFd, from: Uint8Array): boolean {
    if (from.length !== REGISTER_FILE_SIZE) return false;
    vcpu.flushDirtyRegs();
    vcpu.getRegs(this.#regs);
    vcpu.getXsave(this.#xsave);
    const src = new DataView(from.buffer, from.byteOffset, from.byteLength);
    const regs = new DataView(this.#regs.bytes.buffer);
    const fx = new DataView(this.#xsave.buffer);
    GENERAL_ORDER.forEach((off, i) => {
      regs.setBigUint64(off, src.getBigUint64(REGISTER_OFFSETS[i]!, true), true);
    });
    regs.setBigUint64(REGS.rip, src.getBigUint64(at("rip"), true), true);
    regs.setBigUint64(REGS.rflags, BigInt(src.getUint32(at("eflags"), true) | RFLAGS_FIXED), true);
    vcpu.setRegs(this.#regs);
    for (let i = 0; i < 8; i++) {
      this.#xsave.set(from.subarray(at(`st${i}`), at(`st${i}`) + 10), FXSAVE.st0 + 16 * i);
    }
    fx.setUint16(FXSAVE.fcw, src.getUint32(at("fctrl"), true), true);
    fx.setUint16(FXSAVE.fsw, src.getUint32(at("fstat"), true), true);
    fx.setUint8(FXSAVE.ftwAbridged, abridgedTagWord(src.getUint32(at("ftag"), true)));
    fx.setUint16(FXSAVE.fop, src.getUint32(at("fop"), true), true);
    this.#xsave.set(
      from.subarray(at("xmm0"), at("xmm0") + FXSAVE.xmmEnd - FXSAVE.xmm0),
      FXSAVE.xmm0,
    );
    fx.setUint32(FXSAVE.mxcsr, src.getUint32(at("mxcsr"), true), true);
    vcpu.getSregs(this.#sregs);
    const sregs = new DataView(this.#sregs.bytes.buffer);
    const fsBase = src.getBigUint64(at("fs_base"), true);
    const gsBase = src.getBigUint64(at("gs_base"), true);
    if (
      fsBase !== sregs.getBigUint64(SREGS.fs + SEGMENT.base, true) ||
      gsBase !== sregs.getBigUint64(SREGS.gs + SEGMENT.base, true)
    ) {
      sregs.setBigUint64(SREGS.fs + SEGMENT.base, fsBase, true);
      sregs.setBigUint64(SREGS.gs + SEGMENT.base, gsBase, true);
      vcpu.setSregs(this.#sregs);
    }
    return vcpu.setXsave(this.#xsave) === 0;
  }
}

function at(name: string): number {
  return REGISTER_OFFSETS[REGISTER_NUMBER[name]!]!;
}

/** FXSAVE's one-bit-per-register tag to the x87 two-bit tag word (valid 00, empty 11). */
function fullTagWord(abridged: number): number {
  let tag = 0;
  for (let i = 0; i < 8; i++) if ((abridged & (1 << i)) === 0) tag |= 3 << (2 * i);
  return tag;
}

/** The x87 tag word to FXSAVE's abridged form (anything but empty is "in use"). */
function abridgedTagWord(tag: number): number {
  let abridged = 0;
  for (let i = 0; i < 8; i++) if (((tag >> (2 * i)) & 3) !== 3) abridged |= 1 << i;
  return abridged;
}

/** Guest-virtual memory through one vCPU's CR3; every access stays inside guest RAM. */
class VcpuMemory implements VirtualMemory {
  readonly #vcpu: VcpuFd;
  readonly #mem: GuestMemory;
  readonly #sregs = new Sregs();

  constructor(vcpu: VcpuFd, mem: GuestMemory) {
    this.#vcpu = vcpu;
    this.#mem = mem;
  }

  read(addr: number, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    let at = 0;
    const ok = this.#walk(addr, length, (gpa, len) => {
      out.set(this.#mem.bytes(gpa, len), at);
      at += len;
    });
    return ok ? out : null;
  }

  write(addr: number, data: Uint8Array): boolean {
    let at = 0;
    return this.#walk(addr, data.length, (gpa, len) => {
      this.#mem.write(gpa, data.subarray(at, at + len));
      at += len;
    });
  }

  #walk(addr: number, length: number, visit: (gpa: number, len: number) => void): boolean {
    try {
      this.#vcpu.getSregs(this.#sregs);
      return translateRange(this.#mem, this.#sregs.getU64(SREGS.cr3), addr, length, visit);
    } catch {
      return false; // page tables outside RAM, or a failed ioctl: unmapped as far as GDB knows
    }
  }
}

/** The {@linkcode GdbTarget} for a VM's vCPUs: thread N is vCPU N - 1. */
export class KvmGdbTarget implements GdbTarget {
  readonly #vcpus: readonly VcpuFd[];
  readonly #registers = new VcpuRegisters();
  readonly #memories: VcpuMemory[];
  /** See {@linkcode GdbTarget.loadOffset}. */
  readonly loadOffset: number;

  /** Wraps the vCPUs and guest RAM; `loadOffset` is how far the kernel was moved. */
  constructor(vcpus: readonly VcpuFd[], mem: GuestMemory, loadOffset: number) {
    this.#vcpus = vcpus;
    this.loadOffset = loadOffset;
    this.#memories = vcpus.map((v) => new VcpuMemory(v, mem));
  }

  /** One thread per vCPU. */
  get threadCount(): number {
    return this.#vcpus.length;
  }

  /** See {@linkcode GdbTarget.readRegisters}. */
  readRegisters(thread: number, into: Uint8Array): void {
    this.#registers.read(this.#vcpu(thread), into);
  }

  /** See {@linkcode GdbTarget.writeRegisters}. */
  writeRegisters(thread: number, from: Uint8Array): boolean {
    return this.#registers.write(this.#vcpu(thread), from);
  }

  /** See {@linkcode GdbTarget.memory}. */
  memory(thread: number): VirtualMemory {
    return this.#memories[thread - 1] ?? this.#memories[0]!;
  }

  /**
   * Arms KVM's debug state on every vCPU: software breakpoints trap, the
   * debug registers hold the hardware slots, and `step` single-steps one
   * thread, every thread ("all") or none (null). `skipExecOn` leaves exec
   * slots unarmed on that thread (to step off a hardware breakpoint).
   * Returns 0 or the first errno.
   */
  arm(bp: Breakpoints, step: number | "all" | null, skipExecOn: number | null = null): number {
    let result = 0;
    this.#vcpus.forEach((vcpu, i) => {
      const thread = i + 1;
      let control = GUESTDBG.ENABLE | GUESTDBG.USE_SW_BP;
      if (bp.hasHardware) control |= GUESTDBG.USE_HW_BP;
      if (step === "all" || thread === step) control |= GUESTDBG.SINGLESTEP;
      const err = vcpu.setGuestDebug(control, bp.debugRegisters(thread === skipExecOn));
      if (err !== 0 && result === 0) result = err;
    });
    return result;
  }

  /** Turns guest debugging off on every vCPU (detach). */
  disarm(): void {
    for (const vcpu of this.#vcpus) vcpu.setGuestDebug(0);
  }

  /** RIP of a thread. */
  pc(thread: number): number {
    const regs = new Regs();
    const vcpu = this.#vcpu(thread);
    vcpu.flushDirtyRegs();
    vcpu.getRegs(regs);
    return regs.get("rip");
  }

  #vcpu(thread: number): VcpuFd {
    const v = this.#vcpus[thread - 1];
    if (v === undefined) throw new RangeError(`No thread ${thread}`);
    return v;
  }
}
