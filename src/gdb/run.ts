/**
 * `--gdb-port`: runs the VM under the GDB remote stub. Waits for the
 * debugger before the guest runs, then alternates between serving packets
 * (guest stopped) and running the guest until a breakpoint, watchpoint,
 * single step, Ctrl-C (0x03) or the guest's end.
 *
 * Every vCPU runs on the main thread, one after another in time slices
 * (KVM_RUN is cut short by a thread timer), so when one stops, all have
 * stopped: all-stop mode needs no cross-thread kicks, and any vCPU's
 * registers can be read. That costs SMP guests their parallelism while
 * debugging, nothing else. A debugger that detaches or disconnects leaves
 * the guest running to its end, without breakpoints.
 * @module
 */

import { DEBUG_VECTOR } from "../abi/kvm.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { VmStop } from "../hypercall/context.ts";
import { currentThreadId, ThreadTicker, type VcpuFd } from "../kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  type DebugControl,
  loadEmulator,
  OUTCOME,
  type Outcome,
  type VcpuLoop,
} from "../vcpu/run_loop.ts";
import { timeoutStop } from "../vcpu/timeout.ts";
import type { Supervisor } from "../machine/supervisor.ts";
import { sleep } from "../host/sleep.ts";
import { acceptDebugger, Connection } from "./connection.ts";
import { KvmGdbTarget } from "./kvm_target.ts";
import { encodePacket } from "./packet.ts";
import { GdbSession, SIGNAL, type StopEvent } from "./protocol.ts";

/** What {@linkcode runUnderDebugger} needs from the VM assembly. */
export interface DebugRunOptions {
  /** TCP port on 127.0.0.1 (and ::1 where possible); 0 picks a free one. */
  readonly port: number;
  /** The run loop of each vCPU (main-thread contexts), in vCPU order. */
  readonly loops: readonly VcpuLoop[];
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** How far the kernel was moved from its link address (reported by `qOffsets`). */
  readonly loadOffset: number;
  /** Stop the VM after the guest ran this long (time stopped in the debugger not counted). */
  readonly timeoutMs?: number | undefined;
  /** Host-side notices for the user (listening port, load address). */
  readonly notify: (message: string) => void;
  /** The run's supervisor: SIGINT/SIGTERM end the run (its clock is not used: see timeoutMs). */
  readonly supervisor: Supervisor;
}

/** The guest's time slice before the next vCPU's turn (and a look at the socket). */
const SLICE_MS = 20;
/** How long a vCPU waiting for stdin sleeps before the next round. */
const INPUT_POLL_MS = 10;
const ACK = Uint8Array.of(0x2b); // "+"
const NACK = Uint8Array.of(0x2d); // "-": send that packet again

/** What running the guest ended with. */
type RunResult =
  | { readonly type: "debug"; readonly event: StopEvent }
  /** The VM stopped; `thread` is the vCPU that stopped it, when one did. */
  | { readonly type: "vm"; readonly stop: VmStop; readonly thread?: number }
  | { readonly type: "disconnected" };

/** True for a stop that is just a completed single step (no breakpoint, no signal). */
function isPlainStep(result: RunResult): boolean {
  return result.type === "debug" && result.event.type === "signal" &&
    result.event.signal === SIGNAL.SIGTRAP && result.event.reason === undefined;
}

/**
 * The signal GDB is told for a guest fault (SIGILL for an instruction KVM
 * cannot run, SIGSEGV for the others), or null for a stop that is not a
 * fault (an exit, a signal to dhyve, --timeout).
 */
function faultSignal(stop: VmStop): number | null {
  switch (stop.code) {
    case EXIT_CODE.GUEST_UNSUPPORTED_INSTRUCTION:
      return stop.kind === "error" ? SIGNAL.SIGILL : null;
    case EXIT_CODE.GUEST_TRIPLE_FAULT:
    case EXIT_CODE.GUEST_PROTOCOL:
    case EXIT_CODE.GUEST_BAD_MEMORY_ACCESS:
    case EXIT_CODE.GUEST_VCPU_ERROR:
      return stop.kind === "error" ? SIGNAL.SIGSEGV : null;
    default:
      return null;
  }
}

/**
 * Runs the VM under the debugger until it stops; returns how it stopped.
 * @throws {GdbListenError} when the port cannot be opened.
 */
