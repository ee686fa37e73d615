/**
 * Guest stdin through subprocess runs of `main.ts`, through a pipe and
 * interactively (v1 FileRead on fd 0, v2 SerialReadBuffer). Needs /dev/kvm,
 * `--allow-run` (deno, gcc), `--allow-read`, `--allow-write` and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { assertRan, describeRun, spawnDhyve } from "../_helpers/cli.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { decoder, dhyve, encoder, RUN_DEFAULTS, V1, V2 } from "../_helpers/cli_options.ts";

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
    this.#child = spawnDhyve(args, { ...RUN_DEFAULTS, pipeStdin: true });
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
