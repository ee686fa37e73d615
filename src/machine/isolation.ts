/**
 * `--file-isolation`: Landlock, applied once the run's paths are known.
 * @module
 */

import { dirname } from "../posix_path.ts";
import { applyLandlock, denoRuntimeRules, sandboxRules } from "../host/landlock.ts";
import { mayMakeTempDir } from "../host/temp_dir_access.ts";
import { logger } from "../log.ts";
import type { FileMap } from "../sandbox/file_map.ts";
import type { Sandbox } from "../sandbox/sandbox.ts";

const log = logger("vm");

/**
 * Applies Landlock (`--file-isolation`): from here on the process may touch
 * only the kernel, the mapped paths, the VM's temp dir, /dev/kvm and what
 * Deno itself needs, whatever code asks.
 */
export function applyFileIsolation(
  mode: "none" | "normal" | "strict",
  kernelPath: string,
  map: FileMap,
  sandbox: Sandbox,
): void {
  if (mode === "none") return;
  // Landlock rules name existing paths, so the temp dir is made now. Where
  // Deno may not create it, the guest cannot create files anyway (EACCES); a
  // run without --allow-write is not made to try (a refusal costs start-up time).
  const prepared = mayMakeTempDir(sandbox.tempParent) ? sandbox.prepareTempDir() : null;
  const tempDir = typeof prepared === "string" ? prepared : null;
  const rules = [
    ...sandboxRules({
      kernel: kernelPath,
      mappings: map.hostPaths().map((m) => ({ host: m.hostPath, writable: m.writable })),
      tempDir,
      output: null,
    }),
    ...denoRuntimeRules(),
    // Removing the (emptied) temp dir at the end needs rmdir on its parent.
    ...(tempDir === null ? [] : [{ path: dirname(tempDir), access: "dir-rmdir" as const }]),
  ];
  const result = applyLandlock(rules, { mode }); // a LandlockError is exit 71 (toVmError)
  for (const w of result.warnings) log.warn(w);
  if (result.applied) log.debug(`Landlock applied (ABI ${result.abi})`);
}
