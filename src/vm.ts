/**
 * One VM run, assembled from its parts: read and check the kernel, choose
 * the layout, open KVM, map guest RAM, load the kernel, build the boot state
 * (GDT, page tables, boot info, FDT, CPUID, MSRs, registers), run the vCPU,
 * and tear everything down on every path. Only this module and `vcpu/`
 * import `kvm.ts`.
 * @module
 */

import { dirname } from "node:path";
import { CAP, DISABLE_EXITS, KVM_API_VERSION, SREGS, X2APIC_API } from "./abi/kvm.ts";
import { writeBootInfo } from "./boot/boot_info.ts";
import { adjustCpuid } from "./boot/cpuid.ts";
import { buildHermitFdt, FdtSizeError } from "./boot/fdt.ts";
import { writeGdt } from "./boot/gdt.ts";
import { BOOT_INFO_OFFSET, BOOT_STACK_SIZE, FDT_OFFSET } from "./boot/layout.ts";
import { BOOT_MSRS, initialRegisters, initialSpecialRegisters } from "./boot/registers.ts";
import { xsaveLayoutFromCpuid } from "./emulate/xsave.ts";
import { GdbListenError, runUnderDebugger } from "./gdb/run.ts";
import { EXIT_CODE } from "./exit_codes.ts";
import { checkCommandLine } from "./hypercall/args.ts";
import { SERIAL_PORT_BASE } from "./hypercall/abi.ts";
import { type GuestCommandLine, type HypercallContext, VmStop } from "./hypercall/context.ts";
import { flushAll, GuestOutput } from "./io/guest_output.ts";
import { hostOutputSink, hostStdin } from "./vcpu/host_stdio.ts";
import {
  currentAffinity,
  currentThreadId,
  type HostMapping,
  Kvm,
  KvmError,
  KvmUnavailableError,
  mapGuestMemory,
  pinCurrentThread,
  Regs,
  REQUIRED_CAPS,
  restoreAffinity,
  Sregs,
  ThreadTicker,
  type VcpuFd,
  type VmFd,
} from "./kvm.ts";
import { detectFormat, type KernelImage, parseKernel } from "./loader/elf.ts";
import { ImageFormatError, LayoutError } from "./loader/errors.ts";
import { chooseLayout, type Layout } from "./loader/layout.ts";
import { loadKernel } from "./loader/load.ts";
import { logger } from "./log.ts";
import { GuestMemory } from "./memory/guest_memory.ts";
import { buildIdentityMap, translateRange } from "./memory/paging.ts";
import {
  DEFAULT_MEMORY_SIZE,
  UsageError,
  validateCpuCount,
  validateMemorySize,
  type VmParams,
} from "./params.ts";
import {
  loadEmulator,
  OUTCOME,
  type RunLoopOptions,
  vcpuBuses,
  VcpuLoop,
} from "./vcpu/run_loop.ts";
import { VcpuStats } from "./vcpu/stats.ts";
import { runSmp } from "./vcpu/smp.ts";
import { signalStop, STOP_SIGNALS, type StopSignal, timeoutStop } from "./vcpu/timeout.ts";
import { applyLandlock, denoRuntimeRules, LandlockError, sandboxRules } from "./landlock.ts";
import { LIBC_PATH } from "./kvm.ts";
import {
  checkGranted,
  dhyveSourceDir,
  optionPermissionInput,
  requiredPermissions,
} from "./permissions.ts";
import { FileMap, FileMapError } from "./sandbox/file_map.ts";
import { type NetCounters, NetDevice, netRegisters, NetSetupError } from "./net/net_device.ts";
import { NET_IRQ_LINE, NET_MMIO_BASE, NOTIFY_OFF_MULTIPLIER, REGION } from "./virtio/layout.ts";
import { Sandbox } from "./sandbox/sandbox.ts";
import { denoHostFs } from "./sandbox/host_fs.ts";

const log = logger("vm");

/** A failure that ends the run before or outside the guest, with dhyve's exit code. */
export class VmError extends Error {
  /** The process exit code for this failure (see `exit_codes.ts`). */
  readonly exitCode: number;
  /** Builds the error; `message` is the one line shown to the user. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
  /** Error name. */
  override name = "VmError";
}

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

