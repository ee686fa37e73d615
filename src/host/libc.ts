// deno-lint-ignore-file camelcase
/**
 * The only `Deno.dlopen` in dhyve: the few libc functions KVM and Landlock need.
 * One `dlopen` binds the five symbols a plain run needs (`syscall`, through
 * which every cold call goes, two `ioctl` shapes, a non-blocking `poll` that
 * sleeps, errno), all on Deno's libffi path (see {@linkcode COLD}); KVM_RUN's
 * fast `ioctl` ({@linkcode fastIoctl}) and the --net data path's five (`poll`
 * of its fds among them) bind on first use.
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
import { encodeUtf8 } from "../utf8.ts";

export { LIBC_SONAME, LibcLoadError } from "./libc_path.ts";

/**
 * The last parameter of the symbols a plain run binds at start-up, which the C
 * functions never read: with a struct parameter Deno calls a symbol through
 * libffi instead of compiling a fast-call trampoline for it at `dlopen`. The
 * first trampoline of a process costs ~0.7 ms and pages in ~2.5 MiB of
 * Deno's own code (measured: `dlopen` of these four 1.03–1.12 ms and +4.5–5.0
 * MiB of the binary's pages with trampolines, 0.34–0.37 ms and +2.1–2.4 MiB
 * without); a call costs ~0.1 µs more (0.33–0.40 against 0.24–0.27 µs) and
 * allocates nothing. On x86-64 an 8-byte struct goes in the next integer
 * register or stack slot, which these functions (variadic, or taking fewer
 * parameters) ignore, as C's calling convention lets them.
 */
const COLD = { struct: ["u64"] } as const;
/** The value passed for {@linkcode COLD}: any 8 bytes. */
const COLD_ARG = new Uint8Array(8);

/**
 * The symbols bound by the start-up `dlopen`, cold (see {@linkcode COLD}): the
 * cold calls all go through one `syscall` (see {@linkcode wrappers}), and
 * only calls with arguments a raw syscall would have to box get a symbol of
 * their own.
 */
