/**
 * `src/host/path_probe.ts` without FFI (this group has no `--allow-ffi`):
 * `Deno.statSync` answers. `tests/kvm/path_probe_test.ts` checks the FFI way.
 * @module
 */

import assert from "node:assert/strict";
import { pathExists } from "../../src/host/path_probe.ts";

Deno.test("pathExists() without --allow-ffi asks Deno.statSync", () => {
  assert.notEqual(Deno.permissions.querySync({ name: "ffi" }).state, "granted");
  const dir = Deno.makeTempDirSync({ prefix: "dhyve-probe-" });
  try {
    Deno.writeTextFileSync(`${dir}/file`, "x");
    Deno.symlinkSync(`${dir}/gone`, `${dir}/dangling`);
    assert.equal(pathExists(`${dir}/file`), true);
    assert.equal(pathExists(dir), true);
    assert.equal(pathExists(`${dir}/missing`), false);
    assert.equal(pathExists(`${dir}/dangling`), false);
    assert.equal(pathExists(`${dir}/file\0x`), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
