/**
 * The debugger's side of the GDB stub: the loopback listener, and the TCP
 * connection as a queue of decoded input with writes that never throw. No
 * KVM imports.
 * @module
 */

import { GdbListenError } from "./listen_error.ts";
import { type GdbInput, PacketDecoder } from "./packet.ts";

/** Most inputs queued from the debugger (packets are at most 16 KiB each). */
const MAX_QUEUED = 256;

/** The debugger's connection: decoded input queued, writes that never throw. */
export class Connection {
  readonly #conn: Deno.Conn;
  readonly #decoder = new PacketDecoder();
  readonly #inbox: GdbInput[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  /** Wraps an accepted connection and starts reading from it. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#readLoop();
  }

  /** True once the debugger hung up (or the socket failed). */
  get closed(): boolean {
    return this.#closed;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        for (const input of this.#decoder.push(buf.subarray(0, n))) {
          // A client that floods the stub while the guest runs cannot grow the queue without
          // bound: past the limit only Ctrl-C is kept (GDB sends nothing else while it waits).
          if (this.#inbox.length < MAX_QUEUED || input.type === "interrupt") {
            this.#inbox.push(input);
          }
        }
        this.#wake?.();
      }
    } catch {
      // A reset or a closed socket: the same as a hang-up.
    }
    this.#closed = true;
    this.#wake?.();
  }

  /** Takes queued input without waiting; null when none is queued. */
  poll(): GdbInput | null {
    return this.#inbox.shift() ?? null;
  }

  /** True when a Ctrl-C (0x03) is queued; removes it. */
  takeInterrupt(): boolean {
    const i = this.#inbox.findIndex((input) => input.type === "interrupt");
    if (i < 0) return false;
    this.#inbox.splice(i, 1);
    return true;
  }

  /** Waits for input; null when the connection closed or `abort` resolved first. */
  async next(abort: Promise<void>): Promise<GdbInput | null> {
    for (;;) {
      const input = this.#inbox.shift();
      if (input !== undefined) return input;
      if (this.#closed) return null;
      const woken = new Promise<boolean>((resolve) => (this.#wake = () => resolve(false)));
      const aborted = await Promise.race([woken, abort.then(() => true)]);
      this.#wake = null;
      if (aborted) return null;
      // Woken by a read that completed nothing (part of a packet): wait again.
    }
  }

  /** Sends raw bytes; a failed write marks the connection closed. */
  async send(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return;
    try {
      for (let done = 0; done < bytes.length;) done += await this.#conn.write(bytes.subarray(done));
    } catch {
      this.#closed = true;
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#closed = true;
  }
}

/** Listens on loopback and waits for one debugger; null if a stop signal came first. */
export async function acceptDebugger(
  port: number,
  notify: (message: string) => void,
  abort: Promise<void>,
): Promise<Deno.Conn | null> {
  const listeners: Deno.Listener<Deno.TcpConn, Deno.NetAddr>[] = [];
  try {
    listeners.push(Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }));
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new GdbListenError(
        `Deno may not listen for GDB on 127.0.0.1:${port}: add --allow-net=127.0.0.1,[::1] ` +
          "to the deno command",
        { cause: error },
      );
    }
    const why = error instanceof Error ? error.message : String(error);
    throw new GdbListenError(`Cannot listen for GDB on 127.0.0.1:${port}: ${why}`, {
      cause: error,
    });
  }
  const actual = listeners[0]!.addr.port;
  try {
    listeners.push(Deno.listen({ hostname: "::1", port: actual, transport: "tcp" }));
  } catch {
    // No IPv6 loopback here (or the port is taken there): 127.0.0.1 alone will do.
  }
  notify(
    `Waiting for a GDB connection on 127.0.0.1:${actual}` +
      (listeners.length > 1 ? ` and [::1]:${actual}` : "") + "...",
  );
  try {
    const accepted = await Promise.race([
      ...listeners.map((l) => l.accept()),
      abort.then(() => null),
    ]);
    if (accepted !== null) {
      const from = accepted.remoteAddr;
      notify(`Debugger connected from ${from.hostname}:${from.port}`);
      accepted.setNoDelay(true);
    }
    return accepted;
  } finally {
    for (const l of listeners) l.close();
  }
}
