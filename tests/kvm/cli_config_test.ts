/**
 * Settings from outside the command line, through subprocess runs of
 * `main.ts`: the `HERMIT_*` environment variables and the config file (lookup
 * order, command line wins, errors with file and line, boolean keys). Needs
 * /dev/kvm, `--allow-run` (deno, gcc), `--allow-read`, `--allow-write` and
 * `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import {
  assertOneErrorLine,
  assertRan,
  type CliRun,
  describeRun,
  type DhyveOptions,
  lines,
} from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { dhyve, HELLO_V1, noop, PERMS, statsOf, V1, withTempDir } from "../_helpers/cli_options.ts";

// Environment variables

kvmTest("HERMIT_MEMORY_SIZE is read: 15MiB exits 64, and -m wins over it", async () => {
  const kernel = await buildGuest("exit_code", V1);
  assertOneErrorLine(
    await dhyve([kernel], { env: { HERMIT_MEMORY_SIZE: "15MiB" } }),
    EXIT_CODE.USAGE,
    /15 MiB/,
    /16 MiB/,
  );
  assertRan(await dhyve(["-m", "16MiB", kernel, "6"], { env: { HERMIT_MEMORY_SIZE: "15MiB" } }), 6);
  assertRan(await dhyve([kernel, "7"], { env: { HERMIT_MEMORY_SIZE: "16MiB" } }), 7);
});

kvmTest("HERMIT_CPU_COUNT=2 gives two vCPUs; -c wins over it", async () => {
  const kernel = await noop();
  const doc = statsOf(await dhyve(["--stats=json", kernel], { env: { HERMIT_CPU_COUNT: "2" } }));
  assert.deepEqual(doc.cpus.map((c) => c.cpu), [0, 1]);
  const cli = statsOf(
    await dhyve(["--stats=json", "-c", "1", kernel], { env: { HERMIT_CPU_COUNT: "2" } }),
  );
  assert.equal(cli.cpus.length, 1);
  assertOneErrorLine(
    await dhyve([kernel], { env: { HERMIT_CPU_COUNT: "none" } }),
    EXIT_CODE.USAGE,
    /"none"/,
  );
});

// ---------------------------------------------------------------------------
// Config file

/** vCPU count of a `--stats=json` run of noop with these options. */
async function cpusOf(args: string[], opts: DhyveOptions): Promise<number> {
  return statsOf(await dhyve(["--stats=json", ...args, await noop()], opts)).cpus.length;
}

function cpuToml(count: number): string {
  return `# dhyve test\n[cpu]\ncpu_count = ${count}\n`;
}

kvmTest(
  "config lookup: --config, HERMIT_CONFIG, ./uhyve.toml, $XDG_CONFIG_HOME/uhyve",
  async () => {
    await withTempDir(async (dir) => {
      const cwd = `${dir}/cwd`;
      const xdg = `${dir}/xdg`;
      await Deno.mkdir(cwd);
      await Deno.mkdir(`${xdg}/uhyve`, { recursive: true });
      await Deno.writeTextFile(`${xdg}/uhyve/uhyve.toml`, cpuToml(2));
      await Deno.writeTextFile(`${dir}/env.toml`, cpuToml(3));
      await Deno.writeTextFile(`${dir}/flag.toml`, cpuToml(4));

      // Only $XDG_CONFIG_HOME/uhyve/uhyve.toml.
      assert.equal(await cpusOf([], { cwd, env: { XDG_CONFIG_HOME: xdg } }), 2);
      // An empty XDG_CONFIG_HOME is ignored, and there is no ~/.config fallback.
      const home = `${dir}/home`;
      await Deno.mkdir(`${home}/.config/uhyve`, { recursive: true });
      await Deno.writeTextFile(`${home}/.config/uhyve/uhyve.toml`, cpuToml(3));
      assert.equal(await cpusOf([], { cwd, env: { XDG_CONFIG_HOME: "", HOME: home } }), 1);
      assert.equal(await cpusOf([], { cwd, env: { HOME: home } }), 1);
      // ./uhyve.toml beats XDG.
      await Deno.writeTextFile(`${cwd}/uhyve.toml`, cpuToml(1));
      assert.equal(await cpusOf([], { cwd, env: { XDG_CONFIG_HOME: xdg } }), 1);
      // HERMIT_CONFIG beats ./uhyve.toml.
      const env = { XDG_CONFIG_HOME: xdg, HERMIT_CONFIG: `${dir}/env.toml` };
      assert.equal(await cpusOf([], { cwd, env }), 3);
      // --config beats HERMIT_CONFIG.
      assert.equal(await cpusOf(["--config", `${dir}/flag.toml`], { cwd, env }), 4);
      // A relative --config is taken from the cwd.
      await Deno.writeTextFile(`${cwd}/rel.toml`, cpuToml(2));
      assert.equal(await cpusOf(["--config", "rel.toml"], { cwd }), 2);
    });
  },
);

