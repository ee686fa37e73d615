/**
 * dhyve's errors and their exit codes, in one place. Every failure that ends
 * a run before or outside the guest is a {@linkcode VmError} carrying its
 * exit code; {@linkcode toVmError} turns the errors of the layers below
 * (KVM, loader, Landlock, the GDB port; and any error with its own
 * `exitCode`, such as the config file's and the network's) into one,
 * so that `runVm` and `main.ts` give the same line and the same code.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { GdbListenError } from "../gdb/listen_error.ts";
import { KvmError, KvmUnavailableError } from "../kvm/errors.ts";
import { LibcLoadError } from "../host/libc_path.ts";
import { LandlockError } from "../host/landlock.ts";
import { ImageFormatError, LayoutError } from "../loader/errors.ts";
import { UsageError } from "../params.ts";
import { FileMapError } from "../sandbox/file_map.ts";

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

/**
 * The {@linkcode VmError} for any error dhyve knows (itself when it is one),
 * or null for an unexpected one (a bug: exit 70). `kernelPath` names the
 * kernel in messages about its format. A {@linkcode UsageError} maps to 64
 * (it stays a TypeError for library callers; `runVm` rethrows it as is).
 */
export function toVmError(error: unknown, kernelPath?: string): VmError | null {
  if (error instanceof VmError) return error;
  const wrap = (message: string, code: number): VmError =>
    new VmError(message, code, { cause: error });
  if (error instanceof UsageError) return wrap(error.message, EXIT_CODE.USAGE);
  // Errors of the layers that know their own code (ConfigError 78, NetSetupError).
  if (error instanceof Error && "exitCode" in error && typeof error.exitCode === "number") {
    return wrap(error.message, error.exitCode);
  }
  if (error instanceof FileMapError) return wrap(error.message, EXIT_CODE.USAGE);
  if (error instanceof LayoutError) return wrap(error.message, EXIT_CODE.USAGE);
  if (error instanceof ImageFormatError) {
    const what = kernelPath === undefined ? "The kernel" : `"${kernelPath}"`;
    return wrap(`${what} is not a usable Hermit kernel: ${error.message}`, EXIT_CODE.BAD_KERNEL);
  }
  if (error instanceof KvmUnavailableError || error instanceof LibcLoadError) {
    return wrap(error.message, EXIT_CODE.KVM_UNAVAILABLE);
  }
  if (error instanceof KvmError) return wrap(error.message, EXIT_CODE.HOST_ERROR);
  if (error instanceof GdbListenError) {
    return wrap(error.message, error.permission ? EXIT_CODE.PERMISSION : EXIT_CODE.HOST_ERROR);
  }
  if (error instanceof LandlockError) return wrap(error.message, EXIT_CODE.HOST_ERROR);
  if (error instanceof Deno.errors.NotCapable) {
    return wrap(
      `${
        error.message.split("\n")[0]
      } (dhyve needs --allow-ffi for KVM and --allow-read for the kernel)`,
      EXIT_CODE.PERMISSION,
    );
  }
  return null;
}
