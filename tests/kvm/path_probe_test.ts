/**
 * `src/host/path_probe.ts`: whether a path exists, through `faccessat(2)`
 * when Deno may use FFI (this group has `--allow-ffi`), with the same
 * answers as `Deno.statSync` (`tests/sandbox/path_probe_fallback_test.ts`
 * checks the fallback, which runs without FFI). Needs no KVM.
 * @module
 */

import assert from "node:assert/strict";
import { pathExists } from "../../src/host/path_probe.ts";

function statSays(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("pathExists() through faccessat answers as Deno.statSync does", () => {
  assert.equal(Deno.permissions.querySync({ name: "ffi" }).state, "granted");
  const dir = Deno.makeTempDirSync({ prefix: "dhyve-probe-" });
  try {
    Deno.writeTextFileSync(`${dir}/file`, "x");
    Deno.mkdirSync(`${dir}/sub`);
    Deno.symlinkSync(`${dir}/file`, `${dir}/link`);
    Deno.symlinkSync(`${dir}/gone`, `${dir}/dangling`);
    const cases: [string, boolean][] = [
      [`${dir}/file`, true],
      [`${dir}/sub`, true],
      [`${dir}/link`, true],
      [`${dir}/dangling`, false], // symlinks are followed, as statSync follows them
      [`${dir}/missing`, false],
      [`${dir}/file/below`, false], // ENOTDIR
      [`${dir}/file\0/sub`, false], // C would see only "…/file"
    ];
    for (const [path, expected] of cases) {
      assert.equal(pathExists(path), expected, JSON.stringify(path));
      if (!path.includes("\0")) assert.equal(statSays(path), expected, `statSync: ${path}`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
