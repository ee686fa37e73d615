/**
 * File hypercalls from vCPU Workers, served in one place (the main thread,
 * which owns the sandbox and its open files). Each vCPU has a slot in a
 * SharedArrayBuffer: the Worker writes the request and blocks in
 * `Atomics.wait`; the main thread, woken by `Atomics.waitAsync`, runs it
 * against the sandbox and guest memory and writes the result back. Buffers
 * are passed as guest-physical addresses, never copied through the slot.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { ATTR_LENGTH } from "../file_attr.ts";
import type { GuestFiles } from "../hypercall/file.ts";
import { PATH_MAX } from "../hypercall/file.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";

const IDLE = 0;
const REQUEST = 1;
const DONE = 2;

const OP = {
  OPEN: 1,
  CLOSE: 2,
  READ: 3,
  WRITE: 4,
  LSEEK: 5,
  UNLINK: 6,
  GETDENTS: 7,
  STAT: 8,
  FSTAT: 9,
  MKDIR: 10,
} as const;

/**
 * Bytes per vCPU slot: 16 bytes of state, 4 f64 arguments and a result (64
 * bytes), the file attributes of a stat (ATTR_LENGTH f64), then the path.
 */
const SLOT_ATTR = 64;
const SLOT_HEADER = SLOT_ATTR + ATTR_LENGTH * 8;
const SLOT_SIZE = SLOT_HEADER + PATH_MAX;

/** Allocates the shared slots for `cpuCount` vCPUs. */
export function createFileChannel(cpuCount: number): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOT_SIZE * cpuCount);
}

