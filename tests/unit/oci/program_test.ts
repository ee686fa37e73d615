/**
 * Finding and classifying a container's program (`src/oci/program.ts`):
 * resolution inside the root as in a chroot, `PATH` search, bind mounts,
 * and the Hermit test. Runs with no permissions: the file system is a fake.
 * @module
 */

import assert from "node:assert/strict";
import { OciError } from "../../../src/oci/errors.ts";
import {
  checkHermitKernel,
  findProgram,
  programKind,
  resolveInRoot,
  type RootView,
} from "../../../src/oci/program.ts";
import { buildElf } from "../../_helpers/elf_builder.ts";

/** A fake host: regular files, directories and symlinks by host path. */
function fakeView(tree: Record<string, "file" | "dir" | { link: string }>): RootView {
  return {
    lstat(path: string): { isSymlink: boolean; isFile: boolean } | null {
      const node = tree[path];
      if (node === undefined) return null;
      return { isSymlink: typeof node === "object", isFile: node === "file" };
    },
    readlink(path: string): string {
      const node = tree[path];
      if (typeof node !== "object") throw new Error(`not a link: ${path}`);
      return node.link;
    },
  };
}

const ROOT = "/bundle/rootfs";

Deno.test("resolveInRoot() keeps absolute symlinks and .. inside the root", () => {
  const view = fakeView({
    [`${ROOT}/bin`]: "dir",
    [`${ROOT}/bin/app`]: { link: "/opt/app" },
    [`${ROOT}/opt`]: "dir",
    [`${ROOT}/opt/app`]: { link: "../../../../kernel" },
    [`${ROOT}/kernel`]: "file",
  });
  assert.deepEqual(resolveInRoot("/bin/app", { rootfs: ROOT, binds: [], view }), {
    containerPath: "/kernel",
    hostPath: `${ROOT}/kernel`,
  });
  assert.equal(resolveInRoot("/missing", { rootfs: ROOT, binds: [], view }), null);
});

Deno.test("resolveInRoot() gives up on a symlink loop", () => {
  const view = fakeView({ [`${ROOT}/a`]: { link: "b" }, [`${ROOT}/b`]: { link: "a" } });
  assert.equal(resolveInRoot("/a", { rootfs: ROOT, binds: [], view }), null);
});

Deno.test("resolveInRoot() looks through bind mounts, the longest destination first", () => {
  const view = fakeView({
    [`${ROOT}/app`]: "dir",
    "/host/apps": "dir",
    "/host/apps/kernel": "file",
  });
  const binds = [{ destination: "/", source: "/elsewhere" }, {
    destination: "/app",
    source: "/host/apps",
  }];
  assert.deepEqual(resolveInRoot("/app/kernel", { rootfs: ROOT, binds: binds.slice(1), view }), {
    containerPath: "/app/kernel",
    hostPath: "/host/apps/kernel",
  });
});

Deno.test("findProgram() searches the container's PATH, then takes paths relative to its cwd", () => {
  const view = fakeView({
    [`${ROOT}/usr`]: "dir",
    [`${ROOT}/usr/bin`]: "dir",
    [`${ROOT}/usr/bin/hello`]: "file",
    [`${ROOT}/srv`]: "dir",
    [`${ROOT}/srv/app`]: "file",
  });
  const base = { cwd: "/srv", rootfs: ROOT, binds: [], view };
  assert.equal(
    findProgram("hello", { ...base, env: ["PATH=/nowhere:/usr/bin"] })?.containerPath,
    "/usr/bin/hello",
  );
  assert.equal(findProgram("hello", { ...base, env: [] })?.containerPath, "/usr/bin/hello");
  assert.equal(findProgram("./app", { ...base, env: [] })?.containerPath, "/srv/app");
  assert.equal(findProgram("usr", { ...base, env: ["PATH=/"] }), null, "a directory is no program");
});

Deno.test("programKind() tells Hermit ELFs and images from Linux programs", () => {
  const elf = buildElf();
  assert.equal(programKind(elf.subarray(0, 8)), "hermit-elf");
  assert.equal(programKind(buildElf({ osabi: 0 }).subarray(0, 8)), "other");
  assert.equal(programKind(new Uint8Array([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0])), "hermit-image");
  assert.equal(programKind(new TextEncoder().encode("#!/bin/sh\n")), "other");
  assert.equal(programKind(new Uint8Array(0)), "other");
});

Deno.test("checkHermitKernel() passes a good kernel and names what is wrong with a bad one", () => {
  checkHermitKernel(buildElf(), "/hello");
  assert.throws(
    () => checkHermitKernel(buildElf({ notes: null }), "/broken"),
    (e: unknown) =>
      e instanceof OciError && e.exitCode === 65 && /"\/broken".*HERMIT/.test(e.message),
  );
});
