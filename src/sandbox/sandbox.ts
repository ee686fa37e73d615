/**
 * The sandbox the file hypercalls talk to: guest path + flags → guest fd
 * (files and directories), read/write/lseek/close/getdents/fstat on those
 * fds, and unlink/stat/lstat/mkdir by path, all synchronous, all returning a
 * number (≥ 0 result or −errno) and never throwing for anything a guest can
 * cause. It keeps the fences (the map, `:ro`, symlink containment) and the
 * fd table, and hands the rest to one module a job: `host_open.ts` (opening),
 * `open_file.ts` (per-fd reads, writes, seeks, fstat), `listings.ts`
 * (directory entries), `temp_dir.ts` (the per-VM temp directory and its
 * limits), `host_errno.ts` (errnos, once-per-flag permission warnings).
 * Host I/O goes through `host_fs.ts` only. Like all of `sandbox/`, it never
 * imports KVM, FFI (`src/kvm.ts`, `src/host/libc.ts`) or `src/hypercall/`.
 * @module
 */

import * as posix from "../posix_path.ts";
import { ERRNO } from "../errno.ts";
import { cleanGuestPath } from "../guest_path.ts";
import { logger } from "../log.ts";
import { DEFAULT_MAX_OPEN_FILES, FdTable } from "./fd_table.ts";
import type { DirListing } from "./dirents.ts";
import type { FileMap, Resolved } from "./file_map.ts";
import { fillHostAttr, fillMapDirAttr, fillVirtualFileAttr, GuestInodes } from "./guest_attr.ts";
import { type FailureReporter, failureReporter } from "./host_errno.ts";
import { denoHostFs, type HostFs, isConfined, OPEN_FLAGS, planOpen } from "./host_fs.ts";
import { HostOpener } from "./host_open.ts";
import { hostListing, mapListing } from "./listings.ts";
import {
  type DirectoryOpenFile,
  fstatEntry,
  type OpenFile,
  readHost,
  readVirtual,
  seekDirectory,
  seekVirtual,
  writeHost,
} from "./open_file.ts";
import { TempDir } from "./temp_dir.ts";

const log = logger("sandbox");

export { MAX_TEMP_FILES, TEMP_DIR_PREFIX } from "./temp_dir.ts";

/** Options of {@linkcode Sandbox}. */
export interface SandboxOptions {
  /** What the guest may see. The sandbox adds temp files to it and removes unlinked entries. */
  map: FileMap;
  /**
   * The parent of the per-VM temp directory (`--tempdir`). Default: the OS
   * temp directory (`$TMPDIR`, else `/tmp`), as `Deno.makeTempDirSync` picks it.
   */
  tempDir?: string;
  /** Most files the guest may hold open at once (default 1024); beyond → EMFILE. */
  maxOpenFiles?: number;
  /**
   * `--io-mode` for temp files only, as uhyve. Deno has no O_DIRECT or O_SYNC:
   * `sync` is emulated by an fsync (`syncSync`) after every write; `direct`
   * cannot be emulated and is ignored.
   */
  ioMode?: { direct?: boolean; sync?: boolean };
  /**
   * Told once per missing `--allow-*` flag when Deno refuses a guest file
   * operation (the guest gets EACCES). Default: a warning in the log.
   */
  warn?: (message: string) => void;
  /** Most bytes the guest's temp files may hold in total; beyond → ENOSPC. Default: no limit. */
  maxTempBytes?: number;
  /** The host file system (tests pass fakes). Default: `Deno.*`. */
  hostFs?: HostFs;
}

const { O_CREAT, O_EXCL, SEEK_SET, SEEK_CUR, SEEK_END } = OPEN_FLAGS;
const STDIN = 0;
const FIRST_FD = 3;

