/**
 * Unit tests of `src/sandbox/file_map.ts`: path cleaning, `--file-mapping`
 * parsing, the tree rules, lexical resolution, removal, mounts and host
 * paths. Runs with no permissions (mounts get a fake `kindOf`).
 * @module
 */

import assert from "node:assert/strict";
import {
  cleanGuestPath,
  FileMap,
  FileMapError,
  parseMapping,
} from "../../../src/sandbox/file_map.ts";
import type { HostPathKind } from "../../../src/sandbox/host_fs.ts";

Deno.test("cleanGuestPath() removes ., .., // and the leading and trailing /", () => {
  const cases: [string, string][] = [
    ["/a/b", "a/b"],
    ["a/b", "a/b"],
    ["//a/./c/../b/", "a/b"],
    ["/", ""],
    ["", ""],
    [".", ""],
    ["/a/../..", ""],
    ["/data/../../etc/passwd", "etc/passwd"],
    ["../../x", "x"],
    ["a/b/../../../../c/./d//e", "c/d/e"],
    ["/a/.../b", "a/.../b"],
  ];
  for (const [input, expected] of cases) assert.equal(cleanGuestPath(input), expected, input);
});

Deno.test("parseMapping() makes the host path absolute against cwd and cleans both sides", () => {
  assert.deepEqual(parseMapping("data:/root/data", "/home/u"), {
    hostPath: "/home/u/data",
    guestPath: "/root/data",
    readOnly: false,
  });
  assert.deepEqual(parseMapping("./a/../b/:x//y/./", "/w"), {
    hostPath: "/w/b",
    guestPath: "/x/y",
    readOnly: false,
  });
  assert.equal(parseMapping("/abs/f.txt:f.txt", "/w").hostPath, "/abs/f.txt");
  assert.equal(parseMapping("../up:g", "/w/v").hostPath, "/w/up");
});

Deno.test("parseMapping() splits at the first ':' and reads a trailing :ro / :rw", () => {
  assert.deepEqual(parseMapping("h:/g:with:colons", "/w"), {
    hostPath: "/w/h",
    guestPath: "/g:with:colons",
    readOnly: false,
  });
  assert.equal(parseMapping("h:/g:ro", "/w").readOnly, true);
  assert.equal(parseMapping("h:/g:ro", "/w").guestPath, "/g");
  assert.equal(parseMapping("h:/g:rw", "/w").readOnly, false);
  assert.equal(parseMapping("h:/g:rw", "/w").guestPath, "/g");
});

