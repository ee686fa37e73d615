/**
 * Bad input as a user meets it, through subprocess runs of `main.ts`: every
 * bad input ends with exactly one `dhyve: error:` line on stderr (no stack
 * trace, nothing on stdout) and its documented exit code; /dev/kvm missing,
 * not permitted (a staged copy run as `nobody`) or not KVM. Needs /dev/kvm,
 * `--allow-run` (deno, gcc; setpriv and unshare for the /dev/kvm cases, as
 * root), `--allow-read`, `--allow-write` and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { Kvm, KvmUnavailableError } from "../../src/kvm.ts";
import { assertOneErrorLine, assertRan, type CliRun } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { needsRootAnd } from "../_helpers/skip.ts";
import { AS_NOBODY, stageDhyve, stageParent } from "../_helpers/stage.ts";
import {
  decoder,
  dhyve,
  EMPTY_CWD,
  encoder,
  escapeRegExp,
  noop,
  PERMS,
  V1,
  V2,
  withTempDir,
} from "../_helpers/cli_options.ts";

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

kvmTest("bad input: an unsupported interface version (4, 7) exits 65 naming it", async () => {
  const elf = await Deno.readFile(await buildGuest("noop", V2));
  const at = uhyveIfDescriptor(elf);
  assert.deepEqual([...elf.subarray(at, at + 4)], [0, 0, 0, 2]);
  await withTempDir(async (dir) => {
    for (const version of [4, 7]) {
      const patched = elf.slice();
      new DataView(patched.buffer).setUint32(at, version, false);
      const path = `${dir}/v${version}`;
      await Deno.writeFile(path, patched);
      assertOneErrorLine(
        await dhyve([path]),
        EXIT_CODE.BAD_KERNEL,
        new RegExp(`interface version ${version}`),
        /1, 2 and 3/,
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

/** Why /dev/kvm cannot be refused to `nobody` here, or null (root, setpriv, a private node). */
function nobodySkip(): string | null {
  const missing = needsRootAnd("setpriv", ["--version"]);
  if (missing !== null) return missing;
  if (stageParent() === null) return "no world-accessible temp directory to stage dhyve in";
  // Deno stats device files only under --allow-all: ask stat(1).
  const out = new Deno.Command("stat", { args: ["-c", "%a", "/dev/kvm"], stdout: "piped" })
    .outputSync();
  const mode = parseInt(decoder.decode(out.stdout).trim(), 8);
  if (!out.success || Number.isNaN(mode)) return "stat(1) cannot read the mode of /dev/kvm";
  if ((mode & 0o006) === 0o006) return "/dev/kvm is open to everyone here: no EACCES to provoke";
  return null;
}

kvmTest("/dev/kvm without permission (run as nobody) exits 69 saying how to fix it", async () => {
  const kernel = await noop();
  // A copy nobody can read: the checkout may be private (a clone into a 0700 directory).
  const stage = await stageDhyve([kernel]);
  try {
    const run = await dhyve([stage.files.get(kernel)!], {
      prefix: AS_NOBODY,
      deno: stage.deno,
      main: stage.main,
      cwd: stage.home,
      env: stage.env,
    });
    assertOneErrorLine(
      run,
      EXIT_CODE.KVM_UNAVAILABLE,
      /Permission denied opening \/dev\/kvm/,
      /kvm group/,
    );
  } finally {
    await stage.dispose();
  }
}, { skip: nobodySkip() });

/** Why dhyve cannot run in a mount namespace of its own here, or null. */
const MOUNT_NS_SKIP = needsRootAnd("unshare", ["-m", "true"]);

/** Runs dhyve in a new mount namespace after `setup` (a shell snippet) changed /dev. */
function inMountNamespace(setup: string, kernel: string): Promise<CliRun> {
  const script = `${setup} && exec "$@"`;
  return dhyve([kernel], { prefix: ["unshare", "-m", "sh", "-c", script, "sh"] });
}

kvmTest("/dev/kvm missing (mount namespace) exits 69 saying to load the module", async () => {
  const run = await inMountNamespace("mount -t tmpfs none /dev", await noop());
  assertOneErrorLine(run, EXIT_CODE.KVM_UNAVAILABLE, /\/dev\/kvm does not exist/, /modprobe/);
}, { skip: MOUNT_NS_SKIP });

kvmTest("/dev/kvm that is not a KVM device exits 69 with a line that says so", async () => {
  await withTempDir(async (dir) => {
    const fake = `${dir}/fake-kvm`;
    await Deno.writeTextFile(fake, "");
    const run = await inMountNamespace(`mount --bind '${fake}' /dev/kvm`, await noop());
    assertOneErrorLine(run, EXIT_CODE.KVM_UNAVAILABLE, /\/dev\/kvm/, /KVM/);
  });
}, { skip: MOUNT_NS_SKIP });
