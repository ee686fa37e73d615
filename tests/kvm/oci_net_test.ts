/**
 * `dhyve-oci` with the `org.hermit-os.dhyve.net=passt` annotation under
 * rootful Podman: the container's dhyve starts passt (the host's binary,
 * mounted read-only) inside the container's own network namespace, with no
 * network privileges, and the `net_echo` guest gets its network from it. With
 * Podman's default network, `podman run -p 127.0.0.1:PORT:7` forwards a host
 * loopback port to the container's port 7, where passt (the `publish`
 * annotation) forwards it on to the guest: a host client's UDP datagrams and
 * TCP connection are echoed by the guest; the same with `--network
 * slirp4netns` (skipped when it is not installed) and as a non-root
 * container user (port 7 then needs net.ipv4.ip_unprivileged_port_start). With `--network none` (no
 * interface but loopback, and Podman forwards no ports) passt of Debian 12
 * refuses to start, which the container reports in one line (exit 71); a
 * passt that runs there would be reached from inside the container. Needs root,
 * /dev/kvm, podman, runc, conmon, passt, python3 and busybox-static;
 * otherwise one SKIP line.
 * @module
 */

import assert from "node:assert/strict";
import { echoClient, freePort, hex } from "../_helpers/net_process.ts";
import * as oci from "../_helpers/oci.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

const { describeResult, podman, podmanDetached, podmanWait, waitFor } = oci;

const unavailable = oci.containerTestsUnavailable(["podman", "runc", "conmon", "passt", "python3"]);
const ignore = oci.announceSkip("oci_net_test.ts", unavailable);

/** The guest's echo port (UDP and TCP), see tests/guests/net_echo.c. */
const ECHO_PORT = 7;
/** The annotations giving the guest passt's network, with the echo port forwarded. */
const NET_ANNOTATIONS = [
  "--annotation",
  "org.hermit-os.dhyve.net=passt",
  "--annotation",
  // Podman's --annotation splits its value at commas: the list is separated by a space.
  `org.hermit-os.dhyve.publish=${ECHO_PORT} ${ECHO_PORT}/udp`,
  "--annotation",
  "org.hermit-os.dhyve.log-level=info",
];

/** The gateway address of Podman's default network ("podman"). */
async function podmanGateway(): Promise<string> {
  const inspected = await podman(["network", "inspect", "podman"]);
  assert.equal(inspected.code, 0, describeResult(inspected));
  const [network] = JSON.parse(inspected.stdout) as { subnets?: { gateway?: string }[] }[];
  const gateway = network?.subnets?.find((s) => /^\d+\.\d+\.\d+\.\d+$/.test(s.gateway ?? ""));
  assert.ok(gateway?.gateway !== undefined, `no IPv4 gateway in ${inspected.stdout}`);
  return gateway.gateway;
}

/**
 * Passt children of `parent` with their network namespaces, and those of
 * `parent` and of the host, read by a shell (Deno reads other processes'
 * /proc entries only under --allow-all).
 */
const NETNS_SCRIPT = `
for s in /proc/[0-9]*/stat; do
  read -r pid comm state ppid rest < "$s" 2>/dev/null || continue
  [ "$comm" = "(passt)" ] && [ "$ppid" = "$1" ] && echo "passt $(readlink /proc/$pid/ns/net)"
done
echo "dhyve $(readlink /proc/$1/ns/net)"
echo "host $(readlink /proc/$$/ns/net)"
`;

/** Asserts that the container's dhyve started passt, and that passt lives in the container's netns. */
async function assertPasstInContainerNetns(id: string): Promise<void> {
  const inspected = await podman(["inspect", "-f", "{{.State.Pid}}", id]);
  assert.equal(inspected.code, 0, describeResult(inspected));
  const found = await oci.run("sh", ["-c", NETNS_SCRIPT, "sh", inspected.stdout.trim()]);
  assert.equal(found.code, 0, describeResult(found));
  const lines = found.stdout.trim().split("\n").map((l) => l.split(" "));
  const passt = lines.filter(([what]) => what === "passt").map(([, ns]) => ns);
  const dhyve = lines.find(([what]) => what === "dhyve")?.[1];
  const host = lines.find(([what]) => what === "host")?.[1];
  assert.equal(passt.length, 1, `one passt child of the container's dhyve:\n${found.stdout}`);
  assert.match(dhyve ?? "", /^net:\[\d+\]$/);
  assert.equal(passt[0], dhyve, "passt runs in the container's netns");
  assert.notEqual(passt[0], host, "not in the host's");
}

