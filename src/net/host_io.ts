/**
 * The host side of networking through raw file descriptors: the TAP device
 * (`/dev/net/tun` + TUNSETIFF), eventfds, poll, and readv/writev straight
 * between a descriptor and guest RAM. Deno's own APIs cannot open a TAP
 * interface (it needs an ioctl on the open fd) nor do scatter/gather I/O on
 * guest memory, so this module calls libc; it is the only FFI user besides
 * `kvm.ts` and `host/` (see tests/sandbox/architecture_test.ts). It
 * opens no path but `/dev/net/tun`, and connects to passt's UNIX socket (a
 * path the Deno permission check covers, like the TUN device).
 * @module
 */

import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "../host/libc.ts";
import { ERRNO } from "../errno.ts";
import { NET_HDR_SIZE } from "../virtio/layout.ts";
import { MAX_IFNAME, TUN_DEVICE } from "./net_option.ts";

const { EINVAL } = ERRNO;

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
/** Read the interface's MTU (on any socket: tun does not answer it). */
const SIOCGIFMTU = 0x8921;
/** _IOW('T', 216, int): the size of the virtio-net header in front of each frame. */
const TUNSETVNETHDRSZ = 0x400454d8;
/** _IOW('T', 208, unsigned int): the offloads dhyve (the reader) accepts. */
const TUNSETOFFLOAD = 0x400454d0;
/** Offload flag: frames may arrive with a partial checksum (virtio NEEDS_CSUM). */
export const TUN_F_CSUM = 0x01;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
/** Frames carry a virtio-net header (set with TUNSETVNETHDRSZ). */
const IFF_VNET_HDR = 0x4000;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(struct sockaddr_un). */
const SOCKADDR_UN_SIZE = 110;
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

/** poll(2) event bits. */
export const POLL = { IN: 0x1, OUT: 0x4, ERR: 0x8, HUP: 0x10 } as const;

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
  /** Frames carry a 12-byte virtio-net header (IFF_VNET_HDR + TUNSETVNETHDRSZ). */
  vnetHdr: boolean;
  /** The TAP accepted TUN_F_CSUM: checksum offload can be offered to the guest. */
  csumOffload: boolean;
  /** The interface's MTU (1500 if it cannot be read). */
  mtu: number;
}

/**
 * Opens `/dev/net/tun` and attaches it to TAP interface `name` (created by
 * the kernel if it does not exist and the process may create it).
 * @throws {TapError} with the errno.
 */
export function openTap(name: string): Tap {
  // With a virtio-net header where the TAP takes one (as uhyve 0.9 does), else without.
  const withHeader = attachTap(name, true);
  const fd = withHeader >= 0 ? withHeader : attachTap(name, false, -withHeader);
  const vnetHdr = withHeader >= 0;
  const hw = ifreq(name);
  const mac = new Uint8Array(6);
  if (libc().ioctl_buf(fd, SIOCGIFHWADDR, hw) >= 0) mac.set(hw.subarray(18, 24));
  const got = new Uint8Array(IFREQ_SIZE);
  const persistent = libc().ioctl_buf(fd, TUNGETIFF, got) < 0 ||
    (new DataView(got.buffer).getUint16(16, true) & IFF_PERSIST) !== 0;
  // Probe TUN_F_CSUM, then turn offloads off until the guest's driver asks for them.
  const csumOffload = vnetHdr && setTapOffload(fd, TUN_F_CSUM) && setTapOffload(fd, 0);
  return { fd, mac, persistent, vnetHdr, csumOffload, mtu: interfaceMtu(name) ?? 1500 };
}

/** An ifreq naming interface `name`. */
function ifreq(name: string): Uint8Array<ArrayBuffer> {
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(new TextEncoder().encode(name).subarray(0, MAX_IFNAME));
  return ifr;
}

/**
 * Opens the TUN device and attaches it to `name`, with a 12-byte virtio-net
 * header if `vnetHdr`. Returns the fd, or -errno when the header variant
 * failed (the caller retries without); the plain variant throws.
 */