Deno.test("parseMapping() rejects a missing ':', empty sides, the root and NUL bytes", () => {
  for (const spec of ["nocolon", ":/g", "h:", "h::ro", "h:/", "h:/..", "h:.", "h\0:/g", "h:/g\0"]) {
    assert.throws(() => parseMapping(spec, "/w"), FileMapError, spec);
  }
  assert.throws(() => parseMapping("h:/g", "relative"), FileMapError);
  const error = (() => {
    try {
      parseMapping("nocolon", "/w");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof TypeError);
  assert.match(
    (error as Error).message,
    /^Cannot parse file mapping "nocolon": expected HOST:GUEST$/,
  );
});

Deno.test("FileMap.addHost() rejects the same guest path twice, in any spelling", () => {
  const map = new FileMap();
  map.addHost("/a/b", "/h/1");
  assert.throws(
    () => map.addHost("a/b", "/h/2"),
    /Cannot map guest path "\/a\/b": it is already mapped/,
  );
  assert.throws(() => map.addHost("/a/./x/../b/", "/h/2"), FileMapError);
  assert.throws(() => map.addVirtual("/a/b", new Uint8Array()), FileMapError);
});

Deno.test("FileMap.addHost() rejects a path below a mapped leaf", () => {
  const map = new FileMap();
  map.addHost("/x", "/h/x");
  assert.throws(
    () => map.addHost("/x/y", "/h/y"),
    /Cannot map guest path "\/x\/y": "\/x" is already mapped .*nothing can be mapped below it/,
  );
  map.addVirtual("/v", new Uint8Array(1));
  assert.throws(() => map.addHost("/v/w/z", "/h/z"), FileMapError);
});

Deno.test("FileMap.addHost() rejects a leaf where a directory of mappings exists", () => {
  const map = new FileMap();
  map.addHost("/x/y", "/h/y");
  assert.throws(
    () => map.addHost("/x", "/h/x"),
    /"\/x": it is already a directory of other mappings/,
  );
  assert.throws(() => map.addVirtual("x/", new Uint8Array()), FileMapError);
  // A refused insert leaves the map as it was.
  assert.deepEqual(map.resolve("/x"), { kind: "directory", empty: false, root: false });
});

Deno.test("FileMap.addHost() rejects relative host paths and the root as guest path", () => {
  const map = new FileMap();
  assert.throws(() => map.addHost("/g", "rel/path"), FileMapError);
  assert.throws(() => map.addHost("/", "/h"), /it is the root/);
  assert.throws(() => map.addHost("/a/..", "/h"), /it is the root/);
});

Deno.test("FileMap.fromSpecs() builds the map and stops at the first bad spec", () => {
  const map = FileMap.fromSpecs(["a:/x/a", "b:/x/b:ro"], "/w");
  assert.deepEqual(map.hostPaths(), [
    { guestPath: "/x/a", hostPath: "/w/a", writable: true },
    { guestPath: "/x/b", hostPath: "/w/b", writable: false },
  ]);
  assert.throws(() => FileMap.fromSpecs(["a:/x", "b:/x"], "/w"), FileMapError);
});

Deno.test("FileMap.resolve() finds host leaves and paths inside mapped directories", () => {
  const map = new FileMap();
  map.addHost("/root/data", "/host/data");
  map.addHost("/f.txt", "/host/file.txt", { readOnly: true });
  assert.deepEqual(map.resolve("/root/data"), {
    kind: "host",
    hostPath: "/host/data",
    base: "/host/data",
    rest: "",
    readOnly: false,
    temp: false,
  });
  assert.deepEqual(map.resolve("root/data//sub/./x.txt"), {
    kind: "host",
    hostPath: "/host/data/sub/x.txt",
    base: "/host/data",
    rest: "sub/x.txt",
    readOnly: false,
    temp: false,
  });
  assert.deepEqual(map.resolve("/f.txt"), {
    kind: "host",
    hostPath: "/host/file.txt",
    base: "/host/file.txt",
    rest: "",
    readOnly: true,
    temp: false,
  });
});

Deno.test("FileMap.resolve() never lets '..' leave a mapped directory", () => {
  const map = new FileMap();
  map.addHost("/data", "/host/data");
  assert.deepEqual(map.resolve("/data/../../etc/passwd"), { kind: "none" });
  assert.deepEqual(map.resolve("/data/sub/../../../etc/passwd"), { kind: "none" });
  const inside = map.resolve("/data/a/../../data/b");
  assert.equal(inside.kind, "host");
  assert.equal(inside.kind === "host" ? inside.hostPath : "", "/host/data/b");
  // Whatever the guest sends, a host path is the mapped path plus clean components.
  for (const p of ["/data/..", "/data/../data/../..", "data/../../../../host/data/x"]) {
    const r = map.resolve(p);
    if (r.kind === "host") assert.ok(r.hostPath.startsWith("/host/data"), p);
  }
});

Deno.test("FileMap.resolve() handles virtual files, directories and unmapped paths", () => {
  const bytes = new Uint8Array([1, 2, 3]);
  const map = new FileMap();
  map.addVirtual("/img/etc/hosts", bytes);
  map.addHost("/img/data", "/h/data");
  const found = map.resolve("img/etc/hosts");
  assert.equal(found.kind, "virtual");
  assert.equal(found.kind === "virtual" && found.bytes, bytes);
  assert.deepEqual(map.resolve("/img/etc/hosts/x"), { kind: "none" });
  assert.deepEqual(map.resolve("/img/etc"), { kind: "directory", empty: false, root: false });
  assert.deepEqual(map.resolve("/"), { kind: "directory", empty: false, root: true });
  assert.deepEqual(map.resolve(""), { kind: "directory", empty: false, root: true });
  assert.deepEqual(map.resolve("/nope"), { kind: "none" });
  assert.deepEqual(map.resolve("/img/nope"), { kind: "none" });
  assert.deepEqual(new FileMap().resolve("/"), { kind: "directory", empty: true, root: true });
});

Deno.test("FileMap.insertTemp() adds a temp leaf where the path is free, else returns false", () => {
  const map = new FileMap();
  map.addVirtual("/v", new Uint8Array());
  map.addHost("/d/f", "/h/f");
  assert.equal(map.insertTemp("/new/file", "/tmp/t/1"), true);
  assert.deepEqual(map.resolve("/new/file"), {
    kind: "host",
    hostPath: "/tmp/t/1",
    base: "/tmp/t/1",
    rest: "",
    readOnly: false,
    temp: true,
  });
  assert.equal(map.insertTemp("/new/file", "/tmp/t/2"), false);
  assert.equal(map.insertTemp("/v/below", "/tmp/t/3"), false);
  assert.equal(map.insertTemp("/d", "/tmp/t/4"), false);
  assert.equal(map.insertTemp("/", "/tmp/t/5"), false);
  assert.equal(map.insertTemp("/d/g", "/tmp/t/6"), true);
  // Temp files are not user mappings.
  assert.deepEqual(map.hostPaths(), [{ guestPath: "/d/f", hostPath: "/h/f", writable: true }]);
});

Deno.test("FileMap.remove() drops leaves and empty directories only", () => {
  const map = new FileMap();
  map.addHost("/a/b/c", "/h/c");
  map.addVirtual("/v", new Uint8Array());
  assert.equal(map.remove("/a/b"), false); // not empty
  assert.equal(map.remove("/a/b/c/d"), false); // below a leaf
  assert.equal(map.remove("/"), false);
  assert.equal(map.remove("/nope"), false);
  assert.equal(map.remove("a//b/./c"), true);
  assert.deepEqual(map.resolve("/a/b/c"), { kind: "none" });
  assert.deepEqual(map.resolve("/a/b"), { kind: "directory", empty: true, root: false });
  assert.equal(map.remove("/a/b"), true);
  assert.equal(map.remove("/v"), true);
  assert.deepEqual(map.resolve("/v"), { kind: "none" });
  // A removed name can be mapped again.
  map.addHost("/a/b/c", "/h/c2");
});

Deno.test("FileMap.mounts() lists directory leaves and directories holding files, never /", () => {
  const kinds: Record<string, HostPathKind> = {
    "/h/data": "directory",
    "/h/file.txt": "file",
    "/h/new.txt": "missing",
    "/h/gone": "invalid",
    "/h/deep": "directory",
  };
  const map = new FileMap();
  map.addHost("/root/data", "/h/data");
  map.addHost("/etc/file.txt", "/h/file.txt");
  map.addHost("/out/new.txt", "/h/new.txt");
  map.addHost("/bad/gone", "/h/gone");
  map.addVirtual("/top.txt", new Uint8Array());
  map.addVirtual("/img/a/b.txt", new Uint8Array());
  map.addHost("/img/a/c/deep", "/h/deep");
  const seen: string[] = [];
  const mounts = map.mounts((p) => {
    seen.push(p);
    return kinds[p] ?? "invalid";
  });
  assert.deepEqual(mounts, ["/root/data", "/etc", "/out", "/img/a", "/img/a/c/deep"]);
  assert.deepEqual(seen.sort(), Object.keys(kinds).sort());
  assert.deepEqual(new FileMap().mounts(() => "file"), []);
});

Deno.test("FileMap.hostPaths() lists user mappings with their access", () => {
  const map = new FileMap();
  map.addHost("/a", "/h/a");
  map.addVirtual("/v", new Uint8Array());
  map.addHost("/b/c", "/h/c", { readOnly: true });
  assert.deepEqual(map.hostPaths(), [
    { guestPath: "/a", hostPath: "/h/a", writable: true },
    { guestPath: "/b/c", hostPath: "/h/c", writable: false },
  ]);
});
