/**
 * One VM run, as a recipe of named steps: check the options, create the VM
 * (its errors wait for the kernel's), prepare the kernel, open the sandbox
 * and the network device, map guest RAM, load the kernel, create the vCPUs
 * and write the boot state, apply file isolation, give the VM its RAM, then
 * run (under the debugger, one vCPU on this thread, or one Worker per vCPU)
 * under one supervisor. Every resource a step takes is released in reverse
 * order on every path (an `AsyncDisposableStack`), and every error becomes
 * one exit code in one place (`errors.ts`).
 * @module
 */

import { flushAll, GuestOutput } from "../io/guest_output.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { type HostMapping, type Kvm, LIBC_SONAME, mapGuestMemory, type VmFd } from "../kvm.ts";
import type { KernelImage } from "../loader/elf.ts";
import type { Layout } from "../loader/layout.ts";
import { logger } from "../log.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import type { NetCounters } from "../net/net_device.ts";
import {
  DEFAULT_MEMORY_SIZE,
  parseHermitImageMode,
  UsageError,
  validateAffinity,
  validateCpuCount,
  validateMemorySize,
  type VmParams,
} from "../params.ts";
import { checkGranted, optionPermissionInput, requiredPermissions } from "../permissions.ts";
import { moduleDir } from "../locations.ts";
import { FileMap, FileMapError } from "../sandbox/file_map.ts";
import { denoHostFs } from "../sandbox/host_fs.ts";
import { Sandbox } from "../sandbox/sandbox.ts";
import { hostOutputSink } from "../vcpu/host_stdio.ts";
import type { VcpuStats } from "../vcpu/stats.ts";
import type { VmStop } from "../hypercall/context.ts";
import { createMachine } from "./boot_state.ts";
import { toVmError, VmError } from "./errors.ts";
import { applyFileIsolation } from "./isolation.ts";
import { type KernelRequest, prepareKernelFile } from "./kernel.ts";
import { configureVm, openKvm } from "./kvm_setup.ts";
import { takeEarlyVm } from "./early_vm.ts";
import { createIrqchip, type IrqchipMode, irqchipMode, irqchipServes } from "./irqchip.ts";
import { newIoapicState } from "../devices/ioapic.ts";
import { traceMark } from "../startup_trace.ts";
import { runGuest } from "./run_guest.ts";
import { Supervisor } from "./supervisor.ts";

const log = logger("vm");

/** What a finished run reports. */
export interface VmResult {
  /**
   * The process exit status: the guest's exit code (low 8 bits) when it
   * exited, else dhyve's code for how it stopped.
   */
  exitCode: number;
  /** The guest's own exit code (unmasked), or null if it did not exit. */
  guestExitCode: number | null;
  /** For a guest that stopped the VM by a fault: one line saying what happened. */
  error: string | null;
  /** Register dump and other detail for the error (for -v). */
  errorDetail: string | null;
  /** Per-vCPU counters. */
  stats: VcpuStats[];
  /** Where the kernel went. */
  layout: Layout;
  /** The parsed kernel. */
  kernel: KernelImage;
  /** Milliseconds from the start of runVm to the guest's first instruction. */
  bootMs: number;
  /** Milliseconds the guest ran. */
  runMs: number;
  /** The network device's counters (`--net`), or null without one. */
  net: NetCounters | null;
}

/**
 * Boots `kernelPath` and runs it to the end.
 * @throws {VmError} for problems before or outside the guest (bad kernel,
 *   no KVM, a failed host call), each with its exit code.
 * @throws {UsageError} for invalid parameters.
 */
export async function runVm(kernelPath: string, params: VmParams = {}): Promise<VmResult> {
  try {
    return await run(kernelPath, params);
  } catch (error) {
    if (error instanceof UsageError) throw error; // a TypeError for library callers
    throw toVmError(error, kernelPath) ?? error;
  }
}

/** From this size on, the RAM's memory slot is made on the thread pool (see step 5). */
const ASYNC_SLOT_BYTES = 1 << 30;

