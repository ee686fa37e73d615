/**
 * `-n/--net` as uhyve 0.8 spells it: `tap` (the interface `tap10`) or
 * `tap:NAME`. Pure: no I/O.
 * @module
 */

/** A parsed `--net` value. */
export interface NetOption {
  /** The only backend: a host TAP interface. */
  readonly mode: "tap";
  /** Interface name, 1–15 bytes, no "/" or whitespace. */
  readonly name: string;
  /**
   * The guest's MAC address (6 bytes, unicast). Default: derived from the
   * TAP's own address, so it is stable per interface.
   */
  readonly mac?: Uint8Array;
}

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

/**
 * Parses `--net`; returns an error line (for exit code 64) instead of
 * throwing, so callers choose the error class.
 */
export function parseNetOption(text: string): NetOption | { error: string } {
  if (text === "tap") return { mode: "tap", name: DEFAULT_TAP };
  const colon = text.indexOf(":");
  const mode = colon < 0 ? text : text.slice(0, colon);
  if (mode !== "tap" || colon < 0) {
    return { error: `Invalid --net "${text}": use tap or tap:NAME (a host TAP interface)` };
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
