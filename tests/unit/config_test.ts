/**
 * Unit tests of `src/config.ts`: config file lookup order, parsing and
 * validation of every uhyve 0.8 key, `file:line` error messages, merging with
 * the command line, and `--affinity` parsing. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  type CliOptions,
  ConfigError,
  type ConfigFile,
  findConfigFile,
  MAX_CPU_ID,
  mergeConfig,
  parseAffinity,
  parseConfig,
  validateAffinity,
} from "../../src/config.ts";
import { UsageError } from "../../src/params.ts";

const MIB = 1024 * 1024;

/** Asserts that parsing `text` throws a ConfigError at `line` whose message matches `what`. */
function assertConfigError(text: string, line: number, what: RegExp): void {
  assert.throws(() => parseConfig(text, "u.toml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.name, "ConfigError");
    assert.equal(e.path, "u.toml");
    assert.equal(e.line, line, `line of: ${e.message}`);
    assert.ok(e.message.startsWith(`u.toml:${line}: `), e.message);
    assert.match(e.message, what);
    return true;
  });
}

function cli(overrides: Partial<CliOptions> = {}): CliOptions {
  return { envVars: [], envHost: false, fileMappings: [], ...overrides };
}

function lookup(
  files: string[],
  env: Record<string, string>,
  explicit?: string,
): string | null {
  return findConfigFile({
    explicit,
    env: (name) => env[name],
    cwd: "/work/app",
    exists: (path) => files.includes(path),
  });
}

Deno.test("findConfigFile() follows uhyve's lookup order", async (t) => {
  const all = ["/work/app/uhyve.toml", "/xdg/uhyve/uhyve.toml"];
  await t.step("--config wins over everything, even when it does not exist", () => {
    assert.equal(lookup(all, { HERMIT_CONFIG: "/env.toml" }, "my.toml"), "my.toml");
  });
  await t.step("HERMIT_CONFIG comes next", () => {
    assert.equal(lookup(all, { HERMIT_CONFIG: "/env.toml", XDG_CONFIG_HOME: "/xdg" }), "/env.toml");
  });
  await t.step("an empty HERMIT_CONFIG counts as unset", () => {
    assert.equal(lookup(all, { HERMIT_CONFIG: "" }), "/work/app/uhyve.toml");
  });
  await t.step("then ./uhyve.toml in the cwd", () => {
    assert.equal(lookup(all, { XDG_CONFIG_HOME: "/xdg" }), "/work/app/uhyve.toml");
  });
  await t.step("then $XDG_CONFIG_HOME/uhyve/uhyve.toml", () => {
    assert.equal(lookup(all.slice(1), { XDG_CONFIG_HOME: "/xdg" }), "/xdg/uhyve/uhyve.toml");
  });
  await t.step("XDG_CONFIG_HOME unset or empty: no ~/.config fallback", () => {
    assert.equal(lookup(all.slice(1), {}), null);
    assert.equal(lookup(all.slice(1), { XDG_CONFIG_HOME: "" }), null);
    assert.equal(lookup(["/home/u/.config/uhyve/uhyve.toml"], { HOME: "/home/u" }), null);
  });
  await t.step("XDG file missing: none", () => {
    assert.equal(lookup([], { XDG_CONFIG_HOME: "/xdg" }), null);
  });
  await t.step('--config "" is a usage error', () => {
    assert.throws(() => lookup(all, {}, ""), UsageError);
  });
});

/** uhyve's data/uhyve.toml sample, in substance. */
const SAMPLE = `# sample
[uhyve]
stats = true
file_isolation = "strict"

[memory]
memory_size = '100MiB'
no_aslr = true
thp = true
ksm = true

[cpu]
cpu_count = 4
affinity = [1, 2, 3, 4]
pit = true

[guest]
env_vars = ['foo=bar']
`;

Deno.test("parseConfig() reads uhyve's sample config", () => {
  const config = parseConfig(SAMPLE, "uhyve.toml");
  assert.equal(config.path, "uhyve.toml");
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(config.options, {
    stats: true,
    fileIsolation: "strict",
    memorySize: 100 * MIB,
    noAslr: true,
    thp: true,
    ksm: true,
    cpuCount: 4,
    affinity: [1, 2, 3, 4],
    pit: true,
    envVars: ["foo=bar"],
  });
});

