/**
 * The GDB stub's one error the VM set-up maps to an exit code, in a module of
 * its own so that mapping it does not load the stub on runs without `-s`.
 * @module
 */

/** The listening socket could not be opened (port in use, no permission). */
export class GdbListenError extends Error {
  /** Error name. */
  override name = "GdbListenError";
  /** True when Deno's permissions (not the host) refused it. */
  get permission(): boolean {
    return this.cause instanceof Deno.errors.NotCapable;
  }
}
