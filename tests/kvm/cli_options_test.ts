/**
 * The command line as a user meets it, through subprocess runs of `main.ts`:
 * every bad input ends with exactly one `dhyve: error:` line on stderr (no
 * stack trace, nothing on stdout) and its documented exit code; every uhyve
 * 0.8 option spelling is accepted; `-o`, `--stats[=json]`; the config file
 * (lookup order, command line wins, errors with file and line, boolean keys);
 * the `HERMIT_*` environment variables; guest stdin through a pipe and
 * interactively (v1 FileRead on fd 0, v2 SerialReadBuffer); host diagnostics
 * on stderr only. Needs /dev/kvm, `--allow-run` (deno, gcc; setpriv and
 * unshare for the /dev/kvm cases when running as root), `--allow-read`,
 * `--allow-write` (guest builds, temp files) and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { Kvm, KvmUnavailableError } from "../../src/kvm.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const REPO_ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");
const MAIN = `${REPO_ROOT}/main.ts`;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The default permissions of a run: KVM, reading the kernel, the config and the environment. */
const PERMS: readonly string[] = ["--allow-ffi", "--allow-read", "--allow-env"];

/** An empty directory: the cwd of every run unless a test gives another (no stray uhyve.toml). */
const EMPTY_CWD = Deno.makeTempDirSync({ prefix: "dhyve-cli-options-cwd-" });
globalThis.addEventListener("unload", () => Deno.removeSync(EMPTY_CWD, { recursive: true }));

/** How to run `main.ts`. */
interface RunOptions {
  /** Deno permission flags (default {@linkcode PERMS}). */
  perms?: readonly string[];
  /** The working directory (default: an empty temp dir). */
  cwd?: string;
  /** Extra environment variables; the rest of the environment is cleared. */
  env?: Record<string, string>;
  /** Text for the guest's stdin (default: /dev/null). */
  stdin?: string;
  /** Run `deno` through this command prefix, e.g. `["setpriv", …]`. */
  prefix?: readonly string[];
}

/** The outcome of one `deno run main.ts …`. */
interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment every run starts from: only what Deno itself needs. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  // Pin Deno's cache, so that a test that changes HOME does not start a cold one.
  if (env.DENO_DIR === undefined) {
    const cache = env.XDG_CACHE_HOME ?? (env.HOME === undefined ? undefined : `${env.HOME}/.cache`);
    if (cache !== undefined) env.DENO_DIR = `${cache}/deno`;
  }
  return env;
}

