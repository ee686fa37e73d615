/**
 * Every command in README.md's shell code blocks runs as shown. The test
 * extracts them all (```sh/bash/shell/console blocks; `\` continuations
 * joined; a trailing `# comment` dropped; `$ cmd` lines followed by their
 * expected output) and requires each to be either in {@linkcode RUNS}, which
 * runs it through `sh -c` from the repository root with a built test guest
 * in place of `app`, `hello_c` and `path/to/kernel` and checks its exit code
 * and output, or in {@linkcode NOT_RUN} with the reason and the test that
 * covers it instead. A command added to the README fails the first test here
 * until it is one or the other; an entry whose command left the README fails
 * it too. The `ts` example under "Library" runs as well.
 * Needs /dev/kvm, gcc, npm, `--allow-run`, `--allow-read`, `--allow-write`,
 * `--allow-env` and `--allow-net=127.0.0.1`.
 * @module
 */

import assert from "node:assert/strict";
import { type CliRun, describeRun } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";

/** One command from the README, with what the README says it prints. */
interface ReadmeCommand {
  /** The command, continuations joined, trailing comment dropped. */
  readonly text: string;
  /** The output lines that follow a `$ cmd` line. */
  readonly expected: readonly string[];
  /** 1-based line in README.md. */
  readonly line: number;
}

/** A fenced code block of README.md. */
interface Block {
  readonly lang: string;
  readonly lines: readonly string[];
  readonly line: number;
}

const SHELL = new Set(["sh", "bash", "shell", "console"]);

/** The fenced code blocks of `markdown`, in order. */
export function codeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() !== open[1]) body.push(lines[j++]!);
    blocks.push({ lang: open[2]!, lines: body, line: i + 2 });
    i = j;
  }
  return blocks;
}

