/**
 * The GDB remote protocol, pure: one packet in, one reply (and maybe an
 * action for the driver) out. Registers, memory and threads come from a
 * {@linkcode GdbTarget}, so this runs against a fake target in tests. Every
 * malformed request gets an error reply; nothing here throws on client
 * input. No KVM imports.
 * @module
 */

import { Breakpoints, type HardwareKind, type VirtualMemory } from "./breakpoints.ts";
import { fromHex, MAX_PACKET_SIZE, parseHexNumber, toHex, unescapeBinary } from "./packet.ts";
import {
  GDB_REGISTERS,
  REGISTER_FILE_SIZE,
  REGISTER_NUMBER,
  REGISTER_OFFSETS,
  TARGET_XML,
} from "./target_xml.ts";

/** What the protocol needs from the machine being debugged. Threads are numbered 1..threadCount. */
export interface GdbTarget {
  /** How many threads (vCPUs) there are. */
  readonly threadCount: number;
  /** How far the kernel was moved from its link address (ASLR; 0 for a fixed-address kernel). */
  readonly loadOffset: number;
  /** Fills `into` (REGISTER_FILE_SIZE bytes, `g` packet order) with a thread's registers. */
  readRegisters(thread: number, into: Uint8Array): void;
  /** Sets a thread's registers from `g` packet order bytes; false if the target refused. */
  writeRegisters(thread: number, from: Uint8Array): boolean;
  /** Guest-virtual memory as seen through a thread's page tables. */
  memory(thread: number): VirtualMemory;
}

/** Why the guest stopped, for a stop reply. */
export type StopEvent =
  | {
    readonly type: "signal";
    /** The thread that stopped. */
    readonly thread: number;
    /** 5 = SIGTRAP (breakpoint, step), 2 = SIGINT (interrupt). */
    readonly signal: number;
    /** What fired, when a breakpoint or watchpoint did. */
    readonly reason?:
      | { readonly kind: "swbreak" | "hwbreak" }
      | { readonly kind: "watch" | "rwatch" | "awatch"; readonly addr: number };
  }
  | { readonly type: "exited"; readonly code: number }
  | { readonly type: "terminated"; readonly signal: number };

/** What the driver must do after a packet. */
export type GdbAction =
  | { readonly type: "none" }
  /** Run the guest: `step` is the thread to single-step, or null to continue all. */
  | { readonly type: "resume"; readonly step: number | null }
  /** Remove breakpoints, let the guest run on without the debugger. */
  | { readonly type: "detach" }
  /** Stop the VM now. */
  | { readonly type: "kill" };

/** A packet's outcome: the reply (null: send none) and the action. */
export interface GdbOutcome {
  /** The reply payload; "" is the empty reply for unsupported packets. */
  readonly reply: string | Uint8Array | null;
  /** What the driver must do. */
  readonly action: GdbAction;
}

/** Signal numbers GDB uses in stop replies. */
export const SIGNAL = { SIGINT: 2, SIGILL: 4, SIGTRAP: 5, SIGKILL: 9, SIGSEGV: 11 } as const;

/** Largest `m` read served in one reply (hex doubles it; room is kept for framing). */
export const MAX_MEMORY_READ = (MAX_PACKET_SIZE - 16) / 2;

const PAGE_SIZE = 4096;
const NONE: GdbAction = { type: "none" };
const ERROR_BAD_REQUEST = "E01";
/** EFAULT-style reply for memory GDB may not touch (unmapped). */
const ERROR_FAULT = "E14";
const ERROR_NO_REGISTER = "E00";

const ZTYPE: Readonly<Record<string, "software" | HardwareKind>> = {
  "0": "software",
  "1": "exec",
  "2": "write",
  "3": "read",
  "4": "access",
};

function reply(text: string | Uint8Array | null, action: GdbAction = NONE): GdbOutcome {
  return { reply: text, action };
}

/** Hex text of a string, for `qThreadExtraInfo`. */
function hexText(text: string): string {
  return toHex(new TextEncoder().encode(text));
}

/**
 * One debugging session's protocol state: ack mode, the selected threads,
 * the breakpoints, the last stop.
 */
export class GdbSession {
  readonly #target: GdbTarget;
  readonly #registers = new Uint8Array(REGISTER_FILE_SIZE);
  /** The breakpoints the debugger set; the driver arms them before each run. */
  readonly breakpoints: Breakpoints = new Breakpoints();
  #noAck = false;
  #generalThread = 1;
  #continueThread = 1;
  #lastStop: string;

  /** Starts a session; the guest has not run yet (stopped by SIGTRAP on thread 1). */
  constructor(target: GdbTarget) {
    this.#target = target;
    this.#lastStop = `T05thread:${(1).toString(16)};`;
  }

