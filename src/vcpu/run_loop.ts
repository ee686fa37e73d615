/**
 * The vCPU run loop: KVM_RUN → decode the exit from `kvm_run` → hand port
 * I/O and MMIO to the buses (the only dispatch) → resume or report. Reads
 * `kvm_run` through one DataView, bumps typed-array counters and returns a
 * number: nothing is allocated per exit. EINTR and EAGAIN are outcomes, not
 * errors. State that must outlive one call (a hypercall waiting for input,
 * the emulator's scratch) lives on the {@linkcode VcpuLoop}; device state
 * lives in the devices.
 * @module
 */

import { EMULATION_FLAG_INSTRUCTION_BYTES, EXIT, INTERNAL_ERROR, SREGS } from "../abi/kvm.ts";
import type { BusDevice } from "../bus/bus.ts";
import { buildBuses, type Buses } from "../devices/board.ts";
import { HypercallPorts, type RdiSource } from "../devices/hypercall_ports.ts";
import { Ioapic } from "../devices/ioapic.ts";
import { busZero } from "../devices/pci_config.ts";
import { ERRNO } from "../errno.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import {
  type HandlerResult,
  type HypercallContext,
  RESUME,
  VmStop,
  WOULD_BLOCK,
} from "../hypercall/context.ts";
import { hex } from "../hex.ts";
import { buildHypercallTable } from "../hypercall/table.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { translate } from "../memory/paging.ts";
import { KvmError } from "../kvm/errors.ts";
import { Regs, Sregs } from "../kvm/regs.ts";
import type { KvmRun } from "../kvm/run.ts";
import type { VcpuFd } from "../kvm/vcpu.ts";
import type { XsaveLayout } from "../emulate/xsave.ts";
import type * as Emulation from "./emulate.ts";
import { registerDump } from "./dump.ts";
import type { NetRegisters } from "../virtio/net_registers.ts";
import type { VcpuStats } from "./stats.ts";

/** What the run loop must know while a debugger is attached. */
export interface DebugControl {
  /** KVM_GUESTDBG_SINGLESTEP is on: an instruction emulated here counts as one step. */
  stepping: boolean;
}

/** What the run loop needs; built once per vCPU. */
export interface RunLoopOptions {
  /** The vCPU to run. */
  readonly vcpu: VcpuFd;
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Handler context for this vCPU (its output is flushed whenever the loop returns). */
  readonly ctx: HypercallContext;
  /** Counters for this vCPU. */
  readonly stats: VcpuStats;
  /** Shared control word: index 0 becomes non-zero when the VM must stop. */
  readonly control: Int32Array;
  /** Where XSAVE components live (CPUID leaf 0xD), for FPU-state emulation. */
  readonly xsaveLayout: XsaveLayout;
  /** The devices: port I/O and MMIO go there and nowhere else (see `devices/board.ts`). */
  readonly buses: Buses;
  /**
   * Return {@linkcode OUTCOME}.YIELDED after about this long of busy exits,
   * so a main-thread caller can run signal listeners and check its deadline
   * even while the guest exits constantly. Undefined: never (vCPU Workers).
   */
  readonly yieldEveryMs?: number;
}

/**
 * How a call of {@linkcode VcpuLoop.run} ended: a small number, so that the
 * loop allocates nothing to say it.
 */
export const OUTCOME = {
  /** The VM must stop: {@linkcode VcpuLoop.stop} says why. */
  STOPPED: 0,
  /** Another vCPU (or the supervisor) asked this one to stop; no result of its own. */
  KICKED: 1,
  /** KVM_RUN returned EINTR: let the event loop run (signal listeners), then call again. */
  INTERRUPTED: 2,
  /** The loop paused on its own (`yieldEveryMs`); call again. */
  YIELDED: 3,
  /** A hypercall waits for input: call again after a pause; it is retried first. */
  WAITING: 4,
  /** KVM_EXIT_DEBUG (breakpoint, watchpoint, single step); details stay in `kvm_run`. */
  DEBUG: 5,
  /** Under a debugger: an `int3` KVM could not run itself (kvm_pvm); RIP points at it. */
  INT3: 6,
  /** While single-stepping: an instruction was emulated in userspace (one step). */
  EMULATED_STEP: 7,
  /** KVM could not emulate an instruction: `await loadEmulator()`, then call again. */
  NEEDS_EMULATOR: 8,
} as const;

/** One of {@linkcode OUTCOME}'s values. */
export type Outcome = (typeof OUTCOME)[keyof typeof OUTCOME];

/**
 * The userspace instruction emulator (SSE, XSAVE, xgetbv), loaded on first
 * need: hosts with hardware KVM never use it, so start-up does not pay for it.
 */
