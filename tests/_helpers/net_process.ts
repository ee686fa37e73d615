/**
 * Subprocesses for the networking tests: {@linkcode run} runs one to its end
 * within a deadline, {@linkcode WatchedProcess} keeps one running while the
 * test reads its output as it comes (and kills it at its deadline). Neither
 * throws for an exit code.
 * @module
 */

import assert from "node:assert/strict";

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
export async function run(
  cmd: string[],
  options: ProcessOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = command(cmd, options).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 30_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
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