Deno.test("parseConfig() reads every key uhyve 0.8 knows", () => {
  const config = parseConfig(
    `[uhyve]
output = 'test.txt'
stats = false
tempdir = '/tmp/'
file_isolation = 'NONE'
io_mode = 'host=direct,sync'
gdb_port = 1

[memory]
memory_size = 33554432
no_aslr = false
thp = false
ksm = false

[cpu]
cpu_count = 2
cpu_pm = true
pit = false
affinity = '0-1'

[guest]
env_vars = ['A=1', 'B=x=y']
`,
    "u.toml",
  );
  assert.deepEqual(config.options, {
    output: "test.txt",
    stats: false,
    tempDir: "/tmp/",
    fileIsolation: "none",
    ioMode: { direct: true, sync: true },
    gdbPort: 1,
    memorySize: 32 * MIB,
    noAslr: false,
    thp: false,
    ksm: false,
    cpuCount: 2,
    cpuPm: true,
    pit: false,
    affinity: [0, 1],
    envVars: ["A=1", "B=x=y"],
  });
});

Deno.test("parseConfig() takes an empty file and empty sections", () => {
  assert.deepEqual(parseConfig("", "u.toml").options, {});
  assert.deepEqual(parseConfig("# nothing\n[uhyve]\n[cpu]\n", "u.toml").options, {});
});

Deno.test("parseConfig() io_mode without '=' means no flags, as the CLI", () => {
  assert.deepEqual(parseConfig("[uhyve]\nio_mode = 'direct'\n", "u.toml").options, {
    ioMode: { direct: false, sync: false },
  });
});

Deno.test('parseConfig() dhyve extensions: stats = "json", env_vars "host", file_mapping', () => {
  const config = parseConfig(
    `[uhyve]
stats = "json"
file_mapping = ["data:/root/data", "out:/root/out:ro"]
[guest]
env_vars = ["host", "A=1"]
`,
    "u.toml",
  );
  assert.deepEqual(config.options, {
    stats: "json",
    fileMappings: ["data:/root/data", "out:/root/out:ro"],
    envHost: true,
    envVars: ["A=1"],
  });
});

Deno.test("parseConfig() warns about keys uhyve skips in a config file", () => {
  const config = parseConfig(
    `[uhyve]
config = "/ilikerecursion"
net = "tap"
trace_dir = "t"

[guest]
kernel = './data/0.6.0/x86_64/hello_c'
kernel_args = ["a"]
`,
    "u.toml",
  );
  assert.deepEqual(config.options, {});
  assert.deepEqual(config.warnings, [
    "u.toml:2: [uhyve] config is ignored in a config file, as in uhyve",
    "u.toml:3: [uhyve] net is ignored in a config file, as in uhyve",
    "u.toml:4: [uhyve] trace_dir is ignored in a config file, as in uhyve",
    "u.toml:7: [guest] kernel is ignored in a config file, as in uhyve",
    "u.toml:8: [guest] kernel_args is ignored in a config file, as in uhyve",
  ]);
});

Deno.test("parseConfig() reports TOML syntax errors with their line", () => {
  assertConfigError("[uhyve]\nstats = true\ngdb_port = \n", 3, /^u\.toml:3: Invalid TOML: /);
  assertConfigError("[uhyve\n", 1, /Invalid TOML/);
  assertConfigError("[cpu]\ncpu_count = 1\ncpu_count = 2\n", 3, /Invalid TOML/);
  assertConfigError("[cpu]\ncpu_count = 99999999999999999999\n", 2, /Invalid TOML/);
});

Deno.test("parseConfig() rejects an unknown section at its header line", () => {
  assertConfigError(
    "[uhyve]\nstats = true\n\n[network]\nmode = 'tap'\n",
    4,
    /Unknown section \[network\]: the sections are \[uhyve\], \[memory\], \[cpu\] and \[guest\]/,
  );
  assertConfigError("[uhyve.extra]\n", 1, /Unknown key "extra" in \[uhyve\]/);
});