/** The recipe. Every resource a step takes goes on `stack` and is given back in reverse. */
async function run(kernelPath: string, params: VmParams): Promise<VmResult> {
  const t0 = performance.now();
  traceMark("runvm");
  await using stack = new AsyncDisposableStack();
  // 1. Options that need no host resource: sizes, affinity, file map, Deno permissions.
  const plan = checkOptions(kernelPath, params);
  // 2. KVM and the VM with its interrupt controllers, early: KVM's own (--net, --pit; see
  // src/machine/irqchip.ts) queue SRCU callbacks (a grace period, 5-10 ms here) that the RAM
  // slot (step 9) and closing the VM (srcu_barrier) wait for, and the next steps pass that time;
  // a split one has no such wait. The command line made them before it loaded
  // (src/machine/early_vm.ts); a library call makes them here. A failure is thrown in step 5,
  // after the kernel's and the network's problems, as when KVM was opened there.
  const opened = openVm(stack, params);
  traceMark("vm");
  // 3. The kernel: read it (or unpack a Hermit image), parse it, choose where it goes.
  const kernel = await prepareKernelFile(kernelPath, plan.map, kernelRequest(params, plan));
  traceMark("kernel");
  // 4. The guest's files and output.
  const sandbox = stack.adopt(openSandbox(plan.map, params), (s) => s.dispose());
  const stdout = new GuestOutput(params.stdout ?? hostOutputSink(1));
  const stderr = new GuestOutput(params.stderr ?? hostOutputSink(2));
  stack.defer(() => void flushAll(stdout, stderr));
  // 5. The network's host end (--net: TAP or passt), before KVM: a problem is one line.
  // Loaded only for --net (the device and its Worker are not on a plain run's path).
  const netSetup = params.net === undefined ? null : await import("./net.ts");
  const net = params.net === undefined || netSetup === null
    ? null
    : await netSetup.openNetDevice(params.net, params.tempDir);
  const closeNet = once(() => net?.close());
  stack.defer(closeNet);
  // Then KVM's problem, if it had one, and guest RAM on the host (the VM gets it in step 9).
  const { kvm, vm, irqchip } = opened.get();
  const ram = mapRam(stack, plan.memorySize, kernel.layout.guestAddress, params, vm);
  const region = {
    slot: 0,
    guestPhysAddr: kernel.layout.guestAddress,
    size: plan.memorySize,
    hostAddress: ram.mapping.address,
  };
  // A large slot with a split irqchip (a plain run) is made now, on Deno's thread pool, while
  // this thread loads the kernel and builds the boot state: KVM allocates the slot's per-page
  // metadata (~0.6 ms per GiB on kvm_pvm). Below ASYNC_SLOT_BYTES, handing the call to the pool
  // costs more than it saves (~0.3 ms). With KVM's own irqchip, as late as it can (step 9).
  const slot = irqchip === "split" && plan.memorySize >= ASYNC_SLOT_BYTES
    ? vm.setUserMemoryRegionAsync(region)
    : null;
  // The VM closes once the ioctl is done; a failure is thrown where it is awaited (step 9), and
  // handling it here too keeps it from ever being unhandled.
  if (slot !== null) {
    const settled = slot.then(() => {}, () => {});
    stack.defer(() => settled);
  }
  traceMark("kvm");
  // 6. The network device inside the VM; its Worker reads guest RAM, so it stops first.
  if (net !== null && netSetup !== null) {
    await netSetup.connectNetDevice(vm, net, {
      address: ram.mapping.address,
      size: plan.memorySize,
      guestAddress: kernel.layout.guestAddress,
    });
    stack.defer(closeNet);
  }
  // 7. The kernel in RAM, the vCPUs and the boot state.
  const machine = createMachine(stack, { kvm, vm, mem: ram.mem, kernel, plan });
  // 8. Landlock (--file-isolation): from here on only the run's own paths.
  applyFileIsolation(params.fileIsolation ?? "none", kernelPath, plan.map, sandbox);
  traceMark("boot");
  let bootMs = NaN; // set when the RAM goes in, right before the first KVM_RUN

  // 9. Run, under one supervisor. Under the debugger --timeout counts guest time only.
  const timeoutMs = params.gdbPort === undefined ? params.timeoutMs : undefined;
  using supervisor = new Supervisor({ timeoutMs });
  const ran = await runGuest({
    ...machine,
    mem: ram.mem,
    memAddress: ram.mapping.address,
    cmdline: kernel.cmdline,
    sandbox,
    stdout,
    stderr,
    net,
    // One IOAPIC for the VM's vCPU threads, where KVM does not hold it.
    ioapic: irqchip === "split" ? newIoapicState() : null,
    params,
    supervisor,
    kernelAddress: kernel.layout.kernelAddress,
    loadOffset: kernel.layout.kernelAddress - kernel.image.firstVaddr,
    // The run mode calls this once it is set up, right before the first KVM_RUN: the slot made
    // in step 5 must be in place, or, with KVM's own irqchip, is made now, as late as it can: a
    // slot change waits for the grace period that creating that irqchip (step 2) started (5-10
    // ms on kvm_pvm), and so would the irqfds and ioeventfds of step 6 behind it.
    attachRam: async () => {
      if (slot !== null) await slot;
      else vm.setUserMemoryRegion(region);
      bootMs = performance.now() - t0;
    },
  });
  traceMark("guest");
  // A vCPU Worker that did not end may still touch guest RAM: keep it mapped.
  if (ran.abandoned) ram.keepMapped();

  // 10. The result; the stack then gives everything back.
  if (net !== null && netSetup !== null) log.info(netSetup.netSummary(net.counters()));
  return result(ran.stop, {
    stats: ran.stats,
    layout: kernel.layout,
    kernel: kernel.image,
    bootMs,
    runMs: Math.max(...ran.stats.map((s) => s.stoppedAt - s.startedAt)),
    net: net?.counters() ?? null,
  });
}

