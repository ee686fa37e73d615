/**
 * The one error of network set-up (a TAP that cannot be opened, passt that
 * cannot be started or reached): a one-line message and the exit code.
 * Pure: no imports.
 * @module
 */

/** Setting up networking failed before the guest ran. */
export class NetSetupError extends Error {
  /** Process exit code (exit_codes.ts). */
  readonly exitCode: number;
  /** Builds the error; the message is the one line shown to the user. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
  /** Error name. */
  override name = "NetSetupError";
}
