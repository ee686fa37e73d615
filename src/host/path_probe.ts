/**
 * Whether a path exists, asked without making Deno throw: the first
 * `Deno.errors.NotFound` of a process costs ~1 ms (measured: the CLI's
 * lookup of an absent `uhyve.toml` was half of its time). `faccessat(2)`
 * through libc answers instead, where Deno may both use FFI and read the
 * path (FFI bypasses Deno's permission checks, so the read permission is
 * asked first, as `Deno.statSync` would). Otherwise `Deno.statSync`.
 * @module
 */

import { cString, libc } from "./libc.ts";

/** faccessat's "does it exist" mode. */
const F_OK = 0;

/**
 * True when `path` exists (symlinks followed) and Deno may read it; false
 * when it does not, cannot be reached, or reading it is not permitted.
 */
export function pathExists(path: string): boolean {
  if (path.includes("\0")) return false; // no such path, and C would read a shorter one
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return false;
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
    try {
      return libc().access(cString(path), F_OK) === 0;
    } catch {
      // libc cannot be loaded: ask Deno
    }
  }
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