const SYMBOLS = {
  /** long syscall(long nr, long a, b, c, d, e, f): numbers only (buffers by address) */
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64", COLD],
    result: "i64",
  },
  /** int ioctl(int fd, unsigned long request, unsigned long arg): bigint arguments only */
  ioctl: { parameters: ["i32", "u64", "u64", COLD], result: "i32" },
  /** int ioctl(int fd, unsigned long request, void *arg): buffer argument */
  ioctl_buf: { name: "ioctl", parameters: ["i32", "u64", "buffer", COLD], result: "i32" },
  /** int *__errno_location(void): errno of the calling thread */
  __errno_location: { parameters: [COLD], result: "pointer" },
  /** char *getenv(const char *name) */
  getenv: { parameters: ["buffer", COLD], result: "pointer" },
  /** poll(NULL, 0, ms) on Deno's blocking thread pool: a sleep that resolves a Promise */
  poll_async: {
    name: "poll",
    parameters: ["pointer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Bound by a `dlopen` of its own on first use: a symbol in the start-up
 * `dlopen` is bound (and paid for) in every run, and only runs with a large
 * guest RAM call this one (`VmFd.setUserMemoryRegionAsync`).
 */
const ON_FIRST_ASYNC = {
  /** ioctl(fd, request, buf) on Deno's blocking thread pool: a slow ioctl that resolves a Promise */
  ioctl_async: {
    name: "ioctl",
    parameters: ["i32", "u64", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Symbols bound by a `dlopen` of their own on first use, with Deno's fast
 * calls: the --net data path's (a plain run never calls them).
 */
const ON_FIRST_USE = {
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout): nfds as u32 (few fds) */
  poll: { parameters: ["buffer", "u32", "i32"], result: "i32" },
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
   * ioctl(2) with bigint request and argument, for KVM_RUN until a run is
   * long enough for {@linkcode fastIoctl} (the same arguments): a number
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
   * getenv(3): the process's environment as libc (and Deno's Rust side) sees
   * it, without Deno's env permission; null when `name` is unset.
   */
  getenv(name: string): string | null;
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
  /**
   * ioctl(2) with a buffer argument, on Deno's blocking thread pool, for an
   * ioctl that can take milliseconds while this thread goes on. `arg` must
   * not change until the Promise settles. It resolves to the result; on -1
   * errno is that pool thread's, out of reach: repeat the call on this
   * thread to learn it.
   */
  ioctl_async(fd: number, request: bigint, arg: Uint8Array<ArrayBuffer>): Promise<number>;
}

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

/** The cold symbols the wrappers call, each with {@linkcode COLD}'s argument last. */
interface Raw {
  syscall(
    nr: number,
    a: number,
    b: number,
    c: number,
    d: number,
    e: number,
    f: number,
    cold: Uint8Array,
  ): number;
  ioctl(fd: number, request: bigint, arg: bigint, cold: Uint8Array): number;
  ioctl_buf(fd: number, request: number, arg: Uint8Array<ArrayBuffer>, cold: Uint8Array): number;
  __errno_location(cold: Uint8Array): Deno.PointerValue;
  getenv(name: Uint8Array<ArrayBuffer>, cold: Uint8Array): Deno.PointerValue;
}

/**
 * The cold calls, each one raw system call through the one `syscall` symbol
 * (libc's wrapper: -1 and errno on failure, as the libc functions).
 */
function wrappers(
  raw: Raw,
): Omit<Libc, "poll_async" | keyof typeof ON_FIRST_ASYNC | keyof typeof ON_FIRST_USE> {
  const call = (nr: number, a = 0, b = 0, c = 0, d = 0, e = 0, f = 0): number =>
    Number(raw.syscall(nr, a, b, c, d, e, f, COLD_ARG));
  return {
    open: (path, flags, mode) => call(SYS.openat, AT_FDCWD, bufferAddress(path), flags, mode),
    close: (fd) => call(SYS.close, fd),
    // Numbers become bigints here, so that the symbol only ever sees bigints (see ioctl_big).
    ioctl_val: (fd, request, arg) => raw.ioctl(fd, BigInt(request), BigInt(arg), COLD_ARG),
    ioctl_big: (fd, request, arg) => raw.ioctl(fd, request, arg, COLD_ARG),
    ioctl_buf: (fd, request, arg) => raw.ioctl_buf(fd, request, arg, COLD_ARG),
    __errno_location: () => raw.__errno_location(COLD_ARG),
    getenv: (name) => {
      const value = raw.getenv(cString(name), COLD_ARG);
      // UNSAFE: getenv's result is a NUL-terminated string in the environment; copied at once.
      return value === null ? null : Deno.UnsafePointerView.getCString(value);
    },
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

/** dlopen()s libc (where the first one found it) with the symbols of `table`. */
function bind(table: Deno.ForeignLibraryInterface): Record<string, unknown> {
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
 * The symbols of ON_FIRST_USE (and of ON_FIRST_ASYNC) start as stubs that
 * bind all of their group, replace themselves in the table (so later calls
 * go straight to libc) and forward.
 * @throws {Deno.errors.NotCapable} when `--allow-ffi` is missing (passed through).
 * @throws {LibcLoadError} when no candidate path opens (one line naming them).
 */
export function libc(): Libc {
  if (symbols === undefined) {
    const raw = bind(SYMBOLS);
    const table: Record<string, unknown> = {
      poll_async: raw.poll_async,
      ...wrappers(raw as unknown as Raw),
    };
    for (const group of [ON_FIRST_USE, ON_FIRST_ASYNC]) {
      const bindLater = (): void => void Object.assign(table, bind(group));
      for (const name of Object.keys(group)) {
        table[name] = (...args: unknown[]): unknown => {
          bindLater();
          return (table[name] as (...a: unknown[]) => unknown)(...args);
        };
      }
    }
    symbols = table as unknown as Libc;
  }
  return symbols;
}

/** ioctl(2) with Deno's fast call, as bound by {@linkcode fastIoctl}. */
export type FastIoctl = (fd: number, request: bigint, arg: bigint) => number;

const FAST_IOCTL = {
  /** int ioctl(int fd, unsigned long request, unsigned long arg): bigint arguments only */
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let fastIoctlSymbol: FastIoctl | null | undefined;

/**
 * ioctl(2) through Deno's fast call, for KVM_RUN once a run has shown it is
 * long enough to repay the trampoline (see `VcpuFd.run`): ~0.1 µs less per
 * call than the cold `ioctl_big`, for a `dlopen` of its own on the first
 * call of each thread (~0.7 ms and ~2.5 MiB of Deno's code paged in).
 * Arguments as `ioctl_big`'s: bigints made once. Null when that `dlopen`
 * fails (the caller keeps the cold call; libc is loaded already, so the
 * loader finds it by name, without opening the file again under Landlock).
 */
export function fastIoctl(): FastIoctl | null {
  if (fastIoctlSymbol === undefined) {
    try {
      libc(); // where libc is
      fastIoctlSymbol = bind(FAST_IOCTL).ioctl as FastIoctl;
    } catch {
      fastIoctlSymbol = null;
    }
  }
  return fastIoctlSymbol;
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
  const bytes = encodeUtf8(s);
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
