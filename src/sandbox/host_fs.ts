/**
 * The host file system as the guest may reach it. This is the only module
 * that calls `Deno.*` file APIs for guest I/O (open, read, write, seek, sync,
 * remove, realPath, lstat, stat, mkdir, readDir, makeTempDir, stdin), so Deno checks
 * `--allow-read`/`--allow-write` on every call; nothing here uses libc. It also
 * owns the pure parts next to those calls: Hermit open flags → Deno open
 * options, and the symlink containment check. Like all of `sandbox/`, it
 * never imports KVM, FFI (`src/kvm.ts`, `src/host/libc.ts`) or `src/hypercall/`.
 * @module
 */

import * as posix from "../posix_path.ts";
import { ERRNO } from "../errno.ts";

/** Hermit open flags (Linux x86_64 numbering) and whence values. */
export const OPEN_FLAGS = {
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_ACCMODE: 3,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_DIRECTORY: 0o200000,
  /** Every flag dhyve honours (uhyve's ALLOWED_OPEN_FLAGS); other bits are dropped. */
  ALLOWED: 0x106c3,
  SEEK_SET: 0,
  SEEK_CUR: 1,
  SEEK_END: 2,
} as const;

/**
 * An open host file, as the sandbox uses it. `Deno.FsFile` satisfies it; tests
 * pass fakes (short writes, failing disks).
 */
export interface HostFile {
  /** Reads into `p`; the count, or `null` at end of file. */
  readSync(p: Uint8Array): number | null;
  /** Writes some of `p`; the count. */
  writeSync(p: Uint8Array): number;
  /** Moves the offset; the new offset. */
  seekSync(offset: number, whence: Deno.SeekMode): number;
  /** Flushes data and metadata to the device. */
  syncSync(): void;
  /** What the open file is (`fstat`). */
  statSync(): HostStat;
  /** Closes the file. */
  close(): void;
}

/** What an `lstat` says about a path. */
export interface LinkInfo {
  /** The path itself is a directory (not a link to one). */
  readonly isDirectory: boolean;
  /** The path itself is a symbolic link. */
  readonly isSymlink: boolean;
}

/**
 * What `stat`/`lstat`/`fstat` say about a host file: `Deno.FileInfo`'s
 * fields. The numeric ones are optional so that test fakes may leave them out
 * (they read as 0).
 */
export interface HostStat {
  /** A regular file. */
  readonly isFile: boolean;
  /** A directory. */
  readonly isDirectory: boolean;
  /** A symbolic link (only from an `lstat`). */
  readonly isSymlink?: boolean;
  /** Size in bytes. */
  readonly size: number;
  /** `st_dev`. */
  readonly dev?: number;
  /** `st_ino`. */
  readonly ino?: number | null;
  /** `st_mode`: type and permission bits. */
  readonly mode?: number | null;
  /** `st_nlink`. */
  readonly nlink?: number | null;
  /** `st_uid`. */
  readonly uid?: number | null;
  /** `st_gid`. */
  readonly gid?: number | null;
  /** `st_rdev`. */
  readonly rdev?: number | null;
  /** `st_blksize`. */
  readonly blksize?: number | null;
  /** `st_blocks` (512-byte units). */
  readonly blocks?: number | null;
  /** Last access. */
  readonly atime?: Date | null;
  /** Last modification. */
  readonly mtime?: Date | null;
  /** Last status change. */
  readonly ctime?: Date | null;
}

/** One name in a host directory, as `Deno.readDirSync` gives it. */
export interface HostDirEntry {
  /** The name (no `/`). */
  readonly name: string;
}

/**
 * The host file operations the sandbox needs. Every method throws what the
 * `Deno.*` call throws (`Deno.errors.*`), which `host_errno.ts` translates.
 */