  /** True after `QStartNoAckMode`: neither side sends `+` any more. */
  get noAck(): boolean {
    return this.#noAck;
  }

  /** The thread `g`, `m` and breakpoint packets act on. */
  get generalThread(): number {
    return this.#generalThread;
  }

  /** Builds the stop reply for `event`, remembers it for `?`, and selects the thread. */
  stopReply(event: StopEvent): string {
    let text: string;
    if (event.type === "exited") text = `W${toHex(Uint8Array.of(event.code & 0xff))}`;
    else if (event.type === "terminated") text = `X${toHex(Uint8Array.of(event.signal & 0xff))}`;
    else {
      const reason = event.reason;
      const why = reason === undefined
        ? ""
        : "addr" in reason
        ? `${reason.kind}:${reason.addr.toString(16)};`
        : `${reason.kind}:;`;
      text = `T${toHex(Uint8Array.of(event.signal))}${why}thread:${event.thread.toString(16)};`;
      this.#generalThread = event.thread;
      this.#continueThread = event.thread;
    }
    this.#lastStop = text;
    return text;
  }

  /** Handles one packet payload (already unframed and checksum-checked). */
  handle(payload: Uint8Array): GdbOutcome {
    // Only X carries binary data; every other packet is ASCII.
    if (payload[0] === 0x58) return this.#writeBinary(payload);
    const text = new TextDecoder("latin1").decode(payload);
    try {
      return this.#dispatch(text);
    } catch (error) {
      // A target failure (say, a register ioctl) must not end the session.
      if (error instanceof Error) return reply(ERROR_BAD_REQUEST);
      throw error;
    }
  }

