/**
 * Host I/O tests of the sandbox's directory, stat and mkdir support (uhyve
 * 0.9.1's interface-v3 calls): directory fds on mapped host directories,
 * directories inside them and the map's own directories; getdents paging;
 * stat/lstat/fstat behind the file map's fences, with host metadata filtered;
 * mkdir on the host, in `:ro` mappings and in the per-VM temp dir. Property
 * tests: random host trees list exactly, whatever the buffer size; random
 * stat/mkdir paths never reach a host path outside the map. Run with
 * `deno test --allow-read --allow-write --allow-env tests/sandbox`.
 * @module
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import fc from "fast-check";
import { ERRNO } from "../../src/errno.ts";
import { ATTR, newFileAttr, S_IF } from "../../src/file_attr.ts";
import { DIRENT64, DT } from "../../src/sandbox/dirents.ts";
import { FileMap } from "../../src/sandbox/file_map.ts";
import { denoHostFs, type HostFs, isWithin, OPEN_FLAGS } from "../../src/sandbox/host_fs.ts";
import { Sandbox } from "../../src/sandbox/sandbox.ts";

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_DIRECTORY, SEEK_SET, SEEK_CUR, SEEK_END } =
  OPEN_FLAGS;
const decoder = new TextDecoder();

/**
 * A scratch tree: `rw/` (mapped writable at /data/rw) with files, a subdir, a
 * hard link and links in and out; `ro/` (mapped `:ro` at /ro); `out/` never
 * mapped; `one.txt` mapped alone at /files/one.txt; `tmp/` the temp parent.
 */
interface Tree {
  readonly root: string;
  readonly rw: string;
  readonly ro: string;
  readonly out: string;
  readonly tmp: string;
  readonly sandbox: Sandbox;
  [Symbol.dispose](): void;
}

function tree(): Tree {
  const root = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "dhyve-dirs-test-" }));
  const at = (...parts: string[]): string => posix.join(root, ...parts);
  for (const dir of ["rw/sub", "ro/inner", "out", "tmp"]) {
    Deno.mkdirSync(at(dir), { recursive: true });
  }
  Deno.writeTextFileSync(at("rw/a.txt"), "alpha\n");
  Deno.writeTextFileSync(at("rw/sub/b.txt"), "beta beta\n");
  Deno.linkSync(at("rw/a.txt"), at("rw/hard.txt"));
  Deno.symlinkSync("sub/b.txt", at("rw/link-in"));
  Deno.symlinkSync(at("out"), at("rw/link-out"));
  Deno.symlinkSync("../out/secret", at("rw/link-out-file"));
  Deno.writeTextFileSync(at("out/secret"), "secret\n");
  Deno.writeTextFileSync(at("ro/r.txt"), "read only\n");
  Deno.writeTextFileSync(at("one.txt"), "one\n");
  const map = FileMap.fromSpecs([
    `${at("rw")}:/data/rw`,
    `${at("ro")}:/ro:ro`,
    `${at("one.txt")}:/files/one.txt`,
    `${at("missing.txt")}:/files/missing.txt`,
  ], "/");
  const sandbox = new Sandbox({ map, tempDir: at("tmp"), warn: () => {} });
  return {
    root,
    rw: at("rw"),
    ro: at("ro"),
    out: at("out"),
    tmp: at("tmp"),
    sandbox,
    [Symbol.dispose](): void {
      sandbox.dispose();
      Deno.removeSync(root, { recursive: true });
    },
  };
}

interface Listed {
  readonly name: string;
  readonly type: number;
  readonly ino: number;
}

/**
 * Reads a directory fd to its end with buffers of `size` bytes, as a guest
 * would: a buffer too small for the next record (EINVAL) is doubled and the
 * call repeated. Checks every record's framing and `d_off`.
 */
function readAll(sandbox: Sandbox, fd: number, size: number): Listed[] {
  const out: Listed[] = [];
  let buf = new Uint8Array(size);
  let view = new DataView(buf.buffer);
  let cursor = 0;
  for (let calls = 0; calls < 10_000; calls++) {
    const n = sandbox.getdents(fd, buf);
    if (n === 0) return out;
    if (n === -ERRNO.EINVAL && buf.length < 4096) {
      buf = new Uint8Array(buf.length * 2);
      view = new DataView(buf.buffer);
      continue;
    }
    assert.ok(n > 0, `getdents gave ${n}`);
    assert.ok(n <= buf.length);
    let at = 0;
    while (at < n) {
      const reclen = view.getUint16(at + DIRENT64.reclen, true);
      assert.ok(reclen % 8 === 0 && at + reclen <= n, `record cut at ${at} (reclen ${reclen})`);
      const name = buf.subarray(at + DIRENT64.name, at + reclen);
      const nul = name.indexOf(0);
      assert.ok(nul > 0, "name without NUL");
      cursor += reclen;
      assert.equal(Number(view.getBigInt64(at + DIRENT64.off, true)), cursor, "d_off");
      out.push({
        name: decoder.decode(name.subarray(0, nul)),
        type: view.getUint8(at + DIRENT64.type),
        ino: Number(view.getBigUint64(at + DIRENT64.ino, true)),
      });
      at += reclen;
    }
  }
  throw new Error("getdents never ended");
}