function attachTap(name: string, vnetHdr: boolean, headerErrno = 0): number {
  const fd = libc().open(cString(TUN_DEVICE), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    const e = errno();
    throw new TapError(`Cannot open ${TUN_DEVICE} (errno ${e})`, "open", e);
  }
  const ifr = ifreq(name);
  new DataView(ifr.buffer).setInt16(16, IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0), true);
  if (libc().ioctl_buf(fd, TUNSETIFF, ifr) < 0) {
    const e = errno();
    libc().close(fd);
    // Permission and busy errors do not depend on the header: report them at once.
    if (vnetHdr && e === EINVAL) return -e;
    throw new TapError(
      `Cannot attach to TAP device "${name}" (errno ${e === 0 ? headerErrno : e})`,
      "attach",
      e,
    );
  }
  if (vnetHdr) {
    const size = new Uint8Array(4);
    new DataView(size.buffer).setInt32(0, NET_HDR_SIZE, true);
    if (libc().ioctl_buf(fd, TUNSETVNETHDRSZ, size) < 0) {
      const e = errno();
      libc().close(fd);
      return -e;
    }
  }
  return fd;
}

/** TUNSETOFFLOAD: which offloads frames from the TAP may use; false if refused. */
export function setTapOffload(fd: number, flags: number): boolean {
  return libc().ioctl_val(fd, TUNSETOFFLOAD, flags) >= 0;
}

/** The MTU of interface `name` (SIOCGIFMTU on a throwaway socket), or null. */
function interfaceMtu(name: string): number | null {
  const sock = libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return null;
  const ifr = ifreq(name);
  const ok = libc().ioctl_buf(sock, SIOCGIFMTU, ifr) >= 0;
  libc().close(sock);
  const mtu = new DataView(ifr.buffer).getInt32(16, true);
  return ok && mtu >= 68 && mtu <= 65535 ? mtu : null;
}

/**
 * Connects a non-blocking stream socket to the UNIX socket at `path`.
 * Returns the fd, or -errno (ENOENT, ECONNREFUSED, EAGAIN while the listener
 * is not ready; anything else is final).
 */
export function connectUnixSocket(path: string): number {
  const name = new TextEncoder().encode(path);
  if (name.length > SOCKADDR_UN_SIZE - 3) return -EINVAL;
  const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno();
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  if (libc().connect(fd, addr, 2 + name.length + 1) < 0) {
    const e = errno();
    libc().close(fd);
    return -e;
  }
  return fd;
}

/**
 * A connected pair of non-blocking UNIX stream sockets: one end stands in for
 * passt's socket where tests and benchmarks drive the stream data path.
 */
export function streamSocketPair(): [number, number] {
  const sv = new Uint8Array(8);
  if (libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    throw new Error(`Cannot create a socket pair (errno ${errno()})`);
  }
  const v = new DataView(sv.buffer);
  return [v.getInt32(0, true), v.getInt32(4, true)];
}

/** The process's effective uid (without `--allow-sys`). */
export function effectiveUid(): number {
  return libc().geteuid();
}

export { bufferAddress } from "../host/libc.ts";

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

  /**
   * Sets poll slot `i` to wait for `events` (default POLLIN) on `fd` (a
   * negative fd is skipped by the kernel).
   */
  setPoll(i: number, fd: number, events: number = POLL.IN): void {
    this.#pollView.setInt32(8 * i, fd, true);
    this.#pollView.setInt16(8 * i + 4, events, true);
    this.#pollView.setInt16(8 * i + 6, 0, true);
  }

  /** Whether poll reported slot `i` ready (input, output, hang-up or error). */
  ready(i: number): boolean {
    return this.#pollView.getInt16(8 * i + 6, true) !== 0;
  }

  /** The events poll reported for slot `i` (POLL bits). */
  revents(i: number): number {
    return this.#pollView.getInt16(8 * i + 6, true);
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