export interface HostFs {
  /** `Deno.openSync`. */
  open(path: string, options: Deno.OpenOptions): HostFile;
  /** `Deno.removeSync`, not recursive (a file, a link or an empty directory). */
  remove(path: string): void;
  /** `Deno.removeSync` with `recursive: true`. */
  removeTree(path: string): void;
  /** `Deno.realPathSync`: the absolute path with every symlink resolved. */
  realPath(path: string): string;
  /** `Deno.lstatSync`, reduced to what the containment check needs. */
  lstat(path: string): LinkInfo;
  /** `Deno.statSync` (follows links): is it a directory. */
  isDirectory(path: string): boolean;
  /** `Deno.statSync` (`follow`) or `Deno.lstatSync`. */
  stat(path: string, follow: boolean): HostStat;
  /** `Deno.mkdirSync`, not recursive, mode 0777 less the umask (as uhyve's `mkdir`). */
  mkdir(path: string): void;
  /** `Deno.readDirSync`: the names in a directory (without `.` and `..`). */
  readDir(path: string): HostDirEntry[];
  /** `Deno.makeTempDirSync`: a new mode-0700 directory under `parent` (default: the OS temp dir). */
  makeTempDir(parent: string | undefined, prefix: string): string;
  /** One `Deno.stdin.readSync`: the count, or `null` at end of input. */
  readStdin(into: Uint8Array): number | null;
}

/** The real host: `Deno.*` calls and nothing else. */
export const denoHostFs: HostFs = {
  open(path: string, options: Deno.OpenOptions): HostFile {
    return Deno.openSync(path, options);
  },
  remove(path: string): void {
    Deno.removeSync(path);
  },
  removeTree(path: string): void {
    Deno.removeSync(path, { recursive: true });
  },
  realPath(path: string): string {
    return Deno.realPathSync(path);
  },
  lstat(path: string): LinkInfo {
    const info = Deno.lstatSync(path);
    return { isDirectory: info.isDirectory, isSymlink: info.isSymlink };
  },
  isDirectory(path: string): boolean {
    return Deno.statSync(path).isDirectory;
  },
  stat(path: string, follow: boolean): HostStat {
    return follow ? Deno.statSync(path) : Deno.lstatSync(path);
  },
  mkdir(path: string): void {
    Deno.mkdirSync(path);
  },
  readDir(path: string): HostDirEntry[] {
    return Array.from(Deno.readDirSync(path));
  },
  makeTempDir(parent: string | undefined, prefix: string): string {
    return parent === undefined
      ? Deno.makeTempDirSync({ prefix })
      : Deno.makeTempDirSync({ dir: parent, prefix });
  },
  readStdin(into: Uint8Array): number | null {
    return Deno.stdin.readSync(into);
  },
};

/** How to open a host file for one guest open, from {@linkcode planOpen}. */
export interface OpenPlan {
  /** The guest may read through the fd. */
  readonly readable: boolean;
  /** The guest may write through the fd. */
  readonly writable: boolean;
  /** Options for the first `Deno.openSync`. */
  readonly options: Deno.OpenOptions;
  /**
   * O_CREAT with O_RDONLY: Deno cannot create without write access, so when
   * the read-only open finds nothing, the file is created with these options
   * instead (fresh, so the extra write access is harmless: the fd's
   * `writable` stays false).
   */
  readonly createFallback: Deno.OpenOptions | undefined;
  /** O_DIRECTORY: the open must find a directory (ENOTDIR otherwise). */
  readonly directory: boolean;
}

/**
 * Turns Hermit open flags (already masked with `OPEN_FLAGS.ALLOWED`) and a
 * creation mode into Deno open options; returns −errno for flags that can
 * never work: an access mode of 3, or O_DIRECTORY with O_CREAT (EINVAL).
 *
 * Choices (Deno has no flag-level `open`): O_DIRECTORY opens read-only and the
 * caller checks the result is a directory, so O_TRUNC never hits a file the
 * guest meant as a directory; O_TRUNC and O_APPEND count only with write
 * access (POSIX leaves O_TRUNC|O_RDONLY unspecified; Linux truncates); O_EXCL
 * without O_CREAT is ignored, as on Linux.
 */
