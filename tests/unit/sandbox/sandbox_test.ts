/**
 * Unit tests of `src/sandbox/sandbox.ts` over a fake host (no permissions):
 * virtual files, fd numbering and limits, stdio fds, argument checks, and the
 * read/write loops with injected short and failing host I/O. Real host I/O
 * is tested in `tests/sandbox/`.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { FileMap } from "../../../src/sandbox/file_map.ts";
import {
  type HostDirEntry,
  type HostFile,
  type HostFs,
  type HostStat,
  type LinkInfo,
  OPEN_FLAGS,
} from "../../../src/sandbox/host_fs.ts";
import { Sandbox } from "../../../src/sandbox/sandbox.ts";

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_DIRECTORY, SEEK_SET, SEEK_CUR, SEEK_END } =
  OPEN_FLAGS;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An in-memory host file whose reads and writes move at most `chunk` bytes per call. */
class FakeFile implements HostFile {
  data: Uint8Array;
  offset = 0;
  chunk: number;
  /** Throw this on the write call after `failAfterWrites` successful ones. */
  writeError: Error | undefined;
  failAfterWrites = Infinity;
  readError: Error | undefined;
  writes = 0;
  reads = 0;
  closed = 0;
  syncs = 0;
  isFile = true;
  /** What statSync says about being a directory (default: whatever is not a file). */
  isDir: boolean | undefined;

  constructor(text: string, chunk = Infinity) {
    this.data = encoder.encode(text);
    this.chunk = chunk;
  }

  readSync(p: Uint8Array): number | null {
    this.reads++;
    if (this.readError !== undefined && this.reads > 1) throw this.readError;
    const n = Math.min(p.length, this.chunk, this.data.length - this.offset);
    if (n <= 0) return null;
    p.set(this.data.subarray(this.offset, this.offset + n));
    this.offset += n;
    return n;
  }

