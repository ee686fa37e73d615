/**
 * passt, the user-mode network stack, as the other end of `--net passt`:
 * starts it (found on PATH) with the guest network of
 * {@linkcode PASST_NETWORK} and the `--publish` forwards, connects to its
 * UNIX socket, and stops it. passt runs with `--one-off`, so it quits as soon
 * as dhyve's end of the socket closes — also when dhyve is killed with
 * SIGKILL. The socket lives in a fresh private directory that is removed
 * right after connecting, so no socket file is left behind on any exit path.
 * `--net passt:SOCKET` only connects. The data path (net_data_path.ts) speaks
 * the stream protocol on the connected fd.
 * @module
 */

import { ERRNO } from "../errno.ts";

const { EACCES, EAGAIN, ECONNREFUSED, ENOENT, EPERM } = ERRNO;
import { EXIT_CODE } from "../exit_codes.ts";
import { closeFd, connectUnixSocket, effectiveUid } from "./host_io.ts";
import { NetSetupError } from "./net_setup_error.ts";
import {
  PASST_COMMAND,
  PASST_NETWORK,
  PASST_SOCKET_PARENT,
  type PortForward,
} from "./net_option.ts";

/** How long passt gets to listen on its socket. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How often dhyve tries to connect while passt starts. */
const CONNECT_RETRY_MS = 5;
/** How long passt gets to quit once its socket is closed, before SIGTERM (then SIGKILL). */
const QUIT_MS = 2_000;
/** passt's stderr kept for the error message when it fails to start. */
const STDERR_TAIL = 2048;

/** passt's `-t`/`-u` value for the forwards of one protocol ("none" when there are none). */
export function passtPortSpec(publish: readonly PortForward[], protocol: "tcp" | "udp"): string {
  const specs = publish.filter((p) => p.protocol === protocol).map((p) =>
    `${p.hostAddress}/${p.hostPort}:${p.guestPort}`
  );
  return specs.length === 0 ? "none" : specs.join(",");
}

/**
 * passt's command line: foreground, one client, the socket at `socket`, the
 * guest network, MTU, and exactly the forwards asked for (passt would
 * otherwise mirror TCP forwards to UDP).
 */
export function passtArguments(
  socket: string,
  options: { publish: readonly PortForward[]; mtu: number; runAs?: string },
): string[] {
  return [
    "--foreground",
    "--one-off",
    "--quiet",
    "--stderr",
    "--socket",
    socket,
    "--address",
    PASST_NETWORK.address,
    "--netmask",
    String(PASST_NETWORK.prefixLength),
    "--gateway",
    PASST_NETWORK.gateway,
    "--dns-forward",
    PASST_NETWORK.dns,
    "--mtu",
    String(options.mtu),
    "--tcp-ports",
    passtPortSpec(options.publish, "tcp"),
    "--udp-ports",
    passtPortSpec(options.publish, "udp"),
    ...(options.runAs === undefined ? [] : ["--runas", options.runAs]),
  ];
}

/** A connected passt: the socket fd, and passt itself when dhyve started it. */
export class PasstConnection {
  /** The connected, non-blocking stream socket. */
  readonly fd: number;
  readonly #child: Deno.ChildProcess | null;
  readonly #status: Promise<Deno.CommandStatus> | null;

  /** Wraps a connected `fd` (and the child dhyve started, if any). */
  constructor(fd: number, child: Deno.ChildProcess | null) {
    this.fd = fd;
    this.#child = child;
    this.#status = child?.status ?? null;
  }

  /** passt's process id, or null when dhyve attached to someone else's. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /**
   * Closes the socket; a passt dhyve started then quits by itself
   * (`--one-off`), else it gets SIGTERM and, if need be, SIGKILL.
   */
  async close(): Promise<void> {
    closeFd(this.fd);
    const child = this.#child;
    const status = this.#status;
    if (child === null || status === null) return;
    if (await settlesWithin(status, QUIT_MS)) return;
    kill(child, "SIGTERM");
    if (await settlesWithin(status, QUIT_MS)) return;
    kill(child, "SIGKILL");
    await status;
  }
}

/** Whether `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return done;
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

/** Connects to the passt listening on `socket` (someone else's: `--net passt:SOCKET`). */
export function attachPasst(socket: string): PasstConnection {
  const fd = connectUnixSocket(socket);
  if (fd >= 0) return new PasstConnection(fd, null);
  const e = -fd;
  const why = e === ENOENT
    ? "it does not exist"
    : e === EACCES || e === EPERM
    ? "permission denied"
    : e === ECONNREFUSED
    ? "nothing listens on it (passt ended, or it serves another client already)"
    : `errno ${e}`;
  return fail(
    `Cannot connect to passt's socket ${socket}: ${why}; start passt first ` +
      `(e.g. "passt --one-off --socket ${socket}") or use --net passt to let dhyve start it`,
    e === EACCES || e === EPERM ? EXIT_CODE.PERMISSION : EXIT_CODE.HOST_ERROR,
  );
}

