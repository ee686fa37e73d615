/**
 * The pure parts of the Deno permission fence (`src/permissions.ts`): which
 * scopes a run needs and the minimal command line. Runs with no permissions,
 * so any file access would fail with NotCapable.
 * @module
 */

import assert from "node:assert/strict";
import {
  denoCommandLine,
  type PermissionInput,
  requiredPermissions,
  shellQuote,
} from "../../src/permissions.ts";

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

function input(overrides: Partial<PermissionInput> = {}): PermissionInput {
  return {
    kernel: "/home/u/app/hello",
    mappings: [],
    tempDir: null,
    output: null,
    envHost: false,
    libcPath: LIBC,
    ...overrides,
  };
}

Deno.test("requiredPermissions() of a bare run: read the kernel, FFI on libc only", () => {
  const req = requiredPermissions(input());
  assert.deepEqual(req.read, ["/home/u/app/hello"]);
  assert.deepEqual(req.write, []);
  assert.deepEqual(req.ffi, [LIBC]);
  assert.equal(req.env, false);
  assert.equal(req.reasons["/home/u/app/hello"], "the kernel");
});

Deno.test("requiredPermissions() covers mappings, the temp dir and the output file", () => {
  const req = requiredPermissions(input({
    mappings: [
      { host: "/data", writable: false, guest: "/root/data" },
      { host: "/home/u/out", writable: true, guest: "/root/out" },
    ],
    tempDir: "/tmp/dhyve-1000",
    output: "/home/u/serial.log",
    envHost: true,
  }));
  assert.deepEqual(req.read, ["/home/u/app/hello", "/data", "/home/u/out", "/tmp/dhyve-1000"]);
  assert.deepEqual(req.write, ["/home/u/out", "/tmp/dhyve-1000", "/home/u/serial.log"]);
  assert.equal(req.env, true);
  assert.equal(req.reasons["/data"], "file mapping /data:/root/data");
  assert.equal(req.reasons["/home/u/out"], "file mapping /home/u/out:/root/out");
  assert.equal(req.reasons["/tmp/dhyve-1000"], "the temp dir");
  assert.equal(req.reasons["/home/u/serial.log"], "the output file");
});

Deno.test("requiredPermissions() needs write on writable mappings only", () => {
  // Missing or not: Deno's write scope on a missing path lets the guest create
  // it, and a read-only mapping that does not exist cannot be created (EROFS).
  const req = requiredPermissions(input({
    mappings: [
      { host: "/home/u/new.txt", writable: true },
      { host: "/home/u/ro-missing.txt", writable: false },
    ],
  }));
  assert.deepEqual(req.read, ["/home/u/app/hello", "/home/u/new.txt", "/home/u/ro-missing.txt"]);
  assert.deepEqual(req.write, ["/home/u/new.txt"]);
  assert.equal(req.reasons["/home/u/new.txt"], "file mapping /home/u/new.txt");
});

Deno.test("requiredPermissions() deduplicates and drops paths a listed directory covers", () => {
  const req = requiredPermissions(input({
    kernel: "/home/u/app/hello",
    mappings: [
      { host: "/home/u/app/data/x", writable: true },
      { host: "/home/u/app", writable: false },
      { host: "/home/u/app/", writable: false },
      { host: "/home/u/application", writable: true },
      { host: "/home/u/app/data", writable: true },
    ],
  }));
  // "/home/u/application" is a sibling, not beneath "/home/u/app".
  assert.deepEqual(req.read, ["/home/u/app", "/home/u/application"]);
  assert.deepEqual(req.write, ["/home/u/application", "/home/u/app/data"]);
  assert.equal(req.reasons["/home/u/app"], "file mapping /home/u/app");
});

Deno.test("requiredPermissions(): the root directory covers everything", () => {
  const req = requiredPermissions(input({
    mappings: [{ host: "/", writable: true }],
    output: "/tmp/out",
  }));
  assert.deepEqual(req.read, ["/"]);
  assert.deepEqual(req.write, ["/"]);
});

Deno.test("requiredPermissions() makes relative and unclean paths absolute against cwd", () => {
  const req = requiredPermissions(
    input({
      kernel: "hello",
      mappings: [{ host: "./out/../out", writable: true, guest: "/root/out" }],
      output: "/home/u//logs/./serial",
    }),
    { cwd: "/home/u/app" },
  );
  assert.deepEqual(req.read, ["/home/u/app/hello", "/home/u/app/out"]);
  assert.deepEqual(req.write, ["/home/u/app/out", "/home/u/logs/serial"]);
});