/** What the kernel step needs from the options. */
function kernelRequest(
  params: VmParams,
  plan: { memorySize: number; cpuCount: number },
): KernelRequest {
  return {
    args: params.args ?? [],
    env: params.env ?? [],
    memorySize: plan.memorySize,
    cpuCount: plan.cpuCount,
    envHost: params.envHost ?? false,
    aslr: params.aslr ?? true,
    random: params.random,
    net: params.net !== undefined,
    // Library callers too: an unknown mode is one usage line, never a silent fallback.
    mode: parseHermitImageMode(params.hermitImageMode ?? "external"),
  };
}

/** Step 1: the options that need no host resource (sizes, affinity, file map, permissions). */
function checkOptions(
  kernelPath: string,
  params: VmParams,
): { memorySize: number; cpuCount: number; map: FileMap } {
  const memorySize = validateMemorySize(params.memorySize ?? DEFAULT_MEMORY_SIZE);
  const cpuCount = validateCpuCount(params.cpuCount ?? 1);
  if (params.affinity !== undefined) {
    validateAffinity(params.affinity, { cpuCount, hostCpus: navigator.hardwareConcurrency });
  }
  let map: FileMap;
  try {
    map = FileMap.fromSpecs(params.fileMappings ?? [], Deno.cwd());
  } catch (error) {
    if (error instanceof FileMapError) throw new UsageError(error.message);
    throw error;
  }
  if (params.checkPermissions ?? true) {
    const missing = checkGranted(requiredPermissions({
      kernel: kernelPath,
      mappings: map.hostPaths().map((m) => ({
        host: m.hostPath,
        guest: m.guestPath,
        writable: m.writable,
      })),
      tempDir: params.tempDir ?? null,
      output: null,
      envHost: false,
      libcPath: LIBC_SONAME,
      ...optionPermissionInput(params, moduleDir()),
    }));
    if (missing !== null) throw new VmError(missing, EXIT_CODE.PERMISSION);
  }
  return { memorySize, cpuCount, map };
}