/** Runs `deno run <perms> main.ts <args>` with a clean environment. */
async function dhyve(args: readonly string[], opts: RunOptions = {}): Promise<CliRun> {
  const denoArgs = ["run", "--quiet", ...(opts.perms ?? PERMS), MAIN, ...args];
  const [command, ...prefixArgs] = opts.prefix ?? [];
  const child = new Deno.Command(command ?? Deno.execPath(), {
    args: command === undefined ? denoArgs : [...prefixArgs, Deno.execPath(), ...denoArgs],
    cwd: opts.cwd ?? EMPTY_CWD,
    clearEnv: true,
    env: { ...baseEnv(), ...opts.env },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(opts.stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The non-empty lines of `text`. */
function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

function describeRun(run: CliRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

/**
 * Asserts exit `code`, exactly one stderr line starting `dhyve: error: `,
 * no stack frames, nothing on stdout, and that the line matches `mentions`.
 */
function assertOneErrorLine(run: CliRun, code: number, ...mentions: RegExp[]): string {
  const context = describeRun(run);
  assert.equal(run.code, code, context);
  const errors = lines(run.stderr);
  assert.equal(errors.length, 1, `exactly one line on stderr\n${context}`);
  const [line] = errors as [string];
  assert.match(line, /^dhyve: error: \S/, context);
  assert.doesNotMatch(run.stderr, / {4}at /, `no stack frames\n${context}`);
  assert.equal(run.stdout, "", `nothing on stdout\n${context}`);
  for (const pattern of mentions) assert.match(line, pattern, context);
  return line;
}

/** Asserts a clean run: exit `code`, nothing on stderr. */
function assertRan(run: CliRun, code: number): void {
  assert.equal(run.code, code, describeRun(run));
  assert.equal(run.stderr, "", describeRun(run));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A fresh temp dir, removed after `fn`. */
async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-cli-options-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The `--stats=json` document on stdout (with `-o none`, stdout holds only that). */
interface StatsDoc {
  bootMs: number;
  runMs: number;
  totalExits: number;
  cpus: { cpu: number; runtimeMs: number | null; exits: number }[];
  exits: { name: string; total: number; perCpu: number[] }[];
}

function statsOf(run: CliRun): StatsDoc {
  assert.equal(run.code, 0, describeRun(run));
  return JSON.parse(run.stdout) as StatsDoc;
}

const V1: GuestBuild = { iface: 1, pie: true };
const V2: GuestBuild = { iface: 2, pie: true };

const noop = (): Promise<string> => buildGuest("noop", V1);

// ---------------------------------------------------------------------------
// Bad input: one line, a documented exit code, no stack trace

kvmTest("bad input: a missing kernel file exits 66 naming the file", async () => {
  const missing = `${EMPTY_CWD}/no-such-kernel`;
  assertOneErrorLine(
    await dhyve([missing]),
    EXIT_CODE.NO_INPUT,
    /does not exist/,
    new RegExp(escapeRegExp(missing)),
  );
});

kvmTest("bad input: a directory as the kernel exits 66 saying it is a directory", async () => {
  assertOneErrorLine(await dhyve([EMPTY_CWD]), EXIT_CODE.NO_INPUT, /directory/);
});

kvmTest("bad input: a file that is not ELF exits 65", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/notes.txt`;
    await Deno.writeTextFile(path, "just some text, not a kernel\n".repeat(10));
    assertOneErrorLine(await dhyve([path]), EXIT_CODE.BAD_KERNEL, /not a usable Hermit kernel/);
    await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
    assertOneErrorLine(await dhyve([`${dir}/empty`]), EXIT_CODE.BAD_KERNEL);
  });
});

kvmTest("bad input: an ELF for another architecture exits 65 naming the architecture", async () => {
  const elf = await Deno.readFile(await noop());
  new DataView(elf.buffer, elf.byteOffset).setUint16(18, 183, true); // EM_AARCH64
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/arm`, elf);
    assertOneErrorLine(await dhyve([`${dir}/arm`]), EXIT_CODE.BAD_KERNEL, /architecture/i);
  });
});

/** Offset of the UHYVEIF note's descriptor (a big-endian u32) in a v2 guest ELF. */
function uhyveIfDescriptor(elf: Uint8Array): number {
  const name = encoder.encode("UHYVEIF\0");
  outer: for (let i = 12; i + name.length + 4 <= elf.length; i++) {
    for (let j = 0; j < name.length; j++) if (elf[i + j] !== name[j]) continue outer;
    const view = new DataView(elf.buffer, elf.byteOffset);
    if (view.getUint32(i - 4, true) === 0x5b00 && view.getUint32(i - 12, true) === 8) {
      return i + name.length;
    }
  }
  throw new Error("no UHYVEIF note in the guest ELF");
}

kvmTest("bad input: an unsupported interface version (3, 7) exits 65 naming it", async () => {
  const elf = await Deno.readFile(await buildGuest("noop", V2));
  const at = uhyveIfDescriptor(elf);
  assert.deepEqual([...elf.subarray(at, at + 4)], [0, 0, 0, 2]);
  await withTempDir(async (dir) => {
    for (const version of [3, 7]) {
      const patched = elf.slice();
      new DataView(patched.buffer).setUint32(at, version, false);
      const path = `${dir}/v${version}`;
      await Deno.writeFile(path, patched);
      assertOneErrorLine(
        await dhyve([path]),
        EXIT_CODE.BAD_KERNEL,
        new RegExp(`interface version ${version}`),
        /1 and 2/,
      );
    }
  });
});

kvmTest("bad input: too little memory (-m 8MiB) exits 64 naming the 16 MiB minimum", async () => {
  assertOneErrorLine(await dhyve(["-m", "8MiB", await noop()]), EXIT_CODE.USAGE, /16 ?MiB/);
});

kvmTest("bad input: memory not a multiple of 2 MiB (-m 17MiB) exits 64 with the fix", async () => {
  assertOneErrorLine(
    await dhyve(["--memory-size", "17MiB", await noop()]),
    EXIT_CODE.USAGE,
    /multiple of 2 MiB/,
    /18 ?MiB/,
  );
});

kvmTest("bad input: a memory size that is no size exits 64", async () => {
  assertOneErrorLine(await dhyve(["-m", "lots", await noop()]), EXIT_CODE.USAGE, /"lots"/);
});

kvmTest("bad input: an -e entry without '=' exits 64 saying KEY=VALUE", async () => {
  for (const entry of ["FOO", "=value"]) {
    assertOneErrorLine(
      await dhyve(["-e", entry, await noop()]),
      EXIT_CODE.USAGE,
      new RegExp(escapeRegExp(`"${entry}"`)),
      /KEY=VALUE/,
    );
  }
});

kvmTest(
  "bad input: affinity lists with bad syntax, a wrong count or a missing core exit 64",
  async () => {
    const kernel = await noop();
    assertOneErrorLine(await dhyve(["-a", "x", kernel]), EXIT_CODE.USAGE, /affinity/i, /"x"/);
    assertOneErrorLine(await dhyve(["-a", "1-0", kernel]), EXIT_CODE.USAGE, /backwards/);
    assertOneErrorLine(await dhyve(["-a", "0,0", kernel]), EXIT_CODE.USAGE, /twice/);
    assertOneErrorLine(
      await dhyve(["-a", "0-1", kernel]),
      EXIT_CODE.USAGE,
      /one host CPU per vCPU/,
    );
    assertOneErrorLine(
      await dhyve(["-c", "2", "--affinity", "0", kernel]),
      EXIT_CODE.USAGE,
      /one host CPU per vCPU/,
    );
    const missing = navigator.hardwareConcurrency;
    assertOneErrorLine(
      await dhyve(["-a", String(missing), kernel]),
      EXIT_CODE.USAGE,
      new RegExp(`this host has CPUs 0 to ${missing - 1}, not ${missing}`),
    );
  },
);

kvmTest(
  "bad input: a bad vCPU count, --file-isolation, --io-mode or --timeout exits 64",
  async () => {
    const kernel = await noop();
    for (
      const [args, mention] of [
        [["-c", "0"], /vCPU count/],
        [["--cpu-count", "many"], /"many"/],
        [["-c", "257"], /vCPU count/],
        [["--file-isolation", "paranoid"], /none, normal or strict/],
        [["--io-mode", "guest=sync"], /host=direct/],
        [["--timeout", "soon"], /"soon"/],
        [["--config="], /--config/],
      ] as const
    ) {
      assertOneErrorLine(await dhyve([...args, kernel]), EXIT_CODE.USAGE, mention);
    }
  },
);

kvmTest("bad input: an unknown flag and a missing kernel exit 64 pointing at --help", async () => {
  assertOneErrorLine(await dhyve(["--bogus", await noop()]), EXIT_CODE.USAGE, /--bogus/, /--help/);
  assertOneErrorLine(await dhyve([]), EXIT_CODE.USAGE, /No kernel/);
});

kvmTest("bad input: a bad -s/--gdb-port port exits 64", async () => {
  const kernel = await noop();
  for (const args of [["-s", "70000"], ["--gdb-port=x"], ["--gdb-port=-1"]]) {
    assertOneErrorLine(await dhyve([...args, kernel]), EXIT_CODE.USAGE, /GDB port/);
  }
});

kvmTest("bad input: an existing -o file exits 73 and keeps its content", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out.txt`;
    await Deno.writeTextFile(out, "precious\n");
    assertOneErrorLine(
      await dhyve(["-o", out, await buildGuest("hello", V1)], {
        perms: [...PERMS, `--allow-write=${dir}`],
      }),
      EXIT_CODE.CANNOT_CREATE,
      /already exists/,
      new RegExp(escapeRegExp(out)),
    );
    assert.equal(await Deno.readTextFile(out), "precious\n");
  });
});

kvmTest("bad input: an -o file in a missing directory exits 73", async () => {
  await withTempDir(async (dir) => {
    assertOneErrorLine(
      await dhyve(["--output", `${dir}/no/such/dir/out.txt`, await noop()], {
        perms: [...PERMS, `--allow-write=${dir}`],
      }),
      EXIT_CODE.CANNOT_CREATE,
      /output file/,
    );
  });
});

kvmTest("bad input: an -o file without --allow-write exits 77 naming the flag", async () => {
  await withTempDir(async (dir) => {
    assertOneErrorLine(
      await dhyve(["-o", `${dir}/out.txt`, await noop()]),
      EXIT_CODE.PERMISSION,
      /--allow-write/,
    );
  });
});

kvmTest(
  "bad input: a run that fails before the guest starts leaves no -o file behind",
  async () => {
    // Otherwise the corrected command fails with "already exists".
    await withTempDir(async (dir) => {
      const out = `${dir}/out.txt`;
      const perms = [...PERMS, `--allow-write=${dir}`];
      assertOneErrorLine(
        await dhyve(["-o", out, `${dir}/missing-kernel`], { perms }),
        EXIT_CODE.NO_INPUT,
      );
      const left = await Deno.stat(out).then(() => true, () => false);
      assert.equal(left, false, "the -o file of a failed run is removed");
      const run = await dhyve(["-o", out, await buildGuest("exit_code", V1), "4"], { perms });
      assertRan(run, 4);
    });
  },
);

kvmTest("bad input: a directory as --config exits 78 naming it", async () => {
  await withTempDir(async (dir) => {
    assertOneErrorLine(
      await dhyve(["--config", dir, await noop()]),
      EXIT_CODE.CONFIG,
      new RegExp(escapeRegExp(dir)),
      /directory/i,
    );
  });
});

kvmTest("bad input: a missing --config / HERMIT_CONFIG file exits 78 naming it", async () => {
  const missing = `${EMPTY_CWD}/missing.toml`;
  assertOneErrorLine(
    await dhyve(["--config", missing, await noop()]),
    EXIT_CODE.CONFIG,
    new RegExp(escapeRegExp(missing)),
  );
  assertOneErrorLine(
    await dhyve([await noop()], { env: { HERMIT_CONFIG: missing } }),
    EXIT_CODE.CONFIG,
    new RegExp(escapeRegExp(missing)),
  );
});

kvmTest("bad input: bad TOML, an unknown key or a bad value exits 78 with file:line", async () => {
  const kernel = await noop();
  await withTempDir(async (dir) => {
    const cases: [string, number, RegExp][] = [
      ["[memory\nmemory_size = 1\n", 1, /Invalid TOML/],
      ['[memory]\nmemory_size = "32MiB"\nbogus = 1\n', 3, /Unknown key "bogus"/],
      ['[cpu]\n\ncpu_count = "two"\n', 3, /cpu_count must be an integer/],
      ['[memory]\nmemory_size = "8MiB"\n', 2, /16 MiB/],
      ["[network]\nport = 1\n", 1, /Unknown section \[network\]/],
      ["[memory]\nno_aslr = 1\n", 2, /true or false/],
    ];
    for (const [i, [text, line, mention]] of cases.entries()) {
      const path = `${dir}/bad${i}.toml`;
      await Deno.writeTextFile(path, text);
      assertOneErrorLine(
        await dhyve(["--config", path, kernel]),
        EXIT_CODE.CONFIG,
        new RegExp(`^dhyve: error: ${escapeRegExp(path)}:${line}: `),
        mention,
      );
    }
    // The same through ./uhyve.toml: the message names the file that was found.
    await Deno.writeTextFile(`${dir}/uhyve.toml`, "[cpu]\ncpu_count = 0\n");
    assertOneErrorLine(
      await dhyve([kernel], { cwd: dir }),
      EXIT_CODE.CONFIG,
      new RegExp(`${escapeRegExp(`${dir}/uhyve.toml`)}:2: `),
    );
  });
});

// ---------------------------------------------------------------------------
// /dev/kvm: missing, not permitted, not KVM

kvmTest("KvmUnavailableError: a missing device says to load the KVM module", () => {
  assert.throws(() => Kvm.open("/nonexistent/kvm"), (error: unknown) => {
    assert.ok(error instanceof KvmUnavailableError);
    assert.equal(error.errno, ERRNO.ENOENT);
    assert.match(error.message, /^\/nonexistent\/kvm does not exist/);
    assert.match(error.message, /modprobe kvm_intel|modprobe kvm_amd/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

kvmTest("KvmUnavailableError: every errno gets a one-line message with a fix", () => {
  const cases: [number, RegExp][] = [
    [ERRNO.EACCES, /Permission denied opening \/dev\/kvm: add your user to the kvm group/],
    [ERRNO.EPERM, /kvm group/],
    [ERRNO.ENXIO, /no KVM driver.*modprobe/],
    [ERRNO.ENODEV, /no KVM driver.*modprobe/],
    [ERRNO.ENOENT, /does not exist.*modprobe/],
    [ERRNO.EBUSY, /Cannot open \/dev\/kvm: EBUSY \(16\)/],
  ];
  for (const [errno, pattern] of cases) {
    const error = new KvmUnavailableError("/dev/kvm", errno);
    assert.equal(error.name, "KvmUnavailableError");
    assert.equal(error.errno, errno);
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
  }
});

/** Whether `cmd args` runs and succeeds here (e.g. `unshare -m true`). */
async function works(cmd: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Whether this process runs as root (`id -u`, so that no --allow-sys is needed). */
async function isRoot(): Promise<boolean> {
  try {
    const out = await new Deno.Command("id", { args: ["-u"], stdout: "piped", stderr: "null" })
      .output();
    return out.success && decoder.decode(out.stdout).trim() === "0";
  } catch {
    return false;
  }
}

function skip(what: string): void {
  // deno-lint-ignore no-console
  console.error(`SKIP: ${what}`);
}

kvmTest("/dev/kvm without permission (run as nobody) exits 69 saying how to fix it", async () => {
  if (!(await isRoot()) || !(await works("setpriv", ["--version"]))) {
    skip("needs root and setpriv to run dhyve as an unprivileged user");
    return;
  }
  const kernel = await noop();
  await withTempDir(async (dir) => {
    await Deno.chmod(dir, 0o777);
    const run = await dhyve([kernel], {
      prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
      cwd: dir,
      env: { HOME: dir, DENO_DIR: `${dir}/deno` },
    });
    if (run.code === 0) {
      skip("/dev/kvm is open to everyone here: no EACCES to provoke");
      return;
    }
    assertOneErrorLine(
      run,
      EXIT_CODE.KVM_UNAVAILABLE,
      /Permission denied opening \/dev\/kvm/,
      /kvm group/,
    );
  });
});

/** Runs dhyve in a new mount namespace after `setup` (a shell snippet) changed /dev. */
async function inMountNamespace(setup: string, kernel: string): Promise<CliRun | null> {
  if (!(await isRoot()) || !(await works("unshare", ["-m", "true"]))) return null;
  const script = `${setup} && exec "$@"`;
  return await dhyve([kernel], { prefix: ["unshare", "-m", "sh", "-c", script, "sh"] });
}

kvmTest("/dev/kvm missing (mount namespace) exits 69 saying to load the module", async () => {
  const run = await inMountNamespace("mount -t tmpfs none /dev", await noop());
  if (run === null) {
    skip("needs root and unshare -m to hide /dev/kvm");
    return;
  }
  assertOneErrorLine(run, EXIT_CODE.KVM_UNAVAILABLE, /\/dev\/kvm does not exist/, /modprobe/);
});

kvmTest("/dev/kvm that is not a KVM device exits 69 with a line that says so", async () => {
  await withTempDir(async (dir) => {
    const fake = `${dir}/fake-kvm`;
    await Deno.writeTextFile(fake, "");
    const run = await inMountNamespace(`mount --bind '${fake}' /dev/kvm`, await noop());
    if (run === null) {
      skip("needs root and unshare -m to replace /dev/kvm");
      return;
    }
    assertOneErrorLine(run, EXIT_CODE.KVM_UNAVAILABLE, /\/dev\/kvm/, /KVM/);
  });
});

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Output: -o, --stats, diagnostics apart from guest output

const HELLO_V1 = [
  "Hello from dhyve guest (v1, pie)!",
  "hello via fd 1",
  "hello via fd 2",
  "hello via serial byte",
];

kvmTest(
  "-o FILE gets all guest output (fds 1 and 2 too); stdout and stderr stay empty",
  async () => {
    const kernel = await buildGuest("hello", V1);
    await withTempDir(async (dir) => {
      const out = `${dir}/guest.txt`;
      const run = await dhyve(["-o", out, kernel], { perms: [...PERMS, `--allow-write=${dir}`] });
      assertRan(run, 0);
      assert.equal(run.stdout, "");
      assert.deepEqual(lines(await Deno.readTextFile(out)).sort(), [...HELLO_V1].sort());
    });
  },
);

kvmTest("-o FILE --stats: the guest output in the file, only the stats on stdout", async () => {
  const kernel = await buildGuest("hello", V1);
  await withTempDir(async (dir) => {
    const out = `${dir}/guest.txt`;
    const run = await dhyve(["-o", out, "--stats", kernel], {
      perms: [...PERMS, `--allow-write=${dir}`],
    });
    assertRan(run, 0);
    assert.match(run.stdout, /^Run statistics:\n/);
    for (const line of HELLO_V1) assert.ok(!run.stdout.includes(line), `"${line}" not on stdout`);
    assert.equal(lines(await Deno.readTextFile(out)).length, HELLO_V1.length);
  });
});

kvmTest("-o none discards the guest output", async () => {
  const kernel = await buildGuest("hello", V2);
  for (const none of ["none", "None"]) {
    const run = await dhyve(["-o", none, kernel]);
    assertRan(run, 0);
    assert.equal(run.stdout, "");
  }
});

kvmTest(
  "host diagnostics go to stderr only, prefixed dhyve:, never into the guest output",
  async () => {
    const kernel = await buildGuest("hello", V1);
    const run = await dhyve(["-vv", kernel]);
    assert.equal(run.code, 0, describeRun(run));
    assert.deepEqual(lines(run.stdout), [
      "Hello from dhyve guest (v1, pie)!",
      "hello via fd 1",
      "hello via serial byte",
    ]);
    const diagnostics = lines(run.stderr).filter((line) => line !== "hello via fd 2");
    assert.ok(diagnostics.length > 0, "-vv prints diagnostics");
    for (const line of diagnostics) assert.match(line, /^dhyve: /, describeRun(run));
    assert.ok(lines(run.stderr).includes("hello via fd 2"));
    // -q: errors only; a clean run prints nothing of dhyve's own.
    const quiet = await dhyve(["-q", kernel]);
    assert.equal(quiet.stderr, "hello via fd 2\n");
  },
);

kvmTest("--stats prints uhyve's table after the guest output, with a column per vCPU", async () => {
  const kernel = await buildGuest("hello", V1);
  const one = await dhyve(["--stats", kernel]);
  assert.equal(one.code, 0, describeRun(one));
  const stats = one.stdout.indexOf("Run statistics:");
  assert.ok(stats > 0, describeRun(one));
  assert.ok(one.stdout.lastIndexOf("hello via serial byte") < stats, "stats after the guest");
  assert.match(one.stdout, /^VM exits: +total +cpu0$/m);
  assert.match(one.stdout, /^ {2}Hypercall\(V1\(Exit\)\): +1 +1$/m);
  assert.match(one.stdout, /^CPU runtimes:\n {2}cpu 0: \d/m);

  const two = await dhyve(["--stats", "-c", "2", await buildGuest("exit_code", V1), "9"]);
  assert.equal(two.code, 9, describeRun(two));
  assert.match(two.stdout, /^Run statistics:\n/);
  assert.match(two.stdout, /^VM exits: +total +cpu0 +cpu1$/m);
  assert.match(two.stdout, /^ {2}cpu 0: /m);
  assert.match(two.stdout, /^ {2}cpu 1: /m);
  assert.doesNotMatch(two.stdout, /\n\n$/, "no blank line at the end");
});

kvmTest("--stats=json prints one JSON document with totalExits > 0", async () => {
  const run = await dhyve(["-o", "none", "--stats=json", await buildGuest("hello", V2)]);
  const doc = statsOf(run);
  assert.ok(doc.totalExits > 0);
  assert.ok(doc.bootMs > 0 && doc.runMs > 0);
  assert.equal(doc.cpus.length, 1);
  assert.equal(doc.cpus[0]!.exits, doc.totalExits);
  const names = doc.exits.map((e) => e.name);
  assert.ok(names.includes("Hypercall(V2(Exit))"), names.join(", "));
  assert.ok(names.includes("Hypercall(V2(SerialWriteBuffer))"), names.join(", "));
  const sum = doc.exits.reduce((n, e) => n + e.total, 0);
  assert.equal(sum, doc.totalExits);
  // After "--", --stats=json is a guest argument, not the flag.
  const asArg = await dhyve([await buildGuest("exit_code", V1), "--", "--stats=json"]);
  assert.equal(asArg.code, 1, describeRun(asArg));
  assert.doesNotMatch(asArg.stdout, /totalExits/);
});

/** Runs dhyve with its stdout closed before it writes (as `dhyve … | true`). */
async function withClosedStdout(args: string[]): Promise<CliRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMS, MAIN, ...args],
    cwd: EMPTY_CWD,
    clearEnv: true,
    env: baseEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await child.stdout.cancel();
  const output = await child.output();
  return { code: output.code, stdout: "", stderr: decoder.decode(output.stderr) };
}

kvmTest("a closed stdout (| head) ends quietly: no stack trace, no internal error", async () => {
  for (
    const [args, code] of [
      [["--stats", await noop()], 0],
      [["--stats=json", await buildGuest("exit_code", V1), "3"], 3],
      [[await buildGuest("hello", V1)], 0],
      [["--help"], 0],
    ] as const
  ) {
    const run = await withClosedStdout([...args]);
    assert.equal(run.code, code, describeRun(run));
    assert.doesNotMatch(run.stderr, / {4}at /, describeRun(run));
    assert.doesNotMatch(run.stderr, /Internal error|Uncaught/, describeRun(run));
  }
});

// ---------------------------------------------------------------------------
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
async function cpusOf(args: string[], opts: RunOptions): Promise<number> {
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

// ---------------------------------------------------------------------------
// Guest stdin: v1 FileRead on fd 0, v2 SerialReadBuffer

for (const variant of [V1, V2, { iface: 2, pie: false } as GuestBuild]) {
  kvmTest(`stdin through a pipe reaches the guest (${guestVariantName(variant)})`, async () => {
    const kernel = await buildGuest("stdin_echo", variant);
    let run = await dhyve([kernel], { stdin: "alpha\nbeta\n\ngamma" });
    assertRan(run, 4);
    assert.equal(run.stdout, "got: alpha\ngot: beta\ngot: \ngot: gamma\n");
    run = await dhyve([kernel]); // /dev/null
    assertRan(run, 0);
    assert.equal(run.stdout, "");
    const long = `${"x".repeat(1000)}\n`.repeat(3);
    run = await dhyve([kernel], { stdin: long });
    assert.equal(run.code, 3 * 4, describeRun(run)); // the guest cuts lines at 256 bytes
  });
}

kvmTest("stdin through a pipe reaches the boot CPU's guest code with -c 2 (v1, v2)", async () => {
  for (const variant of [V1, V2]) {
    const run = await dhyve(["-c", "2", await buildGuest("stdin_echo", variant)], {
      stdin: "first\nsecond\n",
    });
    assertRan(run, 2);
    assert.equal(run.stdout, "got: first\ngot: second\n");
  }
});

/** A running dhyve whose stdin the test writes and whose stdout it waits on. */
class Interactive {
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
  stdout = "";

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...PERMS, MAIN, ...args],
      cwd: EMPTY_CWD,
      clearEnv: true,
      env: baseEnv(),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.#child.stdout.getReader();
    this.#writer = this.#child.stdin.getWriter();
  }

  /** Waits until stdout contains `text` (at most `ms`). */
  async waitFor(text: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.stdout.includes(text)) {
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#pending ??= this.#reader.read();
      const result = await Promise.race([
        this.#pending,
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), Math.max(0, left))),
      ]);
      clearTimeout(timer);
      if (result === null) {
        throw new Error(
          `no ${JSON.stringify(text)} on stdout after ${ms} ms: ${JSON.stringify(this.stdout)}`,
        );
      }
      this.#pending = null;
      if (result.done) {
        throw new Error(
          `stdout ended without ${JSON.stringify(text)}: ${JSON.stringify(this.stdout)}`,
        );
      }
      this.stdout += decoder.decode(result.value);
    }
  }

  async send(text: string): Promise<void> {
    await this.#writer.write(encoder.encode(text));
  }

  /** Closes stdin and returns the exit code; kills the run if it does not end. */
  async finish(): Promise<{ code: number; stderr: string }> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    this.#pending ??= this.#reader.read();
    for (;;) {
      const result = await this.#pending;
      this.#pending = null;
      if (result.done) break;
      this.stdout += decoder.decode(result.value);
      this.#pending = this.#reader.read();
    }
    const stderr = decoder.decode(
      await new Response(this.#child.stderr).arrayBuffer().then((b) => new Uint8Array(b)),
    );
    const status = await this.#child.status;
    clearTimeout(timer);
    return { code: status.code, stderr };
  }

  /** Sends `signal` and waits up to `ms` for the exit code, with stdin left open; null if none. */
  async signalAndWait(signal: Deno.Signal | null, ms: number): Promise<number | null> {
    if (signal !== null) this.#child.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.#child.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms)),
    ]);
    clearTimeout(timer);
    return status === null ? null : status.code;
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }

  /** Kills the run if it is still going and releases its pipes. */
  async dispose(): Promise<void> {
    this.kill();
    await this.#writer.close().catch(() => {});
    await this.#reader.cancel().catch(() => {});
    await this.#child.stderr.cancel().catch(() => {});
    await this.#child.status;
  }
}

for (const variant of [V1, V2]) {
  kvmTest(
    `stdin interactively: each line is echoed before the next is sent (${
      guestVariantName(variant)
    })`,
    async () => {
      const run = new Interactive([await buildGuest("stdin_echo", variant)]);
      try {
        await run.send("one\n");
        await run.waitFor("got: one\n");
        await run.send("two\n");
        await run.waitFor("got: two\n");
        const end = await run.finish();
        assert.equal(end.code, 2, end.stderr);
        assert.equal(run.stdout, "got: one\ngot: two\n");
        assert.equal(end.stderr, "");
      } finally {
        await run.dispose();
      }
    },
  );

  kvmTest(
    `stdin interactively: a prompt without a newline shows before the read blocks (${
      guestVariantName(variant)
    })`,
    async () => {
      const run = new Interactive([await buildGuest("stdin_echo", variant), "prompt"]);
      try {
        await run.waitFor("> ");
        await run.send("one\n");
        await run.waitFor("got: one\n> ");
        const end = await run.finish();
        assert.equal(end.code, 1, end.stderr);
        assert.equal(run.stdout, "> got: one\n> ");
      } finally {
        await run.dispose();
      }
    },
  );
}

for (
  const [signal, code] of [["SIGINT", EXIT_CODE.SIGINT], ["SIGTERM", EXIT_CODE.SIGTERM]] as const
) {
  kvmTest(`${signal} stops a guest that waits for stdin (exit ${code})`, async () => {
    const run = new Interactive([await buildGuest("stdin_echo", V2), "prompt"]);
    try {
      await run.waitFor("> "); // the guest is now blocked in SerialReadBuffer
      const exit = await run.signalAndWait(signal, 5_000);
      assert.equal(exit, code, `exit ${exit} (null: still running 5 s after ${signal})`);
    } finally {
      await run.dispose();
    }
  });
}

kvmTest("--timeout stops a guest that waits for stdin (exit 85)", async () => {
  const run = new Interactive(["--timeout", "500ms", await buildGuest("stdin_echo", V1)]);
  try {
    const exit = await run.signalAndWait(null, 6_000);
    assert.equal(exit, EXIT_CODE.TIMEOUT, `exit ${exit} (null: still running after 6 s)`);
  } finally {
    await run.dispose();
  }
});
