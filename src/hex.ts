/**
 * The one way dhyve writes an address, size or register value into a
 * message. Pure.
 * @module
 */

/**
 * `0x…` in lowercase hex. A negative integer is shown as the 64-bit pattern
 * it stands for (guest registers such as RDI arrive signed), a bigint as its
 * 64-bit pattern too; a value that is not an integer (NaN, ±∞, a fraction)
 * as written by `String`.
 */
export function hex(n: number | bigint): string {
  if (typeof n === "bigint") return `0x${BigInt.asUintN(64, n).toString(16)}`;
  if (!Number.isInteger(n)) return String(n);
  return n < 0 ? `0x${BigInt.asUintN(64, BigInt(n)).toString(16)}` : `0x${n.toString(16)}`;
}
