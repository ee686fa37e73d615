/**
 * Unit tests of the pure parts of `src/sandbox/host_fs.ts`: open flags → Deno
 * open options, the symlink containment check over a fake in-memory host,
 * and host path kinds. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import { ERRNO } from "../../../src/errno.ts";
import {
  type HostFs,
  hostPathKind,
  isConfined,
  isWithin,
  type LinkInfo,
  OPEN_FLAGS,
  type OpenPlan,
  planOpen,
  tempFileOptions,
} from "../../../src/sandbox/host_fs.ts";

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY } = OPEN_FLAGS;

function plan(flags: number, mode = 0o644): OpenPlan {
  const result = planOpen(flags, mode);
  assert.ok(typeof result !== "number", `flags ${flags.toString(8)} gave ${result}`);
  return result;
}

Deno.test("OPEN_FLAGS.ALLOWED is the OR of the flags dhyve honours (0x106C3)", () => {
  assert.equal(
    OPEN_FLAGS.ALLOWED,
    O_WRONLY | O_RDWR | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY,
  );
  assert.equal(OPEN_FLAGS.ALLOWED, 0x106c3);
});

Deno.test("planOpen() rejects access mode 3 and O_DIRECTORY|O_CREAT with −EINVAL", () => {
  assert.equal(planOpen(3, 0), -ERRNO.EINVAL);
  assert.equal(planOpen(O_DIRECTORY | O_CREAT, 0), -ERRNO.EINVAL);
  assert.equal(planOpen(O_DIRECTORY | O_CREAT | O_RDWR, 0), -ERRNO.EINVAL);
});

Deno.test("planOpen() maps access modes, O_TRUNC and O_APPEND", () => {
  assert.deepEqual(plan(O_RDONLY), {
    readable: true,
    writable: false,
    options: { read: true, write: false, append: false, truncate: false },
    createFallback: undefined,
    directory: false,
  });
  assert.deepEqual(plan(O_WRONLY | O_TRUNC).options, {
    read: false,
    write: true,
    append: false,
    truncate: true,
  });
  assert.deepEqual(plan(O_RDWR | O_APPEND).options, {
    read: true,
    write: true,
    append: true,
    truncate: false,
  });
  // O_TRUNC / O_APPEND without write access are ignored (Deno requires write for both).
  assert.deepEqual(plan(O_RDONLY | O_TRUNC | O_APPEND).options, {
    read: true,
    write: false,
    append: false,
    truncate: false,
  });
  // O_EXCL without O_CREAT is ignored.
  assert.deepEqual(plan(O_RDONLY | O_EXCL).options, plan(O_RDONLY).options);
});

Deno.test("planOpen() maps O_CREAT with and without O_EXCL", () => {
  assert.deepEqual(plan(O_WRONLY | O_CREAT | O_TRUNC, 0o600).options, {
    read: false,
    write: true,
    append: false,
    truncate: true,
    create: true,
    mode: 0o600,
  });
  assert.deepEqual(plan(O_RDWR | O_CREAT | O_EXCL, 0o100640).options, {
    read: true,
    write: true,
    append: false,
    createNew: true,
    mode: 0o640,
  });
  const ro = plan(O_RDONLY | O_CREAT | O_EXCL);
  assert.equal(ro.writable, false);
  assert.equal(ro.options.write, true); // Deno cannot create without write; the fd stays read-only
  const roCreate = plan(O_RDONLY | O_CREAT, 0o444);
  assert.deepEqual(roCreate.options, { read: true });
  assert.deepEqual(roCreate.createFallback, {
    read: true,
    write: true,
    createNew: true,
    mode: 0o444,
  });
  assert.equal(roCreate.writable, false);
});

Deno.test("planOpen() opens O_DIRECTORY read-only, whatever the access mode", () => {
  for (const access of [O_RDONLY, O_WRONLY, O_RDWR]) {
    const p = plan(O_DIRECTORY | access | O_TRUNC);
    assert.deepEqual(p.options, { read: true });
    assert.equal(p.directory, true);
    assert.equal(p.writable, access !== O_RDONLY);
  }
});

Deno.test("tempFileOptions() always creates exclusively, with the guest's access", () => {
  assert.deepEqual(tempFileOptions(plan(O_WRONLY | O_CREAT | O_APPEND), 0o1755), {
    read: false,
    write: true,
    append: true,
    createNew: true,
    mode: 0o1755,
  });
  assert.deepEqual(tempFileOptions(plan(O_RDONLY | O_CREAT), 0o600), {
    read: true,
    write: true,
    append: false,
    createNew: true,
    mode: 0o600,
  });
});

Deno.test("isWithin() compares whole path components", () => {
  assert.equal(isWithin("/a/b", "/a/b"), true);
  assert.equal(isWithin("/a/b", "/a/b/c"), true);
  assert.equal(isWithin("/a/b", "/a/bc"), false);
  assert.equal(isWithin("/a/b", "/a"), false);
  assert.equal(isWithin("/", "/anything"), true);
});

type Entry = { type: "dir" } | { type: "file" } | { type: "link"; target: string };

/** A fake host: a flat table of absolute paths, with symlinks resolved like realpath(3). */
function fakeFs(entries: Record<string, Entry>): HostFs {
  const table = new Map<string, Entry>([["/", { type: "dir" }], ...Object.entries(entries)]);
  function resolve(path: string, depth = 0): string {
    if (depth > 40) throw new Deno.errors.FilesystemLoop(path);
    let real = "/";
    for (const part of path.split("/").filter((p) => p !== "")) {
      const parent = table.get(real);
      if (parent?.type !== "dir") throw new Deno.errors.NotADirectory(real);
      const next = posix.join(real, part);
      const entry = table.get(next);
      if (entry === undefined) throw new Deno.errors.NotFound(next);
      real = entry.type === "link"
        ? resolve(posix.resolve(posix.dirname(next), entry.target), depth + 1)
        : next;
    }
    return real;
  }
  const unused = (): never => {
    throw new Error("not used");
  };
  return {
    realPath: (path) => resolve(path),
    lstat(path): LinkInfo {
      const parent = resolve(posix.dirname(path));
      const entry = table.get(posix.join(parent, posix.basename(path)));
      if (entry === undefined) throw new Deno.errors.NotFound(path);
      return { isDirectory: entry.type === "dir", isSymlink: entry.type === "link" };
    },
    isDirectory: (path) => table.get(resolve(path))?.type === "dir",
    open: unused,
    remove: unused,
    removeTree: unused,
    makeTempDir: unused,
    readStdin: unused,
    stat: unused,
    mkdir: unused,
    readDir: unused,
  };
}

