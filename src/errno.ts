/**
 * Linux errno numbers and names (x86_64). Hermit uses the same numbering, so
 * these serve both host errors (from libc) and results returned to the guest.
 * Pure data.
 * @module
 */

/** errno values dhyve uses by name. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ECONNREFUSED: 111,
  ETIMEDOUT: 110,
} as const;

/** One of the errno names above. */
export type ErrnoName = keyof typeof ERRNO;

let names: Readonly<Record<number, string>> | undefined;

/** The symbolic name of an errno value, e.g. `errnoName(2)` → `"ENOENT"`. */
export function errnoName(errno: number): string {
  // Built on first use, not at every start: only messages about failures ask.
  names ??= Object.fromEntries(Object.entries(ERRNO).map(([name, value]) => [value, name]));
  return names[errno] ?? `errno ${errno}`;
}
