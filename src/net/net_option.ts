/**
 * `-n/--net` and `--publish`: `tap` (the interface `tap10`) or `tap:NAME` as
 * uhyve 0.8 spells it, `passt` (dhyve starts passt, user-mode networking) or
 * `passt:SOCKET` (attach to a passt someone else started), and port forwards
 * in the Podman/Docker spelling. Pure: no I/O.
 * @module
 */

/** A parsed `--net` value. */
export type NetOption = TapNetOption | PasstNetOption;

/** `--net tap[:NAME]`: a host TAP interface. */
export interface TapNetOption {
  /** A host TAP interface. */
  readonly mode: "tap";
  /** Interface name, 1–15 bytes, no "/" or whitespace. */
  readonly name: string;
  /**
   * The guest's MAC address (6 bytes, unicast). Default: derived from the
   * TAP's own address, so it is stable per interface.
   */
  readonly mac?: Uint8Array;
}

/** `--net passt[:SOCKET]`: user-mode networking through passt's UNIX socket. */
export interface PasstNetOption {
  /** passt, the user-mode network stack. */
  readonly mode: "passt";
  /** Attach to this passt socket; absent: dhyve starts passt itself. */
  readonly socket?: string;
  /** `--publish` forwards (only when dhyve starts passt). */
  readonly publish?: readonly PortForward[];
  /** The guest's MAC address; default {@linkcode PASST_GUEST_MAC}. */
  readonly mac?: Uint8Array;
}

/** One `--publish` forward: host address and port to a guest port. */
export interface PortForward {
  /** "tcp" or "udp". */
  readonly protocol: "tcp" | "udp";
  /** Host address to bind (default 127.0.0.1). */
  readonly hostAddress: string;
  /** Host port, 1–65535. */
  readonly hostPort: number;
  /** Guest port, 1–65535. */
  readonly guestPort: number;
}

/**
 * The guest network that `--net passt` asks passt to hand out (by DHCP, and
 * as the addresses passt itself assumes): Hermit's own static defaults
 * (HERMIT_IP 10.0.5.3, HERMIT_GATEWAY 10.0.5.1, mask 255.255.255.0), so a
 * kernel with or without DHCP works unchanged. DNS queries to the gateway go
 * to the host's resolver (passt's `--dns-forward`).
 */
export const PASST_NETWORK = {
  address: "10.0.5.3",
  prefixLength: 24,
  gateway: "10.0.5.1",
  dns: "10.0.5.1",
} as const;

/** The program `--net passt` starts (looked up on PATH; `--allow-run=passt`). */
export const PASST_COMMAND = "passt";

/** Where dhyve makes passt's socket directory unless `--tempdir` says otherwise. */
export const PASST_SOCKET_PARENT = "/tmp";

/** The guest card's MAC under passt (locally administered, unicast). */
export const PASST_GUEST_MAC: Uint8Array = Uint8Array.of(0x02, 0x00, 0x0a, 0x00, 0x05, 0x03);

/** Interface names are at most 15 bytes plus NUL (IFNAMSIZ 16). */
export const MAX_IFNAME = 15;

/** The TUN/TAP character device (opened read/write for `--net`). */
export const TUN_DEVICE = "/dev/net/tun";

/** The interface `--net tap` means (uhyve's default). */
export const DEFAULT_TAP = "tap10";

/**
 * Parses a MAC address for `--mac`: six hex pairs joined by ":" or "-". It
 * must be unicast and not all zeroes. Returns an error line instead of
 * throwing.
 */
export function parseMacAddress(text: string): Uint8Array | { error: string } {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    return { error: `Invalid MAC address "${text}": use six hex pairs, e.g. 02:00:00:12:34:56` };
  }
  const mac = Uint8Array.from(parts, (p) => parseInt(p, 16));
  if ((mac[0]! & 0x01) !== 0) {
    return { error: `Invalid MAC address "${text}": a multicast address cannot name one card` };
  }
  if (mac.every((b) => b === 0)) return { error: `Invalid MAC address "${text}": all zeroes` };
  return mac;
}

/** Longest UNIX socket path (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

/**
 * Parses `--net`; returns an error line (for exit code 64) instead of
 * throwing, so callers choose the error class.
 */
export function parseNetOption(text: string): NetOption | { error: string } {
  if (text === "tap") return { mode: "tap", name: DEFAULT_TAP };
  if (text === "passt" || text === "user") return { mode: "passt" };
  const colon = text.indexOf(":");
  const mode = colon < 0 ? text : text.slice(0, colon);
  if (mode === "passt" && colon >= 0) {
    const socket = text.slice(colon + 1);
    const bytes = new TextEncoder().encode(socket).length;
    if (bytes === 0 || bytes > MAX_SOCKET_PATH || socket.includes("\0")) {
      return {
        error: `Invalid passt socket "${socket}" in --net: give the path of passt's UNIX ` +
          `socket (at most ${MAX_SOCKET_PATH} bytes), e.g. --net passt:/tmp/passt_1.socket`,
      };
    }
    return { mode: "passt", socket };
  }
  if (mode !== "tap" || colon < 0) {
    return {
      error: `Invalid --net "${text}": use tap, tap:NAME (a host TAP interface), passt ` +
        `(user-mode networking, dhyve starts passt) or passt:SOCKET (a running passt)`,
    };
  }
  const name = text.slice(colon + 1);
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes > MAX_IFNAME || /[\s/:]/.test(name) || name === "." || name === "..") {
    return {
      error: `Invalid TAP interface name "${name}" in --net: use 1 to ${MAX_IFNAME} characters ` +
        'without spaces, "/" or ":"',
    };
  }
  return { mode: "tap", name };
}

/** A port number 1–65535 from decimal text, or NaN. */
function port(text: string): number {
  if (!/^\d{1,5}$/.test(text)) return NaN;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : NaN;
}

/**
 * Parses one `--publish [ADDRESS:]HOSTPORT:GUESTPORT[/tcp|/udp]` (the
 * Podman/Docker spelling; an IPv6 address goes in brackets, `[::1]:8080:80`).
 * Without an address the port is bound to loopback (127.0.0.1) only; the
 * protocol defaults to TCP. Returns an error line instead of throwing.
 */
export function parsePublish(text: string): PortForward | { error: string } {
  const fail = {
    error: `Invalid --publish "${text}": use [ADDRESS:]HOSTPORT:GUESTPORT[/tcp|/udp], ` +
      `e.g. 8080:80 or 0.0.0.0:5353:53/udp (ports 1-65535)`,
  };
  const slash = text.lastIndexOf("/");
  const proto = slash < 0 ? "tcp" : text.slice(slash + 1);
  if (proto !== "tcp" && proto !== "udp") return fail;
  const spec = slash < 0 ? text : text.slice(0, slash);
  let hostAddress = "127.0.0.1";
  let ports = spec;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(spec);
  if (v6 !== null) {
    hostAddress = v6[1]!;
    ports = v6[2]!;
  } else {
    const parts = spec.split(":");
    if (parts.length === 3) {
      hostAddress = parts[0]!;
      ports = `${parts[1]}:${parts[2]}`;
      if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(hostAddress)) return fail;
      if (hostAddress.split(".").some((b) => Number(b) > 255)) return fail;
    } else if (parts.length !== 2) return fail;
  }
  const [h, g, ...rest] = ports.split(":");
  const hostPort = port(h ?? "");
  const guestPort = port(g ?? "");
  if (rest.length > 0 || Number.isNaN(hostPort) || Number.isNaN(guestPort)) return fail;
  return { protocol: proto, hostAddress, hostPort, guestPort };
}
