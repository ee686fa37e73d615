/**
 * Host I/O tests of `src/sandbox/`: a real {@linkcode Sandbox} over the
 * fixtures in `tests/testdata/fs` (read only) and fresh temp directories
 * (everything that writes, and all symlinks, which are made at test time).
 * Run with `deno test --allow-read --allow-write --allow-env tests/sandbox`;
 * some tests narrow the permissions further to check NotCapable handling.
 * @module
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";
import { ERRNO } from "../../src/errno.ts";
import { FileMap } from "../../src/sandbox/file_map.ts";
import { OPEN_FLAGS } from "../../src/sandbox/host_fs.ts";
import { Sandbox, type SandboxOptions } from "../../src/sandbox/sandbox.ts";

const {
  O_RDONLY,
  O_WRONLY,
  O_RDWR,
  O_CREAT,
  O_EXCL,
  O_TRUNC,
  O_APPEND,
  O_DIRECTORY,
  SEEK_SET,
  SEEK_CUR,
  SEEK_END,
} = OPEN_FLAGS;
const FIXTURES = fileURLToPath(new URL("../testdata/fs", import.meta.url));
const HELLO = "Hello from the host!\n";
const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A scratch tree in a fresh temp dir; removed by `[Symbol.dispose]`. */
interface Workspace {
  /** The scratch root. */
  readonly root: string;
  /** `root/data`: mapped at `/data`; holds hello.txt, sub/inner.txt and links. */
  readonly data: string;
  /** `root/secret`: never mapped; holds passwd. */
  readonly secret: string;
  /** `root/tmp`: the sandbox's temp parent. */
  readonly tmp: string;
  [Symbol.dispose](): void;
}

function workspace(): Workspace {
  const root = Deno.makeTempDirSync({ prefix: "dhyve-sandbox-test-" });
  const data = posix.join(root, "data");
  const secret = posix.join(root, "secret");
  const tmp = posix.join(root, "tmp");
  Deno.mkdirSync(posix.join(data, "sub"), { recursive: true });
  Deno.mkdirSync(secret);
  Deno.mkdirSync(tmp);
  Deno.writeTextFileSync(posix.join(data, "hello.txt"), HELLO);
  Deno.writeTextFileSync(posix.join(data, "sub", "inner.txt"), "inner\n");
  Deno.writeTextFileSync(posix.join(secret, "passwd"), "root:x:0:0\n");
  // Links that stay inside the mapped directory…
  Deno.symlinkSync("sub/inner.txt", posix.join(data, "link-in"));
  Deno.symlinkSync("./sub", posix.join(data, "link-in-dir"));
  // …and links that lead out of it: to a file, to a directory, and dangling.
  Deno.symlinkSync(posix.join(secret, "passwd"), posix.join(data, "link-out-file"));
  Deno.symlinkSync("../secret", posix.join(data, "link-out-dir"));
  Deno.symlinkSync(posix.join(secret, "created-through-link"), posix.join(data, "dangling-out"));
  return {
    root,
    data,
    secret,
    tmp,
    [Symbol.dispose](): void {
      Deno.removeSync(root, { recursive: true });
    },
  };
}

function sandboxFor(ws: Workspace, extra: Partial<SandboxOptions> = {}): Sandbox {
  const map = FileMap.fromSpecs([`${ws.data}:/data`, `${FIXTURES}:/fixtures:ro`], "/");
  return new Sandbox({ map, tempDir: ws.tmp, ...extra });
}

function readAll(sandbox: Sandbox, fd: number, chunk = 5): string {
  const buf = new Uint8Array(chunk);
  let text = "";
  for (let i = 0; i < 10_000; i++) {
    const n = sandbox.read(fd, buf);
    assert.ok(n >= 0, `read gave ${n}`);
    if (n === 0) return text;
    text += decoder.decode(buf.subarray(0, n));
  }
  throw new Error("read never reached EOF");
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = posix.join(dir, entry.name);
    out.push(path);
    if (entry.isDirectory) out.push(...listTree(path));
  }
  return out.sort();
}

