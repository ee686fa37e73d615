/**
 * `dhyve-oci`: a runc-compatible OCI runtime that runs Hermit kernels under
 * dhyve. Every command goes to runc; on `create` and `run`, when the
 * container's program is a Hermit kernel, the bundle's `config.json` is first
 * rewritten so that the container's process is dhyve running it
 * (`rewrite.ts`). Other containers pass through unchanged. A problem is one
 * line on stderr and, with runc's `--log FILE`, one entry there in the format
 * `--log-format` asks for. This file is the shell: files, the runc child,
 * signals, exit codes.
 * @module
 */

import { isAbsolute, join } from "node:path/posix";
import { EXIT_CODE } from "../exit_codes.ts";
import { OciError } from "./errors.ts";
import { dhyveRootDir, discoverHost, warmModuleCache } from "./host.ts";
import {
  type BindMount,
  checkHermitKernel,
  findProgram,
  programKind,
  type ResolvedProgram,
  type RootView,
} from "./program.ts";
import { initPrefix, type OciSpec, rewriteExecProcess, rewriteSpec } from "./rewrite.ts";
import { EXEC_OPTIONS_ANNOTATION } from "./annotations.ts";
import { parseRuncArgs, type RuncInvocation } from "./runc_cli.ts";
import { formatLogLine } from "./runtime_log.ts";

/** The environment variable naming the runc binary (like `--runc PATH`). */
export const RUNC_ENV = "DHYVE_OCI_RUNC";

const encoder = new TextEncoder();

/** Where runc is looked for after `PATH`. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The host file system as {@linkcode findProgram} sees it. */
const hostView: RootView = {
  lstat(path: string): { isSymlink: boolean; isFile: boolean } | null {
    try {
      const stat = Deno.lstatSync(path);
      return { isSymlink: stat.isSymlink, isFile: stat.isFile };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return null;
      }
      throw error;
    }
  },
  readlink: (path: string): string => Deno.readLinkSync(path),
};

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0]! : String(error);
}

/** Reads and parses the bundle's config.json. */
function readSpec(configPath: string): { text: string; spec: OciSpec } {
  let text: string;
  try {
    text = Deno.readTextFileSync(configPath);
  } catch (error) {
    throw new OciError(
      `Cannot read the bundle's ${configPath}: ${describe(error)}`,
      EXIT_CODE.NO_INPUT,
    );
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (error) {
    throw new OciError(`${configPath} is not valid JSON: ${describe(error)}`, EXIT_CODE.USAGE);
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new OciError(
      `${configPath} does not hold an OCI runtime spec (a JSON object)`,
      EXIT_CODE.USAGE,
    );
  }
  return { text, spec: spec as OciSpec };
}

/** The first bytes of `path` (a Hermit test needs 8). */
function readHead(path: string): Uint8Array {
  const file = Deno.openSync(path);
  try {
    const head = new Uint8Array(8);
    const n = file.readSync(head) ?? 0;
    return head.subarray(0, n);
  } finally {
    file.close();
  }
}

/**
 * On `create`/`run`: rewrites the bundle's config.json when its program is a
 * Hermit kernel; leaves it untouched (not even rewritten) otherwise.
 * @returns whether it was rewritten.
 */
export async function prepareBundle(bundle: string): Promise<boolean> {
  const dir = bundle === "" ? Deno.cwd() : bundle;
  const configPath = join(dir, "config.json");
  const { spec } = readSpec(configPath);
  const args = spec.process?.args ?? [];
  const args0 = args[initPrefix(args).length];
  const rootPath = spec.root?.path;
  if (args0 === undefined || rootPath === undefined) return false;
  const rootfs = isAbsolute(rootPath) ? rootPath : join(dir, rootPath);
  const program = hermitProgram(args0, {
    cwd: spec.process?.cwd ?? "/",
    env: spec.process?.env ?? [],
    rootfs,
    binds: bindMounts(spec),
    view: hostView,
  });
  if (program === null) return false;
  const host = discoverHost();
  const rewritten = rewriteSpec(spec, program.containerPath, host);
  await warmModuleCache(host);
  writeJson(configPath, rewritten);
  return true;
}

/** The program of a process spec, resolved in the container, when dhyve should run it. */
function hermitProgram(
  args0: string,
  options: Parameters<typeof findProgram>[1],
): ResolvedProgram | null {
  const program = findProgram(args0, options);
  if (program === null) return null; // runc reports a missing program itself
  let head: Uint8Array;
  try {
    head = readHead(program.hostPath);
  } catch {
    return null;
  }
  const kind = programKind(head);
  if (kind === "other") return null;
  if (kind === "hermit-elf") {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(program.hostPath);
    } catch (error) {
      throw new OciError(
        `Cannot read the kernel "${program.containerPath}": ${describe(error)}`,
        EXIT_CODE.NO_INPUT,
      );
    }
    checkHermitKernel(bytes, program.containerPath);
  }
  return program;
}

