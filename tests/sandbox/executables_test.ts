/**
 * `src/oci/executables.ts`: how `dhyve-oci` finds runc and passt, on a
 * directory tree made here. Needs read and write access to the temp dir.
 * @module
 */

import assert from "node:assert/strict";
import { executablesOnPath, isExecutable, SYSTEM_PATH } from "../../src/oci/executables.ts";

/** A temp tree: `a/tool` (executable), `b/tool` (not), `c/tool` (a directory), `d/tool` → a/tool. */
function tree(): string {
  const root = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "dhyve-exec-" }));
  for (const dir of ["a", "b", "c/tool", "d"]) {
    Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
  }
  Deno.writeTextFileSync(`${root}/a/tool`, "#!/bin/sh\n", { mode: 0o755 });
  Deno.chmodSync(`${root}/a/tool`, 0o755);
  Deno.writeTextFileSync(`${root}/b/tool`, "#!/bin/sh\n");
  Deno.chmodSync(`${root}/b/tool`, 0o644);
  Deno.symlinkSync(`${root}/a/tool`, `${root}/d/tool`);
  return root;
}

Deno.test("isExecutable(): a regular file with an execute bit, symlinks followed", () => {
  const root = tree();
  try {
    assert.equal(isExecutable(`${root}/a/tool`), true);
    assert.equal(isExecutable(`${root}/d/tool`), true, "a symlink to an executable");
    assert.equal(isExecutable(`${root}/b/tool`), false, "no execute bit");
    assert.equal(isExecutable(`${root}/c/tool`), false, "a directory");
    assert.equal(isExecutable(`${root}/missing`), false);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("executablesOnPath(): PATH's order, executables only, real paths, then the system directories", () => {
  const root = tree();
  const cwd = Deno.cwd();
  Deno.chdir(root); // where the relative entry "a" would find a/tool
  try {
    const path = ["", "a", `${root}/b`, `${root}/c`, `${root}/d`, `${root}/a`, `${root}/d`].join(
      ":",
    );
    const found = [...executablesOnPath("tool", path)];
    // "" and the relative "a" are skipped; b/tool is not executable, c/tool is a directory.
    assert.deepEqual(found, [
      { path: `${root}/d/tool`, real: `${root}/a/tool` },
      { path: `${root}/a/tool`, real: `${root}/a/tool` },
      { path: `${root}/d/tool`, real: `${root}/a/tool` },
    ]);
    // The first one wins for a caller that takes the first.
    assert.deepEqual(executablesOnPath("tool", path).next().value, found[0]);
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("executablesOnPath(): without PATH only the system directories are searched", () => {
  const dirs = SYSTEM_PATH.split(":");
  for (const found of executablesOnPath("sh", undefined)) {
    assert.ok(dirs.some((dir) => found.path === `${dir}/sh`), found.path);
  }
  assert.deepEqual([...executablesOnPath("dhyve-no-such-program", undefined)], []);
});
