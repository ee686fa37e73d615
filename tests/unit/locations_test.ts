/**
 * `src/locations.ts`: dhyve's own paths, from the sources (these tests) and
 * from the bundle (`layoutOf` on bundle URLs; the KVM tests run the bundle
 * itself: its Workers start only if these paths are right).
 * @module
 */

import assert from "node:assert/strict";
import {
  cliEntry,
  dhyveRoot,
  layoutOf,
  moduleDir,
  RUNS_BUNDLED,
  workerUrl,
} from "../../src/locations.ts";

const root = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("from the sources: the root, src/, main.ts and the Workers' .ts entries", () => {
  assert.equal(RUNS_BUNDLED, false);
  assert.equal(dhyveRoot(), root);
  assert.equal(moduleDir(), `${root}/src`);
  assert.equal(cliEntry(), `${root}/main.ts`);
  assert.equal(workerUrl("vcpu").pathname, `${root}/src/vcpu/worker.ts`);
  assert.equal(workerUrl("net").pathname, `${root}/src/net/net_worker.ts`);
});

Deno.test("layoutOf() finds the root of a bundle chunk at any depth, and of a source module", () => {
  assert.deepEqual(layoutOf("file:///opt/dhyve/dist/bundle/chunk-AB12.js"), {
    root: "file:///opt/dhyve/",
    bundled: true,
  });
  assert.deepEqual(layoutOf("file:///opt/dhyve/dist/bundle/vcpu/worker.js"), {
    root: "file:///opt/dhyve/",
    bundled: true,
  });
  // A checkout below a directory named src: the last /src/ is dhyve's.
  assert.deepEqual(layoutOf("file:///home/u/src/dhyve/src/locations.ts"), {
    root: "file:///home/u/src/dhyve/",
    bundled: false,
  });
  assert.deepEqual(layoutOf("file:///home/u/src/dhyve/src/host/landlock.ts"), {
    root: "file:///home/u/src/dhyve/",
    bundled: false,
  });
});

Deno.test("the Workers' bundle entries are where scripts/build.ts puts them", async () => {
  const { BUNDLE_ENTRIES } = await import("../../scripts/build.ts");
  for (const source of ["src/vcpu/worker.ts", "src/net/net_worker.ts"]) {
    assert.ok(BUNDLE_ENTRIES.includes(source), `${source} is a bundle entry`);
  }
});