/** Reads the kernel file, with clear errors for the usual problems. */
async function readKernel(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new VmError(`Kernel file "${path}" does not exist`, EXIT_CODE.NO_INPUT);
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new VmError(
        `Deno may not read the kernel "${path}": add --allow-read=${path} to the deno command`,
        EXIT_CODE.PERMISSION,
      );
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new VmError(
        `Kernel path "${path}" is a directory, not a kernel file`,
        EXIT_CODE.NO_INPUT,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new VmError(`Cannot read the kernel "${path}": permission denied`, EXIT_CODE.NO_INPUT);
    }
    throw new VmError(
      `Cannot read the kernel "${path}": ${error instanceof Error ? error.message : error}`,
      EXIT_CODE.NO_INPUT,
    );
  }
}

/** Parses and places the kernel; errors become VmErrors with exit codes. */
function prepareKernel(
  path: string,
  bytes: Uint8Array,
  params: { memorySize: number; aslr: boolean; random?: () => number },
): { image: KernelImage; layout: Layout } {
  try {
    if (detectFormat(bytes) === "hermit-image") {
      throw new ImageFormatError("the image's kernel is itself a Hermit image");
    }
    const image = parseKernel(bytes);
    for (const w of image.warnings) log.warn(w);
    const layout = chooseLayout(image, {
      memorySize: params.memorySize,
      aslr: params.aslr,
      ...(params.random ? { random: params.random } : {}),
    });
    if (layout.aslrIgnored) {
      log.info("The kernel is not relocatable: it is loaded at its link address (no ASLR)");
    }
    return { image, layout };
  } catch (error) {
    if (error instanceof ImageFormatError) {
      throw new VmError(
        `"${path}" is not a usable Hermit kernel: ${error.message}`,
        EXIT_CODE.BAD_KERNEL,
        {
          cause: error,
        },
      );
    }
    if (error instanceof LayoutError) {
      throw new VmError(error.message, EXIT_CODE.USAGE, { cause: error });
    }
    throw error;
  }
}

/** The guest command line: argv[0] is the kernel path, then the user's arguments. */
function commandLine(
  kernelPath: string,
  args: readonly string[],
  env: readonly (readonly [string, string])[],
): GuestCommandLine {
  const enc = new TextEncoder();
  return {
    argv: [kernelPath, ...args].map((a) => enc.encode(a)),
    env: env.map(([k, v]) => enc.encode(`${k}=${v}`)),
  };
}

/** The resources one run holds, released in reverse order. */
class VmResources {
  kvm: Kvm | null = null;
  vm: VmFd | null = null;
  memory: HostMapping | null = null;
  vcpus: VcpuFd[] = [];
  net: NetDevice | null = null;
  /** A vCPU Worker may still run: unmapping RAM under it would crash the process. */
  keepMemoryMapped = false;

  release(): void {
    for (const v of this.vcpus) v.close();
    this.vcpus = [];
    this.vm?.close();
    this.vm = null;
    if (!this.keepMemoryMapped) this.memory?.unmap(); // else the process's exit frees it
    this.memory = null;
    this.kvm?.close();
    this.kvm = null;
  }
}

function setUpVcpu(
  vcpu: VcpuFd,
  options: {
    entry: number;
    guestAddress: number;
    stack: number;
    gdt: { base: number; limit: number };
    cpuid: ReturnType<typeof adjustCpuid>;
  },
): void {
  const sregs = new Sregs();
  vcpu.getSregs(sregs);
  const s = initialSpecialRegisters({ guestAddress: options.guestAddress, gdt: options.gdt });
  sregs.setU64(SREGS.cr0, s.cr0);
  sregs.setU64(SREGS.cr3, s.cr3);
  sregs.setU64(SREGS.cr4, s.cr4);
  sregs.setU64(SREGS.efer, s.efer);
  sregs.setSegment(SREGS.cs, s.cs);
  sregs.setSegment(SREGS.ds, s.ds);
  sregs.setSegment(SREGS.es, s.es);
  sregs.setSegment(SREGS.ss, s.ss);
  sregs.setDtable(SREGS.gdt, s.gdt);
  vcpu.setSregs(sregs);

  const r = initialRegisters({
    entry: options.entry,
    bootInfo: options.guestAddress + BOOT_INFO_OFFSET,
    cpuId: vcpu.id,
    stack: options.stack,
  });
  const regs = new Regs();
  regs.set("rip", r.rip);
  regs.set("rsp", r.rsp);
  regs.set("rdi", r.rdi);
  regs.set("rsi", r.rsi);
  regs.set("rflags", r.rflags);
  vcpu.setRegs(regs);

  vcpu.setCpuid(options.cpuid);
  vcpu.setRunnable();
  vcpu.setMsrs(BOOT_MSRS);
}