Deno.test("parseConfig() rejects an unknown key at its line, within its section", async (t) => {
  await t.step("a typo", () => {
    assertConfigError(
      "[uhyve]\nstats = true\n[memory]\nstats = 1\nmemroy_size = '64MiB'\n",
      4,
      /Key "stats" does not belong in \[memory\]: put it under \[uhyve\]/,
    );
    assertConfigError(
      "[memory]\nthp = true\nmemroy_size = '64MiB'\n",
      3,
      /Unknown key "memroy_size" in \[memory\]: the keys are memory_size, no_aslr, thp, ksm/,
    );
  });
  await t.step("the same key name earlier in another section does not confuse the line", () => {
    assertConfigError(
      "[uhyve]\npit2 = 1\n",
      2,
      /Unknown key "pit2" in \[uhyve\]/,
    );
    assertConfigError(
      "[cpu]\npit = true\n\n[uhyve]\n# pit\npit = true\n",
      6,
      /Key "pit" does not belong in \[uhyve\]: put it under \[cpu\]/,
    );
  });
  await t.step("a key outside any section", () => {
    assertConfigError(
      "# top\nstats = true\n",
      2,
      /Key "stats" is outside any section: put it under \[uhyve\]/,
    );
    assertConfigError("foo = 1\n", 1, /Unknown section \[foo\]/);
  });
  await t.step("dotted keys and quoted keys", () => {
    assertConfigError("# x\nuhyve.statz = true\n", 2, /Unknown key "statz" in \[uhyve\]/);
    assertConfigError('[cpu]\n"cpu-count" = 2\n', 2, /Unknown key "cpu-count" in \[cpu\]/);
  });
  await t.step("keys that shadow Object.prototype are unknown, not crashes", () => {
    assertConfigError("[uhyve]\ntoString = 1\n", 2, /Unknown key "toString"/);
    assertConfigError("[toString]\n", 1, /Unknown section \[toString\]/);
    assertConfigError("[uhyve]\nconstructor = 1\n", 2, /Invalid TOML|Unknown key/);
  });
});

Deno.test("parseConfig() rejects a section that is not a table", () => {
  assertConfigError("\nuhyve = 3\n", 2, /\[uhyve\] must be a table, not an integer/);
  assertConfigError("[[cpu]]\ncpu_count = 1\n", 1, /\[cpu\] must be a table, not an array/);
});

Deno.test("parseConfig() rejects values of the wrong type at their line", () => {
  const cases: [string, RegExp][] = [
    ["[uhyve]\nstats = 'yes'\n", /\[uhyve\] stats must be true, false or "json", not a string/],
    ["[uhyve]\noutput = 1\n", /\[uhyve\] output must be a string, not an integer/],
    ["[uhyve]\noutput = ''\n", /\[uhyve\] output must name a file/],
    ["[uhyve]\ntempdir = true\n", /\[uhyve\] tempdir must be a string, not a boolean/],
    ["[uhyve]\ngdb_port = '1234'\n", /\[uhyve\] gdb_port must be an integer, not a string/],
    ["[uhyve]\ngdb_port = 1.5\n", /gdb_port must be an integer, not a float/],
    ["[uhyve]\nfile_mapping = 'a:b'\n", /file_mapping must be an array of strings/],
    ["[memory]\nthp = 1\n", /\[memory\] thp must be true or false, not an integer/],
    ["[memory]\nno_aslr = 'true'\n", /no_aslr must be true or false, not a string/],
    ["[memory]\nmemory_size = true\n", /memory_size must be a size such as "256MiB"/],
    ["[memory]\nksm = 2024-01-01\n", /ksm must be true or false, not a date or time/],
    ["[cpu]\ncpu_count = '2'\n", /\[cpu\] cpu_count must be an integer, not a string/],
    ["[cpu]\naffinity = 3\n", /affinity must be a string such as "0-1,3" or an array/],
    ["[cpu]\naffinity = [0, 'a']\n", /affinity must be an array of host CPU numbers/],
    ["[cpu]\npit = { on = true }\n", /pit must be true or false, not a table/],
    ["[guest]\nenv_vars = 'A=1'\n", /env_vars must be an array of strings/],
    ["[guest]\nenv_vars = [1]\n", /env_vars must be an array of strings/],
  ];
  for (const [text, what] of cases) assertConfigError(text, 2, what);
});