/** The bind mounts of `spec`, for resolving paths inside the container. */
function bindMounts(spec: OciSpec): BindMount[] {
  return (spec.mounts ?? [])
    .filter((m) =>
      m.source !== undefined &&
      (m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind"))
    )
    .map((m) => ({ destination: m.destination, source: m.source! }));
}

/**
 * On `exec --process FILE` into a container dhyve-oci rewrote: when the
 * process's program is a Hermit kernel, rewrites FILE so that a second dhyve
 * runs it (other programs, e.g. a busybox in the image, run as they are).
 * @returns whether it was rewritten.
 */
export async function prepareExec(runc: string, invocation: RuncInvocation): Promise<boolean> {
  const { processFile, containerId } = invocation;
  if (processFile === undefined || containerId === undefined) return false;
  let process: NonNullable<OciSpec["process"]>;
  try {
    process = JSON.parse(Deno.readTextFileSync(processFile));
  } catch (error) {
    throw new OciError(
      `Cannot read the process file ${processFile}: ${describe(error)}`,
      EXIT_CODE.NO_INPUT,
    );
  }
  const args0 = process.args?.[0];
  if (args0 === undefined) return false;
  const state = await new Deno.Command(runc, {
    args: [...invocation.globalArgs, "state", containerId],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!state.success) return false; // runc exec says why
  const { bundle, rootfs } = JSON.parse(new TextDecoder().decode(state.stdout)) as {
    bundle?: string;
    rootfs?: string;
  };
  if (bundle === undefined || rootfs === undefined) return false;
  const { spec } = readSpec(join(bundle, "config.json"));
  const stored = spec.annotations?.[EXEC_OPTIONS_ANNOTATION];
  if (stored === undefined) return false; // not a dhyve container
  const program = hermitProgram(args0, {
    cwd: process.cwd ?? "/",
    env: process.env ?? [],
    rootfs,
    binds: bindMounts(spec),
    view: hostView,
  });
  if (program === null) return false;
  const rewritten = rewriteExecProcess(process, program.containerPath, {
    containerOptions: JSON.parse(stored),
    host: discoverHost(),
  });
  writeJson(processFile, rewritten);
  return true;
}

/** Replaces `path` with `value` as JSON, atomically. */
function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.dhyve-oci-${Deno.pid}`;
  Deno.writeTextFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  Deno.renameSync(tmp, path);
}

/** Whether `path` is an executable regular file. */
function isExecutable(path: string): boolean {
  try {
    const stat = Deno.statSync(path);
    return stat.isFile && ((stat.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * The runc binary: `--runc PATH`, else `$DHYVE_OCI_RUNC`, else the first
 * `runc` on `PATH` that is not dhyve-oci itself.
 * @throws {OciError} (exit 69) when there is none.
 */
export function findRunc(invocation: RuncInvocation): string {
  const explicit = invocation.runcPath ?? Deno.env.get(RUNC_ENV);
  if (explicit !== undefined && explicit !== "") {
    if (!isExecutable(explicit)) {
      throw new OciError(
        `The runc binary "${explicit}" (from ${
          invocation.runcPath !== undefined ? "--runc" : RUNC_ENV
        }) ` +
          "is not an executable file: give the path of runc",
        EXIT_CODE.KVM_UNAVAILABLE,
      );
    }
    return explicit;
  }
  let self = "";
  try {
    self = Deno.realPathSync(join(dhyveRootDir(), "bin", "dhyve-oci"));
  } catch {
    // not installed from a checkout
  }
  // PATH, then the usual places: engines may start runtimes without a PATH,
  // and Deno then sets one of its own.
  const dirs = `${Deno.env.get("PATH") ?? ""}:${DEFAULT_PATH}`.split(":");
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "runc");
    if (!isExecutable(candidate)) continue;
    try {
      if (Deno.realPathSync(candidate) === self) continue;
    } catch {
      continue;
    }
    return candidate;
  }
  throw new OciError(
    `No runc found on PATH: install runc (apt-get install runc), or give its path with --runc PATH or ${RUNC_ENV}`,
    EXIT_CODE.KVM_UNAVAILABLE,
  );
}

/** One line on stderr, and one entry in runc's log file when the engine gave one. */
function reportError(message: string, invocation: RuncInvocation | null): void {
  try {
    Deno.stderr.writeSync(encoder.encode(`dhyve-oci: error: ${message}\n`));
  } catch {
    // stderr is gone
  }
  if (invocation?.logFile === undefined) return;
  try {
    Deno.writeTextFileSync(
      invocation.logFile,
      formatLogLine(invocation.logFormat, {
        level: "error",
        msg: `dhyve-oci: ${message}`,
        time: new Date(),
      }),
      { append: true, create: true },
    );
  } catch {
    // the log is best effort; stderr has the line
  }
}

/** Signals passed on to runc while it runs (e.g. `runc run` in the foreground). */
const FORWARDED: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGWINCH",
];

/** Runs runc with `args`, stdio inherited, and returns its exit status (128 + signal when killed). */
async function runRunc(runc: string, args: readonly string[]): Promise<number> {
  const child = new Deno.Command(runc, {
    args: [...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const listeners = FORWARDED.map((signal) => {
    const listener = (): void => {
      try {
        child.kill(signal);
      } catch {
        // runc has exited
      }
    };
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  try {
    const status = await child.status;
    if (status.signal !== null) return 128 + (signalNumber(status.signal) ?? 0);
    return status.code;
  } finally {
    for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** Linux signal numbers of the signals a runc child may die from. */
function signalNumber(signal: Deno.Signal): number | null {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGUSR1: 10,
    SIGSEGV: 11,
    SIGUSR2: 12,
    SIGPIPE: 13,
    SIGALRM: 14,
    SIGTERM: 15,
  };
  return numbers[signal] ?? null;
}

/** Runs dhyve-oci with `argv` and returns its exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let invocation: RuncInvocation | null = null;
  try {
    invocation = parseRuncArgs(argv);
    const runc = findRunc(invocation);
    if (invocation.bundle !== undefined) await prepareBundle(invocation.bundle);
    if (invocation.command === "exec") await prepareExec(runc, invocation);
    return await runRunc(runc, invocation.runcArgs);
  } catch (error) {
    if (error instanceof OciError) {
      reportError(error.message, invocation);
      return error.exitCode;
    }
    reportError(
      `Internal error, please report it: ${
        error instanceof Error ? error.stack ?? error.message : error
      }`,
      invocation,
    );
    return EXIT_CODE.INTERNAL;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
