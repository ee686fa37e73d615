// deno-lint-ignore-file camelcase
/**
 * The only `Deno.dlopen` in dhyve: the few libc functions KVM and Landlock need.
 * One `dlopen` binds the five symbols a plain run needs (`syscall`, through
 * which every cold call goes, two `ioctl` shapes, a non-blocking `poll` that
 * sleeps, errno); the --net data path's five (`poll` of its fds among them)
 * bind on first use.
 *
 * FFI bypasses Deno's permission checks, so this module exposes only what the
 * KVM layer needs (open/close of `/dev/kvm` and its fds, ioctl, mmap/munmap,
 * madvise, errno, raw writes to an already-open fd) and what `src/landlock.ts`
 * needs to fence the process (the `landlock_*` syscalls, prctl, and fstat of
 * an `O_PATH` fd); `src/net/host_io.ts` uses open/ioctl/eventfd/read/write for the TAP
 * device (`/dev/net/tun`), eventfds, poll and readv/writev, and socket/connect
 * for passt's UNIX socket (whose path the permission check covers, as for the TAP). Only those three
 * modules import it. Guest file I/O never goes through here.
 * @module
 */

import { libcCandidates, openFirst, readLdCache } from "./libc_path.ts";

export { LIBC_SONAME, LibcLoadError } from "./libc_path.ts";

/**
 * The symbols bound by `dlopen`. Each costs start-up time (~0.15 ms: Deno
 * builds a fast-call trampoline for it), so the cold calls all go through one
 * `syscall` (see {@linkcode wrappers}) and only the calls a hot path makes,
 * with arguments a raw syscall would have to box, get a symbol of their own.
 */
