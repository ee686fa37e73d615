/**
 * The second file fence, Deno's permission flags: which `--allow-*` scopes a
 * run needs ({@linkcode requiredPermissions}), whether the process was
 * granted them ({@linkcode checkGranted}, one line naming what is missing),
 * and the minimal command line ({@linkcode denoCommandLine}). It only queries
 * permissions, never requests them (no prompt), and does no file I/O; no KVM
 * or FFI imports.
 *
 * What Deno checks, measured on Deno 2.9.6:
 *
 * - `--allow-ffi=<libc path>` is enough for `Deno.dlopen` of that path, but
 *   not for `Deno.UnsafePointer`/`UnsafePointerView`, which dhyve needs to view
 *   guest RAM and `kvm_run`: those require the unscoped `--allow-ffi`. So the
 *   minimal command line asks for `--allow-ffi` without a path;
 * - `/dev/kvm` is opened through libc, which Deno does not check: no read or
 *   write permission is needed for it;
 * - read or write permission on a directory covers everything beneath it, and
 *   write permission on a path that does not exist yet lets Deno create it;
 * - a Worker needs `--allow-read` for every local module of its graph (its
 *   script and the files it imports; npm packages are exempt), unlike the
 *   main module and its static imports;
 * - repeated flags add up (`--allow-read=/a --allow-read=/b` grants both),
 *   and a path containing a comma cannot be named (Deno splits on commas and
 *   has no escape), so its nearest comma-free parent is named instead.
 * @module
 */

import { dirname, isAbsolute, resolve } from "./posix_path.ts";
import { PASST_COMMAND, PASST_SOCKET_PARENT, TUN_DEVICE } from "./net/net_option.ts";
import type { VmParams } from "./params.ts";

/** One `--file-mapping` as far as Deno's permissions are concerned. */
export interface PermissionMapping {
  /** Host path (absolute, or relative to `cwd`). */
  readonly host: string;
  /** The guest may write, create or remove below it. */
  readonly writable: boolean;
  /** Guest path, only to name the mapping in messages. */
  readonly guest?: string;
}

/** What a run touches on the host through Deno's APIs. */
export interface PermissionInput {
  /** The kernel or Hermit image file. */
  readonly kernel: string;
  /** The file mappings. */
  readonly mappings: readonly PermissionMapping[];
  /** Parent of the per-VM temp dir, or null when none is needed. */
  readonly tempDir: string | null;
  /** The `-o` output file, or null. */
  readonly output: string | null;
  /** `-e host`: the whole host environment is passed to the guest. */
  readonly envHost: boolean;
  /** libc as named in messages (`LIBC_SONAME`); `--allow-ffi` is unscoped anyway (see above). */
  readonly libcPath: string;
  /**
   * dhyve's source directory when the run starts vCPU Workers (SMP), since
   * Deno checks `--allow-read` on a Worker's modules; see `moduleDir` in `src/locations.ts`.
   */
  readonly workerModules?: string | null;
  /** `/dev/net/tun` when the run has a network device (`--net`); dhyve opens it read/write. */
  readonly tunDevice?: string | null;
  /** The run starts the GDB stub (`--gdb-port`), which listens on loopback. */
  readonly gdbStub?: boolean;
  /**
   * `--net passt`: the directory below which dhyve makes passt's socket
   * directory (write), and passt is started (`--allow-run=passt`).
   */
  readonly passtSocketParent?: string | null;
  /** `--net passt:SOCKET`: the running passt's socket, which dhyve connects to (read/write). */
  readonly passtSocket?: string | null;
}

/**
 * Where the GDB stub listens: 127.0.0.1 is required, [::1] is used when
 * granted (and when the host has IPv6 loopback).
 */
export const GDB_HOSTS: readonly string[] = ["127.0.0.1", "[::1]"];

/**
 * The part of a {@linkcode PermissionInput} that follows from the VM's
 * options: vCPU Workers and the net Worker read `moduleDir`, `--net` opens
 * the TUN device, `--gdb-port` listens on loopback.
 */
export function optionPermissionInput(
  params: Pick<VmParams, "cpuCount" | "net" | "gdbPort" | "tempDir">,
  moduleDir: string | null,
): Pick<
  PermissionInput,
  "workerModules" | "tunDevice" | "gdbStub" | "passtSocketParent" | "passtSocket"
> {
  const net = params.net;
  const passt = net?.mode === "passt" ? net : undefined;
  return {
    workerModules: (params.cpuCount ?? 1) > 1 || net !== undefined ? moduleDir : null,
    tunDevice: net?.mode === "tap" ? TUN_DEVICE : null,
    gdbStub: params.gdbPort !== undefined,
    passtSocketParent: passt !== undefined && passt.socket === undefined
      ? params.tempDir ?? PASST_SOCKET_PARENT
      : null,
    passtSocket: passt?.socket ?? null,
  };
}