Deno.test("Sandbox reads a mapped fixture file and a file inside a mapped directory", () => {
  using ws = workspace();
  const map = new FileMap();
  map.addHost("/hello.txt", posix.join(FIXTURES, "hello.txt"));
  map.addHost("/data", ws.data);
  using sandbox = new Sandbox({ map, tempDir: ws.tmp });
  const fd = sandbox.open("/hello.txt", O_RDONLY, 0);
  assert.equal(fd, 3);
  const big = new Uint8Array(100);
  assert.equal(sandbox.read(fd, big), HELLO.length, "a read of N bytes gets the whole file");
  assert.equal(decoder.decode(big.subarray(0, HELLO.length)), HELLO);
  assert.equal(sandbox.read(fd, big), 0);
  const inner = sandbox.open("data/sub/./inner.txt", O_RDONLY, 0);
  assert.equal(readAll(sandbox, inner, 2), "inner\n");
  assert.equal(sandbox.close(fd), 0);
  assert.equal(sandbox.close(inner), 0);
});

Deno.test("Sandbox.read() fills a view of a larger buffer in place", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  const fd = sandbox.open("/fixtures/digits.txt", O_RDONLY, 0);
  const memory = new ArrayBuffer(64);
  const view = new Uint8Array(memory, 16, 10);
  assert.equal(sandbox.read(fd, view), 10);
  const all = new Uint8Array(memory);
  assert.equal(decoder.decode(all.subarray(16, 26)), "0123456789");
  assert.ok(all.subarray(0, 16).every((b) => b === 0));
  assert.ok(all.subarray(26).every((b) => b === 0));
});

Deno.test("Sandbox.lseek() on a host file: SET, CUR, END, past the end, errors", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  const fd = sandbox.open("/fixtures/digits.txt", O_RDONLY, 0);
  const buf = new Uint8Array(3);
  assert.equal(sandbox.lseek(fd, 10, SEEK_SET), 10);
  assert.equal(sandbox.read(fd, buf), 3);
  assert.equal(decoder.decode(buf), "abc");
  assert.equal(sandbox.lseek(fd, 2, SEEK_CUR), 15);
  assert.equal(sandbox.read(fd, buf), 3);
  assert.equal(decoder.decode(buf), "fgh");
  assert.equal(sandbox.lseek(fd, -3, SEEK_END), DIGITS.length - 3);
  assert.equal(sandbox.read(fd, buf), 3);
  assert.equal(decoder.decode(buf), "xyz");
  assert.equal(sandbox.lseek(fd, 0, SEEK_CUR), DIGITS.length);
  assert.equal(sandbox.lseek(fd, 1000, SEEK_SET), 1000);
  assert.equal(sandbox.read(fd, buf), 0);
  assert.equal(sandbox.lseek(fd, -1, SEEK_SET), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(fd, 0, 3), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(fd, 0, -1), -ERRNO.EINVAL);
  assert.equal(sandbox.lseek(77, 0, SEEK_SET), -ERRNO.EBADF);
});

Deno.test("Sandbox creates, writes and reads back a file in a mapped directory", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  const fd = sandbox.open("/data/new.txt", O_CREAT | O_RDWR | O_EXCL, 0o644);
  assert.ok(fd >= 3);
  assert.equal(sandbox.write(fd, encoder.encode("first line\n")), 11);
  assert.equal(sandbox.lseek(fd, 0, SEEK_SET), 0);
  assert.equal(readAll(sandbox, fd), "first line\n");
  assert.equal(sandbox.close(fd), 0);
  assert.equal(Deno.readTextFileSync(posix.join(ws.data, "new.txt")), "first line\n");
  assert.equal(sandbox.open("/data/new.txt", O_CREAT | O_EXCL | O_WRONLY, 0o644), -ERRNO.EEXIST);
  const app = sandbox.open("/data/new.txt", O_WRONLY | O_APPEND, 0);
  assert.equal(sandbox.write(app, encoder.encode("second\n")), 7);
  assert.equal(Deno.readTextFileSync(posix.join(ws.data, "new.txt")), "first line\nsecond\n");
  const trunc = sandbox.open("/data/new.txt", O_WRONLY | O_TRUNC, 0);
  assert.ok(trunc >= 3);
  assert.equal(Deno.readTextFileSync(posix.join(ws.data, "new.txt")), "");
  // O_CREAT|O_RDONLY creates too, and the fd stays read-only.
  const ro = sandbox.open("/data/ro-created.txt", O_CREAT | O_RDONLY, 0o600);
  assert.ok(ro >= 3);
  assert.equal(Deno.statSync(posix.join(ws.data, "ro-created.txt")).isFile, true);
  assert.equal(sandbox.write(ro, encoder.encode("x")), -ERRNO.EBADF);
  assert.equal(sandbox.read(ro, new Uint8Array(4)), 0);
});

