/**
 * Unit tests of `src/utf8.ts`: the same bytes and text as Deno's encoder and
 * decoder, for ASCII, other scripts, lone surrogates, bad sequences and text
 * longer than one `String.fromCharCode` call takes. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { decodeUtf8, encodeUtf8 } from "../../src/utf8.ts";

const SAMPLES = [
  "",
  "libc.so.6",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "uhyve - unikernel hypervisor",
  "HOME=/root\u007f",
  "grüße, ≥ 10 ms",
  "日本語",
  "emoji 🦕 and a lone surrogate \ud800 here",
  "x".repeat(10_000),
  "é".repeat(5_000),
];

Deno.test("encodeUtf8() gives the bytes TextEncoder gives", () => {
  const encoder = new TextEncoder();
  for (const text of SAMPLES) {
    assert.deepEqual(encodeUtf8(text), encoder.encode(text), JSON.stringify(text.slice(0, 40)));
  }
});

Deno.test("decodeUtf8() gives the text TextDecoder gives, replacement characters included", () => {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const byteSamples = [
    ...SAMPLES.map((text) => encoder.encode(text)),
    new Uint8Array([0x41, 0xff, 0x42]), // not UTF-8
    new Uint8Array([0xe6, 0x97]), // a truncated sequence
    new Uint8Array([0x00, 0x7f, 0x80]),
    new Uint8Array(9_000).fill(0x61),
  ];
  for (const bytes of byteSamples) {
    assert.equal(decodeUtf8(bytes), decoder.decode(bytes));
  }
});

Deno.test("decodeUtf8() reads only the view it is given", () => {
  const bytes = new TextEncoder().encode("before|inside|after");
  assert.equal(decodeUtf8(bytes.subarray(7, 13)), "inside");
});

Deno.test("decodeUtf8() with fatal throws TypeError where TextDecoder's fatal mode does", () => {
  assert.equal(decodeUtf8(new TextEncoder().encode("/tmp/ä.txt"), { fatal: true }), "/tmp/ä.txt");
  assert.equal(decodeUtf8(new TextEncoder().encode("/etc/hosts"), { fatal: true }), "/etc/hosts");
  for (const bad of [[0x2f, 0xff], [0xe6, 0x97], [0xc0, 0x80]]) {
    assert.throws(() => decodeUtf8(new Uint8Array(bad), { fatal: true }), TypeError);
    assert.throws(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bad)));
  }
});
