/**
 * Landlock, the third file fence (`--file-isolation normal|strict`): the
 * kernel itself refuses every path outside the rules, whatever bug exists in
 * the file map or in Deno's permission checks, and even for libc calls made
 * through FFI. Imports only `src/host/libc.ts` (the `landlock_*` syscalls, prctl
 * and fstat); it opens rule paths with `O_PATH` and never reads them.
 *
 * Which threads are fenced. `landlock_restrict_self` restricts the calling
 * thread and the threads and processes it creates afterwards. Landlock ABI v8
 * (merged for the release after Linux 6.19) added
 * `LANDLOCK_RESTRICT_SELF_TSYNC`, which restricts every thread of the process
 * at once; {@linkcode applyLandlock} uses it whenever the kernel offers it.
 * On older kernels (the development machines run 6.18: ABI v7) only the
 * calling thread is restricted. Measured with Deno 2.9.6
 * (`tests/kvm/landlock_test.ts` prints the list):
 *
 * - fenced: everything the main thread does itself (every `Deno.*Sync` file
 *   call, FFI calls such as libc `open`); Workers started afterwards (the vCPU
 *   Workers), including their async file calls, since their threads are all
 *   new; thread-pool threads spawned afterwards. Child processes cannot even
 *   start: no rule grants execute;
 * - not fenced: the threads that exist before the call, i.e. two V8 platform
 *   threads and three tokio blocking-pool threads. The pool serves async file
 *   calls such as `await Deno.readTextFile`, so such a call made from the main
 *   thread may still reach any file the user can (the test shows it does).
 *
 * So without TSYNC, host file access on the guest's behalf must use
 * synchronous `Deno.*Sync` calls on the main thread or run in a Worker started
 * after the restriction; dhyve's guest I/O (`src/sandbox/host_fs.ts`, sync
 * calls only) does. Files opened before the restriction (stdio, the `-o`
 * file, `/dev/kvm`) stay usable whatever the rules say: Landlock checks at
 * open time.
 * @module
 */

import { dirname, join } from "../posix_path.ts";
import { dhyveRoot } from "../locations.ts";
import { grantedEnvVar } from "../env_var.ts";
import { ERRNO, errnoName } from "../errno.ts";
import { cString, errno, libc, O_CLOEXEC, O_PATH } from "./libc.ts";

/** x86_64 syscall numbers. */
const SYS_LANDLOCK_CREATE_RULESET = 444;
const SYS_LANDLOCK_ADD_RULE = 445;
const SYS_LANDLOCK_RESTRICT_SELF = 446;
/** prctl option that landlock_restrict_self needs without CAP_SYS_ADMIN. */
const PR_SET_NO_NEW_PRIVS = 38;
/** landlock_create_ruleset flag: return the ABI version instead of a ruleset. */
const LANDLOCK_CREATE_RULESET_VERSION = 1;
/** landlock_add_rule rule type for a path (`struct landlock_path_beneath_attr`). */
const LANDLOCK_RULE_PATH_BENEATH = 1;
/** landlock_restrict_self flag (ABI v8): restrict every thread of the process. */
const LANDLOCK_RESTRICT_SELF_TSYNC = 1 << 3;
/** The first ABI version that knows {@linkcode LANDLOCK_RESTRICT_SELF_TSYNC}. */
const ABI_TSYNC = 8;

/** `enum landlock_access_fs` bits (linux/landlock.h), with the ABI version that added each. */
export const LANDLOCK_ACCESS_FS = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  /** ABI v2: link or rename across directories. */
  REFER: 1 << 13,
  /** ABI v3: truncate(2), ftruncate(2), open with O_TRUNC. */
  TRUNCATE: 1 << 14,
  /** ABI v5: ioctl(2) on character and block devices (our `/dev/kvm` calls). */
  IOCTL_DEV: 1 << 15,
} as const;

const A = LANDLOCK_ACCESS_FS;

/** Rights Landlock accepts on a rule for a non-directory. */
const FILE_RIGHTS = A.EXECUTE | A.WRITE_FILE | A.READ_FILE | A.TRUNCATE | A.IOCTL_DEV;

