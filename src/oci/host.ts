/**
 * The host side of `dhyve-oci`: where Deno, dhyve, the libraries Deno needs
 * and `/dev/kvm` are ({@linkcode discoverHost}), and a module cache that
 * lets dhyve start in a container without transpiling again
 * ({@linkcode warmModuleCache}). File access and one `deno cache` child.
 * @module
 */

import { dirname, join } from "node:path/posix";
import { libcCandidates, readLdCache } from "../host/libc_path.ts";
import { fileURLToPath } from "node:url";
import { EXIT_CODE } from "../exit_codes.ts";
import { BUNDLE_DIR } from "../locations.ts";
import { warmCodeCache } from "../code_cache.ts";
import { elfInterpreter } from "./elf_interp.ts";
import { executablesOnPath } from "./executables.ts";
import { OciError } from "./errors.ts";
import { PASST_COMMAND } from "../net/net_option.ts";
import { type HostBind, type HostRuntime, KVM_DEVICE } from "./rewrite.ts";

/** dhyve's root directory (this file is `src/oci/host.ts`). */
export function dhyveRootDir(): string {
  return fileURLToPath(new URL("../..", import.meta.url)).replace(/\/+$/, "");
}

/** The directory of dhyve-oci's module cache (`DENO_DIR` inside containers). */
export function moduleCacheDir(root: string): string {
  return join(root, ".build", "oci-deno-dir");
}

/**
 * The host's libc directory, found as dhyve finds libc (the loader's cache,
 * then the usual directories), and the dynamic loader Deno names
 * (`PT_INTERP`): Deno's own libraries sit beside libc on the distributions
 * dhyve knows.
 * @throws {OciError} (exit 69) when there is no libc to mount.
 */
function libraryBinds(programs: readonly string[]): HostBind[] {
  const libc = libcCandidates(readLdCache()).find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (libc === undefined) {
    throw new OciError(
      "Cannot find the host's C library (libc.so.6), which Deno and dhyve need in the container",
      EXIT_CODE.KVM_UNAVAILABLE,
    );
  }
  const libDir = dirname(libc);
  const binds: HostBind[] = [{ source: libDir, destination: libDir }];
  for (const program of programs) {
    const file = Deno.openSync(program);
    try {
      const head = new Uint8Array(4096);
      const n = file.readSync(head) ?? 0;
      const interp = elfInterpreter(head.subarray(0, n));
      if (
        interp !== null && dirname(interp) !== libDir &&
        !binds.some((b) => b.destination === interp)
      ) {
        binds.push({ source: interp, destination: interp });
      }
    } finally {
      file.close();
    }
  }
  return binds;
}

/** The host's passt (its real path), or null when it is not installed. */
export function findPasst(path: string | undefined = Deno.env.get("PATH")): string | null {
  for (const found of executablesOnPath(PASST_COMMAND, path)) return found.real;
  return null;
}

/** Linux's `major()`/`minor()` of a device number. */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)),
  };
}

/**
 * `/dev/kvm`'s numbers; null when it is missing or not a character device.
 * (Deno stats device files only under `--allow-all`, which the launcher
 * grants: it runs runc, which can do anything anyway.)
 */
function kvmDeviceNumbers(): { major: number; minor: number } | null {
  try {
    const stat = Deno.statSync(KVM_DEVICE);
    return stat.isCharDevice && stat.rdev !== null ? deviceNumbers(stat.rdev) : null;
  } catch {
    return null;
  }
}

/**
 * What this host provides for running dhyve in a container.
 * @throws {OciError} (exit 69) when `/dev/kvm` is missing or not a device.
 */
export function discoverHost(): HostRuntime {
  const kvm = kvmDeviceNumbers();
  if (kvm === null) {
    throw new OciError(
      `${KVM_DEVICE} is missing on this host: dhyve needs KVM to run the Hermit kernel ` +
        "(load kvm_intel or kvm_amd)",
      EXIT_CODE.KVM_UNAVAILABLE,
    );
  }
  const deno = Deno.realPathSync(Deno.execPath());
  const root = Deno.realPathSync(dhyveRootDir());
  const passt = findPasst();
  return {
    deno,
    dhyveRoot: root,
    denoDir: moduleCacheDir(root),
    libraries: libraryBinds(passt === null ? [deno] : [deno, passt]),
    kvm,
    passt,
  };
}

/**
 * Every module of dhyve that a run may load: main.ts, the bundle it loads
 * (`dist/bundle/`, Workers included) and the sources (dhyve-oci's own
 * container entry runs from them).
 */
function dhyveModules(root: string): string[] {
  const out = [join(root, "main.ts")];
  const walk = (dir: string): void => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".ts") || entry.name.endsWith(".js")) out.push(path);
    }
  };
  walk(join(root, "src"));
  walk(join(root, BUNDLE_DIR));
  return out.sort();
}

/**
 * Fills `host.denoDir` with dhyve's transpiled modules (`deno cache`), unless
 * it is up to date with the sources and this Deno: containers mount it
 * read-only, so dhyve starts there as fast as on the host. A failure only
 * costs start-up time, so it is not an error.
 */
export async function warmModuleCache(host: HostRuntime): Promise<void> {
  if (host.denoDir === null) return;
  const modules = dhyveModules(host.dhyveRoot);
  let newest = 0;
  for (const path of modules) newest = Math.max(newest, Deno.statSync(path).mtime?.getTime() ?? 0);
  const stamp = `${Deno.version.deno} ${modules.length} ${newest}\n`;
  const stampPath = join(host.denoDir, "dhyve-oci.stamp");
  try {
    if (Deno.readTextFileSync(stampPath) === stamp) return;
  } catch {
    // no stamp yet
  }
  const result = await new Deno.Command(host.deno, {
    args: ["cache", "--quiet", ...modules],
    cwd: host.dhyveRoot,
    env: { DENO_DIR: host.denoDir, DENO_NO_UPDATE_CHECK: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!result.success) return;
  // The V8 code cache too: containers mount the cache read-only, where no run could write it.
  await warmCodeCache(join(host.dhyveRoot, BUNDLE_DIR), { DENO_DIR: host.denoDir });
  const tmp = `${stampPath}.${Deno.pid}`;
  Deno.writeTextFileSync(tmp, stamp);
  Deno.renameSync(tmp, stampPath);
}