/** Step 4: the guest's view of host files (the file map, fds, temp dir, stdin). */
function openSandbox(map: FileMap, params: VmParams): Sandbox {
  const stdinSource = params.stdin;
  return new Sandbox({
    map,
    ...(stdinSource !== undefined
      ? { hostFs: { ...denoHostFs, readStdin: (into: Uint8Array) => stdinSource.readSync(into) } }
      : {}),
    ...(params.tempDir !== undefined ? { tempDir: params.tempDir } : {}),
    ...(params.ioMode !== undefined ? { ioMode: params.ioMode } : {}),
    ...(params.maxOpenFiles !== undefined ? { maxOpenFiles: params.maxOpenFiles } : {}),
    ...(params.maxTempBytes !== undefined ? { maxTempBytes: params.maxTempBytes } : {}),
    warn: (message) => log.warn(message),
  });
}

/**
 * Step 2: KVM and the VM with its interrupt controller (and the options that
 * configure it). A failure is kept, not thrown: `get()` throws it.
 */
function openVm(
  stack: AsyncDisposableStack,
  params: VmParams,
): { get(): { kvm: Kvm; vm: VmFd; irqchip: IrqchipMode } } {
  // The command line made the VM and its irqchip before loading the rest (src/machine/early_vm.ts),
  // as its options seemed to ask; a config file's --net or --pit can want the other kind.
  const early = takeEarlyVm();
  try {
    const kvm = stack.use(early?.kvm ?? openKvm());
    const needs = { net: params.net !== undefined, pit: params.pit === true };
    let vm: VmFd;
    let irqchip: IrqchipMode;
    if (early !== null && irqchipServes(early.irqchip, needs)) {
      vm = stack.use(early.vm);
      irqchip = early.irqchip;
    } else {
      early?.vm.close();
      vm = stack.use(kvm.createVm());
      irqchip = createIrqchip(vm, irqchipMode(kvm, needs));
    }
    configureVm(vm, params);
    return { get: () => ({ kvm, vm, irqchip }) };
  } catch (error) {
    return {
      get: () => {
        throw error;
      },
    };
  }
}

/**
 * Step 5: guest RAM, mapped on the host (step 9 gives it to `vm`). At the
 * end the VM is closed first (its own disposal, later, then does nothing):
 * unmapping RAM that a live VM holds in a memory slot makes KVM drop its
 * mappings of every page of the slot first (its MMU notifier), ~1.3 ms at 4
 * GiB on kvm_pvm; once the VM is gone, the unmap only frees the pages.
 */
function mapRam(
  stack: AsyncDisposableStack,
  size: number,
  guestAddress: number,
  params: VmParams,
  vm: VmFd,
): { mapping: HostMapping; mem: GuestMemory; keepMapped(): void } {
  const mapping = mapGuestMemory(size, {
    ...(params.thp ? { thp: true } : {}),
    ...(params.ksm ? { ksm: true } : {}),
  });
  let keep = false;
  stack.defer(() => {
    vm.close(); // the vCPUs' fds (step 7) are closed by now: this ends the VM
    if (!keep) mapping.unmap(); // else the process's exit frees it
  });
  return {
    mapping,
    mem: new GuestMemory(mapping, guestAddress),
    keepMapped: () => void (keep = true),
  };
}

/** The result record for a stop. */
function result(
  stop: VmStop,
  rest: Omit<VmResult, "exitCode" | "guestExitCode" | "error" | "errorDetail">,
): VmResult {
  const exited = stop.kind === "exit";
  return {
    exitCode: exited ? stop.code & 0xff : stop.code,
    guestExitCode: exited ? stop.code : null,
    error: exited ? null : stop.message,
    errorDetail: exited ? null : stop.detail,
    ...rest,
  };
}

/** `fn` made safe to call twice: the second call waits for the first. */
function once(fn: () => Promise<void> | void): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => (done ??= Promise.resolve(fn()));
}
