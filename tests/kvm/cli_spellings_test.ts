/**
 * Every uhyve 0.8 option is accepted in its short and long spelling, through
 * subprocess runs of `main.ts`. Needs /dev/kvm, `--allow-run` (deno, gcc),
 * `--allow-read`, `--allow-write` and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { assertRan, describeRun } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { dhyve, PERMS, V1, withTempDir } from "../_helpers/cli_options.ts";

// Every option, spelled as uhyve spells it

kvmTest("every uhyve 0.8 option is accepted in its short and long spelling", async () => {
  const kernel = await buildGuest("exit_code", V1);
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/data`);
    await Deno.mkdir(`${dir}/tmp`);
    await Deno.writeTextFile(`${dir}/empty.toml`, "");
    const perms = [...PERMS, `--allow-write=${dir}`];
    const long = [
      "--memory-size",
      "32MiB",
      "--cpu-count",
      "1",
      "--affinity",
      "0",
      "--env-vars",
      "A=1",
      "--file-mapping",
      `${dir}/data:/root/data`,
      "--tempdir",
      `${dir}/tmp`,
      "--file-isolation",
      "none",
      "--io-mode",
      "host=sync",
      "--output",
      `${dir}/long.txt`,
      "--config",
      `${dir}/empty.toml`,
      "--no-aslr",
      "--thp",
      "--ksm",
      "--pit",
      "--cpu-pm",
      "--timeout",
      "30s",
      "--quiet",
    ];
    let run = await dhyve([...long, kernel, "11"], { perms });
    assertRan(run, 11);
    assert.equal(run.stdout, "");
    const short = ["-m", "32MiB", "-c", "1", "-a", "0", "-e", "A=1", "-o", `${dir}/short.txt`];
    run = await dhyve([...short, kernel, "12"], { perms });
    assertRan(run, 12);
    run = await dhyve(
      ["--memory-size=32MiB", "--cpu-count=1", "--env-vars=B=2", "--file-isolation=normal", kernel],
      { perms },
    );
    assert.equal(run.code, 42, describeRun(run));
    run = await dhyve(["--io-mode", "default", "-e", "host", "-o", "None", kernel, "--", "-3"]);
    assertRan(run, 253);
    assert.equal(run.stdout, "");
  });
});

kvmTest("--help and --version go to stdout and exit 0; --help lists every option", async () => {
  const help = await dhyve(["--help"], { perms: [] });
  assertRan(help, 0);
  for (
    const option of [
      "--memory-size",
      "--cpu-count",
      "--affinity",
      "--env-vars",
      "--file-mapping",
      "--tempdir",
      "--file-isolation",
      "--io-mode",
      "--output",
      "--stats",
      "--config",
      "--no-aslr",
      "--thp",
      "--ksm",
      "--pit",
      "--cpu-pm",
      "HERMIT_MEMORY_SIZE",
      "HERMIT_CPU_COUNT",
      "HERMIT_CONFIG",
    ]
  ) {
    assert.ok(help.stdout.includes(option), `--help mentions ${option}`);
  }
  assertRan(await dhyve(["-h"], { perms: [] }), 0);
  const version = await dhyve(["-V"], { perms: [] });
  assertRan(version, 0);
  assert.match(version.stdout, /^dhyve \d+\.\d+\.\d+/);
});