function openKvm(): Kvm {
  const kvm = Kvm.open();
  let version: number;
  try {
    version = kvm.apiVersion();
  } catch (error) {
    kvm.close();
    if (!(error instanceof KvmError)) throw error;
    throw new VmError(
      `/dev/kvm is not a KVM device (${error.message}): load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd) and check what /dev/kvm is",
      EXIT_CODE.KVM_UNAVAILABLE,
      { cause: error },
    );
  }
  if (version !== KVM_API_VERSION) {
    kvm.close();
    throw new VmError(
      `/dev/kvm speaks KVM API version ${version}, dhyve needs ${KVM_API_VERSION}`,
      EXIT_CODE.KVM_UNAVAILABLE,
    );
  }
  for (const { cap, name } of REQUIRED_CAPS) {
    if (kvm.checkExtension(cap) === 0) {
      kvm.close();
      throw new VmError(
        `This host's KVM lacks ${name}, which dhyve needs`,
        EXIT_CODE.KVM_UNAVAILABLE,
      );
    }
  }
  return kvm;
}

/** `--cpu-pm`: lets the guest halt, pause and mwait without exits, where KVM allows. */
function enableCpuPm(vm: VmFd): void {
  const supported = vm.checkExtension(CAP.X86_DISABLE_EXITS);
  const wanted = supported &
    (DISABLE_EXITS.MWAIT | DISABLE_EXITS.HLT | DISABLE_EXITS.PAUSE | DISABLE_EXITS.CSTATE);
  if (wanted === 0) {
    log.warn("--cpu-pm: this host's KVM cannot pass power management to the guest; ignored");
    return;
  }
  const err = vm.enableCap(CAP.X86_DISABLE_EXITS, [wanted]);
  if (err !== 0) log.warn(`--cpu-pm: KVM refused it (errno ${err}); ignored`);
}

/** `--net` needs Hermit ≥ 0.13.2, checked only when the kernel carries a version note (as uhyve). */
function checkNetKernel(image: KernelImage): void {
  const v = image.hermitVersion;
  if (v !== null && v.major === 0 && (v.minor < 13 || (v.minor === 13 && v.patch < 2))) {
    throw new VmError(
      `--net needs a kernel built with Hermit 0.13.2 or newer; this one is ${v.major}.${v.minor}.${v.patch}`,
      EXIT_CODE.BAD_KERNEL,
    );
  }
}

/** Opens the TAP for `--net`; warns when attaching made a temporary interface. */
function openNetDevice(name: string, mac: Uint8Array | undefined): NetDevice {
  const net = NetDevice.open(name, mac);
  if (!net.persistent) {
    log.warn(
      `TAP device "${name}" did not exist: dhyve made a temporary one, without an address and ` +
        `gone when dhyve exits; create it with "ip tuntap add dev ${name} mode tap"`,
    );
  }
  return net;
}

/**
 * Wires the network device into KVM and starts its data path: its interrupt
 * line reaches the IOAPIC only, the irqfd raises it, and guest writes to the
 * two notify registers signal eventfds inside the kernel (ioeventfd).
 */