Deno.test("Sandbox leaves data on disk after closeAll() without a guest close", () => {
  using ws = workspace();
  const sandbox = sandboxFor(ws);
  const fd = sandbox.open("/data/out.txt", O_CREAT | O_WRONLY, 0o644);
  const payload = encoder.encode("x".repeat(100_000));
  assert.equal(sandbox.write(fd, payload), payload.length);
  sandbox.closeAll();
  sandbox.closeAll();
  assert.equal(Deno.statSync(posix.join(ws.data, "out.txt")).size, payload.length);
  assert.equal(sandbox.write(fd, payload), -ERRNO.EBADF);
  sandbox.dispose();
});

Deno.test("Sandbox.open() gives ENOENT, EISDIR, ENOTDIR and EINVAL where Linux would", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  assert.equal(sandbox.open("/nothing", O_RDONLY, 0), -ERRNO.ENOENT);
  assert.equal(sandbox.open("/data/missing.txt", O_RDONLY, 0), -ERRNO.ENOENT);
  assert.equal(sandbox.open("/data/nodir/new.txt", O_CREAT | O_WRONLY, 0o644), -ERRNO.ENOENT);
  assert.equal(sandbox.open("/data/hello.txt/x", O_RDONLY, 0), -ERRNO.ENOTDIR);
  assert.equal(sandbox.open("/data/hello.txt", O_DIRECTORY, 0), -ERRNO.ENOTDIR);
  assert.equal(sandbox.open("/data/sub", O_DIRECTORY | O_CREAT, 0), -ERRNO.EINVAL);
  assert.equal(sandbox.open("/data/sub", O_WRONLY, 0), -ERRNO.EISDIR);
  assert.equal(sandbox.open("/data/sub", O_DIRECTORY | O_RDWR, 0), -ERRNO.EISDIR);
  const dir = sandbox.open("/data/sub", O_DIRECTORY, 0);
  assert.ok(dir >= 3);
  assert.equal(sandbox.read(dir, new Uint8Array(8)), -ERRNO.EISDIR);
  const plain = sandbox.open("/data", O_RDONLY, 0);
  assert.ok(plain >= 3, "a directory opens read-only without O_DIRECTORY, as on Linux");
  assert.equal(sandbox.read(plain, new Uint8Array(8)), -ERRNO.EISDIR);
});

Deno.test("Sandbox: '..' never reaches the host outside a mapped directory", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  for (
    const path of [
      "/data/../../etc/passwd",
      "/data/../secret/passwd",
      "data/../../../../../../etc/passwd",
      `/data/../${ws.secret.slice(1)}/passwd`,
    ]
  ) {
    assert.equal(sandbox.open(path, O_RDONLY, 0), -ERRNO.ENOENT, path);
  }
  // With O_CREAT the file lands in the temp dir, not at the host path the guest spelled.
  const fd = sandbox.open("/data/../../etc/dhyve-escape-test", O_CREAT | O_WRONLY, 0o644);
  assert.ok(fd >= 3);
  assert.throws(() => Deno.statSync("/etc/dhyve-escape-test"), Deno.errors.NotFound);
  assert.equal(sandbox.open("/data/sub/../../data/hello.txt", O_RDONLY, 0) >= 3, true);
});

Deno.test("Sandbox refuses a symlink inside a mapped directory that points to a file outside", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  assert.equal(sandbox.open("/data/link-out-file", O_RDONLY, 0), -ERRNO.EACCES);
  assert.equal(sandbox.open("/data/link-out-file", O_WRONLY | O_TRUNC, 0), -ERRNO.EACCES);
  assert.equal(Deno.readTextFileSync(posix.join(ws.secret, "passwd")), "root:x:0:0\n");
});

Deno.test("Sandbox refuses a symlink to a directory outside used as a path prefix", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  assert.equal(sandbox.open("/data/link-out-dir/passwd", O_RDONLY, 0), -ERRNO.EACCES);
  assert.equal(
    sandbox.open("/data/link-out-dir/planted", O_CREAT | O_WRONLY, 0o644),
    -ERRNO.EACCES,
  );
  assert.equal(sandbox.unlink("/data/link-out-dir/passwd"), -ERRNO.EACCES);
  assert.deepEqual(listTree(ws.secret), [posix.join(ws.secret, "passwd")]);
});

