/**
 * Which program a container starts, and whether dhyve should run it: the
 * resolution of `process.args[0]` inside the container's root (its `PATH`,
 * its cwd, symlinks confined to the root as in a chroot, bind mounts), and
 * the test for a Hermit kernel (ELF with OSABI 0xFF, checked by dhyve's own
 * loader) or a Hermit image (gzip). Pure: file access goes through the
 * {@linkcode RootView} the caller passes.
 * @module
 */

import { isAbsolute, join, normalize } from "node:path/posix";
import { EXIT_CODE } from "../exit_codes.ts";
import { ImageFormatError } from "../loader/errors.ts";
import { parseKernel } from "../loader/elf.ts";
import { isHermitImage } from "../loader/hermit_image.ts";
import { OciError } from "./errors.ts";

/** The file-system calls the resolution needs, on host paths. */
export interface RootView {
  /** `lstat`: null when the path does not exist. */
  lstat(hostPath: string): { isSymlink: boolean; isFile: boolean } | null;
  /** `readlink`. */
  readlink(hostPath: string): string;
}

/** A bind mount as far as program resolution cares. */
export interface BindMount {
  /** Path inside the container. */
  readonly destination: string;
  /** Path on the host. */
  readonly source: string;
}

/** Where a container path lives. */
export interface ResolvedProgram {
  /** The path inside the container, with symlinks resolved. */
  readonly containerPath: string;
  /** The same file on the host (in the rootfs or a bind mount's source). */
  readonly hostPath: string;
}

/** runc's PATH when the container's environment has none. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Most symlinks followed while resolving one path (Linux's own limit). */
const MAX_SYMLINKS = 40;

/** The host path of container path `path` (absolute, normalised, no symlinks left). */
function hostPathOf(path: string, rootfs: string, binds: readonly BindMount[]): string {
  let best: BindMount | undefined;
  for (const bind of binds) {
    const dest = normalize(bind.destination);
    if (path === dest || path.startsWith(dest === "/" ? "/" : `${dest}/`)) {
      if (best === undefined || dest.length > normalize(best.destination).length) best = bind;
    }
  }
  if (best === undefined) return join(rootfs, path);
  return join(best.source, path.slice(normalize(best.destination).length));
}

/**
 * Resolves container path `path` component by component: a symlink's target
 * is read on the host and taken relative to the container's root, so that
 * `..` and absolute links never leave it. Null when it does not exist.
 */
export function resolveInRoot(
  path: string,
  options: { rootfs: string; binds: readonly BindMount[]; view: RootView },
): ResolvedProgram | null {
  const { rootfs, binds, view } = options;
  const pending = normalize(`/${path}`).split("/").filter((part) => part !== "");
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const containerPath = `/${[...done, part].join("/")}`;
    const hostPath = hostPathOf(containerPath, rootfs, binds);
    const stat = view.lstat(hostPath);
    if (stat === null) return null;
    if (!stat.isSymlink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) return null;
    const target = view.readlink(hostPath);
    if (target.startsWith("/")) done.length = 0;
    pending.unshift(...target.split("/").filter((p) => p !== ""));
  }
  const containerPath = `/${done.join("/")}`;
  return { containerPath, hostPath: hostPathOf(containerPath, rootfs, binds) };
}

/**
 * Finds the file runc will execute for `args0`: a path (relative to `cwd`)
 * when it holds a slash, else the first regular file of that name on the
 * container's `PATH` (from `env`). Null when there is none.
 */
export function findProgram(
  args0: string,
  options: {
    cwd: string;
    env: readonly string[];
    rootfs: string;
    binds: readonly BindMount[];
    view: RootView;
  },
): ResolvedProgram | null {
  const { cwd, env, ...root } = options;
  function regularFile(path: string): ResolvedProgram | null {
    const found = resolveInRoot(path, root);
    if (found === null) return null;
    return root.view.lstat(found.hostPath)?.isFile ? found : null;
  }
  if (args0.includes("/")) return regularFile(isAbsolute(args0) ? args0 : join(cwd, args0));
  const pathVar = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  for (const dir of pathVar.split(":")) {
    if (dir === "") continue;
    const found = regularFile(join(isAbsolute(dir) ? dir : join(cwd, dir), args0));
    if (found !== null) return found;
  }
  return null;
}

/** What a program file is, for the runtime's purpose. */
export type ProgramKind = "hermit-elf" | "hermit-image" | "other";

/** ELF `e_ident[EI_OSABI]` of a Hermit kernel (STANDALONE). */
const ELFOSABI_STANDALONE = 0xff;

/**
 * Tells from a file's first bytes whether dhyve should run it: an ELF with
 * OSABI 0xFF (Hermit kernels set it; Linux programs do not), a Hermit image
 * (gzip), or anything else, which runc runs as it is.
 */
export function programKind(head: Uint8Array): ProgramKind {
  if (head.length >= 8 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c) {
    return head[3] === 0x46 && head[7] === ELFOSABI_STANDALONE ? "hermit-elf" : "other";
  }
  return isHermitImage(head) ? "hermit-image" : "other";
}

/**
 * Checks a Hermit ELF with dhyve's loader, so that a kernel dhyve cannot run
 * is refused at `create` with the loader's reason.
 * @throws {OciError} (exit 65) naming the file and what is wrong.
 */
export function checkHermitKernel(bytes: Uint8Array, containerPath: string): void {
  try {
    parseKernel(bytes);
  } catch (error) {
    if (error instanceof ImageFormatError) {
      throw new OciError(
        `"${containerPath}" is not a Hermit kernel dhyve can run: ${error.message}`,
        EXIT_CODE.BAD_KERNEL,
        { cause: error },
      );
    }
    throw error;
  }
}