Deno.test("parseConfig() applies the CLI's rules to values", () => {
  const cases: [string, RegExp][] = [
    [
      "[memory]\nmemory_size = '8MiB'\n",
      /\[memory\] memory_size: Guest memory of 8 MiB is too small/,
    ],
    ["[memory]\nmemory_size = '65MiB'\n", /not a multiple of 2 MiB: use 66 MiB/],
    ["[memory]\nmemory_size = 'lots'\n", /Invalid memory size "lots"/],
    ["[memory]\nmemory_size = 1000\n", /too small/],
    ["[cpu]\ncpu_count = 0\n", /\[cpu\] cpu_count: Invalid vCPU count 0/],
    ["[cpu]\ncpu_count = 1000\n", /Invalid vCPU count 1000/],
    ["[cpu]\naffinity = '1-0'\n", /runs backwards/],
    ["[cpu]\naffinity = [0, 0]\n", /CPU 0 is listed twice/],
    ["[cpu]\naffinity = [-1]\n", /CPU -1 is not a host CPU number/],
    ["[uhyve]\nfile_isolation = 'paranoid'\n", /Invalid --file-isolation "paranoid"/],
    ["[uhyve]\nio_mode = 'host=fast'\n", /Invalid --io-mode "host=fast"/],
    ["[uhyve]\ngdb_port = 0\n", /gdb_port must be a TCP port from 1 to 65535, not 0/],
    ["[uhyve]\ngdb_port = 65536\n", /not 65536/],
    ["[uhyve]\nfile_mapping = ['nocolon']\n", /file_mapping: Cannot parse file mapping "nocolon"/],
    ["[uhyve]\nfile_mapping = ['a:/']\n", /the guest path is the root/],
    [
      "[guest]\nenv_vars = ['NOEQUALS']\n",
      /\[guest\] env_vars: Invalid environment entry "NOEQUALS"/,
    ],
    ["[guest]\nenv_vars = ['=x']\n", /Invalid environment entry "=x"/],
  ];
  for (const [text, what] of cases) assertConfigError(text, 2, what);
});

Deno.test("parseConfig() places an error in an inline table on the line that mentions the key", () => {
  assertConfigError("# c\n\ncpu = { cpu_count = 0 }\n", 3, /cpu_count: Invalid vCPU count 0/);
});

Deno.test("ConfigError is an Error with the file and line", () => {
  const e = new ConfigError({ path: "/a/uhyve.toml", line: 7 }, "Something is wrong");
  assert.ok(e instanceof Error);
  assert.equal(e.message, "/a/uhyve.toml:7: Something is wrong");
  assert.equal(e.path, "/a/uhyve.toml");
  assert.equal(e.line, 7);
});

function file(options: ConfigFile["options"]): ConfigFile {
  return { path: "u.toml", options, warnings: [] };
}

/** uhyve's merge test config (0.9.1): every key set. */
const FULL = `[uhyve]
output = 'test.txt'
stats = true
tempdir = '/tmp/'
hermit_image_mode = 'internal'
file_isolation = 'strict'
io_mode = 'direct'
gdb_port = 1
[memory]
memory_size = '16MiB'
no_aslr = true
thp = true
ksm = true
[cpu]
cpu_count = 4
cpu_pm = true
affinity = [0,1,2]
pit = true
[guest]
env_vars = ['foo=bar']
`;

Deno.test("mergeConfig() reproduces uhyve's merge test: the file fills what the CLI left out", () => {
  const merged = mergeConfig(
    cli({ fileMappings: ["./host:/root/guest.txt"], net: "tap:tap10" }),
    parseConfig(FULL, "u.toml"),
  );
  assert.deepEqual(merged, {
    memorySize: 16 * MIB,
    cpuCount: 4,
    affinity: [0, 1, 2],
    envVars: ["foo=bar"],
    envHost: false,
    fileMappings: ["./host:/root/guest.txt"],
    tempDir: "/tmp/",
    fileIsolation: "strict",
    ioMode: { direct: false, sync: false },
    hermitImageMode: "internal",
    output: "test.txt",
    stats: true,
    noAslr: true,
    thp: true,
    ksm: true,
    pit: true,
    cpuPm: true,
    gdbPort: 1,
    net: "tap:tap10",
  });
});

Deno.test("mergeConfig() keeps every value the CLI gave, false included", () => {
  const given: CliOptions = cli({
    memorySize: 256 * MIB,
    cpuCount: 2,
    affinity: [3, 4],
    tempDir: "/t",
    fileIsolation: "none",
    ioMode: { direct: true, sync: false },
    hermitImageMode: "external",
    output: "none",
    stats: "json",
    noAslr: false,
    thp: false,
    ksm: false,
    pit: false,
    cpuPm: false,
    gdbPort: 6677,
    net: "tap",
  });
  const merged = mergeConfig(given, parseConfig(FULL, "u.toml"));
  assert.deepEqual({ ...merged, envVars: [] }, { ...given, envVars: [] });
});