/** A step that is registered with `ignore` and a SKIP line when `why` is not null. */
async function optionalStep(
  t: Deno.TestContext,
  name: string,
  why: string | null,
  fn: () => Promise<void>,
): Promise<void> {
  if (why !== null) {
    // deno-lint-ignore no-console
    console.error(`SKIP: oci_net_test.ts: ${why}: the step "${name}" is skipped`);
  }
  await t.step({ name, ignore: why !== null, fn });
}

/** `podman run -p` forwarding host loopback `port` (TCP and UDP) to the container's echo port. */
function forwarded(port: number): string[] {
  return ["-p", `127.0.0.1:${port}:${ECHO_PORT}`, "-p", `127.0.0.1:${port}:${ECHO_PORT}/udp`];
}

function payload(size: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

Deno.test({
  name: "dhyve-oci: the net=passt annotation gives a container's guest a network through passt",
  ignore,
  sanitizeResources: false,
  async fn(t): Promise<void> {
    const image = `localhost/dhyve-oci-net-test:${Deno.pid}`;
    const built = await oci.buildTestRootfsTar({
      net_echo: { iface: 2, pie: true, versionNote: false },
    });
    const names: string[] = [];
    const logs = async (id: string): Promise<string> => {
      const r = await podman(["logs", id]);
      return r.stdout + r.stderr;
    };
    /** `podman run -d` of net_echo under dhyve-oci with `options`; the container's name. */
    const runEcho = async (
      options: readonly string[],
      guestArgs: readonly string[] = [],
    ): Promise<string> => {
      const id = `dhyve-oci-net-test-${Deno.pid}-${names.length}`;
      names.push(id);
      await podmanDetached(id, [...NET_ANNOTATIONS, ...options, image, "/net_echo", ...guestArgs]);
      return id;
    };
    /** {@linkcode runEcho}, then waits until the guest's network is up. */
    const startEcho = async (
      options: readonly string[],
      guestArgs: readonly string[] = [],
    ): Promise<string> => {
      const id = await runEcho(options, guestArgs);
      await waitFor(`${id}'s guest network to come up`, async () => {
        const out = await logs(id);
        if (/dhyve-oci: error|dhyve: error/.test(out)) assert.fail(out);
        return /net: up mac=02:00:0a:00:05:03/.test(out);
      }, 120_000);
      return id;
    };
    const waitExit = podmanWait;
    /**
     * A host client's UDP datagrams of `udpSizes` and one TCP connection
     * carrying `tcpSizes` through 127.0.0.1:`port`, echoed by the guest of
     * container `id`; then the exit datagram, and the container's exit 0.
     */
    const echoThrough = async (
      id: string,
      port: number,
      udpSizes: readonly number[],
      tcpSizes: readonly number[],
    ): Promise<void> => {
      const client = (mode: "udp" | "tcp", data: Uint8Array[]): Promise<string[]> =>
        echoClient({ host: "127.0.0.1", port, mode, data });
      const udp = udpSizes.map((n, i) => payload(n, i));
      assert.deepEqual(await client("udp", udp), udp.map(hex), "UDP echoed byte for byte");
      const tcp = tcpSizes.map((n, i) => payload(n, i + 10));
      assert.deepEqual(await client("tcp", tcp), [...tcp.map(hex), "eof"], "TCP echoed");
      const bytes = tcpSizes.reduce((a, b) => a + b, 0);
      await waitFor(
        "the TCP connection to close",
        async () => (await logs(id)).includes(`net: tcp closed bytes=${bytes}`),
      );
      const bye = await client("udp", [new TextEncoder().encode("dhyve-net-exit")]);
      assert.deepEqual(bye, [hex(new TextEncoder().encode("bye"))]);
      assert.equal(await waitExit(id), 0, await logs(id));
    };
    try {
      const imported = await podman(["import", built.tar, image]);
      assert.equal(imported.code, 0, describeResult(imported));

      await t.step(
        "default network: a host client reaches the guest through podman -p and passt; " +
          "the guest pings the container network's gateway",
        async () => {
          const port = freePort();
          const gateway = await podmanGateway();
          const id = await startEcho([
            ...forwarded(port),
            // passt (as nobody) pings through ICMP sockets, which this sysctl allows.
            "--sysctl",
            "net.ipv4.ping_group_range=0 2147483647",
          ], [`ping=${gateway}`]);
          await assertPasstInContainerNetns(id);
          await waitFor(
            `the guest's ping of ${gateway} to be answered`,
            async () => (await logs(id)).includes(`net: ping reply from ${gateway}`),
          );
          await echoThrough(id, port, [1, 64, 1000, 1472], [5, 1460, 4000, 20_000]);
          const out = await logs(id);
          assert.match(out, /net: done rx=\d+ tx=\d+/);
          assert.match(out, /--net: \d+ frames to the guest, \d+ from it, 0 dropped/);
        },
      );

      await optionalStep(
        t,
        "--network slirp4netns: the same two hops through slirp4netns's port forwarding",
        oci.which("slirp4netns") === null ? "slirp4netns is not installed" : null,
        async () => {
          const port = freePort();
          const id = await startEcho([
            "--network",
            "slirp4netns",
            ...forwarded(port),
          ]);
          await assertPasstInContainerNetns(id);
          await echoThrough(id, port, [100], [3000]);
        },
      );

      // Deno, dhyve's checkout and its module cache must be readable by that user.
      const checkoutPrivate = ((await Deno.stat(REPO_ROOT)).mode! & 0o005) !== 0o005;
      await optionalStep(
        t,
        "--user: passt runs as the container's user; port 7 needs ip_unprivileged_port_start",
        checkoutPrivate ? "the checkout is private" : null,
        async () => {
          const port = freePort();
          const user = ["--user", "1000:1000", ...forwarded(port)];
          const refused = await runEcho(user);
          const said = /passt stopped before the guest could connect \(exit code 1\): (.*)/;
          await waitFor("passt to refuse port 7", async () => said.test(await logs(refused)));
          assert.match(said.exec(await logs(refused))![1]!, /Failed to bind any port/);
          assert.equal(await waitExit(refused), 71);
          const id = await startEcho([
            ...user,
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=0",
          ]);
          await echoThrough(id, port, [100], [3000]);
        },
      );

      await t.step(
        "--network none: the guest gets passt's network, reached inside the container " +
          "(where passt runs without a default route)",
        async () => {
          const id = await runEcho(["--network", "none"]);
          await waitFor(`${id}'s guest network to come up, or passt to refuse`, async () => {
            const out = await logs(id);
            return /net: up mac=|dhyve: error/.test(out);
          }, 120_000);
          const refused = /passt stopped before the guest could connect \(exit code 1\): (.*)/
            .exec(await logs(id));
          if (refused !== null) {
            // passt before its "local mode" (Debian 12's 2023-03 build) needs a routable interface.
            assert.match(refused[1]!, /External interface not usable/);
            assert.equal(await waitExit(id), 71, await logs(id));
            // deno-lint-ignore no-console
            console.log(
              `SKIP (part) --network none: this passt refuses a namespace without a default ` +
                `route ("${refused[1]}"); the container fails with one line and exit 71`,
            );
            return;
          }
          // busybox nc in the container's own namespace, to passt's port 7 on its loopback.
          const said = await podman([
            "exec",
            id,
            "/bin/busybox",
            "sh",
            "-c",
            `echo dhyve-net-exit | /bin/busybox nc -u -w 10 127.0.0.1 ${ECHO_PORT}`,
          ]);
          assert.equal(said.code, 0, describeResult(said));
          assert.match(said.stdout, /bye/);
          assert.equal(await waitExit(id), 0, await logs(id));
          assert.match(await logs(id), /net: done rx=\d+ tx=\d+/);
        },
      );
    } finally {
      for (const id of names) await podman(["rm", "-f", "-t", "0", id]);
      await podman(["rmi", "-f", image]);
      await Deno.remove(built.dir, { recursive: true });
    }
  },
});
