/**
 * File access checks shared by `landlock_probe.ts` (main thread) and the
 * Worker it starts after applying Landlock (this file is also that Worker's
 * script): each path is read through Deno's sync API, Deno's async API and
 * libc `open()` through FFI, which bypasses Deno's permission checks.
 * @module
 */

import { cString, errno, libc, O_CLOEXEC } from "../../src/host/libc.ts";

/** Per path: "ok" or the error class name (sync, async), and the errno of libc open (0 = ok). */
export interface AccessReport {
  /** `Deno.readTextFileSync`: runs on the calling thread. */
  sync: Record<string, string>;
  /** `await Deno.readTextFile`: runs on a thread of Deno's blocking pool. */
  async: Record<string, string>;
  /** libc `open(path, O_RDONLY)` through FFI: 0 or the errno. */
  ffi: Record<string, number>;
}

function outcome(run: () => unknown): string {
  try {
    run();
    return "ok";
  } catch (error) {
    return (error as Error).name;
  }
}

/** Tries to read every path in the three ways. */
export async function probeAccess(paths: readonly string[]): Promise<AccessReport> {
  const report: AccessReport = { sync: {}, async: {}, ffi: {} };
  for (const path of paths) {
    report.sync[path] = outcome(() => Deno.readTextFileSync(path));
    try {
      await Deno.readTextFile(path);
      report.async[path] = "ok";
    } catch (error) {
      report.async[path] = (error as Error).name;
    }
    const fd = libc().open(cString(path), O_CLOEXEC, 0);
    report.ffi[path] = fd < 0 ? errno() : 0;
    if (fd >= 0) libc().close(fd);
  }
  return report;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<string[]>) => void) | null;
  postMessage(message: unknown): void;
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = async (event: MessageEvent<string[]>): Promise<void> => {
    scope.postMessage(await probeAccess(event.data));
  };
}