async function connectNetDevice(
  vm: VmFd,
  net: NetDevice,
  ram: { address: number; size: number; guestAddress: number },
): Promise<void> {
  vm.setIoapicOnlyRouting([NET_IRQ_LINE]);
  vm.irqfd(net.shared.irqFd, NET_IRQ_LINE);
  [net.shared.rxNotifyFd, net.shared.txNotifyFd].forEach((fd, q) => {
    const err = vm.ioeventfd(NET_MMIO_BASE + REGION.NOTIFY + NOTIFY_OFF_MULTIPLIER * q, fd);
    // Without ioeventfd the notify write exits, and the run loop signals the same eventfd.
    if (err !== 0) log.debug(`KVM_IOEVENTFD refused (errno ${err}); notifications will exit`);
  });
  await net.start(ram, (message) => log.warn(message));
  const mac = [...net.mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
  log.debug(`--net: TAP ${net.tapName}, guest MAC ${mac}`);
}

/** The `-v` line about the network at the end of a run. */
function netSummary(c: NetCounters): string {
  const frames = c.rxPackets + c.txPackets;
  const perFrame = frames === 0 ? 0 : c.serviceUs / frames;
  return `--net: ${c.rxPackets} frames to the guest, ${c.txPackets} from it, ${c.dropped} ` +
    `dropped, ${c.interrupts} interrupts; data path busy ${perFrame.toFixed(1)} µs per frame`;
}

/**
 * The Hermit image reader, loaded only for images: it pulls in node:zlib,
 * which costs a plain ELF run some 30 ms of start-up.
 */
function hermitImageModule(): Promise<typeof import("./loader/hermit_image.ts")> {
  return import("./loader/hermit_image.ts");
}

/** Unpacks a Hermit image: virtual files into the map, config into args/env. */
async function unpackImage(
  path: string,
  bytes: Uint8Array,
  map: FileMap,
  run: {
    args: readonly string[];
    env: readonly (readonly [string, string])[];
    memorySize: number;
    cpuCount: number;
    envHost: boolean;
  },
): Promise<{ kernel: Uint8Array; args: string[]; env: [string, string][] }> {
  let image;
  try {
    image = await (await hermitImageModule()).readHermitImage(bytes);
  } catch (error) {
    if (error instanceof ImageFormatError) {
      throw new VmError(
        `"${path}" is not a usable Hermit image: ${error.message}`,
        EXIT_CODE.BAD_KERNEL,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  for (const [guestPath, content] of image.files) {
    try {
      map.addVirtual(guestPath, content);
    } catch (error) {
      if (error instanceof FileMapError) {
        throw new UsageError(
          `The image file ${guestPath} collides with a --file-mapping: ${error.message}`,
        );
      }
      throw error;
    }
  }
  const applied = (await hermitImageModule()).applyImageConfig(image, {
    args: [...run.args],
    envVars: run.env,
    envHost: run.envHost,
    memorySize: run.memorySize,
    cpuCount: run.cpuCount,
  });
  for (const note of applied.notes) log.info(note);
  if (applied.errors.length > 0) throw new UsageError(applied.errors.join("; "));
  return { kernel: image.kernel, args: applied.args, env: applied.env };
}

/**
 * Checks an affinity list: one host core per vCPU, each core present.
 * @throws {UsageError} naming the problem.
 */
export function validateAffinity(cores: readonly number[], cpuCount: number): void {
  if (cores.length !== cpuCount) {
    throw new UsageError(
      `The affinity list names ${cores.length} core(s) for ${cpuCount} vCPU(s): give exactly one core per vCPU`,
    );
  }
  if (new Set(cores).size !== cores.length) {
    throw new UsageError("The affinity list names a core twice: give each vCPU its own core");
  }
  const available = navigator.hardwareConcurrency;
  for (const core of cores) {
    if (!Number.isInteger(core) || core < 0 || core >= available) {
      throw new UsageError(
        `Core ${core} in the affinity list does not exist: this host has cores 0-${available - 1}`,
      );
    }
  }
}

function pinOrWarn(core: number): void {
  const err = pinCurrentThread(core);
  if (err !== 0) log.warn(`Cannot pin the vCPU to core ${core} (errno ${err})`);
}

/**
 * Runs a vCPU on this thread until the VM stops. A signal interrupts KVM_RUN
 * (EINTR); the event loop then gets a turn so that signal listeners run, and
 * SIGINT/SIGTERM end the run through the normal clean-up path. Hypercalls
 * waiting for stdin, or for a reader of stdout/stderr that stopped reading,
 * return WAITING and are retried after a pause, so nothing here blocks.
 */
async function runUntilStopped(
  options: RunLoopOptions,
  timeoutMs: number | undefined,
): Promise<VmStop> {
  let received: StopSignal | null = null;
  // Resolved by any of our listeners: after EINTR we wait (briefly) for it,
  // since the listener runs only once the event loop has read the signal.
  let wake: () => void = () => {};
  let signalled = new Promise<void>((resolve) => (wake = resolve));
  const listeners = STOP_SIGNALS.map((s) => {
    const listener = (): void => {
      received ??= s;
      wake();
    };
    Deno.addSignalListener(s.signal, listener);
    return { signal: s.signal, listener };
  });
  const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
  // A tick aimed at this thread interrupts KVM_RUN even when the guest is
  // halted, so signal listeners and the deadline are seen within a tick.
  const tick = (): void => wake();
  Deno.addSignalListener("SIGALRM", tick);
  const ticker = ThreadTicker.start(currentThreadId(), Math.min(TICK_MS, timeoutMs ?? TICK_MS));
  if (ticker === null) log.debug("No thread timer: signals may wait for the next guest exit");
  const loop = new VcpuLoop(options);
  let final: VmStop | null = null; // the guest has stopped; its last output waits for a reader
  try {
    for (;;) {
      const outcome = final === null ? loop.run() : OUTCOME.STOPPED;
      if (outcome === OUTCOME.INTERRUPTED) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          signalled,
          new Promise<void>((resolve) => (timer = setTimeout(resolve, SIGNAL_GRACE_MS))),
        ]);
        clearTimeout(timer);
        signalled = new Promise<void>((resolve) => (wake = resolve));
      } else if (outcome === OUTCOME.YIELDED) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      } else if (outcome === OUTCOME.WAITING) {
        await new Promise((resolve) => setTimeout(resolve, INPUT_POLL_MS));
      } else if (outcome === OUTCOME.NEEDS_EMULATOR) {
        await loadEmulator();
      } else {
        const stop: VmStop = final ?? loop.stop ??
          new VmStop("error", EXIT_CODE.INTERNAL, "The vCPU stopped without a reason");
        if (flushAll(options.ctx.stdout, options.ctx.stderr)) return stop;
        final = stop;
        await new Promise((resolve) => setTimeout(resolve, INPUT_POLL_MS));
      }
      const got = received as StopSignal | null;
      if (got !== null) return signalStop(got);
      if (performance.now() >= deadline) return timeoutStop(timeoutMs!);
    }
  } finally {
    ticker?.stop();
    for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
    Deno.removeSignalListener("SIGALRM", tick);
  }
}

