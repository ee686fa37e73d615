/**
 * One VM run, as a recipe of named steps: check the options, prepare the
 * kernel, open the sandbox, the network device and KVM, map guest RAM,
 * load the kernel, create the vCPUs and write the boot state, apply file
 * isolation, then run (under the debugger, one vCPU on this thread, or one
 * Worker per vCPU) under one supervisor. Every resource a step takes is
 * released in reverse order on every path (an `AsyncDisposableStack`), and
 * every error becomes one exit code in one place (`errors.ts`).
 * @module
 */

import { writeBootInfo } from "../boot/boot_info.ts";
import { adjustCpuid } from "../boot/cpuid.ts";
import { buildHermitFdt, FdtSizeError } from "../boot/fdt.ts";
import { writeGdt } from "../boot/gdt.ts";
import { BOOT_INFO_OFFSET, BOOT_STACK_SIZE, FDT_OFFSET } from "../boot/layout.ts";
import { CAP } from "../abi/kvm.ts";
import { type XsaveLayout, xsaveLayoutFromCpuid } from "../emulate/xsave.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { runUnderDebugger } from "../gdb/run.ts";
import { SERIAL_PORT_BASE } from "../hypercall/abi.ts";
import type { GuestCommandLine, VmStop } from "../hypercall/context.ts";
import { flushAll, GuestOutput } from "../io/guest_output.ts";
import {
  currentAffinity,
  type HostMapping,
  type Kvm,
  LIBC_PATH,
  mapGuestMemory,
  pinCurrentThread,
  restoreAffinity,
  type VcpuFd,
  type VmFd,
} from "../kvm.ts";
import type { KernelImage } from "../loader/elf.ts";
import type { Layout } from "../loader/layout.ts";
import { loadKernel } from "../loader/load.ts";
import { logger } from "../log.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { buildIdentityMap } from "../memory/paging.ts";
import type { NetCounters, NetDevice } from "../net/net_device.ts";
import { netRegisters } from "../net/net_device.ts";
import {
  DEFAULT_MEMORY_SIZE,
  UsageError,
  validateAffinity,
  validateCpuCount,
  validateMemorySize,
  type VmParams,
} from "../params.ts";
import {
  checkGranted,
  dhyveSourceDir,
  optionPermissionInput,
  requiredPermissions,
} from "../permissions.ts";
import { FileMap, FileMapError } from "../sandbox/file_map.ts";
import { denoHostFs } from "../sandbox/host_fs.ts";
import { Sandbox } from "../sandbox/sandbox.ts";
import { vcpuContext } from "../vcpu/context.ts";
import { hostOutputSink, hostStdin } from "../vcpu/host_stdio.ts";
import { vcpuBuses, VcpuLoop } from "../vcpu/run_loop.ts";
import { runSmp } from "./run_smp.ts";
import { VcpuStats } from "../vcpu/stats.ts";
import { toVmError, VmError } from "./errors.ts";
import { applyFileIsolation } from "./isolation.ts";
import { type KernelRequest, type PreparedKernel, prepareKernelFile } from "./kernel.ts";
import { configureVm, openKvm, setUpVcpu } from "./kvm_setup.ts";
import { connectNetDevice, netSummary, openNetDevice } from "./net.ts";
import { runOneVcpu, YIELD_EVERY_MS } from "./run_one.ts";
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

