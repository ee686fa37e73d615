/**
 * A small deterministic PRNG for tests that walk many pseudo-random inputs
 * and must replay the same ones on every run.
 * @module
 */

/** mulberry32: returns a generator of numbers in [0, 1) fixed by `seed`. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
