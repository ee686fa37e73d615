/**
 * {@linkcode checkGranted} against real, narrowed Deno permissions: each test
 * grants a subset of what a run needs and expects the one line naming what is
 * missing. Paths need not exist (permission queries are lexical). Runs in the
 * sandbox group (`--allow-read --allow-write --allow-env`); tests only narrow.
 * @module
 */

import assert from "node:assert/strict";
import {
  checkGranted,
  type PermissionInput,
  type RequiredPermissions,
  requiredPermissions,
} from "../../src/permissions.ts";

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";
const APP = "/nonexistent-dhyve/app";
const KERNEL = `${APP}/hello`;
const OUT = "/nonexistent-dhyve/home/out";
const DATA = "/nonexistent-dhyve/data";

function required(overrides: Partial<PermissionInput> = {}): RequiredPermissions {
  return requiredPermissions({
    kernel: KERNEL,
    mappings: [
      { host: DATA, writable: false, guest: "/root/data" },
      { host: OUT, writable: true, guest: "/root/out" },
    ],
    tempDir: null,
    output: null,
    envHost: false,
    libcPath: LIBC,
    ...overrides,
  });
}

/** `req` without the FFI part (this test group has no --allow-ffi to narrow). */
function withoutFfi(req: RequiredPermissions): RequiredPermissions {
  return { ...req, ffi: [] };
}

Deno.test({
  name: "checkGranted() is null when every scope is granted",
  permissions: { read: [APP, DATA, OUT], write: [OUT], env: false, ffi: false },
  fn(): void {
    assert.equal(checkGranted(withoutFfi(required())), null);
  },
});

Deno.test({
  name: "checkGranted() accepts a grant on a parent directory",
  permissions: { read: ["/nonexistent-dhyve"], write: ["/nonexistent-dhyve/home"], ffi: false },
  fn(): void {
    assert.equal(checkGranted(withoutFfi(required())), null);
  },
});

Deno.test({
  name: "checkGranted() names a missing write scope and the flag to add",
  permissions: { read: [APP, DATA, OUT], write: false, env: false, ffi: false },
  fn(): void {
    assert.equal(
      checkGranted(withoutFfi(required())),
      `Deno may not write ${OUT} (file mapping ${OUT}:/root/out): add --allow-write=${OUT}`,
    );
  },
});

Deno.test({
  name: "checkGranted() lists every missing scope on one line",
  permissions: { read: [DATA], write: false, env: false, ffi: false },
  fn(): void {
    const message = checkGranted(required({ output: "/nonexistent-dhyve/serial log" }));
    assert.equal(
      message,
      `Deno may not read ${KERNEL} (the kernel), ${OUT} (file mapping ${OUT}:/root/out); ` +
        `write ${OUT} (file mapping ${OUT}:/root/out), /nonexistent-dhyve/serial log ` +
        `(the output file); load through FFI ${LIBC} (libc, for KVM): ` +
        `add --allow-ffi --allow-read=${KERNEL},${OUT} ` +
        `'--allow-write=${OUT},/nonexistent-dhyve/serial log'`,
    );
    assert.ok(!message.includes("\n"));
  },
});

Deno.test({
  name: "checkGranted() asks for --allow-env when the guest gets the host environment",
  permissions: { read: [APP, DATA, OUT], write: [OUT], env: false, ffi: false },
  fn(): void {
    assert.equal(
      checkGranted(withoutFfi(required({ envHost: true }))),
      "Deno may not read the environment (-e host): add --allow-env",
    );
  },
});

Deno.test({
  name: "checkGranted() checks named environment variables one by one",
  permissions: { read: [APP, DATA, OUT], write: [OUT], env: ["HOME"], ffi: false },
  fn(): void {
    const req = { ...withoutFfi(required()), env: ["HOME", "DENO_DIR"] };
    assert.equal(
      checkGranted(req),
      "Deno may not read the environment variables DENO_DIR: add --allow-env=DENO_DIR",
    );
  },
});

Deno.test({
  name: "checkGranted() covers the temp dir for both read and write",
  permissions: { read: [APP, DATA, OUT], write: [OUT], env: false, ffi: false },
  fn(): void {
    const temp = "/nonexistent-dhyve/tmp/dhyve-1000";
    assert.equal(
      checkGranted(withoutFfi(required({ tempDir: temp }))),
      `Deno may not read ${temp} (the temp dir); write ${temp} (the temp dir): ` +
        `add --allow-read=${temp} --allow-write=${temp}`,
    );
  },
});