export async function runUnderDebugger(options: DebugRunOptions): Promise<VmStop> {
  const signals = options.supervisor;
  await loadEmulator(); // the stepping loop expects it ready
  try {
    const raw = await acceptDebugger(options.port, options.notify, signals.woken);
    if (raw === null) return signals.stop ?? new VmStop("error", EXIT_CODE.SIGINT, "Stopped");
    return await new DebugRun(options, new Connection(raw), signals).serve();
  } finally {
    for (const loop of options.loops) loop.debug = null;
  }
}

/** The stop reply for a signal that ended the run: X02 (SIGINT) or X0f (SIGTERM). */
function terminated(stop: VmStop | null): StopEvent {
  const code = stop?.code ?? EXIT_CODE.SIGINT;
  return { type: "terminated", signal: code - 128 };
}

/** One debugging session: the connection, the protocol state and the vCPUs. */
class DebugRun {
  readonly #options: DebugRunOptions;
  readonly #conn: Connection;
  readonly #signals: Supervisor;
  readonly #vcpus: VcpuFd[];
  readonly #target: KvmGdbTarget;
  readonly #session: GdbSession;
  /** Per vCPU: tells the run loop when a single step is wanted. */
  readonly #controls: DebugControl[];
  /** The vCPUs' run loops; their `debug` is set while the debugger is attached. */
  readonly #loops: readonly VcpuLoop[];
  #lastReply: Uint8Array | null = null;
  /** A guest fault the debugger is looking at; the guest cannot run on after it. */
  #fault: VmStop | null = null;
  /** Milliseconds the guest ran (for --timeout; time stopped does not count). */
  #ranMs = 0;
  /** The vCPU whose turn comes next when the guest continues. */
  #nextThread = 1;

  constructor(options: DebugRunOptions, conn: Connection, signals: Supervisor) {
    this.#options = options;
    this.#conn = conn;
    this.#signals = signals;
    this.#vcpus = options.loops.map((l) => l.options.vcpu);
    this.#target = new KvmGdbTarget(this.#vcpus, options.mem, options.loadOffset);
    this.#session = new GdbSession(this.#target);
    this.#controls = options.loops.map(() => ({ stepping: false }));
    this.#loops = options.loops;
    for (const loop of this.#loops) loop.yieldEveryMs = SLICE_MS;
  }

  /** Serves packets until the VM stops (or runs on after the debugger left). */
  async serve(): Promise<VmStop> {
    const conn = this.#conn;
    const session = this.#session;
    for (;;) {
      const input = await conn.next(this.#signals.woken);
      if (this.#signals.stop !== null) {
        await this.#reply(session.stopReply(terminated(this.#signals.stop)));
        return this.#end(this.#signals.stop);
      }
      if (input === null) return await this.#leave("disconnected");
      if (input.type === "nack") {
        if (!session.noAck && this.#lastReply !== null) await conn.send(this.#lastReply);
        continue;
      }
      if (input.type === "ack" || input.type === "interrupt") continue;
      if (input.type === "bad-packet") {
        if (!session.noAck) await conn.send(NACK);
        continue;
      }
      if (!session.noAck) await conn.send(ACK);
      const outcome = session.handle(input.payload);
      if (outcome.reply !== null) await this.#reply(outcome.reply);
      const action = outcome.action;
      if (action.type === "detach") return await this.#leave("detached");
      if (action.type === "kill") {
        return this.#end(new VmStop("error", EXIT_CODE.DEBUGGER_KILL, "Killed by the debugger"));
      }
      if (action.type !== "resume") continue;
      if (this.#fault !== null) {
        // Nothing can run on after a fault: resuming ends the run, as it would have without GDB.
        await this.#reply(session.stopReply({ type: "exited", code: this.#fault.code }));
        return this.#end(this.#fault);
      }

      const result = await this.#resume(action.step);
      if (result.type === "disconnected") return await this.#leave("disconnected");
      if (result.type === "debug") {
        await this.#reply(session.stopReply(result.event));
        continue;
      }
      const stop = result.stop;
      const signal = faultSignal(stop);
      if (signal !== null && result.thread !== undefined) {
        // Let the debugger look at the vCPU that faulted, as at a native program's crash.
        this.#fault = stop;
        this.#options.notify(`${stop.message}; stopped in the debugger (continue ends the run)`);
        await this.#reply(session.stopReply({ type: "signal", thread: result.thread, signal }));
        continue;
      }
      await this.#reply(session.stopReply(
        stop === this.#signals.stop
          ? terminated(this.#signals.stop)
          : { type: "exited", code: stop.code },
      ));
      return this.#end(stop);
    }
  }

  async #reply(payload: string | Uint8Array): Promise<void> {
    this.#lastReply = encodePacket(payload);
    await this.#conn.send(this.#lastReply);
  }

  /** Restores the guest's code, turns KVM debugging off, hangs up; returns `stop`. */
  #end(stop: VmStop): VmStop {
    this.#restoreGuest();
    this.#conn.close();
    return stop;
  }

