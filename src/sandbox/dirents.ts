/**
 * Directory listings as a guest reads them: a snapshot of entries encoded as
 * Linux `linux_dirent64` records, paged with a byte cursor (the directory
 * fd's offset). Owns the record format (uhyve 0.9.1's `Dirent64`: u64 d_ino,
 * i64 d_off, u16 d_reclen, u8 d_type, NUL-terminated name, each record padded
 * to 8 bytes) and the paging rules. Pure; like all of `sandbox/`, it never
 * imports KVM, FFI or `src/hypercall/`.
 * @module
 */

import { ERRNO } from "../errno.ts";

/** `d_type` values (Linux DT_*). */
export const DT = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
} as const;

/** Field offsets of a linux_dirent64 record. */
export const DIRENT64 = { ino: 0, off: 8, reclen: 16, type: 18, name: 19, align: 8 } as const;

/** One entry of a listing. */
export interface DirEntry {
  /** The name, UTF-8, without `/` or NUL. */
  readonly name: Uint8Array;
  /** A {@linkcode DT} value. */
  readonly type: number;
  /** The inode number the guest sees (`d_ino`). */
  readonly ino: number;
}

/** Bytes of the record for a name of `nameLength` bytes: header, name, NUL, padding to 8. */
export function direntLength(nameLength: number): number {
  const raw = DIRENT64.name + nameLength + 1;
  return Math.ceil(raw / DIRENT64.align) * DIRENT64.align;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * A directory's entries, fixed when the directory is opened (or rewound),
 * sorted by name bytes so the record stream and its offsets are stable.
 *
 * Paging (uhyve 0.9.1's rules for its virtual directories, applied to every
 * directory here): the cursor counts bytes of the record stream; a read
 * writes as many whole records as fit, starting at the cursor, and moves the
 * cursor past them; a cursor inside a record, or a buffer too small for the
 * next record, is EINVAL; at or past the end there is nothing more (0).
 */
export class DirListing {
  /** The entries, in stream order. */
  readonly entries: readonly DirEntry[];
  /** `starts[i]`: byte offset of record i; `starts[n]`: the stream's length. */
  readonly #starts: number[];

  /** Builds a listing; the entries are sorted by name (duplicates are the caller's bug). */
  constructor(entries: readonly DirEntry[]) {
    this.entries = [...entries].sort((a, b) => compareBytes(a.name, b.name));
    this.#starts = [0];
    let at = 0;
    for (const entry of this.entries) {
      at += direntLength(entry.name.length);
      this.#starts.push(at);
    }
  }

  /** Total bytes of the record stream. */
  get byteLength(): number {
    return this.#starts[this.#starts.length - 1]!;
  }

  /**
   * Writes whole records from byte `cursor` of the stream into `into`.
   * Returns the bytes written (> 0; the caller adds them to the cursor), 0 at
   * or past the end, or −EINVAL when `cursor` falls inside a record or the
   * next record does not fit. `d_off` of each record is the offset of the
   * record after it (a cursor the guest may seek to).
   */
  read(cursor: number, into: Uint8Array): number {
    if (cursor >= this.byteLength) return 0;
    const first = this.#recordAt(cursor);
    if (first < 0) return -ERRNO.EINVAL;
    const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
    let written = 0;
    for (let i = first; i < this.entries.length; i++) {
      const entry = this.entries[i]!;
      const length = this.#starts[i + 1]! - this.#starts[i]!;
      if (written + length > into.length) break;
      into.fill(0, written, written + length);
      view.setBigUint64(written + DIRENT64.ino, BigInt(entry.ino), true);
      view.setBigInt64(written + DIRENT64.off, BigInt(this.#starts[i + 1]!), true);
      view.setUint16(written + DIRENT64.reclen, length, true);
      view.setUint8(written + DIRENT64.type, entry.type);
      into.set(entry.name, written + DIRENT64.name);
      written += length;
    }
    return written === 0 ? -ERRNO.EINVAL : written;
  }

  /** Index of the record starting exactly at `cursor`, or −1. */
  #recordAt(cursor: number): number {
    const starts = this.#starts;
    let lo = 0;
    let hi = starts.length - 2;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const start = starts[mid]!;
      if (start === cursor) return mid;
      if (start < cursor) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}
