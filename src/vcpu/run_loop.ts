/**
 * The vCPU run loop: KVM_RUN → decode the exit from `kvm_run` → dispatch →
 * resume or stop. Reads `kvm_run` through one DataView, indexes the
 * hypercall table by port, bumps typed-array counters: nothing is allocated
 * per exit. EINTR and EAGAIN are outcomes, not errors.
 * @module
 */

import {
  EMULATION_FLAG_INSTRUCTION_BYTES,
  EXIT,
  INTERNAL_ERROR,
  IO_OUT,
  RUN,
  SREGS,
} from "../abi/kvm.ts";
import { ERRNO } from "../errno.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { type HypercallContext, RESUME, VmStop, WOULD_BLOCK } from "../hypercall/context.ts";
import { hex } from "../hypercall/protocol.ts";
import { V2 } from "../hypercall/abi.ts";
import { readSerialByte } from "../hypercall/serial_input.ts";
import {
  type HypercallEntry,
  type HypercallTable,
  MAX_HYPERCALL_PORT,
} from "../hypercall/table.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { translate } from "../memory/paging.ts";
import { KvmError, Regs, Sregs, type VcpuFd } from "../kvm.ts";
import type { XsaveLayout } from "../emulate/xsave.ts";
import type * as Emulation from "./emulate.ts";
import { registerDump } from "./dump.ts";
import { inNetWindow, type NetRegisters } from "../virtio/net_registers.ts";
import { PCI_CONFIG_PORTS, type PciConfigSpace } from "../devices/pci_config.ts";
import { NET_MMIO_BASE } from "../virtio/layout.ts";
import type { VcpuStats } from "./stats.ts";

/** First port of the hypercall region; unknown ports in it are protocol errors. */
const HYPERCALL_REGION_START = 0x400;

/** Guest-physical ranges Hermit scans for an MP table; reads return zeroes. */
function isMpTableScan(addr: number): boolean {
  return (addr >= 0x9f000 && addr < 0xa0000) || (addr >= 0xf0000 && addr < 0x100000);
}

/** What the run loop must know while a debugger is attached. */
export interface DebugControl {
  /** KVM_GUESTDBG_SINGLESTEP is on: an instruction emulated here counts as one step. */
  stepping: boolean;
}

/** What the run loop needs; built once per vCPU. */
export interface RunLoopOptions {
  /** Present only while a debugger is attached (`--gdb-port`). */
  readonly debug?: DebugControl;
  /** The vCPU to run. */
  readonly vcpu: VcpuFd;
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Hypercall dispatch table. */
  readonly table: HypercallTable;
  /** Handler context for this vCPU. */
  readonly ctx: HypercallContext;
  /** Counters for this vCPU. */
  readonly stats: VcpuStats;
  /** Shared control word: index 0 becomes non-zero when the VM must stop. */
  readonly control: Int32Array;
  /** Where XSAVE components live (CPUID leaf 0xD), for FPU-state emulation. */
  readonly xsaveLayout: XsaveLayout;
  /**
   * Return {@linkcode YIELDED} after about this long of busy exits, so a
   * main-thread caller can run signal listeners and check its deadline even
   * while the guest exits constantly. Undefined: never (vCPU Workers).
   */
  readonly yieldEveryMs?: number;
  /** Carries a WOULD_BLOCK hypercall across calls of runVcpu; keep one per vCPU. */
  readonly pending?: PendingHypercall;
  /** The virtio-net registers (`--net`): its MMIO window goes there. */
  readonly net?: NetRegisters | null;
  /**
   * The PCI configuration ports (0xCF8–0xCFF) with this thread's functions;
   * kept across calls, since the latched address is guest-visible state.
   */
  readonly pci: PciConfigSpace;
}

/**
 * The userspace instruction emulator (SSE, XSAVE, xgetbv), loaded on first
 * need: hosts with hardware KVM never use it, so start-up does not pay for it.
 */
let emulation: typeof Emulation | null = null;

/** Loads the instruction emulator; call before runVcpu on a thread that cannot wait later. */
export async function loadEmulator(): Promise<void> {
  emulation ??= await import("./emulate.ts");
}

/**
 * KVM could not emulate an instruction and the userspace emulator is not
 * loaded yet: `await` {@linkcode loadEmulator}, then call runVcpu again (the
 * guest has not moved; KVM fails on the same instruction and it is handled).
 */
