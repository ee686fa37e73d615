/**
 * Host error → Hermit errno. Owns the translation of whatever a `Deno.*` file
 * API throws into the (positive) errno a guest sees, and the reading of
 * Deno's "permission denied by a flag" errors. Hermit numbers errors as Linux
 * x86_64 does, so a host errno that has a number passes through unchanged;
 * nothing is ever folded into EPERM (uhyve 0.8 does that). Like all of
 * `sandbox/`, it never imports KVM, FFI (`src/kvm.ts`, `src/host/libc.ts`) or
 * `src/hypercall/`.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { logger } from "../log.ts";

const log = logger("sandbox");

/** Hermit (= Linux x86_64) errno numbers by name, beyond the ones `ERRNO` names. */
const EXTRA_ERRNO: Readonly<Record<string, number>> = {
  EWOULDBLOCK: ERRNO.EAGAIN,
  ENOTSUP: ERRNO.EOPNOTSUPP,
  ENOTBLK: 15,
  EDOM: 33,
  ENOSTR: 60,
  ENODATA: 61,
  ENOLINK: 67,
  EBADMSG: 74,
  EILSEQ: 84,
  ENOBUFS: 105,
  ESTALE: 116,
  EREMOTEIO: 121,
  EDQUOT: 122,
  ENOMEDIUM: 123,
  EMEDIUMTYPE: 124,
  ECANCELED: 125,
  EOWNERDEAD: 130,
  ENOTRECOVERABLE: 131,
};

/** Linux's highest errno (EHWPOISON); "os error N" above it is not an errno. */
const MAX_LINUX_ERRNO = 133;

/**
 * Deno error classes → errno, for errors that carry no `code`. Checked in
 * order with `instanceof`; `NotCapable` (a missing `--allow-*` flag) becomes
 * EACCES, and the caller is expected to warn (see {@linkcode deniedPermission}).
 */
const CLASS_ERRNO: readonly (readonly [new (...args: never[]) => Error, number])[] = [
  [Deno.errors.NotCapable, ERRNO.EACCES],
  [Deno.errors.NotFound, ERRNO.ENOENT],
  [Deno.errors.PermissionDenied, ERRNO.EACCES],
  [Deno.errors.AlreadyExists, ERRNO.EEXIST],
  [Deno.errors.IsADirectory, ERRNO.EISDIR],
  [Deno.errors.NotADirectory, ERRNO.ENOTDIR],
  [Deno.errors.FilesystemLoop, ERRNO.ELOOP],
  [Deno.errors.InvalidData, ERRNO.EINVAL],
  [Deno.errors.TimedOut, ERRNO.ETIMEDOUT],
  [Deno.errors.Interrupted, ERRNO.EINTR],
  [Deno.errors.WouldBlock, ERRNO.EAGAIN],
  [Deno.errors.WriteZero, ERRNO.EIO],
  [Deno.errors.UnexpectedEof, ERRNO.EIO],
  [Deno.errors.BadResource, ERRNO.EBADF],
  [Deno.errors.Busy, ERRNO.EBUSY],
  [Deno.errors.BrokenPipe, ERRNO.EPIPE],
  [Deno.errors.NotSupported, ERRNO.EOPNOTSUPP],
];

const OS_ERROR = /\(os error (\d+)\)/;

/** The errno named by an `E…` code string, or 0 when the name is unknown. */
export function errnoFromCode(code: string): number {
  if (Object.hasOwn(ERRNO, code)) return ERRNO[code as keyof typeof ERRNO];
  return Object.hasOwn(EXTRA_ERRNO, code) ? EXTRA_ERRNO[code]! : 0;
}

/**
 * The (positive) Hermit errno closest to a thrown host error.
 *
 * Tried in order: the error's `code` string (`"ENOSPC"`, `"EROFS"`, …, which
 * Deno sets for OS errors), the Deno error class (`NotFound` → ENOENT,
 * `NotCapable` → EACCES, …), the number in a message's "(os error N)", and a
 * plain `TypeError`/`RangeError` (a bad argument: EINVAL). Anything else is
 * EIO, with a warning, never EPERM.
 */
export function hostErrno(error: unknown): number {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") {
      const errno = errnoFromCode(code);
      if (errno !== 0) return errno;
    }
    for (const [cls, errno] of CLASS_ERRNO) {
      if (error instanceof cls) return errno;
    }
    const match = OS_ERROR.exec(error.message);
    if (match !== null) {
      const errno = Number(match[1]);
      if (errno >= 1 && errno <= MAX_LINUX_ERRNO) return errno;
    }
    if (error instanceof TypeError || error instanceof RangeError) return ERRNO.EINVAL;
  }
  log.warn`No errno for host error ${String(error)}: the guest gets EIO`;
  return ERRNO.EIO;
}

/** What a `Deno.errors.NotCapable` error says is missing. */
export interface DeniedPermission {
  /** The kind of access, e.g. `"read"` or `"write"`. */
  readonly access: string;
  /** The flag that grants it, e.g. `"--allow-read"`. */
  readonly flag: string;
  /** The path Deno names, when it names one. */
  readonly path: string | undefined;
}

const NOT_CAPABLE = /Requires (\w+) access(?: to "(.*)")?.*?(--allow-[a-z-]+)/s;

/**
 * For an error that Deno's permission checks threw (`NotCapable`), the access
 * and the `--allow-*` flag that is missing; `undefined` for any other error.
 */
export function deniedPermission(error: unknown): DeniedPermission | undefined {
  if (!(error instanceof Deno.errors.NotCapable)) return undefined;
  const match = NOT_CAPABLE.exec(error.message);
  if (match === null) {
    return { access: "file", flag: "--allow-read/--allow-write", path: undefined };
  }
  return { access: match[1] ?? "file", flag: match[3] ?? "--allow-read", path: match[2] };
}

/** Turns a thrown host error into −errno; the path names what the guest tried to reach. */
export type FailureReporter = (error: unknown, path: string | undefined) => number;

/**
 * A {@linkcode FailureReporter} that gives EACCES for a Deno permission
 * refusal and tells `warn` once per missing `--allow-*` flag (a guest that
 * retries in a loop must not flood the log), and {@linkcode hostErrno} for
 * anything else. A `path` of `undefined` stands for the temp directory.
 */
export function failureReporter(warn: (message: string) => void): FailureReporter {
  const warned = new Set<string>();
  return (error, path) => {
    const denied = deniedPermission(error);
    if (denied === undefined) return -hostErrno(error);
    if (!warned.has(denied.flag)) {
      warned.add(denied.flag);
      const target = denied.path ?? path;
      warn(
        target === undefined
          ? `Deno denied ${denied.access} access to the temp directory ($TMPDIR or /tmp) for the ` +
            `guest (it gets EACCES): add ${denied.flag} for it, or choose one with --tempdir`
          : `Deno denied ${denied.access} access to ${target} for the guest (it gets EACCES): ` +
            `add ${denied.flag}=${target}`,
      );
    }
    return -ERRNO.EACCES;
  };
}