class Slot {
  readonly state: Int32Array;
  readonly numbers: Float64Array;
  readonly attr: Float64Array;
  readonly path: Uint8Array;
  constructor(buffer: SharedArrayBuffer, cpu: number) {
    const base = cpu * SLOT_SIZE;
    this.state = new Int32Array(buffer, base, 4);
    this.numbers = new Float64Array(buffer, base + 16, 6);
    this.attr = new Float64Array(buffer, base + SLOT_ATTR, ATTR_LENGTH);
    this.path = new Uint8Array(buffer, base + SLOT_HEADER, PATH_MAX);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The Worker side: a {@linkcode GuestFiles} that asks the main thread. */
export class ChannelFiles implements GuestFiles {
  readonly #slot: Slot;
  readonly #mem: GuestMemory;

  /** Uses vCPU `cpu`'s slot of `buffer`; `mem` maps views back to guest addresses. */
  constructor(buffer: SharedArrayBuffer, cpu: number, mem: GuestMemory) {
    this.#slot = new Slot(buffer, cpu);
    this.#mem = mem;
  }

  #call(op: number, a: number, b: number, c: number, path?: string): number {
    const slot = this.#slot;
    slot.state[1] = op;
    slot.numbers[0] = a;
    slot.numbers[1] = b;
    slot.numbers[2] = c;
    if (path !== undefined) {
      const { written } = encoder.encodeInto(path, slot.path);
      if (written >= PATH_MAX) return -ERRNO.ENAMETOOLONG;
      slot.numbers[3] = written;
    }
    Atomics.store(slot.state, 0, REQUEST);
    Atomics.notify(slot.state, 0);
    while (Atomics.load(slot.state, 0) === REQUEST) Atomics.wait(slot.state, 0, REQUEST);
    const result = slot.numbers[4]!;
    Atomics.store(slot.state, 0, IDLE);
    return result;
  }

  /** Opens a guest path. */
  open(path: string, flags: number, mode: number): number {
    return this.#call(OP.OPEN, flags, mode, 0, path);
  }
  /** Closes a guest fd. */
  close(fd: number): number {
    return this.#call(OP.CLOSE, fd, 0, 0);
  }
  /** Reads into a view of guest memory. */
  read(fd: number, into: Uint8Array): number {
    return this.#call(OP.READ, fd, this.#mem.addressOf(into), into.length);
  }
  /** Writes from a view of guest memory. */
  write(fd: number, from: Uint8Array): number {
    return this.#call(OP.WRITE, fd, this.#mem.addressOf(from), from.length);
  }
  /** Moves a file offset. */
  lseek(fd: number, offset: number, whence: number): number {
    return this.#call(OP.LSEEK, fd, offset, whence);
  }
  /** Removes a guest path. */
  unlink(path: string): number {
    return this.#call(OP.UNLINK, 0, 0, 0, path);
  }
  /** Reads directory entries into a view of guest memory. */
  getdents(fd: number, into: Uint8Array): number {
    return this.#call(OP.GETDENTS, fd, this.#mem.addressOf(into), into.length);
  }
  /** Stats a guest path; the attributes come back through the slot. */
  stat(path: string, follow: boolean, attr: Float64Array): number {
    const ret = this.#call(OP.STAT, follow ? 1 : 0, 0, 0, path);
    if (ret >= 0) attr.set(this.#slot.attr);
    return ret;
  }
  /** Stats a guest fd; the attributes come back through the slot. */
  fstat(fd: number, attr: Float64Array): number {
    const ret = this.#call(OP.FSTAT, fd, 0, 0);
    if (ret >= 0) attr.set(this.#slot.attr);
    return ret;
  }
  /** Creates a directory. */
  mkdir(path: string): number {
    return this.#call(OP.MKDIR, 0, 0, 0, path);
  }
}

/** The main-thread side: serves every vCPU's slot until stopped. */
export class FileChannelServer {
  readonly #slots: Slot[];
  readonly #files: GuestFiles;
  readonly #mem: GuestMemory;
  #running = true;

  /** Serves the slots of `buffer` for `cpuCount` vCPUs against `files`. */
  constructor(buffer: SharedArrayBuffer, cpuCount: number, files: GuestFiles, mem: GuestMemory) {
    this.#slots = Array.from({ length: cpuCount }, (_, i) => new Slot(buffer, i));
    this.#files = files;
    this.#mem = mem;
    for (const slot of this.#slots) void this.#serve(slot);
  }

  /** Stops serving (pending waits end at the next wake-up). */
  stop(): void {
    this.#running = false;
    for (const slot of this.#slots) Atomics.notify(slot.state, 0);
  }

  async #serve(slot: Slot): Promise<void> {
    while (this.#running) {
      if (Atomics.load(slot.state, 0) !== REQUEST) {
        const wait = Atomics.waitAsync(slot.state, 0, Atomics.load(slot.state, 0));
        if (wait.async) await wait.value;
        continue;
      }
      slot.numbers[4] = this.#run(slot);
      Atomics.store(slot.state, 0, DONE);
      Atomics.notify(slot.state, 0);
    }
  }

  #run(slot: Slot): number {
    const [a = 0, b = 0, c = 0, pathLength = 0] = slot.numbers;
    const files = this.#files;
    const path = (): string => decoder.decode(slot.path.subarray(0, pathLength));
    try {
      switch (slot.state[1]) {
        case OP.OPEN:
          return files.open(path(), a, b);
        case OP.CLOSE:
          return files.close(a);
        case OP.READ:
          return this.#mem.contains(b, c) ? files.read(a, this.#mem.bytes(b, c)) : -ERRNO.EFAULT;
        case OP.WRITE:
          return this.#mem.contains(b, c) ? files.write(a, this.#mem.bytes(b, c)) : -ERRNO.EFAULT;
        case OP.LSEEK:
          return files.lseek(a, b, c);
        case OP.UNLINK:
          return files.unlink(path());
        case OP.GETDENTS:
          return this.#mem.contains(b, c)
            ? files.getdents(a, this.#mem.bytes(b, c))
            : -ERRNO.EFAULT;
        case OP.STAT:
          return files.stat(path(), a === 1, slot.attr);
        case OP.FSTAT:
          return files.fstat(a, slot.attr);
        case OP.MKDIR:
          return files.mkdir(path());
        default:
          return -ERRNO.ENOSYS;
      }
    } catch {
      return -ERRNO.EIO;
    }
  }
}
