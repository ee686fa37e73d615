/**
 * What a hypercall handler may use, and what it returns. Handlers are plain
 * functions of (context, argument), so tests call them with fakes and a
 * GuestMemory over a plain ArrayBuffer. Must not import KVM or FFI code.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import type { GuestOutput } from "../io/guest_output.ts";
import type { GuestFiles } from "./file.ts";
import type { InputSource } from "./serial_input.ts";

/** Returned by a handler when the guest should simply go on. */
export const RESUME = 0;

/** Why a vCPU stopped the VM. */
export type StopKind =
  | "exit" // the guest asked to exit
  | "error"; // the guest did something that ends the VM (message says what)

/** A request to stop the VM, returned once by a handler or the run loop. */
export class VmStop {
  /** "exit" for a guest Exit hypercall, "error" for a fault or protocol violation. */
  readonly kind: StopKind;
  /** For "exit": the guest's exit code; for "error": dhyve's exit code. */
  readonly code: number;
  /** For "error": one line saying what happened. */
  readonly message: string;
  /** Optional extra detail (register dump), shown with -v. */
  readonly detail: string;

  /** Builds a stop request. */
  constructor(kind: StopKind, code: number, message = "", detail = "") {
    this.kind = kind;
    this.code = code;
    this.message = message;
    this.detail = detail;
  }
}

/**
 * Returned by a handler that must wait (for stdin): nothing was changed, and
 * the run loop calls it again later, before the guest runs on.
 */
export const WOULD_BLOCK = 1;

/** A handler's result: {@linkcode RESUME}, {@linkcode WOULD_BLOCK} or a {@linkcode VmStop}. */
export type HandlerResult = typeof RESUME | typeof WOULD_BLOCK | VmStop;

/** The guest's command line as the Cmdsize/Cmdval hypercalls hand it out. */
export interface GuestCommandLine {
  /** argv[0] (the kernel path) followed by the user's arguments, UTF-8 encoded. */
  readonly argv: readonly Uint8Array[];
  /** `KEY=VALUE` entries, UTF-8 encoded. */
  readonly env: readonly Uint8Array[];
}

/** Everything a handler may touch. One per vCPU; built once. */
export interface HypercallContext {
  /** Guest RAM, bounds-checked. */
  readonly mem: GuestMemory;
  /** Guest serial output and guest fd 1. */
  readonly stdout: GuestOutput;
  /** Guest fd 2. */
  readonly stderr: GuestOutput;
  /** The command line for Cmdsize/Cmdval. */
  readonly cmdline: GuestCommandLine;
  /**
   * Translates a guest-virtual range through the guest's current page tables
   * and calls `visit` for each physically contiguous piece. Returns false,
   * without calling `visit`, if any page is unmapped or outside RAM.
   */
  translateRange(
    vaddr: number,
    len: number,
    visit: (gpa: number, len: number) => void,
  ): boolean;
  /** Serial input (the host's stdin); absent means end of input. */
  readonly stdin?: InputSource;
  /** The guest's files (the sandbox); absent when the guest has no file access at all. */
  readonly files?: GuestFiles;
  /** Told when a v1 FileWrite (which has no result field) failed or was cut short. */
  readonly onWriteError?: (fd: number, errno: number) => void;
}

/** A hypercall handler: `arg` is the parameter address (or the value itself). */
export type Handler = (ctx: HypercallContext, arg: number) => HandlerResult;
