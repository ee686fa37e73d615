/**
 * Shared pieces of the `dhyve-oci` tests: what they need to run (root,
 * /dev/kvm, the container tools) and a SKIP line when something is missing,
 * the test image (our guests plus a static busybox, as a plain rootfs tar)
 * and a small runner for podman/ctr/runc commands.
 * @module
 */

import { buildGuest, type GuestBuild } from "./guests.ts";
import { kvmAvailable } from "./kvm.ts";
import { REPO_ROOT } from "./repo.ts";
import { isRoot } from "./skip.ts";
import { type CommandResult, runCommand } from "./process.ts";
import { executablesOnPath, isExecutable } from "../../src/oci/executables.ts";

export type { CommandResult };

/** The launcher the engines are given as their runtime. */
export const DHYVE_OCI = `${REPO_ROOT}/bin/dhyve-oci`;

/** The guests every test image holds, at `/<name>`. */
export const IMAGE_GUESTS = [
  "hello",
  "spin",
  "stdin_echo",
  "smp_count",
  "exit_code",
  "oci_probe",
  "mem_touch",
] as const;

/** Where a static busybox is looked for (Debian's busybox-static installs /bin/busybox). */
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"];

/** A command's exit code and output, for assertion messages. */
export function describeResult(result: CommandResult): string {
  return `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/** Podman's global options that work on these machines (crun refuses the hybrid cgroups). */
export const PODMAN = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"];
/** `podman run` options every container gets (root here lacks CAP_SYS_RESOURCE). */
export const PODMAN_RUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];

/** `podman` with {@linkcode PODMAN}'s global options, feeding `stdin` when given. */
export function podman(args: readonly string[], stdin?: string): Promise<CommandResult> {
  return run("podman", [...PODMAN, ...args], stdin === undefined ? {} : { stdin });
}

/**
 * `podman run -d --name NAME` under dhyve-oci with {@linkcode PODMAN_RUN} and
 * `args` (options, image, command); fails the test unless podman started it.
 */
export async function podmanDetached(name: string, args: readonly string[]): Promise<void> {
  const started = await podman([
    "run",
    "-d",
    "--name",
    name,
    "--runtime",
    DHYVE_OCI,
    ...PODMAN_RUN,
    ...args,
  ]);
  if (started.code !== 0) throw new Error(`podman run -d failed: ${describeResult(started)}`);
}

/** `podman wait NAME`: the container's exit status (fails the test if podman cannot say). */
export async function podmanWait(name: string): Promise<number> {
  const waited = await podman(["wait", name]);
  if (waited.code !== 0) throw new Error(`podman wait failed: ${describeResult(waited)}`);
  return Number(waited.stdout.trim());
}

/** Runs `cmd args`, feeding `stdin` when given, and collects its output (see `process.ts`). */
export function run(
  cmd: string,
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<CommandResult> {
  return runCommand(cmd, args, options);
}

/**
 * `name` when it is an absolute executable path, else the first executable
 * `name` on PATH and then in the system directories, as dhyve-oci looks for
 * its helpers (`src/oci/executables.ts`); null when there is none.
 */
export function which(name: string): string | null {
  if (name.startsWith("/")) return isExecutable(name) ? name : null;
  return executablesOnPath(name, Deno.env.get("PATH")).next().value?.path ?? null;
}

/** A static busybox binary, or null. */
export function staticBusybox(): string | null {
  for (const path of BUSYBOX) {
    try {
      const head = new Uint8Array(Deno.readFileSync(path).subarray(0, 4096));
      // A static binary has no PT_INTERP: its path string would be in the first page.
      if (!new TextDecoder().decode(head).includes("ld-linux")) return path;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Why the container tests cannot run here (not root, no /dev/kvm, a tool
 * missing), or null when they can.
 */
export function containerTestsUnavailable(tools: readonly string[]): string | null {
  if (!isRoot()) return "not root (the engines run rootful here)";
  if (!kvmAvailable()) return "/dev/kvm is not available";
  for (const tool of tools) if (which(tool) === null) return `${tool} is not installed`;
  if (staticBusybox() === null) return "no static busybox (apt-get install busybox-static)";
  return null;
}

/** Prints the SKIP line for `file` when `why` is not null and returns whether to ignore. */
export function announceSkip(file: string, why: string | null): boolean {
  if (why !== null) {
    // deno-lint-ignore no-console
    console.error(`SKIP: ${file}: ${why}: dhyve-oci container tests skipped`);
  }
  return why !== null;
}

/**
 * Builds the test rootfs in a new temp dir: every guest of
 * {@linkcode IMAGE_GUESTS} at `/<name>` and busybox at `/bin/busybox` (with
 * `sh`, `true`, `cat` and `echo` linked to it), and packs it as a tar.
 * `extra` adds further guests at `/<name>`, built as given.
 * @returns the tar's path and the directory (remove it when done).
 */
export async function buildTestRootfsTar(
  extra: Readonly<Record<string, GuestBuild>> = {},
): Promise<{ tar: string; dir: string; rootfs: string }> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-oci-test-" });
  const rootfs = `${dir}/rootfs`;
  await Deno.mkdir(`${rootfs}/bin`, { recursive: true });
  for (const name of IMAGE_GUESTS) {
    // mem_touch needs the legacy boot map, which covers all of RAM (see its source).
    const build = { iface: 2, pie: true, versionNote: name !== "mem_touch" } as const;
    await Deno.copyFile(await buildGuest(name, build), `${rootfs}/${name}`);
    await Deno.chmod(`${rootfs}/${name}`, 0o755);
  }
  for (const [name, build] of Object.entries(extra)) {
    await Deno.copyFile(await buildGuest(name, build), `${rootfs}/${name}`);
    await Deno.chmod(`${rootfs}/${name}`, 0o755);
  }
  await Deno.copyFile(staticBusybox()!, `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  for (const applet of ["sh", "true", "cat", "echo", "sleep"]) {
    await Deno.symlink("busybox", `${rootfs}/bin/${applet}`);
  }
  const tar = `${dir}/rootfs.tar`;
  const packed = await run("tar", ["-C", rootfs, "-cf", tar, "."]);
  if (packed.code !== 0) throw new Error(`tar failed: ${packed.stderr}`);
  return { tar, dir, rootfs };
}

/** Polls `check` until it is true (at most `timeoutMs`); throws with `what` if it never is. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
