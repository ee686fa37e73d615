/**
 * Line-buffered guest output (serial and guest fds 1/2) without allocation.
 *
 * Bytes are gathered in one buffer made once and written to the sink when a
 * line ends, the buffer fills, or the VM stops. Writes use views of the buffer
 * cached by length, so steady-state output creates no objects per exit.
 * Pure: the sink is anything with a synchronous `writeSync`.
 * @module
 */

/** Where guest output goes: `Deno.stdout`, a `Deno.FsFile`, or a capture. */
export interface OutputSink {
  /** Writes some of `p`, returning how many bytes were written. */
  writeSync(p: Uint8Array): number;
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

/** Line-buffered writer in front of an {@linkcode OutputSink}. */
export class GuestOutput {
  readonly #sink: OutputSink;
  readonly #buf: Uint8Array;
  readonly #views: (Uint8Array | undefined)[];
  #len = 0;
  #failed = false;

  /** Creates a writer with a buffer of `capacity` bytes (one line fits). */
  constructor(sink: OutputSink, capacity = 4096) {
    this.#sink = sink;
    this.#buf = new Uint8Array(capacity);
    this.#views = new Array(capacity + 1);
  }

  /** True once the sink failed (for example a closed pipe); output is then dropped. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Appends one byte; flushes at a newline or when the buffer is full. */
  putByte(byte: number): void {
    this.#buf[this.#len++] = byte;
    if (byte === NEWLINE || this.#len === this.#buf.length) this.flush();
  }

  /**
   * Appends `len` bytes of `src` from `offset` (the caller has checked the
   * range). Flushes whole buffers as they fill and once more if a newline
   * was among the bytes.
   */
  write(src: Uint8Array, offset: number, len: number): void {
    const buf = this.#buf;
    let newline = false;
    for (let i = 0; i < len; i++) {
      const b = src[offset + i]!;
      buf[this.#len++] = b;
      if (b === NEWLINE) newline = true;
      if (this.#len === buf.length) this.flush();
    }
    if (newline) this.flush();
  }

  /** Writes out everything buffered, finishing partial writes. */
  flush(): void {
    let at = 0;
    const len = this.#len;
    this.#len = 0;
    if (this.#failed) return;
    try {
      while (at < len) {
        const n = this.#sink.writeSync(this.#view(at, len - at));
        if (!(n > 0)) throw new Error("The output sink wrote nothing");
        at += n;
      }
    } catch {
      // A broken pipe or full disk must not crash the VM; the guest goes on.
      this.#failed = true;
    }
  }

  #view(at: number, n: number): Uint8Array {
    if (at !== 0) return this.#buf.subarray(at, at + n); // rare: a partial write
    let v = this.#views[n];
    if (v === undefined) v = this.#views[n] = this.#buf.subarray(0, n);
    return v;
  }
}
