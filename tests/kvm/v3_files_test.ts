/**
 * uhyve 0.9.1's interface-v3 file calls end to end: the `dirs` test guest
 * (`tests/guests/dirs.c`) lists directories with Getdents (small and large
 * buffers), stats, lstats and fstats, makes directories, and checks every
 * errno, against host directories mapped at /data (writable), /ro (`:ro`)
 * and a single file at /files/x.txt. Built as a v3 kernel (UHYVEIF note 3),
 * as a v2 one, and as a v1 one (no note, and a note of 1 as uhyve's own test
 * kernels carry: v1 FileOpen, v2/v3 calls by RDI, dispatch by port as in
 * uhyve 0.9.1); with 2 vCPUs (the calls go through the file channel); under
 * Landlock in a subprocess with `--stats`; and over a Hermit image's tree.
 * Needs /dev/kvm, `--allow-ffi`, `--allow-read`, `--allow-write`,
 * `--allow-run` (gcc, deno) and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { CaptureSink } from "../../src/io/guest_output.ts";
import {
  LANDLOCK_ACCESS_FS as A,
  landlockAbiVersion,
  type LandlockAccess,
  ruleAccessFs,
  sandboxRules,
} from "../../src/host/landlock.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { buildTar, gzip, hermitToml } from "../_helpers/hermit_image_builder.ts";
import { describeRun, runDhyve } from "../_helpers/cli.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { runGuest } from "../_helpers/run_guest.ts";

const FILES = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, "0")}`);
/** /data as the guest lists it before its mkdirs (sorted by name bytes). */
const DATA_LISTING = ["a.txt", ...FILES, "link-in", "link-out", "sub"];

/** The host side of one run. */
interface Fixture {
  readonly data: string;
  readonly ro: string;
  readonly outside: string;
  readonly tempParent: string;
  /** The dhyve file options for this fixture. */
  readonly mappings: string[];
  /** Asserts what a passing run leaves behind, then resets for the next run. */
  checkAfterRun(context: string): void;
  cleanup(): void;
}

