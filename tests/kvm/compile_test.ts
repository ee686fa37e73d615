/**
 * `deno task compile`: the single-binary build. It needs Deno's `denort`
 * runtime, which these machines cannot download; with DENORT_BIN set the
 * binary is built and boots a guest, otherwise the test prints a SKIP line.
 * Without DENORT_BIN, the task must fail with a clear message instead.
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmAvailable } from "../_helpers/kvm.ts";

const root = `${REPO_ROOT}/`;
const denort = Deno.env.get("DENORT_BIN");
const dec = new TextDecoder();

async function compileTask(env: Record<string, string>): Promise<Deno.CommandOutput> {
  return await new Deno.Command("bash", {
    args: [`${root}scripts/compile.sh`],
    cwd: root,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

if (denort === undefined || denort === "") {
  // deno-lint-ignore no-console
  console.error("SKIP: DENORT_BIN is not set: the compiled dhyve binary is not built or tested");
}

Deno.test({
  name: "deno task compile without DENORT_BIN fails with a line naming DENORT_BIN",
  fn: async () => {
    const out = await compileTask({ DENORT_BIN: "" });
    assert.equal(out.code, 69);
    assert.match(dec.decode(out.stderr), /DENORT_BIN=/);
  },
});

Deno.test({
  name: "deno task compile builds dist/dhyve, which boots a guest",
  ignore: denort === undefined || denort === "" || !kvmAvailable(),
  fn: async () => {
    const built = await compileTask({ DENORT_BIN: denort! });
    assert.equal(built.code, 0, dec.decode(built.stderr));
    const kernel = await buildGuest("hello", { iface: 1, pie: true });
    const run = await new Deno.Command(`${root}dist/dhyve`, {
      args: [kernel],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, dec.decode(run.stderr));
    assert.match(dec.decode(run.stdout), /Hello from dhyve guest/);
  },
});