/** Options of {@linkcode requiredPermissions}. */
export interface RequiredPermissionsOptions {
  /** Directory that relative paths are resolved against (default `Deno.cwd()`). */
  readonly cwd?: string;
}

/** The minimal Deno permission scopes for a run. */
export interface RequiredPermissions {
  /** Absolute paths for `--allow-read`; none lies beneath another. */
  read: string[];
  /** Absolute paths for `--allow-write`; none lies beneath another. */
  write: string[];
  /** Libraries for `--allow-ffi`. */
  ffi: string[];
  /** Hosts for `--allow-net` ({@linkcode GDB_HOSTS} or none); the first is required. */
  net: string[];
  /** Programs for `--allow-run` (passt, for `--net passt`). */
  run: string[];
  /** `true`: the whole environment; a list: just these variables; `false`: none. */
  env: boolean | string[];
  /** Why each path above is needed ("the kernel", "file mapping a:/b", …), by path. */
  reasons: Record<string, string>;
}

/**
 * The Deno permissions a run needs: read on the kernel, on every mapped path
 * and on the temp dir; write on writable mappings (whether they exist or not:
 * Deno's write permission on a missing path lets the guest create it; a
 * read-only mapping that does not exist cannot be created, EROFS, so it needs
 * none), on the temp dir and on the output file; FFI on libc only; the
 * environment only for `-e host`. Paths are made absolute, deduplicated, and
 * dropped when a listed directory already covers them. Pure: no file access
 * (only `Deno.cwd()`, when a path is relative and `cwd` is not given).
 */
export function requiredPermissions(
  input: PermissionInput,
  options: RequiredPermissionsOptions = {},
): RequiredPermissions {
  let cwd = options.cwd;
  function absolute(path: string): string {
    if (isAbsolute(path)) return resolve(path);
    cwd ??= Deno.cwd();
    return resolve(cwd, path);
  }
  const reasons: Record<string, string> = {};
  const read: string[] = [];
  const write: string[] = [];
  function need(list: string[], path: string, reason: string): void {
    const abs = absolute(path);
    list.push(abs);
    reasons[abs] ??= reason;
  }

  need(read, input.kernel, "the kernel");
  for (const mapping of input.mappings) {
    const reason = mapping.guest === undefined
      ? `file mapping ${mapping.host}`
      : `file mapping ${mapping.host}:${mapping.guest}`;
    need(read, mapping.host, reason);
    if (mapping.writable) need(write, mapping.host, reason);
  }
  if (input.tempDir !== null) {
    need(read, input.tempDir, "the temp dir");
    need(write, input.tempDir, "the temp dir");
  }
  if (input.output !== null) need(write, input.output, "the output file");
  if (input.workerModules !== undefined && input.workerModules !== null) {
    need(read, input.workerModules, "the vCPU Workers' modules");
  }
  if (input.tunDevice !== undefined && input.tunDevice !== null) {
    need(read, input.tunDevice, "the TAP device (--net)");
    need(write, input.tunDevice, "the TAP device (--net)");
  }
  const run: string[] = [];
  if (input.passtSocketParent !== undefined && input.passtSocketParent !== null) {
    // dhyve starts passt itself.
    need(write, input.passtSocketParent, "passt's socket (--net passt)");
    run.push(PASST_COMMAND);
    reasons[PASST_COMMAND] ??=
      "user-mode networking, --net passt; if it is not installed: apt install passt";
  }
  if (input.passtSocket !== undefined && input.passtSocket !== null) {
    need(read, input.passtSocket, "passt's socket (--net passt:SOCKET)");
    need(write, input.passtSocket, "passt's socket (--net passt:SOCKET)");
  }
  reasons[input.libcPath] ??= "libc, for KVM";
  const net = input.gdbStub === true ? [...GDB_HOSTS] : [];
  if (input.gdbStub === true) reasons[GDB_HOSTS[0]!] ??= "the GDB stub";
  return {
    read: cover(read),
    write: cover(write),
    ffi: [input.libcPath],
    net,
    run,
    env: input.envHost,
    reasons,
  };
}

/** Whether `path` is `dir` or lies beneath it (lexically). */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/** Deduplicates `paths` and drops those beneath another, keeping the first-seen order. */
function cover(paths: readonly string[]): string[] {
  const unique = [...new Set(paths)];
  return unique.filter((path) => !unique.some((other) => other !== path && within(path, other)));
}