Deno.test("mergeConfig() appends env_vars and file mappings after the CLI's and ORs -e host", () => {
  const merged = mergeConfig(
    cli({ envVars: ["A=cli"], fileMappings: ["a:/a"] }),
    file({ envVars: ["A=file", "B=2"], fileMappings: ["b:/b"], envHost: true }),
  );
  assert.deepEqual(merged.envVars, ["A=cli", "A=file", "B=2"]);
  assert.deepEqual(merged.fileMappings, ["a:/a", "b:/b"]);
  assert.equal(merged.envHost, true);
  assert.equal(mergeConfig(cli({ envHost: true }), file({})).envHost, true);
  assert.equal(mergeConfig(cli(), file({})).envHost, false);
});

Deno.test("mergeConfig() with an empty file changes nothing and mutates nothing", () => {
  const given = cli({ envVars: ["A=1"], fileMappings: ["x:/x"], cpuCount: 3 });
  const snapshot = structuredClone(given);
  const config = file({ envVars: ["B=2"] });
  const merged = mergeConfig(given, config);
  assert.deepEqual(given, snapshot);
  assert.deepEqual(config.options, { envVars: ["B=2"] });
  assert.notEqual(merged.envVars, given.envVars);
  assert.equal(mergeConfig(given, file({})).cpuCount, 3);
});

Deno.test("parseAffinity() reads uhyve's syntax", () => {
  assert.deepEqual(parseAffinity("0-1,3"), [0, 1, 3]);
  assert.deepEqual(parseAffinity("0 1 2"), [0, 1, 2]);
  assert.deepEqual(parseAffinity("0,1"), [0, 1]);
  assert.deepEqual(parseAffinity("0-1,2"), [0, 1, 2]);
  assert.deepEqual(parseAffinity(" 4 , 2-3 "), [4, 2, 3]);
  assert.deepEqual(parseAffinity("5"), [5]);
  assert.deepEqual(parseAffinity("7-7"), [7]);
  assert.deepEqual(parseAffinity("0-2", 3), [0, 1, 2]);
});

Deno.test("parseAffinity() rejects bad input with a UsageError saying why", () => {
  const cases: [string, RegExp][] = [
    ["", /list host CPU numbers/],
    ["  ", /list host CPU numbers/],
    ["a", /"a" is neither a CPU number nor a range/],
    ["1-", /"1-" is neither/],
    ["-1", /"-1" is neither/],
    ["1-2-3", /"1-2-3" is neither/],
    ["0x1", /neither/],
    [",0", /an item between commas is empty/],
    ["0,", /empty/],
    ["3-1", /the range 3-1 runs backwards; write 1-3/],
    ["0,0", /CPU 0 is listed twice/],
    ["0-2,1", /CPU 1 is listed twice/],
    [`${MAX_CPU_ID + 1}`, /CPU 8192 is not a host CPU number \(0 to 8191\)/],
    ["0-99999", /CPU 99999 is not a host CPU number/],
  ];
  for (const [text, what] of cases) {
    assert.throws(() => parseAffinity(text), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.ok(e.message.startsWith(`Invalid --affinity "${text}": `), e.message);
      assert.match(e.message, what);
      return true;
    });
  }
});

Deno.test("parseAffinity() with a vCPU count requires one host CPU per vCPU", () => {
  assert.throws(
    () => parseAffinity("0-2", 2),
    /Invalid --affinity 0,1,2: it lists 3 host CPUs but there are 2 vCPUs \(-c\); give exactly one host CPU per vCPU/,
  );
  assert.throws(() => parseAffinity("0", 2), /lists 1 host CPU but there are 2 vCPUs/);
  assert.throws(() => parseAffinity("0,1", 1), /lists 2 host CPUs but there is 1 vCPU/);
});

Deno.test("validateAffinity() checks count, duplicates and the host's CPUs", () => {
  assert.deepEqual(validateAffinity([1, 0], { cpuCount: 2, hostCpus: 2 }), [1, 0]);
  assert.throws(() => validateAffinity([0, 2], { cpuCount: 2, hostCpus: 2 }), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /this host has CPUs 0 to 1, not 2/);
    return true;
  });
  assert.throws(() => validateAffinity([1, 1], { cpuCount: 2 }), /CPU 1 is listed twice/);
  assert.throws(() => validateAffinity([0.5], { cpuCount: 1 }), /not a host CPU number/);
  assert.throws(() => validateAffinity([], { cpuCount: 1 }), /lists 0 host CPUs/);
});
