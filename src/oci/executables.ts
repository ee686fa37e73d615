/**
 * Finding a host program the way a shell would, for `dhyve-oci`'s helpers
 * (runc, passt): each directory of `PATH`, then the usual system directories,
 * because container engines may start a runtime without a `PATH` (and Deno
 * then sets one of its own). Relative and empty `PATH` entries are skipped:
 * a runtime must not run a program found relative to whatever directory it
 * was started in. File access only.
 * @module
 */

import { join } from "node:path/posix";

/** The directories searched after `PATH`, in this order. */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Whether `path` is a regular file with an execute bit (symlinks followed). */
export function isExecutable(path: string): boolean {
  try {
    const stat = Deno.statSync(path);
    return stat.isFile && ((stat.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** One program found: the path as found in a directory, and its real path. */
export interface FoundExecutable {
  /** `dir/name`, as `PATH` led to it. */
  readonly path: string;
  /** The same with every symlink resolved. */
  readonly real: string;
}

/**
 * Every executable file called `name` in the directories of `path` (a
 * `PATH` value; undefined: none), then of {@linkcode SYSTEM_PATH}, in that
 * order (a directory listed twice is looked at twice).
 */
export function* executablesOnPath(
  name: string,
  path: string | undefined,
): Generator<FoundExecutable> {
  for (const dir of `${path ?? ""}:${SYSTEM_PATH}`.split(":")) {
    if (!dir.startsWith("/")) continue;
    const candidate = join(dir, name);
    if (!isExecutable(candidate)) continue;
    try {
      yield { path: candidate, real: Deno.realPathSync(candidate) };
    } catch {
      // gone between the two calls
    }
  }
}
