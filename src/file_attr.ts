/**
 * File metadata as the sandbox hands it to the hypercall layer: one
 * `Float64Array` of {@linkcode ATTR_LENGTH} numbers, indexed by
 * {@linkcode ATTR}. A flat array of numbers (not an object) so that a vCPU
 * Worker's request can be answered through the shared file channel without
 * serialising, and so that FileStat/FileFstat reuse one buffer. Every value is
 * an integer below 2^53. Pure; imports nothing.
 * @module
 */

/** Index of each field in a file-attribute array. */
export const ATTR = {
  DEV: 0,
  INO: 1,
  NLINK: 2,
  /** `st_mode`: file type (S_IFMT) and permission bits. */
  MODE: 3,
  UID: 4,
  GID: 5,
  RDEV: 6,
  SIZE: 7,
  BLKSIZE: 8,
  BLOCKS: 9,
  ATIME_SEC: 10,
  ATIME_NSEC: 11,
  MTIME_SEC: 12,
  MTIME_NSEC: 13,
  CTIME_SEC: 14,
  CTIME_NSEC: 15,
} as const;

/** Numbers in a file-attribute array. */
export const ATTR_LENGTH = 16;

/** File type bits of `st_mode` (Linux numbering, as Hermit uses). */
export const S_IF = {
  MASK: 0o170000,
  FIFO: 0o010000,
  CHR: 0o020000,
  DIR: 0o040000,
  BLK: 0o060000,
  REG: 0o100000,
  LNK: 0o120000,
  SOCK: 0o140000,
} as const;

/** A new, zeroed file-attribute array. */
export function newFileAttr(): Float64Array {
  return new Float64Array(ATTR_LENGTH);
}