/** What each access kind grants; masked by the kernel's ABI and, for files, by FILE_RIGHTS. */
const ACCESS_RIGHTS: Readonly<Record<LandlockAccess, number>> = {
  read: A.READ_FILE,
  write: A.READ_FILE | A.WRITE_FILE | A.TRUNCATE | A.IOCTL_DEV,
  "dir-read": A.READ_FILE | A.READ_DIR,
  "dir-write": A.READ_FILE | A.WRITE_FILE | A.TRUNCATE | A.IOCTL_DEV | A.READ_DIR |
    A.REMOVE_DIR | A.REMOVE_FILE | A.MAKE_DIR | A.MAKE_REG | A.REFER,
  "dir-remove": A.REMOVE_FILE | A.REMOVE_DIR,
  "dir-rmdir": A.REMOVE_DIR,
};

/**
 * What a rule allows on its path (a file, or everything beneath a directory):
 *
 * - `read`: read files;
 * - `write`: read and write files, truncate them, ioctl on devices;
 * - `dir-read`: `read`, plus list directories;
 * - `dir-write`: `write` and `dir-read`, plus create, remove and rename files
 *   and directories (no executing, no device nodes, sockets, FIFOs or symlinks);
 * - `dir-remove`: remove files and empty directories, nothing else (for the
 *   parent of a mapped path, so that the guest can unlink the mapped entry:
 *   Landlock grants removal on the directory that holds the entry);
 * - `dir-rmdir`: remove empty directories only (for the parent of the VM's
 *   temp dir, so that dhyve can remove that dir when the VM ends).
 *
 * On a file, the directory rights of `dir-*` are dropped (Landlock refuses them).
 */
export type LandlockAccess =
  | "read"
  | "write"
  | "dir-read"
  | "dir-write"
  | "dir-remove"
  | "dir-rmdir";

/** One path and what the process may do with it once Landlock is applied. */
export interface LandlockRule {
  /** Host path; symlinks are followed, so the rule applies to the target. */
  readonly path: string;
  /** What is allowed there. */
  readonly access: LandlockAccess;
  /** Skip the rule silently when the path does not exist (default: skip with a warning). */
  readonly optional?: boolean;
}

/**
 * How strictly to apply Landlock, after uhyve's `--file-isolation`:
 * `normal` does what the kernel supports and warns about the rest, `strict`
 * throws a {@linkcode LandlockError} instead.
 */
export type LandlockMode = "normal" | "strict";

/** Options of {@linkcode applyLandlock}. */
export interface LandlockOptions {
  /** `normal` (best effort) or `strict` (every fence or an error). */
  readonly mode: LandlockMode;
}

/** What {@linkcode applyLandlock} did. */
export interface LandlockResult {
  /** True when the process is now restricted. */
  applied: boolean;
  /** The kernel's Landlock ABI version (0: no Landlock). */
  abi: number;
  /**
   * True when every thread of the process was restricted (ABI v8 TSYNC);
   * false when only the calling thread and its future children were.
   */
  allThreads: boolean;
  /** One line per thing that was skipped or weakened (log them as warnings). */
  warnings: string[];
}

/** Landlock cannot be applied as `strict` mode demands; the message says what to do. */
export class LandlockError extends Error {
  /** Error name. */
  override name = "LandlockError";
}

/**
 * The Landlock ABI version of the running kernel, or 0 when the kernel has no
 * Landlock (ENOSYS) or has it disabled (EOPNOTSUPP).
 * @throws {Deno.errors.NotCapable} without `--allow-ffi` for libc.
 */
export function landlockAbiVersion(): number {
  const result = libc().syscall_args(
    SYS_LANDLOCK_CREATE_RULESET,
    0,
    0,
    LANDLOCK_CREATE_RULESET_VERSION,
  );
  return result < 0 ? 0 : result;
}

/** The filesystem rights Landlock ABI `abi` can handle (all of them are handled: denied unless granted). */
export function handledAccessFs(abi: number): number {
  if (abi < 1) return 0;
  let rights = A.EXECUTE | A.WRITE_FILE | A.READ_FILE | A.READ_DIR | A.REMOVE_DIR |
    A.REMOVE_FILE | A.MAKE_CHAR | A.MAKE_DIR | A.MAKE_REG | A.MAKE_SOCK | A.MAKE_FIFO |
    A.MAKE_BLOCK | A.MAKE_SYM;
  if (abi >= 2) rights |= A.REFER;
  if (abi >= 3) rights |= A.TRUNCATE;
  if (abi >= 5) rights |= A.IOCTL_DEV;
  return rights;
}

