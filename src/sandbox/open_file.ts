/**
 * What a guest fd holds (a host file, a virtual file or a directory) and the
 * per-fd operations that need nothing else from the sandbox: reads, writes
 * and seeks on one open entry, each returning a count or offset (≥ 0) or
 * −errno. Like all of `sandbox/`, it never imports KVM, FFI or
 * `src/hypercall/`.
 * @module
 */

import { ERRNO } from "../errno.ts";
import type { DirListing } from "./dirents.ts";
import {
  fillHostAttr,
  fillMapDirAttr,
  fillVirtualFileAttr,
  type GuestInodes,
} from "./guest_attr.ts";
import type { FailureReporter } from "./host_errno.ts";
import { type HostFile, OPEN_FLAGS } from "./host_fs.ts";

const { SEEK_SET, SEEK_CUR, SEEK_END } = OPEN_FLAGS;

/** A guest fd on a host file (not a directory). */
export interface HostOpenFile {
  readonly kind: "host";
  readonly file: HostFile;
  readonly hostPath: string;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly append: boolean;
  /** A regular file: reads loop until the buffer is full or EOF. */
  readonly regular: boolean;
  /** A temp file of this VM (counts against `maxTempBytes`; `--io-mode` applies). */
  readonly temp: boolean;
  /** fsync after every write (`--io-mode` sync, temp files only). */
  readonly sync: boolean;
}

/** A guest fd on a virtual (in-memory, read-only) file. */
export interface VirtualOpenFile {
  readonly kind: "virtual";
  readonly bytes: Uint8Array;
  /** Its clean guest path (for its inode number). */
  readonly cleanPath: string;
  offset: number;
}

/** A guest fd on a directory of the map or a host directory inside a mapping. */
export interface DirectoryOpenFile {
  readonly kind: "directory";
  /** The open host directory (for fstat), or null for a directory of the map. */
  readonly file: HostFile | null;
  /** Its host path, or "" for a directory of the map. */
  readonly hostPath: string;
  /** Its clean guest path. */
  readonly cleanPath: string;
  /** The entries, read at open and again at each rewind to 0. */
  listing: DirListing;
  /** Byte cursor into the listing's record stream. */
  offset: number;
}

/** One guest fd's state. */
export type OpenFile = HostOpenFile | VirtualOpenFile | DirectoryOpenFile;

/** Reads a virtual file from its offset into `into`: the count, 0 at or past the end. */
export function readVirtual(entry: VirtualOpenFile, into: Uint8Array): number {
  const start = Math.min(entry.offset, entry.bytes.length);
  const count = Math.min(into.length, entry.bytes.length - start);
  if (count <= 0) return 0; // at or past the end: the offset stays
  into.set(entry.bytes.subarray(start, start + count));
  entry.offset = start + count;
  return count;
}

/**
 * Reads a host file into `into`; a regular file until `into` is full or EOF.
 * A failure after some bytes returns the count so far, before any −errno.
 */
export function readHost(entry: HostOpenFile, into: Uint8Array, fail: FailureReporter): number {
  if (!entry.readable) return -ERRNO.EBADF;
  if (into.length === 0) return 0;
  let done = 0;
  try {
    do {
      const n = entry.file.readSync(done === 0 ? into : into.subarray(done));
      if (n === null || n === 0) break;
      done += n;
    } while (entry.regular && done < into.length);
    return done;
  } catch (error) {
    return done > 0 ? done : fail(error, entry.hostPath);
  }
}

/**
 * Writes all of `data` to a host file, looping over short writes, then
 * fsyncs when the entry asks for it. A failure after some bytes returns the
 * count so far, before any −errno.
 */
export function writeHost(entry: HostOpenFile, data: Uint8Array, fail: FailureReporter): number {
  let done = 0;
  try {
    while (done < data.length) {
      const n = entry.file.writeSync(done === 0 ? data : data.subarray(done));
      if (n <= 0) throw new Deno.errors.WriteZero("Host write wrote nothing");
      done += n;
    }
    if (entry.sync) entry.file.syncSync();
  } catch (error) {
    if (done === 0) return fail(error, entry.hostPath);
  }
  return done;
}

/**
 * Fills `out` (an ATTR array) with an open entry's metadata: made up for a
 * virtual file or map directory, a fresh host fstat filtered by
 * `guest_attr.ts` otherwise. Returns 0, or −errno from `fail`.
 */
export function fstatEntry(
  out: Float64Array,
  entry: OpenFile,
  inodes: GuestInodes,
  fail: FailureReporter,
): number {
  if (entry.kind === "virtual") {
    fillVirtualFileAttr(out, entry.bytes.length, inodes.virtual(entry.cleanPath));
    return 0;
  }
  if (entry.kind === "directory" && entry.file === null) {
    fillMapDirAttr(out, inodes.virtual(entry.cleanPath));
    return 0;
  }
  try {
    const info = entry.file!.statSync();
    fillHostAttr(out, info, inodes.ofHost(info));
    return 0;
  } catch (error) {
    return fail(error, entry.hostPath);
  }
}

/**
 * lseek on a virtual file: the new offset, or EINVAL when it would be
 * negative or beyond ±2^53. `whence` and `offset` are already checked.
 */
export function seekVirtual(entry: VirtualOpenFile, offset: number, whence: number): number {
  const base = whence === SEEK_SET ? 0 : whence === SEEK_CUR ? entry.offset : entry.bytes.length;
  const to = base + offset;
  if (to < 0 || !Number.isSafeInteger(to)) return -ERRNO.EINVAL;
  entry.offset = to;
  return to;
}

/**
 * lseek on a directory fd: SEEK_SET or SEEK_CUR to a cursor ≥ 0 (SEEK_END
 * and negative results are EINVAL, as uhyve). A seek to 0 takes a fresh
 * listing from `relist`, as `rewinddir` does; if that throws, the host's
 * error goes to `fail` and the fd is left as it was.
 */
export function seekDirectory(
  entry: DirectoryOpenFile,
  offset: number,
  whence: number,
  relist: (entry: DirectoryOpenFile) => DirListing,
  fail: FailureReporter,
): number {
  if (whence === SEEK_END) return -ERRNO.EINVAL;
  const to = whence === SEEK_SET ? offset : entry.offset + offset;
  if (to < 0 || !Number.isSafeInteger(to)) return -ERRNO.EINVAL;
  if (to === 0) {
    try {
      entry.listing = relist(entry);
    } catch (error) {
      return fail(error, entry.hostPath);
    }
  }
  entry.offset = to;
  return to;
}
