/**
 * Landlock (`src/host/landlock.ts`), the third file fence. Each scenario runs
 * `tests/_helpers/landlock_probe.ts` in a subprocess (Landlock cannot be
 * undone) that restricts itself and reports what it could still touch. On a
 * kernel without Landlock it prints one SKIP line. Needs `--allow-ffi`,
 * `--allow-read`, `--allow-write` (temp dirs) and `--allow-run` (the probe).
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";
import {
  denoRuntimeRules,
  handledAccessFs,
  LANDLOCK_ACCESS_FS as A,
  landlockAbiVersion,
  type LandlockResult,
  ruleAccessFs,
  sandboxRules,
} from "../../src/host/landlock.ts";
import { describeRun, runDeno } from "../_helpers/cli.ts";
import { kvmAvailable } from "../_helpers/kvm.ts";
import type { ProbeConfig, ProbeReport } from "../_helpers/landlock_probe.ts";

const EACCES = 13;
const PROBE = new URL("../_helpers/landlock_probe.ts", import.meta.url).pathname;

const abi = landlockAbiVersion();
const skip = abi === 0;
if (skip) {
  // deno-lint-ignore no-console
  console.error("SKIP: this kernel has no Landlock; the Landlock subprocess tests are skipped");
}

/** Runs the probe with `config`; its stdout is one JSON report. */
async function probe(config: ProbeConfig): Promise<ProbeReport> {
  // -A: Deno insists on --allow-all for /proc/self/task (the thread list);
  // Landlock is what is under test here, not Deno's permissions.
  const output = await runDeno(["run", "-A", PROBE, JSON.stringify(config)]);
  assert.equal(output.code, 0, `probe failed:\n${describeRun(output)}`);
  return JSON.parse(output.stdout) as ProbeReport;
}

function applied(report: ProbeReport): LandlockResult {
  assert.ok(!("error" in report.result), JSON.stringify(report.result));
  const result = report.result as LandlockResult;
  assert.equal(result.applied, true);
  assert.equal(result.abi, abi);
  return result;
}

/** Two temp dirs A (allowed) and B (not), each holding a file `f`. */
function tempDirs(): { a: string; b: string; fa: string; fb: string; cleanup(): void } {
  const a = Deno.makeTempDirSync({ prefix: "dhyve-landlock-a-" });
  const b = Deno.makeTempDirSync({ prefix: "dhyve-landlock-b-" });
  const fa = `${a}/f`;
  const fb = `${b}/f`;
  Deno.writeTextFileSync(fa, "inside\n");
  Deno.writeTextFileSync(fb, "outside\n");
  return {
    a,
    b,
    fa,
    fb,
    cleanup(): void {
      Deno.removeSync(a, { recursive: true });
      Deno.removeSync(b, { recursive: true });
    },
  };
}

Deno.test("handledAccessFs() handles exactly the rights of each ABI version", () => {
  assert.equal(handledAccessFs(0), 0);
  assert.equal(handledAccessFs(1), 0x1fff);
  assert.equal(handledAccessFs(2), 0x1fff | A.REFER);
  assert.equal(handledAccessFs(3), 0x1fff | A.REFER | A.TRUNCATE);
  assert.equal(handledAccessFs(4), handledAccessFs(3)); // v4 adds network rights only
  assert.equal(handledAccessFs(5), handledAccessFs(3) | A.IOCTL_DEV);
  assert.equal(handledAccessFs(8), handledAccessFs(5));
});

Deno.test("ruleAccessFs() gives files file rights only and masks by ABI", () => {
  const fileRights = A.EXECUTE | A.WRITE_FILE | A.READ_FILE | A.TRUNCATE | A.IOCTL_DEV;
  for (const access of ["read", "write", "dir-read", "dir-write"] as const) {
    for (const version of [1, 2, 3, 5, 8]) {
      const onFile = ruleAccessFs(access, false, version);
      assert.equal(onFile & ~fileRights, 0, `${access} on a file, ABI ${version}`);
      assert.equal(onFile & ~handledAccessFs(version), 0);
      assert.equal(ruleAccessFs(access, true, version) & ~handledAccessFs(version), 0);
      assert.equal(ruleAccessFs(access, true, version) & A.EXECUTE, 0, "never execute");
    }
  }
  assert.equal(ruleAccessFs("read", true, 5), A.READ_FILE);
  assert.equal(ruleAccessFs("dir-read", true, 5), A.READ_FILE | A.READ_DIR);
  assert.equal(ruleAccessFs("dir-read", false, 5), A.READ_FILE);
  assert.equal(
    ruleAccessFs("write", false, 5),
    A.READ_FILE | A.WRITE_FILE | A.TRUNCATE | A.IOCTL_DEV,
  );
  assert.equal(ruleAccessFs("write", false, 3), A.READ_FILE | A.WRITE_FILE | A.TRUNCATE);
  assert.equal(ruleAccessFs("dir-write", true, 1) & (A.REFER | A.TRUNCATE), 0);
  assert.ok(ruleAccessFs("dir-write", true, 3) & A.MAKE_REG);
});

