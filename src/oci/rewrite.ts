/**
 * The heart of `dhyve-oci`: an OCI `config.json` whose program is a Hermit
 * kernel → one whose process is Deno running dhyve on that kernel. Arguments,
 * environment, memory and CPU limits, bind mounts and annotations become
 * dhyve's options; `/dev/kvm`, Deno, dhyve and the libraries Deno needs are
 * added read-only; Deno gets exactly the permissions `--print-permissions`
 * computes. Everything else in the spec is runc's and stays as it was. Pure:
 * no file access (the host facts come in a {@linkcode HostRuntime}).
 * @module
 */

import { dirname, normalize } from "node:path/posix";
import { type CliEnvironment, commandLinePermissions } from "../cli.ts";
import { ConfigError } from "../config.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { parseEnvEntry, UsageError } from "../params.ts";
import { permissionArgs, type RequiredPermissions } from "../permissions.ts";
import { ANNOTATION_PREFIX, EXEC_OPTIONS_ANNOTATION, readAnnotations } from "./annotations.ts";
import { OciError } from "./errors.ts";
import { cpuLimit, guestMemory, type OciResources } from "./resources.ts";

/** One OCI mount. */
export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  [key: string]: unknown;
}

/** The parts of an OCI runtime spec (`config.json`) that dhyve-oci reads or changes. */
export interface OciSpec {
  process?: {
    args?: string[];
    env?: string[];
    cwd?: string;
    [key: string]: unknown;
  };
  root?: { path?: string; readonly?: boolean };
  mounts?: OciMount[];
  annotations?: Record<string, string>;
  linux?: {
    resources?: OciResources & {
      devices?: {
        allow: boolean;
        type?: string;
        major?: number;
        minor?: number;
        access?: string;
      }[];
      [key: string]: unknown;
    };
    devices?: {
      path: string;
      type: string;
      major: number;
      minor: number;
      fileMode?: number;
      uid?: number;
      gid?: number;
    }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** A read-only bind mount of a host path the container's Deno needs. */
export interface HostBind {
  /** Host path. */
  readonly source: string;
  /** Path inside the container. */
  readonly destination: string;
}

/** What the host provides to run dhyve inside a container. */
export interface HostRuntime {
  /** The Deno binary (mounted at the same path). */
  readonly deno: string;
  /** dhyve's root directory, holding `main.ts`, `src/` and `node_modules/` (same path). */
  readonly dhyveRoot: string;
  /** Deno's cache for dhyve's modules (`DENO_DIR`), read-only in the container; null: none. */
  readonly denoDir: string | null;
  /**
   * The host's libc directory (dhyve loads libc through FFI, trying the usual
   * directories; Deno's own libraries are expected beside it) and the
   * dynamic loader Deno names, mounted at their host paths.
   */
  readonly libraries: readonly HostBind[];
  /** `/dev/kvm`'s device numbers. */
  readonly kvm: { readonly major: number; readonly minor: number };
  /**
   * The host's passt binary (mounted read-only at the same path for the `net`
   * annotation; it needs only libc and the loader, as Deno), or null/absent
   * when passt is not installed.
   */
  readonly passt?: string | null;
}

/** dhyve's entry point in a container (pid 1), relative to dhyve's root. */
export const CONTAINER_ENTRY = "src/oci/container_main.ts";
/**
 * Init programs that engines put in front of the command (`podman run
 * --init`: `/run/podman-init -- CMD…`; Docker's `docker-init`, tini): the
 * container's program is then the one after the `--`.
 */
const INIT_NAMES: ReadonlySet<string> = new Set([
  "podman-init",
  "catatonit",
  "docker-init",
  "tini",
  "tini-static",
]);

/**
 * The init and its `--` in front of the container's program (see
 * {@linkcode INIT_NAMES}), or an empty list; the program is `args[prefix.length]`.
 */
export function initPrefix(args: readonly string[]): readonly string[] {
  const [first, second] = args;
  if (first === undefined || second !== "--" || args.length < 3) return [];
  return INIT_NAMES.has(first.slice(first.lastIndexOf("/") + 1)) ? args.slice(0, 2) : [];
}

/** Where the guest's own new files go inside the container. */
export const CONTAINER_TEMP_DIR = "/tmp";
/** The path of KVM's device, on the host and in the container. */
export const KVM_DEVICE = "/dev/kvm";

/** Container paths whose mounts are the system's, never a guest's files. */
const SYSTEM_MOUNT = /^\/(proc|sys|dev)(\/|$)/;

/** Whether `mount` is a bind mount (by its type or its options, as engines write either). */
export function isBind(mount: OciMount): boolean {
  return mount.type === "bind" ||
    (mount.options ?? []).some((o) => o === "bind" || o === "rbind");
}

/** Whether `path` is `dir` or lies beneath it. */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/** The `--file-mapping` flags for the container's bind mounts (same path in the guest). */
function fileMappings(mounts: readonly OciMount[], own: readonly string[]): string[] {
  const flags: string[] = [];
  for (const mount of mounts) {
    const dest = normalize(mount.destination);
    if (!isBind(mount) || SYSTEM_MOUNT.test(dest) || own.some((o) => within(dest, o))) continue;
    if (dest.includes(":")) {
      throw new OciError(
        `Cannot give the guest the bind mount "${dest}": dhyve's --file-mapping cannot name ` +
          `a path holding ":"; mount it elsewhere`,
        EXIT_CODE.USAGE,
      );
    }
    const ro = (mount.options ?? []).includes("ro");
    flags.push("--file-mapping", `${dest}:${dest}${ro ? ":ro" : ""}`);
  }
  return flags;
}

/** The guest environment flags (`-e K=V` for each entry of `process.env`). */
function envFlags(env: readonly string[]): string[] {
  const flags: string[] = [];
  for (const entry of env) {
    try {
      parseEnvEntry(entry);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new OciError(
        `Cannot pass the environment entry "${entry}" to the guest: ${error.message}`,
        EXIT_CODE.USAGE,
        { cause: error },
      );
    }
    flags.push("-e", entry);
  }
  return flags;
}

/** The view of the container a permission computation needs: no config file, no environment. */
function containerEnvironment(cwd: string): CliEnvironment {
  return {
    env: () => undefined,
    envAll: () => [],
    readTextFile(path: string): string {
      throw new Deno.errors.NotFound(path);
    },
    exists: () => false,
    cwd: () => cwd,
  };
}

/**
 * The dhyve options every guest of the container shares: Landlock, the temp
 * dir, the annotations' flags and the bind mounts as file mappings (no size,
 * environment or kernel).
 * @throws {OciError} for an annotation or mount that dhyve cannot take.
 */
export function containerOptions(spec: OciSpec): string[] {
  const annotations = readAnnotations(spec.annotations);
  return [
    "--file-isolation",
    annotations.fileIsolation,
    "--tempdir",
    CONTAINER_TEMP_DIR,
    ...annotations.flags,
    ...fileMappings(spec.mounts ?? [], [CONTAINER_TEMP_DIR]),
  ];
}

/**
 * dhyve's command line (after its entry module) for the container described
 * by `spec`, whose program resolved to `kernel` (a container path).
 * @throws {OciError} for a limit, annotation, mount or environment entry that
 *   dhyve cannot take.
 */
export function dhyveArguments(spec: OciSpec, kernel: string): string[] {
  const args = (spec.process?.args ?? []).slice(initPrefix(spec.process?.args ?? []).length);
  const annotations = readAnnotations(spec.annotations);
  const resources = spec.linux?.resources;
  const cpus = annotations.cpus ?? cpuLimit(resources) ?? 1;
  const memory = guestMemory(resources?.memory?.limit, cpus, annotations.memory);
  return [
    ...(memory === null ? [] : ["-m", `${memory / (1024 * 1024)}MiB`]),
    ...(cpus === 1 ? [] : ["-c", String(cpus)]),
    ...containerOptions(spec),
    // Only the container's own guest: a second one (exec) could not bind the same ports.
    ...(annotations.net === "passt" ? ["--net", "passt"] : []),
    ...annotations.publish.flatMap((value) => ["--publish", value]),
    ...envFlags(spec.process?.env ?? []),
    kernel,
    "--",
    ...args.slice(1),
  ];
}

/** The process fields that make Deno run dhyve with `dhyveArgs` (after any init prefix). */
function dhyveProcess(
  dhyveArgs: readonly string[],
  cwd: string,
  host: HostRuntime,
  passt: string | null = null,
): { args: string[]; env: string[]; permissions: RequiredPermissions } {
  let permissions: RequiredPermissions;
  try {
    permissions = commandLinePermissions(dhyveArgs, containerEnvironment(cwd), host.dhyveRoot);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      throw new OciError(`dhyve cannot take these options: ${error.message}`, EXIT_CODE.USAGE, {
        cause: error,
      });
    }
    throw error;
  }
  const root = host.dhyveRoot.replace(/\/+$/, "");
  return {
    args: [
      host.deno,
      "run",
      "--no-prompt",
      ...permissionArgs(permissions),
      `${root}/${CONTAINER_ENTRY}`,
      ...dhyveArgs,
    ],
    env: [
      ...(host.denoDir === null ? [] : [`DENO_DIR=${host.denoDir}`]),
      "DENO_NO_UPDATE_CHECK=1",
      // dhyve starts passt by name, and Deno's --allow-run=passt resolves it on PATH.
      ...(passt === null ? [] : [`PATH=${dirname(passt)}`]),
    ],
    permissions,
  };
}

/**
 * Rewrites a process that `runc exec` starts in a running dhyve container
 * (its `--process` file) so that it runs the Hermit kernel `kernel` in a
 * second VM: with the options the container's own guest got
 * (`containerOptions`, stored in the {@linkcode EXEC_OPTIONS_ANNOTATION} of
 * its config), its own arguments and environment, and dhyve's default size.
 * The mounts and `/dev/kvm` are there already.
 * @throws {OciError} for anything dhyve cannot map.
 */
export function rewriteExecProcess(
  process: NonNullable<OciSpec["process"]>,
  kernel: string,
  options: { containerOptions: readonly string[]; host: HostRuntime },
): NonNullable<OciSpec["process"]> {
  const dhyveArgs = [
    ...options.containerOptions,
    ...envFlags(process.env ?? []),
    kernel,
    "--",
    ...(process.args ?? []).slice(1),
  ];
  const { args, env } = dhyveProcess(dhyveArgs, process.cwd ?? "/", options.host);
  return { ...process, args, env };
}

/**
 * The host's passt, for a container whose annotations ask for `net=passt`.
 * @throws {OciError} (exit 69) when the host has none.
 */
function hostPasst(host: HostRuntime): string {
  if (host.passt === undefined || host.passt === null) {
    throw new OciError(
      `The annotation ${ANNOTATION_PREFIX}net=passt needs` +
        " passt on the host, which is not " +
        'installed (or not on PATH): install it with "apt install passt"',
      EXIT_CODE.KVM_UNAVAILABLE,
    );
  }
  return host.passt;
}

/**
 * Rewrites `spec` so that its process is dhyve running `kernel`: the
 * container path that the program (`process.args[0]`, or the word after an
 * init's `--`, see {@linkcode initPrefix}) resolved to, a Hermit kernel or
 * image. An init stays in front, as the container's pid 1. Returns a new
 * object; `spec` is not changed.
 * @throws {OciError} for anything dhyve cannot map (the message says what).
 */
export function rewriteSpec(spec: OciSpec, kernel: string, host: HostRuntime): OciSpec {
  const passt = readAnnotations(spec.annotations).net === "passt" ? hostPasst(host) : null;
  const dhyve = dhyveProcess(dhyveArguments(spec, kernel), spec.process?.cwd ?? "/", host, passt);
  const root = host.dhyveRoot.replace(/\/+$/, "");
  const mounts = [...(spec.mounts ?? [])];
  if (!mounts.some((m) => normalize(m.destination) === CONTAINER_TEMP_DIR)) {
    // Before any mount beneath /tmp, so that the tmpfs does not hide it.
    const at = mounts.findIndex((m) => within(normalize(m.destination), CONTAINER_TEMP_DIR));
    mounts.splice(at < 0 ? mounts.length : at, 0, {
      destination: CONTAINER_TEMP_DIR,
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", "noexec", "mode=1777"],
    });
  }
  const readOnly = ["bind", "ro", "nosuid", "nodev"];
  const binds: HostBind[] = [
    { source: root, destination: root },
    ...(within(host.deno, root) ? [] : [{ source: host.deno, destination: host.deno }]),
    ...(host.denoDir === null || within(host.denoDir, root)
      ? []
      : [{ source: host.denoDir, destination: host.denoDir }]),
    ...host.libraries,
    ...(passt === null ? [] : [{ source: passt, destination: passt }]),
  ];
  for (const bind of binds) {
    mounts.push({
      destination: bind.destination,
      type: "bind",
      source: bind.source,
      options: [...readOnly],
    });
  }

  const linux = { ...(spec.linux ?? {}) };
  const { major, minor } = host.kvm;
  const devices = [...(linux.devices ?? [])];
  if (!devices.some((d) => d.path === KVM_DEVICE)) {
    devices.push({ path: KVM_DEVICE, type: "c", major, minor, fileMode: 0o666, uid: 0, gid: 0 });
  }
  linux.devices = devices;
  const resources = { ...(linux.resources ?? {}) };
  resources.devices = [
    ...(resources.devices ?? []),
    { allow: true, type: "c", major, minor, access: "rwm" },
  ];
  linux.resources = resources;

  return {
    ...spec,
    process: {
      ...(spec.process ?? {}),
      args: [...initPrefix(spec.process?.args ?? []), ...dhyve.args],
      env: dhyve.env,
    },
    annotations: {
      ...(spec.annotations ?? {}),
      [EXEC_OPTIONS_ANNOTATION]: JSON.stringify(containerOptions(spec)),
    },
    mounts,
    linux,
  };
}
