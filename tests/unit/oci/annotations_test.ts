/**
 * dhyve's OCI annotations (`src/oci/annotations.ts`).
 * @module
 */

import assert from "node:assert/strict";
import { ANNOTATIONS, readAnnotations } from "../../../src/oci/annotations.ts";
import { OciError } from "../../../src/oci/errors.ts";

const P = "org.hermit-os.dhyve.";

Deno.test("readAnnotations() without dhyve keys: normal Landlock, no flags", () => {
  const none = { flags: [], fileIsolation: "normal", net: "none", publish: [] };
  assert.deepEqual(readAnnotations(undefined), none);
  assert.deepEqual(readAnnotations({ "io.kubernetes.pod.name": "x" }), none);
});

Deno.test("readAnnotations() maps every annotation to dhyve's option", () => {
  const got = readAnnotations({
    [`${P}memory`]: "128MiB",
    [`${P}cpus`]: "3",
    [`${P}file-isolation`]: "strict",
    [`${P}timeout`]: "30s",
    [`${P}aslr`]: "false",
    [`${P}thp`]: "true",
    [`${P}ksm`]: "false",
    [`${P}pit`]: "yes",
    [`${P}cpu-pm`]: "1",
    [`${P}log-level`]: "debug",
    [`${P}max-temp-size`]: "10MiB",
  });
  assert.equal(got.memory, 128 * 1024 * 1024);
  assert.equal(got.cpus, 3);
  assert.equal(got.fileIsolation, "strict");
  // Sorted by key, so the order does not depend on the engine's.
  assert.deepEqual(got.flags, [
    "--no-aslr",
    "--cpu-pm",
    "-vv",
    "--max-temp-size",
    "10MiB",
    "--pit",
    "--thp",
    "--timeout",
    "30s",
  ]);
});

Deno.test("readAnnotations() refuses an unknown key, listing the known ones", () => {
  assert.throws(
    () => readAnnotations({ [`${P}memroy`]: "1GiB" }),
    (e: unknown) =>
      e instanceof OciError && e.exitCode === 64 && e.message.includes(`"${P}memroy"`) &&
      Object.keys(ANNOTATIONS).every((k) => e.message.includes(P + k)),
  );
});

Deno.test("readAnnotations() refuses bad values, naming key, value and the form expected", () => {
  for (
    const [key, value] of [
      ["memory", "lots"],
      ["memory", "3MiB"],
      ["cpus", "0"],
      ["cpus", "two"],
      ["file-isolation", "maybe"],
      ["timeout", "-1"],
      ["aslr", "perhaps"],
      ["log-level", "loud"],
    ]
  ) {
    assert.throws(
      () => readAnnotations({ [P + key!]: value! }),
      (e: unknown) =>
        e instanceof OciError && e.exitCode === 64 &&
        e.message.startsWith(`Bad annotation ${P}${key}="${value}": `) &&
        e.message.includes(`(expected ${ANNOTATIONS[key!]!.value})`),
      `${key}=${value}`,
    );
  }
});
