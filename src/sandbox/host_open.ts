/**
 * Opening host files for the guest: a file or directory inside a mapping, or
 * a fresh temp file for an unmapped path, turned into the fd entry the
 * sandbox then numbers. Every failure is −errno, never a throw. Host I/O goes
 * through `host_fs.ts` only; like all of `sandbox/`, it never imports KVM,
 * FFI or `src/hypercall/`.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { cleanGuestPath } from "../guest_path.ts";
import type { FileMap } from "./file_map.ts";
import type { GuestInodes } from "./guest_attr.ts";
import type { FailureReporter } from "./host_errno.ts";
import { type HostFile, type HostFs, type OpenPlan, tempFileOptions } from "./host_fs.ts";
import { hostListing } from "./listings.ts";
import type { OpenFile } from "./open_file.ts";
import type { TempDir } from "./temp_dir.ts";

/** What {@linkcode HostOpener} works with: the sandbox's own parts, shared, not copied. */
export interface HostOpenerParts {
  map: FileMap;
  fs: HostFs;
  inodes: GuestInodes;
  temp: TempDir;
  /** fsync temp files after every write (`--io-mode` sync). */
  syncTemp: boolean;
  fail: FailureReporter;
}

/** How a host path inside a mapping is opened. */
export interface HostOpenHow {
  /** The clean guest path (a directory fd's inode numbers and rewinds need it). */
  cleanPath: string;
  /** Inside a temp directory of this VM: counts against the temp limits. */
  temp: boolean;
  /** Options for a second try that creates the file, or undefined in a `:ro` mapping. */
  createFallback: Deno.OpenOptions | undefined;
  /** The open truncates (O_TRUNC): a temp file's size becomes 0. */
  truncates: boolean;
}

/** Opens host files for the sandbox; each method gives an fd entry or −errno. */
export class HostOpener {
  readonly #parts: HostOpenerParts;

  /** An opener over the sandbox's parts. */
  constructor(parts: HostOpenerParts) {
    this.#parts = parts;
  }

  /**
   * Opens `hostPath` (inside a mapping) as `plan` says; when it does not
   * exist and the plan may create it, tries again with `how.createFallback`.
   */
  openHost(hostPath: string, plan: OpenPlan, how: HostOpenHow): OpenFile | number {
    const { fs, fail } = this.#parts;
    let file: HostFile;
    try {
      file = fs.open(hostPath, plan.options);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || plan.createFallback === undefined) {
        return fail(error, hostPath);
      }
      if (how.createFallback === undefined) return -ERRNO.EROFS; // O_CREAT in a `:ro` mapping
      try {
        file = fs.open(hostPath, how.createFallback);
      } catch (again) {
        return fail(again, hostPath);
      }
    }
    return this.#entry(file, hostPath, plan, how);
  }

  /** A fresh file in the per-VM temp directory, mapped at the unmapped guest `path`. */
  createTemp(path: string, plan: OpenPlan, mode: number): OpenFile | number {
    const { map, fs, temp, fail } = this.#parts;
    if (temp.full) return -ERRNO.ENOSPC;
    const hostPath = temp.newEntry();
    if (typeof hostPath === "number") return hostPath;
    if (!map.insertTemp(path, hostPath)) return -ERRNO.ENOTDIR;
    let file: HostFile;
    try {
      file = fs.open(hostPath, tempFileOptions(plan, mode));
    } catch (error) {
      map.remove(path);
      return fail(error, hostPath);
    }
    temp.setSize(hostPath, 0);
    return this.#entry(file, hostPath, plan, {
      cleanPath: cleanGuestPath(path),
      temp: true,
      createFallback: undefined,
      truncates: false,
    });
  }

  /** The entry for a file just opened, from its stat; closes it on −errno. */
  #entry(file: HostFile, hostPath: string, plan: OpenPlan, how: HostOpenHow): OpenFile | number {
    const { fs, inodes, temp, fail } = this.#parts;
    let regular: boolean;
    try {
      const info = file.statSync();
      if (plan.directory && !info.isDirectory) {
        file.close();
        return -ERRNO.ENOTDIR;
      }
      // Write access or O_CREAT on a directory is EISDIR, as on Linux.
      const creates = plan.options.create === true || plan.createFallback !== undefined;
      if (info.isDirectory && (plan.writable || creates)) {
        file.close();
        return -ERRNO.EISDIR;
      }
      if (info.isDirectory) {
        // A listing that fails closes the file below, like any failure here.
        const listing = hostListing(fs, inodes, hostPath);
        return { kind: "directory", file, hostPath, cleanPath: how.cleanPath, listing, offset: 0 };
      }
      regular = info.isFile;
      // A file the guest created inside a temp directory counts like any temp file.
      if (how.temp && !temp.has(hostPath)) temp.setSize(hostPath, info.size);
    } catch (error) {
      try {
        file.close();
      } catch {
        // already failing: the first error is the one to report
      }
      return fail(error, hostPath);
    }
    if (how.temp && how.truncates) temp.setSize(hostPath, 0);
    return {
      kind: "host",
      file,
      hostPath,
      readable: plan.readable,
      writable: plan.writable,
      append: plan.options.append === true,
      regular,
      temp: how.temp,
      sync: how.temp && this.#parts.syncTemp,
    };
  }
}
