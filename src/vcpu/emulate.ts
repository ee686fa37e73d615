/**
 * Instructions the host's KVM could not run, handled in userspace. On
 * kvm_pvm (nested KVM) the instruction emulator fails on `xgetbv`, which
 * every Hermit kernel runs at boot: dhyve executes it (and `xsetbv`) against
 * the vCPU's XCR0 and resumes; likewise the FXSAVE/XSAVE family of Hermit's
 * lazy FPU switch, and every SSE instruction but the plain moves
 * ({@linkcode emulateSseInstruction}, over src/emulate/sse.ts). Anything else
 * is described in one line, naming the mnemonic when it is known.
 * @module
 */

import { KVM_XSAVE_SIZE, SEGMENT, SREGS } from "../abi/kvm.ts";
import {
  decodeModrm,
  decodeOpcode,
  effectiveAddress,
  GPR_ORDER,
  X86Instruction,
} from "../emulate/decode.ts";
import { runAhead } from "../emulate/run_ahead.ts";
import { decodeSse, executeSse, SSE_CHANGED, sseMnemonic, type SseState } from "../emulate/sse.ts";
import {
  fxrstor,
  FXSAVE,
  fxsave,
  HEADER_OFFSET,
  xrstor,
  xsave,
  xsaveAreaSize,
  type XsaveLayout,
} from "../emulate/xsave.ts";
import { hex } from "../hex.ts";
import type { Regs, Sregs, VcpuFd } from "../kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { GuestVirtualMemory, type MemoryFault } from "../memory/guest_virtual.ts";

const XGETBV = [0x0f, 0x01, 0xd0] as const;
const XSETBV = [0x0f, 0x01, 0xd1] as const;
/** XCR0 with x87 and SSE state enabled: the architectural minimum. */
const XCR0_DEFAULT = 3n;

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/**
 * Emulates `xgetbv`/`xsetbv` with ECX = 0 (XCR0). Returns false when `bytes`
 * are some other instruction, or the register number is not 0 (the guest
 * then sees the failure described by {@linkcode describeInstruction}).
 */
export function emulateXcrAccess(vcpu: VcpuFd, regs: Regs, bytes: Uint8Array): boolean {
  const isGet = startsWith(bytes, XGETBV);
  if (!isGet && !startsWith(bytes, XSETBV)) return false;
  vcpu.getRegs(regs);
  if ((regs.get("rcx") & 0xffff_ffff) !== 0) return false;
  if (isGet) {
    const xcr0 = vcpu.xcr0() ?? XCR0_DEFAULT;
    regs.setBig("rax", xcr0 & 0xffff_ffffn);
    regs.setBig("rdx", xcr0 >> 32n);
  } else {
    const value = (regs.getBig("rdx") & 0xffff_ffffn) << 32n | (regs.getBig("rax") & 0xffff_ffffn);
    if (vcpu.setXcr0(value) !== 0) return false;
  }
  regs.set("rip", regs.get("rip") + 3);
  vcpu.setRegs(regs);
  return true;
}

/** Scratch for {@linkcode looksLikeSse}. */
const looked = new X86Instruction();

/** True for encodings in the SSE/SSE2+ opcode space (0F map with vector opcodes). */
export function looksLikeSse(bytes: Uint8Array): boolean {
  if (!decodeOpcode(bytes, looked) || looked.map === 1) return false;
  const op = looked.opcode;
  return looked.map !== 2 || (op >= 0x10 && op <= 0x17) || (op >= 0x28 && op <= 0x2f) ||
    (op >= 0x50 && op <= 0x7f) || (op >= 0xc2 && op <= 0xc6) || op >= 0xd0 ||
    op === 0xae; // fxsave/fxrstor/xsave family
}

/**
 * One line for an instruction the host could not run and dhyve did not
 * emulate, naming its mnemonic when known; `reason` says why dhyve's own
 * SSE emulation declined it.
 */