/** The recipe. Every resource a step takes goes on `stack` and is given back in reverse. */
async function run(kernelPath: string, params: VmParams): Promise<VmResult> {
  const t0 = performance.now();
  await using stack = new AsyncDisposableStack();
  // 1. Options that need no host resource: sizes, affinity, file map, Deno permissions.
  const plan = checkOptions(kernelPath, params);
  // 2. The kernel: read it (or unpack a Hermit image), parse it, choose where it goes.
  const kernel = await prepareKernelFile(kernelPath, plan.map, kernelRequest(params, plan));
  // 3. The guest's files and output.
  const sandbox = stack.adopt(openSandbox(plan.map, params), (s) => s.dispose());
  const stdout = new GuestOutput(params.stdout ?? hostOutputSink(1));
  const stderr = new GuestOutput(params.stderr ?? hostOutputSink(2));
  stack.defer(() => void flushAll(stdout, stderr));
  // 4. The TAP (--net), before KVM: a problem there is one line and an exit code.
  const net = params.net === undefined ? null : openNetDevice(params.net.name, params.net.mac);
  const closeNet = once(() => net?.close());
  stack.defer(closeNet);
  // 5. KVM, the VM and guest RAM.
  const kvm = stack.use(openKvm());
  const vm = stack.use(kvm.createVm());
  const ram = mapRam(stack, vm, plan.memorySize, kernel.layout.guestAddress, params);
  configureVm(vm, params);
  // 6. The network device inside the VM; its Worker reads guest RAM, so it stops first.
  if (net !== null) {
    await connectNetDevice(vm, net, {
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
  const bootMs = performance.now() - t0;

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
    params,
    supervisor,
    kernelAddress: kernel.layout.kernelAddress,
    loadOffset: kernel.layout.kernelAddress - kernel.image.firstVaddr,
  });
  // A vCPU Worker that did not end may still touch guest RAM: keep it mapped.
  if (ran.abandoned) ram.keepMapped();

  // 10. The result; the stack then gives everything back.
  if (net !== null) log.info(netSummary(net.counters()));
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
      libcPath: LIBC_PATH,
      ...optionPermissionInput(params, dhyveSourceDir()),
    }));
    if (missing !== null) throw new VmError(missing, EXIT_CODE.PERMISSION);
  }
  return { memorySize, cpuCount, map };
}

/** Step 3: the guest's view of host files (the file map, fds, temp dir, stdin). */
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

/** Step 5: guest RAM, mapped on the host and into the VM. */
function mapRam(
  stack: AsyncDisposableStack,
  vm: VmFd,
  size: number,
  guestAddress: number,
  params: VmParams,
): { mapping: HostMapping; mem: GuestMemory; keepMapped(): void } {
  const mapping = mapGuestMemory(size, {
    ...(params.thp ? { thp: true } : {}),
    ...(params.ksm ? { ksm: true } : {}),
  });
  let keep = false;
  stack.defer(() => {
    if (!keep) mapping.unmap(); // else the process's exit frees it
  });
  vm.setUserMemoryRegion({
    slot: 0,
    guestPhysAddr: guestAddress,
    size,
    hostAddress: mapping.address,
  });
  return {
    mapping,
    mem: new GuestMemory(mapping.buffer, guestAddress),
    keepMapped: () => void (keep = true),
  };
}

/** What the machine is made of once the boot state is written. */
interface Machine {
  /** Every vCPU, set up to enter the kernel. */
  readonly vcpus: readonly VcpuFd[];
  /** KVM copies registers into kvm_run on exits. */
  readonly syncRegs: boolean;
  /** Where XSAVE components live (CPUID leaf 0xD), for FPU-state emulation. */
  readonly xsaveLayout: XsaveLayout;
}

/**
 * Step 7: load the kernel, create the vCPUs with their boot registers,
 * then the boot state the kernel reads (FDT, boot info, page tables).
 */
function createMachine(
  stack: AsyncDisposableStack,
  m: {
    kvm: Kvm;
    vm: VmFd;
    mem: GuestMemory;
    kernel: PreparedKernel;
    plan: { memorySize: number; cpuCount: number; map: FileMap };
  },
): Machine {
  const { kvm, vm, mem, kernel, plan } = m;
  const { guestAddress, kernelAddress, kernelEnd } = kernel.layout;
  const loaded = loadKernel(mem, kernel.bytes, kernel.image, kernelAddress);
  const cpuid = adjustCpuid(kvm.supportedCpuid());
  const gdt = writeGdt(mem, guestAddress);
  const stack0 = kernelAddress - BOOT_STACK_SIZE;
  const vcpus: VcpuFd[] = [];
  for (let id = 0; id < plan.cpuCount; id++) {
    const vcpu = stack.use(vm.createVcpu(id));
    vcpus.push(vcpu);
    setUpVcpu(vcpu, { entry: loaded.entry, guestAddress, stack: stack0, gdt, cpuid });
  }
  const tscKhz = vcpus[0]!.tscKhz();
  let fdt: Uint8Array;
  try {
    fdt = buildHermitFdt({
      guestAddress,
      memorySize: plan.memorySize,
      tscKhz,
      mounts: plan.map.mounts(),
      args: kernel.args,
      env: kernel.env,
    });
  } catch (error) {
    if (error instanceof FdtSizeError) {
      throw new UsageError(
        "The kernel arguments and environment are too long to fit in the device tree (16 KiB)",
      );
    }
    throw error;
  }
  mem.write(guestAddress + FDT_OFFSET, fdt);
  writeBootInfo(mem, guestAddress + BOOT_INFO_OFFSET, {
    physAddrStart: guestAddress,
    physAddrEnd: guestAddress + plan.memorySize,
    serialPortBase: SERIAL_PORT_BASE[kernel.image.interfaceVersion],
    deviceTree: guestAddress + FDT_OFFSET,
    kernelImageStart: kernelAddress,
    kernelImageEnd: kernelEnd,
    tls: loaded.tls,
    numCpus: plan.cpuCount,
    cpuFreqKhz: tscKhz ?? 0,
    bootTimeNs: wallClockNs(),
  });
  buildIdentityMap(mem, { guestAddress, kernelEnd, legacy: kernel.image.legacyMapping });
  return {
    vcpus,
    syncRegs: kvm.checkExtension(CAP.SYNC_REGS) !== 0,
    xsaveLayout: xsaveLayoutFromCpuid(cpuid),
  };
}