/**
 * The guest's view of the host file system. Create one per VM; call
 * {@linkcode Sandbox.dispose} (or `using`) on every exit path so that every
 * file is closed (data on disk) and the temp directory is gone.
 *
 * Choices where uhyve 0.8 leaves room or is wrong:
 * - fds are dhyve's own small numbers (lowest free from 3); fd 0 reads the
 *   process's stdin; fds 1 and 2 belong to the hypercall layer (here: read,
 *   write, lseek → EBADF/ESPIPE; close → 0).
 * - A symlink inside a mapped directory that resolves outside it, or a
 *   dangling one, gives EACCES. A mapped leaf that is itself a link is fine.
 * - Virtual files open whatever the flags (as uhyve) except O_CREAT|O_EXCL
 *   (EEXIST) and O_DIRECTORY (ENOTDIR); writes give EROFS; reads advance the
 *   offset; lseek to a negative offset gives EINVAL (Linux; uhyve: EOVERFLOW).
 * - Directories (of the map: the root and parents of mappings; or on the
 *   host, inside a mapping) open read-only as directory fds, with or without
 *   O_DIRECTORY (Linux; uhyve 0.9.1 wants O_DIRECTORY for map directories);
 *   write access or O_CREAT → EISDIR. A directory fd serves getdents (a
 *   snapshot of the entries, re-read at a seek to 0), fstat, lseek
 *   SET/CUR, close; read → EISDIR, write → EBADF. A map directory lists
 *   exactly what the map grants there; there are no `.` and `..` entries.
 * - stat/lstat/mkdir use open's fences (the map, `:ro`, symlink containment);
 *   the guest sees host metadata filtered by `guest_attr.ts`.
 * - O_CREAT below a virtual file → ENOTDIR (uhyve: EINVAL).
 * - `:ro` mappings: write access, O_CREAT|O_EXCL, creating, unlinking → EROFS.
 * - Reads of regular files loop until the buffer is full or EOF; writes loop
 *   until all is written. A failure after some bytes returns the count so far;
 *   a failure before any returns −errno.
 * - Guest access modes are enforced here: write on an O_RDONLY fd and read on
 *   an O_WRONLY fd give EBADF, whatever the host fd allows.
 * - unlink removes an exact leaf from the map before the host file (uhyve's
 *   order), but never touches a directory (EISDIR) and leaves the map alone
 *   when the host file does not exist (ENOENT).
 * - Offsets are JS numbers: an lseek offset or result beyond ±2^53 is EINVAL.
 * - Not thread-safe: the caller serves all file hypercalls from one thread.
 * - Hard links inside a mapped directory are not detected (only symlinks are).
 */
export class Sandbox {
  readonly #map: FileMap;
  readonly #fs: HostFs;
  readonly #fds: FdTable<OpenFile>;
  readonly #temp: TempDir;
  /** Opens host files and temp files into fd entries (`host_open.ts`). */
  readonly #opener: HostOpener;
  /** −errno for a thrown host error; warns once per missing `--allow-*` flag. */
  readonly #fail: FailureReporter;
  /** The guest's inode numbers (`guest_attr.ts`). */
  readonly #inodes = new GuestInodes();
  #disposed = false;