function list(sandbox: Sandbox, path: string, size = 4096): [string, number][] {
  const fd = sandbox.open(path, O_RDONLY | O_DIRECTORY, 0);
  assert.ok(fd >= 3, `open ${path}: ${fd}`);
  try {
    return readAll(sandbox, fd, size).map((e) => [e.name, e.type]);
  } finally {
    assert.equal(sandbox.close(fd), 0);
  }
}

function stat(sandbox: Sandbox, path: string, follow = true): Float64Array | number {
  const attr = newFileAttr();
  const r = sandbox.stat(path, follow, attr);
  return r < 0 ? r : attr;
}

function attrOf(result: Float64Array | number, what: string): Float64Array {
  assert.ok(result instanceof Float64Array, `${what}: ${String(result)}`);
  return result;
}

Deno.test("Sandbox lists / and the map's directories exactly as the map grants", () => {
  using t = tree();
  assert.deepEqual(list(t.sandbox, "/"), [["data", DT.DIR], ["files", DT.DIR], ["ro", DT.DIR]]);
  assert.deepEqual(list(t.sandbox, "/data"), [["rw", DT.DIR]]);
  // Only the mapped file, not its host neighbours; a mapping that does not exist is not shown.
  assert.deepEqual(list(t.sandbox, "/files"), [["one.txt", DT.REG]]);
  assert.deepEqual(list(t.sandbox, "/ro"), [["inner", DT.DIR], ["r.txt", DT.REG]]);
});

Deno.test("Sandbox lists a mapped host directory and directories inside it, links as links", () => {
  using t = tree();
  const expected: [string, number][] = [
    ["a.txt", DT.REG],
    ["hard.txt", DT.REG],
    ["link-in", DT.LNK],
    ["link-out", DT.LNK],
    ["link-out-file", DT.LNK],
    ["sub", DT.DIR],
  ];
  assert.deepEqual(list(t.sandbox, "/data/rw"), expected);
  assert.deepEqual(list(t.sandbox, "/data/rw/sub/"), [["b.txt", DT.REG]]);
  // Small buffers page through the same records.
  for (const size of [24, 32, 40, 64, 100]) {
    assert.deepEqual(list(t.sandbox, "/data/rw", size), expected);
  }
  // Following a link out of the mapping is refused; so is open of a dir that is not there.
  assert.equal(t.sandbox.open("/data/rw/link-out", O_DIRECTORY, 0), -ERRNO.EACCES);
  assert.equal(t.sandbox.open("/data/rw/nothing", O_DIRECTORY, 0), -ERRNO.ENOENT);
  assert.equal(t.sandbox.open("/data/rw/a.txt", O_DIRECTORY, 0), -ERRNO.ENOTDIR);
});