/** The rights a rule of kind `access` grants on a directory or a file under ABI `abi`. */
export function ruleAccessFs(access: LandlockAccess, isDirectory: boolean, abi: number): number {
  const rights = ACCESS_RIGHTS[access] & handledAccessFs(abi);
  return isDirectory ? rights : rights & FILE_RIGHTS;
}

let appliedBefore = false;

/**
 * Restricts this process to `rules` with Landlock. Every filesystem right the
 * kernel can handle is denied except where a rule grants it; network access
 * is left alone. A rule whose path does not exist is skipped with a warning.
 * `no_new_privs` is set first, as Landlock requires.
 *
 * Mind the threads (see the module doc): without TSYNC (ABI < 8) only the
 * calling thread and what it starts afterwards are restricted, so call it from
 * the main thread before starting the vCPU Workers. The rules must include
 * what the process itself still needs, see {@linkcode denoRuntimeRules}.
 *
 * @throws {LandlockError} in `strict` mode when the kernel has no Landlock,
 *   has ABI < 3 (truncate cannot be fenced), a rule cannot be added, or
 *   Landlock was already applied by this module; and in either mode when the
 *   final restriction fails after rules were accepted.
 */
export function applyLandlock(
  rules: readonly LandlockRule[],
  opts: LandlockOptions,
): LandlockResult {
  const strict = opts.mode === "strict";
  const warnings: string[] = [];
  const abi = landlockAbiVersion();
  const result: LandlockResult = { applied: false, abi, allThreads: false, warnings };
  if (abi === 0) {
    const message = "Landlock is not available on this kernel: " +
      "use --file-isolation normal or none";
    if (strict) throw new LandlockError(message);
    warnings.push("Landlock is not available on this kernel: the file sandbox has two fences only");
    return result;
  }
  if (abi < 3) {
    const message = `Landlock ABI v${abi} on this kernel cannot fence truncate (needs v3, ` +
      "Linux 6.2)";
    if (strict) throw new LandlockError(`${message}: use --file-isolation normal or none`);
    warnings.push(message);
  }
  if (appliedBefore) {
    const message = "Landlock was applied already in this process";
    if (strict) throw new LandlockError(`${message}: the first ruleset stays in force`);
    warnings.push(`${message}: the new rules can only narrow it`);
  }

  const handled = handledAccessFs(abi);
  const attr = new Uint8Array(8); // struct landlock_ruleset_attr, handled_access_fs only
  new DataView(attr.buffer).setBigUint64(0, BigInt(handled), true);
  const rulesetFd = libc().syscall_args(SYS_LANDLOCK_CREATE_RULESET, attr, attr.length, 0);
  if (rulesetFd < 0) {
    return failed(result, strict, `Cannot create a Landlock ruleset: ${errnoText(errno())}`);
  }
  try {
    for (const rule of rules) {
      const problem = addRule(rulesetFd, rule, abi);
      if (problem === null) continue;
      if (strict && !problem.missing) throw new LandlockError(problem.message);
      warnings.push(problem.message);
    }
    if (libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
      return failed(result, strict, `Cannot set no_new_privs: ${errnoText(errno())}`);
    }
    const flags = abi >= ABI_TSYNC ? LANDLOCK_RESTRICT_SELF_TSYNC : 0;
    if (libc().syscall_args(SYS_LANDLOCK_RESTRICT_SELF, rulesetFd, flags) < 0) {
      throw new LandlockError(`Cannot apply the Landlock ruleset: ${errnoText(errno())}`);
    }
    appliedBefore = true;
    result.applied = true;
    result.allThreads = flags !== 0;
    return result;
  } finally {
    libc().close(rulesetFd);
  }
}

function failed(result: LandlockResult, strict: boolean, message: string): LandlockResult {
  if (strict) throw new LandlockError(message);
  result.warnings.push(`${message}: the file sandbox has two fences only`);
  return result;
}

function errnoText(value: number): string {
  return `${errnoName(value)} (${value})`;
}

