/**
 * `src/host/temp_dir_access.ts`: the prediction `--file-isolation` makes
 * before it makes the temp directory must agree with what
 * `Deno.makeTempDirSync()` then does, under the permission flags and
 * `TMPDIR` values a user may run with. Each case runs in a child Deno with
 * those flags; the child predicts, then tries, and reports both.
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";

const PROBE = `
import { mayMakeTempDir, osTempDir } from "${REPO_ROOT}/src/host/temp_dir_access.ts";
const predicted = mayMakeTempDir(undefined);
let made = null;
try {
  made = Deno.makeTempDirSync({ prefix: "dhyve-probe-" });
  Deno.removeSync(made);
} catch { /* refused */ }
console.log(JSON.stringify({ dir: osTempDir(), predicted, made }));
`;

interface Probe {
  dir: string | null;
  predicted: boolean;
  made: string | null;
}

async function probe(flags: string[], tmpdir: string | undefined): Promise<Probe> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) if (k !== "TMPDIR") env[k] = v;
  if (tmpdir !== undefined) env.TMPDIR = tmpdir;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, PROBE);
    // env replaces the whole environment: the child sees TMPDIR only when given.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--allow-ffi", "--allow-read", ...flags, file],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    });
    const out = await child.output();
    const text = new TextDecoder();
    assert.ok(out.success, text.decode(out.stderr));
    return JSON.parse(text.decode(out.stdout)) as Probe;
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("osTempDir() is where Deno.makeTempDirSync() makes its directory, TMPDIR set or not", async () => {
  const mine = await Deno.makeTempDir({ prefix: "dhyve-tmpdir-" });
  try {
    const unset = await probe(["--allow-write"], undefined);
    assert.equal(unset.dir, "/tmp");
    assert.ok(unset.made?.startsWith("/tmp/dhyve-probe-"), JSON.stringify(unset));
    const set = await probe(["--allow-write"], mine);
    assert.equal(set.dir, mine);
    assert.ok(set.made?.startsWith(`${mine}/dhyve-probe-`), JSON.stringify(set));
  } finally {
    await Deno.remove(mine, { recursive: true });
  }
});

Deno.test("mayMakeTempDir() predicts Deno's answer: no write, write elsewhere, write there, all", async () => {
  const mine = await Deno.makeTempDir({ prefix: "dhyve-tmpdir-" });
  try {
    const cases: [string[], string | undefined, boolean][] = [
      [[], undefined, false], // the README's plain run: no --allow-write at all
      [[], mine, false],
      [[`--allow-write=${mine}`], undefined, false], // writes allowed, but not in /tmp
      [[`--allow-write=${mine}`], mine, true],
      [["--allow-write=/tmp"], undefined, true],
      [["--allow-write"], mine, true],
    ];
    for (const [flags, tmpdir, expected] of cases) {
      const got = await probe(flags, tmpdir);
      const label = `${flags.join(" ") || "(no write)"} TMPDIR=${tmpdir ?? "(unset)"}`;
      assert.equal(got.predicted, expected, label);
      assert.equal(got.made !== null, expected, `Deno's own answer, ${label}`);
    }
  } finally {
    await Deno.remove(mine, { recursive: true });
  }
});