export function describeInstruction(
  rip: number,
  bytes: Uint8Array | null,
  reason?: string,
): string {
  const shown = bytes === null
    ? "(instruction bytes unreadable)"
    : `(bytes ${
      Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ")
    })`;
  const mnemonic = bytes === null ? null : sseMnemonic(bytes);
  const what = mnemonic !== null
    ? `the SSE instruction ${mnemonic}`
    : bytes !== null && looksLikeSse(bytes)
    ? "an SSE instruction"
    : "an instruction";
  const why = reason !== undefined
    ? `dhyve's SSE emulation could not run it either: ${reason}`
    : mnemonic !== null || (bytes !== null && looksLikeSse(bytes))
    ? "dhyve's SSE emulation does not support it"
    : "nested KVM such as kvm_pvm cannot emulate every instruction";
  return `The guest ran ${what} at RIP ${hex(rip)} ${shown} that this host's KVM cannot ` +
    `execute: its instruction emulator failed, and ${why}; ` +
    "on a host with hardware KVM the guest would run on";
}

const CR0_TS = 8;
const CR0_WP = 0x1_0000;
const VECTOR_NM = 7;
const VECTOR_GP = 13;
const VECTOR_PF = 14;
const FS_BASE_OFFSET = SREGS.fs;
const GS_BASE_OFFSET = SREGS.gs;

/** Scratch buffers for the FPU-state instructions, made once per vCPU. */
export class FpuScratch {
  /** The vCPU's XSAVE image. */
  readonly state: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_XSAVE_SIZE);
  /** A copy of the guest's save area. */
  readonly area: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_XSAVE_SIZE);
  /** The instruction, as the shared front end decodes it. */
  readonly insn: X86Instruction = new X86Instruction();
  /** The registers its memory operand is computed from. */
  readonly addressing: { gpr: BigUint64Array; rip: bigint; fsBase: bigint; gsBase: bigint } = {
    gpr: new BigUint64Array(16),
    rip: 0n,
    fsBase: 0n,
    gsBase: 0n,
  };
  /** Guest-virtual memory through the guest's page tables (made at first use). */
  memory: GuestVirtualMemory | undefined;
}

/** What {@linkcode emulateFpuStateAccess} did. */
export type FpuEmulation = "done" | "injected" | "not-handled";

/** The FXSAVE/XSAVE family: 0F AE with a memory operand and no mandatory prefix. */
const FPU_STATE_OPS = new Set([0, 1, 4, 5, 6]); // fxsave fxrstor xsave xrstor xsaveopt

/**
 * Runs FXSAVE/FXRSTOR/XSAVE/XSAVEOPT/XRSTOR (0F AE /0 /1 /4 /5 /6 with a
 * memory operand) against the vCPU state, as the CPU would: #NM when CR0.TS
 * is set, #GP for a misaligned area, a non-canonical address or a bad XRSTOR
 * header, #PF (with CR2) when the area is not mapped, or not writable for
 * the saving forms. Returns "not-handled" for other instructions (with a
 * 66/F2/F3 prefix the same opcodes are CLWB, PTWRITE, …) or when the area is
 * not guest RAM.
 */