export const NEEDS_EMULATOR = new VmStop("error", 0, "needs the emulator");

/** The result of a vCPU that was asked to stop by another (no code of its own). */
export const KICKED = new VmStop("error", 0, "kicked");

/**
 * KVM_RUN returned EINTR: a signal arrived for this thread. The caller lets
 * its event loop run (signal listeners, timers), then calls again.
 */
export const INTERRUPTED = new VmStop("error", 0, "interrupted");

/**
 * The loop paused on its own (see `RunLoopOptions.yieldEveryMs`) so that a
 * caller on the main thread can let its event loop run; call again.
 */
export const YIELDED = new VmStop("error", 0, "yielded");

/**
 * A hypercall is waiting for input: call again after a pause (the caller's
 * event loop or a short sleep); the hypercall is retried before the guest
 * runs on.
 */
export const WAITING = new VmStop("error", 0, "waiting");

/**
 * KVM_EXIT_DEBUG: a breakpoint, watchpoint or single step (only while a
 * debugger has set KVM_SET_GUEST_DEBUG). The details stay in `kvm_run`
 * (`RUN.debug*`) for the caller to read; call again to resume.
 */
export const DEBUG_STOP = new VmStop("error", 0, "debug");

/**
 * While a debugger is attached: the guest reached an `int3` that KVM could
 * not run itself (kvm_pvm's instruction emulator fails on it instead of
 * reporting #BP). RIP still points at the `int3`.
 */
export const INT3_STOP = new VmStop("error", 0, "int3");

/**
 * While single-stepping: an instruction was emulated in userspace (the SSE
 * fallback), which counts as one step; KVM itself reported nothing.
 */
export const EMULATED_STEP = new VmStop("error", 0, "emulated step");

/** A hypercall to retry before the next KVM_RUN (it returned WOULD_BLOCK). */
export interface PendingHypercall {
  /** The handler, or null when nothing is pending. */
  entry: HypercallEntry | null;
  /** Its argument. */
  arg: number;
}

/** The `int3` opcode (a software breakpoint). */
const INT3 = 0xcc;

/** Exits between looks at the clock for `yieldEveryMs`. */
const EXITS_PER_CLOCK_CHECK = 16;

/**
 * Runs the vCPU until it stops the VM, `control[0]` asks it to stop
 * ({@linkcode KICKED}), or a signal interrupts it ({@linkcode INTERRUPTED}).
 */