let emulation: typeof Emulation | null = null;

/** Loads the instruction emulator; call before running on a thread that cannot wait later. */
export async function loadEmulator(): Promise<void> {
  emulation ??= await import("./emulate.ts");
}

/** The `int3` opcode (a software breakpoint). */
const INT3 = 0xcc;

/** Exits between looks at the clock for `yieldEveryMs`. */
const EXITS_PER_CLOCK_CHECK = 16;

/** RDI of a vCPU: from the synced registers in `kvm_run` when KVM offers them, else KVM_GET_REGS. */
function rdiOf(vcpu: VcpuFd): RdiSource {
  const run = vcpu.kvmRun;
  const regs = new Regs();
  return {
    rdi(): number {
      if (vcpu.syncRegs) return run.rdi();
      vcpu.getRegs(regs);
      return Number(BigInt.asIntN(64, regs.getBig("rdi")));
    },
  };
}

/**
 * dhyve's board for one vCPU: its hypercall ports, the PCI configuration
 * ports (with the virtio-net function, `--net`), the MP-table holes, the
 * net MMIO window and, with a split interrupt controller, the IOAPIC.
 */
export function vcpuBuses(
  vcpu: VcpuFd,
  devices: {
    ctx: HypercallContext;
    stats: VcpuStats;
    net: NetRegisters | null;
    /** The VM's IOAPIC state when its interrupt controller is split, else null. */
    ioapic: SharedArrayBuffer | null;
  },
): Buses {
  return buildBuses({
    hypercalls: new HypercallPorts(
      buildHypercallTable(),
      devices.ctx,
      devices.stats.hypercalls,
      rdiOf(vcpu),
    ),
    pci: busZero(devices.net),
    net: devices.net,
    ioapic: devices.ioapic === null ? null : new Ioapic(devices.ioapic),
  });
}

/**
 * One vCPU's run loop. Build it once per vCPU and call {@linkcode run}
 * until it returns {@linkcode OUTCOME}.STOPPED or KICKED.
 */
export class VcpuLoop {
  /** The options it was built with. */
  readonly options: RunLoopOptions;
  /** Present only while a debugger is attached (`--gdb-port`); the stub sets and clears it. */
  debug: DebugControl | null = null;
  /** After {@linkcode OUTCOME}.STOPPED: why the VM stops. */
  stop: VmStop | null = null;
  /** See `RunLoopOptions.yieldEveryMs`; a run mode may change it (the GDB stub's time slice). */
  yieldEveryMs: number | undefined;

  readonly #run: KvmRun;
  readonly #runBytes: Uint8Array;
  readonly #regs = new Regs();
  readonly #sregs = new Sregs();
  /** A device access to repeat before the next KVM_RUN (it returned WOULD_BLOCK). */
  #pending: BusDevice | null = null;
  #pendingAddr = 0;
  #pendingSize = 0;
  #pendingCount = 0;
  #pendingOut = false;
  #pendingAt = 0;
  #fpu: Parameters<typeof Emulation.emulateFpuStateAccess>[0] | undefined;
  #sse: Parameters<typeof Emulation.emulateSseInstruction>[0] | undefined;
  #sseRunAhead: number | undefined;

  /** A loop over `options.vcpu`. */
  constructor(options: RunLoopOptions) {
    this.options = options;
    this.yieldEveryMs = options.yieldEveryMs;
    this.#run = options.vcpu.kvmRun;
    this.#runBytes = this.#run.bytes;
  }