export function emulateFpuStateAccess(
  env: {
    vcpu: VcpuFd;
    regs: Regs;
    sregs: Sregs;
    mem: GuestMemory;
    layout: XsaveLayout;
    scratch: FpuScratch;
  },
  bytes: Uint8Array,
): FpuEmulation {
  const { vcpu, regs, sregs, mem, layout, scratch } = env;
  const insn = scratch.insn;
  if (
    !decodeOpcode(bytes, insn) || insn.map !== 2 || insn.opcode !== 0xae ||
    insn.mandatoryPrefix !== 0 || insn.lock || !decodeModrm(bytes, insn) || !insn.memory ||
    !FPU_STATE_OPS.has(insn.reg7)
  ) {
    return "not-handled";
  }
  const op = insn.reg7;
  vcpu.getRegs(regs);
  vcpu.getSregs(sregs);
  const sview = new DataView(sregs.bytes.buffer);
  const cr0 = sview.getUint32(SREGS.cr0, true);
  if ((cr0 & CR0_TS) !== 0) return inject(vcpu, VECTOR_NM);
  const addressing = scratch.addressing;
  for (let i = 0; i < 16; i++) addressing.gpr[i] = regs.getBig(GPR_ORDER[i]!);
  addressing.rip = regs.getBig("rip");
  addressing.fsBase = sview.getBigUint64(FS_BASE_OFFSET, true);
  addressing.gsBase = sview.getBigUint64(GS_BASE_OFFSET, true);
  const address = effectiveAddress(insn, addressing);
  const isFx = op === 0 || op === 1;
  if (address % (isFx ? 16n : 64n) !== 0n) return inject(vcpu, VECTOR_GP, 0);
  let rfbm = 3n;
  if (!isFx) {
    const xcr0 = vcpu.xcr0() ?? 3n;
    rfbm = ((regs.getBig("rdx") & 0xffff_ffffn) << 32n | (regs.getBig("rax") & 0xffff_ffffn)) &
      xcr0;
  }
  const size = isFx ? 512 : xsaveAreaSize(rfbm, layout);
  if (size < 0 || size > scratch.area.length) return "not-handled";
  const memory = scratch.memory ??= new GuestVirtualMemory(mem);
  memory.flush(); // the guest ran since the last exit: its page tables may have changed
  memory.cr3 = Number(sview.getBigUint64(SREGS.cr3, true));
  memory.wp = (cr0 & CR0_WP) !== 0;
  memory.user = (sregs.bytes[SREGS.ss + SEGMENT.dpl]! & 3) === 3;
  const area = scratch.area.subarray(0, size);
  const storing = op === 0 || op === 4 || op === 6;
  // A saving form faults as a write, before anything is read.
  const fault = (storing ? memory.probe(address, size, true) : null) ?? memory.read(address, area);
  if (fault !== null) return injectFault(vcpu, sregs, fault);

  vcpu.getXsave(scratch.state);
  const state = scratch.state;
  let ok = true;
  if (op === 0) fxsave(state, area);
  else if (op === 1) fxrstor(state, area);
  else if (storing) xsave(state, area, rfbm, layout);
  else ok = xrstor(state, area, rfbm, layout);
  if (!ok) return inject(vcpu, VECTOR_GP, 0);

  if (storing) {
    const late = memory.write(address, area);
    if (late !== null) return injectFault(vcpu, sregs, late);
  } else if (vcpu.setXsave(state) !== 0) {
    return "not-handled";
  }
  regs.set("rip", regs.get("rip") + insn.length);
  vcpu.setRegs(regs);
  return "done";
}

/** Injects exception `vector`; "not-handled" when KVM refuses. */
function inject(vcpu: VcpuFd, vector: number, errorCode?: number): "injected" | "not-handled" {
  return vcpu.injectException(vector, errorCode) === 0 ? "injected" : "not-handled";
}

/**
 * Delivers a failed guest-virtual access as the CPU would: #GP(0), or #PF
 * with CR2 set to the faulting address; an access outside RAM is not handled.
 */
function injectFault(vcpu: VcpuFd, sregs: Sregs, fault: MemoryFault): "injected" | "not-handled" {
  if ("notRam" in fault) return "not-handled";
  if ("gp" in fault) return inject(vcpu, VECTOR_GP, 0);
  return injectPageFault(vcpu, sregs, fault.pageFault, fault.errorCode);
}

/** #PF with `errorCode`, CR2 = `address` (the CPU sets CR2 when it delivers a #PF). */
function injectPageFault(
  vcpu: VcpuFd,
  sregs: Sregs,
  address: bigint,
  errorCode: number,
): "injected" | "not-handled" {
  vcpu.getSregs(sregs);
  new DataView(sregs.bytes.buffer).setBigUint64(SREGS.cr2, BigInt.asUintN(64, address), true);
  vcpu.setSregs(sregs);
  return inject(vcpu, VECTOR_PF, errorCode);
}

const CR0_EM = 4;
const CR4_OSFXSR = 0x200;
const VECTOR_UD = 6;
const XSTATE_SSE = 2;
/** Default for {@linkcode SseScratch.runAhead}. */
const DEFAULT_RUN_AHEAD = 1024;
/** Integer instructions run ahead after the last SSE instruction before giving up. */
const MAX_INTEGER_GAP = 24;