/** struct stat on x86_64: 144 bytes, st_mode (u32) at offset 24. */
const STAT_SIZE = 144;
const STAT_MODE_OFFSET = 24;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** Adds one rule; returns null, or why it was skipped (`missing`: the path does not exist). */
function addRule(
  rulesetFd: number,
  rule: LandlockRule,
  abi: number,
): { message: string; missing: boolean } | null {
  const fd = libc().open(cString(rule.path), O_PATH | O_CLOEXEC, 0);
  if (fd < 0) {
    const code = errno();
    const missing = code === ERRNO.ENOENT || code === ERRNO.ENOTDIR;
    if (missing && rule.optional === true) return null;
    const why = missing ? "it does not exist" : errnoText(code);
    return { message: `Landlock rule for "${rule.path}" skipped: ${why}`, missing };
  }
  try {
    const stat = new Uint8Array(STAT_SIZE);
    if (libc().fstat(fd, stat) < 0) {
      return {
        message: `Landlock rule for "${rule.path}" skipped: cannot stat it: ${errnoText(errno())}`,
        missing: false,
      };
    }
    const mode = new DataView(stat.buffer).getUint32(STAT_MODE_OFFSET, true);
    const access = ruleAccessFs(rule.access, (mode & S_IFMT) === S_IFDIR, abi);
    if (access === 0) return null; // nothing this kernel can fence: nothing to grant
    // struct landlock_path_beneath_attr (packed): u64 allowed_access, s32 parent_fd
    const attr = new Uint8Array(12);
    const view = new DataView(attr.buffer);
    view.setBigUint64(0, BigInt(access), true);
    view.setInt32(8, fd, true);
    const added = libc().syscall_args(
      SYS_LANDLOCK_ADD_RULE,
      rulesetFd,
      LANDLOCK_RULE_PATH_BENEATH,
      attr,
      0,
    );
    if (added < 0) {
      return {
        message: `Landlock rule for "${rule.path}" skipped: ${errnoText(errno())}`,
        missing: false,
      };
    }
    return null;
  } finally {
    libc().close(fd);
  }
}

/** One `--file-mapping` as far as Landlock is concerned. */
export interface LandlockMapping {
  /** Absolute host path. */
  readonly host: string;
  /** The guest may write, create or remove there (not `:ro`). */
  readonly writable: boolean;
  /** Whether the host path exists; when omitted it is looked up (`Deno.lstatSync`). */
  readonly exists?: boolean;
}

/** What a VM touches on the host, for {@linkcode sandboxRules}. */
export interface SandboxRulesInput {
  /** The kernel or Hermit image file. */
  readonly kernel: string;
  /** The file mappings. */
  readonly mappings: readonly LandlockMapping[];
  /** The per-VM temp dir (or its parent), or null. */
  readonly tempDir: string | null;
  /** The `-o` output file, or null. */
  readonly output: string | null;
}

/**
 * The Landlock rules for a VM's files, after uhyve's (hermit-abi §6.7) but
 * narrower (uhyve grants every right on every listed path, read-only or not):
 *
 * - the kernel: `read`;
 * - a read-only mapping: `dir-read` (on a file: `read`);
 * - a writable mapping: `dir-write` on itself, and `dir-remove` on its parent
 *   so that the guest can unlink the mapped entry itself; as in uhyve, that
 *   lets removal reach everything beneath the parent, where the file map
 *   remains the fence;
 * - a writable mapping that does not exist yet: `dir-write` on its parent, as
 *   uhyve does, since Landlock cannot allow creating one name only; a missing
 *   read-only mapping gets nothing (the guest cannot create it);
 * - the temp dir: `dir-write`; the output file: `write`.
 *
 * Add {@linkcode denoRuntimeRules} for what the process itself needs.
 */
export function sandboxRules(input: SandboxRulesInput): LandlockRule[] {
  const rules: LandlockRule[] = [{ path: input.kernel, access: "read" }];
  for (const mapping of input.mappings) {
    const parent = dirname(mapping.host);
    if (!(mapping.exists ?? pathExists(mapping.host))) {
      if (mapping.writable) rules.push({ path: parent, access: "dir-write" });
    } else if (mapping.writable) {
      rules.push({ path: mapping.host, access: "dir-write" });
      if (parent !== mapping.host) rules.push({ path: parent, access: "dir-remove" });
    } else {
      rules.push({ path: mapping.host, access: "dir-read" });
    }
  }
  if (input.tempDir !== null) rules.push({ path: input.tempDir, access: "dir-write" });
  if (input.output !== null) rules.push({ path: input.output, access: "write" });
  return rules;
}

