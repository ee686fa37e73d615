/**
 * The KVM layer's front door. The system, VM and vCPU fds live in `kvm/`
 * (one file per fd kind, one error convention: `kvm/errors.ts`), `kvm_run`
 * is read only through `kvm/run.ts`; host threads, the ticker, poll and
 * mappings live in `host/`. Callers import from here.
 *
 * Only `src/vcpu/`, the machine assembly and the GDB stub's KVM side import
 * this module.
 * @module
 */

export type { CpuidEntry, MsrEntry } from "./abi/kvm.ts";
export { KvmError, KvmUnavailableError } from "./kvm/errors.ts";
export { Kvm, REQUIRED_CAPS } from "./kvm/system.ts";
export { VmFd } from "./kvm/vm.ts";
export { VcpuFd } from "./kvm/vcpu.ts";
export { Regs, type Segment, Sregs } from "./kvm/regs.ts";
export { KvmRun } from "./kvm/run.ts";
export { type GuestMemoryOptions, HostMapping, mapGuestMemory } from "./host/mappings.ts";
export {
  currentAffinity,
  currentThreadId,
  pinCurrentThread,
  restoreAffinity,
  signalThread,
} from "./host/threads.ts";
export { ThreadTicker } from "./host/ticker.ts";
export { fdReadable, fdWritable } from "./host/poll.ts";

/** libc's soname (permission hints) and the error when no libc can be loaded. */
export { LIBC_SONAME, LibcLoadError } from "./host/libc.ts";
