/**
 * Error classes of the kernel loader: {@linkcode ImageFormatError} for a file
 * that is not a loadable Hermit kernel, {@linkcode LayoutError} for a kernel
 * that cannot be placed in guest memory. Pure; imports nothing.
 * @module
 */

/**
 * The kernel file is not a Hermit kernel dhyve can load: wrong format,
 * truncated or malformed ELF, wrong architecture, unsupported note values or
 * relocations. The message is one line saying what is wrong.
 */
export class ImageFormatError extends SyntaxError {
  /** Builds the error; `options.cause` carries an underlying error, if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
  /** Always `"ImageFormatError"`. */
  override name = "ImageFormatError";
}

/**
 * The kernel cannot be placed in guest memory: the requested memory size, the
 * kernel's link address and the uhyve interface's address range do not fit
 * together. The message says which rule failed and, where it can, what would
 * fit.
 */
export class LayoutError extends RangeError {
  /** Builds the error; `options.cause` carries an underlying error, if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
  /** Always `"LayoutError"`. */
  override name = "LayoutError";
}