Deno.test("requiredPermissions() adds dhyve's modules when vCPU Workers load them", () => {
  const req = requiredPermissions(input({ workerModules: "/opt/dhyve/src" }));
  assert.deepEqual(req.read, ["/home/u/app/hello", "/opt/dhyve/src"]);
  assert.equal(req.reasons["/opt/dhyve/src"], "the vCPU Workers' modules");
});

Deno.test("denoCommandLine() gives the minimal deno run line", () => {
  const req = requiredPermissions(input({
    mappings: [
      { host: "/data", writable: false },
      { host: "/home/u/out", writable: true },
    ],
  }));
  assert.equal(
    denoCommandLine(req, "main.ts", ["--file-mapping", "/data:/root/data", "/home/u/app/hello"]),
    `deno run --allow-ffi --allow-read=/home/u/app/hello,/data,/home/u/out ` +
      "--allow-write=/home/u/out main.ts --file-mapping /data:/root/data /home/u/app/hello",
  );
});

Deno.test("denoCommandLine() leaves out empty scopes and adds --allow-env for -e host", () => {
  assert.equal(
    denoCommandLine(requiredPermissions(input()), "/opt/dhyve/main.ts", ["/home/u/app/hello"]),
    `deno run --allow-ffi --allow-read=/home/u/app/hello /opt/dhyve/main.ts ` +
      "/home/u/app/hello",
  );
  assert.equal(
    denoCommandLine(requiredPermissions(input({ envHost: true })), "main.ts", ["-e", "host", "k"]),
    `deno run --allow-ffi --allow-read=/home/u/app/hello --allow-env main.ts -e host k`,
  );
});

Deno.test("denoCommandLine() shell-quotes paths and arguments that need it", () => {
  const req = requiredPermissions(input({
    kernel: "/home/u/my app/hello",
    mappings: [{ host: "/home/u/it's", writable: true }],
  }));
  assert.equal(
    denoCommandLine(req, "main.ts", ["/home/u/my app/hello", "--", "a b", "$HOME", ""]),
    `deno run --allow-ffi '--allow-read=/home/u/my app/hello,/home/u/it'\\''s' ` +
      `'--allow-write=/home/u/it'\\''s' main.ts '/home/u/my app/hello' -- 'a b' '$HOME' ''`,
  );
});

Deno.test("denoCommandLine() names the nearest comma-free parent of a path with a comma", () => {
  const req = requiredPermissions(input({
    kernel: "/opt/kernels/hello",
    mappings: [{ host: "/home/u/a,b/data", writable: true }],
  }));
  assert.equal(
    denoCommandLine(req, "main.ts", ["/opt/kernels/hello"]),
    `deno run --allow-ffi --allow-read=/opt/kernels/hello,/home/u ` +
      "--allow-write=/home/u main.ts /opt/kernels/hello",
  );
  // The covering parent also swallows what lies beneath it.
  const covered = requiredPermissions(input({
    kernel: "/home/u/app/hello",
    mappings: [{ host: "/home/u/a,b", writable: false }],
  }));
  assert.match(denoCommandLine(covered, "main.ts", []), / --allow-read=\/home\/u main\.ts$/);
});

Deno.test("denoCommandLine() for a compiled binary rebuilds it with the flags, then runs it", () => {
  assert.equal(
    denoCommandLine(requiredPermissions(input()), "dhyve", ["/home/u/app/hello"]),
    `deno compile --allow-ffi --allow-read=/home/u/app/hello --output dhyve main.ts ` +
      "&& ./dhyve /home/u/app/hello",
  );
});

Deno.test("the GDB stub needs --allow-net on loopback, in deno run and deno compile lines", () => {
  const req = requiredPermissions(input({ gdbStub: true }));
  assert.deepEqual(req.net, ["127.0.0.1", "[::1]"]);
  assert.equal(req.reasons["127.0.0.1"], "the GDB stub");
  assert.deepEqual(requiredPermissions(input()).net, [], "no stub, no network");
  assert.equal(
    denoCommandLine(req, "main.ts", ["-s", "1234", "/home/u/app/hello"]),
    "deno run --allow-net=127.0.0.1,[::1] --allow-ffi --allow-read=/home/u/app/hello main.ts " +
      "-s 1234 /home/u/app/hello",
  );
  assert.match(
    denoCommandLine(req, "dhyve", []),
    /^deno compile --allow-net=127\.0\.0\.1,\[::1\] /,
  );
});

Deno.test("shellQuote() quotes only when needed", () => {
  assert.equal(shellQuote("/a/b-c_d.e:f=g,h@i%j+k"), "/a/b-c_d.e:f=g,h@i%j+k");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("*"), "'*'");
});
