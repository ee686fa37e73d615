/**
 * Line-buffered guest output (serial and guest fds 1/2) without allocation.
 *
 * Bytes are gathered in one buffer made once and written to the sink when a
 * line ends, the buffer fills, or the VM stops. Writes use views of the buffer
 * cached by length, so steady-state output creates no objects per exit.
 *
 * A sink may say whether a write would block (`readyToWrite`). Then output never
 * blocks the thread: when the reader stops reading and the buffer is full,
 * {@linkcode GuestOutput.write} takes fewer bytes than offered, and the
 * hypercall stalls (returns WOULD_BLOCK) and is retried later from where it
 * stopped ({@linkcode GuestOutput.writeResumable}). Meanwhile signals and
 * `--timeout` get their turn. Pure: the sink is anything with a synchronous
 * `writeSync`.
 * @module
 */

/** Where guest output goes: `Deno.stdout`, a `Deno.FsFile`, or a capture. */
export interface OutputSink {
  /** Writes some of `p`, returning how many bytes were written. */
  writeSync(p: Uint8Array): number;
  /**
   * Whether a write of up to 4 KiB now would not block. Absent: always
   * (files, captures; and on a vCPU Worker, where blocking is harmless).
   */
  readyToWrite?(): boolean;
}

/** A sink that keeps everything written to it, for the library and tests. */
export class CaptureSink implements OutputSink {
  readonly #chunks: Uint8Array[] = [];
  /** Stores a copy of `p`. */
  writeSync(p: Uint8Array): number {
    this.#chunks.push(p.slice());
    return p.length;
  }
  /** Everything written so far, as bytes. */
  bytes(): Uint8Array {
    const total = this.#chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
  /** Everything written so far, decoded as UTF-8. */
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
}

/** A sink that drops everything (`-o none`). */
export class NullSink implements OutputSink {
  /** Discards `p`. */
  writeSync(p: Uint8Array): number {
    return p.length;
  }
}

const NEWLINE = 0x0a;

/**
 * Flushes every output as far as its sink takes it without blocking (see
 * {@linkcode GuestOutput.flush}); true when none has anything left.
 */
export function flushAll(...outputs: GuestOutput[]): boolean {
  let empty = true;
  for (const out of outputs) if (!out.flush()) empty = false;
  return empty;
}

/** How much of the guest's last output line is kept for reports. */
const LAST_LINE_MAX = 160;

/** Line-buffered writer in front of an {@linkcode OutputSink}. */
export class GuestOutput {
  readonly #sink: OutputSink;
  readonly #buf: Uint8Array;
  /** `#buf.subarray(0, n)` by `n`, made once each (a Map: an array of `capacity` slots cost 32 KB up front). */
  readonly #views = new Map<number, Uint8Array>();
  #len = 0;
  #failed = false;
  #progress = 0;
  /** The last line written out (at most LAST_LINE_MAX bytes), for a dead guest's report. */
  readonly #last = new Uint8Array(LAST_LINE_MAX);
  #lastLen = 0;
  #lastAt = 0;

  /** Creates a writer with a buffer of `capacity` bytes (one line fits). */
  constructor(sink: OutputSink, capacity = 4096) {
    this.#sink = sink;
    this.#buf = new Uint8Array(capacity);
  }

  /** True once the sink failed (for example a closed pipe); output is then dropped. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes buffered and not yet written to the sink. */
  get pending(): number {
    return this.#len;
  }

  /**
   * How many bytes of a stalled hypercall were already taken; the retry
   * goes on from there. Zero when no call is stalled on this output.
   */
  get progress(): number {
    return this.#progress;
  }
  set progress(taken: number) {
    this.#progress = taken;
  }