const SYMBOLS = {
  /** long syscall(long nr, long a, b, c, d, e, f): numbers only (buffers by address) */
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  /** int ioctl(int fd, unsigned long request, unsigned long arg): bigint arguments only */
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  /** int ioctl(int fd, unsigned long request, void *arg): buffer argument */
  ioctl_buf: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** int *__errno_location(void): errno of the calling thread */
  __errno_location: { parameters: [], result: "pointer" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout): nfds as u32 (few fds) */
  poll: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  /** poll(NULL, 0, ms) on Deno's blocking thread pool: a sleep that resolves a Promise */
  poll_async: {
    name: "poll",
    parameters: ["pointer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // The next four return ssize_t, declared i32: their counts fit in 32 bits (and -1 stays -1),
  // while an "isize" result allocates on every call (measured: ~60 bytes), which the per-frame
  // data path must not do.
  /** ssize_t read(int fd, void *buf, size_t n) */
  read_buf: { name: "read", parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** ssize_t write(int fd, const void *buf, size_t n) */
  write_buf: { name: "write", parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** ssize_t readv(int fd, const struct iovec *iov, int iovcnt) */
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** ssize_t writev(int fd, const struct iovec *iov, int iovcnt) */
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * The libc calls with number arguments. Deno's FFI accepts plain numbers for
 * 64-bit parameters (no BigInt on the hot path); its typings only say bigint.
 */
export interface Libc {
  /** open(2). */
  open(path: Uint8Array<ArrayBuffer>, flags: number, mode: number): number;
  /** close(2). */
  close(fd: number): number;
  /** ioctl(2) with an integer argument. */
  ioctl_val(fd: number, request: number, arg: number): number;
  /** ioctl(2) with a buffer argument. */
  ioctl_buf(fd: number, request: number, arg: Uint8Array<ArrayBuffer>): number;
  /**
   * ioctl(2) with bigint request and argument, for the hot path: a number
   * passed for a u64 parameter makes V8's optimised fast call deoptimise
   * ("not a BigInt") again and again, so callers pass bigints made once.
   */
  ioctl_big(fd: number, request: bigint, arg: bigint): number;
  /** mmap(2); the address arrives as a bigint. */
  mmap(
    addr: number,
    len: number,
    prot: number,
    flags: number,
    fd: number,
    off: bigint,
  ): number | bigint;
  /** munmap(2). */
  munmap(addr: number, len: number): number;
  /** madvise(2). */
  madvise(addr: number, len: number, advice: number): number;
  /** timer_create(2). */
  timer_create(clock: number, sev: Uint8Array<ArrayBuffer>, id: Uint8Array<ArrayBuffer>): number;
  /** timer_settime(2) with no old value. */
  timer_settime(id: bigint, flags: number, value: Uint8Array<ArrayBuffer>, old: number): number;
  /** timer_delete(2). */
  timer_delete(id: bigint): number;
  /** sched_getaffinity(2) for the calling thread (pid 0). */
  sched_getaffinity(pid: number, size: number, mask: Uint8Array<ArrayBuffer>): number;
  /** sched_setaffinity(2) for the calling thread (pid 0). */
  sched_setaffinity(pid: number, size: number, mask: Uint8Array<ArrayBuffer>): number;
  /** The address of the calling thread's errno. */
  __errno_location(): Deno.PointerValue;
  /**
   * syscall(2) with up to six arguments, each a number or a buffer (passed by
   * its address); -1 and errno on failure. For cold calls: it allocates.
   */
  syscall_args(nr: number, ...args: (number | Uint8Array<ArrayBuffer>)[]): number;
  /** prctl(2). */
  prctl(option: number, a2: number, a3: number, a4: number, a5: number): number;
  /** fstat(2) into a `struct stat` buffer (144 bytes on x86_64). */
  fstat(fd: number, st: Uint8Array<ArrayBuffer>): number;
  /** eventfd(2). */
  eventfd(initval: number, flags: number): number;
  /** read(2) into a buffer; `n` as a bigint made once (hot path, see `ioctl_big`). */
  read_buf(fd: number, buf: Uint8Array<ArrayBuffer>, n: bigint): number;
  /** write(2) from a buffer; `n` as a bigint made once. */
  write_buf(fd: number, buf: Uint8Array<ArrayBuffer>, n: bigint): number;
  /** readv(2). */
  readv(fd: number, iov: Uint8Array<ArrayBuffer>, count: number): number;
  /** writev(2). */
  writev(fd: number, iov: Uint8Array<ArrayBuffer>, count: number): number;
  /** poll(2). */
  poll(fds: Uint8Array<ArrayBuffer>, n: number, timeoutMs: number): number;
  /** socket(2). */
  socket(domain: number, type: number, protocol: number): number;
  /** connect(2). */
  connect(fd: number, addr: Uint8Array<ArrayBuffer>, len: number): number;
  /** socketpair(2). */
  socketpair(domain: number, type: number, protocol: number, sv: Uint8Array<ArrayBuffer>): number;
  /** geteuid(2) (Deno.uid() would need --allow-sys). */
  geteuid(): number;
  /** faccessat(AT_FDCWD, path, mode, 0): 0 when `path` (symlinks followed) allows `mode`. */
  access(path: Uint8Array<ArrayBuffer>, mode: number): number;
  /**
   * poll(NULL, 0, ms) on Deno's blocking thread pool: resolves after `ms`
   * while the event loop runs (signals, other ops). Not cancellable.
   */
  poll_async(fds: null, n: 0, timeoutMs: number): Promise<number>;
}

/**
 * Symbols a plain run never calls (the --net data path): bound by a second
 * `dlopen` on their first use, so that a plain run does not build their
 * trampolines.
 */
const ON_FIRST_USE: ReadonlySet<string> = new Set<keyof typeof SYMBOLS>([
  "poll",
  "read_buf",
  "write_buf",
  "readv",
  "writev",
]);

/** x86-64 system call numbers of the calls made through `syscall`. */
const SYS = {
  close: 3,
  fstat: 5,
  mmap: 9,
  munmap: 11,
  madvise: 28,
  socket: 41,
  connect: 42,
  socketpair: 53,
  geteuid: 107,
  faccessat: 269,
  prctl: 157,
  sched_setaffinity: 203,
  sched_getaffinity: 204,
  timer_create: 222,
  timer_settime: 223,
  timer_delete: 226,
  openat: 257,
  eventfd2: 290,
} as const;
/** openat(2)'s "relative to the current directory". */
const AT_FDCWD = -100;

/**
 * The host address of a buffer's first byte (0 for an empty one), as a raw
 * syscall argument or inside a struct handed to the kernel (iovecs).
 */
export function bufferAddress(buffer: Uint8Array<ArrayBuffer>): number {
  // UNSAFE: valid while `buffer` is alive; the caller holds it while the kernel may use it.
  const ptr = Deno.UnsafePointer.of(buffer);
  return ptr === null ? 0 : Number(Deno.UnsafePointer.value(ptr));
}

/** The two bound symbols the wrappers call. */
interface Raw {
  syscall(nr: number, a: number, b: number, c: number, d: number, e: number, f: number): number;
  ioctl(fd: number, request: bigint, arg: bigint): number;
}

/**
 * The cold calls, each one raw system call through the one `syscall` symbol
 * (libc's wrapper: -1 and errno on failure, as the libc functions).
 */
function wrappers(raw: Raw): Omit<Libc, keyof typeof SYMBOLS> {
  const call = (nr: number, a = 0, b = 0, c = 0, d = 0, e = 0, f = 0): number =>
    Number(raw.syscall(nr, a, b, c, d, e, f));
  return {
    open: (path, flags, mode) => call(SYS.openat, AT_FDCWD, bufferAddress(path), flags, mode),
    close: (fd) => call(SYS.close, fd),
    // Numbers become bigints here, so that the symbol only ever sees bigints (see ioctl_big).
    ioctl_val: (fd, request, arg) => raw.ioctl(fd, BigInt(request), BigInt(arg)),
    ioctl_big: raw.ioctl,
    mmap: (addr, len, prot, flags, fd, off) => {
      const address = call(SYS.mmap, addr, len, prot, flags, fd, Number(off));
      return address === -1 ? MAP_FAILED : address;
    },
    munmap: (addr, len) => call(SYS.munmap, addr, len),
    madvise: (addr, len, advice) => call(SYS.madvise, addr, len, advice),
    timer_create: (clock, sev, id) =>
      call(SYS.timer_create, clock, bufferAddress(sev), bufferAddress(id)),
    timer_settime: (id, flags, value, old) =>
      call(SYS.timer_settime, Number(id), flags, bufferAddress(value), old),
    timer_delete: (id) => call(SYS.timer_delete, Number(id)),
    sched_getaffinity: (pid, size, mask) =>
      call(SYS.sched_getaffinity, pid, size, bufferAddress(mask)),
    sched_setaffinity: (pid, size, mask) =>
      call(SYS.sched_setaffinity, pid, size, bufferAddress(mask)),
    syscall_args: (nr, ...args) =>
      call(nr, ...args.map((a) => (typeof a === "number" ? a : bufferAddress(a)))),
    prctl: (option, a2, a3, a4, a5) => call(SYS.prctl, option, a2, a3, a4, a5),
    fstat: (fd, st) => call(SYS.fstat, fd, bufferAddress(st)),
    eventfd: (initval, flags) => call(SYS.eventfd2, initval, flags),
    socket: (domain, type, protocol) => call(SYS.socket, domain, type, protocol),
    connect: (fd, addr, len) => call(SYS.connect, fd, bufferAddress(addr), len),
    socketpair: (domain, type, protocol, sv) =>
      call(SYS.socketpair, domain, type, protocol, bufferAddress(sv)),
    geteuid: () => call(SYS.geteuid),
    access: (path, mode) => call(SYS.faccessat, AT_FDCWD, bufferAddress(path), mode),
  };
}

type SymbolTable = Record<string, Deno.ForeignFunction>;

const libraries: Deno.DynamicLibrary<SymbolTable>[] = []; // kept: they stay loaded
let libcFile: string | undefined; // where the first dlopen found libc
let symbols: Libc | undefined;
let errnoView: Int32Array | undefined;

/** dlopen()s libc with the symbols of SYMBOLS for which `wanted` holds. */
function bind(wanted: (name: string) => boolean): Record<string, unknown> {
  const table = Object.fromEntries(Object.entries(SYMBOLS).filter(([name]) => wanted(name)));
  // Tried path by path (see libc_path.ts): Deno cannot dlopen by soname.
  const { path, library } = openFirst(
    libcFile === undefined ? libcCandidates(readLdCache()) : [libcFile],
    (candidate) => Deno.dlopen(candidate, table as SymbolTable),
  );
  libcFile = path;
  libraries.push(library);
  return library.symbols;
}

/**
 * Loads libc once per thread (each Worker has its own copy of this module).
 * The symbols in ON_FIRST_USE start as stubs that bind all of them, replace
 * themselves in the table (so later calls go straight to libc) and forward.
 * @throws {Deno.errors.NotCapable} when `--allow-ffi` is missing (passed through).
 * @throws {LibcLoadError} when no candidate path opens (one line naming them).
 */
export function libc(): Libc {
  if (symbols === undefined) {
    const table: Record<string, unknown> = bind((name) => !ON_FIRST_USE.has(name));
    Object.assign(table, wrappers(table as unknown as Raw));
    const bindLater = (): void => void Object.assign(table, bind((n) => ON_FIRST_USE.has(n)));
    for (const name of ON_FIRST_USE) {
      table[name] = (...args: unknown[]): unknown => {
        bindLater();
        return (table[name] as (...a: unknown[]) => unknown)(...args);
      };
    }
    symbols = table as unknown as Libc;
  }
  return symbols;
}

/** Whether this thread has loaded libc (a run has; `--version` has not). */
export function libcLoaded(): boolean {
  return symbols !== undefined;
}

/** errno of the calling thread; read it right after the call that failed. */
export function errno(): number {
  if (errnoView === undefined) {
    const ptr = libc().__errno_location();
    if (ptr === null) return 0;
    // UNSAFE: errno is a thread-local int that lives as long as the thread.
    errnoView = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(ptr, 4));
  }
  return errnoView[0] ?? 0;
}

/** A NUL-terminated copy of `s` for passing to C. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** open(2) flags used by dhyve. */
export const O_RDWR = 2;
/** O_CLOEXEC. */
export const O_CLOEXEC = 0o2000000;
/** O_PATH: an fd that names a file without opening it for I/O (Landlock rules). */
export const O_PATH = 0o10000000;
/** mmap(2) protection bits. */
export const PROT_READ = 1;
/** PROT_WRITE. */
export const PROT_WRITE = 2;
/** mmap(2) flags. */
export const MAP_SHARED = 0x01;
/** MAP_PRIVATE. */
export const MAP_PRIVATE = 0x02;
/** MAP_ANONYMOUS. */
export const MAP_ANONYMOUS = 0x20;
/** MAP_NORESERVE. */
export const MAP_NORESERVE = 0x4000;
/** madvise(2) advice values. */
export const MADV_MERGEABLE = 12;
/** MADV_HUGEPAGE. */
export const MADV_HUGEPAGE = 14;
/** mmap's error return, `(void *)-1`, as it arrives through a `usize` result. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