/** Waits until buffered guest output is written out, however slowly the readers read. */
async function drainOutput(stdout: GuestOutput, stderr: GuestOutput): Promise<void> {
  while (!flushAll(stdout, stderr)) {
    await new Promise((resolve) => setTimeout(resolve, INPUT_POLL_MS));
  }
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

/** Wraps a write-error report so that each errno is reported once (no stderr flood). */
function warnOncePerErrno(
  report: (fd: number, errno: number) => void,
): (fd: number, errno: number) => void {
  const seen = new Set<number>();
  return (fd, errno) => {
    if (seen.has(errno)) return;
    seen.add(errno);
    report(fd, errno);
  };
}

/** A host-side notice for the user (the GDB stub's port and load address), on stderr. */
function notify(message: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`dhyve: ${message}\n`));
  } catch {
    // stderr is closed: the notice has nowhere to go, and the run goes on.
  }
}

/** How often a guest waiting for stdin checks again. */
const INPUT_POLL_MS = 10;

/** Period of the tick that interrupts a halted single-vCPU guest. */
const TICK_MS = 100;
/** How often a busy single-vCPU run lets the event loop see signals and the clock. */
const YIELD_EVERY_MS = 50;
/** How long to wait for a signal's listener after KVM_RUN was interrupted. */
const SIGNAL_GRACE_MS = 50;

