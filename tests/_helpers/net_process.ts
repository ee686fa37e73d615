/**
 * Subprocesses for the networking tests: {@linkcode run} runs one to its end
 * within a deadline, {@linkcode WatchedProcess} keeps one running while the
 * test reads its output as it comes (and kills it at its deadline), and
 * {@linkcode echoClient} talks UDP or TCP to an echo server (python3) on a port
 * {@linkcode freePort} found. None throws for an exit code.
 * @module
 */

import assert from "node:assert/strict";
import { type CommandResult, runCommand } from "./process.ts";

const decoder = new TextDecoder();

/** How {@linkcode run} and {@linkcode WatchedProcess} start a command. */
export interface ProcessOptions {
  /** Killed (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  /** Extra environment (NO_COLOR=1 is always set). */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
}

function command(cmd: string[], options: ProcessOptions): Deno.Command {
  return new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
}

/** Runs `cmd` to completion (killed at the deadline); returns its exit code and output. */
export function run(cmd: string[], options: ProcessOptions = {}): Promise<CommandResult> {
  return runCommand(cmd[0]!, cmd.slice(1), {
    env: { NO_COLOR: "1", ...options.env },
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
}

/** A running process whose stdout and stderr are collected as they come. */
export class WatchedProcess {
  readonly #child: Deno.ChildProcess;
  readonly #timer: ReturnType<typeof setTimeout>;
  #stdout = "";
  #stderr = "";
  readonly #done: Promise<number>;

  /** Starts `cmd`; it is killed after `options.timeoutMs` (default 30 s). */
  constructor(cmd: string[], options: ProcessOptions = {}) {
    this.#child = command(cmd, options).spawn();
    this.#timer = setTimeout(() => this.signal("SIGKILL"), options.timeoutMs ?? 30_000);
    const collect = async (stream: ReadableStream<Uint8Array>, err: boolean): Promise<void> => {
      for await (const chunk of stream) {
        if (err) this.#stderr += decoder.decode(chunk);
        else this.#stdout += decoder.decode(chunk);
      }
    };
    const reading = Promise.all([
      collect(this.#child.stdout, false),
      collect(this.#child.stderr, true),
    ]);
    this.#done = this.#child.status.then(async (s) => {
      await reading;
      clearTimeout(this.#timer);
      return s.signal === "SIGKILL" ? 137 : s.code;
    });
  }

  /** Its process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Standard output so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Both, labelled, for failure messages. */
  get output(): string {
    return `stdout:\n${this.#stdout}\nstderr:\n${this.#stderr}`;
  }

  /**
   * Waits until stdout (and stderr, with `stderr: true`) matches `pattern`;
   * fails if the process ends first or `timeoutMs` passes.
   */
  async waitFor(
    pattern: RegExp,
    timeoutMs: number,
    options: { stderr?: boolean } = {},
  ): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    this.#done.then(() => (ended = true));
    for (;;) {
      const m = pattern.exec(options.stderr ? this.#stdout + this.#stderr : this.#stdout);
      if (m !== null) return m;
      if (ended || Date.now() > deadline) assert.fail(`no ${pattern}\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resolves with the exit code (137 when it was SIGKILLed). */
  exit(): Promise<number> {
    return this.#done;
  }

  /** Sends `sig`, if it still runs. */
  signal(sig: Deno.Signal): void {
    try {
      this.#child.kill(sig);
    } catch { /* already gone */ }
  }

  /** SIGKILL. */
  kill(): void {
    this.signal("SIGKILL");
  }
}

/**
 * A loopback TCP port that is free now (the caller's later bind, e.g. passt's
 * or podman's, checks that it and its UDP twin are still free).
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Bytes as lowercase hex. */
export function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The echo client: UDP sends each payload and prints the reply as hex; TCP
 * sends each payload over one connection, prints the echo as hex, then shuts
 * its side down and prints "eof" when the server closes too.
 */
const ECHO_CLIENT = `
import socket, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    for hexdata in sys.argv[4:]:
        s.sendto(bytes.fromhex(hexdata), (host, port))
        reply, _ = s.recvfrom(65535)
        print(reply.hex(), flush=True)
else:
    c = socket.create_connection((host, port), timeout=30)
    for hexdata in sys.argv[4:]:
        data = bytes.fromhex(hexdata)
        c.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        print(got.hex(), flush=True)
    c.shutdown(socket.SHUT_WR)
    print("eof" if c.recv(1) == b"" else "more", flush=True)
    c.close()
`;

/** Runs the echo client (in network namespace `ns` if given); returns its output lines. */
export async function echoClient(options: {
  host: string;
  port: number;
  mode: "udp" | "tcp";
  data: Uint8Array[];
  ns?: string;
}): Promise<string[]> {
  const r = await run([
    ...(options.ns === undefined ? [] : ["ip", "netns", "exec", options.ns]),
    "python3",
    "-c",
    ECHO_CLIENT,
    options.host,
    String(options.port),
    options.mode,
    ...options.data.map(hex),
  ], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${options.mode} client: ${r.stderr}`);
  return r.stdout.trim().split("\n");
}