Deno.test("Sandbox directory fds: sticky end, lseek SET/CUR, rewind re-reads, read/write errnos", () => {
  using t = tree();
  const fd = t.sandbox.open("/data/rw/sub", O_DIRECTORY, 0);
  const buf = new Uint8Array(256);
  assert.equal(t.sandbox.getdents(fd, buf), 32); // "b.txt": 19 + 5 + 1 → 32
  assert.equal(t.sandbox.getdents(fd, buf), 0);
  assert.equal(t.sandbox.getdents(fd, buf), 0, "the end stays the end");
  assert.equal(t.sandbox.getdents(fd, new Uint8Array(8)), 0, "even with a tiny buffer");
  Deno.writeTextFileSync(posix.join(t.rw, "sub", "c.txt"), "new");
  assert.equal(t.sandbox.lseek(fd, 0, SEEK_SET), 0);
  assert.equal(t.sandbox.getdents(fd, buf), 64, "a rewind reads the directory again");
  assert.equal(t.sandbox.lseek(fd, -64, SEEK_CUR), 0);
  assert.equal(t.sandbox.lseek(fd, 32, SEEK_CUR), 32);
  assert.equal(t.sandbox.getdents(fd, buf), 32, "SEEK_CUR moved the cursor to the second record");
  assert.equal(t.sandbox.lseek(fd, 0, SEEK_END), -ERRNO.EINVAL);
  assert.equal(t.sandbox.lseek(fd, -1, SEEK_SET), -ERRNO.EINVAL);
  assert.equal(t.sandbox.lseek(fd, 1 << 20, SEEK_SET), 1 << 20);
  assert.equal(t.sandbox.getdents(fd, buf), 0, "past the end is the end");
  assert.equal(t.sandbox.read(fd, buf), -ERRNO.EISDIR);
  assert.equal(t.sandbox.write(fd, buf), -ERRNO.EBADF);
  assert.equal(t.sandbox.open("/data/rw/sub", O_WRONLY, 0), -ERRNO.EISDIR);
  assert.equal(t.sandbox.open("/data", O_RDWR, 0), -ERRNO.EISDIR);
  assert.equal(t.sandbox.open("/data/rw/sub", O_CREAT | O_RDONLY, 0), -ERRNO.EISDIR);
  assert.equal(t.sandbox.open("/data/rw/sub", O_CREAT | O_RDWR, 0o644), -ERRNO.EISDIR);
  assert.equal(t.sandbox.getdents(0, buf), -ERRNO.ENOTDIR);
  const file = t.sandbox.open("/data/rw/a.txt", O_RDONLY, 0);
  assert.equal(t.sandbox.getdents(file, buf), -ERRNO.ENOTDIR);
  assert.equal(t.sandbox.close(fd), 0);
  assert.equal(t.sandbox.getdents(fd, buf), -ERRNO.EBADF);
});

Deno.test("Sandbox.stat() follows the map's fences; lstat shows a link that leads out", () => {
  using t = tree();
  const a = attrOf(stat(t.sandbox, "/data/rw/a.txt"), "a.txt");
  assert.equal(a[ATTR.MODE]! & S_IF.MASK, S_IF.REG);
  assert.equal(a[ATTR.SIZE], 6);
  assert.equal(a[ATTR.NLINK], 2, "a.txt has a hard link");
  const hard = attrOf(stat(t.sandbox, "/data/rw/hard.txt"), "hard.txt");
  assert.equal(hard[ATTR.INO], a[ATTR.INO], "hard links share the guest inode number");
  const b = attrOf(stat(t.sandbox, "/data/rw/sub/b.txt"), "b.txt");
  assert.notEqual(b[ATTR.INO], a[ATTR.INO]);
  assert.deepEqual(attrOf(stat(t.sandbox, "/data/rw/link-in"), "link-in"), b, "followed");
  const link = attrOf(stat(t.sandbox, "/data/rw/link-in", false), "lstat link-in");
  assert.equal(link[ATTR.MODE]! & S_IF.MASK, S_IF.LNK);
  // Links that lead out: refused when followed, visible as links.
  assert.equal(stat(t.sandbox, "/data/rw/link-out"), -ERRNO.EACCES);
  assert.equal(stat(t.sandbox, "/data/rw/link-out-file"), -ERRNO.EACCES);
  assert.equal(stat(t.sandbox, "/data/rw/link-out/secret"), -ERRNO.EACCES);
  assert.equal(stat(t.sandbox, "/data/rw/link-out/secret", false), -ERRNO.EACCES);
  const out = attrOf(stat(t.sandbox, "/data/rw/link-out-file", false), "lstat link-out-file");
  assert.equal(out[ATTR.MODE]! & S_IF.MASK, S_IF.LNK);
  // Outside the map: ENOENT, however spelled.
  for (const path of ["/out/secret", "/data/../out", "/data/rw/../../../out/secret", "/nothing"]) {
    assert.equal(stat(t.sandbox, path), -ERRNO.ENOENT, path);
  }
  assert.equal(stat(t.sandbox, "/files/missing.txt"), -ERRNO.ENOENT);
  assert.equal(stat(t.sandbox, "/data/rw/a.txt/x"), -ERRNO.ENOTDIR);
  const dir = attrOf(stat(t.sandbox, "/data/rw/sub"), "sub");
  assert.equal(dir[ATTR.MODE]! & S_IF.MASK, S_IF.DIR);
  const root = attrOf(stat(t.sandbox, "/"), "/");
  assert.equal(root[ATTR.MODE], S_IF.DIR | 0o755);
});