  /**
   * Runs the vCPU until the VM must stop ({@linkcode stop} says why),
   * `control[0]` asks it to stop, a signal interrupts it, or another
   * {@linkcode OUTCOME} wants the caller's attention.
   */
  run(): Outcome {
    const { stats, control, ctx } = this.options;
    if (stats.startedAt === 0) stats.startedAt = performance.now();
    try {
      if (this.#pending !== null) {
        // A stopping VM does not retry a waiting access: it might wait for good.
        if (Atomics.load(control, 0) !== 0) return OUTCOME.KICKED;
        // KVM completes the OUT only at the next entry, so the retry is invisible to the guest.
        const device = this.#pending;
        const result = this.#pendingOut
          ? device.write(this.#pendingAddr, this.#pendingSize, this.#runBytes, this.#pendingAt)
          : device.read(
            this.#pendingAddr,
            this.#pendingSize,
            this.#pendingCount,
            this.#runBytes,
            this.#pendingAt,
          );
        if (result === WOULD_BLOCK) return OUTCOME.WAITING;
        this.#pending = null;
        if (result !== RESUME) return this.#stopWith(result);
      }
      return this.exitLoop();
    } finally {
      stats.stoppedAt = performance.now();
      ctx.stdout.flush();
      ctx.stderr.flush();
    }
  }

  /**
   * The loop of {@linkcode run}, which callers use instead. Public only so
   * that the build can compile it with its file (`scripts/eager_compile.ts`):
   * V8 compiles a private method on its first call, ~0.2 ms of every start.
   */
  exitLoop(): Outcome {
    const { vcpu, stats, control, buses } = this.options;
    const run = this.#run;
    const runBytes = this.#runBytes;
    const exits = stats.exits;
    const ports = buses.ports;
    const mmio = buses.mmio;
    const hypercalls = buses.hypercalls;
    const yieldEveryMs = this.yieldEveryMs;
    let untilClockCheck = EXITS_PER_CLOCK_CHECK;
    const lastYield = performance.now();
    // Read before the loop: a property read on a path the loop has not taken yet has no type
    // feedback when V8 optimises the loop, and the first run of that path (the first yield,
    // 50 ms into a busy run) threw the optimised code away and V8 compiled it again
    // (--trace-deopt, 100 000 exits: 4 deoptimisations of this loop, now 3).
    const { KICKED, YIELDED, INTERRUPTED } = OUTCOME;
    const { EINTR, EAGAIN } = ERRNO;
    for (;;) {
      if (Atomics.load(control, 0) !== 0) return KICKED;
      if (yieldEveryMs !== undefined && --untilClockCheck === 0) {
        untilClockCheck = EXITS_PER_CLOCK_CHECK;
        const now = performance.now();
        if (now - lastYield >= yieldEveryMs) return YIELDED;
      }
      const err = vcpu.run();
      if (err !== 0) {
        if (err === EINTR) return Atomics.load(control, 0) !== 0 ? KICKED : INTERRUPTED;
        if (err === EAGAIN) continue;
        throw new KvmError("run the vCPU", err);
      }
      const reason = run.exitReason;
      exits[reason < exits.length ? reason : 0]!++;

      if (reason === EXIT.IO) {
        const port = run.ioPort;
        const size = run.ioSize;
        const at = run.ioDataOffset;
        const out = run.ioIsOut;
        const n = size * run.ioCount;
        const device = ports.find(port);
        if (out) {
          if (device !== hypercalls) stats.portWrites++;
        } else {
          stats.portReads++;
        }
        if (device === null) {
          // Nothing there (a legacy device): writes vanish, reads give all ones.
          if (!out) runBytes.fill(0xff, at, at + n);
          continue;
        }
        const result = out
          ? device.write(port, size, runBytes, at)
          : device.read(port, size, n, runBytes, at);
        if (result === RESUME) continue;
        if (result === WOULD_BLOCK) {
          this.#pending = device;
          this.#pendingAddr = port;
          this.#pendingSize = size;
          this.#pendingCount = n;
          this.#pendingOut = out;
          this.#pendingAt = at;
          return OUTCOME.WAITING;
        }
        return this.#stopWith(result);
      }

      switch (reason) {
        case EXIT.MMIO: {
          const addr = run.mmioAddress;
          const len = run.mmioLength;
          const isWrite = run.mmioIsWrite;
          if (isWrite) stats.mmioWrites++;
          else stats.mmioReads++;
          const device = len <= 8 ? mmio.find(addr) : null;
          if (device === null) {
            return this.#fail(
              EXIT_CODE.GUEST_BAD_MEMORY_ACCESS,
              `The guest ${isWrite ? "wrote" : "read"} ${len} bytes at guest-physical ${
                hex(addr)
              }, which is neither RAM nor a device`,
            );
          }
          const result = isWrite
            ? device.write(addr, len, runBytes, run.mmioDataOffset)
            : device.read(addr, len, len, runBytes, run.mmioDataOffset);
          if (result === RESUME) continue;
          // MMIO devices never wait: an access cannot be repeated once the guest ran on.
          return this.#stopWith(
            result === WOULD_BLOCK
              ? new VmStop("error", EXIT_CODE.INTERNAL, `${device.name} cannot wait on MMIO`)
              : result,
          );
        }
        case EXIT.DEBUG:
          return OUTCOME.DEBUG;
        case EXIT.HLT:
          continue; // with the in-kernel LAPIC this is rare; the guest waits for an interrupt
        case EXIT.SHUTDOWN: {
          vcpu.getRegs(this.#regs);
          return this.#fail(
            EXIT_CODE.GUEST_TRIPLE_FAULT,
            `The guest triple-faulted at RIP ${hex(this.#regs.get("rip"))}: ` +
              "it raised an exception it could not handle, and the CPU reset",
          );
        }
        case EXIT.FAIL_ENTRY: {
          const why = run.failEntryReason;
          return this.#fail(
            EXIT_CODE.GUEST_VCPU_ERROR,
            `KVM could not enter the guest (hardware entry failure reason 0x${why.toString(16)})`,
          );
        }
        case EXIT.INTERNAL_ERROR: {
          const outcome = this.#internalError();
          if (outcome === null) continue;
          return outcome;
        }
        default:
          return this.#fail(
            EXIT_CODE.GUEST_VCPU_ERROR,
            `KVM stopped the guest with exit reason ${reason}, which dhyve does not handle`,
          );
      }
    }
  }

  /** KVM_EXIT_INTERNAL_ERROR: the userspace emulator's turn; null when handled (resume). */
  #internalError(): Outcome | null {
    const { vcpu, mem, stats } = this.options;
    const regs = this.#regs;
    const sregs = this.#sregs;
    const suberror = this.#run.internalSuberror;
    if (suberror !== INTERNAL_ERROR.EMULATION) {
      vcpu.getRegs(regs);
      return this.#fail(
        EXIT_CODE.GUEST_VCPU_ERROR,
        `KVM reported an internal error (suberror ${suberror}) at RIP ${hex(regs.get("rip"))}`,
      );
    }
    const em = emulation;
    if (em === null) return OUTCOME.NEEDS_EMULATOR;
    const stepping = this.debug?.stepping ?? false;
    const bytes = this.#instructionBytes();
    if (bytes !== null) {
      const sse = this.#sse ??= { vcpu, regs, sregs, scratch: new em.SseScratch(mem) };
      if (this.debug !== null) {
        // A single step must be one instruction: no running ahead in userspace.
        this.#sseRunAhead ??= sse.scratch.runAhead;
        sse.scratch.runAhead = stepping ? 0 : this.#sseRunAhead;
      } else if (this.#sseRunAhead !== undefined) {
        sse.scratch.runAhead = this.#sseRunAhead;
      }
      const done = em.emulateSseInstruction(sse, bytes);
      if (done !== "not-handled") {
        stats.emulated += Math.max(1, sse.scratch.lastCount);
        // An injected exception is not a step: KVM delivers it on the next entry.
        return done === "done" && stepping ? OUTCOME.EMULATED_STEP : null;
      }
      if (em.emulateXcrAccess(vcpu, regs, bytes)) {
        stats.emulated++;
        return stepping ? OUTCOME.EMULATED_STEP : null;
      }
      const fpu = this.#fpu ??= {
        vcpu,
        regs,
        sregs,
        mem,
        layout: this.options.xsaveLayout,
        scratch: new em.FpuScratch(),
      };
      const fpuDone = em.emulateFpuStateAccess(fpu, bytes);
      if (fpuDone !== "not-handled") {
        stats.emulated++;
        return fpuDone === "done" && stepping ? OUTCOME.EMULATED_STEP : null;
      }
      if (this.debug !== null && bytes[0] === INT3) return OUTCOME.INT3;
    }
    vcpu.getRegs(regs);
    return this.#fail(
      EXIT_CODE.GUEST_UNSUPPORTED_INSTRUCTION,
      em.describeInstruction(regs.get("rip"), bytes, this.#sse?.scratch.reason),
    );
  }

  /** Ends the run with a device's or handler's stop; a fault gets a register dump for -v. */
  #stopWith(result: Exclude<HandlerResult, typeof RESUME | typeof WOULD_BLOCK>): Outcome {
    this.stop = result.kind === "error" && result.detail === ""
      ? new VmStop(
        "error",
        result.code,
        result.message,
        registerDump(this.options.vcpu, this.options.mem),
      )
      : result;
    return OUTCOME.STOPPED;
  }

  /** Ends the run with a fault of the guest's, with a register dump for -v. */
  #fail(code: number, message: string): Outcome {
    this.stop = new VmStop(
      "error",
      code,
      message,
      registerDump(this.options.vcpu, this.options.mem),
    );
    return OUTCOME.STOPPED;
  }

  /** The bytes at RIP: from KVM's emulation-failure record, else from guest memory. */
  #instructionBytes(): Uint8Array | null {
    const { vcpu, mem } = this.options;
    const reported = this.#run.emulationInstruction(EMULATION_FLAG_INSTRUCTION_BYTES);
    if (reported !== null) return reported;
    vcpu.getRegs(this.#regs);
    vcpu.getSregs(this.#sregs);
    const gpa = translate(mem, this.#sregs.getU64(SREGS.cr3), this.#regs.get("rip"));
    if (gpa < mem.base) return null; // unmapped (-1), or below RAM (a v2 guest's low 4 GiB)
    const n = Math.min(15, mem.end - gpa);
    return n > 0 ? mem.bytes(gpa, n).slice() : null;
  }
}
