/**
 * `dhyve-oci` under containerd: a private containerd (its own socket, root
 * and state directories, removed afterwards) imports an OCI archive built
 * from the test rootfs, and `ctr run --runc-binary dhyve-oci` runs a guest:
 * its output and exit code, and SIGKILL/SIGTERM from `ctr task kill` (137,
 * 143). Needs root, /dev/kvm, containerd, ctr, containerd-shim-runc-v2, runc
 * and busybox-static; otherwise one SKIP line.
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
  run,
  waitFor,
} from "../_helpers/oci.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

const unavailable = containerTestsUnavailable([
  "containerd",
  "ctr",
  "containerd-shim-runc-v2",
  "runc",
]);
const ignore = announceSkip("oci_containerd_test.ts", unavailable);

const encoder = new TextEncoder();

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256:${[...digest].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Packs `rootfsTar` as a one-layer OCI image archive named `ref`, for `ctr image import`. */
async function ociArchive(rootfsTar: string, dir: string, ref: string): Promise<string> {
  const layout = `${dir}/oci`;
  await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
  async function blob(
    bytes: Uint8Array<ArrayBuffer>,
    mediaType: string,
  ): Promise<Record<string, unknown>> {
    const digest = await sha256(bytes);
    await Deno.writeFile(`${layout}/blobs/sha256/${digest.slice(7)}`, bytes);
    return { mediaType, digest, size: bytes.length };
  }
  const layerBytes = await Deno.readFile(rootfsTar);
  const layer = await blob(layerBytes, "application/vnd.oci.image.layer.v1.tar");
  const config = await blob(
    encoder.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [layer.digest] },
    })),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = await blob(
    encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: [layer],
    })),
    "application/vnd.oci.image.manifest.v1+json",
  );
  await Deno.writeTextFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        ...manifest,
        annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "1" },
      }],
    }),
  );
  const archive = `${dir}/image.oci.tar`;
  const packed = await run("tar", [
    "-C",
    layout,
    "-cf",
    archive,
    "oci-layout",
    "index.json",
    "blobs",
  ]);
  assert.equal(packed.code, 0, packed.stderr);
  return archive;
}

Deno.test({
  name: "dhyve-oci runs Hermit guests under containerd (ctr run --runc-binary)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t): Promise<void> {
    const built = await buildTestRootfsTar();
    const base = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "dhyve-oci-containerd-" });
    const socket = `${base}/containerd.sock`;
    await Deno.writeTextFile(`${base}/config.toml`, "version = 2\n");
    const daemon = new Deno.Command("containerd", {
      args: [
        "--config",
        `${base}/config.toml`,
        "--address",
        socket,
        "--root",
        `${base}/root`,
        "--state",
        `${base}/state`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const ref = `localhost/dhyve-oci-test:${Deno.pid}`;
    const ctr = (args: readonly string[]): Promise<CommandResult> =>
      run("ctr", ["--address", socket, "--namespace", "dhyve-test", ...args]);
    let n = 0;
    const ids: string[] = [];
    const id = (): string => {
      const name = `dhyve-oci-${Deno.pid}-${n++}`;
      ids.push(name);
      return name;
    };
    try {
      await waitFor("containerd to answer", async () => (await ctr(["version"])).code === 0);
      const archive = await ociArchive(built.tar, base, ref);
      const imported = await ctr(["image", "import", archive]);
      assert.equal(imported.code, 0, describeResult(imported));

      await t.step("the README's CRI runtime config is one containerd takes", async () => {
        const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
        const block = /```toml\n(version = 2\n[^`]*runtimes\.dhyve[^`]*)```/.exec(readme);
        assert.ok(block !== null, "README.md has the containerd runtimes.dhyve block");
        await Deno.writeTextFile(`${base}/cri.toml`, block[1]!);
        const dump = await run("containerd", ["--config", `${base}/cri.toml`, "config", "dump"]);
        assert.equal(dump.code, 0, describeResult(dump));
        assert.match(dump.stdout, /runtime_type = "io\.containerd\.runc\.v2"/);
        assert.match(dump.stdout, /pod_annotations = \["org\.hermit-os\.dhyve\.\*"\]/);
        assert.match(dump.stdout, /BinaryName = "\/opt\/dhyve\/bin\/dhyve-oci"/);
      });

      await t.step("ctr run: the guest's output and exit code", async () => {
        const hello = await ctr(["run", "--rm", "--runc-binary", DHYVE_OCI, ref, id(), "/hello"]);
        assert.equal(hello.code, 0, describeResult(hello));
        assert.match(hello.stdout, /Hello from dhyve guest \(v2, pie\)!/);
        const exit = await ctr([
          "run",
          "--rm",
          "--runc-binary",
          DHYVE_OCI,
          ref,
          id(),
          "/exit_code",
          "5",
        ]);
        assert.equal(exit.code, 5, describeResult(exit));
      });

      for (const [signal, code] of [["SIGKILL", 137], ["SIGTERM", 143]] as const) {
        await t.step(`ctr task kill -s ${signal} ends a running guest with ${code}`, async () => {
          const name = id();
          const child = new Deno.Command("ctr", {
            args: [
              "--address",
              socket,
              "--namespace",
              "dhyve-test",
              "run",
              "--rm",
              "--runc-binary",
              DHYVE_OCI,
              ref,
              name,
              "/spin",
            ],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const reader = child.stdout.getReader();
          let seen = "";
          await waitFor(`${name} to spin`, async () => {
            const { value, done } = await reader.read();
            if (value !== undefined) seen += new TextDecoder().decode(value);
            return done || seen.includes("spin: spinning");
          });
          assert.match(seen, /spin: spinning/);
          const killed = await ctr(["task", "kill", "-s", signal, name]);
          assert.equal(killed.code, 0, describeResult(killed));
          reader.releaseLock();
          const status = await child.output();
          assert.equal(status.code, code, new TextDecoder().decode(status.stderr));
        });
      }
    } finally {
      for (const name of ids) {
        await ctr(["task", "kill", "-s", "SIGKILL", name]);
        await ctr(["task", "delete", "-f", name]);
        await ctr(["container", "delete", name]);
      }
      await ctr(["image", "remove", ref]);
      daemon.kill("SIGTERM");
      await daemon.status;
      await run("umount", ["-R", `${base}/root`]).catch(() => {});
      await Deno.remove(base, { recursive: true }).catch(() => {});
      await Deno.remove(built.dir, { recursive: true });
    }
  },
});
