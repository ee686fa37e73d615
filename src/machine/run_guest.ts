/**
 * Step 9 of a run: the run modes. Under the debugger every vCPU runs on this
 * thread in turns (gdb/run.ts); one vCPU runs on this thread (run_one.ts);
 * more run one Worker each (run_smp.ts). All of them under the supervisor.
 * @module
 */

import type { GuestCommandLine, VmStop } from "../hypercall/context.ts";
import type { GuestOutput } from "../io/guest_output.ts";
import { currentAffinity, pinCurrentThread, restoreAffinity } from "../kvm.ts";
import { logger } from "../log.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
// The GDB stub, the net device's registers and the SMP Workers load only when used.
import type { NetDevice } from "../net/net_device.ts";
import type { NetRegisters } from "../virtio/net_registers.ts";
import type { VmParams } from "../params.ts";
import type { Sandbox } from "../sandbox/sandbox.ts";
import { vcpuContext } from "../vcpu/context.ts";
import { hostStdin } from "../vcpu/host_stdio.ts";
import { vcpuBuses, VcpuLoop } from "../vcpu/run_loop.ts";
import { VcpuStats } from "../vcpu/stats.ts";
import type { Machine } from "./boot_state.ts";
import { runOneVcpu, YIELD_EVERY_MS } from "./run_one.ts";
import type { Supervisor } from "./supervisor.ts";

const log = logger("vm");

/** What a run mode needs. */
export interface RunInput extends Machine {
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Host address of guest RAM (vCPU Workers map it again). */
  readonly memAddress: number;
  /** argv/env for Cmdsize/Cmdval. */
  readonly cmdline: GuestCommandLine;
  /** The guest's files. */
  readonly sandbox: Sandbox;
  /** Guest stdout (serial and fd 1) for vCPUs on this thread. */
  readonly stdout: GuestOutput;
  /** Guest stderr (fd 2) for vCPUs on this thread. */
  readonly stderr: GuestOutput;
  /** The virtio-net device (`--net`), or null. */
  readonly net: NetDevice | null;
  /** The IOAPIC's state when the VM's interrupt controller is split, else null. */
  readonly ioapic: SharedArrayBuffer | null;
  /** The run's options. */
  readonly params: VmParams;
  /** Signals, --timeout, the first stop, output drain, dead guests. */
  readonly supervisor: Supervisor;
  /** Where the kernel was loaded (for the debugger's notice). */
  readonly kernelAddress: number;
  /** How far the kernel moved from its link address (`qOffsets`). */
  readonly loadOffset: number;
  /**
   * Gives guest RAM to the VM, or waits until the slot made earlier is in
   * place. A run mode calls it once, when it is ready to run: late, so that
   * the wait it may have (see steps 5 and 9 in `build.ts`) overlaps as much
   * set-up as it can.
   */
  readonly attachRam: () => Promise<void>;
}

/** How a run mode ended. */
export interface Ran {
  /** Why the VM stopped. */
  readonly stop: VmStop;
  /** Every vCPU's counters. */
  readonly stats: VcpuStats[];
  /** A vCPU Worker did not end in time (guest RAM must stay mapped). */
  readonly abandoned: boolean;
}

/**
 * Step 9: run the guest in the mode the options ask for: under the
 * debugger (every vCPU on this thread, in turns), one vCPU on this thread,
 * or one Worker per vCPU.
 */
export async function runGuest(r: RunInput): Promise<Ran> {
  const { params, supervisor } = r;
  // The device's registers for vCPUs run on this thread (Workers make their own).
  const net = r.net === null
    ? null
    : (await import("../net/net_device.ts")).netRegisters(r.net.shared, r.mem);
  if (params.gdbPort !== undefined) {
    if (params.affinity) log.warn("--affinity has no effect under --gdb-port");
    const loops = mainThreadLoops(r, net);
    const offset = r.loadOffset.toString(16);
    notify(
      `Kernel loaded at 0x${r.kernelAddress.toString(16)}: symbol offset 0x${offset} ` +
        `(gdb: add-symbol-file KERNEL -o 0x${offset})`,
    );
    const { runUnderDebugger } = await import("../gdb/run.ts");
    await r.attachRam();
    const stop = await runUnderDebugger({
      port: params.gdbPort,
      loops,
      mem: r.mem,
      loadOffset: r.loadOffset,
      timeoutMs: params.timeoutMs,
      notify,
      supervisor,
    });
    supervisor.claim(stop);
    await supervisor.drain(r.stdout, r.stderr);
    return { stop, stats: loops.map((l) => l.options.stats), abandoned: false };
  }
  if (r.vcpus.length === 1) {
    const [loop] = mainThreadLoops(r, net, YIELD_EVERY_MS);
    // Pin this (the caller's) thread for the run only, then give it back its mask.
    const savedMask = params.affinity ? currentAffinity() : null;
    if (params.affinity) pinOrWarn(params.affinity[0]!);
    try {
      const stop = await runOneVcpu(loop!, supervisor, params.timeoutMs, r.attachRam);
      return { stop, stats: [loop!.options.stats], abandoned: false };
    } finally {
      if (savedMask !== null) restoreAffinity(savedMask);
    }
  }
  const { runSmp } = await import("./run_smp.ts");
  await r.attachRam();
  return await runSmp({
    vcpus: r.vcpus,
    mem: r.mem,
    memAddress: r.memAddress,
    syncRegs: r.syncRegs,
    xsaveLayout: r.xsaveLayout,
    cmdline: r.cmdline,
    files: r.sandbox,
    sinks: params.stdout === undefined && params.stderr === undefined
      ? null
      : { stdout: params.stdout ?? Deno.stdout, stderr: params.stderr ?? Deno.stderr },
    affinity: params.affinity ?? null,
    supervisor,
    warn: (message) => log.warn(message),
    net: r.net?.shared ?? null,
    ioapic: r.ioapic,
  });
}

/** Run loops for vCPUs driven from this thread (one vCPU, or all under the debugger). */
function mainThreadLoops(r: RunInput, net: NetRegisters | null, yieldEveryMs?: number): VcpuLoop[] {
  const control = new Int32Array(new SharedArrayBuffer(4));
  return r.vcpus.map((vcpu) => {
    vcpu.enableSyncRegs(r.syncRegs);
    const stats = new VcpuStats(vcpu.id);
    const ctx = vcpuContext({
      vcpu,
      mem: r.mem,
      stdout: r.stdout,
      stderr: r.stderr,
      cmdline: r.cmdline,
      files: r.sandbox,
      stdin: r.params.stdin ?? hostStdin(),
      warn: (message) => log.warn(message),
    });
    return new VcpuLoop({
      vcpu,
      mem: r.mem,
      ctx,
      stats,
      control,
      xsaveLayout: r.xsaveLayout,
      buses: vcpuBuses(vcpu, { ctx, stats, net, ioapic: r.ioapic }),
      ...(yieldEveryMs === undefined ? {} : { yieldEveryMs }),
    });
  });
}

function pinOrWarn(core: number): void {
  const err = pinCurrentThread(core);
  if (err !== 0) log.warn(`Cannot pin the vCPU to core ${core} (errno ${err})`);
}

/** A host-side notice for the user (the GDB stub's port and load address), on stderr. */
function notify(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`dhyve: ${message}\n`));
  } catch {
    // stderr is closed: the notice has nowhere to go, and the run goes on.
  }
}