function fail(message: string, exitCode: number, cause?: unknown): never {
  throw new NetSetupError(message, exitCode, cause === undefined ? undefined : { cause });
}

/**
 * Starts passt with a socket in a fresh directory below `parent`, connects to
 * it, and removes the socket and directory again.
 * @throws {NetSetupError} when passt is missing, fails to start, or never listens.
 */
export async function startPasst(
  options: { publish: readonly PortForward[]; mtu: number; parent?: string },
): Promise<PasstConnection> {
  let dir: string;
  try {
    dir = Deno.makeTempDirSync({
      dir: options.parent ?? PASST_SOCKET_PARENT,
      prefix: "dhyve-passt-",
    });
  } catch (error) {
    return fail(
      `Cannot make a directory for passt's socket in ${options.parent ?? PASST_SOCKET_PARENT}: ` +
        `${error instanceof Error ? error.message : String(error)}; choose another with --tempdir`,
      EXIT_CODE.HOST_ERROR,
      error,
    );
  }
  const socket = `${dir}/passt.socket`;
  let child: Deno.ChildProcess | null = null;
  try {
    // passt refuses to keep root and becomes nobody: let nobody make its socket here.
    let runAs: string | undefined;
    if (effectiveUid() === 0) {
      runAs = `${NOBODY}:${NOBODY}`;
      Deno.chownSync(dir, NOBODY, NOBODY);
    }
    const args = passtArguments(socket, { ...options, ...(runAs ? { runAs } : {}) });
    try {
      child = new Deno.Command(PASST_COMMAND, {
        args,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return fail(
          `--net passt needs passt, which is not installed (or not on PATH): install it with ` +
            `"apt install passt"`,
          EXIT_CODE.HOST_ERROR,
          error,
        );
      }
      if (error instanceof Deno.errors.NotCapable) {
        return fail(
          `Deno may not run passt (--net passt): add --allow-run=${PASST_COMMAND}`,
          EXIT_CODE.PERMISSION,
          error,
        );
      }
      throw error;
    }
    const stderr = collectTail(child.stderr);
    const exited = child.status.then((s) => s);
    const deadline = performance.now() + CONNECT_TIMEOUT_MS;
    for (;;) {
      const fd = connectUnixSocket(socket);
      if (fd >= 0) {
        const connection = new PasstConnection(fd, child);
        child = null;
        return connection;
      }
      const e = -fd;
      const retry = e === ENOENT || e === ECONNREFUSED || e === EAGAIN;
      if (!retry) {
        return fail(`Cannot connect to passt's socket (errno ${e})`, EXIT_CODE.HOST_ERROR);
      }
      if (await settlesWithin(exited, CONNECT_RETRY_MS)) {
        const status = await exited;
        const said = lastLine(await stderr.text());
        return fail(
          `passt stopped before the guest could connect (exit code ${status.code})` +
            (said === "" ? "" : `: ${said}`),
          EXIT_CODE.HOST_ERROR,
        );
      }
      if (performance.now() > deadline) {
        return fail(
          `passt did not open its socket within ${CONNECT_TIMEOUT_MS / 1000} s`,
          EXIT_CODE.HOST_ERROR,
        );
      }
    }
  } finally {
    if (child !== null) {
      kill(child, "SIGKILL");
      await child.status;
    }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already gone
    }
  }
}

/** uid/gid of "nobody" (Debian), whom passt becomes when started as root. */
const NOBODY = 65534;

/** The last non-empty line passt printed, without its syslog noise. */
function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("Failed to send")
  );
  return lines.at(-1) ?? "";
}

/** Reads a stream to its end in the background, keeping its last bytes. */
function collectTail(stream: ReadableStream<Uint8Array>): { text(): Promise<string> } {
  let tail = new Uint8Array(0);
  const done = (async () => {
    for await (const chunk of stream) {
      const joined = new Uint8Array(tail.length + chunk.length);
      joined.set(tail);
      joined.set(chunk, tail.length);
      tail = joined.slice(Math.max(0, joined.length - STDERR_TAIL));
    }
  })().catch(() => {});
  return {
    text: async () => {
      await settlesWithin(done, 500);
      return new TextDecoder().decode(tail);
    },
  };
}
