/**
 * Unit tests of `src/sandbox/temp_dir.ts`: the temp directory is made once,
 * on first need; byte accounting per file (unlinked-but-open files keep
 * counting until released); the entry limit; removal at dispose. A fake host
 * file system: runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import type { HostFs } from "../../../src/sandbox/host_fs.ts";
import { MAX_TEMP_FILES, TEMP_DIR_PREFIX, TempDir } from "../../../src/sandbox/temp_dir.ts";

/** A host with only what `TempDir` calls; anything else fails the test. */
function fakeHost(failMake = false): HostFs & { made: string[]; removed: string[] } {
  const made: string[] = [];
  const removed: string[] = [];
  const unused = (): never => {
    throw new Error("TempDir called a host operation it should not need");
  };
  return {
    made,
    removed,
    makeTempDir(parent: string | undefined, prefix: string): string {
      if (failMake) throw new Deno.errors.NotFound("no such parent");
      const dir = `${parent ?? "/tmp"}/${prefix}${made.length}`;
      made.push(dir);
      return dir;
    },
    removeTree(path: string): void {
      removed.push(path);
    },
    mkdir: unused,
    remove: unused,
    open: unused,
    realPath: unused,
    lstat: unused,
    isDirectory: unused,
    stat: unused,
    readDir: unused,
    readStdin: unused,
  };
}

function tempDir(fs: HostFs, maxBytes = Infinity): TempDir {
  return new TempDir({ fs, parent: "/scratch", maxBytes, fail: () => -ERRNO.EACCES });
}

Deno.test("TempDir makes its directory once, on first need, and removes it at dispose", () => {
  const fs = fakeHost();
  const temp = tempDir(fs);
  assert.equal(temp.path, undefined);
  const a = temp.newEntry();
  const b = temp.newEntry();
  assert.equal(typeof a, "string");
  assert.notEqual(a, b);
  assert.deepEqual(fs.made, [`/scratch/${TEMP_DIR_PREFIX}0`]);
  assert.equal(temp.prepare(), fs.made[0]);
  assert.ok((a as string).startsWith(`${fs.made[0]}/`));
  temp.dispose();
  temp.dispose();
  assert.deepEqual(fs.removed, fs.made);
  assert.equal(temp.path, undefined);
});

Deno.test("TempDir.prepare() gives the host's errno; newEntry() goes through fail", () => {
  const temp = tempDir(fakeHost(true));
  assert.equal(temp.prepare(), -ERRNO.ENOENT);
  assert.equal(temp.newEntry(), -ERRNO.EACCES);
});

Deno.test("TempDir counts bytes per file; an unlinked open file counts until released", () => {
  const temp = tempDir(fakeHost(), 100);
  assert.ok(temp.limited);
  temp.setSize("/t/a", 30);
  temp.setSize("/t/b", 50);
  assert.equal(temp.limitFor("/t/a"), 50); // 100 − b's 50
  assert.equal(temp.limitFor("/t/new"), 20);
  temp.setSize("/t/a", 10);
  assert.equal(temp.limitFor("/t/new"), 40);
  temp.unlinked("/t/b", true);
  assert.equal(temp.limitFor("/t/new"), 40, "b's blocks stay used while an fd holds it");
  temp.release("/t/b", () => true);
  assert.equal(temp.limitFor("/t/new"), 40);
  temp.release("/t/b", () => false);
  assert.equal(temp.limitFor("/t/new"), 90);
  assert.ok(!temp.has("/t/b"));
  temp.unlinked("/t/a", false);
  assert.equal(temp.limitFor("/t/new"), 100);
  assert.ok(!tempDir(fakeHost()).limited);
});

Deno.test("TempDir is full at MAX_TEMP_FILES files and directories together", () => {
  const temp = tempDir(fakeHost());
  for (let i = 0; i < MAX_TEMP_FILES - 1; i++) temp.setSize(`/t/${i}`, 0);
  assert.ok(!temp.full);
  temp.addDir();
  assert.ok(temp.full);
  temp.setSize("/t/0", undefined);
  assert.ok(!temp.full);
});