  writeSync(p: Uint8Array): number {
    if (this.writeError !== undefined && this.writes >= this.failAfterWrites) throw this.writeError;
    this.writes++;
    const n = Math.min(p.length, this.chunk);
    const end = this.offset + n;
    if (end > this.data.length) {
      const grown = new Uint8Array(end);
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set(p.subarray(0, n), this.offset);
    this.offset = end;
    return n;
  }

  seekSync(offset: number, whence: Deno.SeekMode): number {
    const base = whence === 0 ? 0 : whence === 1 ? this.offset : this.data.length;
    if (base + offset < 0) {
      throw Object.assign(new TypeError("Invalid argument (os error 22)"), { code: "EINVAL" });
    }
    this.offset = base + offset;
    return this.offset;
  }

  syncSync(): void {
    this.syncs++;
  }

  statSync(): { isFile: boolean; isDirectory: boolean; size: number } {
    return { isFile: this.isFile, isDirectory: this.isDir ?? !this.isFile, size: this.data.length };
  }

  close(): void {
    this.closed++;
    if (this.closed > 1) throw new Deno.errors.BadResource("Bad resource ID");
  }

  text(): string {
    return decoder.decode(this.data);
  }
}

/** A fake host holding `files` by absolute path; records opens and removals. */
function fakeHost(files: Record<string, FakeFile>, stdin: Uint8Array[] = []): HostFs & {
  opened: [string, Deno.OpenOptions][];
  removed: string[];
} {
  const opened: [string, Deno.OpenOptions][] = [];
  const removed: string[] = [];
  return {
    opened,
    removed,
    open(path: string, options: Deno.OpenOptions): HostFile {
      opened.push([path, options]);
      const file = files[path];
      if (file === undefined) {
        if (options.createNew === true || options.create === true) {
          const created = new FakeFile("");
          files[path] = created;
          return created;
        }
        throw new Deno.errors.NotFound(`open '${path}'`);
      }
      if (options.createNew === true) throw new Deno.errors.AlreadyExists(path);
      file.offset = 0;
      return file;
    },
    remove(path: string): void {
      if (files[path] === undefined) throw new Deno.errors.NotFound(path);
      delete files[path];
      removed.push(path);
    },
    removeTree(path: string): void {
      removed.push(`${path}/`);
    },
    realPath: (path: string): string => path,
    lstat(path: string): LinkInfo {
      if (files[path] === undefined) throw new Deno.errors.NotFound(path);
      return { isDirectory: !files[path].isFile, isSymlink: false };
    },
    isDirectory: (path: string): boolean => files[path]?.isFile === false,
    stat(path: string): HostStat {
      const file = files[path];
      if (file === undefined) throw new Deno.errors.NotFound(path);
      return file.statSync();
    },
    mkdir(path: string): void {
      throw new Deno.errors.PermissionDenied(`mkdir '${path}'`);
    },
    readDir: (): HostDirEntry[] => [],
    makeTempDir: (parent: string | undefined, prefix: string): string =>
      `${parent ?? "/tmp"}/${prefix}test`,
    readStdin(into: Uint8Array): number | null {
      const next = stdin.shift();
      if (next === undefined) return null;
      into.set(next);
      return next.length;
    },
  };
}

function sandboxWith(
  files: Record<string, FakeFile>,
  options: { maxOpenFiles?: number; stdin?: Uint8Array[] } = {},
): { sandbox: Sandbox; map: FileMap; host: ReturnType<typeof fakeHost> } {
  const map = new FileMap();
  for (const path of Object.keys(files)) map.addHost(path, path);
  map.addVirtual("/virt.txt", encoder.encode("virtual contents"));
  const host = fakeHost(files, options.stdin);
  const sandbox = new Sandbox({
    map,
    hostFs: host,
    ...(options.maxOpenFiles === undefined ? {} : { maxOpenFiles: options.maxOpenFiles }),
  });
  return { sandbox, map, host };
}

Deno.test("Sandbox.read() of a virtual file advances the offset and ends at EOF", () => {
  const { sandbox } = sandboxWith({});
  const fd = sandbox.open("/virt.txt", O_RDONLY, 0);
  assert.equal(fd, 3);
  const buf = new Uint8Array(7);
  const chunks: string[] = [];
  for (let i = 0; i < 10; i++) {
    const n = sandbox.read(fd, buf);
    assert.ok(n >= 0);
    if (n === 0) break;
    chunks.push(decoder.decode(buf.subarray(0, n)));
  }
  assert.deepEqual(chunks, ["virtual", " conten", "ts"]);
  assert.equal(sandbox.read(fd, buf), 0);
});

Deno.test("Sandbox.write() to a virtual file gives −EROFS, whatever the open flags", () => {
  const { sandbox } = sandboxWith({});
  for (const flags of [O_RDONLY, O_WRONLY, O_RDWR]) {
    const fd = sandbox.open("/virt.txt", flags, 0);
    assert.ok(fd >= 3);
    assert.equal(sandbox.write(fd, encoder.encode("x")), -ERRNO.EROFS);
  }
  assert.equal(sandbox.open("/virt.txt", O_CREAT | O_EXCL | O_RDWR, 0o644), -ERRNO.EEXIST);
  assert.equal(sandbox.open("/virt.txt", O_DIRECTORY, 0), -ERRNO.ENOTDIR);
});

Deno.test("Sandbox.lseek() on a virtual file: SET, CUR, END, past the end, negative", () => {
  const { sandbox } = sandboxWith({});
  const fd = sandbox.open("/virt.txt", O_RDONLY, 0); // 16 bytes
  const buf = new Uint8Array(4);
  assert.equal(sandbox.lseek(fd, 8, SEEK_SET), 8);
  assert.equal(sandbox.read(fd, buf), 4);
  assert.equal(decoder.decode(buf), "cont");
  assert.equal(sandbox.lseek(fd, -2, SEEK_CUR), 10);
  assert.equal(sandbox.lseek(fd, -4, SEEK_END), 12);
  assert.equal(sandbox.read(fd, buf), 4);
  assert.equal(decoder.decode(buf), "ents");
  assert.equal(sandbox.lseek(fd, 100, SEEK_END), 116);
  assert.equal(sandbox.read(fd, buf), 0);
  assert.equal(sandbox.lseek(fd, -1, SEEK_SET), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(fd, -117, SEEK_CUR), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(fd, 0, SEEK_CUR), 116, "a failed lseek leaves the offset");
  assert.equal(sandbox.lseek(fd, 0, 3), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(fd, 0.5, SEEK_SET), -ERRNO.EINVAL);
});

Deno.test("Sandbox.open() reuses closed fds and gives −EMFILE at the limit", () => {
  const { sandbox } = sandboxWith({}, { maxOpenFiles: 3 });
  assert.deepEqual([0, 1, 2].map(() => sandbox.open("/virt.txt", O_RDONLY, 0)), [3, 4, 5]);
  assert.equal(sandbox.open("/virt.txt", O_RDONLY, 0), -ERRNO.EMFILE);
  assert.equal(sandbox.openFiles, 3);
  assert.equal(sandbox.close(4), 0);
  assert.equal(sandbox.open("/virt.txt", O_RDONLY, 0), 4);
});

Deno.test("Sandbox.open() checks its arguments before looking anything up", () => {
  const { sandbox, host } = sandboxWith({ "/f": new FakeFile("x") });
  assert.equal(sandbox.open("/f", O_DIRECTORY | O_CREAT, 0), -ERRNO.EINVAL);
  assert.equal(sandbox.open("/f", 3, 0), -ERRNO.EINVAL);
  assert.equal(sandbox.open("/f\0/x", O_RDONLY, 0), -ERRNO.EINVAL);
  assert.equal(sandbox.open("/unmapped", O_RDONLY, 0), -ERRNO.ENOENT);
  assert.equal(sandbox.open("/", O_RDWR, 0), -ERRNO.EISDIR);
  assert.equal(sandbox.open("/", O_CREAT | O_WRONLY, 0), -ERRNO.EISDIR);
  assert.equal(sandbox.open("/virt.txt/below", O_CREAT | O_WRONLY, 0), -ERRNO.ENOTDIR);
  assert.deepEqual(host.opened, []);
  // Flags outside 0x106C3 (O_NONBLOCK, O_CLOEXEC, …) are dropped.
  assert.equal(sandbox.open("/f", O_RDONLY | 0o4000 | 0o2000000, 0), 3);
  assert.deepEqual(host.opened, [["/f", {
    read: true,
    write: false,
    append: false,
    truncate: false,
  }]]);
});

Deno.test("Sandbox stdio fds: close → 0, fd 1/2 not readable, not writable, not seekable", () => {
  const { sandbox } = sandboxWith({});
  for (const fd of [0, 1, 2]) assert.equal(sandbox.close(fd), 0);
  const buf = new Uint8Array(4);
  assert.equal(sandbox.read(1, buf), -ERRNO.EBADF);
  assert.equal(sandbox.read(2, buf), -ERRNO.EBADF);
  for (const fd of [0, 1, 2]) {
    assert.equal(sandbox.write(fd, buf), -ERRNO.EBADF);
    assert.equal(sandbox.lseek(fd, 0, SEEK_SET), -ERRNO.ESPIPE);
  }
});

Deno.test("Sandbox.read(0) reads the process stdin once per call", () => {
  const { sandbox } = sandboxWith({}, { stdin: [encoder.encode("ab"), encoder.encode("cde")] });
  const buf = new Uint8Array(8);
  assert.equal(sandbox.read(0, buf), 2);
  assert.equal(sandbox.read(0, buf), 3);
  assert.equal(decoder.decode(buf.subarray(0, 3)), "cde");
  assert.equal(sandbox.read(0, buf), 0);
});

Deno.test("Sandbox fd calls on unknown fds give −EBADF", () => {
  const { sandbox } = sandboxWith({});
  const buf = new Uint8Array(1);
  for (const fd of [3, 4, 99, -1, 2 ** 31]) {
    assert.equal(sandbox.read(fd, buf), -ERRNO.EBADF, String(fd));
    assert.equal(sandbox.write(fd, buf), -ERRNO.EBADF, String(fd));
    assert.equal(sandbox.lseek(fd, 0, SEEK_SET), -ERRNO.EBADF, String(fd));
    assert.equal(sandbox.close(fd), -ERRNO.EBADF, String(fd));
  }
  const fd = sandbox.open("/virt.txt", O_RDONLY, 0);
  assert.equal(sandbox.close(fd), 0);
  assert.equal(sandbox.close(fd), -ERRNO.EBADF);
  assert.equal(sandbox.read(fd, buf), -ERRNO.EBADF);
});

Deno.test("Sandbox.write() loops over short host writes until everything is written", () => {
  const file = new FakeFile("", 3);
  const { sandbox } = sandboxWith({ "/out": file });
  const fd = sandbox.open("/out", O_WRONLY, 0);
  assert.equal(sandbox.write(fd, encoder.encode("hello, partial world")), 20);
  assert.equal(file.writes, 7);
  assert.equal(file.text(), "hello, partial world");
});

Deno.test("Sandbox.write() returns the count when the host fails after some bytes, −errno before", () => {
  const file = new FakeFile("", 4);
  file.writeError = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  file.failAfterWrites = 2;
  const { sandbox } = sandboxWith({ "/out": file });
  const fd = sandbox.open("/out", O_RDWR, 0);
  assert.equal(sandbox.write(fd, encoder.encode("0123456789")), 8);
  assert.equal(sandbox.write(fd, encoder.encode("89")), -ERRNO.ENOSPC);
  assert.equal(file.text(), "01234567");
});

Deno.test("Sandbox.write() treats a host write of 0 bytes as an error, not a spin", () => {
  const file = new FakeFile("", 0);
  const { sandbox } = sandboxWith({ "/out": file });
  const fd = sandbox.open("/out", O_WRONLY, 0);
  assert.equal(sandbox.write(fd, encoder.encode("abc")), -ERRNO.EIO);
  assert.equal(file.writes, 1);
});

Deno.test("Sandbox.read() loops over short reads of a regular file until full or EOF", () => {
  const file = new FakeFile("abcdefghij", 3);
  const { sandbox } = sandboxWith({ "/in": file });
  const fd = sandbox.open("/in", O_RDONLY, 0);
  const buf = new Uint8Array(8);
  assert.equal(sandbox.read(fd, buf), 8);
  assert.equal(decoder.decode(buf), "abcdefgh");
  assert.equal(sandbox.read(fd, buf), 2);
  assert.equal(sandbox.read(fd, buf), 0);
  assert.equal(sandbox.read(fd, new Uint8Array(0)), 0);
});

Deno.test("Sandbox.read() of a non-regular file returns what one host read gives", () => {
  const file = new FakeFile("abcdefghij", 3);
  file.isFile = false; // e.g. a FIFO or a device: looping could block
  file.isDir = false;
  const { sandbox } = sandboxWith({ "/pipe": file });
  const fd = sandbox.open("/pipe", O_RDONLY, 0);
  assert.equal(sandbox.read(fd, new Uint8Array(8)), 3);
});

Deno.test("Sandbox.read() returns the count when the host fails after some bytes", () => {
  const file = new FakeFile("abcdefghij", 4);
  file.readError = new Deno.errors.Interrupted("interrupted");
  const { sandbox } = sandboxWith({ "/in": file });
  const fd = sandbox.open("/in", O_RDONLY, 0);
  assert.equal(sandbox.read(fd, new Uint8Array(8)), 4);
  assert.equal(sandbox.read(fd, new Uint8Array(8)), -ERRNO.EINTR);
});

Deno.test("Sandbox enforces the guest's access mode on host fds", () => {
  const { sandbox } = sandboxWith({ "/f": new FakeFile("data") });
  const ro = sandbox.open("/f", O_RDONLY, 0);
  const wo = sandbox.open("/f", O_WRONLY, 0);
  assert.equal(sandbox.write(ro, encoder.encode("x")), -ERRNO.EBADF);
  assert.equal(sandbox.read(wo, new Uint8Array(1)), -ERRNO.EBADF);
});

Deno.test("Sandbox.closeAll() closes every host file once, and is idempotent", () => {
  const a = new FakeFile("a");
  const b = new FakeFile("b");
  const { sandbox } = sandboxWith({ "/a": a, "/b": b });
  sandbox.open("/a", O_RDONLY, 0);
  sandbox.open("/b", O_RDONLY, 0);
  sandbox.open("/virt.txt", O_RDONLY, 0);
  sandbox.closeAll();
  sandbox.closeAll();
  assert.deepEqual([a.closed, b.closed], [1, 1]);
  assert.equal(sandbox.openFiles, 0);
  assert.equal(sandbox.open("/a", O_RDONLY, 0), 3);
});

Deno.test("Sandbox.open() of an unmapped path with O_CREAT creates a temp file under the temp dir", () => {
  const files: Record<string, FakeFile> = {};
  const map = new FileMap();
  const host = fakeHost(files);
  const sandbox = new Sandbox({ map, hostFs: host, tempDir: "/vmtmp", ioMode: { sync: true } });
  assert.equal(sandbox.tempDir, undefined);
  const fd = sandbox.open("/new/file.txt", O_CREAT | O_WRONLY, 0o600);
  assert.equal(fd, 3);
  assert.equal(sandbox.tempDir, "/vmtmp/dhyve-test");
  const [path, options] = host.opened[0]!;
  assert.match(path, /^\/vmtmp\/dhyve-test\/[0-9a-f-]{36}$/);
  assert.deepEqual(options, {
    read: false,
    write: true,
    append: false,
    createNew: true,
    mode: 0o600,
  });
  assert.equal(sandbox.write(fd, encoder.encode("x")), 1);
  assert.equal(files[path]!.syncs, 1, "--io-mode sync fsyncs temp files after each write");
  const found = map.resolve("/new/file.txt");
  assert.equal(found.kind === "host" && found.hostPath, path);
  sandbox.dispose();
  assert.deepEqual(host.removed, ["/vmtmp/dhyve-test/"]);
  sandbox.dispose();
  assert.deepEqual(host.removed, ["/vmtmp/dhyve-test/"]);
  assert.equal(sandbox.open("/other", O_CREAT | O_WRONLY, 0o600), -ERRNO.EIO);
});