  /** Takes every breakpoint out of the guest and turns KVM debugging off. */
  #restoreGuest(): void {
    try {
      this.#session.breakpoints.removeAllSoftware(this.#target.memory(1));
      this.#session.breakpoints.removeAllHardware();
      this.#target.disarm();
    } catch {
      // A failed ioctl while the VM goes away: nothing more to restore.
    }
    for (const c of this.#controls) c.stepping = false;
  }

  /** The debugger left: the guest runs on to its end, unless it already faulted. */
  async #leave(why: "detached" | "disconnected"): Promise<VmStop> {
    return this.#fault !== null ? this.#end(this.#fault) : await this.#runOnWithout(why);
  }

  /** The debugger left: remove every breakpoint and run the guest to its end. */
  async #runOnWithout(why: "detached" | "disconnected"): Promise<VmStop> {
    this.#options.notify(`The debugger ${why}; the guest runs on without it`);
    this.#restoreGuest();
    this.#conn.close();
    const ticker = ThreadTicker.start(currentThreadId(), SLICE_MS);
    try {
      for (let thread = this.#nextThread;; thread = (thread % this.#vcpus.length) + 1) {
        const result = await this.#runThread(thread, { stepping: false, plain: true });
        if (result !== null && result.type === "vm") return result.stop;
      }
    } finally {
      ticker?.stop();
    }
  }

  /**
   * Runs the guest after `c`/`s`: `step` single-steps that thread only (the
   * others stay stopped); null continues every vCPU in turns.
   */
  async #resume(step: number | null): Promise<RunResult> {
    const bp = this.#session.breakpoints;
    const target = this.#target;
    // KVM's emulator on kvm_pvm ignores DR7 data breakpoints: check writes by single-stepping.
    const softWatch = step === null && bp.hardwareSlots.some((s) => s?.kind === "write");
    const watched = softWatch ? this.#snapshotWatches() : [];
    const ticker = ThreadTicker.start(currentThreadId(), SLICE_MS);
    let thread = step ?? this.#nextThread;
    try {
      // Step off a hardware breakpoint at the current RIP first, or it fires again at once.
      for (const t of step === null ? this.#vcpus.map((_, i) => i + 1) : [step]) {
        if (bp.execSlotAt(target.pc(t)) < 0) continue;
        this.#controls.forEach((c, i) => (c.stepping = i + 1 === t));
        this.#arm(target.arm(bp, t, t));
        const result = await this.#runThread(t, { stepping: true, plain: false });
        // That step was all `s` asked for; a continue goes on unless something else happened.
        if (result !== null && (step !== null || !isPlainStep(result))) return result;
      }
      this.#controls.forEach((c, i) => (c.stepping = softWatch || i + 1 === step));
      this.#arm(target.arm(bp, softWatch ? "all" : step));
      let sliceStarted = performance.now();
      for (;;) {
        const result = await this.#runThread(thread, { stepping: step !== null, plain: false });
        if (result === null) {
          if (step === null) thread = (thread % this.#vcpus.length) + 1;
          continue;
        }
        if (!softWatch || !isPlainStep(result)) return result;
        // A step taken only to watch memory: report it only if a watched value changed.
        const changed = this.#changedWatch(watched, thread);
        if (changed !== null) {
          return {
            type: "debug",
            event: { type: "signal", thread, signal: SIGNAL.SIGTRAP, reason: changed },
          };
        }
        if (performance.now() - sliceStarted >= SLICE_MS) {
          // Every step returns here, so the slice ends by the clock: other vCPUs get their
          // turn, and the event loop sees Ctrl-C and signals.
          await sleep(0);
          const pending = this.#checkBetweenSlices(thread, false);
          if (pending !== null) return pending;
          thread = (thread % this.#vcpus.length) + 1;
          sliceStarted = performance.now();
        }
      }
    } finally {
      ticker?.stop();
      if (step === null) this.#nextThread = thread;
    }
  }

  /** Warns once per resume when KVM refused the debug state. */
  #arm(errno: number): void {
    if (errno !== 0) {
      this.#options.notify(`KVM_SET_GUEST_DEBUG failed (errno ${errno}); breakpoints may not fire`);
    }
  }

  /**
   * Runs thread `t` for one slice; null when the slice ended with nothing to
   * report (the caller moves on to the next vCPU). With `stepping`, it keeps
   * going until the step completes. `plain`: the debugger has left.
   */
  async #runThread(
    t: number,
    how: { stepping: boolean; plain: boolean },
  ): Promise<RunResult | null> {
    const loop = this.#loops[t - 1]!;
    loop.debug = how.plain ? null : this.#controls[t - 1]!;
    for (;;) {
      const started = performance.now();
      const outcome = loop.run();
      this.#ranMs += performance.now() - started;
      if (
        outcome === OUTCOME.DEBUG || outcome === OUTCOME.INT3 ||
        outcome === OUTCOME.EMULATED_STEP
      ) {
        if (!how.plain) return { type: "debug", event: this.#debugEvent(t, outcome) };
      } else if (outcome === OUTCOME.WAITING) {
        await sleep(INPUT_POLL_MS);
      } else if (outcome === OUTCOME.NEEDS_EMULATOR) {
        await loadEmulator();
      } else if (outcome !== OUTCOME.STOPPED) {
        await sleep(0); // the event loop's turn: socket input, signals
      } else {
        const stop = loop.stop ??
          new VmStop("error", EXIT_CODE.INTERNAL, "Stopped without a reason");
        return { type: "vm", stop, thread: t };
      }
      const pending = this.#checkBetweenSlices(t, how.plain);
      if (pending !== null) return pending;
      if (!how.stepping) return null;
    }
  }

  /**
   * What must end a run between two slices: a signal, --timeout, the
   * debugger hanging up or pressing Ctrl-C (those two only while attached).
   */
  #checkBetweenSlices(t: number, plain: boolean): RunResult | null {
    if (this.#signals.stop !== null) return { type: "vm", stop: this.#signals.stop };
    const timeoutMs = this.#options.timeoutMs;
    if (timeoutMs !== undefined && this.#ranMs >= timeoutMs) {
      return { type: "vm", stop: timeoutStop(timeoutMs) };
    }
    if (!plain && this.#conn.closed) return { type: "disconnected" };
    if (!plain && this.#conn.takeInterrupt()) {
      return { type: "debug", event: { type: "signal", thread: t, signal: SIGNAL.SIGINT } };
    }
    return null;
  }

  /** Why thread `t` stopped (KVM_EXIT_DEBUG leaves the details in kvm_run). */
  #debugEvent(t: number, outcome: Outcome): StopEvent {
    const trap = { type: "signal", thread: t, signal: SIGNAL.SIGTRAP } as const;
    if (outcome === OUTCOME.INT3) return { ...trap, reason: { kind: "swbreak" } };
    if (outcome === OUTCOME.EMULATED_STEP) return trap;
    const run = this.#vcpus[t - 1]!.kvmRun;
    if (run.debugException === DEBUG_VECTOR.BP) {
      return { ...trap, reason: { kind: "swbreak" } };
    }
    const bp = this.#session.breakpoints;
    const slot = bp.slotFromDr6(run.debugDr6);
    const armed = slot < 0 ? null : bp.hardwareSlots[slot]!;
    if (armed === null) return trap; // DR6.BS (a single step), or a #DB nobody asked for
    if (armed.kind === "exec") return { ...trap, reason: { kind: "hwbreak" } };
    const kind = armed.kind === "write" ? "watch" : armed.kind === "read" ? "rwatch" : "awatch";
    return { ...trap, reason: { kind, addr: armed.addr } };
  }

  #snapshotWatches(): WatchedValue[] {
    const mem = this.#target.memory(this.#session.generalThread);
    const out: WatchedValue[] = [];
    for (const s of this.#session.breakpoints.hardwareSlots) {
      if (s === null || s.kind !== "write") continue;
      out.push({ addr: s.addr, length: s.length, bytes: mem.read(s.addr, s.length) });
    }
    return out;
  }

  /** The first watched value that changed since the last look (and remembers the new bytes). */
  #changedWatch(watched: WatchedValue[], thread: number): { kind: "watch"; addr: number } | null {
    const mem = this.#target.memory(thread);
    for (const w of watched) {
      const now = mem.read(w.addr, w.length);
      const same = now !== null && w.bytes !== null && now.every((b, i) => b === w.bytes![i]);
      if (!same) {
        w.bytes = now;
        return { kind: "watch", addr: w.addr };
      }
    }
    return null;
  }
}

/** A watched write slot and the bytes it held at the last look. */
interface WatchedValue {
  readonly addr: number;
  readonly length: number;
  bytes: Uint8Array | null;
}
