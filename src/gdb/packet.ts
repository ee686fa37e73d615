/**
 * GDB remote serial protocol framing, pure: `$payload#cs` packets, `+`/`-`
 * acknowledgements, the 0x03 interrupt byte, binary escaping (`}` then the
 * byte XOR 0x20) and run-length expansion. Works on plain bytes; no I/O and
 * no KVM imports.
 * @module
 */

/** The largest payload the stub accepts or sends (advertised as `PacketSize`). */
export const MAX_PACKET_SIZE = 0x4000;

const DOLLAR = 0x24; // $
const HASH = 0x23; // #
const ESCAPE = 0x7d; // }
const STAR = 0x2a; // *
const PLUS = 0x2b; // +
const MINUS = 0x2d; // -
const INTERRUPT = 0x03;

/** One thing read from the debugger's byte stream. */
export type GdbInput =
  | { readonly type: "packet"; readonly payload: Uint8Array }
  | { readonly type: "bad-packet"; readonly why: "checksum" | "too-long" | "not-hex" }
  | { readonly type: "ack" }
  | { readonly type: "nack" }
  | { readonly type: "interrupt" };

/** The modulo-256 sum of `bytes`: the packet checksum. */
export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

/** Two lowercase hex digits. */
function hex2(value: number): string {
  return (value & 0xff).toString(16).padStart(2, "0");
}

/** Value of one hex digit, or -1. */
export function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

type DecoderState = "idle" | "payload" | "checksum1" | "checksum2";

/**
 * Splits the byte stream from the debugger into packets and control bytes.
 * Feed it whatever arrives; it keeps partial packets between calls. Bytes
 * outside a packet other than `+`, `-` and 0x03 are ignored, and a payload
 * longer than {@linkcode MAX_PACKET_SIZE} is dropped (reported once).
 */
export class PacketDecoder {
  #state: DecoderState = "idle";
  #payload = new Uint8Array(MAX_PACKET_SIZE);
  #length = 0;
  #overflow = false;
  #sum = 0;

  /** Consumes `chunk`; returns what it completed, in order. */
  push(chunk: Uint8Array): GdbInput[] {
    const out: GdbInput[] = [];
    for (const b of chunk) {
      switch (this.#state) {
        case "idle":
          if (b === DOLLAR) this.#start();
          else if (b === PLUS) out.push({ type: "ack" });
          else if (b === MINUS) out.push({ type: "nack" });
          else if (b === INTERRUPT) out.push({ type: "interrupt" });
          break;
        case "payload":
          if (b === HASH) this.#state = "checksum1";
          else if (b === DOLLAR) this.#start(); // a new packet: the old one was cut off
          else if (this.#length < MAX_PACKET_SIZE) this.#payload[this.#length++] = b;
          else this.#overflow = true;
          break;
        case "checksum1": {
          const d = hexDigit(b);
          this.#sum = d < 0 ? -1 : d << 4;
          this.#state = "checksum2";
          break;
        }
        case "checksum2": {
          const d = hexDigit(b);
          this.#state = "idle";
          const payload = this.#payload.slice(0, this.#length);
          if (this.#overflow) out.push({ type: "bad-packet", why: "too-long" });
          else if (d < 0 || this.#sum < 0) out.push({ type: "bad-packet", why: "not-hex" });
          else if ((this.#sum | d) !== checksum(payload)) {
            out.push({ type: "bad-packet", why: "checksum" });
          } else out.push({ type: "packet", payload });
          break;
        }
      }
    }
    return out;
  }

  #start(): void {
    this.#state = "payload";
    this.#length = 0;
    this.#overflow = false;
  }
}

/** Bytes that must be escaped inside a packet's payload. */
function needsEscape(b: number): boolean {
  return b === DOLLAR || b === HASH || b === ESCAPE || b === STAR;
}

/** Frames `payload` as `$payload#cs`, escaping `$ # } *` so binary data survives. */
export function encodePacket(payload: string | Uint8Array): Uint8Array {
  const raw = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  let escapes = 0;
  for (const b of raw) if (needsEscape(b)) escapes++;
  const out = new Uint8Array(raw.length + escapes + 4);
  out[0] = DOLLAR;
  let n = 1;
  for (const b of raw) {
    if (needsEscape(b)) {
      out[n++] = ESCAPE;
      out[n++] = b ^ 0x20;
    } else out[n++] = b;
  }
  const sum = checksum(out.subarray(1, n));
  out[n++] = HASH;
  const cs = hex2(sum);
  out[n++] = cs.charCodeAt(0);
  out[n++] = cs.charCodeAt(1);
  return out;
}

/** Undoes binary escaping (`}` then the byte XOR 0x20), as in `X` packets. Null if it ends in `}`. */
export function unescapeBinary(data: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(data.length);
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === ESCAPE) {
      if (i + 1 >= data.length) return null;
      out[n++] = data[++i]! ^ 0x20;
    } else out[n++] = b;
  }
  return out.slice(0, n);
}

/**
 * Expands run-length encoding (`X*N`: X repeated N - 29 more times, N
 * printable) in a reply payload. Null for a malformed run.
 */
export function expandRunLength(data: Uint8Array, limit = MAX_PACKET_SIZE * 4): Uint8Array | null {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === STAR) {
      if (out.length === 0 || i + 1 >= data.length) return null;
      const count = data[++i]! - 29;
      if (count < 3 || count > 97) return null; // gdb: counts 3..97, printable only
      const prev = out[out.length - 1]!;
      for (let k = 0; k < count; k++) out.push(prev);
    } else out.push(b);
    if (out.length > limit) return null;
  }
  return Uint8Array.from(out);
}

/** Bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += hex2(b);
  return s;
}

/** Hex text to bytes, or null if the length is odd or a digit is not hex. */
export function fromHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(text.charCodeAt(2 * i));
    const lo = hexDigit(text.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/**
 * A hex number (no sign, no prefix) as a safe integer, or null when empty,
 * not hex, or above 2^53 - 1 (no guest address dhyve maps is that high).
 */
export function parseHexNumber(text: string): number | null {
  if (text.length === 0 || text.length > 16) return null;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const d = hexDigit(text.charCodeAt(i));
    if (d < 0) return null;
    value = value * 16 + d;
  }
  return Number.isSafeInteger(value) ? value : null;
}
