/**
 * dhyve's own process exit codes. A guest's exit code passes through
 * unchanged (its low 8 bits, so -1 becomes 255); dhyve's own errors use the
 * codes below, all under 128 (129–159 mean "killed by a signal"). They follow
 * BSD sysexits where one fits. Pure data, documented in the README.
 * @module
 */

/** Exit codes for conditions dhyve detects itself. */
export const EXIT_CODE = {
  /** Bad command line or option value. */
  USAGE: 64,
  /** The kernel file is not a usable Hermit kernel or image. */
  BAD_KERNEL: 65,
  /** The kernel (or another input file) is missing or unreadable. */
  NO_INPUT: 66,
  /** /dev/kvm is missing or cannot be opened, KVM lacks a needed feature, or libc cannot be found. */
  KVM_UNAVAILABLE: 69,
  /** A bug in dhyve: an unexpected exception (please report it). */
  INTERNAL: 70,
  /** A KVM or host call failed while setting up or running the VM. */
  HOST_ERROR: 71,
  /** The output file could not be created (for example, it already exists). */
  CANNOT_CREATE: 73,
  /** Deno permissions do not cover what the run needs. */
  PERMISSION: 77,
  /** A configuration file cannot be read or parsed. */
  CONFIG: 78,
  /** The guest triple-faulted (KVM_EXIT_SHUTDOWN). */
  GUEST_TRIPLE_FAULT: 80,
  /** The guest ran an instruction the host's KVM cannot execute or emulate. */
  GUEST_UNSUPPORTED_INSTRUCTION: 81,
  /** The guest broke the hypercall protocol (unknown port, parameters outside its memory). */
  GUEST_PROTOCOL: 82,
  /** The guest touched guest-physical memory that does not exist (unhandled MMIO). */
  GUEST_BAD_MEMORY_ACCESS: 83,
  /** KVM could not enter or continue the guest (FAIL_ENTRY, INTERNAL_ERROR, unknown exit). */
  GUEST_VCPU_ERROR: 84,
  /** The run exceeded --timeout. */
  TIMEOUT: 85,
  /** Every vCPU halted with interrupts disabled and nothing pending: the guest can never run again. */
  GUEST_HALTED: 86,
  /** Interrupted by SIGINT (128 + 2). */
  SIGINT: 130,
  /** The debugger killed the guest (`k` packet); 128 + SIGKILL, as a shell would show it. */
  DEBUGGER_KILL: 137,
  /** Terminated by SIGTERM (128 + 15). */
  SIGTERM: 143,
} as const;

/** The process exit status for a guest exit code: its low 8 bits (-1 → 255). */
export function guestExitStatus(code: number): number {
  return code & 0xff;
}
