/**
 * The KVM layer's one error convention: a call whose failure ends the run
 * throws {@linkcode KvmError} ("Cannot <op>: <ENAME> (<n>)"); a call whose
 * failure the caller handles (an optional capability, KVM_RUN's EINTR)
 * returns the errno, 0 meaning success. `/dev/kvm` that cannot be opened is
 * a {@linkcode KvmUnavailableError} whose message says how to fix it.
 * @module
 */

import { ERRNO, errnoName } from "../errno.ts";
import { errno, libc } from "../host/libc.ts";

/** A failed KVM or memory call: which operation, and the errno it returned. */
export class KvmError extends Error {
  /** The operation that failed, e.g. "create VM". */
  readonly op: string;
  /** The errno value. */
  readonly errno: number;

  /** Builds "Cannot <op>: <ENAME> (<n>)". */
  constructor(op: string, errnoValue: number, options?: ErrorOptions) {
    super(`Cannot ${op}: ${errnoName(errnoValue)} (${errnoValue})`, options);
    this.op = op;
    this.errno = errnoValue;
  }
  /** Error name. */
  override name = "KvmError";
}

/** `/dev/kvm` cannot be used; the message says why and how to fix it. */
export class KvmUnavailableError extends Error {
  /** The errno from open(2). */
  readonly errno: number;
  /** Builds the error from the errno of the failed open. */
  constructor(path: string, errnoValue: number) {
    super(kvmUnavailableMessage(path, errnoValue));
    this.errno = errnoValue;
  }
  /** Error name. */
  override name = "KvmUnavailableError";
}

function kvmUnavailableMessage(path: string, errnoValue: number): string {
  switch (errnoValue) {
    case ERRNO.ENOENT:
      return `${path} does not exist: enable virtualization and load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd)";
    case ERRNO.EACCES:
    case ERRNO.EPERM:
      return `Permission denied opening ${path}: add your user to the kvm group ` +
        "(sudo usermod -aG kvm $USER, then log in again) or run as root";
    case ERRNO.ENXIO:
    case ERRNO.ENODEV:
      return `${path} has no KVM driver behind it: load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd)";
    default:
      return `Cannot open ${path}: ${errnoName(errnoValue)} (${errnoValue})`;
  }
}

/** Throws a KvmError naming `op` when `result` is negative (the errno is read at once). */
export function check(result: number, op: string): number {
  if (result < 0) throw new KvmError(op, errno());
  return result;
}

/** Closes an fd (ignores -1). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}