Deno.test("ruleAccessFs(): dir-remove allows removing entries and nothing else", () => {
  assert.equal(ruleAccessFs("dir-remove", true, 5), A.REMOVE_FILE | A.REMOVE_DIR);
  assert.equal(ruleAccessFs("dir-remove", false, 5), 0); // nothing to grant on a file
});

Deno.test("sandboxRules() maps each part of a VM to the narrowest rule", () => {
  assert.deepEqual(
    sandboxRules({
      kernel: "/k/hello",
      mappings: [
        { host: "/data", writable: false, exists: true },
        { host: "/home/u/out", writable: true, exists: true },
        { host: "/home/u/new/file", writable: true, exists: false },
        { host: "/home/u/ro-missing", writable: false, exists: false },
        { host: "/", writable: true, exists: true },
      ],
      tempDir: "/tmp/dhyve-0",
      output: "/home/u/serial.log",
    }),
    [
      { path: "/k/hello", access: "read" },
      { path: "/data", access: "dir-read" },
      { path: "/home/u/out", access: "dir-write" },
      { path: "/home/u", access: "dir-remove" },
      { path: "/home/u/new", access: "dir-write" },
      { path: "/", access: "dir-write" },
      { path: "/tmp/dhyve-0", access: "dir-write" },
      { path: "/home/u/serial.log", access: "write" },
    ],
  );
});

Deno.test("denoRuntimeRules() lets the process read its modules and use /dev/kvm", () => {
  const root = REPO_ROOT;
  const rules = denoRuntimeRules({ denoDir: "/cache/deno", sourceDirs: ["/opt/app"] });
  const byPath = new Map(rules.map((rule) => [rule.path, rule]));
  assert.deepEqual(byPath.get(root), { path: root, access: "dir-read" });
  assert.deepEqual(byPath.get("/opt/app"), { path: "/opt/app", access: "dir-read" });
  assert.deepEqual(byPath.get("/cache/deno"), {
    path: "/cache/deno",
    access: "dir-read",
    optional: true,
  });
  assert.deepEqual(byPath.get("/dev/kvm"), { path: "/dev/kvm", access: "write" });
  // Read-only everywhere else: only devices are writable.
  for (const rule of rules) {
    if (rule.access !== "read" && rule.access !== "dir-read") {
      assert.ok(rule.path.startsWith("/dev/"), JSON.stringify(rule));
    }
  }
});

Deno.test("landlockAbiVersion() reports a version or 0", () => {
  assert.ok(Number.isInteger(abi) && abi >= 0);
});

Deno.test({
  name: "applyLandlock() fences the main thread, even libc open() through FFI",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      const report = await probe({
        mode: "strict",
        rules: [{ path: t.a, access: "dir-read" }],
        runtime: true,
        read: [t.fa, t.fb, "/etc/hostname"],
      });
      assert.deepEqual(applied(report).warnings, []);
      const main = report.main!;
      assert.equal(main.sync[t.fa], "ok");
      assert.equal(main.ffi[t.fa], 0);
      assert.equal(main.async[t.fa], "ok");
      for (const outside of [t.fb, "/etc/hostname"]) {
        assert.equal(main.sync[outside], "PermissionDenied", outside);
        assert.equal(main.ffi[outside], EACCES, `libc open(${outside})`);
      }
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock() leaves pre-existing threads unfenced unless the kernel has TSYNC",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      const report = await probe({
        mode: "normal",
        rules: [{ path: t.a, access: "dir-read" }],
        runtime: true,
        read: [t.fb],
      });
      const result = applied(report);
      const threads = report.unrestrictedThreads!;
      if (result.allThreads) {
        assert.deepEqual(threads, []);
        assert.equal(report.main!.async[t.fb], "PermissionDenied");
      } else {
        // Measured on Linux 6.18 (ABI 7) with Deno 2.9.6: the V8 platform
        // threads and the tokio blocking pool started before the restriction.
        assert.ok(threads.length > 0, "some threads predate the restriction");
        assert.ok(threads.every((line) => !line.endsWith(" deno")), threads.join(", "));
        // deno-lint-ignore no-console
        console.error(
          `note: Landlock ABI ${abi} has no TSYNC: unrestricted threads: ${threads.join(", ")}; ` +
            `async read outside the rules from the main thread: ${report.main!.async[t.fb]}`,
        );
      }
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock(): a Worker started afterwards loads from allowed dirs and is fenced",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    const c = Deno.makeTempDirSync({ prefix: "dhyve-landlock-c-" });
    try {
      const script = `${c}/worker.ts`;
      Deno.writeTextFileSync(script, 'self.postMessage("loaded");\n');
      const report = await probe({
        mode: "strict",
        rules: [{ path: t.a, access: "dir-read" }],
        runtime: true,
        read: [],
        workerRead: [t.fa, t.fb],
        deniedWorker: new URL(`file://${script}`).href,
      });
      applied(report);
      assert.ok(report.worker !== undefined && !("error" in report.worker), "worker ran");
      const worker = report.worker as NonNullable<ProbeReport["main"]>;
      assert.deepEqual(
        [worker.sync[t.fa], worker.async[t.fa], worker.ffi[t.fa]],
        ["ok", "ok", 0],
      );
      // A Worker's threads all start after the restriction: async reads are fenced too.
      assert.deepEqual(
        [worker.sync[t.fb], worker.async[t.fb], worker.ffi[t.fb]],
        ["PermissionDenied", "PermissionDenied", EACCES],
      );
      assert.match(report.deniedWorker ?? "", /Permission denied/);
    } finally {
      t.cleanup();
      Deno.removeSync(c, { recursive: true });
    }
  },
});