export function runVcpu(options: RunLoopOptions): VmStop {
  const { vcpu, mem, table, ctx, stats, control } = options;
  const run = vcpu.runView;
  const entries = table.entries;
  const exits = stats.exits;
  const hypercalls = stats.hypercalls;
  const regs = new Regs();
  const sregs = new Sregs();
  const syncRegs = vcpu.syncRegs;
  const net = options.net ?? null;
  const runBytes = new Uint8Array(run.buffer, run.byteOffset, run.byteLength);
  const pci = options.pci;
  let fpu: Parameters<typeof Emulation.emulateFpuStateAccess>[0] | undefined;
  let sse: Parameters<typeof Emulation.emulateSseInstruction>[0] | undefined;
  let sseRunAhead: number | undefined;

  // RDI as a signed number: addresses (< 2^53) read as themselves, and a
  // sign-extended negative exit code (e.g. -1) stays negative.
  const readRdi = (): number => {
    if (syncRegs) {
      return run.getUint32(RUN.syncRegs + 40, true) +
        run.getInt32(RUN.syncRegs + 44, true) * 0x1_0000_0000;
    }
    vcpu.getRegs(regs);
    return Number(BigInt.asIntN(64, regs.getBig("rdi")));
  };

  const fail = (code: number, message: string): VmStop =>
    new VmStop("error", code, message, registerDump(vcpu, mem));

  if (stats.startedAt === 0) stats.startedAt = performance.now();
  const pending = options.pending ?? { entry: null, arg: 0 };
  if (pending.entry !== null) {
    if (Atomics.load(control, 0) !== 0) {
      // A stopping VM does not retry a waiting hypercall: it might wait for good.
      stats.stoppedAt = performance.now();
      return KICKED;
    }
    // KVM completes the OUT only at the next entry, so the retry is invisible to the guest.
    const result = pending.entry.handle(ctx, pending.arg);
    if (result === WOULD_BLOCK) return WAITING;
    pending.entry = null;
    if (result !== RESUME) return result;
  }
  const yieldEveryMs = options.yieldEveryMs;
  let untilClockCheck = EXITS_PER_CLOCK_CHECK;
  let lastYield = performance.now();
  try {
    for (;;) {
      if (Atomics.load(control, 0) !== 0) return KICKED;
      if (yieldEveryMs !== undefined && --untilClockCheck === 0) {
        untilClockCheck = EXITS_PER_CLOCK_CHECK;
        const now = performance.now();
        if (now - lastYield >= yieldEveryMs) {
          lastYield = now;
          return YIELDED;
        }
      }
      const err = vcpu.run();
      if (err !== 0) {
        if (err === ERRNO.EINTR) return Atomics.load(control, 0) !== 0 ? KICKED : INTERRUPTED;
        if (err === ERRNO.EAGAIN) continue;
        throw new KvmError("run the vCPU", err);
      }
      const reason = run.getUint32(RUN.exitReason, true);
      exits[reason < exits.length ? reason : 0]!++;

      if (reason === EXIT.IO) {
        const port = run.getUint16(RUN.ioPort, true);
        const size = run.getUint8(RUN.ioSize);
        const dataOffset = run.getUint32(RUN.ioDataOffset, true);
        if (run.getUint8(RUN.ioDirection) === IO_OUT) {
          const entry = port < MAX_HYPERCALL_PORT ? entries[port] : undefined;
          if (entry !== undefined) {
            hypercalls[port]!++;
            const arg = entry.version === 2
              ? readRdi()
              : size === 4
              ? run.getUint32(dataOffset, true)
              : size === 2
              ? run.getUint16(dataOffset, true)
              : run.getUint8(dataOffset);
            const result = entry.handle(ctx, arg);
            if (result !== RESUME) {
              if (result !== WOULD_BLOCK) return result;
              pending.entry = entry;
              pending.arg = arg;
              return WAITING;
            }
          } else if (port - PCI_CONFIG_PORTS.start >>> 0 < PCI_CONFIG_PORTS.length) {
            stats.portWrites++;
            pci.write(port, size, runBytes, dataOffset);
          } else if (port >= HYPERCALL_REGION_START && port < MAX_HYPERCALL_PORT) {
            return fail(
              EXIT_CODE.GUEST_PROTOCOL,
              `The guest wrote to I/O port ${hex(port)}, which is not a hypercall dhyve knows`,
            );
          } else {
            stats.portWrites++; // legacy device or PCI data write: nothing is there
          }
        } else {
          stats.portReads++;
          const n = size * run.getUint32(RUN.ioCount, true);
          if (port - PCI_CONFIG_PORTS.start >>> 0 < PCI_CONFIG_PORTS.length) {
            pci.read(port, size, n, runBytes, dataOffset);
          } else if (port === V2.SERIAL_READ_BYTE) {
            hypercalls[port]!++;
            const byte = readSerialByte(ctx);
            for (let i = 0; i < n; i++) run.setUint8(dataOffset + i, byte < 0 ? 0xff : 0);
            if (byte >= 0) run.setUint8(dataOffset, byte);
          } else {
            // No device answers (PCI data port included): all ones, as on real hardware.
            for (let i = 0; i < n; i++) run.setUint8(dataOffset + i, 0xff);
          }
        }
        continue;
      }

      switch (reason) {
        case EXIT.MMIO: {
          const addr = run.getUint32(RUN.mmioPhysAddr, true) +
            run.getUint32(RUN.mmioPhysAddr + 4, true) * 0x1_0000_0000;
          const len = run.getUint32(RUN.mmioLen, true);
          const isWrite = run.getUint8(RUN.mmioIsWrite) !== 0;
          if (isWrite) stats.mmioWrites++;
          else stats.mmioReads++;
          if (isMpTableScan(addr)) {
            if (!isWrite) { for (let i = 0; i < 8; i++) run.setUint8(RUN.mmioData + i, 0); }
            continue;
          }
          if (net !== null && inNetWindow(addr) && len <= 8) {
            if (isWrite) net.write(addr - NET_MMIO_BASE, len, runBytes, RUN.mmioData);
            else net.read(addr - NET_MMIO_BASE, len, runBytes, RUN.mmioData);
            continue;
          }
          return fail(
            EXIT_CODE.GUEST_BAD_MEMORY_ACCESS,
            `The guest ${isWrite ? "wrote" : "read"} ${len} bytes at guest-physical ${
              hex(addr)
            }, ` +
              "which is neither RAM nor a device",
          );
        }
        case EXIT.DEBUG:
          return DEBUG_STOP;
        case EXIT.HLT:
          continue; // with the in-kernel LAPIC this is rare; the guest waits for an interrupt
        case EXIT.SHUTDOWN: {
          vcpu.getRegs(regs);
          return fail(
            EXIT_CODE.GUEST_TRIPLE_FAULT,
            `The guest triple-faulted at RIP ${hex(regs.get("rip"))}: ` +
              "it raised an exception it could not handle, and the CPU reset",
          );
        }
        case EXIT.FAIL_ENTRY: {
          const why = run.getBigUint64(RUN.failEntryReason, true);
          return fail(
            EXIT_CODE.GUEST_VCPU_ERROR,
            `KVM could not enter the guest (hardware entry failure reason 0x${why.toString(16)})`,
          );
        }
        case EXIT.INTERNAL_ERROR: {
          const suberror = run.getUint32(RUN.internalSuberror, true);
          if (suberror === INTERNAL_ERROR.EMULATION) {
            const em = emulation;
            if (em === null) return NEEDS_EMULATOR;
            const bytes = instructionBytes();
            if (bytes !== null) {
              sse ??= { vcpu, regs, sregs, scratch: new em.SseScratch(mem) };
              if (options.debug !== undefined) {
                // A single step must be one instruction: no running ahead in userspace.
                sseRunAhead ??= sse.scratch.runAhead;
                sse.scratch.runAhead = options.debug.stepping ? 0 : sseRunAhead;
              }
              const done = em.emulateSseInstruction(sse, bytes);
              if (done !== "not-handled") {
                stats.emulated += Math.max(1, sse.scratch.lastCount);
                // An injected exception is not a step: KVM delivers it on the next entry.
                if (done === "done" && options.debug?.stepping) return EMULATED_STEP;
                continue;
              }
            }
            if (bytes !== null && em.emulateXcrAccess(vcpu, regs, bytes)) {
              stats.emulated++;
              if (options.debug?.stepping) return EMULATED_STEP;
              continue;
            }
            if (bytes !== null) {
              fpu ??= {
                vcpu,
                regs,
                sregs,
                mem,
                layout: options.xsaveLayout,
                scratch: new em.FpuScratch(),
              };
              const done = em.emulateFpuStateAccess(fpu, bytes);
              if (done !== "not-handled") {
                stats.emulated++;
                if (done === "done" && options.debug?.stepping) return EMULATED_STEP;
                continue;
              }
            }
            if (options.debug !== undefined && bytes !== null && bytes[0] === INT3) {
              return INT3_STOP;
            }
            vcpu.getRegs(regs);
            return fail(
              EXIT_CODE.GUEST_UNSUPPORTED_INSTRUCTION,
              em.describeInstruction(regs.get("rip"), bytes, sse?.scratch.reason),
            );
          }
          vcpu.getRegs(regs);
          return fail(
            EXIT_CODE.GUEST_VCPU_ERROR,
            `KVM reported an internal error (suberror ${suberror}) at RIP ${hex(regs.get("rip"))}`,
          );
        }
        default:
          return fail(
            EXIT_CODE.GUEST_VCPU_ERROR,
            `KVM stopped the guest with exit reason ${reason}, which dhyve does not handle`,
          );
      }
    }
  } finally {
    stats.stoppedAt = performance.now();
    ctx.stdout.flush();
    ctx.stderr.flush();
  }

  /** The bytes at RIP: from KVM's emulation-failure record, else from guest memory. */
  function instructionBytes(): Uint8Array | null {
    const flags = run.getUint32(RUN.emulationFlags, true);
    const size = run.getUint8(RUN.emulationInsnSize);
    if ((flags & EMULATION_FLAG_INSTRUCTION_BYTES) !== 0 && size > 0 && size <= 15) {
      return new Uint8Array(run.buffer, run.byteOffset + RUN.emulationInsnBytes, size).slice();
    }
    vcpu.getRegs(regs);
    vcpu.getSregs(sregs);
    const gpa = translate(mem, sregs.getU64(SREGS.cr3), regs.get("rip"));
    if (gpa < mem.base) return null; // unmapped (-1), or below RAM (a v2 guest's low 4 GiB)
    const n = Math.min(15, mem.end - gpa);
    return n > 0 ? mem.bytes(gpa, n).slice() : null;
  }
}
