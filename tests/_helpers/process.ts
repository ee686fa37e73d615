/**
 * One way for the tests to run a helper program to its end: {@linkcode runCommand}
 * feeds its stdin, collects stdout and stderr as text and, given a deadline,
 * kills it (SIGKILL) there. It never throws for an exit code: the caller
 * asserts on {@linkcode CommandResult}. (`cli.ts` runs dhyve itself, with
 * timing and its own environment rules.)
 * @module
 */

/** What a finished command gave. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How {@linkcode runCommand} runs a command. */
export interface RunCommandOptions {
  /** Written to its stdin, which is then closed (default: no stdin). */
  stdin?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Killed (SIGKILL) after this long (default: no deadline). */
  timeoutMs?: number;
}

const decoder = new TextDecoder();

/** Runs `cmd args` to its end and returns its exit code and output. */
export async function runCommand(
  cmd: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs);
  try {
    return await outputOf(child, options.stdin);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Feeds `stdin` (when given; the child's stdin must then be piped) to a
 * spawned child, waits for its end and returns its exit code and output.
 */
export async function outputOf(child: Deno.ChildProcess, stdin?: string): Promise<CommandResult> {
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
