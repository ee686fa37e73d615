/**
 * The hypercall context of one vCPU, built the same way on the main thread
 * and in a vCPU Worker: guest memory, output, command line, files, stdin,
 * and the virtual-address walk through the vCPU's current CR3.
 * @module
 */

import { SREGS } from "../abi/kvm.ts";
import type { GuestFiles } from "../hypercall/file.ts";
import type { GuestCommandLine, HypercallContext } from "../hypercall/context.ts";
import type { InputSource } from "../hypercall/serial_input.ts";
import type { GuestOutput } from "../io/guest_output.ts";
import { Sregs, type VcpuFd } from "../kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { translateRange } from "../memory/paging.ts";

/** What a vCPU's hypercall context is made of. */
export interface ContextParts {
  /** The vCPU whose CR3 translates guest-virtual addresses. */
  readonly vcpu: VcpuFd;
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Guest stdout (serial and fd 1). */
  readonly stdout: GuestOutput;
  /** Guest stderr (fd 2). */
  readonly stderr: GuestOutput;
  /** argv and environment. */
  readonly cmdline: GuestCommandLine;
  /** The guest's files (the sandbox, or a Worker's channel to it). */
  readonly files: GuestFiles;
  /** The guest's stdin. */
  readonly stdin: InputSource;
  /** Where diagnostics for the user go (a failed guest write, once per errno). */
  readonly warn: (message: string) => void;
}

/** Builds the hypercall context of `parts.vcpu`. */
export function vcpuContext(parts: ContextParts): HypercallContext {
  const { vcpu, mem, warn } = parts;
  const sregs = new Sregs();
  const reported = new Set<number>();
  return {
    mem,
    stdout: parts.stdout,
    stderr: parts.stderr,
    cmdline: parts.cmdline,
    files: parts.files,
    stdin: parts.stdin,
    onWriteError(fd, errno): void {
      if (reported.has(errno)) return; // once per errno: no stderr flood
      reported.add(errno);
      warn(`A guest write to fd ${fd} failed (errno ${-errno}); v1 guests cannot be told`);
    },
    translateRange(vaddr, len, visit): boolean {
      vcpu.getSregs(sregs);
      return translateRange(mem, sregs.getU64(SREGS.cr3), vaddr, len, visit);
    },
  };
}
