/**
 * `dhyve-oci` under rootful Podman (cgroupfs, file events, explicit ulimits:
 * root here lacks CAP_SYS_RESOURCE), with an image imported from a rootfs tar
 * holding our test guests and a static busybox. Checks output, exit codes,
 * stdin, a TTY, detached runs and logs, stop (143) and kill (137), memory and
 * CPU limits reaching the guest, bind mounts, a read-only root, exec, pause,
 * bad annotations, and that a plain Linux program behaves as under runc.
 * Needs root, /dev/kvm, podman, runc, conmon and busybox-static; otherwise
 * one SKIP line. The steps share one image and run one after another.
 * @module
 */

import assert from "node:assert/strict";
import {
  announceSkip,
  buildTestRootfsTar,
  type CommandResult,
  containerTestsUnavailable,
  describeResult,
  DHYVE_OCI,
  podman,
  PODMAN_RUN,
  podmanDetached,
  podmanWait,
  waitFor,
  which,
} from "../_helpers/oci.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

const unavailable = containerTestsUnavailable(["podman", "runc", "conmon"]);
const ignore = announceSkip("oci_podman_test.ts", unavailable);

/** `podman run` options every container gets. */
const RUN = PODMAN_RUN;

Deno.test({
  name: "dhyve-oci runs Hermit guests under podman",
  ignore,
  sanitizeResources: false,
  async fn(t): Promise<void> {
    const image = `localhost/dhyve-oci-test:${Deno.pid}`;
    const built = await buildTestRootfsTar();
    const names: string[] = [];
    let n = 0;
    const name = (): string => {
      const id = `dhyve-oci-test-${Deno.pid}-${n++}`;
      names.push(id);
      return id;
    };
    const dhyve = (args: readonly string[], stdin?: string): Promise<CommandResult> =>
      podman(["run", "--rm", "--runtime", DHYVE_OCI, ...RUN, ...args], stdin);
    const logs = async (id: string): Promise<string> => (await podman(["logs", id])).stdout;
    const waitExit = podmanWait;
    /** `podman run -d` of `args` (options, image, command) under dhyve-oci; the container's name. */
    const detached = async (args: readonly string[]): Promise<string> => {
      const id = name();
      await podmanDetached(id, args);
      return id;
    };
    const startSpinning = async (): Promise<string> => {
      const id = await detached([image, "/spin"]);
      await waitFor(`${id} to spin`, async () => (await logs(id)).includes("spin: spinning"));
      return id;
    };
    try {
      const imported = await podman(["import", built.tar, image]);
      assert.equal(imported.code, 0, describeResult(imported));

      await t.step("the guest's output and exit code are the container's", async () => {
        const hello = await dhyve([image, "/hello"]);
        assert.equal(hello.code, 0, describeResult(hello));
        assert.match(hello.stdout, /Hello from dhyve guest \(v2, pie\)!\n/);
        assert.match(hello.stderr, /hello via fd 2/);
        const exit = await dhyve([image, "/exit_code", "7"]);
        assert.equal(exit.code, 7, describeResult(exit));
      });

      // Deno, dhyve's checkout and its module cache must be readable by that user.
      const checkoutPrivate = ((await Deno.stat(REPO_ROOT)).mode! & 0o005) !== 0o005;
      if (checkoutPrivate) {
        // deno-lint-ignore no-console
        console.error(
          "SKIP: oci_podman_test.ts: the checkout is private: the --user step is skipped",
        );
      }
      await t.step({
        name: "--user: a container user other than root runs the guest too",
        ignore: checkoutPrivate,
        fn: async () => {
          const user = await dhyve(["--user", "1000:1000", image, "/exit_code", "4"]);
          assert.equal(user.code, 4, describeResult(user));
        },
      });

      await t.step("arguments and -e reach the guest", async () => {
        const probe = await dhyve(["-e", "GREETING=hi there", image, "/oci_probe", "env:GREETING"]);
        assert.equal(probe.code, 0, describeResult(probe));
        assert.match(probe.stdout, /^env GREETING=hi there$/m);
      });

      await t.step("-i: the container's stdin is the guest's", async () => {
        const echo = await dhyve(["-i", image, "/stdin_echo"], "one\ntwo\n");
        assert.equal(echo.code, 2, describeResult(echo));
        assert.match(echo.stdout, /got: one\ngot: two\n/);
      });

      await t.step("-t: the guest writes to a terminal", async () => {
        const tty = await dhyve(["-t", image, "/hello"]);
        assert.equal(tty.code, 0, describeResult(tty));
        assert.match(tty.stdout, /Hello from dhyve guest \(v2, pie\)!\r\n/);
      });

      await t.step("-d and podman logs", async () => {
        const id = await detached([image, "/exit_code", "3"]);
        assert.equal(await waitExit(id), 3);
        const hello = await detached([image, "/hello"]);
        assert.equal(await waitExit(hello), 0);
        assert.match(await logs(hello), /Hello from dhyve guest/);
      });

      await t.step("podman stop ends a running guest with 143 (SIGTERM)", async () => {
        const id = await startSpinning();
        const stopped = await podman(["stop", "-t", "20", id]);
        assert.equal(stopped.code, 0, describeResult(stopped));
        assert.equal(await waitExit(id), 143);
      });

      const noInit = which("catatonit") === null;
      if (noInit) {
        // deno-lint-ignore no-console
        console.error("SKIP: oci_podman_test.ts: no catatonit: the --init step is skipped");
      }
      await t.step({
        name: "--init: a SIGTERM at once after the start still gives 143",
        ignore: noInit,
        fn: async () => {
          // Without an init, a signal that reaches pid 1 before it has a handler is dropped
          // (see src/oci/container_main.ts); with podman's catatonit in front it never is.
          const id = await detached(["--init", image, "/spin"]);
          assert.equal((await podman(["kill", "--signal", "TERM", id])).code, 0);
          assert.equal(await waitExit(id), 143);
        },
      });

      await t.step("podman kill ends it with 137 (SIGKILL)", async () => {
        const id = await startSpinning();
        const killed = await podman(["kill", id]);
        assert.equal(killed.code, 0, describeResult(killed));
        assert.equal(await waitExit(id), 137);
      });

      await t.step("pause, unpause and exec on a running guest", async () => {
        const id = await startSpinning();
        const status = async (): Promise<string> =>
          (await podman(["inspect", "--format", "{{.State.Status}}", id])).stdout.trim();
        assert.equal((await podman(["pause", id])).code, 0);
        assert.equal(await status(), "paused");
        assert.equal((await podman(["unpause", id])).code, 0);
        assert.equal(await status(), "running");
        // exec runs a Linux program beside dhyve (here the image's busybox): pid 1 is dhyve.
        const exec = await podman(["exec", id, "/bin/busybox", "cat", "/proc/1/cmdline"]);
        assert.equal(exec.code, 0, describeResult(exec));
        const cmdline = exec.stdout.split("\0");
        assert.ok(cmdline.includes("/spin"), describeResult(exec));
        assert.ok(
          cmdline.some((arg) => arg.endsWith("/src/oci/container_main.ts")),
          describeResult(exec),
        );
        assert.ok(cmdline.includes("--no-prompt"), describeResult(exec));
        // exec of a Hermit kernel starts a second VM in the container, with its own args and stdin.
        const second = await podman([
          "exec",
          "-e",
          "GREETING=second",
          id,
          "/oci_probe",
          "env:GREETING",
        ]);
        assert.equal(second.code, 0, describeResult(second));
        assert.match(second.stdout, /^ram=64MiB cpus=1$/m);
        assert.match(second.stdout, /^env GREETING=second$/m);
        const code = await podman(["exec", id, "/exit_code", "6"]);
        assert.equal(code.code, 6, describeResult(code));
        const input = await podman(["exec", "-i", id, "/stdin_echo"], "x\n");
        assert.equal(input.code, 1, describeResult(input));
        assert.match(input.stdout, /got: x\n/);
        assert.equal((await podman(["stop", "-t", "20", id])).code, 0);
        assert.equal(await waitExit(id), 143);
      });

      await t.step("--memory and --cpus size the guest", async () => {
        const small = await dhyve(["--memory", "256m", image, "/oci_probe"]);
        assert.equal(small.code, 0, describeResult(small));
        assert.match(small.stdout, /^ram=192MiB cpus=1$/m); // 256 MiB less dhyve's 64 MiB
        const two = await dhyve(["--memory", "512m", "--cpus", "2", image, "/oci_probe"]);
        assert.equal(two.code, 0, describeResult(two));
        assert.match(two.stdout, /^ram=400MiB cpus=2$/m); // 512 MiB less 112 MiB for 2 vCPUs
        const smp = await dhyve(["--cpus", "2", image, "/smp_count"]);
        assert.equal(smp.code, 0, describeResult(smp));
        assert.match(smp.stdout, /all 2 cpus online/);
        const annotated = await dhyve([
          "--annotation",
          "org.hermit-os.dhyve.memory=32MiB",
          image,
          "/oci_probe",
        ]);
        assert.match(annotated.stdout, /^ram=32MiB cpus=1$/m, describeResult(annotated));
      });

      await t.step("a guest that touches all its RAM stays within the memory limit", async () => {
        // All of the guest's RAM backed, plus dhyve and Deno: an OOM kill would be 137.
        const noAslr = ["--annotation", "org.hermit-os.dhyve.aslr=false"];
        const one = await dhyve(["--memory", "256m", ...noAslr, image, "/mem_touch"]);
        assert.equal(one.code, 0, describeResult(one));
        assert.match(one.stdout, /^touched \d+ MiB of 192 MiB$/m);
        const two = await dhyve([
          "--memory",
          "512m",
          "--cpus",
          "2",
          ...noAslr,
          image,
          "/mem_touch",
        ]);
        assert.equal(two.code, 0, describeResult(two));
        assert.match(two.stdout, /^touched \d+ MiB of 400 MiB$/m);
      });

      await t.step("-v gives the guest a host directory, :ro read-only", async () => {
        const dir = await Deno.makeTempDir({ prefix: "dhyve-oci-vol-" });
        try {
          await Deno.writeTextFile(`${dir}/hello.txt`, "hello from the host\n");
          const rw = await dhyve([
            "-v",
            `${dir}:/data`,
            image,
            "/oci_probe",
            "read:/data/hello.txt",
            "write:/data/out.txt",
          ]);
          assert.equal(rw.code, 0, describeResult(rw));
          assert.match(rw.stdout, /^read \/data\/hello.txt: hello from the host$/m);
          assert.match(rw.stdout, /^write \/data\/out.txt: ok$/m);
          assert.equal(await Deno.readTextFile(`${dir}/out.txt`), "probe\n");
          const ro = await dhyve([
            "-v",
            `${dir}:/data:ro`,
            image,
            "/oci_probe",
            "read:/data/hello.txt",
            "write:/data/ro.txt",
          ]);
          assert.equal(ro.code, 0, describeResult(ro));
          assert.match(ro.stdout, /^read \/data\/hello.txt: hello from the host$/m);
          assert.match(ro.stdout, /^write \/data\/ro.txt: error -\d+$/m);
          await assert.rejects(Deno.stat(`${dir}/ro.txt`), Deno.errors.NotFound);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });

      await t.step("--read-only: the guest still gets its temp files", async () => {
        const ro = await dhyve([
          "--read-only",
          image,
          "/oci_probe",
          "write:/tmp/scratch",
          "read:/tmp/scratch",
        ]);
        assert.equal(ro.code, 0, describeResult(ro));
        assert.match(ro.stdout, /^write \/tmp\/scratch: ok$/m);
        assert.match(ro.stdout, /^read \/tmp\/scratch: probe$/m);
      });

      await t.step("a bad annotation or too small a memory limit is one clear error", async () => {
        const bad = await dhyve([
          "--annotation",
          "org.hermit-os.dhyve.memory=lots",
          image,
          "/hello",
        ]);
        assert.notEqual(bad.code, 0, describeResult(bad));
        assert.match(bad.stderr, /Bad annotation org\.hermit-os\.dhyve\.memory="lots"/);
        const tiny = await dhyve(["--memory", "64m", image, "/hello"]);
        assert.notEqual(tiny.code, 0, describeResult(tiny));
        assert.match(tiny.stderr, /memory limit \(64 MiB\) is too small for a Hermit guest/);
      });

      await t.step("a Linux program behaves exactly as under runc", async () => {
        const runc = which("runc")!;
        for (
          const args of [
            ["/bin/busybox", "echo", "plain linux"],
            ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
          ]
        ) {
          const viaDhyve = await dhyve([image, ...args]);
          const viaRunc = await podman(["run", "--rm", "--runtime", runc, ...RUN, image, ...args]);
          assert.deepEqual(viaDhyve, viaRunc);
        }
      });
    } finally {
      for (const id of names) await podman(["rm", "-f", "-t", "0", id]);
      await podman(["rmi", "-f", image]);
      await Deno.remove(built.dir, { recursive: true });
    }
  },
});