Deno.test("Sandbox refuses a dangling symlink that would create a file outside", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  assert.equal(sandbox.open("/data/dangling-out", O_CREAT | O_WRONLY, 0o644), -ERRNO.EACCES);
  assert.deepEqual(listTree(ws.secret), [posix.join(ws.secret, "passwd")]);
});

Deno.test("Sandbox follows symlinks that stay inside a mapped directory", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws);
  assert.equal(readAll(sandbox, sandbox.open("/data/link-in", O_RDONLY, 0)), "inner\n");
  assert.equal(
    readAll(sandbox, sandbox.open("/data/link-in-dir/inner.txt", O_RDONLY, 0)),
    "inner\n",
  );
  const fd = sandbox.open("/data/link-in-dir/made.txt", O_CREAT | O_WRONLY, 0o644);
  assert.ok(fd >= 3);
  assert.equal(Deno.statSync(posix.join(ws.data, "sub", "made.txt")).isFile, true);
});

Deno.test("Sandbox allows a mapping whose host path is itself a link (the user chose it)", () => {
  using ws = workspace();
  const map = new FileMap();
  map.addHost("/passwd", posix.join(ws.data, "link-out-file"));
  const linkToData = posix.join(ws.root, "link-to-data");
  Deno.symlinkSync(ws.data, linkToData);
  map.addHost("/viadir", linkToData);
  using sandbox = new Sandbox({ map, tempDir: ws.tmp });
  assert.equal(readAll(sandbox, sandbox.open("/passwd", O_RDONLY, 0)), "root:x:0:0\n");
  assert.equal(readAll(sandbox, sandbox.open("/viadir/hello.txt", O_RDONLY, 0)), HELLO);
  assert.equal(readAll(sandbox, sandbox.open("/viadir/link-in", O_RDONLY, 0)), "inner\n");
  // Containment is checked against the link's target, so links out of it are still refused.
  assert.equal(sandbox.open("/viadir/link-out-file", O_RDONLY, 0), -ERRNO.EACCES);
});

