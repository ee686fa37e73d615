/**
 * UTF-8 text to bytes and back, with ASCII done in plain JavaScript.
 *
 * Why: the first `TextEncoder.encode` of a process costs ~0.1 ms and the
 * first `TextDecoder.decode` ~0.25 ms here (Deno compiles their JavaScript on
 * that call), and the strings a plain run converts before the guest starts
 * (the C library's path, C strings for libc, the CPUID brand, the device
 * tree's names and the guest's arguments) are nearly always ASCII. Anything
 * else goes through Deno's encoder and decoder, with their exact results.
 * Pure.
 * @module
 */

/** Longest run of codes passed to one `String.fromCharCode` call (its arguments go on the stack). */
const CHUNK = 4096;

/** `text` as UTF-8 bytes, as `new TextEncoder().encode(text)` gives them. */
export function encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
  const n = text.length;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return new TextEncoder().encode(text);
    out[i] = code;
  }
  return out;
}

/**
 * `bytes` as text, as `new TextDecoder("utf-8", { fatal }).decode(bytes)`
 * gives it: bad sequences become U+FFFD, or with `fatal` throw a TypeError.
 */
export function decodeUtf8(bytes: Uint8Array, { fatal = false } = {}): string {
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    if (bytes[i]! > 0x7f) return new TextDecoder("utf-8", { fatal }).decode(bytes);
  }
  let text = "";
  for (let at = 0; at < n; at += CHUNK) {
    text += String.fromCharCode(...bytes.subarray(at, Math.min(n, at + CHUNK)));
  }
  return text;
}