/** False only when `lstat` says the path does not exist (unknown counts as existing). */
function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

/** Options of {@linkcode denoRuntimeRules}. */
export interface DenoRuntimeOptions {
  /**
   * More directories whose modules may still be loaded after the restriction
   * (dhyve's own root directory is always included). A program that embeds
   * dhyve adds its own project directory when dhyve's npm imports resolve
   * from that project's `node_modules`.
   */
  readonly sourceDirs?: readonly string[];
  /** Deno's cache directory; by default `DENO_DIR`, else `$XDG_CACHE_HOME/deno` or `~/.cache/deno`, when `--allow-env` lets us read them. */
  readonly denoDir?: string;
}

/**
 * What dhyve and Deno themselves still need once Landlock is applied, found by
 * tracing a run (strace) under Landlock on Deno 2.9.6:
 *
 * - read the TypeScript modules of Workers and dynamic imports started
 *   afterwards (the vCPU Workers): dhyve's root directory, holding `src/`,
 *   `node_modules/`, `package.json` and `deno.json`. Without it a Worker fails
 *   with "Import … failed: Permission denied";
 * - read Deno's cache (`DENO_DIR/gen`: transpiled modules; otherwise each
 *   Worker transpiles again). Never write: a writable cache could be poisoned;
 *   Deno ignores the failed cache writes;
 * - `/dev/kvm` read/write with device ioctls (Landlock ABI v5 fences ioctl),
 *   `/dev/null`, `/dev/urandom`;
 * - what a new Worker's runtime reads at start-up (heap and thread sizing):
 *   `/proc/self`, `/proc/meminfo`, `/proc/stat`, `/sys/devices/system/cpu`,
 *   `/sys/fs/cgroup`, and `/etc/localtime`; without them it still works, with
 *   defaults;
 * - the certificate file named by `NODE_EXTRA_CA_CERTS` or `DENO_CERT`, which
 *   Deno loads at exit for its update check (otherwise it prints a warning).
 *
 * System paths are optional rules (skipped silently where they do not exist).
 */
export function denoRuntimeRules(options: DenoRuntimeOptions = {}): LandlockRule[] {
  const rules: LandlockRule[] = [];
  const root = dhyveRoot();
  if (root !== null) rules.push({ path: root, access: "dir-read" });
  for (const dir of options.sourceDirs ?? []) rules.push({ path: dir, access: "dir-read" });
  const denoDir = options.denoDir ?? defaultDenoDir();
  if (denoDir !== undefined) rules.push({ path: denoDir, access: "dir-read", optional: true });
  rules.push(
    { path: "/dev/kvm", access: "write" },
    { path: "/dev/null", access: "write", optional: true },
    { path: "/dev/urandom", access: "read", optional: true },
    { path: "/etc/localtime", access: "read", optional: true },
    { path: "/proc/self", access: "dir-read", optional: true },
    { path: "/proc/meminfo", access: "read", optional: true },
    { path: "/proc/stat", access: "read", optional: true },
    { path: "/sys/devices/system/cpu", access: "dir-read", optional: true },
    { path: "/sys/fs/cgroup", access: "dir-read", optional: true },
    // Deno reads the CA bundle at exit (update check); public data.
    { path: "/etc/ssl/certs", access: "dir-read", optional: true },
  );
  for (const name of ["NODE_EXTRA_CA_CERTS", "DENO_CERT"]) {
    const file = grantedEnvVar(name);
    if (file !== undefined && file !== "") {
      rules.push({ path: file, access: "read", optional: true });
    }
  }
  return rules;
}

/** Deno's cache directory as Deno computes it on Linux, or undefined without env access. */
function defaultDenoDir(): string | undefined {
  const denoDir = grantedEnvVar("DENO_DIR");
  if (denoDir !== undefined && denoDir !== "") return denoDir;
  const cache = grantedEnvVar("XDG_CACHE_HOME");
  if (cache !== undefined && cache.startsWith("/")) return join(cache, "deno");
  const home = grantedEnvVar("HOME");
  return home !== undefined && home.startsWith("/") ? join(home, ".cache", "deno") : undefined;
}