  #dispatch(text: string): GdbOutcome {
    const head = text[0] ?? "";
    const rest = text.slice(1);
    switch (head) {
      case "?":
        return reply(this.#lastStop);
      case "g":
        this.#target.readRegisters(this.#generalThread, this.#registers);
        return reply(toHex(this.#registers));
      case "G":
        return this.#writeAll(rest);
      case "p":
        return this.#readOne(rest);
      case "P":
        return this.#writeOne(rest);
      case "m":
        return this.#readMemory(rest);
      case "M":
        return this.#writeMemory(rest);
      case "H":
        return this.#selectThread(rest);
      case "T": {
        const t = this.#parseThread(rest);
        return reply(t !== null && t >= 1 && t <= this.#target.threadCount ? "OK" : "E01");
      }
      case "c":
      case "s":
        return this.#resume(head === "s", rest);
      case "C":
      case "S": {
        // The signal cannot be delivered to a unikernel; resume as c/s would.
        const semi = rest.indexOf(";");
        return this.#resume(head === "S", semi < 0 ? "" : rest.slice(semi + 1));
      }
      case "Z":
      case "z":
        return this.#breakpoint(head === "Z", rest);
      case "D":
        return reply("OK", { type: "detach" });
      case "k":
        return reply(null, { type: "kill" });
      case "q":
        return this.#query(text);
      case "Q":
        if (text === "QStartNoAckMode") {
          this.#noAck = true;
          return reply("OK");
        }
        return reply("");
      case "v":
        return this.#vPacket(text);
      default:
        return reply("");
    }
  }

  #query(text: string): GdbOutcome {
    if (text.startsWith("qSupported")) {
      return reply(
        `PacketSize=${MAX_PACKET_SIZE.toString(16)};qXfer:features:read+;QStartNoAckMode+;` +
          "swbreak+;hwbreak+;vContSupported+",
      );
    }
    if (text.startsWith("qXfer:features:read:")) return this.#readFeatures(text.slice(20));
    if (text === "qfThreadInfo") {
      const ids = Array.from({ length: this.#target.threadCount }, (_, i) => (i + 1).toString(16));
      return reply(`m${ids.join(",")}`);
    }
    if (text === "qsThreadInfo") return reply("l");
    if (text === "qC") return reply(`QC${this.#generalThread.toString(16)}`);
    if (text.startsWith("qAttached")) return reply("1");
    if (text === "qOffsets") {
      // GDB relocates the kernel's symbols by this (as uhyve reports its load address).
      const offset = this.#target.loadOffset.toString(16);
      return reply(`Text=${offset};Data=${offset};Bss=${offset}`);
    }
    if (text.startsWith("qSymbol")) return reply("OK");
    if (text.startsWith("qThreadExtraInfo,")) {
      const t = this.#parseThread(text.slice(17));
      if (t === null || t < 1 || t > this.#target.threadCount) return reply(ERROR_BAD_REQUEST);
      return reply(hexText(`vCPU ${t - 1}`));
    }
    return reply("");
  }

  #readFeatures(args: string): GdbOutcome {
    // target.xml:OFFSET,LENGTH
    const colon = args.indexOf(":");
    if (colon < 0) return reply(ERROR_BAD_REQUEST);
    if (args.slice(0, colon) !== "target.xml") return reply(ERROR_NO_REGISTER);
    const range = this.#parseAddrLen(args.slice(colon + 1));
    if (range === null) return reply(ERROR_BAD_REQUEST);
    const xml = new TextEncoder().encode(TARGET_XML);
    const length = Math.min(range.length, MAX_MEMORY_READ);
    const part = xml.subarray(Math.min(range.addr, xml.length), range.addr + length);
    const more = range.addr + part.length < xml.length;
    const out = new Uint8Array(part.length + 1);
    out[0] = more ? 0x6d : 0x6c; // "m": more follows, "l": last part
    out.set(part, 1);
    return reply(out);
  }

  #vPacket(text: string): GdbOutcome {
    if (text === "vCont?") return reply("vCont;c;C;s;S");
    if (text.startsWith("vCont;")) return this.#vCont(text.slice(6));
    return reply(""); // vMustReplyEmpty, vKill, vRun, vFile...: unsupported
  }

  #vCont(actions: string): GdbOutcome {
    let step: number | null = null;
    for (const item of actions.split(";")) {
      const [action = "", threadText] = item.split(":");
      const kind = action[0];
      if (kind !== "c" && kind !== "C" && kind !== "s" && kind !== "S") {
        return reply(ERROR_BAD_REQUEST);
      }
      if ((kind === "C" || kind === "S") && parseHexNumber(action.slice(1)) === null) {
        return reply(ERROR_BAD_REQUEST);
      }
      let thread: number | null = null;
      if (threadText !== undefined) {
        thread = this.#parseThread(threadText);
        if (thread === null) return reply(ERROR_BAD_REQUEST);
      }
      if ((kind === "s" || kind === "S") && step === null) {
        step = thread === null || thread <= 0 ? this.#continueThread : thread;
      }
    }
    if (step !== null && (step < 1 || step > this.#target.threadCount)) {
      return reply(ERROR_BAD_REQUEST);
    }
    return reply(null, { type: "resume", step });
  }

  #resume(step: boolean, addrText: string): GdbOutcome {
    const thread = this.#continueThread;
    if (addrText.length > 0) {
      const addr = parseHexNumber(addrText);
      if (addr === null) return reply(ERROR_BAD_REQUEST);
      // Resume at a new address: set RIP first.
      this.#target.readRegisters(thread, this.#registers);
      const rip = REGISTER_OFFSETS[REGISTER_NUMBER.rip!]!;
      new DataView(this.#registers.buffer).setBigUint64(rip, BigInt(addr), true);
      if (!this.#target.writeRegisters(thread, this.#registers)) return reply(ERROR_BAD_REQUEST);
    }
    return reply(null, { type: "resume", step: step ? thread : null });
  }

  #selectThread(rest: string): GdbOutcome {
    const op = rest[0];
    const t = this.#parseThread(rest.slice(1));
    if ((op !== "g" && op !== "c") || t === null) return reply(ERROR_BAD_REQUEST);
    if (t > this.#target.threadCount) return reply(ERROR_BAD_REQUEST);
    // 0 = any thread, -1 = all threads: keep the current one.
    if (t >= 1) {
      if (op === "g") this.#generalThread = t;
      else this.#continueThread = t;
    }
    return reply("OK");
  }

  /** A thread id: hex, 0 (any) or -1 (all); null if malformed. */
  #parseThread(text: string): number | null {
    if (text === "-1") return -1;
    return parseHexNumber(text);
  }

  #writeAll(hex: string): GdbOutcome {
    const bytes = fromHex(hex);
    if (bytes === null || bytes.length !== REGISTER_FILE_SIZE) return reply(ERROR_BAD_REQUEST);
    return reply(
      this.#target.writeRegisters(this.#generalThread, bytes) ? "OK" : ERROR_BAD_REQUEST,
    );
  }

  #readOne(numberText: string): GdbOutcome {
    const n = parseHexNumber(numberText);
    if (n === null || n >= GDB_REGISTERS.length) return reply(ERROR_NO_REGISTER);
    this.#target.readRegisters(this.#generalThread, this.#registers);
    const at = REGISTER_OFFSETS[n]!;
    return reply(toHex(this.#registers.subarray(at, at + GDB_REGISTERS[n]!.bits / 8)));
  }

  #writeOne(rest: string): GdbOutcome {
    const eq = rest.indexOf("=");
    const n = eq < 0 ? null : parseHexNumber(rest.slice(0, eq));
    if (n === null || n >= GDB_REGISTERS.length) return reply(ERROR_NO_REGISTER);
    const value = fromHex(rest.slice(eq + 1));
    if (value === null || value.length !== GDB_REGISTERS[n]!.bits / 8) {
      return reply(ERROR_BAD_REQUEST);
    }
    this.#target.readRegisters(this.#generalThread, this.#registers);
    this.#registers.set(value, REGISTER_OFFSETS[n]!);
    return reply(
      this.#target.writeRegisters(this.#generalThread, this.#registers) ? "OK" : ERROR_BAD_REQUEST,
    );
  }

  /** "ADDR,LENGTH" in hex, or null. */
  #parseAddrLen(text: string): { addr: number; length: number } | null {
    const comma = text.indexOf(",");
    if (comma < 0) return null;
    const addr = parseHexNumber(text.slice(0, comma));
    const length = parseHexNumber(text.slice(comma + 1));
    return addr === null || length === null ? null : { addr, length };
  }

  #readMemory(args: string): GdbOutcome {
    const range = this.#parseAddrLen(args);
    if (range === null) return reply(ERROR_BAD_REQUEST);
    const length = Math.min(range.length, MAX_MEMORY_READ);
    if (length === 0) return reply("");
    const mem = this.#target.memory(this.#generalThread);
    // Page by page: each page is translated on its own, and a read that runs
    // into an unmapped page returns what came before it (the protocol allows a short reply).
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const addr = range.addr + done;
      const chunk = Math.min(length - done, PAGE_SIZE - (addr % PAGE_SIZE));
      const bytes = Number.isSafeInteger(addr + chunk) ? mem.read(addr, chunk) : null;
      if (bytes === null) break;
      out.set(bytes, done);
      done += chunk;
    }
    return reply(done === 0 ? ERROR_FAULT : toHex(out.subarray(0, done)));
  }

  #writeMemory(args: string): GdbOutcome {
    const colon = args.indexOf(":");
    const range = colon < 0 ? null : this.#parseAddrLen(args.slice(0, colon));
    const data = colon < 0 ? null : fromHex(args.slice(colon + 1));
    if (range === null || data === null || data.length !== range.length) {
      return reply(ERROR_BAD_REQUEST);
    }
    return reply(this.#writeVirtual(range.addr, data) ? "OK" : ERROR_FAULT);
  }

  #writeBinary(payload: Uint8Array): GdbOutcome {
    const colon = payload.indexOf(0x3a);
    if (colon < 0) return reply(ERROR_BAD_REQUEST);
    const header = new TextDecoder("latin1").decode(payload.subarray(1, colon));
    const range = this.#parseAddrLen(header);
    const data = unescapeBinary(payload.subarray(colon + 1));
    if (range === null || data === null || data.length !== range.length) {
      return reply(ERROR_BAD_REQUEST);
    }
    if (data.length === 0) return reply("OK"); // GDB probes X support with an empty write
    try {
      return reply(this.#writeVirtual(range.addr, data) ? "OK" : ERROR_FAULT);
    } catch (error) {
      if (error instanceof Error) return reply(ERROR_BAD_REQUEST);
      throw error;
    }
  }

  /** Writes page by page; all or nothing is promised only per page, so check every page first. */
  #writeVirtual(addr: number, data: Uint8Array): boolean {
    if (!Number.isSafeInteger(addr + data.length)) return false;
    const mem = this.#target.memory(this.#generalThread);
    for (let done = 0; done < data.length;) {
      const chunk = Math.min(data.length - done, PAGE_SIZE - ((addr + done) % PAGE_SIZE));
      if (mem.read(addr + done, chunk) === null) return false;
      done += chunk;
    }
    for (let done = 0; done < data.length;) {
      const chunk = Math.min(data.length - done, PAGE_SIZE - ((addr + done) % PAGE_SIZE));
      if (!mem.write(addr + done, data.subarray(done, done + chunk))) return false;
      done += chunk;
    }
    return true;
  }

  #breakpoint(insert: boolean, args: string): GdbOutcome {
    // TYPE,ADDR,KIND[;conditions...]: conditions are not supported and ignored.
    const [typeText = "", addrText = "", kindText = ""] = args.split(";")[0]!.split(",");
    const type = ZTYPE[typeText];
    if (type === undefined) return reply("");
    const addr = parseHexNumber(addrText);
    const kind = parseHexNumber(kindText);
    if (addr === null || kind === null) return reply(ERROR_BAD_REQUEST);
    const bp = this.breakpoints;
    if (type === "software") {
      const mem = this.#target.memory(this.#generalThread);
      const ok = insert ? bp.insertSoftware(mem, addr) : bp.removeSoftware(mem, addr);
      return reply(ok ? "OK" : ERROR_FAULT);
    }
    const ok = insert ? bp.insertHardware(type, addr, kind) : bp.removeHardware(type, addr, kind);
    return reply(ok ? "OK" : ERROR_BAD_REQUEST);
  }
}
