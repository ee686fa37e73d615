/**
 * Unit tests of `parseCommandLine` from `src/cli.ts`: the kernel and its
 * arguments (with uhyve's `--` rules), repeated `-e`, flags, and usage errors.
 * Importing the CLI must need no permissions, so this runs with none.
 * @module
 */

import assert from "node:assert/strict";
import { parseCommandLine as parseWith } from "../../src/cli.ts";
import type { CliEnvironment, CliRequest } from "../../src/cli.ts";
import { UsageError, type VmParams } from "../../src/params.ts";
import { VERSION } from "../../src/version.ts";
import { loadTomlParser } from "../../src/config.ts";

// parseCommandLine() parses config files with the parser the CLI loads on demand.
await loadTomlParser();

const MIB = 1024 * 1024;

/** An environment with no variables, no files and no config file. */
const EMPTY: CliEnvironment = {
  env: () => undefined,
  envAll: () => {
    throw new UsageError('"-e host" needs access to the environment: add --allow-env');
  },
  readTextFile: () => {
    throw new Error("no files here");
  },
  exists: () => false,
  cwd: () => "/work",
};

function parseCommandLine(argv: string[]): CliRequest {
  return parseWith(argv, EMPTY);
}

/**
 * Registers a test without environment access, so HERMIT_MEMORY_SIZE,
 * HERMIT_CPU_COUNT and "-e host" behave the same under `deno test -A`.
 */
function cliTest(name: string, fn: () => void): void {
  Deno.test({ name, permissions: { env: false }, fn });
}

/** Parses `argv`, expecting a run request. */
function run(argv: string[]): { kernel: string; params: VmParams; verbosity: number } {
  const request = parseCommandLine(argv);
  assert.ok(request.kind === "run", `expected a run request for ${argv.join(" ")}`);
  return request;
}

/** Asserts that `argv` is a usage error whose message contains each of `parts`. */
function usageError(argv: string[], ...parts: string[]): void {
  assert.throws(
    () => parseCommandLine(argv),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
      for (const part of parts) {
        assert.ok(e.message.includes(part), `"${e.message}" does not mention "${part}"`);
      }
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    },
    argv.join(" "),
  );
}

cliTest("parseCommandLine() takes the first positional as the kernel and the rest as args", () => {
  const { kernel, params, verbosity } = run(["hello", "a1", "bb"]);
  assert.equal(kernel, "hello");
  assert.deepEqual(params.args, ["a1", "bb"]);
  assert.deepEqual(params.env, []);
  assert.equal(verbosity, 0);
});

cliTest("parseCommandLine() leaves unset options to the library defaults, Landlock on", () => {
  const { params } = run(["k"]);
  assert.deepEqual(params, {
    fileIsolation: "normal",
    args: [],
    env: [],
    aslr: true,
    thp: false,
    ksm: false,
    pit: false,
    maxTempBytes: 1024 * MIB,
  });
});

cliTest("parseCommandLine() passes everything after the first -- through, as uhyve", () => {
  assert.deepEqual(run(["k", "--", "-ka", "--", "appa"]).params.args, ["-ka", "--", "appa"]);
  assert.deepEqual(run(["k", "--", "-1"]).params.args, ["-1"]);
  assert.deepEqual(run(["k", "x", "--", "--", "y"]).params.args, ["x", "--", "y"]);
  assert.deepEqual(run(["k", "--"]).params.args, []);
  const afterOptions = run(["-m", "32MiB", "--", "k", "-m", "1"]);
  assert.equal(afterOptions.kernel, "k");
  assert.deepEqual(afterOptions.params.args, ["-m", "1"]);
  assert.equal(afterOptions.params.memorySize, 32 * MIB);
});

cliTest("parseCommandLine() rejects a dash argument before -- as an unknown option", () => {
  usageError(["k", "-ka"], "see --help");
});

cliTest("parseCommandLine() collects repeated -e / --env-vars in order", () => {
  const { params } = run(["-e", "A=b", "--env-vars", "C=d=e", "-e", "EMPTY=", "k"]);
  assert.deepEqual(params.env, [["A", "b"], ["C", "d=e"], ["EMPTY", ""]]);
  assert.deepEqual(run(["--env-vars=X=1", "k"]).params.env, [["X", "1"]]);
});

cliTest("parseCommandLine() rejects an -e entry that is not KEY=VALUE", () => {
  usageError(["-e", "NOVALUE", "k"], "NOVALUE", "KEY=VALUE");
});

cliTest("parseCommandLine() rejects -e host without --allow-env, saying so", () => {
  usageError(["-e", "host", "k"], "--allow-env");
});

cliTest("parseCommandLine() reads -m / --memory-size and -c / --cpu-count", () => {
  assert.equal(run(["-m", "128MiB", "k"]).params.memorySize, 128 * MIB);
  assert.equal(run(["--memory-size", "1GiB", "k"]).params.memorySize, 1024 * MIB);
  assert.equal(run(["--memory-size=16777216", "k"]).params.memorySize, 16 * MIB);
  assert.equal(run(["-c", "2", "k"]).params.cpuCount, 2);
  assert.equal(run(["--cpu-count", "4", "k"]).params.cpuCount, 4);
});

