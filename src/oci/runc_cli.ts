/**
 * runc's command line as `dhyve-oci` sees it: the global options (`--log`,
 * `--log-format`, `--root`, …), the command, and the bundle a `create` or
 * `run` names. dhyve-oci's own option (`--runc PATH`) is taken out; every
 * other word goes to runc unchanged and in order. Pure.
 * @module
 */

/** runc's global options that take a value (urfave/cli: `--x V` or `--x=V`). */
const GLOBAL_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  "--log",
  "--log-format",
  "--root",
  "--criu",
  "--rootless",
]);

/** Options of `create` and `run` that take a value. */
const CREATE_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  "--bundle",
  "-b",
  "--console-socket",
  "--pid-file",
  "--preserve-fds",
]);

/** Options of `exec` that take a value. */
const EXEC_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  "--console-socket",
  "--cwd",
  "--env",
  "-e",
  "--user",
  "-u",
  "--additional-gids",
  "-g",
  "--process",
  "-p",
  "--apparmor",
  "--process-label",
  "--pid-file",
  "--cap",
  "-c",
  "--preserve-fds",
  "--cgroup",
]);

/** dhyve-oci's own global option naming the runc binary. */
export const RUNC_OPTION = "--runc";

/** What one invocation asks for. */
export interface RuncInvocation {
  /** The words to pass to runc (dhyve-oci's own options removed). */
  readonly runcArgs: readonly string[];
  /** runc's global options (the words of `runcArgs` before the command). */
  readonly globalArgs: readonly string[];
  /** `--runc PATH`, when given. */
  readonly runcPath: string | undefined;
  /** runc's `--log FILE`, where the engine reads error lines. */
  readonly logFile: string | undefined;
  /** runc's `--log-format` (`text` or `json`; runc's default is text). */
  readonly logFormat: "text" | "json";
  /** The command (`create`, `start`, `state`, …), or undefined (e.g. `--version`). */
  readonly command: string | undefined;
  /** For `create` and `run`: the bundle directory (`--bundle`, `-b`; default: the cwd, as ""). */
  readonly bundle: string | undefined;
  /** For `create`, `run` and `exec`: the container id. */
  readonly containerId: string | undefined;
  /** For `exec`: the `--process` file (a process spec), when given. */
  readonly processFile: string | undefined;
}

/** Splits `--name=value` into its parts; other words give `[word, undefined]`. */
function splitValue(word: string): [string, string | undefined] {
  const eq = word.indexOf("=");
  if (!word.startsWith("-") || eq < 0) return [word, undefined];
  return [word.slice(0, eq), word.slice(eq + 1)];
}

/** Normalises urfave/cli's single-dash long forms (`-log`) to `--log`. */
function longForm(name: string): string {
  return name.startsWith("--") || name.length <= 2 ? name : `-${name}`;
}

/**
 * Parses `argv` as runc's command line. Unknown options are passed through
 * (taken as flags without a value unless written `--x=V`).
 */
export function parseRuncArgs(argv: readonly string[]): RuncInvocation {
  const runcArgs: string[] = [];
  let runcPath: string | undefined;
  let logFile: string | undefined;
  let logFormat: "text" | "json" = "text";
  let i = 0;
  for (; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-") || word === "-") break;
    const [rawName, inline] = splitValue(word);
    const name = longForm(rawName);
    if (name === RUNC_OPTION) {
      runcPath = inline ?? argv[++i];
      continue;
    }
    runcArgs.push(word);
    if (!GLOBAL_VALUE_OPTIONS.has(name)) continue;
    const value = inline ?? argv[++i];
    if (inline === undefined && value !== undefined) runcArgs.push(value);
    if (name === "--log") logFile = value;
    if (name === "--log-format") logFormat = value === "json" ? "json" : "text";
  }
  const command = argv[i];
  const globalArgs = [...runcArgs];
  runcArgs.push(...argv.slice(i));
  let bundle: string | undefined;
  let containerId: string | undefined;
  let processFile: string | undefined;
  const creates = command === "create" || command === "run";
  if (creates || command === "exec") {
    if (creates) bundle = "";
    const valued = creates ? CREATE_VALUE_OPTIONS : EXEC_VALUE_OPTIONS;
    for (let j = i + 1; j < argv.length; j++) {
      const word = argv[j]!;
      if (!word.startsWith("-")) {
        containerId = word; // exec: what follows the id is the command, runc's business
        break;
      }
      const [rawName, inline] = splitValue(word);
      const name = longForm(rawName);
      if (!valued.has(name)) continue;
      const value = inline ?? argv[++j];
      if (name === "--bundle" || name === "-b") bundle = value ?? "";
      if (name === "--process" || name === "-p") processFile = value;
    }
  }
  return {
    runcArgs,
    globalArgs,
    runcPath,
    logFile,
    logFormat,
    command,
    bundle,
    containerId,
    processFile,
  };
}
