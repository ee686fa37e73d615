/**
 * dhyve as a library: run a Hermit unikernel under KVM from a Deno program.
 *
 * ```ts
 * import { CaptureSink, runVm } from "./mod.ts";
 * const out = new CaptureSink();
 * const result = await runVm("path/to/kernel", { args: ["hello"], stdout: out });
 * console.log(result.exitCode, out.text());
 * ```
 *
 * Needs `--allow-ffi` (KVM) and `--allow-read` for the kernel.
 * @module
 */

import { logToLogTape } from "./src/log_logtape.ts";

// A program that embeds dhyve gets its diagnostics through LogTape (silent
// unless it configures LogTape); the CLI prints plain lines instead.
logToLogTape();

export { runVm, VmError, type VmResult } from "./src/vm.ts";
export type { Layout } from "./src/loader/layout.ts";
export type {
  HermitVersion,
  InterfaceVersion,
  KernelImage,
  Relocation,
  Segment,
  TlsSegment,
} from "./src/loader/elf.ts";
export {
  DEFAULT_MEMORY_SIZE,
  type FileIsolation,
  type HermitImageMode,
  parseEnvEntry,
  parseMemorySize,
  UsageError,
  type VmParams,
} from "./src/params.ts";
export { CaptureSink, NullSink, type OutputSink } from "./src/io/guest_output.ts";
export type { InputSource } from "./src/hypercall/serial_input.ts";
export { EXIT_CODE, guestExitStatus } from "./src/exit_codes.ts";
export { KvmError, KvmUnavailableError } from "./src/kvm.ts";
export { type StatsRecord, VcpuStats } from "./src/vcpu/stats.ts";
export { VERSION } from "./src/version.ts";
export {
  type NetOption,
  parseNetOption,
  parsePublish,
  type PasstNetOption,
  type PortForward,
  type TapNetOption,
} from "./src/net/net_option.ts";
export type { NetCounters } from "./src/net/net_device.ts";