Deno.test("Sandbox creates an unmapped O_CREAT file in its temp dir only; dispose() removes it", () => {
  using ws = workspace();
  const before = listTree(ws.root);
  const sandbox = sandboxFor(ws);
  assert.equal(sandbox.open("/nothing", O_RDONLY, 0), -ERRNO.ENOENT);
  assert.equal(sandbox.tempDir, undefined, "no temp dir until the guest creates a file");
  assert.deepEqual(listTree(ws.root), before);
  const fd = sandbox.open("/scratch/log.txt", O_CREAT | O_RDWR, 0o600);
  assert.equal(fd, 3);
  const tempDir = sandbox.tempDir!;
  assert.equal(posix.dirname(tempDir), ws.tmp);
  assert.match(posix.basename(tempDir), /^dhyve-/);
  assert.equal(Deno.statSync(tempDir).mode! & 0o777, 0o700);
  assert.equal(sandbox.write(fd, encoder.encode("scratch data")), 12);
  const created = listTree(ws.root).filter((p) => !before.includes(p));
  assert.equal(created.length, 2, created.join(", "));
  assert.equal(created[0], tempDir);
  assert.match(created[1]!, /\/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(Deno.readTextFileSync(created[1]!), "scratch data");
  // The guest finds it again by name for the rest of the run.
  const again = sandbox.open("/scratch/log.txt", O_RDONLY, 0);
  assert.equal(readAll(sandbox, again), "scratch data");
  assert.equal(sandbox.open("/scratch/log.txt", O_CREAT | O_EXCL | O_RDWR, 0o600), -ERRNO.EEXIST);
  sandbox.dispose();
  sandbox.dispose();
  assert.deepEqual(listTree(ws.root), before);
  assert.equal(sandbox.tempDir, undefined);
});

Deno.test("Sandbox uses the OS temp dir by default and cleans it up", () => {
  using sandbox = new Sandbox({ map: new FileMap() });
  const fd = sandbox.open("/t.txt", O_CREAT | O_WRONLY, 0o600);
  assert.ok(fd >= 3);
  const dir = sandbox.tempDir!;
  const tmpdir = Deno.env.get("TMPDIR") ?? "/tmp";
  assert.equal(posix.dirname(dir), posix.resolve(tmpdir));
  sandbox.dispose();
  assert.throws(() => Deno.statSync(dir), Deno.errors.NotFound);
});

Deno.test("Sandbox.unlink() removes mapped leaves, files in mapped dirs and temp files", () => {
  using ws = workspace();
  const lone = posix.join(ws.root, "lone.txt");
  Deno.writeTextFileSync(lone, "lone");
  const map = FileMap.fromSpecs([`${ws.data}:/data`, `${lone}:/lone.txt`], "/");
  map.addVirtual("/img/v.txt", encoder.encode("v"));
  using sandbox = new Sandbox({ map, tempDir: ws.tmp });
  // A file inside a mapped directory.
  assert.equal(sandbox.unlink("/data/hello.txt"), 0);
  assert.throws(() => Deno.statSync(posix.join(ws.data, "hello.txt")), Deno.errors.NotFound);
  assert.equal(sandbox.unlink("/data/hello.txt"), -ERRNO.ENOENT);
  // An exact leaf: removed on the host and from the map, even while open.
  const open = sandbox.open("/lone.txt", O_RDONLY, 0);
  assert.equal(sandbox.unlink("/lone.txt"), 0);
  assert.throws(() => Deno.statSync(lone), Deno.errors.NotFound);
  assert.equal(readAll(sandbox, open), "lone", "an open fd stays usable after unlink");
  assert.equal(sandbox.open("/lone.txt", O_RDONLY, 0), -ERRNO.ENOENT);
  // A link inside a mapped dir: the link goes, not its target.
  assert.equal(sandbox.unlink("/data/link-out-file"), 0);
  assert.equal(Deno.readTextFileSync(posix.join(ws.secret, "passwd")), "root:x:0:0\n");
  // Directories are never unlinked.
  assert.equal(sandbox.unlink("/data/sub"), -ERRNO.EISDIR);
  assert.equal(sandbox.unlink("/data"), -ERRNO.EISDIR);
  assert.ok(Deno.statSync(ws.data).isDirectory);
  // Virtual files and map directories.
  assert.equal(sandbox.unlink("/img"), -ERRNO.ENOTEMPTY);
  assert.equal(sandbox.unlink("/img/v.txt"), 0);
  assert.equal(sandbox.open("/img/v.txt", O_RDONLY, 0), -ERRNO.ENOENT);
  assert.equal(sandbox.unlink("/img"), 0);
  assert.equal(sandbox.unlink("/"), -ERRNO.EISDIR);
  // Temp files.
  const fd = sandbox.open("/t.txt", O_CREAT | O_WRONLY, 0o600);
  assert.equal(sandbox.close(fd), 0);
  assert.equal(listTree(sandbox.tempDir!).length, 1);
  assert.equal(sandbox.unlink("/t.txt"), 0);
  assert.deepEqual(listTree(sandbox.tempDir!), []);
  assert.equal(sandbox.unlink("/nothing"), -ERRNO.ENOENT);
  assert.equal(sandbox.unlink("/data/a\0b"), -ERRNO.EINVAL);
});

Deno.test("Sandbox gives EMFILE at the open-file limit, without touching the host", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws, { maxOpenFiles: 4 });
  const fds = [0, 1, 2, 3].map(() => sandbox.open("/data/hello.txt", O_RDONLY, 0));
  assert.deepEqual(fds, [3, 4, 5, 6]);
  assert.equal(sandbox.open("/data/hello.txt", O_RDONLY, 0), -ERRNO.EMFILE);
  assert.equal(sandbox.open("/new-temp", O_CREAT | O_WRONLY, 0o600), -ERRNO.EMFILE);
  assert.equal(sandbox.tempDir, undefined);
  assert.equal(sandbox.close(5), 0);
  assert.equal(sandbox.open("/data/hello.txt", O_RDONLY, 0), 5);
});