kvmTest(
  "config: the command line and HERMIT_* win; env_vars from the file are appended",
  async () => {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/uhyve.toml`,
        '[cpu]\ncpu_count = 2\n\n[guest]\nenv_vars = ["FROM_FILE=1"]\n',
      );
      assert.equal(await cpusOf(["-c", "1"], { cwd: dir }), 1);
      assert.equal(await cpusOf([], { cwd: dir, env: { HERMIT_CPU_COUNT: "1" } }), 1);
      assert.equal(await cpusOf([], { cwd: dir }), 2);
      const run = await dhyve(["-c", "1", "-e", "FROM_CLI=2", await buildGuest("args", V1)], {
        cwd: dir,
      });
      assertRan(run, 0);
      assert.match(run.stdout, /^envc=2\nenv\[0\]=FROM_CLI=2\nenv\[1\]=FROM_FILE=1\n/m);
    });
  },
);

kvmTest(
  "config: [uhyve] stats and output take effect, and -o on the command line wins",
  async () => {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(
        `${dir}/uhyve.toml`,
        '[uhyve]\nstats = "json"\noutput = "from-file.txt"\n',
      );
      const kernel = await buildGuest("hello", V1);
      const perms = [...PERMS, `--allow-write=${dir}`];
      const run = await dhyve([kernel], { cwd: dir, perms });
      assert.equal(statsOf(run).cpus.length, 1);
      const written = await Deno.readTextFile(`${dir}/from-file.txt`);
      assert.equal(lines(written).length, HELLO_V1.length);
      const cli = await dhyve(["-o", "none", kernel], { cwd: dir, perms });
      assert.equal(statsOf(cli).cpus.length, 1);
      assert.equal(await Deno.readTextFile(`${dir}/from-file.txt`), written, "not written again");
    });
  },
);

/** The guest RAM base from the `-vv` debug line. */
function guestRamOf(run: CliRun): string {
  assert.equal(run.code, 0, describeRun(run));
  const m = /guest RAM at (0x[0-9a-f]+)/.exec(run.stderr);
  assert.ok(m !== null, `no "guest RAM at" debug line\n${describeRun(run)}`);
  return m[1]!;
}

kvmTest("config: boolean keys take effect (no_aslr = true puts guest RAM at 0x0)", async () => {
  const kernel = await noop(); // v1 PIE: ASLR picks a random 2 MiB-aligned base below 3 GiB
  await withTempDir(async (dir) => {
    // Without the key the base is random: at least one of three runs is not at 0.
    const bases = [];
    for (let i = 0; i < 3; i++) bases.push(guestRamOf(await dhyve(["-vv", kernel], { cwd: dir })));
    assert.ok(bases.some((b) => b !== "0x0"), `ASLR bases: ${bases.join(", ")}`);
    await Deno.writeTextFile(`${dir}/uhyve.toml`, "[memory]\nno_aslr = true\n");
    for (let i = 0; i < 2; i++) {
      assert.equal(guestRamOf(await dhyve(["-vv", kernel], { cwd: dir })), "0x0");
    }
    // `no_aslr = false` leaves ASLR on; --no-aslr on the command line turns it off.
    await Deno.writeTextFile(`${dir}/uhyve.toml`, "[memory]\nno_aslr = false\n");
    assert.equal(guestRamOf(await dhyve(["-vv", "--no-aslr", kernel], { cwd: dir })), "0x0");
  });
});

kvmTest("config: keys uhyve ignores in a file give a warning, and the run goes on", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/uhyve.toml`, '[guest]\nkernel = "other"\n');
    const run = await dhyve([await buildGuest("exit_code", V1), "5"], { cwd: dir });
    assert.equal(run.code, 5, describeRun(run));
    assert.match(run.stderr, /^dhyve: warning: .*uhyve\.toml:2: \[guest\] kernel is ignored/m);
    assert.equal(run.stdout, "");
  });
});
