/**
 * dhyve's version, shown by --version.
 * @module
 */

/** The release version. */
export const VERSION = "0.1.0";
