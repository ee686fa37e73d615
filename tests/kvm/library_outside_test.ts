/**
 * The library from another project: a script in a temporary directory
 * outside the repository, with no deno.json of its own (and once with one),
 * imports `<repo>/mod.ts` by its path and runs a test guest through `runVm`.
 * That works only while `src/` names its npm packages self-describingly
 * (`npm:name@version`), since bare specifiers resolve only with this
 * project's own config. Deno fetches those packages into its cache from the
 * npm registry the first time (as `npm ci` does). Needs /dev/kvm,
 * `--allow-run`, `--allow-read` and `--allow-write`.
 * @module
 */

import assert from "node:assert/strict";
import { describeRun, runDeno } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

/** The other project's program: boots the kernel in argv[0], prints what runVm returned. */
const PROGRAM = `
import { CaptureSink, runVm, VmError } from "${new URL("mod.ts", `file://${REPO_ROOT}/`).href}";

const out = new CaptureSink();
const err = new CaptureSink();
try {
  const result = await runVm(Deno.args[0], { stdout: out, stderr: err });
  console.log(JSON.stringify({ exitCode: result.exitCode, out: out.text(), err: err.text() }));
} catch (error) {
  console.log(JSON.stringify({ thrown: error instanceof VmError ? error.exitCode : String(error) }));
}
`;

/** Runs {@linkcode PROGRAM} from a new directory outside the repo holding `files`. */
async function runOutside(kernel: string, files: Record<string, string>): Promise<unknown> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-outside-project-" });
  try {
    assert.ok(!dir.startsWith(`${REPO_ROOT}/`), `${dir} must lie outside the repository`);
    await Deno.writeTextFile(`${dir}/main.ts`, PROGRAM);
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    const run = await runDeno(
      ["run", "--quiet", "--allow-ffi", `--allow-read=${kernel}`, "main.ts", kernel],
      { cwd: dir },
    );
    assert.equal(run.code, 0, describeRun(run));
    assert.doesNotMatch(run.stderr, /not a dependency|Import .* failed/, describeRun(run));
    return JSON.parse(run.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const HELLO = {
  exitCode: 0,
  out: "Hello from dhyve guest (v2, pie)!\nhello via fd 1\nhello via serial byte\n",
  err: "hello via fd 2\n",
};

kvmTest("mod.ts imported by path from a project without a deno.json runs a guest", async () => {
  const kernel = await buildGuest("hello", { iface: 2, pie: true });
  assert.deepEqual(await runOutside(kernel, {}), HELLO);
});

kvmTest("mod.ts imported by path from a project with its own deno.json runs a guest", async () => {
  const kernel = await buildGuest("hello", { iface: 2, pie: true });
  const config = JSON.stringify({ imports: { "smol-toml": "npm:smol-toml@1.0.0" } });
  assert.deepEqual(await runOutside(kernel, { "deno.json": config }), HELLO);
});