export function planOpen(flags: number, mode: number): OpenPlan | number {
  const access = flags & OPEN_FLAGS.O_ACCMODE;
  if (access === OPEN_FLAGS.O_ACCMODE) return -ERRNO.EINVAL;
  const creat = (flags & OPEN_FLAGS.O_CREAT) !== 0;
  const directory = (flags & OPEN_FLAGS.O_DIRECTORY) !== 0;
  if (creat && directory) return -ERRNO.EINVAL;
  const readable = access !== OPEN_FLAGS.O_WRONLY;
  const writable = access !== OPEN_FLAGS.O_RDONLY;
  if (directory) {
    return { readable, writable, options: { read: true }, createFallback: undefined, directory };
  }
  const append = writable && (flags & OPEN_FLAGS.O_APPEND) !== 0;
  const truncate = writable && (flags & OPEN_FLAGS.O_TRUNC) !== 0;
  const createMode = mode & 0o7777;
  if (creat && (flags & OPEN_FLAGS.O_EXCL) !== 0) {
    return {
      readable,
      writable,
      options: { read: readable, write: true, append, createNew: true, mode: createMode },
      createFallback: undefined,
      directory,
    };
  }
  if (creat && !writable) {
    return {
      readable,
      writable,
      options: { read: true },
      createFallback: { read: true, write: true, createNew: true, mode: createMode },
      directory,
    };
  }
  const options: Deno.OpenOptions = creat
    ? { read: readable, write: true, append, truncate, create: true, mode: createMode }
    : { read: readable, write: writable, append, truncate };
  return { readable, writable, options, createFallback: undefined, directory };
}

/** Options to create a fresh temp file for an unmapped O_CREAT (always exclusive, as uhyve). */
export function tempFileOptions(plan: OpenPlan, mode: number): Deno.OpenOptions {
  const append = plan.options.append === true;
  return { read: plan.readable, write: true, append, createNew: true, mode: mode & 0o7777 };
}

/** `path` is `dir` or lies below it (both absolute and clean). */
export function isWithin(dir: string, path: string): boolean {
  if (path === dir) return true;
  return path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/**
 * Whether `path`, a lexical path inside the mapped host directory `base`,
 * still lies inside `base` once every symlink is resolved.
 *
 * The path need not exist (O_CREAT): the longest prefix that exists is
 * resolved with `realPath`, the missing rest appended, and the result compared
 * with `realPath(base)`. A dangling symlink on the way is refused (false),
 * since creating through it would land wherever it points. A missing `base`
 * throws `NotFound`; other `Deno.errors` (NotCapable, NotADirectory, ELOOP)
 * are thrown too, for the caller to translate.
 *
 * Deno has no `openat2(RESOLVE_BENEATH)`/O_NOFOLLOW, so the check and the
 * open that follows are two steps: a host process (never the guest, which
 * cannot make links) that swaps a component for a symlink in between could
 * still win that race. Deno's own permission check on the opened path stays.
 */
export function isConfined(fs: HostFs, base: string, path: string): boolean {
  const realBase = fs.realPath(base);
  let probe = path;
  const missing: string[] = [];
  for (;;) {
    let real: string;
    try {
      real = fs.realPath(probe);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || probe === base || probe === "/") throw error;
      if (isDanglingLink(fs, probe)) return false;
      missing.unshift(posix.basename(probe));
      probe = posix.dirname(probe);
      continue;
    }
    return isWithin(realBase, missing.length === 0 ? real : posix.join(real, ...missing));
  }
}

function isDanglingLink(fs: HostFs, path: string): boolean {
  try {
    return fs.lstat(path).isSymlink;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

/** What a mapped host path is, for the mount list (uhyve's rules, hermit-abi §6.6). */
export type HostPathKind =
  /** An existing directory (after following links). */
  | "directory"
  /** An existing non-directory. */
  | "file"
  /** Missing, but its parent directory exists (a file the guest may create). */
  | "missing"
  /** Missing, and so is its parent (or it cannot be examined). */
  | "invalid";

/** Classifies a host path for {@linkcode HostPathKind}; never throws. */
export function hostPathKind(path: string, fs: HostFs = denoHostFs): HostPathKind {
  try {
    return fs.isDirectory(path) ? "directory" : "file";
  } catch {
    try {
      return fs.isDirectory(posix.dirname(path)) ? "missing" : "invalid";
    } catch {
      return "invalid";
    }
  }
}
