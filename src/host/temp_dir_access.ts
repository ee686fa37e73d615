/**
 * Whether Deno would refuse to make the per-VM temp directory, asked before
 * trying: `--file-isolation` makes it ahead of the guest (a Landlock rule
 * must name it), and in a run without `--allow-write` the refused attempt
 * was the first error Deno threw in the process, ~0.4 ms of its start-up
 * (docs/performance.md). A permission query costs ~0.02 ms.
 * @module
 */

import { libc } from "./libc.ts";

/**
 * The directory `Deno.makeTempDirSync()` uses without a `dir`: Rust's
 * `std::env::temp_dir()` on Linux, `$TMPDIR` when set, else `/tmp`. Read
 * through libc, so that a run without `--allow-env` knows it too; the value
 * only decides whether to ask Deno to make the directory. Null when it
 * cannot be told (an empty `TMPDIR`, or no FFI view of the environment).
 */
export function osTempDir(): string | null {
  let value: string | null;
  try {
    value = libc().getenv("TMPDIR");
  } catch {
    return null;
  }
  if (value === null) return "/tmp";
  return value === "" ? null : value;
}

/**
 * False when Deno is sure to refuse making a temp directory under `parent`
 * (`undefined`: the OS temp directory) for want of `--allow-write`; true when
 * it may succeed (granted, or the directory cannot be told).
 */
export function mayMakeTempDir(parent: string | undefined): boolean {
  const dir = parent ?? osTempDir();
  if (dir === null) return true;
  try {
    return Deno.permissions.querySync({ name: "write", path: dir }).state === "granted";
  } catch {
    return true;
  }
}