cliTest("parseCommandLine() rejects a bad memory size or vCPU count", () => {
  usageError(["-m", "lots", "k"], 'Invalid memory size "lots"');
  usageError(["-c", "two", "k"], 'Invalid vCPU count "two"');
  usageError(["-c", "0", "k"], "from 1 to 256");
  usageError(["-c", "1.5", "k"], "1.5");
  usageError(["-m", "k"], "No kernel given"); // -m swallowed the kernel
});

cliTest("parseCommandLine() gives --mac to the --net card, and only with --net", () => {
  const { params } = run(["-n", "tap:dtap0", "--mac", "02:AA:bb:cc:dd:0e", "k"]);
  assert.equal(params.net?.mode === "tap" ? params.net.name : undefined, "dtap0");
  assert.deepEqual([...params.net!.mac!], [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0e]);
  assert.equal(run(["-n", "tap", "k"]).params.net?.mac, undefined, "default: from the TAP");
  usageError(["--mac", "02:00:00:00:00:01", "k"], "--mac needs -n/--net");
  usageError(["-n", "tap", "--mac", "01:00:5e:00:00:01", "k"], "multicast");
  usageError(["-n", "tap", "--mac", "02:00:00:00:00", "k"], "six hex pairs");
});

cliTest("parseCommandLine() sets the boolean flags", () => {
  const { params } = run(["--no-aslr", "--thp", "--ksm", "--pit", "k"]);
  assert.equal(params.aslr, false);
  assert.equal(params.thp, true);
  assert.equal(params.ksm, true);
  assert.equal(params.pit, true);
});

cliTest("parseCommandLine() counts -v and takes -q as -1", () => {
  assert.equal(run(["-v", "k"]).verbosity, 1);
  assert.equal(run(["-v", "--verbose", "k"]).verbosity, 2);
  assert.equal(run(["-vv", "k"]).verbosity, 2);
  assert.equal(run(["-q", "k"]).verbosity, -1);
});

cliTest("parseCommandLine() rejects an unknown flag with a UsageError", () => {
  usageError(["--bogus", "k"], "--bogus", "(see --help)");
  usageError(["-z", "k"], "-z");
  usageError(["--memory-size"], "--memory-size");
});

cliTest("parseCommandLine() without a kernel is a UsageError", () => {
  usageError([], "No kernel given");
  usageError(["-v"], "No kernel given");
});

cliTest("parseCommandLine() answers --help / -h with the usage text", () => {
  for (const flag of ["--help", "-h"]) {
    const request = parseCommandLine([flag]);
    assert.ok(request.kind === "info");
    assert.match(request.text, /^dhyve /);
    assert.match(request.text, /Usage: /);
    assert.match(request.text, /--memory-size/);
  }
  assert.ok(parseCommandLine(["k", "--help"]).kind === "info", "--help wins over a kernel");
});

cliTest("parseCommandLine() answers --version / -V with the version", () => {
  for (const flag of ["--version", "-V"]) {
    assert.deepEqual(parseCommandLine([flag]), { kind: "info", text: `dhyve ${VERSION}` });
  }
});

cliTest(
  "-s/--gdb-port: a port, uhyve's default 6677 without one, HERMIT_GDB_PORT, bad ports",
  () => {
    assert.equal(run(["-s", "1234", "k"]).params.gdbPort, 1234);
    assert.equal(run(["--gdb-port", "0", "k"]).params.gdbPort, 0);
    assert.equal(run(["--gdb-port=7000", "k"]).params.gdbPort, 7000);
    // Without a number after it, -s takes the default and the next word stays the kernel.
    const bare = run(["-s", "kernel", "--", "1"]);
    assert.equal(bare.params.gdbPort, 6677);
    assert.equal(bare.kernel, "kernel");
    assert.equal(run(["k", "-s"]).params.gdbPort, 6677);
    assert.equal(run(["k"]).params.gdbPort, undefined);
    // An argument after "--" that looks like -s belongs to the guest.
    assert.equal(run(["k", "--", "-s"]).params.gdbPort, undefined);
    const withEnv = parseWith(["k"], {
      ...EMPTY,
      env: (n) => n === "HERMIT_GDB_PORT" ? "4321" : undefined,
    });
    assert.ok(withEnv.kind === "run" && withEnv.params.gdbPort === 4321);
    usageError(["-s", "65536", "k"], "GDB port", "65536");
    usageError(["--gdb-port=abc", "k"], "GDB port");
  },
);

cliTest("gdb_port in uhyve.toml enables the stub; -s on the command line wins", () => {
  const withFile: CliEnvironment = {
    ...EMPTY,
    exists: (path) => path === "/work/uhyve.toml",
    readTextFile: () => "[uhyve]\ngdb_port = 5555\n",
  };
  const fromFile = parseWith(["k"], withFile);
  assert.ok(fromFile.kind === "run" && fromFile.params.gdbPort === 5555);
  const fromCli = parseWith(["-s", "6000", "k"], withFile);
  assert.ok(fromCli.kind === "run" && fromCli.params.gdbPort === 6000);
});

cliTest("--print-permissions with -s adds loopback network access, and only then", () => {
  const withGdb = parseCommandLine(["--print-permissions", "-s", "0", "/k"]);
  assert.ok(withGdb.kind === "info");
  assert.match(withGdb.text, /^deno run --allow-net=127\.0\.0\.1,\[::1\] /);
  const without = parseCommandLine(["--print-permissions", "/k"]);
  assert.ok(without.kind === "info");
  assert.doesNotMatch(without.text, /--allow-net/);
});