Deno.test("Sandbox.stat() hides the host's device, inode, owner and rdev", () => {
  using t = tree();
  const host = Deno.statSync(posix.join(t.rw, "a.txt"));
  const a = attrOf(stat(t.sandbox, "/data/rw/a.txt"), "a.txt");
  assert.equal(a[ATTR.DEV], 0);
  assert.equal(a[ATTR.UID], 0);
  assert.equal(a[ATTR.GID], 0);
  assert.equal(a[ATTR.RDEV], 0);
  assert.notEqual(a[ATTR.INO], host.ino);
  assert.equal(a[ATTR.MODE], host.mode);
  assert.equal(a[ATTR.SIZE], host.size);
  assert.equal(a[ATTR.MTIME_SEC], Math.floor(host.mtime!.getTime() / 1000));
  // Numbers follow each VM's own order of first sight: another VM that looks at a
  // directory first numbers the same file differently.
  const sandbox2 = new Sandbox({ map: FileMap.fromSpecs([`${t.rw}:/d`], "/") });
  attrOf(stat(sandbox2, "/d/sub"), "sub first");
  const again = attrOf(stat(sandbox2, "/d/a.txt"), "other sandbox");
  assert.notEqual(again[ATTR.INO], a[ATTR.INO]);
  sandbox2.dispose();
});

Deno.test("Sandbox.fstat() agrees with stat() for host files and directories; stdio is EBADF", () => {
  using t = tree();
  for (
    const [path, flags] of [["/data/rw/a.txt", O_RDONLY], ["/data/rw/sub", O_DIRECTORY]] as const
  ) {
    const fd = t.sandbox.open(path, flags, 0);
    const attr = newFileAttr();
    assert.equal(t.sandbox.fstat(fd, attr), 0);
    const byPath = attrOf(stat(t.sandbox, path), path);
    assert.deepEqual([attr[ATTR.INO], attr[ATTR.MODE], attr[ATTR.SIZE]], [
      byPath[ATTR.INO],
      byPath[ATTR.MODE],
      byPath[ATTR.SIZE],
    ]);
  }
  const attr = newFileAttr();
  for (const fd of [0, 1, 2, 99, -3]) assert.equal(t.sandbox.fstat(fd, attr), -ERRNO.EBADF);
});

Deno.test("Sandbox.mkdir(): on the host in writable mappings, EROFS in :ro, temp dir elsewhere", () => {
  using t = tree();
  const s = t.sandbox;
  assert.equal(s.mkdir("/data/rw/new"), 0);
  assert.ok(Deno.statSync(posix.join(t.rw, "new")).isDirectory);
  assert.equal(s.mkdir("/data/rw/new"), -ERRNO.EEXIST);
  assert.equal(s.mkdir("/data/rw/new/deeper"), 0);
  assert.equal(s.mkdir("/data/rw/none/deeper"), -ERRNO.ENOENT);
  assert.equal(s.mkdir("/ro/x"), -ERRNO.EROFS);
  assert.equal(s.mkdir("/ro"), -ERRNO.EROFS);
  assert.equal(s.mkdir("/data/rw/link-out/x"), -ERRNO.EACCES);
  assert.equal(Array.from(Deno.readDirSync(t.out)).length, 1, "nothing made outside the map");
  assert.equal(s.mkdir("/files/one.txt"), -ERRNO.EEXIST);
  assert.equal(s.mkdir("/data"), -ERRNO.EEXIST);
  assert.equal(s.mkdir("/"), -ERRNO.EEXIST);
  // Unmapped: a directory in the per-VM temp dir, visible in the listing, usable for files.
  assert.equal(s.mkdir("/scratch"), 0);
  assert.equal(s.mkdir("/scratch"), -ERRNO.EEXIST);
  assert.deepEqual(list(s, "/").map(([name]) => name), ["data", "files", "ro", "scratch"]);
  assert.equal(s.mkdir("/scratch/inner"), 0);
  const fd = s.open("/scratch/inner/f.txt", O_CREAT | O_WRONLY, 0o644);
  assert.ok(fd >= 3);
  assert.equal(s.write(fd, new TextEncoder().encode("hi")), 2);
  assert.deepEqual(list(s, "/scratch"), [["inner", DT.DIR]]);
  assert.deepEqual(list(s, "/scratch/inner"), [["f.txt", DT.REG]]);
  const tempDir = s.tempDir!;
  assert.ok(isWithin(t.tmp, tempDir));
  s.dispose();
  assert.throws(() => Deno.statSync(tempDir), Deno.errors.NotFound, "gone with the VM");
  assert.equal(s.mkdir("/later"), -ERRNO.EIO);
});

// ---- properties ---------------------------------------------------------------------

const name = fc.stringMatching(/^[a-z0-9._-]{1,24}$/).filter((n) => n !== "." && n !== "..");