/** The paths of `req` that this process may not use, by kind. */
function missingPermissions(req: RequiredPermissions): RequiredPermissions {
  function missing(name: "read" | "write" | "ffi", paths: readonly string[]): string[] {
    return paths.filter((path) => Deno.permissions.querySync({ name, path }).state !== "granted");
  }
  let env: boolean | string[] = false;
  if (req.env === true) {
    env = Deno.permissions.querySync({ name: "env" }).state !== "granted";
  } else if (Array.isArray(req.env)) {
    env = req.env.filter((variable) =>
      Deno.permissions.querySync({ name: "env", variable }).state !== "granted"
    );
  }
  return {
    read: missing("read", req.read),
    write: missing("write", req.write),
    // Pointer views need the unscoped grant; a path-scoped one is not enough.
    ffi: req.ffi.length > 0 && Deno.permissions.querySync({ name: "ffi" }).state !== "granted"
      ? req.ffi
      : [],
    net: req.net.length > 0 &&
        Deno.permissions.querySync({ name: "net", host: req.net[0]! }).state !== "granted"
      ? req.net
      : [],
    run: req.run.filter((command) =>
      Deno.permissions.querySync({ name: "run", command }).state !== "granted"
    ),
    env,
    reasons: req.reasons,
  };
}

/**
 * Checks that this process was granted everything in `req` (queries only,
 * never prompts). Returns null when it was, else one line naming what is
 * missing, why, and the exact flags to add, e.g.
 * `Deno may not write /home/u/out (file mapping /home/u/out:/root/out): add --allow-write=/home/u/out`.
 */
export function checkGranted(req: RequiredPermissions): string | null {
  const missing = missingPermissions(req);
  const clauses: string[] = [];
  function describe(verb: string, paths: readonly string[]): void {
    if (paths.length === 0) return;
    const named = paths.map((path) => {
      const reason = req.reasons[path];
      return reason === undefined ? path : `${path} (${reason})`;
    });
    clauses.push(`${verb} ${named.join(", ")}`);
  }
  describe("read", missing.read);
  describe("write", missing.write);
  describe("load through FFI", missing.ffi);
  describe("listen on", missing.net.slice(0, 1));
  describe("run", missing.run);
  if (missing.env === true) clauses.push("read the environment (-e host)");
  else if (Array.isArray(missing.env) && missing.env.length > 0) {
    clauses.push(`read the environment variables ${missing.env.join(", ")}`);
  }
  if (clauses.length === 0) return null;
  return `Deno may not ${clauses.join("; ")}: add ${permissionFlags(missing).join(" ")}`;
}

/**
 * The `--allow-*` arguments granting exactly `req`, unquoted (one argv word
 * each, for a process spawned without a shell).
 */
export function permissionArgs(req: RequiredPermissions): string[] {
  const args: string[] = [];
  function scoped(flag: string, paths: readonly string[]): void {
    if (paths.length === 0) return;
    args.push(`--allow-${flag}=${cover(paths.map(nameable)).join(",")}`);
  }
  if (req.net.length > 0) args.push(`--allow-net=${req.net.join(",")}`);
  if (req.run.length > 0) args.push(`--allow-run=${req.run.join(",")}`);
  if (req.ffi.length > 0) args.push("--allow-ffi");
  scoped("read", req.read);
  scoped("write", req.write);
  if (req.env === true) args.push("--allow-env");
  else if (Array.isArray(req.env) && req.env.length > 0) {
    args.push(`--allow-env=${req.env.join(",")}`);
  }
  return args;
}

/** The `--allow-*` flags granting exactly `req` (shell-quoted). */
function permissionFlags(req: RequiredPermissions): string[] {
  // Unquoted: "[::1]" matches no file a shell could expand it to.
  return permissionArgs(req).map((arg) => arg.startsWith("--allow-net=") ? arg : shellQuote(arg));
}

/** `path`, or its nearest parent without a comma (Deno's flags cannot name a comma). */
function nameable(path: string): string {
  let out = path;
  while (out.includes(",")) out = dirname(out);
  return out;
}

/**
 * The minimal command line for `req`: `deno run --allow-ffi --allow-read=…
 * --allow-write=… [--allow-env] <entry> <args>`, shell-quoted where needed.
 * `entry` is the path of `main.ts` (or a module URL). Any other `entry` is
 * taken as a binary from `deno compile`, whose permissions are fixed when it
 * is built: the line then rebuilds it (`deno compile <flags> --output <entry>
 * main.ts`) and runs it with `args`.
 */
export function denoCommandLine(
  req: RequiredPermissions,
  entry: string,
  args: readonly string[],
): string {
  const flags = permissionFlags(req);
  const quotedArgs = args.map(shellQuote);
  if (/\.(ts|mts|js|mjs)$/.test(entry) || /^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    return ["deno", "run", ...flags, shellQuote(entry), ...quotedArgs].join(" ");
  }
  const build = ["deno", "compile", ...flags, "--output", shellQuote(entry), "main.ts"];
  const binary = entry.includes("/") ? entry : `./${entry}`;
  return `${build.join(" ")} && ${[shellQuote(binary), ...quotedArgs].join(" ")}`;
}

/** Quotes `word` for a POSIX shell when it holds anything beyond safe characters. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
