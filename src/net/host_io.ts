/**
 * The host side of networking through raw file descriptors: the TAP device
 * (`/dev/net/tun` + TUNSETIFF), eventfds, poll, and readv/writev straight
 * between a descriptor and guest RAM. Deno's own APIs cannot open a TAP
 * interface (it needs an ioctl on the open fd) nor do scatter/gather I/O on
 * guest memory, so this module calls libc; it is the only FFI user besides
 * `kvm.ts` and `landlock.ts` (see tests/sandbox/architecture_test.ts). It
 * opens no path but `/dev/net/tun`.
 * @module
 */

import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "../libc.ts";
import { MAX_IFNAME, TUN_DEVICE } from "./net_option.ts";

const O_NONBLOCK = 0o4000;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
/** _IOW('T', 202, int). */
const TUNSETIFF = 0x400454ca;
/** _IOR('T', 210, unsigned int): the attached interface's name and flags. */
const TUNGETIFF = 0x800454d2;
/** The interface outlives its last fd (made by `ip tuntap add`). */
const IFF_PERSIST = 0x0800;
/** Read the interface's hardware address; tun handles it on the character device. */
const SIOCGIFHWADDR = 0x8927;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
/** sizeof(struct ifreq) on x86_64. */
const IFREQ_SIZE = 40;

/** Opening or attaching the TAP device failed; `errno` says why, `step` where. */
export class TapError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** "open" (of /dev/net/tun) or "attach" (TUNSETIFF). */
  readonly step: "open" | "attach";
  /** Builds the error; the message is one line. */
  constructor(message: string, step: "open" | "attach", errnoValue: number) {
    super(message);
    this.step = step;
    this.errno = errnoValue;
  }
  /** Error name. */
  override name = "TapError";
}

/** An open TAP interface. */
export interface Tap {
  /** Non-blocking fd, frames without packet information (IFF_NO_PI). */
  fd: number;
  /** The interface's own MAC address (the host end). */
  mac: Uint8Array;
  /**
   * The interface existed before (it is persistent); false when attaching
   * created a temporary one that disappears with the fd.
   */
  persistent: boolean;
}

/**
 * Opens `/dev/net/tun` and attaches it to TAP interface `name` (created by
 * the kernel if it does not exist and the process may create it).
 * @throws {TapError} with the errno.
 */
export function openTap(name: string): Tap {
  const fd = libc().open(cString(TUN_DEVICE), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    const e = errno();
    throw new TapError(`Cannot open ${TUN_DEVICE} (errno ${e})`, "open", e);
  }
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(new TextEncoder().encode(name).subarray(0, MAX_IFNAME));
  new DataView(ifr.buffer).setInt16(16, IFF_TAP | IFF_NO_PI, true);
  if (libc().ioctl_buf(fd, TUNSETIFF, ifr) < 0) {
    const e = errno();
    libc().close(fd);
    throw new TapError(`Cannot attach to TAP device "${name}" (errno ${e})`, "attach", e);
  }
  const hw = new Uint8Array(IFREQ_SIZE);
  hw.set(new TextEncoder().encode(name).subarray(0, MAX_IFNAME));
  const mac = new Uint8Array(6);
  if (libc().ioctl_buf(fd, SIOCGIFHWADDR, hw) >= 0) mac.set(hw.subarray(18, 24));
  const got = new Uint8Array(IFREQ_SIZE);
  const persistent = libc().ioctl_buf(fd, TUNGETIFF, got) < 0 ||
    (new DataView(got.buffer).getUint16(16, true) & IFF_PERSIST) !== 0;
  return { fd, mac, persistent };
}

/** A non-blocking eventfd; throws a plain Error with the errno if the kernel refuses. */
export function createEventFd(): number {
  const fd = libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw new Error(`Cannot create an eventfd (errno ${errno()})`);
  return fd;
}

/** close(2); errors are ignored (nothing useful to do at tear-down). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** An eventfd counter is 8 bytes; a bigint made once keeps the FFI call monomorphic. */
const EIGHT = 8n;
/** The value 1, to add to an eventfd's counter. */
const ONE = new Uint8Array(8);
ONE[0] = 1;
/** Where a drained counter goes. */
const SINK = new Uint8Array(8);

/** Adds 1 to an eventfd's counter (wakes its poller, or raises an irqfd). */
export function signalEventFd(fd: number): void {
  libc().write_buf(fd, ONE, EIGHT);
}

/** Clears a (non-blocking) eventfd's counter; returns whether it was set. */
export function drainEventFd(fd: number): boolean {
  return libc().read_buf(fd, SINK, EIGHT) === 8;
}

/**
 * A reusable `struct pollfd` array and an `struct iovec` array, with the
 * calls that use them; one per thread, allocated once.
 */
export class FdIo {
  readonly #poll: Uint8Array<ArrayBuffer>;
  readonly #pollView: DataView;
  readonly #iov: Uint8Array<ArrayBuffer>;
  readonly #iovView: DataView;
  readonly #maxIov: number;

  /** Room for `pollFds` descriptors and `maxIov` segments. */
  constructor(pollFds: number, maxIov: number) {
    this.#poll = new Uint8Array(8 * pollFds);
    this.#pollView = new DataView(this.#poll.buffer);
    this.#iov = new Uint8Array(16 * maxIov);
    this.#iovView = new DataView(this.#iov.buffer);
    this.#maxIov = maxIov;
  }

  /** Sets poll slot `i` to wait for input on `fd` (a negative fd is skipped by the kernel). */
  setPoll(i: number, fd: number): void {
    this.#pollView.setInt32(8 * i, fd, true);
    this.#pollView.setInt16(8 * i + 4, 1, true); // POLLIN
    this.#pollView.setInt16(8 * i + 6, 0, true);
  }

  /** Whether poll reported slot `i` ready (input, hang-up or error). */
  ready(i: number): boolean {
    return this.#pollView.getInt16(8 * i + 6, true) !== 0;
  }

  /** Blocks in poll(2) over the first `n` slots; returns its result (-errno on failure). */
  poll(n: number, timeoutMs: number): number {
    const r = libc().poll(this.#poll, n, timeoutMs);
    return r < 0 ? -errno() : r;
  }

  /** Sets iovec `i` to `len` bytes at host address `address`. */
  setIov(i: number, address: number, len: number): void {
    const v = this.#iovView;
    v.setUint32(16 * i, address % 0x1_0000_0000, true);
    v.setUint32(16 * i + 4, Math.floor(address / 0x1_0000_0000), true);
    v.setUint32(16 * i + 8, len, true);
    v.setUint32(16 * i + 12, 0, true);
  }

  /** Most iovecs. */
  get maxIov(): number {
    return this.#maxIov;
  }

  /** readv(2) of the first `count` iovecs; bytes read, or -errno. */
  readv(fd: number, count: number): number {
    const r = libc().readv(fd, this.#iov, count);
    return r < 0 ? -errno() : r;
  }

  /** writev(2) of the first `count` iovecs; bytes written, or -errno. */
  writev(fd: number, count: number): number {
    const r = libc().writev(fd, this.#iov, count);
    return r < 0 ? -errno() : r;
  }
}
