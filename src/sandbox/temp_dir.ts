/**
 * The per-VM temp directory and its bookkeeping: made on first need, every
 * temp file's size as far as the guest's writes went (for `maxTempBytes`),
 * the temp-entry limit, temp directories the guest makes, and removal of the
 * whole tree at the end. Host I/O goes through `host_fs.ts` only; like all of
 * `sandbox/`, it never imports KVM, FFI or `src/hypercall/`.
 * @module
 */

import * as posix from "../posix_path.ts";
import { ERRNO } from "../errno.ts";
import { cleanGuestPath } from "../guest_path.ts";
import { logger } from "../log.ts";
import type { FileMap } from "./file_map.ts";
import { type FailureReporter, hostErrno } from "./host_errno.ts";
import type { HostFs } from "./host_fs.ts";

const log = logger("sandbox");

/** Prefix of the per-VM temp directory's name. */
export const TEMP_DIR_PREFIX = "dhyve-";

/**
 * Most temp files one guest may have at once (beyond → ENOSPC). Each costs an
 * inode and a map entry even when empty, which `maxTempBytes` does not see.
 */
export const MAX_TEMP_FILES = 1024;

/** Options of {@linkcode TempDir}. */
export interface TempDirOptions {
  /** The host file system. */
  fs: HostFs;
  /** The parent of the temp directory (`undefined`: the OS temp directory). */
  parent: string | undefined;
  /** Most bytes all temp files may hold together (`Infinity`: no limit). */
  maxBytes: number;
  /** −errno for a thrown host error (the sandbox's, which warns once per missing flag). */
  fail: FailureReporter;
}

/**
 * One VM's temp space. Sizes are tracked per host path; a file the guest
 * unlinked while an fd still held it keeps counting until its last close,
 * because its blocks stay on disk until then.
 */
export class TempDir {
  readonly #fs: HostFs;
  readonly #parent: string | undefined;
  readonly #maxBytes: number;
  readonly #fail: FailureReporter;
  /** Temp file host path → its size as far as the guest's writes went. */
  readonly #sizes = new Map<string, number>();
  /** Temp files the guest unlinked while an fd still held them (their blocks stay used). */
  readonly #unlinked = new Set<string>();
  #bytes = 0;
  /** Directories the guest made in temp space (never removed before the VM ends). */
  #dirs = 0;
  #path: string | undefined;

  /** Sets up the bookkeeping; nothing on the host is touched until the guest acts. */
  constructor(options: TempDirOptions) {
    this.#fs = options.fs;
    this.#parent = options.parent;
    this.#maxBytes = options.maxBytes;
    this.#fail = options.fail;
  }

  /** The temp directory, once made. */
  get path(): string | undefined {
    return this.#path;
  }

  /** The parent of the temp directory, as given. */
  get parent(): string | undefined {
    return this.#parent;
  }

  /** Whether writes to temp files are limited (`maxBytes` is finite). */
  get limited(): boolean {
    return this.#maxBytes !== Infinity;
  }

  /** Whether the guest has as many temp files and directories as it may have. */
  get full(): boolean {
    return this.#sizes.size + this.#dirs >= MAX_TEMP_FILES;
  }

  /**
   * Makes the temp directory now (for a Landlock rule that names it): its
   * path, or −errno. No permission warning: a failure here is not the guest's
   * doing, and the guest's first O_CREAT warns.
   */
  prepare(): string | number {
    try {
      return this.#make();
    } catch (error) {
      return -hostErrno(error);
    }
  }

  /** A fresh host path inside the temp directory (made if needed), or −errno. */
  newEntry(): string | number {
    let dir: string;
    try {
      dir = this.#make();
    } catch (error) {
      return this.#fail(error, this.#parent);
    }
    return posix.join(dir, crypto.randomUUID());
  }

  /**
   * Makes a temp directory for the unmapped guest `path` whose parent is a
   * directory of `map`, and maps it there until the VM ends: 0 or −errno.
   */
  mkdir(map: FileMap, path: string): number {
    const clean = cleanGuestPath(path);
    const parent = map.resolve(posix.dirname(`/${clean}`));
    if (parent.kind === "none") return -ERRNO.ENOENT;
    if (parent.kind !== "directory") return -ERRNO.ENOTDIR;
    if (this.full) return -ERRNO.ENOSPC;
    const hostPath = this.newEntry();
    if (typeof hostPath === "number") return hostPath;
    try {
      this.#fs.mkdir(hostPath);
    } catch (error) {
      return this.#fail(error, hostPath);
    }
    if (!map.insertTemp(clean, hostPath)) {
      try {
        this.#fs.remove(hostPath);
      } catch {
        // the directory goes with the temp dir at the end anyway
      }
      return -ERRNO.EEXIST;
    }
    this.#dirs++;
    return 0;
  }

  /** Counts a directory the guest made inside a temp directory. */
  addDir(): void {
    this.#dirs++;
  }

  /** Whether `hostPath` is a temp file already counted. */
  has(hostPath: string): boolean {
    return this.#sizes.has(hostPath);
  }

  /** The largest size temp file `hostPath` may reach with the other temp files as they are. */
  limitFor(hostPath: string): number {
    return this.#maxBytes - (this.#bytes - (this.#sizes.get(hostPath) ?? 0));
  }

  /** Records temp file `hostPath`'s size; `undefined` stops counting it. */
  setSize(hostPath: string, size: number | undefined): void {
    this.#bytes -= this.#sizes.get(hostPath) ?? 0;
    if (size === undefined) {
      this.#sizes.delete(hostPath);
    } else {
      this.#sizes.set(hostPath, size);
      this.#bytes += size;
    }
  }

  /** The guest unlinked temp file `hostPath`; an open fd keeps its blocks until its last close. */
  unlinked(hostPath: string, open: boolean): void {
    if (open) this.#unlinked.add(hostPath);
    else this.setSize(hostPath, undefined);
  }

  /** Stops counting an unlinked temp file once no fd holds it (`open` says whether one does). */
  release(hostPath: string, open: (hostPath: string) => boolean): void {
    if (this.#unlinked.has(hostPath) && !open(hostPath)) {
      this.#unlinked.delete(hostPath);
      this.setSize(hostPath, undefined);
    }
  }

  /** Removes the temp directory with everything in it (errors are logged). Idempotent. */
  dispose(): void {
    const dir = this.#path;
    if (dir === undefined) return;
    this.#path = undefined;
    try {
      this.#fs.removeTree(dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        log.warn`Cannot remove the temp directory ${dir}: ${String(error)}`;
      }
    }
  }

  /** The temp directory, made on first need; throws the host's error. */
  #make(): string {
    this.#path ??= this.#fs.makeTempDir(this.#parent, TEMP_DIR_PREFIX);
    return this.#path;
  }
}
