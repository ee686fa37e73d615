/**
 * What the GDB stub tests share: dhyve under `-s 0` as a subprocess
 * ({@linkcode DhyveUnderGdb}, {@linkcode withDhyve}), a minimal GDB remote
 * client ({@linkcode Client}), `nm` symbols, and Debian's `gdb` in batch mode
 * ({@linkcode gdbBatch}).
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, fromHex, PacketDecoder } from "../../src/gdb/packet.ts";
import { REGISTER_NUMBER } from "../../src/gdb/target_xml.ts";
import { type GuestBuild } from "./guests.ts";
import { spawnDhyve } from "./cli.ts";

/** What `deno run` grants dhyve with a GDB stub in these tests. */
export const STUB_PERMISSIONS: readonly string[] = [
  "--allow-ffi",
  "--allow-read",
  "--allow-env",
  "--allow-net=127.0.0.1,[::1]",
];
/** The gdb_target guest's usual build: v2, fixed address. */
export const FIXED: GuestBuild = { iface: 2, pie: false };
/** A v2 PIE build. */
export const PIE: GuestBuild = { iface: 2, pie: true };
/** Longest any single wait may take before the test fails instead of hanging. */
export const WAIT_MS = 30_000;
/** Encodes packets. */
export const enc: TextEncoder = new TextEncoder();
/** Decodes packets and output byte for byte. */
export const dec: TextDecoder = new TextDecoder("latin1");

/** Rejects after `ms` with `what` in the message. */
export async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A dhyve process running a guest under `-s 0`, its stderr collected as it arrives. */
export class DhyveUnderGdb {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<string>;
  #stderr = "";
  #stderrDone: Promise<void>;
  #stderrGrew: () => void = () => {};
  readonly status: Promise<Deno.CommandStatus>;

  constructor(kernel: string, extra: string[] = []) {
    const child = spawnDhyve(["--file-isolation", "none", "-s", "0", ...extra, kernel], {
      perms: STUB_PERMISSIONS,
    });
    this.#child = child;
    this.status = child.status;
    this.#stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += chunk;
        this.#stderrGrew();
      }
      this.#stderrGrew();
    })();
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Waits for stderr to match `pattern`; returns the match. */
  async waitForStderr(pattern: RegExp): Promise<RegExpMatchArray> {
    return await within(
      (async () => {
        for (;;) {
          const m = this.#stderr.match(pattern);
          if (m !== null) return m;
          const grew = new Promise<void>((resolve) => (this.#stderrGrew = resolve));
          const ended = await Promise.race([
            grew.then(() => false),
            this.#stderrDone.then(() => true),
          ]);
          if (ended && this.#stderr.match(pattern) === null) {
            throw new Error(`dhyve ended without printing ${pattern}:\n${this.#stderr}`);
          }
        }
      })(),
      `stderr matching ${pattern}`,
    );
  }

  /** The port dhyve listens on. */
  async port(): Promise<number> {
    const m = await this.waitForStderr(/GDB connection on 127\.0\.0\.1:(\d+)/);
    return Number(m[1]);
  }

  /** Waits for the process to end; returns its exit code and output. */
  async finish(): Promise<{ code: number; stdout: string; stderr: string }> {
    const status = await within(this.status, "dhyve to exit");
    await this.#stderrDone;
    return { code: status.code, stdout: await this.#stdout, stderr: this.#stderr };
  }

  /** Sends `signal` to the process. */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Kills the process if it still runs (every test calls this in `finally`). */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.status.catch(() => {});
    await this.#stdout.catch(() => "");
    await this.#stderrDone.catch(() => {});
  }
}

/** A minimal GDB remote client: sends packets, checks acks and checksums. */
export class Client {
  readonly #conn: Deno.TcpConn;
  readonly #decoder = new PacketDecoder();
  #queue: ({ type: string; payload?: Uint8Array })[] = [];
  #buf = new Uint8Array(65536);
  noAck = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<Client> {
    return new Client(await within(Deno.connect({ hostname: "127.0.0.1", port }), "connect"));
  }

  async raw(bytes: Uint8Array | string): Promise<void> {
    const b = typeof bytes === "string" ? enc.encode(bytes) : bytes;
    for (let done = 0; done < b.length;) done += await this.#conn.write(b.subarray(done));
  }

  /** The next decoded input (packet, ack, nack). */
  async next(): Promise<{ type: string; payload?: Uint8Array }> {
    while (this.#queue.length === 0) {
      const n = await within(this.#conn.read(this.#buf), "data from the stub");
      if (n === null) throw new Error("The stub closed the connection");
      this.#queue.push(...this.#decoder.push(this.#buf.subarray(0, n)));
    }
    return this.#queue.shift()!;
  }

  /** Reads the next packet (acking it), skipping acks. */
  async reply(): Promise<string> {
    for (;;) {
      const input = await this.next();
      if (input.type === "packet") {
        if (!this.noAck) await this.raw("+");
        return dec.decode(input.payload!);
      }
      if (input.type === "bad-packet") throw new Error("The stub sent a bad packet");
    }
  }

  /** Sends a packet; expects "+" first (in ack mode). */
  async send(payload: string | Uint8Array): Promise<void> {
    await this.raw(encodePacket(payload));
    if (!this.noAck) assert.equal((await this.next()).type, "ack");
  }

  /** Sends a packet and returns the reply. */
  async ask(payload: string | Uint8Array): Promise<string> {
    await this.send(payload);
    return await this.reply();
  }

  /** Reads memory; null for an error reply. */
  async read(addr: number, length: number): Promise<Uint8Array | null> {
    const r = await this.ask(`m${addr.toString(16)},${length.toString(16)}`);
    return r.startsWith("E") ? null : fromHex(r);
  }

  /** A register of the selected thread, as a bigint. */
  async register(name: string): Promise<bigint> {
    const r = await this.ask(`p${REGISTER_NUMBER[name]!.toString(16)}`);
    const bytes = fromHex(r)!;
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Symbol addresses of a guest ELF (from `nm`). */
export async function symbols(elf: string): Promise<Record<string, number>> {
  const out = await new Deno.Command("nm", { args: [elf], stdout: "piped" }).output();
  const table: Record<string, number> = {};
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const [addr, , name] = line.trim().split(/\s+/);
    if (addr !== undefined && name !== undefined) table[name] = parseInt(addr, 16);
  }
  return table;
}

/**
 * The client side needs loopback access; without it every test here fails
 * with this one clear message (`deno task test:kvm` grants it).
 */
export function requireLoopback(): void {
  if (Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted") {
    throw new Error(
      "The GDB tests talk to dhyve over 127.0.0.1: run them with --allow-net=127.0.0.1",
    );
  }
}

/** Runs `f` against a dhyve under `-s`, always killing dhyve afterwards. */
export async function withDhyve(
  kernel: string,
  extra: string[],
  f: (dhyve: DhyveUnderGdb) => Promise<void>,
): Promise<void> {
  requireLoopback();
  const dhyve = new DhyveUnderGdb(kernel, extra);
  try {
    await f(dhyve);
  } finally {
    await dhyve.kill();
  }
}

/** Runs gdb in batch mode against `port` with `commands`; returns its output. */
export async function gdbBatch(elf: string | null, commands: string[]): Promise<string> {
  const args = ["-batch", "-nx"];
  for (const c of commands) args.push("-ex", c);
  if (elf !== null) args.push(elf);
  const out = await new Deno.Command("gdb", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(WAIT_MS * 2),
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}