  /**
   * Appends one byte; flushes at a newline or when the buffer is full.
   * Returns false (and takes nothing) when the buffer is full and the sink
   * cannot take more now.
   */
  putByte(byte: number): boolean {
    if (!this.#hasRoom()) return false;
    this.#buf[this.#len++] = byte;
    if (byte === NEWLINE || this.#len === this.#buf.length) this.flush();
    return true;
  }

  /**
   * Appends up to `len` bytes of `src` from `offset` (the caller has checked
   * the range) and returns how many it took: all of them unless the sink
   * cannot take more now. Flushes whole buffers as they fill and once more
   * if a newline was among the bytes.
   */
  write(src: Uint8Array, offset: number, len: number): number {
    const buf = this.#buf;
    let newline = false;
    let taken = 0;
    while (taken < len) {
      if (!this.#hasRoom()) break;
      const b = src[offset + taken]!;
      buf[this.#len++] = b;
      taken++;
      if (b === NEWLINE) newline = true;
    }
    if (newline || this.#len === buf.length) this.flush();
    return taken;
  }

  /**
   * Writes `len` bytes of `src` from `offset` for a hypercall that may stall:
   * starts after the {@linkcode progress} of an earlier try. True when all
   * bytes are taken (progress back to 0); false when the call must wait.
   */
  writeResumable(src: Uint8Array, offset: number, len: number): boolean {
    const from = this.#progress < len ? this.#progress : 0;
    const taken = this.write(src, offset + from, len - from);
    if (from + taken < len) {
      this.#progress = from + taken;
      return false;
    }
    this.#progress = 0;
    return true;
  }

  /**
   * Writes out what the sink takes without blocking (all of it for sinks
   * without `readyToWrite`), finishing partial writes. True when nothing is
   * left buffered.
   */
  flush(): boolean {
    const len = this.#len;
    if (this.#failed || len === 0) {
      this.#len = 0;
      return true;
    }
    // Date.now(), not performance.now(): the builtin allocates nothing once V8 optimises this.
    if (this.#keepLastLine(len)) this.#lastAt = Date.now();
    let at = 0;
    try {
      while (at < len) {
        if (this.#sink.readyToWrite !== undefined && !this.#sink.readyToWrite()) break;
        const n = this.#sink.writeSync(this.#view(at, len - at));
        if (!(n > 0)) throw new Error("The output sink wrote nothing");
        at += n;
      }
    } catch {
      // A broken pipe or full disk must not crash the VM; the guest goes on.
      this.#failed = true;
      this.#len = 0;
      return true;
    }
    if (at > 0 && at < len) this.#buf.copyWithin(0, at, len); // rare: a partial write
    this.#len = len - at;
    return this.#len === 0;
  }

  /**
   * The last non-empty line the guest wrote here (up to 160 bytes), and when
   * (epoch milliseconds, comparable across threads; 0 if never). For reports
   * about a guest that died.
   */
  lastLine(): { text: string; at: number } {
    return {
      text: new TextDecoder().decode(this.#last.subarray(0, this.#lastLen)),
      at: this.#lastAt,
    };
  }

  /** Remembers the last non-empty line among the first `len` buffered bytes; false if none. */
  #keepLastLine(len: number): boolean {
    const buf = this.#buf;
    let end = len;
    while (end > 0 && (buf[end - 1] === NEWLINE || buf[end - 1] === 0x0d)) end--;
    if (end === 0) return false;
    let start = end;
    while (start > 0 && buf[start - 1] !== NEWLINE) start--;
    const n = Math.min(end - start, LAST_LINE_MAX);
    // A loop, not set(subarray(…)): a view per line would be an allocation every few exits.
    const last = this.#last;
    for (let i = 0; i < n; i++) last[i] = buf[start + i]!;
    this.#lastLen = n;
    return true;
  }

  /** True when the buffer has room for a byte, flushing a full buffer first. */
  #hasRoom(): boolean {
    if (this.#len < this.#buf.length) return true;
    this.flush();
    return this.#len < this.#buf.length;
  }

  #view(at: number, n: number): Uint8Array {
    if (at !== 0) return this.#buf.subarray(at, at + n); // rare: a partial write
    let v = this.#views.get(n);
    if (v === undefined) {
      v = this.#buf.subarray(0, n);
      this.#views.set(n, v);
    }
    return v;
  }
}