Deno.test("Sandbox getdents (property): random host trees list exactly, whatever the buffer size", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.record({ name, dir: fc.boolean() }), {
        maxLength: 40,
        selector: (e) => e.name,
      }),
      fc.integer({ min: 24, max: 600 }),
      (entries, size) => {
        const root = Deno.makeTempDirSync({ prefix: "dhyve-dirs-prop-" });
        try {
          for (const e of entries) {
            if (e.dir) Deno.mkdirSync(posix.join(root, e.name));
            else Deno.writeTextFileSync(posix.join(root, e.name), e.name);
          }
          using sandbox = new Sandbox({ map: FileMap.fromSpecs([`${root}:/d`], "/") });
          const fd = sandbox.open("/d", O_DIRECTORY, 0);
          const listed = readAll(sandbox, fd, size);
          const names = listed.map((e) => e.name);
          assert.equal(new Set(names).size, names.length, "an entry twice");
          assert.deepEqual(
            listed.map((e) => [e.name, e.type]).sort(),
            entries.map((e) => [e.name, e.dir ? DT.DIR : DT.REG]).sort(),
          );
        } finally {
          Deno.removeSync(root, { recursive: true });
        }
      },
    ),
    { numRuns: 60 },
  );
});

/** A HostFs that records every path it is asked about. */
function recording(into: string[]): HostFs {
  const fs = denoHostFs;
  return {
    ...fs,
    open: (path, options) => (into.push(path), fs.open(path, options)),
    stat: (
      path,
      follow,
    ) => (into.push(`${follow ? "stat" : "lstat"}:${path}`), fs.stat(path, follow)),
    mkdir: (path) => (into.push(`mkdir:${path}`), fs.mkdir(path)),
    readDir: (path) => (into.push(path), fs.readDir(path)),
  };
}

Deno.test("Sandbox stat/mkdir (property): no random path reaches the host outside the map", () => {
  using t = tree();
  const part = fc.constantFrom(
    "..",
    ".",
    "",
    "data",
    "rw",
    "ro",
    "sub",
    "a.txt",
    "link-in",
    "link-out",
    "link-out-file",
    "secret",
    "out",
    "new",
    "inner",
    "files",
    "one.txt",
  );
  const allowed = [t.rw, t.ro, posix.join(t.root, "one.txt"), t.tmp];
  const outcomes = new Set<number>();
  const inside = (hostPath: string): boolean => allowed.some((dir) => isWithin(dir, hostPath));
  /** The real place a path names: links resolved, a missing tail kept. */
  const real = (path: string): string => {
    let probe = path;
    const rest: string[] = [];
    for (;;) {
      try {
        return posix.join(Deno.realPathSync(probe), ...rest);
      } catch {
        rest.unshift(posix.basename(probe));
        probe = posix.dirname(probe);
      }
    }
  };
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom("stat", "lstat", "mkdir"),
          fc.constantFrom("", "/", "/data", "/data/rw", "/data/rw/sub", "/ro", "/files"),
          fc.array(part, { maxLength: 5 }),
        ),
        { maxLength: 8 },
      ),
      (ops) => {
        const touched: string[] = [];
        const map = FileMap.fromSpecs([
          `${t.rw}:/data/rw`,
          `${t.ro}:/ro:ro`,
          `${posix.join(t.root, "one.txt")}:/files/one.txt`,
        ], "/");
        using sandbox = new Sandbox({
          map,
          tempDir: t.tmp,
          hostFs: recording(touched),
          warn: () => {},
        });
        for (const [op, prefix, parts] of ops) {
          const path = [prefix, ...parts].join("/");
          const attr = newFileAttr();
          const r = op === "mkdir" ? sandbox.mkdir(path) : sandbox.stat(path, op === "stat", attr);
          assert.ok(r === 0 || (r < 0 && r >= -133), `${op} ${path}: ${r}`);
          outcomes.add(r);
        }
        for (const entry of touched) {
          const [kind, hostPath] = entry.includes(":") ? entry.split(/:(.*)/s) : ["open", entry];
          // A followed stat must land inside; lstat and mkdir act on the last name itself,
          // so its directory must be inside.
          const place = kind === "stat" || kind === "open"
            ? real(hostPath!)
            : posix.join(real(posix.dirname(hostPath!)), posix.basename(hostPath!));
          assert.ok(inside(place), `${kind} reached ${place} (${hostPath})`);
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.deepEqual(Array.from(Deno.readDirSync(t.out), (e) => e.name), ["secret"]);
  // The runs did try the fences: successes, refused links, paths outside the map, :ro.
  for (const r of [0, -ERRNO.EACCES, -ERRNO.ENOENT, -ERRNO.EROFS]) {
    assert.ok(outcomes.has(r), `no case ended in ${r}`);
  }
});
