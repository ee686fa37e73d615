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
}

/** The TUN/TAP character device (opened read/write for `--net`). */
export const TUN_DEVICE = "/dev/net/tun";

/** The interface `--net tap` means (uhyve's default). */
export const DEFAULT_TAP = "tap10";

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
  if (bytes === 0 || bytes > 15 || /[\s/:]/.test(name) || name === "." || name === "..") {
    return {
      error: `Invalid TAP interface name "${name}" in --net: use 1 to 15 characters ` +
        'without spaces, "/" or ":"',
    };
  }
  return { mode: "tap", name };
}