Deno.test("Sandbox honours :ro mappings with EROFS", () => {
  using ws = workspace();
  using sandbox = new Sandbox({
    map: FileMap.fromSpecs([`${ws.data}:/data:ro`], "/"),
    tempDir: ws.tmp,
  });
  assert.equal(readAll(sandbox, sandbox.open("/data/hello.txt", O_RDONLY, 0)), HELLO);
  assert.equal(sandbox.open("/data/hello.txt", O_WRONLY, 0), -ERRNO.EROFS);
  assert.equal(sandbox.open("/data/hello.txt", O_RDWR | O_TRUNC, 0), -ERRNO.EROFS);
  assert.equal(sandbox.open("/data/new.txt", O_CREAT | O_RDONLY, 0o644), -ERRNO.EROFS);
  assert.equal(sandbox.open("/data/new.txt", O_CREAT | O_EXCL | O_RDONLY, 0o644), -ERRNO.EROFS);
  assert.equal(sandbox.unlink("/data/hello.txt"), -ERRNO.EROFS);
  assert.equal(Deno.readTextFileSync(posix.join(ws.data, "hello.txt")), HELLO);
  assert.throws(() => Deno.statSync(posix.join(ws.data, "new.txt")), Deno.errors.NotFound);
});

Deno.test("Sandbox limits temp files to maxTempBytes with ENOSPC", () => {
  using ws = workspace();
  using sandbox = sandboxFor(ws, { maxTempBytes: 10 });
  const a = sandbox.open("/a", O_CREAT | O_RDWR, 0o600);
  assert.equal(sandbox.write(a, encoder.encode("123456")), 6);
  const b = sandbox.open("/b", O_CREAT | O_WRONLY, 0o600);
  assert.equal(sandbox.write(b, encoder.encode("abcdef")), 4, "a partial write up to the limit");
  assert.equal(sandbox.write(b, encoder.encode("g")), -ERRNO.ENOSPC);
  // Overwriting inside a file needs no new space.
  assert.equal(sandbox.lseek(a, 0, SEEK_SET), 0);
  assert.equal(sandbox.write(a, encoder.encode("XYZ")), 3);
  // Unlinking a temp file frees its space once no fd holds it.
  assert.equal(sandbox.unlink("/a"), 0);
  assert.equal(sandbox.write(b, encoder.encode("g")), -ERRNO.ENOSPC, "fd a still holds it");
  assert.equal(sandbox.close(a), 0);
  assert.equal(sandbox.write(b, encoder.encode("ghijkl")), 6);
  // Mapped (non-temp) files are not limited.
  const m = sandbox.open("/data/big.txt", O_CREAT | O_WRONLY, 0o644);
  assert.equal(sandbox.write(m, new Uint8Array(100)), 100);
});

Deno.test({
  name: "Sandbox turns a missing --allow-write into EACCES plus one warning naming the flag",
  permissions: { read: [FIXTURES], write: false },
  fn(): void {
    const warnings: string[] = [];
    const map = FileMap.fromSpecs([`${FIXTURES}:/fixtures`], "/");
    using sandbox = new Sandbox({ map, warn: (m) => warnings.push(m) });
    assert.equal(sandbox.open("/fixtures/hello.txt", O_WRONLY, 0), -ERRNO.EACCES);
    assert.equal(sandbox.open("/fixtures/hello.txt", O_RDWR | O_APPEND, 0), -ERRNO.EACCES);
    assert.equal(sandbox.unlink("/fixtures/hello.txt"), -ERRNO.EACCES);
    assert.equal(sandbox.open("/unmapped.txt", O_CREAT | O_WRONLY, 0o600), -ERRNO.EACCES);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /--allow-write/);
    assert.match(warnings[0]!, /hello\.txt/);
    // Reading is still allowed.
    const fd = sandbox.open("/fixtures/hello.txt", O_RDONLY, 0);
    assert.equal(readAll(sandbox, fd), HELLO);
    assert.equal(Deno.readTextFileSync(posix.join(FIXTURES, "hello.txt")), HELLO);
  },
});

Deno.test({
  name: "Sandbox turns a missing --allow-read into EACCES plus one warning naming the flag",
  permissions: { read: [posix.join(FIXTURES, "dir")], write: false },
  fn(): void {
    const warnings: string[] = [];
    const map = FileMap.fromSpecs([`${FIXTURES}:/fixtures`], "/");
    using sandbox = new Sandbox({ map, warn: (m) => warnings.push(m) });
    assert.equal(sandbox.open("/fixtures/hello.txt", O_RDONLY, 0), -ERRNO.EACCES);
    assert.equal(sandbox.open("/fixtures/digits.txt", O_RDONLY, 0), -ERRNO.EACCES);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /--allow-read/);
  },
});
