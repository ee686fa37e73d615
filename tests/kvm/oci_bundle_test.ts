/**
 * `bin/dhyve-oci` on an OCI bundle, without an engine: a Linux program's
 * config.json stays byte for byte, a Hermit kernel's is rewritten and runs
 * under runc itself (`dhyve-oci run`, runc's default spec: read-only root,
 * no network), and every bad input is one line on stderr plus one entry in
 * the `--log` file in the format `--log-format` asks for. The error cases
 * use `--runc /bin/true`, so only the runc run needs root and runc; those
 * steps say SKIP otherwise.
 * @module
 */

import assert from "node:assert/strict";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { isRoot } from "../_helpers/skip.ts";
import {
  type CommandResult,
  describeResult,
  DHYVE_OCI,
  run,
  staticBusybox,
  which,
} from "../_helpers/oci.ts";
import { buildElf } from "../_helpers/elf_builder.ts";
import { buildTar, gzip, hermitToml } from "../_helpers/hermit_image_builder.ts";

/** A bundle: rootfs with the hello and exit_code guests, a static busybox (when there is one). */
async function makeBundle(
  args: string[],
  edit?: (spec: Record<string, unknown>) => void,
  fill?: (rootfs: string) => Promise<void>,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-oci-bundle-" });
  await Deno.mkdir(`${dir}/rootfs/bin`, { recursive: true });
  for (const guest of ["hello", "exit_code"]) {
    await Deno.copyFile(await buildGuest(guest, { iface: 2, pie: true }), `${dir}/rootfs/${guest}`);
  }
  const busybox = staticBusybox();
  if (busybox !== null) await Deno.copyFile(busybox, `${dir}/rootfs/bin/busybox`);
  const notHermit = buildElf({ notes: null }); // OSABI 0xFF, but no HERMIT note
  await Deno.writeFile(`${dir}/rootfs/broken`, notHermit, { mode: 0o755 });
  // The shape of `runc spec`'s default, without a terminal.
  const spec: Record<string, unknown> = {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "runc",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/sys",
        type: "sysfs",
        source: "sysfs",
        options: ["nosuid", "noexec", "nodev", "ro"],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: ["/proc/kcore"],
      readonlyPaths: ["/proc/sys"],
    },
  };
  edit?.(spec);
  await fill?.(`${dir}/rootfs`);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(spec, null, "\t"));
  return dir;
}

/** Asserts one `dhyve-oci: error:` line on stderr matching `pattern`, and exit `code`. */
function assertOneError(result: CommandResult, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, describeResult(result));
  const lines = result.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, describeResult(result));
  assert.match(lines[0]!, /^dhyve-oci: error: /);
  assert.match(lines[0]!, pattern);
}

kvmTest("dhyve-oci create leaves a Linux program's config.json byte for byte", async () => {
  for (const args of [["/bin/busybox", "true"], ["/no/such/program"], ["sh"]]) {
    const bundle = await makeBundle(args);
    try {
      const before = await Deno.readFile(`${bundle}/config.json`);
      const result = await run(DHYVE_OCI, [
        "--runc",
        "/bin/true",
        "create",
        "--bundle",
        bundle,
        "x",
      ]);
      assert.equal(result.code, 0, describeResult(result));
      assert.deepEqual(await Deno.readFile(`${bundle}/config.json`), before, args.join(" "));
    } finally {
      await Deno.remove(bundle, { recursive: true });
    }
  }
});

kvmTest("dhyve-oci create rewrites a Hermit kernel's config.json for dhyve", async () => {
  const bundle = await makeBundle(["/hello", "a"]);
  try {
    const result = await run(DHYVE_OCI, ["--runc", "/bin/true", "create", "-b", bundle, "x"]);
    assert.equal(result.code, 0, describeResult(result));
    const spec = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
    const args: string[] = spec.process.args;
    assert.equal(args[0], await Deno.realPath(Deno.execPath()));
    assert.deepEqual(args.slice(-3), ["/hello", "--", "a"]);
    assert.ok(args.includes("--no-prompt"));
    assert.ok(spec.linux.devices.some((d: { path: string }) => d.path === "/dev/kvm"));
    assert.equal(spec.root.readonly, true, "runc's fields stay");
  } finally {
    await Deno.remove(bundle, { recursive: true });
  }
});