/** Scratch state and counters for SSE emulation, made once per vCPU. */
export class SseScratch {
  /** The vCPU's XSAVE image (XMM registers at 160, MXCSR at 24). */
  readonly image: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_XSAVE_SIZE);
  readonly #imageView = new DataView(this.image.buffer);
  /** The register file handed to the executor (XMM is a view into `image`). */
  readonly state: SseState = {
    xmm: this.image.subarray(FXSAVE.xmm0, FXSAVE.xmmEnd),
    mxcsr: 0,
    gpr: new BigUint64Array(16),
    rflags: 0,
    rip: 0n,
    fsBase: 0n,
    gsBase: 0n,
  };
  /** Guest-virtual memory through the guest's page tables. */
  readonly memory: GuestVirtualMemory;
  /**
   * After the instruction KVM failed on, how many more instructions to run in
   * userspace while they are supported SSE instructions or register-only
   * integer instructions between them (each saves a KVM_RUN round trip, and
   * a loop can run whole); 0 emulates exactly the failed one.
   */
  runAhead: number = DEFAULT_RUN_AHEAD;
  /** Instructions emulated (completed, or turned into a guest exception). */
  count = 0;
  /** Of those, integer instructions run ahead between SSE instructions. */
  integerCount = 0;
  /** Emulation failures served (KVM exits). */
  exits = 0;
  /** Instructions the last served exit emulated. */
  lastCount = 0;
  /** Total wall time spent in {@linkcode emulateSseInstruction}, in milliseconds. */
  timeMs = 0;
  /** Emulated instructions by mnemonic, when {@linkcode SseScratch.trackMnemonics} is set. */
  readonly byMnemonic: Map<string, number> = new Map();
  /** Count instructions by mnemonic (diagnostics; costs a little per instruction). */
  trackMnemonics = false;
  /** Why the last "not-handled" SSE instruction was declined, if dhyve knows. */
  reason: string | undefined;
  /** KVM copies the special registers into `kvm_run` on every exit (we asked for it). */
  sregsSynced = false;

  /** Scratch for a vCPU over `mem`. */
  constructor(mem: GuestMemory) {
    this.memory = new GuestVirtualMemory(mem);
  }

  /** MXCSR in the image. */
  get mxcsr(): number {
    return this.#imageView.getUint32(FXSAVE.mxcsr, true);
  }
  set mxcsr(value: number) {
    this.#imageView.setUint32(FXSAVE.mxcsr, value, true);
  }

  /** Marks the SSE component in use in XSTATE_BV, so that KVM loads it. */
  markSseInUse(): void {
    const v = this.#imageView;
    v.setUint8(HEADER_OFFSET, v.getUint8(HEADER_OFFSET) | XSTATE_SSE); // XSTATE_BV
  }
}

/** What {@linkcode emulateSseInstruction} did. */
export type SseEmulation = "done" | "injected" | "not-handled";

/**
 * Runs the SSE instruction in `bytes` (the instruction at RIP that KVM
 * failed to emulate) against the vCPU, as the CPU would: #UD when CR0.EM is
 * set or CR4.OSFXSR is clear, #NM when CR0.TS is set (lazy FPU switching),
 * #GP for a misaligned 16-byte operand or a non-canonical address, #PF (with
 * CR2) when the operand is not mapped or not writable. Then, up to
 * `scratch.runAhead` times, the next instruction is fetched through the
 * guest's page tables and run too while it is a supported SSE instruction
 * that completes (a fault leaves it to KVM) or one of the register-only
 * integer instructions of src/emulate/int.ts, at most 24 of them in a row. XMM/MXCSR go through
 * KVM_GET/SET_XSAVE (written back only when changed); general registers,
 * RFLAGS and RIP through `kvm_run`'s sync-regs area when the vCPU has it
 * (else KVM_GET/SET_REGS). Returns "not-handled" for bytes that are not a
 * supported SSE instruction (then `scratch.reason` may say why).
 */
