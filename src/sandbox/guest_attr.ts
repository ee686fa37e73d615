/**
 * What a guest learns from stat, lstat, fstat and directory listings: host
 * metadata filtered by dhyve's policy (docs/security.md, "File metadata the
 * guest sees"), and the made-up metadata of virtual files and of the map's
 * own directories. Pure; like all of `sandbox/`, it never
 * imports KVM, FFI or `src/hypercall/`.
 * @module
 */

import { ATTR, S_IF } from "../file_attr.ts";
import { DT } from "./dirents.ts";
import type { HostStat } from "./host_fs.ts";

/** `st_dev` of everything the guest sees: one device, whatever the host has. */
export const GUEST_DEV = 0;
/** `st_blksize` reported for virtual files and map directories (uhyve's value). */
export const VIRTUAL_BLKSIZE = 4096;
/** How many files {@linkcode GuestInodes} remembers; past that, new files get unremembered numbers. */
export const MAX_REMEMBERED_INODES = 1 << 18;

/**
 * Inode numbers for the guest, handed out in the order the guest first sees
 * each file: 2, 3, 4, … (0 marks an empty slot in some tools, 1 is uhyve's
 * dummy). A host file is known by the host's (dev, ino), so hard links share
 * a number, and a virtual file or map directory by its guest path. The
 * numbers say nothing about the host's own inode or device numbers and mean
 * nothing outside their VM. Memory: one entry per file the guest has looked
 * at, at most {@linkcode MAX_REMEMBERED_INODES} (a guest that creates and
 * removes files in a loop cannot grow it without bound); after that a new file
 * gets a fresh number on every look, so only hard-link equality is lost.
 */
export class GuestInodes {
  readonly #numbers = new Map<string, number>();
  #next = 2;

  /** The guest's number for host file `ino` on host device `dev`. */
  host(dev: number, ino: number): number {
    return this.#number(`h:${dev}:${ino}`);
  }

  /** The guest's number for the host file a host stat describes. */
  ofHost(info: HostStat): number {
    return this.host(info.dev ?? 0, info.ino ?? 0);
  }

  /** The guest's number for a virtual file or map directory at a clean guest path. */
  virtual(cleanPath: string): number {
    return this.#number(`v:/${cleanPath}`);
  }

  #number(key: string): number {
    const known = this.#numbers.get(key);
    if (known !== undefined) return known;
    const fresh = this.#next++;
    if (this.#numbers.size < MAX_REMEMBERED_INODES) this.#numbers.set(key, fresh);
    return fresh;
  }
}

function fillTime(out: Float64Array, secIndex: number, when: Date | null | undefined): void {
  const ms = when?.getTime() ?? 0;
  const sec = Math.floor(ms / 1000);
  out[secIndex] = sec;
  out[secIndex + 1] = Math.round((ms - sec * 1000) * 1e6);
}

/**
 * Fills `out` (an ATTR array) from a host stat under the guest policy: type
 * and permission bits, link count, size, block size, blocks and times come
 * from the host; `st_dev` is {@linkcode GUEST_DEV}, `st_ino` is `ino` (from
 * {@linkcode GuestInodes}), and uid, gid and rdev are 0.
 */
export function fillHostAttr(out: Float64Array, info: HostStat, ino: number): void {
  out.fill(0);
  const mode = info.mode ?? (info.isDirectory ? S_IF.DIR | 0o755 : S_IF.REG | 0o644);
  out[ATTR.DEV] = GUEST_DEV;
  out[ATTR.INO] = ino;
  out[ATTR.NLINK] = info.nlink ?? 1;
  out[ATTR.MODE] = mode;
  out[ATTR.SIZE] = info.size;
  out[ATTR.BLKSIZE] = info.blksize ?? VIRTUAL_BLKSIZE;
  out[ATTR.BLOCKS] = info.blocks ?? Math.ceil(info.size / 512);
  fillTime(out, ATTR.ATIME_SEC, info.atime);
  fillTime(out, ATTR.MTIME_SEC, info.mtime);
  fillTime(out, ATTR.CTIME_SEC, info.ctime);
}

/** Fills `out` for something that exists only in the map. */
function fillVirtual(
  out: Float64Array,
  how: { mode: number; nlink: number; size: number },
  ino: number,
): void {
  out.fill(0);
  out[ATTR.DEV] = GUEST_DEV;
  out[ATTR.INO] = ino;
  out[ATTR.NLINK] = how.nlink;
  out[ATTR.MODE] = how.mode;
  out[ATTR.SIZE] = how.size;
  out[ATTR.BLKSIZE] = VIRTUAL_BLKSIZE;
  out[ATTR.BLOCKS] = Math.ceil(how.size / 512);
}

/** Fills `out` for a virtual (in-memory, read-only) file: a regular file, mode 0444, as uhyve. */
export function fillVirtualFileAttr(out: Float64Array, size: number, ino: number): void {
  fillVirtual(out, { mode: S_IF.REG | 0o444, nlink: 1, size }, ino);
}

/** Fills `out` for a directory of the map itself: mode 0755, two links, as uhyve. */
export function fillMapDirAttr(out: Float64Array, ino: number): void {
  fillVirtual(out, { mode: S_IF.DIR | 0o755, nlink: 2, size: 0 }, ino);
}

/** The `d_type` of a host entry from its `lstat`. */
export function direntType(info: HostStat): number {
  if (info.isSymlink === true) return DT.LNK;
  if (info.isDirectory) return DT.DIR;
  if (info.isFile) return DT.REG;
  switch ((info.mode ?? 0) & S_IF.MASK) {
    case S_IF.FIFO:
      return DT.FIFO;
    case S_IF.CHR:
      return DT.CHR;
    case S_IF.BLK:
      return DT.BLK;
    case S_IF.SOCK:
      return DT.SOCK;
    default:
      return DT.UNKNOWN;
  }
}
