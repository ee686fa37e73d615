/**
 * The one error type of `dhyve-oci`: something about the bundle, the kernel
 * or an option that the runtime cannot map. Its message is the one line the
 * engine shows; its exit code is one of dhyve's (`src/exit_codes.ts`). Pure.
 * @module
 */

/** A problem `dhyve-oci` reports as one line and an exit code, without calling runc. */
export class OciError extends Error {
  /** Error name. */
  override readonly name = "OciError";
  /** The process exit code (one of `EXIT_CODE`). */
  readonly exitCode: number;

  /** Creates the error; `message` is the whole line the user sees. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}