export function emulateSseInstruction(
  env: { vcpu: VcpuFd; regs: Regs; sregs: Sregs; scratch: SseScratch },
  bytes: Uint8Array,
): SseEmulation {
  const { vcpu, regs, sregs, scratch } = env;
  scratch.reason = undefined;
  scratch.lastCount = 0;
  if (sseMnemonic(bytes) === null) return "not-handled";
  const started = performance.now();
  try {
    return run();
  } finally {
    scratch.timeMs += performance.now() - started;
  }

  function run(): SseEmulation {
    const run = vcpu.kvmRun;
    const synced = vcpu.syncRegs;
    const sregsFromRun = synced && scratch.sregsSynced;
    // Special registers: CR0 (EM, TS, WP), CR3, CR4, FS/GS base, SS.DPL.
    let sview: DataView;
    let sbase: number;
    if (sregsFromRun) {
      sview = run.syncedSregs.view;
      sbase = run.syncedSregs.offset;
    } else {
      vcpu.getSregs(sregs);
      sview = new DataView(sregs.bytes.buffer);
      sbase = 0;
      if (synced) {
        // From the next exit on, KVM stores the special registers in kvm_run too.
        run.syncOut(true);
        scratch.sregsSynced = true;
      }
    }
    const cr0 = sview.getUint32(sbase + SREGS.cr0, true);
    const cr4 = sview.getUint32(sbase + SREGS.cr4, true);
    if ((cr0 & CR0_EM) !== 0 || (cr4 & CR4_OSFXSR) === 0) return inject(vcpu, VECTOR_UD);
    if ((cr0 & CR0_TS) !== 0) return inject(vcpu, VECTOR_NM);

    const state = scratch.state;
    if (synced) {
      for (let i = 0; i < 16; i++) {
        state.gpr[i] = run.reg(GPR_ORDER[i]!);
      }
      state.rip = run.reg("rip");
      state.rflags = Number(run.reg("rflags") & 0xffff_ffffn);
    } else {
      vcpu.getRegs(regs);
      for (let i = 0; i < 16; i++) state.gpr[i] = regs.getBig(GPR_ORDER[i]!);
      state.rip = regs.getBig("rip");
      state.rflags = regs.get("rflags");
    }
    state.fsBase = sview.getBigUint64(sbase + FS_BASE_OFFSET, true);
    state.gsBase = sview.getBigUint64(sbase + GS_BASE_OFFSET, true);
    const insn = decodeSse(bytes, state);
    if (insn === null) return "not-handled";
    vcpu.getXsave(scratch.image);
    state.mxcsr = scratch.mxcsr;
    const memory = scratch.memory;
    memory.flush(); // the guest ran since the last exit: its page tables may have changed
    memory.cr3 = Number(sview.getBigUint64(sbase + SREGS.cr3, true));
    memory.wp = (cr0 & CR0_WP) !== 0;
    memory.user = (sview.getUint8(sbase + SREGS.ss + SEGMENT.dpl) & 3) === 3;
    const result = executeSse(insn, state, memory);
    if (result.kind === "unsupported") {
      scratch.reason = result.reason;
      return "not-handled";
    }
    scratch.exits++;
    count(insn.mnemonic);
    if (result.kind === "exception") {
      if (result.vector === VECTOR_PF && result.address !== undefined) {
        return injectPageFault(vcpu, sregs, result.address, result.errorCode);
      }
      return inject(vcpu, result.vector, result.errorCode);
    }
    let changed = result.changed;
    // Run ahead: the following SSE instructions, and the register-only integer
    // instructions between them, without a KVM round trip each.
    const ahead = runAhead(state, memory, {
      limit: scratch.runAhead,
      maxIntegerGap: MAX_INTEGER_GAP,
      ...(scratch.trackMnemonics ? { byMnemonic: scratch.byMnemonic } : {}),
    });
    changed |= ahead.changed;
    scratch.count += ahead.count;
    scratch.lastCount += ahead.count;
    scratch.integerCount += ahead.integer;
    if ((changed & (SSE_CHANGED.XMM | SSE_CHANGED.MXCSR)) !== 0) {
      scratch.mxcsr = state.mxcsr;
      scratch.markSseInUse();
      const err = vcpu.setXsave(scratch.image);
      if (err !== 0) {
        scratch.reason = `KVM_SET_XSAVE failed (errno ${err})`;
        return "not-handled";
      }
    }
    if (synced) {
      // KVM loads these from kvm_run at the next KVM_RUN (kvm_dirty_regs).
      if ((changed & SSE_CHANGED.GPR) !== 0) {
        for (let i = 0; i < 16; i++) {
          run.setReg(GPR_ORDER[i]!, state.gpr[i]!);
        }
      }
      run.setReg("rflags", BigInt(state.rflags));
      run.setReg("rip", state.rip);
      run.markRegsDirty();
    } else {
      if ((changed & SSE_CHANGED.GPR) !== 0) {
        for (let i = 0; i < 16; i++) regs.setBig(GPR_ORDER[i]!, state.gpr[i]!);
      }
      regs.set("rflags", state.rflags);
      regs.setBig("rip", state.rip);
      vcpu.setRegs(regs);
    }
    return "done";
  }

  function count(mnemonic: string): void {
    scratch.count++;
    scratch.lastCount++;
    if (scratch.trackMnemonics) {
      scratch.byMnemonic.set(mnemonic, (scratch.byMnemonic.get(mnemonic) ?? 0) + 1);
    }
  }
}
