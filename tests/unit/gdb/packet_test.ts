/**
 * Unit tests of `src/gdb/packet.ts`: framing, checksums, acks, the interrupt
 * byte, escaping, run-length expansion and malformed input. No permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  checksum,
  encodePacket,
  expandRunLength,
  fromHex,
  type GdbInput,
  MAX_PACKET_SIZE,
  PacketDecoder,
  parseHexNumber,
  toHex,
  unescapeBinary,
} from "../../../src/gdb/packet.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

function feed(text: string | Uint8Array, decoder = new PacketDecoder()): GdbInput[] {
  return decoder.push(typeof text === "string" ? enc.encode(text) : text);
}

function payloads(inputs: GdbInput[]): string[] {
  return inputs.map((i) => i.type === "packet" ? dec.decode(i.payload) : i.type);
}

Deno.test("checksum() is the byte sum modulo 256", () => {
  assert.equal(checksum(enc.encode("OK")), 0x9a);
  assert.equal(checksum(enc.encode("")), 0);
  assert.equal(checksum(new Uint8Array(300).fill(0xff)), (300 * 0xff) & 0xff);
});

Deno.test("encodePacket() frames with $…#cs and escapes $ # } *", () => {
  assert.equal(dec.decode(encodePacket("OK")), "$OK#9a");
  assert.equal(dec.decode(encodePacket("")), "$#00");
  const framed = encodePacket(Uint8Array.of(0x24, 0x23, 0x7d, 0x2a, 0x41));
  assert.equal(dec.decode(framed.subarray(0, 10)), "$}\x04}\x03}]}\x0aA");
  // The checksum covers the escaped bytes, as GDB computes it.
  const body = framed.subarray(1, framed.length - 3);
  assert.equal(
    dec.decode(framed.subarray(framed.length - 2)),
    toHex(Uint8Array.of(checksum(body))),
  );
  // And a decoder gets the escaped payload back, which unescapeBinary() undoes.
  const [got] = feed(framed);
  assert.ok(got?.type === "packet");
  assert.deepEqual(unescapeBinary(got.payload), Uint8Array.of(0x24, 0x23, 0x7d, 0x2a, 0x41));
});

Deno.test("PacketDecoder: packets, acks, interrupts and noise, in order", () => {
  assert.deepEqual(payloads(feed("+$g#67-\x03junk$?#3f")), [
    "ack",
    "g",
    "nack",
    "interrupt",
    "?",
  ]);
});

Deno.test("PacketDecoder keeps a packet split across chunks", () => {
  const d = new PacketDecoder();
  assert.deepEqual(feed("$qSupp", d), []);
  assert.deepEqual(feed("orted#", d), []);
  assert.deepEqual(payloads(feed("37", d)), ["qSupported"]);
});

Deno.test("PacketDecoder reports a wrong checksum and non-hex checksum digits", () => {
  assert.deepEqual(feed("$g#00"), [{ type: "bad-packet", why: "checksum" }]);
  assert.deepEqual(feed("$g#zz"), [{ type: "bad-packet", why: "not-hex" }]);
  // Upper-case checksum digits are fine.
  assert.deepEqual(payloads(feed("$OK#9A")), ["OK"]);
});

Deno.test("PacketDecoder: a $ inside a packet starts over (the first was cut off)", () => {
  assert.deepEqual(payloads(feed("$gar$g#67")), ["g"]);
});

Deno.test("PacketDecoder drops a payload longer than MAX_PACKET_SIZE and recovers", () => {
  const d = new PacketDecoder();
  const huge = "$" + "a".repeat(MAX_PACKET_SIZE + 10) + "#00";
  assert.deepEqual(feed(huge, d), [{ type: "bad-packet", why: "too-long" }]);
  assert.deepEqual(payloads(feed("$g#67", d)), ["g"]);
});

Deno.test("unescapeBinary() undoes } escapes and rejects a trailing }", () => {
  assert.deepEqual(
    unescapeBinary(Uint8Array.of(0x61, 0x7d, 0x5d, 0x62)),
    Uint8Array.of(0x61, 0x7d, 0x62),
  );
  assert.equal(unescapeBinary(Uint8Array.of(0x61, 0x7d)), null);
  assert.deepEqual(unescapeBinary(new Uint8Array()), new Uint8Array());
});

Deno.test("expandRunLength() repeats the previous byte (count - 29) more times", () => {
  // "0* " = '0' then ' ' (32) - 29 = 3 more: "0000".
  assert.equal(dec.decode(expandRunLength(enc.encode("0* "))!), "0000");
  // '"' is 34: five more b's after the first.
  assert.equal(dec.decode(expandRunLength(enc.encode('ab*"c'))!), "abbbbbbc");
  assert.equal(expandRunLength(enc.encode("*a")), null, "nothing to repeat");
  assert.equal(expandRunLength(enc.encode("a*")), null, "no count");
  assert.equal(expandRunLength(enc.encode("a*\x01")), null, "count below 3");
  assert.equal(expandRunLength(enc.encode("a*~~"), 10), null, "past the limit");
});

Deno.test("hex helpers: toHex/fromHex round trip; bad input is null", () => {
  assert.equal(toHex(Uint8Array.of(0, 0xab, 0xff)), "00abff");
  assert.deepEqual(fromHex("00ABff"), Uint8Array.of(0, 0xab, 0xff));
  assert.equal(fromHex("abc"), null);
  assert.equal(fromHex("zz"), null);
  assert.equal(parseHexNumber("100802130"), 0x100802130);
  assert.equal(parseHexNumber(""), null);
  assert.equal(parseHexNumber("-1"), null);
  assert.equal(parseHexNumber("ffffffffffffffff"), null, "above 2^53");
  assert.equal(parseHexNumber("1".repeat(17)), null);
  assert.equal(parseHexNumber("1fffffffffffff"), Number.MAX_SAFE_INTEGER);
});