function makeFixture(): Fixture {
  const root = Deno.makeTempDirSync({ prefix: "dhyve-v3-test-" });
  const tempParent = Deno.makeTempDirSync({ prefix: "dhyve-v3-tmp-" });
  const data = `${root}/data`;
  const ro = `${root}/ro`;
  const outside = `${root}/outside`;
  for (const dir of [data, `${data}/sub`, ro, outside, `${root}/files`]) Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${data}/a.txt`, "alpha\n");
  Deno.writeTextFileSync(`${data}/sub/b.txt`, "beta\n");
  for (const name of FILES) Deno.writeTextFileSync(`${data}/${name}`, name);
  Deno.symlinkSync("a.txt", `${data}/link-in`);
  Deno.symlinkSync(outside, `${data}/link-out`);
  Deno.writeTextFileSync(`${ro}/r.txt`, "read only\n");
  Deno.writeTextFileSync(`${root}/files/x.txt`, "x\n");
  Deno.writeTextFileSync(`${root}/files/neighbour.txt`, "not mapped\n");
  return {
    data,
    ro,
    outside,
    tempParent,
    mappings: [`${data}:/data`, `${ro}:/ro:ro`, `${root}/files/x.txt:/files/x.txt`],
    checkAfterRun(context: string): void {
      assert.ok(Deno.statSync(`${data}/newdir`).isDirectory, `${context}: /data/newdir`);
      assert.deepEqual([...Deno.readDirSync(outside)], [], `${context}: nothing made outside`);
      assert.deepEqual([...Deno.readDirSync(ro)].map((e) => e.name), ["r.txt"], context);
      assert.deepEqual([...Deno.readDirSync(tempParent)], [], `${context}: temp dir removed`);
      Deno.removeSync(`${data}/newdir`);
    },
    cleanup(): void {
      Deno.removeSync(root, { recursive: true });
      Deno.removeSync(tempParent, { recursive: true });
    },
  };
}

/** Asserts the guest's report: no FAIL line, the listings, the summary with 0 failed. */
function assertAllOk(stdout: string, context: string): void {
  const lines = stdout.split("\n").filter((line) => line !== "");
  const failures = lines.filter((line) => !/^(ok |ls |dirs: )/.test(line));
  assert.deepEqual(failures, [], `${context}:\n${stdout}`);
  const summary = /^dirs: (\d+) checks, 0 failed$/.exec(lines.at(-1) ?? "");
  assert.ok(summary !== null, `${context}:\n${stdout}`);
  const oks = lines.filter((l) => l.startsWith("ok ")).length;
  assert.equal(oks, Number(summary[1]), `${context}: every check reported`);
  assert.ok(oks >= 50, `${context}: only ${oks} checks`);
  const listings = lines.filter((l) => l.startsWith("ls "));
  assert.deepEqual(listings, [
    "ls / 4096: data files ro",
    `ls /data 4096: ${DATA_LISTING.join(" ")}`,
    `ls /data 64: ${DATA_LISTING.join(" ")}`,
    "ls /files 4096: x.txt",
    "ls /data/sub/ 32: b.txt",
    "ls / 4096: data files ro scratch",
    "ls /scratch 4096: note.txt",
  ], context);
}

async function runDirs(fx: Fixture, variant: GuestBuild, cpuCount = 1): Promise<void> {
  const { result, stdout, stderr } = await runGuest("dirs", variant, {
    cpuCount,
    fileMappings: fx.mappings,
    tempDir: fx.tempParent,
  });
  const context = `${guestVariantName(variant)}: ${result.error ?? ""}\n${stderr}`;
  assertAllOk(stdout, context);
  assert.equal(result.error, null, context);
  assert.equal(result.exitCode, 0, context);
  // Every new call was counted (what --stats reports), on the vCPU that made it.
  const counts = result.stats[0]!.hypercalls;
  for (const port of [0x1160, 0x1170, 0x1180, 0x1190]) {
    assert.ok(counts[port]! > 0, `${context}: no count for port 0x${port.toString(16)}`);
  }
  fx.checkAfterRun(guestVariantName(variant));
}

const VARIANTS: readonly GuestBuild[] = [
  // A uhyve 0.9.1 interface-v3 kernel: UHYVEIF note 3, v2 boot state and ports.
  { iface: 3, pie: true },
  { iface: 3, pie: false },
  { iface: 2, pie: true },
  { iface: 2, pie: false },
  // Kernels without a UHYVEIF note, or declaring 1 (v1 boot state, v1 FileOpen), that call
  // the v2 and v3 ports by RDI.
  { iface: 1, pie: true },
  { iface: 1, pie: false, uhyveIfNote: 1 },
];

kvmTest("dirs guest: Getdents, FileStat, FileFstat and Mkdir pass every check", async (t) => {
  const fx = makeFixture();
  try {
    for (const variant of VARIANTS) {
      await t.step(guestVariantName(variant), () => runDirs(fx, variant));
    }
  } finally {
    fx.cleanup();
  }
});

kvmTest("dirs guest passes with 2 vCPUs (the new calls over the file channel)", async () => {
  const fx = makeFixture();
  try {
    await runDirs(fx, { iface: 3, pie: true }, 2);
  } finally {
    fx.cleanup();
  }
});

kvmTest(
  "dirs guest under Landlock with --stats (subprocess): mkdir allowed, calls counted",
  async () => {
    const fx = makeFixture();
    try {
      const kernel = await buildGuest("dirs", { iface: 3, pie: true });
      const run = await runDhyve([
        "--file-isolation",
        // strict fails unless Landlock applies: success shows its rules let mkdir through.
        landlockAbiVersion() > 0 ? "strict" : "normal",
        "--stats",
        "--tempdir",
        fx.tempParent,
        ...fx.mappings.flatMap((m) => ["--file-mapping", m]),
        kernel,
      ], { perms: ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"] });
      const { stdout, stderr } = run;
      const context = describeRun(run);
      const guest = stdout.slice(0, stdout.indexOf("Run statistics:"));
      assertAllOk(guest, context);
      assert.equal(run.code, 0, context);
      assert.equal(stderr, "", context);
      for (const name of ["Getdents", "FileStat", "FileFstat", "Mkdir"]) {
        assert.match(
          stdout,
          new RegExp(`Hypercall\\(V2\\(${name}\\)\\): +[1-9]`),
          `${name}\n${stdout}`,
        );
      }
      fx.checkAfterRun("Landlock");
    } finally {
      fx.cleanup();
    }
  },
);

Deno.test("Landlock rules let mkdir create in writable mappings and the temp dir only", () => {
  const rules = sandboxRules({
    kernel: "/k/kernel",
    mappings: [
      { host: "/h/rw", writable: true, exists: true },
      { host: "/h/ro", writable: false, exists: true },
      { host: "/h/new/dir", writable: true, exists: false },
    ],
    tempDir: "/tmp/dhyve-x",
    output: null,
  });
  const access = (path: string): LandlockAccess => rules.find((r) => r.path === path)!.access;
  for (let abi = 1; abi <= 6; abi++) {
    for (const path of ["/h/rw", "/h/new", "/tmp/dhyve-x"]) {
      const rights = ruleAccessFs(access(path), true, abi);
      assert.ok(rights & A.MAKE_DIR, `${path}: MAKE_DIR (ABI ${abi})`);
      assert.ok(rights & A.READ_DIR, `${path}: READ_DIR (ABI ${abi})`);
    }
    const ro = ruleAccessFs(access("/h/ro"), true, abi);
    assert.equal(ro & (A.MAKE_DIR | A.MAKE_REG | A.WRITE_FILE), 0, `:ro (ABI ${abi})`);
    assert.ok(ro & A.READ_DIR, `:ro may be listed (ABI ${abi})`);
  }
});

kvmTest("dirs guest lists a Hermit image's tree of virtual files", async () => {
  const kernel = await Deno.readFile(await buildGuest("dirs", { iface: 3, pie: true }));
  const toml = hermitToml({ kernel: "app", appArgs: ["ls", "/", "/data", "/data/deep/"] });
  const image = gzip(buildTar([
    { name: "hermit.toml", data: toml },
    { name: "app", data: kernel },
    { name: "data/a.txt", data: "a" },
    { name: "data/deep/b.txt", data: "b" },
    { name: "top.txt", data: "top" },
  ]));
  const path = await Deno.makeTempFile({ prefix: "dhyve-v3-image-", suffix: ".hermit" });
  try {
    await Deno.writeFile(path, image);
    const out = new CaptureSink();
    const result = await runVm(path, { fileIsolation: "none", stdout: out, stderr: out });
    const context = `${result.error ?? ""}\n${out.text()}`;
    assert.equal(result.exitCode, 0, context);
    assert.deepEqual(out.text().split("\n").filter((l) => l.startsWith("ls ")), [
      "ls / 4096: app data hermit.toml top.txt",
      "ls /data 4096: a.txt deep",
      "ls /data/deep/ 4096: b.txt",
    ], context);
  } finally {
    await Deno.remove(path);
  }
});