/** What a run mode needs. */
interface RunInput extends Machine {
  readonly mem: GuestMemory;
  readonly memAddress: number;
  readonly cmdline: GuestCommandLine;
  readonly sandbox: Sandbox;
  readonly stdout: GuestOutput;
  readonly stderr: GuestOutput;
  readonly net: NetDevice | null;
  readonly params: VmParams;
  readonly supervisor: Supervisor;
  readonly kernelAddress: number;
  readonly loadOffset: number;
}

/** How a run mode ended. */
interface Ran {
  readonly stop: VmStop;
  readonly stats: VcpuStats[];
  /** A vCPU Worker did not end in time (guest RAM must stay mapped). */
  readonly abandoned: boolean;
}

/**
 * Step 9: run the guest in the mode the options ask for: under the
 * debugger (every vCPU on this thread, in turns), one vCPU on this thread,
 * or one Worker per vCPU.
 */
async function runGuest(r: RunInput): Promise<Ran> {
  const { params, supervisor } = r;
  if (params.gdbPort !== undefined) {
    if (params.affinity) log.warn("--affinity has no effect under --gdb-port");
    const loops = mainThreadLoops(r);
    const offset = r.loadOffset.toString(16);
    notify(
      `Kernel loaded at 0x${r.kernelAddress.toString(16)}: symbol offset 0x${offset} ` +
        `(gdb: add-symbol-file KERNEL -o 0x${offset})`,
    );
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
    const [loop] = mainThreadLoops(r, YIELD_EVERY_MS);
    // Pin this (the caller's) thread for the run only, then give it back its mask.
    const savedMask = params.affinity ? currentAffinity() : null;
    if (params.affinity) pinOrWarn(params.affinity[0]!);
    try {
      const stop = await runOneVcpu(loop!, supervisor, params.timeoutMs);
      return { stop, stats: [loop!.options.stats], abandoned: false };
    } finally {
      if (savedMask !== null) restoreAffinity(savedMask);
    }
  }
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
  });
}

/** Run loops for vCPUs driven from this thread (one vCPU, or all under the debugger). */
function mainThreadLoops(r: RunInput, yieldEveryMs?: number): VcpuLoop[] {
  // The device's registers for vCPUs run on this thread (Workers make their own).
  const net = r.net === null ? null : netRegisters(r.net.shared, r.mem);
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
      buses: vcpuBuses(vcpu, { ctx, stats, net }),
      ...(yieldEveryMs === undefined ? {} : { yieldEveryMs }),
    });
  });
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

function pinOrWarn(core: number): void {
  const err = pinCurrentThread(core);
  if (err !== 0) log.warn(`Cannot pin the vCPU to core ${core} (errno ${err})`);
}

/**
 * The wall clock in nanoseconds (as precise as the platform gives), like
 * uhyve's `SystemTime::now()`, for the boot info.
 */
function wallClockNs(): bigint {
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.floor((ms - whole) * 1e6));
}

/** A host-side notice for the user (the GDB stub's port and load address), on stderr. */
function notify(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`dhyve: ${message}\n`));
  } catch {
    // stderr is closed: the notice has nowhere to go, and the run goes on.
  }
}