const HOST = fakeFs({
  "/data": { type: "dir" },
  "/data/ok.txt": { type: "file" },
  "/data/sub": { type: "dir" },
  "/data/sub/inner.txt": { type: "file" },
  "/data/to-inner": { type: "link", target: "sub/inner.txt" },
  "/data/to-sub": { type: "link", target: "./sub" },
  "/data/to-passwd": { type: "link", target: "/etc/passwd" },
  "/data/to-etc": { type: "link", target: "../etc" },
  "/data/dangling-out": { type: "link", target: "/etc/newfile" },
  "/data/dangling-in": { type: "link", target: "sub/newfile" },
  "/data/loop": { type: "link", target: "loop" },
  "/etc": { type: "dir" },
  "/etc/passwd": { type: "file" },
  "/link-to-data": { type: "link", target: "/data" },
});

Deno.test("isConfined() accepts files and symlinks that stay inside the mapped directory", () => {
  for (
    const path of [
      "/data/ok.txt",
      "/data/sub/inner.txt",
      "/data/to-inner",
      "/data/to-sub/inner.txt",
      "/data/new.txt", // O_CREAT: does not exist yet
      "/data/sub/new/deeper.txt", // missing directories: the open will fail, not escape
      "/data/to-sub/new.txt",
    ]
  ) {
    assert.equal(isConfined(HOST, "/data", path), true, path);
  }
  // A mapped directory that is itself a link: containment is checked against its target.
  assert.equal(isConfined(HOST, "/link-to-data", "/link-to-data/to-inner"), true);
  assert.equal(isConfined(HOST, "/link-to-data", "/link-to-data/to-passwd"), false);
});

Deno.test("isConfined() refuses symlinks that lead outside, to a file or as a directory prefix", () => {
  for (
    const path of [
      "/data/to-passwd",
      "/data/to-etc/passwd",
      "/data/to-etc/newfile", // O_CREAT through a directory link
      "/data/to-etc/a/b",
    ]
  ) {
    assert.equal(isConfined(HOST, "/data", path), false, path);
  }
});

Deno.test("isConfined() refuses a dangling symlink, wherever it points", () => {
  assert.equal(isConfined(HOST, "/data", "/data/dangling-out"), false);
  assert.equal(isConfined(HOST, "/data", "/data/dangling-in"), false);
});

Deno.test("isConfined() passes host errors through", () => {
  assert.throws(() => isConfined(HOST, "/missing", "/missing/x"), Deno.errors.NotFound);
  assert.throws(() => isConfined(HOST, "/data", "/data/ok.txt/x"), Deno.errors.NotADirectory);
  assert.throws(() => isConfined(HOST, "/data", "/data/loop"), Deno.errors.FilesystemLoop);
});

Deno.test("hostPathKind() classifies directories, files, creatable and invalid paths", () => {
  assert.equal(hostPathKind("/data", HOST), "directory");
  assert.equal(hostPathKind("/data/to-sub", HOST), "directory");
  assert.equal(hostPathKind("/data/ok.txt", HOST), "file");
  assert.equal(hostPathKind("/data/new.txt", HOST), "missing");
  assert.equal(hostPathKind("/nope/new.txt", HOST), "invalid");
  assert.equal(hostPathKind("/data/dangling-out", HOST), "missing");
});