Deno.test({
  name: "applyLandlock(): a file rule grants file rights only, and writes need write access",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      const writable = `${t.a}/out`;
      Deno.writeTextFileSync(writable, "");
      const report = await probe({
        mode: "strict", // strict: Landlock would reject dir rights on a file (EINVAL)
        rules: [
          { path: t.a, access: "dir-read" },
          { path: writable, access: "dir-write" },
        ],
        runtime: false,
        read: [],
        write: [writable, t.fa, `${t.a}/new`, `${t.b}/new`],
      });
      assert.deepEqual(applied(report).warnings, []);
      assert.deepEqual(report.write, {
        [writable]: "ok",
        [t.fa]: "PermissionDenied",
        [`${t.a}/new`]: "PermissionDenied",
        [`${t.b}/new`]: "PermissionDenied",
      });
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock(): sandboxRules() let the guest write and unlink a mapped file only",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      const mapped = `${t.a}/mapped`;
      Deno.writeTextFileSync(mapped, "");
      const report = await probe({
        mode: "strict",
        rules: sandboxRules({
          kernel: t.fb,
          mappings: [{ host: mapped, writable: true }],
          tempDir: null,
          output: null,
        }),
        runtime: false,
        read: [t.fb, t.fa],
        write: [mapped, t.fa, `${t.a}/new`],
        remove: [mapped],
      });
      assert.deepEqual(applied(report).warnings, []);
      assert.equal(report.main!.sync[t.fb], "ok", "the kernel is readable");
      assert.equal(report.main!.sync[t.fa], "PermissionDenied", "a sibling is not");
      assert.deepEqual(report.write, {
        [mapped]: "ok",
        [t.fa]: "PermissionDenied",
        [`${t.a}/new`]: "PermissionDenied",
      });
      assert.deepEqual(report.remove, { [mapped]: "ok" });
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock() skips a missing path with a warning, even in strict mode",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      const missing = `${t.b}/missing/file`;
      const report = await probe({
        mode: "strict",
        rules: [{ path: t.a, access: "dir-read" }, { path: missing, access: "write" }],
        runtime: false,
        read: [t.fa, t.fb],
      });
      assert.deepEqual(applied(report).warnings, [
        `Landlock rule for "${missing}" skipped: it does not exist`,
      ]);
      assert.equal(report.main!.sync[t.fa], "ok");
      assert.equal(report.main!.sync[t.fb], "PermissionDenied");
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock() a second time: normal mode warns, strict mode throws LandlockError",
  ignore: skip,
  async fn(): Promise<void> {
    const t = tempDirs();
    try {
      for (const mode of ["normal", "strict"] as const) {
        const report = await probe({
          mode,
          rules: [{ path: t.a, access: "dir-read" }],
          runtime: false,
          twice: true,
          read: [],
        });
        applied(report);
        const second = report.second!;
        if (mode === "normal") {
          assert.ok(!("error" in second));
          assert.match(second.warnings.join("\n"), /applied already/);
        } else {
          assert.ok("error" in second);
          assert.equal(second.error, "LandlockError");
          assert.match(second.message, /applied already/);
        }
      }
    } finally {
      t.cleanup();
    }
  },
});

Deno.test({
  name: "applyLandlock(): /dev/kvm stays usable for ioctls under denoRuntimeRules()",
  ignore: skip || !kvmAvailable(),
  async fn(): Promise<void> {
    const report = await probe({ mode: "strict", rules: [], runtime: true, read: [], kvm: "rw" });
    applied(report);
    assert.deepEqual(report.kvm, { open: 0, ioctl: 12 }); // KVM_GET_API_VERSION is 12
  },
});

Deno.test({
  name: "applyLandlock(): from ABI 5 on, ioctl on a device needs the write (IOCTL_DEV) right",
  ignore: skip || abi < 5 || !kvmAvailable(),
  async fn(): Promise<void> {
    const report = await probe({
      mode: "strict",
      rules: [{ path: "/dev/kvm", access: "read" }],
      runtime: false,
      read: [],
      kvm: "ro",
    });
    applied(report);
    assert.deepEqual(report.kvm, { open: 0, ioctl: -EACCES });
  },
});