/** The commands of the shell blocks in `markdown`. */
export function readmeCommands(markdown: string): ReadmeCommand[] {
  const out: { text: string; expected: string[]; line: number }[] = [];
  for (const block of codeBlocks(markdown)) {
    if (!SHELL.has(block.lang)) continue;
    let prompted = false;
    for (let i = 0; i < block.lines.length; i++) {
      const line = i + block.line;
      let text = block.lines[i]!;
      if (text.trim() === "" || text.trimStart().startsWith("#")) continue;
      const isPrompt = text.startsWith("$ ");
      if (prompted && !isPrompt) {
        out[out.length - 1]!.expected.push(text); // output of the `$` command above
        continue;
      }
      prompted ||= isPrompt;
      if (isPrompt) text = text.slice(2);
      while (text.endsWith("\\") && i + 1 < block.lines.length) {
        text = `${text.slice(0, -1).trimEnd()} ${block.lines[++i]!.trim()}`;
      }
      out.push({
        text: text.replace(/\s+#\s.*$/, "").replace(/\s+/g, " ").trim(),
        expected: [],
        line,
      });
    }
  }
  return out;
}

/** The guests the README's placeholders stand for. */
interface Guests {
  /** `app`, `hello_c`, `path/to/kernel`: the hello guest (v2, PIE). */
  hello: string;
  /** The args guest, for the command that passes arguments and environment. */
  args: string;
}

/** How a README command is run and checked. */
interface Run {
  /** The shell command actually run (default: the README's, placeholders replaced). */
  command?: (guests: Guests, readme: string) => string;
  /** Checks the outcome. */
  check: (run: CliRun, cmd: ReadmeCommand) => void;
  /** Ends the command with SIGTERM once stderr shows this (for commands that wait). */
  stopWhen?: RegExp;
  /** Why `command` differs from the README's text, when it does. */
  note?: string;
}

/** `cmd` with the README's placeholders replaced by `kernel`. */
function withKernel(cmd: string, kernel: string): string {
  return cmd.replace(" [ARGS...]", "")
    .replace(/(?<=^|[\s=,])(app|hello_c|path\/to\/kernel)(?=$|[\s,])/g, kernel);
}

const HELLO_OUTPUT = "Hello from dhyve guest (v2, pie)!\nhello via fd 1\nhello via serial byte\n";

function assertHello(run: CliRun): void {
  assert.equal(run.code, 0, describeRun(run));
  assert.equal(run.stdout, HELLO_OUTPUT, describeRun(run));
  assert.equal(run.stderr, "hello via fd 2\n", describeRun(run));
}

/** The README commands that run here, by their text. */
const RUNS: Record<string, Run> = {
  "npm ci && npm start": {
    command: () => "npm start",
    note: "npm ci would replace the node_modules the tests run from; .ci/run runs it first",
    check(run, cmd): void {
      assert.equal(run.code, 0, describeRun(run));
      // The README shows the demo's output in the next `text` block.
      const shown = codeBlocks(README).find((b) => b.lang === "text" && b.line > cmd.line);
      assert.ok(shown !== undefined && shown.lines.length >= 3, "the README shows the output");
      const terminal = `${run.stdout}${run.stderr}`; // guest fd 2 goes to stderr
      for (const line of shown.lines) assert.ok(terminal.includes(`${line}\n`), line);
    },
  },
  "deno run --allow-ffi --allow-read main.ts path/to/kernel [ARGS...]": { check: assertHello },
  "deno run --allow-read main.ts --file-mapping data:/root/data --print-permissions app x": {
    command: (_guests, readme) => readme, // app and data need not exist to print the line
    check(run, cmd): void {
      assert.equal(run.code, 0, describeRun(run));
      const expected = cmd.expected.map((line) => line.replaceAll("/home/me/dhyve", REPO_ROOT));
      assert.deepEqual(run.stdout.trimEnd().split("\n"), expected, describeRun(run));
    },
  },
  "deno run --allow-ffi --allow-read main.ts -e RUST_LOG=info app -- -ka -- app-arg": {
    command: (guests, readme) => withKernel(readme, guests.args),
    check(run): void {
      assert.equal(run.code, 0, describeRun(run));
      assert.match(run.stdout, /^argv\[1\]=app-arg$/m, describeRun(run));
      assert.match(run.stdout, /^env\[\d+\]=RUST_LOG=info$/m, describeRun(run));
      assert.match(run.stdout, /^kargv\[0\]=-ka$/m, describeRun(run));
    },
  },
  "deno run --allow-ffi --allow-read=app --allow-net=127.0.0.1,[::1] main.ts -s 1234 app": {
    stopWhen: /Waiting for a GDB connection/,
    check(run): void {
      assert.equal(run.code, 143, describeRun(run)); // stopped by the test's SIGTERM
      assert.match(run.stderr, /^dhyve: Kernel loaded at 0x[0-9a-f]+: symbol offset 0x[0-9a-f]+/m);
      assert.match(
        run.stderr,
        /^dhyve: Waiting for a GDB connection on 127\.0\.0\.1:1234( and \[::1\]:1234)?\.\.\.$/m,
      );
    },
  },
  "deno run --allow-ffi --allow-read=hello_c main.ts hello_c": { check: assertHello },
};

/** The README commands that do not run here: why, and what tests the same instead. */
const NOT_RUN: Record<string, string> = {
  "npm test": "the test suite itself; .ci/run runs it",
  'sudo ip tuntap add dev tap10 mode tap user "$(id -un)"':
    "changes the host's network (root, a TAP); net_test.ts does the same in a private namespace",
  "sudo ip addr add 10.0.5.1/24 dev tap10 && sudo ip link set tap10 up":
    "changes the host's network (root, a TAP); net_test.ts does the same in a private namespace",
  "deno run --allow-ffi --allow-read --allow-write=/dev/net/tun main.ts -n tap app":
    "needs the TAP made above; net_test.ts runs dhyve -n tap:DEV in a private namespace",
  "deno run --allow-ffi --allow-read --allow-write=/tmp --allow-run=passt main.ts -n passt --publish 8080:80 --publish 8053:53/udp app":
    "binds host ports 8080 and 8053, which may be taken on a shared machine; net_passt_test.ts runs -n passt with --publish on free ports, as nobody, with the printed permissions",
  "gdb app -ex 'target remote 127.0.0.1:1234'":
    "an interactive GDB session; gdb_test.ts drives the same connection with gdb -batch",
  "gdb -ex 'add-symbol-file app -o 0x200000' -ex 'target remote 127.0.0.1:1234'":
    "an interactive GDB session; gdb_test.ts loads symbols by the reported offset with gdb -batch",
  "gdb hello_world -ex 'target remote 127.0.0.1:1234' -ex 'break _ZN11hello_world4main17ha6943781df372016E' -ex continue":
    "uhyve's hello_world (HERMIT_IMAGES) in GDB; gdb_test.ts's real-kernel test does this in batch",
  "mkdir -p rootfs && cp path/to/kernel rootfs/app":
    "writes into the checkout; oci_podman_test.ts builds such a rootfs in a temp dir",
  "tar -C rootfs -cf app.tar . && podman import app.tar localhost/hermit-app":
    "root and podman, and a file in the checkout; oci_podman_test.ts imports such a tar",
  'podman --cgroup-manager cgroupfs --events-backend file run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --runtime "$PWD/bin/dhyve-oci" localhost/hermit-app /app arg1 arg2':
    "root and podman; oci_podman_test.ts runs guests with exactly these options",
  "podman --cgroup-manager cgroupfs --events-backend file run -d --name echo --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --runtime \"$PWD/bin/dhyve-oci\" -p 127.0.0.1:8007:7 -p 127.0.0.1:8007:7/udp --annotation org.hermit-os.dhyve.net=passt --annotation 'org.hermit-os.dhyve.publish=7 7/udp' localhost/hermit-app /app":
    "root, podman and passt; oci_net_test.ts runs the net_echo guest with these options",
  "podman save --format oci-archive -o app.oci.tar localhost/hermit-app":
    "root and podman; oci_containerd_test.ts imports a hand-made OCI archive of the same shape",
  "ctr image import app.oci.tar":
    "root and a running containerd; oci_containerd_test.ts imports into a private containerd",
  "ctr run --rm --runc-binary /opt/dhyve/bin/dhyve-oci localhost/hermit-app:latest app1 /app":
    "root, containerd and dhyve in /opt; oci_containerd_test.ts runs ctr run --runc-binary",
};

const README = Deno.readTextFileSync(`${REPO_ROOT}/README.md`);
const COMMANDS = readmeCommands(README);

Deno.test("README: every shell command is run here or listed with a reason", () => {
  assert.ok(COMMANDS.length >= 10, `found only ${COMMANDS.length} commands`);
  const unclassified = COMMANDS.filter((c) => !(c.text in RUNS) && !(c.text in NOT_RUN))
    .map((c) => `README.md:${c.line}: ${c.text}`);
  assert.deepEqual(unclassified, [], "add each to RUNS or NOT_RUN in readme_commands_test.ts");
  const texts = new Set(COMMANDS.map((c) => c.text));
  const stale = [...Object.keys(RUNS), ...Object.keys(NOT_RUN)].filter((t) => !texts.has(t));
  assert.deepEqual(stale, [], "entries whose command is no longer in README.md");
  for (const text of Object.keys(RUNS)) assert.ok(!(text in NOT_RUN), text);
});

Deno.test("readmeCommands() joins continuations, drops comments, keeps $-output", () => {
  const md = [
    "```sh",
    "$ echo a   # comment",
    "a",
    "b",
    "$ echo c",
    "```",
    "```bash",
    "one \\",
    "  two",
    "# just a comment",
    "```",
    "```ts",
    "not.a.command()",
    "```",
  ].join("\n");
  assert.deepEqual(readmeCommands(md), [
    { text: "echo a", expected: ["a", "b"], line: 2 },
    { text: "echo c", expected: [], line: 5 },
    { text: "one two", expected: [], line: 8 },
  ]);
});

/** Runs `command` through sh from the repository root, deno on PATH, as a user would. */
async function shell(command: string, stopWhen?: RegExp): Promise<CliRun> {
  const t0 = performance.now();
  const child = new Deno.Command("sh", {
    args: ["-c", command],
    cwd: REPO_ROOT,
    env: {
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      PATH: `${REPO_ROOT}/node_modules/.bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let stderr = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      if (stopWhen?.test(stderr)) {
        stopWhen = undefined;
        child.kill("SIGTERM"); // the command was exec'd: this reaches it, not a shell
      }
    }
  })();
  const stdout = new Response(child.stdout).text();
  const status = await child.status;
  await stderrDone;
  return { code: status.code, stdout: await stdout, stderr, ms: performance.now() - t0 };
}

for (const cmd of COMMANDS) {
  const run = RUNS[cmd.text];
  if (run === undefined) continue;
  kvmTest(`README.md:${cmd.line}: ${cmd.text}`, async () => {
    const guests: Guests = {
      hello: await buildGuest("hello", { iface: 2, pie: true }),
      args: await buildGuest("args", { iface: 2, pie: true }),
    };
    const command = run.command?.(guests, cmd.text) ?? withKernel(cmd.text, guests.hello);
    // exec (RUNS holds single commands): a stop signal reaches the command itself, not sh.
    const result = await shell(`exec ${command}`, run.stopWhen);
    run.check(result, cmd);
  });
}

kvmTest("README.md: the Library example runs (with a test guest)", async () => {
  const block = codeBlocks(README).find((b) =>
    b.lang === "ts" && b.lines.join("\n").includes("runVm")
  );
  assert.ok(block !== undefined, "the README has a ts example with runVm");
  const kernel = await buildGuest("hello", { iface: 2, pie: true });
  const modUrl = new URL("mod.ts", `file://${REPO_ROOT}/`).href;
  const code = block.lines.join("\n").replace('"./mod.ts"', JSON.stringify(modUrl))
    .replace('"path/to/kernel"', JSON.stringify(kernel));
  assert.ok(code.includes(modUrl) && code.includes(kernel), "placeholders replaced");
  const dir = await Deno.makeTempDir({ prefix: "dhyve-readme-example-" });
  try {
    await Deno.writeTextFile(`${dir}/example.ts`, code);
    const result = await shell(
      `exec deno run --quiet --allow-ffi --allow-read=${kernel} ${dir}/example.ts`,
    );
    assert.equal(result.code, 0, describeRun(result));
    assert.ok(result.stdout.startsWith(`0 ${HELLO_OUTPUT}`), describeRun(result));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