/**
 * Boots `kernelPath` and runs it to the end.
 * @throws {VmError} for problems before or outside the guest (bad kernel,
 *   no KVM, a failed host call), each with its exit code.
 * @throws {UsageError} for invalid parameters.
 */
export async function runVm(kernelPath: string, params: VmParams = {}): Promise<VmResult> {
  const t0 = performance.now();
  const memorySize = validateMemorySize(params.memorySize ?? DEFAULT_MEMORY_SIZE);
  const cpuCount = validateCpuCount(params.cpuCount ?? 1);
  if (params.affinity !== undefined) validateAffinity(params.affinity, cpuCount);
  let args = params.args ?? [];
  let env = params.env ?? [];

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

  let bytes = await readKernel(kernelPath);
  if (bytes.length >= 3 && bytes[0] === 0x1f && bytes[1] === 0x8b && bytes[2] === 0x08) {
    // A Hermit image: the kernel and its files come from the archive, its
    // config supplies default arguments, environment and requirements.
    const unpacked = await unpackImage(kernelPath, bytes, map, {
      args,
      env,
      memorySize,
      cpuCount,
      envHost: params.envHost ?? false,
    });
    bytes = unpacked.kernel;
    args = unpacked.args;
    env = unpacked.env;
  }
  const cmdline = commandLine(kernelPath, args, env);
  const tooLong = checkCommandLine(cmdline);
  if (tooLong !== null) throw new UsageError(tooLong);
  const { image, layout } = prepareKernel(kernelPath, bytes, {
    memorySize,
    aslr: params.aslr ?? true,
    ...(params.random ? { random: params.random } : {}),
  });
  const { guestAddress, kernelAddress, kernelEnd } = layout;
  if (params.net !== undefined) checkNetKernel(image);
  log.debug(
    `Kernel: ${image.kind}, interface v${image.interfaceVersion}, guest RAM at 0x${
      guestAddress.toString(16)
    }, kernel at 0x${kernelAddress.toString(16)}..0x${kernelEnd.toString(16)}`,
  );

  const stdinSource = params.stdin;
  const sandbox = new Sandbox({
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
  const res = new VmResources();
  const stdout = new GuestOutput(params.stdout ?? hostOutputSink(1));
  const stderr = new GuestOutput(params.stderr ?? hostOutputSink(2));
  try {
    // Before KVM and the guest: a TAP problem is one line and an exit code.
    if (params.net !== undefined) res.net = openNetDevice(params.net.name, params.net.mac);
    res.kvm = openKvm();
    const kvm = res.kvm;
    res.vm = kvm.createVm();
    const vm = res.vm;
    res.memory = mapGuestMemory(memorySize, {
      ...(params.thp ? { thp: true } : {}),
      ...(params.ksm ? { ksm: true } : {}),
    });
    vm.setUserMemoryRegion({
      slot: 0,
      guestPhysAddr: guestAddress,
      size: memorySize,
      hostAddress: res.memory.address,
    });
    vm.createIrqchip();
    if (params.pit) vm.createPit2();
    if (params.cpuPm) enableCpuPm(vm);
    const x2apic = vm.enableCap(CAP.X2APIC_API, [
      X2APIC_API.USE_32BIT_IDS | X2APIC_API.DISABLE_BROADCAST_QUIRK,
    ]);
    if (x2apic !== 0) log.warn(`KVM_CAP_X2APIC_API could not be enabled (errno ${x2apic})`);
    const net = res.net;
    if (net !== null) {
      await connectNetDevice(vm, net, {
        address: res.memory.address,
        size: memorySize,
        guestAddress,
      });
    }

    const mem = new GuestMemory(res.memory.buffer, guestAddress);
    const loaded = loadKernel(mem, bytes, image, kernelAddress);

    const cpuid = adjustCpuid(kvm.supportedCpuid());
    const gdt = writeGdt(mem, guestAddress);
    const stack = kernelAddress - BOOT_STACK_SIZE;
    for (let id = 0; id < cpuCount; id++) {
      const vcpu = vm.createVcpu(id);
      res.vcpus.push(vcpu);
      setUpVcpu(vcpu, { entry: loaded.entry, guestAddress, stack, gdt, cpuid });
    }
    const boot = res.vcpus[0]!;
    const tscKhz = boot.tscKhz();

    let fdt: Uint8Array;
    try {
      fdt = buildHermitFdt({ guestAddress, memorySize, tscKhz, mounts: map.mounts(), args, env });
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
      physAddrEnd: guestAddress + memorySize,
      serialPortBase: SERIAL_PORT_BASE[image.interfaceVersion],
      deviceTree: guestAddress + FDT_OFFSET,
      kernelImageStart: kernelAddress,
      kernelImageEnd: kernelEnd,
      tls: loaded.tls,
      numCpus: cpuCount,
      cpuFreqKhz: tscKhz ?? 0,
      bootTimeNs: wallClockNs(),
    });
    buildIdentityMap(mem, { guestAddress, kernelEnd, legacy: image.legacyMapping });

    applyFileIsolation(params.fileIsolation ?? "none", kernelPath, map, sandbox);

    const syncRegs = kvm.checkExtension(CAP.SYNC_REGS) !== 0;
    const xsaveLayout = xsaveLayoutFromCpuid(cpuid);
    const bootMs = performance.now() - t0;
    let stop: VmStop;
    let stats: VcpuStats[];
    /** Hypercall context for a vCPU run on this thread. */
    const contextFor = (vcpu: VcpuFd): HypercallContext => {
      const sregs = new Sregs();
      return {
        mem,
        stdout,
        stderr,
        cmdline,
        files: sandbox,
        stdin: params.stdin ?? hostStdin(),
        onWriteError: warnOncePerErrno((fd, errno) =>
          log.warn(`A guest write to fd ${fd} failed (errno ${-errno}); v1 guests cannot be told`)
        ),
        translateRange(vaddr, len, visit): boolean {
          vcpu.getSregs(sregs);
          return translateRange(mem, sregs.getU64(SREGS.cr3), vaddr, len, visit);
        },
      };
    };
    // The device's registers for vCPUs run on this thread (Workers make their own).
    const netRegs = net === null ? null : netRegisters(net.shared, mem);
    if (params.gdbPort !== undefined) {
      // Under the debugger every vCPU runs on this thread, in turns (see gdb/run.ts).
      if (params.affinity) log.warn("--affinity has no effect under --gdb-port");
      const control = new Int32Array(new SharedArrayBuffer(4));
      const loops = res.vcpus.map((vcpu) => {
        vcpu.enableSyncRegs(syncRegs);
        const ctx = contextFor(vcpu);
        const stats = new VcpuStats(vcpu.id);
        return new VcpuLoop({
          vcpu,
          mem,
          ctx,
          stats,
          control,
          xsaveLayout,
          buses: vcpuBuses(vcpu, { ctx, stats, net: netRegs }),
        });
      });
      const loadOffset = kernelAddress - image.firstVaddr;
      notify(
        `Kernel loaded at 0x${kernelAddress.toString(16)}: symbol offset 0x${
          loadOffset.toString(16)
        } (gdb: add-symbol-file KERNEL -o 0x${loadOffset.toString(16)})`,
      );
      stop = await runUnderDebugger({
        port: params.gdbPort,
        loops,
        mem,
        loadOffset,
        timeoutMs: params.timeoutMs,
        notify,
      });
      stats = loops.map((l) => l.options.stats);
      await drainOutput(stdout, stderr); // a slow reader of the last lines only delays the end
    } else if (cpuCount === 1) {
      // One vCPU runs on this thread: no Worker to start, the fastest start-up.
      boot.enableSyncRegs(syncRegs);
      const ctx = contextFor(boot);
      // Pin this (the caller's) thread for the run only, then give it back its mask.
      const savedMask = params.affinity ? currentAffinity() : null;
      if (params.affinity) pinOrWarn(params.affinity[0]!);
      const one = new VcpuStats(0);
      stop = await runUntilStopped({
        vcpu: boot,
        mem,
        ctx,
        stats: one,
        control: new Int32Array(new SharedArrayBuffer(4)),
        xsaveLayout,
        buses: vcpuBuses(boot, { ctx, stats: one, net: netRegs }),
        yieldEveryMs: YIELD_EVERY_MS,
      }, params.timeoutMs).finally(() => {
        if (savedMask !== null) restoreAffinity(savedMask);
      });
      stats = [one];
    } else {
      const result = await runSmp({
        vcpus: res.vcpus,
        mem,
        memAddress: res.memory.address,
        syncRegs,
        xsaveLayout,
        cmdline,
        files: sandbox,
        sinks: params.stdout === undefined && params.stderr === undefined
          ? null
          : { stdout: params.stdout ?? Deno.stdout, stderr: params.stderr ?? Deno.stderr },
        affinity: params.affinity ?? null,
        timeoutMs: params.timeoutMs ?? null,
        warn: (message) => log.warn(message),
        net: net?.shared ?? null,
      });
      stop = result.stop;
      stats = result.stats;
      if (result.abandoned) res.keepMemoryMapped = true;
    }
    const runMs = Math.max(...stats.map((s) => s.stoppedAt - s.startedAt));
    if (net !== null) log.info(netSummary(net.counters()));
    const exited = stop.kind === "exit";
    return {
      exitCode: exited ? stop.code & 0xff : stop.code,
      guestExitCode: exited ? stop.code : null,
      error: exited ? null : stop.message,
      errorDetail: exited ? null : stop.detail,
      stats,
      layout,
      kernel: image,
      bootMs,
      runMs,
      net: net?.counters() ?? null,
    };
  } catch (error) {
    if (error instanceof KvmError) {
      throw new VmError(error.message, EXIT_CODE.HOST_ERROR, { cause: error });
    }
    if (error instanceof GdbListenError) {
      const code = error.permission ? EXIT_CODE.PERMISSION : EXIT_CODE.HOST_ERROR;
      throw new VmError(error.message, code, { cause: error });
    }
    if (error instanceof KvmUnavailableError) {
      throw new VmError(error.message, EXIT_CODE.KVM_UNAVAILABLE, { cause: error });
    }
    if (error instanceof ImageFormatError) {
      throw new VmError(
        `"${kernelPath}" is not a usable Hermit kernel: ${error.message}`,
        EXIT_CODE.BAD_KERNEL,
        {
          cause: error,
        },
      );
    }
    if (error instanceof LayoutError) {
      throw new VmError(error.message, EXIT_CODE.USAGE, { cause: error });
    }
    if (error instanceof NetSetupError) {
      throw new VmError(error.message, error.exitCode, { cause: error });
    }
    throw error;
  } finally {
    stdout.flush();
    stderr.flush();
    sandbox.dispose();
    await res.net?.close(); // the net Worker reads guest RAM: stop it before unmapping
    res.net = null;
    res.release();
  }
}

/**
 * Applies Landlock (`--file-isolation`): from here on the process may touch
 * only the kernel, the mapped paths, the VM's temp dir, /dev/kvm and what
 * Deno itself needs, whatever code asks.
 */
function applyFileIsolation(
  mode: "none" | "normal" | "strict",
  kernelPath: string,
  map: FileMap,
  sandbox: Sandbox,
): void {
  if (mode === "none") return;
  // Landlock rules name existing paths, so the temp dir is made now. Where
  // Deno may not create it, the guest cannot create files anyway (EACCES).
  const prepared = sandbox.prepareTempDir();
  const tempDir = typeof prepared === "string" ? prepared : null;
  const rules = [
    ...sandboxRules({
      kernel: kernelPath,
      mappings: map.hostPaths().map((m) => ({ host: m.hostPath, writable: m.writable })),
      tempDir,
      output: null,
    }),
    ...denoRuntimeRules(),
    // Removing the (emptied) temp dir at the end needs rmdir on its parent.
    ...(tempDir === null ? [] : [{ path: dirname(tempDir), access: "dir-rmdir" as const }]),
  ];
  try {
    const result = applyLandlock(rules, { mode });
    for (const w of result.warnings) log.warn(w);
    if (result.applied) log.debug(`Landlock applied (ABI ${result.abi})`);
  } catch (error) {
    if (error instanceof LandlockError) {
      throw new VmError(error.message, EXIT_CODE.HOST_ERROR, { cause: error });
    }
    throw error;
  }
}