const runcUnavailable = !isRoot() ? "not root" : which("runc") === null ? "no runc" : null;
kvmTest("dhyve-oci run: runc runs the rewritten bundle (read-only root, no network)", async (t) => {
  if (runcUnavailable !== null) {
    // deno-lint-ignore no-console
    console.error(`SKIP: dhyve-oci run under runc: ${runcUnavailable}`);
    await t.step({ name: "runc run", ignore: true, fn: () => {} });
    return;
  }
  const state = await Deno.makeTempDir({ prefix: "dhyve-oci-state-" });
  const bundle = await makeBundle(["/exit_code", "9"]);
  const id = `dhyve-oci-bundle-${Deno.pid}`;
  try {
    const result = await run(DHYVE_OCI, ["--root", state, "run", "--bundle", bundle, id]);
    assert.equal(result.code, 9, describeResult(result));
    // A Hermit image (gzip'd tar with hermit.toml) as the program: dhyve unpacks it itself.
    const packed = await makeBundle(["/app.hermit"], undefined, async (rootfs) => {
      const kernel = await Deno.readFile(await buildGuest("exit_code", { iface: 2, pie: true }));
      const tar = buildTar([
        { name: "hermit.toml", data: hermitToml({ kernel: "app", appArgs: ["11"] }) },
        { name: "app", data: kernel },
      ]);
      await Deno.writeFile(`${rootfs}/app.hermit`, gzip(tar));
    });
    try {
      const image = await run(DHYVE_OCI, ["--root", state, "run", "--bundle", packed, `${id}-i`]);
      assert.equal(image.code, 11, describeResult(image));
    } finally {
      await run("runc", ["--root", state, "delete", "-f", `${id}-i`]);
      await Deno.remove(packed, { recursive: true });
    }
    const hello = await makeBundle(["/hello"]);
    try {
      const out = await run(DHYVE_OCI, ["--root", state, "run", "--bundle", hello, `${id}-h`]);
      assert.equal(out.code, 0, describeResult(out));
      assert.match(out.stdout, /Hello from dhyve guest \(v2, pie\)!/);
    } finally {
      await run("runc", ["--root", state, "delete", "-f", `${id}-h`]);
      await Deno.remove(hello, { recursive: true });
    }
  } finally {
    await run("runc", ["--root", state, "delete", "-f", id]);
    await Deno.remove(bundle, { recursive: true });
    await Deno.remove(state, { recursive: true });
  }
});

kvmTest("dhyve-oci: each bad input is one stderr line and one log entry", async (t) => {
  const logDir = await Deno.makeTempDir({ prefix: "dhyve-oci-log-" });
  let n = 0;
  async function expectError(
    args: string[],
    code: number,
    pattern: RegExp,
    format: "json" | "text" = "json",
  ): Promise<void> {
    const log = `${logDir}/log-${n++}`;
    const result = await run(DHYVE_OCI, ["--log", log, "--log-format", format, ...args]);
    assertOneError(result, code, pattern);
    const lines = (await Deno.readTextFile(log)).split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, lines.join("\n"));
    if (format === "json") {
      const entry = JSON.parse(lines[0]!);
      assert.equal(entry.level, "error");
      assert.match(entry.msg, pattern);
      assert.ok(!Number.isNaN(Date.parse(entry.time)));
    } else {
      assert.match(lines[0]!, /^time="[^"]+" level=error msg="dhyve-oci: /);
    }
  }
  try {
    await t.step(
      "an unreadable bundle (66)",
      () =>
        expectError(
          ["--runc", "/bin/true", "create", "--bundle", `${logDir}/none`, "x"],
          66,
          /Cannot read the bundle's/,
        ),
    );
    await t.step("config.json that is not JSON (64)", async () => {
      const bundle = await makeBundle(["/hello"]);
      await Deno.writeTextFile(`${bundle}/config.json`, "{ not json");
      await expectError(
        ["--runc", "/bin/true", "create", "--bundle", bundle, "x"],
        64,
        /is not valid JSON/,
      );
      await Deno.remove(bundle, { recursive: true });
    });
    await t.step("a kernel dhyve cannot run (65)", async () => {
      const bundle = await makeBundle(["/broken"]);
      await expectError(
        ["--runc", "/bin/true", "create", "--bundle", bundle, "x"],
        65,
        /"\/broken" is not a Hermit kernel dhyve can run: .*HERMIT/,
      );
      await Deno.remove(bundle, { recursive: true });
    });
    await t.step("an option it cannot map (64), in runc's text format", async () => {
      const bundle = await makeBundle(["/hello"], (spec) => {
        spec.annotations = { "org.hermit-os.dhyve.cpus": "many" };
      });
      await expectError(
        ["--runc", "/bin/true", "create", "--bundle", bundle, "x"],
        64,
        /Bad annotation org\.hermit-os\.dhyve\.cpus="many"/,
        "text",
      );
      await Deno.remove(bundle, { recursive: true });
    });
    await t.step(
      "no runc (69)",
      () =>
        expectError(["--runc", `${logDir}/no-runc`, "state", "x"], 69, /is not an executable file/),
    );
  } finally {
    await Deno.remove(logDir, { recursive: true });
  }
});
