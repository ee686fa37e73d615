/**
 * The file side of `dhyve-oci`'s rewrites: reads a bundle's `config.json` or
 * an `exec` process file, finds the program in the container's root, and
 * writes the rewritten spec back (`rewrite.ts` decides what). Loaded only for
 * `create`, `run` and `exec`, so that runc's other commands start fast.
 * @module
 */

import { isAbsolute, join } from "node:path/posix";
import { EXIT_CODE } from "../exit_codes.ts";
import { EXEC_OPTIONS_ANNOTATION } from "./annotations.ts";
import { OciError } from "./errors.ts";
import { discoverHost, warmModuleCache } from "./host.ts";
import {
  type BindMount,
  checkHermitKernel,
  findProgram,
  programKind,
  type ResolvedProgram,
  type RootView,
} from "./program.ts";
import { initPrefix, isBind, type OciSpec, rewriteExecProcess, rewriteSpec } from "./rewrite.ts";
import type { RuncInvocation } from "./runc_cli.ts";

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
    .filter((m) => m.source !== undefined && isBind(m))
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
  try {
    Deno.writeTextFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
    Deno.renameSync(tmp, path);
  } catch (error) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // never written
    }
    throw new OciError(`Cannot rewrite ${path}: ${describe(error)}`, EXIT_CODE.HOST_ERROR);
  }
}