  /** Builds a sandbox; nothing on the host is touched until the guest acts. */
  constructor(options: SandboxOptions) {
    this.#map = options.map;
    this.#fs = options.hostFs ?? denoHostFs;
    this.#fds = new FdTable<OpenFile>({
      limit: options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES,
      first: FIRST_FD,
    });
    const maxTempBytes = options.maxTempBytes ?? Infinity;
    if (!(maxTempBytes >= 0)) {
      throw new RangeError(`Cannot create sandbox: maxTempBytes must be ≥ 0, got ${maxTempBytes}`);
    }
    this.#fail = failureReporter(options.warn ?? ((message: string): void => log.warn`${message}`));
    this.#temp = new TempDir({
      fs: this.#fs,
      parent: options.tempDir,
      maxBytes: maxTempBytes,
      fail: this.#fail,
    });
    this.#opener = new HostOpener({
      map: this.#map,
      fs: this.#fs,
      inodes: this.#inodes,
      temp: this.#temp,
      syncTemp: options.ioMode?.sync === true,
      fail: this.#fail,
    });
  }

  /** The file map this sandbox serves (and changes). */
  get map(): FileMap {
    return this.#map;
  }

  /** The per-VM temp directory, once the guest has created a file in it. */
  get tempDir(): string | undefined {
    return this.#temp.path;
  }

  /** The parent of the per-VM temp directory, as given (`undefined`: the OS temp dir). */
  get tempParent(): string | undefined {
    return this.#temp.parent;
  }

  /** How many guest fds are open. */
  get openFiles(): number {
    return this.#fds.size;
  }

  /**
   * Opens `path` for the guest: a new guest fd, or −errno. `flags` are Hermit
   * open flags (bits outside O_RDONLY…O_DIRECTORY are dropped), `mode` the
   * creation mode. An unmapped path with O_CREAT becomes a fresh file in the
   * per-VM temp directory, mapped at `path` for the rest of the run.
   */
  open(path: string, flags: number, mode: number): number {
    if (this.#disposed) return -ERRNO.EIO;
    if (path.includes("\0")) return -ERRNO.EINVAL;
    flags &= OPEN_FLAGS.ALLOWED;
    const plan = planOpen(flags, mode);
    if (typeof plan === "number") return plan;
    if (this.#fds.size >= this.#fds.limit) return -ERRNO.EMFILE;
    const creat = (flags & O_CREAT) !== 0;
    const excl = creat && (flags & O_EXCL) !== 0;
    const found = this.#map.resolve(path);
    switch (found.kind) {
      case "virtual":
        if (excl) return -ERRNO.EEXIST;
        if (plan.directory) return -ERRNO.ENOTDIR;
        return this.#fds.insert({
          kind: "virtual",
          bytes: found.bytes,
          cleanPath: cleanGuestPath(path),
          offset: 0,
        });
      case "directory":
        if (creat || plan.writable) return -ERRNO.EISDIR;
        return this.#openMapDirectory(cleanGuestPath(path));
      case "none":
        return creat ? this.#insert(this.#opener.createTemp(path, plan, mode)) : -ERRNO.ENOENT;
      case "host":
        if (found.readOnly && (plan.writable || excl)) return -ERRNO.EROFS;
        if (found.rest !== "") {
          const refused = this.#confine(found.base, found.hostPath);
          if (refused !== 0) return refused;
        }
        if (found.temp && creat && this.#temp.full) return -ERRNO.ENOSPC;
        return this.#insert(this.#opener.openHost(found.hostPath, plan, {
          cleanPath: cleanGuestPath(path),
          temp: found.temp,
          createFallback: found.readOnly ? undefined : plan.createFallback,
          truncates: plan.options.truncate === true,
        }));
    }
  }

  /** Closes a guest fd: 0, or −EBADF for an fd not open. fds 0–2 are left alone (0). */
  close(fd: number): number {
    if (fd >= 0 && fd < FIRST_FD) return 0;
    const entry = this.#fds.remove(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    if (entry.kind === "virtual") return 0;
    try {
      entry.file?.close();
      return 0;
    } catch (error) {
      return this.#fail(error, entry.hostPath);
    } finally {
      // An unlinked temp file stops counting at its last close.
      if (entry.kind === "host") {
        this.#temp.release(entry.hostPath, (hostPath) => this.#isOpen(hostPath));
      }
    }
  }

  /**
   * Reads into `into` (a view of guest memory; the host reads straight into
   * it). Returns the count (0 at EOF) or −errno. Regular files fill `into`
   * unless EOF comes first; fd 0 (stdin) returns what one read gives.
   */
  read(fd: number, into: Uint8Array): number {
    if (fd === STDIN) return this.#readStdin(into);
    const entry = this.#fds.get(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    if (entry.kind === "directory") return -ERRNO.EISDIR;
    if (entry.kind === "virtual") return readVirtual(entry, into);
    return readHost(entry, into, this.#fail);
  }

  /**
   * Writes all of `from` (a view of guest memory), looping over short writes.
   * Returns the count or −errno: EROFS for a virtual file, EBADF for an fd
   * not open for writing (fds 0–2 included: they are the hypercall layer's),
   * ENOSPC past `maxTempBytes`. A failure after some bytes returns the count.
   */
  write(fd: number, from: Uint8Array): number {
    const entry = this.#fds.get(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    if (entry.kind === "virtual") return -ERRNO.EROFS;
    if (entry.kind === "directory") return -ERRNO.EBADF; // never open for writing, as on Linux
    if (!entry.writable) return -ERRNO.EBADF;
    let data = from;
    let start = 0;
    let size = 0;
    const quota = entry.temp && this.#temp.limited;
    if (quota) {
      try {
        size = entry.file.statSync().size;
        start = entry.append ? size : entry.file.seekSync(0, SEEK_CUR);
      } catch (error) {
        return this.#fail(error, entry.hostPath);
      }
      const limit = this.#temp.limitFor(entry.hostPath);
      const end = start + data.length;
      if (end > size && end > limit) {
        if (limit - start <= 0) return -ERRNO.ENOSPC;
        data = data.subarray(0, limit - start); // a short write, as a full disk gives
      }
    }
    const done = writeHost(entry, data, this.#fail);
    if (quota && done > 0) this.#temp.setSize(entry.hostPath, Math.max(size, start + done));
    return done;
  }

  /**
   * Moves a guest fd's offset: the new offset, or −errno. `whence` is SEEK_SET
   * 0, SEEK_CUR 1 or SEEK_END 2 (else EINVAL); a negative result is EINVAL.
   * fds 0–2 give ESPIPE.
   */
  lseek(fd: number, offset: number, whence: number): number {
    if (fd >= 0 && fd < FIRST_FD) return -ERRNO.ESPIPE;
    const entry = this.#fds.get(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    if (whence !== SEEK_SET && whence !== SEEK_CUR && whence !== SEEK_END) return -ERRNO.EINVAL;
    if (!Number.isSafeInteger(offset)) return -ERRNO.EINVAL;
    if (entry.kind === "directory") {
      return seekDirectory(entry, offset, whence, (dir) => this.#relist(dir), this.#fail);
    }
    if (entry.kind === "virtual") return seekVirtual(entry, offset, whence);
    try {
      return entry.file.seekSync(offset, whence as Deno.SeekMode);
    } catch (error) {
      return this.#fail(error, entry.hostPath);
    }
  }

  /**
   * Unlinks `path`: 0 or −errno. A mapped leaf is first removed from the map
   * (so the name is gone for the guest even if the host refuses), then its
   * host file is removed; a path inside a mapped directory removes that host
   * entry; a virtual file or an empty map directory is dropped from the map.
   * Directories are never removed on the host (EISDIR). Open fds stay usable.
   */
  unlink(path: string): number {
    const found = this.#lookup(path);
    if (typeof found === "number") return found;
    switch (found.kind) {
      case "none":
        return -ERRNO.ENOENT;
      case "virtual":
        this.#map.remove(path);
        return 0;
      case "directory":
        if (found.root) return -ERRNO.EISDIR;
        return this.#map.remove(path) ? 0 : -ERRNO.ENOTEMPTY;
      case "host":
        break;
    }
    if (found.readOnly) return -ERRNO.EROFS;
    const hostPath = found.hostPath;
    try {
      if (found.rest !== "") {
        // The entry itself may be a link (that is what gets removed); its directory must be inside.
        if (!isConfined(this.#fs, found.base, posix.dirname(hostPath))) return this.#escape(path);
      }
      if (this.#fs.lstat(hostPath).isDirectory) return -ERRNO.EISDIR;
    } catch (error) {
      return this.#fail(error, hostPath);
    }
    if (found.rest === "") this.#map.remove(path);
    try {
      this.#fs.remove(hostPath);
    } catch (error) {
      return this.#fail(error, hostPath);
    }
    if (found.temp) this.#temp.unlinked(hostPath, this.#isOpen(hostPath));
    return 0;
  }

  /**
   * Reads directory entries of directory fd `fd` into `into` as
   * linux_dirent64 records, from the fd's offset (a byte cursor), and moves
   * the offset past them. Returns the bytes written, 0 at the end of the
   * directory (and on every later call until a seek), or −errno: EBADF for an
   * fd not open, ENOTDIR for one that is not a directory (fds 0–2 included),
   * EINVAL when the next record does not fit or the offset is inside one.
   */
  getdents(fd: number, into: Uint8Array): number {
    if (fd >= 0 && fd < FIRST_FD) return -ERRNO.ENOTDIR;
    const entry = this.#fds.get(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    if (entry.kind !== "directory") return -ERRNO.ENOTDIR;
    const n = entry.listing.read(entry.offset, into);
    if (n > 0) entry.offset += n;
    return n;
  }

  /**
   * Fills `attr` (an ATTR array, `file_attr.ts`) with the metadata of guest
   * path `path`, following a final symlink when `follow` (stat) or not
   * (lstat). Returns 0 or −errno: ENOENT outside the map, EACCES when a
   * symlink inside a mapped directory leads outside it (only when it must be
   * followed: the link itself may be examined). Host metadata is filtered as
   * `guest_attr.ts` says.
   */
  stat(path: string, follow: boolean, attr: Float64Array): number {
    const found = this.#lookup(path);
    if (typeof found === "number") return found;
    switch (found.kind) {
      case "none":
        return -ERRNO.ENOENT;
      case "virtual":
        fillVirtualFileAttr(attr, found.bytes.length, this.#inodes.virtual(cleanGuestPath(path)));
        return 0;
      case "directory":
        fillMapDirAttr(attr, this.#inodes.virtual(cleanGuestPath(path)));
        return 0;
      case "host":
        break;
    }
    const hostPath = found.hostPath;
    if (found.rest !== "") {
      // Followed, every link on the way must stay inside; not followed, only the directory's.
      const refused = this.#confine(found.base, follow ? hostPath : posix.dirname(hostPath));
      if (refused !== 0) return refused;
    }
    try {
      const info = this.#fs.stat(hostPath, follow);
      fillHostAttr(attr, info, this.#inodes.ofHost(info));
      return 0;
    } catch (error) {
      return this.#fail(error, hostPath);
    }
  }

  /**
   * Fills `attr` with the metadata of guest fd `fd`: 0, or EBADF for an fd
   * not open and for fds 0–2 (no host metadata about the host's stdio).
   */
  fstat(fd: number, attr: Float64Array): number {
    if (fd >= 0 && fd < FIRST_FD) return -ERRNO.EBADF;
    const entry = this.#fds.get(fd);
    if (entry === undefined) return -ERRNO.EBADF;
    return fstatEntry(attr, entry, this.#inodes, this.#fail);
  }

  /**
   * Creates directory `path` for the guest: 0 or −errno. Inside a writable
   * mapping it is made on the host (mode 0777 less the umask); an unmapped
   * path whose parent is a directory of the map becomes a fresh directory in
   * the per-VM temp directory, mapped at `path` until the VM ends (as uhyve).
   * EEXIST for anything that exists (map directories and virtual files
   * included), ENOENT when the parent does not exist, EROFS in a `:ro`
   * mapping, EACCES through a symlink that leads outside its mapping, ENOSPC
   * past the temp-entry limit.
   */
  mkdir(path: string): number {
    const found = this.#lookup(path);
    if (typeof found === "number") return found;
    switch (found.kind) {
      case "virtual":
      case "directory":
        return -ERRNO.EEXIST;
      case "none":
        return this.#temp.mkdir(this.#map, path);
      case "host":
        break;
    }
    if (found.readOnly) return -ERRNO.EROFS;
    const hostPath = found.hostPath;
    if (found.rest !== "") {
      const refused = this.#confine(found.base, posix.dirname(hostPath));
      if (refused !== 0) return refused;
    }
    if (found.temp && this.#temp.full) return -ERRNO.ENOSPC;
    try {
      this.#fs.mkdir(hostPath);
    } catch (error) {
      return this.#fail(error, hostPath);
    }
    if (found.temp) this.#temp.addDir();
    return 0;
  }

  /** Closes every guest fd (errors are logged). Safe to call any number of times. */
  closeAll(): void {
    for (const [fd, entry] of this.#fds.entries()) {
      if (entry.kind === "virtual" || entry.file === null) continue;
      try {
        entry.file.close();
      } catch (error) {
        log.warn`Cannot close guest fd ${fd} (${entry.hostPath}): ${String(error)}`;
      }
    }
    this.#fds.clear();
  }

  /**
   * Closes every guest fd and removes the per-VM temp directory with all the
   * guest's temp files. Idempotent; afterwards open and unlink give EIO.
   */
  dispose(): void {
    this.closeAll();
    this.#disposed = true;
    this.#temp.dispose();
  }

  /** Same as {@linkcode dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Numbers an opened entry (or passes −errno on); closes its file when no fd is free. */
  #insert(entry: OpenFile | number): number {
    if (typeof entry === "number") return entry;
    const fd = this.#fds.insert(entry);
    if (fd < 0 && entry.kind !== "virtual") entry.file?.close();
    return fd;
  }

  /** Looks a guest path up in the map: EIO once disposed, EINVAL for a NUL in it. */
  #lookup(path: string): Resolved | number {
    if (this.#disposed) return -ERRNO.EIO;
    if (path.includes("\0")) return -ERRNO.EINVAL;
    return this.#map.resolve(path);
  }

  /** A directory fd for a directory of the map itself. */
  #openMapDirectory(cleanPath: string): number {
    return this.#fds.insert({
      kind: "directory",
      file: null,
      hostPath: "",
      cleanPath,
      listing: mapListing(this.#map, this.#fs, this.#inodes, cleanPath),
      offset: 0,
    });
  }

  /** A fresh listing of a directory fd (throws the host's error). */
  #relist(entry: DirectoryOpenFile): DirListing {
    return entry.file === null
      ? mapListing(this.#map, this.#fs, this.#inodes, entry.cleanPath)
      : hostListing(this.#fs, this.#inodes, entry.hostPath);
  }

  /**
   * Creates the per-VM temp directory now instead of at the first O_CREAT,
   * so that a Landlock rule can name it. Returns its path, or −errno.
   */
  prepareTempDir(): string | number {
    return this.#temp.prepare();
  }

  #readStdin(into: Uint8Array): number {
    if (into.length === 0) return 0;
    try {
      return this.#fs.readStdin(into) ?? 0;
    } catch (error) {
      return this.#fail(error, "stdin");
    }
  }

  /** 0 when `hostPath` stays inside `base` after symlinks, else −errno. */
  #confine(base: string, hostPath: string): number {
    try {
      return isConfined(this.#fs, base, hostPath) ? 0 : this.#escape(hostPath);
    } catch (error) {
      return this.#fail(error, hostPath);
    }
  }

  #escape(path: string): number {
    log.debug`Refused ${path}: a symlink leads outside its mapped directory`;
    return -ERRNO.EACCES;
  }

  /** Whether a guest fd still refers to `hostPath`. */
  #isOpen(hostPath: string): boolean {
    return this.#fds.entries().some(([, e]) => e.kind === "host" && e.hostPath === hostPath);
  }
}
